//! Retain heights held by more than one party (CometBFT's application retain height and its
//! data companion's block retain height), persisted, and combined into the effective one.
//!
//! Guarantees: each retain height only ever moves up; it is never set to 0, below the block
//! store's base or above its height (typed [`RetainHeightError`]s, nothing changed); every
//! accepted change is on disk (synced) before the setter returns, so a restart never lowers
//! what was promised. The effective retain height is the application's, held back by the
//! companion's when a companion is enabled; 0 means "prune nothing".

use std::sync::Arc;

use parking_lot::Mutex;
use reclaim_core::height::{decode_u64s, encode_u64s};
use reclaim_core::metric;
use reclaim_core::pruning::RetainHeightSource;
use reclaim_core::range::hex;
use reclaim_core::{KvStore, WriteBatch, WriteOptions};
use tracing::info;

use crate::block_store::BlockStore;
use crate::error::StoreError;
use crate::keys;
use crate::seal::{get_sealed, put_sealed};

const RETAIN_KEY: &[u8] = keys::RETAIN_HEIGHTS.key;

/// Who set a retain height.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetainSource {
    /// The application (ABCI `Commit` response's retain height).
    Application,
    /// The data companion (a downstream consumer that must read blocks before they go).
    Companion,
}

impl RetainSource {
    /// The name used in logs, errors and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Application => "application",
            Self::Companion => "companion",
        }
    }
}

impl std::fmt::Display for RetainSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A retain height that was refused; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum RetainHeightError {
    /// Heights start at 1.
    #[error("{party} retain height 0 is not a height: heights start at 1")]
    Zero {
        /// Who asked.
        party: RetainSource,
    },
    /// A retain height never goes down: data above the old one may already be gone.
    #[error("{party} retain height cannot be lowered from {current} to {requested}")]
    Lowered {
        /// Who asked.
        party: RetainSource,
        /// The height in force.
        current: u64,
        /// The height asked for.
        requested: u64,
    },
    /// The blocks below the base are gone; retaining them cannot be promised.
    #[error("{party} retain height {requested} is below the block store's base {base}")]
    BelowBase {
        /// Who asked.
        party: RetainSource,
        /// The height asked for.
        requested: u64,
        /// The block store's base.
        base: u64,
    },
    /// The chain has not reached the height.
    #[error("{party} retain height {requested} is above the block store's height {height}")]
    AboveHeight {
        /// Who asked.
        party: RetainSource,
        /// The height asked for.
        requested: u64,
        /// The block store's height.
        height: u64,
    },
    /// The companion's retain height was set while no companion is enabled.
    #[error("no data companion is enabled ([storage.pruning.data_companion] enabled = false)")]
    CompanionDisabled,
    /// Persisting the change failed; the height in force is unchanged.
    #[error("cannot persist the {party} retain height: {error}")]
    Store {
        /// Who asked.
        party: RetainSource,
        /// What failed.
        #[source]
        error: StoreError,
    },
}

/// The retain heights in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetainState {
    /// The application's retain height (0: not set, nothing pruned).
    pub application: u64,
    /// The companion's retain height when a companion is enabled (`Some(0)`: not set yet,
    /// nothing pruned).
    pub companion: Option<u64>,
}

impl RetainState {
    /// The height below which pruning may delete: the application's, held back by the
    /// companion's. 0 means nothing may be pruned.
    pub fn effective(&self) -> u64 {
        match self.companion {
            Some(companion) => self.application.min(companion),
            None => self.application,
        }
    }
}

/// The persisted retain heights of one node.
pub struct RetainHeights {
    db: Arc<dyn KvStore>,
    blocks: Arc<BlockStore>,
    state: Mutex<RetainState>,
}

impl std::fmt::Debug for RetainHeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetainHeights")
            .field("state", &*self.state.lock())
            .finish()
    }
}

