//! Cases for issue-8 behaviour on top of the adapter: compaction slices, paced compaction,
//! bounded pruning runs, retain heights held back by a companion, reads below the base, and
//! the background pruner.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reclaim_cometbft::{
    PruningSettings, RetainHeightError, RetainHeights, StateStoreOptions, StoreError,
};
use reclaim_core::{
    BackgroundPruner, Compactor, KeyRange, Pacing, PruneLimits, SingleFlight, WriteBatch,
    WriteOptions,
};

use crate::Harness;
use crate::cases::dump;
use crate::chain::{block, check_invariants, commit, open};
use crate::executor::{executor, faulty_chain};

/// [`options`](crate::executor::options) with run limits.
fn options(evidence: u64, batch: u64, limits: PruneLimits) -> PruningSettings {
    PruningSettings {
        limits,
        ..crate::executor::options(evidence, batch)
    }
}

/// The slices an adapter proposes tile the range exactly (in order, abutting, nothing outside),
/// whatever the range and target; its plans over several ranges cover every stored key of
/// them; compacting slice by slice changes no data.
pub fn compaction_slices_and_plans_cover_the_ranges(h: &Harness) {
    let store = h.open();
    let mut batch = WriteBatch::new();
    for i in 0..2000u32 {
        batch.put(format!("s{i:06}").into_bytes(), vec![(i % 251) as u8; 512]);
    }
    store.write(batch, WriteOptions::DURABLE).expect("fill");
    let before = dump(store.as_ref());
    let ranges = [
        KeyRange::full(),
        KeyRange::prefix(b"s"),
        KeyRange::between(b"s000100".to_vec(), b"s001500".to_vec()).expect("range"),
        KeyRange::between(b"s000100".to_vec(), b"s000100".to_vec()).expect("range"),
        KeyRange::from(b"zzz".to_vec()),
    ];
    for range in &ranges {
        for target in [1u64, 4 << 10, 64 << 10, u64::MAX] {
            let slices = store
                .compaction_slices(range, target)
                .unwrap_or_else(|e| panic!("slicing {range} failed: {e}"));
            assert!(!slices.is_empty(), "no slice for {range}");
            assert_eq!(slices[0].start(), range.start(), "first slice of {range}");
            assert_eq!(
                slices[slices.len() - 1].end(),
                range.end(),
                "last slice of {range}"
            );
            for pair in slices.windows(2) {
                assert_eq!(pair[0].end(), pair[1].start(), "gap or overlap: {pair:?}");
                assert!(!pair[0].is_empty(), "empty slice inside {range}: {pair:?}");
            }
            if target == 64 << 10 {
                for slice in &slices {
                    store.compact_range(slice).expect("compact slice");
                }
            }
        }
    }
    // Plans over several ranges at once: ascending, non-empty, and covering every stored key
    // of every range, whatever the target size.
    let range_sets: [Vec<KeyRange>; 3] = [
        vec![KeyRange::full()],
        vec![
            KeyRange::between(b"s001500".to_vec(), b"s001600".to_vec()).expect("range"),
            KeyRange::between(b"s000010".to_vec(), b"s000400".to_vec()).expect("range"),
            KeyRange::between(b"s000300".to_vec(), b"s000900".to_vec()).expect("range"),
        ],
        vec![
            KeyRange::from(b"s001990".to_vec()),
            KeyRange::until(b"s000005".to_vec()),
        ],
    ];
    for ranges in &range_sets {
        for target in [1u64, 64 << 10, u64::MAX] {
            let plan = store
                .compaction_plan(ranges, target)
                .unwrap_or_else(|e| panic!("planning {ranges:?} failed: {e}"));
            assert!(
                plan.iter().all(|r| !r.is_empty()),
                "empty slice in {plan:?}"
            );
            for (key, _) in &before {
                if ranges.iter().any(|r| r.contains(key)) {
                    assert!(
                        plan.iter().any(|slice| slice.contains(key)),
                        "key {} of {ranges:?} is in no slice of the plan {plan:?} (target {target})",
                        reclaim_core::range::hex(key)
                    );
                }
            }
            if target == 64 << 10 {
                for slice in &plan {
                    store.compact_range(slice).expect("compact planned slice");
                }
            }
        }
    }
    assert_eq!(
        dump(store.as_ref()),
        before,
        "slice compaction changed data"
    );
}

