//! # reclaim-cometbft
//!
//! CometBFT's storage domain on top of [`reclaim_core`]: what the core's executor prunes.
//!
//! * [`keys`]: the key schema, the only place a prefix is spelled.
//! * [`block_store::BlockStore`] and [`state_store::StateStore`]: CometBFT's stores over any
//!   engine, laid out so that everything below a height is a few contiguous key ranges; each
//!   is a prune segment through [`segment::EvidenceWindowSegment`] ([`BlockSegment`],
//!   [`StateSegment`]).
//! * [`executor::pruning_executor`]: both stores registered with one
//!   [`reclaim_core::PruningExecutor`].
//! * [`retain::RetainHeights`]: the application's and the data companion's retain heights,
//!   persisted, never lowered (the background pruner's retain height source).
//! * [`config::Config`]: CometBFT's `[storage]` section, unknown keys refused.
//! * [`error::StoreError`]: what the stores report.

#![deny(missing_docs)]

pub mod block_store;
pub mod config;
pub mod error;
pub mod executor;
pub mod keys;
pub mod retain;
pub mod seal;
pub mod segment;
pub mod state_store;

pub use block_store::{
    BLOCK_SEGMENT, Block, BlockSegment, BlockStore, BlockStoreBounds,
    DEFAULT_EVIDENCE_MAX_AGE_HEIGHTS,
};
pub use config::{CompactionPolicyKind, Config, ConfigError, StorageConfig};
pub use error::StoreError;
pub use executor::{PruningSettings, pruning_executor};
pub use retain::{RetainHeightError, RetainHeights, RetainSource, RetainState};
pub use segment::{EvidenceWindowSegment, WindowedStore};
pub use state_store::{
    HeightState, STATE_SEGMENT, StateSegment, StateStore, StateStoreBounds, StateStoreOptions,
};
