//! # reclaim-fjall
//!
//! The fjall 3 engine adapter (a maintained, pure-Rust LSM tree).
//!
//! ## Layout and traps (what the conformance suite would catch)
//!
//! ```text
//! DIR/
//!   RECLAIM_BACKEND, reclaim.lock, CLEAN   (reclaim_core::dir)
//!   fjall/                                 fjall's database: journals, tables, its own lock
//! ```
//!
//! * **Keys.** lsm-tree refuses the empty key and keys over 65,535 bytes. The adapter stores
//!   every key behind one `0x00` byte: the empty key works, order is kept, and keys of up to
//!   [`MAX_KEY_BYTES`] (65,534) are accepted; a longer one is refused with an error before
//!   anything is written (fjall would panic).
//! * **Range deletes.** fjall has no range tombstone: a range delete is expanded into point
//!   deletes under the adapter's write mutex (exact, but O(keys): `native_range_delete` is
//!   false).
//! * **Compaction returns space only when pushed.** `compact_range` flushes the memtable,
//!   waits for it, runs a major compaction (the whole keyspace: `CompactionScope::WholeStore`)
//!   then writes its own count record and flushes once more: fjall evicts fully flushed
//!   journals and garbage-collects replaced tables only when a memtable rotates, and rotates
//!   only a non-empty one. It then waits until the replaced tables are really gone from disk.
//!   The journal preallocates 64 MiB: a fixed overhead that the suite's space case measures
//!   above an empty store, so it neither hides nor fails anything.
//! * **A full disk.** fjall poisons the whole database when a flush fails (every later write
//!   is refused until the store is opened again), and its own wait for a flush never ends
//!   then. The compaction refuses with `NoSpace` before it flushes anything when the file
//!   system cannot hold the memtables and a copy of the live data, and waits for its flushes
//!   itself, ending with an error when fjall reports itself poisoned (`tests/full_disk.rs`).
//! * **Compaction without holding the node's writes.** fjall removes a replaced table's file
//!   while holding the lock each write takes, so the compaction writes 8 MiB tables instead of
//!   fjall's 64 MB and removes the files of the tables it replaced itself, on its own thread
//!   (it holds them until fjall has let go). It drops versions below the oldest snapshot
//!   the adapter's reads hold open (it registers them: fjall does not expose its own count).
//! * **Dropping deleted ranges.** fjall can drop the tables that lie wholly inside a range,
//!   but the point tombstones of a range delete may sit in such a table while older versions
//!   sit in a table that is kept: the dropped range could come back. The adapter drops, then
//!   deletes again whatever the range shows.
//! * **Space estimate.** The adapter counts its live keys and values on every write and records
//!   the count in the same batch (`0x01` + `live-bytes`), so a crash keeps the count that goes
//!   with the data. What a compaction gives back is the tables' bytes beyond that count (plus
//!   2 % for index and filter blocks); journals are not counted, a compaction cannot give back
//!   the active one.
//! * **Rollbacks.** The adapter counts its writes and keeps the count under a key of its own
//!   (`0x01` + `writes`, outside the user keys' `0x00` prefix, so scans never see it). On each
//!   clean close it records the count beside the store
//!   ([`reclaim_core::dir::record_clean_close`]); an open that finds fjall holding a lower count
//!   is refused as `Corrupt` (fjall would otherwise recover to an earlier state silently).
//! * **Reads.** fjall's `Keyspace::range` reads the newest versions, batches half-applied
//!   included; the adapter scans through a snapshot, so a batch is seen whole or not at all.
//! * **Durability.** A synced write persists the journal with `SyncAll`; a buffered one reaches
//!   the OS (it survives a process crash, not a power loss) and is synced on a clean close.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use fjall::{
    AbstractTree, Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable, SeqNo,
};
use parking_lot::Mutex;
use reclaim_core::dir::{
    EntryKind, StoreDirLock, available_space, check_clean_close, directory_size, open_store_dir,
    record_clean_close,
};
use reclaim_core::kv::{KeyValue, collect_scan, contained, expand_range_deletes_sized};
use reclaim_core::{
    BatchOp, Capabilities, Compactable, CompactionAccess, CompactionScope, KeyRange, KvRead,
    KvWrite, ScanOrder, SpaceReport, StorageError, WriteBatch, WriteOptions,
};

