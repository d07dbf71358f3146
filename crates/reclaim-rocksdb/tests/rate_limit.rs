//! The compaction I/O cap (`RocksOptions::compaction_rate_limit_bytes_per_sec`, RocksDB's rate
//! limiter): a capped store cannot write a compaction's output faster than the cap, and what it
//! compacts is the same as without the cap.

use std::time::{Duration, Instant};

use reclaim_conformance::data::random_bytes;
use reclaim_core::{Compactable, KeyRange, KvRead, KvWrite, ScanOrder, WriteBatch, WriteOptions};
use reclaim_rocksdb::{RocksOptions, RocksStore};

/// Writes 1 MiB of incompressible values (256 × 4 KiB) under keys `k00000000`...; they stay in
/// the memtable until a compaction flushes them.
fn fill(store: &RocksStore) {
    let mut batch = WriteBatch::new();
    for n in 0..256u64 {
        batch.put(format!("k{n:08}").into_bytes(), random_bytes(n, 4096));
    }
    store.write(batch, WriteOptions::DURABLE).unwrap();
}

#[test]
fn a_capped_store_spreads_compaction_writes_over_time() {
    let dir = tempfile::tempdir().unwrap();
    let capped = RocksOptions {
        compaction_rate_limit_bytes_per_sec: Some(1 << 20),
        ..RocksOptions::default()
    };
    let store = RocksStore::open_with(dir.path(), capped).unwrap();
    fill(&store);
    let mut batch = WriteBatch::new();
    batch.delete_range(KeyRange::between(b"k00000192".to_vec(), b"k00000256".to_vec()).unwrap());
    store.write(batch, WriteOptions::DURABLE).unwrap();

    let started = Instant::now();
    store.compact_range(&KeyRange::full()).unwrap();
    let took = started.elapsed();
    // About 1.5 MiB pass the limiter: the flush writes the 0.75 MiB the tombstone leaves, the
    // compaction rewrites them. At 1 MiB/s that cannot take much under 1.5 s, whatever the
    // machine. A lower bound only: a slow machine takes longer, never shorter.
    assert!(
        took >= Duration::from_millis(1000),
        "a compaction capped at 1 MiB/s wrote 1.5 MiB in {took:?}"
    );
    // The cap changes when, not what: the surviving values are intact, the pruned ones gone.
    let live = store
        .scan(&KeyRange::full(), ScanOrder::Ascending, usize::MAX)
        .unwrap();
    assert_eq!(live.len(), 192);
    assert!(live.iter().enumerate().all(|(n, (key, value))| {
        *key == format!("k{n:08}").into_bytes() && *value == random_bytes(n as u64, 4096)
    }));
    let sst = store.sst_bytes().unwrap();
    assert!(
        (192 * 4096..256 * 4096).contains(&sst),
        "{sst} bytes of SST files for 768 KiB of live values"
    );
}
