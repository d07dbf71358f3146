//! The space policy through the executor: no compaction while the engines estimate too little
//! reclaimable space, one as soon as they estimate enough; the interval decides for engines
//! that give no estimate.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use reclaim_cometbft::{
    CompactionPolicyKind, PruningSettings, StateStoreOptions, pruning_executor,
};
use reclaim_conformance::chain::{commit, open};
use reclaim_core::kv::KeyValue;
use reclaim_core::pruning::CompactionDecision;
use reclaim_core::{
    Capabilities, Compactable, KeyRange, KvRead, KvStore, KvWrite, MemoryStore, ScanOrder,
    SpaceAwarePolicy, SpaceReport, StorageError, WriteBatch, WriteOptions,
};

/// The in-memory engine with an estimate the test sets (`u64::MAX`: no estimate).
struct Estimating {
    inner: MemoryStore,
    reclaimable: AtomicU64,
}

impl KvRead for Estimating {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.get(key)
    }
    fn scan(&self, r: &KeyRange, o: ScanOrder, l: usize) -> Result<Vec<KeyValue>, StorageError> {
        self.inner.scan(r, o, l)
    }
}

impl KvWrite for Estimating {
    fn write(&self, batch: WriteBatch, options: WriteOptions) -> Result<(), StorageError> {
        self.inner.write(batch, options)
    }
}

impl Compactable for Estimating {
    fn compact_range(&self, range: &KeyRange) -> Result<(), StorageError> {
        self.inner.compact_range(range)
    }
    fn size_on_disk(&self) -> Result<u64, StorageError> {
        Ok(1000)
    }
    fn space_report(&self) -> Result<SpaceReport, StorageError> {
        let estimate = self.reclaimable.load(Ordering::SeqCst);
        Ok(SpaceReport {
            on_disk: 1000,
            reclaimable: (estimate != u64::MAX).then_some(estimate),
            live_bytes: None,
        })
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
}

fn settings() -> PruningSettings {
    PruningSettings {
        evidence_max_age_heights: 0,
        compact: true,
        compaction_interval: 50,
        policy: CompactionPolicyKind::Space,
        space: SpaceAwarePolicy {
            min_reclaimable_bytes: 200,
            min_reclaimable_percent: 30,
            fallback_interval: 50,
        },
        ..PruningSettings::default()
    }
}

#[test]
fn compaction_waits_for_the_space_and_runs_when_it_is_there() {
    let engine = Arc::new(Estimating {
        inner: MemoryStore::new(),
        reclaimable: AtomicU64::new(100),
    });
    let chain = open(
        Arc::clone(&engine) as Arc<dyn KvStore>,
        StateStoreOptions::default(),
    );
    commit(&chain, 1, 1, 100);
    let exec = pruning_executor(&chain.blocks, &chain.states, settings());
    // 10 % of the store: not worth it, however many heights were pruned.
    let outcome = exec.prune(60).unwrap();
    assert!(
        matches!(
            outcome.compaction,
            CompactionDecision::NotDue {
                pruned_since_last: 59
            }
        ),
        "{:?}",
        outcome.compaction
    );
    // 40 % and above the minimum, but the engines were asked 1 height ago: the policy looks
    // again only once another interval (50 heights) is pruned.
    engine.reclaimable.store(400, Ordering::SeqCst);
    let outcome = exec.prune(61).unwrap();
    assert!(
        matches!(outcome.compaction, CompactionDecision::NotDue { .. }),
        "{:?}",
        outcome.compaction
    );
    commit(&chain, 1, 101, 200);
    let outcome = exec.prune(109).unwrap();
    assert!(
        matches!(outcome.compaction, CompactionDecision::NotDue { .. }),
        "{:?}",
        outcome.compaction
    );
    // 59 + 50 heights pruned: asked again, and the space is there: one compaction, over
    // everything pending.
    let outcome = exec.prune(110).unwrap();
    assert_eq!(
        outcome.compaction,
        CompactionDecision::RanSynchronously { succeeded: true }
    );
    assert!(exec.pending().is_empty());
}

#[test]
fn without_an_estimate_the_interval_decides() {
    let engine = Arc::new(Estimating {
        inner: MemoryStore::new(),
        reclaimable: AtomicU64::new(u64::MAX),
    });
    let chain = open(
        Arc::clone(&engine) as Arc<dyn KvStore>,
        StateStoreOptions::default(),
    );
    commit(&chain, 1, 1, 100);
    let exec = pruning_executor(&chain.blocks, &chain.states, settings());
    let outcome = exec.prune(40).unwrap();
    assert!(matches!(
        outcome.compaction,
        CompactionDecision::NotDue { .. }
    ));
    let outcome = exec.prune(60).unwrap();
    assert_eq!(
        outcome.compaction,
        CompactionDecision::RanSynchronously { succeeded: true }
    );
}
