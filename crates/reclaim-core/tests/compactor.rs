//! The single-flight compactor: concurrency, panics, shutdown and statistics.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reclaim_core::compaction::{Busy, CompactorError, run_task_now};
use reclaim_core::fault::{CompactionFault, FaultyStore};
use reclaim_core::{
    Capabilities, Compactable, CompactionTask, Compactor, EnqueueOutcome, KeyRange, MemoryStore,
    SingleFlight, StorageError,
};

fn slow_store(delay_ms: u64) -> Arc<FaultyStore> {
    let store = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new())));
    store.set_compaction_fault(CompactionFault::Delay(Duration::from_millis(delay_ms)));
    store
}

fn task(store: &Arc<FaultyStore>) -> CompactionTask {
    CompactionTask::new("test").with_target("store", Arc::clone(store) as Arc<dyn Compactable>)
}

#[test]
fn many_threads_enqueueing_at_once_never_run_two_compactions() {
    let store = slow_store(20);
    let compactor = Arc::new(Compactor::new().unwrap());
    let accepted = AtomicU64::new(0);
    let busy = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..200 {
                    match compactor.try_enqueue(task(&store)) {
                        EnqueueOutcome::Enqueued => accepted.fetch_add(1, Ordering::Relaxed),
                        EnqueueOutcome::Busy(_) => busy.fetch_add(1, Ordering::Relaxed),
                        EnqueueOutcome::ShutDown => panic!("not shut down"),
                    };
                    std::thread::sleep(Duration::from_micros(200));
                }
            });
        }
    });
    assert!(compactor.wait_idle(Duration::from_secs(30)));
    assert_eq!(store.max_concurrent_compactions(), 1);
    let stats = compactor.stats();
    let accepted = accepted.load(Ordering::Relaxed);
    assert!(accepted >= 2, "the gate must reopen after each task");
    assert_eq!(stats.enqueued, accepted);
    assert_eq!(stats.skipped_busy, busy.load(Ordering::Relaxed));
    assert_eq!(stats.enqueued + stats.skipped_busy, 1600);
    assert_eq!(stats.succeeded, accepted);
    assert_eq!(store.compactions_started(), accepted);
    assert!(!stats.in_flight);
    assert!(stats.last_duration.unwrap() >= Duration::from_millis(20));
}

#[test]
fn compactors_sharing_a_gate_never_overlap() {
    let store = slow_store(10);
    let gate = SingleFlight::new();
    let a = Arc::new(Compactor::with_single_flight(gate.clone()).unwrap());
    let b = Arc::new(Compactor::with_single_flight(gate.clone()).unwrap());
    std::thread::scope(|s| {
        for compactor in [&a, &b, &a, &b] {
            let store = &store;
            s.spawn(move || {
                for _ in 0..100 {
                    compactor.try_enqueue(task(store));
                    std::thread::sleep(Duration::from_micros(300));
                }
            });
        }
    });
    assert!(gate.wait_idle(Duration::from_secs(30)));
    assert_eq!(store.max_concurrent_compactions(), 1);
    assert!(a.stats().enqueued + b.stats().enqueued >= 2);
}

#[test]
fn busy_says_whether_a_task_is_queued_or_running() {
    let store = slow_store(300);
    let compactor = Compactor::new().unwrap();
    assert_eq!(
        compactor.try_enqueue(task(&store)),
        EnqueueOutcome::Enqueued
    );
    let second = compactor.try_enqueue(task(&store));
    assert!(matches!(second, EnqueueOutcome::Busy(_)), "{second:?}");
    // Once the worker has picked it up the reason is "in flight".
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while store.compactions_started() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(
        compactor.try_enqueue(task(&store)),
        EnqueueOutcome::Busy(Busy::InFlight)
    );
    assert!(compactor.stats().in_flight);
    assert!(compactor.wait_idle(Duration::from_secs(10)));
    assert_eq!(
        compactor.try_enqueue(task(&store)),
        EnqueueOutcome::Enqueued
    );
}

