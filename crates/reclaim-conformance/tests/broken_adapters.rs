//! A suite that cannot fail proves nothing: each broken adapter here must be caught, by the
//! case named in its test, while the reference engine — and a correct adapter that models an
//! LSM engine's dead bytes and preallocated journal — pass every case.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use reclaim_conformance::memory::{memory_store_at, open_memory};
use reclaim_conformance::{CASES, Harness, run_case};
use reclaim_core::kv::KeyValue;
use reclaim_core::{
    BatchOp, Capabilities, Compactable, CompactionAccess, KeyRange, KvRead, KvStore, KvWrite,
    MemoryStore, ScanOrder, StorageError, WriteBatch, WriteOptions,
};

/// What a broken adapter gets wrong (`None`: nothing; it then models an LSM engine honestly).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Defect {
    None,
    /// Compaction silently drops the first key of the range.
    DropsKeyOnCompaction,
    /// Range deletes run to the end of the key space.
    IgnoresRangeEnd,
    /// Descending scans come back ascending.
    IgnoresScanOrder,
    /// Compaction does nothing (dead bytes stay), hidden behind a 64 MiB preallocated journal.
    NoOpCompaction,
    /// Compaction writes new tables but keeps the replaced ones (the store grows).
    KeepsReplacedFiles,
    /// Declares native range deletes but deletes key by key (20 µs each).
    FalseNativeRangeDelete,
    /// Declares `Online` but holds an exclusive lock for 1.5 s per compaction.
    FalseOnline,
    /// Dropping a deleted range brings back every key ever written in it.
    ResurrectsOnDrop,
    /// Dropping a deleted range also deletes the key at its end (an inclusive end).
    DropsKeyAtRangeEnd,
    /// Writes without sync are undone when the last handle is dropped.
    LosesBufferedWrites,
    /// Estimates that nothing is reclaimable whatever compaction would give back.
    UnderstatesReclaimable,
    /// Estimates every byte ever deleted as reclaimable, compacted or not.
    EstimateIgnoresCompaction,
}

/// A fixed overhead the modelled engine keeps on disk (like fjall's preallocated journal).
const JOURNAL_BYTES: u64 = 64 << 20;

/// A key and the value it had before a write without sync (`None`: absent).
type Undo = (Vec<u8>, Option<Vec<u8>>);

struct Broken {
    inner: MemoryStore,
    defect: Defect,
    /// Bytes of deleted or overwritten entries not yet compacted away (shared across reopens).
    dead: Arc<AtomicU64>,
    /// Every entry ever put (for the resurrecting defect).
    shadow: MemoryStore,
    /// Held shared by reads and writes; exclusive by a compaction of the false-Online defect.
    gate: RwLock<()>,
    /// Entries changed by writes without sync since the last synced write: (key, old value).
    volatile: Mutex<Vec<Undo>>,
    /// Bytes ever made dead by writes, compactions notwithstanding.
    dead_ever: AtomicU64,
}

impl Broken {
    /// The bytes `batch` makes dead: overwritten and deleted entries.
    fn dying_bytes(&self, batch: &WriteBatch) -> Result<u64, StorageError> {
        let mut bytes = 0;
        for op in batch.ops() {
            match op {
                BatchOp::Put { key, .. } | BatchOp::Delete { key } => {
                    if let Some(old) = self.inner.get(key)? {
                        bytes += (key.len() + old.len()) as u64;
                    }
                }
                BatchOp::DeleteRange(range) => {
                    for (k, v) in self.inner.scan(range, ScanOrder::Ascending, usize::MAX)? {
                        bytes += (k.len() + v.len()) as u64;
                    }
                }
            }
        }
        Ok(bytes)
    }

    fn remember_for_undo(&self, batch: &WriteBatch) -> Result<(), StorageError> {
        let mut volatile = self.volatile.lock();
        for op in batch.ops() {
            let keys: Vec<Vec<u8>> = match op {
                BatchOp::Put { key, .. } | BatchOp::Delete { key } => vec![key.clone()],
                BatchOp::DeleteRange(range) => self
                    .inner
                    .scan(range, ScanOrder::Ascending, usize::MAX)?
                    .into_iter()
                    .map(|(k, _)| k)
                    .collect(),
            };
            for key in keys {
                let old = self.inner.get(&key)?;
                volatile.push((key, old));
            }
        }
        Ok(())
    }
}

