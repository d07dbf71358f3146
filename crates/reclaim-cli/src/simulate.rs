//! `reclaim simulate`: a node-like workload on a real store, pruned on an interval and
//! compacted in the background, with the figures that show what compaction buys.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use reclaim::{
    BackgroundPruner, BlockStore, Compactor, KeyRange, KvReadExt, KvStore, PruningSettings,
    RetainHeights, ScanOrder, SingleFlight, StateStore, StateStoreOptions, StorageConfig,
    WriteOptions, pruning_executor,
};
use reclaim_workload::{ChainShape, Latency};
use serde::Serialize;

use crate::backend::{engine_parser, serialize_engine};
use reclaim::Engine;

/// CometBFT's block part size.
const PART_BYTES: usize = 64 << 10;

/// A commit at least this slow is logged (debug level) with its height.
const SLOW_COMMIT_MS: f64 = 40.0;

/// Options of `reclaim simulate`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Engine to run on.
    #[arg(long, value_parser = engine_parser(), default_value = "redb")]
    pub backend: Engine,
    /// Store directory (default: a temporary directory removed at the end).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Heights to commit (1 to 100,000,000).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub heights: u64,
    /// Heights kept below the tip (the retain window; at least 1).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    pub retain: u64,
    /// Prune every this many committed heights (at least 1).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub prune_every: u64,
    /// Mean block size in KiB (incompressible bytes, split in 64 KiB parts; 1 to 102,400, which
    /// is CometBFT's 100 MiB block size limit).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=102_400))]
    pub block_kib: u64,
    /// Block sizes vary uniformly by ± this fraction of the mean.
    #[arg(long, default_value_t = 0.5)]
    pub block_jitter: f64,
    /// Validator set changes every this many heights (at least 1).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    pub validator_change_every: u64,
    /// Pruned heights between compactions (default: the config's `compaction_interval`, 1000
    /// as in CometBFT; at least 1).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub compaction_interval: Option<u64>,
    /// When compaction runs: `space` (the default: at most every `--compaction-interval` pruned
    /// heights, and only when the engines estimate enough reclaimable space) or `interval`
    /// (CometBFT's, every `--compaction-interval` pruned heights); overrides `[storage]
    /// compaction_policy`.
    #[arg(long, value_parser = ["interval", "space"])]
    pub compaction_policy: Option<String>,
    /// Commit at most this many heights per second, on a fixed schedule (a node's cadence; a
    /// commit that falls behind goes at once, without a burst to catch up). Default: back to
    /// back, as fast as the engine takes them (1 to 100,000).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub blocks_per_sec: Option<u64>,
    /// Run without compaction, to see what pruning alone does to the disk.
    #[arg(long)]
    pub no_compact: bool,
    /// Run twice, with and without compaction, and show both side by side.
    #[arg(long, conflicts_with = "no_compact")]
    pub compare: bool,
    /// Write timeseries.csv, report.json and bytes_on_disk.svg into this directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Append one Markdown table row per run to this file (engine, policy, pacing, retained
    /// and written bytes, steady-state disk over retained data, commit latencies, compactions):
    /// how `scripts/scale` builds its report.
    #[arg(long)]
    pub table_row: Option<PathBuf>,
    /// Append one tab-separated line per run to this file, the commit latencies (ms) that
    /// `scripts/scale` holds against the targets: engine, steady-state idle p99 and count,
    /// steady-state p99, longest and count during compaction, longest during compaction and
    /// longest idle over the whole run.
    #[arg(long)]
    pub latency_tsv: Option<PathBuf>,
    /// Seed of the workload's random bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Pace compaction in slices of this many KiB (overrides
    /// `[storage.compaction_pacing] slice_bytes`; 0: unpaced; at most 1 TiB).
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=1 << 30))]
    pub slice_kib: Option<u64>,
    /// Pause between compaction slices in milliseconds (overrides
    /// `[storage.compaction_pacing] pause`; at most an hour).
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=3_600_000))]
    pub slice_pause_ms: Option<u64>,
    /// Cap compaction's own pace at this many MiB of engine data per second, on every engine
    /// (overrides `[storage.compaction_pacing] io_bytes_per_sec`; 1 to 1,048,576).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub io_limit_mib: Option<u64>,
    /// Heights each store prunes per run at most (overrides
    /// `[storage.pruning] max_heights_per_run`; at least 1).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_heights_per_run: Option<u64>,
    /// Serve Prometheus metrics at http://ADDR/metrics while running (loopback only, e.g.
    /// 127.0.0.1:9464).
    #[arg(long)]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Keep serving metrics this many seconds after the run ends (for a last scrape; at most an
    /// hour).
    #[arg(long, default_value_t = 0, requires = "metrics_addr", value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub metrics_linger_secs: u64,
}

