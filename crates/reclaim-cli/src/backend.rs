//! Choosing, detecting and opening an engine by name.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use reclaim::KvStore;

/// The engines this binary was built with, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// redb: pure Rust, the default.
    Redb,
    /// sled 0.34 (feature `sled`).
    Sled,
    /// RocksDB (feature `rocksdb`).
    Rocksdb,
}

impl Backend {
    /// The engine name written in store markers.
    pub fn name(self) -> &'static str {
        match self {
            Self::Redb => "redb",
            Self::Sled => "sled",
            Self::Rocksdb => "rocksdb",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        [Self::Redb, Self::Sled, Self::Rocksdb]
            .into_iter()
            .find(|b| b.name() == name)
    }

    /// Opens (creating if needed) the store in `dir` with this engine.
    pub fn open(self, dir: &Path) -> anyhow::Result<Arc<dyn KvStore>> {
        self.open_with_io_limit(dir, None)
    }

    /// [`Backend::open`], the engine's background compaction I/O capped at `io_limit` bytes
    /// per second where it can enforce a cap (`[storage.compaction_pacing] io_bytes_per_sec`:
    /// RocksDB's rate limiter; redb and sled have none).
    pub fn open_with_io_limit(
        self,
        dir: &Path,
        io_limit: Option<u64>,
    ) -> anyhow::Result<Arc<dyn KvStore>> {
        #[cfg(not(feature = "rocksdb"))]
        let _ = io_limit;
        let store: Arc<dyn KvStore> = match self {
            #[cfg(feature = "redb")]
            Self::Redb => Arc::new(reclaim::redb::RedbStore::open(dir)?),
            #[cfg(feature = "sled")]
            Self::Sled => Arc::new(reclaim::sled::SledStore::open(dir)?),
            #[cfg(feature = "rocksdb")]
            Self::Rocksdb => Arc::new(reclaim::rocksdb::RocksStore::open_with(
                dir,
                reclaim::rocksdb::RocksOptions {
                    compaction_rate_limit_bytes_per_sec: io_limit,
                    ..reclaim::rocksdb::RocksOptions::default()
                },
            )?),
            #[allow(unreachable_patterns)]
            other => bail!(
                "this reclaim was built without the {0} backend; rebuild with `--features {0}`",
                other.name()
            ),
        };
        Ok(store)
    }
}

/// Detects the engine of an existing store directory and opens it, refusing a missing
/// directory, one that is not a reclaim store, or one that a running node holds.
pub fn open_existing(
    dir: &Path,
    expected: Option<Backend>,
) -> anyhow::Result<(Backend, Arc<dyn KvStore>)> {
    if !dir.exists() {
        bail!("store directory {} does not exist", dir.display());
    }
    if !dir.is_dir() {
        bail!("{} is a file, not a store directory", dir.display());
    }
    let name = reclaim::core::dir::detect_engine(dir)?.with_context(|| {
        format!(
            "{} is not a reclaim store (no {} marker)",
            dir.display(),
            reclaim::core::dir::MARKER_FILE
        )
    })?;
    let backend = Backend::from_name(&name)
        .with_context(|| format!("{} holds a store of unknown engine {name:?}", dir.display()))?;
    if let Some(expected) = expected
        && expected != backend
    {
        bail!(
            "{} holds a {} store, not a {} store",
            dir.display(),
            backend.name(),
            expected.name()
        );
    }
    if reclaim::core::dir::is_locked(dir)? {
        bail!(
            "store at {} is in use by another process (is a node running on it?); nothing was changed",
            dir.display()
        );
    }
    Ok((backend, backend.open(dir)?))
}
