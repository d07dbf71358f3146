//! The pruning executor (the spec's `BlockExecutor.pruneBlocks`): prunes every registered
//! [`PruneSegment`] to a retain height, asks the [`CompactionPolicy`] whether what pruning left
//! behind is worth compacting, and compacts it in the background when a compactor is attached.
//!
//! The executor knows no chain: what it prunes is whatever segments are registered with it
//! ([`PruningExecutor::register`]), in registration order.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use tracing::{debug, error, info, warn};

use crate::compaction::compactor::{Compactor, EnqueueOutcome};
use crate::compaction::policy::{
    CompactionPolicy, IntervalPolicy, NeverCompact, PendingCompaction, PolicyDecision,
};
use crate::compaction::runner::{CompactionFailed, TaskReport, run_task_now};
use crate::compaction::task::CompactionTask;
use crate::kv::{Compactable, KvStore, SpaceReport};
use crate::metric;
use crate::pruning::limits::{PruneLimiter, PruneLimits};
use crate::pruning::pending::PendingRecord;
use crate::pruning::segment::{
    PruneRequest, PruneSegment, SegmentBounds, SegmentError, SegmentReport,
};
use crate::range::KeyRange;

/// Heights per atomic pruning batch. CometBFT deletes 1,000 heights per batch; a segment's
/// writers may wait for one batch, so reclaim keeps them short: 10 heights of 64 KiB blocks
/// are about 2 ms of redb's time, where a run of 100 in one batch held the node's commits for
/// about 16 ms. A large backlog is cut into at most [`super::MAX_BATCHES_PER_CALL`] batches
/// (larger ones) instead.
pub const DEFAULT_BATCH_HEIGHTS: u64 = 10;
/// Label of the task enqueued after pruning.
pub const POST_PRUNING_LABEL: &str = "post_pruning_compaction";
/// Label of [`PruningExecutor::compact_all`].
pub const MANUAL_LABEL: &str = "manual_compaction";

/// How the executor prunes. When it compacts is its [`CompactionPolicy`]'s business.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruningOptions {
    /// Heights per atomic batch; each batch writes progress with its deletions. More when a
    /// run would take over [`super::MAX_BATCHES_PER_CALL`] batches.
    pub batch_heights: u64,
    /// Bounds on each [`PruningExecutor::prune`] run.
    pub limits: PruneLimits,
}

impl Default for PruningOptions {
    fn default() -> Self {
        Self {
            batch_heights: DEFAULT_BATCH_HEIGHTS,
            limits: PruneLimits::UNBOUNDED,
        }
    }
}

/// What happened about compaction after a prune.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompactionDecision {
    /// Nothing was pruned, so nothing to compact.
    NothingPruned,
    /// The policy never compacts after pruning.
    Disabled,
    /// The policy said "not yet".
    NotDue {
        /// Heights pruned since the last compaction.
        pruned_since_last: u64,
    },
    /// A task was handed to the background compactor.
    Enqueued,
    /// The compactor was busy or shut down; the pruned range stays pending for the next prune.
    Skipped(EnqueueOutcome),
    /// No compactor is attached: compaction ran on the calling thread.
    RanSynchronously {
        /// Whether every target compacted without error.
        succeeded: bool,
    },
}

/// What one run did to one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentOutcome {
    /// The segment's name.
    pub name: String,
    /// Its bounds before the run.
    pub before: SegmentBounds,
    /// Its bounds after the run.
    pub after: SegmentBounds,
    /// What it reported.
    pub report: SegmentReport,
}

/// What one [`PruningExecutor::prune`] call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneOutcome {
    /// The retain height asked for.
    pub retain_height: u64,
    /// Every registered segment, in registration order.
    pub segments: Vec<SegmentOutcome>,
    /// What was done about compaction.
    pub compaction: CompactionDecision,
}

impl PruneOutcome {
    /// True when a limit stopped the run before every segment reached its targets: call again
    /// to go on.
    pub fn more_to_do(&self) -> bool {
        self.segments.iter().any(|s| !s.report.complete)
    }

    /// Heights that fell below the base in this call (the most of any segment).
    pub fn heights_pruned(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| s.report.heights_pruned)
            .max()
            .unwrap_or(0)
    }

    /// Atomic batches written over all segments: 0 when the call changed nothing.
    pub fn batches(&self) -> u64 {
        self.segments.iter().map(|s| s.report.batches).sum()
    }

    /// The outcome of the segment called `name`.
    pub fn segment(&self, name: &str) -> Option<&SegmentOutcome> {
        self.segments.iter().find(|s| s.name == name)
    }

    /// The report of the segment called `name` (an empty one if no such segment ran).
    pub fn report(&self, name: &str) -> SegmentReport {
        self.segment(name).map(|s| s.report).unwrap_or_default()
    }
}

