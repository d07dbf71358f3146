//! # reclaim-sled
//!
//! The sled 0.34 engine adapter.
//!
//! ## How compaction works here, and what it costs
//!
//! sled 0.34 has no compaction API and its files never shrink. To give space back, the adapter
//! *rewrites the live data into a fresh store and swaps it in*:
//!
//! ```text
//! DIR/
//!   RECLAIM_BACKEND, reclaim.lock   (reclaim_core::dir)
//!   CURRENT                         names the live generation, replaced atomically
//!   gen-000001/                     the live sled database
//!   gen-000002/                     a rewrite in progress (deleted on open if CURRENT does not name it)
//! ```
//!
//! 1. Writers are held off (they wait on the adapter's write mutex; readers continue on the old
//!    generation, which cannot change meanwhile).
//! 2. Every live entry is copied, by the adapter's own iteration (sled's `export`/`import` panic
//!    on I/O errors), into `gen-N+1`, which is then flushed and its directory fsynced.
//! 3. `CURRENT` is replaced through a temporary file, fsync, rename and directory fsync.
//! 4. Readers are held off for the pointer swap only; the old generation is closed and removed.
//!
//! A crash before step 3 leaves the old generation live (the partial one is removed on open);
//! after it, the new one, complete. During the rewrite the store needs up to twice its live
//! size on disk; if the copy fails (a full disk) the partial generation is removed and the old
//! one stays live. Declared as [`CompactionAccess::PausesWrites`] and
//! [`CompactionScope::WholeStore`].
//!
//! ## Invariants
//!
//! * A [`WriteBatch`] is one `apply_batch`: atomic. sled has no range delete, so range deletes
//!   are expanded to point deletes under the write mutex ([`expand_range_deletes`]), which makes
//!   the expansion exact.
//! * [`WriteOptions::sync`] flushes sled before `write` returns.
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
//!   `reclaim-meta`) and beside it ([`reclaim_core::dir::CLEAN_FILE`], written durably): an open that finds sled's count
//!   below `CLEAN`'s refuses the store as [`StorageError::Corrupt`] instead of serving the
//!   rolled-back state. (Damage after a crash, before any clean close, is not covered.)

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::{Mutex, RwLock};
use reclaim_core::dir::{
    EntryKind, StoreDirLock, check_clean_close, directory_size, open_store_dir, record_clean_close,
    sync_dir, write_durably,
};
use reclaim_core::kv::{KeyValue, collect_scan, contained, expand_range_deletes};
use reclaim_core::{
    BatchOp, Capabilities, Compactable, CompactionAccess, CompactionScope, KeyRange, KvRead,
    KvWrite, ScanOrder, StorageError, WriteBatch, WriteOptions,
};
use tracing::{info, warn};

/// The longest key this adapter promises to store (tested by the conformance suite; the
/// engine itself may take longer ones).
pub const MAX_KEY_BYTES: usize = 1 << 20;

/// Engine name used in markers, logs and capabilities.
pub const ENGINE: &str = "sled";
/// The file naming the live generation.
pub const CURRENT_FILE: &str = "CURRENT";
/// sled's tree holding the adapter's own records (the write count), apart from the data.
const META_TREE: &str = "reclaim-meta";
/// The write count's key in [`META_TREE`].
const WRITES_KEY: &[u8] = b"writes";

/// Entries copied per `apply_batch` during a rewrite.
const COPY_BATCH_ENTRIES: usize = 4096;
/// Bytes copied per batch at most during a compaction's rewrite (bounds memory and the free
/// space each step needs).
const COPY_BATCH_BYTES: u64 = 16 << 20;

struct Generation {
    number: u64,
    db: sled::Db,
}

/// A reclaim store on sled.
pub struct SledStore {
    root: PathBuf,
    live: RwLock<Generation>,
    writer: Mutex<()>,
    /// Set when sled panicked inside a call: the handle refuses every later call.
    poisoned: AtomicBool,
    /// Writes applied over the store's life (recorded at each clean close).
    writes: AtomicU64,
    _lock: StoreDirLock,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("root", &self.root)
            .field("generation", &self.live.read().number)
            .finish()
    }
}

fn engine_error(operation: &'static str, error: sled::Error) -> StorageError {
    match error {
        sled::Error::Io(e) => StorageError::io(operation, e),
        other => StorageError::engine(ENGINE, operation, other),
    }
}

