//! CometBFT's pruning, wired: the block store and the state store registered as segments of one
//! [`PruningExecutor`] (the spec's `BlockExecutor.pruneBlocks`), the compaction policy that
//! `[storage]` selects, and the pending compaction kept beside the blocks.

use std::sync::Arc;

use reclaim_core::compaction::{CompactionPolicy, IntervalPolicy, NeverCompact, SpaceAwarePolicy};
use reclaim_core::pruning::{
    DEFAULT_BATCH_HEIGHTS, PendingRecord, PruneLimits, PruningExecutor, PruningOptions,
};

use crate::block_store::{BlockSegment, BlockStore, DEFAULT_EVIDENCE_MAX_AGE_HEIGHTS};
use crate::config::{CompactionPolicyKind, DEFAULT_COMPACTION_INTERVAL, StorageConfig};
use crate::keys;
use crate::state_store::{StateSegment, StateStore};

/// CometBFT's pruning settings: the evidence window from the chain's evidence params, the rest
/// from `[storage]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruningSettings {
    /// Heights within this many of the chain's height keep block meta, commit and validator
    /// set (the evidence window).
    pub evidence_max_age_heights: u64,
    /// Heights per atomic batch; each batch persists progress with its deletions.
    pub batch_heights: u64,
    /// Compact after pruning at all (CometBFT's `compact`).
    pub compact: bool,
    /// Pruned heights between compactions (CometBFT's `compaction_interval`, at least 1).
    pub compaction_interval: u64,
    /// Bounds on each pruning run.
    pub limits: PruneLimits,
    /// The rule that decides when (with `compact`).
    pub policy: CompactionPolicyKind,
    /// The space policy's thresholds.
    pub space: SpaceAwarePolicy,
}

impl Default for PruningSettings {
    fn default() -> Self {
        Self {
            evidence_max_age_heights: DEFAULT_EVIDENCE_MAX_AGE_HEIGHTS,
            batch_heights: DEFAULT_BATCH_HEIGHTS,
            compact: false,
            compaction_interval: DEFAULT_COMPACTION_INTERVAL,
            limits: PruneLimits::UNBOUNDED,
            policy: CompactionPolicyKind::Space,
            space: SpaceAwarePolicy::DEFAULT,
        }
    }
}

impl PruningSettings {
    /// The compaction policy these settings select: none with `compact = false`; otherwise
    /// CometBFT's interval, or the space policy (falling back to the interval where an engine
    /// gives no estimate).
    pub fn compaction_policy(&self) -> Arc<dyn CompactionPolicy> {
        match (self.compact, self.policy) {
            (false, _) => Arc::new(NeverCompact),
            (true, CompactionPolicyKind::Interval) => {
                Arc::new(IntervalPolicy::new(self.compaction_interval))
            }
            (true, CompactionPolicyKind::Space) => Arc::new(SpaceAwarePolicy {
                fallback_interval: self.compaction_interval,
                ..self.space
            }),
        }
    }

    /// The core executor's options.
    pub fn executor_options(&self) -> PruningOptions {
        PruningOptions {
            batch_heights: self.batch_heights,
            limits: self.limits,
        }
    }
}

impl From<&StorageConfig> for PruningSettings {
    fn from(config: &StorageConfig) -> Self {
        Self {
            compact: config.compact,
            compaction_interval: config.compaction_interval,
            limits: PruneLimits {
                max_heights: config.pruning.max_heights_per_run,
                max_duration: config.pruning.max_run_time,
            },
            policy: config.compaction_policy,
            space: SpaceAwarePolicy {
                min_reclaimable_bytes: config.compaction_min_reclaimable_bytes,
                min_reclaimable_percent: config.compaction_min_reclaimable_percent,
                fallback_interval: config.compaction_interval,
            },
            ..Self::default()
        }
    }
}

/// An executor pruning `blocks` then `states` as `settings` say, with the pending compaction
/// persisted in the block store's engine under [`keys::PENDING_COMPACTION`]. More segments (an
/// evidence store, a transaction index) are one [`PruningExecutor::register`] each.
pub fn pruning_executor(
    blocks: &Arc<BlockStore>,
    states: &Arc<StateStore>,
    settings: PruningSettings,
) -> PruningExecutor {
    let evidence = settings.evidence_max_age_heights;
    PruningExecutor::new(settings.executor_options())
        .register(Arc::new(BlockSegment::new(Arc::clone(blocks), evidence)))
        .register(Arc::new(StateSegment::new(Arc::clone(states), evidence)))
        .with_policy(settings.compaction_policy())
        .with_pending_record(PendingRecord::new(
            Arc::clone(blocks.db()),
            keys::PENDING_COMPACTION.key,
        ))
}