/// A paced compactor (small slices, pauses) after pruning: single flight holds across slices,
/// the task succeeds, and every invariant holds.
pub fn paced_compaction_after_pruning(h: &Harness) {
    let store = h.open();
    let (faulty, chain) = faulty_chain(&store, 400);
    let pacing = Pacing::unpaced()
        .with_slice_bytes(16 << 10)
        .with_pause(Duration::from_millis(2));
    let compactor = Arc::new(Compactor::with_pacing(SingleFlight::new(), pacing).expect("start"));
    let opts = PruningSettings {
        compact: true,
        compaction_interval: 1,
        policy: reclaim_cometbft::CompactionPolicyKind::Interval,
        ..options(50, 64, PruneLimits::UNBOUNDED)
    };
    let exec = executor(&chain, opts).with_compactor(Arc::clone(&compactor));
    exec.prune(300).expect("prune");
    // Prunes while the paced task runs are refused by the gate and stay pending.
    commit(&chain, 1, 401, 420);
    exec.prune(320).expect("prune during compaction");
    assert!(compactor.wait_idle(Duration::from_secs(300)), "stalled");
    let stats = compactor.stats();
    assert_eq!(stats.failed, 0);
    assert!(stats.succeeded >= 1);
    assert!(stats.slices >= 1);
    assert_eq!(faulty.max_concurrent_compactions(), 1);
    check_invariants(&chain, 1);
}

/// Runs bounded by a height budget stop early with "more to do", persist their progress
/// (also across a reopen) and together reach exactly what one unbounded run reaches.
pub fn bounded_pruning_runs_resume(h: &Harness) {
    let limits = PruneLimits {
        max_heights: Some(40),
        max_duration: None,
    };
    let mut store = h.open();
    {
        let chain = open(Arc::clone(&store), StateStoreOptions::default());
        commit(&chain, 1, 1, 300);
    }
    let mut runs = 0;
    loop {
        let chain = open(Arc::clone(&store), StateStoreOptions::default());
        let exec = executor(&chain, options(60, 16, limits));
        let before = chain.blocks.base();
        let outcome = exec.prune(250).expect("bounded prune");
        runs += 1;
        assert!(
            outcome.heights_pruned() <= 40,
            "run {runs} pruned {} heights, limit 40",
            outcome.heights_pruned()
        );
        assert!(chain.blocks.base() >= before);
        check_invariants(&chain, 1);
        if !outcome.more_to_do() {
            break;
        }
        assert!(runs < 50, "bounded runs never finish");
        if runs == 3 {
            drop(exec);
            drop(chain);
            store = h.reopen(store);
        }
    }
    assert!(runs >= 7, "250 heights in runs of 40 took only {runs} runs");
    let chain = open(Arc::clone(&store), StateStoreOptions::default());
    let b = chain.blocks.bounds();
    assert_eq!((b.base, b.evidence_base), (250, 240));
    let s = chain.states.bounds();
    assert_eq!((s.base, s.validators_base), (250, 240));
    // A zero time budget still prunes one batch per store (every run makes progress) and
    // reports more to do, never an error.
    commit(&chain, 1, 301, 320);
    let exec = executor(
        &chain,
        options(
            60,
            16,
            PruneLimits {
                max_heights: None,
                max_duration: Some(Duration::ZERO),
            },
        ),
    );
    let outcome = exec.prune(280).expect("zero time budget");
    assert!(outcome.more_to_do());
    assert_eq!(outcome.heights_pruned(), 16, "one batch of 16 heights");
    check_invariants(&chain, 1);
}