/// One point of the time series.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sample {
    /// Seconds since the start.
    pub seconds: f64,
    /// Height committed.
    pub height: u64,
    /// Block store base.
    pub base: u64,
    /// Bytes on disk.
    pub bytes_on_disk: u64,
    /// Compactions finished so far.
    pub compactions: u64,
}

/// The result of one simulation run.
#[derive(Debug, Clone, Serialize)]
pub struct SimulationReport {
    /// Engine.
    #[serde(serialize_with = "serialize_engine")]
    pub backend: Engine,
    /// Whether compaction ran.
    pub compaction: bool,
    /// The compaction policy in force (`off`, `interval` or `space`).
    pub policy: &'static str,
    /// The cap on compaction's own pace, bytes per second, when one was set (`--io-limit-mib`,
    /// `[storage.compaction_pacing] io_bytes_per_sec`).
    pub io_bytes_per_sec: Option<u64>,
    /// The commit cadence, heights per second (`--blocks-per-sec`); `None`: back to back.
    pub blocks_per_sec: Option<u64>,
    /// Heights committed.
    pub heights_written: u64,
    /// Heights pruned.
    pub heights_pruned: u64,
    /// Final base.
    pub base: u64,
    /// Prune calls made.
    pub prunes: u64,
    /// Compactions run.
    pub compactions_run: u64,
    /// Compactions skipped (busy).
    pub compactions_skipped: u64,
    /// Compactions failed.
    pub compactions_failed: u64,
    /// Compaction slices run (one per range when unpaced).
    pub compaction_slices: u64,
    /// The longest single compaction slice, milliseconds.
    pub longest_slice_ms: f64,
    /// Background pruning runs (bounded runs count one each).
    pub pruner_runs: u64,
    /// Wake-ups of the pruner merged into one already pending.
    pub pruner_wakeups_merged: u64,
    /// Bytes on disk of the empty store.
    pub bytes_start: u64,
    /// Largest bytes on disk seen.
    pub bytes_peak: u64,
    /// Bytes on disk at the end.
    pub bytes_end: u64,
    /// Bytes of the retained keys and values alone.
    pub bytes_retained_data: u64,
    /// `bytes_end / bytes_retained_data`.
    pub end_over_retained: f64,
    /// The steady state is measured from this height on: the second half of the run, and
    /// never before the retain window has filled.
    pub steady_from_height: u64,
    /// Mean bytes on disk over the steady state's samples (0 without samples).
    pub bytes_steady_mean: u64,
    /// Largest bytes on disk over the steady state's samples.
    pub bytes_steady_peak: u64,
    /// `bytes_steady_mean / bytes_retained_data`.
    pub steady_mean_over_retained: f64,
    /// `bytes_steady_peak / bytes_retained_data`.
    pub steady_peak_over_retained: f64,
    /// Commit latency while no compaction was in flight.
    pub commit_idle: Latency,
    /// Commit latency while a compaction was in flight.
    pub commit_during_compaction: Latency,
    /// Commit latency over the steady state (heights from `steady_from_height`, pruning
    /// running) while no compaction was in flight: the baseline under the same load. The
    /// whole-run idle figure also holds the first heights, before pruning starts, when the
    /// store is small and only written to.
    pub commit_steady_idle: Latency,
    /// Commit latency over the steady state while a compaction was in flight.
    pub commit_steady_during_compaction: Latency,
    /// Wall time, seconds.
    pub seconds: f64,
    /// The time series.
    #[serde(skip)]
    pub samples: Vec<Sample>,
}

