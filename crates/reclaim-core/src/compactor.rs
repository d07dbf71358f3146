//! The single-flight background compactor (the spec's `NewCompactor` / `TryEnqueue`).
//!
//! One named worker thread takes tasks from a bounded crossbeam channel. A [`SingleFlight`] gate,
//! claimed by compare-and-swap in [`Compactor::try_enqueue`] and released when the task has run
//! (or is dropped unrun), guarantees that at most one task is queued or running across every
//! compactor sharing the gate. `try_enqueue` never blocks: no lock is taken on its path.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded, select};
use parking_lot::{Condvar, Mutex};
use tracing::{debug, error, info, warn};

use crate::error::StorageError;
use crate::kv::{Compactable, CompactionScope};
use crate::metric;
use crate::pacing::{Pacing, StopSignal, Turn};
use crate::range::KeyRange;
use crate::worker::{Stopped, Worker};

/// How long [`Compactor`]'s `Drop` waits for the worker, as the spec's compactor does.
pub const DEFAULT_SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

const IDLE: u8 = 0;
const QUEUED: u8 = 1;
const RUNNING: u8 = 2;

/// Why a task was not accepted because another one holds the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// A task is waiting in a queue (the spec's "queue full").
    QueueFull,
    /// A task is running (the spec's "already in progress").
    InFlight,
}

/// The outcome of [`Compactor::try_enqueue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnqueueOutcome {
    /// The task was queued and will run.
    Enqueued,
    /// Another task holds the single-flight gate; this one was dropped.
    Busy(Busy),
    /// The compactor has shut down; the task was dropped.
    ShutDown,
}

impl EnqueueOutcome {
    /// True when the task was accepted.
    pub fn is_enqueued(self) -> bool {
        self == Self::Enqueued
    }

    /// Why the task was not accepted (`in_flight`, `queue_full`, `shut_down`), as logged and
    /// used as the metric label; `None` when it was.
    pub fn skip_reason(self) -> Option<&'static str> {
        match self {
            Self::Enqueued => None,
            Self::Busy(Busy::InFlight) => Some("in_flight"),
            Self::Busy(Busy::QueueFull) => Some("queue_full"),
            Self::ShutDown => Some("shut_down"),
        }
    }
}

/// A gate that admits one compaction at a time. Clones share the gate, so compactors built with
/// [`Compactor::with_single_flight`] on clones of one gate never run two tasks at once.
#[derive(Clone, Default)]
pub struct SingleFlight {
    inner: Arc<FlightInner>,
}

#[derive(Default)]
struct FlightInner {
    state: AtomicU8,
    idle_lock: Mutex<()>,
    idle: Condvar,
}

impl fmt::Debug for SingleFlight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SingleFlight")
            .field("state", &self.inner.state.load(Ordering::Acquire))
            .finish()
    }
}

impl SingleFlight {
    /// A free gate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Claims the gate with one compare-and-swap; never blocks.
    pub fn try_claim(&self) -> Result<FlightClaim, Busy> {
        match self
            .inner
            .state
            .compare_exchange(IDLE, QUEUED, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Ok(FlightClaim {
                inner: Arc::clone(&self.inner),
            }),
            Err(RUNNING) => Err(Busy::InFlight),
            Err(_) => Err(Busy::QueueFull),
        }
    }

    /// True when no task is queued or running.
    pub fn is_idle(&self) -> bool {
        self.inner.state.load(Ordering::Acquire) == IDLE
    }

    /// Waits until the gate is free or `timeout` passes; returns true if it is free.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut guard = self.inner.idle_lock.lock();
        while !self.is_idle() {
            if self.inner.idle.wait_until(&mut guard, deadline).timed_out() {
                return self.is_idle();
            }
        }
        true
    }
}

/// Proof of holding the [`SingleFlight`] gate; dropping it frees the gate.
pub struct FlightClaim {
    inner: Arc<FlightInner>,
}

