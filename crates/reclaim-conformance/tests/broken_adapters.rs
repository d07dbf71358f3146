//! A suite that cannot fail proves nothing: each broken adapter here must be caught, by the
//! case aimed at its defect, while the reference engine passes every case.

use std::path::Path;
use std::sync::Arc;

use reclaim_conformance::memory::{memory_store_at, open_memory};
use reclaim_conformance::{CASES, Harness, run_case};
use reclaim_core::kv::KeyValue;
use reclaim_core::{
    BatchOp, Capabilities, Compactable, KeyRange, KvRead, KvStore, KvWrite, MemoryStore, ScanOrder,
    StorageError, WriteBatch, WriteOptions,
};

/// What a broken adapter gets wrong.
#[derive(Clone, Copy)]
enum Defect {
    /// Compaction silently drops the first key of the range.
    DropsKeyOnCompaction,
    /// Range deletes run to the end of the key space.
    IgnoresRangeEnd,
    /// Descending scans come back ascending.
    IgnoresScanOrder,
    /// Declares that compaction reclaims space but never does (size only grows).
    NeverReclaims,
}

struct Broken {
    inner: MemoryStore,
    defect: Defect,
    high_water: std::sync::atomic::AtomicU64,
}

impl KvRead for Broken {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.get(key)
    }
    fn scan(
        &self,
        range: &KeyRange,
        order: ScanOrder,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StorageError> {
        match self.defect {
            Defect::IgnoresScanOrder => self.inner.scan(range, ScanOrder::Ascending, limit),
            _ => self.inner.scan(range, order, limit),
        }
    }
}

impl KvWrite for Broken {
    fn write(&self, batch: WriteBatch, options: WriteOptions) -> Result<(), StorageError> {
        let batch = match self.defect {
            Defect::IgnoresRangeEnd => {
                let mut out = WriteBatch::new();
                for op in batch.into_ops() {
                    match op {
                        BatchOp::DeleteRange(r) => {
                            out.delete_range(
                                KeyRange::new(r.start().map(<[u8]>::to_vec), None).unwrap(),
                            );
                        }
                        BatchOp::Put { key, value } => {
                            out.put(key, value);
                        }
                        BatchOp::Delete { key } => {
                            out.delete(key);
                        }
                    }
                }
                out
            }
            _ => batch,
        };
        self.inner.write(batch, options)
    }
}

impl Compactable for Broken {
    fn compact_range(&self, range: &KeyRange) -> Result<(), StorageError> {
        if let Defect::DropsKeyOnCompaction = self.defect
            && let Some((first, _)) = self.inner.scan(range, ScanOrder::Ascending, 1)?.pop()
        {
            let mut batch = WriteBatch::new();
            batch.delete(first);
            self.inner.write(batch, WriteOptions::BUFFERED)?;
        }
        Ok(())
    }
    fn size_on_disk(&self) -> Result<u64, StorageError> {
        let live = self.inner.size_on_disk()?;
        match self.defect {
            Defect::NeverReclaims => Ok(self
                .high_water
                .fetch_max(live, std::sync::atomic::Ordering::SeqCst)
                .max(live)),
            _ => Ok(live),
        }
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
}

fn harness(defect: Defect) -> Harness {
    Harness::new(move |path: &Path| {
        Ok(Arc::new(Broken {
            inner: memory_store_at(path),
            defect,
            high_water: Default::default(),
        }) as Arc<dyn KvStore>)
    })
}

fn case(name: &str) -> fn(&Harness) {
    CASES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .unwrap()
}

fn assert_caught(defect: Defect, by: &[&str]) {
    for name in by {
        let result = run_case(case(name), &harness(defect));
        assert!(result.is_err(), "case {name} did not catch the defect");
    }
}

#[test]
fn the_reference_engine_passes_every_case() {
    for (name, case) in CASES {
        let result = run_case(*case, &Harness::new(open_memory));
        assert!(result.is_ok(), "{name}: {result:?}");
    }
}

#[test]
fn dropping_a_key_during_compaction_is_caught() {
    assert_caught(
        Defect::DropsKeyOnCompaction,
        &[
            "compaction_preserves_live_data",
            "compaction_concurrent_with_reads_and_writes",
            "random_operations_match_the_reference",
        ],
    );
}

#[test]
fn ignoring_a_range_end_is_caught() {
    assert_caught(
        Defect::IgnoresRangeEnd,
        &[
            "delete_range_edges",
            "batch_applies_in_order",
            "executor_prunes_without_compactor",
            "random_operations_match_the_reference",
        ],
    );
}

#[test]
fn ignoring_scan_order_is_caught() {
    assert_caught(
        Defect::IgnoresScanOrder,
        &["ordered_scans_with_bounds_and_limits"],
    );
}

#[test]
fn a_false_space_promise_is_caught() {
    assert_caught(
        Defect::NeverReclaims,
        &[
            "compaction_reclaims_space",
            "executor_pruned_chain_compacts_to_retained_size",
        ],
    );
}

#[test]
fn losing_data_on_reopen_is_caught() {
    let forgetful = Harness::new(|_: &Path| Ok(Arc::new(MemoryStore::new()) as Arc<dyn KvStore>));
    assert!(run_case(case("synced_write_survives_reopen"), &forgetful).is_err());
    let forgetful = Harness::new(|_: &Path| Ok(Arc::new(MemoryStore::new()) as Arc<dyn KvStore>));
    assert!(run_case(case("executor_resumes_after_crash"), &forgetful).is_err());
}
