//! Storage and compaction cases. Most compare the adapter with [`MemoryStore`], the reference,
//! after every step: any difference fails the case with both values.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use reclaim_core::dir::MARKER_FILE;
use reclaim_core::kv::KeyValue;
use reclaim_core::{
    KeyRange, KvRead, KvReadExt, KvStore, KvWrite, MemoryStore, ScanOrder, StorageError,
    WriteBatch, WriteOptions,
};

use crate::Harness;
use crate::data::random_bytes;

/// Every entry of `store`, in key order.
pub fn dump(store: &dyn KvStore) -> Vec<KeyValue> {
    store
        .iter(KeyRange::full(), ScanOrder::Ascending)
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("full scan failed: {e}"))
}

/// Every entry but the pending-compaction hint (`PENDING_COMPACTION_KEY`), which legitimately
/// differs between a resumed prune and an uninterrupted one (it counts what each run pruned):
/// what crash and kill tests compare.
pub fn dump_chain_data(store: &dyn KvStore) -> Vec<KeyValue> {
    dump(store)
        .into_iter()
        .filter(|(k, _)| k.as_slice() != reclaim_cometbft::keys::PENDING_COMPACTION.key)
        .collect()
}

fn write(store: &dyn KvStore, batch: WriteBatch) {
    store
        .write(batch, WriteOptions::BUFFERED)
        .unwrap_or_else(|e| panic!("write failed: {e}"));
}

fn apply_both(store: &dyn KvStore, model: &MemoryStore, batch: WriteBatch, step: &str) {
    write(store, batch.clone());
    write(model, batch);
    assert_eq!(
        dump(store),
        model.snapshot(),
        "adapter differs from the reference after {step}"
    );
}

fn range(start: &[u8], end: &[u8]) -> KeyRange {
    KeyRange::between(start.to_vec(), end.to_vec()).expect("ordered test range")
}

fn key(i: u32) -> Vec<u8> {
    format!("key-{i:06}").into_bytes()
}

/// Point reads and writes, including an empty key, an empty value and a 1 MiB value.
pub fn get_put_delete(h: &Harness) {
    let store = h.open();
    assert_eq!(store.get(b"missing").expect("get"), None);
    let big = random_bytes(1, 1 << 20);
    let mut batch = WriteBatch::new();
    batch
        .put(b"k".to_vec(), b"v1".to_vec())
        .put(Vec::new(), b"empty key".to_vec())
        .put(b"empty value".to_vec(), Vec::new())
        .put(b"big".to_vec(), big.clone());
    write(store.as_ref(), batch);
    assert_eq!(store.get(b"k").expect("get"), Some(b"v1".to_vec()));
    assert_eq!(store.get(b"").expect("get"), Some(b"empty key".to_vec()));
    assert_eq!(store.get(b"empty value").expect("get"), Some(Vec::new()));
    assert_eq!(store.get(b"big").expect("get"), Some(big));
    let mut batch = WriteBatch::new();
    batch
        .put(b"k".to_vec(), b"v2".to_vec())
        .delete(b"never-there".to_vec());
    write(store.as_ref(), batch);
    assert_eq!(store.get(b"k").expect("get"), Some(b"v2".to_vec()));
    let mut batch = WriteBatch::new();
    batch.delete(b"k".to_vec());
    write(store.as_ref(), batch);
    assert_eq!(store.get(b"k").expect("get"), None);
    write(store.as_ref(), WriteBatch::new());
}

/// Operations of one batch apply in order: later ones win on the same key.
pub fn batch_applies_in_order(h: &Harness) {
    let store = h.open();
    let model = MemoryStore::new();
    let mut batch = WriteBatch::new();
    batch
        .put(b"a".to_vec(), b"1".to_vec())
        .delete(b"a".to_vec())
        .put(b"a".to_vec(), b"2".to_vec())
        .put(b"b1".to_vec(), b"x".to_vec())
        .put(b"b2".to_vec(), b"x".to_vec())
        .put(b"c".to_vec(), b"just past the range".to_vec())
        .delete_range(range(b"b", b"c"))
        .put(b"b3".to_vec(), b"kept".to_vec())
        .put(b"z".to_vec(), b"z".to_vec())
        .delete_range(KeyRange::from(b"y".to_vec()));
    apply_both(store.as_ref(), &model, batch, "a mixed batch");
    assert_eq!(store.get(b"a").expect("get"), Some(b"2".to_vec()));
    assert_eq!(store.get(b"b3").expect("get"), Some(b"kept".to_vec()));
    assert_eq!(store.get(b"z").expect("get"), None);
    assert_eq!(
        store.get(b"c").expect("get"),
        Some(b"just past the range".to_vec())
    );
}

