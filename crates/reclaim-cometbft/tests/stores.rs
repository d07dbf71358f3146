//! Block store and state store semantics on the in-memory engine.

use std::sync::Arc;

use reclaim_cometbft::StoreError;
use reclaim_cometbft::{BlockStore, HeightState, StateStore, StateStoreOptions};
use reclaim_conformance::chain::*;
use reclaim_core::{KvStore, KvWrite, MemoryStore, WriteBatch, WriteOptions};

fn memory() -> (MemoryStore, Arc<dyn KvStore>) {
    let store = MemoryStore::new();
    let db: Arc<dyn KvStore> = Arc::new(store.clone());
    (store, db)
}

#[test]
fn saved_blocks_load_back_and_survive_reopen() {
    let (_, db) = memory();
    let chain = open(Arc::clone(&db), StateStoreOptions::default());
    commit(&chain, 5, 5, 40);
    assert_eq!((chain.blocks.base(), chain.blocks.height()), (5, 40));
    assert_eq!(chain.blocks.bounds().size(), 36);
    check_invariants(&chain, 5);
    let reopened = open(db, StateStoreOptions::default());
    assert_eq!(reopened.blocks.bounds(), chain.blocks.bounds());
    assert_eq!(reopened.states.bounds(), chain.states.bounds());
    check_invariants(&reopened, 5);
    // Saving continues where it stopped, pointers included.
    commit(&reopened, 5, 41, 60);
    check_invariants(&reopened, 5);
}

#[test]
fn heights_must_be_contiguous() {
    let (_, db) = memory();
    let chain = open(db, StateStoreOptions::default());
    commit(&chain, 1, 1, 3);
    let err = chain
        .blocks
        .save_block(&block(5), WriteOptions::BUFFERED)
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NonContiguousHeight {
                height: 5,
                expected: 4
            }
        ),
        "{err}"
    );
    let err = chain
        .states
        .save(&height_state(1, 3), WriteOptions::BUFFERED)
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NonContiguousHeight {
                height: 3,
                expected: 4
            }
        ),
        "{err}"
    );
    assert_eq!(chain.blocks.height(), 3);
}

#[test]
fn malformed_blocks_are_rejected_without_writing() {
    let (store, db) = memory();
    let blocks = BlockStore::open(db).unwrap();
    let mut b = block(1);
    b.hash.clear();
    assert!(matches!(
        blocks.save_block(&b, WriteOptions::BUFFERED),
        Err(StoreError::InvalidInput { .. })
    ));
    let mut b = block(1);
    b.parts.clear();
    assert!(matches!(
        blocks.save_block(&b, WriteOptions::BUFFERED),
        Err(StoreError::InvalidInput { .. })
    ));
    let mut b = block(1);
    b.height = 0;
    assert!(matches!(
        blocks.save_block(&b, WriteOptions::BUFFERED),
        Err(StoreError::InvalidInput { .. })
    ));
    assert!(store.is_empty());
}

#[test]
fn first_state_needs_validators_and_params() {
    let (store, db) = memory();
    let states = StateStore::open(db, StateStoreOptions::default()).unwrap();
    let missing = HeightState {
        height: 1,
        validators: None,
        consensus_params: Some(b"p".to_vec()),
        finalize_block_response: vec![],
    };
    assert!(matches!(
        states.save(&missing, WriteOptions::BUFFERED),
        Err(StoreError::InvalidInput { .. })
    ));
    let missing = HeightState {
        height: 1,
        validators: Some(b"v".to_vec()),
        consensus_params: None,
        finalize_block_response: vec![],
    };
    assert!(matches!(
        states.save(&missing, WriteOptions::BUFFERED),
        Err(StoreError::InvalidInput { .. })
    ));
    assert!(store.is_empty());
}

#[test]
fn validator_sets_are_stored_in_full_only_on_change_and_at_checkpoints() {
    let (store, db) = memory();
    let options = StateStoreOptions {
        validator_checkpoint_interval: 10,
        ..Default::default()
    };
    let chain = open(Arc::clone(&db), options);
    commit(&chain, 1, 1, 30);
    let full_records = store
        .snapshot()
        .into_iter()
        .filter(|(k, v)| k.starts_with(b"validatorsKey:") && v.first() == Some(&0))
        .count();
    // Changes at 1, 7, 14, 21, 28 plus checkpoints at 10, 20, 30.
    assert_eq!(full_records, 8);
    for h in 1..=30 {
        assert_eq!(
            chain.states.load_validators(h).unwrap(),
            Some(expected_validators(1, h))
        );
    }
}

