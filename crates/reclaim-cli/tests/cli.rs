//! Runs the built `reclaim` binary: every subcommand, and each refusal.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

fn reclaim() -> Command {
    let mut cmd = Command::cargo_bin("reclaim").unwrap();
    cmd.env_remove("RUST_LOG");
    cmd
}

/// Simulates a small chain into `dir` and returns the report.
fn simulate(dir: &Path, backend: &str, extra: &[&str]) -> Value {
    let retain = if extra.contains(&"--retain") {
        &[][..]
    } else {
        &["--retain", "50"][..]
    };
    let output = reclaim()
        .args([
            "simulate",
            "--json",
            "--backend",
            backend,
            "--heights",
            "300",
        ])
        .args(retain)
        .args([
            "--prune-every",
            "20",
            "--block-kib",
            "8",
            "--compaction-interval",
            "50",
            "--compaction-policy",
            "interval",
            "--dir",
        ])
        .arg(dir)
        .args(extra)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let reports: Value = serde_json::from_slice(&output).unwrap();
    reports[0].clone()
}

fn json(cmd: &mut Command) -> Value {
    let output = cmd
        .arg("--json")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice(&output).unwrap()
}

#[test]
fn simulate_prunes_compacts_and_writes_its_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let report = simulate(
        &dir.path().join("store"),
        "redb",
        &["--out", out.to_str().unwrap()],
    );
    assert_eq!(report["heights_written"], 300);
    assert_eq!(report["heights_pruned"], 250);
    assert_eq!(report["base"], 251);
    assert!(report["compactions_run"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(report["compactions_failed"], 0);
    assert!(
        report["bytes_end"].as_u64().unwrap() > report["bytes_retained_data"].as_u64().unwrap() / 2
    );
    assert!(report["commit_idle"]["samples"].as_u64().unwrap() > 0);
    let csv = std::fs::read_to_string(out.join("timeseries.csv")).unwrap();
    assert!(csv.starts_with("run,seconds,height,base,bytes_on_disk,compactions\n"));
    assert!(csv.lines().count() > 100);
    let svg = std::fs::read_to_string(out.join("bytes_on_disk.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("bytes on disk"));
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(saved[0]["base"], 251);
}

#[test]
fn simulate_commits_on_the_cadence_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let rows = dir.path().join("rows.md");
    // 300 heights at 500 per second: the last commit is due 598 ms after the first (a sleep
    // never ends early, so this bound holds on any machine).
    let report = simulate(
        &dir.path().join("store"),
        "redb",
        &[
            "--blocks-per-sec",
            "500",
            "--table-row",
            rows.to_str().unwrap(),
        ],
    );
    assert_eq!(report["blocks_per_sec"], 500);
    assert!(report["seconds"].as_f64().unwrap() >= 0.598, "{report}");
    assert_eq!(report["heights_written"], 300);
    let row = std::fs::read_to_string(&rows).unwrap();
    assert!(row.contains("| interval, 500 heights/s |"), "{row}");
    reclaim()
        .args(["simulate", "--blocks-per-sec", "0"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("--blocks-per-sec"));
}

#[test]
fn simulate_without_compaction_runs_none_and_compare_shows_both() {
    let dir = tempfile::tempdir().unwrap();
    let report = simulate(&dir.path().join("store"), "redb", &["--no-compact"]);
    assert_eq!(report["compactions_run"], 0);
    reclaim()
        .args([
            "simulate",
            "--compare",
            "--heights",
            "120",
            "--retain",
            "20",
            "--prune-every",
            "20",
        ])
        .args(["--block-kib", "4", "--compaction-interval", "20"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("redb compact")
                .and(predicate::str::contains("redb no-compact")),
        )
        .stdout(predicate::str::contains("end / retained data"));
}

#[test]
fn simulate_logs_the_spec_lines_with_verbose() {
    let dir = tempfile::tempdir().unwrap();
    reclaim()
        .args([
            "-v",
            "simulate",
            "--heights",
            "200",
            "--retain",
            "50",
            "--prune-every",
            "20",
        ])
        .args(["--block-kib", "4", "--compaction-interval", "50"])
        .args(["--compaction-policy", "interval", "--dir"])
        .arg(dir.path().join("store"))
        .assert()
        .success()
        .stderr(predicate::str::contains("compaction_start"))
        .stderr(predicate::str::contains("compaction_done"))
        .stderr(predicate::str::contains(
            "enqueued async database compaction after pruning",
        ));
}

#[test]
fn simulate_refuses_bad_arguments() {
    reclaim()
        .args(["simulate", "--heights", "0"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("--heights").and(predicate::str::contains("not in 1..=")));
    // Sizes that would exhaust memory or wrap around are refused before anything runs.
    for (flag, value) in [
        ("--block-kib", "18446744073709551615"),
        ("--block-kib", "9007199254740992"),
        ("--slice-kib", "18014398509481984"),
        ("--io-limit-mib", "0"),
        ("--slice-pause-ms", "99999999999"),
    ] {
        reclaim()
            .args(["simulate", flag, value])
            .assert()
            .failure()
            .stderr(predicate::str::contains(flag));
    }
    reclaim()
        .args(["simulate", "--block-jitter", "1.5"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("--block-jitter"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("precious"), b"x").unwrap();
    reclaim()
        .args(["simulate", "--dir"])
        .arg(dir.path())
        .assert()
        .failure()
        .stderr(predicate::str::contains("not empty"));
    assert_eq!(std::fs::read(dir.path().join("precious")).unwrap(), b"x");
}

#[test]
fn inspect_prune_and_compact_an_existing_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    simulate(&store, "redb", &["--no-compact", "--retain", "250"]);
    let info = json(reclaim().arg("inspect").arg(&store));
    assert_eq!(info["backend"], "redb");
    assert_eq!(
        (info["block_base"].as_u64(), info["block_height"].as_u64()),
        (Some(51), Some(300))
    );
    let parts = info["families"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["family"] == "block parts")
        .unwrap();
    assert_eq!(parts["keys"], 250);
    // simulate set the application's retain height as it pruned; nothing was left behind.
    assert_eq!(info["retain_application"], 51);
    assert_eq!(info["retain_effective"], 51);
    assert_eq!(info["retain_companion"], Value::Null);
    assert_eq!(info["leftovers_below_base"], 0);

    let dry = json(
        reclaim()
            .args(["prune", "--retain-height", "200", "--dry-run"])
            .arg(&store),
    );
    assert_eq!(
        (dry["heights_pruned"].as_u64(), dry["base_after"].as_u64()),
        (Some(149), Some(200))
    );
    assert_eq!(
        json(reclaim().arg("inspect").arg(&store))["block_base"],
        51,
        "a dry run changed the store"
    );

    let pruned = json(
        reclaim()
            .args(["prune", "--retain-height", "200"])
            .arg(&store),
    );
    assert_eq!(
        (
            pruned["heights_pruned"].as_u64(),
            pruned["base_after"].as_u64()
        ),
        (Some(149), Some(200))
    );
    let after_prune = json(reclaim().arg("inspect").arg(&store));
    assert_eq!(after_prune["block_base"], 200);
    // 149 of 250 heights pruned: redb's estimate (read-only) sees the freed pages.
    let on_disk = after_prune["bytes_on_disk"].as_u64().unwrap();
    let live = after_prune["bytes_live"].as_u64().unwrap();
    let reclaimable = after_prune["bytes_estimated_reclaimable"].as_u64().unwrap();
    assert!(live > 0 && live < on_disk, "{after_prune}");
    assert!(reclaimable > 0 && reclaimable < on_disk, "{after_prune}");
    reclaim()
        .arg("inspect")
        .arg(&store)
        .assert()
        .success()
        .stdout(
            predicate::str::contains("live data").and(predicate::str::contains(
                "by `reclaim compact` (the engine's estimate)",
            )),
        );

    reclaim()
        .arg("compact")
        .arg(&store)
        .assert()
        .success()
        .stdout(
            predicate::str::contains("bytes on disk").and(predicate::str::contains("reclaimed")),
        );
    let compacted = json(reclaim().arg("inspect").arg(&store));
    let on_disk_after = compacted["bytes_on_disk"].as_u64().unwrap();
    let reclaimable_after = compacted["bytes_estimated_reclaimable"].as_u64().unwrap();
    assert!(on_disk_after < on_disk, "{compacted}");
    assert!(reclaimable_after < reclaimable, "{compacted}");
    let compacted = json(
        reclaim()
            .args(["compact", "--from", "P:", "--to", "0x513a"])
            .arg(&store),
    );
    assert_eq!(compacted["range"], "[P:, Q:)");
    reclaim()
        .args(["prune", "--retain-height", "250"])
        .arg(&store)
        .assert()
        .success()
        .stdout(predicate::str::contains("pruned 50 block heights"));
}

#[test]
fn bad_requests_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    simulate(&store, "redb", &["--no-compact"]);
    let before = json(reclaim().arg("inspect").arg(&store));
    reclaim()
        .args(["prune", "--retain-height", "301"])
        .arg(&store)
        .assert()
        .failure()
        .stderr(predicate::str::contains("above the chain's height 300"));
    reclaim()
        .args(["prune", "--retain-height", "0"])
        .arg(&store)
        .assert()
        .failure()
        .stderr(predicate::str::contains("heights start at 1"));
    reclaim()
        .args(["compact", "--from", "b", "--to", "a"])
        .arg(&store)
        .assert()
        .failure()
        .stderr(predicate::str::contains("reversed key range"));
    reclaim()
        .args(["compact", "--from", "0xabc"])
        .arg(&store)
        .assert()
        .failure()
        .stderr(predicate::str::contains("odd number"));
    reclaim()
        .args(["inspect", "--backend", "sled"])
        .arg(&store)
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "holds a redb store, not a sled store",
        ));
    reclaim()
        .arg("inspect")
        .arg(dir.path().join("missing"))
        .assert()
        .failure()
        .stderr(predicate::str::contains("does not exist"));
    let foreign = dir.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    reclaim()
        .arg("prune")
        .arg(&foreign)
        .args(["--retain-height", "5"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("not a reclaim store"));
    assert_eq!(json(reclaim().arg("inspect").arg(&store)), before);
}

#[test]
fn a_store_held_by_a_running_node_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    simulate(&store, "redb", &["--no-compact"]);
    let _node = reclaim::redb::RedbStore::open(&store).unwrap();
    for args in [
        vec!["inspect"],
        vec!["compact"],
        vec!["prune", "--retain-height", "100"],
    ] {
        reclaim().args(&args).arg(&store).assert().failure().stderr(
            predicate::str::contains("in use by another process")
                .and(predicate::str::contains("nothing was changed")),
        );
    }
}

/// Without a policy named, compaction is space-aware: a small store whose engine estimates
/// far less than 64 MiB reclaimable is pruned but never compacted.
#[test]
fn the_default_policy_compacts_only_for_space() {
    let dir = tempfile::tempdir().unwrap();
    let output = reclaim()
        .args(["simulate", "--json", "--heights", "300", "--retain", "50"])
        .args(["--prune-every", "20", "--block-kib", "8", "--dir"])
        .arg(dir.path().join("store"))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let report: Value = serde_json::from_slice(&output).unwrap();
    assert_eq!(report[0]["policy"], "space", "{report}");
    assert_eq!(report[0]["heights_pruned"], 250, "{report}");
    assert_eq!(report[0]["compactions_run"], 0, "{report}");
}

#[test]
fn config_files_are_read_and_unknown_keys_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[storage]\ncompaction_interval = 25\ncompaction_policy = \"interval\"\n\
         discard_abci_responses = true\n",
    )
    .unwrap();
    let report: Value = serde_json::from_slice(
        &reclaim()
            .arg("--config")
            .arg(&good)
            .args([
                "simulate",
                "--json",
                "--heights",
                "200",
                "--retain",
                "50",
                "--prune-every",
                "25",
                "--block-kib",
                "4",
                // 625 ms between prunes: each compaction (tens of ms) ends before the
                // next is due, so the count below does not hang on the machine's load.
                "--blocks-per-sec",
                "40",
            ])
            .assert()
            .success()
            .get_output()
            .stdout,
    )
    .unwrap();
    // The file's interval policy was read: every prune after the first 50 heights asks
    // for a compaction (six of them), and most run rather than meet one still running.
    assert_eq!(report[0]["policy"], "interval", "{report}");
    let run = report[0]["compactions_run"].as_u64().unwrap();
    let skipped = report[0]["compactions_skipped"].as_u64().unwrap();
    assert_eq!(run + skipped, 6, "{report}");
    assert!(run >= 3, "{report}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[storage.pruning]\ncompact = true\n").unwrap();
    reclaim()
        .arg("--config")
        .arg(&bad)
        .args(["simulate"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("unknown field").and(predicate::str::contains("compact")));
}

#[cfg(feature = "sled")]
#[test]
fn sled_stores_work_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let report = simulate(&store, "sled", &[]);
    assert_eq!(report["base"], 251);
    assert_eq!(
        json(reclaim().arg("inspect").arg(&store))["backend"],
        "sled"
    );
    reclaim().arg("compact").arg(&store).assert().success();
}

#[cfg(feature = "rocksdb")]
#[test]
fn rocksdb_stores_work_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let report = simulate(&store, "rocksdb", &[]);
    assert_eq!(report["base"], 251);
    assert_eq!(
        json(reclaim().arg("inspect").arg(&store))["backend"],
        "rocksdb"
    );
    reclaim()
        .args(["prune", "--retain-height", "280"])
        .arg(&store)
        .assert()
        .success();
}