impl Drop for Broken {
    fn drop(&mut self) {
        if self.defect != Defect::LosesBufferedWrites {
            return;
        }
        let undo: Vec<_> = self.volatile.lock().drain(..).rev().collect();
        for (key, old) in undo {
            let mut batch = WriteBatch::new();
            match old {
                Some(value) => batch.put(key, value),
                None => batch.delete(key),
            };
            let _ = self.inner.write(batch, WriteOptions::DURABLE);
        }
    }
}

impl KvRead for Broken {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let _shared = self.gate.read();
        self.inner.get(key)
    }

    fn scan(
        &self,
        range: &KeyRange,
        order: ScanOrder,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StorageError> {
        let _shared = self.gate.read();
        match self.defect {
            Defect::IgnoresScanOrder => self.inner.scan(range, ScanOrder::Ascending, limit),
            _ => self.inner.scan(range, order, limit),
        }
    }
}

impl KvWrite for Broken {
    fn write(&self, batch: WriteBatch, options: WriteOptions) -> Result<(), StorageError> {
        let _shared = self.gate.read();
        let mut out = WriteBatch::new();
        for op in batch.into_ops() {
            match op {
                BatchOp::DeleteRange(r) if self.defect == Defect::IgnoresRangeEnd => {
                    out.delete_range(KeyRange::new(r.start().map(<[u8]>::to_vec), None)?);
                }
                BatchOp::DeleteRange(r) if self.defect == Defect::FalseNativeRangeDelete => {
                    for (key, _) in self.inner.scan(&r, ScanOrder::Ascending, usize::MAX)? {
                        std::thread::sleep(Duration::from_micros(20));
                        out.delete(key);
                    }
                }
                BatchOp::DeleteRange(r) => {
                    out.delete_range(r);
                }
                BatchOp::Put { key, value } => {
                    self.shadow.write(
                        {
                            let mut b = WriteBatch::new();
                            b.put(key.clone(), value.clone());
                            b
                        },
                        WriteOptions::BUFFERED,
                    )?;
                    out.put(key, value);
                }
                BatchOp::Delete { key } => {
                    out.delete(key);
                }
            }
        }
        let dying = self.dying_bytes(&out)?;
        if options.sync {
            self.volatile.lock().clear();
        } else {
            self.remember_for_undo(&out)?;
        }
        self.inner.write(out, options)?;
        self.dead.fetch_add(dying, Ordering::SeqCst);
        self.dead_ever.fetch_add(dying, Ordering::SeqCst);
        Ok(())
    }
}

impl Compactable for Broken {
    fn compact_range(&self, range: &KeyRange) -> Result<(), StorageError> {
        match self.defect {
            Defect::DropsKeyOnCompaction => {
                if let Some((first, _)) = self.inner.scan(range, ScanOrder::Ascending, 1)?.pop() {
                    let mut batch = WriteBatch::new();
                    batch.delete(first);
                    self.inner.write(batch, WriteOptions::BUFFERED)?;
                }
                self.dead.store(0, Ordering::SeqCst);
            }
            Defect::NoOpCompaction => {}
            Defect::KeepsReplacedFiles => {
                // The rewritten tables are written; the replaced ones stay.
                self.dead
                    .fetch_add(self.inner.size_on_disk()?, Ordering::SeqCst);
            }
            Defect::FalseOnline => {
                let _exclusive = self.gate.write();
                std::thread::sleep(Duration::from_millis(1500));
                self.dead.store(0, Ordering::SeqCst);
            }
            _ => self.dead.store(0, Ordering::SeqCst),
        }
        Ok(())
    }

    fn drop_deleted_range(&self, range: &KeyRange) -> Result<(), StorageError> {
        if self.defect == Defect::ResurrectsOnDrop {
            let mut batch = WriteBatch::new();
            for (k, v) in self.shadow.scan(range, ScanOrder::Ascending, usize::MAX)? {
                batch.put(k, v);
            }
            self.inner.write(batch, WriteOptions::BUFFERED)?;
        }
        if let (Defect::DropsKeyAtRangeEnd, Some(end)) = (self.defect, range.end()) {
            let mut batch = WriteBatch::new();
            batch.delete(end.to_vec());
            self.inner.write(batch, WriteOptions::BUFFERED)?;
        }
        Ok(())
    }

    fn space_report(&self) -> Result<reclaim_core::SpaceReport, StorageError> {
        let reclaimable = match self.defect {
            Defect::UnderstatesReclaimable => 0,
            Defect::EstimateIgnoresCompaction => self.dead_ever.load(Ordering::SeqCst),
            _ => self.dead.load(Ordering::SeqCst),
        };
        Ok(reclaim_core::SpaceReport {
            on_disk: self.size_on_disk()?,
            reclaimable: Some(reclaimable),
            live_bytes: None,
        })
    }

