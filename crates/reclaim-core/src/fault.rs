//! [`FaultyStore`]: wraps any engine and injects failures at chosen calls, so that tests can
//! simulate a crash between any two writes, failing or panicking compactions, and slow ones.
//! It also records how many compactions ran at once, which is how the single-flight guarantee
//! is checked.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::error::StorageError;
use crate::kv::{
    Capabilities, Compactable, KeyValue, KvRead, KvStore, KvWrite, ScanOrder, WriteBatch,
    WriteOptions,
};
use crate::range::KeyRange;

/// What a compaction call on a [`FaultyStore`] does besides delegating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompactionFault {
    /// Delegate normally.
    #[default]
    None,
    /// Return an engine error without compacting.
    Error,
    /// Panic inside the call.
    Panic,
    /// Sleep this long, then delegate.
    Delay(Duration),
}

/// An engine wrapper that fails on demand.
pub struct FaultyStore {
    inner: Arc<dyn KvStore>,
    writes_allowed: AtomicU64,
    writes_done: AtomicU64,
    compaction_fault: Mutex<CompactionFault>,
    compactions_started: AtomicU64,
    active_compactions: AtomicUsize,
    max_active_compactions: AtomicUsize,
    compacted_ranges: Mutex<Vec<KeyRange>>,
    read_fault: Mutex<ReadFault>,
    read_calls: AtomicU64,
    reads_failed: AtomicU64,
}

/// What read calls (`get` and `scan`) on a [`FaultyStore`] do besides delegating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadFault {
    /// Delegate normally.
    #[default]
    None,
    /// Every read returns an I/O error (a failing disk).
    Error,
    /// Every `n`-th read returns an I/O error, the others succeed (a flaky disk).
    EveryNth(u64),
    /// Every read sleeps this long, then delegates (a slow disk).
    Delay(Duration),
}

impl std::fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultyStore")
            .field("writes_done", &self.writes_done())
            .field("compactions_started", &self.compactions_started())
            .finish()
    }
}

impl FaultyStore {
    /// Wraps `inner` with no fault armed.
    pub fn new(inner: Arc<dyn KvStore>) -> Self {
        Self {
            inner,
            writes_allowed: AtomicU64::new(u64::MAX),
            writes_done: AtomicU64::new(0),
            compaction_fault: Mutex::new(CompactionFault::None),
            compactions_started: AtomicU64::new(0),
            active_compactions: AtomicUsize::new(0),
            max_active_compactions: AtomicUsize::new(0),
            compacted_ranges: Mutex::new(Vec::new()),
            read_fault: Mutex::new(ReadFault::None),
            read_calls: AtomicU64::new(0),
            reads_failed: AtomicU64::new(0),
        }
    }

    /// After `n` more successful writes, every write fails and changes nothing: the process
    /// "crashed" between write `n` and write `n + 1`.
    pub fn crash_after_writes(&self, n: u64) {
        let done = self.writes_done();
        self.writes_allowed
            .store(done.saturating_add(n), Ordering::SeqCst);
    }

    /// Lets writes succeed again.
    pub fn heal(&self) {
        self.writes_allowed.store(u64::MAX, Ordering::SeqCst);
    }

    /// Sets what compaction calls do from now on.
    pub fn set_compaction_fault(&self, fault: CompactionFault) {
        *self.compaction_fault.lock() = fault;
    }

    /// Sets what read calls do from now on.
    pub fn set_read_fault(&self, fault: ReadFault) {
        *self.read_fault.lock() = fault;
    }

    /// Reads that failed because of an injected fault.
    pub fn reads_failed(&self) -> u64 {
        self.reads_failed.load(Ordering::SeqCst)
    }

    fn before_read(&self) -> Result<(), StorageError> {
        let fault = *self.read_fault.lock();
        let fail = match fault {
            ReadFault::None => false,
            ReadFault::Error => true,
            ReadFault::EveryNth(n) => {
                let calls = self.read_calls.fetch_add(1, Ordering::SeqCst) + 1;
                n > 0 && calls.is_multiple_of(n)
            }
            ReadFault::Delay(delay) => {
                std::thread::sleep(delay);
                false
            }
        };
        if fail {
            self.reads_failed.fetch_add(1, Ordering::SeqCst);
            return Err(StorageError::io(
                "read",
                std::io::Error::other("injected read error"),
            ));
        }
        Ok(())
    }

