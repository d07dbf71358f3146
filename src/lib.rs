//! # reclaim
//!
//! Bounded disk for blockchain nodes: prune blocks and state below a retain height, then
//! compact the embedded store so the space comes back, in the background, one compaction at a
//! time. This facade re-exports the engine- and chain-agnostic core ([`core`], everything at
//! the root), CometBFT's stores and configuration ([`cometbft`], its main types at the root
//! too) and, behind features, the engines:
//!
//! | feature | engine | store type |
//! |---|---|---|
//! | `redb` (default) | redb 4, pure Rust | [`redb::RedbStore`] |
//! | `sled` | sled 0.34 | [`sled::SledStore`] |
//! | `rocksdb` | RocksDB 11 (bundled C++, needs libclang to build) | [`rocksdb::RocksStore`] |
//! | `fjall` | fjall 3, pure-Rust LSM | [`fjall::FjallStore`] |
//!
//! ```toml
//! reclaim = { version = "0.1", default-features = false, features = ["rocksdb"] }
//! ```
//!
//! [`Engine`] opens any engine this build has, by name or by variant, with the [`OpenOptions`]
//! a node's configuration asks for (the cap on compaction I/O).

pub use reclaim_core as core;
pub use reclaim_core::*;

/// CometBFT's storage domain: key schema, block and state stores, retain heights, `[storage]`.
pub use reclaim_cometbft as cometbft;
pub use reclaim_cometbft::{
    BLOCK_SEGMENT, Block, BlockSegment, BlockStore, BlockStoreBounds, CompactionPolicyKind, Config,
    ConfigError, DEFAULT_EVIDENCE_MAX_AGE_HEIGHTS, HeightState, PruningSettings, RetainHeightError,
    RetainHeights, RetainSource, RetainState, STATE_SEGMENT, StateSegment, StateStore,
    StateStoreBounds, StateStoreOptions, StorageConfig, StoreError, keys, pruning_executor,
};

/// The redb engine (feature `redb`, on by default).
#[cfg(feature = "redb")]
pub use reclaim_redb as redb;

/// The sled engine (feature `sled`).
#[cfg(feature = "sled")]
pub use reclaim_sled as sled;

/// The RocksDB engine (feature `rocksdb`).
#[cfg(feature = "rocksdb")]
pub use reclaim_rocksdb as rocksdb;

/// The fjall engine (feature `fjall`).
#[cfg(feature = "fjall")]
pub use reclaim_fjall as fjall;

use std::path::Path;
use std::sync::Arc;

/// An engine, chosen by name or by a node's configuration. Every variant exists in every build;
/// [`Engine::is_built`] says whether this build has its feature, and [`Engine::open`] refuses
/// one it has not. The CLI, the benchmarks and the tests all choose engines through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Engine {
    /// The in-memory reference engine (always built; nothing persists, the directory is not
    /// used): for tests and benchmarks.
    Memory,
    /// redb (feature `redb`, the default).
    Redb,
    /// sled 0.34 (feature `sled`).
    Sled,
    /// RocksDB (feature `rocksdb`).
    Rocksdb,
    /// fjall 3 (feature `fjall`).
    Fjall,
}

/// What a node may set when it opens a store, whatever the engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// RocksDB's own rate limiter, bytes per second, fixed at open (other engines ignore it).
    /// It caps *every* background write, flushes included, so a cap below what the node's
    /// writes need stalls them (issue 15 measured 14 s stalls at 32 MiB/s); the configuration's
    /// `io_bytes_per_sec` does not set it (it paces compaction alone, on every engine). `None`:
    /// no limiter.
    pub rocksdb_rate_limit_bytes_per_sec: Option<u64>,
}

impl OpenOptions {
    /// The options a node's `[storage]` configuration asks for (today: none that must be set
    /// at open; the I/O cap is part of [`Pacing`]).
    pub fn from_config(storage: &StorageConfig) -> Self {
        let _ = storage;
        Self::default()
    }
}

impl Engine {
    /// Every engine, built or not.
    pub const ALL: [Self; 5] = [
        Self::Memory,
        Self::Redb,
        Self::Sled,
        Self::Rocksdb,
        Self::Fjall,
    ];

    /// The engines that keep a store directory, built or not.
    pub const ON_DISK: [Self; 4] = [Self::Redb, Self::Sled, Self::Rocksdb, Self::Fjall];

