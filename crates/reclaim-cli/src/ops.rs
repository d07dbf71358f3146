//! The operator commands: `inspect`, `prune` and `compact` on an existing store directory.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use reclaim::{
    BlockStore, KeyRange, KvReadExt, KvStore, PruningSettings, RetainHeights, STATE_SEGMENT,
    ScanOrder, StateStore, StateStoreOptions, StorageConfig, keys, pruning_executor,
};
use serde::Serialize;

use crate::backend::{
    engine_parser, open_existing, open_existing_read_only, open_existing_with, serialize_engine,
    serialize_path,
};
use crate::simulate::human_bytes;
use reclaim::Engine;

/// Options of `reclaim inspect`.
#[derive(Debug, Clone, clap::Args)]
pub struct InspectArgs {
    /// Store directory.
    pub dir: PathBuf,
    /// Refuse the store unless it is of this engine.
    #[arg(long, value_parser = engine_parser())]
    pub backend: Option<Engine>,
}

/// Options of `reclaim prune`.
#[derive(Debug, Clone, clap::Args)]
pub struct PruneArgs {
    /// Store directory.
    pub dir: PathBuf,
    /// Keep this height and everything above it.
    #[arg(long)]
    pub retain_height: u64,
    /// Heights kept with their meta, commit and validator set below the tip (the evidence
    /// window).
    #[arg(long, default_value_t = reclaim::DEFAULT_EVIDENCE_MAX_AGE_HEIGHTS)]
    pub evidence_max_age: u64,
    /// Say what would be removed, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Refuse the store unless it is of this engine.
    #[arg(long, value_parser = engine_parser())]
    pub backend: Option<Engine>,
}

/// Options of `reclaim compact`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompactArgs {
    /// Store directory.
    pub dir: PathBuf,
    /// First key to compact (text, or hex with a `0x` prefix); default: the first key.
    #[arg(long)]
    pub from: Option<String>,
    /// Key to stop before (text, or hex with a `0x` prefix); default: past the last key.
    #[arg(long)]
    pub to: Option<String>,
    /// Refuse the store unless it is of this engine.
    #[arg(long, value_parser = engine_parser())]
    pub backend: Option<Engine>,
}

#[derive(Serialize)]
struct Family {
    family: &'static str,
    keys: u64,
    bytes: u64,
}

#[derive(Serialize)]
struct Inspection {
    #[serde(serialize_with = "serialize_path")]
    dir: PathBuf,
    #[serde(serialize_with = "serialize_engine")]
    backend: Engine,
    block_base: u64,
    block_height: u64,
    evidence_base: u64,
    state_base: u64,
    state_height: u64,
    /// The application's persisted retain height (0: never set).
    retain_application: u64,
    /// The data companion's, when `[storage.pruning.data_companion]` is enabled.
    retain_companion: Option<u64>,
    /// The height pruning may go up to now.
    retain_effective: u64,
    /// Keys below the bases that pruning should have removed (counted up to 1,000): 0 on a
    /// healthy store.
    leftovers_below_base: usize,
    families: Vec<Family>,
    bytes_on_disk: u64,
    /// Keys and values of every family, as scanned: the live data.
    bytes_live: u64,
    /// The engine's estimate of what `reclaim compact` would give back (`null`: none).
    bytes_estimated_reclaimable: Option<u64>,
}

/// Leftover keys counted by `inspect`, at most.
const LEFTOVER_LIMIT: usize = 1000;

fn open_stores(
    db: &std::sync::Arc<dyn KvStore>,
    storage: &StorageConfig,
) -> anyhow::Result<(BlockStore, StateStore)> {
    let blocks = BlockStore::open(std::sync::Arc::clone(db))?;
    let options = StateStoreOptions {
        discard_abci_responses: storage.discard_abci_responses,
        ..StateStoreOptions::default()
    };
    let states = StateStore::open(std::sync::Arc::clone(db), options)?;
    Ok((blocks, states))
}