impl FlightClaim {
    fn mark_running(&self) {
        self.inner.state.store(RUNNING, Ordering::Release);
    }
}

impl Drop for FlightClaim {
    fn drop(&mut self) {
        self.inner.state.store(IDLE, Ordering::Release);
        let _guard = self.inner.idle_lock.lock();
        self.inner.idle.notify_all();
    }
}

/// A store to compact and the ranges to compact in it.
#[derive(Clone)]
pub struct CompactionTarget {
    name: Cow<'static, str>,
    store: Arc<dyn Compactable>,
    ranges: Option<Vec<KeyRange>>,
    deleted: Vec<KeyRange>,
}

impl fmt::Debug for CompactionTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompactionTarget")
            .field("name", &self.name)
            .field("engine", &self.store.capabilities().engine)
            .field("ranges", &self.ranges)
            .finish()
    }
}

/// One unit of work for the compactor: a label for the logs, a default range, and one or more
/// targets (the spec's `compactBoth` is a task with the state store and the block store).
#[derive(Clone, Debug)]
pub struct CompactionTask {
    label: Cow<'static, str>,
    range: KeyRange,
    targets: Vec<CompactionTarget>,
}

impl CompactionTask {
    /// A task over the full key range with no target yet.
    pub fn new(label: impl Into<Cow<'static, str>>) -> Self {
        Self {
            label: label.into(),
            range: KeyRange::full(),
            targets: Vec::new(),
        }
    }

    /// Sets the range compacted on targets added without ranges of their own.
    pub fn with_range(mut self, range: KeyRange) -> Self {
        self.range = range;
        self
    }

    /// Adds a target compacted over the task's range.
    pub fn with_target(
        mut self,
        name: impl Into<Cow<'static, str>>,
        store: Arc<dyn Compactable>,
    ) -> Self {
        self.targets.push(CompactionTarget {
            name: name.into(),
            store,
            ranges: None,
            deleted: Vec::new(),
        });
        self
    }

    /// Adds a target compacted over its own `ranges` (e.g. the key families of pruned heights).
    pub fn with_target_ranges(
        mut self,
        name: impl Into<Cow<'static, str>>,
        store: Arc<dyn Compactable>,
        ranges: Vec<KeyRange>,
    ) -> Self {
        self.targets.push(CompactionTarget {
            name: name.into(),
            store,
            ranges: Some(ranges),
            deleted: Vec::new(),
        });
        self
    }

    /// Declares `ranges` of the target added last as wholly deleted for good (pruned heights),
    /// so that the engine may drop their space cheaply before compacting
    /// ([`Compactable::drop_deleted_range`]). Without a target it does nothing.
    pub fn with_deleted_ranges(self, ranges: Vec<KeyRange>) -> Self {
        let last = self.targets.len().saturating_sub(1);
        self.with_deleted_ranges_of(last, ranges)
    }

    /// [`CompactionTask::with_deleted_ranges`] for the target at `index` (in the order added);
    /// an index past the last target does nothing.
    pub fn with_deleted_ranges_of(mut self, index: usize, ranges: Vec<KeyRange>) -> Self {
        if let Some(target) = self.targets.get_mut(index) {
            target
                .deleted
                .extend(ranges.into_iter().filter(|r| !r.is_empty()));
        }
        self
    }

    /// The label used in every log line of this task.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The task's default range.
    pub fn range(&self) -> &KeyRange {
        &self.range
    }

    /// Names of the targets, in run order.
    pub fn target_names(&self) -> Vec<&str> {
        self.targets.iter().map(|t| t.name.as_ref()).collect()
    }
}

/// Why one target of a task failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetFailure {
    /// The engine returned an error.
    #[error("compaction of {target} {range} failed: {message}")]
    Error {
        /// Target name.
        target: String,
        /// The range being compacted.
        range: String,
        /// The engine's error.
        message: String,
    },
    /// The engine panicked; the worker caught it and kept serving.
    #[error("compaction of {target} {range} panicked: {message}")]
    Panicked {
        /// Target name.
        target: String,
        /// The range being compacted.
        range: String,
        /// The panic payload, when it was a string.
        message: String,
    },
}

