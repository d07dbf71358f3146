//! A transaction index, added as a new prune segment in one file: what a node author writes to
//! have the executor prune and compact one more kind of height-indexed data. It uses only the
//! core's building blocks (height-ordered keys, the read floor, the limiter's batch loop).
//!
//! Keys: `txIndex:{be64 height}{be32 index}` → the transaction result; `txIndexBounds` →
//! `{base, height}`, written in the same batch as every save and every pruning batch.

use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use reclaim_core::height::{
    PrunedHeight, ReadFloor, decode_u64s, encode_u64s, height_key, height_range,
};
use reclaim_core::pruning::{
    PruneLimiter, PruneRequest, PruneSegment, SegmentBounds, SegmentError, SegmentReport,
};
use reclaim_core::{KeyRange, KvStore, StorageError, WriteBatch, WriteOptions};

const TX: &[u8] = b"txIndex:";
const BOUNDS: &[u8] = b"txIndexBounds";

/// What the index can fail with.
#[derive(Debug, thiserror::Error)]
pub enum TxIndexError {
    /// The engine failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The height was pruned.
    #[error(transparent)]
    Pruned(#[from] PrunedHeight),
    /// The bounds record is damaged.
    #[error("corrupt tx index bounds")]
    Corrupt,
}

/// Transaction results by height.
pub struct TxIndex {
    db: Arc<dyn KvStore>,
    bounds: RwLock<(u64, u64)>,
    writer: Mutex<()>,
    floor: ReadFloor,
}

impl TxIndex {
    /// Opens the index kept in `db`.
    pub fn open(db: Arc<dyn KvStore>) -> Result<Self, TxIndexError> {
        let (base, height) = match db.get(BOUNDS)? {
            Some(bytes) => {
                let [base, height] = decode_u64s::<2>(&bytes).ok_or(TxIndexError::Corrupt)?;
                (base, height)
            }
            None => (0, 0),
        };
        Ok(Self {
            db,
            bounds: RwLock::new((base, height)),
            writer: Mutex::new(()),
            floor: ReadFloor::new(base),
        })
    }

    /// Indexes the results of `height` (the next height).
    pub fn index(&self, height: u64, results: &[Vec<u8>]) -> Result<(), TxIndexError> {
        let _writer = self.writer.lock();
        let (base, _) = *self.bounds.read();
        let next = (if base == 0 { height } else { base }, height);
        let mut batch = WriteBatch::new();
        for (i, result) in (0u32..).zip(results) {
            let mut key = height_key(TX, height);
            key.extend_from_slice(&i.to_be_bytes());
            batch.put(key, result.clone());
        }
        batch.put(BOUNDS, encode_u64s(&[next.0, next.1]));
        self.db.write(batch, WriteOptions::BUFFERED)?;
        self.floor.raise(next.0);
        *self.bounds.write() = next;
        Ok(())
    }

    /// Result `i` of `height`; [`TxIndexError::Pruned`] below the base.
    pub fn load(&self, height: u64, i: u32) -> Result<Option<Vec<u8>>, TxIndexError> {
        let mut key = height_key(TX, height);
        key.extend_from_slice(&i.to_be_bytes());
        self.floor
            .guard("tx result", height, || Ok(self.db.get(&key)?))
    }
}

impl PruneSegment for TxIndex {
    fn name(&self) -> &str {
        "tx_index"
    }

    fn store(&self) -> &Arc<dyn KvStore> {
        &self.db
    }

    fn bounds(&self) -> SegmentBounds {
        let (base, height) = *self.bounds.read();
        SegmentBounds {
            lowest: base,
            base,
            height,
        }
    }

    fn prune(
        &self,
        request: &PruneRequest,
        limiter: &mut PruneLimiter,
    ) -> Result<SegmentReport, SegmentError> {
        let _writer = self.writer.lock();
        let (base, height) = *self.bounds.read();
        let target = request.retain_height.min(height);
        let mut report = SegmentReport::default();
        let (_, done) = limiter.run_batches(base, target, request.batch_heights, |from, to| {
            let mut batch = WriteBatch::new();
            batch.delete_range(height_range(TX, from, to));
            batch.put(BOUNDS, encode_u64s(&[to, height]));
            self.floor.raise(to);
            self.db.write(batch, WriteOptions::DURABLE)?;
            *self.bounds.write() = (to, height);
            report.heights_pruned += to - from;
            report.batches += 1;
            Ok::<_, StorageError>(())
        })?;
        report.complete = done;
        Ok(report)
    }

    fn compaction_ranges(&self, from: u64, to: u64) -> Vec<KeyRange> {
        vec![height_range(TX, from, to)]
    }

    fn deleted_ranges(&self, from: u64, to: u64) -> Vec<KeyRange> {
        vec![height_range(TX, from, to.min(self.bounds.read().0))]
    }

    fn all_ranges(&self) -> Vec<KeyRange> {
        vec![KeyRange::prefix(TX)]
    }
}
