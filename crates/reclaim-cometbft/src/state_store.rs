//! The state store (CometBFT's state `Store`), over any [`KvStore`], holding opaque bytes, and
//! [`crate::StateSegment`], the prune segment the executor prunes it through. Keys: [`crate::keys`].
//!
//! | key | value |
//! |---|---|
//! | `validatorsKey:{h}` | the validator set for `h`, in full or as a pointer |
//! | `consensusParamsKey:{h}` | the consensus params for `h`, in full or as a pointer |
//! | `abciResponsesKey:{h}` | the finalize-block response of `h` |
//! | `lastABCIResponseKey` | `{h}` ++ the latest response (only with `discard_abci_responses`) |
//! | `stateStoreMeta` | `{base, height, validators_base, validators_kept, params_kept}` |
//!
//! Validator sets and params are stored in full only at heights where they change (validator
//! sets also at every checkpoint height); other heights hold a pointer to the nearest full
//! record below. Pruning keeps the one full record that the pointer at the new lower bound
//! needs (its height is persisted as `*_kept`), so no lookup at or above the retain height can
//! dangle, and deletes the previously kept record once nothing points to it.
//!
//! Bounds: responses and params exist for `[base, height]`; validator sets for
//! `[validators_base, height]` (`validators_base <= base`: sets inside the evidence window
//! outlive their height's other state).

use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard, RwLock};
use reclaim_core::compaction::{TaskReport, compact_ranges_now};
use reclaim_core::height::{ReadFloor, decode_u64s, encode_u64s, height_key, height_range};
use reclaim_core::pruning::{PruneLimiter, SegmentBounds, SegmentReport};
use reclaim_core::range::hex;
use reclaim_core::{
    Compactable, KeyRange, KvReadExt, KvStore, ScanOrder, WriteBatch, WriteOptions,
};
use tracing::debug;

use crate::error::StoreError;
use crate::keys::{self, Family};
use crate::seal::{check_format, get_sealed, nothing_without_bounds, put_format, put_sealed};
use crate::segment::{EvidenceWindowSegment, WindowedStore};

const RESPONSES: &[u8] = keys::RESPONSES.prefix;
const LAST_RESPONSE_KEY: &[u8] = keys::LATEST_RESPONSE.key;
const META_KEY: &[u8] = keys::STATE_STORE_BOUNDS.key;

/// Default height interval between full validator-set checkpoints (CometBFT's 100,000).
pub const DEFAULT_VALIDATOR_CHECKPOINT_INTERVAL: u64 = 100_000;

/// What the node saves after committing one height.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeightState {
    /// The height (at least 1).
    pub height: u64,
    /// The encoded validator set, when it changed at this height (required for the first
    /// height saved).
    pub validators: Option<Vec<u8>>,
    /// The encoded consensus params, when they changed at this height (required for the first
    /// height saved).
    pub consensus_params: Option<Vec<u8>>,
    /// The encoded finalize-block response.
    pub finalize_block_response: Vec<u8>,
}

/// Options of the state store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateStoreOptions {
    /// Keep only the latest finalize-block response (CometBFT's `discard_abci_responses`).
    pub discard_abci_responses: bool,
    /// Store the validator set in full every this many heights, even without a change.
    pub validator_checkpoint_interval: u64,
}

impl Default for StateStoreOptions {
    fn default() -> Self {
        Self {
            discard_abci_responses: false,
            validator_checkpoint_interval: DEFAULT_VALIDATOR_CHECKPOINT_INTERVAL,
        }
    }
}

/// The persisted bounds of the state store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StateStoreBounds {
    /// Lowest height with params and response (0 when empty).
    pub base: u64,
    /// Highest height saved (0 when empty).
    pub height: u64,
    /// Lowest height with a validator set (at most `base`).
    pub validators_base: u64,
    /// Height below `validators_base` whose full validator set is kept for a pointer (0: none).
    pub validators_kept: u64,
    /// Height below `base` whose full params are kept for a pointer (0: none).
    pub params_kept: u64,
}

