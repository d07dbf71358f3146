//! Kill tests for a store that compacts by an online rewrite
//! ([`reclaim_core::rewrite::GenerationalStore`]): a child process writes durably and
//! acknowledges each write on its stdout while compactions run back to back, every third of
//! them stopped before its second step as a shutdown stops it; it is killed at every step of
//! the generation switch and of a stopped rewrite's retreat (a crash point aborts it there) and
//! at moments spread over its run (SIGKILL). After each kill the store must open with exactly
//! one generation and hold every acknowledged write, none lost and none resurrected.
//!
//! Use it from one test in the adapter's crate; the test binary re-runs itself as the child:
//!
//! ```ignore
//! #[test]
//! fn rewrite_kill() {
//!     reclaim_conformance::rewrite_kill::run("rewrite_kill", |dir| MyStore::open(dir), drop);
//! }
//! ```
//!
//! `RECLAIM_KILL_POINTS` sets the SIGKILL points (default 50); each crash point of
//! [`CRASH_POINTS`] is run twice more. The crash points need `reclaim-core`'s `testing` feature
//! in the child (this crate turns it on).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reclaim_core::fault::CRASH_AT_ENV;
use reclaim_core::{CompactionPacer, KeyRange, KvStore, StorageError, WriteBatch, WriteOptions};

use crate::damage::copy_dir;

/// Set in the child: the store directory it writes to.
pub const CHILD_ENV: &str = "RECLAIM_REWRITE_KILL_CHILD";

/// The steps of the write-once rewrite (an engine with a side keyspace) at which the child is
/// made to abort: the new generation created; `BUILDING` written (writes go to the new
/// generation from here); after a copy step; the copy durable; `CURRENT` renamed (the commit
/// point); the frozen generation dropped; the old one removed. And those of a stopped rewrite:
/// the writes made since `BUILDING` written back into the old generation (`BUILDING` still
/// there); the new generation about to be removed.
pub const CRASH_POINTS: &[&str] = &[
    "rewrite.created",
    "rewrite.building",
    "rewrite.copy_step",
    "rewrite.copied",
    "rewrite.pointer_written",
    "rewrite.switched",
    "rewrite.retired",
    "rewrite.folded_back",
    "rewrite.abandoned",
];

/// The steps of the replaying rewrite (an engine without a side keyspace), for
/// [`run_with_points`].
pub const REPLAY_CRASH_POINTS: &[&str] = &[
    "rewrite.created",
    "rewrite.copy_step",
    "rewrite.copied",
    "rewrite.caught_up",
    "rewrite.final_persisted",
    "rewrite.pointer_written",
    "rewrite.switched",
    "rewrite.retired",
    "rewrite.abandoned",
];

/// Entries the store holds before the child starts (never touched by the child).
const BASE_ENTRIES: u32 = 6_000;
/// Each write `i` deletes the key of write `i - DELETE_LAG`.
const DELETE_LAG: u64 = 100;

fn base_key(i: u32) -> Vec<u8> {
    format!("base{i:06}").into_bytes()
}

fn base_value(i: u32) -> Vec<u8> {
    vec![(i % 251) as u8; 1_500]
}

fn write_key(i: u64) -> Vec<u8> {
    format!("w{i:010}").into_bytes()
}

fn write_value(i: u64) -> Vec<u8> {
    let mut value = i.to_be_bytes().to_vec();
    value.resize(300, (i % 253) as u8);
    value
}

