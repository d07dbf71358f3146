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
        self.engine().name()
    }

    fn from_name(name: &str) -> Option<Self> {
        [Self::Redb, Self::Sled, Self::Rocksdb]
            .into_iter()
            .find(|b| b.name() == name)
    }

    /// The facade's engine of the same name.
    fn engine(self) -> reclaim::Engine {
        match self {
            Self::Redb => reclaim::Engine::Redb,
            Self::Sled => reclaim::Engine::Sled,
            Self::Rocksdb => reclaim::Engine::Rocksdb,
        }
    }

    /// Opens (creating if needed) the store in `dir` with this engine.
    pub fn open(self, dir: &Path) -> anyhow::Result<Arc<dyn KvStore>> {
        self.open_with(dir, &reclaim::OpenOptions::default())
    }

    /// [`Backend::open`] with `options` (the cap on compaction I/O:
    /// `[storage.compaction_pacing] io_bytes_per_sec`, RocksDB only).
    pub fn open_with(
        self,
        dir: &Path,
        options: &reclaim::OpenOptions,
    ) -> anyhow::Result<Arc<dyn KvStore>> {
        let engine = self.engine();
        if !engine.is_built() {
            bail!(
                "this reclaim was built without the {0} backend; rebuild with `--features {0}`",
                self.name()
            );
        }
        Ok(engine.open(dir, options)?)
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