/// Runs `reclaim inspect`.
pub fn inspect(args: &InspectArgs, storage: &StorageConfig, json: bool) -> anyhow::Result<()> {
    let (backend, db) = open_existing_read_only(&args.dir, args.backend)?;
    let (blocks, states) = open_stores(&db, storage)?;
    let blocks = Arc::new(blocks);
    let mut families = Vec::new();
    // Every family and single key of the schema, in the schema's order.
    let ranges = keys::FAMILIES.iter().map(|f| (f.name, f.all())).chain(
        keys::SINGLE_KEYS
            .iter()
            .map(|k| (k.name, KeyRange::exact(k.key))),
    );
    for (family, range) in ranges {
        let (mut keys, mut bytes) = (0, 0);
        for entry in db.iter(range, ScanOrder::Ascending).page_size(1024) {
            let (k, v) = entry?;
            keys += 1;
            bytes += (k.len() + v.len()) as u64;
        }
        families.push(Family {
            family,
            keys,
            bytes,
        });
    }
    let b = blocks.bounds();
    let s = states.bounds();
    let companion = &storage.pruning.data_companion;
    let retain = RetainHeights::open(
        Arc::clone(&blocks),
        companion.enabled,
        companion.initial_block_retain_height,
    )?
    .state();
    let leftovers = blocks.leftovers_below_base(LEFTOVER_LIMIT)?.len()
        + states.leftovers_below_base(LEFTOVER_LIMIT)?.len();
    let space = db.space_report()?;
    let report = Inspection {
        dir: args.dir.clone(),
        backend,
        block_base: b.base,
        block_height: b.height,
        evidence_base: b.evidence_base,
        state_base: s.base,
        state_height: s.height,
        retain_application: retain.application,
        retain_companion: retain.companion,
        retain_effective: retain.effective(),
        leftovers_below_base: leftovers,
        bytes_live: families.iter().map(|f| f.bytes).sum(),
        families,
        bytes_on_disk: space.on_disk,
        bytes_estimated_reclaimable: space.reclaimable,
    };
    if json {
        out!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    out!("store          {}", report.dir.display());
    out!("backend        {}", backend.name());
    out!(
        "blocks         base {} height {} (evidence kept from {})",
        b.base,
        b.height,
        b.evidence_base
    );
    out!("state          base {} height {}", s.base, s.height);
    out!(
        "retain heights application {}{}, effective {}",
        retain.application,
        retain
            .companion
            .map_or_else(String::new, |c| format!(", companion {c}")),
        retain.effective()
    );
    out!(
        "leftovers      {} key(s) below the bases{}",
        leftovers,
        if leftovers == 0 {
            " (healthy)"
        } else {
            ": pruning left data behind; run `reclaim prune` again"
        }
    );
    out!(
        "bytes on disk  {} ({} bytes)",
        human_bytes(report.bytes_on_disk),
        report.bytes_on_disk
    );
    out!(
        "live data      {} in keys and values ({:.2}x on disk)",
        human_bytes(report.bytes_live),
        report.bytes_on_disk as f64 / report.bytes_live.max(1) as f64
    );
    out!(
        "reclaimable    {}",
        report.bytes_estimated_reclaimable.map_or_else(
            || "this engine gives no estimate".to_owned(),
            |r| format!(
                "{} by `reclaim compact` (the engine's estimate)",
                human_bytes(r)
            )
        )
    );
    out!("\n{:<26} {:>10} {:>12}", "key family", "keys", "bytes");
    for f in &report.families {
        out!(
            "{:<26} {:>10} {:>12}",
            f.family,
            f.keys,
            human_bytes(f.bytes)
        );
    }
    Ok(())
}

#[derive(Serialize)]
struct PruneReport {
    #[serde(serialize_with = "serialize_path")]
    dir: PathBuf,
    #[serde(serialize_with = "serialize_engine")]
    backend: Engine,
    dry_run: bool,
    retain_height: u64,
    base_before: u64,
    base_after: u64,
    heights_pruned: u64,
    state_heights_pruned: u64,
    bytes_before: u64,
    bytes_after: u64,
    seconds: f64,
}

/// Runs `reclaim prune`.
pub fn prune(args: &PruneArgs, storage: &StorageConfig, json: bool) -> anyhow::Result<()> {
    // A dry run is a look: it changes nothing and works on a read-only store.
    let (backend, db) = if args.dry_run {
        open_existing_read_only(&args.dir, args.backend)?
    } else {
        open_existing(&args.dir, args.backend)?
    };
    let (blocks, states) = open_stores(&db, storage)?;
    let chain = blocks.bounds();
    if args.retain_height == 0 {
        bail!("--retain-height 0 is not a height: heights start at 1");
    }
    if args.retain_height > chain.height {
        bail!(
            "retain height {} is above the chain's height {}; nothing was changed",
            args.retain_height,
            chain.height
        );
    }
    // A data companion's retain height is a promise to a downstream consumer: never prune past
    // it (CometBFT's pruner does not either). The application's is the operator's to override
    // offline; say so when it happens.
    let blocks = Arc::new(blocks);
    let companion = &storage.pruning.data_companion;
    let in_force = RetainHeights::open(
        Arc::clone(&blocks),
        companion.enabled,
        companion.initial_block_retain_height,
    )?
    .state();
    if let Some(held) = in_force.companion
        && args.retain_height > held
    {
        bail!(
            "retain height {} is above the data companion's retain height {held} ([storage.pruning.data_companion] is enabled): the companion has not read those heights yet; nothing was changed",
            args.retain_height
        );
    }
    if in_force.application != 0 && args.retain_height > in_force.application && !args.dry_run {
        tracing::warn!(
            retain_height = args.retain_height,
            application_retain_height = in_force.application,
            "pruning past the application's retain height"
        );
    }
    let bytes_before = db.size_on_disk()?;
    let started = Instant::now();
    let mut report = PruneReport {
        dir: args.dir.clone(),
        backend,
        dry_run: args.dry_run,
        retain_height: args.retain_height,
        base_before: chain.base,
        base_after: chain.base.max(args.retain_height),
        heights_pruned: args.retain_height.saturating_sub(chain.base),
        state_heights_pruned: args
            .retain_height
            .min(states.height())
            .saturating_sub(states.base()),
        bytes_before,
        bytes_after: bytes_before,
        seconds: 0.0,
    };
    if !args.dry_run {
        let options = PruningSettings {
            evidence_max_age_heights: args.evidence_max_age,
            compact: false,
            ..PruningSettings::from(storage)
        };
        let executor = pruning_executor(&blocks, &Arc::new(states), options);
        let progress = ProgressBar::new(report.heights_pruned.max(1));
        progress.set_style(
            ProgressStyle::with_template("pruning [{bar:30}] {pos}/{len} heights")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        // Prune in steps so the bar moves; each step is itself crash-safe. A step bounded by
        // `[storage.pruning]` limits is repeated until it is complete.
        let step = 10_000;
        let (mut pruned, mut state_pruned) = (0, 0);
        let mut next = chain
            .base
            .saturating_add(step)
            .min(args.retain_height)
            .max(1);
        loop {
            let outcome = executor
                .prune(next)
                .with_context(|| format!("pruning to {next} (base now {})", blocks.base()))?;
            pruned += outcome.heights_pruned();
            state_pruned += outcome.report(STATE_SEGMENT).heights_pruned;
            progress.set_position(pruned);
            if outcome.more_to_do() {
                if outcome.batches() == 0 {
                    bail!(
                        "pruning stopped at base {} of the asked {}: a run made no progress (is max_heights_per_run 0?)",
                        blocks.base(),
                        args.retain_height
                    );
                }
                continue;
            }
            if next >= args.retain_height {
                break;
            }
            next = next.saturating_add(step).min(args.retain_height);
        }
        progress.finish_and_clear();
        report.heights_pruned = pruned;
        report.state_heights_pruned = state_pruned;
        report.base_after = blocks.base();
        report.bytes_after = db.size_on_disk()?;
        if report.base_after < args.retain_height {
            bail!(
                "pruning stopped at base {} of the asked {}",
                report.base_after,
                args.retain_height
            );
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    if json {
        out!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let verb = if args.dry_run {
        "would prune"
    } else {
        "pruned"
    };
    out!(
        "{verb} {} block heights and {} state heights below {} ({} store at {})",
        report.heights_pruned,
        report.state_heights_pruned,
        args.retain_height,
        backend.name(),
        args.dir.display()
    );
    out!(
        "base           {} -> {}",
        report.base_before,
        report.base_after
    );
    out!(
        "bytes on disk  {} -> {} (run `reclaim compact` to give freed space back)",
        human_bytes(report.bytes_before),
        human_bytes(report.bytes_after)
    );
    if !args.dry_run {
        out!("took           {:.2} s", report.seconds);
    }
    Ok(())
}

/// A key given on the command line: text, or hex after `0x` (digits only, an even number).
fn parse_key(text: &str) -> anyhow::Result<Vec<u8>> {
    let Some(hex) = text.strip_prefix("0x") else {
        return Ok(text.as_bytes().to_vec());
    };
    if let Some(bad) = hex.chars().find(|c| !c.is_ascii_hexdigit()) {
        bail!("{text:?} is not valid hex: {bad:?} is not a hex digit");
    }
    if hex.len() % 2 != 0 {
        bail!("hex key {text:?} has an odd number of digits");
    }
    // Every character is an ASCII hex digit, so every byte index is a character boundary.
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&hex[i..i + 2], 16)
                .with_context(|| format!("{text:?} is not valid hex"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse_key;
    use proptest::prelude::*;

    #[test]
    fn keys_parse_as_text_or_hex() {
        assert_eq!(parse_key("P:").unwrap(), b"P:");
        assert_eq!(parse_key("0x513a").unwrap(), b"Q:");
        assert_eq!(parse_key("0x").unwrap(), b"");
        for bad in ["0xabc", "0xaé", "0xzz", "0x\u{0}0", "0x 1"] {
            assert!(parse_key(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        /// Any string gives a key or an error, never a panic; hex round-trips.
        #[test]
        fn any_string_parses_or_is_refused(text in any::<String>(), bytes in any::<Vec<u8>>()) {
            let _ = parse_key(&text);
            let _ = parse_key(&format!("0x{text}"));
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            prop_assert_eq!(parse_key(&format!("0x{hex}")).unwrap(), bytes);
        }
    }
}

#[derive(Serialize)]
struct CompactReport {
    #[serde(serialize_with = "serialize_path")]
    dir: PathBuf,
    #[serde(serialize_with = "serialize_engine")]
    backend: Engine,
    range: String,
    bytes_before: u64,
    bytes_after: u64,
    bytes_reclaimed: u64,
    /// The engine's estimate of what the compaction would give back, taken before it ran.
    bytes_estimated_reclaimable: Option<u64>,
    seconds: f64,
}

/// Runs `reclaim compact`.
///
/// `[storage.compaction_pacing]` applies as in a node: slices, pauses, time windows (a wait for
/// one is logged) and the engine's I/O cap; the load signal does not (no node commits here).
pub fn compact(args: &CompactArgs, storage: &StorageConfig, json: bool) -> anyhow::Result<()> {
    let from = args.from.as_deref().map(parse_key).transpose()?;
    let to = args.to.as_deref().map(parse_key).transpose()?;
    let range = KeyRange::new(from, to).context("invalid --from/--to")?;
    let (mut pacing, load_gate) = storage.compaction_pacing.to_pacing()?;
    if load_gate.is_some() {
        tracing::warn!("busy_commit_latency is ignored by `reclaim compact`: no node commits here");
        pacing.load = None;
    }
    let (backend, db) = open_existing_with(
        &args.dir,
        args.backend,
        &reclaim::OpenOptions::from_config(storage),
    )?;
    let space = db.space_report()?;
    let bytes_before = space.on_disk;
    let started = Instant::now();
    let spinner = ProgressBar::new_spinner();
    spinner.set_message(format!("compacting {range}"));
    spinner.enable_steady_tick(std::time::Duration::from_millis(200));
    let task = reclaim::CompactionTask::new("manual_compaction").with_target_ranges(
        "store",
        Arc::clone(&db) as Arc<dyn reclaim::Compactable>,
        vec![range.clone()],
    );
    let task_report = reclaim::compaction::run_task(&task, &pacing, &reclaim::StopSignal::never());
    spinner.finish_and_clear();
    if let Some(failure) = task_report.failures.first() {
        bail!("compaction failed: {failure}");
    }
    let seconds = started.elapsed().as_secs_f64();
    let bytes_after = db.size_on_disk()?;
    let report = CompactReport {
        dir: args.dir.clone(),
        backend,
        range: range.to_string(),
        bytes_before,
        bytes_after,
        bytes_reclaimed: bytes_before.saturating_sub(bytes_after),
        bytes_estimated_reclaimable: space.reclaimable,
        seconds,
    };
    if json {
        out!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    out!(
        "compacted {} of {} store at {}",
        report.range,
        backend.name(),
        args.dir.display()
    );
    out!(
        "bytes on disk  {} -> {} ({} reclaimed)",
        human_bytes(bytes_before),
        human_bytes(bytes_after),
        human_bytes(report.bytes_reclaimed)
    );
    out!(
        "estimated      {} reclaimable before compacting",
        report
            .bytes_estimated_reclaimable
            .map_or_else(|| "(this engine gives no estimate)".to_owned(), human_bytes)
    );
    out!("took           {seconds:.2} s");
    Ok(())
}