fn kill_points() -> u32 {
    std::env::var("RECLAIM_KILL_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
}

/// The names of the generation directories (`gen-…`) in the store directory `dir`, sorted.
pub fn generation_dirs(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list store")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("gen-"))
        .collect();
    names.sort();
    names
}

/// Runs the kill test of the adapter opened by `open` (and closed by `close`, which must let
/// go of every handle on the directory), crashing it at each of [`CRASH_POINTS`] (a write-once
/// rewrite). `test_name` is the name of the calling test: the test binary runs itself
/// filtered to it as the child.
pub fn run<S, O, C>(test_name: &str, open: O, close: C)
where
    S: KvStore + 'static,
    O: Fn(&Path) -> Result<S, StorageError> + Sync,
    C: Fn(S),
{
    run_with_points(test_name, CRASH_POINTS, open, close);
}

/// [`run`], crashing the child at each of `crash_points` (e.g. [`REPLAY_CRASH_POINTS`]).
pub fn run_with_points<S, O, C>(test_name: &str, crash_points: &[&str], open: O, close: C)
where
    S: KvStore + 'static,
    O: Fn(&Path) -> Result<S, StorageError> + Sync,
    C: Fn(S),
{
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(Path::new(&dir), &open);
    }
    let scratch = tempfile::tempdir().expect("scratch directory");
    let template = scratch.path().join("template");
    {
        let store = open(&template).expect("open the template store");
        let mut batch = WriteBatch::new();
        for i in 0..BASE_ENTRIES {
            batch.put(base_key(i), base_value(i));
        }
        store.write(batch, WriteOptions::DURABLE).expect("fill");
        close(store);
    }
    let exe = std::env::current_exe().expect("the test binary");
    let run_child = |dir: &Path, crash_at: Option<&str>, kill_after: Option<Duration>| -> u64 {
        let mut command = Command::new(&exe);
        command
            .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir)
            .env("RUST_BACKTRACE", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(step) = crash_at {
            command.env(CRASH_AT_ENV, step);
        }
        let mut child = command.spawn().expect("spawn the child");
        let stdout = child.stdout.take().expect("child stdout");
        let reader = std::thread::spawn(move || {
            let mut last = None;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // The first ack shares its line with libtest's `test NAME ... ` (printed
                // without a newline before the test runs): read the ack at the line's end.
                if let Some(n) = line
                    .rsplit_once("ack ")
                    .and_then(|(_, n)| n.parse::<u64>().ok())
                {
                    last = Some(n);
                }
            }
            last
        });
        let deadline = Instant::now() + kill_after.unwrap_or(Duration::from_secs(60));
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let finished_by_itself = matches!(child.try_wait(), Ok(Some(_)));
        child.kill().ok();
        child.wait().ok();
        if crash_at.is_some() {
            assert!(
                finished_by_itself,
                "crash point {crash_at:?} was not reached within a minute (is reclaim-core's `testing` feature on?)"
            );
        }
        reader.join().expect("reader thread").map_or(0, |n| n + 1)
    };
    let check = |dir: &Path, acknowledged: u64, what: &str| {
        let store = open(dir).unwrap_or_else(|e| panic!("{what}: the store does not open: {e}"));
        // Two while a write-once rewrite was interrupted (the frozen one and the one writes go
        // to), until a compaction finishes it (below).
        let generations = generation_dirs(dir).len();
        let building = dir.join(reclaim_core::rewrite::BUILDING_FILE).exists();
        assert!(
            generations <= 1 || (generations == 2 && building),
            "{what}: {generations} generations after open (BUILDING there: {building})"
        );
        for i in (0..BASE_ENTRIES).step_by(7) {
            assert_eq!(
                store.get(&base_key(i)).expect("read"),
                Some(base_value(i)),
                "{what}: base entry {i} lost"
            );
        }
        for i in 0..acknowledged {
            let value = store.get(&write_key(i)).expect("read");
            // Write `i + DELETE_LAG` deleted it; the first unacknowledged write may have landed.
            if i + DELETE_LAG < acknowledged {
                assert!(
                    value.is_none(),
                    "{what}: write {i} came back after its delete"
                );
            } else if i + DELETE_LAG > acknowledged {
                assert!(
                    value == Some(write_value(i)),
                    "{what}: acknowledged write {i} of {acknowledged} lost or changed (found {} bytes)",
                    value.map_or(0, |v| v.len())
                );
            }
        }
        // Nothing beyond the one write that may have been in flight.
        assert_eq!(
            store.get(&write_key(acknowledged + 1)).expect("read"),
            None,
            "{what}: a write that was never made is there"
        );
        // The store still compacts and keeps its data.
        store
            .compact_range(&KeyRange::full())
            .unwrap_or_else(|e| panic!("{what}: compaction after the kill failed: {e}"));
        assert_eq!(store.get(&base_key(1)).expect("read"), Some(base_value(1)));
        let generations = generation_dirs(dir).len();
        assert_eq!(
            generations, 1,
            "{what}: {generations} generations after a compaction"
        );
        for i in 0..acknowledged.saturating_sub(DELETE_LAG + 1) {
            assert_eq!(
                store.get(&write_key(i)).expect("read"),
                None,
                "{what}: write {i} came back after the compaction"
            );
        }
        close(store);
    };
    let mut runs = 0;
    let mut total_acks = 0;
    for (n, step) in crash_points.iter().enumerate() {
        for round in 0..2 {
            let dir = scratch.path().join(format!("crash-{n}-{round}"));
            copy_dir(&template, &dir);
            let acknowledged = run_child(&dir, Some(step), None);
            check(
                &dir,
                acknowledged,
                &format!("crash at {step} (round {round})"),
            );
            std::fs::remove_dir_all(&dir).ok();
            runs += 1;
            total_acks += acknowledged;
        }
    }
    let points = kill_points();
    for k in 0..points {
        let dir = scratch.path().join(format!("kill-{k}"));
        copy_dir(&template, &dir);
        // Spread over the first 2 s of the child's life: open, first rewrites, writes between.
        let delay = Duration::from_millis(50 + u64::from(k) * 1_950 / u64::from(points.max(1)));
        let acknowledged = run_child(&dir, None, Some(delay));
        check(&dir, acknowledged, &format!("SIGKILL after {delay:?}"));
        std::fs::remove_dir_all(&dir).ok();
        runs += 1;
        total_acks += acknowledged;
    }
    eprintln!(
        "rewrite-kill: {runs} kills ({} crash points x2, {points} timed), {total_acks} acknowledged writes checked",
        crash_points.len()
    );
}

