//! # reclaim-redb
//!
//! The redb engine adapter (redb 4.x, pure Rust): the embedded default of reclaim.
//!
//! ## How compaction works here, and what it costs
//!
//! redb keeps every table in one file and frees pages in place; a large delete can *double* the
//! file until it is rewritten. redb's own [`redb::Database::compact`] rewrites it in place but
//! needs the database to itself: every read and write waits for it, for a time that grows with
//! the live data. So the store is kept as *generations* ([`reclaim_core::rewrite`]): each
//! generation directory holds one redb file, and compaction is the core's online rewrite, which
//! copies the live data into a fresh file while reads and writes go on, and switches over under
//! a write lock held for a few flushes. Declared as [`CompactionAccess::Online`] and
//! [`CompactionScope::WholeStore`].
//!
//! ```text
//! DIR/
//!   RECLAIM_BACKEND, reclaim.lock, CURRENT   (reclaim_core::dir, reclaim_core::rewrite)
//!   gen-000003/store.redb                    the live generation
//! ```
//!
//! One generation ([`RedbFile`]) still compacts in place when asked directly
//! ([`RedbFile::compact_range`]): that is redb's `compact` under an exclusive lock.
//!
//! ## Invariants
//!
//! * The store is a directory holding its generations, reclaim's engine marker and lock
//!   ([`reclaim_core::dir`]): a second opener gets [`StorageError::Locked`]. A store written by
//!   an earlier reclaim (one `store.redb` beside the marker, no `CURRENT`) is refused as
//!   [`StorageError::Corrupt`] with that explanation.
//! * Every [`WriteBatch`] is one redb write transaction: all or nothing, also across a crash.
//!   [`WriteOptions::sync`] maps to [`Durability::Immediate`], otherwise [`Durability::None`]
//!   (durable at the next synced commit; never torn).
//! * Range deletes are native (`retain_in` inside the transaction).
//! * Values longer than about 2 KiB are stored as pieces sized to fill redb's 4 KiB pages
//!   (`layout.rs` in this crate): a block part then costs its bytes, not the power-of-two
//!   page run redb gives one large value.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

mod backend;
mod layout;
mod reader;
use backend::{GenerationFile, RemovalFlag};
use layout::Footprint;
pub use reader::RedbReader;

use parking_lot::{Mutex, RwLock};
use reclaim_core::dir::directory_size;
use reclaim_core::kv::{KeyValue, collect_scan, contained};
use reclaim_core::rewrite::{GenerationEngine, GenerationLayout, GenerationalStore, SideKeyspace};
use reclaim_core::{
    BatchOp, Capabilities, Compactable, CompactionAccess, CompactionScope, KeyRange, KvRead,
    KvWrite, ScanOrder, SpaceReport, StorageError, WriteBatch, WriteOptions,
};
use redb::{Database, Durability, ReadableDatabase, ReadableTableMetadata};
use tracing::debug;

/// The longest key this adapter promises to store (tested by the conformance suite; the
/// engine itself may take longer ones).
pub const MAX_KEY_BYTES: usize = 1 << 20;

/// Engine name used in markers, logs and capabilities.
pub const ENGINE: &str = "redb";
/// The database file inside the store directory.
pub const DB_FILE: &str = "store.redb";

/// Upper bound on compaction rounds in one `compact_range` call.
const MAX_COMPACTION_ROUNDS: u32 = 4;

/// One generation of a redb store: one redb file, compacted in place (redb's `compact`, every
/// other access waiting) when asked directly.
pub struct RedbFile {
    db: RwLock<Database>,
    file: PathBuf,
    /// Set when redb panicked inside a call: the handle refuses every later call.
    poisoned: AtomicBool,
    /// Set when the generation is closed to be removed: redb's closing trim is then skipped.
    removal: RemovalFlag,
    /// What the records stand for (live bytes, main-table bytes, pieces): counted by a scan of
    /// the main table at open, then kept by every committed write from the records it
    /// replaced. Signed: two writes' changes may land in either order.
    footprint: Mutex<Footprint>,
    /// The last walk of the main table's pages, which the space report scales while the
    /// main table's bytes stay near what it walked.
    walked: Mutex<Option<MainWalk>>,
}

