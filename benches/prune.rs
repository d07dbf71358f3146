//! Micro-benchmark of one pruning batch on the in-memory engine: 1,000 heights pruned with
//! range deletes, persisted bounds included (engine costs are in `scripts/bench`).

use std::sync::Arc;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use reclaim::{
    Block, BlockStore, HeightState, KvStore, MemoryStore, PruningExecutor, PruningSettings,
    StateStore, WriteOptions, pruning_executor,
};

fn chain(heights: u64) -> PruningExecutor {
    let db: Arc<dyn KvStore> = Arc::new(MemoryStore::new());
    let blocks = Arc::new(BlockStore::open(Arc::clone(&db)).expect("blocks"));
    let states = Arc::new(StateStore::open(db, Default::default()).expect("states"));
    for h in 1..=heights {
        let block = Block {
            height: h,
            hash: h.to_be_bytes().to_vec(),
            meta: vec![1; 300],
            parts: vec![vec![2; 4096]],
            commit: vec![3; 1024],
            seen_commit: vec![4; 1024],
            extended_commit: None,
        };
        blocks
            .save_block(&block, WriteOptions::BUFFERED)
            .expect("save");
        let state = HeightState {
            height: h,
            validators: (h == 1).then(|| vec![5; 2048]),
            consensus_params: (h == 1).then(|| vec![6; 200]),
            finalize_block_response: vec![7; 256],
        };
        states.save(&state, WriteOptions::BUFFERED).expect("save");
    }
    let options = PruningSettings {
        evidence_max_age_heights: 0,
        ..PruningSettings::default()
    };
    pruning_executor(&blocks, &states, options)
}

fn prune_batch(c: &mut Criterion) {
    c.bench_function("prune_blocks/1000_heights_memory", |b| {
        b.iter_batched(
            || chain(1100),
            |exec| exec.prune(1001).expect("prune"),
            BatchSize::LargeInput,
        )
    });
}

criterion_group!(benches, prune_batch);
criterion_main!(benches);
