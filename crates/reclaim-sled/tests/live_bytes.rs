//! sled's live-bytes count, on which its space estimate stands: exact after puts, overwrites,
//! deletes and range deletes; kept across a clean close; the same after a rewrite; and the
//! estimate is what lies beyond twice the live bytes.

use reclaim_conformance::data::{live_bytes_batches, scanned_live_bytes};
use reclaim_core::{Compactable, KeyRange, KvWrite, WriteBatch, WriteOptions};
use reclaim_sled::{SLED_STEADY_SPACE_FACTOR, SledStore};

fn scanned(store: &SledStore) -> u64 {
    scanned_live_bytes(store).unwrap()
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
    for (batch, options) in live_bytes_batches() {
        store.write(batch, options).unwrap();
        assert_eq!(live(&store), scanned(&store));
    }
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
