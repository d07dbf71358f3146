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
    /// The store directory exists and names this engine, but the engine's own files are gone
    /// (deleted, emptied, a dangling link, an unmounted volume): refused rather than replaced
    /// by a new, empty store.
    #[error(
        "store at {} is missing its {what}: {detail}; refusing to create a new, empty store in its place (an unmounted volume or a deleted file? if this directory never held data, remove it)",
        path.display()
    )]
    Missing {
        /// The engine that tried to open it.
        engine: &'static str,
        /// The file or directory that should be there.
        path: PathBuf,
        /// What it is (e.g. "database file").
        what: &'static str,
        /// What was found instead.
        detail: String,
    },
    /// The engine panicked inside an operation. The panic was contained: the operation's
    /// changes were not committed, and the handle refuses every later call
    /// ([`StorageError::Closed`]) so that a damaged store is not written to again.
    #[error("{engine} panicked during {operation} (the store is probably damaged): {message}")]
    Panicked {
        /// The engine name.
        engine: &'static str,
        /// The operation that panicked.
        operation: &'static str,
        /// The panic message.
        message: String,
    },
    /// The store was opened read-only (a look that must change nothing).
    #[error("store is open read-only: {operation} is not allowed")]
    ReadOnly {
        /// The operation refused.
        operation: &'static str,
    },
    /// The device is full; nothing was written by the failed operation.
    #[error("no space left on device during {operation}")]
    NoSpace {
        /// The operation that needed space.
        operation: &'static str,
    },
    /// An I/O error outside the engine (directory walks, renames, fsync).
    #[error("I/O error during {operation}{}: {source}", path.as_ref().map(|p| format!(" on {}", p.display())).unwrap_or_default())]
    Io {
        /// The operation that failed.
        operation: &'static str,
        /// The file or directory it failed on, when known.
        path: Option<PathBuf>,
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
    /// A long operation (a compaction) stopped because the node is shutting down; it left the
    /// store as it was before the operation started.
    #[error("{operation} was interrupted by shutdown; the store is as it was before it started")]
    Interrupted {
        /// The operation that stopped.
        operation: &'static str,
    },
    /// A long operation gave up because the store changed faster than it could follow (an
    /// online rewrite whose captured writes outgrew their bound); the store is as it was before
    /// the operation started, and it may be retried.
    #[error("{operation} gave up: {detail}; the store is unchanged")]
    Overtaken {
        /// The operation that gave up.
        operation: &'static str,
        /// What outran it.
        detail: String,
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
            Self::Io {
                operation,
                path: None,
                source,
            }
        }
    }

    /// [`StorageError::io`] naming the file or directory the error happened on.
    pub fn io_at(operation: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        match Self::io(operation, source) {
            Self::Io {
                operation, source, ..
            } => Self::Io {
                operation,
                path: Some(path.to_owned()),
                source,
            },
            other => other,
        }
    }
}