/// Retain heights: the effective one is the minimum of the application's and the companion's;
/// neither can be zero, lowered, below the base or above the height; they survive a reopen.
pub fn retain_heights_are_held_back_and_persisted(h: &Harness) {
    let mut store = h.open();
    {
        let chain = open(Arc::clone(&store), StateStoreOptions::default());
        commit(&chain, 1, 1, 200);
        let retain = RetainHeights::open(Arc::clone(&chain.blocks), true, 0).expect("open");
        assert_eq!(retain.effective(), 0, "an unset companion holds everything");
        retain.set_application(150).expect("app 150");
        assert_eq!(retain.effective(), 0);
        retain.set_companion(90).expect("companion 90");
        assert_eq!(retain.effective(), 90);
        let refused = |r: Result<_, RetainHeightError>| r.expect_err("must be refused");
        assert!(matches!(
            refused(retain.set_application(100)),
            RetainHeightError::Lowered {
                current: 150,
                requested: 100,
                ..
            }
        ));
        assert!(matches!(
            refused(retain.set_companion(201)),
            RetainHeightError::AboveHeight { height: 200, .. }
        ));
        assert!(matches!(
            refused(retain.set_companion(0)),
            RetainHeightError::Zero { .. }
        ));
        let exec = executor(&chain, options(0, 32, PruneLimits::UNBOUNDED));
        exec.prune(retain.effective()).expect("prune");
        assert_eq!(chain.blocks.base(), 90);
        retain.set_companion(120).expect("companion 120");
        assert_eq!(retain.effective(), 120);
        retain.set_application(150).expect("equal is a no-op");
    }
    store = h.reopen(store);
    let chain = open(Arc::clone(&store), StateStoreOptions::default());
    let retain = RetainHeights::open(Arc::clone(&chain.blocks), true, 0).expect("reopen");
    let state = retain.state();
    assert_eq!((state.application, state.companion), (150, Some(120)));
    // An operator pruning past the companion makes lower companion heights impossible.
    let exec = executor(&chain, options(0, 32, PruneLimits::UNBOUNDED));
    exec.prune(140).expect("prune");
    let without = RetainHeights::open(Arc::clone(&chain.blocks), false, 0).expect("open");
    assert_eq!(
        without.effective(),
        150,
        "a disabled companion holds nothing"
    );
    assert!(matches!(
        without.set_companion(160),
        Err(RetainHeightError::CompanionDisabled)
    ));
    assert!(matches!(
        without.set_application(145),
        Err(RetainHeightError::Lowered { .. })
    ));
    let fresh = RetainHeights::open(Arc::clone(&chain.blocks), true, 0).expect("open");
    assert!(matches!(
        fresh.set_companion(130),
        Err(RetainHeightError::BelowBase { base: 140, .. })
    ));
}

