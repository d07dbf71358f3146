//! Cases that run the core's stores, pruning executor and compactor on top of the adapter.

use std::sync::Arc;
use std::time::Duration;

use reclaim_cometbft::{Block, PruningSettings, StateStoreOptions, StoreError, pruning_executor};
use reclaim_core::fault::{CompactionFault, FaultyStore};
use reclaim_core::pruning::CompactionDecision;
use reclaim_core::{
    Compactable, CompactionTask, Compactor, KvStore, MemoryStore, PruningExecutor, WriteBatch,
    WriteOptions,
};

use crate::Harness;
use crate::cases::dump;
use crate::chain::{Chain, check_invariants, commit, height_state, open};
use crate::data::random_bytes;

/// Pruning options with the evidence window and batch size a case needs.
pub(crate) fn options(evidence: u64, batch: u64) -> PruningSettings {
    PruningSettings {
        evidence_max_age_heights: evidence,
        batch_heights: batch,
        ..PruningSettings::default()
    }
}

/// An executor over the case's chain.
pub(crate) fn executor(chain: &Chain, options: PruningSettings) -> PruningExecutor {
    pruning_executor(&chain.blocks, &chain.states, options)
}

/// The adapter's store wrapped in a [`FaultyStore`] (which counts concurrent compactions),
/// with a chain of heights `1..=heights` committed on top.
pub(crate) fn faulty_chain(store: &Arc<dyn KvStore>, heights: u64) -> (Arc<FaultyStore>, Chain) {
    let faulty = Arc::new(FaultyStore::new(Arc::clone(store)));
    let chain = open(
        Arc::clone(&faulty) as Arc<dyn KvStore>,
        StateStoreOptions::default(),
    );
    commit(&chain, 1, 1, heights);
    (faulty, chain)
}

/// Pruning with synchronous compaction keeps the evidence window and every lookup at or above
/// the retain height, state pointers included, also after reopening.
pub fn executor_prunes_without_compactor(h: &Harness) {
    let store = h.open();
    {
        let chain = open(Arc::clone(&store), StateStoreOptions::default());
        commit(&chain, 1, 1, 120);
        let opts = PruningSettings {
            compact: true,
            compaction_interval: 1,
            policy: reclaim_cometbft::CompactionPolicyKind::Interval,
            ..options(20, 16)
        };
        let exec = executor(&chain, opts);
        let outcome = exec.prune(80).expect("prune");
        assert_eq!(outcome.heights_pruned(), 79);
        assert_eq!(
            outcome.compaction,
            CompactionDecision::RanSynchronously { succeeded: true }
        );
        // The evidence window starts at 120 - 20 = 100, above the base: every pruned height is
        // older than the window, so its meta and commit go too.
        assert_eq!(chain.blocks.bounds().evidence_base, 80);
        check_invariants(&chain, 1);
        assert_eq!(
            chain.states.load_validators(80).expect("load"),
            Some(b"vals-77".to_vec())
        );
        assert_eq!(
            chain.states.load_consensus_params(80).expect("load"),
            Some(b"params-77".to_vec())
        );
    }
    let store = h.reopen(store);
    let chain = open(store, StateStoreOptions::default());
    assert_eq!(chain.blocks.base(), 80);
    check_invariants(&chain, 1);
}

/// With this adapter underneath, the compactor never runs two compactions at once, whoever
/// enqueues.
pub fn executor_single_flight_holds(h: &Harness) {
    let store = h.open();
    let (faulty, chain) = faulty_chain(&store, 200);
    faulty.set_compaction_fault(CompactionFault::Delay(Duration::from_millis(5)));
    let compactor = Arc::new(Compactor::new().expect("compactor"));
    let opts = PruningSettings {
        compact: true,
        compaction_interval: 1,
        policy: reclaim_cometbft::CompactionPolicyKind::Interval,
        ..options(0, 10)
    };
    let exec = executor(&chain, opts).with_compactor(Arc::clone(&compactor));
    std::thread::scope(|s| {
        for _ in 0..3 {
            let compactor = &compactor;
            let faulty = &faulty;
            s.spawn(move || {
                for _ in 0..100 {
                    let task = CompactionTask::new("contender")
                        .with_target("store", Arc::clone(faulty) as Arc<dyn Compactable>);
                    compactor.try_enqueue(task);
                    std::thread::sleep(Duration::from_micros(500));
                }
            });
        }
        for retain in (10..=190).step_by(10) {
            exec.prune(retain).expect("prune");
        }
    });
    assert!(
        compactor.wait_idle(Duration::from_secs(60)),
        "compactor never went idle"
    );
    assert_eq!(
        faulty.max_concurrent_compactions(),
        1,
        "two compactions overlapped"
    );
    assert!(compactor.stats().succeeded >= 1);
    check_invariants(&chain, 1);
}

