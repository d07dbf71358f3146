//! The single-flight background compactor (the spec's `NewCompactor` / `TryEnqueue`).
//!
//! One named worker thread takes tasks from a bounded crossbeam channel. A [`SingleFlight`] gate,
//! claimed by compare-and-swap in [`Compactor::try_enqueue`] and released when the task has run
//! (or is dropped unrun), guarantees that at most one task is queued or running across every
//! compactor sharing the gate. `try_enqueue` never blocks: no lock is taken on its path.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded, select};
use tracing::{info, warn};

use crate::compaction::gate::{Busy, FlightClaim, SingleFlight};
use crate::compaction::pacing::Pacing;
use crate::compaction::runner::{TargetFailure, run_task};
use crate::compaction::task::CompactionTask;
use crate::metric;
use crate::worker::{StopSignal, Stopped, Worker};

/// How long [`Compactor`]'s `Drop` waits for the worker, as the spec's compactor does.
pub const DEFAULT_SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

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
                let skipped = self.counters.skipped_busy.fetch_add(1, Ordering::Relaxed) + 1;
                // A paced compactor whose tasks outlast the gap between them falls behind for
                // good: the disk grows while it works. Say so, with what to change.
                if !self.pacing.is_unpaced() && skipped.is_power_of_two() {
                    tracing::warn!(
                        skipped,
                        slice_bytes = self.pacing.effective_slice_bytes(),
                        pause_ms = self.pacing.pause_between_slices.as_millis() as u64,
                        io_bytes_per_sec = self.pacing.io_bytes_per_sec,
                        "paced compaction cannot keep up: a task was still running when the next one was due; raise io_bytes_per_sec or slice_bytes, or shorten the pause"
                    );
                }
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
