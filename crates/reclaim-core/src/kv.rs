//! The storage capability traits. Each trait has one job; an engine adapter implements all three
//! and gets [`KvStore`] for free.
//!
//! | trait | job |
//! |---|---|
//! | [`KvRead`] | point reads and bounded, ordered scans |
//! | [`KvWrite`] | atomic batches of puts, deletes and range deletes, optionally synced |
//! | [`Compactable`] | range compaction, bytes on disk, declared capabilities |

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use crate::error::StorageError;
use crate::range::{KeyRange, key_successor};

/// A key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// Order of a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanOrder {
    /// Smallest key first.
    Ascending,
    /// Largest key first.
    Descending,
}

/// Point reads and ordered scans over byte keys.
///
/// Guarantees an implementation must give: a scan returns at most `limit` entries, all inside
/// the range, strictly ordered as asked; each call sees a consistent state of the store (no
/// torn values). Scans are bounded so that no engine lock or transaction is held between calls;
/// [`KvReadExt::iter`] pages through a range of any size on top of them.
pub trait KvRead: Send + Sync {
    /// The value stored under `key`, if any.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError>;

    /// Up to `limit` entries of `range` in `order`. An empty range or `limit == 0` returns none.
    fn scan(
        &self,
        range: &KeyRange,
        order: ScanOrder,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StorageError>;
}

/// How durable a write must be when [`KvWrite::write`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteOptions {
    /// When true the write is on stable storage (fsynced) before `write` returns; when false it
    /// may be lost in a machine crash (never torn: a batch is all or nothing either way).
    pub sync: bool,
}

impl WriteOptions {
    /// A write that is fsynced before `write` returns.
    pub const DURABLE: Self = Self { sync: true };
    /// A write that may be lost in a machine crash, but is never torn.
    pub const BUFFERED: Self = Self { sync: false };
}

/// One operation of a [`WriteBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOp {
    /// Store `value` under `key`.
    Put {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// Remove `key` if present.
    Delete {
        /// The key.
        key: Vec<u8>,
    },
    /// Remove every key in the range.
    DeleteRange(KeyRange),
}

/// An ordered list of writes applied atomically: after a crash either all of them or none is
/// visible. Later operations win over earlier ones on the same key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<BatchOp>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a put.
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(BatchOp::Put {
            key: key.into(),
            value: value.into(),
        });
        self
    }

    /// Adds a point delete.
    pub fn delete(&mut self, key: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(BatchOp::Delete { key: key.into() });
        self
    }

    /// Adds a range delete; an empty range adds nothing.
    pub fn delete_range(&mut self, range: KeyRange) -> &mut Self {
        if !range.is_empty() {
            self.ops.push(BatchOp::DeleteRange(range));
        }
        self
    }

    /// The operations in order.
    pub fn ops(&self) -> &[BatchOp] {
        &self.ops
    }

    /// Consumes the batch into its operations.
    pub fn into_ops(self) -> Vec<BatchOp> {
        self.ops
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when the batch holds no operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// True when the batch holds at least one range delete.
    pub fn has_range_deletes(&self) -> bool {
        self.ops
            .iter()
            .any(|op| matches!(op, BatchOp::DeleteRange(_)))
    }
}

/// Atomic batched writes.
///
/// Guarantees an implementation must give: a batch is applied all-or-nothing and in order, also
/// across a crash; with [`WriteOptions::sync`] it is durable when `write` returns; range deletes
/// remove exactly the keys inside the range (engines without a native range delete use
/// [`expand_range_deletes`] under their write lock).
pub trait KvWrite: Send + Sync {
    /// Applies `batch` atomically.
    fn write(&self, batch: WriteBatch, options: WriteOptions) -> Result<(), StorageError>;
}

/// Whether other access proceeds while a compaction runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactionAccess {
    /// Reads and writes proceed during compaction (they may slow down).
    Online,
    /// Reads proceed; writes wait until compaction ends (they never fail because of it).
    PausesWrites,
    /// Reads and writes wait until compaction ends (they never fail because of it).
    PausesAll,
}

/// What part of the store one `compact_range` call rewrites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactionScope {
    /// Only the requested range (plus neighbouring data the engine keeps in the same files).
    Range,
    /// The whole store, whatever range is asked for.
    WholeStore,
}

