//! How values sit in redb's pages.
//!
//! redb gives a B-tree leaf holding a value larger than a page a power-of-two run of pages, so a
//! 64 KiB block part (CometBFT's part size) costs up to twice its bytes, about 1.5× on average
//! for parts of 32–96 KiB. Values longer than [`piece_bytes`] are therefore stored as *pieces*
//! sized so that two of them, with their keys, fill one 4 KiB leaf page:
//!
//! ```text
//! table "reclaim"          key -> [0] value                    (inline: at most piece_bytes)
//!                          key -> [1] be32 pieces, be64 length (pieced)
//! table "reclaim-pieces"   key ++ be32 i -> piece i
//! ```
//!
//! Every operation keeps the two tables in step inside one write transaction: a put replaces
//! the old pieces, a delete and a range delete remove them. Reads look pieces up by exact key
//! (a piece key can sort anywhere relative to other main keys, so ranges are never taken over
//! the pieces table). A record that does not decode is [`StorageError::Corrupt`].

use std::path::Path;

use reclaim_core::{KeyRange, StorageError};
use redb::{ReadableTable, Table, TableDefinition};

use crate::{ENGINE, engine_error};

/// Keys, each with its value or the description of its pieces.
pub(crate) const MAIN: TableDefinition<&[u8], &[u8]> = TableDefinition::new("reclaim");
/// The pieces of long values.
pub(crate) const PIECES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("reclaim-pieces");
/// The side keyspace ([`reclaim_core::rewrite::SideKeyspace`]): a write-once rewrite's
/// tombstones, written in the transaction of the batch they belong to.
pub(crate) const SIDE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("reclaim-side");

/// One of the two tables, open in a write transaction.
pub(crate) type RawTable<'txn> = Table<'txn, &'static [u8], &'static [u8]>;

const INLINE: u8 = 0;
const PIECED: u8 = 1;
/// redb's page: its smallest allocation.
const PAGE_BYTES: usize = 4096;
/// What a leaf page spends besides its entries' bytes: its header, plus room to spare.
const LEAF_RESERVE: usize = 32;
/// What a leaf spends per entry besides key and value (the key's and the value's end offsets).
const ENTRY_OVERHEAD: usize = 8;
/// Keys longer than this keep their values inline (a long key leaves no room for pieces).
const MAX_PIECED_KEY: usize = 512;
/// The suffix that numbers a piece.
const INDEX_BYTES: usize = 4;

/// The size of each piece of a long value under `key`: two pieces, their keys and offsets fill
/// one page.
pub(crate) fn piece_bytes(key_len: usize) -> usize {
    (PAGE_BYTES - LEAF_RESERVE) / 2 - ENTRY_OVERHEAD - key_len - INDEX_BYTES
}

fn pieced(key: &[u8], value: &[u8]) -> bool {
    key.len() <= MAX_PIECED_KEY && value.len() > piece_bytes(key.len())
}

fn piece_key(key: &[u8], index: u32) -> Vec<u8> {
    let mut piece = Vec::with_capacity(key.len() + INDEX_BYTES);
    piece.extend_from_slice(key);
    piece.extend_from_slice(&index.to_be_bytes());
    piece
}

/// What a main-table record says about its value.
enum Record<'a> {
    Inline(&'a [u8]),
    Pieced { pieces: u32, length: u64 },
}

fn decode<'a>(file: &Path, key: &[u8], record: &'a [u8]) -> Result<Record<'a>, StorageError> {
    let corrupt = |what: &str| StorageError::Corrupt {
        engine: ENGINE,
        path: file.to_owned(),
        detail: format!("the record of key {} {what}", reclaim_core::range::hex(key)),
    };
    match record.split_first() {
        Some((&INLINE, value)) => Ok(Record::Inline(value)),
        Some((&PIECED, rest)) if rest.len() == 12 => {
            let (pieces, length) = rest.split_at(4);
            let pieces = u32::from_be_bytes(pieces.try_into().map_err(|_| corrupt("is cut"))?);
            let length = u64::from_be_bytes(length.try_into().map_err(|_| corrupt("is cut"))?);
            Ok(Record::Pieced { pieces, length })
        }
        Some((tag, _)) => Err(corrupt(&format!("has an unknown layout tag {tag}"))),
        None => Err(corrupt("is empty")),
    }
}

