//! A deterministic chain (blocks, validator-set and params changes, responses) and a checker of
//! every invariant the block and state stores promise. Shared by the core's tests and the
//! executor cases of the suite.

use std::sync::Arc;

use reclaim_cometbft::{Block, BlockStore, HeightState, StateStore, StateStoreOptions, StoreError};
use reclaim_core::{KvStore, WriteOptions};

/// Parts in every block of the test chain.
pub const PARTS_PER_BLOCK: usize = 3;

/// Validator sets change at the first height and every 7th height.
pub fn validators_change_at(first: u64, h: u64) -> bool {
    h == first || h.is_multiple_of(7)
}

/// Consensus params change at the first height and every 11th height.
pub fn params_change_at(first: u64, h: u64) -> bool {
    h == first || h.is_multiple_of(11)
}

/// The block at height `h`.
pub fn block(h: u64) -> Block {
    Block {
        height: h,
        hash: format!("hash-{h}").into_bytes(),
        meta: format!("meta-{h}").into_bytes(),
        parts: (0..PARTS_PER_BLOCK)
            .map(|i| format!("part-{h}-{i}").into_bytes())
            .collect(),
        commit: format!("commit-{h}").into_bytes(),
        seen_commit: format!("seen-{h}").into_bytes(),
        extended_commit: h.is_multiple_of(2).then(|| format!("ext-{h}").into_bytes()),
    }
}

/// The state saved at height `h` of a chain starting at `first`.
pub fn height_state(first: u64, h: u64) -> HeightState {
    HeightState {
        height: h,
        validators: validators_change_at(first, h).then(|| format!("vals-{h}").into_bytes()),
        consensus_params: params_change_at(first, h).then(|| format!("params-{h}").into_bytes()),
        finalize_block_response: format!("resp-{h}").into_bytes(),
    }
}

/// The validator set that must load at `h`.
pub fn expected_validators(first: u64, h: u64) -> Vec<u8> {
    let changed = (first..=h)
        .rev()
        .find(|&x| validators_change_at(first, x))
        .expect("test chain");
    format!("vals-{changed}").into_bytes()
}

/// The consensus params that must load at `h`.
pub fn expected_params(first: u64, h: u64) -> Vec<u8> {
    let changed = (first..=h)
        .rev()
        .find(|&x| params_change_at(first, x))
        .expect("test chain");
    format!("params-{changed}").into_bytes()
}

/// A block store and a state store.
pub struct Chain {
    /// The block store.
    pub blocks: Arc<BlockStore>,
    /// The state store.
    pub states: Arc<StateStore>,
}

/// Opens both stores on `db`.
pub fn open(db: Arc<dyn KvStore>, options: StateStoreOptions) -> Chain {
    Chain {
        blocks: Arc::new(BlockStore::open(Arc::clone(&db)).expect("test chain")),
        states: Arc::new(StateStore::open(db, options).expect("test chain")),
    }
}

/// Commits heights `from..=to` into both stores.
pub fn commit(chain: &Chain, first: u64, from: u64, to: u64) {
    for h in from..=to {
        chain
            .blocks
            .save_block(&block(h), WriteOptions::BUFFERED)
            .expect("test chain");
        chain
            .states
            .save(&height_state(first, h), WriteOptions::BUFFERED)
            .expect("test chain");
    }
}

/// Checks every promise the stores make about what they hold.
pub fn check_invariants(chain: &Chain, first: u64) {
    let b = chain.blocks.bounds();
    assert!(b.evidence_base <= b.base && b.base <= b.height, "{b:?}");
    for h in b.base..=b.height {
        let expected = block(h);
        assert_eq!(
            chain.blocks.load_block_meta(h).expect("test chain"),
            Some(expected.meta),
            "meta {h}"
        );
        assert_eq!(
            chain.blocks.load_block_parts(h).expect("test chain"),
            expected.parts,
            "parts {h}"
        );
        assert_eq!(
            chain.blocks.load_block_commit(h).expect("test chain"),
            Some(expected.commit),
            "commit {h}"
        );
        assert_eq!(
            chain.blocks.load_seen_commit(h).expect("test chain"),
            Some(expected.seen_commit),
            "seen {h}"
        );
        assert_eq!(
            chain.blocks.load_extended_commit(h).expect("test chain"),
            expected.extended_commit,
            "ext {h}"
        );
        assert_eq!(
            chain
                .blocks
                .height_by_hash(&expected.hash)
                .expect("test chain"),
            Some(h),
            "hash {h}"
        );
    }
    for h in b.evidence_base..b.base {
        let expected = block(h);
        assert_eq!(
            chain.blocks.load_block_meta(h).expect("test chain"),
            Some(expected.meta),
            "evidence meta {h}"
        );
        assert_eq!(
            chain.blocks.load_block_commit(h).expect("test chain"),
            Some(expected.commit),
            "evidence commit {h}"
        );
        assert_pruned(chain.blocks.load_block_parts(h), "parts", h);
        assert_pruned(chain.blocks.load_seen_commit(h), "seen commit", h);
        assert_pruned(chain.blocks.load_block_hash(h), "hash", h);
        assert_eq!(
            chain
                .blocks
                .height_by_hash(&expected.hash)
                .expect("hash index below base"),
            None,
            "hash index entry below base {h} was not deleted"
        );
    }
    for h in first..b.evidence_base {
        assert_pruned(chain.blocks.load_block_meta(h), "meta", h);
        assert_pruned(chain.blocks.load_block_commit(h), "commit", h);
    }
    let left = chain.blocks.leftovers_below_base(10).expect("test chain");
    assert!(
        left.is_empty(),
        "block store leftovers below base: {left:?}"
    );
    let s = chain.states.bounds();
    if s.height == 0 {
        return;
    }
    assert!(s.validators_base <= s.base && s.base <= s.height, "{s:?}");
    for h in s.base..=s.height {
        assert_eq!(
            chain.states.load_consensus_params(h).expect("test chain"),
            Some(expected_params(first, h)),
            "params {h}"
        );
        assert_eq!(
            chain
                .states
                .load_finalize_block_response(h)
                .expect("test chain"),
            Some(format!("resp-{h}").into_bytes()),
            "response {h}"
        );
    }
    for h in s.validators_base..=s.height {
        assert_eq!(
            chain.states.load_validators(h).expect("test chain"),
            Some(expected_validators(first, h)),
            "validators {h}"
        );
    }
    for h in first..s.base {
        assert_pruned(chain.states.load_finalize_block_response(h), "response", h);
        assert_pruned(chain.states.load_consensus_params(h), "params", h);
    }
    for h in first..s.validators_base {
        assert_pruned(chain.states.load_validators(h), "validators", h);
    }
    let left = chain.states.leftovers_below_base(10).expect("test chain");
    assert!(
        left.is_empty(),
        "state store leftovers below base: {left:?}"
    );
}

/// Panics unless `result` is the typed "pruned" refusal for height `h`.
pub fn assert_pruned<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str, h: u64) {
    match result {
        Err(StoreError::Pruned { height, .. }) if height == h => {}
        other => panic!("{what} at pruned height {h}: expected a Pruned refusal, got {other:?}"),
    }
}