/// A reader never sees half of a batch.
pub fn batch_is_atomic_to_readers(h: &Harness) {
    let store = h.open();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let writer = Arc::clone(&store);
        let done = &done;
        s.spawn(move || {
            for i in 0u32..300 {
                let value = i.to_be_bytes().to_vec();
                let mut batch = WriteBatch::new();
                batch
                    .put(b"pair/a".to_vec(), value.clone())
                    .put(b"pair/b".to_vec(), value.clone())
                    .delete_range(range(b"pair/c", b"pair/d"))
                    .put(b"pair/c1".to_vec(), value);
                write(writer.as_ref(), batch);
            }
            done.store(true, Ordering::SeqCst);
        });
        let pair = KeyRange::prefix(b"pair/");
        while !done.load(Ordering::SeqCst) {
            let seen = store.scan(&pair, ScanOrder::Ascending, 10).expect("scan");
            let values: Vec<&Vec<u8>> = seen.iter().map(|(_, v)| v).collect();
            assert!(
                values.is_empty() || (values.len() == 3 && values.iter().all(|v| *v == values[0])),
                "a reader saw a torn batch: {seen:?}"
            );
        }
    });
}

/// Range deletes: empty, adjacent, unbounded on either side, with keys at the very edges.
pub fn delete_range_edges(h: &Harness) {
    let store = h.open();
    let model = MemoryStore::new();
    let keys: [&[u8]; 11] = [
        b"",
        b"a",
        b"a\x00",
        b"ab",
        b"b",
        b"b\x00",
        b"ba",
        b"c",
        b"c\xff",
        b"\xff",
        b"\xff\xff",
    ];
    let mut fill = WriteBatch::new();
    for k in keys {
        fill.put(k.to_vec(), [b"v-", k].concat());
    }
    apply_both(store.as_ref(), &model, fill.clone(), "filling");
    let steps: Vec<(&str, KeyRange)> = vec![
        ("an empty range", range(b"b", b"b")),
        (
            "an empty range at the end of the key space",
            range(b"\xff\xff", b"\xff\xff"),
        ),
        ("[a\\0, ab): adjacent keys", range(b"a\x00", b"ab")),
        ("[b, b\\0): exactly one key", range(b"b", b"b\x00")),
        ("[c, c\\xff): end is exclusive", range(b"c", b"c\xff")),
        ("an unbounded start", KeyRange::until(b"a\x00".to_vec())),
        ("an unbounded end", KeyRange::from(b"\xff".to_vec())),
    ];
    for (name, r) in steps {
        let mut batch = WriteBatch::new();
        batch.delete_range(r);
        apply_both(store.as_ref(), &model, batch, name);
    }
    apply_both(store.as_ref(), &model, fill, "refilling");
    let mut all = WriteBatch::new();
    all.delete_range(KeyRange::full());
    apply_both(store.as_ref(), &model, all, "a full-range delete");
    assert!(dump(store.as_ref()).is_empty());
}

/// Scans respect bounds, order and limits; paged iteration sees every key once.
pub fn ordered_scans_with_bounds_and_limits(h: &Harness) {
    let store = h.open();
    let model = MemoryStore::new();
    let mut batch = WriteBatch::new();
    for i in 0..500 {
        batch.put(key(i * 2), random_bytes(u64::from(i), 40));
    }
    apply_both(store.as_ref(), &model, batch, "filling");
    let ranges = [
        KeyRange::full(),
        range(&key(100), &key(200)),
        range(&key(101), &key(199)),
        KeyRange::from(key(990)),
        KeyRange::until(key(3)),
        range(&key(5000), &key(6000)),
        range(&key(10), &key(10)),
    ];
    for r in &ranges {
        for order in [ScanOrder::Ascending, ScanOrder::Descending] {
            for limit in [0, 1, 7, 1000] {
                assert_eq!(
                    store.scan(r, order, limit).expect("scan"),
                    model.scan(r, order, limit).expect("scan"),
                    "scan {r} {order:?} limit {limit}"
                );
            }
            let paged: Vec<KeyValue> = store
                .iter(r.clone(), order)
                .page_size(13)
                .collect::<Result<_, StorageError>>()
                .expect("iterate");
            assert_eq!(
                paged,
                model.scan(r, order, usize::MAX).expect("scan"),
                "paged {r} {order:?}"
            );
        }
    }
}

/// A synced write is there after the store is closed and opened again.
pub fn synced_write_survives_reopen(h: &Harness) {
    let store = h.open();
    let mut batch = WriteBatch::new();
    batch.put(b"durable".to_vec(), b"yes".to_vec());
    batch.put(b"doomed".to_vec(), b"x".to_vec());
    batch.delete_range(range(b"doomed", b"doomee"));
    store
        .write(batch, WriteOptions::DURABLE)
        .expect("synced write");
    let store = h.reopen(store);
    assert_eq!(store.get(b"durable").expect("get"), Some(b"yes".to_vec()));
    assert_eq!(store.get(b"doomed").expect("get"), None);
}