/// What running a task did.
#[derive(Debug, Clone)]
pub struct TaskReport {
    /// The task label.
    pub label: String,
    /// Wall time of the whole task.
    pub duration: Duration,
    /// Sum over targets of bytes on disk before compaction.
    pub bytes_before: u64,
    /// Sum over targets of bytes on disk after compaction.
    pub bytes_after: u64,
    /// Slices compacted successfully.
    pub ranges_compacted: usize,
    /// Slices skipped because shutdown was requested.
    pub ranges_skipped: usize,
    /// Slices run (each a `compact_range` call); equals the ranges run when unpaced.
    pub slices: usize,
    /// Deleted ranges whose space the engine was offered to drop before compacting.
    pub ranges_dropped: usize,
    /// The longest single slice: the longest the engine worked without a break.
    pub longest_slice: Duration,
    /// Time spent waiting for turns (pauses excluded): load signal and time windows.
    pub waited: Duration,
    /// Slices run while the load signal said busy, after the maximum deferral.
    pub forced_slices: usize,
    /// Every failure; empty when the task succeeded.
    pub failures: Vec<TargetFailure>,
}

impl TaskReport {
    /// True when no range failed.
    pub fn succeeded(&self) -> bool {
        self.failures.is_empty()
    }

    /// Bytes on disk returned by the task (zero if it grew).
    pub fn bytes_reclaimed(&self) -> u64 {
        self.bytes_before.saturating_sub(self.bytes_after)
    }
}

/// A synchronous compaction that failed on at least one target.
#[derive(Debug, Clone, thiserror::Error)]
#[error("compaction task {label:?} failed: {}", failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct CompactionFailed {
    /// The task label.
    pub label: String,
    /// What failed.
    pub failures: Vec<TargetFailure>,
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}

fn size_or_log(store: &dyn Compactable, label: &str, target: &str) -> u64 {
    match store.size_on_disk() {
        Ok(bytes) => bytes,
        Err(e) => {
            warn!(label, target, error = %e, "could not read bytes on disk");
            0
        }
    }
}

