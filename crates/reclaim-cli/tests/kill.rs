//! Kill at any moment: a child `reclaim prune` / `reclaim compact` process works on a real store
//! and is killed with SIGKILL at points spread over its run. After each kill the store must
//! open, hold every promised height (nothing at or above the retain height missing, no state
//! pointer dangling, bounds never ahead of the data), and one more prune must leave exactly what
//! an uninterrupted prune leaves.
//!
//! `RECLAIM_KILL_POINTS` sets the kill points per backend and operation (default 50; the long
//! mode is e.g. `RECLAIM_KILL_POINTS=2000`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reclaim::{
    KvStore, PruningExecutor, PruningSettings, StateStoreOptions, StorageError, WriteBatch,
    WriteOptions, pruning_executor,
};
use reclaim_conformance::cases::{dump, dump_chain_data};
use reclaim_conformance::chain::{check_invariants, commit, open};
use reclaim_conformance::damage::copy_dir;

const HEIGHTS: u64 = 12_000;
const RETAIN: u64 = 11_000;
const EVIDENCE_AGE: u64 = 3_000;

type Opener = fn(&Path) -> Result<Arc<dyn KvStore>, StorageError>;

fn kill_points() -> u32 {
    std::env::var("RECLAIM_KILL_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
}

/// A store holding the deterministic test chain, made durable and closed.
fn template(dir: &Path, open_store: Opener) {
    let store = open_store(dir).unwrap();
    let chain = open(Arc::clone(&store), StateStoreOptions::default());
    commit(&chain, 1, 1, HEIGHTS);
    store
        .write(WriteBatch::new(), WriteOptions::DURABLE)
        .unwrap();
}

fn prune_args(dir: &Path) -> Vec<String> {
    vec![
        "prune".into(),
        dir.display().to_string(),
        "--retain-height".into(),
        RETAIN.to_string(),
        "--evidence-max-age".into(),
        EVIDENCE_AGE.to_string(),
    ]
}

fn run_to_end(args: &[String]) -> Duration {
    let started = Instant::now();
    let status = Command::new(env!("CARGO_BIN_EXE_reclaim"))
        .args(args)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "{args:?} failed");
    started.elapsed()
}

/// Runs `args` and kills the process after `delay`; true if it was still running.
fn run_and_kill(args: &[String], delay: Duration) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_reclaim"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let killed = matches!(child.try_wait(), Ok(None));
    child.kill().ok(); // SIGKILL on Unix
    child.wait().unwrap();
    killed
}

fn executor(store: &Arc<dyn KvStore>) -> (reclaim_conformance::chain::Chain, PruningExecutor) {
    let chain = open(Arc::clone(store), StateStoreOptions::default());
    let options = PruningSettings {
        evidence_max_age_heights: EVIDENCE_AGE,
        ..PruningSettings::default()
    };
    let exec = pruning_executor(&chain.blocks, &chain.states, options);
    (chain, exec)
}

/// For each kill point: copies `base`, runs `reclaim <args>` on the copy, kills it after a
/// delay spread over 1.2× `duration` (or over 1.2× a shorter run's length once a kill found the
/// command done), reopens the copy (which must open) and hands it to
/// `check`. Returns how many kills landed while the command was still running.
fn at_each_kill_point(
    scratch: &Path,
    base: &Path,
    open_store: Opener,
    args: impl Fn(&Path) -> Vec<String>,
    duration: Duration,
    check: impl Fn(u32, Duration, &Arc<dyn KvStore>),
) -> u32 {
    let points = kill_points();
    let mut interrupted = 0;
    // The reference run may have been slower than the runs killed (it shares two cores with
    // other tests): a kill that finds the command already done shows the command takes at most
    // that long, and the points left are spread over that instead.
    let mut span = duration;
    for i in 0..points {
        let dir = scratch.join(format!("kill-{i}"));
        copy_dir(base, &dir);
        let delay = span.mul_f64(1.2 * f64::from(i) / f64::from(points));
        let landed = run_and_kill(&args(&dir), delay);
        if !landed {
            span = span.min(delay);
        }
        interrupted += u32::from(landed);
        let store =
            open_store(&dir).unwrap_or_else(|e| panic!("store does not open after kill {i}: {e}"));
        check(i, delay, &store);
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }
    interrupted
}

