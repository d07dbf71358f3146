//! Opening damaged, held or half-rewritten sled stores: typed errors or a clean recovery.

use std::sync::Arc;

use reclaim_conformance::damage::{FILLED_KEYS, check_damaged, files_under, fill, flip_bytes};
use reclaim_core::{Compactable, KeyRange, KvRead, KvStore, StorageError};
use reclaim_sled::{CURRENT_FILE, SledStore};

fn filled_store() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    // The forwarded capabilities are the ones the adapter declares.
    assert_eq!(store.capabilities(), SledStore::CAPABILITIES);
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

/// A kill while sled writes a snapshot leaves `snap.<lsn>.generating` behind. sled 0.34.7 then
/// reads that unfinished file as its newest snapshot and refuses to open; the adapter removes
/// it first and opens from the last complete snapshot, with every entry there.
#[test]
fn an_unfinished_snapshot_left_by_a_kill_is_removed_on_open() {
    let dir = filled_store();
    // sled writes its snapshot while opening (after replaying its log): open once more.
    SledStore::open(dir.path()).unwrap().close().unwrap();
    let generation = dir.path().join("gen-000001");
    let snapshot = files_under(&generation)
        .into_iter()
        .find(|f| {
            f.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("snap."))
        })
        .expect("a reopened sled store has a snapshot");
    let complete = std::fs::read(&snapshot).unwrap();
    // What a kill mid-write leaves: a newer snapshot, half written, never renamed.
    let unfinished = generation.join("snap.7FFFFFFFFFFFFFFF.generating");
    std::fs::write(&unfinished, &complete[..complete.len() / 2]).unwrap();

    // sled alone cannot open it (on a copy, so that its lock stays out of the way).
    let copy = tempfile::tempdir().unwrap();
    for file in files_under(&generation) {
        let relative = file.strip_prefix(&generation).unwrap();
        let target = copy.path().join(relative);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&file, target).unwrap();
    }
    let raw = sled::Config::new().path(copy.path()).open();
    assert!(
        matches!(raw, Err(sled::Error::Corruption { .. })),
        "sled opened a store with an unfinished snapshot: has sled fixed spacejam/sled#1527?"
    );

    let store = SledStore::open(dir.path()).unwrap();
    assert!(!unfinished.exists());
    assert_all_there(&store);
    store.compact_range(&KeyRange::full()).unwrap();
    assert_all_there(&store);
}