fn generation_dir(root: &Path, number: u64) -> PathBuf {
    root.join(format!("gen-{number:06}"))
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

fn open_generation(root: &Path, number: u64) -> Result<sled::Db, StorageError> {
    let path = generation_dir(root, number);
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

/// Forgets this process's handle on a generation that is being removed.
/// The write count recorded inside sled at its last clean close (0 when none).
fn recorded_writes(db: &sled::Db) -> Result<u64, StorageError> {
    let meta = db
        .open_tree(META_TREE)
        .map_err(|e| engine_error("open meta tree", e))?;
    Ok(meta
        .get(WRITES_KEY)
        .map_err(|e| engine_error("read write count", e))?
        .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
        .map_or(0, u64::from_be_bytes))
}

fn retire_generation(root: &Path, number: u64) {
    live_handles().lock().remove(&generation_dir(root, number));
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

impl SledStore {
    /// Opens (creating if needed) the store in directory `path`, finishing or undoing a
    /// rewrite that a crash interrupted.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StorageError> {
        let root = path.as_ref().to_owned();
        let lock = open_store_dir(&root, ENGINE)?;
        let corrupt = |detail: String| StorageError::Corrupt {
            engine: ENGINE,
            path: root.join(CURRENT_FILE),
            detail,
        };
        let number = match std::fs::read_to_string(root.join(CURRENT_FILE)) {
            Ok(text) => text
                .trim()
                .parse::<u64>()
                .map_err(|_| corrupt(format!("CURRENT holds {text:?}, not a generation")))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && lock.is_new() => {
                write_durably(&root.join(CURRENT_FILE), b"1")?;
                1
            }
            // An existing store must still have its files: never create a new, empty one in
            // place of a lost one (a deleted file, an unmounted volume).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StorageError::Missing {
                    engine: ENGINE,
                    path: root.join(CURRENT_FILE),
                    what: "generation pointer (CURRENT)",
                    detail: "it does not exist".into(),
                });
            }
            Err(e) => {
                return Err(StorageError::io_at(
                    "read CURRENT",
                    &root.join(CURRENT_FILE),
                    e,
                ));
            }
        };
        remove_stale_generations(&root, number)?;
        if !lock.is_new() {
            lock.require(
                ENGINE,
                &format!("gen-{number:06}"),
                EntryKind::Dir,
                "live generation",
            )?;
        }
        let db = open_generation(&root, number)?;
        let writes = recorded_writes(&db)?;
        check_clean_close(&root, ENGINE, number, writes)?;
        Ok(Self {
            root,
            live: RwLock::new(Generation { number, db }),
            writer: Mutex::new(()),
            poisoned: AtomicBool::new(false),
            writes: AtomicU64::new(writes),
            _lock: lock,
        })
    }

    /// Records the write count inside sled and in [`CLEAN_FILE`] (a clean close).
    fn record_clean_close(&self) -> Result<(), StorageError> {
        // sled hangs after an ENOSPC in its log: never write the record onto a full disk.
        self.ensure_free_space("close", 4096)?;
        let live = self.live.read();
        let writes = self.writes.load(Ordering::SeqCst);
        let meta = live
            .db
            .open_tree(META_TREE)
            .map_err(|e| engine_error("open meta tree", e))?;
        meta.insert(WRITES_KEY, &writes.to_be_bytes())
            .map_err(|e| engine_error("record write count", e))?;
        live.db.flush().map_err(|e| engine_error("flush", e))?;
        record_clean_close(&self.root, live.number, writes)
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Flushes and closes the store, releasing this process's sled handle so that the next
    /// `open` reads the files again (dropping a `SledStore` keeps the handle for a fast, safe
    /// reopen in this process; see the module docs).
    pub fn close(self) -> Result<(), StorageError> {
        self.record_clean_close()?;
        let number = self.live.read().number;
        retire_generation(&self.root, number);
        Ok(())
    }

    /// Refuses with [`StorageError::NoSpace`] unless the file system holding the store has
    /// `needed` bytes free on top of [`FREE_SPACE_RESERVE`]. sled 0.34 never recovers from an
    /// ENOSPC inside its log (its flusher blocks forever), so reclaim must not let it get there.
    fn ensure_free_space(&self, operation: &'static str, needed: u64) -> Result<(), StorageError> {
        let stats = rustix::fs::statvfs(&self.root)
            .map_err(|e| StorageError::io("statvfs", std::io::Error::from(e)))?;
        let available = stats.f_bavail.saturating_mul(stats.f_frsize);
        if available < needed.saturating_add(FREE_SPACE_RESERVE) {
            tracing::warn!(
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

    /// The live generation number (it grows by one per compaction).
    pub fn generation(&self) -> u64 {
        self.live.read().number
    }

    /// Copies every live entry into generation `number`; on error the partial copy is removed.
    fn rewrite_into(&self, source: &sled::Db, number: u64) -> Result<sled::Db, StorageError> {
        let dir = generation_dir(&self.root, number);
        let result = (|| {
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .map_err(|e| StorageError::io_at("remove stale generation", &dir, e))?;
            }
            let target = open_generation(&self.root, number)?;
            let mut batch = sled::Batch::default();
            let (mut in_batch, mut batch_bytes) = (0, 0u64);
            for entry in source.iter() {
                let (key, value) = entry.map_err(|e| engine_error("rewrite read", e))?;
                batch_bytes += (key.len() + value.len()) as u64;
                batch.insert(key, value);
                in_batch += 1;
                if in_batch == COPY_BATCH_ENTRIES || batch_bytes >= COPY_BATCH_BYTES {
                    // The copy grows while the old generation stays: check before each batch.
                    self.ensure_free_space("compaction", batch_bytes.saturating_mul(2))?;
                    target
                        .apply_batch(std::mem::take(&mut batch))
                        .map_err(|e| engine_error("rewrite write", e))?;
                    (in_batch, batch_bytes) = (0, 0);
                }
            }
            self.ensure_free_space("compaction", batch_bytes.saturating_mul(2))?;
            target
                .apply_batch(batch)
                .map_err(|e| engine_error("rewrite write", e))?;
            // The new generation carries the write count on.
            target
                .open_tree(META_TREE)
                .and_then(|meta| {
                    meta.insert(
                        WRITES_KEY,
                        &self.writes.load(Ordering::SeqCst).to_be_bytes(),
                    )
                })
                .map_err(|e| engine_error("rewrite write count", e))?;
            target
                .flush()
                .map_err(|e| engine_error("rewrite flush", e))?;
            sync_dir(&dir)?;
            sync_dir(&self.root)?;
            Ok(target)
        })();
        if result.is_err() {
            retire_generation(&self.root, number);
        }
        if result.is_err()
            && dir.exists()
            && let Err(e) = std::fs::remove_dir_all(&dir)
        {
            warn!(dir = %dir.display(), error = %e, "could not remove partial sled generation");
        }
        result
    }
}

fn remove_stale_generations(root: &Path, live: u64) -> Result<(), StorageError> {
    let live_name = generation_dir(root, live);
    let entries =
        std::fs::read_dir(root).map_err(|e| StorageError::io_at("list store", root, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io_at("list store", root, e))?;
        let path = entry.path();
        let is_generation = entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.starts_with("gen-"));
        if is_generation && path != live_name {
            live_handles().lock().remove(&path);
            info!(path = %path.display(), "removing stale sled generation");
            std::fs::remove_dir_all(&path)
                .map_err(|e| StorageError::io_at("remove stale generation", &path, e))?;
        }
    }
    Ok(())
}

impl Drop for SledStore {
    /// A drop is a clean close for the rollback check (the process keeps sled's handle; see
    /// [`SledStore::close`]). Nothing is recorded for a poisoned handle.
    fn drop(&mut self) {
        if self.poisoned.load(Ordering::Acquire) {
            return;
        }
        if let Err(e) = self.record_clean_close() {
            warn!(error = %e, "could not record the sled store's clean close");
        }
    }
}

impl KvRead for SledStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        contained(ENGINE, "get", &self.poisoned, || {
            let live = self.live.read();
            let value = live.db.get(key).map_err(|e| engine_error("get", e))?;
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
            let live = self.live.read();
            let entries = live.db.range::<&[u8], _>(range.as_bounds());
            collect_scan(entries, order, limit, |entry| {
                entry
                    .map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(|e| engine_error("scan", e))
            })
        })
    }
}

