//! The in-memory engine: the reference every backend is compared against by the conformance
//! suite, and the template a backend author copies.
//!
//! Copying it for a new engine: keep the three trait impls and their argument checks, replace
//! the `BTreeMap` with the engine's handle, make `write` atomic with the engine's own batch or
//! transaction, and declare honest [`Capabilities`].

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::error::StorageError;
use crate::kv::{
    BatchOp, Capabilities, Compactable, CompactionAccess, CompactionScope, KeyValue, KvRead,
    KvWrite, ScanOrder, SpaceReport, WriteBatch, WriteOptions, collect_scan,
};
use crate::range::KeyRange;

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

/// An ordered map in memory behind a read-write lock.
///
/// Clones are handles to the same data, so a clone plays the part of "reopening" the store.
/// Deleted entries free their memory at once, so compaction has nothing to do.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    map: Arc<RwLock<Map>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of live keys.
    pub fn len(&self) -> usize {
        self.map.read().len()
    }

    /// True when no key is stored.
    pub fn is_empty(&self) -> bool {
        self.map.read().is_empty()
    }

    /// A copy of every entry, in key order (for comparisons in tests).
    pub fn snapshot(&self) -> Vec<KeyValue> {
        self.map
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl KvRead for MemoryStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.map.read().get(key).cloned())
    }

    fn scan(
        &self,
        range: &KeyRange,
        order: ScanOrder,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StorageError> {
        if range.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let map = self.map.read();
        let entries = map.range::<[u8], _>(range.as_bounds());
        collect_scan(entries, order, limit, |(k, v)| Ok((k.clone(), v.clone())))
    }
}

impl KvWrite for MemoryStore {
    fn write(&self, batch: WriteBatch, _options: WriteOptions) -> Result<(), StorageError> {
        let mut map = self.map.write();
        for op in batch.into_ops() {
            match op {
                BatchOp::Put { key, value } => {
                    map.insert(key, value);
                }
                BatchOp::Delete { key } => {
                    map.remove(&key);
                }
                BatchOp::DeleteRange(range) => delete_range(&mut map, &range),
            }
        }
        Ok(())
    }
}

fn delete_range(map: &mut Map, range: &KeyRange) {
    if range.is_empty() {
        return;
    }
    let doomed: Vec<Vec<u8>> = map
        .range::<[u8], _>(range.as_bounds())
        .map(|(k, _)| k.clone())
        .collect();
    for key in doomed {
        map.remove(&key);
    }
}

impl Compactable for MemoryStore {
    fn compact_range(&self, _range: &KeyRange) -> Result<(), StorageError> {
        // Deleted entries were freed when they were deleted: nothing is left to reclaim.
        Ok(())
    }

    fn compaction_slices(
        &self,
        range: &KeyRange,
        target_bytes: u64,
    ) -> Result<Vec<KeyRange>, StorageError> {
        if target_bytes == u64::MAX {
            return Ok(vec![range.clone()]);
        }
        let target = target_bytes.max(1);
        let map = self.map.read();
        let mut cuts = Vec::new();
        let mut filled = 0u64;
        for (key, value) in map.range::<[u8], _>(range.as_bounds()) {
            if filled >= target {
                cuts.push(key.clone());
                filled = 0;
            }
            filled += (key.len() + value.len()) as u64;
        }
        Ok(range.split_at(cuts))
    }

    fn size_on_disk(&self) -> Result<u64, StorageError> {
        Ok(self
            .map
            .read()
            .iter()
            .map(|(k, v)| (k.len() + v.len()) as u64)
            .sum())
    }