impl StateStoreBounds {
    fn encode(&self) -> Vec<u8> {
        encode_u64s(&[
            self.base,
            self.height,
            self.validators_base,
            self.validators_kept,
            self.params_kept,
        ])
    }

    fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let corrupt = |detail: String| StoreError::CorruptRecord {
            what: "state store bounds",
            key: hex(META_KEY),
            detail,
        };
        let [base, height, validators_base, validators_kept, params_kept] =
            decode_u64s::<5>(bytes).ok_or_else(|| corrupt("wrong length".into()))?;
        let bounds = Self {
            base,
            height,
            validators_base,
            validators_kept,
            params_kept,
        };
        let empty = bounds == Self::default();
        if !empty && (base == 0 || base > height || validators_base == 0 || validators_base > base)
        {
            return Err(corrupt(format!("inconsistent bounds {bounds:?}")));
        }
        Ok(bounds)
    }
}

/// A family whose value is stored in full on change and as a pointer otherwise.
struct Versioned {
    prefix: &'static [u8],
    what: &'static str,
    checkpoint_interval: Option<u64>,
}

const VALIDATORS: Versioned = Versioned {
    prefix: keys::VALIDATORS.prefix,
    what: "validator set",
    checkpoint_interval: None,
};
const PARAMS: Versioned = Versioned {
    prefix: keys::CONSENSUS_PARAMS.prefix,
    what: "consensus params",
    checkpoint_interval: None,
};

const FULL: u8 = 0;
const POINTER: u8 = 1;

/// A decoded versioned record.
enum Record {
    Full { changed_at: u64, payload: Vec<u8> },
    Pointer { changed_at: u64, full_at: u64 },
}

/// Where the latest record of a versioned family stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tip {
    changed_at: u64,
    full_at: u64,
}

impl Record {
    fn encode(&self) -> Vec<u8> {
        match self {
            Self::Full {
                changed_at,
                payload,
            } => {
                let mut out = Vec::with_capacity(9 + payload.len());
                out.push(FULL);
                out.extend_from_slice(&changed_at.to_be_bytes());
                out.extend_from_slice(payload);
                out
            }
            Self::Pointer {
                changed_at,
                full_at,
            } => {
                let mut out = vec![POINTER];
                out.extend_from_slice(&encode_u64s(&[*changed_at, *full_at]));
                out
            }
        }
    }

    fn full_at(&self, height: u64) -> u64 {
        match self {
            Self::Full { .. } => height,
            Self::Pointer { full_at, .. } => *full_at,
        }
    }

    fn tip(&self, height: u64) -> Tip {
        match self {
            Self::Full { changed_at, .. } | Self::Pointer { changed_at, .. } => Tip {
                changed_at: *changed_at,
                full_at: self.full_at(height),
            },
        }
    }
}

impl Versioned {
    fn with_checkpoints(self, interval: u64) -> Self {
        Self {
            checkpoint_interval: (interval > 0).then_some(interval),
            ..self
        }
    }

    fn key(&self, height: u64) -> Vec<u8> {
        height_key(self.prefix, height)
    }

    fn load_record(&self, db: &dyn KvStore, height: u64) -> Result<Option<Record>, StoreError> {
        let key = self.key(height);
        let Some(bytes) = get_sealed(db, self.what, &key)? else {
            return Ok(None);
        };
        let corrupt = |detail: &str| StoreError::CorruptRecord {
            what: self.what,
            key: hex(&key),
            detail: detail.to_owned(),
        };
        let (&tag, rest) = bytes.split_first().ok_or_else(|| corrupt("empty record"))?;
        let changed_at = rest
            .get(..8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| corrupt("truncated record"))?;
        match tag {
            FULL => Ok(Some(Record::Full {
                changed_at,
                payload: rest[8..].to_vec(),
            })),
            POINTER => {
                let [_, full_at] = decode_u64s::<2>(rest).ok_or_else(|| corrupt("bad pointer"))?;
                if full_at > height {
                    return Err(corrupt("pointer points upwards"));
                }
                Ok(Some(Record::Pointer {
                    changed_at,
                    full_at,
                }))
            }
            other => Err(corrupt(&format!("unknown tag {other}"))),
        }
    }