/// Runs `task` on the calling thread, logging the spec's `compaction_start`, `compaction_done`
/// and `compaction_error` per target; panics inside an engine are caught and reported as
/// failures.
///
/// Each range is cut into slices as `pacing` asks (the engine sizes them), and before every
/// slice the runner waits for its turn (pause, load signal, time windows); every slice logs
/// `compaction_slice`. When `stop` fires, the wait ends at once and the remaining slices are
/// skipped and counted in [`TaskReport::ranges_skipped`].
pub fn run_task(task: &CompactionTask, pacing: &Pacing, stop: &StopSignal) -> TaskReport {
    let started = Instant::now();
    let mut report = TaskReport {
        label: task.label.to_string(),
        duration: Duration::ZERO,
        bytes_before: 0,
        bytes_after: 0,
        ranges_compacted: 0,
        ranges_skipped: 0,
        slices: 0,
        ranges_dropped: 0,
        longest_slice: Duration::ZERO,
        waited: Duration::ZERO,
        forced_slices: 0,
        failures: Vec::new(),
    };
    let label = task.label.as_ref();
    for target in &task.targets {
        let name = target.name.as_ref();
        let capabilities = target.store.capabilities();
        let engine = capabilities.engine;
        let full = [KeyRange::full()];
        // An engine that compacts whole stores would redo the same work once per range.
        let ranges = if capabilities.compaction_scope == CompactionScope::WholeStore {
            &full[..]
        } else {
            target
                .ranges
                .as_deref()
                .unwrap_or(std::slice::from_ref(&task.range))
        };
        let target_started = Instant::now();
        let before = size_or_log(target.store.as_ref(), label, name);
        info!(label, target = name, engine, ranges = ?ranges, bytes_before = before, "compaction_start");
        let mut target_failed = false;
        for range in &target.deleted {
            if stop.is_stopped() {
                break;
            }
            let started = Instant::now();
            match catch_unwind(AssertUnwindSafe(|| target.store.drop_deleted_range(range))) {
                Ok(Ok(())) => {
                    report.ranges_dropped += 1;
                    debug!(label, target = name, engine, range = %range,
                        duration_ms = started.elapsed().as_millis() as u64, "compaction_drop");
                }
                // Dropping is an optimisation: compaction below reclaims the space anyway.
                Ok(Err(e)) => {
                    warn!(label, target = name, engine, range = %range, error = %e, "dropping a deleted range failed");
                }
                Err(payload) => {
                    warn!(label, target = name, engine, range = %range,
                        error = %panic_message(payload.as_ref()), "dropping a deleted range panicked");
                }
            }
        }
        // Planned after the drops, which may have released whole files already.
        let slices = plan_slices(target.store.as_ref(), ranges, pacing, label, name);
        let slice_count = slices.len();
        {
            for (index, slice) in slices.iter().enumerate() {
                if stop.is_stopped() {
                    report.ranges_skipped += 1;
                    continue;
                }
                let turn = if pacing.is_unpaced() {
                    Some(Turn {
                        waited: Duration::ZERO,
                        forced: false,
                    })
                } else {
                    let paused = report.slices > 0
                        && !pacing.pause_between_slices.is_zero()
                        && stop.sleep(pacing.pause_between_slices);
                    if paused { None } else { pacing.wait_turn(stop) }
                };
                let Some(turn) = turn else {
                    report.ranges_skipped += 1;
                    continue;
                };
                if turn.forced {
                    warn!(
                        label,
                        target = name,
                        waited_ms = turn.waited.as_millis() as u64,
                        "compaction slice runs despite load: maximum deferral reached"
                    );
                    report.forced_slices += 1;
                }
                report.waited += turn.waited;
                metrics::histogram!(metric::COMPACTION_WAIT_SECONDS)
                    .record(turn.waited.as_secs_f64());
                let slice_started = Instant::now();
                let outcome = catch_unwind(AssertUnwindSafe(|| target.store.compact_range(slice)));
                let took = slice_started.elapsed();
                report.slices += 1;
                report.longest_slice = report.longest_slice.max(took);
                metrics::histogram!(metric::COMPACTION_SLICE_SECONDS).record(took.as_secs_f64());
                let failure = match outcome {
                    Ok(Ok(())) => {
                        debug!(label, target = name, engine, slice = index + 1, slices = slice_count,
                            range = %slice, duration_ms = took.as_millis() as u64,
                            waited_ms = turn.waited.as_millis() as u64, "compaction_slice");
                        report.ranges_compacted += 1;
                        continue;
                    }
                    Ok(Err(e)) => failure_from_error(name, slice, &e),
                    Err(payload) => TargetFailure::Panicked {
                        target: name.to_owned(),
                        range: slice.to_string(),
                        message: panic_message(payload.as_ref()),
                    },
                };
                error!(label, target = name, engine, range = %slice, error = %failure, "compaction_error");
                report.failures.push(failure);
                target_failed = true;
            }
        }
        let after = size_or_log(target.store.as_ref(), label, name);
        report.bytes_before += before;
        report.bytes_after += after;
        if !target_failed {
            info!(
                label,
                target = name,
                engine,
                duration_ms = target_started.elapsed().as_millis() as u64,
                bytes_before = before,
                bytes_after = after,
                bytes_reclaimed = before.saturating_sub(after),
                "compaction_done"
            );
        }
    }
    report.duration = started.elapsed();
    let result = if !report.succeeded() {
        "failed"
    } else if report.ranges_skipped > 0 {
        "stopped"
    } else {
        "succeeded"
    };
    info!(
        label,
        result,
        slices = report.slices,
        skipped = report.ranges_skipped,
        duration_ms = report.duration.as_millis() as u64,
        waited_ms = report.waited.as_millis() as u64,
        longest_slice_ms = report.longest_slice.as_millis() as u64,
        bytes_reclaimed = report.bytes_reclaimed(),
        "compaction_task_done"
    );
    metrics::counter!(metric::COMPACTIONS_TOTAL, "result" => result).increment(1);
    metrics::histogram!(metric::COMPACTION_SECONDS).record(report.duration.as_secs_f64());
    metrics::counter!(metric::COMPACTION_BYTES_RECLAIMED_TOTAL).increment(report.bytes_reclaimed());
    report
}

