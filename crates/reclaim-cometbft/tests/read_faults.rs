//! Failing and flaky reads (a dying disk): pruning reports the error and stays consistent,
//! readers get errors (never panics or wrong data), the background pruner counts the failures
//! and recovers, and nothing at or above the retain height is ever lost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reclaim_cometbft::{
    BLOCK_SEGMENT, PruningSettings, RetainHeights, StateStoreOptions, StoreError, pruning_executor,
};
use reclaim_conformance::chain::*;
use reclaim_core::fault::{FaultyStore, ReadFault};
use reclaim_core::{
    BackgroundPruner, KvStore, MemoryStore, PruneError, PruneLimits, PruningExecutor, StorageError,
};

fn faulty_chain(height: u64) -> (Arc<FaultyStore>, Chain) {
    let faulty = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new())));
    let chain = open(
        Arc::clone(&faulty) as Arc<dyn KvStore>,
        StateStoreOptions::default(),
    );
    commit(&chain, 1, 1, height);
    (faulty, chain)
}

fn executor(chain: &Chain, batch: u64, limits: PruneLimits) -> PruningExecutor {
    let options = PruningSettings {
        evidence_max_age_heights: 20,
        batch_heights: batch,
        limits,
        ..PruningSettings::default()
    };
    pruning_executor(&chain.blocks, &chain.states, options)
}

#[test]
fn a_failing_disk_fails_pruning_cleanly_and_a_healed_one_finishes_it() {
    let (faulty, chain) = faulty_chain(200);
    let exec = executor(&chain, 16, PruneLimits::UNBOUNDED);
    faulty.set_read_fault(ReadFault::Error);
    let err = exec.prune(150).expect_err("reads fail");
    assert!(
        matches!(
            (&err, err.segment_error::<StoreError>()),
            (
                PruneError::Segment { segment, .. },
                Some(StoreError::Storage(StorageError::Io { .. }))
            ) if segment == BLOCK_SEGMENT
        ),
        "{err}"
    );
    assert!(faulty.reads_failed() > 0);
    // Reads fail loudly, never as "missing" and never as a panic.
    assert!(matches!(
        chain.blocks.load_block_meta(170),
        Err(StoreError::Storage(StorageError::Io { .. }))
    ));
    assert!(chain.states.load_validators(170).is_err());
    faulty.set_read_fault(ReadFault::None);
    check_invariants(&chain, 1);
    let outcome = exec.prune(150).expect("healed");
    assert_eq!(
        outcome.segment(BLOCK_SEGMENT).map(|s| s.after.base),
        Some(150)
    );
    check_invariants(&chain, 1);
}

#[test]
fn a_flaky_disk_never_corrupts_and_retries_get_there() {
    let (faulty, chain) = faulty_chain(400);
    let exec = executor(&chain, 8, PruneLimits::UNBOUNDED);
    let mut failures = 0;
    for retain in (20..=380).step_by(20) {
        faulty.set_read_fault(ReadFault::EveryNth(7));
        // Retry like a node's pruning loop would; every attempt leaves a consistent store.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match exec.prune(retain) {
                Ok(outcome) if !outcome.more_to_do() => break,
                Ok(_) => {}
                Err(PruneError::Segment { .. }) => failures += 1,
                Err(e) => panic!("unexpected {e}"),
            }
            assert!(attempts < 1000, "no progress at retain {retain}");
        }
        faulty.set_read_fault(ReadFault::None);
        check_invariants(&chain, 1);
        assert_eq!(chain.blocks.base(), retain);
    }
    assert!(failures > 0, "the flaky disk never failed a prune");
    println!(
        "flaky disk: {failures} failed prunes, {} failed reads, nothing lost",
        faulty.reads_failed()
    );
}

#[test]
fn slow_reads_only_slow_pruning_down() {
    let (faulty, chain) = faulty_chain(60);
    let exec = executor(&chain, 10, PruneLimits::UNBOUNDED);
    faulty.set_read_fault(ReadFault::Delay(Duration::from_millis(2)));
    let started = Instant::now();
    exec.prune(50).expect("slow but fine");
    assert!(started.elapsed() >= Duration::from_millis(2));
    faulty.set_read_fault(ReadFault::None);
    check_invariants(&chain, 1);
}

#[test]
fn the_background_pruner_counts_read_failures_and_recovers() {
    let (faulty, chain) = faulty_chain(300);
    let exec = Arc::new(executor(
        &chain,
        10,
        PruneLimits {
            max_heights: Some(30),
            max_duration: None,
        },
    ));
    let retain = Arc::new(RetainHeights::open(Arc::clone(&chain.blocks), false, 0).unwrap());
    retain.set_application(250).unwrap();
    faulty.set_read_fault(ReadFault::Error);
    let pruner =
        BackgroundPruner::start(Arc::clone(&exec), retain, Duration::from_millis(20)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while pruner.stats().errors < 3 {
        assert!(Instant::now() < deadline, "no failure recorded");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        pruner
            .stats()
            .last_error
            .unwrap()
            .contains("injected read error")
    );
    assert_eq!(chain.blocks.base(), 1, "nothing pruned on a failing disk");
    faulty.set_read_fault(ReadFault::None);
    while chain.blocks.base() < 250 || chain.states.base() < 250 {
        assert!(
            Instant::now() < deadline,
            "no recovery: {:?}",
            pruner.stats()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    pruner.shutdown(Duration::from_secs(10)).unwrap();
    check_invariants(&chain, 1);
}

#[test]
fn a_run_that_cannot_progress_does_not_spin_the_background_pruner() {
    let (_faulty, chain) = faulty_chain(100);
    let exec = Arc::new(executor(
        &chain,
        10,
        PruneLimits {
            max_heights: Some(0),
            max_duration: None,
        },
    ));
    let retain = Arc::new(RetainHeights::open(Arc::clone(&chain.blocks), false, 0).unwrap());
    retain.set_application(50).unwrap();
    let pruner = BackgroundPruner::start(exec, retain, Duration::from_secs(3600)).unwrap();
    assert!(pruner.wake());
    std::thread::sleep(Duration::from_millis(300));
    let stats = pruner.stats();
    assert_eq!(
        stats.runs, 1,
        "a run without progress must wait for the next tick: {stats:?}"
    );
    assert_eq!(chain.blocks.base(), 1);
    pruner.shutdown(Duration::from_secs(10)).unwrap();
}