/// Runs `reclaim simulate`.
pub fn run(args: &SimulateArgs, storage: &StorageConfig, json: bool) -> anyhow::Result<()> {
    validate(args)?;
    // SIGINT / SIGTERM end the run between two heights, so that a temporary store is removed
    // (and a `--dir` store is left consistent) instead of abandoned mid-write.
    ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst))
        .context("install the SIGINT/SIGTERM handler")?;
    let endpoint = args
        .metrics_addr
        .map(crate::metrics_endpoint::MetricsEndpoint::start)
        .transpose()?;
    if let Some(endpoint) = &endpoint {
        eprintln!("serving metrics at http://{}/metrics", endpoint.address());
    }
    let runs: Vec<bool> = if args.compare {
        vec![true, false]
    } else {
        vec![!args.no_compact]
    };
    let mut reports = Vec::new();
    for compact in runs {
        let temp;
        let dir = match &args.dir {
            Some(dir) if runs_len(args) == 1 => dir.clone(),
            Some(dir) => dir.join(if compact { "compact" } else { "no-compact" }),
            None => {
                temp = tempfile::tempdir().context("create a temporary store directory")?;
                temp.path().join("store")
            }
        };
        reports.push(simulate(args, storage, compact, &dir)?);
    }
    if let Some(out) = &args.out {
        write_outputs(out, &reports)?;
    }
    if let Some(file) = &args.table_row {
        append_table_rows(file, args, &reports)?;
    }
    if let Some(file) = &args.latency_tsv {
        append_latency_lines(file, &reports)?;
    }
    if json {
        out!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        print_table(&reports);
        if let Some(out) = &args.out {
            out!(
                "\nwrote {0}/timeseries.csv, {0}/report.json, {0}/bytes_on_disk.svg",
                out.display()
            );
        }
    }
    if endpoint.is_some() && args.metrics_linger_secs > 0 {
        let until = Instant::now() + Duration::from_secs(args.metrics_linger_secs);
        while Instant::now() < until && !interrupted() {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

/// Waits for the background compaction the run started, saying what it waits for every ten
/// seconds, for at most ten minutes. A compaction held back by a time window the clock is
/// outside of is stopped at once instead (it would wait for hours).
fn wait_for_compaction(compactor: &Compactor, dir: &Path) -> anyhow::Result<()> {
    const LOG_EVERY: Duration = Duration::from_secs(10);
    const LIMIT: Duration = Duration::from_secs(600);
    let started = Instant::now();
    let mut next_log = started + LOG_EVERY;
    loop {
        if compactor.wait_idle(Duration::from_millis(500)) {
            return Ok(());
        }
        bail_if_interrupted(dir)?;
        if !compactor.pacing().in_window_now() {
            tracing::warn!(
                "the background compaction waits for a compaction window; stopping it (the run ends outside every window)"
            );
            return Ok(());
        }
        if Instant::now() >= next_log {
            tracing::warn!(
                waited_s = started.elapsed().as_secs(),
                slices = compactor.stats().slices,
                "waiting for the background compaction to finish (paced: slices, pauses, load signal)"
            );
            next_log += LOG_EVERY;
        }
        if started.elapsed() >= LIMIT {
            bail!(
                "the background compaction did not finish within {} s (is the load signal stuck busy?)",
                LIMIT.as_secs()
            );
        }
    }
}

/// Mean and peak bytes on disk over the samples at or above `from_height` (zeros without one).
fn steady_state(samples: &[Sample], from_height: u64) -> (u64, u64) {
    let window: Vec<u64> = samples
        .iter()
        .filter(|s| s.height >= from_height)
        .map(|s| s.bytes_on_disk)
        .collect();
    if window.is_empty() {
        return (0, 0);
    }
    let sum: u128 = window.iter().map(|&b| u128::from(b)).sum();
    let mean = u64::try_from(sum / window.len() as u128).unwrap_or(u64::MAX);
    (mean, window.iter().copied().max().unwrap_or(0))
}

/// Set by SIGINT or SIGTERM.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// True once SIGINT or SIGTERM arrived.
fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Ends the run early when a signal arrived (the caller's temporary directory is then removed
/// as the error unwinds).
fn bail_if_interrupted(dir: &Path) -> anyhow::Result<()> {
    if interrupted() {
        bail!(
            "interrupted by a signal; the store at {} is consistent (temporary stores are removed)",
            dir.display()
        );
    }
    Ok(())
}

fn runs_len(args: &SimulateArgs) -> usize {
    if args.compare { 2 } else { 1 }
}

fn validate(args: &SimulateArgs) -> anyhow::Result<()> {
    if args.heights == 0 {
        bail!("--heights must be at least 1");
    }
    if args.retain == 0 {
        bail!("--retain must be at least 1 (the tip is always kept)");
    }
    if args.prune_every == 0 {
        bail!("--prune-every must be at least 1");
    }
    if args.block_kib == 0 {
        bail!("--block-kib must be at least 1");
    }
    if !(0.0..1.0).contains(&args.block_jitter) {
        bail!("--block-jitter must be in [0, 1)");
    }
    if args.compaction_interval == Some(0) {
        bail!("--compaction-interval must be at least 1");
    }
    if args.validator_change_every == 0 {
        bail!("--validator-change-every must be at least 1");
    }
    if args.max_heights_per_run == Some(0) {
        bail!("--max-heights-per-run must be at least 1");
    }
    Ok(())
}

/// The synthetic chain `args` describe (CometBFT-like sizes around the chosen block size).
fn chain_shape(args: &SimulateArgs) -> ChainShape {
    ChainShape {
        block_bytes: (args.block_kib << 10) as usize,
        block_jitter: args.block_jitter,
        part_bytes: PART_BYTES,
        meta_bytes: 400,
        commit_bytes: 2 << 10,
        validators_bytes: 4 << 10,
        validators_every: args.validator_change_every,
        params_bytes: 200,
        params_every: 1000,
        response_bytes: 1 << 10,
    }
}

fn simulate(
    args: &SimulateArgs,
    storage: &StorageConfig,
    compact: bool,
    dir: &Path,
) -> anyhow::Result<SimulationReport> {
    let listed =
        || std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()));
    if dir.exists() && listed()?.next().is_some() {
        bail!(
            "{} is not empty: simulate needs a new or empty directory",
            dir.display()
        );
    }
    let started = Instant::now();
    let io_limit = args
        .io_limit_mib
        .map(|mib| mib.saturating_mul(1 << 20))
        .or(storage.compaction_pacing.io_bytes_per_sec)
        .filter(|&bytes| bytes > 0);
    let db: Arc<dyn KvStore> =
        crate::backend::open(args.backend, dir, &reclaim::OpenOptions::default())?;
    let bytes_start = db.size_on_disk()?;
    let blocks = Arc::new(BlockStore::open(Arc::clone(&db))?);
    let state_options = StateStoreOptions {
        discard_abci_responses: storage.discard_abci_responses,
        ..StateStoreOptions::default()
    };
    let states = Arc::new(StateStore::open(Arc::clone(&db), state_options)?);
    let (mut pacing, load_gate) = storage.compaction_pacing.to_pacing()?;
    if let Some(kib) = args.slice_kib {
        pacing.max_slice_bytes = kib.saturating_mul(1 << 10);
    }
    if let Some(ms) = args.slice_pause_ms {
        pacing.pause_between_slices = Duration::from_millis(ms);
    }
    pacing.io_bytes_per_sec = io_limit;
    let compactor = Arc::new(Compactor::with_pacing(SingleFlight::new(), pacing)?);
    let mut options = PruningSettings::from(storage);
    options.compact = compact;
    options.compaction_interval = args
        .compaction_interval
        .unwrap_or(storage.compaction_interval);
    options.evidence_max_age_heights = args.retain / 2;
    if let Some(policy) = &args.compaction_policy {
        options.policy = if policy == "space" {
            reclaim::CompactionPolicyKind::Space
        } else {
            reclaim::CompactionPolicyKind::Interval
        };
    }
    if let Some(max) = args.max_heights_per_run {
        options.limits.max_heights = Some(max);
    }
    let policy = options.compaction_policy().name();
    let executor = Arc::new(
        pruning_executor(&blocks, &states, options).with_compactor(Arc::clone(&compactor)),
    );
    // The node sets the application's retain height; the background pruner follows it,
    // woken through its one-slot channel (wake-ups merge) and on its interval.
    let companion = &storage.pruning.data_companion;
    let retain_heights = Arc::new(RetainHeights::open(
        Arc::clone(&blocks),
        companion.enabled,
        companion.initial_block_retain_height,
    )?);
    let pruner = BackgroundPruner::start(
        Arc::clone(&executor),
        Arc::clone(&retain_heights),
        storage.pruning.interval,
    )?;

    let progress = ProgressBar::new(args.heights);
    progress.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} heights {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    progress.set_prefix(format!(
        "{} {}",
        args.backend.name(),
        if compact { "compact" } else { "no-compact" }
    ));
    let mut rng = SmallRng::seed_from_u64(args.seed);
    let shape = chain_shape(args);
    let (mut idle, mut busy) = (Vec::new(), Vec::new());
    let (mut steady_idle, mut steady_busy) = (Vec::new(), Vec::new());
    // The end alone hides what a node lives with (the last compaction may land right at the
    // end): bytes on disk and commit latency are also given over the second half, once the
    // retain window has filled and pruning runs.
    let steady_from_height = (args.heights / 2).max(args.retain.saturating_add(args.prune_every));
    let mut samples = Vec::new();
    let sample_every = (args.heights / 200).max(1);
    let mut bytes_peak = bytes_start;
    let commit_interval = args
        .blocks_per_sec
        .map(|rate| Duration::from_secs_f64(1.0 / rate as f64));
    let mut next_commit = Instant::now();
    for height in 1..=args.heights {
        bail_if_interrupted(dir)?;
        if let Some(interval) = commit_interval {
            // A fixed schedule; a late commit resets it rather than bursting to catch up.
            let now = Instant::now();
            if next_commit > now {
                std::thread::sleep(next_commit - now);
            }
            next_commit = next_commit.max(now) + interval;
        }
        let block = shape.block(&mut rng, height);
        let state = shape.state(&mut rng, height, 1);
        let compacting_before = compactor.stats().in_flight;
        let commit_started = Instant::now();
        blocks.save_block(&block, WriteOptions::DURABLE)?;
        states.save(&state, WriteOptions::DURABLE)?;
        let took = commit_started.elapsed();
        if let Some(gate) = &load_gate {
            gate.record_commit(took);
        }
        let ms = took.as_secs_f64() * 1e3;
        if ms >= SLOW_COMMIT_MS {
            // For lining a slow commit up with the compaction's own events (`-v` or RUST_LOG).
            tracing::debug!(height, latency_ms = ms, "slow commit");
        }
        let compacting = compacting_before || compactor.stats().in_flight;
        match (compacting, height >= steady_from_height) {
            (true, true) => steady_busy.push(ms),
            (false, true) => steady_idle.push(ms),
            _ => {}
        }
        if compacting {
            busy.push(ms);
        } else {
            idle.push(ms);
        }
        if height.is_multiple_of(args.prune_every) && height > args.retain {
            retain_heights.set_application(height - args.retain + 1)?;
            pruner.wake();
        }
        if height.is_multiple_of(sample_every) || height == args.heights {
            let bytes = db.size_on_disk()?;
            bytes_peak = bytes_peak.max(bytes);
            samples.push(Sample {
                seconds: started.elapsed().as_secs_f64(),
                height,
                base: blocks.base(),
                bytes_on_disk: bytes,
                compactions: compactor.stats().succeeded,
            });
            progress.set_message(format!("{} on disk", human_bytes(bytes)));
        }
        progress.inc(1);
    }
    pruner.shutdown(Duration::from_secs(600))?;
    let pruner_stats = pruner.stats();
    if let Some(error) = &pruner_stats.last_error {
        bail!("background pruning failed: {error}");
    }
    let (mut heights_pruned, mut prunes) = (pruner_stats.heights_pruned, pruner_stats.runs);
    // Last prunes to the final retain height, so every run ends at the same base.
    if args.heights > args.retain {
        let retain = args.heights - args.retain + 1;
        retain_heights.set_application(retain)?;
        loop {
            let outcome = executor.prune(retain)?;
            heights_pruned += outcome.heights_pruned();
            prunes += 1;
            if !outcome.more_to_do() {
                break;
            }
        }
    }
    wait_for_compaction(&compactor, dir)?;
    compactor.shutdown(Duration::from_secs(5))?;
    let bytes_end = db.size_on_disk()?;
    bytes_peak = bytes_peak.max(bytes_end);
    samples.push(Sample {
        seconds: started.elapsed().as_secs_f64(),
        height: args.heights,
        base: blocks.base(),
        bytes_on_disk: bytes_end,
        compactions: compactor.stats().succeeded,
    });
    progress.finish_and_clear();
    let (steady_mean, steady_peak) = steady_state(&samples, steady_from_height);
    let bytes_retained_data = db
        .iter(KeyRange::full(), ScanOrder::Ascending)
        .try_fold(0u64, |sum, kv| {
            kv.map(|(k, v)| sum + (k.len() + v.len()) as u64)
        })?;
    let stats = compactor.stats();
    Ok(SimulationReport {
        backend: args.backend,
        compaction: compact,
        policy,
        io_bytes_per_sec: io_limit,
        blocks_per_sec: args.blocks_per_sec,
        heights_written: args.heights,
        heights_pruned,
        base: blocks.base(),
        prunes,
        compactions_run: stats.succeeded + stats.failed,
        compactions_skipped: stats.skipped_busy,
        compactions_failed: stats.failed,
        compaction_slices: stats.slices,
        longest_slice_ms: stats.longest_slice.as_secs_f64() * 1e3,
        pruner_runs: pruner_stats.runs,
        pruner_wakeups_merged: pruner_stats.merged_wakeups,
        bytes_start,
        bytes_peak,
        bytes_end,
        bytes_retained_data,
        end_over_retained: bytes_end as f64 / bytes_retained_data.max(1) as f64,
        steady_from_height,
        bytes_steady_mean: steady_mean,
        bytes_steady_peak: steady_peak,
        steady_mean_over_retained: steady_mean as f64 / bytes_retained_data.max(1) as f64,
        steady_peak_over_retained: steady_peak as f64 / bytes_retained_data.max(1) as f64,
        commit_idle: Latency::of(idle),
        commit_during_compaction: Latency::of(busy),
        commit_steady_idle: Latency::of(steady_idle),
        commit_steady_during_compaction: Latency::of(steady_busy),
        seconds: started.elapsed().as_secs_f64(),
        samples,
    })
}

/// `1536` → `"1.5 KiB"`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn print_table(reports: &[SimulationReport]) {
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut row = |name: &str, f: &dyn Fn(&SimulationReport) -> String| {
        rows.push((name.to_owned(), reports.iter().map(f).collect()));
    };
    row("run", &|r| {
        format!(
            "{} {}",
            r.backend.name(),
            if r.compaction {
                "compact"
            } else {
                "no-compact"
            }
        )
    });
    row("heights written / pruned", &|r| {
        format!("{} / {}", r.heights_written, r.heights_pruned)
    });
    row("final base", &|r| r.base.to_string());
    row("prunes (background runs / merged wake-ups)", &|r| {
        format!(
            "{} ({} / {})",
            r.prunes, r.pruner_runs, r.pruner_wakeups_merged
        )
    });
    row("compaction policy", &|r| r.policy.to_owned());
    row("compactions run / skipped / failed", &|r| {
        format!(
            "{} / {} / {}",
            r.compactions_run, r.compactions_skipped, r.compactions_failed
        )
    });
    row("compaction slices / longest slice", &|r| {
        format!("{} / {:.1} ms", r.compaction_slices, r.longest_slice_ms)
    });
    row("bytes on disk: start", &|r| human_bytes(r.bytes_start));
    row("bytes on disk: peak", &|r| human_bytes(r.bytes_peak));
    row("bytes on disk: end", &|r| human_bytes(r.bytes_end));
    row("retained data alone", &|r| {
        human_bytes(r.bytes_retained_data)
    });
    row("end / retained data", &|r| {
        format!("{:.2}x", r.end_over_retained)
    });
    row("steady state: mean / peak", &|r| {
        format!(
            "{} / {} from height {}",
            human_bytes(r.bytes_steady_mean),
            human_bytes(r.bytes_steady_peak),
            r.steady_from_height
        )
    });
    row("steady state / retained data", &|r| {
        format!(
            "{:.2}x mean, {:.2}x peak",
            r.steady_mean_over_retained, r.steady_peak_over_retained
        )
    });
    let latency = |l: &Latency| {
        if l.samples == 0 {
            "-".to_owned()
        } else {
            format!(
                "{:.2} / {:.2} / {:.1} ms (n={})",
                l.p50_ms, l.p99_ms, l.max_ms, l.samples
            )
        }
    };
    row("commit p50/p99/max, idle", &|r| latency(&r.commit_idle));
    row("commit p50/p99/max, compacting", &|r| {
        latency(&r.commit_during_compaction)
    });
    row("steady state: commit p50/p99/max, idle", &|r| {
        latency(&r.commit_steady_idle)
    });
    row("steady state: commit p50/p99/max, compacting", &|r| {
        latency(&r.commit_steady_during_compaction)
    });
    row("wall time", &|r| format!("{:.1} s", r.seconds));
    let name_width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..reports.len())
        .map(|i| rows.iter().map(|(_, v)| v[i].len()).max().unwrap_or(0))
        .collect();
    for (name, values) in &rows {
        let cells: Vec<String> = values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        out!("{name:<name_width$}  {}", cells.join("  ").trim_end());
    }
}

