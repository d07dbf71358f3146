//! Deterministic incompressible bytes: a splitmix64 stream, so figures do not depend on an
//! engine's compression and every run writes the same data. Also the batches and the scan an
//! adapter's live-bytes counter is tested with.

use reclaim_core::{KeyRange, KvRead, ScanOrder, StorageError, WriteBatch, WriteOptions};

/// `len` pseudo-random bytes determined by `seed`.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed ^ 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The live bytes of `store` as a full scan counts them: each key's length plus its value's.
pub fn scanned_live_bytes(store: &(impl KvRead + ?Sized)) -> Result<u64, StorageError> {
    Ok(store
        .scan(&KeyRange::full(), ScanOrder::Ascending, usize::MAX)?
        .iter()
        .map(|(k, v)| (k.len() + v.len()) as u64)
        .sum())
}

/// Batches that exercise every way a write changes the live bytes, each with the options to
/// write it with: new keys, the same key twice in one batch, a delete of a key put earlier in
/// the batch (durable); then an overwrite with a smaller value, deletes of a present and an
/// absent key and a range delete (buffered). An adapter that counts its live bytes must agree
/// with [`scanned_live_bytes`] after each.
pub fn live_bytes_batches() -> Vec<(WriteBatch, WriteOptions)> {
    let mut first = WriteBatch::new();
    for i in 0u32..200 {
        first.put(i.to_be_bytes().to_vec(), vec![7; 100 + i as usize]);
    }
    first.put(b"twice".to_vec(), vec![1; 10]);
    first.put(b"twice".to_vec(), vec![1; 30]);
    first.put(b"gone".to_vec(), vec![1; 50]);
    first.delete(b"gone".to_vec());
    let mut second = WriteBatch::new();
    second.put(5u32.to_be_bytes().to_vec(), vec![9; 3]);
    second.delete(6u32.to_be_bytes().to_vec());
    second.delete(b"never-there".to_vec());
    if let Ok(range) = KeyRange::between(10u32.to_be_bytes(), 150u32.to_be_bytes()) {
        second.delete_range(range);
    }
    vec![
        (first, WriteOptions::DURABLE),
        (second, WriteOptions::BUFFERED),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_distinct() {
        assert_eq!(random_bytes(1, 33), random_bytes(1, 33));
        assert_ne!(random_bytes(1, 32), random_bytes(2, 32));
        assert_eq!(random_bytes(7, 5).len(), 5);
    }
}