#[cfg(feature = "rocksdb")]
#[test]
fn simulate_caps_compaction_pace_without_throttling_rocksdb_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let (capped, plain) = (dir.path().join("capped"), dir.path().join("plain"));
    let report = simulate(&capped, "rocksdb", &["--io-limit-mib", "64"]);
    assert_eq!(report["io_bytes_per_sec"], 64 << 20);
    assert_eq!(report["base"], 251);
    assert_eq!(report["compactions_failed"], 0);
    assert!(report["compactions_run"].as_u64().unwrap() >= 1, "{report}");
    assert!(simulate(&plain, "rocksdb", &[])["io_bytes_per_sec"].is_null());
    // RocksDB records its options in its LOG: the cap paces compaction's slices, and never
    // installs RocksDB's rate limiter (which throttles flushes too and stalled writes).
    let limiter = |store: &Path| {
        let log = std::fs::read_to_string(store.join("LOG")).unwrap();
        let line = log.lines().find(|l| l.contains("Options.rate_limiter:"));
        line.is_some_and(|l| !l.contains("(nil)"))
    };
    assert!(!limiter(&capped));
    assert!(!limiter(&plain));
}

/// `[storage.pruning]` run bounds make each run stop early; `reclaim prune` keeps running them
/// until the asked height is reached, instead of stopping at the first bound without a word.
#[test]
fn prune_reaches_the_asked_height_through_bounded_runs() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    simulate(&store, "redb", &["--no-compact", "--retain", "290"]);
    let config = dir.path().join("bounded.toml");
    std::fs::write(
        &config,
        "[storage.pruning]\nmax_heights_per_run = 7\nmax_run_time = \"1ms\"\n",
    )
    .unwrap();
    let pruned = json(
        reclaim()
            .arg("--config")
            .arg(&config)
            .args(["prune", "--retain-height", "250"])
            .arg(&store),
    );
    assert_eq!(pruned["base_after"], 250, "{pruned}");
    assert_eq!(
        json(reclaim().arg("inspect").arg(&store))["block_base"],
        250
    );
}