/// Why pruning refused or failed. Compaction failures never appear here.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// Heights start at 1; CometBFT treats 0 as "do not prune".
    #[error("retain height 0 is not a height: heights start at 1")]
    ZeroRetainHeight,
    /// The chain has not reached the retain height.
    #[error("retain height {retain} is above the chain's height {height}")]
    AboveChainHeight {
        /// The retain height asked for.
        retain: u64,
        /// The highest height of any segment.
        height: u64,
    },
    /// Pruning one segment failed; what it committed before the failure stays valid, and the
    /// segments after it in registration order were not pruned in this call.
    #[error("pruning {segment} failed: {source}")]
    Segment {
        /// The segment's name.
        segment: String,
        /// What it reported.
        #[source]
        source: SegmentError,
    },
}

impl PruneError {
    /// The segment's own error, when this is a segment failure of type `E`.
    pub fn segment_error<E: std::error::Error + 'static>(&self) -> Option<&E> {
        match self {
            Self::Segment { source, .. } => source.downcast_ref::<E>(),
            _ => None,
        }
    }
}

/// Prunes the registered segments together and triggers compaction.
pub struct PruningExecutor {
    segments: Vec<Arc<dyn PruneSegment>>,
    policy: Arc<dyn CompactionPolicy>,
    compactor: Option<Arc<Compactor>>,
    options: PruningOptions,
    pending: Mutex<PendingCompaction>,
    record: Option<PendingRecord>,
}

impl std::fmt::Debug for PruningExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PruningExecutor")
            .field(
                "segments",
                &self.segments.iter().map(|s| s.name()).collect::<Vec<_>>(),
            )
            .field("policy", &self.policy)
            .field("options", &self.options)
            .field("has_compactor", &self.compactor.is_some())
            .finish()
    }
}

impl PruningExecutor {
    /// An executor with no segment yet, never compacting ([`NeverCompact`]) and without a
    /// compactor (compaction, once a policy asks for it, runs synchronously).
    pub fn new(options: PruningOptions) -> Self {
        Self {
            segments: Vec::new(),
            policy: Arc::new(NeverCompact),
            compactor: None,
            options,
            pending: Mutex::new(PendingCompaction::default()),
            record: None,
        }
    }

    /// Registers `segment`: every run prunes it after the segments registered before it.
    pub fn register(mut self, segment: Arc<dyn PruneSegment>) -> Self {
        self.segments.push(segment);
        self
    }

    /// Decides when pruning is followed by a compaction.
    pub fn with_policy(mut self, policy: Arc<dyn CompactionPolicy>) -> Self {
        self.policy = policy;
        self
    }

    /// CometBFT's switch: `compact = false` never compacts, `true` compacts every
    /// `compaction_interval` pruned heights ([`IntervalPolicy`]).
    pub fn with_interval_policy(self, compact: bool, compaction_interval: u64) -> Self {
        if compact {
            self.with_policy(Arc::new(IntervalPolicy::new(compaction_interval)))
        } else {
            self.with_policy(Arc::new(NeverCompact))
        }
    }

    /// Keeps the pending compaction in `record` and starts from what it holds, so a restart
    /// does not postpone the next compaction.
    pub fn with_pending_record(mut self, record: PendingRecord) -> Self {
        *self.pending.get_mut() = record.load();
        self.record = Some(record);
        self
    }

    /// Attaches the background compactor (the spec's `InitCompactor`).
    pub fn with_compactor(mut self, compactor: Arc<Compactor>) -> Self {
        self.compactor = Some(compactor);
        self
    }

    /// The registered segments, in order.
    pub fn segments(&self) -> &[Arc<dyn PruneSegment>] {
        &self.segments
    }

    /// The policy in force.
    pub fn policy(&self) -> &Arc<dyn CompactionPolicy> {
        &self.policy
    }

    /// The options in force.
    pub fn options(&self) -> PruningOptions {
        self.options
    }

    /// What is pending for the next compaction.
    pub fn pending(&self) -> PendingCompaction {
        *self.pending.lock()
    }

