//! The block store (CometBFT's `BlockStore`), over any [`KvStore`], holding opaque bytes, and
//! [`crate::BlockSegment`], the prune segment the executor prunes it through.
//!
//! Key layout ([`crate::keys`]), one family per prefix, heights big-endian so each family is
//! ordered by height:
//!
//! | key | value |
//! |---|---|
//! | `H:{h}` | block meta |
//! | `P:{h}{i:be32}` | block part `i` |
//! | `C:{h}` | commit for height `h` |
//! | `SC:{h}` | seen commit |
//! | `EC:{h}` | extended commit (optional) |
//! | `N:{h}` | block hash (so pruning can find the hash index entry) |
//! | `BH:{hash}` | height, big-endian |
//! | `blockStore` | `{base, height, evidence_base}` |
//!
//! Invariants: every height in `[base, height]` has its meta, parts, commit, seen commit and
//! hash index; heights in `[evidence_base, base)` keep only meta and commit (the evidence
//! window); nothing else of a height below `base` remains. Pruning writes the new `base` (and
//! `evidence_base`) in the same atomic batch as the deletions, so a crash at any point leaves
//! these invariants true and the next prune finishes the job.
//!
//! Reads below `base` (below `evidence_base` for meta and commits) are refused with
//! [`StoreError::Pruned`]. The floor readers check is raised before each pruning batch is
//! written and checked again after every read, so a reader racing with the pruner never
//! mistakes a pruned height for a missing one, nor gets a block with parts missing.

use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard, RwLock};
use reclaim_core::compaction::{TaskReport, compact_ranges_now};
use reclaim_core::height::{ReadFloor, decode_u64s, encode_u64s};
use reclaim_core::pruning::{PruneLimiter, SegmentBounds, SegmentReport};
use reclaim_core::range::hex;
use reclaim_core::{
    Compactable, KeyRange, KvReadExt, KvStore, ScanOrder, WriteBatch, WriteOptions,
};
use tracing::debug;

use crate::error::StoreError;
use crate::keys::{
    self, BLOCK_META, BLOCK_PARTS, BLOCK_STORE_BOUNDS, COMMITS, EXTENDED_COMMITS, Family,
    HASH_BY_HEIGHT, SEEN_COMMITS, hash_key, part_key,
};
use crate::seal::{
    check_format, get_sealed, nothing_without_bounds, put_format, put_sealed, unseal,
};
use crate::segment::{EvidenceWindowSegment, WindowedStore};

const BOUNDS_KEY: &[u8] = BLOCK_STORE_BOUNDS.key;

/// Families deleted as soon as a height falls below `base`.
const PRUNED_AT_BASE: [Family; 4] = [BLOCK_PARTS, SEEN_COMMITS, EXTENDED_COMMITS, HASH_BY_HEIGHT];
/// Families kept below `base` while the height is inside the evidence window.
const EVIDENCE_FAMILIES: [Family; 2] = [BLOCK_META, COMMITS];
/// CometBFT's default evidence max age in blocks.
pub const DEFAULT_EVIDENCE_MAX_AGE_HEIGHTS: u64 = 100_000;

/// One block as the node encoded it; the store never looks inside the byte strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Its height (at least 1).
    pub height: u64,
    /// Its hash (non-empty), indexed for [`BlockStore::height_by_hash`].
    pub hash: Vec<u8>,
    /// The encoded block meta.
    pub meta: Vec<u8>,
    /// The encoded block parts, at least one.
    pub parts: Vec<Vec<u8>>,
    /// The encoded commit for this height.
    pub commit: Vec<u8>,
    /// The encoded seen commit.
    pub seen_commit: Vec<u8>,
    /// The encoded extended commit, when vote extensions are on.
    pub extended_commit: Option<Vec<u8>>,
}

/// The persisted bounds of the block store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockStoreBounds {
    /// Lowest height with a complete block (0 when empty).
    pub base: u64,
    /// Highest height saved (0 when empty).
    pub height: u64,
    /// Lowest height whose meta and commit are still kept (at most `base`).
    pub evidence_base: u64,
}

