//! The pruning executor (the spec's `BlockExecutor.pruneBlocks`): prunes blocks, then state,
//! then decides whether to compact, and compacts in the background when a compactor is
//! attached.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tracing::{debug, error, info, warn};

use crate::block_store::{BlockPruneReport, BlockStore};
use crate::compactor::{
    Busy, CompactionFailed, CompactionTask, Compactor, EnqueueOutcome, TaskReport, run_task_now,
};
use crate::config::{DEFAULT_COMPACTION_INTERVAL, StorageConfig};
use crate::error::StoreError;
use crate::kv::{Compactable, KvStore, WriteBatch, WriteOptions};
use crate::metric;
use crate::range::KeyRange;
use crate::state_store::{StatePruneReport, StateStore};

/// CometBFT's default evidence max age in blocks.
pub const DEFAULT_EVIDENCE_MAX_AGE_HEIGHTS: u64 = 100_000;
/// Heights per atomic pruning batch (CometBFT deletes in batches of 1000 too).
pub const DEFAULT_BATCH_HEIGHTS: u64 = 1000;
/// Label of the task enqueued after pruning.
pub const POST_PRUNING_LABEL: &str = "post_pruning_compaction";
/// Label of [`PruningExecutor::compact_state_and_block_stores`].
pub const MANUAL_LABEL: &str = "manual_compaction";

/// Bounds on one pruning run, so that a large backlog is worked off in bounded steps instead of
/// one long run (Reth and Aptos bound their pruners the same way). The default is unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PruneLimits {
    /// Heights each store may prune per run (blocks and evidence window count, as do state and
    /// validator heights). One height is its block meta, parts, commits, hash entries and state
    /// records: about `parts + 8` entries. `None`: no bound.
    pub max_heights: Option<u64>,
    /// Wall time after which a run stops at the next batch boundary (each store still prunes
    /// at least one batch per run). `None`: no bound.
    pub max_duration: Option<Duration>,
}

impl PruneLimits {
    /// No bound: a run goes all the way to the retain height.
    pub const UNBOUNDED: Self = Self {
        max_heights: None,
        max_duration: None,
    };

    /// True when neither bound is set.
    pub fn is_unbounded(&self) -> bool {
        self.max_heights.is_none() && self.max_duration.is_none()
    }
}

/// Spends a [`PruneLimits`] budget batch by batch during one store's pruning. The first batch
/// is always allowed (unless the height budget is 0), whatever the time bound, so that every
/// run makes progress.
#[derive(Debug, Clone)]
pub struct PruneLimiter {
    heights_left: u64,
    deadline: Option<Instant>,
    spent_any: bool,
}

impl PruneLimiter {
    /// A limiter that never stops a run.
    pub fn unlimited() -> Self {
        Self {
            heights_left: u64::MAX,
            deadline: None,
            spent_any: false,
        }
    }

    /// A limiter for `limits`, whose time bound starts now.
    pub fn new(limits: PruneLimits) -> Self {
        Self::with_deadline(
            limits.max_heights,
            limits.max_duration.map(|d| Instant::now() + d),
        )
    }

    fn with_deadline(max_heights: Option<u64>, deadline: Option<Instant>) -> Self {
        Self {
            heights_left: max_heights.unwrap_or(u64::MAX),
            deadline,
            spent_any: false,
        }
    }

    /// The end (exclusive) of the next batch from `from` towards `target`, at most
    /// `batch_heights` long and within the budget; `None` when the budget is spent.
    pub fn batch_end(&self, from: u64, target: u64, batch_heights: u64) -> Option<u64> {
        let out_of_time = self.spent_any && self.deadline.is_some_and(|d| Instant::now() >= d);
        if self.heights_left == 0 || out_of_time {
            return None;
        }
        let step = batch_heights.max(1).min(self.heights_left);
        Some(target.min(from.saturating_add(step)))
    }

    /// Records `heights` pruned.
    pub fn spend(&mut self, heights: u64) {
        self.heights_left = self.heights_left.saturating_sub(heights);
        self.spent_any = true;
    }
}

/// How the executor prunes and when it compacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruningOptions {
    /// Heights within this many of the chain's height keep block meta, commit and validator set
    /// (the evidence window).
    pub evidence_max_age_heights: u64,
    /// Heights per atomic batch; each batch persists progress with its deletions.
    pub batch_heights: u64,
    /// Compact after pruning at all (CometBFT's `compact`).
    pub compact: bool,
    /// Pruned heights between compactions (CometBFT's `compaction_interval`, at least 1).
    pub compaction_interval: u64,
    /// Bounds on each [`PruningExecutor::prune_blocks`] run.
    pub limits: PruneLimits,
}