/// Partial and full compactions change no live byte, in or out of range, also across reopen.
pub fn compaction_preserves_live_data(h: &Harness) {
    let store = h.open();
    let model = MemoryStore::new();
    for chunk in 0..4u32 {
        let mut batch = WriteBatch::new();
        for i in chunk * 500..(chunk + 1) * 500 {
            batch.put(key(i), random_bytes(u64::from(i), 200 + (i as usize % 300)));
        }
        apply_both(store.as_ref(), &model, batch, "filling");
    }
    let mut batch = WriteBatch::new();
    for i in (0..2000).step_by(3) {
        batch.delete(key(i));
    }
    batch.delete_range(range(&key(700), &key(900)));
    apply_both(store.as_ref(), &model, batch, "deleting");
    let ranges = [
        range(&key(500), &key(1500)),
        KeyRange::until(key(300)),
        KeyRange::from(key(1800)),
        KeyRange::full(),
    ];
    for r in &ranges {
        store
            .compact_range(r)
            .unwrap_or_else(|e| panic!("compact {r} failed: {e}"));
        assert_eq!(
            dump(store.as_ref()),
            model.snapshot(),
            "data changed by compacting {r}"
        );
    }
    let store = h.reopen(store);
    assert_eq!(
        dump(store.as_ref()),
        model.snapshot(),
        "data changed by compaction + reopen"
    );
}

/// Compacting an empty store or an empty range succeeds and leaves a working store.
pub fn compaction_of_empty_store_and_range(h: &Harness) {
    let store = h.open();
    store
        .compact_range(&KeyRange::full())
        .expect("compact an empty store");
    store
        .compact_range(&range(b"m", b"m"))
        .expect("compact an empty range");
    let mut batch = WriteBatch::new();
    batch.put(b"after".to_vec(), b"ok".to_vec());
    write(store.as_ref(), batch);
    store
        .compact_range(&range(b"x", b"x"))
        .expect("compact an empty range of a non-empty store");
    assert_eq!(store.get(b"after").expect("get"), Some(b"ok".to_vec()));
}

/// Readers and writers keep working while compactions run; nothing is lost or torn.
pub fn compaction_concurrent_with_reads_and_writes(h: &Harness) {
    let store = h.open();
    let mut batch = WriteBatch::new();
    for i in 0..500 {
        batch.put(key(i), random_bytes(u64::from(i), 500));
    }
    write(store.as_ref(), batch);
    let stop = AtomicBool::new(false);
    let written = std::thread::scope(|s| {
        let writer = {
            let store = Arc::clone(&store);
            let stop = &stop;
            s.spawn(move || {
                let mut i = 0u32;
                while !stop.load(Ordering::SeqCst) || i < 50 {
                    let mut batch = WriteBatch::new();
                    batch.put(
                        format!("new-{i:06}").into_bytes(),
                        random_bytes(u64::from(i) + 7, 300),
                    );
                    store
                        .write(batch, WriteOptions::BUFFERED)
                        .unwrap_or_else(|e| panic!("write during compaction failed: {e}"));
                    i += 1;
                }
                i
            })
        };
        let reader = {
            let store = Arc::clone(&store);
            let stop = &stop;
            s.spawn(move || {
                let mut i = 0u32;
                while !stop.load(Ordering::SeqCst) {
                    let k = i % 500;
                    let got = store
                        .get(&key(k))
                        .unwrap_or_else(|e| panic!("read during compaction failed: {e}"));
                    assert_eq!(
                        got,
                        Some(random_bytes(u64::from(k), 500)),
                        "torn or lost value {k}"
                    );
                    i += 1;
                }
            })
        };
        for round in 0..4 {
            let r = if round % 2 == 0 {
                KeyRange::full()
            } else {
                range(&key(100), &key(400))
            };
            store
                .compact_range(&r)
                .unwrap_or_else(|e| panic!("compaction failed: {e}"));
        }
        stop.store(true, Ordering::SeqCst);
        reader.join().expect("reader");
        writer.join().expect("writer")
    });
    for k in 0..500 {
        assert_eq!(
            store.get(&key(k)).expect("get"),
            Some(random_bytes(u64::from(k), 500)),
            "value {k} written before the compactions was lost"
        );
    }
    for i in 0..written {
        assert_eq!(
            store.get(format!("new-{i:06}").as_bytes()).expect("get"),
            Some(random_bytes(u64::from(i) + 7, 300)),
            "write {i} made during compaction was lost"
        );
    }
}

/// Bytes actually allocated on disk for everything under `dir` (st_blocks × 512, what
/// [`reclaim_core::dir::directory_size`] measures), which a preallocated or sparse file makes
/// differ from the apparent size; 0 without a directory.
pub fn allocated_bytes(dir: &std::path::Path) -> u64 {
    reclaim_core::dir::directory_size(dir).unwrap_or_default()
}

/// The apparent length of everything under `dir`
/// ([`reclaim_core::dir::directory_apparent_size`]); 0 without a directory.
pub fn apparent_bytes(dir: &std::path::Path) -> u64 {
    reclaim_core::dir::directory_apparent_size(dir).unwrap_or_default()
}

