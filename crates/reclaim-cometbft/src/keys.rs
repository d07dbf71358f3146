//! CometBFT's key schema: every key family and single key reclaim writes, with its readable
//! name. This module is the only place a prefix is spelled; the stores, the CLI's `inspect`
//! and the benchmark's baseline all read it from here.
//!
//! Families are `prefix ++ be64(height)` (block parts add `be32(index)`; the hash index is
//! `prefix ++ hash`), so "all heights in `[from, to)`" is one contiguous range per family. No
//! prefix or single key is a prefix of another (tested), so family ranges never overlap.

use reclaim_core::KeyRange;
use reclaim_core::height::{height_key, height_range};

/// A key family: every key starting with `prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Family {
    /// The readable name (used by `reclaim inspect`).
    pub name: &'static str,
    /// The prefix every key of the family starts with.
    pub prefix: &'static [u8],
}

impl Family {
    /// The key of `height` in this family.
    pub fn key(&self, height: u64) -> Vec<u8> {
        height_key(self.prefix, height)
    }

    /// The keys of heights `[from, to)`; empty when `from >= to`.
    pub fn heights(&self, from: u64, to: u64) -> KeyRange {
        height_range(self.prefix, from, to)
    }

    /// Every key of the family.
    pub fn all(&self) -> KeyRange {
        KeyRange::prefix(self.prefix)
    }
}

/// A single key holding one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SingleKey {
    /// The readable name.
    pub name: &'static str,
    /// The key.
    pub key: &'static [u8],
}

/// Block meta, by height.
pub const BLOCK_META: Family = Family {
    name: "block meta",
    prefix: b"H:",
};
/// Block parts, by height then part index (`be32`).
pub const BLOCK_PARTS: Family = Family {
    name: "block parts",
    prefix: b"P:",
};
/// Commits, by height.
pub const COMMITS: Family = Family {
    name: "commits",
    prefix: b"C:",
};
/// Seen commits, by height.
pub const SEEN_COMMITS: Family = Family {
    name: "seen commits",
    prefix: b"SC:",
};
/// Extended commits, by height (only with vote extensions).
pub const EXTENDED_COMMITS: Family = Family {
    name: "extended commits",
    prefix: b"EC:",
};
/// Block hash, by height (so pruning finds the hash index entry).
pub const HASH_BY_HEIGHT: Family = Family {
    name: "hash by height",
    prefix: b"N:",
};
/// Height, by block hash (keys are `prefix ++ hash`, not ordered by height).
pub const HEIGHT_BY_HASH: Family = Family {
    name: "height by hash",
    prefix: b"BH:",
};
/// Validator sets, by height (in full on change and at checkpoints, else a pointer).
pub const VALIDATORS: Family = Family {
    name: "validator sets",
    prefix: b"validatorsKey:",
};
/// Consensus params, by height (in full on change, else a pointer).
pub const CONSENSUS_PARAMS: Family = Family {
    name: "consensus params",
    prefix: b"consensusParamsKey:",
};
/// Finalize-block responses, by height.
pub const RESPONSES: Family = Family {
    name: "finalize-block responses",
    prefix: b"abciResponsesKey:",
};

/// The block store's bounds `{base, height, evidence_base}`.
pub const BLOCK_STORE_BOUNDS: SingleKey = SingleKey {
    name: "block store bounds",
    key: b"blockStore",
};
/// The state store's bounds.
pub const STATE_STORE_BOUNDS: SingleKey = SingleKey {
    name: "state store bounds",
    key: b"stateStoreMeta",
};
/// The latest finalize-block response, with its height (with `discard_abci_responses`).
pub const LATEST_RESPONSE: SingleKey = SingleKey {
    name: "latest response",
    key: b"lastABCIResponseKey",
};
/// The persisted retain heights (application, companion).
pub const RETAIN_HEIGHTS: SingleKey = SingleKey {
    name: "retain heights",
    key: b"retainHeights",
};
/// The executor's pending compaction record (a scheduling hint, not chain data).
pub const PENDING_COMPACTION: SingleKey = SingleKey {
    name: "pending compaction",
    key: b"pendingCompaction",
};