/// What an engine adapter promises about itself; the conformance suite holds it to each field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Capabilities {
    /// Engine name for logs and reports (`"memory"`, `"redb"`, ...).
    pub engine: &'static str,
    /// Range deletes cost O(1) writes instead of one delete per key.
    pub native_range_delete: bool,
    /// After deleting data, compaction brings bytes on disk down towards the live data.
    pub compaction_reclaims_space: bool,
    /// Whether other access waits during compaction.
    pub compaction_access: CompactionAccess,
    /// What one compaction call rewrites.
    pub compaction_scope: CompactionScope,
    /// After deleting most data and compacting, bytes on disk stay within this factor of a fresh
    /// store holding only the survivors (only meaningful when `compaction_reclaims_space`).
    /// Both sides are measured above an empty store's size, so fixed overhead (a preallocated
    /// journal) neither helps nor hurts.
    pub max_space_factor_after_compaction: f64,
    /// Bytes of write-ahead journal the engine may keep on disk after a compaction, whatever
    /// the compaction reclaimed: its journal is replaced on its own schedule, not by compacting
    /// (fjall keeps writing one journal until it passes 64 MB). The suite allows these bytes
    /// on top of `max_space_factor_after_compaction`; 0 when compaction leaves no journal of
    /// deleted data behind.
    pub journal_bytes_kept_after_compaction: u64,
    /// The longest key the engine accepts (the empty key included): keys up to this length
    /// work; a longer one is refused with an error, never truncated, never a panic.
    pub max_key_bytes: usize,
}

/// What an engine says about its space, cheaply enough to ask after every pruning run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpaceReport {
    /// Bytes on disk, as [`Compactable::size_on_disk`] measures them.
    pub on_disk: u64,
    /// The engine's estimate of what a compaction of the whole store would give back for good
    /// (space the engine would not give back by itself); `None` when the engine cannot tell
    /// (the conformance suite holds a `Some` to what compaction then really returns).
    pub reclaimable: Option<u64>,
    /// The engine's estimate of the bytes its live data needs (what a rewrite copies); `None`
    /// when it cannot tell.
    pub live_bytes: Option<u64>,
}

/// How a compaction that runs for long inside one [`Compactable::compact_range_paced`] call
/// (an online rewrite of the whole store) paces itself: it does about [`step_bytes`] of work,
/// then asks [`before_step`] for its next turn.
///
/// [`step_bytes`]: CompactionPacer::step_bytes
/// [`before_step`]: CompactionPacer::before_step
pub trait CompactionPacer: Sync {
    /// Bytes of engine data to process between two turns.
    fn step_bytes(&self) -> u64;

    /// Waits until the next step may run (a pause, a busy node, a time window). Returns
    /// [`StorageError::Interrupted`] when the compactor is stopping: the engine must then
    /// abandon the compaction and leave the store as it was.
    fn before_step(&self) -> Result<(), StorageError>;

    /// Tells the pacer how many bytes the step that just ended actually processed, when the
    /// engine knows (a step rarely ends exactly at [`step_bytes`]): an I/O cap then holds the
    /// next step for those bytes, not for the nominal size. The default ignores it.
    ///
    /// [`step_bytes`]: CompactionPacer::step_bytes
    fn step_done(&self, bytes: u64) {
        let _ = bytes;
    }

    /// Whether the compactor is stopping, for work that does not have to be paced to be
    /// correct (an online rewrite removes its old generation in paced steps, and all at once
    /// when this turns true, so that a shutdown does not wait for the pauses). The default
    /// never stops.
    fn stopping(&self) -> bool {
        false
    }

    /// Called inside a step, after `done` bytes of a step that began at `step_started`, by an
    /// engine that can spread its work (an online rewrite's copy, a chunk at a time): waits
    /// until the I/O cap allows those bytes, so that a capped step is not one burst at full
    /// speed followed by a wait. Returns [`StorageError::Interrupted`] when the compactor is
    /// stopping. The default never waits.
    fn keep_pace(&self, done: u64, step_started: Instant) -> Result<(), StorageError> {
        let _ = (done, step_started);
        Ok(())
    }
}

/// Work an unpaced compaction does between two checks: 8 MiB of engine data.
pub const UNPACED_STEP_BYTES: u64 = 8 << 20;

