//! # reclaim-sled
//!
//! The sled 0.34 engine adapter.
//!
//! ## How compaction works here, and what it costs
//!
//! sled 0.34 has no compaction API and its files never shrink. To give space back the store is
//! kept as *generations* ([`reclaim_core::rewrite`]): each generation directory holds one sled
//! database, and compaction is the core's online rewrite, which copies the live data into a
//! fresh generation while reads and writes go on, and switches over under a write lock held
//! for a few flushes:
//!
//! ```text
//! DIR/
//!   RECLAIM_BACKEND, reclaim.lock   (reclaim_core::dir)
//!   CURRENT                         names the live generation, replaced atomically
//!   gen-000001/                     the live sled database (and its clean-close record)
//!   gen-000002/                     a rewrite in progress (removed on open if CURRENT does not name it)
//! ```
//!
//! During the rewrite the store needs up to twice its live size on disk; the rewrite checks
//! for that space before it starts and refuses with [`StorageError::NoSpace`], changing
//! nothing. Declared as [`CompactionAccess::Online`] and [`CompactionScope::WholeStore`].
//!
//! ## Invariants
//!
//! * A [`WriteBatch`] is one `apply_batch`: atomic. sled has no range delete, so range deletes
//!   are expanded to point deletes under the write mutex ([`expand_range_deletes_sized`], whose
//!   scan also gives the deleted bytes to the live-bytes count), which makes
//!   the expansion exact.
//! * [`WriteOptions::sync`] flushes sled before `write` returns, and then fsyncs the blob files
//!   sled wrote since the last such sync, and their directory. sled 0.34 writes a page larger
//!   than a quarter of its segment (a leaf holding a few large values) to a file of its own
//!   under `blobs/` and never syncs it: its flush syncs only the log, which points at the
//!   blob (an ALICE run found this, spacejam/sled#1077). Without this, an acknowledged write
//!   could point at a file a power cut lost; and the kernel wrote those files back in bursts
//!   that held the node's commits behind them.
//! * sled 0.34 does not always release its file lock when its last handle drops, so this
//!   process keeps one live handle per generation and reuses it on reopen (reclaim's directory
//!   lock makes that safe); [`SledStore::close`] releases it. A reopen right after `close` may
//!   find sled's lock still held by the closing handle's background thread, and waits for it
//!   (at most 5 s) before failing with a clear error.
//! * A snapshot that sled left unfinished when its process was killed (`snap.*.generating`) is
//!   removed before a generation is opened: sled 0.34.7 would read it and refuse the store
//!   (spacejam/sled#1527). The log and the last complete snapshot hold everything it held.
//! * Writes and rewrite steps are refused with [`StorageError::NoSpace`] before the file system's
//!   free space falls below [`FREE_SPACE_RESERVE`]: sled 0.34 hangs after a failed write.
//! * A damaged log makes sled 0.34 recover silently to an *earlier* state (everything after the
//!   damage is dropped, acknowledged writes included). The adapter counts its writes and, on a
//!   clean close (`close` or drop), records the count both inside sled (tree
//!   `reclaim-meta`) and beside it ([`reclaim_core::dir::CLEAN_FILE`], written durably): an
//!   open that finds sled's count
//!   below `CLEAN`'s refuses the store as [`StorageError::Corrupt`] instead of serving the
//!   rolled-back state. (Damage after a crash, before any clean close, is not covered.) Each
//!   generation keeps its own record in its directory.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use reclaim_core::dir::{
    EntryKind, available_space, check_clean_close, directory_size, record_clean_close,
    require_entry, sync_dir,
};
use reclaim_core::kv::{
    ExpandedBatch, KeyValue, collect_scan, contained, expand_range_deletes_sized,
};
use reclaim_core::rewrite::{GenerationEngine, GenerationalStore, RewriteSettings, SideKeyspace};
use reclaim_core::{
    BatchOp, Capabilities, Compactable, CompactionAccess, CompactionScope, KeyRange, KvRead,
    KvWrite, ScanOrder, SpaceReport, StorageError, WriteBatch, WriteOptions,
};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use tracing::warn;