#[test]
fn a_panicking_engine_is_caught_and_the_worker_keeps_serving() {
    let store = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new())));
    store.set_compaction_fault(CompactionFault::Panic);
    let compactor = Compactor::new().unwrap();
    assert!(compactor.try_enqueue(task(&store)).is_enqueued());
    assert!(compactor.wait_idle(Duration::from_secs(10)));
    let stats = compactor.stats();
    assert_eq!(
        (stats.failed, stats.panics_caught, stats.succeeded),
        (1, 1, 0)
    );
    store.set_compaction_fault(CompactionFault::Error);
    assert!(compactor.try_enqueue(task(&store)).is_enqueued());
    assert!(compactor.wait_idle(Duration::from_secs(10)));
    store.set_compaction_fault(CompactionFault::None);
    assert!(compactor.try_enqueue(task(&store)).is_enqueued());
    assert!(compactor.wait_idle(Duration::from_secs(10)));
    let stats = compactor.stats();
    assert_eq!(
        (stats.failed, stats.panics_caught, stats.succeeded),
        (2, 1, 1)
    );
}

#[test]
fn shutdown_with_a_task_in_flight_finishes_the_current_range_and_skips_the_rest() {
    let store = slow_store(200);
    let compactor = Compactor::new().unwrap();
    let ranges: Vec<KeyRange> = (0u8..10).map(|i| KeyRange::prefix(&[i])).collect();
    let many = CompactionTask::new("many").with_target_ranges(
        "store",
        Arc::clone(&store) as Arc<dyn Compactable>,
        ranges,
    );
    assert!(compactor.try_enqueue(many).is_enqueued());
    while store.compactions_started() == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    compactor.shutdown(Duration::from_secs(5)).unwrap();
    assert!(
        store.compactions_started() < 10,
        "ran {} ranges",
        store.compactions_started()
    );
    assert_eq!(
        compactor.try_enqueue(task(&store)),
        EnqueueOutcome::ShutDown
    );
    assert_eq!(compactor.stats().refused_shut_down, 1);
    assert!(compactor.single_flight().is_idle(), "the gate is released");
    compactor.shutdown(Duration::from_millis(1)).unwrap();
}

#[test]
fn shutdown_reports_a_missed_deadline() {
    let store = slow_store(1500);
    let compactor = Compactor::new().unwrap();
    assert!(compactor.try_enqueue(task(&store)).is_enqueued());
    while store.compactions_started() == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let err = compactor.shutdown(Duration::from_millis(50)).unwrap_err();
    assert!(
        matches!(err, CompactorError::ShutdownTimedOut { .. }),
        "{err}"
    );
    // A later call with a long enough deadline completes.
    compactor.shutdown(Duration::from_secs(10)).unwrap();
}

#[test]
fn drop_shuts_the_worker_down() {
    let store = slow_store(50);
    let gate = SingleFlight::new();
    {
        let compactor = Compactor::with_single_flight(gate.clone()).unwrap();
        assert!(compactor.try_enqueue(task(&store)).is_enqueued());
    }
    assert!(gate.is_idle());
}

/// An engine whose size halves on every compaction, to check byte accounting.
struct Shrinking(AtomicU64);

impl Compactable for Shrinking {
    fn compact_range(&self, _range: &KeyRange) -> Result<(), StorageError> {
        let size = self.0.load(Ordering::SeqCst);
        self.0.store(size / 2, Ordering::SeqCst);
        Ok(())
    }
    fn size_on_disk(&self) -> Result<u64, StorageError> {
        Ok(self.0.load(Ordering::SeqCst))
    }
    fn capabilities(&self) -> Capabilities {
        MemoryStore::new().capabilities()
    }
}

#[test]
fn bytes_reclaimed_are_measured_per_target() {
    let a = Arc::new(Shrinking(AtomicU64::new(1000)));
    let b = Arc::new(Shrinking(AtomicU64::new(400)));
    let task = CompactionTask::new("both")
        .with_target("a", a)
        .with_target("b", b);
    let report = run_task_now(&task).unwrap();
    assert_eq!(
        (
            report.bytes_before,
            report.bytes_after,
            report.bytes_reclaimed()
        ),
        (1400, 700, 700)
    );
    let compactor = Compactor::new().unwrap();
    assert!(compactor.try_enqueue(task).is_enqueued());
    assert!(compactor.wait_idle(Duration::from_secs(10)));
    assert_eq!(compactor.stats().bytes_reclaimed, 350);
}