/// A pacer that never waits (steps of [`UNPACED_STEP_BYTES`]): a plain
/// [`Compactable::compact_range`] call.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unpaced;

impl CompactionPacer for Unpaced {
    fn step_bytes(&self) -> u64 {
        UNPACED_STEP_BYTES
    }

    fn before_step(&self) -> Result<(), StorageError> {
        Ok(())
    }
}

/// Range compaction and disk accounting.
///
/// Guarantees an implementation must give: compaction never changes what reads return, in or
/// out of the range; an empty range is a successful no-op; concurrent reads and writes never
/// fail because a compaction runs (they may wait, as declared in [`Capabilities`]).
pub trait Compactable: Send + Sync {
    /// Compacts the keys in `range` (either end may be unbounded) so that space held by deleted
    /// data is returned where the engine can do so.
    fn compact_range(&self, range: &KeyRange) -> Result<(), StorageError>;

    /// [`Compactable::compact_range`], asking `pacer` for a turn between steps of its work, so
    /// that an engine whose one call runs long (a rewrite of the whole store) still yields to a
    /// busy node, pauses, and stops at shutdown ([`StorageError::Interrupted`], the store left
    /// as it was). The default ignores the pacer: right for engines whose calls are short or
    /// cannot be cut.
    fn compact_range_paced(
        &self,
        range: &KeyRange,
        pacer: &dyn CompactionPacer,
    ) -> Result<(), StorageError> {
        let _ = pacer;
        self.compact_range(range)
    }

    /// Cuts `range` into consecutive, disjoint sub-ranges whose union is `range`, each holding
    /// about `target_bytes` of the engine's data, so that a paced compaction can compact one
    /// slice at a time and pause between slices. The default returns `range` whole: right for
    /// engines that cannot size a range, or that compact the whole store whatever the range.
    /// Use [`KeyRange::split_at`] to build the answer from cut points.
    fn compaction_slices(
        &self,
        range: &KeyRange,
        target_bytes: u64,
    ) -> Result<Vec<KeyRange>, StorageError> {
        let _ = target_bytes;
        Ok(vec![range.clone()])
    }

    /// The compaction calls to make for `ranges` (one target's ranges, in any order), each
    /// rewriting about `target_bytes` (`u64::MAX`: as few calls as possible). Guarantee: every
    /// key of every range that occupies space on disk lies in at least one returned range;
    /// returned ranges are in ascending order of start and may cover keys outside `ranges`
    /// only where the engine rewrites them anyway (the same file). The default slices each
    /// range with [`Compactable::compaction_slices`]; engines whose files span several ranges
    /// plan them together so a file shared by several ranges is rewritten once.
    fn compaction_plan(
        &self,
        ranges: &[KeyRange],
        target_bytes: u64,
    ) -> Result<Vec<KeyRange>, StorageError> {
        let mut plan = Vec::new();
        for range in ranges {
            plan.extend(self.compaction_slices(range, target_bytes)?);
        }
        Ok(plan)
    }

    /// Releases space held by `range` cheaply, without rewriting live data, where the engine
    /// can (RocksDB drops the files that lie wholly inside it). The caller guarantees that every
    /// key in `range` is deleted and that none will be written again (pruned heights); under
    /// that guarantee reads never change. The default does nothing: a following
    /// [`Compactable::compact_range`] reclaims the space the ordinary way.
    fn drop_deleted_range(&self, range: &KeyRange) -> Result<(), StorageError> {
        let _ = range;
        Ok(())
    }

    /// Whether [`Compactable::drop_deleted_range`] is cheap enough to run after every pruning
    /// run: a change of the engine's file list and one small write, no scan and no rewrite.
    /// The pruning executor then releases the files that hold only pruned heights right away
    /// instead of at the next compaction. False by default.
    fn drops_deleted_ranges_cheaply(&self) -> bool {
        false
    }

    /// Bytes the store occupies on disk: the filesystem blocks allocated to every file in its
    /// directory ([`crate::dir::directory_size`], the measure the conformance suite and the
    /// benchmarks use; a sparse file's holes are free). In-memory stores report the bytes of
    /// live keys and values.
    fn size_on_disk(&self) -> Result<u64, StorageError>;