/// Every this many compactions of the child, one is stopped before its second step.
const STOPPED_EVERY: u64 = 3;

/// A pacer of 1 MiB steps that stops the compaction before its second step, as a shutdown
/// does ([`StorageError::Interrupted`]): the rewrite must give up and leave the store as if it
/// had not begun. (The first step needs no turn.)
#[derive(Default)]
struct StopBeforeSecondStep(AtomicBool);

impl CompactionPacer for StopBeforeSecondStep {
    fn step_bytes(&self) -> u64 {
        1 << 20
    }

    fn before_step(&self) -> Result<(), StorageError> {
        self.0.store(true, Ordering::SeqCst);
        Err(StorageError::Interrupted {
            operation: "rewrite-kill child's stopped compaction",
        })
    }

    fn stopping(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The child: compactions back to back on one thread (every [`STOPPED_EVERY`]th stopped
/// before its second step), durable acknowledged writes on another.
fn child<S, O>(dir: &Path, open: &O) -> !
where
    S: KvStore + 'static,
    O: Fn(&Path) -> Result<S, StorageError> + Sync,
{
    let store = match open(dir) {
        Ok(store) => std::sync::Arc::new(store),
        Err(e) => {
            eprintln!("child: open failed: {e}");
            std::process::exit(3);
        }
    };
    let compactor = {
        let store = std::sync::Arc::clone(&store);
        std::thread::spawn(move || {
            for n in 1u64.. {
                let compacted = if n % STOPPED_EVERY == 0 {
                    let pacer = StopBeforeSecondStep::default();
                    match store.compact_range_paced(&KeyRange::full(), &pacer) {
                        Err(StorageError::Interrupted { .. }) => Ok(()),
                        other => other,
                    }
                } else {
                    store.compact_range(&KeyRange::full())
                };
                if let Err(e) = compacted {
                    eprintln!("child: compaction failed: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        })
    };
    let mut out = std::io::stdout().lock();
    for i in 0u64.. {
        let mut batch = WriteBatch::new();
        batch.put(write_key(i), write_value(i));
        if i >= DELETE_LAG {
            batch.delete(write_key(i - DELETE_LAG));
        }
        if let Err(e) = store.write(batch, WriteOptions::DURABLE) {
            eprintln!("child: write {i} failed: {e}");
            std::process::exit(4);
        }
        if writeln!(out, "ack {i}").and_then(|()| out.flush()).is_err() {
            std::process::exit(5);
        }
    }
    drop(compactor);
    std::process::exit(0)
}
