//! # reclaim-core
//!
//! The engine-agnostic core of reclaim: it prunes a blockchain node's blocks and state below a
//! retain height and then compacts the underlying store so the space comes back, in the
//! background, one compaction at a time.
//!
//! * [`kv`]: the storage capability traits ([`KvRead`], [`KvWrite`], [`Compactable`]) an engine
//!   adapter implements, and [`KeyRange`].
//! * [`memory::MemoryStore`]: the reference engine and the template for new adapters.
//! * [`compactor::Compactor`]: the single-flight background compactor.
//! * [`block_store::BlockStore`] and [`state_store::StateStore`]: CometBFT's stores over any
//!   engine, laid out so that everything below a height is a few contiguous key ranges.
//! * [`pruning::PruningExecutor`]: crash-safe, resumable pruning followed by targeted compaction.
//! * [`pacing::Pacing`]: sliced compaction that pauses, yields to a busy node and keeps to
//!   time windows.
//! * [`retain::RetainHeights`]: the application's and the data companion's retain heights,
//!   persisted, never lowered; [`pruner::BackgroundPruner`]: the bounded background pruning loop.
//! * [`metric`]: the names of the metrics recorded through the `metrics` facade.
//! * [`config::Config`]: CometBFT's `[storage]` section.
//! * [`fault::FaultyStore`]: an engine wrapper that injects failures, for tests.

pub mod block_store;
mod codec;
pub mod compactor;
pub mod config;
pub mod dir;
pub mod error;
pub mod fault;
pub mod kv;
pub mod memory;
pub mod metric;
pub mod pacing;
pub mod pruner;
pub mod pruning;
pub mod range;
pub mod retain;
pub mod state_store;
mod worker;

pub use block_store::{Block, BlockStore, BlockStoreState};
pub use compactor::{
    Busy, CompactionTask, Compactor, CompactorStats, EnqueueOutcome, SingleFlight,
};
pub use config::{Config, StorageConfig};
pub use error::{StorageError, StoreError};
pub use kv::{
    BatchOp, Capabilities, Compactable, CompactionAccess, CompactionScope, KvRead, KvReadExt,
    KvStore, KvWrite, ScanOrder, WriteBatch, WriteOptions,
};
pub use memory::MemoryStore;
pub use pacing::{CommitLatencyGate, LoadSignal, Pacing, TimeWindow};
pub use pruner::{BackgroundPruner, PrunerStats};
pub use pruning::{PruneError, PruneLimits, PruneOutcome, PruningExecutor, PruningOptions};
pub use range::KeyRange;
pub use retain::{RetainHeightError, RetainHeights, RetainSource, RetainState};
pub use state_store::{HeightState, StateStore, StateStoreOptions};
