//! Half-open byte-key ranges, validated on construction.

use std::fmt;
use std::ops::Bound;

/// A range whose start lies after its end: rejected when the range is built, so that no engine
/// ever sees one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("reversed key range: start {start} is after end {end}")]
pub struct ReversedRange {
    /// The start key, hex encoded.
    pub start: String,
    /// The end key, hex encoded.
    pub end: String,
}

/// A half-open key range `[start, end)` in byte order; `None` on a side means unbounded there.
///
/// Guarantees: `start <= end` whenever both are bounded (a reversed range cannot be built), so
/// every consumer may rely on it. A range with `start == end` is *empty*: reading, deleting or
/// compacting it is a no-op that succeeds.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct KeyRange {
    start: Option<Vec<u8>>,
    end: Option<Vec<u8>>,
}

impl KeyRange {
    /// Every key.
    pub fn full() -> Self {
        Self::default()
    }

    /// `[start, end)` with either side optional; fails if both are bounded and `start > end`.
    pub fn new(start: Option<Vec<u8>>, end: Option<Vec<u8>>) -> Result<Self, ReversedRange> {
        if let (Some(s), Some(e)) = (&start, &end)
            && s > e
        {
            return Err(ReversedRange {
                start: hex(s),
                end: hex(e),
            });
        }
        Ok(Self { start, end })
    }

    /// `[start, end)`; fails if `start > end`.
    pub fn between(
        start: impl Into<Vec<u8>>,
        end: impl Into<Vec<u8>>,
    ) -> Result<Self, ReversedRange> {
        Self::new(Some(start.into()), Some(end.into()))
    }

    /// Every key at or after `start`.
    pub fn from(start: impl Into<Vec<u8>>) -> Self {
        Self {
            start: Some(start.into()),
            end: None,
        }
    }

    /// Every key strictly before `end`.
    pub fn until(end: impl Into<Vec<u8>>) -> Self {
        Self {
            start: None,
            end: Some(end.into()),
        }
    }

    /// Every key that starts with `prefix`.
    pub fn prefix(prefix: &[u8]) -> Self {
        Self {
            start: (!prefix.is_empty()).then(|| prefix.to_vec()),
            end: prefix_successor(prefix),
        }
    }

    /// Exactly the key `key`.
    pub fn exact(key: &[u8]) -> Self {
        Self {
            start: Some(key.to_vec()),
            end: Some(key_successor(key)),
        }
    }

    /// Cuts the range at `points` into consecutive, disjoint sub-ranges whose union is the
    /// range, in key order. Points outside the range or on its start are ignored, as are
    /// duplicates; with no usable point the result is the range itself.
    pub fn split_at(&self, points: impl IntoIterator<Item = Vec<u8>>) -> Vec<KeyRange> {
        let mut cuts: Vec<Vec<u8>> = points
            .into_iter()
            .filter(|p| self.contains(p) && self.start.as_deref() != Some(p.as_slice()))
            .collect();
        cuts.sort();
        cuts.dedup();
        let mut slices = Vec::with_capacity(cuts.len() + 1);
        let mut start = self.start.clone();
        for cut in cuts {
            slices.push(KeyRange {
                start: start.take(),
                end: Some(cut.clone()),
            });
            start = Some(cut);
        }
        slices.push(KeyRange {
            start,
            end: self.end.clone(),
        });
        slices
    }

    /// The inclusive start, `None` when unbounded.
    pub fn start(&self) -> Option<&[u8]> {
        self.start.as_deref()
    }

    /// The exclusive end, `None` when unbounded.
    pub fn end(&self) -> Option<&[u8]> {
        self.end.as_deref()
    }

    /// The range as standard bounds (`start` included, `end` excluded), for engines whose
    /// range APIs take `RangeBounds`.
    pub fn as_bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        (
            self.start().map_or(Bound::Unbounded, Bound::Included),
            self.end().map_or(Bound::Unbounded, Bound::Excluded),
        )
    }

    /// True when no key can lie in the range (`start == end`).
    pub fn is_empty(&self) -> bool {
        matches!((&self.start, &self.end), (Some(s), Some(e)) if s >= e)
    }

    /// True when both sides are unbounded.
    pub fn is_full(&self) -> bool {
        self.start.is_none() && self.end.is_none()
    }

    /// True when `key` lies in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.start.as_deref().is_none_or(|s| key >= s)
            && self.end.as_deref().is_none_or(|e| key < e)
    }

    /// The same range with its start moved to `start` (kept if `start` is earlier); the result
    /// may be empty but never reversed.
    pub fn with_start_at_least(&self, start: &[u8]) -> Self {
        let start = match &self.start {
            Some(s) if s.as_slice() >= start => s.clone(),
            _ => start.to_vec(),
        };
        let end = self.end.as_ref().map(|e| e.max(&start).clone());
        Self {
            start: Some(start),
            end,
        }
    }

    /// The same range with its end moved to `end` (kept if `end` is later); the result may be
    /// empty but never reversed.
    pub fn with_end_at_most(&self, end: &[u8]) -> Self {
        let end = match &self.end {
            Some(e) if e.as_slice() <= end => e.clone(),
            _ => end.to_vec(),
        };
        let start = self.start.as_ref().map(|s| s.min(&end).clone());
        Self {
            start,
            end: Some(end),
        }
    }

    /// The union of `self` and `other` when they overlap or meet end to start; `None` when a
    /// gap lies between them (or either is empty).
    pub fn union_if_touching(&self, other: &KeyRange) -> Option<KeyRange> {
        if self.is_empty() || other.is_empty() {
            return None;
        }
        // `x` reaches `y`'s start: x's end is open, y's start is open, or x ends at or after it.
        let reaches = |x: &KeyRange, y: &KeyRange| match (x.end(), y.start()) {
            (None, _) | (_, None) => true,
            (Some(end), Some(start)) => end >= start,
        };
        if !(reaches(self, other) && reaches(other, self)) {
            return None;
        }
        let start = match (self.start(), other.start()) {
            (Some(x), Some(y)) => Some(x.min(y).to_vec()),
            _ => None,
        };
        let end = match (self.end(), other.end()) {
            (Some(x), Some(y)) => Some(x.max(y).to_vec()),
            _ => None,
        };
        KeyRange::new(start, end).ok()
    }
}

