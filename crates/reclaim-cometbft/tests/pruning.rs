//! The pruning executor on the in-memory engine: validation, evidence window, state pointers,
//! crash safety at every write, and the compaction policy.

use std::sync::Arc;
use std::time::Duration;

use reclaim_cometbft::{
    BLOCK_SEGMENT, PruningSettings, STATE_SEGMENT, StateStoreOptions, pruning_executor,
};
use reclaim_conformance::chain::*;
use reclaim_core::compaction::Busy;
use reclaim_core::fault::{CompactionFault, FaultyStore};
use reclaim_core::pruning::CompactionDecision;
use reclaim_core::{Compactor, EnqueueOutcome, KvStore, MemoryStore, PruneError, PruningExecutor};

fn options(evidence: u64, batch: u64) -> PruningSettings {
    PruningSettings {
        evidence_max_age_heights: evidence,
        batch_heights: batch,
        ..PruningSettings::default()
    }
}

fn executor_on(
    db: Arc<dyn KvStore>,
    first: u64,
    height: u64,
    opts: PruningSettings,
) -> (Chain, PruningExecutor) {
    let chain = open(db, StateStoreOptions::default());
    commit(&chain, first, first, height);
    let exec = pruning_executor(&chain.blocks, &chain.states, opts);
    (chain, exec)
}

/// The store's entries but the pending-compaction hint, which differs between a resumed prune
/// and an uninterrupted one by design.
fn chain_data(store: &MemoryStore) -> Vec<(Vec<u8>, Vec<u8>)> {
    store
        .snapshot()
        .into_iter()
        .filter(|(k, _)| k.as_slice() != reclaim_cometbft::keys::PENDING_COMPACTION.key)
        .collect()
}

fn memory_executor(height: u64, opts: PruningSettings) -> (MemoryStore, Chain, PruningExecutor) {
    let store = MemoryStore::new();
    let (chain, exec) = executor_on(Arc::new(store.clone()), 1, height, opts);
    (store, chain, exec)
}

