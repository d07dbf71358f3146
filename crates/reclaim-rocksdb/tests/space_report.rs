//! The space report flushes the memtables only for a store that has no SST file yet: once it
//! has files, asking for it never adds a flush.

use reclaim_core::{Compactable, KeyRange, KvWrite, WriteBatch, WriteOptions};
use reclaim_rocksdb::RocksStore;

/// Puts `count` incompressible values of `value_bytes` under keys starting with `family`.
fn write_family(store: &RocksStore, family: u8, count: u16, value_bytes: usize) {
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(family);
    let mut batch = WriteBatch::new();
    for i in 0..count {
        let mut key = vec![family];
        key.extend_from_slice(&i.to_be_bytes());
        let value: Vec<u8> = (0..value_bytes)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        batch.put(key, value);
    }
    store.write(batch, WriteOptions::DURABLE).unwrap();
}

fn family(family: u8) -> KeyRange {
    KeyRange::new(Some(vec![family]), Some(vec![family + 1])).unwrap()
}

#[test]
fn a_store_wholly_in_memtables_is_flushed_before_it_estimates() {
    let dir = tempfile::tempdir().unwrap();
    let store = RocksStore::open(dir.path()).unwrap();
    write_family(&store, b'A', 200, 4096);
    assert_eq!(store.sst_bytes().unwrap(), 0);
    let mut batch = WriteBatch::new();
    batch.delete_range(family(b'A'));
    store.write(batch, WriteOptions::DURABLE).unwrap();
    let memtables_before = store.memtable_bytes().unwrap();
    assert!(memtables_before > 800 << 10, "{memtables_before}");
    let report = store.space_report().unwrap();
    // Flushed: the deleted keys never reach an SST file; what is left to reclaim is at most
    // the small file holding the range tombstone.
    assert!(
        store.memtable_bytes().unwrap() < memtables_before / 4,
        "the memtables were not flushed"
    );
    let reclaimable = report.reclaimable.expect("a range was deleted since open");
    assert!(reclaimable < 4096, "{reclaimable}");
}

#[test]
fn a_store_with_files_is_not_flushed_to_estimate() {
    let dir = tempfile::tempdir().unwrap();
    let store = RocksStore::open(dir.path()).unwrap();
    // 400 KiB in files, then 2 MiB in the memtables: the memtables outweigh the files, yet a
    // store that has files is never flushed to estimate.
    write_family(&store, b'A', 100, 4096);
    store.compact_range(&KeyRange::full()).unwrap();
    let in_files = store.sst_bytes().unwrap();
    assert!(in_files > 300 << 10, "{in_files}");
    write_family(&store, b'B', 512, 4096);
    let mut batch = WriteBatch::new();
    batch.delete_range(family(b'A'));
    store.write(batch, WriteOptions::DURABLE).unwrap();
    let memtables_before = store.memtable_bytes().unwrap();
    assert!(memtables_before > in_files, "{memtables_before}");
    let report = store.space_report().unwrap();
    // Not flushed: the memtables still hold family B, and the deleted family's files count.
    assert!(store.memtable_bytes().unwrap() >= memtables_before);
    let reclaimable = report.reclaimable.expect("a range was deleted since open");
    assert!(
        reclaimable > in_files / 2 && reclaimable <= in_files + (64 << 10),
        "{reclaimable} reclaimable against {in_files} bytes in files"
    );
}
