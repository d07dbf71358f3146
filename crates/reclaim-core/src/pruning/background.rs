//! The background pruning loop (CometBFT's pruner service, `[storage.pruning] interval`).
//!
//! One named thread prunes to the effective retain height every `interval`, or at once when
//! woken. Wake-ups go through a one-slot channel, so any number of wake-ups while a run is
//! pending merge into one run and [`BackgroundPruner::wake`] never blocks. The retain height
//! comes from a [`RetainHeightSource`] (a chain's persisted retain heights, a fixed value, ...).
//! A run bounded by [`crate::pruning::PruneLimits`] that stops with more to do is followed at once by the next
//! run (the thread yields between runs), so a backlog drains in bounded steps. Errors are
//! logged and counted, never fatal: the next tick tries again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use parking_lot::Mutex;
use tracing::{debug, info, warn};

use crate::metric;
use crate::pruning::executor::PruningExecutor;
use crate::worker::{StopSignal, Stopped, Worker};

/// Where the background pruner reads the height to prune to before every run.
///
/// Guarantee asked of an implementation: `retain_height` is cheap and never blocks; 0 means
/// "prune nothing".
pub trait RetainHeightSource: Send + Sync {
    /// The height below which pruning may delete now (0: nothing).
    fn retain_height(&self) -> u64;
}

impl RetainHeightSource for std::sync::atomic::AtomicU64 {
    fn retain_height(&self) -> u64 {
        self.load(Ordering::Acquire)
    }
}

/// Counters of a [`BackgroundPruner`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrunerStats {
    /// Pruning runs made.
    pub runs: u64,
    /// Runs that stopped at a limit with more to do.
    pub bounded_runs: u64,
    /// Heights whose blocks fell below the base.
    pub heights_pruned: u64,
    /// Runs that failed.
    pub errors: u64,
    /// Wake-ups merged into one already pending.
    pub merged_wakeups: u64,
    /// The last error, if any.
    pub last_error: Option<String>,
}

#[derive(Default)]
struct Counters {
    runs: AtomicU64,
    bounded_runs: AtomicU64,
    heights_pruned: AtomicU64,
    errors: AtomicU64,
    merged_wakeups: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// Errors from starting or stopping a [`BackgroundPruner`].
#[derive(Debug, thiserror::Error)]
pub enum PrunerError {
    /// The thread could not be started.
    #[error("cannot start the pruner thread: {0}")]
    Spawn(#[source] std::io::Error),
    /// The thread did not stop within the deadline (it stops after its current run; bound
    /// runs with `PruneLimits` to bound this wait).
    #[error("pruner did not stop within {deadline:?}")]
    ShutdownTimedOut {
        /// The deadline that passed.
        deadline: Duration,
    },
}

/// The background pruning loop.
pub struct BackgroundPruner {
    wake: Sender<()>,
    worker: Worker,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for BackgroundPruner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackgroundPruner")
            .field("stats", &self.stats())
            .finish()
    }
}

impl BackgroundPruner {
    /// Starts the loop: every `interval` (and on [`BackgroundPruner::wake`]) it prunes with
    /// `executor` to `retain`'s height, using the executor's limits per run.
    pub fn start<R: RetainHeightSource + 'static>(
        executor: Arc<PruningExecutor>,
        retain: Arc<R>,
        interval: Duration,
    ) -> Result<Self, PrunerError> {
        let (wake, woken) = bounded::<()>(1);
        let counters = Arc::new(Counters::default());
        let worker = {
            let counters = Arc::clone(&counters);
            Worker::spawn("reclaim-pruner", move |stop| {
                let run = Loop {
                    executor: &executor,
                    retain: retain.as_ref(),
                    stop,
                    counters: &counters,
                };
                run.serve(&woken, interval);
            })
            .map_err(PrunerError::Spawn)?
        };
        Ok(Self {
            wake,
            worker,
            counters,
        })
    }

    /// Asks for a run now, without blocking. Returns false when a wake-up was already pending
    /// (this one merged into it) or the pruner has stopped.
    pub fn wake(&self) -> bool {
        match self.wake.try_send(()) {
            Ok(()) => true,
            Err(TrySendError::Full(())) => {
                self.counters.merged_wakeups.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(metric::PRUNE_WAKEUPS_MERGED_TOTAL).increment(1);
                false
            }
            Err(TrySendError::Disconnected(())) => false,
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> PrunerStats {
        let c = &self.counters;
        PrunerStats {
            runs: c.runs.load(Ordering::Relaxed),
            bounded_runs: c.bounded_runs.load(Ordering::Relaxed),
            heights_pruned: c.heights_pruned.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            merged_wakeups: c.merged_wakeups.load(Ordering::Relaxed),
            last_error: c.last_error.lock().clone(),
        }
    }

    /// Stops the loop after its current run and waits up to `deadline`. Calling it again is
    /// a no-op that succeeds.
    pub fn shutdown(&self, deadline: Duration) -> Result<(), PrunerError> {
        match self.worker.stop_and_wait(deadline) {
            Stopped::Joined => {
                info!("pruner stopped");
                Ok(())
            }
            Stopped::AlreadyJoined => Ok(()),
            Stopped::TimedOut => Err(PrunerError::ShutdownTimedOut { deadline }),
        }
    }
}

impl Drop for BackgroundPruner {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown(Duration::from_secs(30)) {
            warn!(error = %e, "pruner dropped while a run was going on");
        }
    }
}

struct Loop<'a> {
    executor: &'a PruningExecutor,
    retain: &'a dyn RetainHeightSource,
    stop: &'a StopSignal,
    counters: &'a Counters,
}

impl Loop<'_> {
    fn serve(&self, woken: &Receiver<()>, interval: Duration) {
        let ticks = crossbeam_channel::tick(interval);
        loop {
            crossbeam_channel::select! {
                recv(woken) -> _ => {},
                recv(ticks) -> _ => {},
                recv(self.stop.requests()) -> _ => return,
            }
            if self.stopped() {
                return;
            }
            self.drain();
        }
    }

    fn stopped(&self) -> bool {
        self.stop.is_stopped()
    }

    /// Runs until the effective retain height is reached, a run fails, or a stop is asked.
    fn drain(&self) {
        loop {
            let retain = self.retain.retain_height();
            if retain == 0 || self.executor.is_empty() {
                debug!(retain, "nothing to prune");
                return;
            }
            self.counters.runs.fetch_add(1, Ordering::Relaxed);
            match self.executor.prune(retain) {
                Ok(outcome) => {
                    self.counters
                        .heights_pruned
                        .fetch_add(outcome.heights_pruned(), Ordering::Relaxed);
                    let progressed = outcome.batches() > 0;
                    // Without progress (a height budget of 0) the next run would do the same:
                    // wait for the next tick instead of spinning.
                    if !outcome.more_to_do() || !progressed || self.stopped() {
                        return;
                    }
                    self.counters.bounded_runs.fetch_add(1, Ordering::Relaxed);
                    // Let the node's own threads in between two bounded runs.
                    std::thread::yield_now();
                }
                Err(e) => {
                    warn!(retain_height = retain, error = %e, "background pruning failed");
                    self.counters.errors.fetch_add(1, Ordering::Relaxed);
                    *self.counters.last_error.lock() = Some(e.to_string());
                    return;
                }
            }
        }
    }
}