/// A crash before any of several pruning writes loses nothing; after reopening the real store,
/// one more prune leaves exactly what an uninterrupted prune leaves.
pub fn executor_resumes_after_crash(h: &Harness) {
    let opts = options(15, 8);
    let expected = {
        let reference = MemoryStore::new();
        let chain = open(Arc::new(reference.clone()), StateStoreOptions::default());
        commit(&chain, 1, 1, 80);
        executor(&chain, opts).prune(60).expect("reference prune");
        reference.snapshot()
    };
    for crash_after in [0, 1, 2, 4, 7, 9, 12] {
        let path = h.scratch().join(format!("crash-{crash_after}"));
        let store = h.open_at(&path);
        {
            let faulty = Arc::new(FaultyStore::new(Arc::clone(&store)));
            let chain = open(
                Arc::clone(&faulty) as Arc<dyn KvStore>,
                StateStoreOptions::default(),
            );
            commit(&chain, 1, 1, 80);
            faulty.crash_after_writes(crash_after);
            assert!(
                executor(&chain, opts).prune(60).is_err(),
                "the injected crash after {crash_after} writes did not stop the prune"
            );
        }
        let store = h.reopen_at(&path, store);
        {
            let chain = open(Arc::clone(&store), StateStoreOptions::default());
            check_invariants(&chain, 1);
            executor(&chain, opts).prune(60).expect("resumed prune");
            check_invariants(&chain, 1);
        }
        assert!(
            dump(store.as_ref()) == expected,
            "after a crash after {crash_after} writes and a resumed prune, the store differs from an uninterrupted prune"
        );
    }
}

/// Pruning to the same height again changes nothing.
pub fn executor_repeated_prune_is_idempotent(h: &Harness) {
    let store = h.open();
    let chain = open(Arc::clone(&store), StateStoreOptions::default());
    commit(&chain, 1, 1, 60);
    let exec = executor(&chain, options(10, 7));
    exec.prune(45).expect("prune");
    let before = dump(store.as_ref());
    for _ in 0..3 {
        assert_eq!(exec.prune(45).expect("prune").heights_pruned(), 0);
        assert_eq!(exec.prune(30).expect("prune").heights_pruned(), 0);
    }
    assert!(
        dump(store.as_ref()) == before,
        "a repeated prune changed the store"
    );
    check_invariants(&chain, 1);
}

const HEAVY_PARTS: usize = 4;
const HEAVY_PART_BYTES: usize = 8 << 10;

fn commit_heavy(chain: &Chain, first: u64, from: u64, to: u64) {
    for h in from..=to {
        let block = Block {
            height: h,
            hash: format!("hash-{h}").into_bytes(),
            meta: random_bytes(h, 300),
            parts: (0..HEAVY_PARTS as u64)
                .map(|i| random_bytes(h * 1000 + i, HEAVY_PART_BYTES))
                .collect(),
            commit: random_bytes(h + (1 << 40), 500),
            seen_commit: random_bytes(h + (2 << 40), 500),
            extended_commit: None,
        };
        chain
            .blocks
            .save_block(&block, WriteOptions::BUFFERED)
            .expect("save block");
        chain
            .states
            .save(&height_state(first, h), WriteOptions::BUFFERED)
            .expect("save state");
    }
}

/// The heights of the chain that [`executor_pruned_chain_compacts_to_retained_size`] prunes by
/// 90 %: enough that the retained heights (5 MiB of blocks) outweigh what an engine's file
/// layout rounds to (sled's sizes vary by a few hundred KiB from run to run, as much as 1.26×
/// a 4 MiB store with 400 heights).
const PRUNED_CHAIN_HEIGHTS: u64 = 1600;
/// The first height [`executor_pruned_chain_compacts_to_retained_size`] keeps.
const PRUNED_CHAIN_RETAIN_FROM: u64 = PRUNED_CHAIN_HEIGHTS - PRUNED_CHAIN_HEIGHTS / 10 + 1;

