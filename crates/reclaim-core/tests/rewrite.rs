//! The online rewrite ([`GenerationalStore`]) on an in-memory engine: what it copies while a
//! writer keeps writing, how it stops, gives up and cleans up. Crash safety at every step is
//! tested on the real engines (`reclaim-conformance`'s rewrite kill test).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use reclaim_core::kv::KeyValue;
use reclaim_core::rewrite::{GenerationEngine, GenerationalStore, RewriteSettings, SideKeyspace};
use reclaim_core::{
    Capabilities, Compactable, CompactionAccess, CompactionPacer, CompactionScope, KeyRange,
    KvRead, KvReadExt, KvWrite, MemoryStore, Pacing, ScanOrder, StorageError, WriteBatch,
    WriteOptions,
};

/// Each generation is a fresh in-memory store (nothing survives a reopen: enough for what
/// happens inside one process).
struct MemoryGenerations;

impl GenerationEngine for MemoryGenerations {
    type Store = MemoryStore;

    fn name(&self) -> &'static str {
        "memory"
    }

    fn open(&self, dir: &Path, create: bool) -> Result<MemoryStore, StorageError> {
        if create {
            std::fs::write(dir.join("memory"), b"in memory").unwrap();
        }
        Ok(MemoryStore::new())
    }

    fn persist(&self, _store: &MemoryStore) -> Result<(), StorageError> {
        Ok(())
    }

    fn capabilities(&self) -> Capabilities {
        MemoryStore::new().capabilities()
    }
}

/// One in-memory generation with a side keyspace (for the write-once rewrite).
struct SidedMemory {
    main: MemoryStore,
    side: parking_lot::Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
}

reclaim_core::forward_kv_store!(SidedMemory => main);

/// [`MemoryGenerations`] whose generations keep a side keyspace: rewrites write once.
struct SidedGenerations;

impl GenerationEngine for SidedGenerations {
    type Store = SidedMemory;

    fn name(&self) -> &'static str {
        "memory"
    }

    fn open(&self, dir: &Path, create: bool) -> Result<SidedMemory, StorageError> {
        Ok(SidedMemory {
            main: MemoryGenerations.open(dir, create)?,
            side: parking_lot::Mutex::new(BTreeMap::new()),
        })
    }

    fn persist(&self, _store: &SidedMemory) -> Result<(), StorageError> {
        Ok(())
    }

    fn capabilities(&self) -> Capabilities {
        MemoryStore::new().capabilities()
    }

    fn side_keyspace(&self) -> Option<&dyn SideKeyspace<SidedMemory>> {
        Some(self)
    }
}

impl SideKeyspace<SidedMemory> for SidedGenerations {
    fn write_with_side(
        &self,
        store: &SidedMemory,
        batch: WriteBatch,
        side: Vec<KeyValue>,
        options: WriteOptions,
    ) -> Result<(), StorageError> {
        let mut kept = store.side.lock();
        store.main.write(batch, options)?;
        kept.extend(side);
        Ok(())
    }

    fn side_entries(&self, store: &SidedMemory) -> Result<Vec<KeyValue>, StorageError> {
        Ok(store.side.lock().clone().into_iter().collect())
    }

    fn clear_side(&self, store: &SidedMemory) -> Result<(), StorageError> {
        store.side.lock().clear();
        Ok(())
    }
}

/// Steps of `step` bytes; interrupts after `allow` steps (`u32::MAX`: never).
struct TinySteps {
    step: u64,
    allow: u32,
    taken: AtomicU32,
}

impl TinySteps {
    fn new(step: u64, allow: u32) -> Self {
        Self {
            step,
            allow,
            taken: AtomicU32::new(0),
        }
    }
}

impl CompactionPacer for TinySteps {
    fn step_bytes(&self) -> u64 {
        self.step
    }

    fn before_step(&self) -> Result<(), StorageError> {
        if self.taken.fetch_add(1, Ordering::SeqCst) >= self.allow {
            return Err(StorageError::Interrupted { operation: "test" });
        }
        // Long enough for the writer to get writes in between steps.
        std::thread::sleep(std::time::Duration::from_micros(200));
        Ok(())
    }
}

fn open(dir: &Path, settings: RewriteSettings) -> Arc<GenerationalStore<MemoryGenerations>> {
    open_engine(dir, MemoryGenerations, settings)
}

fn open_engine<E: GenerationEngine>(
    dir: &Path,
    engine: E,
    settings: RewriteSettings,
) -> Arc<GenerationalStore<E>> {
    Arc::new(GenerationalStore::open_with(dir, engine, settings).unwrap())
}