/// The longest key this adapter promises to store (tested by the conformance suite; the
/// engine itself may take longer ones).
pub const MAX_KEY_BYTES: usize = 1 << 20;

/// Engine name used in markers, logs and capabilities.
pub const ENGINE: &str = "sled";
/// The file naming the live generation.
pub const CURRENT_FILE: &str = reclaim_core::rewrite::CURRENT_FILE;
/// sled's tree holding the adapter's own records (the write count), apart from the data.
const META_TREE: &str = "reclaim-meta";
/// The tree of the side keyspace ([`reclaim_core::rewrite::SideKeyspace`]): a write-once
/// rewrite's tombstones, written in one transaction with the batch they belong to.
const SIDE_TREE: &str = "reclaim-side";

/// Where sled 0.34 keeps the pages too large for its log, one file each, named by number.
const BLOB_DIR: &str = "blobs";

/// The write count's key in [`META_TREE`].
const WRITES_KEY: &[u8] = b"writes";
/// The live bytes' key in [`META_TREE`]: recorded at a clean close, removed just before the
/// first write after open (so a crash never leaves a stale figure behind: the next open then
/// counts them).
const LIVE_BYTES_KEY: &[u8] = b"live-bytes";

/// What sled keeps on disk by itself, as a multiple of the live bytes: its segment cleaner
/// rewrites a log segment only once at most half of it is live
/// (`SEGMENT_CLEANUP_THRESHOLD` = 50 % in sled 0.34), so a store under churn settles at up
/// to twice its live data (1.84–1.90× measured at 545 MiB retained, compaction off). A
/// rewrite gets below that only until the cleaner's steady state is back, a few hundred MiB
/// of writes later; what lies beyond it is what a rewrite gives back for good.
pub const SLED_STEADY_SPACE_FACTOR: u64 = 2;

/// The smallest chunk the online rewrite copies between two of the node's writes
/// ([`RewriteSettings::min_chunk_bytes`]; the core's default is 32 KiB). A node writing back
/// to back never rests, so nearly every one of its commits waits for one such chunk; sled
/// rewrites the whole leaf a chunk lands in (to a blob file, which the chunk's flush syncs),
/// so what a commit waits for grows with the chunk. Release runs of `reclaim simulate
/// --block-kib 64`, 545 MiB retained, writer flat out, CometBFT's interval policy, one shared
/// disk, four runs each, interleaved: steady-state p99 of the commits during rewrites
/// 6.2–7.2 ms with 16 KiB against 7.6–11.5 ms with 32 KiB (6.2 and 7.0 ms with compaction
/// off); each whole rewrite took 21–27 s with 16 KiB, 21–36 s with 32 KiB.
pub const SMALLEST_COPY_CHUNK_BYTES: u64 = 16 << 10;

/// One generation of a sled store: one sled database in its directory, with the adapter's
/// write count and clean-close record.
pub struct SledGeneration {
    dir: PathBuf,
    db: sled::Db,
    writer: Mutex<()>,
    /// Set when sled panicked inside a call: the handle refuses every later call.
    poisoned: AtomicBool,
    /// Writes applied over the generation's life (recorded at each clean close).
    writes: AtomicU64,
    /// Bytes of the live keys and values (key length + value length, summed), kept exact
    /// under the write mutex.
    live_bytes: AtomicU64,
    /// The live bytes recorded at the last clean close are still in [`META_TREE`]: the next
    /// write removes them first.
    live_bytes_recorded: AtomicBool,
    /// The blob files (by sled's number for them) already made durable by [`Self::flush`].
    synced_blobs: Mutex<HashSet<u64>>,
}

impl std::fmt::Debug for SledGeneration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledGeneration")
            .field("dir", &self.dir)
            .finish()
    }
}