/// What one walk of the main table found: the bytes of its pages, and the bytes of its
/// entries then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MainWalk {
    pages_bytes: u64,
    entry_bytes: u64,
}

impl MainWalk {
    /// The pages `entry_bytes` of main-table entries use, scaled from this walk, while they are
    /// within [`RESCALE_SHARE`] of what it walked (an empty walk scales only to an empty table).
    fn scaled_to(&self, entry_bytes: u64) -> Option<u64> {
        if self.entry_bytes == 0 {
            return (entry_bytes == 0).then_some(self.pages_bytes);
        }
        let drift = entry_bytes.abs_diff(self.entry_bytes);
        if drift > self.entry_bytes / RESCALE_SHARE {
            return None;
        }
        let scaled =
            u128::from(self.pages_bytes) * u128::from(entry_bytes) / u128::from(self.entry_bytes);
        u64::try_from(scaled).ok()
    }
}

/// The space report walks the main table again once its entries' bytes moved by more than
/// 1/`RESCALE_SHARE` of what the last walk saw, or once the estimate finds more than
/// 1/`RESCALE_SHARE` of the file reclaimable (a claim worth confirming before a policy acts on it).
const RESCALE_SHARE: u64 = 10;

impl std::fmt::Debug for RedbFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbFile")
            .field("file", &self.file)
            .finish()
    }
}

/// redb's cache (its read cache and write buffer together) for each generation, instead of
/// redb's default of 1 GiB. A rewrite's copy reads the whole old generation through that
/// generation's cache, and closing it then frees all of it at once. At 545 MiB live with the
/// writer flat out (release `reclaim simulate`, one run each): with 1 GiB the closes took
/// 51–516 ms and the longest commit during compaction was 112.7 ms; with 256 MiB, 22–23 ms and
/// 28.2 ms; with 64 MiB, 4–8 ms and 19.9, 46.7 and 1,119.5 ms in three runs (the last a stall
/// in the middle of a copy, not explained). The node's reads of recent heights stay cached;
/// the OS page cache holds the rest of the file.
pub const GENERATION_CACHE_BYTES: usize = 256 << 20;

/// redb as a [`GenerationEngine`]: one [`RedbFile`] per generation directory.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedbEngine;

impl GenerationEngine for RedbEngine {
    type Store = RedbFile;

    fn name(&self) -> &'static str {
        ENGINE
    }

    fn open(&self, dir: &Path, create: bool) -> Result<RedbFile, StorageError> {
        let file = dir.join(DB_FILE);
        if !create {
            // Never create a new, empty file in place of a lost one.
            reclaim_core::dir::require_entry(
                dir,
                ENGINE,
                DB_FILE,
                reclaim_core::dir::EntryKind::File,
                "database file",
            )?;
        }
        let removal = RemovalFlag::default();
        let db = open_database(dir, &file, || {
            let mut builder = Database::builder();
            builder.set_cache_size(GENERATION_CACHE_BYTES);
            builder.create_with_backend(GenerationFile::open(&file, removal.clone())?)
        })?;
        let store = RedbFile {
            db: RwLock::new(db),
            file,
            removal,
            poisoned: AtomicBool::new(false),
            footprint: Mutex::new(Footprint::default()),
            walked: Mutex::new(None),
        };
        // Create the table once so that reads never meet a missing table.
        store.write(WriteBatch::new(), WriteOptions::DURABLE)?;
        let footprint = contained(ENGINE, "count live bytes", &store.poisoned, || {
            let db = store.db.read();
            let [main, _] = read_tables(&*db)?;
            layout::footprint(&store.file, &main)
        })?;
        *store.footprint.lock() = footprint;
        Ok(store)
    }

    /// A synced empty commit: redb then has every earlier commit on stable storage.
    fn persist(&self, store: &RedbFile) -> Result<(), StorageError> {
        store.write(WriteBatch::new(), WriteOptions::DURABLE)
    }

    /// Closes a generation that is removed next, without redb's closing trim of the free tail
    /// (a truncation at once that the node's commits wait behind; the removal frees the file
    /// in steps instead). redb still records its allocator state, as on any close. A close at
    /// shutdown ([`GenerationEngine::close`], the default: a drop) trims as usual, so that the
    /// next open finds the file as long as redb recorded it.
    fn retire(&self, store: RedbFile, dir: &Path) -> Result<(), StorageError> {
        let _ = dir;
        store.removal.set();
        store
            .db
            .into_inner()
            .close()
            .map_err(|e| engine_error("close", e))
    }

    fn side_keyspace(&self) -> Option<&dyn SideKeyspace<RedbFile>> {
        Some(self)
    }

    // The copy is not compacted before it goes live: its transactions free only the few pages
    // they rewrote on the tree's right edge, and redb reuses them at once. Compacting it in
    // place took 2.3 s of unpaced I/O at 545 MiB live and left the file 0.4 % larger (one
    // release run of `reclaim simulate`: the copy 642.2 MB before, 645.0 MB after).
    fn capabilities(&self) -> Capabilities {
        RedbFile::CAPABILITIES
    }
}