fn contents(store: &dyn KvRead) -> BTreeMap<Vec<u8>, Vec<u8>> {
    store
        .iter(KeyRange::full(), ScanOrder::Ascending)
        .map(Result::unwrap)
        .collect()
}

fn fill(store: &dyn KvWrite, keys: u32) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut model = BTreeMap::new();
    let mut batch = WriteBatch::new();
    for i in 0..keys {
        let (k, v) = (format!("k{i:06}").into_bytes(), vec![(i % 251) as u8; 100]);
        batch.put(k.clone(), v.clone());
        model.insert(k, v);
    }
    store.write(batch, WriteOptions::DURABLE).unwrap();
    model
}

/// A tiny deterministic generator (no dependency on a seeded RNG's stability).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// A writer applies puts, deletes and range deletes, in one thread, while rewrites run with
/// steps small enough that every write lands between copy steps; after each rewrite the store
/// holds exactly what the writer wrote. Replaying the captured writes:
#[test]
fn a_rewrite_under_writes_holds_exactly_what_was_written() {
    rewrite_under_writes(MemoryGenerations);
}

/// ... and writing them once, to the new generation only.
#[test]
fn a_write_once_rewrite_under_writes_holds_exactly_what_was_written() {
    rewrite_under_writes(SidedGenerations);
}

fn rewrite_under_writes<E: GenerationEngine>(engine: E) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_engine(dir.path(), engine, RewriteSettings::default());
    let write_once = store.engine().side_keyspace().is_some();
    let model = Arc::new(parking_lot::Mutex::new(fill(store.as_ref(), 2_000)));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, model, stop) = (Arc::clone(&store), Arc::clone(&model), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut rng = Lcg(7);
            let mut writes = 0u32;
            let mut during = 0u64;
            while !stop.load(Ordering::SeqCst) || writes < 2_000 {
                let mut batch = WriteBatch::new();
                let mut model = model.lock();
                for _ in 0..1 + rng.next() % 4 {
                    let index = rng.next() % 3_000;
                    let key = format!("k{index:06}").into_bytes();
                    match rng.next() % 10 {
                        0..=5 => {
                            let value = vec![(rng.next() % 256) as u8; (rng.next() % 300) as usize];
                            batch.put(key.clone(), value.clone());
                            model.insert(key, value);
                        }
                        6..=8 => {
                            batch.delete(key.clone());
                            model.remove(&key);
                        }
                        _ => {
                            let end = format!("k{:06}", index + rng.next() % 20).into_bytes();
                            if let Ok(range) = KeyRange::new(Some(key.clone()), Some(end)) {
                                let doomed: Vec<_> = model
                                    .range(key.clone()..)
                                    .map(|(k, _)| k.clone())
                                    .filter(|k| range.contains(k))
                                    .collect();
                                for k in doomed {
                                    model.remove(&k);
                                }
                                batch.delete_range(range);
                            }
                        }
                    }
                }
                // The model and the store change under one lock: the model's order is the
                // store's order.
                let building = store.rewrite_in_progress();
                store.write(batch, WriteOptions::BUFFERED).unwrap();
                drop(model);
                writes += 1;
                during += u64::from(building);
            }
            during
        })
    };
    let mut replayed = 0;
    for round in 0..5 {
        store
            .compact_range_paced(&KeyRange::full(), &TinySteps::new(2_000, u32::MAX))
            .unwrap();
        let stats = store.last_rewrite().unwrap();
        assert_eq!(stats.generation, 2 + round);
        // The writer deletes as it goes; what matters is below: exactly what was written.
        assert!(stats.entries_copied > 0, "{stats:?}");
        replayed += stats.batches_replayed;
        let model = model.lock();
        assert_eq!(contents(store.as_ref()), *model, "after rewrite {round}");
    }
    stop.store(true, Ordering::SeqCst);
    let during = writer.join().unwrap();
    // A write-once rewrite replays nothing: the writes it saw went to the new generation.
    let landed = if write_once {
        assert_eq!(replayed, 0);
        during
    } else {
        replayed
    };
    assert!(
        landed > 100,
        "only {landed} writes landed during the rewrites"
    );
    assert_eq!(contents(store.as_ref()), *model.lock());
    let stats = store.last_rewrite().unwrap();
    eprintln!("last rewrite: {stats:?}");
    // Only the live generation is left on disk.
    let generations: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter(|n| n.starts_with("gen-"))
        .collect();
    assert_eq!(generations, vec![format!("gen-{:06}", store.generation())]);
}

