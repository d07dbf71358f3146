//! After every pruning run the executor releases, on engines that drop deleted ranges cheaply,
//! every range deleted for good from the first height up to the base, whatever the compaction
//! policy; it leaves other engines alone.

use std::sync::Arc;

use parking_lot::Mutex;
use reclaim_cometbft::{
    CompactionPolicyKind, PruningSettings, StateStoreOptions, pruning_executor,
};
use reclaim_conformance::chain::{commit, open};
use reclaim_core::kv::KeyValue;
use reclaim_core::{
    Capabilities, Compactable, KeyRange, KvRead, KvReadExt, KvStore, KvWrite, MemoryStore,
    ScanOrder, StorageError, WriteBatch, WriteOptions,
};

/// The in-memory engine, recording the ranges it is asked to drop.
struct Dropping {
    inner: MemoryStore,
    cheap: bool,
    dropped: Mutex<Vec<KeyRange>>,
}

impl KvRead for Dropping {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.get(key)
    }
    fn scan(&self, r: &KeyRange, o: ScanOrder, l: usize) -> Result<Vec<KeyValue>, StorageError> {
        self.inner.scan(r, o, l)
    }
}

impl KvWrite for Dropping {
    fn write(&self, batch: WriteBatch, options: WriteOptions) -> Result<(), StorageError> {
        self.inner.write(batch, options)
    }
}

impl Compactable for Dropping {
    fn compact_range(&self, range: &KeyRange) -> Result<(), StorageError> {
        self.inner.compact_range(range)
    }
    fn drop_deleted_range(&self, range: &KeyRange) -> Result<(), StorageError> {
        self.dropped.lock().push(range.clone());
        Ok(())
    }
    fn drops_deleted_ranges_cheaply(&self) -> bool {
        self.cheap
    }
    fn size_on_disk(&self) -> Result<u64, StorageError> {
        self.inner.size_on_disk()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
}

fn engine(cheap: bool) -> Arc<Dropping> {
    Arc::new(Dropping {
        inner: MemoryStore::new(),
        cheap,
        dropped: Mutex::new(Vec::new()),
    })
}

/// Compaction off (CometBFT's `compact = false`), or on with `policy`.
fn settings(policy: Option<CompactionPolicyKind>) -> PruningSettings {
    PruningSettings {
        evidence_max_age_heights: 0,
        compact: policy.is_some(),
        compaction_interval: 1000,
        policy: policy.unwrap_or_default(),
        ..PruningSettings::default()
    }
}

#[test]
fn pruned_files_are_released_after_every_run_from_the_first_height_whatever_the_policy() {
    for policy in [
        None,
        Some(CompactionPolicyKind::Space),
        Some(CompactionPolicyKind::Interval),
    ] {
        let engine = engine(true);
        let chain = open(
            Arc::clone(&engine) as Arc<dyn KvStore>,
            StateStoreOptions::default(),
        );
        commit(&chain, 1, 1, 100);
        let exec = pruning_executor(&chain.blocks, &chain.states, settings(policy));
        // Nothing compacts (the interval is far), yet the pruned ranges are released.
        let outcome = exec.prune(30).unwrap();
        assert!(outcome.heights_pruned() > 0);
        let first = std::mem::take(&mut *engine.dropped.lock());
        assert!(!first.is_empty(), "{policy:?}: nothing released");
        exec.prune(60).unwrap();
        let second = std::mem::take(&mut *engine.dropped.lock());
        assert_eq!(
            second.len(),
            first.len(),
            "{policy:?}: one range per family"
        );
        for (early, late) in first.iter().zip(&second) {
            // The second run's range starts where the first one's did (the bottom), and
            // reaches further: a file spanning both runs' heights can be dropped.
            assert_eq!(early.start(), late.start(), "{policy:?}");
            assert!(late.end() > early.end(), "{policy:?}: {early} then {late}");
            // Everything inside was really deleted.
            assert!(
                engine.inner.keys_in(late).unwrap().is_empty(),
                "{policy:?}: live keys in released range {late}"
            );
        }
    }
}

#[test]
fn engines_without_cheap_drops_are_left_alone() {
    let engine = engine(false);
    let chain = open(
        Arc::clone(&engine) as Arc<dyn KvStore>,
        StateStoreOptions::default(),
    );
    commit(&chain, 1, 1, 100);
    let exec = pruning_executor(&chain.blocks, &chain.states, settings(None));
    exec.prune(60).unwrap();
    assert!(engine.dropped.lock().is_empty());
}