#[test]
fn discarded_responses_keep_only_the_latest_and_say_so() {
    let (_, db) = memory();
    let options = StateStoreOptions {
        discard_abci_responses: true,
        ..Default::default()
    };
    let chain = open(db, options);
    commit(&chain, 1, 1, 5);
    assert_eq!(
        chain.states.load_finalize_block_response(5).unwrap(),
        Some(b"resp-5".to_vec())
    );
    let err = chain.states.load_finalize_block_response(3).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::ResponseDiscarded {
                height: 3,
                latest: 5
            }
        ),
        "{err}"
    );
    assert_eq!(chain.states.load_finalize_block_response(9).unwrap(), None);
}

#[test]
fn corrupt_bounds_are_a_typed_error_on_open() {
    let (store, db) = memory();
    let mut batch = WriteBatch::new();
    batch.put(b"blockStore".to_vec(), b"garbage".to_vec());
    batch.put(b"stateStoreMeta".to_vec(), vec![0; 40]);
    store.write(batch, WriteOptions::BUFFERED).unwrap();
    let err = BlockStore::open(Arc::clone(&db)).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::CorruptRecord {
                what: "block store bounds",
                ..
            }
        ),
        "{err}"
    );
    // A bounds record that is not sealed is damage too.
    let err = StateStore::open(Arc::clone(&db), StateStoreOptions::default()).unwrap_err();
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
    // Sealed all-zero bounds are the empty store; a base above the height is not.
    let sealed = |key: &[u8], value: &[u8]| reclaim_cometbft::seal::seal(key, value);
    let mut batch = WriteBatch::new();
    batch.put(
        b"stateStoreMeta".to_vec(),
        sealed(b"stateStoreMeta", &[0; 40]),
    );
    batch.put(
        b"reclaimFormat".to_vec(),
        sealed(
            b"reclaimFormat",
            &reclaim_cometbft::seal::STORE_FORMAT_VERSION.to_be_bytes(),
        ),
    );
    store.write(batch, WriteOptions::BUFFERED).unwrap();
    assert!(StateStore::open(Arc::clone(&db), StateStoreOptions::default()).is_ok());
    let mut batch = WriteBatch::new();
    let bad: Vec<u8> = [9u64, 3, 9, 0, 0]
        .iter()
        .flat_map(|f| f.to_be_bytes())
        .collect();
    batch.put(b"stateStoreMeta".to_vec(), sealed(b"stateStoreMeta", &bad));
    store.write(batch, WriteOptions::BUFFERED).unwrap();
    let err = StateStore::open(db, StateStoreOptions::default()).unwrap_err();
    assert!(err.to_string().contains("inconsistent bounds"), "{err}");
}

#[test]
fn a_dangling_pointer_is_reported_not_followed_blindly() {
    let (store, db) = memory();
    let chain = open(Arc::clone(&db), StateStoreOptions::default());
    commit(&chain, 1, 1, 5);
    let mut batch = WriteBatch::new();
    batch.delete(b"validatorsKey:\x00\x00\x00\x00\x00\x00\x00\x01".to_vec());
    store.write(batch, WriteOptions::BUFFERED).unwrap();
    let err = chain.states.load_validators(4).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::DanglingPointer {
                height: 4,
                target: 1,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn stores_compact_while_other_threads_read_and_write() {
    let (_, db) = memory();
    let chain = Arc::new(open(db, StateStoreOptions::default()));
    commit(&chain, 1, 1, 10);
    std::thread::scope(|s| {
        let writer = Arc::clone(&chain);
        s.spawn(move || commit(&writer, 1, 11, 200));
        let reader = Arc::clone(&chain);
        s.spawn(move || {
            for _ in 0..200 {
                assert_eq!(
                    reader.blocks.load_block_meta(5).unwrap(),
                    Some(b"meta-5".to_vec())
                );
            }
        });
        for _ in 0..20 {
            chain.blocks.compact().unwrap();
            chain.states.compact().unwrap();
        }
    });
    check_invariants(&chain, 1);
}

#[test]
fn manual_store_compaction_reports_engine_failures_and_panics() {
    use reclaim_core::fault::{CompactionFault, FaultyStore};
    let faulty = Arc::new(FaultyStore::new(Arc::new(MemoryStore::new())));
    let chain = open(
        Arc::clone(&faulty) as Arc<dyn KvStore>,
        StateStoreOptions::default(),
    );
    commit(&chain, 1, 1, 5);
    let report = chain.blocks.compact().unwrap();
    assert!(report.ranges_compacted >= 1);
    for fault in [CompactionFault::Error, CompactionFault::Panic] {
        faulty.set_compaction_fault(fault);
        assert!(
            matches!(chain.blocks.compact(), Err(StoreError::Compaction(_))),
            "{fault:?}"
        );
        assert!(
            matches!(chain.states.compact(), Err(StoreError::Compaction(_))),
            "{fault:?}"
        );
    }
    faulty.set_compaction_fault(CompactionFault::None);
    check_invariants(&chain, 1);
}