fn engine_error(operation: &'static str, error: sled::Error) -> StorageError {
    match error {
        sled::Error::Io(e) => StorageError::io(operation, e),
        other => StorageError::engine(ENGINE, operation, other),
    }
}

/// Live sled handles of this process, by generation directory.
///
/// sled 0.34 does not always release its file lock when the last `Db` handle is dropped (a
/// reference lingers inside sled), so reopening a store in the same process could fail forever
/// with "could not acquire lock". reclaim's own directory lock already guarantees that only one
/// `SledStore` uses a directory at a time, across processes and within this one, so reusing
/// the handle this process still has is safe. Entries leave when a rewrite retires their
/// generation.
fn live_handles() -> &'static parking_lot::Mutex<std::collections::HashMap<PathBuf, sled::Db>> {
    static HANDLES: std::sync::OnceLock<
        parking_lot::Mutex<std::collections::HashMap<PathBuf, sled::Db>>,
    > = std::sync::OnceLock::new();
    HANDLES.get_or_init(Default::default)
}

fn open_generation(path: &Path) -> Result<sled::Db, StorageError> {
    let path = path.to_owned();
    let mut handles = live_handles().lock();
    if let Some(db) = handles.get(&path) {
        return Ok(db.clone());
    }
    remove_unfinished_snapshots(&path)?;
    // The caller holds the store directory's lock, so no other process can hold sled's file
    // lock: a lock conflict here is this process's own closed handle, whose sled background
    // thread releases the lock a moment after the last handle drops. Wait for it, boundedly.
    let deadline = std::time::Instant::now() + OWN_LOCK_RELEASE_WAIT;
    let db =
        loop {
            // sled asserts on some damaged files instead of returning an error: a damaged store
            // must still be an error here, never a panic.
            let opened = std::panic::catch_unwind(|| sled::Config::new().path(&path).open())
                .map_err(|_| StorageError::Corrupt {
                    engine: ENGINE,
                    path: path.clone(),
                    detail: "the engine panicked while reading its files".into(),
                })?;
            match opened {
                Ok(db) => break db,
                Err(e) if is_lock_conflict(&e) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => return Err(map_open_error(&path, e)),
            }
        };
    handles.insert(path, db.clone());
    Ok(db)
}

/// Removes the snapshot files sled was still writing when its process died
/// (`snap.<lsn>.generating`), so that sled opens from its last complete snapshot.
///
/// sled 0.34.7 writes a snapshot to `snap.<lsn>.generating`, fsyncs it and renames it to
/// `snap.<lsn>`: the rename is the commit point, and older snapshots are removed only after it.
/// But its reader takes every `snap.*` file as a candidate and reads the last in sort order,
/// which is the unfinished one whenever one was left behind; a kill between the create and the
/// rename therefore made the store refuse to open with "Read corrupted data" (the same symptom
/// as spacejam/sled#1527 and #1533). An unfinished snapshot holds nothing the log and the last
/// complete snapshot do not, so removing it is what sled's own commit protocol implies. Only
/// called before this process opens the generation, under reclaim's directory lock, so no sled
/// instance can be writing the file.
fn remove_unfinished_snapshots(generation: &Path) -> Result<(), StorageError> {
    let entries = match std::fs::read_dir(generation) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StorageError::io_at("list sled generation", generation, e)),
    };
    let mut removed = false;
    for entry in entries {
        let entry =
            entry.map_err(|e| StorageError::io_at("list sled generation", generation, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            warn!(
                file = %entry.path().display(),
                "removing an unfinished sled snapshot left by a crash"
            );
            std::fs::remove_file(entry.path()).map_err(|e| {
                StorageError::io_at("remove unfinished sled snapshot", &entry.path(), e)
            })?;
            removed = true;
        }
    }
    if removed {
        sync_dir(generation)?;
    }
    Ok(())
}

