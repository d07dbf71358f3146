//! The conformance suite against the redb engine (feature `redb`).
#![cfg(feature = "redb")]

use std::path::Path;
use std::sync::Arc;

use reclaim::{KvStore, StorageError};

fn open(dir: &Path) -> Result<Arc<dyn KvStore>, StorageError> {
    Ok(Arc::new(reclaim::redb::RedbStore::open(dir)?))
}

reclaim_conformance::conformance_suite!(redb, open);
