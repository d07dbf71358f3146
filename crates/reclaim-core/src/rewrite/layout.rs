//! Where a generational store keeps its generations, and which one is live.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::dir::write_durably;
use crate::error::StorageError;

/// The file naming the live generation (its number in decimal).
pub const CURRENT_FILE: &str = "CURRENT";

/// The file naming the generation a write-once rewrite builds (see [`crate::rewrite`]): while it
/// exists and names a generation other than `CURRENT`'s, that generation holds the writes made
/// since the rewrite began and `CURRENT`'s is frozen.
pub const BUILDING_FILE: &str = "BUILDING";

/// The prefix of every generation directory's name.
const GENERATION_PREFIX: &str = "gen-";

/// The generations of a store directory: `gen-NNNNNN/` directories and the `CURRENT` pointer.
#[derive(Debug, Clone)]
pub struct GenerationLayout {
    root: PathBuf,
}

impl GenerationLayout {
    /// The layout of the store directory `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The store directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of generation `number`.
    pub fn dir(&self, number: u64) -> PathBuf {
        self.root.join(Self::dir_name(number))
    }

    /// The name of generation `number`'s directory inside the store directory.
    pub fn dir_name(number: u64) -> String {
        format!("{GENERATION_PREFIX}{number:06}")
    }

    /// The pointer file.
    pub fn current_path(&self) -> PathBuf {
        self.root.join(CURRENT_FILE)
    }

    /// The building pointer file.
    pub fn building_path(&self) -> PathBuf {
        self.root.join(BUILDING_FILE)
    }

    /// The live generation's number; `None` when there is no pointer. A pointer that does not
    /// hold a number is [`StorageError::Corrupt`].
    pub fn read_current(&self, engine: &'static str) -> Result<Option<u64>, StorageError> {
        read_pointer(&self.current_path(), engine)
    }

    /// The generation a write-once rewrite builds; `None` when there is no building pointer.
    pub fn read_building(&self, engine: &'static str) -> Result<Option<u64>, StorageError> {
        read_pointer(&self.building_path(), engine)
    }

    /// Names generation `number` as the one being built, durably.
    pub fn set_building(&self, number: u64) -> Result<(), StorageError> {
        write_durably(&self.building_path(), number.to_string().as_bytes())
    }

    /// Removes the building pointer, durably (nothing when there is none).
    pub fn clear_building(&self) -> Result<(), StorageError> {
        let path = self.building_path();
        match std::fs::remove_file(&path) {
            Ok(()) => crate::dir::sync_dir(&self.root),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::io_at("remove BUILDING", &path, e)),
        }
    }

    /// Names generation `number` live, durably: after a crash `CURRENT` names either the old
    /// generation or this one.
    pub fn set_current(&self, number: u64) -> Result<(), StorageError> {
        write_durably(&self.current_path(), number.to_string().as_bytes())
    }

    /// The numbers of every generation directory present, ascending.
    pub fn generations(&self) -> Result<Vec<u64>, StorageError> {
        let entries = std::fs::read_dir(&self.root)
            .map_err(|e| StorageError::io_at("list store", &self.root, e))?;
        let mut numbers = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| StorageError::io_at("list store", &self.root, e))?;
            let name = entry.file_name();
            if let Some(number) = name
                .to_str()
                .and_then(|n| n.strip_prefix(GENERATION_PREFIX))
                .and_then(|n| n.parse::<u64>().ok())
            {
                numbers.push(number);
            }
        }
        numbers.sort_unstable();
        Ok(numbers)
    }

    /// Removes generation `number`'s directory, if there is one, at once.
    pub fn remove(&self, number: u64) -> Result<(), StorageError> {
        let dir = self.dir(number);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::io_at("remove generation", &dir, e)),
        }
    }

    /// Removes generation `number`'s directory, shrinking each large file in steps of
    /// `step_bytes` with `pause` between them first: unlinking a GiB file in one go frees all of
    /// its extents in one journal transaction, and the node's own fsyncs wait behind it (the
    /// reason RocksDB rate-limits file deletions). Once `hurry` returns true (a shutdown), the
    /// rest goes at once. The directory is no longer named by `CURRENT`, so a crash midway only
    /// leaves a shorter stale generation, removed at the next open.
    pub fn remove_gradually(
        &self,
        number: u64,
        step_bytes: u64,
        pause: std::time::Duration,
        hurry: &dyn Fn() -> bool,
    ) -> Result<(), StorageError> {
        let dir = self.dir(number);
        let step = step_bytes.max(1);
        for file in files_under(&dir)? {
            let Ok(meta) = std::fs::metadata(&file) else {
                continue;
            };
            let mut len = meta.len();
            if len <= step {
                continue;
            }
            let handle = std::fs::OpenOptions::new()
                .write(true)
                .open(&file)
                .map_err(|e| StorageError::io_at("open a retired file", &file, e))?;
            while len > step && !hurry() {
                len -= step;
                handle
                    .set_len(len)
                    .map_err(|e| StorageError::io_at("shrink a retired file", &file, e))?;
                std::thread::sleep(pause);
            }
        }
        self.remove(number)
    }
}

/// The generation number a pointer file holds; `None` when there is none.
fn read_pointer(path: &Path, engine: &'static str) -> Result<Option<u64>, StorageError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .trim()
            .parse::<u64>()
            .map(Some)
            .map_err(|_| StorageError::Corrupt {
                engine,
                path: path.to_owned(),
                detail: format!("{name} holds {text:?}, not a generation number"),
            }),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::io_at("read a generation pointer", path, e)),
    }
}

/// Every regular file under `dir`, recursively (none when it does not exist).
fn files_under(dir: &Path) -> Result<Vec<PathBuf>, StorageError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StorageError::io_at("list generation", dir, e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io_at("list generation", dir, e))?;
        let path = entry.path();
        match entry.file_type() {
            Ok(kind) if kind.is_dir() => files.extend(files_under(&path)?),
            Ok(kind) if kind.is_file() => files.push(path),
            _ => {}
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_and_generations_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let layout = GenerationLayout::new(dir.path());
        assert_eq!(layout.read_current("e").unwrap(), None);
        layout.set_current(7).unwrap();
        assert_eq!(layout.read_current("e").unwrap(), Some(7));
        std::fs::create_dir(layout.dir(7)).unwrap();
        std::fs::create_dir(layout.dir(12)).unwrap();
        std::fs::create_dir(dir.path().join("gen-x")).unwrap();
        assert_eq!(layout.generations().unwrap(), vec![7, 12]);
        std::fs::write(layout.dir(12).join("big"), vec![1u8; 10_000]).unwrap();
        layout
            .remove_gradually(12, 1_000, std::time::Duration::ZERO, &|| false)
            .unwrap();
        assert_eq!(layout.generations().unwrap(), vec![7]);
        // A hurried removal skips the steps (and their minute-long pauses) and still removes
        // everything.
        std::fs::create_dir(layout.dir(13)).unwrap();
        std::fs::write(layout.dir(13).join("big"), vec![1u8; 10_000]).unwrap();
        let pause = std::time::Duration::from_secs(60);
        let started = std::time::Instant::now();
        layout.remove_gradually(13, 1_000, pause, &|| true).unwrap();
        assert!(started.elapsed() < pause);
        assert_eq!(layout.generations().unwrap(), vec![7]);
        std::fs::write(layout.current_path(), "seven").unwrap();
        let err = layout.read_current("e").unwrap_err();
        assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
    }
}