    /// The value for `height`, following a pointer to its full record.
    fn load(&self, db: &dyn KvStore, height: u64) -> Result<Option<Vec<u8>>, StoreError> {
        match self.load_record(db, height)? {
            None => Ok(None),
            Some(Record::Full { payload, .. }) => Ok(Some(payload)),
            Some(Record::Pointer { full_at, .. }) => match self.load_record(db, full_at)? {
                Some(Record::Full { payload, .. }) => Ok(Some(payload)),
                _ => Err(StoreError::DanglingPointer {
                    what: self.what,
                    height,
                    target: full_at,
                }),
            },
        }
    }

    /// The record to store at `height` given a possible change and the family's tip.
    fn next_record(
        &self,
        db: &dyn KvStore,
        height: u64,
        change: Option<&Vec<u8>>,
        tip: Option<Tip>,
    ) -> Result<(Record, Tip), StoreError> {
        let record = match (change, tip) {
            (Some(payload), _) => Record::Full {
                changed_at: height,
                payload: payload.clone(),
            },
            (None, None) => {
                return Err(StoreError::InvalidInput {
                    height,
                    detail: format!("the first height saved must carry the {}", self.what),
                });
            }
            (None, Some(tip)) if self.is_checkpoint(height) => Record::Full {
                changed_at: tip.changed_at,
                payload: self
                    .load(db, tip.full_at)?
                    .ok_or(StoreError::DanglingPointer {
                        what: self.what,
                        height,
                        target: tip.full_at,
                    })?,
            },
            (None, Some(tip)) => Record::Pointer {
                changed_at: tip.changed_at,
                full_at: tip.full_at,
            },
        };
        let tip = record.tip(height);
        Ok((record, tip))
    }

    fn is_checkpoint(&self, height: u64) -> bool {
        self.checkpoint_interval
            .is_some_and(|interval| height.is_multiple_of(interval))
    }

    /// The height of the full record that the record at `boundary` needs.
    fn needed_full_at(&self, db: &dyn KvStore, boundary: u64) -> Result<u64, StoreError> {
        Ok(self
            .load_record(db, boundary)?
            .map_or(boundary, |r| r.full_at(boundary)))
    }

    /// Adds to `batch` the deletion of heights `[from, to)` except `keep`, and of the previously
    /// kept record `old_kept` if no longer needed. Returns the kept height below `to` (0: none).
    fn prune_into(
        &self,
        batch: &mut WriteBatch,
        from: u64,
        to: u64,
        keep: u64,
        old_kept: u64,
    ) -> u64 {
        if (from..to).contains(&keep) {
            batch.delete_range(height_range(self.prefix, from, keep));
            batch.delete_range(height_range(self.prefix, keep + 1, to));
        } else {
            batch.delete_range(height_range(self.prefix, from, to));
        }
        if old_kept != 0 && old_kept != keep {
            batch.delete(self.key(old_kept));
        }
        if keep < to { keep } else { 0 }
    }
}

/// The state store. Reads never take the write lock; a save waits for at most one pruning
/// batch, not for a whole pruning run.
pub struct StateStore {
    db: Arc<dyn KvStore>,
    options: StateStoreOptions,
    validators: Versioned,
    bounds: RwLock<StateStoreBounds>,
    /// The tips of the versioned families. Held by a save, and by pruning for each batch (the
    /// bounds are read, written with the batch and published under it).
    writer: Mutex<Option<(Tip, Tip)>>,
    /// Held by pruning for a whole run: one pruning run at a time.
    pruning: Mutex<()>,
    /// Reads of params and responses below this are refused.
    base_floor: ReadFloor,
    /// Reads of validator sets below this are refused.
    validators_floor: ReadFloor,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("bounds", &*self.bounds.read())
            .field("options", &self.options)
            .finish()
    }
}

