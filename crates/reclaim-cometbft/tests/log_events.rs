//! The spec's log messages are part of the contract: this test captures the `tracing` output
//! of the compactor and the pruning executor and checks each message with its fields.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reclaim_cometbft::{
    Block, BlockStore, HeightState, PruningSettings, StateStore, StateStoreOptions,
    pruning_executor,
};
use reclaim_core::fault::{CompactionFault, FaultyStore};
use reclaim_core::{Compactable, CompactionTask, Compactor, KvStore, MemoryStore, WriteOptions};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
    fn line_with(&self, message: &str) -> String {
        self.text()
            .lines()
            .find(|l| l.contains(message))
            .unwrap_or_else(|| panic!("no log line {message:?} in:\n{}", self.text()))
            .to_owned()
    }
}

fn chain(db: Arc<dyn KvStore>, height: u64) -> (Arc<BlockStore>, Arc<StateStore>) {
    let blocks = Arc::new(BlockStore::open(Arc::clone(&db)).unwrap());
    let states = Arc::new(StateStore::open(db, StateStoreOptions::default()).unwrap());
    for h in 1..=height {
        let block = Block {
            height: h,
            hash: h.to_be_bytes().to_vec(),
            meta: vec![1],
            parts: vec![vec![2; 10]],
            commit: vec![3],
            seen_commit: vec![4],
            extended_commit: None,
        };
        blocks.save_block(&block, WriteOptions::BUFFERED).unwrap();
        let state = HeightState {
            height: h,
            validators: Some(vec![5]),
            consensus_params: Some(vec![6]),
            finalize_block_response: vec![7],
        };
        states.save(&state, WriteOptions::BUFFERED).unwrap();
    }
    (blocks, states)
}

#[test]
fn the_spec_log_lines_appear_with_their_fields() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    // compaction_start / compaction_done / compaction_error from the worker.
    let store = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new())));
    let compactor = Arc::new(Compactor::new().unwrap());
    let task = CompactionTask::new("manual_compaction")
        .with_target("state", Arc::clone(&store) as Arc<dyn Compactable>);
    assert!(compactor.try_enqueue(task.clone()).is_enqueued());
    assert!(compactor.wait_idle(Duration::from_secs(10)));
    let start = captured.line_with("compaction_start");
    assert!(
        start.contains("label=\"manual_compaction\"") && start.contains("target=\"state\""),
        "{start}"
    );
    let done = captured.line_with("compaction_done");
    for field in [
        "duration_ms=",
        "bytes_before=",
        "bytes_after=",
        "label=\"manual_compaction\"",
    ] {
        assert!(done.contains(field), "{field} missing in {done}");
    }
    store.set_compaction_fault(CompactionFault::Error);
    assert!(compactor.try_enqueue(task).is_enqueued());
    assert!(compactor.wait_idle(Duration::from_secs(10)));
    let failed = captured.line_with("compaction_error");
    assert!(
        failed.contains("ERROR") && failed.contains("injected compaction error"),
        "{failed}"
    );
    store.set_compaction_fault(CompactionFault::None);

    // The executor's lines: enqueued, skipped, and the synchronous fallback.
    let db: Arc<dyn KvStore> = Arc::clone(&store) as Arc<dyn KvStore>;
    let (blocks, states) = chain(db, 40);
    let options = PruningSettings {
        compact: true,
        compaction_interval: 1,
        policy: reclaim_cometbft::CompactionPolicyKind::Interval,
        evidence_max_age_heights: 0,
        ..Default::default()
    };
    let exec = pruning_executor(&blocks, &states, options).with_compactor(Arc::clone(&compactor));
    store.set_compaction_fault(CompactionFault::Delay(Duration::from_millis(200)));
    exec.prune(10).unwrap();
    exec.prune(20).unwrap();
    captured.line_with("enqueued async database compaction after pruning");
    captured.line_with("skipped async compaction - already in progress or queue full");
    assert!(compactor.wait_idle(Duration::from_secs(10)));
    store.set_compaction_fault(CompactionFault::None);

    let sync = pruning_executor(&blocks, &states, options);
    sync.prune(30).unwrap();
    let fallback = captured.line_with("no async compactor available, using synchronous compaction");
    assert!(fallback.contains("ERROR"), "{fallback}");
    captured.line_with("successfully compacted databases after pruning");
    store.set_compaction_fault(CompactionFault::Error);
    sync.prune(35).unwrap();
    let failed = captured.line_with("failed to compact databases after pruning");
    assert!(failed.contains("err="), "{failed}");
}