/// The engine's compaction calls for `ranges` (slices of about `max_slice_bytes` when paced,
/// as few calls as it can otherwise); the ranges as given when the engine cannot plan.
fn plan_slices(
    store: &dyn Compactable,
    ranges: &[KeyRange],
    pacing: &Pacing,
    label: &str,
    target: &str,
) -> Vec<KeyRange> {
    let target_bytes = match pacing.max_slice_bytes {
        0 => u64::MAX,
        bytes => bytes,
    };
    match catch_unwind(AssertUnwindSafe(|| {
        store.compaction_plan(ranges, target_bytes)
    })) {
        Ok(Ok(slices)) => slices,
        Ok(Err(e)) => {
            warn!(label, target, error = %e, "cannot plan compaction slices; compacting each range whole");
            ranges.to_vec()
        }
        Err(payload) => {
            warn!(label, target, error = %panic_message(payload.as_ref()),
                "slice planning panicked; compacting each range whole");
            ranges.to_vec()
        }
    }
}

fn failure_from_error(target: &str, range: &KeyRange, e: &StorageError) -> TargetFailure {
    TargetFailure::Error {
        target: target.to_owned(),
        range: range.to_string(),
        message: e.to_string(),
    }
}

/// Runs `task` synchronously and turns failures into an error (the spec's manual compaction).
pub fn run_task_now(task: &CompactionTask) -> Result<TaskReport, CompactionFailed> {
    let report = run_task(task, &Pacing::unpaced(), &StopSignal::never());
    if report.succeeded() {
        Ok(report)
    } else {
        Err(CompactionFailed {
            label: report.label,
            failures: report.failures,
        })
    }
}

/// A point-in-time copy of the compactor's counters, for monitoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactorStats {
    /// Tasks accepted by `try_enqueue`.
    pub enqueued: u64,
    /// Tasks refused because the gate was held.
    pub skipped_busy: u64,
    /// Tasks refused because the compactor had shut down.
    pub refused_shut_down: u64,
    /// Tasks that ran with no failure.
    pub succeeded: u64,
    /// Tasks with at least one failed target (panics included).
    pub failed: u64,
    /// Engine panics caught by the worker.
    pub panics_caught: u64,
    /// True while a task is queued or running on the gate.
    pub in_flight: bool,
    /// Duration of the last task that ran, if any.
    pub last_duration: Option<Duration>,
    /// Total bytes on disk returned by all tasks.
    pub bytes_reclaimed: u64,
    /// Slices run over all tasks.
    pub slices: u64,
    /// The longest single slice of any task.
    pub longest_slice: Duration,
    /// Total time tasks waited for their turn (load signal, time windows).
    pub waited: Duration,
    /// Slices run despite load after the maximum deferral.
    pub forced_slices: u64,
}

#[derive(Default)]
struct Counters {
    enqueued: AtomicU64,
    skipped_busy: AtomicU64,
    refused_shut_down: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    panics_caught: AtomicU64,
    last_duration_nanos: AtomicU64,
    has_run: AtomicBool,
    bytes_reclaimed: AtomicU64,
    slices: AtomicU64,
    longest_slice_nanos: AtomicU64,
    waited_nanos: AtomicU64,
    forced_slices: AtomicU64,
}

