//! A new kind of data joins pruning by one file (`segments/tx_index.rs`) and one registration:
//! the executor then prunes it with the block and state stores, refuses nothing it should
//! keep, and compacts what pruning left behind in it.

#[path = "segments/tx_index.rs"]
mod tx_index;

use std::sync::Arc;

use reclaim_cometbft::{PruningSettings, StateStoreOptions, pruning_executor};
use reclaim_conformance::chain::{check_invariants, commit, open};
use reclaim_core::fault::FaultyStore;
use reclaim_core::pruning::CompactionDecision;
use reclaim_core::{KeyRange, KvRead, KvStore, MemoryStore, PruneSegment, ScanOrder};
use tx_index::{TxIndex, TxIndexError};

const HEIGHT: u64 = 120;
const RETAIN: u64 = 70;

fn results(h: u64) -> Vec<Vec<u8>> {
    (0..3).map(|i| format!("tx-{h}-{i}").into_bytes()).collect()
}

fn settings() -> PruningSettings {
    PruningSettings {
        evidence_max_age_heights: 0,
        batch_heights: 16,
        compact: true,
        compaction_interval: 1,
        policy: reclaim_cometbft::CompactionPolicyKind::Interval,
        ..PruningSettings::default()
    }
}

#[test]
fn a_registered_segment_is_pruned_and_compacted_with_the_chain() {
    let chain_db = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new())));
    let tx_db = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new())));
    let chain = open(
        Arc::clone(&chain_db) as Arc<dyn KvStore>,
        StateStoreOptions::default(),
    );
    let txs = Arc::new(TxIndex::open(Arc::clone(&tx_db) as Arc<dyn KvStore>).unwrap());
    commit(&chain, 1, 1, HEIGHT);
    for h in 1..=HEIGHT {
        txs.index(h, &results(h)).unwrap();
    }

    // The one registration.
    let exec = pruning_executor(&chain.blocks, &chain.states, settings())
        .register(Arc::clone(&txs) as Arc<dyn PruneSegment>);

    let outcome = exec.prune(RETAIN).unwrap();
    assert_eq!(
        outcome.compaction,
        CompactionDecision::RanSynchronously { succeeded: true }
    );
    let tx = outcome.segment("tx_index").expect("the tx index ran");
    assert_eq!((tx.before.base, tx.after.base), (1, RETAIN));
    assert_eq!(tx.report.heights_pruned, RETAIN - 1);
    assert!(tx.report.complete && tx.report.batches > 1);

    // Pruned: below the retain height, refused with the typed error; kept: exact.
    for h in 1..RETAIN {
        assert!(
            matches!(txs.load(h, 0), Err(TxIndexError::Pruned(_))),
            "{h}"
        );
    }
    for h in RETAIN..=HEIGHT {
        for (i, result) in (0u32..).zip(results(h)) {
            assert_eq!(txs.load(h, i).unwrap(), Some(result));
        }
    }
    // The index's engine holds nothing below the retain height any more.
    let stale = tx_db
        .scan(&txs_range(0, RETAIN), ScanOrder::Ascending, 10)
        .unwrap();
    assert!(stale.is_empty(), "{stale:?}");

    // Compaction reached the new segment's engine, over exactly its pruned heights, as a target
    // of its own; the chain's engine got the chain's ranges.
    let compacted = tx_db.compacted_ranges();
    assert_eq!(compacted, vec![txs_range(1, RETAIN)]);
    assert!(!chain_db.compacted_ranges().is_empty());
    assert!(
        !chain_db
            .compacted_ranges()
            .iter()
            .any(|r| r.start().is_some_and(|s| s.starts_with(b"txIndex:")))
    );
    check_invariants(&chain, 1);

    // Progress is persisted: a reopened index starts at the retain height.
    let reopened = TxIndex::open(Arc::clone(&tx_db) as Arc<dyn KvStore>).unwrap();
    assert_eq!(PruneSegment::bounds(&reopened).base, RETAIN);
}

#[test]
fn segments_sharing_the_chain_engine_are_one_compaction_target() {
    let db: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
    let chain = open(Arc::clone(&db), StateStoreOptions::default());
    let txs = Arc::new(TxIndex::open(Arc::clone(&db)).unwrap());
    commit(&chain, 1, 1, 40);
    for h in 1..=40 {
        txs.index(h, &results(h)).unwrap();
    }
    let exec = pruning_executor(&chain.blocks, &chain.states, settings())
        .register(Arc::clone(&txs) as Arc<dyn PruneSegment>);
    let task = exec.task_for_heights("t", 1, 20);
    assert_eq!(
        task.target_names(),
        vec!["block_store+state_store+tx_index"]
    );
    exec.prune(20).unwrap();
    assert!(matches!(txs.load(19, 0), Err(TxIndexError::Pruned(_))));
    assert_eq!(txs.load(20, 2).unwrap(), Some(b"tx-20-2".to_vec()));
    check_invariants(&chain, 1);
}

fn txs_range(from: u64, to: u64) -> KeyRange {
    reclaim_core::height::height_range(b"txIndex:", from, to)
}