    /// The highest height of any segment (0 when every segment is empty).
    pub fn chain_height(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| s.bounds().height)
            .max()
            .unwrap_or(0)
    }

    /// True when no segment holds a height.
    pub fn is_empty(&self) -> bool {
        self.segments.iter().all(|s| s.bounds().is_empty())
    }

    /// Prunes every segment below `retain_height`, then compacts if the policy says so.
    ///
    /// A retain height above the chain's height is an error and changes nothing; one at or
    /// below the bases only finishes work an interrupted call left (it is otherwise a no-op).
    /// Segments are pruned in registration order; each persists progress with its deletions,
    /// so a crash anywhere loses nothing at or above the retain height and the next call
    /// finishes. Compaction failures are logged and never fail the prune.
    pub fn prune(&self, retain_height: u64) -> Result<PruneOutcome, PruneError> {
        self.prune_with(retain_height, self.options.limits)
    }

    /// [`PruningExecutor::prune`] with `limits` instead of the options' limits. A run stopped
    /// by a limit persists its progress and says [`PruneOutcome::more_to_do`].
    pub fn prune_with(
        &self,
        retain_height: u64,
        limits: PruneLimits,
    ) -> Result<PruneOutcome, PruneError> {
        let started = Instant::now();
        let result = self.prune_limited(retain_height, limits);
        let label = match &result {
            Ok(outcome) if outcome.more_to_do() => "more_to_do",
            Ok(_) => "complete",
            Err(PruneError::ZeroRetainHeight | PruneError::AboveChainHeight { .. }) => "refused",
            Err(_) => "error",
        };
        metrics::counter!(metric::PRUNE_RUNS_TOTAL, "result" => label).increment(1);
        metrics::histogram!(metric::PRUNE_SECONDS).record(started.elapsed().as_secs_f64());
        if let Ok(outcome) = &result {
            metrics::counter!(metric::PRUNED_HEIGHTS_TOTAL).increment(outcome.heights_pruned());
            for segment in &outcome.segments {
                metrics::gauge!(metric::SEGMENT_BASE, "segment" => segment.name.clone())
                    .set(segment.after.base as f64);
            }
        }
        result
    }

    fn prune_limited(
        &self,
        retain_height: u64,
        limits: PruneLimits,
    ) -> Result<PruneOutcome, PruneError> {
        if retain_height == 0 {
            return Err(PruneError::ZeroRetainHeight);
        }
        let mut pending = self.pending.lock();
        let before: Vec<SegmentBounds> = self.segments.iter().map(|s| s.bounds()).collect();
        let chain_height = before.iter().map(|b| b.height).max().unwrap_or(0);
        if retain_height > chain_height {
            return Err(PruneError::AboveChainHeight {
                retain: retain_height,
                height: chain_height,
            });
        }
        let request = PruneRequest {
            retain_height,
            chain_height,
            batch_heights: self.options.batch_heights.max(1),
        };
        // Each segment gets the height budget; the time budget is shared.
        let deadline = limits.max_duration.map(|d| Instant::now() + d);
        let mut segments = Vec::with_capacity(self.segments.len());
        for (segment, before) in self.segments.iter().zip(&before) {
            let mut limiter = PruneLimiter::with_deadline(limits.max_heights, deadline);
            let report = if before.is_empty() {
                SegmentReport::nothing_to_do()
            } else {
                segment
                    .prune(&request, &mut limiter)
                    .map_err(|source| PruneError::Segment {
                        segment: segment.name().to_owned(),
                        source,
                    })?
            };
            segments.push(SegmentOutcome {
                name: segment.name().to_owned(),
                before: *before,
                after: segment.bounds(),
                report,
            });
        }
        let mut outcome = PruneOutcome {
            retain_height,
            segments,
            compaction: CompactionDecision::NothingPruned,
        };
        if outcome.batches() == 0 {
            return Ok(outcome);
        }
        info!(
            retain_height,
            heights_pruned = outcome.heights_pruned(),
            batches = outcome.batches(),
            more_to_do = outcome.more_to_do(),
            segments = %summarize(&outcome.segments),
            "pruned segments"
        );
        let lowest_touched = before
            .iter()
            .flat_map(|b| [b.lowest, b.base])
            .filter(|&h| h > 0)
            .min()
            .unwrap_or(retain_height);
        pending.record_run(lowest_touched, retain_height, outcome.heights_pruned());
        self.release_pruned_files(retain_height);
        outcome.compaction = self.compact_if_due(&mut pending);
        Ok(outcome)
    }

    /// On engines that drop deleted ranges cheaply
    /// ([`crate::kv::Compactable::drops_deleted_ranges_cheaply`]: RocksDB), releases now the
    /// files holding only heights below the segments' bases, without waiting for a compaction:
    /// every range deleted for good from the first height up (a file is dropped only once it
    /// lies wholly inside one, so the range must start at the bottom). A failure is logged;
    /// the next compaction reclaims the space anyway.
    fn release_pruned_files(&self, retain_height: u64) {
        for target in group_by_engine(&self.segments) {
            if !target.store.drops_deleted_ranges_cheaply() {
                continue;
            }
            let started = Instant::now();
            let mut dropped = 0usize;
            for segment in &target.segments {
                for range in segment.deleted_ranges(0, retain_height) {
                    match target.store.drop_deleted_range(&range) {
                        Ok(()) => dropped += 1,
                        Err(e) => {
                            warn!(target = %target.name(), range = %range, error = %e,
                                "releasing the files of pruned heights failed");
                        }
                    }
                }
            }
            debug!(
                target = %target.name(),
                ranges = dropped,
                duration_ms = started.elapsed().as_millis() as u64,
                "released the files of pruned heights"
            );
        }
    }

    /// Asks the policy, then persists, builds, dispatches and logs.
    fn compact_if_due(&self, pending: &mut PendingCompaction) -> CompactionDecision {
        let wants_space = self.policy.wants_space(pending);
        let space = if wants_space {
            self.space()
        } else {
            SpaceReport::default()
        };
        let (from, to) = match self.policy.decide(pending, &space) {
            PolicyDecision::Off => return CompactionDecision::Disabled,
            PolicyDecision::Wait => {
                if wants_space {
                    // Found wanting: the policy counts its next look from here.
                    pending.space_checked_at = pending.pruned_heights;
                }
                self.persist(pending);
                return CompactionDecision::NotDue {
                    pruned_since_last: pending.pruned_heights,
                };
            }
            PolicyDecision::Compact { from, to } => (from, to),
        };
        if wants_space {
            // What the policy saw: the reason for this compaction, for the operator.
            debug!(
                policy = self.policy.name(),
                pruned_since_last = pending.pruned_heights,
                bytes_on_disk = space.on_disk,
                reclaimable = ?space.reclaimable,
                "compaction due by the space policy"
            );
        }
        let task = self.task_for_heights(POST_PRUNING_LABEL, from, to);
        // Persisted before the compaction starts: a write right after it would make some
        // engines (redb) grow their freshly compacted file again.
        self.persist(&PendingCompaction::default());
        let decision = self.dispatch(task, from, to);
        if matches!(decision, CompactionDecision::Skipped(_)) {
            // A skipped compaction keeps its range pending so that the next prune retries it.
            self.persist(pending);
        } else {
            *pending = PendingCompaction::default();
        }
        decision
    }

    /// The space of every engine the segments use (each counted once): bytes summed, and the
    /// reclaimable and live estimates each summed when every engine gave one. An engine that
    /// fails to report counts as unknown (logged).
    pub fn space(&self) -> SpaceReport {
        let mut total = SpaceReport {
            on_disk: 0,
            reclaimable: Some(0),
            live_bytes: Some(0),
        };
        for target in group_by_engine(&self.segments) {
            let started = Instant::now();
            match target.store.space_report() {
                Ok(report) => {
                    debug!(
                        target = %target.name(),
                        bytes_on_disk = report.on_disk,
                        reclaimable = ?report.reclaimable,
                        live_bytes = ?report.live_bytes,
                        duration_ms = started.elapsed().as_millis() as u64,
                        "read the engine's space"
                    );
                    total.on_disk = total.on_disk.saturating_add(report.on_disk);
                    // Known only when known for every engine.
                    let sum =
                        |a: Option<u64>, b: Option<u64>| a.zip(b).map(|(a, b)| a.saturating_add(b));
                    total.reclaimable = sum(total.reclaimable, report.reclaimable);
                    total.live_bytes = sum(total.live_bytes, report.live_bytes);
                }
                Err(e) => {
                    warn!(target = %target.name(), error = %e, "cannot read the engine's space");
                    total.reclaimable = None;
                    total.live_bytes = None;
                }
            }
        }
        total
    }

    fn persist(&self, pending: &PendingCompaction) {
        if let Some(record) = &self.record {
            record.store(pending);
        }
    }

    /// Hands `task` to the compactor, or runs it now without one, with the spec's log lines.
    fn dispatch(&self, task: CompactionTask, from: u64, to: u64) -> CompactionDecision {
        let Some(compactor) = &self.compactor else {
            error!("no async compactor available, using synchronous compaction");
            return match run_task_now(&task) {
                Ok(_) => {
                    info!("successfully compacted databases after pruning");
                    CompactionDecision::RanSynchronously { succeeded: true }
                }
                Err(e) => {
                    error!(err = %e, "failed to compact databases after pruning");
                    CompactionDecision::RanSynchronously { succeeded: false }
                }
            };
        };
        let outcome = compactor.try_enqueue(task);
        match outcome {
            EnqueueOutcome::Enqueued => {
                info!(
                    label = POST_PRUNING_LABEL,
                    policy = self.policy.name(),
                    from,
                    to,
                    "enqueued async database compaction after pruning"
                );
                CompactionDecision::Enqueued
            }
            EnqueueOutcome::Busy(_) => {
                debug!(
                    reason = outcome.skip_reason().unwrap_or_default(),
                    "skipped async compaction - already in progress or queue full"
                );
                CompactionDecision::Skipped(outcome)
            }
            EnqueueOutcome::ShutDown => {
                warn!("skipped async compaction - compactor has shut down");
                CompactionDecision::Skipped(outcome)
            }
        }
    }

    /// A task compacting the key ranges of heights `[from, to)` of every segment, one target
    /// per engine (segments sharing an engine are one target), declaring the ranges pruning
    /// deleted for good so that engines that can drop them cheaply do so first.
    pub fn task_for_heights(&self, label: &'static str, from: u64, to: u64) -> CompactionTask {
        self.task_from(label, |segment| {
            (
                segment.compaction_ranges(from, to),
                segment.deleted_ranges(from, to),
            )
        })
    }

    /// Compacts every range of every segment, now, on the calling thread (the spec's
    /// `compactStateAndBlockDB`).
    pub fn compact_all(&self) -> Result<TaskReport, CompactionFailed> {
        run_task_now(&self.task_from(MANUAL_LABEL, |segment| (segment.all_ranges(), Vec::new())))
    }

    fn task_from(
        &self,
        label: &'static str,
        ranges_of: impl Fn(&dyn PruneSegment) -> (Vec<KeyRange>, Vec<KeyRange>),
    ) -> CompactionTask {
        let mut task = CompactionTask::new(label);
        for target in group_by_engine(&self.segments) {
            let mut ranges = Vec::new();
            let mut deleted = Vec::new();
            for segment in &target.segments {
                let (r, d) = ranges_of(segment.as_ref());
                ranges.extend(r);
                deleted.extend(d);
            }
            task = task
                .with_target_ranges(target.name(), target.store as Arc<dyn Compactable>, ranges)
                .with_deleted_ranges(deleted);
        }
        task
    }
}

