//! Where the executor keeps the [`PendingCompaction`] record, so that a restart does not forget
//! the heights pruned since the last compaction. It is a scheduling hint, not chain data:
//! written buffered after each prune, ignored (with a warning) when unreadable.
//!
//! Encoding, version 2: `[2u8] ++ be64(pruned_heights) ++ be64(from, 0 = none) ++ be64(to) ++
//! be64(space_checked_at)`. Version 1 lacked the last field (read as 0). The first tag byte
//! lets a later policy keep more (or other) fields: a record of an unknown version is ignored;
//! the untagged 24-byte record written before versions existed is read as version 0.

use std::sync::Arc;

use tracing::warn;

use crate::compaction::policy::PendingCompaction;
use crate::height::{decode_u64s, encode_u64s};
use crate::kv::{KvStore, WriteBatch, WriteOptions};

/// The version written by this build.
pub const PENDING_RECORD_VERSION: u8 = 2;

/// The engine and key the pending record lives under.
#[derive(Clone)]
pub struct PendingRecord {
    db: Arc<dyn KvStore>,
    key: Vec<u8>,
}

impl std::fmt::Debug for PendingRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingRecord")
            .field("key", &crate::range::hex(&self.key))
            .finish()
    }
}

impl PendingRecord {
    /// The record kept under `key` in `db`.
    pub fn new(db: Arc<dyn KvStore>, key: impl Into<Vec<u8>>) -> Self {
        Self {
            db,
            key: key.into(),
        }
    }

    /// The key it is kept under.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The persisted record; none when missing or unreadable (a lost hint only delays the next
    /// compaction).
    pub fn load(&self) -> PendingCompaction {
        match self.db.get(&self.key) {
            Ok(Some(bytes)) => decode(&bytes).unwrap_or_else(|| {
                warn!(
                    bytes = bytes.len(),
                    "ignoring a pending-compaction record of an unknown version or length"
                );
                PendingCompaction::default()
            }),
            Ok(None) => PendingCompaction::default(),
            Err(e) => {
                warn!(error = %e, "cannot read the pending-compaction record; starting from none");
                PendingCompaction::default()
            }
        }
    }

    /// Persists `pending`, buffered. A failure is logged, never returned: it only delays the
    /// next compaction after a restart.
    pub fn store(&self, pending: &PendingCompaction) {
        let mut batch = WriteBatch::new();
        batch.put(self.key.clone(), encode(pending));
        if let Err(e) = self.db.write(batch, WriteOptions::BUFFERED) {
            warn!(error = %e, "cannot persist the pending compaction");
        }
    }
}

/// Encodes `pending` as the current version.
pub fn encode(pending: &PendingCompaction) -> Vec<u8> {
    let mut bytes = vec![PENDING_RECORD_VERSION];
    bytes.extend(encode_u64s(&[
        pending.pruned_heights,
        pending.from.unwrap_or(0),
        pending.to,
        pending.space_checked_at,
    ]));
    bytes
}

/// Decodes a record of version 2 or 1, or the untagged record of version 0; `None`
/// otherwise.
pub fn decode(bytes: &[u8]) -> Option<PendingCompaction> {
    let (fields, space_checked_at) = match bytes.split_first() {
        Some((&PENDING_RECORD_VERSION, rest)) if rest.len() == 32 => {
            (&rest[..24], decode_u64s::<1>(&rest[24..])?[0])
        }
        Some((1, rest)) if rest.len() == 24 => (rest, 0),
        _ if bytes.len() == 24 => (bytes, 0),
        _ => return None,
    };
    let [pruned_heights, from, to] = decode_u64s::<3>(fields)?;
    Some(PendingCompaction {
        pruned_heights,
        from: (from != 0).then_some(from),
        to,
        space_checked_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_old_or_unknown_versions_are_handled() {
        let p = PendingCompaction {
            pruned_heights: 7,
            from: Some(3),
            to: 10,
            space_checked_at: 5,
        };
        let bytes = encode(&p);
        assert_eq!(bytes[0], PENDING_RECORD_VERSION);
        assert_eq!(decode(&bytes), Some(p));
        let older = PendingCompaction {
            space_checked_at: 0,
            ..p
        };
        let mut version_1 = vec![1u8];
        version_1.extend_from_slice(&bytes[1..25]);
        assert_eq!(decode(&version_1), Some(older), "version 1 is still read");
        assert_eq!(
            decode(&bytes[1..25]),
            Some(older),
            "version 0 (untagged) is still read"
        );
        let mut future = bytes.clone();
        future[0] = 9;
        assert_eq!(decode(&future), None);
        assert_eq!(decode(&[]), None);
        assert_eq!(decode(&bytes[..10]), None);
        let none = PendingCompaction::default();
        assert_eq!(decode(&encode(&none)), Some(none));
    }
}