#[test]
fn a_stop_between_steps_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), RewriteSettings::default());
    let model = fill(store.as_ref(), 3_000);
    let err = store
        .compact_range_paced(&KeyRange::full(), &TinySteps::new(4_096, 3))
        .unwrap_err();
    assert!(matches!(err, StorageError::Interrupted { .. }), "{err}");
    assert_eq!(store.generation(), 1);
    assert_eq!(contents(store.as_ref()), model);
    assert!(!dir.path().join("gen-000002").exists());
    // Writes after the abandoned rewrite are not captured any more, and work.
    let mut batch = WriteBatch::new();
    batch.put(b"after".to_vec(), b"x".to_vec());
    store.write(batch, WriteOptions::DURABLE).unwrap();
    store.compact_range(&KeyRange::full()).unwrap();
    assert_eq!(store.generation(), 2);
    assert_eq!(store.get(b"after").unwrap().as_deref(), Some(&b"x"[..]));
}

/// What the store should hold.
type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn key(i: u64) -> Vec<u8> {
    format!("k{i:06}").into_bytes()
}

/// Writes one random put, delete or range delete to `store` and `model`.
fn write_random(
    store: &dyn KvWrite,
    model: &mut BTreeMap<Vec<u8>, Vec<u8>>,
    rng: &mut Lcg,
) -> Result<(), StorageError> {
    let mut batch = WriteBatch::new();
    let i = rng.next() % 3_200;
    match rng.next() % 6 {
        0..=2 => {
            let value = vec![(rng.next() % 256) as u8; 1 + (rng.next() % 50) as usize];
            batch.put(key(i), value.clone());
            model.insert(key(i), value);
        }
        3 | 4 => {
            batch.delete(key(i));
            model.remove(&key(i));
        }
        _ => {
            let range = KeyRange::between(key(i), key(i + rng.next() % 200)).unwrap();
            model.retain(|k, _| !range.contains(k));
            batch.delete_range(range);
        }
    }
    store.write(batch, WriteOptions::BUFFERED)
}

/// Steps of 4 KiB, each after a few random writes; interrupts after `allow` steps.
struct WritingSteps<'a> {
    store: &'a dyn KvWrite,
    model: parking_lot::Mutex<(Model, Lcg)>,
    allow: u32,
    taken: AtomicU32,
}

impl CompactionPacer for WritingSteps<'_> {
    fn step_bytes(&self) -> u64 {
        4_096
    }

    fn before_step(&self) -> Result<(), StorageError> {
        if self.taken.fetch_add(1, Ordering::SeqCst) >= self.allow {
            return Err(StorageError::Interrupted { operation: "test" });
        }
        let mut guard = self.model.lock();
        let (model, rng) = &mut *guard;
        for _ in 0..20 {
            write_random(self.store, model, rng)?;
        }
        Ok(())
    }
}

/// Fills `store`, then runs a rewrite that random writes (from `seed`) interleave and that is
/// interrupted after `allow` steps; returns what the store should hold and the generator.
fn interrupt_with_writes(
    store: &GenerationalStore<SidedGenerations>,
    seed: u64,
    allow: u32,
) -> (Model, Lcg) {
    let model = fill(store, 3_000);
    let steps = WritingSteps {
        store,
        model: parking_lot::Mutex::new((model, Lcg(seed))),
        allow,
        taken: AtomicU32::new(0),
    };
    let err = store
        .compact_range_paced(&KeyRange::full(), &steps)
        .unwrap_err();
    assert!(matches!(err, StorageError::Interrupted { .. }), "{err}");
    steps.model.into_inner()
}

