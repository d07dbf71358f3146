//! Every record the stores write is sealed: its bytes followed by a CRC-32 of its key and its
//! bytes. A flipped bit anywhere in a value, or a value read back under another key than the
//! one it was written under, is then a typed [`StoreError::CorruptRecord`] instead of wrong
//! data handed to the node. (Engines differ: RocksDB checksums its blocks, redb and sled do not
//! checksum every page; reclaim does not leave it to them.)
//!
//! Layout of a sealed value: `bytes ++ crc32(key ++ bytes)` (4 bytes, little-endian).

use reclaim_core::range::hex;
use reclaim_core::{KvStore, WriteBatch};

use crate::error::StoreError;
use crate::keys;

/// Bytes a seal adds to every value.
pub const SEAL_BYTES: usize = 4;

fn checksum(key: &[u8], bytes: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(key);
    hasher.update(bytes);
    hasher.finalize()
}

/// `bytes` sealed for `key`: what the stores write under `key` (for tools and tests that
/// craft records).
pub fn seal(key: &[u8], bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + SEAL_BYTES);
    out.extend_from_slice(bytes);
    out.extend_from_slice(&checksum(key, bytes).to_le_bytes());
    out
}

/// The bytes of the sealed value `stored` read under `key`, or a corruption error naming
/// `what`.
pub(crate) fn unseal(
    what: &'static str,
    key: &[u8],
    mut stored: Vec<u8>,
) -> Result<Vec<u8>, StoreError> {
    let corrupt = |detail: String| StoreError::CorruptRecord {
        what,
        key: hex(key),
        detail,
    };
    let Some(split) = stored.len().checked_sub(SEAL_BYTES) else {
        return Err(corrupt(format!(
            "{} bytes, shorter than its seal",
            stored.len()
        )));
    };
    let mut sum = [0u8; SEAL_BYTES];
    sum.copy_from_slice(&stored[split..]);
    stored.truncate(split);
    let expected = u32::from_le_bytes(sum);
    let actual = checksum(key, &stored);
    if expected != actual {
        return Err(corrupt(format!(
            "checksum mismatch (stored {expected:08x}, computed {actual:08x}): the store is damaged"
        )));
    }
    Ok(stored)
}

/// Adds `key → seal(bytes)` to `batch`.
pub(crate) fn put_sealed(batch: &mut WriteBatch, key: Vec<u8>, bytes: &[u8]) {
    let value = seal(&key, bytes);
    batch.put(key, value);
}

/// Reads and unseals `key`.
pub(crate) fn get_sealed(
    db: &dyn KvStore,
    what: &'static str,
    key: &[u8],
) -> Result<Option<Vec<u8>>, StoreError> {
    db.get(key)?
        .map(|stored| unseal(what, key, stored))
        .transpose()
}

/// The format of the records this build writes (1: unsealed records, before seals existed).
pub const STORE_FORMAT_VERSION: u32 = 2;

/// Adds the format record to `batch` (written with the first record of a store).
pub(crate) fn put_format(batch: &mut WriteBatch) {
    put_sealed(
        batch,
        keys::STORE_FORMAT.key.to_vec(),
        &STORE_FORMAT_VERSION.to_be_bytes(),
    );
}

/// Refuses a store written in another format than this build's.
pub(crate) fn check_format(db: &dyn KvStore) -> Result<(), StoreError> {
    let key = keys::STORE_FORMAT.key;
    let found = match db.get(key)? {
        None => None,
        Some(stored) => {
            let bytes = unseal("store format", key, stored)?;
            let version: [u8; 4] =
                bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| StoreError::CorruptRecord {
                        what: "store format",
                        key: hex(key),
                        detail: format!("{} bytes, expected 4", bytes.len()),
                    })?;
            Some(u32::from_be_bytes(version))
        }
    };
    if found == Some(STORE_FORMAT_VERSION) {
        Ok(())
    } else {
        Err(StoreError::UnsupportedFormat {
            found,
            supported: STORE_FORMAT_VERSION,
        })
    }
}

/// With no bounds record, the store must hold none of `families` either: records without
/// their bounds mean the bounds were lost, and the store must not pass for an empty one.
pub(crate) fn nothing_without_bounds(
    db: &dyn KvStore,
    what: &'static str,
    families: &[keys::Family],
) -> Result<(), StoreError> {
    for family in families {
        if let Some((key, _)) = db
            .scan(&family.all(), reclaim_core::ScanOrder::Ascending, 1)?
            .into_iter()
            .next()
        {
            return Err(StoreError::CorruptRecord {
                what,
                key: hex(&key),
                detail: format!(
                    "the bounds record is missing but {} are stored (first at this key): the store is damaged",
                    family.name
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_round_trip_and_every_flip_is_caught() {
        let key = b"H:\0\0\0\0\0\0\0\x07";
        let sealed = seal(key, b"meta-7");
        assert_eq!(
            unseal("block meta", key, sealed.clone()).unwrap(),
            b"meta-7"
        );
        for byte in 0..sealed.len() {
            for bit in 0..8 {
                let mut damaged = sealed.clone();
                damaged[byte] ^= 1 << bit;
                assert!(unseal("block meta", key, damaged).is_err(), "{byte}/{bit}");
            }
        }
        let mut other_key = key.to_vec();
        other_key[9] = 8;
        assert!(unseal("block meta", &other_key, sealed.clone()).is_err());
        assert!(unseal("block meta", key, vec![1, 2]).is_err());
        assert_eq!(unseal("x", b"k", seal(b"k", b"")).unwrap(), b"");
    }
}
