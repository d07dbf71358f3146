//! The writes made while a rewrite copies: queued in order, bounded in bytes.

use std::collections::{HashSet, VecDeque};

use parking_lot::Mutex;

use crate::kv::{BatchOp, KeyValue, WriteBatch};
use crate::range::KeyRange;

/// Writes applied to the live generation while a rewrite runs, in the order they were applied,
/// waiting to be replayed onto the new generation.
///
/// Pushing never blocks a writer for longer than a queue append and never fails: past
/// `limit_bytes` the capture marks itself overflowed and drops what it holds, and the rewrite
/// then gives up (the old generation stays live, nothing is lost).
///
/// It also remembers every key a captured write touched (and every range it deleted), drained
/// or not: the copy skips those keys, since replaying their captured writes in order decides
/// their final state alone (each put or delete sets a key's whole state). A chain's new
/// heights and its pruned ones are then written once, by the replay, instead of copied too.
#[derive(Debug)]
pub struct WriteCapture {
    queue: Mutex<Captured>,
    limit_bytes: u64,
}

#[derive(Debug, Default)]
struct Captured {
    batches: VecDeque<WriteBatch>,
    bytes: u64,
    overflowed: bool,
    /// Keys put or deleted by a captured write since the capture began.
    touched: HashSet<Vec<u8>>,
    /// Ranges deleted by a captured write since the capture began.
    deleted: Vec<KeyRange>,
    /// Bytes the two above hold (counted against the bound with the queue).
    touched_bytes: u64,
}

/// Bytes a batch holds in a capture queue (keys and values).
pub(crate) fn batch_bytes(batch: &WriteBatch) -> u64 {
    batch
        .ops()
        .iter()
        .map(|op| match op {
            BatchOp::Put { key, value } => key.len() + value.len(),
            BatchOp::Delete { key } => key.len(),
            BatchOp::DeleteRange(_) => 64,
        } as u64)
        .sum()
}

impl WriteCapture {
    /// An empty capture that overflows beyond `limit_bytes` of queued keys and values.
    pub fn new(limit_bytes: u64) -> Self {
        Self {
            queue: Mutex::new(Captured::default()),
            limit_bytes,
        }
    }

    /// Queues `batch`, which was just applied to the live generation.
    pub fn push(&self, batch: WriteBatch) {
        let mut queue = self.queue.lock();
        if queue.overflowed {
            return;
        }
        queue.bytes += batch_bytes(&batch);
        for op in batch.ops() {
            match op {
                BatchOp::Put { key, .. } | BatchOp::Delete { key } => {
                    if !queue.touched.contains(key.as_slice()) {
                        queue.touched_bytes += key.len() as u64;
                        queue.touched.insert(key.clone());
                    }
                }
                BatchOp::DeleteRange(range) => {
                    // Successive prunes delete adjacent ranges of each key family: merged,
                    // the list stays about one range per family.
                    let merged = queue
                        .deleted
                        .iter_mut()
                        .find_map(|known| known.union_if_touching(range).map(|u| (known, u)));
                    match merged {
                        Some((known, union)) => *known = union,
                        None => {
                            queue.touched_bytes += 64;
                            queue.deleted.push(range.clone());
                        }
                    }
                }
            }
        }
        queue.batches.push_back(batch);
        if queue.bytes + queue.touched_bytes > self.limit_bytes {
            queue.overflowed = true;
            queue.batches.clear();
            queue.bytes = 0;
            queue.touched.clear();
            queue.deleted.clear();
            queue.touched_bytes = 0;
        }
    }

    /// Removes from `page` (entries the copy just read) every key a captured write touched:
    /// the replay alone decides their state. Returns how many it removed.
    pub fn drop_touched(&self, page: &mut Vec<KeyValue>) -> usize {
        let queue = self.queue.lock();
        if queue.touched.is_empty() && queue.deleted.is_empty() {
            return 0;
        }
        let before = page.len();
        page.retain(|(key, _)| {
            !queue.touched.contains(key.as_slice())
                && !queue.deleted.iter().any(|range| range.contains(key))
        });
        before - page.len()
    }

    /// Takes every queued batch, oldest first, and the bytes they hold. `None` once the capture
    /// has overflowed.
    pub fn drain(&self) -> Option<(Vec<WriteBatch>, u64)> {
        let mut queue = self.queue.lock();
        if queue.overflowed {
            return None;
        }
        let bytes = std::mem::take(&mut queue.bytes);
        Some((queue.batches.drain(..).collect(), bytes))
    }

    /// True once more than the bound was queued.
    pub fn overflowed(&self) -> bool {
        self.queue.lock().overflowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drains_in_order_and_overflows_past_its_bound() {
        let capture = WriteCapture::new(100);
        let mut first = WriteBatch::new();
        first.put(b"a".to_vec(), vec![0; 10]);
        let mut second = WriteBatch::new();
        second.delete(b"a".to_vec());
        capture.push(first.clone());
        capture.push(second.clone());
        let (batches, bytes) = capture.drain().unwrap();
        assert_eq!(bytes, 12);
        assert_eq!(batches, vec![first, second]);
        assert_eq!(capture.drain().unwrap().0.len(), 0);
        let mut big = WriteBatch::new();
        big.put(b"b".to_vec(), vec![0; 200]);
        capture.push(big);
        assert!(capture.overflowed());
        assert!(capture.drain().is_none());
    }

    #[test]
    fn touching_deleted_ranges_are_queued_merged() {
        let r = |a: &[u8], b: &[u8]| KeyRange::between(a.to_vec(), b.to_vec()).unwrap();
        let capture = WriteCapture::new(1 << 20);
        for (from, to) in [
            (&b"a"[..], &b"b"[..]),
            (b"b", b"c"),
            (b"x", b"y"),
            (b"c", b"d"),
        ] {
            let mut batch = WriteBatch::new();
            batch.delete_range(r(from, to));
            capture.push(batch);
        }
        assert_eq!(
            capture.queue.lock().deleted,
            vec![r(b"a", b"d"), r(b"x", b"y")]
        );
    }

    #[test]
    fn remembers_touched_keys_and_deleted_ranges_after_draining() {
        let capture = WriteCapture::new(1 << 20);
        let mut batch = WriteBatch::new();
        batch.put(b"put".to_vec(), vec![1]);
        batch.delete(b"gone".to_vec());
        batch.delete_range(KeyRange::between(b"r1".to_vec(), b"r5".to_vec()).unwrap());
        capture.push(batch);
        capture.drain().unwrap();
        let mut page: Vec<KeyValue> = [&b"gone"[..], b"kept", b"put", b"r3", b"r5"]
            .iter()
            .map(|k| (k.to_vec(), vec![0]))
            .collect();
        assert_eq!(capture.drop_touched(&mut page), 3);
        let left: Vec<&[u8]> = page.iter().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(left, vec![&b"kept"[..], b"r5"]);
    }
}