/// A write-once rewrite stopped between steps, with the writes made meanwhile beyond what it
/// moves back, leaves both generations: reads and scans (in either order, any limit) see
/// exactly what was written, writes go on, and the next compaction finishes it.
#[test]
fn an_interrupted_write_once_rewrite_serves_everything_and_finishes_later() {
    let dir = tempfile::tempdir().unwrap();
    let settings = RewriteSettings {
        fold_back_limit_bytes: 0,
        ..RewriteSettings::default()
    };
    let store = open_engine(dir.path(), SidedGenerations, settings);
    let (mut model, mut rng) = interrupt_with_writes(&store, 11, 3);
    assert!(store.rewrite_in_progress());
    assert_eq!(store.generation(), 1);
    assert!(dir.path().join("gen-000002").exists());
    assert!(dir.path().join("BUILDING").exists());
    for _ in 0..300 {
        write_random(store.as_ref(), &mut model, &mut rng).unwrap();
    }
    for i in 0..3_200 {
        assert_eq!(
            store.get(&key(i)).unwrap(),
            model.get(&key(i)).cloned(),
            "key {i}"
        );
    }
    for _ in 0..200 {
        let (a, b) = (rng.next() % 3_300, rng.next() % 3_300);
        let range = KeyRange::between(key(a.min(b)), key(a.max(b))).unwrap();
        let limit = 1 + (rng.next() % 40) as usize;
        let expected: Vec<_> = model
            .iter()
            .filter(|(k, _)| range.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let ascending = store.scan(&range, ScanOrder::Ascending, limit).unwrap();
        assert_eq!(
            ascending,
            expected.iter().take(limit).cloned().collect::<Vec<_>>(),
            "{range} asc {limit}"
        );
        let descending = store.scan(&range, ScanOrder::Descending, limit).unwrap();
        assert_eq!(
            descending,
            expected
                .iter()
                .rev()
                .take(limit)
                .cloned()
                .collect::<Vec<_>>(),
            "{range} desc {limit}"
        );
    }
    assert_eq!(contents(store.as_ref()), model);
    store.compact_range(&KeyRange::full()).unwrap();
    assert!(!store.rewrite_in_progress());
    assert_eq!(store.generation(), 2);
    assert!(!dir.path().join("BUILDING").exists());
    assert!(!dir.path().join("gen-000001").exists());
    assert_eq!(contents(store.as_ref()), model);
    let stats = store.last_rewrite().unwrap();
    assert!(stats.entries_skipped > 0, "{stats:?}");
    assert_eq!(stats.batches_replayed, 0);
    // The tombstones went with the switch.
    assert!(store.with_live(|live| live.side.lock().is_empty()));
}

/// A write-once rewrite stopped between steps moves the writes made meanwhile back into the
/// old generation and removes the new one: the store is as if it had not begun.
#[test]
fn a_stopped_write_once_rewrite_moves_its_writes_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_engine(dir.path(), SidedGenerations, RewriteSettings::default());
    let (mut model, mut rng) = interrupt_with_writes(&store, 5, 4);
    assert!(!store.rewrite_in_progress());
    assert_eq!(store.generation(), 1);
    assert!(!dir.path().join("gen-000002").exists());
    assert!(!dir.path().join("BUILDING").exists());
    assert_eq!(contents(store.as_ref()), model);
    // Writes go to the old generation again; the next rewrite starts afresh.
    for _ in 0..100 {
        write_random(store.as_ref(), &mut model, &mut rng).unwrap();
    }
    assert!(store.with_live(|live| live.side.lock().is_empty()));
    store.compact_range(&KeyRange::full()).unwrap();
    assert_eq!(store.generation(), 2);
    assert_eq!(contents(store.as_ref()), model);
}

/// Writes that outgrow the capture bound make the rewrite give up; nothing is lost.
#[test]
fn writes_outrunning_the_capture_bound_make_it_give_up() {
    let dir = tempfile::tempdir().unwrap();
    let settings = RewriteSettings {
        capture_limit_bytes: 4_096,
        ..RewriteSettings::default()
    };
    let store = open(dir.path(), settings);
    let mut model = fill(store.as_ref(), 1_000);
    /// Writes 10 KiB before each step: more than the bound.
    struct Flood<'a>(&'a GenerationalStore<MemoryGenerations>, AtomicU32);
    impl CompactionPacer for Flood<'_> {
        fn step_bytes(&self) -> u64 {
            1_000
        }
        fn before_step(&self) -> Result<(), StorageError> {
            let n = self.1.fetch_add(1, Ordering::SeqCst);
            let mut batch = WriteBatch::new();
            batch.put(format!("flood{n:04}").into_bytes(), vec![1; 10_240]);
            self.0.write(batch, WriteOptions::BUFFERED)
        }
    }
    let flood = Flood(store.as_ref(), AtomicU32::new(0));
    let err = store
        .compact_range_paced(&KeyRange::full(), &flood)
        .unwrap_err();
    assert!(matches!(err, StorageError::Overtaken { .. }), "{err}");
    assert_eq!(store.generation(), 1);
    for n in 0..flood.1.load(Ordering::SeqCst) {
        model.insert(format!("flood{n:04}").into_bytes(), vec![1; 10_240]);
    }
    assert_eq!(contents(store.as_ref()), model);
    assert!(!dir.path().join("gen-000002").exists());
}