    /// Bytes on disk and, where the engine can tell cheaply, an estimate of what a compaction
    /// would give back. The default measures the size and knows no estimate.
    fn space_report(&self) -> Result<SpaceReport, StorageError> {
        Ok(SpaceReport {
            on_disk: self.size_on_disk()?,
            ..SpaceReport::default()
        })
    }

    /// What this adapter promises.
    fn capabilities(&self) -> Capabilities;
}

/// Implements [`KvRead`], [`KvWrite`] and [`Compactable`] for a wrapper type by forwarding
/// every method, defaults included, to one of its fields: for an adapter that is a newtype
/// around another store (as `reclaim-redb` and `reclaim-sled` are around
/// [`crate::rewrite::GenerationalStore`]). Usage: `forward_kv_store!(MyStore => inner);`.
#[macro_export]
macro_rules! forward_kv_store {
    ($outer:ty => $field:ident) => {
        impl $crate::KvRead for $outer {
            fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, $crate::StorageError> {
                $crate::KvRead::get(&self.$field, key)
            }

            fn scan(
                &self,
                range: &$crate::KeyRange,
                order: $crate::ScanOrder,
                limit: usize,
            ) -> Result<Vec<$crate::kv::KeyValue>, $crate::StorageError> {
                $crate::KvRead::scan(&self.$field, range, order, limit)
            }
        }

        impl $crate::KvWrite for $outer {
            fn write(
                &self,
                batch: $crate::WriteBatch,
                options: $crate::WriteOptions,
            ) -> Result<(), $crate::StorageError> {
                $crate::KvWrite::write(&self.$field, batch, options)
            }
        }

        impl $crate::Compactable for $outer {
            fn compact_range(&self, range: &$crate::KeyRange) -> Result<(), $crate::StorageError> {
                $crate::Compactable::compact_range(&self.$field, range)
            }

            fn compact_range_paced(
                &self,
                range: &$crate::KeyRange,
                pacer: &dyn $crate::CompactionPacer,
            ) -> Result<(), $crate::StorageError> {
                $crate::Compactable::compact_range_paced(&self.$field, range, pacer)
            }

            fn compaction_slices(
                &self,
                range: &$crate::KeyRange,
                target_bytes: u64,
            ) -> Result<Vec<$crate::KeyRange>, $crate::StorageError> {
                $crate::Compactable::compaction_slices(&self.$field, range, target_bytes)
            }

            fn compaction_plan(
                &self,
                ranges: &[$crate::KeyRange],
                target_bytes: u64,
            ) -> Result<Vec<$crate::KeyRange>, $crate::StorageError> {
                $crate::Compactable::compaction_plan(&self.$field, ranges, target_bytes)
            }

            fn drop_deleted_range(
                &self,
                range: &$crate::KeyRange,
            ) -> Result<(), $crate::StorageError> {
                $crate::Compactable::drop_deleted_range(&self.$field, range)
            }

            fn drops_deleted_ranges_cheaply(&self) -> bool {
                $crate::Compactable::drops_deleted_ranges_cheaply(&self.$field)
            }

            fn size_on_disk(&self) -> Result<u64, $crate::StorageError> {
                $crate::Compactable::size_on_disk(&self.$field)
            }

            fn space_report(&self) -> Result<$crate::SpaceReport, $crate::StorageError> {
                $crate::Compactable::space_report(&self.$field)
            }

            fn capabilities(&self) -> $crate::Capabilities {
                $crate::Compactable::capabilities(&self.$field)
            }
        }
    };
}

/// A complete engine adapter: everything the stores, the pruner and the compactor need.
pub trait KvStore: KvRead + KvWrite + Compactable {}

impl<T: KvRead + KvWrite + Compactable + ?Sized> KvStore for T {}

/// Entries fetched per scan call by [`RangeIter`].
pub const DEFAULT_PAGE_SIZE: usize = 256;