/// The side keyspace is a third table, written in the batch's write transaction.
impl SideKeyspace<RedbFile> for RedbEngine {
    fn write_with_side(
        &self,
        store: &RedbFile,
        batch: WriteBatch,
        side: Vec<KeyValue>,
        options: WriteOptions,
    ) -> Result<(), StorageError> {
        store.write_with_side(batch, side, options)
    }

    fn side_entries(&self, store: &RedbFile) -> Result<Vec<KeyValue>, StorageError> {
        contained(ENGINE, "read side table", &store.poisoned, || {
            let db = store.db.read();
            let txn = db.begin_read().map_err(|e| engine_error("begin_read", e))?;
            let table = match txn.open_table(layout::SIDE) {
                Ok(table) => table,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(engine_error("open_table", e)),
            };
            let entries = table
                .range::<&[u8]>(..)
                .map_err(|e| engine_error("range", e))?;
            entries
                .map(|entry| {
                    let (key, value) = entry.map_err(|e| engine_error("scan", e))?;
                    Ok((key.value().to_vec(), value.value().to_vec()))
                })
                .collect()
        })
    }

    fn clear_side(&self, store: &RedbFile) -> Result<(), StorageError> {
        contained(ENGINE, "clear side table", &store.poisoned, || {
            let db = store.db.read();
            let mut txn = db
                .begin_write()
                .map_err(|e| engine_error("begin_write", e))?;
            txn.set_durability(Durability::None)
                .map_err(|e| StorageError::engine(ENGINE, "set_durability", e))?;
            txn.delete_table(layout::SIDE)
                .map_err(|e| engine_error("delete_table", e))?;
            txn.commit().map_err(|e| engine_error("commit", e))
        })
    }
}

/// A reclaim store on redb, kept as generations and compacted online (see the crate docs).
pub struct RedbStore {
    inner: GenerationalStore<RedbEngine>,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.inner.path())
            .field("generation", &self.inner.generation())
            .finish()
    }
}

/// The database file of the live generation of the redb store in `dir` (for tools and tests
/// that look at the file itself).
pub fn live_database_file(dir: &Path) -> Result<PathBuf, StorageError> {
    let layout = GenerationLayout::new(dir);
    let number = layout
        .read_current(ENGINE)?
        .ok_or_else(|| StorageError::Missing {
            engine: ENGINE,
            path: layout.current_path(),
            what: "generation pointer (CURRENT)",
            detail: "it does not exist".into(),
        })?;
    Ok(layout.dir(number).join(DB_FILE))
}

fn engine_error(operation: &'static str, error: impl Into<redb::Error>) -> StorageError {
    let error: redb::Error = error.into();
    match error {
        redb::Error::Io(e) => StorageError::io(operation, e),
        other => StorageError::engine(ENGINE, operation, other),
    }
}

/// Runs redb's `open` of `file` (in the store `dir`), turning a panic (redb asserts on some
/// damaged files instead of returning an error) and every error into a typed error.
fn open_database<D>(
    dir: &Path,
    file: &Path,
    open: impl FnOnce() -> Result<D, redb::DatabaseError> + std::panic::UnwindSafe,
) -> Result<D, StorageError> {
    std::panic::catch_unwind(open)
        .map_err(|_| StorageError::Corrupt {
            engine: ENGINE,
            path: file.to_owned(),
            detail: "the engine panicked while reading the file".into(),
        })?
        .map_err(|e| open_error(dir, file, e))
}

