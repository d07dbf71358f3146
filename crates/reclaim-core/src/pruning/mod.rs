//! Pruning: the executor that prunes every registered segment to a retain height and hands
//! what it left behind to the compaction policy and the compactor, and the background loop
//! that drives it.
//!
//! | file | holds |
//! |---|---|
//! | `segment.rs` | [`PruneSegment`]: one kind of height-indexed data to prune |
//! | `limits.rs` | [`PruneLimits`] and [`PruneLimiter`]: bounds on one run |
//! | `executor.rs` | [`PruningExecutor`]: the spec's `pruneBlocks`, generic over segments |
//! | `pending.rs` | [`PendingRecord`]: the persisted, versioned pending compaction |
//! | `background.rs` | [`BackgroundPruner`]: the interval/wake-up loop |

pub mod background;
pub mod executor;
pub mod limits;
pub mod pending;
pub mod segment;

pub use background::{BackgroundPruner, PrunerError, PrunerStats, RetainHeightSource};
pub use executor::{
    CompactionDecision, DEFAULT_BATCH_HEIGHTS, MANUAL_LABEL, POST_PRUNING_LABEL, PruneError,
    PruneOutcome, PruningExecutor, PruningOptions, SegmentOutcome,
};
pub use limits::{MAX_BATCHES_PER_CALL, PruneLimiter, PruneLimits};
pub use pending::PendingRecord;
pub use segment::{PruneRequest, PruneSegment, SegmentBounds, SegmentError, SegmentReport};
