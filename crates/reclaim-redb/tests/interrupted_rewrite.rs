//! A store left in the middle of a write-once rewrite (stopped after `BUILDING` named the new
//! generation, with more writes made meanwhile than it moves back): the read-write store serves
//! both generations after a reopen and a compaction finishes the rewrite; the read-only reader
//! refuses the store until then instead of showing the frozen generation alone.

use std::sync::atomic::{AtomicU32, Ordering};

use reclaim_core::rewrite::{GenerationalStore, RewriteSettings};
use reclaim_core::{
    Compactable, CompactionPacer, KeyRange, KvRead, KvWrite, StorageError, WriteBatch, WriteOptions,
};
use reclaim_redb::{RedbEngine, RedbReader, RedbStore};

fn key(i: u32) -> Vec<u8> {
    format!("k{i:04}").into_bytes()
}

/// Steps of 4 KiB; before each, puts `new{n}` and deletes `k{n}`; stops after two steps.
struct WritingSteps<'a> {
    store: &'a GenerationalStore<RedbEngine>,
    taken: AtomicU32,
}

impl CompactionPacer for WritingSteps<'_> {
    fn step_bytes(&self) -> u64 {
        4_096
    }

    fn before_step(&self) -> Result<(), StorageError> {
        let n = self.taken.fetch_add(1, Ordering::SeqCst);
        if n >= 2 {
            return Err(StorageError::Interrupted { operation: "test" });
        }
        let mut batch = WriteBatch::new();
        batch.put(format!("new{n}").into_bytes(), vec![7; 100]);
        batch.delete(key(n));
        self.store.write(batch, WriteOptions::DURABLE)
    }
}

#[test]
fn an_interrupted_rewrite_is_finished_by_the_next_compaction() {
    let dir = tempfile::tempdir().unwrap();
    {
        let settings = RewriteSettings {
            fold_back_limit_bytes: 0,
            ..RewriteSettings::default()
        };
        let store = GenerationalStore::open_with(dir.path(), RedbEngine, settings).unwrap();
        let mut batch = WriteBatch::new();
        for i in 0..200 {
            batch.put(key(i), vec![(i % 251) as u8; 1_000]);
        }
        store.write(batch, WriteOptions::DURABLE).unwrap();
        let steps = WritingSteps {
            store: &store,
            taken: AtomicU32::new(0),
        };
        let err = store
            .compact_range_paced(&KeyRange::full(), &steps)
            .unwrap_err();
        assert!(matches!(err, StorageError::Interrupted { .. }), "{err}");
        assert!(store.rewrite_in_progress());
        store.close().unwrap();
    }
    assert!(dir.path().join("BUILDING").exists());
    let err = RedbReader::open(dir.path()).unwrap_err();
    assert!(
        matches!(err, StorageError::Corrupt { .. }) && err.to_string().contains("interrupted"),
        "{err}"
    );
    let expect = |store: &dyn KvRead| {
        for n in 0..2 {
            assert_eq!(
                store.get(format!("new{n}").as_bytes()).unwrap(),
                Some(vec![7; 100])
            );
            assert_eq!(store.get(&key(n)).unwrap(), None, "deleted key {n} is back");
        }
        assert_eq!(store.get(&key(5)).unwrap(), Some(vec![5; 1_000]));
        let all = store.scan(&KeyRange::full(), reclaim_core::ScanOrder::Ascending, 1_000);
        assert_eq!(all.unwrap().len(), 200, "198 old keys and 2 new");
    };
    {
        let store = RedbStore::open(dir.path()).unwrap();
        assert!(store.generations().rewrite_in_progress());
        expect(&store);
        store.compact_range(&KeyRange::full()).unwrap();
        assert!(!store.generations().rewrite_in_progress());
        expect(&store);
    }
    assert!(!dir.path().join("BUILDING").exists());
    let reader = RedbReader::open(dir.path()).unwrap();
    expect(&reader);
}