    fn space_report(&self) -> Result<SpaceReport, StorageError> {
        // Deletes free memory at once: nothing is left for a compaction.
        let live = self.size_on_disk()?;
        Ok(SpaceReport {
            on_disk: live,
            reclaimable: Some(0),
            live_bytes: Some(live),
        })
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            engine: "memory",
            // A BTreeMap removes key by key: O(keys), as the suite measures.
            native_range_delete: false,
            compaction_reclaims_space: true,
            compaction_access: CompactionAccess::Online,
            compaction_scope: CompactionScope::Range,
            // Deletes free memory at once; the slack covers the few full records pruning keeps
            // below the base for the pointers above it.
            max_space_factor_after_compaction: 1.05,
            journal_bytes_kept_after_compaction: 0,
            max_key_bytes: usize::MAX,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{KvReadExt, expand_range_deletes};

    fn store_with(keys: &[&[u8]]) -> MemoryStore {
        let store = MemoryStore::new();
        let mut batch = WriteBatch::new();
        for k in keys {
            batch.put(*k, k.to_vec());
        }
        store.write(batch, WriteOptions::DURABLE).unwrap();
        store
    }

    #[test]
    fn scan_respects_bounds_order_and_limit() {
        let store = store_with(&[b"a", b"b", b"c", b"d"]);
        let range = KeyRange::between(b"b".to_vec(), b"d".to_vec()).unwrap();
        let up = store.scan(&range, ScanOrder::Ascending, 10).unwrap();
        assert_eq!(
            up,
            vec![
                (b"b".to_vec(), b"b".to_vec()),
                (b"c".to_vec(), b"c".to_vec())
            ]
        );
        let down = store.scan(&range, ScanOrder::Descending, 1).unwrap();
        assert_eq!(down, vec![(b"c".to_vec(), b"c".to_vec())]);
        assert!(
            store
                .scan(&range, ScanOrder::Ascending, 0)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn paged_iteration_sees_every_key_in_both_orders() {
        let keys: Vec<Vec<u8>> = (0u16..1000).map(|i| i.to_be_bytes().to_vec()).collect();
        let store = MemoryStore::new();
        let mut batch = WriteBatch::new();
        for k in &keys {
            batch.put(k.clone(), b"v".to_vec());
        }
        store.write(batch, WriteOptions::DURABLE).unwrap();
        let up: Vec<Vec<u8>> = store
            .iter(KeyRange::full(), ScanOrder::Ascending)
            .page_size(7)
            .map(|kv| kv.unwrap().0)
            .collect();
        assert_eq!(up, keys);
        let down: Vec<Vec<u8>> = store
            .iter(KeyRange::full(), ScanOrder::Descending)
            .page_size(7)
            .map(|kv| kv.unwrap().0)
            .collect();
        let mut reversed = keys.clone();
        reversed.reverse();
        assert_eq!(down, reversed);
    }

    #[test]
    fn batch_applies_in_order_including_range_deletes() {
        let store = store_with(&[b"a", b"b", b"c"]);
        let mut batch = WriteBatch::new();
        batch
            .put(b"bb".to_vec(), b"x".to_vec())
            .delete_range(KeyRange::between(b"b".to_vec(), b"c".to_vec()).unwrap())
            .put(b"b".to_vec(), b"new".to_vec());
        store.write(batch, WriteOptions::DURABLE).unwrap();
        assert_eq!(store.get(b"bb").unwrap(), None);
        assert_eq!(store.get(b"b").unwrap(), Some(b"new".to_vec()));
        assert_eq!(store.get(b"c").unwrap(), Some(b"c".to_vec()));
    }

    #[test]
    fn expanded_range_delete_matches_native_one() {
        let keys: &[&[u8]] = &[b"a", b"b", b"ba", b"c", b"d"];
        let native = store_with(keys);
        let emulated = store_with(keys);
        let mut batch = WriteBatch::new();
        batch
            .put(b"bz".to_vec(), b"1".to_vec())
            .delete_range(KeyRange::between(b"b".to_vec(), b"c".to_vec()).unwrap())
            .put(b"bb".to_vec(), b"2".to_vec())
            .delete_range(KeyRange::from(b"d".to_vec()));
        native.write(batch.clone(), WriteOptions::DURABLE).unwrap();
        let expanded = expand_range_deletes(&emulated, batch).unwrap();
        assert!(!expanded.has_range_deletes());
        emulated.write(expanded, WriteOptions::DURABLE).unwrap();
        assert_eq!(native.snapshot(), emulated.snapshot());
    }

    /// The sized expansion hands back each key a range found, with its key and value bytes,
    /// and not the keys the batch itself put.
    #[test]
    fn expansion_reports_the_bytes_the_ranges_found() {
        let store = store_with(&[b"a", b"b", b"ba", b"c"]);
        let mut batch = WriteBatch::new();
        batch
            .put(b"bz".to_vec(), b"1".to_vec())
            .delete_range(KeyRange::between(b"b".to_vec(), b"c".to_vec()).unwrap());
        let expanded = crate::kv::expand_range_deletes_sized(&store, batch).unwrap();
        let mut found: Vec<_> = expanded.found_bytes.into_iter().collect();
        found.sort();
        assert_eq!(found, vec![(b"b".to_vec(), 2), (b"ba".to_vec(), 4)]);
        assert_eq!(expanded.batch.len(), 4);
    }

    /// The live-bytes change of a batch counts each key once per op, from the op before it in
    /// the batch, from what the expansion found, or from the store.
    #[test]
    fn a_batch_changes_the_live_bytes_by_what_it_replaces() {
        let store = store_with(&[b"a", b"b", b"ba", b"c"]);
        let mut batch = WriteBatch::new();
        batch
            .put(b"a".to_vec(), b"long value".to_vec()) // 2 -> 11
            .put(b"a".to_vec(), b"v".to_vec()) // 11 -> 2
            .put(b"new".to_vec(), b"12345".to_vec()) // 0 -> 8
            .delete(b"c".to_vec()) // 2 -> 0
            .delete(b"absent".to_vec()) // 0 -> 0
            .delete_range(KeyRange::between(b"b".to_vec(), b"c".to_vec()).unwrap()); // -2 - 4
        let expanded = crate::kv::expand_range_deletes_sized(&store, batch).unwrap();
        let mut reads = Vec::new();
        let before: u64 = store
            .scan(&KeyRange::full(), crate::ScanOrder::Ascending, usize::MAX)
            .unwrap()
            .iter()
            .map(|(k, v)| (k.len() + v.len()) as u64)
            .sum();
        let after = expanded
            .live_bytes_after(before, |key| {
                reads.push(key.to_vec());
                Ok(store
                    .get(key)?
                    .map(|value| (key.len() + value.len()) as u64))
            })
            .unwrap();
        // +9 and -9 for "a", +8 for "new", -2 for "c", -6 for the range.
        assert_eq!(before, 10);
        assert_eq!(after, before + 8 - 2 - 6);
        // The store is read once per key the batch did not already tell about.
        assert_eq!(
            reads,
            vec![
                b"a".to_vec(),
                b"new".to_vec(),
                b"c".to_vec(),
                b"absent".to_vec()
            ]
        );
    }

    #[test]
    fn size_tracks_live_bytes() {
        let store = store_with(&[b"ab", b"cd"]);
        assert_eq!(store.size_on_disk().unwrap(), 8);
        let mut batch = WriteBatch::new();
        batch.delete(b"ab".to_vec());
        store.write(batch, WriteOptions::BUFFERED).unwrap();
        assert_eq!(store.size_on_disk().unwrap(), 4);
    }
}