    fn size_on_disk(&self) -> Result<u64, StorageError> {
        let journal = if self.defect == Defect::NoOpCompaction {
            JOURNAL_BYTES
        } else {
            0
        };
        Ok(self.inner.size_on_disk()? + self.dead.load(Ordering::SeqCst) + journal)
    }

    fn capabilities(&self) -> Capabilities {
        let mut capabilities = self.inner.capabilities();
        capabilities.compaction_access = CompactionAccess::Online;
        if self.defect == Defect::FalseNativeRangeDelete {
            capabilities.native_range_delete = true;
        }
        capabilities
    }
}

/// The dead-byte counter of each store directory, kept across reopens.
type DeadBytes = std::collections::HashMap<std::path::PathBuf, Arc<AtomicU64>>;

fn harness(defect: Defect) -> Harness {
    let dead: Arc<Mutex<DeadBytes>> = Arc::default();
    Harness::new(move |path: &Path| {
        let dead = Arc::clone(dead.lock().entry(path.to_owned()).or_default());
        Ok(Arc::new(Broken {
            inner: memory_store_at(path),
            defect,
            dead,
            shadow: memory_store_at(&path.join("shadow")),
            gate: RwLock::new(()),
            volatile: Mutex::new(Vec::new()),
            dead_ever: AtomicU64::new(0),
        }) as Arc<dyn KvStore>)
    })
}

fn case(name: &str) -> fn(&Harness) {
    CASES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("no case named {name}"))
}

fn assert_caught(defect: Defect, by: &[&str]) {
    for name in by {
        let result = run_case(case(name), &harness(defect));
        assert!(result.is_err(), "case {name} did not catch {defect:?}");
        eprintln!("{defect:?} caught by {name}: {}", result.unwrap_err());
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
fn a_correct_modelled_lsm_engine_passes_every_case() {
    for (name, case) in CASES {
        let result = run_case(*case, &harness(Defect::None));
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
fn a_compaction_that_does_nothing_is_caught_despite_a_large_fixed_overhead() {
    assert_caught(
        Defect::NoOpCompaction,
        &[
            "compaction_reclaims_space",
            "executor_pruned_chain_compacts_to_retained_size",
        ],
    );
}

#[test]
fn a_compaction_that_keeps_replaced_files_is_caught() {
    assert_caught(Defect::KeepsReplacedFiles, &["compaction_reclaims_space"]);
}

#[test]
fn a_false_native_range_delete_is_caught() {
    assert_caught(
        Defect::FalseNativeRangeDelete,
        &["range_deletes_cost_what_the_engine_declares"],
    );
}

#[test]
fn a_false_online_declaration_is_caught() {
    assert_caught(
        Defect::FalseOnline,
        &["online_compaction_does_not_block_reads_or_writes"],
    );
}

#[test]
fn a_drop_that_resurrects_keys_is_caught() {
    assert_caught(
        Defect::ResurrectsOnDrop,
        &[
            "dropping_deleted_ranges_never_resurrects_keys",
            "dropping_deleted_ranges_keeps_live_data",
        ],
    );
}

#[test]
fn a_drop_that_takes_the_key_at_the_end_is_caught() {
    assert_caught(
        Defect::DropsKeyAtRangeEnd,
        &["dropping_deleted_ranges_keeps_the_key_at_the_end"],
    );
}

#[test]
fn buffered_writes_lost_on_a_clean_close_are_caught() {
    assert_caught(
        Defect::LosesBufferedWrites,
        &["buffered_writes_survive_a_clean_close"],
    );
}

#[test]
fn a_wrong_space_estimate_is_caught() {
    assert_caught(
        Defect::UnderstatesReclaimable,
        &["space_estimates_match_what_compaction_gives_back"],
    );
}

#[test]
fn an_estimate_that_survives_compaction_is_caught() {
    assert_caught(
        Defect::EstimateIgnoresCompaction,
        &["space_estimates_match_what_compaction_gives_back"],
    );
}

#[test]
fn losing_data_on_reopen_is_caught() {
    let forgetful = Harness::new(|_: &Path| Ok(Arc::new(MemoryStore::new()) as Arc<dyn KvStore>));
    assert!(run_case(case("synced_write_survives_reopen"), &forgetful).is_err());
    let forgetful = Harness::new(|_: &Path| Ok(Arc::new(MemoryStore::new()) as Arc<dyn KvStore>));
    assert!(run_case(case("executor_resumes_after_crash"), &forgetful).is_err());
}
