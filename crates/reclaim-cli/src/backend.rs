//! Choosing, detecting and opening an on-disk engine: the facade's [`Engine`], parsed from the
//! command line and named in reports.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use reclaim::{Engine, KvStore};

/// The command-line parser of `--backend`: the on-disk engines by name (each listed in
/// `--help`, whether this build has it or not; opening one it has not is a clear error).
pub fn engine_parser() -> impl TypedValueParser<Value = Engine> {
    PossibleValuesParser::new(Engine::ON_DISK.map(Engine::name)).try_map(|name: String| {
        Engine::from_name(&name).ok_or_else(|| format!("unknown engine {name:?}"))
    })
}

/// Serialises an engine as its name (for `#[serde(serialize_with)]`).
pub fn serialize_engine<S: serde::Serializer>(
    engine: &Engine,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(engine.name())
}

/// Serialises a path as text, replacing what is not UTF-8 (a report must never fail after the
/// work it reports on was done).
pub fn serialize_path<S: serde::Serializer>(path: &Path, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&path.to_string_lossy())
}

/// Opens (creating if needed) the store in `dir` with `engine`, refusing an engine this build
/// lacks with the feature to enable.
pub fn open(
    engine: Engine,
    dir: &Path,
    options: &reclaim::OpenOptions,
) -> anyhow::Result<Arc<dyn KvStore>> {
    if !engine.is_built() {
        bail!(
            "this reclaim was built without the {0} backend; rebuild with `--features {0}`",
            engine.name()
        );
    }
    Ok(engine.open(dir, options)?)
}

/// Detects the engine of an existing store directory and opens it for a look that changes
/// nothing (shared lock, read-only), where the engine can; sled cannot, and is opened
/// read-write with a warning saying so. Refuses what [`open_existing`] refuses.
pub fn open_existing_read_only(
    dir: &Path,
    expected: Option<Engine>,
) -> anyhow::Result<(Engine, Arc<dyn KvStore>)> {
    let engine = detect(dir, expected)?;
    if !engine.can_open_read_only() {
        tracing::warn!(
            engine = engine.name(),
            "this engine cannot open a store read-only: it is opened read-write (sled writes a snapshot when it opens)"
        );
        return open_existing(dir, expected);
    }
    if !engine.is_built() {
        bail!(
            "this reclaim was built without the {0} backend; rebuild with `--features {0}`",
            engine.name()
        );
    }
    refuse_if_held(dir)?;
    Ok((engine, engine.open_read_only(dir)?))
}

/// Detects the engine of an existing store directory and opens it, refusing a missing
/// directory, one that is not a reclaim store, or one that a running node holds.
pub fn open_existing(
    dir: &Path,
    expected: Option<Engine>,
) -> anyhow::Result<(Engine, Arc<dyn KvStore>)> {
    open_existing_with(dir, expected, &reclaim::OpenOptions::default())
}

/// [`open_existing`] with the engine options a configuration asks for.
pub fn open_existing_with(
    dir: &Path,
    expected: Option<Engine>,
    options: &reclaim::OpenOptions,
) -> anyhow::Result<(Engine, Arc<dyn KvStore>)> {
    let engine = detect(dir, expected)?;
    refuse_if_held(dir)?;
    Ok((engine, open(engine, dir, options)?))
}

/// Refuses a store another process holds for writing (a running node).
fn refuse_if_held(dir: &Path) -> anyhow::Result<()> {
    if reclaim::core::dir::is_locked(dir)? {
        bail!(
            "store at {} is in use by another process (is a node running on it?); nothing was changed",
            dir.display()
        );
    }
    Ok(())
}

/// The engine of the existing store directory `dir`, refusing a missing directory, a file, a
/// directory that is not a reclaim store, or a store of another engine than `expected`.
fn detect(dir: &Path, expected: Option<Engine>) -> anyhow::Result<Engine> {
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
    let engine = Engine::from_name(&name)
        .filter(|engine| engine.is_on_disk())
        .with_context(|| format!("{} holds a store of unknown engine {name:?}", dir.display()))?;
    if let Some(expected) = expected
        && expected != engine
    {
        bail!(
            "{} holds a {} store, not a {} store",
            dir.display(),
            engine.name(),
            expected.name()
        );
    }
    Ok(engine)
}