/// Free space a sled store always leaves on its file system: writes and compactions that would
/// eat into it are refused with [`StorageError::NoSpace`] before sled sees them, because sled
/// 0.34 hangs after a failed write to a full disk. It covers sled's own buffers and flushes
/// (8 MiB I/O buffers) with room to spare.
pub const FREE_SPACE_RESERVE: u64 = 24 << 20;

/// How long opening waits for a sled file lock still held by this process's closed handle.
const OWN_LOCK_RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

fn is_lock_conflict(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"))
}

/// The write count recorded inside sled at its last clean close (0 when none).
fn recorded_writes(db: &sled::Db) -> Result<u64, StorageError> {
    Ok(recorded_number(db, WRITES_KEY, "read write count")?.unwrap_or(0))
}

/// The number recorded under `key` in [`META_TREE`] (`None` when absent or malformed).
fn recorded_number(
    db: &sled::Db,
    key: &[u8],
    operation: &'static str,
) -> Result<Option<u64>, StorageError> {
    let meta = db
        .open_tree(META_TREE)
        .map_err(|e| engine_error("open meta tree", e))?;
    Ok(meta
        .get(key)
        .map_err(|e| engine_error(operation, e))?
        .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
        .map(u64::from_be_bytes))
}

/// The live bytes recorded at the last clean close, if sled's meta tree still has them
/// (`true` with them); otherwise counted by a scan (a new generation, or a crash since).
/// Reads only: opening a store on a full disk must not write to sled.
fn live_bytes_at_open(db: &sled::Db) -> Result<(u64, bool), StorageError> {
    if let Some(live) = recorded_number(db, LIVE_BYTES_KEY, "read live bytes")? {
        return Ok((live, true));
    }
    let counted = db.iter().try_fold(0u64, |sum, entry| {
        let (key, value) = entry.map_err(|e| engine_error("count live bytes", e))?;
        Ok::<_, StorageError>(sum.saturating_add((key.len() + value.len()) as u64))
    })?;
    Ok((counted, false))
}

/// Forgets this process's handle on the generation in `dir`.
fn forget_handle(dir: &Path) {
    live_handles().lock().remove(dir);
}

fn map_open_error(path: &Path, e: sled::Error) -> StorageError {
    match e {
        sled::Error::Corruption { .. } | sled::Error::ReportableBug(_) => StorageError::Corrupt {
            engine: ENGINE,
            path: path.to_owned(),
            detail: e.to_string(),
        },
        sled::Error::Io(io) if io.kind() == std::io::ErrorKind::StorageFull => {
            StorageError::NoSpace { operation: "open" }
        }
        other => engine_error("open", other),
    }
}

impl SledGeneration {
    /// Opens the sled database in `dir` (a new one when `create`), checking that sled did not
    /// recover to a state older than its last clean close.
    fn open(dir: &Path, create: bool) -> Result<Self, StorageError> {
        if !create {
            require_entry(dir, ENGINE, "db", EntryKind::File, "sled database file")?;
        }
        let db = open_generation(dir)?;
        let writes = recorded_writes(&db)?;
        check_clean_close(dir, ENGINE, 0, writes)?;
        let (live_bytes, live_bytes_recorded) = live_bytes_at_open(&db)?;
        Ok(Self {
            dir: dir.to_owned(),
            db,
            writer: Mutex::new(()),
            poisoned: AtomicBool::new(false),
            writes: AtomicU64::new(writes),
            live_bytes: AtomicU64::new(live_bytes),
            live_bytes_recorded: AtomicBool::new(live_bytes_recorded),
            synced_blobs: Mutex::new(HashSet::new()),
        })
    }

    /// Flushes sled, then makes durable the blob files it wrote since the last flush (see the
    /// crate's invariants): every write acknowledged before this returns is on stable storage.
    fn flush(&self) -> Result<(), StorageError> {
        self.db.flush().map_err(|e| engine_error("flush", e))?;
        self.sync_new_blobs().map(|_| ())
    }

