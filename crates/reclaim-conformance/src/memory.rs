//! A factory for the in-memory engine that keeps each directory's store alive across
//! "reopens", so the suite runs against [`MemoryStore`] like against any engine.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use reclaim_core::{KvStore, MemoryStore, StorageError};

/// The [`MemoryStore`] registered under `path`, created empty on first use.
pub fn memory_store_at(path: &Path) -> MemoryStore {
    static STORES: OnceLock<Mutex<HashMap<PathBuf, MemoryStore>>> = OnceLock::new();
    STORES
        .get_or_init(Default::default)
        .lock()
        .entry(path.to_owned())
        .or_default()
        .clone()
}

/// The conformance factory for the in-memory engine.
pub fn open_memory(path: &Path) -> Result<Arc<dyn KvStore>, StorageError> {
    Ok(Arc::new(memory_store_at(path)))
}