/// Appends one Markdown row per report to `file`.
fn append_table_rows(
    file: &Path,
    args: &SimulateArgs,
    reports: &[SimulationReport],
) -> anyhow::Result<()> {
    let mib = |b: u64| b as f64 / f64::from(1u32 << 20);
    let mut rows = String::new();
    for r in reports {
        let cadence = args
            .blocks_per_sec
            .map(|rate| format!(", {rate} heights/s"))
            .unwrap_or_default();
        let mode = if !r.compaction {
            format!("off{cadence}")
        } else {
            let mut mode = r.policy.to_owned();
            if let Some(kib) = args.slice_kib.filter(|&k| k > 0) {
                mode.push_str(&format!(", slices {kib} KiB"));
            }
            if let Some(ms) = args.slice_pause_ms.filter(|&ms| ms > 0) {
                mode.push_str(&format!(", pause {ms} ms"));
            }
            if let Some(cap) = r.io_bytes_per_sec {
                mode.push_str(&format!(", cap {} MiB/s", cap >> 20));
            }
            mode.push_str(&cadence);
            mode
        };
        // Bytes written, estimated from the retained heights' average size.
        let written = r.heights_written as f64 * mib(r.bytes_retained_data)
            / (r.heights_written + 1).saturating_sub(r.base).max(1) as f64;
        let during = &r.commit_during_compaction;
        let longest = r.commit_idle.max_ms.max(during.max_ms);
        rows.push_str(&format!(
            "| {} | {mode} | {:.1} MiB | {:.2} GiB | {:.2}×, {:.2}× | {:.1} ms | {} | {longest:.1} ms | {} ({}) | {:.0} s |\n",
            r.backend.name(),
            mib(r.bytes_retained_data),
            written / 1024.0,
            r.steady_mean_over_retained,
            r.steady_peak_over_retained,
            r.commit_idle.p99_ms,
            if during.samples == 0 {
                "—".to_owned()
            } else {
                format!("{:.1} / {:.1} ms (n={})", during.p99_ms, during.max_ms, during.samples)
            },
            r.compactions_run,
            r.compactions_skipped,
            r.seconds,
        ));
    }
    append_to(file, &rows)
}