/// Segments sharing one engine (the same `Arc`), compacted as one target named after them.
struct EngineTarget {
    store: Arc<dyn KvStore>,
    segments: Vec<Arc<dyn PruneSegment>>,
}

impl EngineTarget {
    /// The segments' names joined by `+` (e.g. `block_store+state_store`).
    fn name(&self) -> String {
        self.segments
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join("+")
    }
}

fn group_by_engine(segments: &[Arc<dyn PruneSegment>]) -> Vec<EngineTarget> {
    let mut targets: Vec<EngineTarget> = Vec::new();
    for segment in segments {
        let store = segment.store();
        match targets
            .iter_mut()
            .find(|t| std::ptr::addr_eq(Arc::as_ptr(&t.store), Arc::as_ptr(store)))
        {
            Some(target) => target.segments.push(Arc::clone(segment)),
            None => targets.push(EngineTarget {
                store: Arc::clone(store),
                segments: vec![Arc::clone(segment)],
            }),
        }
    }
    targets
}

/// `name: base a→b (+n heights, +m trailing)` per segment that changed, for the log line.
fn summarize(segments: &[SegmentOutcome]) -> String {
    segments
        .iter()
        .filter(|s| s.report.batches > 0)
        .map(|s| {
            format!(
                "{}: base {}→{} ({} heights, {} trailing)",
                s.name,
                s.before.base,
                s.after.base,
                s.report.heights_pruned,
                s.report.trailing_heights_pruned
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}