#[test]
fn an_open_keeps_only_the_generation_current_names() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path(), RewriteSettings::default()));
    std::fs::create_dir(dir.path().join("gen-000002")).unwrap();
    std::fs::write(dir.path().join("gen-000002/partial"), b"x").unwrap();
    let store = open(dir.path(), RewriteSettings::default());
    assert_eq!(store.generation(), 1);
    assert!(!dir.path().join("gen-000002").exists());
    let caps = store.capabilities();
    assert_eq!(caps.compaction_access, CompactionAccess::Online);
    assert_eq!(caps.compaction_scope, CompactionScope::WholeStore);
    drop(store);
    // A lost pointer is refused, not replaced by an empty store.
    std::fs::remove_file(dir.path().join("CURRENT")).unwrap();
    let err = GenerationalStore::open(dir.path(), MemoryGenerations).unwrap_err();
    assert!(matches!(err, StorageError::Missing { .. }), "{err}");
}

/// Shutdown reaches into a running rewrite: a compactor paced with a long pause between copy
/// steps stops at once, the rewrite is counted as stopped (not failed), and the store is as it
/// was: same generation, no copy left behind.
#[test]
fn shutdown_interrupts_a_paced_rewrite_and_changes_nothing() {
    use reclaim_core::{CompactionTask, Compactor, Pacing, SingleFlight};
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), RewriteSettings::default());
    let model = fill(store.as_ref(), 3_000);
    let pacing = Pacing::unpaced()
        .with_slice_bytes(16 << 10)
        .with_pause(Duration::from_secs(60));
    let compactor = Compactor::with_pacing(SingleFlight::new(), pacing).unwrap();
    let task = CompactionTask::new("rewrite")
        .with_target("store", Arc::clone(&store) as Arc<dyn Compactable>);
    assert!(compactor.try_enqueue(task).is_enqueued());
    // The first copy step has run once the new generation's directory exists.
    let copy = dir.path().join("gen-000002");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !copy.exists() {
        assert!(Instant::now() < deadline, "the rewrite never started");
        std::thread::sleep(Duration::from_millis(1));
    }
    let started = Instant::now();
    compactor.shutdown(Duration::from_secs(30)).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown waited {:?}",
        started.elapsed()
    );
    let stats = compactor.stats();
    assert_eq!(stats.failed, 0, "{stats:?}");
    assert_eq!(store.generation(), 1);
    assert!(!copy.exists(), "the abandoned copy is removed");
    assert_eq!(contents(store.as_ref()), model);
}

/// Records the bytes each copy step reports.
struct RecordingSteps {
    step: u64,
    reported: parking_lot::Mutex<Vec<u64>>,
}

impl CompactionPacer for RecordingSteps {
    fn step_bytes(&self) -> u64 {
        self.step
    }

    fn before_step(&self) -> Result<(), StorageError> {
        Ok(())
    }

    fn step_done(&self, bytes: u64) {
        self.reported.lock().push(bytes);
    }
}

/// A copy step is about the pacer's step size whatever the values' size, and reports what it
/// did: with 64 KiB values (a block part) a step is a few entries, not a full scan page of them
/// (it was 256 entries, 16 MiB, which the pacer's I/O cap counted as one step of its size).
#[test]
fn a_copy_step_is_about_the_step_size_whatever_the_value_size() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), RewriteSettings::default());
    // Small values, then large ones, then small ones again: the scans follow the change.
    fill(store.as_ref(), 3_000);
    let mut batch = WriteBatch::new();
    for i in 0..256u32 {
        batch.put(format!("part{i:04}").into_bytes(), vec![i as u8; 64 << 10]);
        batch.put(format!("zeta{i:04}").into_bytes(), vec![i as u8; 10]);
    }
    store.write(batch, WriteOptions::DURABLE).unwrap();
    let model = contents(store.as_ref());
    let total: u64 = model.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
    let step = 256 << 10;
    let pacer = RecordingSteps {
        step,
        reported: parking_lot::Mutex::new(Vec::new()),
    };
    store
        .compact_range_paced(&KeyRange::full(), &pacer)
        .unwrap();
    assert_eq!(store.generation(), 2);
    assert_eq!(contents(store.as_ref()), model);
    let reported = pacer.reported.lock().clone();
    assert_eq!(
        reported.iter().sum::<u64>(),
        total,
        "every copied byte reported"
    );
    // A scan sized by small entries may meet large ones once (where small values give way to
    // large ones): that step holds at most a scan of them; every other step stays within one
    // value of the step size.
    let value = (64 << 10) + 8;
    let scan = RewriteSettings::default().scan_entries as u64;
    let over: Vec<u64> = reported
        .iter()
        .copied()
        .filter(|&bytes| bytes > step + value)
        .collect();
    assert!(
        over.len() <= 1,
        "steps over the size: {over:?} of {reported:?}"
    );
    assert!(
        over.iter().all(|&bytes| bytes <= step + scan * value),
        "{over:?}"
    );
    assert!(
        reported.len() as u64 >= total / step / 2,
        "{} steps for {total} bytes in steps of {step}",
        reported.len()
    );
}