struct Queued {
    task: CompactionTask,
    claim: FlightClaim,
}

/// Errors from building or stopping a [`Compactor`].
#[derive(Debug, thiserror::Error)]
pub enum CompactorError {
    /// The worker thread could not be started.
    #[error("cannot start the compactor thread: {0}")]
    Spawn(#[source] std::io::Error),
    /// The worker did not stop within the deadline; it goes on until its current range ends.
    #[error(
        "compactor did not stop within {deadline:?}; the running compaction continues in the background"
    )]
    ShutdownTimedOut {
        /// The deadline that passed.
        deadline: Duration,
    },
}

/// The background compactor: one worker thread, one task at a time.
pub struct Compactor {
    flight: SingleFlight,
    pacing: Pacing,
    sender: Sender<Queued>,
    counters: Arc<Counters>,
    worker: Worker,
}

impl fmt::Debug for Compactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compactor")
            .field("stats", &self.stats())
            .finish()
    }
}

impl Compactor {
    /// Starts a compactor with a gate of its own.
    pub fn new() -> Result<Self, CompactorError> {
        Self::with_single_flight(SingleFlight::new())
    }

    /// Starts an unpaced compactor on a shared gate: across every compactor built on clones of
    /// `flight`, at most one task is queued or running.
    pub fn with_single_flight(flight: SingleFlight) -> Result<Self, CompactorError> {
        Self::with_pacing(flight, Pacing::unpaced())
    }

    /// Starts a compactor on a shared gate that runs each task in slices as `pacing` says. The
    /// gate stays held from a task's first slice to its last.
    pub fn with_pacing(flight: SingleFlight, pacing: Pacing) -> Result<Self, CompactorError> {
        let (sender, tasks) = bounded::<Queued>(1);
        let counters = Arc::new(Counters::default());
        let worker = {
            let counters = Arc::clone(&counters);
            let pacing = pacing.clone();
            Worker::spawn("reclaim-compactor", move |stop| {
                worker_loop(&tasks, &counters, stop, &pacing);
            })
            .map_err(CompactorError::Spawn)?
        };
        Ok(Self {
            flight,
            pacing,
            sender,
            counters,
            worker,
        })
    }

    /// Offers a task without ever blocking: it is queued if the gate is free, and dropped with
    /// the reason otherwise.
    pub fn try_enqueue(&self, task: CompactionTask) -> EnqueueOutcome {
        let outcome = self.offer(task);
        if let Some(reason) = outcome.skip_reason() {
            metrics::counter!(metric::COMPACTION_ENQUEUE_SKIPPED_TOTAL, "reason" => reason)
                .increment(1);
        }
        outcome
    }

    fn offer(&self, task: CompactionTask) -> EnqueueOutcome {
        if self.worker.stop_signal().is_stopped() {
            self.counters
                .refused_shut_down
                .fetch_add(1, Ordering::Relaxed);
            return EnqueueOutcome::ShutDown;
        }
        let claim = match self.flight.try_claim() {
            Ok(claim) => claim,
            Err(busy) => {
                self.counters.skipped_busy.fetch_add(1, Ordering::Relaxed);
                return EnqueueOutcome::Busy(busy);
            }
        };
        match self.sender.try_send(Queued { task, claim }) {
            Ok(()) => {
                self.counters.enqueued.fetch_add(1, Ordering::Relaxed);
                EnqueueOutcome::Enqueued
            }
            Err(TrySendError::Full(_)) => {
                self.counters.skipped_busy.fetch_add(1, Ordering::Relaxed);
                EnqueueOutcome::Busy(Busy::QueueFull)
            }
            Err(TrySendError::Disconnected(_)) => {
                self.counters
                    .refused_shut_down
                    .fetch_add(1, Ordering::Relaxed);
                EnqueueOutcome::ShutDown
            }
        }
    }

    /// How this compactor paces its tasks.
    pub fn pacing(&self) -> &Pacing {
        &self.pacing
    }

