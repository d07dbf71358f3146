//! Helpers shared by the core's integration tests: a deterministic chain and its invariants.
#![allow(dead_code)]

use std::sync::Arc;

use reclaim_core::{
    Block, BlockStore, HeightState, KvStore, StateStore, StateStoreOptions, WriteOptions,
};

pub const PARTS_PER_BLOCK: usize = 3;

/// Validator sets change at the first height and every 7th height.
pub fn validators_change_at(first: u64, h: u64) -> bool {
    h == first || h.is_multiple_of(7)
}

/// Consensus params change at the first height and every 11th height.
pub fn params_change_at(first: u64, h: u64) -> bool {
    h == first || h.is_multiple_of(11)
}

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

pub fn height_state(first: u64, h: u64) -> HeightState {
    HeightState {
        height: h,
        validators: validators_change_at(first, h).then(|| format!("vals-{h}").into_bytes()),
        consensus_params: params_change_at(first, h).then(|| format!("params-{h}").into_bytes()),
        finalize_block_response: format!("resp-{h}").into_bytes(),
    }
}

pub fn expected_validators(first: u64, h: u64) -> Vec<u8> {
    let changed = (first..=h)
        .rev()
        .find(|&x| validators_change_at(first, x))
        .unwrap();
    format!("vals-{changed}").into_bytes()
}

pub fn expected_params(first: u64, h: u64) -> Vec<u8> {
    let changed = (first..=h)
        .rev()
        .find(|&x| params_change_at(first, x))
        .unwrap();
    format!("params-{changed}").into_bytes()
}

pub struct Chain {
    pub blocks: Arc<BlockStore>,
    pub states: Arc<StateStore>,
}

pub fn open(db: Arc<dyn KvStore>, options: StateStoreOptions) -> Chain {
    Chain {
        blocks: Arc::new(BlockStore::open(Arc::clone(&db)).unwrap()),
        states: Arc::new(StateStore::open(db, options).unwrap()),
    }
}

/// Commits heights `from..=to` into both stores.
pub fn commit(chain: &Chain, first: u64, from: u64, to: u64) {
    for h in from..=to {
        chain
            .blocks
            .save_block(&block(h), WriteOptions::BUFFERED)
            .unwrap();
        chain
            .states
            .save(&height_state(first, h), WriteOptions::BUFFERED)
            .unwrap();
    }
}

/// Checks every promise the stores make about what they hold.
pub fn check_invariants(chain: &Chain, first: u64) {
    let b = chain.blocks.state();
    assert!(b.evidence_base <= b.base && b.base <= b.height, "{b:?}");
    for h in b.base..=b.height {
        let expected = block(h);
        assert_eq!(
            chain.blocks.load_block_meta(h).unwrap(),
            Some(expected.meta),
            "meta {h}"
        );
        assert_eq!(
            chain.blocks.load_block_parts(h).unwrap(),
            expected.parts,
            "parts {h}"
        );
        assert_eq!(
            chain.blocks.load_block_commit(h).unwrap(),
            Some(expected.commit),
            "commit {h}"
        );
        assert_eq!(
            chain.blocks.load_seen_commit(h).unwrap(),
            Some(expected.seen_commit),
            "seen {h}"
        );
        assert_eq!(
            chain.blocks.load_extended_commit(h).unwrap(),
            expected.extended_commit,
            "ext {h}"
        );
        assert_eq!(
            chain.blocks.height_by_hash(&expected.hash).unwrap(),
            Some(h),
            "hash {h}"
        );
    }
    for h in b.evidence_base..b.base {
        let expected = block(h);
        assert_eq!(
            chain.blocks.load_block_meta(h).unwrap(),
            Some(expected.meta),
            "evidence meta {h}"
        );
        assert_eq!(
            chain.blocks.load_block_commit(h).unwrap(),
            Some(expected.commit),
            "evidence commit {h}"
        );
        assert!(
            chain.blocks.load_block_parts(h).unwrap().is_empty(),
            "parts below base {h}"
        );
        assert_eq!(
            chain.blocks.height_by_hash(&expected.hash).unwrap(),
            None,
            "hash below base {h}"
        );
        assert_eq!(
            chain.blocks.load_seen_commit(h).unwrap(),
            None,
            "seen below base {h}"
        );
    }
    for h in first..b.evidence_base {
        assert_eq!(
            chain.blocks.load_block_meta(h).unwrap(),
            None,
            "meta below evidence base {h}"
        );
        assert_eq!(
            chain.blocks.load_block_commit(h).unwrap(),
            None,
            "commit below evidence base {h}"
        );
    }
    let s = chain.states.bounds();
    if s.height == 0 {
        return;
    }
    assert!(s.validators_base <= s.base && s.base <= s.height, "{s:?}");
    for h in s.base..=s.height {
        assert_eq!(
            chain.states.load_consensus_params(h).unwrap(),
            Some(expected_params(first, h)),
            "params {h}"
        );
        assert_eq!(
            chain.states.load_finalize_block_response(h).unwrap(),
            Some(format!("resp-{h}").into_bytes()),
            "response {h}"
        );
    }
    for h in s.validators_base..=s.height {
        assert_eq!(
            chain.states.load_validators(h).unwrap(),
            Some(expected_validators(first, h)),
            "validators {h}"
        );
    }
    for h in first..s.base {
        assert_eq!(
            chain.states.load_finalize_block_response(h).unwrap(),
            None,
            "response below base {h}"
        );
        if h != s.params_kept {
            assert_eq!(
                chain.states.load_consensus_params(h).unwrap(),
                None,
                "params below base {h}"
            );
        }
    }
    for h in first..s.validators_base {
        if h != s.validators_kept {
            assert_eq!(
                chain.states.load_validators(h).unwrap(),
                None,
                "validators below base {h}"
            );
        }
    }
}