impl BlockStoreBounds {
    fn encode(&self) -> Vec<u8> {
        encode_u64s(&[self.base, self.height, self.evidence_base])
    }

    fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        let corrupt = |detail: &str| StoreError::CorruptRecord {
            what: "block store bounds",
            key: hex(BOUNDS_KEY),
            detail: detail.to_owned(),
        };
        let [base, height, evidence_base] =
            decode_u64s::<3>(bytes).ok_or_else(|| corrupt("wrong length"))?;
        let state = Self {
            base,
            height,
            evidence_base,
        };
        let empty = base == 0 && height == 0 && evidence_base == 0;
        if !empty && (base == 0 || base > height || evidence_base == 0 || evidence_base > base) {
            return Err(corrupt(&format!("inconsistent bounds {state:?}")));
        }
        Ok(state)
    }

    /// Number of complete blocks held.
    pub fn size(&self) -> u64 {
        if self.height == 0 {
            0
        } else {
            self.height - self.base + 1
        }
    }
}

/// The `N:{h}` record: the block's part count and its hash (so a block with a part missing is
/// detected, and pruning finds the hash index entry).
struct HashRecord {
    parts: u32,
    hash: Vec<u8>,
}

impl HashRecord {
    fn encode(parts: u32, hash: &[u8]) -> Vec<u8> {
        [&parts.to_be_bytes()[..], hash].concat()
    }

    fn decode(key: &[u8], bytes: &[u8]) -> Result<Self, StoreError> {
        match bytes.split_first_chunk::<4>() {
            Some((parts, hash)) if !hash.is_empty() => Ok(Self {
                parts: u32::from_be_bytes(*parts),
                hash: hash.to_vec(),
            }),
            _ => Err(StoreError::CorruptRecord {
                what: "block hash",
                key: hex(key),
                detail: format!(
                    "{} bytes, too short for a part count and a hash",
                    bytes.len()
                ),
            }),
        }
    }
}

/// The block store. Reads never take the write lock; a save waits for at most one pruning
/// batch, not for a whole pruning run.
pub struct BlockStore {
    db: Arc<dyn KvStore>,
    bounds: RwLock<BlockStoreBounds>,
    /// Held by a save, and by pruning for each batch (the bounds are read, written with the
    /// batch and published under it).
    writer: Mutex<()>,
    /// Held by pruning for a whole run: one pruning run at a time.
    pruning: Mutex<()>,
    /// Reads of parts, seen and extended commits and hashes below this are refused.
    base_floor: ReadFloor,
    /// Reads of meta and commits below this are refused.
    evidence_floor: ReadFloor,
}

impl std::fmt::Debug for BlockStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockStore")
            .field("bounds", &*self.bounds.read())
            .finish()
    }
}

impl BlockStore {
    /// Opens the block store kept in `db`, reading its persisted bounds.
    ///
    /// A store of another format, a damaged bounds record, or block data without a bounds
    /// record (a lost record would otherwise look like an empty store) is a typed error.
    pub fn open(db: Arc<dyn KvStore>) -> Result<Self, StoreError> {
        let state = match get_sealed(db.as_ref(), "block store bounds", BOUNDS_KEY)? {
            Some(bytes) => {
                check_format(db.as_ref())?;
                BlockStoreBounds::decode(&bytes)?
            }
            None => {
                nothing_without_bounds(db.as_ref(), "block store bounds", &keys::BLOCK_FAMILIES)?;
                BlockStoreBounds::default()
            }
        };
        Ok(Self {
            db,
            base_floor: ReadFloor::new(state.base),
            evidence_floor: ReadFloor::new(state.evidence_base),
            bounds: RwLock::new(state),
            writer: Mutex::new(()),
            pruning: Mutex::new(()),
        })
    }

    /// The engine underneath.
    pub fn db(&self) -> &Arc<dyn KvStore> {
        &self.db
    }

    /// The current bounds.
    pub fn bounds(&self) -> BlockStoreBounds {
        *self.bounds.read()
    }

    /// Lowest height with a complete block (0 when empty).
    pub fn base(&self) -> u64 {
        self.bounds.read().base
    }

