//! The README's "Using it in a node" example, compiled: the block below is the README's, line
//! for line (the test checks it), inside a function that gives it its free variables.

#![allow(dead_code)]

use std::time::Duration;

/// The README's example. Not run (it opens `data/store` and reads `config.toml`): compiling it is
/// the point. Not formatted, so that it stays the README's text.
#[rustfmt::skip]
fn readme_example(
    commit_took: Duration,
    app_retain_height: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    use std::sync::Arc;
    use reclaim::{
        BackgroundPruner, BlockStore, Compactor, Engine, KvStore, OpenOptions, PruningSettings,
        RetainHeights, SingleFlight, StateStore, pruning_executor,
    };

    let config = reclaim::Config::load("config.toml".as_ref())?;
    // The engine by feature flag and name; the options carry the config's compaction I/O cap.
    let db: Arc<dyn KvStore> =
        Engine::Redb.open("data/store".as_ref(), &OpenOptions::from_config(&config.storage))?;
    let blocks = Arc::new(BlockStore::open(db.clone())?);
    let states = Arc::new(StateStore::open(db, Default::default())?);
    let (pacing, load_gate) = config.storage.compaction_pacing.to_pacing()?;
    let compactor = Arc::new(Compactor::with_pacing(SingleFlight::new(), pacing)?);
    // Blocks and state registered as prune segments, [storage]'s compaction policy in force.
    // More data to prune (a tx index, evidence) is one `.register(Arc::new(segment))` each.
    let executor = Arc::new(
        pruning_executor(&blocks, &states, PruningSettings::from(&config.storage))
            .with_compactor(compactor),
    );
    let companion = &config.storage.pruning.data_companion;
    let retain = Arc::new(RetainHeights::open(blocks, companion.enabled, companion.initial_block_retain_height)?);
    let pruner = BackgroundPruner::start(executor, retain.clone(), config.storage.pruning.interval)?;

    // After each commit: feed the load gate, pass on the application's retain height, wake the pruner.
    if let Some(gate) = &load_gate { gate.record_commit(commit_took); }
    retain.set_application(app_retain_height)?;
    pruner.wake();
    Ok(())
}

#[test]
fn the_readme_example_is_this_file_verbatim() {
    let readme = include_str!("../README.md");
    let start = readme
        .find("```rust\nuse std::sync::Arc;")
        .expect("the README's example")
        + "```rust\n".len();
    let end = start + readme[start..].find("```").expect("end of the example");
    let this = include_str!("readme_example.rs");
    for line in readme[start..end].lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            this.contains(&format!("    {line}")),
            "README line not in tests/readme_example.rs: {line}"
        );
    }
}