/// Readers racing with the pruner get a block whole and exact, or a typed "pruned" refusal:
/// never a missing or partial block.
pub fn reads_racing_pruning_are_exact_or_refused(h: &Harness) {
    let store = h.open();
    let chain = open(Arc::clone(&store), StateStoreOptions::default());
    commit(&chain, 1, 1, 400);
    let exec = executor(&chain, options(0, 3, PruneLimits::UNBOUNDED));
    let done = AtomicBool::new(false);
    let refused = AtomicU64::new(0);
    let served = AtomicU64::new(0);
    std::thread::scope(|s| {
        for reader in 0..2u64 {
            let (chain, done, refused, served) = (&chain, &done, &refused, &served);
            s.spawn(move || {
                let mut i = reader;
                while !done.load(Ordering::SeqCst) {
                    let base = chain.blocks.base();
                    let height = base + i % 8;
                    i += 1;
                    let expected = block(height);
                    match chain.blocks.load_block_parts(height) {
                        Ok(parts) => {
                            assert_eq!(parts, expected.parts, "partial block {height}");
                            served.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(StoreError::Pruned { .. }) => {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => panic!("read of {height} failed: {e}"),
                    }
                    match chain.blocks.load_seen_commit(height) {
                        Ok(seen) => assert_eq!(seen, Some(expected.seen_commit), "seen {height}"),
                        Err(StoreError::Pruned { .. }) => {}
                        Err(e) => panic!("seen commit of {height} failed: {e}"),
                    }
                }
            });
        }
        // Start pruning once both readers are reading, and give them time between prunes.
        while served.load(Ordering::Relaxed) + refused.load(Ordering::Relaxed) < 2 {
            std::thread::yield_now();
        }
        for retain in (10..=390).step_by(10) {
            exec.prune(retain).expect("prune");
            std::thread::sleep(Duration::from_millis(1));
        }
        done.store(true, Ordering::SeqCst);
    });
    assert!(served.load(Ordering::Relaxed) > 0, "no read was served");
    crate::report::figure(&format!(
        "engine={} racing_reads_served={} refused_as_pruned={}",
        store.capabilities().engine,
        served.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed)
    ));
    check_invariants(&chain, 1);
}

/// The background pruner follows the effective retain height in bounded runs, merges
/// repeated wake-ups, and stops promptly.
pub fn background_pruner_follows_the_retain_height(h: &Harness) {
    let store = h.open();
    let chain = open(Arc::clone(&store), StateStoreOptions::default());
    commit(&chain, 1, 1, 300);
    let limits = PruneLimits {
        max_heights: Some(25),
        max_duration: None,
    };
    let exec = Arc::new(executor(&chain, options(0, 10, limits)));
    let retain = Arc::new(RetainHeights::open(Arc::clone(&chain.blocks), false, 0).expect("open"));
    // A long interval: only wake-ups trigger runs.
    let pruner = BackgroundPruner::start(
        Arc::clone(&exec),
        Arc::clone(&retain),
        Duration::from_secs(3600),
    )
    .expect("start");
    retain.set_application(260).expect("retain");
    let mut merged = 0;
    for _ in 0..50 {
        if !pruner.wake() {
            merged += 1;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while chain.blocks.base() < 260 || chain.states.base() < 260 {
        assert!(
            Instant::now() < deadline,
            "pruner stalled at {:?}",
            chain.blocks.bounds()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let stats = pruner.stats();
    assert!(merged > 0 && stats.merged_wakeups >= 1, "no wake-up merged");
    assert!(
        stats.runs >= 11,
        "259 heights in runs of 25 took {} runs",
        stats.runs
    );
    assert!(stats.bounded_runs >= 10);
    assert_eq!(stats.errors, 0);
    let started = Instant::now();
    pruner.shutdown(Duration::from_secs(30)).expect("stop");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!pruner.wake(), "a stopped pruner takes no wake-up");
    check_invariants(&chain, 1);
}

/// Dropping a deleted range (the cheap release some engines offer for pruned heights) changes
/// no read: the range stays empty, its neighbours stay whole, also after compaction and a
/// reopen.
pub fn dropping_deleted_ranges_keeps_live_data(h: &Harness) {
    let mut store = h.open();
    for family in [b'a', b'b', b'c'] {
        let mut batch = WriteBatch::new();
        for i in 0..300u64 {
            let mut key = vec![family, b':'];
            key.extend_from_slice(&i.to_be_bytes());
            batch.put(key, vec![family; 1024]);
        }
        store.write(batch, WriteOptions::DURABLE).expect("fill");
    }
    store.compact_range(&KeyRange::full()).expect("compact");
    let mut batch = WriteBatch::new();
    batch.delete_range(KeyRange::prefix(b"b:"));
    store.write(batch, WriteOptions::DURABLE).expect("delete");
    let expected = dump(store.as_ref());
    assert!(expected.iter().all(|(k, _)| !k.starts_with(b"b:")));
    assert_eq!(expected.len(), 600);
    store
        .drop_deleted_range(&KeyRange::prefix(b"b:"))
        .expect("drop deleted range");
    store
        .drop_deleted_range(&KeyRange::between(b"b:".to_vec(), b"b:".to_vec()).expect("empty"))
        .expect("drop an empty range");
    assert_eq!(dump(store.as_ref()), expected, "dropping changed reads");
    store
        .compact_range(&KeyRange::prefix(b"b:"))
        .expect("compact dropped range");
    assert_eq!(dump(store.as_ref()), expected, "compaction after dropping");
    store = h.reopen(store);
    assert_eq!(dump(store.as_ref()), expected, "reopen after dropping");
}

/// A range's end is exclusive: dropping and compacting a deleted range keep the key at its end
/// — after pruning, the first live key — now and after a reopen, also when it is the last key
/// of a file otherwise inside the range. (An engine whose file drop or compaction takes an
/// inclusive end, as RocksDB's do, deletes or rewrites that file: the RocksDB adapter lost the
/// key this way until it passed a key just below the end.)
pub fn dropping_deleted_ranges_keeps_the_key_at_the_end(h: &Harness) {
    let mut store = h.open();
    let key = |i: u8| vec![b'e', b':', i];
    // Groups of three keys, each written and compacted on its own: an LSM engine then holds
    // them in separate files, [e0, e2], [e3, e5] and [e6, e8].
    for first in [0u8, 3, 6] {
        let mut batch = WriteBatch::new();
        for i in first..first + 3 {
            batch.put(key(i), vec![i; 4096]);
        }
        store.write(batch, WriteOptions::DURABLE).expect("fill");
        let group = KeyRange::between(key(first), key(first + 3)).expect("group");
        store.compact_range(&group).expect("compact a group");
    }
    // Pruned: [e0, e5). e5 is live, the last key of the middle group.
    let pruned = KeyRange::between(key(0), key(5)).expect("pruned range");
    let mut batch = WriteBatch::new();
    batch.delete_range(pruned.clone());
    store.write(batch, WriteOptions::DURABLE).expect("delete");
    let expected = dump(store.as_ref());
    assert_eq!(
        expected.len(),
        4,
        "the range delete took more or less than e0 to e4"
    );
    store
        .drop_deleted_range(&pruned)
        .expect("drop deleted range");
    assert_eq!(
        dump(store.as_ref()),
        expected,
        "dropping [e0, e5) changed reads (the key at the end, e5, is live)"
    );
    store
        .compact_range(&pruned)
        .expect("compact the pruned range");
    assert_eq!(
        dump(store.as_ref()),
        expected,
        "compacting [e0, e5) changed reads"
    );
    store = h.reopen(store);
    assert_eq!(dump(store.as_ref()), expected, "reopen after dropping");
}

/// Dropping a deleted range right after the delete — with older versions of its keys in the
/// engine's files and newer ones not yet compacted — never brings a deleted key back, now, after
/// a compaction or after a reopen. (RocksDB's file drop can, when the tombstones sit in a file it
/// drops and older versions in one it keeps: its adapter writes the tombstone again.)
pub fn dropping_deleted_ranges_never_resurrects_keys(h: &Harness) {
    let mut store = h.open();
    let put_all = |store: &dyn reclaim_core::KvStore, families: &[u8], version: u8| {
        for family in families {
            let mut batch = WriteBatch::new();
            for i in 0..200u64 {
                let mut key = vec![*family, b':'];
                key.extend_from_slice(&i.to_be_bytes());
                batch.put(key, vec![version; 512]);
            }
            store.write(batch, WriteOptions::DURABLE).expect("fill");
        }
    };
    put_all(store.as_ref(), b"abc", 1);
    store.compact_range(&KeyRange::full()).expect("compact v1");
    put_all(store.as_ref(), b"b", 2);
    let mut batch = WriteBatch::new();
    batch.delete_range(KeyRange::prefix(b"b:"));
    store.write(batch, WriteOptions::DURABLE).expect("delete");
    store
        .drop_deleted_range(&KeyRange::prefix(b"b:"))
        .expect("drop deleted range");
    let check = |store: &dyn reclaim_core::KvStore, when: &str| {
        let back = store
            .scan(
                &KeyRange::prefix(b"b:"),
                reclaim_core::ScanOrder::Ascending,
                1,
            )
            .expect("scan");
        assert!(
            back.is_empty(),
            "{when}: a deleted key came back: {}",
            back.first()
                .map(|(k, v)| format!("{} (version {})", reclaim_core::range::hex(k), v[0]))
                .unwrap_or_default()
        );
        assert_eq!(
            store
                .scan(&KeyRange::full(), reclaim_core::ScanOrder::Ascending, 1000)
                .expect("scan")
                .len(),
            400,
            "{when}: the other families changed"
        );
    };
    check(store.as_ref(), "right after dropping");
    store.compact_range(&KeyRange::full()).expect("compact");
    check(store.as_ref(), "after compacting");
    store = h.reopen(store);
    check(store.as_ref(), "after reopening");
}
