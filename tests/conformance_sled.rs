//! The conformance suite against the sled engine (feature `sled`).
#![cfg(feature = "sled")]

use std::path::Path;
use std::sync::Arc;

use reclaim::{KvStore, StorageError};

fn open(dir: &Path) -> Result<Arc<dyn KvStore>, StorageError> {
    Ok(Arc::new(reclaim::sled::SledStore::open(dir)?))
}

reclaim_conformance::conformance_suite!(sled, open);