/// What a failed redb open means, for the store in `dir` whose database file is `file`.
fn open_error(dir: &Path, file: &Path, e: redb::DatabaseError) -> StorageError {
    let corrupt = |detail: String| StorageError::Corrupt {
        engine: ENGINE,
        path: file.to_owned(),
        detail,
    };
    match redb::Error::from(e) {
        redb::Error::DatabaseAlreadyOpen | redb::Error::LockProtocolMismatch => {
            StorageError::Locked {
                path: dir.to_owned(),
            }
        }
        redb::Error::Corrupted(detail) => corrupt(detail),
        redb::Error::UpgradeRequired(version) => {
            corrupt(format!("file format {version} needs an upgrade"))
        }
        redb::Error::RepairAborted => corrupt(
            "it was not closed cleanly and needs a repair, which a read-only open cannot do (open it read-write once, e.g. with `reclaim compact`)".into(),
        ),
        redb::Error::Io(e) if e.kind() == std::io::ErrorKind::StorageFull => {
            StorageError::NoSpace { operation: "open" }
        }
        // redb reports a file that is not a redb database as an I/O "invalid data" error.
        redb::Error::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => corrupt(e.to_string()),
        other => StorageError::engine(ENGINE, "open", other),
    }
}

impl RedbFile {
    /// What one generation declares: its own compaction is redb's `compact`, which every other
    /// access waits for.
    pub const CAPABILITIES: Capabilities = Capabilities {
        engine: ENGINE,
        // `retain_in` deletes key by key inside one transaction: atomic, but O(keys) writes.
        native_range_delete: false,
        compaction_reclaims_space: true,
        compaction_access: CompactionAccess::PausesAll,
        compaction_scope: CompactionScope::WholeStore,
        max_space_factor_after_compaction: 1.2,
        journal_bytes_kept_after_compaction: 0,
        max_key_bytes: MAX_KEY_BYTES,
    };

    /// Bytes redb reports as fragmented: free pages anywhere in the file's length (the sparse
    /// tail redb grows ahead of use included) plus the unused part of pages in use.
    pub fn fragmented_bytes(&self) -> Result<u64, StorageError> {
        self.stats().map(|stats| stats.fragmented_bytes())
    }

    /// Bytes of the pages the tables use, about what a copy of the live data occupies, so what
    /// a compaction leaves: the main table's pages, walked in a read transaction (writers never
    /// wait for it; it reads the main table, whose records of long values are a few bytes
    /// each), plus the pieces table's pages, modelled from the pieces kept by every write (a
    /// walk of those would read every long value).
    pub fn pages_in_use_bytes(&self) -> Result<u64, StorageError> {
        let footprint = *self.footprint.lock();
        let pages_bytes = contained(ENGINE, "stats", &self.poisoned, || {
            main_pages(&*self.db.read())
        })?;
        *self.walked.lock() = Some(MainWalk {
            pages_bytes,
            entry_bytes: u64::try_from(footprint.main_bytes).unwrap_or(0),
        });
        Ok(pages_bytes.saturating_add(footprint.pieces_pages_bytes()))
    }

    /// Live bytes: the keys and values this file holds, counted at open and kept by every
    /// write (exact; redb's pages cost more, see [`RedbFile::pages_in_use_bytes`]).
    pub fn live_bytes(&self) -> u64 {
        u64::try_from(self.footprint.lock().live_bytes).unwrap_or(0)
    }

    /// The bytes of the pages in use, for a file of `on_disk` bytes: the main table's pages
    /// scaled from its last walk while its entries stay within 10 % of what it saw and the file
    /// does not look more than 10 % reclaimable, walked again otherwise; the pieces' pages
    /// modelled. A walk holds a read transaction, and a reader that long makes the file grow
    /// (redb cannot reuse the pages it pins): walking both tables at every ask (about 85 ms
    /// at 650 MB) left the file 1–2 % larger at a node's steady state than not asking at all.
    fn pages_in_use_estimate(&self, on_disk: u64) -> Result<u64, StorageError> {
        let footprint = *self.footprint.lock();
        let walked = *self.walked.lock();
        let main_bytes = u64::try_from(footprint.main_bytes).unwrap_or(0);
        let scaled = walked
            .and_then(|walk| walk.scaled_to(main_bytes))
            .map(|main| main.saturating_add(footprint.pieces_pages_bytes()));
        match scaled {
            Some(pages) if on_disk.saturating_sub(pages) <= on_disk / RESCALE_SHARE => Ok(pages),
            _ => self.pages_in_use_bytes(),
        }
    }