/// Iteration helpers available on every [`KvRead`].
pub trait KvReadExt: KvRead {
    /// Iterates over a range of any size in `order`, a page of bounded scans at a time. Each page
    /// is consistent; a write between pages may or may not be seen.
    fn iter(&self, range: KeyRange, order: ScanOrder) -> RangeIter<'_, Self> {
        RangeIter {
            reader: self,
            remaining: Some(range),
            order,
            page: VecDeque::new(),
            page_size: DEFAULT_PAGE_SIZE,
        }
    }

    /// Every key in `range`, in ascending order.
    fn keys_in(&self, range: &KeyRange) -> Result<Vec<Vec<u8>>, StorageError> {
        self.iter(range.clone(), ScanOrder::Ascending)
            .map(|kv| kv.map(|(k, _)| k))
            .collect()
    }
}

impl<T: KvRead + ?Sized> KvReadExt for T {}

/// An ordered iterator over a range, built from bounded [`KvRead::scan`] calls.
pub struct RangeIter<'a, R: KvRead + ?Sized> {
    reader: &'a R,
    remaining: Option<KeyRange>,
    order: ScanOrder,
    page: VecDeque<KeyValue>,
    page_size: usize,
}

impl<R: KvRead + ?Sized> RangeIter<'_, R> {
    /// Sets how many entries each underlying scan fetches (at least 1).
    pub fn page_size(mut self, entries: usize) -> Self {
        self.page_size = entries.max(1);
        self
    }

    fn refill(&mut self) -> Result<(), StorageError> {
        let Some(range) = self.remaining.take() else {
            return Ok(());
        };
        let page = self.reader.scan(&range, self.order, self.page_size)?;
        if page.len() == self.page_size
            && let Some((last, _)) = page.last()
        {
            self.remaining = Some(match self.order {
                ScanOrder::Ascending => range.with_start_at_least(&key_successor(last)),
                ScanOrder::Descending => range.with_end_at_most(last),
            });
        }
        self.page.extend(page);
        Ok(())
    }
}

impl<R: KvRead + ?Sized> Iterator for RangeIter<'_, R> {
    type Item = Result<KeyValue, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.page.is_empty()
            && let Err(e) = self.refill()
        {
            return Some(Err(e));
        }
        self.page.pop_front().map(Ok)
    }
}

/// The end of every [`KvRead::scan`] over an engine's ordered range iterator: the first
/// `limit` entries of `entries` (ascending by key) in `order`, each converted by `convert`;
/// the first conversion error stops the scan.
pub fn collect_scan<I, E>(
    entries: I,
    order: ScanOrder,
    limit: usize,
    convert: impl FnMut(I::Item) -> Result<KeyValue, E>,
) -> Result<Vec<KeyValue>, E>
where
    I: DoubleEndedIterator,
{
    match order {
        ScanOrder::Ascending => entries.take(limit).map(convert).collect(),
        ScanOrder::Descending => entries.rev().take(limit).map(convert).collect(),
    }
}

/// Runs one engine call, containing a panic inside it: the panic becomes
/// [`StorageError::Panicked`] and sets `poisoned`, after which every call on the same handle
/// is refused with [`StorageError::Closed`] without reaching the engine (a store whose engine
/// panicked is damaged; nothing more is written to it). An adapter wraps each of its trait
/// methods in this, so that no engine panic reaches the node.
pub fn contained<T>(
    engine: &'static str,
    operation: &'static str,
    poisoned: &std::sync::atomic::AtomicBool,
    call: impl FnOnce() -> Result<T, StorageError>,
) -> Result<T, StorageError> {
    use std::sync::atomic::Ordering;
    if poisoned.load(Ordering::Acquire) {
        return Err(StorageError::Closed {
            reason: format!("{engine} panicked earlier on this handle; reopen the store"),
        });
    }
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)) {
        Ok(result) => result,
        Err(payload) => {
            poisoned.store(true, Ordering::Release);
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".to_owned());
            tracing::error!(
                engine,
                operation,
                message,
                "engine panicked; store handle poisoned"
            );
            Err(StorageError::Panicked {
                engine,
                operation,
                message,
            })
        }
    }
}

/// The default range delete for engines without a native one: returns a batch in which every
/// [`BatchOp::DeleteRange`] is replaced by point deletes of the keys inside it, read from
/// `reader` plus the keys put earlier in the same batch.
///
/// Correct only if no other writer changes the store between this call and the write of the
/// returned batch: call it under the adapter's write lock.
pub fn expand_range_deletes<R: KvRead + ?Sized>(
    reader: &R,
    batch: WriteBatch,
) -> Result<WriteBatch, StorageError> {
    expand_with(reader, batch, |_, _| {})
}