impl Default for PruningOptions {
    fn default() -> Self {
        Self {
            evidence_max_age_heights: DEFAULT_EVIDENCE_MAX_AGE_HEIGHTS,
            batch_heights: DEFAULT_BATCH_HEIGHTS,
            compact: false,
            compaction_interval: DEFAULT_COMPACTION_INTERVAL,
            limits: PruneLimits::UNBOUNDED,
        }
    }
}

impl From<&StorageConfig> for PruningOptions {
    fn from(config: &StorageConfig) -> Self {
        Self {
            compact: config.compact,
            compaction_interval: config.compaction_interval,
            limits: PruneLimits {
                max_heights: config.pruning.max_heights_per_run,
                max_duration: config.pruning.max_run_time,
            },
            ..Self::default()
        }
    }
}

/// What happened about compaction after a prune.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompactionDecision {
    /// Nothing was pruned, so nothing to compact.
    NothingPruned,
    /// Compaction is off in the options.
    Disabled,
    /// Fewer heights than `compaction_interval` were pruned since the last compaction.
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

/// What one [`PruningExecutor::prune_blocks`] call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneOutcome {
    /// The retain height asked for.
    pub retain_height: u64,
    /// Block store base before the call.
    pub base_before: u64,
    /// Block store base after the call.
    pub base_after: u64,
    /// Block pruning figures.
    pub blocks: BlockPruneReport,
    /// State pruning figures.
    pub states: StatePruneReport,
    /// What was done about compaction.
    pub compaction: CompactionDecision,
}

impl PruneOutcome {
    /// True when a limit stopped the run before it reached the retain height (or before the
    /// evidence window or the state caught up): call again to go on.
    pub fn more_to_do(&self) -> bool {
        !(self.blocks.complete && self.states.complete)
    }

    /// Heights whose blocks fell below the base in this call.
    pub fn heights_pruned(&self) -> u64 {
        self.blocks.heights_pruned
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
        /// The block store's height.
        height: u64,
    },
    /// Pruning the block store failed; what was committed before the failure stays valid.
    #[error("pruning blocks failed: {0}")]
    Blocks(#[source] StoreError),
    /// Pruning the state store failed; what was committed before the failure stays valid.
    #[error("pruning state failed: {0}")]
    States(#[source] StoreError),
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct PendingCompaction {
    pruned_heights: u64,
    from: Option<u64>,
    to: u64,
}

/// Where the pending compaction is kept (in the block store's engine), so that a restart does
/// not forget the heights pruned since the last compaction. It is a scheduling hint, not chain
/// data: written buffered after each prune, ignored when unreadable.
pub const PENDING_COMPACTION_KEY: &[u8] = b"pendingCompaction";
const PENDING_KEY: &[u8] = PENDING_COMPACTION_KEY;

impl PendingCompaction {
    fn encode(&self) -> Vec<u8> {
        crate::codec::encode_u64s(&[self.pruned_heights, self.from.unwrap_or(0), self.to])
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let [pruned_heights, from, to] = crate::codec::decode_u64s::<3>(bytes)?;
        Some(Self {
            pruned_heights,
            from: (from != 0).then_some(from),
            to,
        })
    }

    /// The pending compaction persisted in `db`; none when missing or unreadable (a lost hint
    /// only delays the next compaction).
    fn load(db: &dyn KvStore) -> Self {
        match db.get(PENDING_KEY) {
            Ok(Some(bytes)) => Self::decode(&bytes).unwrap_or_else(|| {
                warn!("ignoring a malformed pending-compaction record");
                Self::default()
            }),
            Ok(None) => Self::default(),
            Err(e) => {
                warn!(error = %e, "cannot read the pending-compaction record; starting from none");
                Self::default()
            }
        }
    }

    /// Persists this state (buffered: it is a scheduling hint, not data). The executor writes
    /// it before starting a compaction, never right after one it started: a write just after a
    /// compaction makes redb grow its freshly compacted file again.
    fn store(&self, db: &dyn KvStore) {
        let mut batch = WriteBatch::new();
        batch.put(PENDING_KEY, self.encode());
        if let Err(e) = db.write(batch, WriteOptions::BUFFERED) {
            warn!(error = %e, "cannot persist the pending compaction");
        }
    }
}

/// Prunes the block store and the state store together and triggers compaction.
pub struct PruningExecutor {
    blocks: Arc<BlockStore>,
    states: Arc<StateStore>,
    compactor: Option<Arc<Compactor>>,
    options: PruningOptions,
    pending: Mutex<PendingCompaction>,
}

impl std::fmt::Debug for PruningExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PruningExecutor")
            .field("options", &self.options)
            .field("has_compactor", &self.compactor.is_some())
            .finish()
    }
}

impl PruningExecutor {
    /// An executor without a compactor: compaction, when due, runs synchronously. The heights
    /// pruned since the last compaction are read back from the block store, so a restart does
    /// not postpone the next compaction by a whole `compaction_interval`.
    pub fn new(blocks: Arc<BlockStore>, states: Arc<StateStore>, options: PruningOptions) -> Self {
        let pending = PendingCompaction::load(blocks.db().as_ref());
        Self {
            blocks,
            states,
            compactor: None,
            options,
            pending: Mutex::new(pending),
        }
    }

