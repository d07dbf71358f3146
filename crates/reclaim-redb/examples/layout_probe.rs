//! Probe: bytes on disk of a redb generation holding random 32-96 KiB values.
use reclaim_core::rewrite::GenerationEngine;
use reclaim_core::{Compactable, KeyRange, KvWrite, WriteBatch, WriteOptions};

fn main() {
    let chunk_bytes: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    let key_pad: usize = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    let dir = tempfile::tempdir().unwrap();
    let engine = reclaim_redb::RedbEngine;
    let store = engine.open(dir.path(), true).unwrap();
    let mut live = 0u64;
    let mut seed = 1u64;
    for chunk in 0..50 {
        let mut batch = WriteBatch::new();
        for i in 0..40 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            let len = 32 * 1024 + (seed >> 33) as usize % (64 * 1024);
            let key = format!("k{:06}{}", chunk * 40 + i, "p".repeat(key_pad)).into_bytes();
            live += (len + key.len()) as u64;
            let value = vec![(seed % 251) as u8; len];
            if chunk_bytes == 0 {
                batch.put(key, value);
            } else {
                for (n, piece) in value.chunks(chunk_bytes).enumerate() {
                    let mut k = key.clone();
                    k.extend_from_slice(&(n as u32).to_be_bytes());
                    batch.put(k, piece.to_vec());
                }
            }
        }
        store.write(batch, WriteOptions::BUFFERED).unwrap();
    }
    let size = |s: &reclaim_redb::RedbFile| s.size_on_disk().unwrap();
    println!(
        "live {:.1} MiB, file {:.1} MiB after buffered writes",
        live as f64 / 1048576.0,
        size(&store) as f64 / 1048576.0
    );
    engine.persist(&store).unwrap();
    println!(
        "file {:.1} MiB after persist, fragmented {:.1} MiB",
        size(&store) as f64 / 1048576.0,
        store.fragmented_bytes().unwrap() as f64 / 1048576.0
    );
    store.compact_range(&KeyRange::full()).unwrap();
    println!(
        "file {:.1} MiB after compact, fragmented {:.1} MiB",
        size(&store) as f64 / 1048576.0,
        store.fragmented_bytes().unwrap() as f64 / 1048576.0
    );
}
