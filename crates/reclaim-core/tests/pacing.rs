//! Paced compaction: slices, pauses, the load signal, time windows, shutdown between slices,
//! single flight across slices, and the metrics every slice records.

use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use reclaim_core::StopSignal;
use reclaim_core::compaction::pacing::utc_second_of_day;
use reclaim_core::compaction::run_task;
use reclaim_core::fault::FaultyStore;
use reclaim_core::{
    Busy, CommitLatencyGate, Compactable, CompactionTask, Compactor, EnqueueOutcome, KeyRange,
    KvWrite, MemoryStore, Pacing, SingleFlight, TimeWindow, WriteBatch, WriteOptions, metric,
};

/// A memory store with `keys` entries of 1 KiB, wrapped to record compaction calls.
fn filled_store(keys: u32) -> Arc<FaultyStore> {
    let memory = Arc::new(MemoryStore::new());
    let mut batch = WriteBatch::new();
    for i in 0..keys {
        batch.put(format!("k{i:08}").into_bytes(), vec![7u8; 1024]);
    }
    memory.write(batch, WriteOptions::DURABLE).unwrap();
    Arc::new(FaultyStore::new(memory))
}

fn task(store: &Arc<FaultyStore>) -> CompactionTask {
    CompactionTask::new("paced").with_target("store", Arc::clone(store) as Arc<dyn Compactable>)
}

fn paced(slice_bytes: u64, pause_ms: u64) -> Pacing {
    Pacing::unpaced()
        .with_slice_bytes(slice_bytes)
        .with_pause(Duration::from_millis(pause_ms))
}

/// The compacted slices are in order, disjoint, and cover exactly the full range.
fn assert_tiles_full_range(slices: &[KeyRange]) {
    assert!(!slices.is_empty());
    assert_eq!(slices[0].start(), None, "first slice starts unbounded");
    assert_eq!(
        slices[slices.len() - 1].end(),
        None,
        "last slice ends unbounded"
    );
    for pair in slices.windows(2) {
        assert_eq!(pair[0].end(), pair[1].start(), "slices must abut: {pair:?}");
        assert!(pair[1].start().is_some());
    }
}

#[test]
fn a_large_range_runs_as_slices_that_tile_it() {
    let store = filled_store(1000);
    let compactor = Compactor::with_pacing(SingleFlight::new(), paced(64 << 10, 1)).unwrap();
    assert!(compactor.try_enqueue(task(&store)).is_enqueued());
    assert!(compactor.wait_idle(Duration::from_secs(30)));
    let slices = store.compacted_ranges();
    // 1000 entries of ~1 KiB in slices of 64 KiB: about 16 slices.
    assert!((14..=17).contains(&slices.len()), "{} slices", slices.len());
    assert_tiles_full_range(&slices);
    let stats = compactor.stats();
    assert_eq!(stats.slices, slices.len() as u64);
    assert_eq!(stats.succeeded, 1);
    assert_eq!(store.max_concurrent_compactions(), 1);
}