    /// Fsyncs every blob file not synced before, then the blob directory if any was; returns
    /// how many. A blob sled removed meanwhile (its page was rewritten) is skipped.
    fn sync_new_blobs(&self) -> Result<usize, StorageError> {
        let dir = self.dir.join(BLOB_DIR);
        let mut synced = self.synced_blobs.lock();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            // sled makes the directory at creation; none means no blob yet.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(StorageError::io("list sled's blob files", e)),
        };
        let mut present = HashSet::with_capacity(synced.len() + 4);
        let mut newly_synced = 0;
        for entry in entries {
            let entry = entry.map_err(|e| StorageError::io("list sled's blob files", e))?;
            let Some(number) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<u64>().ok())
            else {
                continue;
            };
            if !synced.contains(&number) {
                match std::fs::File::open(entry.path()) {
                    Ok(file) => file
                        .sync_data()
                        .map_err(|e| StorageError::io("sync a sled blob file", e))?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(StorageError::io("open a sled blob file", e)),
                }
                newly_synced += 1;
            }
            present.insert(number);
        }
        if newly_synced > 0 {
            sync_dir(&dir)?;
        }
        // Forget the removed ones: sled never reuses a blob's number (it is a log position).
        *synced = present;
        Ok(newly_synced)
    }

    /// Records the write count inside sled and in [`reclaim_core::dir::CLEAN_FILE`] (a clean
    /// close).
    fn record_clean_close(&self) -> Result<(), StorageError> {
        // sled hangs after an ENOSPC in its log: never write the record onto a full disk.
        self.ensure_free_space("close", 4096)?;
        let writes = self.writes.load(Ordering::SeqCst);
        let meta = self
            .db
            .open_tree(META_TREE)
            .map_err(|e| engine_error("open meta tree", e))?;
        meta.insert(WRITES_KEY, &writes.to_be_bytes())
            .map_err(|e| engine_error("record write count", e))?;
        let live = self.live_bytes.load(Ordering::SeqCst);
        meta.insert(LIVE_BYTES_KEY, &live.to_be_bytes())
            .map_err(|e| engine_error("record live bytes", e))?;
        self.live_bytes_recorded.store(true, Ordering::SeqCst);
        self.flush()?;
        record_clean_close(&self.dir, 0, writes)
    }

    /// Records a clean close and lets go of this process's sled handle.
    fn close(self) -> Result<(), StorageError> {
        let recorded = self.record_clean_close();
        forget_handle(&self.dir);
        // Dropping records nothing more: the record is written once.
        self.poisoned.store(true, Ordering::Release);
        recorded
    }

    /// The live bytes once `expanded` is applied (one read per key the batch does not
    /// already tell about). Call under the write mutex.
    fn live_bytes_after(&self, expanded: &ExpandedBatch) -> Result<u64, StorageError> {
        expanded.live_bytes_after(self.live_bytes.load(Ordering::SeqCst), |key| {
            Ok(self
                .db
                .get(key)
                .map_err(|e| engine_error("get", e))?
                .map(|value| (key.len() + value.len()) as u64))
        })
    }

    /// Refuses with [`StorageError::NoSpace`] unless the file system holding the store has
    /// `needed` bytes free on top of [`FREE_SPACE_RESERVE`]. sled 0.34 never recovers from an
    /// ENOSPC inside its log (its flusher blocks forever), so reclaim must not let it get there.
    fn ensure_free_space(&self, operation: &'static str, needed: u64) -> Result<(), StorageError> {
        let available = available_space(&self.dir)?;
        if available < needed.saturating_add(FREE_SPACE_RESERVE) {
            warn!(
                operation,
                available,
                needed,
                reserve = FREE_SPACE_RESERVE,
                "sled store refuses to write: too little free space"
            );
            return Err(StorageError::NoSpace { operation });
        }
        Ok(())
    }
}

