//! The file under each generation's redb database: redb's own file backend, except that a
//! generation retired (closed to be removed) keeps its length and is never synced.
//!
//! redb's last commit at close trims the file's free tail in one `ftruncate`. Right after an
//! online rewrite that tail is large: the pages the copy's snapshot kept from reuse (traced in
//! one `reclaim simulate --backend redb` run at 545 MiB retained: the old file cut from about
//! 1.06 GiB to 633 MiB in one call). Freeing that much at once holds the file system's journal,
//! and the node's commits wait behind it (`docs/benchmarks-retire.md`: a sync waited up to
//! 97 ms behind a 1 GiB removal at once, 1.6 ms behind 4 MiB steps). A retired generation
//! skips that truncation; the core then frees the whole file in small steps
//! ([`reclaim_core::rewrite::GenerationLayout::remove_gradually`]).
//!
//! redb's close also commits its allocator state and syncs the file (0.25–0.65 s under load);
//! for a file removed next the sync is work for nothing, and the node's commits on the new
//! generation waited behind it: in release `reclaim simulate` runs (545 MiB retained, writer
//! flat out, interval policy) the longest commits during rewrites over the 2nd half, 82–87 ms,
//! fell inside that close. A retired generation's syncs are skipped, and what its close writes
//! stays in the page cache until the removal drops it: that longest commit was then 33–37 ms
//! (two runs each; 20.3 ms with compaction off), though one run's first close still met a
//! 121 ms commit.

use std::fs::OpenOptions;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use redb::backends::FileBackend;
use redb::{BackendError, DatabaseError, StorageBackend};

/// No shrink was skipped: the file's length is its real length.
const NOT_SKIPPED: u64 = u64::MAX;

/// Says that a generation's file is closed for removal: from then on, its backend leaves the
/// file at its length when redb shrinks it.
#[derive(Debug, Clone, Default)]
pub(crate) struct RemovalFlag(Arc<AtomicBool>);

impl RemovalFlag {
    /// Marks the file as closed for removal (irreversible).
    pub(crate) fn set(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// redb's [`FileBackend`] over one generation's file; once its [`RemovalFlag`] is set, a shrink
/// is recorded instead of made (redb then sees the length it asked for; the bytes beyond it
/// stay until the file is removed).
#[derive(Debug)]
pub(crate) struct GenerationFile {
    inner: FileBackend,
    removal: RemovalFlag,
    /// The length redb asked for when a shrink was skipped, else [`NOT_SKIPPED`].
    skipped_to: AtomicU64,
}

impl GenerationFile {
    /// Opens (creating it when missing, never truncating) the database file at `path`.
    pub(crate) fn open(path: &Path, removal: RemovalFlag) -> Result<Self, DatabaseError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        Ok(Self {
            inner: FileBackend::new(file)?,
            removal,
            skipped_to: AtomicU64::new(NOT_SKIPPED),
        })
    }
}

impl StorageBackend for GenerationFile {
    fn len(&self) -> Result<u64, std::io::Error> {
        let real = self.inner.len()?;
        let skipped_to = self.skipped_to.load(Ordering::Acquire);
        Ok(if skipped_to == NOT_SKIPPED {
            real
        } else {
            real.min(skipped_to)
        })
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), std::io::Error> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        if self.removal.is_set() && len < self.inner.len()? {
            self.skipped_to.store(len, Ordering::Release);
            return Ok(());
        }
        self.skipped_to.store(NOT_SKIPPED, Ordering::Release);
        self.inner.set_len(len)
    }

    /// Once the file is closed for removal, a sync is skipped: nothing will read the file
    /// again (the live generation is another one, and an open removes this one), and what its
    /// close writes stays in the page cache until the removal drops it.
    fn sync_data(&self) -> Result<(), std::io::Error> {
        if self.removal.is_set() {
            return Ok(());
        }
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        self.inner.write(offset, data)
    }

    fn close(&self) -> Result<(), std::io::Error> {
        self.inner.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}