/// A pacer whose compactor is stopping, though it lets every copy step run (as when the stop
/// comes after the copy).
struct StoppingAfterCopy;

impl CompactionPacer for StoppingAfterCopy {
    fn step_bytes(&self) -> u64 {
        1 << 20
    }

    fn before_step(&self) -> Result<(), StorageError> {
        Ok(())
    }

    fn stopping(&self) -> bool {
        true
    }
}

/// The old generation is removed in paced steps, but not when the compactor is stopping: a
/// shutdown does not wait for the pauses, and the old generation is still removed.
#[test]
fn a_stopping_compactor_removes_the_old_generation_without_its_pauses() {
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let pause = Duration::from_secs(60);
    let settings = RewriteSettings {
        retire_step_bytes: 1,
        retire_step_pause: pause,
        ..RewriteSettings::default()
    };
    let store = open(dir.path(), settings);
    let model = fill(store.as_ref(), 500);
    let started = Instant::now();
    store
        .compact_range_paced(&KeyRange::full(), &StoppingAfterCopy)
        .unwrap();
    // Removing the 9-byte file of generation 1 in 1-byte steps would pause 8 times.
    assert!(started.elapsed() < pause, "{:?}", started.elapsed());
    assert_eq!(store.generation(), 2);
    assert!(!dir.path().join("gen-000001").exists());
    assert_eq!(contents(store.as_ref()), model);
}

/// Generations in memory that record, at each persist, the bytes the generation holds.
struct PersistRecording {
    held_at_persist: HeldAtPersist,
}

impl GenerationEngine for PersistRecording {
    type Store = MemoryStore;

    fn name(&self) -> &'static str {
        "memory"
    }

    fn open(&self, dir: &Path, create: bool) -> Result<MemoryStore, StorageError> {
        MemoryGenerations.open(dir, create)
    }

    fn persist(&self, store: &MemoryStore) -> Result<(), StorageError> {
        let held = store.size_on_disk()?;
        self.held_at_persist.lock().push(held);
        Ok(())
    }

    fn capabilities(&self) -> Capabilities {
        MemoryGenerations.capabilities()
    }
}

/// What each persist recorded, shared with the test.
type HeldAtPersist = Arc<parking_lot::Mutex<Vec<u64>>>;

/// A generational store over [`PersistRecording`], and what its persists record.
fn open_recording(
    dir: &Path,
    settings: RewriteSettings,
) -> (Arc<GenerationalStore<PersistRecording>>, HeldAtPersist) {
    let held_at_persist = HeldAtPersist::default();
    let engine = PersistRecording {
        held_at_persist: Arc::clone(&held_at_persist),
    };
    let store = GenerationalStore::open_with(dir, engine, settings).unwrap();
    (Arc::new(store), held_at_persist)
}

/// The most bytes one persist made durable, from what the generation held at each.
fn largest_flush(held: &[u64]) -> u64 {
    held.windows(2)
        .map(|pair| pair[1].saturating_sub(pair[0]))
        .chain(held.first().copied())
        .max()
        .unwrap_or(0)
}

/// Rewrites `store` unpaced, checks that it holds what it held, and returns what the
/// generation held at each persist of the rewrite.
fn rewrite_recording_persists(
    store: &GenerationalStore<PersistRecording>,
    held_at_persist: &HeldAtPersist,
) -> Vec<u64> {
    let model = contents(store);
    held_at_persist.lock().clear();
    store.compact_range(&KeyRange::full()).unwrap();
    assert_eq!(store.generation(), 2);
    assert_eq!(contents(store), model);
    held_at_persist.lock().clone()
}

