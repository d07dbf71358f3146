//! [`RedbReader`]: a redb store opened for a look that changes nothing: a shared directory
//! lock, redb's read-only database; [`ReadOnly`] refuses every write and compaction.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use reclaim_core::dir::{EntryKind, SharedDirLock, open_store_dir_read_only};
use reclaim_core::kv::{KeyValue, contained};
use reclaim_core::{KeyRange, KvRead, ReadOnly, ReadOnlySpace, ScanOrder, StorageError};
use redb::ReadOnlyDatabase;

use crate::{
    DB_FILE, ENGINE, RedbStore, live_database_file, open_database, pages_in_use, read_get,
    read_scan, refuse_single_file_layout,
};

/// A redb store opened read-only, as a [`ReadOnly`] store: writes and compactions are refused
/// with [`StorageError::ReadOnly`]; nothing under the store directory is written, so it works
/// on a read-only file system and beside other readers (not beside a writer).
pub struct RedbReader {
    db: ReadOnlyDatabase,
    path: PathBuf,
    /// The live generation's database file.
    file: PathBuf,
    poisoned: AtomicBool,
    _lock: SharedDirLock,
}

impl std::fmt::Debug for RedbReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbReader")
            .field("path", &self.path)
            .finish()
    }
}

impl RedbReader {
    /// Opens the existing store in `path` read-only. Errors: those of
    /// [`open_store_dir_read_only`], [`StorageError::Missing`] when the database file is lost,
    /// [`StorageError::Corrupt`] when it is damaged, needs a repair after a crash or has an
    /// interrupted online rewrite to finish (which only
    /// a read-write open does).
    pub fn open(path: impl AsRef<Path>) -> Result<ReadOnly<Self>, StorageError> {
        let path = path.as_ref().to_owned();
        let lock = open_store_dir_read_only(&path, ENGINE)?;
        refuse_single_file_layout(&path)?;
        lock.require(
            ENGINE,
            reclaim_core::rewrite::CURRENT_FILE,
            EntryKind::File,
            "generation pointer (CURRENT)",
        )?;
        // Mid write-once rewrite the live data is spread over two generations, which only the
        // read-write store merges: refuse rather than show the frozen one alone.
        let layout = reclaim_core::rewrite::GenerationLayout::new(&path);
        if let (Some(current), Some(building)) =
            (layout.read_current(ENGINE)?, layout.read_building(ENGINE)?)
            && building > current
        {
            return Err(StorageError::Corrupt {
                engine: ENGINE,
                path: path.clone(),
                detail: format!(
                    "an online rewrite into generation {building} was interrupted; open the store read-write once (the node, or `reclaim compact`) to finish it"
                ),
            });
        }
        let file = live_database_file(&path)?;
        let relative = file
            .strip_prefix(&path)
            .unwrap_or(std::path::Path::new(DB_FILE));
        lock.require(
            ENGINE,
            &relative.to_string_lossy(),
            EntryKind::File,
            "database file",
        )?;
        let db = open_database(&path, &file, || ReadOnlyDatabase::open(&file))?;
        let reader = Self {
            db,
            path: path.clone(),
            file,
            poisoned: AtomicBool::new(false),
            _lock: lock,
        };
        Ok(ReadOnly::new(reader, &path, RedbStore::CAPABILITIES))
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl KvRead for RedbReader {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        contained(ENGINE, "get", &self.poisoned, || {
            read_get(&self.db, &self.file, key)
        })
    }

    fn scan(
        &self,
        range: &KeyRange,
        order: ScanOrder,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StorageError> {
        contained(ENGINE, "scan", &self.poisoned, || {
            read_scan(&self.db, &self.file, range, order, limit)
        })
    }
}

/// The pages the live generation's tables use, as the read-write store counts them (the main
/// table walked, the pieces modelled from its records) in one read transaction: what a
/// compaction would leave.
impl ReadOnlySpace for RedbReader {
    fn bytes_after_compaction(&self) -> Result<Option<u64>, StorageError> {
        contained(ENGINE, "stats", &self.poisoned, || {
            pages_in_use(&self.db, &self.file).map(Some)
        })
    }
}