impl fmt::Display for KeyRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let start = self.start.as_deref().map_or_else(|| "-inf".to_owned(), hex);
        let end = self.end.as_deref().map_or_else(|| "+inf".to_owned(), hex);
        write!(f, "[{start}, {end})")
    }
}

impl fmt::Debug for KeyRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The smallest key greater than every key starting with `prefix`, or `None` if there is none
/// (the prefix is empty or all `0xff`).
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The smallest key strictly greater than `key` (`key` followed by a zero byte).
pub fn key_successor(key: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0);
    next
}

/// Hex form of a key for logs and errors: printable ASCII runs are kept readable.
pub fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b == b':' || b == b'_' {
            out.push(b as char);
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touching_ranges_merge_and_separate_ones_do_not() {
        let r = |a: &[u8], b: &[u8]| KeyRange::between(a.to_vec(), b.to_vec()).unwrap();
        let cases = [
            (r(b"a", b"c"), r(b"c", b"e"), Some(r(b"a", b"e"))),
            (r(b"c", b"e"), r(b"a", b"c"), Some(r(b"a", b"e"))),
            (r(b"a", b"d"), r(b"b", b"c"), Some(r(b"a", b"d"))),
            (r(b"a", b"b"), r(b"c", b"d"), None),
            (r(b"c", b"d"), r(b"a", b"b"), None),
            (
                KeyRange::from(b"b".to_vec()),
                r(b"a", b"b"),
                Some(KeyRange::from(b"a".to_vec())),
            ),
            (KeyRange::full(), r(b"x", b"y"), Some(KeyRange::full())),
        ];
        for (a, b, union) in cases {
            assert_eq!(a.union_if_touching(&b), union, "{a:?} {b:?}");
        }
    }

    #[test]
    fn reversed_range_is_rejected_with_both_keys_in_the_message() {
        let err = KeyRange::between(b"b".to_vec(), b"a".to_vec()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "reversed key range: start b is after end a"
        );
    }

    #[test]
    fn empty_and_full_ranges() {
        let empty = KeyRange::between(b"k".to_vec(), b"k".to_vec()).unwrap();
        assert!(empty.is_empty());
        assert!(!empty.contains(b"k"));
        assert!(KeyRange::full().is_full());
        assert!(KeyRange::full().contains(b""));
        assert!(!KeyRange::from(b"a".to_vec()).is_empty());
    }

    #[test]
    fn contains_is_half_open() {
        let r = KeyRange::between(b"b".to_vec(), b"d".to_vec()).unwrap();
        assert!(!r.contains(b"a"));
        assert!(r.contains(b"b"));
        assert!(r.contains(b"c\xff"));
        assert!(!r.contains(b"d"));
    }

    #[test]
    fn prefix_range_covers_exactly_the_prefix() {
        let r = KeyRange::prefix(b"P:");
        assert!(r.contains(b"P:"));
        assert!(r.contains(b"P:\xff\xff"));
        assert!(!r.contains(b"P;"));
        assert!(!r.contains(b"P"));
        assert_eq!(prefix_successor(b"\xff\xff"), None);
        assert_eq!(prefix_successor(b"a\xff"), Some(b"b".to_vec()));
        assert!(KeyRange::prefix(b"").is_full());
    }

    #[test]
    fn clamping_never_reverses() {
        let r = KeyRange::between(b"c".to_vec(), b"f".to_vec()).unwrap();
        assert_eq!(r.with_start_at_least(b"d").start(), Some(&b"d"[..]));
        assert!(r.with_start_at_least(b"z").is_empty());
        assert!(r.with_end_at_most(b"a").is_empty());
        assert_eq!(r.with_end_at_most(b"e").end(), Some(&b"e"[..]));
        assert_eq!(
            KeyRange::full().with_end_at_most(b"x").end(),
            Some(&b"x"[..])
        );
    }

    #[test]
    fn display_is_readable() {
        let r = KeyRange::new(Some(b"H:\x00\x01".to_vec()), None).unwrap();
        assert_eq!(r.to_string(), "[H:\\x00\\x01, +inf)");
    }
}