/// An unpaced copy step (8 MiB) is written and made durable in chunks of
/// `persist_every_bytes`: a node's commit that meets one of its flushes waits for a chunk,
/// not for a whole step.
#[test]
fn an_unpaced_copy_is_made_durable_a_chunk_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let chunk = 1u64 << 20;
    let (store, held_at_persist) = open_recording(
        dir.path(),
        RewriteSettings {
            persist_every_bytes: chunk,
            ..RewriteSettings::default()
        },
    );
    let mut batch = WriteBatch::new();
    for i in 0..256u32 {
        batch.put(format!("part{i:04}").into_bytes(), vec![i as u8; 64 << 10]);
    }
    store.write(batch, WriteOptions::DURABLE).unwrap();
    let held = rewrite_recording_persists(&store, &held_at_persist);
    let value = (64 << 10) + 8;
    let largest_flush = largest_flush(&held);
    assert!(
        largest_flush <= chunk + value,
        "{largest_flush} bytes made durable by one persist: {held:?}"
    );
    assert!(held.len() >= 16, "{} persists for 16 MiB", held.len());
}

/// Where small entries give way to large ones, the scan sized by the small ones reads many
/// large ones at once: the copy still writes them a chunk at a time (it used to write the
/// whole page, up to `scan_entries` large values, as one chunk that the node's writes waited
/// for).
#[test]
fn a_page_of_large_entries_after_small_ones_is_copied_a_chunk_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let chunk = 256u64 << 10;
    let (store, held_at_persist) = open_recording(
        dir.path(),
        RewriteSettings {
            persist_every_bytes: chunk,
            min_chunk_bytes: 32 << 10,
            ..RewriteSettings::default()
        },
    );
    let value = 64u64 << 10;
    let mut batch = WriteBatch::new();
    // Per height a small entry, then the large ones: every small one makes the next scan ask
    // for a chunk's worth of small entries.
    for height in 0..16u32 {
        batch.put(format!("h{height:04}/a-meta").into_bytes(), vec![1u8; 100]);
        for part in 0..40u32 {
            batch.put(
                format!("h{height:04}/part{part:03}").into_bytes(),
                vec![part as u8; value as usize],
            );
        }
    }
    store.write(batch, WriteOptions::DURABLE).unwrap();
    let held = rewrite_recording_persists(&store, &held_at_persist);
    let largest_flush = largest_flush(&held);
    let entry = value + 16;
    assert!(
        largest_flush <= chunk + entry,
        "{largest_flush} bytes made durable by one persist (chunk {chunk}): {held:?}"
    );
    // 40 MiB in chunks of 256 KiB.
    assert!(held.len() >= 150, "{} persists for 40 MiB", held.len());
}

/// One step for the whole store; after every chunk the node overwrites a large entry the
/// copy may have read already and not yet written.
struct OverwritingBetweenChunks<'a> {
    store: &'a dyn KvWrite,
    model: parking_lot::Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
    calls: AtomicU32,
}

impl CompactionPacer for OverwritingBetweenChunks<'_> {
    fn step_bytes(&self) -> u64 {
        64 << 20
    }

    fn before_step(&self) -> Result<(), StorageError> {
        Ok(())
    }

    fn keep_pace(&self, _done: u64, _step_started: std::time::Instant) -> Result<(), StorageError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        let key = format!("b{:03}", (call * 7 + 20) % 64).into_bytes();
        let value = format!("overwritten at chunk {call}").into_bytes();
        let mut batch = WriteBatch::new();
        batch.put(key.clone(), value.clone());
        self.store.write(batch, WriteOptions::DURABLE)?;
        self.model.lock().insert(key, value);
        Ok(())
    }
}

/// A page the copy splits into chunks (small entries giving way to large ones) while the node
/// overwrites entries of its later chunks: the copy never writes back a value it read before
/// the node's newer one, with the writes captured and replayed and with the write-once
/// rewrite.
#[test]
fn entries_read_ahead_of_their_chunk_never_overwrite_newer_writes() {
    fn check<E: GenerationEngine>(engine: E) {
        let dir = tempfile::tempdir().unwrap();
        let store = open_engine(
            dir.path(),
            engine,
            RewriteSettings {
                persist_every_bytes: 256 << 10,
                ..RewriteSettings::default()
            },
        );
        let mut batch = WriteBatch::new();
        for i in 0..20u32 {
            batch.put(format!("a{i:03}").into_bytes(), vec![1u8; 100]);
        }
        for i in 0..64u32 {
            batch.put(format!("b{i:03}").into_bytes(), vec![i as u8; 64 << 10]);
        }
        store.write(batch, WriteOptions::DURABLE).unwrap();
        let pacer = OverwritingBetweenChunks {
            store: store.as_ref(),
            model: parking_lot::Mutex::new(contents(store.as_ref())),
            calls: AtomicU32::new(0),
        };
        store
            .compact_range_paced(&KeyRange::full(), &pacer)
            .unwrap();
        assert_eq!(store.generation(), 2);
        assert!(pacer.calls.load(Ordering::SeqCst) >= 8, "too few chunks");
        assert_eq!(contents(store.as_ref()), pacer.model.into_inner());
    }
    check(MemoryGenerations);
    check(SidedGenerations);
}

