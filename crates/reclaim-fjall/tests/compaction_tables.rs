//! The tables fjall's compaction writes: at most `COMPACTION_TABLE_BYTES` each (plus the last
//! block), so that removing one later never holds the node's writes for long, and the data
//! and the space come back as before.

use reclaim_conformance::data::random_bytes;
use reclaim_core::{Compactable, KeyRange, KvRead, KvWrite, WriteBatch, WriteOptions};
use reclaim_fjall::{COMPACTION_TABLE_BYTES, FjallStore};

/// Sizes of the table files in the store directory.
fn table_sizes(dir: &std::path::Path) -> Vec<u64> {
    let mut sizes = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                pending.push(entry.path());
            } else if dir.file_name().is_some_and(|name| name == "tables") {
                sizes.push(entry.metadata().unwrap().len());
            }
        }
    }
    sizes
}

#[test]
fn a_compaction_writes_tables_of_its_own_size_and_keeps_every_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = FjallStore::open(&path).unwrap();
    // 48 MiB of incompressible values, half of them deleted afterwards.
    let value_bytes = 64 * 1024;
    let keys = 768u32;
    for chunk in (0..keys).collect::<Vec<_>>().chunks(32) {
        let mut batch = WriteBatch::new();
        for &i in chunk {
            batch.put(
                i.to_be_bytes().to_vec(),
                random_bytes(u64::from(i), value_bytes),
            );
        }
        store.write(batch, WriteOptions::DURABLE).unwrap();
    }
    let mut batch = WriteBatch::new();
    for i in (0..keys).filter(|i| i % 2 == 1) {
        batch.delete(i.to_be_bytes().to_vec());
    }
    store.write(batch, WriteOptions::DURABLE).unwrap();

    store.compact_range(&KeyRange::full()).unwrap();

    let sizes = table_sizes(&path);
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let total: u64 = sizes.iter().sum();
    let live = u64::from(keys / 2) * value_bytes as u64;
    assert!(
        largest <= COMPACTION_TABLE_BYTES + 2 * value_bytes as u64,
        "largest table {largest} bytes, tables {sizes:?}"
    );
    assert!(
        sizes.len() >= 2,
        "the live data spans several tables: {sizes:?}"
    );
    assert!(
        total < live + live / 10,
        "the deleted half is gone: {total} bytes of tables for {live} live"
    );
    for i in 0..keys {
        let value = store.get(&i.to_be_bytes()).unwrap();
        if i % 2 == 1 {
            assert_eq!(value, None, "key {i} was deleted");
        } else {
            assert_eq!(
                value,
                Some(random_bytes(u64::from(i), value_bytes)),
                "key {i}"
            );
        }
    }
}
