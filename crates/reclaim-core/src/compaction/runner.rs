//! Runs a compaction task on the calling thread: drops, plans, slices, paces, catches engine
//! panics, and writes the spec's log lines (`compaction_start`, `compaction_done`,
//! `compaction_error`) and the metrics.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, error, info, warn};

use crate::compaction::pacing::{Pacing, StepPacer, Turn};
use crate::compaction::task::CompactionTask;
use crate::error::StorageError;
use crate::kv::{Compactable, CompactionScope};
use crate::metric;
use crate::range::KeyRange;
use crate::worker::StopSignal;

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
        let mut last_slice: Option<(Instant, u64)> = None;
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
                    // The I/O cap: the previous slice's bytes spread over at least bytes / cap.
                    let hold = last_slice.map_or(Duration::ZERO, |(started, bytes)| {
                        pacing.io_hold(bytes, started.elapsed())
                    });
                    let held = !hold.is_zero() && stop.sleep(hold);
                    let paused = held
                        || (report.slices > 0
                            && !pacing.pause_between_slices.is_zero()
                            && stop.sleep(pacing.pause_between_slices));
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
                let pacer = StepPacer::new(pacing, stop);
                let outcome = catch_unwind(AssertUnwindSafe(|| {
                    target.store.compact_range_paced(slice, &pacer)
                }));
                report.waited += pacer.waited();
                // The next slice is held for what this one did where the engine said (a slice
                // of a small key family is not worth a full slice of the cap), else for a
                // full slice.
                last_slice = Some(
                    pacer
                        .unheld_step()
                        .unwrap_or((slice_started, pacing.effective_slice_bytes())),
                );
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
                    // Shutdown stopped the call; the engine left the store as it was.
                    Ok(Err(StorageError::Interrupted { .. })) => {
                        info!(label, target = name, engine, range = %slice, "compaction slice interrupted by shutdown");
                        report.ranges_skipped += 1;
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
    let target_bytes = match pacing.effective_slice_bytes() {
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

/// Compacts `ranges` of one store now, on the calling thread, through [`run_task_now`]: the
/// one-target task behind a store's own manual compaction (the spec's `CompactBlockStore` and
/// `CompactStateDB`).
pub fn compact_ranges_now(
    label: &'static str,
    target: &'static str,
    store: Arc<dyn Compactable>,
    ranges: Vec<KeyRange>,
) -> Result<TaskReport, CompactionFailed> {
    let task = CompactionTask::new(label).with_target_ranges(target, store, ranges);
    run_task_now(&task)
}
