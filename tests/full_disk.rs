//! Full disk: a store on a size-limited tmpfs is filled until writes fail with ENOSPC. The
//! error must be clear, no acknowledged write may be lost, the store must open again, and once
//! space is freed, writing and compacting must work again. Read-only file system: a store whose
//! file system was remounted read-only must refuse to open with a clear error and be intact
//! once it is writable again (a read-only *directory* cannot be tested as root, who ignores
//! permissions; a read-only mount binds root too). Where tmpfs cannot be mounted (not root, or
//! no mount permission) each test says it was skipped and why.

use std::path::Path;
use std::sync::Arc;

use reclaim::{KeyRange, KvStore, StorageError, WriteBatch, WriteOptions};
use reclaim_conformance::data::random_bytes;
use reclaim_conformance::rewrite_kill::generation_dirs;
use reclaim_conformance::tmpfs::Tmpfs;

const FS_BYTES: u64 = 48 << 20;
const BALLAST_BYTES: usize = 12 << 20;
const VALUE_BYTES: usize = 64 << 10;

fn key(i: u32) -> Vec<u8> {
    format!("k{i:06}").into_bytes()
}

fn fill_until_full(store: &dyn KvStore) -> (u32, StorageError) {
    for i in 0.. {
        let mut batch = WriteBatch::new();
        batch.put(key(i), random_bytes(u64::from(i), VALUE_BYTES));
        if let Err(e) = store.write(batch, WriteOptions::DURABLE) {
            return (i, e);
        }
        assert!(i < 100_000, "the disk never filled");
    }
    unreachable!()
}

fn full_disk(engine: &str, open: fn(&Path) -> Result<Arc<dyn KvStore>, StorageError>) {
    full_disk_sized(engine, FS_BYTES, BALLAST_BYTES, open);
}

/// [`full_disk`] on a file system of `fs_bytes`, `ballast_bytes` of which a file holds until
/// the disk has filled (freeing them is what gives the store room again).
fn full_disk_sized(
    engine: &str,
    fs_bytes: u64,
    ballast_bytes: usize,
    open: fn(&Path) -> Result<Arc<dyn KvStore>, StorageError>,
) {
    let fs = match Tmpfs::mount(fs_bytes) {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!(
                "full-disk test for {engine} skipped: cannot mount a size-limited tmpfs ({why})"
            );
            return;
        }
    };
    let ballast = fs.path().join("ballast");
    std::fs::write(&ballast, vec![0u8; ballast_bytes]).unwrap();
    let dir = fs.path().join("store");
    let store = open(&dir).unwrap();
    let (acknowledged, err) = fill_until_full(store.as_ref());
    let message = err.to_string();
    eprintln!("{engine}: {acknowledged} writes of 64 KiB acknowledged, then: {message}");
    assert!(
        matches!(err, StorageError::NoSpace { .. }) || message.to_lowercase().contains("space"),
        "{engine}: the full-disk error does not say so: {message}"
    );
    // Compaction on a full disk: an error or success, never a panic or lost data.
    if let Err(e) = store.compact_range(&KeyRange::full()) {
        eprintln!("{engine}: compaction on a full disk failed cleanly: {e}");
    }
    drop(store);
    std::fs::remove_file(&ballast).unwrap();
    let store = open(&dir)
        .unwrap_or_else(|e| panic!("{engine}: store does not open after a full disk: {e}"));
    for i in 0..acknowledged {
        assert_eq!(
            store.get(&key(i)).unwrap(),
            Some(random_bytes(u64::from(i), VALUE_BYTES)),
            "{engine}: acknowledged write {i} lost"
        );
    }
    // Room for the engine's reserve but not for a copy of everything: a compaction that
    // rewrites online refuses or stops cleanly (or compacts in place), never losing a write or
    // leaving a half-built generation behind.
    match store.compact_range(&KeyRange::full()) {
        Ok(()) => eprintln!("{engine}: compaction with little room succeeded"),
        Err(e) => {
            eprintln!("{engine}: compaction with little room refused: {e}");
            assert!(
                matches!(e, StorageError::NoSpace { .. }),
                "{engine}: not a NoSpace: {e}"
            );
        }
    }
    let generations = generation_dirs(&dir).len();
    assert!(generations <= 1, "{engine}: {generations} generations left");
    for i in 0..acknowledged {
        assert_eq!(
            store.get(&key(i)).unwrap(),
            Some(random_bytes(u64::from(i), VALUE_BYTES)),
            "{engine}: write {i} lost by a compaction without room"
        );
    }
    // Space is back: delete most data, compact, and write again.
    let mut batch = WriteBatch::new();
    batch.delete_range(KeyRange::until(key(acknowledged / 2)));
    store
        .write(batch, WriteOptions::DURABLE)
        .expect("delete after freeing space");
    store
        .compact_range(&KeyRange::full())
        .expect("compact after freeing space");
    let mut batch = WriteBatch::new();
    batch.put(b"after".to_vec(), b"works".to_vec());
    store
        .write(batch, WriteOptions::DURABLE)
        .expect("write after freeing space");
    assert_eq!(store.get(b"after").unwrap(), Some(b"works".to_vec()));
    for i in acknowledged / 2..acknowledged {
        assert!(
            store.get(&key(i)).unwrap().is_some(),
            "{engine}: {i} lost after compaction"
        );
    }
}