/// An enabled data companion holds pruning back: asking past its retain height is refused and
/// changes nothing.
#[test]
fn prune_never_passes_the_data_companions_retain_height() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    simulate(&store, "redb", &["--no-compact", "--retain", "290"]);
    let before = json(reclaim().arg("inspect").arg(&store));
    let config = dir.path().join("companion.toml");
    std::fs::write(
        &config,
        "[storage.pruning.data_companion]\nenabled = true\ninitial_block_retain_height = 120\n",
    )
    .unwrap();
    reclaim()
        .arg("--config")
        .arg(&config)
        .args(["prune", "--retain-height", "200"])
        .arg(&store)
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "above the data companion's retain height 120",
        ));
    assert_eq!(json(reclaim().arg("inspect").arg(&store)), before);
    let pruned = json(
        reclaim()
            .arg("--config")
            .arg(&config)
            .args(["prune", "--retain-height", "120"])
            .arg(&store),
    );
    assert_eq!(pruned["base_after"], 120);
}

/// SIGINT and SIGTERM during `simulate` end the run between two heights and remove its
/// temporary store: nothing is left behind in the temporary directory.
#[test]
fn a_signal_during_simulate_removes_its_temporary_store() {
    for signal in ["-INT", "-TERM"] {
        let tmp = tempfile::tempdir().unwrap();
        let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("reclaim"))
            .args(["simulate", "--heights", "100000000", "--block-kib", "1"])
            .env("TMPDIR", tmp.path())
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until the run has created its store, then signal it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::fs::read_dir(tmp.path()).unwrap().next().is_none() {
            assert!(std::time::Instant::now() < deadline, "no store was created");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        let status = std::process::Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{signal}: exited 0");
        assert!(
            stderr.contains("interrupted by a signal"),
            "{signal}: {stderr}"
        );
        let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert!(left.is_empty(), "{signal}: left behind {left:?}");
    }
}