/// The value of `key` whose main-table record is `record`, its pieces read from `pieces`.
pub(crate) fn value(
    file: &Path,
    pieces: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: &[u8],
    record: &[u8],
) -> Result<Vec<u8>, StorageError> {
    match decode(file, key, record)? {
        Record::Inline(value) => Ok(value.to_vec()),
        Record::Pieced {
            pieces: count,
            length,
        } => {
            let mut value = Vec::with_capacity(usize::try_from(length).unwrap_or(0));
            for index in 0..count {
                let piece = pieces
                    .get(piece_key(key, index).as_slice())
                    .map_err(|e| engine_error("get piece", e))?
                    .ok_or_else(|| StorageError::Corrupt {
                        engine: ENGINE,
                        path: file.to_owned(),
                        detail: format!(
                            "piece {index} of {count} of key {} is missing",
                            reclaim_core::range::hex(key)
                        ),
                    })?;
                value.extend_from_slice(piece.value());
            }
            if value.len() as u64 != length {
                return Err(StorageError::Corrupt {
                    engine: ENGINE,
                    path: file.to_owned(),
                    detail: format!(
                        "the pieces of key {} hold {} bytes, not {length}",
                        reclaim_core::range::hex(key),
                        value.len()
                    ),
                });
            }
            Ok(value)
        }
    }
}

/// What records stand for, summed: their live bytes (keys plus values), the bytes of their
/// main-table entries (key plus record), and the pieces of their long values with the bytes of
/// those pieces' keys. Signed, so that one operation's change (what it wrote minus what it
/// replaced) is a footprint too, and changes may be summed in any order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Footprint {
    pub(crate) live_bytes: i64,
    pub(crate) main_bytes: i64,
    pub(crate) pieces: i64,
    pub(crate) piece_key_bytes: i64,
}

impl std::ops::Add for Footprint {
    type Output = Self;
    fn add(self, other: Self) -> Self {
        Self {
            live_bytes: self.live_bytes.saturating_add(other.live_bytes),
            main_bytes: self.main_bytes.saturating_add(other.main_bytes),
            pieces: self.pieces.saturating_add(other.pieces),
            piece_key_bytes: self.piece_key_bytes.saturating_add(other.piece_key_bytes),
        }
    }
}

impl std::ops::Neg for Footprint {
    type Output = Self;
    fn neg(self) -> Self {
        Self {
            live_bytes: self.live_bytes.saturating_neg(),
            main_bytes: self.main_bytes.saturating_neg(),
            pieces: self.pieces.saturating_neg(),
            piece_key_bytes: self.piece_key_bytes.saturating_neg(),
        }
    }
}

impl std::ops::Sub for Footprint {
    type Output = Self;
    fn sub(self, other: Self) -> Self {
        self + -other
    }
}

fn signed(bytes: usize) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

impl Footprint {
    /// The footprint of one entry: `key`, its main-table record of `record_len` bytes, a value
    /// of `value_len` bytes, stored in `pieces` pieces (0 for an inline value).
    fn entry(key: &[u8], record_len: usize, value_len: u64, pieces: u32) -> Self {
        let pieces = i64::from(pieces);
        Self {
            live_bytes: signed(key.len())
                .saturating_add(i64::try_from(value_len).unwrap_or(i64::MAX)),
            main_bytes: signed(key.len() + record_len),
            pieces,
            piece_key_bytes: pieces.saturating_mul(signed(key.len() + INDEX_BYTES)),
        }
    }

    /// What the record `record` of `key` stands for.
    fn of_record(file: &Path, key: &[u8], record: &[u8]) -> Result<Self, StorageError> {
        Ok(match decode(file, key, record)? {
            Record::Inline(value) => Self::entry(key, record.len(), value.len() as u64, 0),
            Record::Pieced { pieces, length } => Self::entry(key, record.len(), length, pieces),
        })
    }