impl Drop for SledGeneration {
    /// A drop is a clean close for the rollback check (the process keeps sled's handle; see
    /// [`SledStore::close`]). Nothing is recorded for a poisoned or closed handle.
    fn drop(&mut self) {
        if self.poisoned.load(Ordering::Acquire) {
            return;
        }
        if let Err(e) = self.record_clean_close() {
            warn!(error = %e, "could not record the sled store's clean close");
        }
    }
}

impl KvRead for SledGeneration {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        contained(ENGINE, "get", &self.poisoned, || {
            let value = self.db.get(key).map_err(|e| engine_error("get", e))?;
            Ok(value.map(|v| v.to_vec()))
        })
    }

    fn scan(
        &self,
        range: &KeyRange,
        order: ScanOrder,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StorageError> {
        contained(ENGINE, "scan", &self.poisoned, || {
            if range.is_empty() || limit == 0 {
                return Ok(Vec::new());
            }
            let entries = self.db.range::<&[u8], _>(range.as_bounds());
            collect_scan(entries, order, limit, |entry| {
                entry
                    .map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(|e| engine_error("scan", e))
            })
        })
    }
}

impl KvWrite for SledGeneration {
    fn write(&self, batch: WriteBatch, options: WriteOptions) -> Result<(), StorageError> {
        self.write_with_side(batch, Vec::new(), options)
    }
}

impl SledGeneration {
    /// Applies `batch` and puts `side` into [`SIDE_TREE`]: one `apply_batch`, or one
    /// transaction over both trees when there is a side entry.
    fn write_with_side(
        &self,
        batch: WriteBatch,
        side: Vec<KeyValue>,
        options: WriteOptions,
    ) -> Result<(), StorageError> {
        contained(ENGINE, "write", &self.poisoned, || {
            let _writer = self.writer.lock();
            let incoming: u64 = batch
                .ops()
                .iter()
                .map(|op| match op {
                    BatchOp::Put { key, value } => (key.len() + value.len()) as u64,
                    BatchOp::Delete { key } => key.len() as u64,
                    BatchOp::DeleteRange(_) => 0,
                })
                .sum();
            // sled's log may write a batch twice (buffer and segment) before it is durable.
            self.ensure_free_space("write", incoming.saturating_mul(2))?;
            let expanded = expand_range_deletes_sized(self, batch)?;
            let live_bytes = self.live_bytes_after(&expanded)?;
            let batch = expanded.batch;
            if self.live_bytes_recorded.load(Ordering::SeqCst) {
                // Before the batch in sled's log: a crash that keeps the batch keeps this too.
                self.db
                    .open_tree(META_TREE)
                    .and_then(|meta| meta.remove(LIVE_BYTES_KEY))
                    .map_err(|e| engine_error("forget recorded live bytes", e))?;
                self.live_bytes_recorded.store(false, Ordering::SeqCst);
            }
            let mut sled_batch = sled::Batch::default();
            for op in batch.into_ops() {
                match op {
                    BatchOp::Put { key, value } => sled_batch.insert(key, value),
                    BatchOp::Delete { key } => sled_batch.remove(key),
                    BatchOp::DeleteRange(range) => {
                        return Err(StorageError::engine(
                            ENGINE,
                            "apply_batch",
                            format!("range delete {range} was not expanded"),
                        ));
                    }
                }
            }
            if side.is_empty() {
                self.db
                    .apply_batch(sled_batch)
                    .map_err(|e| engine_error("apply_batch", e))?;
            } else {
                let side_tree = self
                    .db
                    .open_tree(SIDE_TREE)
                    .map_err(|e| engine_error("open side tree", e))?;
                (&*self.db as &sled::Tree, &side_tree)
                    .transaction(|(main, side_tree)| {
                        main.apply_batch(&sled_batch)?;
                        for (key, value) in &side {
                            side_tree.insert(key.as_slice(), value.as_slice())?;
                        }
                        Ok::<(), ConflictableTransactionError<()>>(())
                    })
                    .map_err(|e| match e {
                        TransactionError::Storage(e) => engine_error("transaction", e),
                        TransactionError::Abort(()) => {
                            StorageError::engine(ENGINE, "transaction", "aborted")
                        }
                    })?;
            }
            self.live_bytes.store(live_bytes, Ordering::SeqCst);
            self.writes.fetch_add(1, Ordering::SeqCst);
            if options.sync {
                self.flush()?;
            }
            Ok(())
        })
    }
}

