//! `retire`: what removing an old generation costs a node's commits, and what removing it in
//! steps buys. Writes `docs/benchmarks-retire.md` (`scripts/retire` runs it in release mode).
//!
//! A prober stands in for the node: it overwrites 4 KiB of its own file and `fdatasync`s it
//! every 5 ms, and each sync's latency is recorded. Meanwhile a generation directory holding one
//! large file (written and synced beforehand, as the old generation of an online rewrite is) is
//! removed three ways, by [`GenerationLayout`] itself: at once (`remove`), in the online
//! rewrite's earlier steps (32 MiB, 5 ms pauses) and in its current default steps
//! ([`RewriteSettings`]). The modes take turns over the rounds so that a slow spell of a shared
//! disk falls on each.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use rand::RngCore;
use reclaim::rewrite::{GenerationLayout, RewriteSettings};
use reclaim_bench::Latency;

/// The prober's period.
const PROBE_EVERY: Duration = Duration::from_millis(5);
/// Prober samples taken before each removal (the "before" column).
const QUIET_BEFORE: Duration = Duration::from_secs(2);
/// The removal's window is held open this long after it returns: the journal commits that
/// free the blocks may come after the last call.
const SETTLE_AFTER: Duration = Duration::from_secs(1);

/// Measure the removal of a large old generation against an fsync prober.
#[derive(Debug, Parser)]
struct Args {
    /// Size of the generation's file, MiB.
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// Rounds; each removes one generation per mode.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Where the generations and the prober's file live (default: a temporary directory in
    /// the current directory, so on the file system a store would use).
    #[arg(long)]
    scratch: Option<PathBuf>,
    /// More step sizes to try, as `MIB:PAUSE_MS` (e.g. `--try 4:20,1:10`).
    #[arg(long = "try", value_delimiter = ',', value_parser = parse_steps)]
    extra: Vec<(u64, u64)>,
    /// The Markdown report to write.
    #[arg(long, default_value = "docs/benchmarks-retire.md")]
    out: PathBuf,
}

/// One way of removing a generation.
#[derive(Debug, Clone)]
struct Mode {
    label: String,
    /// `None`: at once.
    steps: Option<(u64, Duration)>,
}

/// Latencies of the prober's syncs, milliseconds.
#[derive(Debug, Default)]
struct Samples {
    before: Vec<f64>,
    during: Vec<f64>,
    removal_secs: Vec<f64>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.size_mib > 0, "--size-mib must be at least 1");
    anyhow::ensure!(args.rounds > 0, "--rounds must be at least 1");
    let defaults = RewriteSettings::default();
    let mut modes = vec![
        Mode {
            label: "at once".into(),
            steps: None,
        },
        Mode {
            label: "32 MiB steps, 5 ms pauses (the earlier default)".into(),
            steps: Some((32 << 20, Duration::from_millis(5))),
        },
        Mode {
            label: format!(
                "default: {} MiB steps, {} ms pauses",
                defaults.retire_step_bytes >> 20,
                defaults.retire_step_pause.as_millis()
            ),
            steps: Some((defaults.retire_step_bytes, defaults.retire_step_pause)),
        },
    ];
    modes.extend(args.extra.iter().map(|&(mib, pause_ms)| Mode {
        label: format!("{mib} MiB steps, {pause_ms} ms pauses"),
        steps: Some((mib << 20, Duration::from_millis(pause_ms))),
    }));
    let scratch = match &args.scratch {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir_in("."),
    }
    .context("create the scratch directory")?;
    let layout = GenerationLayout::new(scratch.path());
    let mut samples: Vec<Samples> = modes.iter().map(|_| Samples::default()).collect();
    let started = Instant::now();
    let mut generation = 0u64;
    for round in 0..args.rounds {
        for turn in 0..modes.len() {
            let index = (round + turn) % modes.len();
            let mode = &modes[index];
            generation += 1;
            eprintln!("retire: round {round}, {}", mode.label);
            write_generation(&layout, generation, args.size_mib)?;
            measure(
                scratch.path(),
                &layout,
                generation,
                mode,
                &mut samples[index],
            )?;
        }
    }
    let report = render(&args, &modes, &samples, scratch.path(), started.elapsed())?;
    std::fs::write(&args.out, report).with_context(|| format!("write {}", args.out.display()))?;
    eprintln!("retire: wrote {}", args.out.display());
    Ok(())
}

/// Parses `MIB:PAUSE_MS`.
fn parse_steps(text: &str) -> Result<(u64, u64), String> {
    let (mib, pause) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?}: expected MIB:PAUSE_MS"))?;
    let mib: u64 = mib.parse().map_err(|e| format!("{text:?}: {e}"))?;
    let pause: u64 = pause.parse().map_err(|e| format!("{text:?}: {e}"))?;
    if mib == 0 || mib > 1 << 20 || pause > 60_000 {
        return Err(format!(
            "{text:?}: steps of 1 MiB to 1 TiB, pauses of at most 60,000 ms"
        ));
    }
    Ok((mib, pause))
}

