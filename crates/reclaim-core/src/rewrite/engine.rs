//! What an engine provides to be rewritten online.

use std::path::Path;

use crate::error::StorageError;
use crate::kv::{Capabilities, KeyValue, KvStore, WriteBatch, WriteOptions};

/// An engine whose instances live one per directory, so that a [`super::GenerationalStore`]
/// can keep the live one and build the next one beside it.
///
/// Guarantees asked of an implementation: `open` with `create` makes a new, empty instance in
/// an empty directory, and without it refuses a directory whose files are lost
/// ([`StorageError::Missing`]) instead of creating an empty instance; `persist` returns only
/// when every write the instance acknowledged is on stable storage; an instance never writes
/// outside its directory.
pub trait GenerationEngine: Send + Sync + 'static {
    /// One instance of the engine (one generation).
    type Store: KvStore + 'static;

    /// The engine's name, for markers, logs and errors.
    fn name(&self) -> &'static str;

    /// Opens the instance in `dir`: a new, empty one when `create` (the directory exists and is
    /// empty), else the existing one.
    fn open(&self, dir: &Path, create: bool) -> Result<Self::Store, StorageError>;

    /// Makes every write `store` acknowledged durable.
    fn persist(&self, store: &Self::Store) -> Result<(), StorageError>;

    /// Closes `store` (in `dir`) for good, at shutdown: the next open finds it as a clean close
    /// leaves it. The default drops it.
    fn close(&self, store: Self::Store, dir: &Path) -> Result<(), StorageError> {
        let _ = dir;
        drop(store);
        Ok(())
    }

    /// Closes `store` whose directory `dir` is removed next (an old or abandoned generation):
    /// work whose only use is the next open may be skipped. The default is [`Self::close`].
    fn retire(&self, store: Self::Store, dir: &Path) -> Result<(), StorageError> {
        self.close(store, dir)
    }

    /// Forgets anything this process keeps about the instance in `dir` (a cached handle)
    /// before that directory is removed without having been opened by this store.
    fn forget(&self, dir: &Path) {
        let _ = dir;
    }

    /// Free bytes the engine must always leave on its file system (a rewrite needs this on top
    /// of the copy); 0 when it copes with a full disk.
    fn free_space_reserve(&self) -> u64 {
        0
    }

    /// What one instance promises; the generational store declares the same, except that its
    /// compaction is [`crate::kv::CompactionAccess::Online`] and rewrites the whole store.
    fn capabilities(&self) -> Capabilities;

    /// The engine's side keyspace, if it has one: with it, a rewrite writes the node's writes
    /// once, into the new generation only (see [`crate::rewrite`]); without it, they are
    /// written to the live generation and replayed onto the new one.
    fn side_keyspace(&self) -> Option<&dyn SideKeyspace<Self::Store>> {
        None
    }
}

/// A second keyspace in each instance of an engine, written in the same atomic transaction as
/// a batch of the main one: where a write-once rewrite records the deletes it must not let
/// the frozen generation show again (its tombstones). The main keyspace never sees it: reads,
/// scans, space figures and the copy of a later rewrite leave it out.
///
/// Guarantees asked of an implementation: after a crash, an instance holds a batch and its
/// side entries together or neither, with the durability `options` asked for.
pub trait SideKeyspace<S>: Send + Sync {
    /// Applies `batch` to `store` and puts every `side` entry into its side keyspace, in one
    /// atomic transaction.
    fn write_with_side(
        &self,
        store: &S,
        batch: WriteBatch,
        side: Vec<KeyValue>,
        options: WriteOptions,
    ) -> Result<(), StorageError>;

    /// Every entry of the side keyspace, in key order.
    fn side_entries(&self, store: &S) -> Result<Vec<KeyValue>, StorageError>;

    /// Removes every entry of the side keyspace (durable with the next write that is).
    fn clear_side(&self, store: &S) -> Result<(), StorageError>;
}