/// After deleting 90 % of 16 MiB, compaction (where the adapter declares it reclaims space)
/// brings the store within its declared factor of a fresh store holding only the survivors,
/// both measured **above an empty store's size** (a fixed overhead, such as a preallocated
/// journal, can then neither hide a compaction that does nothing nor fail an honest one); and a
/// compaction never leaves the store larger than before it (replaced files kept). Apparent
/// sizes and allocated blocks are both printed.
pub fn compaction_reclaims_space(h: &Harness) {
    const VALUES: u32 = 2000;
    const VALUE_BYTES: usize = 8 << 10;
    let (empty_dir, empty_store) = h.fresh();
    empty_store
        .compact_range(&KeyRange::full())
        .expect("compact empty");
    let empty = empty_store.size_on_disk().expect("size");
    let store = h.open();
    let capabilities = store.capabilities();
    let (fresh_dir, fresh) = h.fresh();
    for chunk in 0..VALUES / 100 {
        let mut all = WriteBatch::new();
        let mut survivors = WriteBatch::new();
        for i in chunk * 100..(chunk + 1) * 100 {
            let value = random_bytes(u64::from(i), VALUE_BYTES);
            if i >= VALUES * 9 / 10 {
                survivors.put(key(i), value.clone());
            }
            all.put(key(i), value);
        }
        store.write(all, WriteOptions::DURABLE).expect("fill");
        if !survivors.is_empty() {
            fresh
                .write(survivors, WriteOptions::DURABLE)
                .expect("fill survivors");
        }
    }
    let full = store.size_on_disk().expect("size");
    for chunk in 0..9 {
        let mut batch = WriteBatch::new();
        batch.delete_range(range(
            &key(chunk * VALUES / 10),
            &key((chunk + 1) * VALUES / 10),
        ));
        store
            .write(batch, WriteOptions::DURABLE)
            .expect("delete 90%");
    }
    let pruned = store.size_on_disk().expect("size");
    store.compact_range(&KeyRange::full()).expect("compact");
    fresh
        .compact_range(&KeyRange::full())
        .expect("compact fresh");
    let compacted = store.size_on_disk().expect("size");
    let survivors = fresh.size_on_disk().expect("size");
    let above = |bytes: u64| bytes.saturating_sub(empty);
    // A journal the engine keeps whatever compaction does is allowed on top (declared).
    let kept = capabilities.journal_bytes_kept_after_compaction;
    let ratio = above(compacted).saturating_sub(kept) as f64 / above(survivors).max(1) as f64;
    crate::report::figure(&format!(
        "engine={} empty={empty} full={full} after_delete={pruned} \
         after_compaction={compacted} fresh_survivors={survivors} ratio_above_empty={ratio:.3} \
         declared_max={} allocated_after_compaction={} allocated_fresh={} allocated_empty={}",
        capabilities.engine,
        capabilities.max_space_factor_after_compaction,
        allocated_bytes(&h.store_dir()),
        allocated_bytes(&fresh_dir),
        allocated_bytes(&empty_dir)
    ));
    if capabilities.compaction_reclaims_space {
        // A compaction may move data out of a preallocated journal into tables (fjall): the
        // store may grow by the survivors' own footprint, never by more (replaced files kept).
        // (Plus 64 KiB for the engine's own bookkeeping files.)
        let allowed = pruned
            .saturating_add(above(survivors))
            .saturating_add(64 << 10)
            .saturating_add(kept);
        assert!(
            compacted <= allowed,
            "{}: the store grew from {pruned} to {compacted} bytes by compacting, more than the \
             {} bytes of the survivors (are replaced files kept?)",
            capabilities.engine,
            above(survivors)
        );
        assert!(
            ratio <= capabilities.max_space_factor_after_compaction,
            "{}: above an empty store ({empty} bytes), {} bytes after compaction (less {kept} \
             bytes of journal declared kept) are {ratio:.2}x the {} bytes of a fresh store with \
             the survivors; declared at most {}x",
            capabilities.engine,
            above(compacted),
            above(survivors),
            capabilities.max_space_factor_after_compaction
        );
        // The same on apparent lengths, without the journal allowance: a journal preallocated
        // to a fixed length (fjall's) is there a fixed overhead that measuring above an empty
        // store removes, so the engine's tables are held to the factor on their own. Skipped
        // for a store without files (the in-memory engine).
        let apparent_empty = apparent_bytes(&empty_dir);
        let apparent_compacted = apparent_bytes(&h.store_dir()).saturating_sub(apparent_empty);
        let apparent_survivors = apparent_bytes(&fresh_dir).saturating_sub(apparent_empty);
        if apparent_compacted > 0 {
            let apparent_ratio = apparent_compacted as f64 / apparent_survivors.max(1) as f64;
            crate::report::figure(&format!(
                "engine={} apparent_above_empty: compacted={apparent_compacted} \
                 survivors={apparent_survivors} ratio={apparent_ratio:.3}",
                capabilities.engine
            ));
            assert!(
                apparent_ratio <= capabilities.max_space_factor_after_compaction,
                "{}: apparent lengths above an empty store: {apparent_compacted} bytes after \
                 compaction are {apparent_ratio:.2}x the {apparent_survivors} bytes of a fresh \
                 store with the survivors; declared at most {}x",
                capabilities.engine,
                capabilities.max_space_factor_after_compaction
            );
        }
    }
    for i in VALUES * 9 / 10..VALUES {
        assert_eq!(
            store.get(&key(i)).expect("get"),
            Some(random_bytes(u64::from(i), VALUE_BYTES))
        );
    }
}