    /// The bytes of the pieces table's pages that these pieces fill in a freshly written table
    /// (what a rewrite leaves): a leaf page per two pieces (as [`piece_bytes`] sizes them),
    /// plus branch pages holding each piece's key and [`BRANCH_ENTRY_BYTES`], rounded up to
    /// pages. Checked against redb's own walk of the table in this module's tests.
    pub(crate) fn pieces_pages_bytes(&self) -> u64 {
        let pieces = u64::try_from(self.pieces).unwrap_or(0);
        let key_bytes = u64::try_from(self.piece_key_bytes).unwrap_or(0);
        let page = PAGE_BYTES as u64;
        let leaves = pieces.div_ceil(2).saturating_mul(page);
        let branch_bytes =
            key_bytes.saturating_add(pieces.saturating_mul(BRANCH_ENTRY_BYTES as u64));
        leaves.saturating_add(branch_bytes.div_ceil(page).saturating_mul(page))
    }
}

/// What the branch pages above the pieces' leaves spend per piece besides its key: a child's
/// page number, checksum and offsets, for about half a branch entry per piece (two pieces per
/// leaf), doubled because branches are about half full (measured: 338 branch pages over 36,598
/// pieces of 10-byte keys, this model says 376).
const BRANCH_ENTRY_BYTES: usize = 32;

/// The footprint of every record in `main`: one pass over the main table, whose records of
/// long values are a few bytes each (their pieces are not read).
pub(crate) fn footprint(
    file: &Path,
    main: &impl ReadableTable<&'static [u8], &'static [u8]>,
) -> Result<Footprint, StorageError> {
    let mut total = Footprint::default();
    for entry in main.iter().map_err(|e| engine_error("iter", e))? {
        let (key, record) = entry.map_err(|e| engine_error("iter", e))?;
        total = total + Footprint::of_record(file, key.value(), record.value())?;
    }
    Ok(total)
}

fn remove_pieces(pieces: &mut RawTable<'_>, key: &[u8], count: i64) -> Result<(), StorageError> {
    for index in 0..u32::try_from(count).unwrap_or(0) {
        pieces
            .remove(piece_key(key, index).as_slice())
            .map_err(|e| engine_error("remove piece", e))?;
    }
    Ok(())
}

/// Stores `value` under `key`, replacing whatever was there (its pieces included).
pub(crate) fn put(
    file: &Path,
    main: &mut RawTable<'_>,
    pieces: &mut RawTable<'_>,
    key: &[u8],
    value: &[u8],
) -> Result<Footprint, StorageError> {
    // Only a pieced value's key is short enough to size pieces by.
    let (count, size) = if pieced(key, value) {
        let size = piece_bytes(key.len());
        let count = u32::try_from(value.len().div_ceil(size)).map_err(|_| {
            StorageError::engine(ENGINE, "insert", "a value of more than 2^32 pieces")
        })?;
        (count, size)
    } else {
        (0, 1)
    };
    let record = if count > 0 {
        let mut record = vec![PIECED];
        record.extend_from_slice(&count.to_be_bytes());
        record.extend_from_slice(&(value.len() as u64).to_be_bytes());
        record
    } else {
        let mut record = Vec::with_capacity(value.len() + 1);
        record.push(INLINE);
        record.extend_from_slice(value);
        record
    };
    // One lookup: the insert hands back the record it replaced, whose pieces go before the new
    // ones are written (they share keys). An error aborts the whole transaction.
    let old = main
        .insert(key, record.as_slice())
        .map_err(|e| engine_error("insert", e))?;
    let old = match old {
        Some(old) => Footprint::of_record(file, key, old.value())?,
        None => Footprint::default(),
    };
    remove_pieces(pieces, key, old.pieces)?;
    for (index, piece) in (0..count).zip(value.chunks(size)) {
        pieces
            .insert(piece_key(key, index).as_slice(), piece)
            .map_err(|e| engine_error("insert piece", e))?;
    }
    Ok(Footprint::entry(key, record.len(), value.len() as u64, count) - old)
}