    /// Attaches the background compactor (the spec's `InitCompactor`).
    pub fn with_compactor(mut self, compactor: Arc<Compactor>) -> Self {
        self.compactor = Some(compactor);
        self
    }

    /// The block store.
    pub fn blocks(&self) -> &Arc<BlockStore> {
        &self.blocks
    }

    /// The state store.
    pub fn states(&self) -> &Arc<StateStore> {
        &self.states
    }

    /// The options in force.
    pub fn options(&self) -> PruningOptions {
        self.options
    }

    /// Prunes every block and state below `retain_height`, then compacts if due.
    ///
    /// A retain height above the chain's height is an error and changes nothing; one at or
    /// below the base only finishes work an interrupted call left (it is otherwise a no-op).
    /// Blocks are pruned first, then state; both persist progress with their deletions, so a
    /// crash anywhere loses nothing at or above the retain height and the next call finishes.
    /// Compaction failures are logged and never fail the prune.
    pub fn prune_blocks(&self, retain_height: u64) -> Result<PruneOutcome, PruneError> {
        self.prune_blocks_with(retain_height, self.options.limits)
    }

    /// [`PruningExecutor::prune_blocks`] with `limits` instead of the options' limits. A run
    /// stopped by a limit persists its progress and says [`PruneOutcome::more_to_do`].
    pub fn prune_blocks_with(
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
            metrics::gauge!(metric::BLOCK_STORE_BASE).set(outcome.base_after as f64);
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
        let chain = self.blocks.state();
        if retain_height > chain.height {
            return Err(PruneError::AboveChainHeight {
                retain: retain_height,
                height: chain.height,
            });
        }
        let states_before = self.states.bounds();
        let evidence_point = chain
            .height
            .saturating_sub(self.options.evidence_max_age_heights);
        let batch = self.options.batch_heights;
        // Each store gets the height budget; the time budget is shared.
        let deadline = limits.max_duration.map(|d| Instant::now() + d);
        let blocks = self
            .blocks
            .prune(
                retain_height,
                evidence_point,
                batch,
                &mut PruneLimiter::with_deadline(limits.max_heights, deadline),
            )
            .map_err(PruneError::Blocks)?;
        let state_target = retain_height.min(states_before.height);
        let states = if state_target == 0 {
            StatePruneReport {
                complete: true,
                ..StatePruneReport::default()
            }
        } else {
            self.states
                .prune(
                    state_target,
                    evidence_point,
                    batch,
                    &mut PruneLimiter::with_deadline(limits.max_heights, deadline),
                )
                .map_err(PruneError::States)?
        };
        let mut outcome = PruneOutcome {
            retain_height,
            base_before: chain.base,
            base_after: self.blocks.base(),
            blocks,
            states,
            compaction: CompactionDecision::NothingPruned,
        };
        let deleted_anything = blocks.batches + states.batches > 0;
        if !deleted_anything {
            return Ok(outcome);
        }
        info!(
            retain_height,
            base_before = chain.base,
            base_after = outcome.base_after,
            heights_pruned = blocks.heights_pruned,
            evidence_heights_pruned = blocks.evidence_heights_pruned,
            state_heights_pruned = states.heights_pruned,
            more_to_do = outcome.more_to_do(),
            "pruned blocks and state"
        );
        let lowest_touched = [
            chain.evidence_base,
            chain.base,
            states_before.validators_base,
            states_before.base,
        ]
        .into_iter()
        .filter(|&h| h > 0)
        .min()
        .unwrap_or(retain_height);
        pending.pruned_heights += blocks.heights_pruned.max(states.heights_pruned).max(1);
        pending.from = Some(
            pending
                .from
                .map_or(lowest_touched, |f| f.min(lowest_touched)),
        );
        pending.to = pending.to.max(retain_height);
        outcome.compaction = self.compact_if_due(&mut pending);
        Ok(outcome)
    }

