//! Configuration mirroring CometBFT's `[storage]` section. Unknown keys anywhere are rejected:
//! CometBFT once ignored a misplaced key silently, and an operator deserves to hear about it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// CometBFT's default number of pruned heights between forced compactions.
pub const DEFAULT_COMPACTION_INTERVAL: u64 = 1000;
/// CometBFT's default pruning loop interval.
pub const DEFAULT_PRUNING_INTERVAL: Duration = Duration::from_secs(10);

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid TOML for this schema (unknown keys included).
    #[error("invalid config{}: {message}", path.as_ref().map(|p| format!(" in {}", p.display())).unwrap_or_default())]
    Parse {
        /// The file, when read from one.
        path: Option<PathBuf>,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value is out of range.
    #[error("invalid config value {key}: {reason}")]
    Invalid {
        /// The dotted key.
        key: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

/// The whole file: only a `[storage]` table is allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// CometBFT's `[storage]` section.
    #[serde(default)]
    pub storage: StorageConfig,
}

/// CometBFT's `[storage]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Compact the stores after pruning (CometBFT default: false).
    pub compact: bool,
    /// Pruned heights between compactions (CometBFT default: 1000; must be at least 1).
    pub compaction_interval: u64,
    /// Keep only the latest finalize-block response.
    pub discard_abci_responses: bool,
    /// `[storage.pruning]`.
    pub pruning: PruningConfig,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            compact: false,
            compaction_interval: DEFAULT_COMPACTION_INTERVAL,
            discard_abci_responses: false,
            pruning: PruningConfig::default(),
        }
    }
}

/// CometBFT's `[storage.pruning]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PruningConfig {
    /// How often the background pruner wakes, e.g. `"10s"` (must be positive).
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
}

impl Default for PruningConfig {
    fn default() -> Self {
        Self {
            interval: DEFAULT_PRUNING_INTERVAL,
        }
    }
}

impl Config {
    /// Parses and validates TOML text.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        Self::parse(text, None)
    }

    /// Reads, parses and validates a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, Some(path))
    }

    fn parse(text: &str, path: Option<&Path>) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.map(Path::to_owned),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks value ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.storage.compaction_interval == 0 {
            return Err(ConfigError::Invalid {
                key: "storage.compaction_interval",
                reason: "must be at least 1",
            });
        }
        if self.storage.pruning.interval.is_zero() {
            return Err(ConfigError::Invalid {
                key: "storage.pruning.interval",
                reason: "must be positive",
            });
        }
        Ok(())
    }

    /// The file as TOML.
    pub fn to_toml_string(&self) -> String {
        // Serialising plain structs of bools, integers and durations cannot fail.
        toml::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_cometbft() {
        let c = Config::from_toml_str("").unwrap();
        assert!(!c.storage.compact);
        assert_eq!(c.storage.compaction_interval, 1000);
        assert!(!c.storage.discard_abci_responses);
        assert_eq!(c.storage.pruning.interval, Duration::from_secs(10));
    }

    #[test]
    fn full_section_parses() {
        let c = Config::from_toml_str(
            "[storage]\ncompact = true\ncompaction_interval = 50\ndiscard_abci_responses = true\n\
             [storage.pruning]\ninterval = \"1m 30s\"\n",
        )
        .unwrap();
        assert!(c.storage.compact);
        assert_eq!(c.storage.compaction_interval, 50);
        assert!(c.storage.discard_abci_responses);
        assert_eq!(c.storage.pruning.interval, Duration::from_secs(90));
    }

    #[test]
    fn misplaced_key_is_rejected_with_its_name() {
        // `compact` placed under [storage.pruning] is the kind of mistake CometBFT ignored.
        let err = Config::from_toml_str("[storage.pruning]\ncompact = true\n").unwrap_err();
        assert!(err.to_string().contains("compact"), "{err}");
        let err = Config::from_toml_str("[storag]\ncompact = true\n").unwrap_err();
        assert!(err.to_string().contains("storag"), "{err}");
    }

    #[test]
    fn bad_values_are_rejected() {
        let err = Config::from_toml_str("[storage]\ncompaction_interval = 0\n").unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                key: "storage.compaction_interval",
                ..
            }
        ));
        let err = Config::from_toml_str("[storage.pruning]\ninterval = \"0s\"\n").unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { .. }));
        let err = Config::from_toml_str("[storage]\ncompaction_interval = -3\n").unwrap_err();
        assert!(matches!(err, ConfigError::Parse { .. }));
        let err = Config::from_toml_str("[storage.pruning]\ninterval = \"soon\"\n").unwrap_err();
        assert!(matches!(err, ConfigError::Parse { .. }));
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = Config::load(Path::new("/nonexistent/reclaim.toml")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/reclaim.toml"));
    }

    #[test]
    fn round_trips_through_toml() {
        let mut c = Config::default();
        c.storage.compact = true;
        c.storage.pruning.interval = Duration::from_millis(1500);
        assert_eq!(Config::from_toml_str(&c.to_toml_string()).unwrap(), c);
    }
}
