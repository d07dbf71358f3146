//! The writes made while a rewrite copies: queued in order, bounded in bytes.

use std::collections::VecDeque;

use parking_lot::Mutex;

use crate::kv::{BatchOp, WriteBatch};

/// Writes applied to the live generation while a rewrite runs, in the order they were applied,
/// waiting to be replayed onto the new generation.
///
/// Pushing never blocks a writer for longer than a queue append and never fails: past
/// `limit_bytes` the capture marks itself overflowed and drops what it holds, and the rewrite
/// then gives up (the old generation stays live, nothing is lost).
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
        queue.batches.push_back(batch);
        if queue.bytes > self.limit_bytes {
            queue.overflowed = true;
            queue.batches.clear();
            queue.bytes = 0;
        }
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
}