/// Engine name used in markers, logs and capabilities.
pub const ENGINE: &str = "fjall";
/// fjall's directory inside the store directory.
pub const DATA_DIR: &str = "fjall";
/// The longest key the adapter stores (lsm-tree's 65,535 less the adapter's prefix byte).
pub const MAX_KEY_BYTES: usize = u16::MAX as usize - 1;

/// The keyspace holding the store's data.
const KEYSPACE: &str = "reclaim";
/// The byte every stored key starts with.
const PREFIX: u8 = 0;
/// The adapter's own record of its write count (its first byte sorts after every user key).
const WRITES_KEY: &[u8] = b"\x01writes";
/// The adapter's own record of its live bytes, written in every batch (so a crash keeps the
/// count that goes with the data it keeps).
const LIVE_BYTES_KEY: &[u8] = b"\x01live-bytes";
/// How long `compact_range` waits for replaced tables to leave the disk.
const DELETION_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long `compact_range` waits at most for fjall to write its memtables to tables.
const FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(300);
/// fjall's largest memtable (its default `max_memtable_size`): a flush needs about that much room.
const MEMTABLE_BYTES: u64 = 64 << 20;

/// A reclaim store on fjall.
pub struct FjallStore {
    db: Database,
    data: Keyspace,
    path: PathBuf,
    /// Serialises writes, so that a range delete's expansion is exact.
    writer: Mutex<()>,
    /// Set when fjall panicked inside a call: the handle refuses every later call.
    poisoned: AtomicBool,
    /// Set when a write failed: the drop then records no clean close.
    write_failed: AtomicBool,
    /// Writes applied over the store's life.
    writes: AtomicU64,
    /// Bytes of the live keys and values (key length + value length, as the caller gave them),
    /// kept exact by every write under the write mutex and recorded in the same batch.
    live_bytes: AtomicU64,
    /// The snapshots the adapter's reads hold open, by sequence number (see [`ReadSnapshot`]).
    open_reads: Mutex<BTreeMap<SeqNo, usize>>,
    _lock: StoreDirLock,
}

/// A fjall snapshot that the compaction knows of: while it is open, a compaction drops no
/// version it can still read (fjall would otherwise fail the read, or panic inside it, once the
/// version of the tables the snapshot reads is gone).
struct ReadSnapshot<'a> {
    snapshot: fjall::Snapshot,
    open_reads: &'a Mutex<BTreeMap<SeqNo, usize>>,
}

impl Drop for ReadSnapshot<'_> {
    fn drop(&mut self) {
        let mut open = self.open_reads.lock();
        let seqno = self.snapshot.seqno();
        if let Some(count) = open.get_mut(&seqno) {
            *count -= 1;
            if *count == 0 {
                open.remove(&seqno);
            }
        }
    }
}

impl std::fmt::Debug for FjallStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FjallStore")
            .field("path", &self.path)
            .finish()
    }
}

fn engine_error(operation: &'static str, error: fjall::Error) -> StorageError {
    match error {
        fjall::Error::Io(e) => StorageError::io(operation, e),
        other => StorageError::engine(ENGINE, operation, other),
    }
}

/// The stored form of `key`.
fn stored(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 1);
    out.push(PREFIX);
    out.extend_from_slice(key);
    out
}

/// The key a stored key holds.
fn user_key(stored: &[u8]) -> Vec<u8> {
    stored.get(1..).unwrap_or_default().to_vec()
}

/// `range` in stored keys: every stored key starts with [`PREFIX`].
fn stored_bounds(range: &KeyRange) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let start = Bound::Included(stored(range.start().unwrap_or_default()));
    let end = match range.end() {
        Some(end) => Bound::Excluded(stored(end)),
        None => Bound::Excluded(vec![PREFIX + 1]),
    };
    (start, end)
}