impl StateStore {
    /// Opens the state store kept in `db`.
    pub fn open(db: Arc<dyn KvStore>, options: StateStoreOptions) -> Result<Self, StoreError> {
        let bounds = match get_sealed(db.as_ref(), "state store bounds", META_KEY)? {
            Some(bytes) => {
                check_format(db.as_ref())?;
                StateStoreBounds::decode(&bytes)?
            }
            None => {
                nothing_without_bounds(db.as_ref(), "state store bounds", &keys::STATE_FAMILIES)?;
                StateStoreBounds::default()
            }
        };
        let validators = VALIDATORS.with_checkpoints(options.validator_checkpoint_interval);
        let tips = if bounds.height == 0 {
            None
        } else {
            let tip = |family: &Versioned| -> Result<Tip, StoreError> {
                family
                    .load_record(db.as_ref(), bounds.height)?
                    .map(|r| r.tip(bounds.height))
                    .ok_or_else(|| StoreError::CorruptRecord {
                        what: family.what,
                        key: hex(&family.key(bounds.height)),
                        detail: "missing at the store's height".into(),
                    })
            };
            Some((tip(&validators)?, tip(&PARAMS)?))
        };
        Ok(Self {
            db,
            options,
            validators,
            base_floor: ReadFloor::new(bounds.base),
            validators_floor: ReadFloor::new(bounds.validators_base),
            bounds: RwLock::new(bounds),
            writer: Mutex::new(tips),
            pruning: Mutex::new(()),
        })
    }

    /// The engine underneath.
    pub fn db(&self) -> &Arc<dyn KvStore> {
        &self.db
    }

    /// The current bounds.
    pub fn bounds(&self) -> StateStoreBounds {
        *self.bounds.read()
    }

    /// Lowest height with params and response (0 when empty).
    pub fn base(&self) -> u64 {
        self.bounds.read().base
    }

    /// Highest height saved (0 when empty).
    pub fn height(&self) -> u64 {
        self.bounds.read().height
    }

    /// Saves the state of the next height (any height ≥ 1 when the store is empty).
    pub fn save(&self, state: &HeightState, options: WriteOptions) -> Result<(), StoreError> {
        let h = state.height;
        if h == 0 {
            return Err(StoreError::InvalidInput {
                height: h,
                detail: "height must be at least 1".into(),
            });
        }
        let mut tips = self.writer.lock();
        let current = self.bounds();
        if current.height != 0 && h != current.height + 1 {
            return Err(StoreError::NonContiguousHeight {
                height: h,
                expected: current.height + 1,
            });
        }
        let db = self.db.as_ref();
        let (validators, validators_tip) =
            self.validators
                .next_record(db, h, state.validators.as_ref(), tips.map(|t| t.0))?;
        let (params, params_tip) =
            PARAMS.next_record(db, h, state.consensus_params.as_ref(), tips.map(|t| t.1))?;
        let mut batch = WriteBatch::new();
        if current.height == 0 {
            put_format(&mut batch);
        }
        put_sealed(&mut batch, self.validators.key(h), &validators.encode());
        put_sealed(&mut batch, PARAMS.key(h), &params.encode());
        if self.options.discard_abci_responses {
            let mut latest = h.to_be_bytes().to_vec();
            latest.extend_from_slice(&state.finalize_block_response);
            put_sealed(&mut batch, LAST_RESPONSE_KEY.to_vec(), &latest);
        } else {
            put_sealed(
                &mut batch,
                height_key(RESPONSES, h),
                &state.finalize_block_response,
            );
        }
        let next = if current.height == 0 {
            StateStoreBounds {
                base: h,
                height: h,
                validators_base: h,
                ..StateStoreBounds::default()
            }
        } else {
            StateStoreBounds {
                height: h,
                ..current
            }
        };
        put_sealed(&mut batch, META_KEY.to_vec(), &next.encode());
        self.db.write(batch, options)?;
        self.base_floor.raise(next.base);
        self.validators_floor.raise(next.validators_base);
        *tips = Some((validators_tip, params_tip));
        *self.bounds.write() = next;
        Ok(())
    }