/// One generation cannot compact by itself (sled 0.34 has no compaction): its own
/// `compact_range` does nothing; [`SledStore`] compacts by rewriting it.
impl Compactable for SledGeneration {
    fn compact_range(&self, _range: &KeyRange) -> Result<(), StorageError> {
        Ok(())
    }

    fn size_on_disk(&self) -> Result<u64, StorageError> {
        directory_size(&self.dir)
    }

    /// Reclaimable: the bytes on disk beyond [`SLED_STEADY_SPACE_FACTOR`] × the live bytes
    /// (counted exactly on every write). Below that, sled's own segment cleaner keeps the
    /// store where a rewrite would leave it within a few hundred MiB of writes, so a rewrite
    /// there gives nothing back for good. The figure undercounts what a rewrite returns at
    /// once by up to the live bytes (a fresh generation holds about 1.1× them).
    fn space_report(&self) -> Result<SpaceReport, StorageError> {
        let on_disk = self.size_on_disk()?;
        let live = self.live_bytes.load(Ordering::SeqCst);
        let kept = live.saturating_mul(SLED_STEADY_SPACE_FACTOR);
        Ok(SpaceReport {
            on_disk,
            reclaimable: Some(on_disk.saturating_sub(kept)),
            live_bytes: Some(live),
        })
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            compaction_reclaims_space: false,
            ..SledStore::CAPABILITIES
        }
    }
}

/// sled as a [`GenerationEngine`]: one [`SledGeneration`] per generation directory.
#[derive(Debug, Clone, Copy, Default)]
pub struct SledEngine;

impl GenerationEngine for SledEngine {
    type Store = SledGeneration;

    fn name(&self) -> &'static str {
        ENGINE
    }

    fn open(&self, dir: &Path, create: bool) -> Result<SledGeneration, StorageError> {
        SledGeneration::open(dir, create)
    }

    /// Flushes sled (its blob files too) and fsyncs the generation's directory.
    fn persist(&self, store: &SledGeneration) -> Result<(), StorageError> {
        contained(ENGINE, "flush", &store.poisoned, || {
            store.flush()?;
            sync_dir(&store.dir)
        })
    }

    fn close(&self, store: SledGeneration, _dir: &Path) -> Result<(), StorageError> {
        store.close()
    }

    fn forget(&self, dir: &Path) {
        forget_handle(dir);
    }

    fn free_space_reserve(&self) -> u64 {
        FREE_SPACE_RESERVE
    }

    fn side_keyspace(&self) -> Option<&dyn SideKeyspace<SledGeneration>> {
        Some(self)
    }

    fn capabilities(&self) -> Capabilities {
        SledStore::CAPABILITIES
    }
}

/// The side keyspace is a second tree, written in one transaction with the main one.
impl SideKeyspace<SledGeneration> for SledEngine {
    fn write_with_side(
        &self,
        store: &SledGeneration,
        batch: WriteBatch,
        side: Vec<KeyValue>,
        options: WriteOptions,
    ) -> Result<(), StorageError> {
        store.write_with_side(batch, side, options)
    }

    fn side_entries(&self, store: &SledGeneration) -> Result<Vec<KeyValue>, StorageError> {
        contained(ENGINE, "read side tree", &store.poisoned, || {
            let tree = store
                .db
                .open_tree(SIDE_TREE)
                .map_err(|e| engine_error("open side tree", e))?;
            tree.iter()
                .map(|entry| {
                    let (key, value) = entry.map_err(|e| engine_error("scan side tree", e))?;
                    Ok((key.to_vec(), value.to_vec()))
                })
                .collect()
        })
    }