#[derive(Debug, Clone)]
enum Op {
    Put(u8, u8),
    Delete(u8),
    DeleteRange(u8, u8),
    Compact(u8, u8),
    Reopen,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<u8>(), any::<u8>()).prop_map(|(k, v)| Op::Put(k % 64, v)),
        2 => any::<u8>().prop_map(|k| Op::Delete(k % 64)),
        2 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::DeleteRange((a % 70).min(b % 70), (a % 70).max(b % 70))),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::Compact((a % 70).min(b % 70), (a % 70).max(b % 70))),
        1 => Just(Op::Reopen),
    ]
}

fn prop_key(k: u8) -> Vec<u8> {
    vec![b'p', k]
}

/// Random sequences of writes, deletes, range deletes, compactions and reopens, applied to the
/// adapter and to the reference side by side: they never differ.
pub fn random_operations_match_the_reference(h: &Harness) {
    let mut runner = TestRunner::new(Config {
        cases: 16,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&proptest::collection::vec(op_strategy(), 1..40), |ops| {
        let (path, mut store) = h.fresh();
        let model = MemoryStore::new();
        for op in &ops {
            let mut batch = WriteBatch::new();
            match *op {
                Op::Put(k, v) => {
                    batch.put(prop_key(k), vec![v; 1 + usize::from(v % 5)]);
                }
                Op::Delete(k) => {
                    batch.delete(prop_key(k));
                }
                Op::DeleteRange(a, b) => {
                    batch.delete_range(range(&prop_key(a), &prop_key(b)));
                }
                Op::Compact(a, b) => {
                    store
                        .compact_range(&range(&prop_key(a), &prop_key(b)))
                        .map_err(|e| TestCaseError::fail(format!("compact: {e}")))?;
                }
                Op::Reopen => store = h.reopen_at(&path, store),
            }
            if !batch.is_empty() {
                store
                    .write(batch.clone(), WriteOptions::BUFFERED)
                    .map_err(|e| TestCaseError::fail(format!("write: {e}")))?;
                model
                    .write(batch, WriteOptions::BUFFERED)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            prop_assert_eq!(dump(store.as_ref()), model.snapshot(), "after {:?}", op);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("adapter differs from the reference: {e}");
    }
}

/// A path that is a file, a directory of another engine, or one with unrelated files: a clear
/// error, and nothing in it changed.
pub fn bad_paths_are_refused(h: &Harness) {
    let file = h.scratch().join("a-file");
    std::fs::write(&file, b"not a store").expect("write file");
    let err = h
        .try_open_at(&file)
        .err()
        .expect("a file path must be refused");
    assert!(!err.to_string().is_empty());
    assert_eq!(
        std::fs::read(&file).expect("read"),
        b"not a store",
        "the file was changed"
    );

    let other = h.scratch().join("other-engine");
    std::fs::create_dir(&other).expect("mkdir");
    std::fs::write(other.join(MARKER_FILE), b"some-other-engine").expect("marker");
    let err = h
        .try_open_at(&other)
        .err()
        .expect("another engine's store must be refused");
    assert!(err.to_string().contains("some-other-engine"), "{err}");

    let foreign = h.scratch().join("foreign");
    std::fs::create_dir(&foreign).expect("mkdir");
    std::fs::write(foreign.join("precious.dat"), b"keep me").expect("write");
    assert!(
        h.try_open_at(&foreign).is_err(),
        "a foreign directory must be refused"
    );
    assert_eq!(
        std::fs::read(foreign.join("precious.dat")).expect("read"),
        b"keep me"
    );
}

/// A store that is open cannot be opened a second time; the first handle keeps working.
pub fn a_held_store_is_refused(h: &Harness) {
    let store = h.open();
    let mut batch = WriteBatch::new();
    batch.put(b"k".to_vec(), b"v".to_vec());
    store.write(batch, WriteOptions::DURABLE).expect("write");
    match h.try_open_at(&h.store_dir()) {
        Err(StorageError::Locked { .. }) => {}
        Err(other) => panic!("expected a Locked error, got: {other}"),
        Ok(_) => panic!("a held store was opened twice"),
    }
    assert_eq!(store.get(b"k").expect("get"), Some(b"v".to_vec()));
    let store = h.reopen(store);
    assert_eq!(store.get(b"k").expect("get"), Some(b"v".to_vec()));
}

/// How a store's own files can be lost while its directory stays.
#[derive(Debug, Clone, Copy)]
enum Loss {
    /// Every engine file and directory deleted.
    Deleted,
    /// Every engine file emptied (an interrupted copy, a wiped volume).
    Emptied,
    /// Every engine file, at any depth, replaced by a link to a path that does not exist (an
    /// unmounted volume behind a link).
    DanglingLinks,
}

/// Every entry of a store directory but reclaim's own marker and lock.
fn engine_entries(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .expect("list store")
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            name != MARKER_FILE && name != reclaim_core::dir::LOCK_FILE
        })
        .map(|e| e.path())
        .collect()
}

fn link_every_file_to(path: &std::path::Path, target: &std::path::Path) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path)
            .expect("list")
            .filter_map(Result::ok)
        {
            link_every_file_to(&entry.path(), &target.join(entry.file_name()));
        }
    } else {
        std::fs::remove_file(path).expect("rm");
        std::os::unix::fs::symlink(target, path).expect("symlink");
    }
}

