//! Errors of the block store, the state store and the retain heights. Every variant says what
//! failed and on what.

use reclaim_core::StorageError;
use reclaim_core::compaction::CompactionFailed;
use reclaim_core::height::PrunedHeight;

/// An error from the block store or the state store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The engine failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A record the store wrote cannot be decoded: the store is damaged.
    #[error("corrupt {what} record at key {key}: {detail}")]
    CorruptRecord {
        /// Which record.
        what: &'static str,
        /// Its key, readable form.
        key: String,
        /// What is wrong with it.
        detail: String,
    },
    /// Heights must be saved one after another.
    #[error("cannot save height {height}: the store expects height {expected} next")]
    NonContiguousHeight {
        /// The height offered.
        height: u64,
        /// The only height the store accepts next.
        expected: u64,
    },
    /// A value offered for saving is malformed.
    #[error("invalid input at height {height}: {detail}")]
    InvalidInput {
        /// The height offered.
        height: u64,
        /// What is wrong.
        detail: String,
    },
    /// The finalize-block response was not kept because `discard_abci_responses` is on.
    #[error(
        "finalize-block response for height {height} was not persisted (discard_abci_responses is on; only the latest, at {latest}, is kept)"
    )]
    ResponseDiscarded {
        /// The height asked for.
        height: u64,
        /// The only height whose response is kept.
        latest: u64,
    },
    /// Pruning was asked to retain a height the store does not have yet.
    #[error("cannot prune {store} to retain height {retain}: above its height {height}")]
    RetainAboveHeight {
        /// Which store.
        store: &'static str,
        /// The retain height asked for.
        retain: u64,
        /// The store's height.
        height: u64,
    },
    /// The height asked for lies below the store's base: it was pruned (or is being pruned).
    #[error("{what} at height {height} was pruned: the lowest height kept is {base}")]
    Pruned {
        /// What was asked for.
        what: &'static str,
        /// The height asked for.
        height: u64,
        /// The lowest height whose `what` is kept.
        base: u64,
    },
    /// A manual compaction failed on at least one range (the data is unaffected).
    #[error(transparent)]
    Compaction(#[from] CompactionFailed),
    /// The store was written in a record format this build does not read.
    #[error(
        "store format {} is not supported (this build reads format {supported}); it was written by another version of reclaim",
        found.map_or_else(|| "1 (unversioned)".to_owned(), |v| v.to_string())
    )]
    UnsupportedFormat {
        /// The format found; `None` for a store written before formats were recorded.
        found: Option<u32>,
        /// The format this build reads and writes.
        supported: u32,
    },
    /// A pointer record refers to a full record that is missing: the store is damaged.
    #[error("{what} at height {height} points to height {target}, which is missing")]
    DanglingPointer {
        /// Which family.
        what: &'static str,
        /// The height whose record points.
        height: u64,
        /// The missing target.
        target: u64,
    },
}

impl From<PrunedHeight> for StoreError {
    fn from(p: PrunedHeight) -> Self {
        Self::Pruned {
            what: p.what,
            height: p.height,
            base: p.base,
        }
    }
}