/// The block store's families, in key order of their role.
pub const BLOCK_FAMILIES: [Family; 7] = [
    BLOCK_META,
    BLOCK_PARTS,
    COMMITS,
    SEEN_COMMITS,
    EXTENDED_COMMITS,
    HASH_BY_HEIGHT,
    HEIGHT_BY_HASH,
];

/// The state store's families.
pub const STATE_FAMILIES: [Family; 3] = [VALIDATORS, CONSENSUS_PARAMS, RESPONSES];

/// Every family.
pub const FAMILIES: [Family; 10] = [
    BLOCK_META,
    BLOCK_PARTS,
    COMMITS,
    SEEN_COMMITS,
    EXTENDED_COMMITS,
    HASH_BY_HEIGHT,
    HEIGHT_BY_HASH,
    VALIDATORS,
    CONSENSUS_PARAMS,
    RESPONSES,
];

/// The format version of the records (see `seal.rs`).
pub const STORE_FORMAT: SingleKey = SingleKey {
    name: "store format",
    key: b"reclaimFormat",
};

/// Every single key.
pub const SINGLE_KEYS: [SingleKey; 6] = [
    BLOCK_STORE_BOUNDS,
    STATE_STORE_BOUNDS,
    LATEST_RESPONSE,
    RETAIN_HEIGHTS,
    PENDING_COMPACTION,
    STORE_FORMAT,
];

/// Bytes at the start of a key that tell its family apart: every family's prefix begins with a
/// byte of its own (tested), so an engine that cuts its files wherever the first byte changes
/// (RocksDB's fixed-prefix SST partitioner) keeps each family in files of its own.
pub const FAMILY_DISTINCT_PREFIX_BYTES: usize = 1;

/// The key of part `index` of the block at `height`.
pub fn part_key(height: u64, index: u32) -> Vec<u8> {
    let mut key = BLOCK_PARTS.key(height);
    key.extend_from_slice(&index.to_be_bytes());
    key
}

/// The hash-index key of `hash`.
pub fn hash_key(hash: &[u8]) -> Vec<u8> {
    [HEIGHT_BY_HASH.prefix, hash].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_begins_with_a_byte_of_its_own() {
        let mut seen = std::collections::HashMap::new();
        for family in FAMILIES {
            let first = &family.prefix[..FAMILY_DISTINCT_PREFIX_BYTES];
            if let Some(other) = seen.insert(first, family.name) {
                panic!("{} and {other} both begin with {first:?}", family.name);
            }
        }
    }

    #[test]
    fn no_prefix_or_single_key_is_a_prefix_of_another() {
        let all: Vec<(&str, &[u8])> = FAMILIES
            .iter()
            .map(|f| (f.name, f.prefix))
            .chain(SINGLE_KEYS.iter().map(|k| (k.name, k.key)))
            .collect();
        for (i, (a_name, a)) in all.iter().enumerate() {
            for (j, (b_name, b)) in all.iter().enumerate() {
                if i != j {
                    assert!(
                        !b.starts_with(a),
                        "{a_name} ({a:?}) is a prefix of {b_name} ({b:?})"
                    );
                }
            }
        }
    }

    #[test]
    fn names_are_unique_and_families_are_listed_once() {
        let mut names: Vec<&str> = FAMILIES
            .iter()
            .map(|f| f.name)
            .chain(SINGLE_KEYS.iter().map(|k| k.name))
            .collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count);
        for family in BLOCK_FAMILIES.iter().chain(&STATE_FAMILIES) {
            assert_eq!(FAMILIES.iter().filter(|f| *f == family).count(), 1);
        }
        assert_eq!(BLOCK_FAMILIES.len() + STATE_FAMILIES.len(), FAMILIES.len());
    }

    #[test]
    fn height_ranges_stay_inside_their_family() {
        let range = BLOCK_PARTS.heights(5, 7);
        assert!(range.contains(&part_key(5, 0)));
        assert!(range.contains(&part_key(6, u32::MAX)));
        assert!(!range.contains(&part_key(7, 0)));
        assert!(!range.contains(&BLOCK_META.key(6)));
        assert!(BLOCK_META.all().contains(&BLOCK_META.key(u64::MAX)));
        assert!(!BLOCK_META.all().contains(&hash_key(b"x")));
    }
}