impl RetainHeights {
    /// Opens the retain heights kept in the block store's engine. With `companion_enabled`,
    /// the companion's height starts at what was persisted, else at
    /// `initial_companion_height` (CometBFT's `initial_block_retain_height`).
    pub fn open(
        blocks: Arc<BlockStore>,
        companion_enabled: bool,
        initial_companion_height: u64,
    ) -> Result<Self, StoreError> {
        let db = Arc::clone(blocks.db());
        let stored = match get_sealed(db.as_ref(), "retain heights", RETAIN_KEY)? {
            Some(bytes) => {
                let [application, companion] =
                    decode_u64s::<2>(&bytes).ok_or_else(|| StoreError::CorruptRecord {
                        what: "retain heights",
                        key: hex(RETAIN_KEY),
                        detail: format!("{} bytes, expected 16", bytes.len()),
                    })?;
                (application, companion)
            }
            None => (0, 0),
        };
        let state = RetainState {
            application: stored.0,
            companion: companion_enabled.then(|| stored.1.max(initial_companion_height)),
        };
        let heights = Self {
            db,
            blocks,
            state: Mutex::new(state),
        };
        heights.publish(&state);
        Ok(heights)
    }

    /// The retain heights in force.
    pub fn state(&self) -> RetainState {
        *self.state.lock()
    }

    /// The effective retain height (see [`RetainState::effective`]).
    pub fn effective(&self) -> u64 {
        self.state().effective()
    }

    /// Sets the application's retain height (durably). Equal to the current one: no-op.
    pub fn set_application(&self, height: u64) -> Result<RetainState, RetainHeightError> {
        self.set(RetainSource::Application, height)
    }

    /// Sets the companion's retain height (durably). Equal to the current one: no-op.
    pub fn set_companion(&self, height: u64) -> Result<RetainState, RetainHeightError> {
        self.set(RetainSource::Companion, height)
    }

    fn set(&self, source: RetainSource, height: u64) -> Result<RetainState, RetainHeightError> {
        let mut state = self.state.lock();
        let current = match source {
            RetainSource::Application => state.application,
            RetainSource::Companion => state
                .companion
                .ok_or(RetainHeightError::CompanionDisabled)?,
        };
        if height == 0 {
            return Err(RetainHeightError::Zero { party: source });
        }
        if height == current {
            return Ok(*state);
        }
        if height < current {
            return Err(RetainHeightError::Lowered {
                party: source,
                current,
                requested: height,
            });
        }
        let bounds = self.blocks.bounds();
        if height < bounds.base {
            return Err(RetainHeightError::BelowBase {
                party: source,
                requested: height,
                base: bounds.base,
            });
        }
        if height > bounds.height {
            return Err(RetainHeightError::AboveHeight {
                party: source,
                requested: height,
                height: bounds.height,
            });
        }
        let mut next = *state;
        match source {
            RetainSource::Application => next.application = height,
            RetainSource::Companion => next.companion = Some(height),
        }
        let mut batch = WriteBatch::new();
        put_sealed(
            &mut batch,
            RETAIN_KEY.to_vec(),
            &encode_u64s(&[next.application, next.companion.unwrap_or(0)]),
        );
        self.db
            .write(batch, WriteOptions::DURABLE)
            .map_err(|e| RetainHeightError::Store {
                party: source,
                error: e.into(),
            })?;
        *state = next;
        info!(
            source = source.as_str(),
            retain_height = height,
            effective = next.effective(),
            "retain height set"
        );
        self.publish(&next);
        Ok(next)
    }

    fn publish(&self, state: &RetainState) {
        metrics::gauge!(metric::RETAIN_HEIGHT, "source" => "application")
            .set(state.application as f64);
        if let Some(companion) = state.companion {
            metrics::gauge!(metric::RETAIN_HEIGHT, "source" => "companion").set(companion as f64);
        }
        metrics::gauge!(metric::RETAIN_HEIGHT, "source" => "effective")
            .set(state.effective() as f64);
    }
}

impl RetainHeightSource for RetainHeights {
    fn retain_height(&self) -> u64 {
        self.effective()
    }
}
