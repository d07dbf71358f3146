//! Configuration mirroring CometBFT's `[storage]` section. Unknown keys anywhere are rejected:
//! CometBFT once ignored a misplaced key silently, and an operator deserves to hear about it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reclaim_core::{CommitLatencyGate, LoadSignal, Pacing, TimeWindow};
use serde::{Deserialize, Serialize};

/// CometBFT's default number of pruned heights between forced compactions.
pub const DEFAULT_COMPACTION_INTERVAL: u64 = 1000;
/// CometBFT's default pruning loop interval.
pub const DEFAULT_PRUNING_INTERVAL: Duration = Duration::from_secs(10);

/// The largest configuration file read (1 MiB): anything larger is not a configuration.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// The longest duration any setting accepts (a day): a longer pause, wait or interval is a
/// typo, not a plan.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

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

/// Which rule decides, with `compact = true`, when pruning is followed by a compaction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompactionPolicyKind {
    /// CometBFT's: every `compaction_interval` pruned heights.
    Interval,
    /// reclaim's, the default: at most every `compaction_interval` pruned heights, and only
    /// when the engines estimate enough reclaimable space (`compaction_min_reclaimable_bytes`
    /// and `_percent`); by the interval alone where an engine gives no estimate.
    #[default]
    Space,
}

/// CometBFT's `[storage]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Compact the stores after pruning (CometBFT default: false).
    pub compact: bool,
    /// Pruned heights between compactions (CometBFT default: 1000; must be at least 1); the
    /// space policy's fallback when an engine gives no estimate.
    pub compaction_interval: u64,
    /// reclaim: `"space"` (the default) or `"interval"` (CometBFT's).
    pub compaction_policy: CompactionPolicyKind,
    /// reclaim, space policy: reclaimable bytes below which compaction waits (default 64 MiB).
    pub compaction_min_reclaimable_bytes: u64,
    /// reclaim, space policy: reclaimable share of the bytes on disk, in percent (1–100),
    /// below which compaction waits (default 30).
    pub compaction_min_reclaimable_percent: u8,
    /// Keep only the latest finalize-block response.
    pub discard_abci_responses: bool,
    /// `[storage.pruning]`.
    pub pruning: PruningConfig,
    /// `[storage.compaction_pacing]`.
    pub compaction_pacing: PacingConfig,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            compact: false,
            compaction_interval: DEFAULT_COMPACTION_INTERVAL,
            compaction_policy: CompactionPolicyKind::Space,
            compaction_min_reclaimable_bytes: reclaim_core::SpaceAwarePolicy::DEFAULT
                .min_reclaimable_bytes,
            compaction_min_reclaimable_percent: reclaim_core::SpaceAwarePolicy::DEFAULT
                .min_reclaimable_percent,
            discard_abci_responses: false,
            pruning: PruningConfig::default(),
            compaction_pacing: PacingConfig::default(),
        }
    }
}

/// CometBFT's `[storage.pruning]` section, plus reclaim's run bounds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PruningConfig {
    /// How often the background pruner wakes, e.g. `"10s"` (must be positive).
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Heights each store prunes per run at most; unset: unbounded (must be at least 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_heights_per_run: Option<u64>,
    /// Wall time a run may take before it stops at a batch boundary, e.g. `"500ms"` (each
    /// store still prunes one batch per run); unset: unbounded (must be positive).
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub max_run_time: Option<Duration>,
    /// `[storage.pruning.data_companion]`.
    pub data_companion: DataCompanionConfig,
}

impl Default for PruningConfig {
    fn default() -> Self {
        Self {
            interval: DEFAULT_PRUNING_INTERVAL,
            max_heights_per_run: None,
            max_run_time: None,
            data_companion: DataCompanionConfig::default(),
        }
    }
}

/// CometBFT's `[storage.pruning.data_companion]`: a downstream consumer whose retain height
/// holds pruning back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataCompanionConfig {
    /// Whether the companion's retain height counts (CometBFT default: false).
    pub enabled: bool,
    /// The companion's retain height until it sets one (0: nothing may be pruned yet).
    pub initial_block_retain_height: u64,
}

/// reclaim's `[storage.compaction_pacing]`: how background compaction is paced. The defaults
/// are unpaced (CometBFT's behaviour).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PacingConfig {
    /// Target bytes per compaction slice; 0 compacts each range in one call.
    pub slice_bytes: u64,
    /// Pause between slices, e.g. `"100ms"`.
    #[serde(with = "humantime_serde")]
    pub pause: Duration,
    /// Hold slices back while the average commit latency is above this, e.g. `"200ms"`.
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub busy_commit_latency: Option<Duration>,
    /// Run a slice anyway after being held back this long by load, e.g. `"10m"`.
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub max_deferral: Option<Duration>,
    /// UTC windows in which slices may start, e.g. `["01:00-05:00"]`; empty: any time.
    pub windows: Vec<String>,
    /// Cap on compaction's own pace, bytes of engine data per second, on every engine
    /// (`Pacing::io_bytes_per_sec`: slices and rewrite steps are spread out; flushes and the
    /// node's writes are never slowed). Unset: no cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub io_bytes_per_sec: Option<u64>,
}