    /// The validator set for `height`, if saved; [`StoreError::Pruned`] below the validators'
    /// base (also when pruning overtakes the read).
    pub fn load_validators(&self, height: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.validators_floor
            .guard(self.validators.what, height, || {
                let value = self.validators.load(self.db.as_ref(), height)?;
                self.required(value, &self.validators, &self.validators_floor, height)
            })
    }

    /// `value` of a versioned family, or a corruption when it is missing although `height`
    /// lies within `[floor, height]` of the store.
    fn required(
        &self,
        value: Option<Vec<u8>>,
        family: &Versioned,
        floor: &ReadFloor,
        height: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        if value.is_none() && floor.get() > 0 && (floor.get()..=self.height()).contains(&height) {
            return Err(StoreError::CorruptRecord {
                what: family.what,
                key: hex(&family.key(height)),
                detail: format!(
                    "missing although height {height} lies within the store's bounds: the store is damaged"
                ),
            });
        }
        Ok(value)
    }

    /// The consensus params for `height`, if saved; [`StoreError::Pruned`] below the base.
    pub fn load_consensus_params(&self, height: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.base_floor.guard(PARAMS.what, height, || {
            let value = PARAMS.load(self.db.as_ref(), height)?;
            self.required(value, &PARAMS, &self.base_floor, height)
        })
    }

    /// The finalize-block response of `height`, if saved; [`StoreError::Pruned`] below the
    /// base. With `discard_abci_responses` only the latest is kept; asking for an older one
    /// saved under that option is [`StoreError::ResponseDiscarded`].
    pub fn load_finalize_block_response(&self, height: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.base_floor
            .guard("finalize-block response", height, || {
                self.load_response_unguarded(height)
            })
    }

    /// Keys of heights below the bases that pruning should have removed, at most `limit`:
    /// empty on a healthy store. The full records kept below the bases for the pointers above
    /// them (`validators_kept`, `params_kept`) are not leftovers.
    pub fn leftovers_below_base(&self, limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        let b = self.bounds();
        let families = [
            (RESPONSES, b.base, 0),
            (PARAMS.prefix, b.base, b.params_kept),
            (self.validators.prefix, b.validators_base, b.validators_kept),
        ];
        let mut found = Vec::new();
        for (prefix, below, kept) in families {
            let kept_key = (kept != 0).then(|| height_key(prefix, kept));
            let range = height_range(prefix, 0, below);
            for entry in self.db.iter(range, ScanOrder::Ascending) {
                let (key, _) = entry?;
                if found.len() >= limit {
                    return Ok(found);
                }
                if kept_key.as_deref() != Some(key.as_slice()) {
                    found.push(key);
                }
            }
        }
        Ok(found)
    }

