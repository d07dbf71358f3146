//! # reclaim
//!
//! Bounded disk for blockchain nodes: prune blocks and state below a retain height, then
//! compact the embedded store so the space comes back, in the background, one compaction at a
//! time. This facade re-exports the engine-agnostic core and, behind features, the engines:
//!
//! | feature | engine | store type |
//! |---|---|---|
//! | `redb` (default) | redb 4, pure Rust | [`redb::RedbStore`] |
//! | `sled` | sled 0.34 | [`sled::SledStore`] |
//! | `rocksdb` | RocksDB 11 (bundled C++, needs libclang to build) | [`rocksdb::RocksStore`] |
//!
//! ```toml
//! reclaim = { version = "0.1", default-features = false, features = ["rocksdb"] }
//! ```

pub use reclaim_core as core;
pub use reclaim_core::*;

/// The redb engine (feature `redb`, on by default).
#[cfg(feature = "redb")]
pub use reclaim_redb as redb;

/// The sled engine (feature `sled`).
#[cfg(feature = "sled")]
pub use reclaim_sled as sled;

/// The RocksDB engine (feature `rocksdb`).
#[cfg(feature = "rocksdb")]
pub use reclaim_rocksdb as rocksdb;
