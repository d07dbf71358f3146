//! [`RocksReader`]: a RocksDB store opened for a look that changes nothing: a shared directory
//! lock, RocksDB's read-only mode, its info log written outside the store, every write and
//! compaction refused by [`ReadOnly`].

use std::path::{Path, PathBuf};

use reclaim_core::dir::{EntryKind, SharedDirLock, check_clean_close, open_store_dir_read_only};
use reclaim_core::kv::KeyValue;
use reclaim_core::{KeyRange, KvRead, ReadOnly, ReadOnlySpace, ScanOrder, StorageError};
use rocksdb::{DB, Options};

use crate::{ENGINE, RocksStore, engine_error, open_error, rocks_scan};

/// A RocksDB store opened read-only, as a [`ReadOnly`] store: writes and compactions are
/// refused with [`StorageError::ReadOnly`]; nothing under the store directory is written
/// (RocksDB's info log goes to a temporary directory removed on drop), so it works beside other
/// readers (not beside a writer) and on a read-only file system.
pub struct RocksReader {
    db: DB,
    path: PathBuf,
    _log_dir: tempfile::TempDir,
    _lock: SharedDirLock,
}

impl std::fmt::Debug for RocksReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksReader")
            .field("path", &self.path)
            .finish()
    }
}

impl RocksReader {
    /// Opens the existing store in `path` read-only. Errors: those of
    /// [`open_store_dir_read_only`], [`StorageError::Missing`] when its files are lost,
    /// [`StorageError::Corrupt`] when they are damaged.
    pub fn open(path: impl AsRef<Path>) -> Result<ReadOnly<Self>, StorageError> {
        let path = path.as_ref().to_owned();
        let lock = open_store_dir_read_only(&path, ENGINE)?;
        lock.require(
            ENGINE,
            "CURRENT",
            EntryKind::File,
            "manifest pointer (CURRENT)",
        )?;
        let log_dir = tempfile::Builder::new()
            .prefix("reclaim-rocksdb-log")
            .tempdir()
            .map_err(|e| StorageError::io("create a directory for RocksDB's log", e))?;
        let mut opts = Options::default();
        opts.create_if_missing(false);
        opts.set_db_log_dir(log_dir.path());
        let db = DB::open_for_read_only(&opts, &path, false).map_err(|e| open_error(&path, &e))?;
        check_clean_close(&path, ENGINE, 0, db.latest_sequence_number())?;
        let reader = Self {
            db,
            path: path.clone(),
            _log_dir: log_dir,
            _lock: lock,
        };
        Ok(ReadOnly::new(reader, &path, RocksStore::CAPABILITIES))
    }
}

impl KvRead for RocksReader {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.db.get(key).map_err(|e| engine_error("get", &e))
    }

    fn scan(
        &self,
        range: &KeyRange,
        order: ScanOrder,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StorageError> {
        rocks_scan(&self.db, range, order, limit)
    }
}

/// No estimate, as the read-write store (RocksDB's live-data estimate does not see range
/// tombstones).
impl ReadOnlySpace for RocksReader {}
