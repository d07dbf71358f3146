//! How RocksDB lays its files on disk: no preallocation (a write-ahead log holding a few KiB
//! occupies a few KiB on disk, not the 70 MiB, 1.1 × the write buffer, RocksDB reserves by
//! default), and table files written back as they grow.

use reclaim_core::{Compactable, KvWrite, WriteBatch, WriteOptions};
use reclaim_rocksdb::{RocksOptions, RocksStore};

#[test]
fn files_are_not_preallocated() {
    let dir = tempfile::tempdir().unwrap();
    let store = RocksStore::open(dir.path()).unwrap();
    let mut batch = WriteBatch::new();
    batch.put(b"key".to_vec(), vec![7u8; 4096]);
    store.write(batch, WriteOptions::DURABLE).unwrap();
    // The store is open, its log holds one record: everything it occupies is its small files.
    let on_disk = store.size_on_disk().unwrap();
    assert!(
        on_disk < 8 << 20,
        "{on_disk} bytes on disk for a 4 KiB value"
    );
    let text = options_file(dir.path());
    assert!(text.contains("allow_fallocate=false"), "{text}");
}

/// Table files reach the disk as they are written, a mebibyte at a time, not all at their
/// close, and never more than that is waiting for the disk: a commit's sync then never waits
/// behind a whole table file of a flush or compaction. Both hold with the partitioner too (it
/// goes through the same option string).
#[test]
fn table_files_are_written_back_as_they_grow() {
    for partition_prefix_bytes in [None, Some(1)] {
        let text = options_written_with(RocksOptions {
            sst_partition_prefix_bytes: partition_prefix_bytes,
            ..RocksOptions::default()
        });
        assert!(text.contains("\n  bytes_per_sync=1048576\n"), "{text}");
        assert!(text.contains("\n  strict_bytes_per_sync=true\n"), "{text}");
        assert!(text.contains("allow_fallocate=false"), "{text}");
    }
    let text = options_written_with(RocksOptions {
        bytes_per_sync: 0,
        strict_bytes_per_sync: false,
        ..RocksOptions::default()
    });
    assert!(text.contains("\n  bytes_per_sync=0\n"), "{text}");
    assert!(text.contains("\n  strict_bytes_per_sync=false\n"), "{text}");
}

/// The OPTIONS file RocksDB writes when a store opens in a fresh directory with `options`.
fn options_written_with(options: RocksOptions) -> String {
    let dir = tempfile::tempdir().unwrap();
    let _store = RocksStore::open_with(dir.path(), options).unwrap();
    options_file(dir.path())
}

/// The text of the OPTIONS file RocksDB wrote into `dir` at open.
fn options_file(dir: &std::path::Path) -> String {
    let options = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("OPTIONS-"))
        })
        .expect("an OPTIONS file");
    std::fs::read_to_string(options).unwrap()
}

#[test]
fn the_prefix_partitioner_is_set_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let options = RocksOptions {
        sst_partition_prefix_bytes: Some(1),
        ..RocksOptions::default()
    };
    let store = RocksStore::open_with(dir.path(), options).unwrap();
    let mut batch = WriteBatch::new();
    for family in [b'A', b'B'] {
        for i in 0u8..50 {
            batch.put(vec![family, i], vec![i; 1024]);
        }
    }
    store.write(batch, WriteOptions::DURABLE).unwrap();
    // A compaction writes one file per first byte.
    store
        .compact_range(&reclaim_core::KeyRange::full())
        .unwrap();
    let files = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|e| e == "sst")
        })
        .count();
    assert_eq!(files, 2, "one SST file per first key byte");
    let text = options_file(dir.path());
    assert!(text.contains("SstPartitionerFixedPrefixFactory"), "{text}");
    assert!(text.contains("allow_fallocate=false"), "{text}");
}
