//! Micro-benchmarks of the compactor's hot path: `try_enqueue` when the gate is free (the call
//! that queues a task) and when it is held (the call every other pruner makes).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use reclaim::{
    Capabilities, Compactable, CompactionTask, Compactor, KeyRange, MemoryStore, StorageError,
};

/// A target that blocks until released, to hold the gate.
struct Gate(AtomicBool);

impl Compactable for Gate {
    fn compact_range(&self, _: &KeyRange) -> Result<(), StorageError> {
        while !self.0.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }
    fn size_on_disk(&self) -> Result<u64, StorageError> {
        Ok(0)
    }
    fn capabilities(&self) -> Capabilities {
        MemoryStore::new().capabilities()
    }
}

fn try_enqueue(c: &mut Criterion) {
    let compactor = Compactor::new().expect("compactor");
    let memory: Arc<dyn Compactable> = Arc::new(MemoryStore::new());
    let free = CompactionTask::new("bench").with_target("memory", memory);
    c.bench_function("try_enqueue/gate_free_then_wait_idle", |b| {
        b.iter(|| {
            black_box(compactor.try_enqueue(free.clone()));
            compactor.wait_idle(Duration::from_secs(1));
        })
    });
    let gate = Arc::new(Gate(AtomicBool::new(false)));
    let hold =
        CompactionTask::new("hold").with_target("gate", Arc::clone(&gate) as Arc<dyn Compactable>);
    compactor.try_enqueue(hold.clone());
    c.bench_function("try_enqueue/gate_held", |b| {
        b.iter(|| black_box(compactor.try_enqueue(hold.clone())))
    });
    gate.0.store(true, Ordering::Release);
    compactor.wait_idle(Duration::from_secs(10));
}

criterion_group!(benches, try_enqueue);
criterion_main!(benches);
