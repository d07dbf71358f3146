//! `reclaim`: simulate a pruning node, and inspect, prune and compact store directories.

/// Prints a line on stdout; a closed pipe (`reclaim inspect DIR | head`) is not an error.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod backend;
mod metrics_endpoint;
mod ops;
mod plot;
mod simulate;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use reclaim::Config;
use tracing_subscriber::EnvFilter;

/// Keep a blockchain node's disk bounded: prune below a retain height, then compact.
#[derive(Debug, Parser)]
#[command(name = "reclaim", version, about)]
struct Cli {
    /// Read the `[storage]` section from this TOML file (unknown keys are errors).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    json: bool,
    /// More log output on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node-like workload on a fresh store and show what compaction buys.
    Simulate(Box<simulate::SimulateArgs>),
    /// Show a store's engine, bounds, sizes by key family and bytes on disk.
    Inspect(ops::InspectArgs),
    /// Prune blocks and state below a retain height.
    Prune(ops::PruneArgs),
    /// Compact a store (or a key range of it) and report the bytes reclaimed.
    Compact(ops::CompactArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes joined by `: `, leaving out a cause whose text the message
/// before it already holds (many errors print their source in their own message).
fn error_chain(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let line = cause.to_string();
        if text.contains(&line) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&line);
    }
    text
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let config = match &cli.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let storage = &config.storage;
    match &cli.command {
        Command::Simulate(args) => simulate::run(args, storage, cli.json),
        Command::Inspect(args) => ops::inspect(args, storage, cli.json),
        Command::Prune(args) => ops::prune(args, storage, cli.json),
        Command::Compact(args) => ops::compact(args, storage, cli.json),
    }
}
