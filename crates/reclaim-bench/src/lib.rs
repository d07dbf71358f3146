//! Measurements for `docs/benchmarks.md`. Every comparison is a ratio of two figures measured in
//! the same run on the same machine; absolute times are reported for context only.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::SmallRng;
use reclaim::compaction::run_task_now;
use reclaim::{
    BlockStore, Compactable, CompactionTask, Compactor, KeyRange, KvStore, PruningSettings,
    StateStore, StateStoreOptions, WriteBatch, WriteOptions, keys, pruning_executor,
};
use reclaim::{Engine, OpenOptions};
pub use reclaim_workload::Latency;
use reclaim_workload::{ChainShape, random_bytes};

/// The shape of the chain written for a measurement.
#[derive(Debug, Clone, Copy)]
pub struct Workload {
    /// Heights committed.
    pub heights: u64,
    /// Parts per block.
    pub parts: usize,
    /// Bytes per part (incompressible).
    pub part_bytes: usize,
}

impl Workload {
    /// The synthetic chain of this workload: fixed-size blocks of `parts` parts.
    pub fn shape(&self) -> ChainShape {
        ChainShape {
            block_bytes: self.parts * self.part_bytes,
            block_jitter: 0.0,
            part_bytes: self.part_bytes,
            meta_bytes: 300,
            commit_bytes: 1024,
            validators_bytes: 2048,
            validators_every: 100,
            params_bytes: 200,
            params_every: 0,
            response_bytes: 256,
        }
    }

    /// The retain height that prunes 90 % of the chain.
    pub fn retain_height(&self) -> u64 {
        self.heights / 10 * 9 + 1
    }
}

/// A block store and state store on one engine.
pub struct Chain {
    /// The engine.
    pub db: Arc<dyn KvStore>,
    /// Blocks.
    pub blocks: Arc<BlockStore>,
    /// State.
    pub states: Arc<StateStore>,
}

/// Opens `engine` in `dir` and commits heights `from..=to` of `workload`.
pub fn build_chain(
    engine: Engine,
    dir: &Path,
    workload: Workload,
    from: u64,
) -> anyhow::Result<Chain> {
    build_chain_on(engine.open(dir, &OpenOptions::default())?, workload, from)
}

/// Opens a block store and a state store on `db` and commits heights `from..=to` of
/// `workload`.
pub fn build_chain_on(
    db: Arc<dyn KvStore>,
    workload: Workload,
    from: u64,
) -> anyhow::Result<Chain> {
    let blocks = Arc::new(BlockStore::open(Arc::clone(&db))?);
    let states = Arc::new(StateStore::open(
        Arc::clone(&db),
        StateStoreOptions::default(),
    )?);
    let chain = Chain { db, blocks, states };
    commit(&chain, workload, from, workload.heights, from)?;
    Ok(chain)
}

/// Commits heights `from..=to` (the chain starts at `first`).
pub fn commit(
    chain: &Chain,
    workload: Workload,
    from: u64,
    to: u64,
    first: u64,
) -> anyhow::Result<()> {
    let mut rng = SmallRng::seed_from_u64(from);
    let shape = workload.shape();
    for h in from..=to {
        chain
            .blocks
            .save_block(&shape.block(&mut rng, h), WriteOptions::BUFFERED)?;
        chain
            .states
            .save(&shape.state(&mut rng, h, first), WriteOptions::BUFFERED)?;
    }
    Ok(())
}

/// Seconds taken by pruning and by the compaction that follows it.
#[derive(Debug, Clone, Copy)]
pub struct PruneTiming {
    /// Pruning alone.
    pub prune: Duration,
    /// The compaction after it.
    pub compaction: Duration,
}

impl PruneTiming {
    /// Pruned heights per second, pruning plus compaction.
    pub fn heights_per_second(&self, heights: u64) -> f64 {
        heights as f64 / (self.prune + self.compaction).as_secs_f64().max(1e-9)
    }
}