    /// redb's statistics, read in a write transaction that is aborted.
    fn stats(&self) -> Result<redb::DatabaseStats, StorageError> {
        contained(ENGINE, "stats", &self.poisoned, || {
            let db = self.db.read();
            let txn = db
                .begin_write()
                .map_err(|e| engine_error("begin_write", e))?;
            let stats = txn.stats().map_err(|e| engine_error("stats", e))?;
            txn.abort().map_err(|e| engine_error("abort", e))?;
            Ok(stats)
        })
    }
}

impl RedbStore {
    /// What this adapter declares (the read-only [`RedbReader`] declares the same).
    pub const CAPABILITIES: Capabilities = Capabilities {
        compaction_access: CompactionAccess::Online,
        ..RedbFile::CAPABILITIES
    };

    /// Opens (creating if needed) the store in directory `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StorageError> {
        let path = path.as_ref();
        refuse_single_file_layout(path)?;
        Ok(Self {
            inner: GenerationalStore::open(path, RedbEngine)?,
        })
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        self.inner.path()
    }

    /// The live generation's number (one more after each compaction).
    pub fn generation(&self) -> u64 {
        self.inner.generation()
    }

    /// Bytes redb reports as allocated but unused in the live generation.
    pub fn fragmented_bytes(&self) -> Result<u64, StorageError> {
        self.inner.with_live(RedbFile::fragmented_bytes)
    }

    /// The generations and the online rewrite underneath.
    pub fn generations(&self) -> &GenerationalStore<RedbEngine> {
        &self.inner
    }
}

/// Refuses a store written by an earlier reclaim: one `store.redb` beside the marker and no
/// generation pointer.
fn refuse_single_file_layout(path: &Path) -> Result<(), StorageError> {
    let layout = GenerationLayout::new(path);
    if path.join(DB_FILE).is_file() && !layout.current_path().exists() {
        return Err(StorageError::Corrupt {
            engine: ENGINE,
            path: path.to_owned(),
            detail: format!(
                "it holds {DB_FILE} without {}: the single-file layout of an earlier reclaim, which this version does not open (copy the data out with that version)",
                reclaim_core::rewrite::CURRENT_FILE
            ),
        });
    }
    Ok(())
}

/// A read-only table of byte keys and byte values.
type RawReadTable = redb::ReadOnlyTable<&'static [u8], &'static [u8]>;

/// The main table and the pieces table of `db`, opened in one read transaction (the tables
/// keep it open for as long as they live).
fn read_tables(db: &impl ReadableDatabase) -> Result<[RawReadTable; 2], StorageError> {
    let txn = db.begin_read().map_err(|e| engine_error("begin_read", e))?;
    let open = |table| {
        txn.open_table(table)
            .map_err(|e| engine_error("open_table", e))
    };
    Ok([open(layout::MAIN)?, open(layout::PIECES)?])
}

/// Bytes of the pages `table`'s tree uses (its stored, metadata and in-page fragmented
/// bytes), walked.
fn table_pages(table: &RawReadTable) -> Result<u64, StorageError> {
    let stats = table.stats().map_err(|e| engine_error("stats", e))?;
    Ok(stats
        .stored_bytes()
        .saturating_add(stats.metadata_bytes())
        .saturating_add(stats.fragmented_bytes()))
}

/// Bytes of the pages the main table of `db` uses, walked in one read transaction.
fn main_pages(db: &impl ReadableDatabase) -> Result<u64, StorageError> {
    let [main, _] = read_tables(db)?;
    table_pages(&main)
}