#[test]
fn invalid_retain_heights_are_refused_and_change_nothing() {
    let (store, chain, exec) = memory_executor(50, options(0, 1000));
    let before = store.snapshot();
    assert!(matches!(exec.prune(0), Err(PruneError::ZeroRetainHeight)));
    let err = exec.prune(51).unwrap_err();
    assert!(
        matches!(
            err,
            PruneError::AboveChainHeight {
                retain: 51,
                height: 50
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "retain height 51 is above the chain's height 50"
    );
    assert!(matches!(
        exec.prune(u64::MAX),
        Err(PruneError::AboveChainHeight { .. })
    ));
    assert_eq!(store.snapshot(), before);
    // At or below base: nothing to do.
    let outcome = exec.prune(1).unwrap();
    assert_eq!(outcome.heights_pruned(), 0);
    assert_eq!(outcome.compaction, CompactionDecision::NothingPruned);
    exec.prune(20).unwrap();
    let snapshot = store.snapshot();
    let outcome = exec.prune(10).unwrap();
    assert_eq!(outcome.heights_pruned(), 0);
    assert_eq!(store.snapshot(), snapshot);
    check_invariants(&chain, 1);
}

#[test]
fn empty_store_refuses_any_retain_height() {
    let store = MemoryStore::new();
    let (_, exec) = executor_on(Arc::new(store), 1, 0, options(0, 1000));
    assert!(matches!(
        exec.prune(1),
        Err(PruneError::AboveChainHeight {
            retain: 1,
            height: 0
        })
    ));
}

#[test]
fn pruning_keeps_everything_at_or_above_the_retain_height() {
    let (_, chain, exec) = memory_executor(100, options(0, 7));
    let outcome = exec.prune(60).unwrap();
    assert_eq!(outcome.heights_pruned(), 59);
    let blocks = outcome.segment(BLOCK_SEGMENT).expect("block segment");
    assert_eq!((blocks.before.base, blocks.after.base), (1, 60));
    assert_eq!(chain.blocks.base(), 60);
    assert_eq!(chain.states.base(), 60);
    check_invariants(&chain, 1);
    // Height 60's validator set changed at 56 and its params at 55: both must still resolve.
    assert_eq!(
        chain.states.load_validators(60).unwrap(),
        Some(b"vals-56".to_vec())
    );
    assert_eq!(
        chain.states.load_consensus_params(61).unwrap(),
        Some(b"params-55".to_vec())
    );
    for h in 1..60 {
        assert_pruned(chain.blocks.load_block_meta(h), "meta", h);
        assert_eq!(
            chain
                .blocks
                .height_by_hash(format!("hash-{h}").as_bytes())
                .unwrap(),
            None
        );
    }
}

#[test]
fn evidence_window_keeps_meta_commit_and_validators() {
    // Chain height 100, evidence age 30: heights >= 70 keep meta, commit and validator set.
    let (_, chain, exec) = memory_executor(100, options(30, 1000));
    exec.prune(90).unwrap();
    let b = chain.blocks.bounds();
    assert_eq!((b.evidence_base, b.base), (70, 90));
    for h in 70..90 {
        assert!(
            chain.blocks.load_block_meta(h).unwrap().is_some(),
            "meta {h}"
        );
        assert!(
            chain.blocks.load_block_commit(h).unwrap().is_some(),
            "commit {h}"
        );
        assert_pruned(chain.blocks.load_block_parts(h), "parts", h);
        assert_eq!(
            chain.states.load_validators(h).unwrap(),
            Some(expected_validators(1, h))
        );
        assert_pruned(chain.states.load_finalize_block_response(h), "response", h);
    }
    assert_pruned(chain.blocks.load_block_meta(69), "meta", 69);
    check_invariants(&chain, 1);
    // As the chain grows, the evidence window moves and its tail is dropped by later prunes.
    commit(&chain, 1, 101, 130);
    exec.prune(95).unwrap();
    assert_eq!(chain.blocks.bounds().evidence_base, 95);
    assert_eq!(chain.states.bounds().validators_base, 95);
    assert_pruned(chain.blocks.load_block_meta(90), "meta", 90);
    check_invariants(&chain, 1);
}

#[test]
fn kept_full_records_are_dropped_once_nothing_points_to_them() {
    let (store, chain, exec) = memory_executor(100, options(0, 1000));
    exec.prune(30).unwrap();
    // 30 points to the set changed at 28 and the params changed at 22.
    let s = chain.states.bounds();
    assert_eq!((s.validators_kept, s.params_kept), (28, 22));
    exec.prune(80).unwrap();
    let s = chain.states.bounds();
    assert_eq!((s.validators_kept, s.params_kept), (77, 77));
    check_invariants(&chain, 1);
    let full_below_base = store
        .snapshot()
        .into_iter()
        .filter(|(k, _)| k.starts_with(b"validatorsKey:") || k.starts_with(b"consensusParamsKey:"))
        .filter(|(k, _)| u64::from_be_bytes(k[k.len() - 8..].try_into().unwrap()) < 80)
        .count();
    assert_eq!(
        full_below_base, 2,
        "only the two records height 80 points to remain below it"
    );
}

#[test]
fn repeated_pruning_is_idempotent() {
    let (store, chain, exec) = memory_executor(120, options(10, 13));
    exec.prune(70).unwrap();
    let snapshot = store.snapshot();
    for _ in 0..3 {
        let outcome = exec.prune(70).unwrap();
        assert_eq!(outcome.heights_pruned(), 0);
        assert_eq!(store.snapshot(), snapshot);
    }
    check_invariants(&chain, 1);
}

/// Prunes with a crash injected before write `n`, for every `n` the prune makes, then reopens
/// the stores, checks every invariant, prunes again and compares with an uninterrupted run.
#[test]
fn a_crash_before_any_write_loses_nothing_and_the_next_prune_finishes() {
    let opts = options(25, 6);
    let (reference_store, _, reference) = memory_executor(90, opts);
    reference.prune(70).unwrap();
    let expected = chain_data(&reference_store);

    let mut crash_points = 0;
    for n in 0.. {
        let inner = MemoryStore::new();
        let faulty = Arc::new(FaultyStore::new(Arc::new(inner.clone())));
        let (_, exec) = executor_on(Arc::clone(&faulty) as Arc<dyn KvStore>, 1, 90, opts);
        faulty.crash_after_writes(n);
        let result = exec.prune(70);
        faulty.heal();
        if result.is_ok() {
            assert_eq!(chain_data(&inner), expected, "uninterrupted run differs");
            break;
        }
        crash_points += 1;
        // "Restart": open new stores on what was persisted.
        let (chain, exec) = {
            let chain = open(Arc::new(inner.clone()), StateStoreOptions::default());
            let exec = pruning_executor(&chain.blocks, &chain.states, opts);
            (chain, exec)
        };
        check_invariants(&chain, 1);
        assert!(chain.blocks.base() <= 70 && chain.states.base() <= 70);
        exec.prune(70).unwrap();
        check_invariants(&chain, 1);
        assert_eq!(
            chain_data(&inner),
            expected,
            "resumed after crash before write {n}"
        );
    }
    // 69 heights in batches of 6 for blocks and states, plus evidence batches.
    assert!(
        crash_points >= 24,
        "only {crash_points} crash points exercised"
    );
}

#[test]
fn a_crash_between_block_and_state_pruning_is_finished_by_any_later_prune() {
    let opts = options(0, 1000);
    let inner = MemoryStore::new();
    let faulty = Arc::new(FaultyStore::new(Arc::new(inner.clone())));
    let (chain, exec) = executor_on(Arc::clone(&faulty) as Arc<dyn KvStore>, 1, 50, opts);
    // One block batch, one evidence batch and the block store's synced bounds succeed, the
    // first state batch "crashes".
    faulty.crash_after_writes(3);
    assert!(matches!(
        exec.prune(40),
        Err(PruneError::Segment { segment, .. }) if segment == STATE_SEGMENT
    ));
    faulty.heal();
    assert_eq!((chain.blocks.base(), chain.states.base()), (40, 1));
    // Even a retain height at the block base (a no-op for blocks) finishes the state.
    exec.prune(40).unwrap();
    assert_eq!(chain.states.base(), 40);
    check_invariants(&chain, 1);
}

#[test]
fn compaction_follows_the_interval_and_targets_pruned_ranges() {
    let inner = MemoryStore::new();
    let faulty = Arc::new(FaultyStore::new(Arc::new(inner)));
    let opts = PruningSettings {
        compact: true,
        compaction_interval: 30,
        policy: reclaim_cometbft::CompactionPolicyKind::Interval,
        ..options(0, 1000)
    };
    let (_, exec) = executor_on(Arc::clone(&faulty) as Arc<dyn KvStore>, 1, 100, opts);
    let compactor = Arc::new(Compactor::new().unwrap());
    let exec = exec.with_compactor(Arc::clone(&compactor));
    let outcome = exec.prune(11).unwrap();
    assert_eq!(
        outcome.compaction,
        CompactionDecision::NotDue {
            pruned_since_last: 10
        }
    );
    assert_eq!(
        exec.prune(21).unwrap().compaction,
        CompactionDecision::NotDue {
            pruned_since_last: 20
        }
    );
    assert_eq!(
        exec.prune(31).unwrap().compaction,
        CompactionDecision::Enqueued
    );
    assert!(compactor.wait_idle(Duration::from_secs(10)));
    let ranges = faulty.compacted_ranges();
    // State (3 families) and block (6 families) ranges of heights [1, 31) only: the hash
    // index, scattered over the hottest range, is left to the engine.
    assert_eq!(ranges.len(), 9, "{ranges:?}");
    let below =
        |key: &[u8], h: u64| u64::from_be_bytes(key[key.len() - 8..].try_into().unwrap()) <= h;
    for range in &ranges {
        assert!(
            below(range.start().unwrap(), 1) && below(range.end().unwrap(), 31),
            "{range}"
        );
    }
    let stats = compactor.stats();
    assert_eq!((stats.enqueued, stats.succeeded, stats.failed), (1, 1, 0));
}

#[test]
fn a_skipped_compaction_stays_pending_and_runs_later() {
    let inner = MemoryStore::new();
    let faulty = Arc::new(FaultyStore::new(Arc::new(inner)));
    let opts = PruningSettings {
        compact: true,
        compaction_interval: 1,
        policy: reclaim_cometbft::CompactionPolicyKind::Interval,
        ..options(0, 1000)
    };
    let (_, exec) = executor_on(Arc::clone(&faulty) as Arc<dyn KvStore>, 1, 100, opts);
    let compactor = Arc::new(Compactor::new().unwrap());
    let exec = exec.with_compactor(Arc::clone(&compactor));
    faulty.set_compaction_fault(CompactionFault::Delay(Duration::from_millis(300)));
    assert_eq!(
        exec.prune(10).unwrap().compaction,
        CompactionDecision::Enqueued
    );
    let skipped = exec.prune(20).unwrap().compaction;
    assert!(
        matches!(
            skipped,
            CompactionDecision::Skipped(EnqueueOutcome::Busy(_))
        ),
        "{skipped:?}"
    );
    assert!(compactor.wait_idle(Duration::from_secs(30)));
    faulty.set_compaction_fault(CompactionFault::None);
    let before = faulty.compacted_ranges().len();
    assert_eq!(
        exec.prune(30).unwrap().compaction,
        CompactionDecision::Enqueued
    );
    assert!(compactor.wait_idle(Duration::from_secs(10)));
    // The retried task covers the skipped heights too: it starts at height 10.
    let retried = &faulty.compacted_ranges()[before..];
    let first = retried[0].start().unwrap();
    assert_eq!(
        u64::from_be_bytes(first[first.len() - 8..].try_into().unwrap()),
        10
    );
}

#[test]
fn without_a_compactor_compaction_runs_synchronously_and_its_failure_never_fails_pruning() {
    let inner = MemoryStore::new();
    let faulty = Arc::new(FaultyStore::new(Arc::new(inner)));
    let opts = PruningSettings {
        compact: true,
        compaction_interval: 1,
        policy: reclaim_cometbft::CompactionPolicyKind::Interval,
        ..options(0, 1000)
    };
    let (chain, exec) = executor_on(Arc::clone(&faulty) as Arc<dyn KvStore>, 1, 60, opts);
    assert_eq!(
        exec.prune(10).unwrap().compaction,
        CompactionDecision::RanSynchronously { succeeded: true }
    );
    faulty.set_compaction_fault(CompactionFault::Error);
    assert_eq!(
        exec.prune(20).unwrap().compaction,
        CompactionDecision::RanSynchronously { succeeded: false }
    );
    faulty.set_compaction_fault(CompactionFault::Panic);
    assert_eq!(
        exec.prune(30).unwrap().compaction,
        CompactionDecision::RanSynchronously { succeeded: false }
    );
    assert_eq!(chain.blocks.base(), 30);
    check_invariants(&chain, 1);
    faulty.set_compaction_fault(CompactionFault::None);
    let report = exec.compact_all().unwrap();
    assert!(report.succeeded());
}

#[test]
fn compaction_disabled_by_default() {
    let (_, _, exec) = memory_executor(30, options(0, 1000));
    assert_eq!(
        exec.prune(20).unwrap().compaction,
        CompactionDecision::Disabled
    );
}

#[test]
fn separate_engines_for_state_and_blocks_get_one_target_each() {
    let blocks_db = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new())));
    let states_db = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new())));
    let blocks = Arc::new(
        reclaim_cometbft::BlockStore::open(Arc::clone(&blocks_db) as Arc<dyn KvStore>).unwrap(),
    );
    let states = Arc::new(
        reclaim_cometbft::StateStore::open(
            Arc::clone(&states_db) as Arc<dyn KvStore>,
            StateStoreOptions::default(),
        )
        .unwrap(),
    );
    let chain = Chain { blocks, states };
    commit(&chain, 1, 1, 40);
    let opts = PruningSettings {
        compact: true,
        compaction_interval: 1,
        policy: reclaim_cometbft::CompactionPolicyKind::Interval,
        ..options(0, 1000)
    };
    let exec = pruning_executor(&chain.blocks, &chain.states, opts);
    let task = exec.task_for_heights("t", 1, 20);
    assert_eq!(task.target_names(), vec!["block_store", "state_store"]);
    exec.prune(20).unwrap();
    assert_eq!(states_db.compacted_ranges().len(), 3);
    assert_eq!(blocks_db.compacted_ranges().len(), 6);
    check_invariants(&chain, 1);
}

