//! sled's live-bytes count, on which its space estimate stands: exact after puts, overwrites,
//! deletes and range deletes; kept across a clean close; the same after a rewrite; and the
//! estimate is what lies beyond twice the live bytes.

use reclaim_core::{Compactable, KeyRange, KvRead, KvWrite, ScanOrder, WriteBatch, WriteOptions};
use reclaim_sled::{SLED_STEADY_SPACE_FACTOR, SledStore};

/// The live bytes as a scan counts them.
fn scanned(store: &SledStore) -> u64 {
    store
        .scan(&KeyRange::full(), ScanOrder::Ascending, usize::MAX)
        .unwrap()
        .iter()
        .map(|(k, v)| (k.len() + v.len()) as u64)
        .sum()
}

fn live(store: &SledStore) -> u64 {
    store.space_report().unwrap().live_bytes.unwrap()
}

#[test]
fn the_live_bytes_follow_every_write_and_survive_a_clean_close_and_a_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let store = SledStore::open(&path).unwrap();
    assert_eq!(live(&store), 0);
    let mut batch = WriteBatch::new();
    for i in 0u32..200 {
        batch.put(i.to_be_bytes().to_vec(), vec![7; 100 + i as usize]);
    }
    // The same key twice in one batch, and a delete of a key put earlier in it.
    batch.put(b"twice".to_vec(), vec![1; 10]);
    batch.put(b"twice".to_vec(), vec![1; 30]);
    batch.put(b"gone".to_vec(), vec![1; 50]);
    batch.delete(b"gone".to_vec());
    store.write(batch, WriteOptions::DURABLE).unwrap();
    assert_eq!(live(&store), scanned(&store));

    let mut batch = WriteBatch::new();
    batch.put(5u32.to_be_bytes().to_vec(), vec![9; 3]); // overwrite, smaller
    batch.delete(6u32.to_be_bytes().to_vec());
    batch.delete(b"never-there".to_vec());
    batch.delete_range(KeyRange::between(10u32.to_be_bytes(), 150u32.to_be_bytes()).unwrap());
    store.write(batch, WriteOptions::BUFFERED).unwrap();
    assert_eq!(live(&store), scanned(&store));
    let before_close = live(&store);

    store.close().unwrap();
    let store = SledStore::open(&path).unwrap();
    assert_eq!(live(&store), before_close, "recorded at the clean close");
    let mut batch = WriteBatch::new();
    batch.put(b"after".to_vec(), vec![2; 40]);
    store.write(batch, WriteOptions::DURABLE).unwrap();
    assert_eq!(live(&store), scanned(&store));

    store.compact_range(&KeyRange::full()).unwrap();
    assert_eq!(live(&store), scanned(&store), "the rewrite's copy counts");
    let report = store.space_report().unwrap();
    assert_eq!(
        report.reclaimable,
        Some(
            report
                .on_disk
                .saturating_sub(live(&store) * SLED_STEADY_SPACE_FACTOR)
        )
    );
}