/// reclaim's way: range deletes in crash-safe batches, then compaction of the pruned ranges.
pub fn prune_ours(chain: &Chain, retain: u64) -> anyhow::Result<PruneTiming> {
    let options = PruningSettings {
        evidence_max_age_heights: 0,
        ..PruningSettings::default()
    };
    let executor = pruning_executor(&chain.blocks, &chain.states, options);
    let base = chain.blocks.base();
    let started = Instant::now();
    executor.prune(retain)?;
    let prune = started.elapsed();
    let started = Instant::now();
    run_task_now(&executor.task_for_heights("bench", base, retain))?;
    Ok(PruneTiming {
        prune,
        compaction: started.elapsed(),
    })
}

/// CometBFT's way, on the same data: for each height read the block's hash and part count, then
/// point-delete meta, parts, commit, seen commit and hash index, and the state entries, writing
/// the new base with each batch of 1000 heights (synced); then compact the whole store.
pub fn prune_cometbft_style(
    chain: &Chain,
    workload: Workload,
    retain: u64,
) -> anyhow::Result<PruneTiming> {
    let db = chain.db.as_ref();
    let base = chain.blocks.base();
    let started = Instant::now();
    let mut batch = WriteBatch::new();
    for h in base..retain {
        let hash = chain.blocks.load_block_hash(h).ok().flatten();
        if db.get(&keys::BLOCK_META.key(h))?.is_none() {
            continue;
        }
        batch.delete(keys::BLOCK_META.key(h));
        if let Some(hash) = hash {
            batch.delete(keys::hash_key(&hash));
        }
        for family in [
            keys::HASH_BY_HEIGHT,
            keys::COMMITS,
            keys::SEEN_COMMITS,
            keys::EXTENDED_COMMITS,
        ] {
            batch.delete(family.key(h));
        }
        for i in 0..workload.parts as u32 {
            batch.delete(keys::part_key(h, i));
        }
        for family in keys::STATE_FAMILIES {
            batch.delete(family.key(h));
        }
        if (h - base + 1).is_multiple_of(1000) || h + 1 == retain {
            batch.put(b"baselineBase".to_vec(), (h + 1).to_be_bytes().to_vec());
            db.write(std::mem::take(&mut batch), WriteOptions::DURABLE)?;
        }
    }
    let prune = started.elapsed();
    let started = Instant::now();
    db.compact_range(&KeyRange::full())?;
    Ok(PruneTiming {
        prune,
        compaction: started.elapsed(),
    })
}

/// Commit latency with no compaction running, then while a background compaction of the whole
/// store runs (repeated until `min_samples` commits were measured during compaction or
/// `budget` passes).
pub fn foreground_cost(
    chain: &Chain,
    workload: Workload,
    min_samples: usize,
    budget: Duration,
) -> anyhow::Result<(Latency, Latency)> {
    let mut next = chain.blocks.height() + 1;
    let mut commit_one = |samples: &mut Vec<f64>| -> anyhow::Result<()> {
        let started = Instant::now();
        commit(chain, workload, next, next, 1)?;
        samples.push(started.elapsed().as_secs_f64() * 1e3);
        next += 1;
        Ok(())
    };
    let mut idle = Vec::new();
    for _ in 0..min_samples {
        commit_one(&mut idle)?;
    }
    let compactor = Compactor::new()?;
    let mut busy = Vec::new();
    let started = Instant::now();
    while busy.len() < min_samples && started.elapsed() < budget {
        let task = CompactionTask::new("bench")
            .with_target("store", Arc::clone(&chain.db) as Arc<dyn Compactable>);
        if !compactor.try_enqueue(task).is_enqueued() {
            compactor.wait_idle(Duration::from_secs(600));
            continue;
        }
        while compactor.stats().in_flight && busy.len() < min_samples * 4 {
            commit_one(&mut busy)?;
        }
    }
    compactor.wait_idle(Duration::from_secs(600));
    Ok((Latency::of(idle), Latency::of(busy)))
}