/// Removes `key` and its pieces, if present.
pub(crate) fn delete(
    file: &Path,
    main: &mut RawTable<'_>,
    pieces: &mut RawTable<'_>,
    key: &[u8],
) -> Result<Footprint, StorageError> {
    let Some(old) = main.remove(key).map_err(|e| engine_error("remove", e))? else {
        return Ok(Footprint::default());
    };
    let old = Footprint::of_record(file, key, old.value())?;
    remove_pieces(pieces, key, old.pieces)?;
    Ok(-old)
}

/// Removes every key in `range` and the pieces of each.
pub(crate) fn delete_range(
    file: &Path,
    main: &mut RawTable<'_>,
    pieces: &mut RawTable<'_>,
    range: &KeyRange,
) -> Result<Footprint, StorageError> {
    let mut pieced_keys = Vec::new();
    let mut removed = Footprint::default();
    for entry in main
        .range::<&[u8]>(range.as_bounds())
        .map_err(|e| engine_error("range", e))?
    {
        let (key, record) = entry.map_err(|e| engine_error("delete_range", e))?;
        let old = Footprint::of_record(file, key.value(), record.value())?;
        removed = removed + old;
        if old.pieces > 0 {
            pieced_keys.push((key.value().to_vec(), old.pieces));
        }
    }
    main.retain_in::<&[u8], _>(range.as_bounds(), |_, _| false)
        .map_err(|e| engine_error("delete_range", e))?;
    for (key, count) in pieced_keys {
        remove_pieces(pieces, &key, count)?;
    }
    Ok(-removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{Database, ReadableDatabase, ReadableTableMetadata};

    /// Runs `ops` in one write transaction.
    fn write(db: &Database, ops: impl FnOnce(&mut RawTable<'_>, &mut RawTable<'_>)) {
        let txn = db.begin_write().unwrap();
        {
            let mut main = txn.open_table(MAIN).unwrap();
            let mut pieces = txn.open_table(PIECES).unwrap();
            ops(&mut main, &mut pieces);
        }
        txn.commit().unwrap();
    }

    /// Runs `ops` in one write transaction, then returns every key's value and the number of
    /// pieces stored.
    fn apply(
        db: &Database,
        file: &Path,
        ops: impl FnOnce(&mut RawTable<'_>, &mut RawTable<'_>),
    ) -> (Vec<reclaim_core::kv::KeyValue>, u64) {
        write(db, ops);
        let txn = db.begin_read().unwrap();
        let main = txn.open_table(MAIN).unwrap();
        let pieces = txn.open_table(PIECES).unwrap();
        let all = main
            .iter()
            .unwrap()
            .map(|entry| {
                let (k, record) = entry.unwrap();
                let value = value(file, &pieces, k.value(), record.value()).unwrap();
                (k.value().to_vec(), value)
            })
            .collect();
        (all, pieces.len().unwrap())
    }

    /// Overwrites, deletes and range deletes leave exactly the pieces of the values present.
    #[test]
    fn pieces_follow_their_values() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("db");
        let db = Database::create(&file).unwrap();
        let long = |n: u8, len: usize| vec![n; len];
        let per = piece_bytes(2) as u64;
        let (all, stored) = apply(&db, &file, |m, p| {
            put(&file, m, p, b"a1", &long(1, 10_000)).unwrap();
            put(&file, m, p, b"a2", &long(2, 70_000)).unwrap();
            put(&file, m, p, b"a3", b"short").unwrap();
        });
        assert_eq!(all.len(), 3);
        assert_eq!(all[1].1, long(2, 70_000));
        assert_eq!(stored, 10_000u64.div_ceil(per) + 70_000u64.div_ceil(per));
        // A long value replaced by a shorter one, and by an inline one.
        let (all, stored) = apply(&db, &file, |m, p| {
            put(&file, m, p, b"a1", &long(3, 5_000)).unwrap();
            put(&file, m, p, b"a2", b"now inline").unwrap();
        });
        assert_eq!(all[0].1, long(3, 5_000));
        assert_eq!(all[1].1, b"now inline".to_vec());
        assert_eq!(stored, 5_000u64.div_ceil(per));
        // Deletes, point and range, take the pieces with them.
        let (all, stored) = apply(&db, &file, |m, p| {
            put(&file, m, p, b"b1", &long(4, 9_000)).unwrap();
            put(&file, m, p, b"b2", &long(5, 9_000)).unwrap();
            delete(&file, m, p, b"a1").unwrap();
            delete_range(
                &file,
                m,
                p,
                &KeyRange::new(Some(b"b".to_vec()), Some(b"b2".to_vec())).unwrap(),
            )
            .unwrap();
        });
        let keys: Vec<_> = all.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(keys, vec![b"a2".to_vec(), b"a3".to_vec(), b"b2".to_vec()]);
        assert_eq!(all[2].1, long(5, 9_000));
        assert_eq!(stored, 9_000u64.div_ceil(per));
    }

    /// The footprint changes every operation reports add up to what a scan of the main table
    /// counts: puts (new, overwriting long and inline values), deletes, range deletes.
    #[test]
    fn footprint_changes_add_up_to_a_scan() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("db");
        let db = Database::create(&file).unwrap();
        let mut kept = Footprint::default();
        let mut step = |ops: &dyn Fn(&mut RawTable<'_>, &mut RawTable<'_>) -> Footprint| {
            let mut change = Footprint::default();
            let (_, stored_pieces) = apply(&db, &file, |m, p| change = ops(m, p));
            kept = kept + change;
            let txn = db.begin_read().unwrap();
            let main = txn.open_table(MAIN).unwrap();
            assert_eq!(kept, footprint(&file, &main).unwrap());
            assert_eq!(kept.pieces, stored_pieces as i64);
            let main_stored = main.stats().unwrap().stored_bytes();
            assert_eq!(kept.main_bytes, main_stored as i64);
            kept
        };
        let long = |n: u8, len: usize| vec![n; len];
        let after_puts = step(&|m, p| {
            put(&file, m, p, b"a1", &long(1, 10_000)).unwrap()
                + put(&file, m, p, b"a2", &long(2, 70_000)).unwrap()
                + put(&file, m, p, b"a3", b"short").unwrap()
        });
        assert_eq!(after_puts.live_bytes, 2 + 10_000 + 2 + 70_000 + 2 + 5);
        let per = piece_bytes(2);
        let pieces = 10_000usize.div_ceil(per) + 70_000usize.div_ceil(per);
        assert_eq!(after_puts.pieces, pieces as i64);
        assert_eq!(after_puts.piece_key_bytes, (pieces * 6) as i64);
        step(&|m, p| {
            put(&file, m, p, b"a1", &long(3, 5_000)).unwrap()
                + put(&file, m, p, b"a2", b"now inline").unwrap()
                + put(&file, m, p, b"a3", &long(4, 3_000)).unwrap()
        });
        let after_deletes = step(&|m, p| {
            delete(&file, m, p, b"a1").unwrap()
                + delete(&file, m, p, b"absent").unwrap()
                + delete_range(
                    &file,
                    m,
                    p,
                    &KeyRange::new(Some(b"a2".to_vec()), Some(b"a3".to_vec())).unwrap(),
                )
                .unwrap()
        });
        assert_eq!(after_deletes.live_bytes, 2 + 3_000);
        assert_eq!(after_deletes.pieces, 3_000usize.div_ceil(per) as i64);
    }

    /// The modelled pages of the pieces table against redb's own walk of a table written
    /// as a node writes it (heights appended, the oldest pruned by ranges), then rewritten in
    /// key order as the online rewrite does, for short and long keys: the model is
    /// within 3 % of the walk and never below it by more than 1 % (an estimate that undercounts
    /// the pages would promise space a rewrite does not give back).
    #[test]
    fn modelled_pieces_pages_match_a_walk() {
        use rand::{Rng, SeedableRng};
        for key_len in [6usize, 40, 200] {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("db");
            let db = Database::create(&file).unwrap();
            let mut rng = rand::rngs::StdRng::seed_from_u64(key_len as u64);
            let key = |height: u32| {
                let mut key = vec![b'P'; key_len - 4];
                key.extend_from_slice(&height.to_be_bytes());
                key
            };
            let mut kept = Footprint::default();
            for height in 0u32..1_500 {
                let mut value = vec![0u8; rng.random_range(32_768..98_304)];
                rng.fill(&mut value[..]);
                write(&db, |m, p| {
                    kept = kept + put(&file, m, p, &key(height), &value).unwrap();
                    if height >= 600 && height % 100 == 0 {
                        let range = KeyRange::new(Some(key(0)), Some(key(height - 500))).unwrap();
                        kept = kept + delete_range(&file, m, p, &range).unwrap();
                    }
                });
            }
            let walked = |db: &Database| {
                let txn = db.begin_read().unwrap();
                let stats = txn.open_table(PIECES).unwrap().stats().unwrap();
                stats.stored_bytes() + stats.metadata_bytes() + stats.fragmented_bytes()
            };
            let modelled = kept.pieces_pages_bytes();
            let in_place = walked(&db);
            // The copy, written in key order in several transactions.
            let copy_file = dir.path().join("copy");
            let copy = Database::create(&copy_file).unwrap();
            let all = apply(&db, &file, |_, _| {}).0;
            for chunk in all.chunks(50) {
                write(&copy, |m, p| {
                    for (k, v) in chunk {
                        put(&copy_file, m, p, k, v).unwrap();
                    }
                });
            }
            let rewritten = walked(&copy);
            for (what, walk) in [("in place", in_place), ("rewritten", rewritten)] {
                let ratio = modelled as f64 / walk as f64;
                eprintln!(
                    "key {key_len} bytes, {what}: modelled {modelled}, walked {walk}, {ratio:.4}"
                );
                assert!(
                    (0.99..=1.03).contains(&ratio),
                    "key {key_len} bytes, {what}: modelled {modelled}, walked {walk}"
                );
            }
        }
    }

    /// A record that does not decode is a corruption, never a panic or a wrong value.
    #[test]
    fn a_bad_record_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("db");
        let db = Database::create(&file).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut main = txn.open_table(MAIN).unwrap();
            main.insert(b"tag".as_slice(), [9u8, 1].as_slice()).unwrap();
            main.insert(b"cut".as_slice(), [PIECED, 0, 0].as_slice())
                .unwrap();
            let mut missing = vec![PIECED];
            missing.extend_from_slice(&2u32.to_be_bytes());
            missing.extend_from_slice(&10u64.to_be_bytes());
            main.insert(b"lost".as_slice(), missing.as_slice()).unwrap();
            main.insert(b"empty".as_slice(), [].as_slice()).unwrap();
        }
        txn.open_table(PIECES).unwrap();
        txn.commit().unwrap();
        let txn = db.begin_read().unwrap();
        let main = txn.open_table(MAIN).unwrap();
        let pieces = txn.open_table(PIECES).unwrap();
        for key in [&b"tag"[..], b"cut", b"lost", b"empty"] {
            let record = main.get(key).unwrap().unwrap();
            let err = value(&file, &pieces, key, record.value()).unwrap_err();
            assert!(matches!(err, StorageError::Corrupt { .. }), "{err}");
        }
    }

    #[test]
    fn two_pieces_and_their_keys_fit_one_page() {
        for key_len in [0, 11, 55, MAX_PIECED_KEY] {
            let piece = piece_bytes(key_len);
            let entry = key_len + INDEX_BYTES + piece + ENTRY_OVERHEAD;
            assert!(2 * entry + LEAF_RESERVE <= PAGE_BYTES, "key {key_len}");
            assert!(piece > 1000, "key {key_len}: pieces of {piece} bytes");
        }
    }
}