/// Appends one tab-separated line of commit latencies per report to `file`.
fn append_latency_lines(file: &Path, reports: &[SimulationReport]) -> anyhow::Result<()> {
    let mut lines = String::new();
    for r in reports {
        let (idle, during) = (&r.commit_steady_idle, &r.commit_steady_during_compaction);
        lines.push_str(&format!(
            "{}\t{:.2}\t{}\t{:.2}\t{:.2}\t{}\t{:.2}\t{:.2}\n",
            r.backend.name(),
            idle.p99_ms,
            idle.samples,
            during.p99_ms,
            during.max_ms,
            during.samples,
            r.commit_during_compaction.max_ms,
            r.commit_idle.max_ms,
        ));
    }
    append_to(file, &lines)
}

/// Appends `text` to `file`, creating it if needed.
fn append_to(file: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .with_context(|| format!("append to {}", file.display()))
}

fn write_outputs(out: &Path, reports: &[SimulationReport]) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("create {}", out.display()))?;
    let mut csv = String::from("run,seconds,height,base,bytes_on_disk,compactions\n");
    for r in reports {
        let run = if r.compaction {
            "compact"
        } else {
            "no-compact"
        };
        for s in &r.samples {
            csv.push_str(&format!(
                "{run},{:.3},{},{},{},{}\n",
                s.seconds, s.height, s.base, s.bytes_on_disk, s.compactions
            ));
        }
    }
    std::fs::write(out.join("timeseries.csv"), csv).context("write timeseries.csv")?;
    std::fs::write(
        out.join("report.json"),
        serde_json::to_string_pretty(reports)?,
    )
    .context("write report.json")?;
    let runs: Vec<crate::plot::Run> = reports
        .iter()
        .map(|r| crate::plot::Run {
            label: format!(
                "{} {}",
                r.backend.name(),
                if r.compaction {
                    "with compaction"
                } else {
                    "pruning only"
                }
            ),
            points: r
                .samples
                .iter()
                .map(|s| (s.height, s.bytes_on_disk))
                .collect(),
            retained_bytes: r.bytes_retained_data,
        })
        .collect();
    crate::plot::bytes_on_disk(&out.join("bytes_on_disk.svg"), &runs)
}

#[cfg(test)]
mod tests {
    use super::{Sample, steady_state};

    fn sample(height: u64, bytes_on_disk: u64) -> Sample {
        Sample {
            seconds: 0.0,
            height,
            base: 1,
            bytes_on_disk,
            compactions: 0,
        }
    }

    #[test]
    fn steady_state_covers_only_the_window() {
        let samples = [
            sample(10, 900),
            sample(50, 100),
            sample(60, 300),
            sample(70, 200),
        ];
        assert_eq!(steady_state(&samples, 50), (200, 300));
        assert_eq!(steady_state(&samples, 80), (0, 0));
        assert_eq!(steady_state(&samples, 0), (375, 900));
    }
}