    /// Highest height saved (0 when empty).
    pub fn height(&self) -> u64 {
        self.bounds.read().height
    }

    /// Saves `block`, which must be the next height (any height ≥ 1 when the store is empty).
    pub fn save_block(&self, block: &Block, options: WriteOptions) -> Result<(), StoreError> {
        let invalid = |detail: &str| StoreError::InvalidInput {
            height: block.height,
            detail: detail.to_owned(),
        };
        if block.height == 0 {
            return Err(invalid("height must be at least 1"));
        }
        if block.hash.is_empty() {
            return Err(invalid("block hash is empty"));
        }
        if block.parts.is_empty() {
            return Err(invalid("a block has at least one part"));
        }
        let parts =
            u32::try_from(block.parts.len()).map_err(|_| invalid("more than 2^32 - 1 parts"))?;
        let _writer = self.writer.lock();
        let current = self.bounds();
        if current.height != 0 && block.height != current.height + 1 {
            return Err(StoreError::NonContiguousHeight {
                height: block.height,
                expected: current.height + 1,
            });
        }
        let h = block.height;
        let mut batch = WriteBatch::new();
        if current.height == 0 {
            put_format(&mut batch);
        }
        put_sealed(&mut batch, BLOCK_META.key(h), &block.meta);
        for (i, part) in (0..parts).zip(&block.parts) {
            put_sealed(&mut batch, part_key(h, i), part);
        }
        put_sealed(&mut batch, COMMITS.key(h), &block.commit);
        put_sealed(&mut batch, SEEN_COMMITS.key(h), &block.seen_commit);
        if let Some(ext) = &block.extended_commit {
            put_sealed(&mut batch, EXTENDED_COMMITS.key(h), ext);
        }
        put_sealed(
            &mut batch,
            HASH_BY_HEIGHT.key(h),
            &HashRecord::encode(parts, &block.hash),
        );
        put_sealed(&mut batch, hash_key(&block.hash), &h.to_be_bytes());
        let next = if current.height == 0 {
            BlockStoreBounds {
                base: h,
                height: h,
                evidence_base: h,
            }
        } else {
            BlockStoreBounds {
                height: h,
                ..current
            }
        };
        put_sealed(&mut batch, BOUNDS_KEY.to_vec(), &next.encode());
        self.db.write(batch, options)?;
        // The first block saved sets the base: nothing below it is served.
        self.base_floor.raise(next.base);
        self.evidence_floor.raise(next.evidence_base);
        *self.bounds.write() = next;
        Ok(())
    }

    // Every read below is guarded by a floor: a height below the base (the evidence base for
    // meta and commits) is refused with `StoreError::Pruned`, also when pruning overtakes the
    // read while it runs. `Ok(None)` therefore means "not saved (yet)", never "pruned".

    /// Reads `key` of `height` under `floor`: refused below the floor, unsealed, and — for a
    /// record every height in `[floor, height]` has (`required`) — missing there is a
    /// corruption, not "not saved".
    fn get_guarded(
        &self,
        floor: &ReadFloor,
        what: &'static str,
        height: u64,
        key: &[u8],
        required: bool,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        floor.guard(what, height, || {
            let value = get_sealed(self.db.as_ref(), what, key)?;
            if value.is_none() && required {
                self.missing_within_bounds(floor, what, height, key)?;
            }
            Ok(value)
        })
    }

    /// A corruption error when `height` lies within `[floor, height]` of the store.
    fn missing_within_bounds(
        &self,
        floor: &ReadFloor,
        what: &'static str,
        height: u64,
        key: &[u8],
    ) -> Result<(), StoreError> {
        let top = self.height();
        if (floor.get()..=top).contains(&height) && floor.get() > 0 {
            return Err(StoreError::CorruptRecord {
                what,
                key: hex(key),
                detail: format!(
                    "missing although height {height} lies within the store's bounds (up to {top}): the store is damaged"
                ),
            });
        }
        Ok(())
    }

    /// The block meta at `height`, if saved; [`StoreError::Pruned`] below the evidence base.
    pub fn load_block_meta(&self, height: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let key = BLOCK_META.key(height);
        self.get_guarded(&self.evidence_floor, "block meta", height, &key, true)
    }