    fn clear_side(&self, store: &SledGeneration) -> Result<(), StorageError> {
        contained(ENGINE, "clear side tree", &store.poisoned, || {
            store
                .db
                .drop_tree(SIDE_TREE)
                .map(drop)
                .map_err(|e| engine_error("drop side tree", e))
        })
    }
}

/// A reclaim store on sled, kept as generations and compacted online (see the crate docs).
pub struct SledStore {
    inner: GenerationalStore<SledEngine>,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("root", &self.inner.path())
            .field("generation", &self.inner.generation())
            .finish()
    }
}

impl SledStore {
    /// What this adapter declares.
    pub const CAPABILITIES: Capabilities = Capabilities {
        engine: ENGINE,
        native_range_delete: false,
        compaction_reclaims_space: true,
        compaction_access: CompactionAccess::Online,
        compaction_scope: CompactionScope::WholeStore,
        max_space_factor_after_compaction: 1.2,
        journal_bytes_kept_after_compaction: 0,
        max_key_bytes: MAX_KEY_BYTES,
    };

    /// Opens (creating if needed) the store in directory `path`, removing a rewrite that a
    /// crash interrupted.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StorageError> {
        Ok(Self {
            inner: GenerationalStore::open_with(path, SledEngine, Self::rewrite_settings())?,
        })
    }

    /// The online rewrite's settings for sled: the core's defaults, with a smallest copy chunk
    /// of [`SMALLEST_COPY_CHUNK_BYTES`].
    pub fn rewrite_settings() -> RewriteSettings {
        RewriteSettings {
            min_chunk_bytes: SMALLEST_COPY_CHUNK_BYTES,
            ..RewriteSettings::default()
        }
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        self.inner.path()
    }

    /// Flushes and closes the store, releasing this process's sled handle so that the next
    /// `open` reads the files again (dropping a `SledStore` keeps the handle for a fast, safe
    /// reopen in this process; see the module docs).
    pub fn close(self) -> Result<(), StorageError> {
        self.inner.close()
    }

    /// The live generation number (it grows by one per compaction).
    pub fn generation(&self) -> u64 {
        self.inner.generation()
    }

    /// The generations and the online rewrite underneath.
    pub fn generations(&self) -> &GenerationalStore<SledEngine> {
        &self.inner
    }
}

// The generational store's compaction is the core's online rewrite into a new generation; it
// declares what this adapter promises (`SledStore::CAPABILITIES`).
reclaim_core::forward_kv_store!(SledStore => inner);

#[cfg(test)]
mod tests {
    use super::*;

    fn put_large(store: &SledGeneration, key: u32, options: WriteOptions) {
        let mut batch = WriteBatch::new();
        batch.put(key.to_be_bytes().to_vec(), vec![key as u8; 96 << 10]);
        store.write(batch, options).unwrap();
    }

    /// sled writes leaves of large values to blob files and never syncs them itself: buffered
    /// writes leave them for the next durable write, which syncs every one (a sync right after
    /// it finds none left).
    #[test]
    fn a_durable_write_leaves_no_blob_file_unsynced() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledGeneration::open(&dir.path().join("gen"), true).unwrap();
        for key in 0..16 {
            put_large(&store, key, WriteOptions::BUFFERED);
        }
        let blobs = std::fs::read_dir(dir.path().join("gen").join(BLOB_DIR))
            .unwrap()
            .count();
        assert!(
            blobs > 0,
            "sled wrote no blob file: this test covers nothing"
        );
        assert!(
            store.sync_new_blobs().unwrap() > 0,
            "buffered writes left no blob file to sync"
        );
        for key in 16..32 {
            put_large(&store, key, WriteOptions::BUFFERED);
        }
        put_large(&store, 32, WriteOptions::DURABLE);
        assert_eq!(
            store.sync_new_blobs().unwrap(),
            0,
            "a durable write left blob files unsynced"
        );
    }
}
