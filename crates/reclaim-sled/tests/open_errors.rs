//! Opening damaged, held or half-rewritten sled stores: typed errors or a clean recovery.

use std::sync::Arc;

use reclaim_conformance::damage::{FILLED_KEYS, check_damaged, files_under, fill, flip_bytes};
use reclaim_core::{Compactable, KeyRange, KvRead, KvStore, StorageError};
use reclaim_sled::{CURRENT_FILE, SledStore};

fn filled_store() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    fill(&store);
    store.close().unwrap();
    dir
}

fn assert_all_there(store: &SledStore) {
    for i in 0..FILLED_KEYS {
        assert!(
            store.get(format!("k{i:05}").as_bytes()).unwrap().is_some(),
            "k{i:05} lost"
        );
    }
}

#[test]
fn flipped_bytes_never_panic_or_return_wrong_data() {
    let dir = filled_store();
    for file in files_under(&dir.path().join("gen-000001")) {
        flip_bytes(&file, 5);
    }
    let path = dir.path().to_owned();
    check_damaged(move || SledStore::open(&path).map(|s| Arc::new(s) as Arc<dyn KvStore>));
}

#[test]
fn a_garbage_current_file_is_a_corruption_error() {
    let dir = filled_store();
    std::fs::write(dir.path().join(CURRENT_FILE), b"banana").unwrap();
    let err = SledStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
}

#[test]
fn a_rewrite_interrupted_before_the_swap_leaves_the_old_store() {
    let dir = filled_store();
    // A crash during the copy leaves a partial next generation and CURRENT unchanged.
    std::fs::create_dir(dir.path().join("gen-000002")).unwrap();
    std::fs::write(dir.path().join("gen-000002/db"), b"half written").unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.generation(), 1);
    assert!(
        !dir.path().join("gen-000002").exists(),
        "the partial generation is removed"
    );
    assert_all_there(&store);
}

#[test]
fn a_crash_after_the_swap_opens_the_new_store_and_removes_the_old() {
    let dir = filled_store();
    {
        let store = SledStore::open(dir.path()).unwrap();
        store.compact_range(&KeyRange::full()).unwrap();
        assert_eq!(store.generation(), 2);
        store.close().unwrap();
    }
    // Simulate the old generation surviving a crash right after CURRENT was replaced.
    std::fs::create_dir(dir.path().join("gen-000001")).unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(store.generation(), 2);
    assert!(!dir.path().join("gen-000001").exists());
    assert_all_there(&store);
}

#[test]
fn a_held_store_is_locked() {
    let dir = filled_store();
    let _first = SledStore::open(dir.path()).unwrap();
    assert!(matches!(
        SledStore::open(dir.path()),
        Err(StorageError::Locked { .. })
    ));
}