fn kill_during_prune(open_store: Opener) {
    let scratch = tempfile::tempdir().unwrap();
    let base = scratch.path().join("template");
    template(&base, open_store);
    let reference = scratch.path().join("reference");
    copy_dir(&base, &reference);
    let duration = run_to_end(&prune_args(&reference));
    let expected = dump_chain_data(open_store(&reference).unwrap().as_ref());
    let points = kill_points();
    let interrupted = at_each_kill_point(
        scratch.path(),
        &base,
        open_store,
        prune_args,
        duration,
        |i, delay, store| {
            {
                let (chain, exec) = executor(store);
                check_invariants(&chain, 1);
                assert!(chain.blocks.base() <= RETAIN && chain.blocks.height() == HEIGHTS);
                exec.prune(RETAIN).unwrap();
                check_invariants(&chain, 1);
            }
            assert!(
                dump_chain_data(store.as_ref()) == expected,
                "kill point {i} ({delay:?}): resumed prune differs"
            );
        },
    );
    assert!(
        interrupted * 2 >= points,
        "only {interrupted} of {points} kills landed during the prune ({duration:?})"
    );
    eprintln!("kill-during-prune: {points} kill points, {interrupted} mid-run, run {duration:?}");
}

fn kill_during_compaction(open_store: Opener) {
    let scratch = tempfile::tempdir().unwrap();
    let base = scratch.path().join("template");
    template(&base, open_store);
    {
        // Prune without compaction so the compaction has real work.
        let store = open_store(&base).unwrap();
        executor(&store).1.prune(RETAIN).unwrap();
    }
    let expected = dump(open_store(&base).unwrap().as_ref());
    let compact = |dir: &Path| vec!["compact".to_string(), dir.display().to_string()];
    let reference = scratch.path().join("reference");
    copy_dir(&base, &reference);
    let duration = run_to_end(&compact(&reference));
    let points = kill_points();
    let interrupted = at_each_kill_point(
        scratch.path(),
        &base,
        open_store,
        compact,
        duration,
        |i, delay, store| {
            assert!(
                dump(store.as_ref()) == expected,
                "kill point {i} ({delay:?}): data changed"
            );
            {
                let (chain, _) = executor(store);
                check_invariants(&chain, 1);
            }
            store.compact_range(&reclaim::KeyRange::full()).unwrap();
            assert!(
                dump(store.as_ref()) == expected,
                "kill point {i}: compaction after the kill changed data"
            );
        },
    );
    eprintln!(
        "kill-during-compaction: {points} kill points, {interrupted} mid-run, run {duration:?}"
    );
}

/// One module per backend with both kill tests, for the backends this build has.
macro_rules! kill_tests {
    ($name:ident, $feature:literal, $store:ty) => {
        #[cfg(feature = $feature)]
        mod $name {
            use super::*;

            fn open_store(dir: &Path) -> Result<Arc<dyn KvStore>, StorageError> {
                Ok(Arc::new(<$store>::open(dir)?))
            }

            #[test]
            fn kill_during_prune() {
                super::kill_during_prune(open_store);
            }

            #[test]
            fn kill_during_compaction() {
                super::kill_during_compaction(open_store);
            }
        }
    };
}

kill_tests!(redb, "redb", reclaim::redb::RedbStore);
// sled 0.34 left an unfinished snapshot (`snap.*.generating`) when killed while opening, then
// refused to open; the adapter removes such files before opening (docs/reliability.md).
kill_tests!(sled, "sled", reclaim::sled::SledStore);
kill_tests!(rocksdb, "rocksdb", reclaim::rocksdb::RocksStore);
kill_tests!(fjall, "fjall", reclaim::fjall::FjallStore);
