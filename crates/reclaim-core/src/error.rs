//! Errors of the engines underneath. Every variant says which operation failed and on what.

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
