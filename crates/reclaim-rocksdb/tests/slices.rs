//! Paced compaction on RocksDB: slices follow SST files, so a store of many files is cut into
//! many slices of about the target size, which together tile the range.

use reclaim_conformance::data::random_bytes;
use reclaim_core::{Compactable, KeyRange, KvWrite, WriteBatch, WriteOptions};
use reclaim_rocksdb::{RocksOptions, RocksStore};

#[test]
fn slices_follow_sst_files() {
    let dir = tempfile::tempdir().unwrap();
    let options = RocksOptions {
        write_buffer_size: 256 << 10,
        target_file_size_bytes: 256 << 10,
        ..RocksOptions::default()
    };
    let store = RocksStore::open_with(dir.path(), options).unwrap();
    for chunk in 0..16u64 {
        let mut batch = WriteBatch::new();
        for i in 0..64u64 {
            let n = chunk * 64 + i;
            batch.put(format!("k{n:08}").into_bytes(), random_bytes(n, 4096));
        }
        store.write(batch, WriteOptions::DURABLE).unwrap();
    }
    // Rewrites everything into bottommost files of about 256 KiB: 4 MiB in about 16 files.
    store.compact_range(&KeyRange::full()).unwrap();
    let sst = store.sst_bytes().unwrap();
    let slices = store.compaction_slices(&KeyRange::full(), 1 << 20).unwrap();
    // 4 MiB of files in slices of at least 1 MiB each: about four slices.
    assert!(
        (3..=5).contains(&slices.len()),
        "{} slices over {sst} bytes of SST files: {slices:?}",
        slices.len()
    );
    for pair in slices.windows(2) {
        assert_eq!(pair[0].end(), pair[1].start());
    }
    let half = KeyRange::between(b"k00000512".to_vec(), b"k00001024".to_vec()).unwrap();
    let half_slices = store.compaction_slices(&half, 1 << 20).unwrap();
    assert!(
        half_slices.len() < slices.len() && !half_slices.is_empty(),
        "{half_slices:?}"
    );
    assert_eq!(half_slices[0].start(), half.start());
    assert_eq!(half_slices[half_slices.len() - 1].end(), half.end());
    for slice in &slices {
        store.compact_range(slice).unwrap();
    }
}