/// The live bytes the store's record holds; counted by a scan of every user key when there is
/// no record (a store written before the adapter kept one).
fn live_bytes_at_open(db: &Database, data: &Keyspace) -> Result<u64, StorageError> {
    let recorded = data
        .get(LIVE_BYTES_KEY)
        .map_err(|e| engine_error("read live bytes", e))?
        .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
        .map(u64::from_be_bytes);
    if let Some(live) = recorded {
        return Ok(live);
    }
    let mut live = 0u64;
    for guard in db.snapshot().range(data, stored_bounds(&KeyRange::full())) {
        let (key, value) = guard
            .into_inner()
            .map_err(|e| engine_error("count live bytes", e))?;
        live = live.saturating_add((key.len().saturating_sub(1) + value.len()) as u64);
    }
    Ok(live)
}

fn check_key(key: &[u8]) -> Result<(), StorageError> {
    if key.len() > MAX_KEY_BYTES {
        return Err(StorageError::engine(
            ENGINE,
            "write",
            format!(
                "a key of {} bytes is longer than the {MAX_KEY_BYTES} fjall stores",
                key.len()
            ),
        ));
    }
    Ok(())
}

/// fjall writes one journal until it passes 64 MB (`journal_writer.pos() > 64_000_000` in its
/// flush worker), then seals it and deletes it once flushed: up to that many bytes of deleted
/// data stay on disk after a compaction, in the journal.
const JOURNAL_ROTATION_BYTES: u64 = 64_000_000;

/// The size of the tables a compaction writes (fjall's own major compaction writes 64 MB; a
/// table may pass it by the last block written).
///
/// fjall removes a replaced table's file when the last version holding it is cleaned up, and
/// cleans versions up at a memtable rotation while holding the lock that every write takes to
/// reach the memtable: each removed 64 MB file held the node's commits for about 17 ms on a
/// busy disk, and a compaction's worth of them for up to 270 ms at 545 MiB live. Smaller tables
/// make every later removal cheap (fjall's own compactions replace the compaction's tables in
/// turn) and the compaction's flushes of each table shorter; `compact_range` also removes the
/// files of the tables it replaces itself. Measured in `docs/backends.md`.
pub const COMPACTION_TABLE_BYTES: u64 = 8 << 20;

/// The tables' index and filter blocks, as a share (1/n) of the live bytes they hold.
const TABLE_OVERHEAD_SHARE: u64 = 50;

impl FjallStore {
    /// What this adapter declares.
    pub const CAPABILITIES: Capabilities = Capabilities {
        engine: ENGINE,
        native_range_delete: false,
        compaction_reclaims_space: true,
        compaction_access: CompactionAccess::Online,
        compaction_scope: CompactionScope::WholeStore,
        max_space_factor_after_compaction: 1.2,
        journal_bytes_kept_after_compaction: JOURNAL_ROTATION_BYTES,
        max_key_bytes: MAX_KEY_BYTES,
    };