    fn load_response_unguarded(&self, height: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let key = height_key(RESPONSES, height);
        if let Some(response) = get_sealed(self.db.as_ref(), "finalize-block response", &key)? {
            return Ok(Some(response));
        }
        let latest = get_sealed(
            self.db.as_ref(),
            "latest finalize-block response",
            LAST_RESPONSE_KEY,
        )?;
        if let Some(latest) = latest {
            let corrupt = || StoreError::CorruptRecord {
                what: "latest finalize-block response",
                key: hex(LAST_RESPONSE_KEY),
                detail: "shorter than its height".into(),
            };
            let latest_height = latest
                .get(..8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
                .ok_or_else(corrupt)?;
            if latest_height == height {
                return Ok(Some(latest[8..].to_vec()));
            }
            let bounds = self.bounds();
            if self.options.discard_abci_responses
                && (bounds.base..=bounds.height).contains(&height)
            {
                return Err(StoreError::ResponseDiscarded {
                    height,
                    latest: latest_height,
                });
            }
        } else if !self.options.discard_abci_responses {
            // Every height of a store that never discarded responses has one.
            let bounds = self.bounds();
            if bounds.base > 0 && (bounds.base..=bounds.height).contains(&height) {
                return Err(StoreError::CorruptRecord {
                    what: "finalize-block response",
                    key: hex(&key),
                    detail: format!(
                        "missing although height {height} lies within the store's bounds: the store is damaged"
                    ),
                });
            }
        }
        Ok(None)
    }

    /// Prunes state below `retain_height`, keeping validator sets at or above
    /// `evidence_point`, in atomic batches of at most `batch_heights` heights that write the
    /// new bounds with the deletions. Resumes whatever an interrupted call left. `limiter`
    /// bounds the heights and time one call spends (`complete: false` when it ran out).
    ///
    /// Saves go on between batches (each batch takes the write lock alone). The batches are
    /// written unsynced and the call ends with one synced write of the bounds (one flush per
    /// run, as the block store): a crash before it loses some of the last batches whole, and
    /// the next run prunes those heights again.
    pub fn prune(
        &self,
        retain_height: u64,
        evidence_point: u64,
        batch_heights: u64,
        limiter: &mut PruneLimiter,
    ) -> Result<SegmentReport, StoreError> {
        let _pruning = self.pruning.lock();
        let report = self.prune_batches(retain_height, evidence_point, batch_heights, limiter)?;
        if report.batches > 0 {
            let _tips = self.writer.lock();
            self.commit_batch(WriteBatch::new(), self.bounds(), WriteOptions::DURABLE)?;
        }
        Ok(report)
    }

    /// [`Self::prune`]'s batches, each unsynced, under the pruning lock.
    fn prune_batches(
        &self,
        retain_height: u64,
        evidence_point: u64,
        batch_heights: u64,
        limiter: &mut PruneLimiter,
    ) -> Result<SegmentReport, StoreError> {
        let db = self.db.as_ref();
        let start = self.bounds();
        if retain_height > start.height {
            return Err(StoreError::RetainAboveHeight {
                store: "state store",
                retain: retain_height,
                height: start.height,
            });
        }
        let mut report = SegmentReport::default();
        let (_, done) =
            limiter.run_batches(start.base, retain_height, batch_heights, |from, to| {
                // Each batch keeps what its own new base needs, so the store is consistent
                // between batches (and after a crash between them), not only at the end.
                let keep = PARAMS.needed_full_at(db, to)?;
                self.commit_pruned(|bounds| {
                    let mut batch = WriteBatch::new();
                    batch.delete_range(height_range(RESPONSES, from, to));
                    let params_kept =
                        PARAMS.prune_into(&mut batch, from, to, keep, bounds.params_kept);
                    let next = StateStoreBounds {
                        base: to,
                        params_kept,
                        ..bounds
                    };
                    (batch, next)
                })?;
                debug!(from, to, "pruned state batch");
                report.heights_pruned += to - from;
                report.batches += 1;
                Ok::<_, StoreError>(())
            })?;
        if !done {
            return Ok(report);
        }
        let bounds = self.bounds();
        let validators_target = evidence_point.min(bounds.base);
        let (_, done) = limiter.run_batches(
            bounds.validators_base,
            validators_target,
            batch_heights,
            |from, to| {
                let keep = self.validators.needed_full_at(db, to)?;
                self.commit_pruned(|bounds| {
                    let mut batch = WriteBatch::new();
                    let validators_kept = self.validators.prune_into(
                        &mut batch,
                        from,
                        to,
                        keep,
                        bounds.validators_kept,
                    );
                    let next = StateStoreBounds {
                        validators_base: to,
                        validators_kept,
                        ..bounds
                    };
                    (batch, next)
                })?;
                report.trailing_heights_pruned += to - from;
                report.batches += 1;
                Ok::<_, StoreError>(())
            },
        )?;
        report.complete = done;
        Ok(report)
    }

    /// Writes one pruning batch, unsynced: `build` makes the batch and the new bounds from the
    /// current ones, under the write lock taken for this batch alone; a save waiting for it
    /// goes next, before the run's next batch. The record a batch keeps (`needed_full_at` of
    /// its new base) is read before the lock: records below the store's height never change.
    fn commit_pruned(
        &self,
        build: impl FnOnce(StateStoreBounds) -> (WriteBatch, StateStoreBounds),
    ) -> Result<(), StoreError> {
        let tips = self.writer.lock();
        let (batch, next) = build(self.bounds());
        self.commit_batch(batch, next, WriteOptions::BUFFERED)?;
        MutexGuard::unlock_fair(tips);
        Ok(())
    }

    /// Writes `batch` with the new bounds and publishes them. Call under the write lock.
    fn commit_batch(
        &self,
        mut batch: WriteBatch,
        next: StateStoreBounds,
        options: WriteOptions,
    ) -> Result<(), StoreError> {
        put_sealed(&mut batch, META_KEY.to_vec(), &next.encode());
        // Readers are turned away before anything they could ask for disappears.
        self.base_floor.raise(next.base);
        self.validators_floor.raise(next.validators_base);
        self.db.write(batch, options)?;
        *self.bounds.write() = next;
        Ok(())
    }

    /// Compacts every range the state store owns, synchronously (the spec's `CompactStateDB`),
    /// through the same runner and log lines as the background compactor. Safe to call while
    /// other threads read and write.
    pub fn compact(&self) -> Result<TaskReport, StoreError> {
        Ok(compact_ranges_now(
            "compact_state_store",
            STATE_SEGMENT,
            Arc::clone(&self.db) as Arc<dyn Compactable>,
            Self::all_ranges(),
        )?)
    }
}

/// The name of the state store's segment, its compaction target and its metric label.
pub const STATE_SEGMENT: &str = "state_store";

/// The state store as a prune segment: keeps validator sets of the evidence window.
pub type StateSegment = EvidenceWindowSegment<StateStore>;

impl WindowedStore for StateStore {
    const SEGMENT: &'static str = STATE_SEGMENT;

