//! A save waits for one pruning batch, not for a whole pruning run, in the block store and in
//! the state store.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reclaim_cometbft::StateStoreOptions;
use reclaim_conformance::chain::*;
use reclaim_core::{
    BatchOp, Capabilities, Compactable, KeyRange, KvRead, KvStore, KvWrite, MemoryStore,
    PruneLimiter, ScanOrder, StorageError, WriteBatch, WriteOptions,
};

/// A memory store whose pruning batches (writes that delete ranges) take `BATCH_TIME`, and
/// which records the order of the writes it is given.
struct SlowPrunes {
    inner: MemoryStore,
    log: Mutex<Vec<&'static str>>,
    pruning: AtomicBool,
}

const BATCH_TIME: Duration = Duration::from_millis(100);

impl KvRead for SlowPrunes {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.get(key)
    }

    fn scan(
        &self,
        range: &KeyRange,
        order: ScanOrder,
        limit: usize,
    ) -> Result<Vec<reclaim_core::kv::KeyValue>, StorageError> {
        self.inner.scan(range, order, limit)
    }
}

impl KvWrite for SlowPrunes {
    fn write(&self, batch: WriteBatch, options: WriteOptions) -> Result<(), StorageError> {
        let prune = batch
            .ops()
            .iter()
            .any(|op| matches!(op, BatchOp::DeleteRange(_)));
        if prune {
            self.pruning.store(true, Ordering::SeqCst);
            std::thread::sleep(BATCH_TIME);
        }
        let what = match (prune, options.sync) {
            (true, _) => "prune batch",
            (false, true) => "durable write",
            (false, false) => "buffered write",
        };
        self.log.lock().unwrap().push(what);
        self.inner.write(batch, options)
    }
}

impl Compactable for SlowPrunes {
    fn compact_range(&self, range: &KeyRange) -> Result<(), StorageError> {
        self.inner.compact_range(range)
    }

    fn size_on_disk(&self) -> Result<u64, StorageError> {
        self.inner.size_on_disk()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
}

/// Heights 1 to 40 committed on a [`SlowPrunes`] store.
fn slow_chain_of_40_heights() -> (Arc<SlowPrunes>, Chain) {
    let store = Arc::new(SlowPrunes {
        inner: MemoryStore::new(),
        log: Mutex::new(Vec::new()),
        pruning: AtomicBool::new(false),
    });
    let chain = open(
        Arc::clone(&store) as Arc<dyn KvStore>,
        StateStoreOptions::default(),
    );
    commit(&chain, 1, 1, 40);
    (store, chain)
}

/// Runs `prune` on a thread and, once its first batch is being written, `save` on this one;
/// returns the writes in the order the store took them.
fn save_during_pruning<R: Send>(
    store: &SlowPrunes,
    prune: impl FnOnce() -> R + Send,
    save: impl FnOnce(),
) -> (R, Vec<&'static str>) {
    store.log.lock().unwrap().clear();
    let report = std::thread::scope(|scope| {
        let pruning = scope.spawn(prune);
        while !store.pruning.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        // The first batch is being written: the save waits for it, not for the others.
        save();
        pruning.join().unwrap()
    });
    (report, store.log.lock().unwrap().clone())
}

#[test]
fn a_save_goes_between_two_pruning_batches_and_a_run_ends_durable() {
    let (store, chain) = slow_chain_of_40_heights();
    let (report, log) = save_during_pruning(
        &store,
        // Batches of five heights.
        || {
            chain
                .blocks
                .prune(16, 16, 5, &mut PruneLimiter::unlimited())
                .unwrap()
        },
        || {
            chain
                .blocks
                .save_block(&block(41), WriteOptions::DURABLE)
                .unwrap()
        },
    );
    assert_eq!(report.heights_pruned, 15);
    // Three batches move the base, three more drop meta and commits below the evidence point.
    let mut expected = vec!["prune batch", "durable write"];
    expected.extend(["prune batch"; 5]);
    expected.push("durable write");
    assert_eq!(
        log, expected,
        "the save is the first durable write; the run ends with one"
    );
    assert_eq!((chain.blocks.base(), chain.blocks.height()), (16, 41));
    check_invariants(&chain, 1);
}

#[test]
fn a_state_save_goes_between_two_pruning_batches_and_a_run_ends_durable() {
    let (store, chain) = slow_chain_of_40_heights();
    let (report, log) = save_during_pruning(
        &store,
        // Batches of five heights; validator sets below 6 go too, in a second phase.
        || {
            chain
                .states
                .prune(16, 6, 5, &mut PruneLimiter::unlimited())
                .unwrap()
        },
        || {
            chain
                .states
                .save(&height_state(1, 41), WriteOptions::DURABLE)
                .unwrap()
        },
    );
    assert_eq!(report.heights_pruned, 15);
    assert_eq!(report.trailing_heights_pruned, 5);
    // Three batches move the base, one more drops validator sets below the evidence point.
    let expected = vec![
        "prune batch",
        "durable write",
        "prune batch",
        "prune batch",
        "prune batch",
        "durable write",
    ];
    assert_eq!(
        log, expected,
        "the save is the first durable write; the run ends with one"
    );
    assert_eq!((chain.states.base(), chain.states.height()), (16, 41));
    chain
        .blocks
        .save_block(&block(41), WriteOptions::DURABLE)
        .unwrap();
    check_invariants(&chain, 1);
}