/// Writes 20 keys durably, closes the store, remounts its file system read-only and opens it:
/// that must fail with a clear error (not a panic, not "corrupt"). Writable again, the store
/// opens with every key.
fn read_only_file_system<S: KvStore>(
    engine: &str,
    open: fn(&Path) -> Result<S, StorageError>,
    close: fn(S),
) {
    let fs = match Tmpfs::mount(FS_BYTES) {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("read-only test for {engine} skipped: cannot mount a tmpfs ({why})");
            return;
        }
    };
    let dir = fs.path().join("store");
    let store = open(&dir).unwrap();
    for i in 0..20 {
        let mut batch = WriteBatch::new();
        batch.put(key(i), random_bytes(u64::from(i), 1024));
        store.write(batch, WriteOptions::DURABLE).unwrap();
    }
    close(store);
    if let Err(why) = fs.remount(true) {
        eprintln!("read-only test for {engine} skipped: cannot remount read-only ({why})");
        return;
    }
    let err = match open(&dir) {
        Ok(_) => panic!("{engine}: a store on a read-only file system opened for writing"),
        Err(err) => err,
    };
    let message = err.to_string();
    eprintln!("{engine} on a read-only file system: {message}");
    assert!(
        !matches!(err, StorageError::Corrupt { .. }),
        "{engine}: a read-only file system reported as corruption: {message}"
    );
    assert!(
        message.to_lowercase().contains("read-only"),
        "{engine}: the error does not say the file system is read-only: {message}"
    );
    // A look is still possible where the engine can open read-only: every key reads back.
    let kind = reclaim::Engine::from_name(engine).unwrap();
    if kind.can_open_read_only() {
        let reader = kind
            .open_read_only(&dir)
            .unwrap_or_else(|e| panic!("{engine}: no read-only open on a read-only fs: {e}"));
        for i in 0..20 {
            assert_eq!(
                reader.get(&key(i)).unwrap(),
                Some(random_bytes(u64::from(i), 1024)),
                "{engine}: {i} read wrong through the read-only open"
            );
        }
        assert!(matches!(
            reader.write(WriteBatch::new(), WriteOptions::DURABLE),
            Err(StorageError::ReadOnly { .. })
        ));
    }
    fs.remount(false).unwrap();
    let store = open(&dir).unwrap_or_else(|e| panic!("{engine}: does not open writable: {e}"));
    for i in 0..20 {
        assert_eq!(
            store.get(&key(i)).unwrap(),
            Some(random_bytes(u64::from(i), 1024)),
            "{engine}: {i} lost"
        );
    }
    close(store);
}

#[cfg(feature = "redb")]
#[test]
fn redb_read_only_file_system() {
    read_only_file_system("redb", |dir| reclaim::redb::RedbStore::open(dir), drop);
}

#[cfg(feature = "sled")]
#[test]
fn sled_read_only_file_system() {
    read_only_file_system(
        "sled",
        |dir| reclaim::sled::SledStore::open(dir),
        |store| {
            store.close().unwrap();
        },
    );
}

#[cfg(feature = "rocksdb")]
#[test]
fn rocksdb_read_only_file_system() {
    read_only_file_system(
        "rocksdb",
        |dir| reclaim::rocksdb::RocksStore::open(dir),
        drop,
    );
}

#[cfg(feature = "redb")]
#[test]
fn redb_full_disk() {
    full_disk("redb", |dir| {
        Ok(Arc::new(reclaim::redb::RedbStore::open(dir)?))
    });
}

/// sled 0.34 blocks forever in `iobuf::make_stable_inner` once a flush has failed with ENOSPC
/// (seen with gdb), so the adapter refuses writes and compactions with `NoSpace` before sled
/// can reach a full disk (`reclaim_sled::FREE_SPACE_RESERVE`). This test holds it to that.
#[cfg(feature = "sled")]
#[test]
fn sled_full_disk() {
    full_disk("sled", |dir| {
        Ok(Arc::new(reclaim::sled::SledStore::open(dir)?))
    });
}

