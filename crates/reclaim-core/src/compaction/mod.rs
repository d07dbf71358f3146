//! Compaction: the single-flight gate, the task and its runner, the background compactor,
//! pacing, and the policy that decides when pruning is followed by a compaction.
//!
//! | file | holds |
//! |---|---|
//! | `gate.rs` | [`SingleFlight`]: at most one task queued or running |
//! | `task.rs` | [`CompactionTask`]: a label and its targets (store, ranges, deleted ranges) |
//! | `runner.rs` | [`run_task`]: drops, plans, slices, paces, catches panics, logs the spec's lines |
//! | `compactor.rs` | [`Compactor`]: the worker thread and [`Compactor::try_enqueue`] |
//! | `pacing.rs` | [`Pacing`]: slices, pauses, load signal, UTC windows |
//! | `policy.rs` | [`CompactionPolicy`]: compact now or wait, given what pruning left pending |

pub mod compactor;
pub mod gate;
pub mod pacing;
pub mod policy;
pub mod runner;
pub mod task;

pub use compactor::{
    Compactor, CompactorError, CompactorStats, DEFAULT_SHUTDOWN_DEADLINE, EnqueueOutcome,
};
pub use gate::{Busy, FlightClaim, SingleFlight};
pub use pacing::{CommitLatencyGate, LoadSignal, Pacing, TimeWindow};
pub use policy::{
    CompactionPolicy, IntervalPolicy, NeverCompact, PendingCompaction, PolicyDecision,
    SpaceAwarePolicy,
};
pub use runner::{
    CompactionFailed, TargetFailure, TaskReport, compact_ranges_now, run_task, run_task_now,
};
pub use task::{CompactionTarget, CompactionTask};
