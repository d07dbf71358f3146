//! What a write-once rewrite knows about the generation it builds: which keys of the frozen
//! generation the node deleted since it began (its tombstones, also kept durably in the new
//! generation's side keyspace) and which keys it wrote.

use std::collections::HashSet;

use crate::error::StorageError;
use crate::kv::{BatchOp, KeyValue, WriteBatch};
use crate::range::KeyRange;

/// Side-keyspace key prefix of a deleted key: `[POINT] ++ key`, empty value.
const POINT: u8 = 0;
/// Side-keyspace key prefix of a deleted range: `[RANGE] ++ be64 sequence`, value
/// [`encode_range`]. Numbered, so that two ranges with one start never overwrite each other.
const RANGE: u8 = 1;

/// The frozen generation's keys that the node deleted or wrote since the rewrite began.
#[derive(Debug, Default)]
pub(crate) struct Shadow {
    /// Keys deleted since the rewrite began.
    deleted_keys: HashSet<Vec<u8>>,
    /// Ranges deleted since (merged where they touch; the side keyspace keeps them apart).
    deleted_ranges: Vec<KeyRange>,
    /// Keys put since the rewrite began, while this process knows them all; `None` after a
    /// reopen or past the bound: the copy then asks the new generation instead.
    written: Option<HashSet<Vec<u8>>>,
    /// Bytes `written` holds.
    written_bytes: u64,
    /// At most this many bytes of written keys are remembered.
    written_limit: u64,
    /// The number of the next range tombstone.
    next_range: u64,
    /// Key and value bytes of the batches written since the rewrite began in this process.
    batch_bytes: u64,
}

impl Shadow {
    /// A rewrite that just began: nothing deleted, nothing written.
    pub(crate) fn new(written_limit: u64) -> Self {
        Self {
            written: Some(HashSet::new()),
            written_limit,
            ..Self::default()
        }
    }

    /// The shadow a crash left: the tombstones of the side keyspace's `entries`; the written
    /// keys are not known.
    pub(crate) fn recovered(entries: Vec<KeyValue>) -> Result<Self, StorageError> {
        let mut shadow = Self::default();
        for (key, value) in entries {
            match key.split_first() {
                Some((&POINT, deleted)) => {
                    shadow.deleted_keys.insert(deleted.to_vec());
                }
                Some((&RANGE, number)) => {
                    let number = <[u8; 8]>::try_from(number)
                        .map(u64::from_be_bytes)
                        .map_err(|_| corrupt("a range tombstone's number"))?;
                    shadow.next_range = shadow.next_range.max(number + 1);
                    shadow.add_range(decode_range(&value)?);
                }
                _ => return Err(corrupt("a tombstone's kind")),
            }
        }
        Ok(shadow)
    }

    /// The side-keyspace entries that record `batch`'s deletes (numbering its range deletes).
    pub(crate) fn tombstones_for(&mut self, batch: &WriteBatch) -> Vec<KeyValue> {
        let mut side = Vec::new();
        for op in batch.ops() {
            match op {
                BatchOp::Put { .. } => {}
                BatchOp::Delete { key } => {
                    let mut mark = Vec::with_capacity(key.len() + 1);
                    mark.push(POINT);
                    mark.extend_from_slice(key);
                    side.push((mark, Vec::new()));
                }
                BatchOp::DeleteRange(range) => {
                    let mut mark = vec![RANGE];
                    mark.extend_from_slice(&self.next_range.to_be_bytes());
                    self.next_range += 1;
                    side.push((mark, encode_range(range)));
                }
            }
        }
        side
    }

    /// Records `batch` (its keys; `bytes` its key and value bytes), which the new generation
    /// now holds with its tombstones.
    pub(crate) fn record(&mut self, batch: &WriteBatch, bytes: u64) {
        self.batch_bytes += bytes;
        for op in batch.ops() {
            match op {
                BatchOp::Put { key, .. } => {
                    if let Some(written) = self.written.as_mut()
                        && written.insert(key.clone())
                    {
                        self.written_bytes += key.len() as u64;
                        if self.written_bytes > self.written_limit {
                            self.written = None;
                        }
                    }
                }
                BatchOp::Delete { key } => {
                    self.deleted_keys.insert(key.clone());
                }
                BatchOp::DeleteRange(range) => self.add_range(range.clone()),
            }
        }
    }

    fn add_range(&mut self, range: KeyRange) {
        if range.is_empty() {
            return;
        }
        // Successive prunes delete adjacent ranges of each key family: merged, the list stays
        // about one range per family.
        let merged = self
            .deleted_ranges
            .iter_mut()
            .find_map(|known| known.union_if_touching(&range).map(|union| (known, union)));
        match merged {
            Some((known, union)) => *known = union,
            None => self.deleted_ranges.push(range),
        }
    }

    /// True when the node deleted `key` since the rewrite began: the frozen generation's value
    /// is not to be seen (the new generation's, if it has one, is).
    pub(crate) fn deleted(&self, key: &[u8]) -> bool {
        self.deleted_keys.contains(key) || self.deleted_ranges.iter().any(|r| r.contains(key))
    }