#[cfg(feature = "rocksdb")]
#[test]
fn rocksdb_full_disk() {
    // RocksDB replays its WAL into a new table file when it opens, so reopening needs free space
    // for up to one memtable of unflushed writes. With the default 64 MiB memtable that is more
    // than this 48 MiB file system can ever free; a 4 MiB memtable keeps the requirement small.
    full_disk("rocksdb", |dir| {
        let options = reclaim::rocksdb::RocksOptions {
            write_buffer_size: 4 << 20,
            ..Default::default()
        };
        Ok(Arc::new(reclaim::rocksdb::RocksStore::open_with(
            dir, options,
        )?))
    });
}

#[cfg(feature = "fjall")]
#[test]
fn fjall_read_only_file_system() {
    read_only_file_system("fjall", |dir| reclaim::fjall::FjallStore::open(dir), drop);
}

/// fjall writes one journal until it passes 64 MB and flushes memtables of up to 64 MiB, and
/// its compaction asks for room for a flush and the new tables before it starts: freeing
/// 12 MiB after a full disk gives it none of that, so the file system is larger and the
/// ballast frees 160 MiB. (A compaction on the full disk itself used to hang: fjall's own wait
/// for a flush never ends when the flush fails.)
#[cfg(feature = "fjall")]
#[test]
fn fjall_full_disk() {
    full_disk_sized("fjall", 256 << 20, 160 << 20, |dir| {
        Ok(Arc::new(reclaim::fjall::FjallStore::open(dir)?))
    });
}

/// An online rewrite whose copy does not fit: a store of about 10 MiB live data on a file
/// system left with `room` bytes free. The compaction refuses or stops cleanly with
/// [`StorageError::NoSpace`] (or, for an engine that can, compacts in place): every write is
/// still there, only one generation is left, and once space is freed the rewrite runs.
fn rewrite_without_room(
    engine: &str,
    room: u64,
    open: fn(&Path) -> Result<Arc<dyn KvStore>, StorageError>,
) {
    let fs = match Tmpfs::mount(128 << 20) {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!(
                "rewrite-without-room test for {engine} skipped: cannot mount a tmpfs ({why})"
            );
            return;
        }
    };
    let dir = fs.path().join("store");
    let store = open(&dir).unwrap();
    let writes = 160u32;
    for i in 0..writes {
        let mut batch = WriteBatch::new();
        batch.put(key(i), random_bytes(u64::from(i), VALUE_BYTES));
        store.write(batch, WriteOptions::DURABLE).unwrap();
    }
    let free = reclaim::dir::available_space(fs.path()).unwrap();
    eprintln!(
        "{engine}: {} bytes on disk, {free} free before the ballast",
        store.size_on_disk().unwrap()
    );
    let ballast = fs.path().join("ballast");
    std::fs::write(&ballast, vec![0u8; free.saturating_sub(room) as usize]).unwrap();
    let generations = || generation_dirs(&dir);
    let before = generations();
    match store.compact_range(&KeyRange::full()) {
        Ok(()) => eprintln!("{engine}: compaction without room for a copy succeeded in place"),
        Err(e) => {
            eprintln!("{engine}: compaction without room for a copy refused: {e}");
            assert!(matches!(e, StorageError::NoSpace { .. }), "{engine}: {e}");
            assert_eq!(
                generations(),
                before,
                "{engine}: a refused rewrite changed the layout"
            );
        }
    }
    assert_eq!(generations().len(), 1, "{engine}: {:?}", generations());
    for i in 0..writes {
        assert_eq!(
            store.get(&key(i)).unwrap(),
            Some(random_bytes(u64::from(i), VALUE_BYTES)),
            "{engine}: write {i} lost"
        );
    }
    std::fs::remove_file(&ballast).unwrap();
    eprintln!(
        "{engine}: {} bytes on disk, {} free once the ballast is gone",
        store.size_on_disk().unwrap(),
        reclaim::dir::available_space(fs.path()).unwrap()
    );
    store
        .compact_range(&KeyRange::full())
        .expect("compaction once space is back");
    assert_eq!(generations().len(), 1);
    assert_eq!(
        store.get(&key(writes - 1)).unwrap(),
        Some(random_bytes(u64::from(writes - 1), VALUE_BYTES))
    );
}

#[test]
#[cfg(feature = "redb")]
fn redb_rewrite_without_room() {
    rewrite_without_room("redb", 4 << 20, |dir| {
        Ok(Arc::new(reclaim::redb::RedbStore::open(dir)?))
    });
}

#[test]
#[cfg(feature = "sled")]
fn sled_rewrite_without_room() {
    rewrite_without_room(
        "sled",
        reclaim::sled::FREE_SPACE_RESERVE + (3 << 20),
        |dir| Ok(Arc::new(reclaim::sled::SledStore::open(dir)?)),
    );
}
