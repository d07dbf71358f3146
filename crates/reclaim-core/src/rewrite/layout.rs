//! Where a generational store keeps its generations, and which one is live.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::dir::write_durably;
use crate::error::StorageError;

/// The file naming the live generation (its number in decimal).
pub const CURRENT_FILE: &str = "CURRENT";

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
        self.root.join(format!("{GENERATION_PREFIX}{number:06}"))
    }

    /// The pointer file.
    pub fn current_path(&self) -> PathBuf {
        self.root.join(CURRENT_FILE)
    }

    /// The live generation's number; `None` when there is no pointer. A pointer that does not
    /// hold a number is [`StorageError::Corrupt`].
    pub fn read_current(&self, engine: &'static str) -> Result<Option<u64>, StorageError> {
        let path = self.current_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => text
                .trim()
                .parse::<u64>()
                .map(Some)
                .map_err(|_| StorageError::Corrupt {
                    engine,
                    path,
                    detail: format!("{CURRENT_FILE} holds {text:?}, not a generation number"),
                }),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io_at("read CURRENT", &path, e)),
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

    /// Removes generation `number`'s directory, if there is one.
    pub fn remove(&self, number: u64) -> Result<(), StorageError> {
        let dir = self.dir(number);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::io_at("remove generation", &dir, e)),
        }
    }
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
        layout.remove(12).unwrap();
        layout.remove(12).unwrap();
        assert_eq!(layout.generations().unwrap(), vec![7]);
        std::fs::write(layout.current_path(), "seven").unwrap();
        let err = layout.read_current("e").unwrap_err();
        assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
    }
}
