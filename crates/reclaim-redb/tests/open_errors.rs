//! Opening damaged, held or misplaced redb stores: typed errors, never a panic.

use std::sync::Arc;

use reclaim_conformance::damage::{check_damaged, fill, flip_bytes, truncate};
use reclaim_core::{KvStore, StorageError};
use reclaim_redb::{RedbStore, live_database_file};

fn filled_store() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    fill(&store);
    dir
}

fn open(
    dir: &std::path::Path,
) -> impl Fn() -> Result<Arc<dyn KvStore>, StorageError>
+ std::panic::UnwindSafe
+ std::panic::RefUnwindSafe {
    let dir = dir.to_owned();
    move || RedbStore::open(&dir).map(|s| Arc::new(s) as Arc<dyn KvStore>)
}

#[test]
fn flipped_bytes_are_a_corruption_error() {
    let dir = filled_store();
    flip_bytes(&live_database_file(dir.path()).unwrap(), 7);
    let err =
        check_damaged(open(dir.path())).expect("a file with every 7th byte flipped must not open");
    assert!(
        matches!(
            err,
            StorageError::Corrupt { .. } | StorageError::Engine { .. }
        ),
        "{err}"
    );
}

#[test]
fn a_truncated_file_never_panics_or_returns_wrong_data() {
    let dir = filled_store();
    truncate(&live_database_file(dir.path()).unwrap(), 0.5);
    check_damaged(open(dir.path()));
}

#[test]
fn a_file_that_is_not_redb_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(RedbStore::open(dir.path()).unwrap());
    std::fs::write(live_database_file(dir.path()).unwrap(), vec![0x42; 4096]).unwrap();
    let err = RedbStore::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains("redb"), "{err}");
}

#[test]
fn a_held_store_is_locked() {
    let dir = filled_store();
    let _first = RedbStore::open(dir.path()).unwrap();
    assert!(matches!(
        RedbStore::open(dir.path()),
        Err(StorageError::Locked { .. })
    ));
}

/// An online rewrite gives the pruned space back: a store of 26 MB with 90 % of it deleted
/// occupies at most 1.1× its live bytes afterwards.
#[test]
fn compaction_shrinks_the_file_to_its_live_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    // The forwarded capabilities are the ones the adapter declares.
    assert_eq!(
        reclaim_core::Compactable::capabilities(&store),
        RedbStore::CAPABILITIES
    );
    fill(&store);
    let value = vec![0x5a; 4096];
    for chunk in 0..16u32 {
        let mut batch = reclaim_core::WriteBatch::new();
        for i in 0..256u32 {
            batch.put(
                format!("v{:06}", chunk * 256 + i).into_bytes(),
                value.clone(),
            );
        }
        reclaim_core::KvWrite::write(&store, batch, reclaim_core::WriteOptions::DURABLE).unwrap();
    }
    let mut batch = reclaim_core::WriteBatch::new();
    batch.delete_range(reclaim_core::KeyRange::until(b"k00270".to_vec()));
    batch.delete_range(
        reclaim_core::KeyRange::new(Some(b"v".to_vec()), Some(b"v003686".to_vec())).unwrap(),
    );
    reclaim_core::KvWrite::write(&store, batch, reclaim_core::WriteOptions::DURABLE).unwrap();
    let before = reclaim_core::Compactable::size_on_disk(&store).unwrap();
    assert!(store.fragmented_bytes().unwrap() > 0);
    reclaim_core::Compactable::compact_range(&store, &reclaim_core::KeyRange::full()).unwrap();
    let after = reclaim_core::Compactable::size_on_disk(&store).unwrap();
    let live = reclaim_core::Compactable::space_report(&store)
        .unwrap()
        .live_bytes
        .unwrap();
    assert!(after < before / 4, "{before} -> {after}");
    // The bytes the file occupies, not its length: redb's file runs ahead of its pages as a
    // hole, which its own `fragmented_bytes` counts.
    assert!(
        after as f64 <= live as f64 * 1.1,
        "{after} bytes on disk for {live} live bytes"
    );
}

#[test]
fn a_store_of_the_single_file_layout_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    drop(RedbStore::open(dir.path()).unwrap());
    let file = live_database_file(dir.path()).unwrap();
    std::fs::rename(&file, dir.path().join(reclaim_redb::DB_FILE)).unwrap();
    std::fs::remove_file(dir.path().join(reclaim_core::rewrite::CURRENT_FILE)).unwrap();
    let err = RedbStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("single-file layout"), "{err}");
}
