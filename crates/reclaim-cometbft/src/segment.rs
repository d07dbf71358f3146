//! CometBFT's stores as prune segments: each is pruned to the retain height (never past its
//! own height) while keeping an evidence window, counted back from the chain's height, of what
//! evidence needs (block meta and commits; validator sets).

use std::sync::Arc;

use reclaim_core::pruning::{
    PruneLimiter, PruneRequest, PruneSegment, SegmentBounds, SegmentError, SegmentReport,
};
use reclaim_core::{KeyRange, KvStore};

use crate::error::StoreError;

/// A store pruned below a retain height with an evidence window kept below its base.
///
/// Guarantees an implementation must give: those of [`PruneSegment`], with `prune_window`
/// deleting nothing at or above `retain_height` and nothing of the evidence window at or above
/// `evidence_point`.
pub trait WindowedStore: Send + Sync {
    /// The segment's name.
    const SEGMENT: &'static str;

    /// The engine underneath.
    fn db(&self) -> &Arc<dyn KvStore>;

    /// The heights held, the evidence window's start as `lowest`.
    fn segment_bounds(&self) -> SegmentBounds;

    /// Prunes below `retain_height` (at most the store's height), keeping the window at or
    /// above `evidence_point`, in batches of `batch_heights` within `limiter`.
    fn prune_window(
        &self,
        retain_height: u64,
        evidence_point: u64,
        batch_heights: u64,
        limiter: &mut PruneLimiter,
    ) -> Result<SegmentReport, StoreError>;

    /// The key ranges of heights `[from, to)` a compaction after pruning covers.
    fn compaction_ranges(&self, from: u64, to: u64) -> Vec<KeyRange>;

    /// The key ranges of heights `[from, to)` deleted for good.
    fn deleted_ranges(&self, from: u64, to: u64) -> Vec<KeyRange>;

    /// Every key range the store owns.
    fn all_ranges() -> Vec<KeyRange>;
}

/// A [`WindowedStore`] as a prune segment, keeping the last `evidence_max_age_heights` heights
/// of the chain in its evidence window (CometBFT's evidence max age;
/// [`crate::DEFAULT_EVIDENCE_MAX_AGE_HEIGHTS`] by default).
#[derive(Debug)]
pub struct EvidenceWindowSegment<S> {
    store: Arc<S>,
    evidence_max_age_heights: u64,
}

impl<S> EvidenceWindowSegment<S> {
    /// The segment of `store` with an evidence window of `evidence_max_age_heights` heights.
    pub fn new(store: Arc<S>, evidence_max_age_heights: u64) -> Self {
        Self {
            store,
            evidence_max_age_heights,
        }
    }
}

impl<S: WindowedStore> PruneSegment for EvidenceWindowSegment<S> {
    fn name(&self) -> &str {
        S::SEGMENT
    }

    fn store(&self) -> &Arc<dyn KvStore> {
        self.store.db()
    }

    fn bounds(&self) -> SegmentBounds {
        self.store.segment_bounds()
    }

    fn prune(
        &self,
        request: &PruneRequest,
        limiter: &mut PruneLimiter,
    ) -> Result<SegmentReport, SegmentError> {
        let evidence_point = request
            .chain_height
            .saturating_sub(self.evidence_max_age_heights);
        // A store may trail the chain by a height (state is saved after its block): never
        // prune past what it holds.
        let retain = request
            .retain_height
            .min(self.store.segment_bounds().height);
        Ok(self
            .store
            .prune_window(retain, evidence_point, request.batch_heights, limiter)?)
    }

    fn compaction_ranges(&self, from: u64, to: u64) -> Vec<KeyRange> {
        self.store.compaction_ranges(from, to)
    }

    fn deleted_ranges(&self, from: u64, to: u64) -> Vec<KeyRange> {
        self.store.deleted_ranges(from, to)
    }

    fn all_ranges(&self) -> Vec<KeyRange> {
        S::all_ranges()
    }
}