/// Mean nanoseconds per `try_enqueue` with `threads` threads calling it at once, on a
/// compactor whose gate is held by a long task (the common, contended path).
pub fn try_enqueue_ns(threads: usize, calls_per_thread: u64) -> anyhow::Result<f64> {
    struct Slow(AtomicBool);
    impl Compactable for Slow {
        fn compact_range(&self, _: &KeyRange) -> Result<(), reclaim::StorageError> {
            while !self.0.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(())
        }
        fn size_on_disk(&self) -> Result<u64, reclaim::StorageError> {
            Ok(0)
        }
        fn capabilities(&self) -> reclaim::Capabilities {
            reclaim::MemoryStore::new().capabilities()
        }
    }
    let slow = Arc::new(Slow(AtomicBool::new(false)));
    let compactor = Compactor::new()?;
    let task =
        CompactionTask::new("hold").with_target("slow", Arc::clone(&slow) as Arc<dyn Compactable>);
    compactor.try_enqueue(task.clone());
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            let compactor = &compactor;
            let task = &task;
            s.spawn(move || {
                for _ in 0..calls_per_thread {
                    std::hint::black_box(compactor.try_enqueue(task.clone()));
                }
            });
        }
    });
    let elapsed = started.elapsed();
    slow.0.store(true, Ordering::Release);
    compactor.wait_idle(Duration::from_secs(10));
    Ok(elapsed.as_nanos() as f64 / calls_per_thread as f64)
}

/// Sequential write bandwidth of the disk holding `dir`, bytes per second: `bytes` written in
/// 1 MiB chunks and fsynced.
pub fn disk_write_bandwidth(dir: &Path, bytes: usize) -> anyhow::Result<f64> {
    use std::io::Write;
    let path = dir.join("bandwidth.probe");
    let mut rng = SmallRng::seed_from_u64(7);
    let chunk = random_bytes(&mut rng, 1 << 20);
    let started = Instant::now();
    let mut file = std::fs::File::create(&path)?;
    for _ in 0..bytes.div_ceil(chunk.len()) {
        file.write_all(&chunk)?;
    }
    file.sync_all()?;
    let elapsed = started.elapsed();
    std::fs::remove_file(&path)?;
    Ok(bytes as f64 / elapsed.as_secs_f64())
}

/// Block commits measured while a compaction task runs on `compactor`, and between runs. Runs
/// of the same mode taken at different times merge with [`CompactionUnderLoad::absorb`].
#[derive(Debug, Clone, Default)]
pub struct CompactionUnderLoad {
    /// Commit latencies (ms) while the task was in flight.
    pub during_ms: Vec<f64>,
    /// Commit latencies (ms) in the quiet gaps between runs, at the same rate and store size:
    /// the idle baseline of the same run.
    pub between_ms: Vec<f64>,
    /// Wall time of the task runs (waits and pauses included), summed.
    pub compaction: Duration,
    /// Tasks run.
    pub tasks: u64,
    /// Slices run over all tasks.
    pub slices: u64,
    /// The longest single slice.
    pub longest_slice: Duration,
}

impl CompactionUnderLoad {
    /// Percentiles of the commits during task runs.
    pub fn during(&self) -> Latency {
        Latency::of(self.during_ms.clone())
    }

    /// Percentiles of the commits between task runs.
    pub fn between(&self) -> Latency {
        Latency::of(self.between_ms.clone())
    }

    /// p99 during runs over p99 between runs: what the compaction adds to the slow tail.
    pub fn p99_ratio(&self) -> f64 {
        self.during().p99_ms / self.between().p99_ms.max(1e-9)
    }

    /// Adds the samples and counts of `other`, a later measurement of the same mode.
    pub fn absorb(&mut self, other: Self) {
        self.during_ms.extend(other.during_ms);
        self.between_ms.extend(other.between_ms);
        self.compaction += other.compaction;
        self.tasks += other.tasks;
        self.slices += other.slices;
        self.longest_slice = self.longest_slice.max(other.longest_slice);
    }
}