    /// Successful writes so far.
    pub fn writes_done(&self) -> u64 {
        self.writes_done.load(Ordering::SeqCst)
    }

    /// Compaction calls so far.
    pub fn compactions_started(&self) -> u64 {
        self.compactions_started.load(Ordering::SeqCst)
    }

    /// Every range passed to `compact_range`, in call order.
    pub fn compacted_ranges(&self) -> Vec<KeyRange> {
        self.compacted_ranges.lock().clone()
    }

    /// The most compaction calls that were ever running at the same moment.
    pub fn max_concurrent_compactions(&self) -> usize {
        self.max_active_compactions.load(Ordering::SeqCst)
    }
}

struct ActiveGuard<'a>(&'a AtomicUsize);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl KvRead for FaultyStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.before_read()?;
        self.inner.get(key)
    }

    fn scan(
        &self,
        range: &KeyRange,
        order: ScanOrder,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StorageError> {
        self.before_read()?;
        self.inner.scan(range, order, limit)
    }
}

impl KvWrite for FaultyStore {
    fn write(&self, batch: WriteBatch, options: WriteOptions) -> Result<(), StorageError> {
        let done = self.writes_done.load(Ordering::SeqCst);
        if done >= self.writes_allowed.load(Ordering::SeqCst) {
            return Err(StorageError::Closed {
                reason: format!("injected crash after {done} writes"),
            });
        }
        self.inner.write(batch, options)?;
        self.writes_done.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

impl Compactable for FaultyStore {
    fn compact_range(&self, range: &KeyRange) -> Result<(), StorageError> {
        self.compactions_started.fetch_add(1, Ordering::SeqCst);
        self.compacted_ranges.lock().push(range.clone());
        let now = self.active_compactions.fetch_add(1, Ordering::SeqCst) + 1;
        let _active = ActiveGuard(&self.active_compactions);
        self.max_active_compactions.fetch_max(now, Ordering::SeqCst);
        let fault = *self.compaction_fault.lock();
        match fault {
            CompactionFault::None => {}
            CompactionFault::Error => {
                return Err(StorageError::engine(
                    "faulty",
                    "compact_range",
                    "injected compaction error",
                ));
            }
            CompactionFault::Panic => panic!("injected compaction panic"),
            CompactionFault::Delay(delay) => std::thread::sleep(delay),
        }
        self.inner.compact_range(range)
    }

    fn drop_deleted_range(&self, range: &KeyRange) -> Result<(), StorageError> {
        self.inner.drop_deleted_range(range)
    }

    fn drops_deleted_ranges_cheaply(&self) -> bool {
        self.inner.drops_deleted_ranges_cheaply()
    }

    fn compaction_plan(
        &self,
        ranges: &[KeyRange],
        target_bytes: u64,
    ) -> Result<Vec<KeyRange>, StorageError> {
        self.inner.compaction_plan(ranges, target_bytes)
    }

    fn compaction_slices(
        &self,
        range: &KeyRange,
        target_bytes: u64,
    ) -> Result<Vec<KeyRange>, StorageError> {
        self.inner.compaction_slices(range, target_bytes)
    }

    fn size_on_disk(&self) -> Result<u64, StorageError> {
        self.inner.size_on_disk()
    }

    fn space_report(&self) -> Result<crate::kv::SpaceReport, StorageError> {
        self.inner.space_report()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
}

/// The environment variable naming the crash point at which [`crash_point`] aborts the process.
pub const CRASH_AT_ENV: &str = "RECLAIM_CRASH_AT";

/// Aborts the process (no destructor runs, no buffer is flushed: as a kill would) when
/// [`CRASH_AT_ENV`] names `step`. Kill tests run a child with it set to each step of a
/// protocol in turn (e.g. the online rewrite's `rewrite.pointer_written`).
pub fn crash_point(step: &str) {
    static TARGET: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let target = TARGET.get_or_init(|| std::env::var(CRASH_AT_ENV).ok());
    if target.as_deref() == Some(step) {
        eprintln!("crash point {step}: aborting");
        std::process::abort();
    }
}
