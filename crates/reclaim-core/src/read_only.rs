//! [`ReadOnly`]: an engine's read-only handle made a whole [`crate::KvStore`] for a look that changes
//! nothing: reads go to the engine, writes and compactions are refused with
//! [`StorageError::ReadOnly`], bytes on disk are measured as for every store.

use std::path::{Path, PathBuf};

use crate::dir::directory_size;
use crate::error::StorageError;
use crate::kv::{
    Capabilities, Compactable, KeyValue, KvRead, KvWrite, ScanOrder, SpaceReport, WriteBatch,
    WriteOptions,
};
use crate::range::KeyRange;

/// A read-only store: `reader` for reads, the store directory `dir` for its size, and the
/// engine's `capabilities` (those of its read-write adapter).
#[derive(Debug)]
pub struct ReadOnly<R> {
    reader: R,
    dir: PathBuf,
    capabilities: Capabilities,
}

impl<R> ReadOnly<R> {
    /// Wraps `reader`, opened on the store directory `dir`.
    pub fn new(reader: R, dir: &Path, capabilities: Capabilities) -> Self {
        Self {
            reader,
            dir: dir.to_owned(),
            capabilities,
        }
    }

    /// The engine's read-only handle.
    pub fn reader(&self) -> &R {
        &self.reader
    }
}

/// What an engine's read-only handle can tell about its space without changing anything.
pub trait ReadOnlySpace {
    /// Bytes the live data would occupy after a compaction, as the engine estimates it; `None`
    /// (the default) when it cannot tell. [`ReadOnly`] reports everything on disk beyond it as
    /// reclaimable.
    fn bytes_after_compaction(&self) -> Result<Option<u64>, StorageError> {
        Ok(None)
    }
}

impl<R: KvRead> KvRead for ReadOnly<R> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.reader.get(key)
    }

    fn scan(
        &self,
        range: &KeyRange,
        order: ScanOrder,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StorageError> {
        self.reader.scan(range, order, limit)
    }
}

impl<R: Send + Sync> KvWrite for ReadOnly<R> {
    fn write(&self, _batch: WriteBatch, _options: WriteOptions) -> Result<(), StorageError> {
        Err(StorageError::ReadOnly { operation: "write" })
    }
}

impl<R: ReadOnlySpace + Send + Sync> Compactable for ReadOnly<R> {
    fn compact_range(&self, _range: &KeyRange) -> Result<(), StorageError> {
        Err(StorageError::ReadOnly {
            operation: "compaction",
        })
    }

    fn size_on_disk(&self) -> Result<u64, StorageError> {
        directory_size(&self.dir)
    }

    /// Reclaimable: the bytes on disk beyond the reader's
    /// [`ReadOnlySpace::bytes_after_compaction`] (the live bytes), when it gives one.
    fn space_report(&self) -> Result<SpaceReport, StorageError> {
        let on_disk = self.size_on_disk()?;
        let after = self.reader.bytes_after_compaction()?;
        Ok(SpaceReport {
            on_disk,
            reclaimable: after.map(|after| on_disk.saturating_sub(after)),
            live_bytes: after,
        })
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }
}