    /// True for the engines that keep a store directory.
    pub fn is_on_disk(self) -> bool {
        self != Self::Memory
    }

    /// The engines of [`Engine::ALL`] this build has.
    pub fn built() -> impl Iterator<Item = Self> {
        Self::ALL.into_iter().filter(|engine| engine.is_built())
    }

    /// The name written in store markers and accepted on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Redb => "redb",
            Self::Sled => "sled",
            Self::Rocksdb => "rocksdb",
            Self::Fjall => "fjall",
        }
    }

    /// The engine called `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|engine| engine.name() == name)
    }

    /// True if this build has the engine's feature.
    pub fn is_built(self) -> bool {
        match self {
            Self::Memory => true,
            Self::Redb => cfg!(feature = "redb"),
            Self::Sled => cfg!(feature = "sled"),
            Self::Rocksdb => cfg!(feature = "rocksdb"),
            Self::Fjall => cfg!(feature = "fjall"),
        }
    }

    /// True if this engine can open a store read-only ([`Engine::open_read_only`]): redb and
    /// RocksDB; not sled 0.34 (opening writes a snapshot), fjall 3 (no read-only mode) nor the
    /// in-memory engine.
    pub fn can_open_read_only(self) -> bool {
        matches!(self, Self::Redb | Self::Rocksdb)
    }

    /// Opens the existing store in `dir` for a look that changes nothing: a shared lock (other
    /// readers may look too, a writer may not), no byte written under `dir`, every write and
    /// compaction refused with [`StorageError::ReadOnly`]. Errors: an engine that cannot
    /// ([`Engine::can_open_read_only`]) or that this build lacks ([`StorageError::Engine`]),
    /// and those of the engine's read-only open.
    pub fn open_read_only(self, dir: &Path) -> Result<Arc<dyn KvStore>, StorageError> {
        let _ = dir;
        match self {
            #[cfg(feature = "redb")]
            Self::Redb => Ok(Arc::new(redb::RedbReader::open(dir)?)),
            #[cfg(feature = "rocksdb")]
            Self::Rocksdb => Ok(Arc::new(rocksdb::RocksReader::open(dir)?)),
            other => Err(StorageError::Engine {
                engine: other.name(),
                operation: "open read-only",
                message: if other.can_open_read_only() {
                    format!(
                        "this build has no {0} engine (enable the `{0}` feature)",
                        other.name()
                    )
                } else {
                    format!("{} cannot open a store read-only", other.name())
                },
            }),
        }
    }

    /// Opens (creating if needed) a store of this engine in `dir` (a new, empty one for
    /// [`Engine::Memory`], which ignores `dir`). Errors: those of the
    /// engine's own `open`, and [`StorageError::Engine`] for an engine this build does not have.
    pub fn open(self, dir: &Path, options: &OpenOptions) -> Result<Arc<dyn KvStore>, StorageError> {
        #[cfg(not(feature = "rocksdb"))]
        let _ = options;
        match self {
            Self::Memory => Ok(Arc::new(MemoryStore::new())),
            #[cfg(feature = "redb")]
            Self::Redb => Ok(Arc::new(redb::RedbStore::open(dir)?)),
            #[cfg(feature = "sled")]
            Self::Sled => Ok(Arc::new(sled::SledStore::open(dir)?)),
            #[cfg(feature = "rocksdb")]
            Self::Rocksdb => Ok(Arc::new(rocksdb::RocksStore::open_with(
                dir,
                rocksdb::RocksOptions {
                    compaction_rate_limit_bytes_per_sec: options.rocksdb_rate_limit_bytes_per_sec,
                    // CometBFT's families each begin with a byte of their own: files per family.
                    sst_partition_prefix_bytes: Some(
                        reclaim_cometbft::keys::FAMILY_DISTINCT_PREFIX_BYTES,
                    ),
                    ..rocksdb::RocksOptions::default()
                },
            )?)),
            #[cfg(feature = "fjall")]
            Self::Fjall => Ok(Arc::new(fjall::FjallStore::open(dir)?)),
            #[allow(unreachable_patterns)]
            missing => {
                let _ = dir;
                Err(StorageError::Engine {
                    engine: missing.name(),
                    operation: "open",
                    message: format!(
                        "this build has no {0} engine (enable the `{0}` feature)",
                        missing.name()
                    ),
                })
            }
        }
    }
}