    fn compact_if_due(&self, pending: &mut PendingCompaction) -> CompactionDecision {
        if !self.options.compact {
            return CompactionDecision::Disabled;
        }
        let db = self.blocks.db().as_ref();
        if pending.pruned_heights < self.options.compaction_interval {
            pending.store(db);
            return CompactionDecision::NotDue {
                pruned_since_last: pending.pruned_heights,
            };
        }
        let from = pending.from.unwrap_or(pending.to);
        let task = self.task_for_heights(POST_PRUNING_LABEL, from, pending.to);
        // Persisted before the compaction starts: a write right after it would make some
        // engines (redb) grow their freshly compacted file again.
        PendingCompaction::default().store(db);
        let decision = match &self.compactor {
            Some(compactor) => match compactor.try_enqueue(task) {
                EnqueueOutcome::Enqueued => {
                    info!(
                        label = POST_PRUNING_LABEL,
                        from,
                        to = pending.to,
                        "enqueued async database compaction after pruning"
                    );
                    CompactionDecision::Enqueued
                }
                outcome @ EnqueueOutcome::Busy(busy) => {
                    let reason = match busy {
                        Busy::InFlight => "in_flight",
                        Busy::QueueFull => "queue_full",
                    };
                    debug!(
                        reason,
                        "skipped async compaction - already in progress or queue full"
                    );
                    CompactionDecision::Skipped(outcome)
                }
                outcome @ EnqueueOutcome::ShutDown => {
                    warn!("skipped async compaction - compactor has shut down");
                    CompactionDecision::Skipped(outcome)
                }
            },
            None => {
                error!("no async compactor available, using synchronous compaction");
                match run_task_now(&task) {
                    Ok(_) => {
                        info!("successfully compacted databases after pruning");
                        CompactionDecision::RanSynchronously { succeeded: true }
                    }
                    Err(e) => {
                        error!(err = %e, "failed to compact databases after pruning");
                        CompactionDecision::RanSynchronously { succeeded: false }
                    }
                }
            }
        };
        // A skipped compaction keeps its range pending so that the next prune retries it.
        if matches!(decision, CompactionDecision::Skipped(_)) {
            pending.store(db);
        } else {
            *pending = PendingCompaction::default();
        }
        decision
    }

    /// A task compacting the key ranges of heights `[from, to)` in both stores (one target if
    /// they share an engine), declaring the ranges pruning deleted for good so that engines
    /// that can drop them cheaply do so first.
    pub fn task_for_heights(&self, label: &'static str, from: u64, to: u64) -> CompactionTask {
        let task = self.task_with_ranges(
            label,
            self.states.ranges_for_heights(from, to),
            self.blocks.ranges_for_heights(from, to),
        );
        let state_deleted = self.states.deleted_ranges(from, to);
        let block_deleted = self.blocks.deleted_ranges(from, to);
        if same_engine(self.states.db(), self.blocks.db()) {
            task.with_deleted_ranges(state_deleted.into_iter().chain(block_deleted).collect())
        } else {
            // Targets are state first, then blocks: declare each on its own target.
            task.with_deleted_ranges_of(0, state_deleted)
                .with_deleted_ranges_of(1, block_deleted)
        }
    }

    fn task_with_ranges(
        &self,
        label: &'static str,
        state_ranges: Vec<KeyRange>,
        block_ranges: Vec<KeyRange>,
    ) -> CompactionTask {
        let state_db = as_compactable(self.states.db());
        let block_db = as_compactable(self.blocks.db());
        let task = CompactionTask::new(label);
        if same_engine(self.states.db(), self.blocks.db()) {
            let mut ranges = state_ranges;
            ranges.extend(block_ranges);
            task.with_target_ranges("state_and_block_store", state_db, ranges)
        } else {
            task.with_target_ranges("state_store", state_db, state_ranges)
                .with_target_ranges("block_store", block_db, block_ranges)
        }
    }

    /// Compacts both stores completely, now, on the calling thread (the spec's
    /// `compactStateAndBlockDB`).
    pub fn compact_state_and_block_stores(&self) -> Result<TaskReport, CompactionFailed> {
        let task = self.task_with_ranges(
            MANUAL_LABEL,
            StateStore::all_ranges(),
            BlockStore::all_ranges(),
        );
        run_task_now(&task)
    }
}

fn as_compactable(db: &Arc<dyn KvStore>) -> Arc<dyn Compactable> {
    Arc::clone(db) as Arc<dyn Compactable>
}

fn same_engine(a: &Arc<dyn KvStore>, b: &Arc<dyn KvStore>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}
