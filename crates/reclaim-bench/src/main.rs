//! `reclaim-bench`: runs every measurement and writes `docs/benchmarks.md`.
//!
//! `scripts/bench` runs it with all engines in a release build.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use reclaim::Engine;
use reclaim::pruning::POST_PRUNING_LABEL;
use reclaim::{
    CommitLatencyGate, Compactor, KeyRange, LoadSignal, Pacing, PruningSettings, SingleFlight,
    pruning_executor,
};
use reclaim_bench::{
    Workload, build_chain, build_chain_on, commits_during_compaction, disk_write_bandwidth,
    foreground_cost, idle_commits, prune_cometbft_style, prune_ours, try_enqueue_ns,
};

/// A block committed every this long during the pacing measurements (100 blocks/s of 64 KiB:
/// far above a real chain, well below what the disk absorbs).
const PACED_COMMIT_INTERVAL: Duration = Duration::from_millis(10);
/// Commits measured during runs, and between runs, per mode (p99 is the 10th slowest).
const PACED_SAMPLES: usize = 2000;
/// Slice size of the paced runs.
const PACED_SLICE_BYTES: u64 = 4 << 20;
/// Pause between slices of the paced runs.
const PACED_PAUSE: Duration = Duration::from_millis(20);
/// How long load may hold a paced slice back.
const PACED_MAX_DEFERRAL: Duration = Duration::from_secs(1);
/// The paced store's cap on background compaction I/O, bytes per second (RocksDB's rate
/// limiter; the other engines have no such cap).
const PACED_IO_LIMIT: u64 = 32 << 20;
/// Rounds of section 6: each round measures both modes, in alternating order.
const PACED_ROUNDS: usize = 4;
/// Time allowed per mode over all rounds (a round stops early when it runs out).
const PACED_BUDGET: Duration = Duration::from_secs(120);
/// Where `scripts/scale` writes its node-scale runs (embedded as section 7).
const SCALE_REPORT: &str = "docs/benchmarks-scale.md";

/// Measure reclaim against the limit and against a CometBFT-style baseline.
#[derive(Debug, Parser)]
struct Args {
    /// Engines to measure (default: every engine compiled in).
    #[arg(long, value_delimiter = ',', value_parser = parse_engine)]
    engines: Vec<Engine>,
    /// Chain lengths for the pruning-throughput comparison.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    throughput_heights: Vec<u64>,
    /// Heights of the chain used for the space and foreground figures.
    #[arg(long, default_value_t = 1000)]
    space_heights: u64,
    /// Where the scratch stores live (default: a temporary directory).
    #[arg(long)]
    scratch: Option<PathBuf>,
    /// Run only section 6 (paced against unpaced compaction).
    #[arg(long)]
    pacing_only: bool,
    /// The report to write.
    #[arg(long, default_value = "docs/benchmarks.md")]
    out: PathBuf,
}

fn compiled_engines() -> Vec<Engine> {
    Engine::built().collect()
}