/// A paced compaction held back by a time window the clock is outside of: `simulate` says so
/// and ends at once instead of sitting silent for minutes; the wait itself is logged.
#[test]
fn a_compaction_waiting_for_a_window_is_reported_not_waited_out() {
    let dir = tempfile::tempdir().unwrap();
    let now_hour = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 3600
        % 24;
    let (from, to) = ((now_hour + 2) % 24, (now_hour + 3) % 24);
    let config = dir.path().join("windows.toml");
    std::fs::write(
        &config,
        format!("[storage.compaction_pacing]\nwindows = [\"{from:02}:00-{to:02}:00\"]\n"),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let output = reclaim()
        .arg("--config")
        .arg(&config)
        .args(["-v", "simulate", "--heights", "300", "--retain", "50"])
        .args(["--block-kib", "4", "--compaction-interval", "50"])
        .args(["--compaction-policy", "interval"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("compaction_wait"), "{stderr}");
    assert!(stderr.contains("outside_time_windows"), "{stderr}");
    assert!(stderr.contains("waits for a compaction window"), "{stderr}");
    assert!(started.elapsed() < std::time::Duration::from_secs(120));
}

/// Every file under a store, with its bytes and modification time.
fn snapshot_files(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
                out.push((path.clone(), std::fs::read(&path).unwrap(), modified));
            }
        }
    }
    out.sort();
    out
}