    /// Part `index` of the block at `height`, if saved; [`StoreError::Pruned`] below the base.
    pub fn load_block_part(&self, height: u64, index: u32) -> Result<Option<Vec<u8>>, StoreError> {
        let key = part_key(height, index);
        self.get_guarded(&self.base_floor, "block part", height, &key, false)
    }

    /// Every part of the block at `height` in order (empty if not saved); [`StoreError::Pruned`]
    /// below the base, so a block is never returned with parts missing; a part count that does
    /// not match the one saved with the block is a corruption.
    pub fn load_block_parts(&self, height: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        self.base_floor.guard("block parts", height, || {
            let parts = self
                .db
                .iter(
                    KeyRange::prefix(&BLOCK_PARTS.key(height)),
                    ScanOrder::Ascending,
                )
                .map(|kv| {
                    let (key, value) = kv?;
                    unseal("block part", &key, value)
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            let expected = self.hash_record(height)?.map(|r| r.parts);
            match expected {
                Some(count) if count as usize == parts.len() => Ok(parts),
                None if parts.is_empty() => Ok(parts),
                _ => Err(StoreError::CorruptRecord {
                    what: "block parts",
                    key: hex(&BLOCK_PARTS.key(height)),
                    detail: format!(
                        "{} parts found, {} saved with the block: the store is damaged",
                        parts.len(),
                        expected.map_or_else(|| "none".to_owned(), |c| c.to_string())
                    ),
                }),
            }
        })
    }

    /// The commit for `height`, if saved; [`StoreError::Pruned`] below the evidence base.
    pub fn load_block_commit(&self, height: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let key = COMMITS.key(height);
        self.get_guarded(&self.evidence_floor, "commit", height, &key, true)
    }

    /// The seen commit for `height`, if saved; [`StoreError::Pruned`] below the base.
    pub fn load_seen_commit(&self, height: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let key = SEEN_COMMITS.key(height);
        self.get_guarded(&self.base_floor, "seen commit", height, &key, true)
    }

    /// The extended commit for `height`, if one was saved; [`StoreError::Pruned`] below the
    /// base.
    pub fn load_extended_commit(&self, height: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let key = EXTENDED_COMMITS.key(height);
        self.get_guarded(&self.base_floor, "extended commit", height, &key, false)
    }

    /// The hash of the block at `height`, if saved; [`StoreError::Pruned`] below the base.
    pub fn load_block_hash(&self, height: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.base_floor.guard("block hash", height, || {
            Ok(self.hash_record(height)?.map(|r| r.hash))
        })
    }

    /// The hash record of `height` (unguarded): a corruption when missing within the bounds.
    fn hash_record(&self, height: u64) -> Result<Option<HashRecord>, StoreError> {
        let key = HASH_BY_HEIGHT.key(height);
        match get_sealed(self.db.as_ref(), "block hash", &key)? {
            Some(bytes) => HashRecord::decode(&key, &bytes).map(Some),
            None => {
                self.missing_within_bounds(&self.base_floor, "block hash", height, &key)?;
                Ok(None)
            }
        }
    }

    /// The height of the block with `hash`, if saved and kept. A hash of a pruned block is
    /// normally unknown (`None`); one found pointing below the base (pruning is deleting it right
    /// now) is [`StoreError::Pruned`].
    pub fn height_by_hash(&self, hash: &[u8]) -> Result<Option<u64>, StoreError> {
        let key = hash_key(hash);
        let Some(bytes) = get_sealed(self.db.as_ref(), "hash index", &key)? else {
            return Ok(None);
        };
        let bytes: [u8; 8] =
            bytes
                .as_slice()
                .try_into()
                .map_err(|_| StoreError::CorruptRecord {
                    what: "hash index",
                    key: hex(&key),
                    detail: format!("{} bytes, expected 8", bytes.len()),
                })?;
        let height = u64::from_be_bytes(bytes);
        self.base_floor
            .guard("block hash index", height, || Ok(Some(height)))
    }

    /// Keys of heights below the base (below the evidence base for meta and commits) that
    /// pruning should have removed, at most `limit`: empty on a healthy store. The hash index,
    /// keyed by hash, is not covered; [`BlockStore::height_by_hash`] refuses stale entries.
    pub fn leftovers_below_base(&self, limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        let state = self.bounds();
        let mut found = Vec::new();
        let families = PRUNED_AT_BASE
            .iter()
            .map(|f| (*f, state.base))
            .chain(EVIDENCE_FAMILIES.iter().map(|f| (*f, state.evidence_base)));
        for (family, below) in families {
            let left = limit.saturating_sub(found.len());
            if left == 0 {
                break;
            }
            let range = family.heights(0, below);
            found.extend(
                self.db
                    .scan(&range, ScanOrder::Ascending, left)?
                    .into_iter()
                    .map(|(k, _)| k),
            );
        }
        Ok(found)
    }

    /// Prunes every block below `retain_height`, keeping meta and commit of heights at or above
    /// `evidence_point` (the evidence window), in atomic batches of at most `batch_heights`
    /// heights, each writing the new bounds with its deletions. Resumes whatever an earlier,
    /// interrupted call left. `retain_height` at or below `base` only finishes pending work.
    /// `limiter` bounds the heights and time one call spends; when it runs out the report says
    /// `complete: false` and a later call goes on from the persisted bounds.
    ///
    /// Saves go on between batches (each batch takes the write lock alone). The batches are
    /// written unsynced and the call ends with one synced write of the bounds, so a run costs
    /// one flush however many batches it has: a crash before it loses some of the last batches
    /// whole (the engines keep writes in order), and the next run prunes those heights again.
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
            let _writer = self.writer.lock();
            self.commit(WriteBatch::new(), self.bounds(), WriteOptions::DURABLE)?;
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
        let start = self.bounds();
        if retain_height > start.height {
            return Err(StoreError::RetainAboveHeight {
                store: "block store",
                retain: retain_height,
                height: start.height,
            });
        }
        let mut report = SegmentReport::default();
        // Phase 1: move `base` up. Meta and commit stay (their own phase follows).
        let (_, done) =
            limiter.run_batches(start.base, retain_height, batch_heights, |from, to| {
                let mut batch = WriteBatch::new();
                let hashes = self
                    .db
                    .iter(HASH_BY_HEIGHT.heights(from, to), ScanOrder::Ascending)
                    .map(|kv| {
                        let (key, value) = kv?;
                        let bytes = unseal("block hash", &key, value)?;
                        Ok(HashRecord::decode(&key, &bytes)?.hash)
                    })
                    .collect::<Result<Vec<_>, StoreError>>()?;
                for hash in hashes {
                    batch.delete(hash_key(&hash));
                }
                for family in PRUNED_AT_BASE {
                    batch.delete_range(family.heights(from, to));
                }
                self.commit_pruned(batch, &self.base_floor, to, |bounds| BlockStoreBounds {
                    base: to,
                    ..bounds
                })?;
                debug!(from, to, "pruned block batch");
                report.heights_pruned += to - from;
                report.batches += 1;
                Ok::<_, StoreError>(())
            })?;
        if !done {
            return Ok(report);
        }
        // Phase 2: drop meta and commit below both the evidence point and base.
        let state = self.bounds();
        let evidence_target = evidence_point.min(state.base);
        let (_, done) = limiter.run_batches(
            state.evidence_base,
            evidence_target,
            batch_heights,
            |from, to| {
                let mut batch = WriteBatch::new();
                for family in EVIDENCE_FAMILIES {
                    batch.delete_range(family.heights(from, to));
                }
                self.commit_pruned(batch, &self.evidence_floor, to, |bounds| BlockStoreBounds {
                    evidence_base: to,
                    ..bounds
                })?;
                report.trailing_heights_pruned += to - from;
                report.batches += 1;
                Ok::<_, StoreError>(())
            },
        )?;
        report.complete = done;
        Ok(report)
    }

    /// Writes one pruning batch, unsynced, with the bounds `advance` makes of the current ones,
    /// under the write lock taken for this batch alone; a save waiting for it goes next, before
    /// the run's next batch. Readers are turned away (`floor` raised to `to`) before anything
    /// they could ask for disappears; if the write fails the floor stays raised, and those
    /// heights are refused until the next prune (or a restart) settles them.
    fn commit_pruned(
        &self,
        batch: WriteBatch,
        floor: &ReadFloor,
        to: u64,
        advance: impl FnOnce(BlockStoreBounds) -> BlockStoreBounds,
    ) -> Result<(), StoreError> {
        let writer = self.writer.lock();
        let next = advance(self.bounds());
        floor.raise(to);
        self.commit(batch, next, WriteOptions::BUFFERED)?;
        MutexGuard::unlock_fair(writer);
        Ok(())
    }

    /// Writes `batch` with the new bounds and publishes the bounds. Call under the write lock.
    fn commit(
        &self,
        mut batch: WriteBatch,
        next: BlockStoreBounds,
        options: WriteOptions,
    ) -> Result<(), StoreError> {
        put_sealed(&mut batch, BOUNDS_KEY.to_vec(), &next.encode());
        self.db.write(batch, options)?;
        *self.bounds.write() = next;
        Ok(())
    }

    /// Compacts every range the block store owns, synchronously (the spec's
    /// `CompactBlockStore`), through the same runner and log lines as the background
    /// compactor. Safe to call while other threads read and write.
    pub fn compact(&self) -> Result<TaskReport, StoreError> {
        Ok(compact_ranges_now(
            "compact_block_store",
            BLOCK_SEGMENT,
            Arc::clone(&self.db) as Arc<dyn Compactable>,
            Self::all_ranges(),
        )?)
    }
}

/// The name of the block store's segment, its compaction target and its metric label.
pub const BLOCK_SEGMENT: &str = "block_store";

/// The block store as a prune segment: keeps meta and commits of the evidence window.
pub type BlockSegment = EvidenceWindowSegment<BlockStore>;

impl WindowedStore for BlockStore {
    const SEGMENT: &'static str = BLOCK_SEGMENT;