#[test]
fn the_gate_stays_held_from_the_first_slice_to_the_last() {
    let store = filled_store(200);
    let compactor = Compactor::with_pacing(SingleFlight::new(), paced(16 << 10, 30)).unwrap();
    assert!(compactor.try_enqueue(task(&store)).is_enqueued());
    let mut refused_mid_task = 0;
    while store.compactions_started() == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    // Between slices (the worker is pausing), a second task is refused as in flight.
    while !compactor.single_flight().is_idle() {
        match compactor.try_enqueue(task(&store)) {
            EnqueueOutcome::Busy(Busy::InFlight) => refused_mid_task += 1,
            EnqueueOutcome::Enqueued => panic!("a second task got in between slices"),
            other => panic!("unexpected {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(refused_mid_task > 5, "only {refused_mid_task} refusals");
    assert_eq!(compactor.stats().enqueued, 1);
    assert_eq!(store.max_concurrent_compactions(), 1);
}

#[test]
fn a_busy_node_holds_slices_back_until_it_is_idle() {
    let store = filled_store(100);
    let load = Arc::new(CommitLatencyGate::new(Duration::from_millis(50)));
    load.set_busy(true);
    let pacing = paced(16 << 10, 0).with_load_signal(Arc::clone(&load) as _);
    let compactor = Compactor::with_pacing(SingleFlight::new(), pacing).unwrap();
    assert!(compactor.try_enqueue(task(&store)).is_enqueued());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        store.compactions_started(),
        0,
        "no slice may run while busy"
    );
    assert!(
        !compactor.single_flight().is_idle(),
        "the waiting task holds the gate"
    );
    load.set_busy(false);
    assert!(compactor.wait_idle(Duration::from_secs(30)));
    let stats = compactor.stats();
    assert!(stats.slices >= 5, "{} slices", stats.slices);
    assert!(
        stats.waited >= Duration::from_millis(300),
        "{:?}",
        stats.waited
    );
    assert_eq!(stats.forced_slices, 0);
    assert_tiles_full_range(&store.compacted_ranges());
}

#[test]
fn an_always_busy_node_still_compacts_after_the_maximum_deferral() {
    let store = filled_store(50);
    let load = Arc::new(CommitLatencyGate::new(Duration::from_millis(1)));
    load.set_busy(true);
    let pacing = paced(16 << 10, 0)
        .with_load_signal(load as _)
        .with_max_deferral(Duration::from_millis(40));
    let compactor = Compactor::with_pacing(SingleFlight::new(), pacing).unwrap();
    assert!(compactor.try_enqueue(task(&store)).is_enqueued());
    assert!(compactor.wait_idle(Duration::from_secs(30)));
    let stats = compactor.stats();
    assert_eq!(stats.succeeded, 1);
    assert!(stats.slices >= 3);
    assert_eq!(
        stats.forced_slices, stats.slices,
        "every slice ran by deferral"
    );
}

#[test]
fn outside_every_window_nothing_runs_and_shutdown_is_prompt() {
    let store = filled_store(50);
    let now = utc_second_of_day();
    // A one-hour window starting in two hours never contains now.
    let start = (now + 2 * 3600) % 86_400;
    let window = TimeWindow::new(start, (start + 3600) % 86_400).unwrap();
    let compactor = Compactor::with_pacing(
        SingleFlight::new(),
        paced(16 << 10, 0).with_windows(vec![window]),
    )
    .unwrap();
    assert!(compactor.try_enqueue(task(&store)).is_enqueued());
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(store.compactions_started(), 0);
    let started = Instant::now();
    compactor.shutdown(Duration::from_secs(10)).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(store.compactions_started(), 0);
    assert!(compactor.single_flight().is_idle());
}

#[test]
fn inside_a_window_slices_run() {
    let store = filled_store(50);
    let now = utc_second_of_day();
    let window = TimeWindow::new(now.saturating_sub(3600), (now + 3600).min(86_400)).unwrap();
    let compactor = Compactor::with_pacing(
        SingleFlight::new(),
        paced(16 << 10, 0).with_windows(vec![window]),
    )
    .unwrap();
    assert!(compactor.try_enqueue(task(&store)).is_enqueued());
    assert!(compactor.wait_idle(Duration::from_secs(30)));
    assert_eq!(compactor.stats().succeeded, 1);
    assert_tiles_full_range(&store.compacted_ranges());
}

#[test]
fn shutdown_stops_between_slices_without_waiting_out_the_pause() {
    let store = filled_store(200);
    let compactor = Compactor::with_pacing(SingleFlight::new(), paced(16 << 10, 60_000)).unwrap();
    assert!(compactor.try_enqueue(task(&store)).is_enqueued());
    while store.compactions_started() == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let started = Instant::now();
    compactor.shutdown(Duration::from_secs(30)).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        store.compactions_started(),
        1,
        "one slice ran, the rest were skipped"
    );
    assert!(compactor.single_flight().is_idle());
}

#[test]
fn engines_that_cannot_size_ranges_compact_each_range_whole() {
    // `FaultyStore` over a store with the default `compaction_slices` (one slice per range).
    struct Opaque(MemoryStore);
    impl Compactable for Opaque {
        fn compact_range(&self, range: &KeyRange) -> Result<(), reclaim_core::StorageError> {
            self.0.compact_range(range)
        }
        fn size_on_disk(&self) -> Result<u64, reclaim_core::StorageError> {
            self.0.size_on_disk()
        }
        fn capabilities(&self) -> reclaim_core::Capabilities {
            self.0.capabilities()
        }
    }
    let opaque = Arc::new(Opaque(MemoryStore::new()));
    let task = CompactionTask::new("opaque").with_target_ranges(
        "store",
        opaque as Arc<dyn Compactable>,
        vec![KeyRange::prefix(b"a"), KeyRange::prefix(b"b")],
    );
    let report = run_task(&task, &paced(1, 0), &StopSignal::never());
    assert_eq!(report.slices, 2);
    assert!(report.succeeded());
}

#[test]
fn every_slice_and_task_is_recorded_in_metrics() {
    let store = filled_store(300);
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let report = metrics::with_local_recorder(&recorder, || {
        run_task(&task(&store), &paced(32 << 10, 0), &StopSignal::never())
    });
    assert!(report.succeeded());
    assert!(report.slices >= 9, "{} slices", report.slices);
    let snapshot = snapshotter.snapshot().into_vec();
    let find = |name: &str| {
        snapshot
            .iter()
            .filter(|(key, ..)| key.key().name() == name)
            .map(|(key, _, _, value)| (key.key().labels().cloned().collect::<Vec<_>>(), value))
            .collect::<Vec<_>>()
    };
    let slices = find(metric::COMPACTION_SLICE_SECONDS);
    assert_eq!(slices.len(), 1);
    match slices[0].1 {
        DebugValue::Histogram(values) => assert_eq!(values.len(), report.slices),
        other => panic!("slice metric is {other:?}"),
    }
    let tasks = find(metric::COMPACTIONS_TOTAL);
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].0[0].value(), "succeeded");
    assert!(matches!(tasks[0].1, DebugValue::Counter(1)));
}

