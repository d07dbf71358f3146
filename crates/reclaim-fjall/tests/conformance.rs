//! The conformance suite on fjall.

use std::sync::Arc;

use reclaim_core::{KvStore, StorageError};
use reclaim_fjall::FjallStore;

fn open(dir: &std::path::Path) -> Result<Arc<dyn KvStore>, StorageError> {
    Ok(Arc::new(FjallStore::open(dir)?))
}

reclaim_conformance::conformance_suite!(fjall, open);
