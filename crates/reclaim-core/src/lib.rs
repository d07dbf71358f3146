//! # reclaim-core
//!
//! The engine-agnostic, chain-agnostic core of reclaim: it prunes a node's height-indexed data
//! below a retain height and then compacts the underlying store so the space comes back, in
//! the background, one compaction at a time. It knows no engine (adapters implement its
//! traits) and no chain (a chain registers its stores as [`PruneSegment`]s).
//!
//! * [`kv`]: the storage capability traits ([`KvRead`], [`KvWrite`], [`Compactable`]) an engine
//!   adapter implements; [`range::KeyRange`]; [`error::StorageError`].
//! * [`memory::MemoryStore`]: the reference engine and the template for new adapters;
//!   [`dir`]: a store directory's lock, marker and size.
//! * [`compaction`]: the single-flight gate, tasks and their runner, the background
//!   [`Compactor`], [`Pacing`], and the [`CompactionPolicy`] that decides when to compact.
//! * [`pruning`]: the [`PruningExecutor`] (crash-safe, resumable, bounded pruning of every
//!   registered [`PruneSegment`], followed by targeted compaction) and the
//!   [`BackgroundPruner`] loop.
//! * [`rewrite`]: the online rewrite ([`rewrite::GenerationalStore`]), compaction for engines
//!   that cannot compact while the node runs.
//! * [`height`]: height-ordered keys and the read floor, for segment authors.
//! * [`worker`]: the named thread with a wakeable [`StopSignal`] both loops run on.
//! * [`metric`]: the names of the metrics recorded through the `metrics` facade.
//! * `fault::FaultyStore` (feature `testing`): an engine wrapper that injects failures.

#![deny(missing_docs)]

pub mod compaction;
pub mod dir;
pub mod error;
#[cfg(feature = "testing")]
pub mod fault;
pub mod height;
pub mod kv;
pub mod memory;
pub mod metric;
pub mod pruning;
pub mod range;
pub mod read_only;
pub mod rewrite;
pub mod worker;

pub use compaction::{
    Busy, CommitLatencyGate, CompactionFailed, CompactionPolicy, CompactionTask, Compactor,
    CompactorStats, EnqueueOutcome, IntervalPolicy, LoadSignal, NeverCompact, Pacing,
    PendingCompaction, PolicyDecision, SingleFlight, SpaceAwarePolicy, TaskReport, TimeWindow,
};
pub use error::StorageError;
pub use kv::{
    BatchOp, Capabilities, Compactable, CompactionAccess, CompactionPacer, CompactionScope, KvRead,
    KvReadExt, KvStore, KvWrite, ScanOrder, SpaceReport, Unpaced, WriteBatch, WriteOptions,
};
pub use memory::MemoryStore;
pub use pruning::{
    BackgroundPruner, CompactionDecision, PendingRecord, PruneError, PruneLimiter, PruneLimits,
    PruneOutcome, PruneRequest, PruneSegment, PrunerStats, PruningExecutor, PruningOptions,
    RetainHeightSource, SegmentBounds, SegmentReport,
};
pub use range::KeyRange;
pub use read_only::{ReadOnly, ReadOnlySpace};
pub use worker::StopSignal;
