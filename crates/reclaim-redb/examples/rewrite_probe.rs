//! Probe: bytes on disk of a redb store before and after an online rewrite.
use reclaim_core::{Compactable, KeyRange, KvWrite, WriteBatch, WriteOptions};

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = reclaim_redb::RedbStore::open(dir.path()).unwrap();
    let mut live = 0u64;
    let mut seed = 1u64;
    for chunk in 0..50 {
        let mut batch = WriteBatch::new();
        for i in 0..40 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            let len = 32 * 1024 + (seed >> 33) as usize % (64 * 1024);
            let key = format!("k{:06}", chunk * 40 + i).into_bytes();
            live += (len + key.len()) as u64;
            batch.put(key, vec![(seed % 251) as u8; len]);
        }
        store.write(batch, WriteOptions::DURABLE).unwrap();
    }
    let mib = |b: u64| b as f64 / 1048576.0;
    println!("live {:.1} MiB, store {:.1} MiB, fragmented {:.1}", mib(live), mib(store.size_on_disk().unwrap()), mib(store.fragmented_bytes().unwrap()));
    for _ in 0..3 {
        store.compact_range(&KeyRange::full()).unwrap();
        println!("after rewrite: store {:.1} MiB, fragmented {:.1}", mib(store.size_on_disk().unwrap()), mib(store.fragmented_bytes().unwrap()));
    }
    println!("{:?}", store.generations().last_rewrite());
}
