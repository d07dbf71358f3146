//! The conformance suite against the rocksdb engine (feature `rocksdb`).
#![cfg(feature = "rocksdb")]

use std::path::Path;
use std::sync::Arc;

use reclaim::{KvStore, StorageError};

fn open(dir: &Path) -> Result<Arc<dyn KvStore>, StorageError> {
    Ok(Arc::new(reclaim::rocksdb::RocksStore::open(dir)?))
}

reclaim_conformance::conformance_suite!(rocksdb, open);