/// An engine this build has, by name.
fn parse_engine(name: &str) -> Result<Engine, String> {
    match Engine::from_name(name) {
        Some(engine) if engine.is_built() => Ok(engine),
        Some(_) => Err(format!(
            "this build has no {name} engine (enable its feature)"
        )),
        None => Err(format!(
            "unknown engine {name:?}; built: {}",
            compiled_engines()
                .iter()
                .map(|e| e.name())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn shell(command: &str) -> String {
    std::process::Command::new("sh")
        .args(["-c", command])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let engines = if args.engines.is_empty() {
        compiled_engines()
    } else {
        args.engines.clone()
    };
    let temp = tempfile::tempdir()?;
    let scratch = args
        .scratch
        .clone()
        .unwrap_or_else(|| temp.path().to_owned());
    std::fs::create_dir_all(&scratch)?;
    let started = Instant::now();
    let mut md = String::new();
    // The program by its name only: a report never carries a path of the machine it ran on.
    let command: Vec<String> = std::env::args()
        .enumerate()
        .map(|(i, arg)| {
            if i == 0 {
                std::path::Path::new(&arg)
                    .file_name()
                    .map_or_else(|| arg.clone(), |n| n.to_string_lossy().into_owned())
            } else {
                arg
            }
        })
        .collect();
    writeln!(md, "# Benchmarks\n")?;
    writeln!(
        md,
        "Written by `{}` (via `scripts/bench`), release build.\n",
        command.join(" ")
    )?;
    writeln!(md, "* date: {}", shell("date -u '+%Y-%m-%d %H:%M UTC'"))?;
    writeln!(
        md,
        "* machine: {} cores, {}, {}",
        shell("nproc"),
        shell("grep MemTotal /proc/meminfo | tr -s ' '"),
        shell("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2")
    )?;
    writeln!(
        md,
        "* disk: {}",
        shell(&format!(
            "df -h {} | tail -1 | tr -s ' '",
            scratch.display()
        ))
    )?;
    writeln!(
        md,
        "* values: incompressible random bytes; every ratio compares two figures measured in this run."
    )?;
    writeln!(
        md,
        "* section 7 is `{SCALE_REPORT}` as `scripts/scale` last wrote it (a run of its own: the commit that last changed that file says on which code); what removing an old generation costs is in `docs/benchmarks-retire.md` (`scripts/retire`).\n"
    )?;

    let mut targets = Targets::default();
    // `--pacing-only` leaves sections 1 to 5 empty (a quick run of section 6).
    let measured_engines = if args.pacing_only {
        Vec::new()
    } else {
        engines.clone()
    };
    let bandwidth = disk_write_bandwidth(&scratch, 256 << 20)?;
    eprintln!("disk bandwidth {:.0} MB/s", bandwidth / 1e6);

    // 1. Pruning throughput.
    writeln!(
        md,
        "## 1. Pruning throughput: ours against CometBFT's way\n"
    )?;
    writeln!(
        md,
        "Each block: 1 part of 4 KiB, meta, commit, seen commit, hash index, validator set every 100 heights, params, response. 90 % of the chain is pruned. *Ours*: range deletes in crash-safe batches of 10 heights (unsynced, one synced write per run), then compaction of the pruned ranges only. *CometBFT-style*: per height a read of hash and meta, point deletes of every key, the base written with each batch of 1000 heights (synced), then a whole-store compaction. Heights/s counts pruning plus compaction.\n"
    )?;
    writeln!(
        md,
        "| engine | heights | ours: prune + compact (s) | CometBFT-style: prune + compact (s) | ours heights/s | baseline heights/s | ratio |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|")?;
    for &engine in &measured_engines {
        for &heights in &args.throughput_heights {
            let workload = Workload {
                heights,
                parts: 1,
                part_bytes: 4096,
            };
            let retain = workload.retain_height();
            let dir = scratch.join(format!("tp-{}-{heights}", engine.name()));
            let ours_chain = build_chain(engine, &dir.join("ours"), workload, 1)?;
            let ours = prune_ours(&ours_chain, retain)?;
            drop(ours_chain);
            let base_chain = build_chain(engine, &dir.join("baseline"), workload, 1)?;
            let baseline = prune_cometbft_style(&base_chain, workload, retain)?;
            drop(base_chain);
            std::fs::remove_dir_all(&dir).ok();
            let pruned = retain - 1;
            let (a, b) = (
                ours.heights_per_second(pruned),
                baseline.heights_per_second(pruned),
            );
            writeln!(
                md,
                "| {} | {heights} | {:.3} + {:.3} | {:.3} + {:.3} | {a:.0} | {b:.0} | **{:.1}×** |",
                engine.name(),
                ours.prune.as_secs_f64(),
                ours.compaction.as_secs_f64(),
                baseline.prune.as_secs_f64(),
                baseline.compaction.as_secs_f64(),
                a / b
            )?;
            eprintln!("throughput {} {heights}: {:.1}x", engine.name(), a / b);
            if Some(&heights) == args.throughput_heights.iter().max() {
                targets.prune_ratio.push((engine, heights, a / b));
            }
        }
    }

    // 2, 3, 5. Space, foreground cost and compaction throughput on a heavier chain.
    let workload = Workload {
        heights: args.space_heights,
        parts: 2,
        part_bytes: 32 << 10,
    };
    let retain = workload.retain_height();
    let mut space_rows = String::new();
    let mut fg_rows = String::new();
    let mut tp_rows = String::new();
    for &engine in &measured_engines {
        let dir = scratch.join(format!("space-{}", engine.name()));
        let fresh = build_chain(engine, &dir.join("fresh"), workload, retain)?;
        fresh.db.compact_range(&KeyRange::full())?;
        let limit = fresh.db.size_on_disk()?.max(1) as f64;
        drop(fresh);
        let chain = build_chain(engine, &dir.join("pruned"), workload, 1)?;
        // The chain was written buffered: a durable (empty) write puts what an engine still
        // holds in memory (redb's write cache) on disk, so the full store is measured as stored.
        chain
            .db
            .write(reclaim::WriteBatch::new(), reclaim::WriteOptions::DURABLE)?;
        let full = chain.db.size_on_disk()?;
        let options = PruningSettings {
            evidence_max_age_heights: 0,
            ..PruningSettings::default()
        };
        let executor = pruning_executor(&chain.blocks, &chain.states, options);
        executor.prune(retain)?;
        let pruned_only = chain.db.size_on_disk()?;
        let started = Instant::now();
        reclaim::compaction::run_task_now(&executor.task_for_heights("bench", 1, retain))?;
        let compaction = started.elapsed();
        let compacted = chain.db.size_on_disk()?;
        writeln!(
            space_rows,
            "| {} | {} | {} | {} | {:.0} | **{:.2}** | {:.2} |",
            engine.name(),
            mib(full),
            mib(pruned_only),
            mib(compacted),
            limit / (1 << 20) as f64,
            compacted as f64 / limit,
            pruned_only as f64 / limit
        )?;
        targets.space.push((engine, compacted as f64 / limit));
        let rewritten = compacted as f64;
        let rate = rewritten / compaction.as_secs_f64().max(1e-9);
        writeln!(
            tp_rows,
            "| {} | {} | {:.3} | {:.0} | {:.0} | {:.2} |",
            engine.name(),
            mib(compacted),
            compaction.as_secs_f64(),
            rate / 1e6,
            bandwidth / 1e6,
            rate / bandwidth
        )?;
        // Foreground: prune the rest of the evidence of work, then commit while compacting.
        let (idle, busy) = foreground_cost(&chain, workload, 200, Duration::from_secs(60))?;
        writeln!(
            fg_rows,
            "| {} | {:.2} / {:.2} | {:.2} / {:.2} (n={}) | {:.2} | {:.2} | {:.1} |",
            engine.name(),
            idle.p50_ms,
            idle.p99_ms,
            busy.p50_ms,
            busy.p99_ms,
            busy.samples,
            busy.p50_ms / idle.p50_ms.max(1e-9),
            busy.p99_ms / idle.p99_ms.max(1e-9),
            busy.max_ms
        )?;
        targets
            .p99_ratio
            .push((engine, busy.p99_ms / idle.p99_ms.max(1e-9), busy.max_ms));
        eprintln!("space/foreground {} done", engine.name());
        drop(chain);
        std::fs::remove_dir_all(&dir).ok();
    }
    writeln!(md, "\n## 2. Space: bytes on disk against the limit\n")?;
    writeln!(
        md,
        "{} heights of 2 × 32 KiB parts, 90 % pruned. The limit is a fresh store holding only the retained heights, compacted (ratio 1.0).\n",
        args.space_heights
    )?;
    writeln!(
        md,
        "| engine | full (MiB) | pruned, not compacted (MiB) | pruned + compacted (MiB) | limit (MiB) | compacted / limit | pruned only / limit |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|")?;
    md.push_str(&space_rows);
    writeln!(
        md,
        "\n## 3. Foreground cost: block commits while a compaction runs\n"
    )?;
    writeln!(
        md,
        "The pruned chain above; each commit saves one block and its state (buffered). *Idle*: no compaction; *compacting*: while a background whole-store compaction runs, repeated until 200 commits were measured or 60 s passed. The longest pause is the slowest commit during compaction.\n"
    )?;
    writeln!(
        md,
        "| engine | idle p50 / p99 (ms) | compacting p50 / p99 (ms) | p50 ratio | p99 ratio | longest pause (ms) |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|")?;
    md.push_str(&fg_rows);

    writeln!(md, "\n## 4. Compactor overhead: `try_enqueue`\n")?;
    writeln!(
        md,
        "Mean wall time per call while the gate is held by a running task (the contended path), threads calling at once; 200,000 calls per thread.\n"
    )?;
    writeln!(md, "| threads | ns per call (per thread) |")?;
    writeln!(md, "|---|---|")?;
    for threads in [1, 2, 8].into_iter().filter(|_| !args.pacing_only) {
        let ns = try_enqueue_ns(threads, 200_000)?;
        if threads == 8 {
            targets.enqueue_ns_8 = ns;
        }
        writeln!(md, "| {threads} | {ns:.0} |")?;
    }

    writeln!(md, "\n## 5. Compaction throughput against the disk\n")?;
    writeln!(
        md,
        "Bytes the compaction leaves (what it had to rewrite: the live data) per second of compaction, against the sequential write bandwidth of the same disk measured in this run (256 MiB written and fsynced).\n"
    )?;
    writeln!(
        md,
        "| engine | live bytes rewritten (MiB) | compaction (s) | rewrite MB/s | disk MB/s | fraction of the limit |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|")?;
    md.push_str(&tp_rows);
    // 6. Paced against unpaced compaction, as the node sees it.
    writeln!(
        md,
        "\n## 6. Paced against unpaced compaction: commit latency and pauses\n"
    )?;
    writeln!(
        md,
        "The chain of section 2, 90 % pruned, twice: one store per mode. Then the post-pruning compaction task (the pruned key ranges) runs in the background over and over while a block is committed every {} ms as a node would (not back to back), each run followed by a quiet gap as long as itself. *Unpaced*: each range in one engine call, the spec's compactor, engine defaults. *Paced*: slices of {} MiB sized by the engine, {} ms pause between slices, slices held back while the moving average of commit latency is above the idle p99 (at most {} s), and compaction's own pace capped at {} MiB/s (`[storage.compaction_pacing] io_bytes_per_sec`: each slice or rewrite step waits until its bytes fit the cap; flushes and commits are never limited). The two modes alternate over {} rounds (unpaced first, then paced first, ...) until each mode has {} commits during runs and as many between runs (or {} s passed), so that a slow spell of this shared machine falls on both. A ratio is the p99 of the commits *during* runs over the p99 of the commits *between* runs of the same mode, pooled over the rounds (in brackets: the lowest and highest ratio of single rounds); *idle p99 before* is 300 commits on the unpaced store before any compaction, for reference. The longest pause is the slowest single commit while a task ran. redb and sled compact by an online rewrite, whose copy steps are paced the same way.\n",
        PACED_COMMIT_INTERVAL.as_millis(),
        PACED_SLICE_BYTES >> 20,
        PACED_PAUSE.as_millis(),
        PACED_MAX_DEFERRAL.as_secs(),
        PACED_IO_LIMIT >> 20,
        PACED_ROUNDS,
        PACED_SAMPLES,
        PACED_BUDGET.as_secs()
    )?;
    writeln!(
        md,
        "| engine | idle p99 before (ms) | unpaced: between / during p99 (ms) | paced: between / during p99 (ms) | unpaced during / between | paced during / between | longest pause unpaced / paced (ms) | compaction unpaced / paced (s) | paced slices |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|")?;
    for &engine in &engines {
        let dir = scratch.join(format!("pace-{}", engine.name()));
        // Each mode gets its own, identical chain: the second mode must not inherit the
        // commits (and the flushes and compactions they cause) of the first.
        let pruned_chain = |mode: &str| -> anyhow::Result<_> {
            let chain = build_chain_on(
                engine.open(&dir.join(mode), &reclaim::OpenOptions::default())?,
                workload,
                1,
            )?;
            let options = PruningSettings {
                evidence_max_age_heights: 0,
                ..PruningSettings::default()
            };
            let executor = pruning_executor(&chain.blocks, &chain.states, options);
            executor.prune(retain)?;
            let task = executor.task_for_heights(POST_PRUNING_LABEL, 1, retain);
            Ok((chain, task))
        };
        let (unpaced_chain, task) = pruned_chain("unpaced")?;
        let (paced_chain, paced_task) = pruned_chain("paced")?;
        let idle = idle_commits(&unpaced_chain, workload, PACED_COMMIT_INTERVAL, 300)?;
        let paced_idle = idle_commits(&paced_chain, workload, PACED_COMMIT_INTERVAL, 300)?;
        let gate = Arc::new(CommitLatencyGate::new(Duration::from_secs_f64(
            paced_idle.p99_ms / 1e3,
        )));
        let pacing = Pacing::unpaced()
            .with_slice_bytes(PACED_SLICE_BYTES)
            .with_pause(PACED_PAUSE)
            .with_load_signal(Arc::clone(&gate) as Arc<dyn LoadSignal>)
            .with_max_deferral(PACED_MAX_DEFERRAL)
            .with_io_limit(PACED_IO_LIMIT);
        let unpaced_compactor = Compactor::new()?;
        let paced_compactor = Compactor::with_pacing(SingleFlight::new(), pacing)?;
        let (mut unpaced, mut paced) = (
            reclaim_bench::CompactionUnderLoad::default(),
            reclaim_bench::CompactionUnderLoad::default(),
        );
        let (mut unpaced_rounds, mut paced_rounds) = (Vec::new(), Vec::new());
        // The modes alternate (unpaced first in even rounds, paced first in odd ones), so a
        // slow spell of the shared disk or CPU falls on both.
        for round in 0..PACED_ROUNDS {
            for paced_turn in [round % 2 == 1, round % 2 == 0] {
                let (chain, compactor, mode_task, load) = if paced_turn {
                    (&paced_chain, &paced_compactor, &paced_task, Some(&*gate))
                } else {
                    (&unpaced_chain, &unpaced_compactor, &task, None)
                };
                let run = commits_during_compaction(
                    chain,
                    workload,
                    compactor,
                    mode_task,
                    load,
                    PACED_COMMIT_INTERVAL,
                    PACED_SAMPLES / PACED_ROUNDS,
                    PACED_BUDGET / PACED_ROUNDS as u32,
                )?;
                let (pooled, rounds) = if paced_turn {
                    (&mut paced, &mut paced_rounds)
                } else {
                    (&mut unpaced, &mut unpaced_rounds)
                };
                rounds.push(run.p99_ratio());
                pooled.absorb(run);
            }
        }
        let spread = |rounds: &[f64]| {
            let min = rounds.iter().copied().fold(f64::INFINITY, f64::min);
            let max = rounds.iter().copied().fold(0.0, f64::max);
            format!("{min:.2}–{max:.2}")
        };
        let (unpaced_during, unpaced_between) = (unpaced.during(), unpaced.between());
        let (paced_during, paced_between) = (paced.during(), paced.between());
        writeln!(
            md,
            "| {} | {:.2} | {:.2} / {:.2} (n={}) | {:.2} / {:.2} (n={}) | {:.2}× ({}) | **{:.2}×** ({}) | {:.1} / {:.1} | {:.2} / {:.2} | {} |",
            engine.name(),
            idle.p99_ms,
            unpaced_between.p99_ms,
            unpaced_during.p99_ms,
            unpaced_during.samples,
            paced_between.p99_ms,
            paced_during.p99_ms,
            paced_during.samples,
            unpaced.p99_ratio(),
            spread(&unpaced_rounds),
            paced.p99_ratio(),
            spread(&paced_rounds),
            unpaced_during.max_ms,
            paced_during.max_ms,
            unpaced.compaction.as_secs_f64() / unpaced.tasks.max(1) as f64,
            paced.compaction.as_secs_f64() / paced.tasks.max(1) as f64,
            paced.slices / paced.tasks.max(1),
        )?;
        targets.paced.push((
            engine,
            paced.p99_ratio(),
            unpaced.p99_ratio(),
            paced_during.max_ms,
        ));
        eprintln!(
            "pacing {}: p99 idle {:.2} unpaced {:.2} paced {:.2}; ratios unpaced {} paced {}",
            engine.name(),
            idle.p99_ms,
            unpaced_during.p99_ms,
            paced_during.p99_ms,
            spread(&unpaced_rounds),
            spread(&paced_rounds),
        );
        drop((unpaced_chain, paced_chain));
        std::fs::remove_dir_all(&dir).ok();
    }
    writeln!(
        md,
        "\nCompaction times are per task run (mean over the repeats); paced times include pauses and waits."
    )?;

    // Section 7 is written by `scripts/scale` (an hour of node-like runs at GiB scale); the
    // report carries its latest output.
    let scale = std::path::Path::new(SCALE_REPORT);
    if scale.exists() {
        let text =
            std::fs::read_to_string(scale).with_context(|| format!("read {}", scale.display()))?;
        writeln!(
            md,
            "\n## 7. At a node's scale: ~100 MiB and ~545 MiB retained, GiB written\n\n{}",
            text.trim_end()
        )?;
    }
    targets.write(&mut md)?;
    writeln!(
        md,
        "\nTotal run time: {:.0} s (section 7 not included).",
        started.elapsed().as_secs_f64()
    )?;
    std::fs::write(&args.out, md).with_context(|| format!("write {}", args.out.display()))?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1 << 20) as f64)
}

/// The targets, checked against this run's figures.
#[derive(Default)]
struct Targets {
    prune_ratio: Vec<(Engine, u64, f64)>,
    space: Vec<(Engine, f64)>,
    p99_ratio: Vec<(Engine, f64, f64)>,
    enqueue_ns_8: f64,
    paced: Vec<(Engine, f64, f64, f64)>,
}

impl Targets {
    fn write(&self, md: &mut String) -> std::fmt::Result {
        let verdict = |ok: bool| if ok { "met" } else { "**missed**" };
        writeln!(md, "\n## Targets\n")?;
        writeln!(md, "| target | measured | verdict |")?;
        writeln!(md, "|---|---|---|")?;
        for &(engine, heights, ratio) in &self.prune_ratio {
            let goal = if engine == Engine::Rocksdb {
                100.0
            } else {
                1.0
            };
            writeln!(
                md,
                "| {} pruning ≥ {goal:.0}× the CometBFT-style baseline at {heights} heights | {ratio:.1}× | {} |",
                engine.name(),
                verdict(ratio >= goal)
            )?;
        }
        for &(engine, ratio) in &self.space {
            writeln!(
                md,
                "| {} space ratio after compaction ≤ 1.2 | {ratio:.2} | {} |",
                engine.name(),
                verdict(ratio <= 1.2)
            )?;
        }
        for &(engine, ratio, pause) in &self.p99_ratio {
            if engine != Engine::Memory {
                writeln!(
                    md,
                    "| {} p99 commit latency while compacting ≤ 1.5× idle | {ratio:.2}× (longest pause {pause:.1} ms) | {} |",
                    engine.name(),
                    verdict(ratio <= 1.5)
                )?;
            }
        }
        for &(engine, paced, unpaced, pause) in &self.paced {
            if engine != Engine::Memory {
                writeln!(
                    md,
                    "| {} p99 commit latency during a compaction ≤ 1.5× between, paced and unpaced | paced {paced:.2}×, unpaced {unpaced:.2}× (longest pause paced {pause:.1} ms) | {} |",
                    engine.name(),
                    verdict(paced <= 1.5 && unpaced <= 1.5)
                )?;
            }
        }
        writeln!(
            md,
            "| `try_enqueue` under 1 µs at 8 threads | {:.0} ns | {} |",
            self.enqueue_ns_8,
            verdict(self.enqueue_ns_8 < 1000.0)
        )?;
        writeln!(
            md,
            "\nWhy the misses happen, and what would close them, is discussed in `docs/benchmarks-notes.md`."
        )?;
        Ok(())
    }
}