    /// The gate this compactor uses.
    pub fn single_flight(&self) -> &SingleFlight {
        &self.flight
    }

    /// Waits until no task is queued or running, up to `timeout`; true if idle.
    pub fn wait_idle(&self, timeout: Duration) -> bool {
        self.flight.wait_idle(timeout)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> CompactorStats {
        let c = &self.counters;
        CompactorStats {
            enqueued: c.enqueued.load(Ordering::Relaxed),
            skipped_busy: c.skipped_busy.load(Ordering::Relaxed),
            refused_shut_down: c.refused_shut_down.load(Ordering::Relaxed),
            succeeded: c.succeeded.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            panics_caught: c.panics_caught.load(Ordering::Relaxed),
            in_flight: !self.flight.is_idle(),
            last_duration: c
                .has_run
                .load(Ordering::Acquire)
                .then(|| Duration::from_nanos(c.last_duration_nanos.load(Ordering::Relaxed))),
            bytes_reclaimed: c.bytes_reclaimed.load(Ordering::Relaxed),
            slices: c.slices.load(Ordering::Relaxed),
            longest_slice: Duration::from_nanos(c.longest_slice_nanos.load(Ordering::Relaxed)),
            waited: Duration::from_nanos(c.waited_nanos.load(Ordering::Relaxed)),
            forced_slices: c.forced_slices.load(Ordering::Relaxed),
        }
    }

    /// Stops accepting tasks, drops a queued one, lets a running task finish its current slice
    /// (skipping the rest; a wait or pause between slices ends at once), and waits for the worker up to `deadline`. Calling it again is a
    /// no-op that succeeds.
    pub fn shutdown(&self, deadline: Duration) -> Result<(), CompactorError> {
        match self.worker.stop_and_wait(deadline) {
            Stopped::Joined => {
                info!("compactor stopped");
                Ok(())
            }
            Stopped::AlreadyJoined => Ok(()),
            Stopped::TimedOut => Err(CompactorError::ShutdownTimedOut { deadline }),
        }
    }
}

impl Drop for Compactor {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown(DEFAULT_SHUTDOWN_DEADLINE) {
            warn!(error = %e, "compactor dropped while a compaction was running");
        }
    }
}

/// Nanoseconds of `d`, saturating (for the atomic counters).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn worker_loop(tasks: &Receiver<Queued>, counters: &Counters, stop: &StopSignal, pacing: &Pacing) {
    loop {
        let queued = select! {
            recv(tasks) -> msg => match msg {
                Ok(queued) => queued,
                Err(_) => return,
            },
            recv(stop.requests()) -> _ => return,
        };
        if stop.is_stopped() {
            return;
        }
        queued.claim.mark_running();
        let report = run_task(&queued.task, pacing, stop);
        let panics = report
            .failures
            .iter()
            .filter(|f| matches!(f, TargetFailure::Panicked { .. }))
            .count() as u64;
        counters.panics_caught.fetch_add(panics, Ordering::Relaxed);
        if report.succeeded() {
            counters.succeeded.fetch_add(1, Ordering::Relaxed);
        } else {
            counters.failed.fetch_add(1, Ordering::Relaxed);
        }
        counters
            .bytes_reclaimed
            .fetch_add(report.bytes_reclaimed(), Ordering::Relaxed);
        counters
            .last_duration_nanos
            .store(nanos(report.duration), Ordering::Relaxed);
        counters
            .slices
            .fetch_add(report.slices as u64, Ordering::Relaxed);
        counters
            .longest_slice_nanos
            .fetch_max(nanos(report.longest_slice), Ordering::Relaxed);
        counters
            .waited_nanos
            .fetch_add(nanos(report.waited), Ordering::Relaxed);
        counters
            .forced_slices
            .fetch_add(report.forced_slices as u64, Ordering::Relaxed);
        counters.has_run.store(true, Ordering::Release);
        drop(queued.claim);
    }
}