fn empty_every_file(path: &std::path::Path) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path)
            .expect("list")
            .filter_map(Result::ok)
        {
            empty_every_file(&entry.path());
        }
    } else {
        std::fs::write(path, b"").expect("empty file");
    }
}

/// A store whose own files are gone (deleted, emptied, dangling links) while its directory
/// and marker stay is refused with an error: never opened as a new, empty store that would
/// then look like a fresh chain, and nothing is created in its place or behind a link.
pub fn a_store_whose_files_are_lost_is_refused(h: &Harness) {
    for loss in [Loss::Deleted, Loss::Emptied, Loss::DanglingLinks] {
        let dir = h.scratch().join(format!("lost-{loss:?}"));
        let store = h.open_at(&dir);
        let mut batch = WriteBatch::new();
        batch.put(b"height".to_vec(), b"9000".to_vec());
        store.write(batch, WriteOptions::DURABLE).expect("write");
        drop(store);
        let target = h.scratch().join(format!("unmounted-{loss:?}"));
        for entry in engine_entries(&dir) {
            match loss {
                Loss::Deleted if entry.is_dir() => std::fs::remove_dir_all(&entry).expect("rm"),
                Loss::Deleted => std::fs::remove_file(&entry).expect("rm"),
                Loss::Emptied => empty_every_file(&entry),
                Loss::DanglingLinks => {
                    let name = entry.file_name().expect("file name");
                    link_every_file_to(&entry, &target.join(name));
                }
            }
        }
        let before = engine_entries(&dir);
        match h.try_open_at(&dir) {
            Ok(store) => {
                let got = store.get(b"height");
                panic!(
                    "a store that lost its files ({loss:?}) was opened (height read back as {got:?}) instead of refused"
                );
            }
            Err(err) => assert!(
                matches!(
                    err,
                    StorageError::Missing { .. } | StorageError::Corrupt { .. }
                ),
                "{loss:?}: expected Missing or Corrupt, got {err}"
            ),
        }
        assert_eq!(
            engine_entries(&dir),
            before,
            "{loss:?}: the refused open changed the directory"
        );
        assert!(
            !target.exists(),
            "{loss:?}: something was created behind a link"
        );
    }
}

/// A write without sync survives a *clean* close (every handle dropped) and reopen. (A buffered
/// write may be lost by a process crash: only synced writes promise that.)
pub fn buffered_writes_survive_a_clean_close(h: &Harness) {
    let store = h.open();
    let mut batch = WriteBatch::new();
    batch.put(b"buffered".to_vec(), b"kept".to_vec());
    batch.put(b"buffered-gone".to_vec(), b"x".to_vec());
    store
        .write(batch, WriteOptions::BUFFERED)
        .expect("buffered write");
    let mut batch = WriteBatch::new();
    batch.delete(b"buffered-gone".to_vec());
    store
        .write(batch, WriteOptions::BUFFERED)
        .expect("buffered delete");
    let store = h.reopen(store);
    assert_eq!(
        store.get(b"buffered").expect("get"),
        Some(b"kept".to_vec()),
        "a buffered write was lost by a clean close"
    );
    assert_eq!(
        store.get(b"buffered-gone").expect("get"),
        None,
        "a buffered delete was lost by a clean close"
    );
}

/// The longest key the adapter declares ([`reclaim_core::Capabilities::max_key_bytes`], tested
/// up to 1 MiB) and the empty key are stored, read, scanned and deleted exactly; one byte more
/// than a declared limit below 1 MiB is refused with an error, and the store is unchanged.
pub fn keys_up_to_the_declared_length_work(h: &Harness) {
    const TESTED: usize = 1 << 20;
    let store = h.open();
    let limit = store.capabilities().max_key_bytes;
    let longest = limit.min(TESTED);
    let long_key: Vec<u8> = (0..longest).map(|i| (i % 251) as u8 + 1).collect();
    for key in [Vec::new(), long_key.clone()] {
        let mut batch = WriteBatch::new();
        batch.put(key.clone(), b"v".to_vec());
        store
            .write(batch, WriteOptions::DURABLE)
            .unwrap_or_else(|e| {
                panic!(
                    "a key of {} bytes (declared limit {limit}) was refused: {e}",
                    key.len()
                )
            });
        assert_eq!(
            store.get(&key).expect("get"),
            Some(b"v".to_vec()),
            "{} bytes",
            key.len()
        );
    }
    let scanned = store
        .scan(&KeyRange::full(), ScanOrder::Ascending, 10)
        .expect("scan");
    assert_eq!(scanned.len(), 2, "both keys scan back");
    assert_eq!(scanned[0].0, Vec::<u8>::new());
    assert_eq!(scanned[1].0, long_key);
    if limit < TESTED {
        let before = dump(store.as_ref());
        let mut too_long = long_key.clone();
        too_long.push(7);
        let mut batch = WriteBatch::new();
        batch.put(b"beside".to_vec(), b"x".to_vec());
        batch.put(too_long, b"v".to_vec());
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            store.write(batch, WriteOptions::DURABLE)
        }));
        match outcome {
            Ok(Err(_)) => {}
            Ok(Ok(())) => panic!("a key one byte over the declared {limit} was accepted"),
            Err(_) => panic!("a key one byte over the declared {limit} made the adapter panic"),
        }
        assert_eq!(
            dump(store.as_ref()),
            before,
            "a refused batch changed the store"
        );
    }
    let mut batch = WriteBatch::new();
    batch.delete(Vec::new()).delete(long_key.clone());
    store.write(batch, WriteOptions::DURABLE).expect("delete");
    assert_eq!(store.get(&long_key).expect("get"), None);
}