impl KvWrite for SledStore {
    fn write(&self, batch: WriteBatch, options: WriteOptions) -> Result<(), StorageError> {
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
            let batch = expand_range_deletes(self, batch)?;
            let live = self.live.read();
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
            live.db
                .apply_batch(sled_batch)
                .map_err(|e| engine_error("apply_batch", e))?;
            self.writes.fetch_add(1, Ordering::SeqCst);
            if options.sync {
                live.db.flush().map_err(|e| engine_error("flush", e))?;
            }
            Ok(())
        })
    }
}

impl Compactable for SledStore {
    fn compact_range(&self, range: &KeyRange) -> Result<(), StorageError> {
        contained(ENGINE, "compact_range", &self.poisoned, || {
            if range.is_empty() {
                return Ok(());
            }
            let started = Instant::now();
            let _writer = self.writer.lock();
            self.ensure_free_space("compaction", 0)?;
            let (number, fresh) = {
                let live = self.live.read();
                let number = live.number + 1;
                (number, self.rewrite_into(&live.db, number)?)
            };
            write_durably(&self.root.join(CURRENT_FILE), number.to_string().as_bytes())?;
            let swap_started = Instant::now();
            let old = {
                let mut live = self.live.write();
                std::mem::replace(&mut *live, Generation { number, db: fresh })
            };
            let swap = swap_started.elapsed();
            let old_dir = generation_dir(&self.root, old.number);
            retire_generation(&self.root, old.number);
            drop(old);
            if let Err(e) = std::fs::remove_dir_all(&old_dir) {
                // Not fatal: the next open removes it.
                warn!(dir = %old_dir.display(), error = %e, "could not remove old sled generation");
            }
            info!(
                generation = number,
                writers_paused_ms = started.elapsed().as_millis() as u64,
                readers_paused_us = swap.as_micros() as u64,
                "sled store rewritten"
            );
            Ok(())
        })
    }

    fn size_on_disk(&self) -> Result<u64, StorageError> {
        directory_size(&self.root)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            engine: ENGINE,
            native_range_delete: false,
            compaction_reclaims_space: true,
            compaction_access: CompactionAccess::PausesWrites,
            compaction_scope: CompactionScope::WholeStore,
            max_space_factor_after_compaction: 1.2,
            max_key_bytes: MAX_KEY_BYTES,
        }
    }
}
