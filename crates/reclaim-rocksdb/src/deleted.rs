//! The key ranges deleted since the store was opened: what RocksDB's space estimate measures.
//!
//! RocksDB keeps a range-deleted key's bytes in its SST files until a compaction drops them,
//! and none of its own estimates sees range tombstones (`rocksdb.estimate-live-data-size`
//! counts them as live). The adapter therefore remembers the ranges it deleted, merged, and
//! asks RocksDB for the approximate SST bytes inside them: the bytes a compaction of those
//! ranges gives back.

use reclaim_core::range::key_successor;

/// Ranges remembered at most; past this the lowest ones are forgotten (the estimate then
/// undercounts, it never overcounts). Pruning deletes one growing range per key family, so a
/// node stays far below it.
pub(crate) const MAX_TRACKED_RANGES: usize = 1024;

/// Disjoint, sorted, non-touching ranges `[start, end)` deleted since open, minus the keys put
/// into them afterwards.
#[derive(Debug, Default)]
pub(crate) struct DeletedRanges {
    ranges: Vec<(Vec<u8>, Vec<u8>)>,
    /// A range was added since the last [`DeletedRanges::take_unflushed`]: deleted data may
    /// still sit in a memtable, where RocksDB's approximate sizes do not look.
    unflushed: bool,
    /// A range was deleted since open: before that the set knows nothing (an estimate of 0
    /// would claim what it cannot tell).
    any_added: bool,
}

impl DeletedRanges {
    /// True when no range is remembered (writes then skip the bookkeeping of puts).
    pub(crate) fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Whether any range was deleted since open.
    pub(crate) fn any_added(&self) -> bool {
        self.any_added
    }

    /// Remembers `[start, end)` as deleted, merged with every range it overlaps or touches.
    pub(crate) fn add(&mut self, start: &[u8], end: &[u8]) {
        if start >= end {
            return;
        }
        let mut start = start.to_vec();
        let mut end = end.to_vec();
        // Ranges before `first` end before `start`; ranges from `last` on start after `end`.
        let first = self
            .ranges
            .partition_point(|(_, e)| e.as_slice() < start.as_slice());
        let last = self
            .ranges
            .partition_point(|(s, _)| s.as_slice() <= end.as_slice());
        if first < last {
            if self.ranges[first].0 < start {
                start.clone_from(&self.ranges[first].0);
            }
            if self.ranges[last - 1].1 > end {
                end.clone_from(&self.ranges[last - 1].1);
            }
        }
        self.ranges.splice(first..last, [(start, end)]);
        if self.ranges.len() > MAX_TRACKED_RANGES {
            let excess = self.ranges.len() - MAX_TRACKED_RANGES;
            self.ranges.drain(..excess);
        }
        self.unflushed = true;
        self.any_added = true;
    }

    /// Forgets `key` (it was put again: its bytes are live): the range holding it is split
    /// around it.
    pub(crate) fn cut(&mut self, key: &[u8]) {
        let at = self.ranges.partition_point(|(_, e)| e.as_slice() <= key);
        let Some((start, end)) = self.ranges.get(at) else {
            return;
        };
        if start.as_slice() > key {
            return;
        }
        let (start, end) = (start.clone(), end.clone());
        let after = key_successor(key);
        let pieces = [(start, key.to_vec()), (after, end)]
            .into_iter()
            .filter(|(s, e)| s < e);
        self.ranges.splice(at..=at, pieces);
    }

    /// The ranges remembered, in key order.
    pub(crate) fn ranges(&self) -> &[(Vec<u8>, Vec<u8>)] {
        &self.ranges
    }

    /// Whether a range was added since the last call (and clears the mark).
    pub(crate) fn take_unflushed(&mut self) -> bool {
        std::mem::take(&mut self.unflushed)
    }

    /// Forgets the ranges for which `keep` says false (ranges whose bytes are all gone).
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(usize) -> bool) {
        let mut index = 0;
        self.ranges.retain(|_| {
            let kept = keep(index);
            index += 1;
            kept
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(set: &DeletedRanges) -> Vec<(&[u8], &[u8])> {
        set.ranges()
            .iter()
            .map(|(s, e)| (s.as_slice(), e.as_slice()))
            .collect()
    }

    #[test]
    fn adding_merges_overlapping_and_touching_ranges_only() {
        let mut set = DeletedRanges::default();
        set.add(b"c", b"e");
        set.add(b"a", b"b");
        set.add(b"x", b"z");
        assert_eq!(
            ranges(&set),
            [
                (&b"a"[..], &b"b"[..]),
                (&b"c"[..], &b"e"[..]),
                (&b"x"[..], &b"z"[..])
            ]
        );
        // Touching at `b` and overlapping `c..e`: one range from `a` to `f`.
        set.add(b"b", b"d");
        set.add(b"d", b"f");
        assert_eq!(
            ranges(&set),
            [(&b"a"[..], &b"f"[..]), (&b"x"[..], &b"z"[..])]
        );
        // Covering everything.
        set.add(b"0", b"zz");
        assert_eq!(ranges(&set), [(&b"0"[..], &b"zz"[..])]);
        // Empty and reversed ranges are ignored.
        set.add(b"q", b"q");
        set.add(b"zzz", b"y");
        assert_eq!(ranges(&set), [(&b"0"[..], &b"zz"[..])]);
    }

    #[test]
    fn a_put_key_is_cut_out_of_its_range() {
        let mut set = DeletedRanges::default();
        set.add(b"a", b"d");
        set.cut(b"b");
        assert_eq!(
            ranges(&set),
            [(&b"a"[..], &b"b"[..]), (&b"b\0"[..], &b"d"[..])]
        );
        // Keys outside every range, and range ends (exclusive), change nothing.
        set.cut(b"d");
        set.cut(b"0");
        assert_eq!(set.ranges().len(), 2);
        // The first key of a range, and a key inside the last one.
        set.cut(b"a");
        set.cut(b"c");
        assert_eq!(
            ranges(&set),
            [
                (&b"a\0"[..], &b"b"[..]),
                (&b"b\0"[..], &b"c"[..]),
                (&b"c\0"[..], &b"d"[..])
            ]
        );
        // A one-key range cut by its key disappears.
        let mut single = DeletedRanges::default();
        single.add(b"k", b"k\0");
        single.cut(b"k");
        assert!(single.is_empty());
    }

    #[test]
    fn the_set_is_bounded_and_forgets_its_lowest_ranges() {
        let mut set = DeletedRanges::default();
        for i in 0..(MAX_TRACKED_RANGES as u32 + 10) {
            let start = (i * 2).to_be_bytes();
            let end = (i * 2 + 1).to_be_bytes();
            set.add(&start, &end);
        }
        assert_eq!(set.ranges().len(), MAX_TRACKED_RANGES);
        assert_eq!(set.ranges()[0].0, 20u32.to_be_bytes());
    }

    #[test]
    fn the_unflushed_mark_is_set_by_adding_and_cleared_by_taking() {
        let mut set = DeletedRanges::default();
        assert!(!set.take_unflushed());
        assert!(!set.any_added());
        set.add(b"a", b"b");
        assert!(set.take_unflushed());
        assert!(!set.take_unflushed());
        set.retain(|_| false);
        assert!(set.is_empty());
        assert!(
            set.any_added(),
            "forgetting a finished range keeps the set informed"
        );
    }
}