/// Bytes of the pages both tables of the database `db` in `file` use, as
/// [`RedbFile::pages_in_use_bytes`] counts them, with the pieces counted by a scan of the
/// main table in the same read transaction.
fn pages_in_use(db: &impl ReadableDatabase, file: &Path) -> Result<u64, StorageError> {
    let [main, _] = read_tables(db)?;
    let footprint = layout::footprint(file, &main)?;
    Ok(table_pages(&main)?.saturating_add(footprint.pieces_pages_bytes()))
}

/// A point read in one read transaction of `db` (a read-write or a read-only database) whose
/// file is `file`.
fn read_get(
    db: &impl ReadableDatabase,
    file: &Path,
    key: &[u8],
) -> Result<Option<Vec<u8>>, StorageError> {
    let [main, pieces] = read_tables(db)?;
    let Some(record) = main.get(key).map_err(|e| engine_error("get", e))? else {
        return Ok(None);
    };
    layout::value(file, &pieces, key, record.value()).map(Some)
}

/// A bounded scan in one read transaction of `db` whose file is `file`.
fn read_scan(
    db: &impl ReadableDatabase,
    file: &Path,
    range: &KeyRange,
    order: ScanOrder,
    limit: usize,
) -> Result<Vec<KeyValue>, StorageError> {
    if range.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    let [main, pieces] = read_tables(db)?;
    let entries = main
        .range::<&[u8]>(range.as_bounds())
        .map_err(|e| engine_error("range", e))?;
    collect_scan(entries, order, limit, |entry| {
        let (key, record) = entry.map_err(|e| engine_error("scan", e))?;
        let value = layout::value(file, &pieces, key.value(), record.value())?;
        Ok((key.value().to_vec(), value))
    })
}

impl KvRead for RedbFile {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        contained(ENGINE, "get", &self.poisoned, || {
            read_get(&*self.db.read(), &self.file, key)
        })
    }

    fn scan(
        &self,
        range: &KeyRange,
        order: ScanOrder,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StorageError> {
        contained(ENGINE, "scan", &self.poisoned, || {
            read_scan(&*self.db.read(), &self.file, range, order, limit)
        })
    }
}

impl KvWrite for RedbFile {
    fn write(&self, batch: WriteBatch, options: WriteOptions) -> Result<(), StorageError> {
        self.write_with_side(batch, Vec::new(), options)
    }
}

impl RedbFile {
    /// Applies `batch` and puts `side` into the side table, in one write transaction.
    fn write_with_side(
        &self,
        batch: WriteBatch,
        side: Vec<KeyValue>,
        options: WriteOptions,
    ) -> Result<(), StorageError> {
        contained(ENGINE, "write", &self.poisoned, || {
            let db = self.db.read();
            let mut txn = db
                .begin_write()
                .map_err(|e| engine_error("begin_write", e))?;
            let durability = if options.sync {
                Durability::Immediate
            } else {
                Durability::None
            };
            txn.set_durability(durability)
                .map_err(|e| StorageError::engine(ENGINE, "set_durability", e))?;
            let mut change = Footprint::default();
            {
                let mut main = txn
                    .open_table(layout::MAIN)
                    .map_err(|e| engine_error("open_table", e))?;
                let mut pieces = txn
                    .open_table(layout::PIECES)
                    .map_err(|e| engine_error("open_table", e))?;
                let file = &self.file;
                for op in batch.into_ops() {
                    let made = match op {
                        BatchOp::Put { key, value } => {
                            layout::put(file, &mut main, &mut pieces, &key, &value)?
                        }
                        BatchOp::Delete { key } => {
                            layout::delete(file, &mut main, &mut pieces, &key)?
                        }
                        BatchOp::DeleteRange(range) => {
                            layout::delete_range(file, &mut main, &mut pieces, &range)?
                        }
                    };
                    change = change + made;
                }
            }
            if !side.is_empty() {
                let mut table = txn
                    .open_table(layout::SIDE)
                    .map_err(|e| engine_error("open_table", e))?;
                for (key, value) in &side {
                    table
                        .insert(key.as_slice(), value.as_slice())
                        .map_err(|e| engine_error("insert", e))?;
                }
            }
            txn.commit().map_err(|e| engine_error("commit", e))?;
            // Counted once committed: an aborted transaction changed nothing.
            let mut footprint = self.footprint.lock();
            *footprint = *footprint + change;
            Ok(())
        })
    }
}