impl PacingConfig {
    /// The [`Pacing`] this section describes, with `load` as the load signal when
    /// `busy_commit_latency` is set (the caller feeds it).
    pub fn to_pacing(&self) -> Result<(Pacing, Option<Arc<CommitLatencyGate>>), ConfigError> {
        let windows = self
            .windows
            .iter()
            .map(|w| TimeWindow::parse(w))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| ConfigError::Invalid {
                key: "storage.compaction_pacing.windows",
                reason: "each window must be HH:MM-HH:MM in UTC",
            })?;
        let mut pacing = Pacing::unpaced()
            .with_slice_bytes(self.slice_bytes)
            .with_pause(self.pause)
            .with_windows(windows);
        pacing.max_deferral = self.max_deferral;
        pacing.io_bytes_per_sec = self.io_bytes_per_sec;
        let gate = self.busy_commit_latency.map(|threshold| {
            let gate = Arc::new(CommitLatencyGate::new(threshold));
            pacing.load = Some(Arc::clone(&gate) as Arc<dyn LoadSignal>);
            gate
        });
        Ok((pacing, gate))
    }
}

impl Config {
    /// Parses and validates TOML text.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        Self::parse(text, None)
    }

    /// Reads, parses and validates a TOML file: a regular file (a device or a pipe could be
    /// read forever) of at most [`MAX_CONFIG_BYTES`], in UTF-8.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        use std::io::Read;
        let read_error = |source: std::io::Error| ConfigError::Read {
            path: path.to_owned(),
            source,
        };
        let invalid = |message: String| ConfigError::Parse {
            path: Some(path.to_owned()),
            message,
        };
        let file = std::fs::File::open(path).map_err(read_error)?;
        if !file.metadata().map_err(read_error)?.is_file() {
            return Err(invalid("not a regular file".into()));
        }
        let mut bytes = Vec::new();
        file.take(MAX_CONFIG_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
        if bytes.len() as u64 > MAX_CONFIG_BYTES {
            return Err(invalid(format!(
                "larger than {MAX_CONFIG_BYTES} bytes; not a configuration file"
            )));
        }
        let text = String::from_utf8(bytes).map_err(|e| invalid(format!("not UTF-8 text: {e}")))?;
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
        if !(1..=100).contains(&self.storage.compaction_min_reclaimable_percent) {
            return Err(ConfigError::Invalid {
                key: "storage.compaction_min_reclaimable_percent",
                reason: "must be from 1 to 100",
            });
        }
        if self.storage.pruning.interval.is_zero() {
            return Err(ConfigError::Invalid {
                key: "storage.pruning.interval",
                reason: "must be positive",
            });
        }
        if self.storage.compaction_pacing.io_bytes_per_sec == Some(0) {
            return Err(ConfigError::Invalid {
                key: "storage.compaction_pacing.io_bytes_per_sec",
                reason: "must be at least 1 (leave it out for no cap)",
            });
        }
        if self.storage.pruning.max_heights_per_run == Some(0) {
            return Err(ConfigError::Invalid {
                key: "storage.pruning.max_heights_per_run",
                reason: "must be at least 1 (leave it out for no bound)",
            });
        }
        if self
            .storage
            .pruning
            .max_run_time
            .is_some_and(|d| d.is_zero())
        {
            return Err(ConfigError::Invalid {
                key: "storage.pruning.max_run_time",
                reason: "must be positive (leave it out for no bound)",
            });
        }
        let pacing = &self.storage.compaction_pacing;
        let durations = [
            (
                "storage.pruning.interval",
                Some(self.storage.pruning.interval),
            ),
            (
                "storage.pruning.max_run_time",
                self.storage.pruning.max_run_time,
            ),
            ("storage.compaction_pacing.pause", Some(pacing.pause)),
            (
                "storage.compaction_pacing.busy_commit_latency",
                pacing.busy_commit_latency,
            ),
            (
                "storage.compaction_pacing.max_deferral",
                pacing.max_deferral,
            ),
        ];
        for (key, value) in durations {
            if value.is_some_and(|d| d > MAX_DURATION) {
                return Err(ConfigError::Invalid {
                    key,
                    reason: "must be at most a day (24h)",
                });
            }
        }
        if pacing.busy_commit_latency.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::Invalid {
                key: "storage.compaction_pacing.busy_commit_latency",
                reason: "must be positive (leave it out for no load signal)",
            });
        }
        if pacing.slice_bytes > 1 << 40 {
            return Err(ConfigError::Invalid {
                key: "storage.compaction_pacing.slice_bytes",
                reason: "must be at most 1 TiB (0: unpaced)",
            });
        }
        pacing.to_pacing()?;
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
    fn pacing_and_run_bounds_parse_and_validate() {
        let c = Config::from_toml_str(
            "[storage.pruning]\nmax_heights_per_run = 500\nmax_run_time = \"250ms\"\n\
             [storage.pruning.data_companion]\nenabled = true\ninitial_block_retain_height = 7\n\
             [storage.compaction_pacing]\nslice_bytes = 1048576\npause = \"50ms\"\n\
             busy_commit_latency = \"200ms\"\nmax_deferral = \"10m\"\nwindows = [\"01:00-05:00\"]\n\
             io_bytes_per_sec = 33554432\n",
        )
        .unwrap();
        assert_eq!(c.storage.pruning.max_heights_per_run, Some(500));
        assert_eq!(
            c.storage.pruning.max_run_time,
            Some(Duration::from_millis(250))
        );
        assert!(c.storage.pruning.data_companion.enabled);
        let (pacing, gate) = c.storage.compaction_pacing.to_pacing().unwrap();
        assert_eq!(pacing.max_slice_bytes, 1 << 20);
        assert_eq!(pacing.windows.len(), 1);
        assert!(gate.is_some() && pacing.load.is_some());
        assert_eq!(c.storage.compaction_pacing.io_bytes_per_sec, Some(32 << 20));
        assert_eq!(Config::from_toml_str(&c.to_toml_string()).unwrap(), c);
        for bad in [
            "[storage.pruning]\nmax_heights_per_run = 0\n",
            "[storage.pruning]\nmax_run_time = \"0s\"\n",
            "[storage.compaction_pacing]\nwindows = [\"1am-5am\"]\n",
            "[storage.compaction_pacing]\nslices = 3\n",
            "[storage.compaction_pacing]\nio_bytes_per_sec = 0\n",
        ] {
            assert!(Config::from_toml_str(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn the_space_policy_is_selected_and_tuned_in_storage() {
        let c = Config::from_toml_str(
            "[storage]\ncompact = true\ncompaction_policy = \"space\"\n\
             compaction_min_reclaimable_bytes = 1048576\ncompaction_min_reclaimable_percent = 20\n",
        )
        .unwrap();
        assert_eq!(c.storage.compaction_policy, CompactionPolicyKind::Space);
        assert_eq!(c.storage.compaction_min_reclaimable_bytes, 1 << 20);
        for bad in [
            "[storage]\ncompaction_policy = \"sometimes\"\n",
            "[storage]\ncompaction_min_reclaimable_percent = 0\n",
            "[storage]\ncompaction_min_reclaimable_percent = 101\n",
        ] {
            assert!(Config::from_toml_str(bad).is_err(), "{bad} accepted");
        }
        // Space-aware by default; CometBFT's interval is one line away.
        assert_eq!(
            Config::from_toml_str("").unwrap().storage.compaction_policy,
            CompactionPolicyKind::Space
        );
        assert_eq!(
            Config::from_toml_str("[storage]\ncompaction_policy = \"interval\"\n")
                .unwrap()
                .storage
                .compaction_policy,
            CompactionPolicyKind::Interval
        );
    }

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
    fn out_of_range_durations_and_sizes_are_refused() {
        for (bad, key) in [
            (
                "[storage.pruning]\ninterval = \"400days\"\n",
                "storage.pruning.interval",
            ),
            (
                "[storage.compaction_pacing]\npause = \"2days\"\n",
                "storage.compaction_pacing.pause",
            ),
            (
                "[storage.compaction_pacing]\nbusy_commit_latency = \"0s\"\n",
                "storage.compaction_pacing.busy_commit_latency",
            ),
            (
                "[storage.compaction_pacing]\nslice_bytes = 9999999999999999\n",
                "storage.compaction_pacing.slice_bytes",
            ),
        ] {
            match Config::from_toml_str(bad) {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key, "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn devices_huge_and_binary_files_are_refused_without_reading_them_whole() {
        let err = Config::load(Path::new("/dev/zero")).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.toml");
        std::fs::write(&big, vec![b'#'; (MAX_CONFIG_BYTES + 10) as usize]).unwrap();
        let err = Config::load(&big).unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
        let binary = dir.path().join("binary.toml");
        std::fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
        let err = Config::load(&binary).unwrap_err();
        assert!(err.to_string().contains("UTF-8"), "{err}");
    }

    proptest::proptest! {
        /// Any text is a configuration or a typed error, never a panic.
        #[test]
        fn any_text_parses_or_is_refused(text in proptest::prelude::any::<String>()) {
            let _ = Config::from_toml_str(&text);
        }

        /// Any TOML-shaped text under [storage] too.
        #[test]
        fn any_storage_values_parse_or_are_refused(
            key in "(compact|compaction_interval|interval|pause|slice_bytes|windows|max_run_time)",
            value in "[-a-z0-9\"\\[\\]:., ]{0,24}",
            table in "(storage|storage\\.pruning|storage\\.compaction_pacing)",
        ) {
            let _ = Config::from_toml_str(&format!("[{table}]\n{key} = {value}\n"));
        }
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