/// A chain of incompressible blocks pruned by 90% and compacted in the background ends within
/// the declared factor of a fresh store holding only the retained heights.
pub fn executor_pruned_chain_compacts_to_retained_size(h: &Harness) {
    let store = h.open();
    let capabilities = store.capabilities();
    let chain = open(Arc::clone(&store), StateStoreOptions::default());
    commit_heavy(&chain, 1, 1, PRUNED_CHAIN_HEIGHTS);
    // The chain was written buffered: a durable (empty) write puts what an engine still holds
    // in memory on disk, so the full chain is measured as stored.
    store
        .write(WriteBatch::new(), WriteOptions::DURABLE)
        .expect("sync");
    let full = store.size_on_disk().expect("size");
    let compactor = Arc::new(Compactor::new().expect("compactor"));
    let opts = PruningSettings {
        compact: true,
        compaction_interval: 1,
        policy: reclaim_cometbft::CompactionPolicyKind::Interval,
        ..options(0, 100)
    };
    let exec = executor(&chain, opts).with_compactor(Arc::clone(&compactor));
    let outcome = exec.prune(PRUNED_CHAIN_RETAIN_FROM).expect("prune");
    assert_eq!(outcome.compaction, CompactionDecision::Enqueued);
    assert!(
        compactor.wait_idle(Duration::from_secs(300)),
        "compaction did not finish"
    );
    assert_eq!(compactor.stats().failed, 0);
    let compacted = store.size_on_disk().expect("size");
    let (fresh_dir, fresh_store) = h.fresh();
    let fresh = open(Arc::clone(&fresh_store), StateStoreOptions::default());
    commit_heavy(
        &fresh,
        PRUNED_CHAIN_RETAIN_FROM,
        PRUNED_CHAIN_RETAIN_FROM,
        PRUNED_CHAIN_HEIGHTS,
    );
    fresh_store
        .compact_range(&reclaim_core::KeyRange::full())
        .expect("compact fresh");
    let limit = fresh_store.size_on_disk().expect("size").max(1);
    // A journal the engine keeps whatever compaction does is allowed on top (declared).
    let ratio = compacted.saturating_sub(capabilities.journal_bytes_kept_after_compaction) as f64
        / limit as f64;
    crate::report::figure(&format!(
        "engine={} chain_full={full} pruned_90pct_compacted={compacted} \
         fresh_retained={limit} ratio={ratio:.3} declared_max={} journal_kept_declared={}",
        capabilities.engine,
        capabilities.max_space_factor_after_compaction,
        capabilities.journal_bytes_kept_after_compaction
    ));
    if capabilities.compaction_reclaims_space {
        assert!(
            ratio <= capabilities.max_space_factor_after_compaction,
            "{}: {compacted} bytes after pruning 90% and compacting (less {} bytes of journal \
             declared kept) is {ratio:.2}x a fresh store with the retained heights ({limit} \
             bytes); declared at most {}x",
            capabilities.engine,
            capabilities.journal_bytes_kept_after_compaction,
            capabilities.max_space_factor_after_compaction
        );
        // The same on apparent lengths, without the journal allowance (a journal preallocated
        // to a fixed length weighs the same on both sides). Skipped without files (memory).
        let apparent_compacted = crate::cases::apparent_bytes(&h.store_dir());
        let apparent_fresh = crate::cases::apparent_bytes(&fresh_dir);
        if apparent_compacted > 0 {
            let apparent_ratio = apparent_compacted as f64 / apparent_fresh.max(1) as f64;
            crate::report::figure(&format!(
                "engine={} apparent_compacted={apparent_compacted} apparent_fresh={apparent_fresh} \
                 apparent_ratio={apparent_ratio:.3}",
                capabilities.engine
            ));
            assert!(
                apparent_ratio <= capabilities.max_space_factor_after_compaction,
                "{}: apparent lengths: {apparent_compacted} bytes after pruning 90% and \
                 compacting are {apparent_ratio:.2}x a fresh store with the retained heights \
                 ({apparent_fresh} bytes); declared at most {}x",
                capabilities.engine,
                capabilities.max_space_factor_after_compaction
            );
        }
    }
    assert_eq!(
        chain
            .blocks
            .load_block_parts(PRUNED_CHAIN_RETAIN_FROM)
            .expect("parts")
            .len(),
        HEAVY_PARTS
    );
}