    /// Whether the node wrote `key` since the rewrite began: `Some(true)` or `Some(false)` when
    /// known, `None` when the new generation must be asked.
    pub(crate) fn written(&self, key: &[u8]) -> Option<bool> {
        self.written.as_ref().map(|w| w.contains(key))
    }

    /// What the old generation needs to hold every write made since the rewrite began (given
    /// the new generation's current value of each written key through `value`): the deleted
    /// ranges and keys, then the written keys' values (a key written and then deleted is
    /// deleted). `None` when the written keys are not all known.
    pub(crate) fn fold_back(
        &self,
        mut value: impl FnMut(&[u8]) -> Result<Option<Vec<u8>>, StorageError>,
    ) -> Result<Option<WriteBatch>, StorageError> {
        let Some(written) = &self.written else {
            return Ok(None);
        };
        let mut batch = WriteBatch::new();
        for range in &self.deleted_ranges {
            batch.delete_range(range.clone());
        }
        for key in &self.deleted_keys {
            batch.delete(key.clone());
        }
        for key in written {
            match value(key)? {
                Some(current) => batch.put(key.clone(), current),
                None => batch.delete(key.clone()),
            };
        }
        Ok(Some(batch))
    }

    /// Key and value bytes written since the rewrite began in this process.
    pub(crate) fn batch_bytes(&self) -> u64 {
        self.batch_bytes
    }

    /// The deleted range holding `key`, if one does: a scan may skip it whole.
    pub(crate) fn deleted_range_holding(&self, key: &[u8]) -> Option<&KeyRange> {
        self.deleted_ranges.iter().find(|r| r.contains(key))
    }
}

fn corrupt(what: &str) -> StorageError {
    StorageError::engine(
        "rewrite",
        "read tombstones",
        format!("{what} does not decode"),
    )
}

/// `[has_start] start-len start [has_end] end`, lengths as be32.
fn encode_range(range: &KeyRange) -> Vec<u8> {
    let mut out = Vec::new();
    for bound in [range.start(), range.end()] {
        match bound {
            Some(bytes) => {
                out.push(1);
                out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
                out.extend_from_slice(bytes);
            }
            None => out.push(0),
        }
    }
    out
}

fn decode_range(mut bytes: &[u8]) -> Result<KeyRange, StorageError> {
    let mut bound = || -> Result<Option<Vec<u8>>, StorageError> {
        let (&flag, rest) = bytes
            .split_first()
            .ok_or_else(|| corrupt("a range tombstone"))?;
        if flag == 0 {
            bytes = rest;
            return Ok(None);
        }
        let len = rest
            .get(..4)
            .and_then(|l| <[u8; 4]>::try_from(l).ok())
            .map(u32::from_be_bytes)
            .ok_or_else(|| corrupt("a range tombstone"))? as usize;
        let value = rest
            .get(4..4 + len)
            .ok_or_else(|| corrupt("a range tombstone"))?
            .to_vec();
        bytes = &rest[4 + len..];
        Ok(Some(value))
    };
    let start = bound()?;
    let end = bound()?;
    KeyRange::new(start, end).map_err(|_| corrupt("a range tombstone (reversed)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tombstones_survive_a_recovery() {
        let mut shadow = Shadow::new(1 << 20);
        let mut batch = WriteBatch::new();
        batch.put(b"p".to_vec(), vec![1]);
        batch.delete(b"d".to_vec());
        batch.delete_range(KeyRange::between(b"r1".to_vec(), b"r5".to_vec()).unwrap());
        batch.delete_range(KeyRange::from(b"z".to_vec()));
        let side = shadow.tombstones_for(&batch);
        shadow.record(&batch, 0);
        assert_eq!(side.len(), 3);
        let recovered = Shadow::recovered(side).unwrap();
        for (key, deleted) in [
            (&b"d"[..], true),
            (b"p", false),
            (b"r1", true),
            (b"r4", true),
            (b"r5", false),
            (b"zz", true),
        ] {
            assert_eq!(shadow.deleted(key), deleted, "{key:?}");
            assert_eq!(recovered.deleted(key), deleted, "{key:?} recovered");
        }
        assert_eq!(shadow.written(b"p"), Some(true));
        assert_eq!(shadow.written(b"d"), Some(false));
        assert_eq!(recovered.written(b"p"), None);
        assert_eq!(recovered.next_range, 2);
        assert!(Shadow::recovered(vec![(vec![7], vec![])]).is_err());
        assert!(Shadow::recovered(vec![(vec![RANGE, 0, 0, 0, 0, 0, 0, 0, 1], vec![1])]).is_err());
    }

    #[test]
    fn forgets_written_keys_past_its_bound() {
        let mut shadow = Shadow::new(10);
        let mut batch = WriteBatch::new();
        batch.put(b"0123456789a".to_vec(), vec![1]);
        shadow.record(&batch, 12);
        assert_eq!(shadow.written(b"x"), None);
    }
}