/// `inspect` and `prune --dry-run` are looks: not one byte of the store changes, and they
/// work beside another reader (a shared lock).
#[test]
fn inspect_and_dry_runs_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    simulate(&store, "redb", &["--no-compact"]);
    let before = snapshot_files(&store);
    let _other_reader = reclaim::Engine::Redb.open_read_only(&store).unwrap();
    json(reclaim().arg("inspect").arg(&store));
    let dry = json(
        reclaim()
            .args(["prune", "--retain-height", "280", "--dry-run"])
            .arg(&store),
    );
    assert_eq!(dry["base_after"], 280);
    assert!(
        snapshot_files(&store) == before,
        "a read-only command changed the store's files"
    );
}

/// Messages say each cause once, name the path, and carry no colour codes off a terminal;
/// a report on a store whose path is not UTF-8 is written after the work, never failing it.
#[test]
fn messages_are_plain_and_name_what_failed() {
    let output = reclaim()
        .args([
            "--config",
            "/nonexistent/reclaim.toml",
            "inspect",
            "/nonexistent/store",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("/nonexistent/reclaim.toml"), "{stderr}");
    assert_eq!(stderr.matches("os error 2").count(), 1, "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "colour codes off a terminal: {stderr:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let name = std::ffi::OsStr::from_bytes(b"store-\xff");
    let store = dir.path().join(name);
    simulate(&store, "redb", &["--no-compact", "--retain", "290"]);
    let output = reclaim()
        .args(["--json", "prune", "--retain-height", "20"])
        .arg(&store)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["base_after"], 20);
    assert!(report["dir"].as_str().unwrap().contains("store-\u{fffd}"));
}
