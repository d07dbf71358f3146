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

/// What the record `record` of `key` stands for: its number of pieces (0 for an inline value)
/// and its live bytes (the key's length plus the value's).
fn stored(file: &Path, key: &[u8], record: &[u8]) -> Result<(u32, u64), StorageError> {
    Ok(match decode(file, key, record)? {
        Record::Inline(value) => (0, (key.len() + value.len()) as u64),
        Record::Pieced { pieces, length } => (pieces, (key.len() as u64).saturating_add(length)),
    })
}

/// The change in live bytes (keys plus values) one operation made: bytes added and removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LiveChange {
    pub(crate) added: u64,
    pub(crate) removed: u64,
}

impl LiveChange {
    fn removed(removed: u64) -> Self {
        Self { added: 0, removed }
    }

    /// The sum of two changes.
    pub(crate) fn and(self, other: Self) -> Self {
        Self {
            added: self.added.saturating_add(other.added),
            removed: self.removed.saturating_add(other.removed),
        }
    }

    /// The change as one signed number of bytes (clamped to what an `i64` holds).
    pub(crate) fn signed(self) -> i64 {
        let added = i64::try_from(self.added).unwrap_or(i64::MAX);
        let removed = i64::try_from(self.removed).unwrap_or(i64::MAX);
        added.saturating_sub(removed)
    }
}

/// The live bytes (keys plus values) of every record in `main`: one pass over the main table,
/// whose records of long values are a few bytes each (their pieces are not read).
pub(crate) fn live_bytes(
    file: &Path,
    main: &impl ReadableTable<&'static [u8], &'static [u8]>,
) -> Result<u64, StorageError> {
    let mut live = 0u64;
    for entry in main.iter().map_err(|e| engine_error("iter", e))? {
        let (key, record) = entry.map_err(|e| engine_error("iter", e))?;
        live = live.saturating_add(stored(file, key.value(), record.value())?.1);
    }
    Ok(live)
}

fn remove_pieces(pieces: &mut RawTable<'_>, key: &[u8], count: u32) -> Result<(), StorageError> {
    for index in 0..count {
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
) -> Result<LiveChange, StorageError> {
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
    let (old_pieces, old_bytes) = old.map_or(Ok((0, 0)), |old| stored(file, key, old.value()))?;
    remove_pieces(pieces, key, old_pieces)?;
    for (index, piece) in (0..count).zip(value.chunks(size)) {
        pieces
            .insert(piece_key(key, index).as_slice(), piece)
            .map_err(|e| engine_error("insert piece", e))?;
    }
    Ok(LiveChange {
        added: (key.len() + value.len()) as u64,
        removed: old_bytes,
    })
}

/// Removes `key` and its pieces, if present.
pub(crate) fn delete(
    file: &Path,
    main: &mut RawTable<'_>,
    pieces: &mut RawTable<'_>,
    key: &[u8],
) -> Result<LiveChange, StorageError> {
    let old = main.remove(key).map_err(|e| engine_error("remove", e))?;
    let (old_pieces, old_bytes) = old.map_or(Ok((0, 0)), |old| stored(file, key, old.value()))?;
    remove_pieces(pieces, key, old_pieces)?;
    Ok(LiveChange::removed(old_bytes))
}

/// Removes every key in `range` and the pieces of each.
pub(crate) fn delete_range(
    file: &Path,
    main: &mut RawTable<'_>,
    pieces: &mut RawTable<'_>,
    range: &KeyRange,
) -> Result<LiveChange, StorageError> {
    let mut pieced_keys = Vec::new();
    let mut removed = 0u64;
    for entry in main
        .range::<&[u8]>(range.as_bounds())
        .map_err(|e| engine_error("range", e))?
    {
        let (key, record) = entry.map_err(|e| engine_error("delete_range", e))?;
        let (count, bytes) = stored(file, key.value(), record.value())?;
        removed = removed.saturating_add(bytes);
        if count > 0 {
            pieced_keys.push((key.value().to_vec(), count));
        }
    }
    main.retain_in::<&[u8], _>(range.as_bounds(), |_, _| false)
        .map_err(|e| engine_error("delete_range", e))?;
    for (key, count) in pieced_keys {
        remove_pieces(pieces, &key, count)?;
    }
    Ok(LiveChange::removed(removed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{Database, ReadableDatabase, ReadableTableMetadata};

    /// Runs `ops` in one write transaction, then returns every key's value and the number of
    /// pieces stored.
    fn apply(
        db: &Database,
        file: &Path,
        ops: impl FnOnce(&mut RawTable<'_>, &mut RawTable<'_>),
    ) -> (Vec<reclaim_core::kv::KeyValue>, u64) {
        let txn = db.begin_write().unwrap();
        {
            let mut main = txn.open_table(MAIN).unwrap();
            let mut pieces = txn.open_table(PIECES).unwrap();
            ops(&mut main, &mut pieces);
        }
        txn.commit().unwrap();
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

    /// The live-byte changes every operation reports add up to what a scan of the main table
    /// counts: puts (new, overwriting long and inline values), deletes, range deletes.
    #[test]
    fn live_changes_add_up_to_a_scan() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("db");
        let db = Database::create(&file).unwrap();
        let mut live = 0i64;
        let mut step = |ops: &dyn Fn(&mut RawTable<'_>, &mut RawTable<'_>) -> LiveChange| {
            let mut change = LiveChange::default();
            apply(&db, &file, |m, p| change = ops(m, p));
            live += change.signed();
            let txn = db.begin_read().unwrap();
            let scanned = live_bytes(&file, &txn.open_table(MAIN).unwrap()).unwrap();
            assert_eq!(live, scanned as i64);
            live
        };
        let long = |n: u8, len: usize| vec![n; len];
        let after_puts = step(&|m, p| {
            put(&file, m, p, b"a1", &long(1, 10_000))
                .unwrap()
                .and(put(&file, m, p, b"a2", &long(2, 70_000)).unwrap())
                .and(put(&file, m, p, b"a3", b"short").unwrap())
        });
        assert_eq!(after_puts, 2 + 10_000 + 2 + 70_000 + 2 + 5);
        step(&|m, p| {
            put(&file, m, p, b"a1", &long(3, 5_000))
                .unwrap()
                .and(put(&file, m, p, b"a2", b"now inline").unwrap())
                .and(put(&file, m, p, b"a3", &long(4, 3_000)).unwrap())
        });
        let after_deletes = step(&|m, p| {
            delete(&file, m, p, b"a1")
                .unwrap()
                .and(delete(&file, m, p, b"absent").unwrap())
                .and(
                    delete_range(
                        &file,
                        m,
                        p,
                        &KeyRange::new(Some(b"a2".to_vec()), Some(b"a3".to_vec())).unwrap(),
                    )
                    .unwrap(),
                )
        });
        assert_eq!(after_deletes, 2 + 3_000);
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
