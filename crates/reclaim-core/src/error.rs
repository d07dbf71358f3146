//! Errors of the storage layer. Every variant says which operation failed and on what.

use std::path::PathBuf;

use crate::range::ReversedRange;

/// An error from a key-value engine or from opening its directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A key range was reversed.
    #[error(transparent)]
    InvalidRange(#[from] ReversedRange),
    /// Another process (or another handle in this process) holds the store.
    #[error("store at {} is in use by another process (is a node running on it?)", path.display())]
    Locked {
        /// The store directory.
        path: PathBuf,
    },
    /// The store's files are damaged or are not a store of this engine.
    #[error("store at {} is corrupt or not a {engine} store: {detail}", path.display())]
    Corrupt {
        /// The engine that tried to open it.
        engine: &'static str,
        /// The store directory.
        path: PathBuf,
        /// What the engine reported.
        detail: String,
    },
    /// The path cannot hold a store (it is a file, or a parent is missing or read-only).
    #[error("cannot use {} as a {engine} store: {detail}", path.display())]
    BadPath {
        /// The engine that tried to open it.
        engine: &'static str,
        /// The offending path.
        path: PathBuf,
        /// Why it cannot be used.
        detail: String,
    },
    /// The device is full; nothing was written by the failed operation.
    #[error("no space left on device during {operation}")]
    NoSpace {
        /// The operation that needed space.
        operation: &'static str,
    },
    /// An I/O error outside the engine (directory walks, renames, fsync).
    #[error("I/O error during {operation}: {source}")]
    Io {
        /// The operation that failed.
        operation: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Any other error the engine reported.
    #[error("{engine} error during {operation}: {message}")]
    Engine {
        /// The engine name.
        engine: &'static str,
        /// The operation that failed.
        operation: &'static str,
        /// The engine's message.
        message: String,
    },
    /// The store has been closed, or a previous fatal error made it unusable.
    #[error("store is closed: {reason}")]
    Closed {
        /// Why it is closed.
        reason: String,
    },
}

impl StorageError {
    /// Wraps an engine error, keeping its message.
    pub fn engine(
        engine: &'static str,
        operation: &'static str,
        error: impl std::fmt::Display,
    ) -> Self {
        Self::Engine {
            engine,
            operation,
            message: error.to_string(),
        }
    }

    /// Wraps an I/O error, mapping "no space left on device" to [`StorageError::NoSpace`].
    pub fn io(operation: &'static str, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::StorageFull {
            Self::NoSpace { operation }
        } else {
            Self::Io { operation, source }
        }
    }
}

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
    Compaction(#[from] crate::compactor::CompactionFailed),
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
