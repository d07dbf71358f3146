//! A prune segment: one kind of height-indexed data the executor prunes (a chain's blocks, its
//! state, an evidence store, a transaction index, ...). Registering a segment with the
//! [`crate::pruning::PruningExecutor`] is all it takes for the executor to prune it, count it
//! and compact what pruning left behind.

use std::sync::Arc;

use crate::kv::KvStore;
use crate::pruning::limits::PruneLimiter;
use crate::range::KeyRange;

/// An error a segment reports from pruning, with its own type behind it.
pub type SegmentError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The heights a segment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SegmentBounds {
    /// Lowest height of which anything is still kept, e.g. the start of an evidence window
    /// kept below the base (at most `base`; 0 when empty).
    pub lowest: u64,
    /// Lowest height whose data is complete (0 when empty).
    pub base: u64,
    /// Highest height saved (0 when empty).
    pub height: u64,
}

impl SegmentBounds {
    /// True when the segment holds no height.
    pub fn is_empty(&self) -> bool {
        self.height == 0
    }
}

/// What the executor asks of every segment in one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PruneRequest {
    /// Delete every height below this one (a segment never goes past its own height).
    pub retain_height: u64,
    /// The highest height of any registered segment (for windows counted back from the tip,
    /// such as an evidence window).
    pub chain_height: u64,
    /// Heights per atomic batch; each batch writes the segment's progress with its deletions.
    pub batch_heights: u64,
}

/// What one segment's run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SegmentReport {
    /// False when the limiter stopped the run before it reached its targets; the progress made
    /// is persisted and the next run resumes.
    pub complete: bool,
    /// Heights that fell below the base.
    pub heights_pruned: u64,
    /// Heights whose last data kept below the base (an evidence window, the validator sets
    /// older heights still point to) was deleted.
    pub trailing_heights_pruned: u64,
    /// Atomic batches written.
    pub batches: u64,
}

impl SegmentReport {
    /// A report of a run that had nothing to do.
    pub fn nothing_to_do() -> Self {
        Self {
            complete: true,
            ..Self::default()
        }
    }
}

/// One kind of height-indexed data the executor prunes.
///
/// Guarantees an implementation must give:
/// * `prune` deletes only heights below `min(request.retain_height, own height)`, in batches
///   that each persist the segment's new bounds atomically with their deletions, so a crash
///   anywhere leaves a segment whose bounds describe what it holds, and the next run resumes;
/// * it spends `limiter` per batch and stops, with `complete: false`, when the limiter says so;
/// * `compaction_ranges(from, to)` covers every key of heights `[from, to)` that pruning may
///   have deleted (compacting them returns the space), `deleted_ranges(from, to)` only key
///   ranges wholly deleted for good (nothing is ever written there again), and `all_ranges`
///   every key the segment owns;
/// * `bounds` is cheap (no I/O): the executor reads it before and after every run.
pub trait PruneSegment: Send + Sync {
    /// The name used in logs, metrics, errors and compaction targets (e.g. `block_store`).
    fn name(&self) -> &str;

    /// The engine holding this segment's keys. Segments sharing one engine (the same `Arc`)
    /// are compacted as one target.
    fn store(&self) -> &Arc<dyn KvStore>;

    /// The heights held now.
    fn bounds(&self) -> SegmentBounds;

    /// Prunes below `request.retain_height` within `limiter`.
    fn prune(
        &self,
        request: &PruneRequest,
        limiter: &mut PruneLimiter,
    ) -> Result<SegmentReport, SegmentError>;

    /// The key ranges holding data of heights `[from, to)`: what a compaction after pruning
    /// covers.
    fn compaction_ranges(&self, from: u64, to: u64) -> Vec<KeyRange>;

    /// The key ranges of heights `[from, to)` that pruning has deleted for good, which an
    /// engine may drop without compacting ([`crate::kv::Compactable::drop_deleted_range`]).
    /// None by default.
    fn deleted_ranges(&self, from: u64, to: u64) -> Vec<KeyRange> {
        let _ = (from, to);
        Vec::new()
    }

    /// Every key range the segment owns (a manual, whole-segment compaction covers these).
    fn all_ranges(&self) -> Vec<KeyRange>;
}
