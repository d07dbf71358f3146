//! Building blocks for height-indexed segments (no chain's layout is spelled here): keys that
//! sort by height inside a family, the read floor that refuses reads of pruned heights, and a
//! fixed-width record codec.
//!
//! Heights are big-endian `u64` after a family prefix, so every family is ordered by height and
//! "all heights in `[from, to)`" is one contiguous key range per family.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::range::KeyRange;

/// `prefix ++ be64(height)`.
pub fn height_key(prefix: &[u8], height: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + 8);
    key.extend_from_slice(prefix);
    key.extend_from_slice(&height.to_be_bytes());
    key
}

/// The keys of the family `prefix` for heights in `[from, to)`; empty when `from >= to`.
pub fn height_range(prefix: &[u8], from: u64, to: u64) -> KeyRange {
    let from = height_key(prefix, from);
    let to = height_key(prefix, to);
    // `max` keeps the range well-formed when from > to: it is then empty.
    let to = to.max(from.clone());
    KeyRange::new(Some(from), Some(to)).unwrap_or_default()
}

/// A read of a height below the lowest one kept: it was pruned (or is being pruned).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at height {height} was pruned: the lowest height kept is {base}")]
pub struct PrunedHeight {
    /// What was asked for.
    pub what: &'static str,
    /// The height asked for.
    pub height: u64,
    /// The lowest height whose `what` is kept.
    pub base: u64,
}

/// The lowest height readers may ask for in one family. It is raised *before* pruning deletes
/// anything below it, and every guarded read checks it both before and after reading, so a read
/// racing with pruning is refused with [`PrunedHeight`] instead of returning a partial or
/// missing value.
#[derive(Debug, Default)]
pub struct ReadFloor(AtomicU64);

impl ReadFloor {
    /// A floor at `height`.
    pub fn new(height: u64) -> Self {
        Self(AtomicU64::new(height))
    }

    /// The floor now.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }

    /// Raises the floor to `height` (never lowers it).
    pub fn raise(&self, height: u64) {
        self.0.fetch_max(height, Ordering::SeqCst);
    }

    /// Runs `read` for `height` unless the floor is above it, before or after the read (then
    /// the refusal replaces the read's result, error or not).
    pub fn guard<T, E: From<PrunedHeight>>(
        &self,
        what: &'static str,
        height: u64,
        read: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        let check = || {
            let base = self.get();
            if height < base {
                Err(E::from(PrunedHeight { what, height, base }))
            } else {
                Ok(())
            }
        };
        check()?;
        let value = read();
        // A floor raised while reading wins over whatever the read saw (a value, a record
        // missing half-way through, an error): the height is pruned now.
        check()?;
        value
    }
}

/// Encodes a fixed list of `u64` fields.
pub fn encode_u64s(fields: &[u64]) -> Vec<u8> {
    fields.iter().flat_map(|f| f.to_be_bytes()).collect()
}

/// Decodes exactly `N` `u64` fields, or `None` if the length is wrong.
pub fn decode_u64s<const N: usize>(bytes: &[u8]) -> Option<[u64; N]> {
    if bytes.len() != N * 8 {
        return None;
    }
    let mut out = [0u64; N];
    for (field, chunk) in out.iter_mut().zip(bytes.chunks_exact(8)) {
        *field = u64::from_be_bytes(chunk.try_into().ok()?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn height_keys_sort_by_height() {
        let a = height_key(b"H:", 255);
        let b = height_key(b"H:", 256);
        assert!(a < b);
        assert_eq!(&b[..2], b"H:");
    }

    #[test]
    fn height_range_is_half_open_and_never_reversed() {
        let r = height_range(b"H:", 5, 7);
        assert!(r.contains(&height_key(b"H:", 5)));
        assert!(r.contains(&height_key(b"H:", 6)));
        assert!(!r.contains(&height_key(b"H:", 7)));
        assert!(height_range(b"H:", 9, 3).is_empty());
    }

    #[test]
    fn u64_records_round_trip_and_reject_bad_lengths() {
        let bytes = encode_u64s(&[1, u64::MAX, 3]);
        assert_eq!(decode_u64s::<3>(&bytes), Some([1, u64::MAX, 3]));
        assert_eq!(decode_u64s::<2>(&bytes), None);
    }
}