    /// Opens (creating if needed) the store in directory `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StorageError> {
        let path = path.as_ref().to_owned();
        let lock = open_store_dir(&path, ENGINE)?;
        // An existing store must still have its database: never create a new, empty one in
        // place of a lost one.
        lock.require(ENGINE, DATA_DIR, EntryKind::Dir, "fjall database")?;
        let data_dir = path.join(DATA_DIR);
        let opened = std::panic::catch_unwind(|| {
            let db = Database::builder(&data_dir).open()?;
            let data = db.keyspace(KEYSPACE, KeyspaceCreateOptions::default)?;
            Ok::<_, fjall::Error>((db, data))
        })
        .map_err(|_| StorageError::Corrupt {
            engine: ENGINE,
            path: data_dir.clone(),
            detail: "the engine panicked while reading its files".into(),
        })?;
        let (db, data) = opened.map_err(|e| match e {
            fjall::Error::Locked => StorageError::Locked { path: path.clone() },
            fjall::Error::Io(e) if e.kind() == std::io::ErrorKind::StorageFull => {
                StorageError::NoSpace { operation: "open" }
            }
            other => StorageError::Corrupt {
                engine: ENGINE,
                path: data_dir.clone(),
                detail: other.to_string(),
            },
        })?;
        let writes = data
            .get(WRITES_KEY)
            .map_err(|e| engine_error("read write count", e))?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map_or(0, u64::from_be_bytes);
        check_clean_close(&path, ENGINE, 0, writes)?;
        let live_bytes = live_bytes_at_open(&db, &data)?;
        Ok(Self {
            db,
            data,
            path,
            writer: Mutex::new(()),
            poisoned: AtomicBool::new(false),
            write_failed: AtomicBool::new(false),
            writes: AtomicU64::new(writes),
            live_bytes: AtomicU64::new(live_bytes),
            open_reads: Mutex::new(BTreeMap::new()),
            _lock: lock,
        })
    }

    /// Bytes of the live keys and values (exact; fjall's tables and journals cost more).
    pub fn live_bytes(&self) -> u64 {
        self.live_bytes.load(Ordering::SeqCst)
    }

    /// The error of a failed write. fjall answers `Poisoned` once one of its background flushes
    /// failed (often a full disk, found by the flush before any write): that says so.
    fn write_error(&self, error: fjall::Error) -> StorageError {
        if !matches!(error, fjall::Error::Poisoned) {
            return engine_error("write", error);
        }
        self.no_space_or(
            "write",
            StorageError::engine(
                ENGINE,
                "write",
                "fjall stopped after one of its background writes failed; open the store again",
            ),
        )
    }

    /// [`StorageError::NoSpace`] for `operation` when the file system has less room left than
    /// a memtable (fjall's flushes cannot go on: the disk is full), else `otherwise` (also
    /// when the free space cannot be read).
    fn no_space_or(&self, operation: &'static str, otherwise: StorageError) -> StorageError {
        match available_space(&self.path) {
            Ok(free) if free < MEMTABLE_BYTES => StorageError::NoSpace { operation },
            _ => otherwise,
        }
    }

    /// What the live data takes in tables: its keys and values and their index and filter
    /// blocks ([`TABLE_OVERHEAD_SHARE`]); what a major compaction writes at most.
    fn live_table_bytes(&self) -> u64 {
        let live = self.live_bytes();
        live.saturating_add(live / TABLE_OVERHEAD_SHARE)
    }

    /// Writes the write count under [`WRITES_KEY`] (synced when `sync`).
    fn record_writes(&self, sync: bool) -> Result<u64, StorageError> {
        let writes = self.writes.load(Ordering::SeqCst);
        let mut batch = self
            .db
            .batch()
            .durability(sync.then_some(PersistMode::SyncAll));
        batch.insert(&self.data, WRITES_KEY, writes.to_be_bytes().to_vec());
        batch
            .commit()
            .map_err(|e| engine_error("record write count", e))?;
        Ok(writes)
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens a snapshot for a read, registered so that a compaction keeps what it reads.
    fn open_read(&self) -> ReadSnapshot<'_> {
        let mut open = self.open_reads.lock();
        let snapshot = self.db.snapshot();
        *open.entry(snapshot.seqno()).or_default() += 1;
        ReadSnapshot {
            snapshot,
            open_reads: &self.open_reads,
        }
    }

    /// The sequence number below which a compaction may drop versions: the oldest open read's,
    /// else the newest. A read opened later gets a number at least as high, so it finds its
    /// version whatever the compaction dropped. (fjall's own `major_compact` computes this from
    /// its snapshot tracker, which it does not expose; it writes 64 MB tables.)
    fn gc_watermark(&self) -> SeqNo {
        let open = self.open_reads.lock();
        let newest = self.db.snapshot().seqno();
        open.keys()
            .next()
            .map_or(newest, |&oldest| oldest.min(newest))
    }

    /// Refuses a compaction with [`StorageError::NoSpace`], before anything is flushed, when
    /// the file system cannot hold the memtables' flush and the compaction's new tables (at
    /// most the live data and its index and filter blocks) beside the old ones: fjall poisons
    /// the whole database when a flush fails, so that a full disk found mid-way would leave a
    /// handle that refuses every write until the store is opened again.
    fn ensure_room_for_compaction(&self) -> Result<(), StorageError> {
        let memtables = (self.data.tree.active_memtable().size()).saturating_add(
            MEMTABLE_BYTES.saturating_mul(self.data.tree.sealed_memtable_count() as u64),
        );
        let needed = memtables.saturating_add(self.live_table_bytes());
        if available_space(&self.path)? < needed {
            return Err(StorageError::NoSpace {
                operation: "compaction (room for the flush and the new tables)",
            });
        }
        Ok(())
    }

    /// Seals the active memtable and waits until every sealed one is written to a table.
    ///
    /// fjall's own `rotate_memtable_and_wait` waits for that forever, and a flush that fails
    /// never ends: fjall's worker stops and poisons the database (a full disk made a compaction
    /// hang in the full-disk test). This wait ends with an error as soon as fjall says it is
    /// poisoned ([`StorageError::NoSpace`] when the file system has less room left than a
    /// memtable), and after [`FLUSH_WAIT`] at most.
    fn flush_memtables(&self) -> Result<(), StorageError> {
        self.data
            .rotate_memtable()
            .map_err(|e| engine_error("flush", e))?;
        let deadline = std::time::Instant::now() + FLUSH_WAIT;
        while self.data.tree.sealed_memtable_count() > 0 {
            // `persist` checks fjall's poison flag first; the buffered mode costs no sync.
            if let Err(error) = self.db.persist(PersistMode::Buffer) {
                self.write_failed.store(true, Ordering::Release);
                let operation = "flush for a compaction";
                return Err(self.no_space_or(operation, engine_error(operation, error)));
            }
            if std::time::Instant::now() >= deadline {
                return Err(StorageError::engine(
                    ENGINE,
                    "flush for a compaction",
                    format!(
                        "fjall did not write its memtables to tables within {} s",
                        FLUSH_WAIT.as_secs()
                    ),
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        Ok(())
    }

    /// Waits until the tables a compaction replaced have left the disk (fjall deletes them
    /// once no reader holds them), at most [`DELETION_WAIT`].
    fn wait_for_replaced_tables(&self) -> Result<(), StorageError> {
        let deadline = std::time::Instant::now() + DELETION_WAIT;
        let mut last = directory_size(&self.path)?;
        loop {
            std::thread::sleep(std::time::Duration::from_millis(20));
            let now = directory_size(&self.path)?;
            if now >= last || std::time::Instant::now() >= deadline {
                return Ok(());
            }
            last = now;
        }
    }
}

impl Drop for FjallStore {
    /// A clean close syncs the journal and records fjall's sequence number.
    fn drop(&mut self) {
        if self.poisoned.load(Ordering::Acquire) || self.write_failed.load(Ordering::Acquire) {
            return;
        }
        let recorded = self
            .record_writes(true)
            .and_then(|writes| record_clean_close(&self.path, 0, writes));
        if let Err(e) = recorded {
            tracing::warn!(error = %e, "could not record fjall's clean close");
        }
    }
}

impl KvRead for FjallStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        contained(ENGINE, "get", &self.poisoned, || {
            if key.len() > MAX_KEY_BYTES {
                return Ok(None);
            }
            Ok(self
                .data
                .get(stored(key))
                .map_err(|e| engine_error("get", e))?
                .map(|v| v.to_vec()))
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
            // Through a snapshot: `Keyspace::range` would also show a batch half-applied.
            let read = self.open_read();
            let entries = read.snapshot.range(&self.data, stored_bounds(range));
            collect_scan(entries, order, limit, |guard| {
                let (k, v) = guard.into_inner().map_err(|e| engine_error("scan", e))?;
                Ok((user_key(&k), v.to_vec()))
            })
        })
    }
}

impl KvWrite for FjallStore {
    fn write(&self, batch: WriteBatch, options: WriteOptions) -> Result<(), StorageError> {
        contained(ENGINE, "write", &self.poisoned, || {
            let _writer = self.writer.lock();
            for op in batch.ops() {
                if let BatchOp::Put { key, .. } | BatchOp::Delete { key } = op {
                    check_key(key)?;
                }
            }
            let expanded = expand_range_deletes_sized(self, batch)?;
            let live = expanded.live_bytes_after(self.live_bytes(), |key| {
                let size = self
                    .data
                    .size_of(stored(key))
                    .map_err(|e| engine_error("size_of", e))?;
                Ok(size.map(|value| (key.len() as u64).saturating_add(u64::from(value))))
            })?;
            let batch = expanded.batch;
            let mut fjall_batch = self.db.batch().durability(if options.sync {
                Some(PersistMode::SyncAll)
            } else {
                None
            });
            for op in batch.into_ops() {
                match op {
                    BatchOp::Put { key, value } => {
                        fjall_batch.insert(&self.data, stored(&key), value);
                    }
                    BatchOp::Delete { key } => fjall_batch.remove(&self.data, stored(&key)),
                    BatchOp::DeleteRange(range) => {
                        return Err(StorageError::engine(
                            ENGINE,
                            "write",
                            format!("range delete {range} was not expanded"),
                        ));
                    }
                }
            }
            fjall_batch.insert(&self.data, LIVE_BYTES_KEY, live.to_be_bytes().to_vec());
            fjall_batch.commit().map_err(|e| {
                self.write_failed.store(true, Ordering::Release);
                self.write_error(e)
            })?;
            self.live_bytes.store(live, Ordering::SeqCst);
            self.writes.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
    }
}

impl Compactable for FjallStore {
    fn compact_range(&self, range: &KeyRange) -> Result<(), StorageError> {
        contained(ENGINE, "compact_range", &self.poisoned, || {
            if range.is_empty() {
                return Ok(());
            }
            // The tables this compaction replaces, held so that their files are removed here,
            // when this is dropped, and not by fjall's version clean-up, which runs holding the
            // lock every write takes (see `COMPACTION_TABLE_BYTES`).
            let replaced_tables = self.data.tree.current_version();
            self.ensure_room_for_compaction()?;
            self.flush_memtables()?;
            let gc_below = self.gc_watermark();
            self.data
                .tree
                .major_compact(COMPACTION_TABLE_BYTES, gc_below)
                .map_err(|e| engine_error("compact", e.into()))?;
            // A rotation runs fjall's maintenance (journal eviction, version clean-up); it needs
            // a non-empty memtable: the count record is the adapter's own write.
            self.record_writes(true)?;
            self.flush_memtables()?;
            drop(replaced_tables);
            self.wait_for_replaced_tables()
        })
    }

    fn drop_deleted_range(&self, range: &KeyRange) -> Result<(), StorageError> {
        contained(ENGINE, "drop_deleted_range", &self.poisoned, || {
            if range.is_empty() {
                return Ok(());
            }
            let _writer = self.writer.lock();
            self.data
                .tree
                .drop_range(stored_bounds(range))
                .map_err(|e| engine_error("drop_range", e.into()))?;
            // Tombstones may have gone with a dropped table while older versions stay in a
            // kept one: delete again whatever the range shows (the caller guarantees that
            // nothing in it is live).
            let mut again = self.db.batch();
            for guard in self.data.range(stored_bounds(range)) {
                let key = guard.key().map_err(|e| engine_error("scan", e))?;
                again.remove(&self.data, key);
            }
            again.commit().map_err(|e| engine_error("write", e))
        })
    }

    fn size_on_disk(&self) -> Result<u64, StorageError> {
        directory_size(&self.path)
    }

    /// Reclaimable: the bytes of the tree's tables (read from fjall's metadata, nothing read
    /// from disk) beyond the live keys and values and the tables' own index and filter blocks
    /// (2 %, `TABLE_OVERHEAD_SHARE`): the deleted and overwritten data a major compaction drops.
    /// Memtables and journals are left out: a compaction cannot give back the active journal
    /// (fjall seals it only past 64 MB) and fjall deletes a sealed one by itself once flushed.
    /// Undercounts, never overcounts by more than the overhead share: live data still in a
    /// memtable is counted as if it sat in the tables, and compressible live data (fjall
    /// compresses from level 2 on, LZ4) takes less than its bytes there.
    fn space_report(&self) -> Result<SpaceReport, StorageError> {
        let on_disk = self.size_on_disk()?;
        let kept = self.live_table_bytes();
        Ok(SpaceReport {
            on_disk,
            reclaimable: Some(self.data.disk_space().saturating_sub(kept)),
            live_bytes: Some(kept),
        })
    }

    fn capabilities(&self) -> Capabilities {
        Self::CAPABILITIES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(store: &FjallStore, key: &[u8], value: &[u8]) {
        let mut batch = WriteBatch::new();
        batch.put(key.to_vec(), value.to_vec());
        store.write(batch, WriteOptions::DURABLE).unwrap();
    }

    /// A flush that fails (a full disk) stops fjall's worker and poisons the database, and
    /// fjall's own wait for it never ends: the adapter's wait must end with `NoSpace`. (The
    /// compaction's room check comes first in `compact_range`, so this calls the wait itself.)
    /// The writes fjall then refuses as `Poisoned` say why: no space, or reopen the store.
    #[test]
    fn a_flush_that_fails_on_a_full_disk_ends_with_an_error() {
        let fs = match reclaim_conformance::tmpfs::Tmpfs::mount(96 << 20) {
            Ok(fs) => fs,
            Err(why) => {
                eprintln!("skipped: cannot mount a size-limited tmpfs ({why})");
                return;
            }
        };
        let mount = fs.path();
        let store = FjallStore::open(mount.join("store")).unwrap();
        for i in 0..128u32 {
            put(&store, &i.to_be_bytes(), &vec![i as u8; 64 << 10]);
        }
        // Fill the file system: the memtable's 8 MiB are in the journal, not yet in a table.
        let mut ballast = std::fs::File::create(mount.join("ballast")).unwrap();
        let chunk = vec![0u8; 1 << 20];
        while std::io::Write::write_all(&mut ballast, &chunk).is_ok() {}
        drop(ballast);

        let started = std::time::Instant::now();
        let error = store.flush_memtables().unwrap_err();
        assert!(
            matches!(error, StorageError::NoSpace { .. }),
            "not a NoSpace: {error}"
        );
        assert!(started.elapsed() < FLUSH_WAIT, "ended only at the deadline");

        // fjall now answers every write with `Poisoned`: on a disk still full, that is NoSpace;
        // with room again, the error says the store must be opened again.
        let write = |value: &[u8]| {
            let mut batch = WriteBatch::new();
            batch.put(b"after".to_vec(), value.to_vec());
            store.write(batch, WriteOptions::DURABLE)
        };
        let error = write(b"x").unwrap_err();
        assert!(
            matches!(error, StorageError::NoSpace { .. }),
            "a write after the failed flush on a full disk: {error}"
        );
        std::fs::remove_file(mount.join("ballast")).unwrap();
        let error = write(b"y").unwrap_err();
        assert!(
            error.to_string().contains("open the store again"),
            "a write after the failed flush with room again: {error}"
        );
        drop(store);
    }

    /// The compaction drops versions below the oldest open read's sequence number: a read that
    /// began before it (a snapshot) still sees the values of its moment, overwritten and deleted
    /// ones included. (With the newest sequence number instead, fjall panicked inside this
    /// read: the version of the tables it reads was gone.)
    #[test]
    fn a_read_begun_before_a_compaction_keeps_its_versions() {
        let dir = tempfile::tempdir().unwrap();
        let store = FjallStore::open(dir.path().join("store")).unwrap();
        for i in 0..200u32 {
            put(&store, &i.to_be_bytes(), b"old");
        }
        let earlier = store.open_read();
        for i in 0..100u32 {
            put(&store, &i.to_be_bytes(), b"new");
        }
        let mut batch = WriteBatch::new();
        let range = KeyRange::new(
            Some(150u32.to_be_bytes().to_vec()),
            Some(200u32.to_be_bytes().to_vec()),
        );
        batch.delete_range(range.unwrap());
        store.write(batch, WriteOptions::DURABLE).unwrap();

        store.compact_range(&KeyRange::full()).unwrap();

        for i in 0..200u32 {
            let seen = earlier
                .snapshot
                .get(&store.data, stored(&i.to_be_bytes()))
                .unwrap();
            assert_eq!(
                seen.as_deref(),
                Some(&b"old"[..]),
                "key {i} through the snapshot"
            );
        }
        assert_eq!(
            store.get(&0u32.to_be_bytes()).unwrap().as_deref(),
            Some(&b"new"[..])
        );
        assert_eq!(store.get(&150u32.to_be_bytes()).unwrap(), None);
        assert_eq!(
            store.get(&120u32.to_be_bytes()).unwrap().as_deref(),
            Some(&b"old"[..])
        );
    }
}