/// Time of one synced batch deleting `keys` keys through one range delete, in a store that
/// holds them (filled and compacted first, so that they sit in the engine's files).
fn range_delete_time(h: &Harness, keys: u32) -> std::time::Duration {
    let (_, store) = h.fresh();
    for chunk in 0..keys.div_ceil(1000) {
        let mut batch = WriteBatch::new();
        for i in chunk * 1000..((chunk + 1) * 1000).min(keys) {
            batch.put(key(i), vec![1; 64]);
        }
        store.write(batch, WriteOptions::DURABLE).expect("fill");
    }
    store.compact_range(&KeyRange::full()).expect("compact");
    let mut batch = WriteBatch::new();
    batch.delete_range(range(&key(0), &key(keys)));
    let started = std::time::Instant::now();
    store
        .write(batch, WriteOptions::DURABLE)
        .expect("range delete");
    let took = started.elapsed();
    assert_eq!(
        store
            .scan(&KeyRange::full(), ScanOrder::Ascending, 1)
            .expect("scan"),
        Vec::new(),
        "the range delete left keys"
    );
    took
}

/// An adapter that declares `native_range_delete` deletes ten times more keys in about the same
/// time (the best of three runs each: at most 4× the smaller delete's time plus 20 ms); one
/// that does not declare it only has to be correct. The figure is printed either way.
pub fn range_deletes_cost_what_the_engine_declares(h: &Harness) {
    let native = h.open().capabilities().native_range_delete;
    let best = |keys: u32| {
        (0..3)
            .map(|_| range_delete_time(h, keys))
            .min()
            .unwrap_or_default()
    };
    let (small, large) = (best(2_000), best(20_000));
    crate::report::figure(&format!(
        "range_delete native={native} keys_2000={:.2}ms keys_20000={:.2}ms ratio={:.1}",
        small.as_secs_f64() * 1e3,
        large.as_secs_f64() * 1e3,
        large.as_secs_f64() / small.as_secs_f64().max(1e-9)
    ));
    if native {
        let allowed = small * 4 + std::time::Duration::from_millis(20);
        assert!(
            large <= allowed,
            "declared native_range_delete, but deleting 20,000 keys took {large:?} against {small:?} for 2,000 (allowed {allowed:?}): the cost grows with the keys"
        );
    }
}

/// The longest a read or a write may take while a compaction runs, for what an adapter
/// declares as proceeding during compaction ([`reclaim_core::CompactionAccess`]).
pub const ONLINE_STALL_BOUND: std::time::Duration = std::time::Duration::from_secs(1);