    fn db(&self) -> &Arc<dyn KvStore> {
        &self.db
    }

    fn segment_bounds(&self) -> SegmentBounds {
        let b = self.bounds();
        SegmentBounds {
            lowest: b.validators_base,
            base: b.base,
            height: b.height,
        }
    }

    fn prune_window(
        &self,
        retain_height: u64,
        evidence_point: u64,
        batch_heights: u64,
        limiter: &mut PruneLimiter,
    ) -> Result<SegmentReport, StoreError> {
        self.prune(retain_height, evidence_point, batch_heights, limiter)
    }

    /// The key ranges holding state of heights in `[from, to)`: what a targeted compaction
    /// covers.
    fn compaction_ranges(&self, from: u64, to: u64) -> Vec<KeyRange> {
        keys::STATE_FAMILIES
            .iter()
            .map(|family| family.heights(from, to))
            .collect()
    }

    /// The key ranges of heights in `[from, to)` that pruning has deleted for good: the
    /// finalize-block responses below `min(to, base)`. (Validator sets and params keep a full
    /// record below their bases for the pointers above, so their ranges are not wholly deleted.)
    fn deleted_ranges(&self, from: u64, to: u64) -> Vec<KeyRange> {
        let below_base = to.min(self.bounds().base);
        let range = keys::RESPONSES.heights(from, below_base);
        if range.is_empty() {
            Vec::new()
        } else {
            vec![range]
        }
    }

    /// Every key range the state store owns.
    fn all_ranges() -> Vec<KeyRange> {
        keys::STATE_FAMILIES.iter().map(Family::all).collect()
    }
}
