//! Opening damaged or held RocksDB stores, and RocksDB's own size accounting.

use std::sync::Arc;

use reclaim_conformance::damage::{check_damaged, files_under, fill, flip_bytes};
use reclaim_core::{
    Compactable, KeyRange, KvStore, KvWrite, StorageError, WriteBatch, WriteOptions,
};
use reclaim_rocksdb::{RocksOptions, RocksStore};

fn filled_store() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let store = RocksStore::open(dir.path()).unwrap();
    fill(&store);
    store.compact_range(&KeyRange::full()).unwrap();
    dir
}

#[test]
fn a_damaged_manifest_is_a_typed_error() {
    let dir = filled_store();
    let manifest = files_under(dir.path())
        .into_iter()
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("MANIFEST")
        })
        .unwrap();
    flip_bytes(&manifest, 3);
    let path = dir.path().to_owned();
    let err =
        check_damaged(move || RocksStore::open(&path).map(|s| Arc::new(s) as Arc<dyn KvStore>))
            .expect("a damaged MANIFEST must not open");
    assert!(
        matches!(
            err,
            StorageError::Corrupt { .. } | StorageError::Engine { .. }
        ),
        "{err}"
    );
}

#[test]
fn damaged_tables_never_panic_or_return_wrong_data() {
    let dir = filled_store();
    for sst in files_under(dir.path())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "sst"))
    {
        flip_bytes(&sst, 11);
    }
    let path = dir.path().to_owned();
    check_damaged(move || RocksStore::open(&path).map(|s| Arc::new(s) as Arc<dyn KvStore>));
}

#[test]
fn a_held_store_is_locked() {
    let dir = filled_store();
    let _first = RocksStore::open(dir.path()).unwrap();
    assert!(matches!(
        RocksStore::open(dir.path()),
        Err(StorageError::Locked { .. })
    ));
}

#[test]
fn sst_accounting_agrees_with_the_directory_walk_after_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let options = RocksOptions {
        compaction_rate_limit_bytes_per_sec: Some(256 << 20),
        ..Default::default()
    };
    let store = RocksStore::open_with(dir.path(), options).unwrap();
    fill(&store);
    let mut batch = WriteBatch::new();
    batch.delete_range(KeyRange::from(b"k00030".to_vec()));
    store.write(batch, WriteOptions::DURABLE).unwrap();
    store.compact_range(&KeyRange::full()).unwrap();
    let sst = store.sst_bytes().unwrap();
    let walk = store.size_on_disk().unwrap();
    // 30 live values of 1 KiB remain; the walk adds WAL, MANIFEST, OPTIONS and LOG files.
    assert!((30 * 1024..100 * 1024).contains(&sst), "sst bytes {sst}");
    assert!(walk >= sst, "walk {walk} < sst {sst}");
}