#[test]
fn concurrent_prunes_and_commits_keep_the_invariants() {
    let store = MemoryStore::new();
    let (chain, exec) = executor_on(Arc::new(store), 1, 50, options(5, 4));
    let chain = Arc::new(chain);
    std::thread::scope(|s| {
        let writer = Arc::clone(&chain);
        s.spawn(move || commit(&writer, 1, 51, 400));
        let mut retain = 10;
        while retain < 300 {
            let height = chain.blocks.height();
            if retain <= height {
                exec.prune(retain).unwrap();
                retain += 7;
            }
        }
    });
    check_invariants(&chain, 1);
    let busy = Busy::InFlight;
    assert_ne!(busy, Busy::QueueFull);
}

#[test]
fn the_pending_compaction_survives_a_restart() {
    let opts = PruningSettings {
        compact: true,
        compaction_interval: 30,
        policy: reclaim_cometbft::CompactionPolicyKind::Interval,
        ..options(0, 1000)
    };
    let (_store, chain, exec) = memory_executor(100, opts);
    assert_eq!(
        exec.prune(21).unwrap().compaction,
        CompactionDecision::NotDue {
            pruned_since_last: 20
        }
    );
    drop(exec);
    // A new executor (a restarted node) remembers the 20 heights pruned since the last compaction.
    let exec = pruning_executor(&chain.blocks, &chain.states, opts);
    assert_eq!(
        exec.prune(36).unwrap().compaction,
        CompactionDecision::RanSynchronously { succeeded: true }
    );
    let exec = pruning_executor(&chain.blocks, &chain.states, opts);
    assert_eq!(
        exec.prune(41).unwrap().compaction,
        CompactionDecision::NotDue {
            pruned_since_last: 5
        },
        "the compaction cleared what was pending"
    );
    check_invariants(&chain, 1);
}