/// Steps of `step` bytes under the I/O cap of `pacing`.
struct CappedSteps {
    step: u64,
    pacing: Pacing,
}

impl CompactionPacer for CappedSteps {
    fn step_bytes(&self) -> u64 {
        self.step
    }

    fn before_step(&self) -> Result<(), StorageError> {
        Ok(())
    }

    fn keep_pace(&self, done: u64, step_started: std::time::Instant) -> Result<(), StorageError> {
        std::thread::sleep(self.pacing.io_hold(done, step_started.elapsed()));
        Ok(())
    }
}

/// Under an I/O cap the copy keeps the pace inside a step (one step here is the whole store),
/// and the writes a node makes meanwhile are replayed and made durable after each chunk: the
/// capture queue holds a chunk's time of them, and no flush holds much more than a chunk and
/// those. (A step used to run at full speed and then wait, and its replay came after the whole
/// step: at a low cap, seconds of the node's writes queued in memory and then written at once.)
#[test]
fn a_capped_copy_keeps_its_pace_and_replays_a_chunk_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let chunk = 1u64 << 20;
    // The writer adds about 8 MiB during the copy: queued for a whole step, they would overflow
    // this bound and the rewrite would give up.
    let (store, held_at_persist) = open_recording(
        dir.path(),
        RewriteSettings {
            persist_every_bytes: chunk,
            capture_limit_bytes: 4 << 20,
            ..RewriteSettings::default()
        },
    );
    let value = 64u64 << 10;
    let mut batch = WriteBatch::new();
    for i in 0..256u32 {
        batch.put(
            format!("part{i:04}").into_bytes(),
            vec![i as u8; value as usize],
        );
    }
    store.write(batch, WriteOptions::DURABLE).unwrap();
    let mut model = contents(store.as_ref());
    held_at_persist.lock().clear();
    // 16 MiB at 32 MiB/s: half a second at least, while a writer adds 64 KiB every 4 ms.
    let pacer = CappedSteps {
        step: 64 << 20,
        pacing: Pacing {
            io_bytes_per_sec: Some(32 << 20),
            ..Pacing::unpaced()
        },
    };
    let done = AtomicBool::new(false);
    let started = std::time::Instant::now();
    let written = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let mut written = BTreeMap::new();
            let mut i = 0u32;
            while !done.load(Ordering::SeqCst) {
                let (k, v) = (
                    format!("node{i:06}").into_bytes(),
                    vec![7u8; value as usize],
                );
                let mut batch = WriteBatch::new();
                batch.put(k.clone(), v.clone());
                store.write(batch, WriteOptions::DURABLE).unwrap();
                written.insert(k, v);
                i += 1;
                std::thread::sleep(std::time::Duration::from_millis(4));
            }
            written
        });
        let rewrite = store.compact_range_paced(&KeyRange::full(), &pacer);
        done.store(true, Ordering::SeqCst);
        let written = writer.join().unwrap();
        rewrite.unwrap();
        written
    });
    let took = started.elapsed();
    assert!(
        took >= std::time::Duration::from_millis(450),
        "16 MiB copied in {took:?} under a 32 MiB/s cap"
    );
    assert_eq!(store.generation(), 2);
    model.extend(written.clone());
    assert_eq!(contents(store.as_ref()), model);
    let held = held_at_persist.lock().clone();
    let largest_flush = largest_flush(&held);
    assert!(
        written.len() >= 40,
        "the writer wrote {} values during the copy",
        written.len()
    );
    assert!(held.len() >= 16, "{} persists for 16 MiB", held.len());
    assert!(
        largest_flush <= 3 * chunk,
        "{largest_flush} bytes made durable by one persist ({} values written meanwhile): {held:?}",
        written.len()
    );
}