/// Writes generation `number` as one file of `size_mib` MiB of random bytes, synced.
fn write_generation(layout: &GenerationLayout, number: u64, size_mib: u64) -> anyhow::Result<()> {
    let dir = layout.dir(number);
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let path = dir.join("data");
    let mut file = File::create(&path).with_context(|| format!("create {}", path.display()))?;
    let mut chunk = vec![0u8; 1 << 20];
    rand::rng().fill_bytes(&mut chunk);
    for _ in 0..size_mib {
        file.write_all(&chunk)
            .with_context(|| format!("write {}", path.display()))?;
    }
    file.sync_all()
        .with_context(|| format!("sync {}", path.display()))?;
    Ok(())
}

/// Removes generation `number` the way `mode` says while the prober runs; records the
/// prober's latencies before and during the removal.
fn measure(
    scratch: &Path,
    layout: &GenerationLayout,
    number: u64,
    mode: &Mode,
    samples: &mut Samples,
) -> anyhow::Result<()> {
    let probe_path = scratch.join("probe");
    let probe = File::create(&probe_path).context("create the prober's file")?;
    let during = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let prober = {
        let during = Arc::clone(&during);
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || -> std::io::Result<(Vec<f64>, Vec<f64>)> {
            let (mut before, mut while_removing) = (Vec::new(), Vec::new());
            let page = [7u8; 4096];
            let mut offset = 0u64;
            while !stop.load(Ordering::Acquire) {
                probe.write_all_at(&page, offset)?;
                offset = (offset + 4096) % (1 << 20);
                let synced = Instant::now();
                probe.sync_data()?;
                let ms = synced.elapsed().as_secs_f64() * 1e3;
                if during.load(Ordering::Acquire) {
                    while_removing.push(ms);
                } else {
                    before.push(ms);
                }
                std::thread::sleep(PROBE_EVERY);
            }
            Ok((before, while_removing))
        })
    };
    std::thread::sleep(QUIET_BEFORE);
    during.store(true, Ordering::Release);
    let removing = Instant::now();
    let removed = match mode.steps {
        None => layout.remove(number),
        Some((step, pause)) => layout.remove_gradually(number, step, pause, &|| false),
    };
    let removal = removing.elapsed();
    std::thread::sleep(SETTLE_AFTER);
    stop.store(true, Ordering::Release);
    let probed = prober
        .join()
        .map_err(|_| anyhow::anyhow!("the prober panicked"))?;
    removed.context("remove the generation")?;
    let (before, while_removing) = probed.context("the prober's write or sync failed")?;
    samples.before.extend(before);
    samples.during.extend(while_removing);
    samples.removal_secs.push(removal.as_secs_f64());
    std::fs::remove_file(&probe_path).context("remove the prober's file")?;
    Ok(())
}

/// The file system type and mount options of the mount holding `dir` (no paths: a report
/// never names the machine's directories).
fn file_system_of(dir: &Path) -> String {
    let Ok(dir) = dir.canonicalize() else {
        return "unknown".into();
    };
    let Ok(mounts) = std::fs::read_to_string("/proc/mounts") else {
        return "unknown".into();
    };
    mounts
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.len() >= 4 && dir.starts_with(fields[1]))
                .then(|| (fields[1].len(), format!("{} ({})", fields[2], fields[3])))
        })
        .max_by_key(|(depth, _)| *depth)
        .map_or_else(|| "unknown".into(), |(_, fs)| fs)
}

fn render(
    args: &Args,
    modes: &[Mode],
    samples: &[Samples],
    scratch: &Path,
    took: Duration,
) -> anyhow::Result<String> {
    let mut md = String::new();
    writeln!(
        md,
        "# Removing an old generation: what it costs the node's commits"
    )?;
    writeln!(md)?;
    writeln!(
        md,
        "Generated by `scripts/retire` (release build); do not edit by hand. An online rewrite (redb, sled) ends by removing the old generation, as large as the live data. Here a generation of one {} MiB file (written and synced first) is removed {} times per mode while a prober overwrites 4 KiB of its own file and `fdatasync`s it every {} ms, as a node's commit would. *Before*: the prober's syncs in the {} s before the removal; *during*: from the removal's start to {} s after it returns (the journal may free the blocks after the last call). The modes take turns, so a slow spell of the shared disk falls on each; every figure pools the rounds. File system: {}.",
        args.size_mib,
        args.rounds,
        PROBE_EVERY.as_millis(),
        QUIET_BEFORE.as_secs(),
        SETTLE_AFTER.as_secs(),
        file_system_of(scratch),
    )?;
    writeln!(md)?;
    writeln!(
        md,
        "| removal | took (s, per round) | sync p50 / p99 / longest during (ms) | before (ms) | syncs during |"
    )?;
    writeln!(md, "|---|---|---|---|---|")?;
    for (mode, s) in modes.iter().zip(samples) {
        let took: Vec<String> = s.removal_secs.iter().map(|t| format!("{t:.2}")).collect();
        let (during, before) = (Latency::of(s.during.clone()), Latency::of(s.before.clone()));
        writeln!(
            md,
            "| {} | {} | {:.1} / {:.1} / {:.1} | {:.1} / {:.1} / {:.1} | {} |",
            mode.label,
            took.join(", "),
            during.p50_ms,
            during.p99_ms,
            during.max_ms,
            before.p50_ms,
            before.p99_ms,
            before.max_ms,
            during.samples,
        )?;
    }
    writeln!(md)?;
    writeln!(md, "Total run time: {:.0} s.", took.as_secs_f64())?;
    Ok(md)
}