impl Compactable for RedbFile {
    fn compact_range(&self, range: &KeyRange) -> Result<(), StorageError> {
        contained(ENGINE, "compact_range", &self.poisoned, || {
            if range.is_empty() {
                return Ok(());
            }
            // Exclusive: waits for every transaction of this adapter to end, and holds new ones off.
            let mut db = self.db.write();
            // The pages move: the next space report walks them again.
            *self.walked.lock() = None;
            // A synced empty commit first makes earlier non-durable commits durable, so that the
            // pages they freed can be released. A compaction round can end with the file *larger*
            // (redb relocates pages before it truncates), and the next round then shrinks it: run
            // rounds while the file keeps shrinking.
            let file = &self.file;
            let file_size = || {
                std::fs::metadata(file)
                    .map(|m| m.len())
                    .map_err(|e| StorageError::io_at("stat redb file", file, e))
            };
            let mut smallest = file_size()?;
            let mut passes = 0u32;
            for round in 0..MAX_COMPACTION_ROUNDS {
                let txn = db
                    .begin_write()
                    .map_err(|e| engine_error("begin_write", e))?;
                txn.commit().map_err(|e| engine_error("commit", e))?;
                while db.compact().map_err(|e| engine_error("compact", e))? {
                    passes += 1;
                }
                let size = file_size()?;
                debug!(round, size, "redb compaction round");
                if size >= smallest && round > 0 {
                    break;
                }
                smallest = smallest.min(size);
            }
            debug!(passes, "redb compaction finished");
            Ok(())
        })
    }

    fn size_on_disk(&self) -> Result<u64, StorageError> {
        match self.file.parent() {
            Some(dir) => directory_size(dir),
            None => Ok(0),
        }
    }

    /// Reclaimable: the file's allocated blocks beyond the pages in use
    /// ([`RedbFile::pages_in_use_bytes`], scaled from the last walk while the live data stays
    /// near it: see `pages_in_use_estimate`). Not redb's `fragmented_bytes`, which also
    /// counts the free pages of the sparse tail redb grows ahead of use, blocks that cost no
    /// disk and that no compaction gives back.
    fn space_report(&self) -> Result<SpaceReport, StorageError> {
        let on_disk = self.size_on_disk()?;
        let in_use = self.pages_in_use_estimate(on_disk)?;
        Ok(SpaceReport {
            on_disk,
            reclaimable: Some(on_disk.saturating_sub(in_use)),
            live_bytes: Some(in_use),
        })
    }

    fn capabilities(&self) -> Capabilities {
        Self::CAPABILITIES
    }
}

// The generational store's compaction is the core's online rewrite into a new generation; it
// declares what this adapter promises (`RedbStore::CAPABILITIES`).
reclaim_core::forward_kv_store!(RedbStore => inner);

#[cfg(test)]
mod tests {
    use super::*;

    /// One write of `count` values of `value_bytes` under keys `prefix ++ i`.
    fn put_many(store: &RedbFile, prefix: u8, count: u32, value_bytes: usize) {
        let mut batch = WriteBatch::new();
        for i in 0..count {
            let mut key = vec![prefix];
            key.extend_from_slice(&i.to_be_bytes());
            batch.put(key, vec![i as u8; value_bytes]);
        }
        store.write(batch, WriteOptions::DURABLE).unwrap();
    }

    fn last_walk(store: &RedbFile) -> Option<MainWalk> {
        *store.walked.lock()
    }

    /// The space report walks the main table once, then scales that walk while the table's
    /// entries stay near it; the pieces are modelled, never walked. A large delete or an
    /// in-place compaction makes it walk again.
    #[test]
    fn the_space_report_walks_only_the_main_table_and_only_when_it_moved() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbEngine.open(dir.path(), true).unwrap();
        // Long values (pieced) and short ones (inline).
        put_many(&store, b'a', 400, 8000);
        put_many(&store, b'c', 4000, 100);
        let first = store.space_report().unwrap();
        let walk = last_walk(&store).expect("the first report walks");
        let footprint = *store.footprint.lock();
        assert_eq!(walk.entry_bytes, footprint.main_bytes as u64);
        assert!(walk.pages_bytes < 1 << 20, "only the main table: {walk:?}");
        let in_use = first.live_bytes.unwrap();
        assert_eq!(in_use, walk.pages_bytes + footprint.pieces_pages_bytes());
        // The modelled pages of both tables are within a few per cent of redb's own walk.
        let walked_both = {
            let db = store.db.read();
            read_tables(&*db)
                .unwrap()
                .iter()
                .map(|table| table_pages(table).unwrap())
                .sum::<u64>()
        };
        let ratio = in_use as f64 / walked_both as f64;
        assert!(
            (0.99..=1.03).contains(&ratio),
            "{in_use} against {walked_both}"
        );