/// A batch whose range deletes were expanded ([`expand_range_deletes_sized`]), with what the
/// keys the ranges found held.
#[derive(Debug, Default)]
pub struct ExpandedBatch {
    /// The batch, range deletes replaced by point deletes.
    pub batch: WriteBatch,
    /// Each key a range delete found in the store, with its bytes there before the batch (key
    /// plus value): an adapter that counts its live bytes needs no second read of them.
    pub found_bytes: HashMap<Vec<u8>, u64>,
}

impl ExpandedBatch {
    /// The live bytes (keys plus values) a store holding `live` holds once this batch is
    /// written: each put or delete replaces its key's bytes, as an earlier op of the batch left
    /// them, as the expansion found them, or as `stored_bytes` reads them from the store (key
    /// plus value, `None` when absent). Exact when called under the lock the expansion was made
    /// under; never below 0.
    pub fn live_bytes_after(
        &self,
        live: u64,
        mut stored_bytes: impl FnMut(&[u8]) -> Result<Option<u64>, StorageError>,
    ) -> Result<u64, StorageError> {
        let mut in_batch: HashMap<&[u8], u64> = HashMap::new();
        let mut change = 0i128;
        for op in self.batch.ops() {
            let (key, bytes) = match op {
                BatchOp::Put { key, value } => (key.as_slice(), (key.len() + value.len()) as u64),
                BatchOp::Delete { key } => (key.as_slice(), 0),
                BatchOp::DeleteRange(_) => continue,
            };
            let before = match in_batch.get(key).or_else(|| self.found_bytes.get(key)) {
                Some(&bytes) => bytes,
                None => stored_bytes(key)?.unwrap_or(0),
            };
            change += i128::from(bytes) - i128::from(before);
            in_batch.insert(key, bytes);
        }
        let after = i128::from(live) + change;
        Ok(u64::try_from(after.max(0)).unwrap_or(u64::MAX))
    }
}

/// [`expand_range_deletes`], also handing back the bytes of every key the ranges found, read by
/// the same scan. The same lock rule holds.
pub fn expand_range_deletes_sized<R: KvRead + ?Sized>(
    reader: &R,
    batch: WriteBatch,
) -> Result<ExpandedBatch, StorageError> {
    let mut found_bytes = HashMap::new();
    let batch = expand_with(reader, batch, |key, value| {
        found_bytes.insert(key.to_vec(), (key.len() + value.len()) as u64);
    })?;
    Ok(ExpandedBatch { batch, found_bytes })
}

/// The expansion itself: `found` sees every key a range delete finds in `reader`, with its
/// value, before the key's point delete is queued.
fn expand_with<R: KvRead + ?Sized>(
    reader: &R,
    batch: WriteBatch,
    mut found: impl FnMut(&[u8], &[u8]),
) -> Result<WriteBatch, StorageError> {
    if !batch.has_range_deletes() {
        return Ok(batch);
    }
    let ops = batch.into_ops();
    let mut out = WriteBatch::new();
    for (index, op) in ops.iter().enumerate() {
        match op {
            BatchOp::DeleteRange(range) => {
                for entry in reader.iter(range.clone(), ScanOrder::Ascending) {
                    let (key, value) = entry?;
                    found(&key, &value);
                    out.delete(key);
                }
                for earlier in &ops[..index] {
                    if let BatchOp::Put { key, .. } = earlier
                        && range.contains(key)
                    {
                        out.delete(key.clone());
                    }
                }
            }
            other => out.ops.push(other.clone()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_contained_and_poisons_the_handle() {
        let poisoned = std::sync::atomic::AtomicBool::new(false);
        assert_eq!(contained("e", "get", &poisoned, || Ok(1)).unwrap(), 1);
        let err = contained::<()>("e", "get", &poisoned, || panic!("boom")).unwrap_err();
        assert!(
            matches!(err, StorageError::Panicked { ref message, .. } if message == "boom"),
            "{err}"
        );
        let err = contained("e", "get", &poisoned, || Ok(1)).unwrap_err();
        assert!(matches!(err, StorageError::Closed { .. }), "{err}");
    }
}
