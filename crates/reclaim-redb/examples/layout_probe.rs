//! How redb's layout turns block-sized values into bytes on disk: writes 2,000 values of
//! 32–96 KiB (CometBFT-sized block parts, ± 50 %) into one redb generation, in 50 buffered
//! batches, and prints the file before and after a durable commit and an in-place compaction.
//!
//! `cargo run --release -p reclaim-redb --example layout_probe -- [KEY_PAD]`: `KEY_PAD`
//! lengthens every key by that many bytes (the adapter sizes its value pieces by key length;
//! keys over 512 bytes keep their values whole).

use reclaim_core::rewrite::GenerationEngine;
use reclaim_core::{Compactable, KeyRange, KvWrite, WriteBatch, WriteOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let key_pad: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(0);
    let dir = tempfile::tempdir()?;
    let engine = reclaim_redb::RedbEngine;
    let store = engine.open(dir.path(), true)?;
    let mut live = 0u64;
    let mut seed = 1u64;
    for batch_number in 0..50 {
        let mut batch = WriteBatch::new();
        for i in 0..40 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = 32 * 1024 + (seed >> 33) as usize % (64 * 1024);
            let key = format!("k{:06}{}", batch_number * 40 + i, "p".repeat(key_pad)).into_bytes();
            live += (len + key.len()) as u64;
            batch.put(key, vec![(seed % 251) as u8; len]);
        }
        store.write(batch, WriteOptions::BUFFERED)?;
    }
    let mib = |bytes: u64| bytes as f64 / f64::from(1u32 << 20);
    println!(
        "live {:.1} MiB; file {:.1} MiB after buffered writes",
        mib(live),
        mib(store.size_on_disk()?)
    );
    engine.persist(&store)?;
    println!(
        "file {:.1} MiB after a durable commit, {:.1} MiB of it unused",
        mib(store.size_on_disk()?),
        mib(store.fragmented_bytes()?)
    );
    store.compact_range(&KeyRange::full())?;
    println!(
        "file {:.1} MiB after compaction ({:.2}x the live bytes), {:.1} MiB of it unused",
        mib(store.size_on_disk()?),
        store.size_on_disk()? as f64 / live as f64,
        mib(store.fragmented_bytes()?)
    );
    Ok(())
}