/// The I/O cap spreads slices so that their bytes fit it: 1000 entries of ~1 KiB in 64 KiB
/// slices at 1 MiB/s take at least (slices - 1) x 62.5 ms, however fast the engine is. (A lower
/// bound only: a slow machine makes it longer, never shorter.)
#[test]
fn an_io_cap_spreads_slices_to_its_rate() {
    let store = filled_store(1000);
    let pacing = Pacing::unpaced()
        .with_slice_bytes(64 << 10)
        .with_io_limit(1 << 20);
    let started = Instant::now();
    let report = run_task(&task(&store), &pacing, &StopSignal::never());
    let took = started.elapsed();
    assert!(report.succeeded());
    let slices = store.compacted_ranges().len() as u32;
    assert!(slices > 10, "{slices} slices");
    let floor = Duration::from_secs_f64(f64::from(slices - 1) * (64.0 * 1024.0) / (1 << 20) as f64);
    assert!(
        took >= floor,
        "{slices} slices took {took:?}, under the cap's {floor:?}"
    );
    // Without a slice size, a cap alone slices at the default size.
    let only_cap = Pacing::unpaced().with_io_limit(1 << 30);
    assert_eq!(
        only_cap.effective_slice_bytes(),
        reclaim_core::compaction::pacing::DEFAULT_SLICE_BYTES
    );
    assert!(!only_cap.is_unpaced());
    assert_eq!(
        Pacing::unpaced().io_hold(1 << 20, Duration::ZERO),
        Duration::ZERO
    );
    assert_eq!(
        only_cap.io_hold(1 << 30, Duration::from_millis(400)),
        Duration::from_millis(600)
    );
}

/// An engine that reports what each compaction call moved ([`CompactionPacer::step_done`]):
/// ten calls over a store's ten ranges, each reporting `bytes_per_call`.
struct ReportingStore {
    bytes_per_call: u64,
}

impl Compactable for ReportingStore {
    fn compact_range(&self, _range: &KeyRange) -> Result<(), reclaim_core::StorageError> {
        Ok(())
    }

    fn compact_range_paced(
        &self,
        _range: &KeyRange,
        pacer: &dyn reclaim_core::CompactionPacer,
    ) -> Result<(), reclaim_core::StorageError> {
        pacer.step_done(self.bytes_per_call);
        Ok(())
    }

    fn compaction_plan(
        &self,
        _ranges: &[KeyRange],
        _target_bytes: u64,
    ) -> Result<Vec<KeyRange>, reclaim_core::StorageError> {
        Ok(KeyRange::full().split_at((1..10u8).map(|i| vec![i])))
    }

    fn size_on_disk(&self) -> Result<u64, reclaim_core::StorageError> {
        Ok(0)
    }

    fn capabilities(&self) -> reclaim_core::Capabilities {
        MemoryStore::new().capabilities()
    }
}

/// The I/O cap holds each slice for the bytes the engine reported it moved, not for the
/// nominal slice size: ten calls of 1 KiB under a 1 MiB/s cap with 1 MiB slices are not held
/// for ten mebibytes (9 s), while ten calls reporting 128 KiB each are held for about 1.1 s.
#[test]
fn an_io_cap_holds_slices_for_the_bytes_the_engine_reported() {
    let pacing = Pacing::unpaced()
        .with_slice_bytes(1 << 20)
        .with_io_limit(1 << 20);
    let run = |bytes_per_call: u64| {
        let store: Arc<dyn Compactable> = Arc::new(ReportingStore { bytes_per_call });
        let task = CompactionTask::new("reported").with_target("store", store);
        let started = Instant::now();
        let report = run_task(&task, &pacing, &StopSignal::never());
        assert!(report.succeeded());
        assert_eq!(report.slices, 10);
        started.elapsed()
    };
    let small = run(1 << 10);
    assert!(
        small < Duration::from_secs(4),
        "ten 1 KiB calls took {small:?}: held for the nominal slice size"
    );
    let larger = run(128 << 10);
    let floor = Duration::from_secs_f64(9.0 * 128.0 / 1024.0);
    assert!(
        larger >= floor,
        "ten 128 KiB calls took {larger:?}, under the cap's {floor:?}"
    );
}