    fn db(&self) -> &Arc<dyn KvStore> {
        &self.db
    }

    fn segment_bounds(&self) -> SegmentBounds {
        let b = self.bounds();
        SegmentBounds {
            lowest: b.evidence_base,
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

    /// The key ranges holding data of heights in `[from, to)`, family by family: what a
    /// targeted compaction after pruning covers.
    ///
    /// The hash index (`BH:`) is left out on purpose. It is keyed by hash, so its pruned
    /// entries are scattered over the whole family, whose range is the hottest of the store
    /// (every new block writes a random key in it): compacting it pulls the freshest files into
    /// every post-pruning task, however little of it was pruned. Its deleted entries are about
    /// 40 bytes per height; the engine's own compaction, or a manual [`BlockStore::compact`]
    /// (which covers it), reclaims them.
    fn compaction_ranges(&self, from: u64, to: u64) -> Vec<KeyRange> {
        keys::BLOCK_FAMILIES
            .iter()
            .filter(|family| **family != keys::HEIGHT_BY_HASH)
            .map(|family| family.heights(from, to))
            .collect()
    }

    /// The key ranges of heights in `[from, to)` that pruning has deleted for good: families
    /// dropped at the base below `min(to, base)`, meta and commits below
    /// `min(to, evidence_base)`. Nothing is ever written there again, so an engine may drop
    /// their space without compacting ([`Compactable::drop_deleted_range`]).
    fn deleted_ranges(&self, from: u64, to: u64) -> Vec<KeyRange> {
        let state = self.bounds();
        let below_base = to.min(state.base);
        let below_evidence = to.min(state.evidence_base);
        PRUNED_AT_BASE
            .iter()
            .map(|family| family.heights(from, below_base))
            .chain(
                EVIDENCE_FAMILIES
                    .iter()
                    .map(|family| family.heights(from, below_evidence)),
            )
            .filter(|range| !range.is_empty())
            .collect()
    }

    /// Every key range the block store owns (the spec's `CompactBlockStore` covers these).
    fn all_ranges() -> Vec<KeyRange> {
        keys::BLOCK_FAMILIES.iter().map(Family::all).collect()
    }
}
