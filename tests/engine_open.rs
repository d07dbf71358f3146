//! The facade's `Engine`: names round-trip, every built engine opens a working store with the
//! node's `OpenOptions`, and an engine this build lacks is refused with a clear error.

use reclaim::{Engine, OpenOptions, StorageError, WriteBatch, WriteOptions};

#[test]
fn names_round_trip_and_unknown_names_are_none() {
    for engine in Engine::ALL {
        assert_eq!(Engine::from_name(engine.name()), Some(engine));
    }
    assert_eq!(Engine::from_name("leveldb"), None);
    assert_eq!(Engine::Rocksdb.is_built(), cfg!(feature = "rocksdb"));
    assert!(Engine::Memory.is_built() && !Engine::Memory.is_on_disk());
    assert!(Engine::ON_DISK.iter().all(|e| e.is_on_disk()));
}

#[test]
fn every_built_engine_opens_a_working_store_with_the_config_options() {
    let config = reclaim::Config::from_toml_str(
        "[storage.compaction_pacing]\nio_bytes_per_sec = 67108864\n",
    )
    .unwrap();
    let options = OpenOptions::from_config(&config.storage);
    // The I/O cap paces compaction (`Pacing`), never RocksDB's flush-throttling limiter.
    assert_eq!(options.rocksdb_rate_limit_bytes_per_sec, None);
    let (pacing, _) = config.storage.compaction_pacing.to_pacing().unwrap();
    assert_eq!(pacing.io_bytes_per_sec, Some(64 << 20));
    for engine in Engine::built() {
        let dir = tempfile::tempdir().unwrap();
        let store = engine.open(dir.path(), &options).unwrap();
        assert_eq!(store.capabilities().engine, engine.name());
        let mut batch = WriteBatch::new();
        batch.put(b"k".to_vec(), b"v".to_vec());
        store.write(batch, WriteOptions::DURABLE).unwrap();
        assert_eq!(store.get(b"k").unwrap(), Some(b"v".to_vec()));
        // The directory now holds a store of this engine: another engine refuses it.
        drop(store);
        // (The in-memory engine keeps no directory: nothing to refuse.)
        for other in
            Engine::built().filter(|o| *o != engine && o.is_on_disk() && engine.is_on_disk())
        {
            let Err(err) = other.open(dir.path(), &options) else {
                panic!("{} opened a {} store", other.name(), engine.name());
            };
            assert!(matches!(err, StorageError::BadPath { .. }), "{err}");
        }
    }
}

#[test]
fn an_engine_this_build_lacks_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for engine in Engine::ALL.into_iter().filter(|e| !e.is_built()) {
        let Err(err) = engine.open(dir.path(), &OpenOptions::default()) else {
            panic!("{} opened in a build without it", engine.name());
        };
        assert!(err.to_string().contains("feature"), "{err}");
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
    }
}