/// Writers, readers, the pruner and the compactor together for a bounded time (3 s, or
/// `RECLAIM_LOAD_SECS`), under a watchdog that fails the case if any of them makes no progress
/// for 20 s; single flight is checked throughout and every invariant at the end.
pub fn executor_load_with_watchdog(h: &Harness) {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let seconds = std::env::var("RECLAIM_LOAD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let store = h.open();
    let (faulty, chain) = faulty_chain(&store, 200);
    let compactor = Arc::new(Compactor::new().expect("compactor"));
    let opts = PruningSettings {
        compact: true,
        compaction_interval: 50,
        policy: reclaim_cometbft::CompactionPolicyKind::Interval,
        ..options(30, 25)
    };
    let exec = executor(&chain, opts).with_compactor(Arc::clone(&compactor));
    let stop = AtomicBool::new(false);
    // Progress counters: writer, reader, pruner.
    let progress = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];
    let names = ["writer", "reader", "pruner"];
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut next = chain.blocks.height() + 1;
            while !stop.load(Ordering::SeqCst) {
                commit(&chain, 1, next, next);
                next += 1;
                progress[0].fetch_add(1, Ordering::SeqCst);
            }
        });
        s.spawn(|| {
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let tip = chain.blocks.height();
                let height = tip - (i % 50);
                // Exact when served; otherwise refused as pruned, never missing or partial.
                match chain.blocks.load_block_meta(height) {
                    Ok(meta) => assert_eq!(
                        meta,
                        Some(crate::chain::block(height).meta),
                        "wrong or missing meta for height {height} under load"
                    ),
                    Err(StoreError::Pruned { .. }) => {}
                    Err(e) => panic!("read of height {height} failed under load: {e}"),
                }
                match chain.blocks.load_block_parts(height) {
                    Ok(parts) => assert_eq!(
                        parts,
                        crate::chain::block(height).parts,
                        "partial block at height {height} under load"
                    ),
                    Err(StoreError::Pruned { .. }) => {}
                    Err(e) => panic!("parts of height {height} failed under load: {e}"),
                }
                i += 1;
                progress[1].fetch_add(1, Ordering::SeqCst);
            }
        });
        s.spawn(|| {
            while !stop.load(Ordering::SeqCst) {
                let retain = chain.blocks.height().saturating_sub(100).max(1);
                exec.prune(retain).expect("prune under load");
                progress[2].fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let started = std::time::Instant::now();
        let mut last = [0u64; 3];
        let mut last_change = [started; 3];
        while started.elapsed() < Duration::from_secs(seconds) {
            std::thread::sleep(Duration::from_millis(100));
            for (i, counter) in progress.iter().enumerate() {
                let now = counter.load(Ordering::SeqCst);
                if now != last[i] {
                    last[i] = now;
                    last_change[i] = std::time::Instant::now();
                } else if last_change[i].elapsed() > Duration::from_secs(20) {
                    stop.store(true, Ordering::SeqCst);
                    panic!("watchdog: the {} made no progress for 20 s", names[i]);
                }
            }
        }
        stop.store(true, Ordering::SeqCst);
    });
    assert!(
        compactor.wait_idle(Duration::from_secs(120)),
        "compactor stalled"
    );
    assert_eq!(
        faulty.max_concurrent_compactions(),
        1,
        "two compactions overlapped under load"
    );
    let stats = compactor.stats();
    let counts: Vec<u64> = progress.iter().map(|c| c.load(Ordering::SeqCst)).collect();
    crate::report::figure(&format!(
        "engine={} load_seconds={seconds} commits={} reads={} prunes={} compactions={} skipped={}",
        store.capabilities().engine,
        counts[0],
        counts[1],
        counts[2],
        stats.succeeded,
        stats.skipped_busy
    ));
    assert!(
        counts.iter().all(|&c| c > 0),
        "a thread never ran: {counts:?}"
    );
    assert_eq!(stats.failed, 0);
    check_invariants(&chain, 1);
}