        // 2.5 % more in the main table: scaled, not walked.
        put_many(&store, b'd', 100, 100);
        let scaled = store.space_report().unwrap();
        assert_eq!(last_walk(&store), Some(walk));
        let footprint = *store.footprint.lock();
        let expected = walk.pages_bytes * footprint.main_bytes as u64 / walk.entry_bytes
            + footprint.pieces_pages_bytes();
        assert_eq!(scaled.live_bytes, Some(expected));

        // Most of both deleted: walked again, and the freed pages are reclaimable.
        let mut batch = WriteBatch::new();
        batch.delete_range(KeyRange::new(Some(vec![b'a']), Some(vec![b'c', 0, 0, 14])).unwrap());
        store.write(batch, WriteOptions::DURABLE).unwrap();
        let after_delete = store.space_report().unwrap();
        let rewalk = last_walk(&store).expect("walked");
        assert_ne!(rewalk, walk);
        assert_eq!(rewalk.entry_bytes, store.footprint.lock().main_bytes as u64);
        let reclaimable = after_delete.reclaimable.unwrap();
        assert!(reclaimable > 2 << 20, "{reclaimable} bytes reclaimable");

        // An in-place compaction moves the pages: the next report walks.
        store.compact_range(&KeyRange::full()).unwrap();
        assert_eq!(last_walk(&store), None);
        let compacted = store.space_report().unwrap();
        assert!(last_walk(&store).is_some());
        assert!(compacted.reclaimable.unwrap() < reclaimable / 4);
    }

    /// A generation retired (closed to be removed) keeps its length (redb's closing trim would
    /// free the tail at once); closed at shutdown, redb trims it as usual.
    #[test]
    fn a_generation_closed_for_removal_keeps_its_free_tail() {
        let lengths = |for_removal: bool| {
            let dir = tempfile::tempdir().unwrap();
            let store = RedbEngine.open(dir.path(), true).unwrap();
            put_many(&store, b'a', 2000, 8000);
            let mut batch = WriteBatch::new();
            batch.delete_range(KeyRange::new(Some(vec![b'a']), None).unwrap());
            store.write(batch, WriteOptions::DURABLE).unwrap();
            let before = std::fs::metadata(&store.file).unwrap().len();
            let file = store.file.clone();
            if for_removal {
                RedbEngine.retire(store, dir.path()).unwrap();
            } else {
                RedbEngine.close(store, dir.path()).unwrap();
            }
            (before, std::fs::metadata(&file).unwrap().len())
        };
        let (before, after) = lengths(true);
        assert!(before > 16 << 20, "{before} bytes written");
        assert_eq!(after, before, "retired");
        let (before, after) = lengths(false);
        assert!(
            after + (1 << 20) < before,
            "dropped: {before} -> {after} bytes"
        );
    }

    /// The live bytes kept by writes equal those a reopen counts by a scan.
    #[test]
    fn live_bytes_kept_by_writes_match_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbEngine.open(dir.path(), true).unwrap();
        put_many(&store, b'a', 50, 5000);
        put_many(&store, b'a', 20, 100);
        let mut batch = WriteBatch::new();
        batch.delete(vec![b'a', 0, 0, 0, 30]);
        batch.delete_range(KeyRange::new(Some(vec![b'a', 0, 0, 0, 40]), None).unwrap());
        store.write(batch, WriteOptions::DURABLE).unwrap();
        let kept = store.live_bytes();
        assert_eq!(kept, 20 * (5 + 100) + 19 * (5 + 5000));
        drop(store);
        let reopened = RedbEngine.open(dir.path(), false).unwrap();
        assert_eq!(reopened.live_bytes(), kept);
    }
}