/// Sleeps until `slot` (a commit starts every `interval`, like a node's block time) and moves
/// it on; a commit that overran its slot starts the next one at once.
fn wait_for_slot(slot: &mut Instant, interval: Duration) {
    let now = Instant::now();
    if *slot > now {
        std::thread::sleep(*slot - now);
    }
    *slot = (*slot + interval).max(Instant::now());
}

/// Commits a block every `interval` (on this thread) while another thread runs `task` on
/// `compactor` over and over, each run followed by a quiet gap as long as the run, until
/// `min_samples` commits overlapped a run and as many fell in the gaps (or `budget` passed). A
/// commit counts as "during compaction" when a task was in flight when it started or when it
/// ended, as "between" otherwise. Each commit's latency also feeds `gate` (the node's load
/// signal), when given.
#[allow(clippy::too_many_arguments)]
pub fn commits_during_compaction(
    chain: &Chain,
    workload: Workload,
    compactor: &Compactor,
    task: &CompactionTask,
    gate: Option<&reclaim::CommitLatencyGate>,
    interval: Duration,
    min_samples: usize,
    budget: Duration,
) -> anyhow::Result<CompactionUnderLoad> {
    let slices_before = compactor.stats().slices;
    let stop = AtomicBool::new(false);
    let mut during = Vec::new();
    let mut between = Vec::new();
    let started = Instant::now();
    let (tasks, compacting) = std::thread::scope(|s| -> anyhow::Result<(u64, Duration)> {
        let driver = s.spawn(|| {
            let (mut tasks, mut compacting) = (0u64, Duration::ZERO);
            while !stop.load(Ordering::Acquire) {
                let task_started = Instant::now();
                if compactor.try_enqueue(task.clone()).is_enqueued() {
                    compactor.wait_idle(Duration::from_secs(600));
                    compacting += task_started.elapsed();
                    tasks += 1;
                }
                let gap = task_started.elapsed().max(Duration::from_millis(10));
                let gap_end = Instant::now() + gap;
                while Instant::now() < gap_end && !stop.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            (tasks, compacting)
        });
        let mut next = chain.blocks.height() + 1;
        let mut slot = Instant::now();
        let result = (|| -> anyhow::Result<()> {
            while (during.len() < min_samples || between.len() < min_samples)
                && started.elapsed() < budget
            {
                wait_for_slot(&mut slot, interval);
                let before = compactor.stats().in_flight;
                let commit_started = Instant::now();
                commit(chain, workload, next, next, 1)?;
                let took = commit_started.elapsed();
                next += 1;
                if let Some(gate) = gate {
                    gate.record_commit(took);
                }
                if before || compactor.stats().in_flight {
                    during.push(took.as_secs_f64() * 1e3);
                } else {
                    between.push(took.as_secs_f64() * 1e3);
                }
            }
            Ok(())
        })();
        stop.store(true, Ordering::Release);
        let (tasks, compacting) = driver
            .join()
            .map_err(|_| anyhow::anyhow!("the compaction driver panicked"))?;
        result.map(|()| (tasks, compacting))
    })?;
    let stats = compactor.stats();
    Ok(CompactionUnderLoad {
        during_ms: during,
        between_ms: between,
        compaction: compacting,
        tasks,
        slices: stats.slices - slices_before,
        longest_slice: stats.longest_slice,
    })
}

/// Latency of `n` block commits, one every `interval`, with nothing else running.
pub fn idle_commits(
    chain: &Chain,
    workload: Workload,
    interval: Duration,
    n: usize,
) -> anyhow::Result<Latency> {
    let first = chain.blocks.height() + 1;
    let mut samples = Vec::with_capacity(n);
    let mut slot = Instant::now();
    for next in first..first + n as u64 {
        wait_for_slot(&mut slot, interval);
        let started = Instant::now();
        commit(chain, workload, next, next, 1)?;
        samples.push(started.elapsed().as_secs_f64() * 1e3);
    }
    Ok(Latency::of(samples))
}