/// While compactions run, a reader and a writer are timed: an adapter declaring `Online` must
/// serve both, one declaring `PausesWrites` must serve reads, within [`ONLINE_STALL_BOUND`]
/// per call; `PausesAll` only promises that nothing fails. The longest calls are printed.
pub fn online_compaction_does_not_block_reads_or_writes(h: &Harness) {
    use reclaim_core::CompactionAccess;
    let store = h.open();
    for chunk in 0..8u32 {
        let mut batch = WriteBatch::new();
        for i in chunk * 500..(chunk + 1) * 500 {
            batch.put(key(i), random_bytes(u64::from(i), 2048));
        }
        store.write(batch, WriteOptions::DURABLE).expect("fill");
    }
    let access = store.capabilities().compaction_access;
    let compacting = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    let worst = |samples: &std::sync::Mutex<Vec<std::time::Duration>>| {
        samples
            .lock()
            .map(|s| s.iter().max().copied().unwrap_or_default())
            .unwrap_or_default()
    };
    let reads = std::sync::Mutex::new(Vec::new());
    let writes = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        s.spawn(|| {
            for round in 0..3u32 {
                // Fresh garbage each round, so that every compaction has work to do.
                let mut batch = WriteBatch::new();
                batch.delete_range(range(&key(round * 1000), &key(round * 1000 + 800)));
                store.write(batch, WriteOptions::DURABLE).expect("delete");
                compacting.store(true, Ordering::SeqCst);
                store.compact_range(&KeyRange::full()).expect("compact");
                compacting.store(false, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            done.store(true, Ordering::SeqCst);
        });
        s.spawn(|| {
            let mut i = 0u32;
            while !done.load(Ordering::SeqCst) {
                let during = compacting.load(Ordering::SeqCst);
                let started = std::time::Instant::now();
                store
                    .get(&key(3000 + i % 1000))
                    .expect("read during compaction");
                if during && let Ok(mut r) = reads.lock() {
                    r.push(started.elapsed());
                }
                i += 1;
            }
        });
        s.spawn(|| {
            let mut i = 0u32;
            while !done.load(Ordering::SeqCst) {
                let during = compacting.load(Ordering::SeqCst);
                let started = std::time::Instant::now();
                let mut batch = WriteBatch::new();
                batch.put(format!("w-{i:08}").into_bytes(), vec![2; 128]);
                store
                    .write(batch, WriteOptions::BUFFERED)
                    .expect("write during compaction");
                if during && let Ok(mut w) = writes.lock() {
                    w.push(started.elapsed());
                }
                i += 1;
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        });
    });
    let (worst_read, worst_write) = (worst(&reads), worst(&writes));
    crate::report::figure(&format!(
        "compaction_access={access:?} reads_during={} writes_during={} longest_read={:.1}ms longest_write={:.1}ms bound={}ms",
        reads.lock().map(|r| r.len()).unwrap_or(0),
        writes.lock().map(|w| w.len()).unwrap_or(0),
        worst_read.as_secs_f64() * 1e3,
        worst_write.as_secs_f64() * 1e3,
        ONLINE_STALL_BOUND.as_millis()
    ));
    if matches!(
        access,
        CompactionAccess::Online | CompactionAccess::PausesWrites
    ) {
        assert!(
            worst_read <= ONLINE_STALL_BOUND,
            "declared {access:?}, but a read waited {worst_read:?} during compaction (bound {ONLINE_STALL_BOUND:?})"
        );
    }
    if access == CompactionAccess::Online {
        assert!(
            worst_write <= ONLINE_STALL_BOUND,
            "declared Online, but a write waited {worst_write:?} during compaction (bound {ONLINE_STALL_BOUND:?})"
        );
    }
}

/// Where the adapter estimates what a compaction would give back
/// ([`reclaim_core::Compactable::space_report`]), the estimate after deleting 90 % of 16 MiB
/// and what the compaction then really returns agree within a quarter of the store's size plus
/// 1 MiB, and right after the compaction the estimate is within that tolerance of 0. Checked
/// twice: with the data just written (an LSM engine still holds it in memory and its log), and
/// with the data compacted into the engine's files before the delete (an LSM engine must then
/// find the deleted bytes in its files). An adapter that knows no estimate (`None`) passes; the
/// figures are printed either way.
pub fn space_estimates_match_what_compaction_gives_back(h: &Harness) {
    for settled in [false, true] {
        let (_, store) = h.fresh();
        check_space_estimate(store.as_ref(), settled);
    }
}

fn check_space_estimate(store: &dyn KvStore, settled: bool) {
    const VALUES: u32 = 2000;
    for chunk in 0..VALUES / 100 {
        let mut batch = WriteBatch::new();
        for i in chunk * 100..(chunk + 1) * 100 {
            batch.put(key(i), random_bytes(u64::from(i) + 7, 8 << 10));
        }
        store.write(batch, WriteOptions::DURABLE).expect("fill");
    }
    if settled {
        store.compact_range(&KeyRange::full()).expect("settle");
    }
    let mut batch = WriteBatch::new();
    batch.delete_range(range(&key(0), &key(VALUES * 9 / 10)));
    store
        .write(batch, WriteOptions::DURABLE)
        .expect("delete 90%");
    let report = store.space_report().expect("space report");
    store.compact_range(&KeyRange::full()).expect("compact");
    let after = store.size_on_disk().expect("size");
    let returned = report.on_disk.saturating_sub(after);
    let left = store
        .space_report()
        .expect("space report after compaction")
        .reclaimable;
    let shown =
        |estimate: Option<u64>| estimate.map_or_else(|| "unknown".to_owned(), |r| r.to_string());
    let data = if settled { "in_files" } else { "just_written" };
    crate::report::figure(&format!(
        "space_estimate engine={} data={} on_disk={} estimated_reclaimable={} returned={returned} estimated_after={}",
        store.capabilities().engine,
        data,
        report.on_disk,
        shown(report.reclaimable),
        shown(left),
    ));
    if let Some(estimate) = report.reclaimable {
        let tolerance = report.on_disk / 4 + (1 << 20);
        assert!(
            estimate.abs_diff(returned) <= tolerance,
            "{} (data {data}): estimated {estimate} reclaimable bytes of {}, compaction returned {returned} (tolerance {tolerance})",
            store.capabilities().engine,
            report.on_disk
        );
        // Right after the compaction, the estimate must not promise the same space again: a
        // policy trusting it would compact over and over for nothing.
        let left = left.unwrap_or(0);
        assert!(
            left <= tolerance,
            "{}: still estimated {left} reclaimable bytes right after a compaction (tolerance {tolerance})",
            store.capabilities().engine
        );
    }
}
