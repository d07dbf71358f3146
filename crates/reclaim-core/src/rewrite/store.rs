//! [`GenerationalStore`]: an engine kept as generations, compacted by an online rewrite.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock, RwLockWriteGuard};
use tracing::{debug, info, warn};

use super::capture::{self, WriteCapture};
use super::engine::{GenerationEngine, SideKeyspace};
use super::gaps::{ChunkPlanner, CommitGaps};
use super::layout::GenerationLayout;
use super::shadow::Shadow;
use crate::dir::{EntryKind, StoreDirLock, available_space, directory_size, open_store_dir};
use crate::error::StorageError;
use crate::kv::{
    BatchOp, Capabilities, Compactable, CompactionAccess, CompactionPacer, CompactionScope,
    KeyValue, KvRead, KvStore, KvWrite, ScanOrder, SpaceReport, Unpaced, WriteBatch, WriteOptions,
};
use crate::range::{KeyRange, key_successor};

/// Tuning of the online rewrite. The defaults suit a node; tests shrink them.
#[derive(Debug, Clone)]
pub struct RewriteSettings {
    /// Write the node's writes once, into the new generation only, when the engine has a
    /// [`SideKeyspace`] (see [`crate::rewrite`]); else, or when false, they go to the live
    /// generation and are replayed onto the new one.
    pub write_once: bool,
    /// A write-once rewrite that fails or is stopped moves the writes made since it began back
    /// into the old generation (writers wait for that) and removes the new one, when those
    /// writes hold at most this many key and value bytes. Past it, or after a restart (the
    /// writes are then not all known), the rewrite stays in progress, both generations serve
    /// reads and writes, and the next compaction finishes it.
    pub fold_back_limit_bytes: u64,
    /// Queued writes (keys and values) a rewrite holds in memory at most; past it the rewrite
    /// gives up with [`StorageError::Overtaken`] and the old generation stays live. A
    /// write-once rewrite queues nothing: past this many bytes of written keys it forgets them
    /// and its copy looks each copied key up in the new generation instead.
    pub capture_limit_bytes: u64,
    /// Entries read per scan while copying, at most. Fewer when the last scan met large
    /// entries: a scan asks for about what the step still needs, so that a step is close to
    /// [`CompactionPacer::step_bytes`] whatever the value size. Where small values give way to
    /// large ones, one scan may read this many large values; they are still written a chunk at
    /// a time.
    pub scan_entries: usize,
    /// The new generation is made durable after every this many copied bytes, so that the
    /// final flush (the one writers may wait for) stays short, and so that no flush holds the
    /// disk for long: a node's commit that meets one waits behind it. (redb, 101.5 MiB live,
    /// 200 commits a second, copy paced to 32 MiB/s: the commits' p99 during a rewrite was
    /// 13.1 and 14.9 ms with 8 MiB, 8.3 and 8.8 ms with 1 MiB, against about 4 ms idle.)
    /// A copy step longer than this is written and made durable in chunks of this size, each
    /// with the writes captured since the last one replayed after it, so that a flush never
    /// holds a whole step or a step's backlog: unpaced steps are 8 MiB. (sled, 545 MiB live,
    /// writer flat out, CometBFT's interval policy, release runs of `reclaim simulate` on a
    /// shared disk: the commits' p99 during rewrites was 102.7 ms, idle 10.5 ms, with 8 MiB
    /// flushes; 25.5–43.5 ms, idle 4.7–7.7 ms, in three runs with 1 MiB chunks.)
    pub persist_every_bytes: u64,
    /// The copy writes its chunks between the node's writes: each chunk waits until no write
    /// is in flight and none began for the node's usual pause within a burst (a block's
    /// writes), then holds what fills this share of the node's usual rest between bursts at
    /// the copy's measured speed — at least [`Self::min_chunk_bytes`], at most
    /// [`Self::persist_every_bytes`] (that much when the node is idle). A chunk that starts
    /// inside a burst makes the node wait for the chunk and its flush.
    pub rest_share: f64,
    /// The smallest copy chunk: what the copy writes per turn when the node never rests (a
    /// node catching up, writing back to back), so that the copy still makes progress. Such a
    /// node's commits nearly all meet a chunk, so this sets what they wait: release runs of
    /// `reclaim simulate --block-kib 64`, 545 MiB retained, writer flat out, interval policy,
    /// steady-state p99 of the commits during rewrites against 3.7 ms (redb) and 3.2 ms (sled)
    /// with compaction off: redb 6.05 / 5.72 ms with 128 KiB, 4.65 / 4.39 ms with 32 KiB,
    /// 3.95 ms with 16 KiB (whose copy took 30 s instead of 19–21 s); sled 7.95 ms with
    /// 128 KiB, 4.44 ms with 32 KiB (its copy 14 s instead of 23 s). An adapter whose chunks
    /// cost more may set less: sled's takes 16 KiB (`reclaim_sled::SMALLEST_COPY_CHUNK_BYTES`).
    pub min_chunk_bytes: u64,
    /// How long a copy chunk waits at most for the node to rest before it goes anyway.
    pub rest_wait: Duration,
    /// The catch-up (replay what arrived, make it durable; again) ends, and the switch takes
    /// the write lock, once a round replayed at most this many bytes ...
    pub switch_backlog_bytes: u64,
    /// ... or took at most this long: the switch then has about one such round to do while
    /// writers wait, so this bounds their pause.
    pub switch_round: Duration,
    /// A catch-up that has not got there after this long gives up with
    /// [`StorageError::Overtaken`] (the writes arrive faster than they can be replayed) rather
    /// than make writers wait for the backlog; the old generation stays live.
    pub catch_up_limit: Duration,
    /// How long retiring the old generation waits for its last reader.
    pub retire_wait: Duration,
    /// The old generation's large files are shrunk by this many bytes at a time before they
    /// are removed ([`super::GenerationLayout::remove_gradually`]): freeing a file's blocks
    /// holds the file system's journal, and every fsync of the node's commits waits behind it.
    /// What a sync waits grows with the step, not with the pace: at about 180 MiB a second
    /// (a GiB in 5.5 s), a prober's longest `fdatasync` was 6.5 ms with 16 MiB steps and
    /// 1.6 ms with 4 MiB steps, against 96.6 ms for the whole GiB at once and 9.1 ms for the
    /// earlier 32 MiB steps with 5 ms pauses (`scripts/retire`, docs/benchmarks-retire.md).
    pub retire_step_bytes: u64,
    /// Pause between two shrinking steps.
    pub retire_step_pause: Duration,
}

impl Default for RewriteSettings {
    fn default() -> Self {
        Self {
            write_once: true,
            fold_back_limit_bytes: 64 << 20,
            capture_limit_bytes: 512 << 20,
            scan_entries: 64,
            persist_every_bytes: 1 << 20,
            rest_share: 0.5,
            min_chunk_bytes: 32 << 10,
            rest_wait: Duration::from_millis(100),
            switch_backlog_bytes: 1 << 20,
            switch_round: Duration::from_millis(20),
            catch_up_limit: Duration::from_secs(60),
            retire_wait: Duration::from_secs(30),
            retire_step_bytes: 4 << 20,
            retire_step_pause: Duration::from_millis(20),
        }
    }
}

/// What the last online rewrite did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RewriteStats {
    /// The generation it made live.
    pub generation: u64,
    /// Entries copied from the old generation.
    pub entries_copied: u64,
    /// Key and value bytes copied.
    pub bytes_copied: u64,
    /// Entries the copy read but left to the replay (written or deleted since it began).
    pub entries_skipped: u64,
    /// Write batches captured during the copy and replayed onto the new generation.
    pub batches_replayed: u64,
    /// How long writers waited for the switch (readers never wait).
    pub writers_paused: Duration,
    /// The whole rewrite, from the first copy step to the old generation's removal.
    pub duration: Duration,
}

/// Where a copy's chunks go: the entries of a full chunk (`true`) or of a step's end (`false`).
type ChunkWriter<'a> =
    dyn FnMut(Vec<KeyValue>, bool, &mut RewriteStats) -> Result<(), StorageError> + 'a;

/// The generation writes go to and, while a write-once rewrite builds it, the frozen one.
type View<S> = (Arc<Generation<S>>, Option<Arc<Frozen<S>>>);

/// One generation: its number and the engine instance holding it.
#[derive(Debug)]
struct Generation<S> {
    number: u64,
    store: S,
}

/// The generation a write-once rewrite froze: read where the generation it builds neither
/// holds a key nor deleted it.
#[derive(Debug)]
struct Frozen<S> {
    generation: Arc<Generation<S>>,
    shadow: Mutex<Shadow>,
}

/// A store kept as generations of an engine ([`GenerationEngine`]), whose compaction is the
/// online rewrite described in [`crate::rewrite`]: reads and writes continue while it runs.
/// Write-once (the engine has a [`SideKeyspace`]): writers wait for each copied chunk's write
/// and for a pointer swap, point reads never, scans for a write in flight. Replaying: writers
/// wait for the switch (a few flushes, not a copy), readers never.
///
/// Guarantees: every acknowledged write survives a crash at any point of a rewrite, and no
/// deleted key comes back; after a crash `CURRENT` names one live generation, and an
/// interrupted write-once rewrite (`BUILDING`) keeps its frozen and its new generation, served
/// together, until the next compaction finishes it; the others are removed at the next open.
/// A failed, interrupted or overtaken rewrite changes nothing, except a write-once one whose
/// writes meanwhile are too many to move back ([`RewriteSettings::fold_back_limit_bytes`]):
/// it stays in progress.
pub struct GenerationalStore<E: GenerationEngine> {
    engine: E,
    layout: GenerationLayout,
    /// Where writes go (the live generation, or the one a write-once rewrite builds) and,
    /// while a write-once rewrite builds it, the generation it froze: changed together.
    view: RwLock<View<E::Store>>,
    /// Held by every write (exclusively), and by a scan while a write-once rewrite builds (so
    /// that it sees each batch whole); `Some` while a rewrite captures writes.
    writer: RwLock<Option<Arc<WriteCapture>>>,
    /// One rewrite at a time.
    rewriting: Mutex<()>,
    /// What the last successful rewrite did.
    last_rewrite: Mutex<Option<RewriteStats>>,
    /// The node's writes, timed, so that a copy writes its chunks between them.
    gaps: CommitGaps,
    settings: RewriteSettings,
    _lock: StoreDirLock,
}

impl<E: GenerationEngine> std::fmt::Debug for GenerationalStore<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenerationalStore")
            .field("engine", &self.engine.name())
            .field("root", &self.layout.root())
            .field("generation", &self.generation())
            .finish()
    }
}

#[cfg(feature = "testing")]
fn crash_point(step: &'static str) {
    crate::fault::crash_point(step);
}

#[cfg(not(feature = "testing"))]
fn crash_point(_step: &'static str) {}

impl<E: GenerationEngine> GenerationalStore<E> {
    /// Opens (creating if needed) the store in directory `root` with default settings.
    pub fn open(root: impl AsRef<Path>, engine: E) -> Result<Self, StorageError> {
        Self::open_with(root, engine, RewriteSettings::default())
    }

    /// Opens (creating if needed) the store in directory `root`: locks it, removes every
    /// generation `CURRENT` does not name (a rewrite a crash interrupted, or an old generation
    /// not yet removed) and opens the live one. An existing store whose pointer or live
    /// generation is lost is refused ([`StorageError::Missing`]), never replaced by an empty one.
    pub fn open_with(
        root: impl AsRef<Path>,
        engine: E,
        settings: RewriteSettings,
    ) -> Result<Self, StorageError> {
        let root = root.as_ref();
        let name = engine.name();
        let lock = open_store_dir(root, name)?;
        let layout = GenerationLayout::new(root);
        let number = match layout.read_current(name)? {
            Some(number) => number,
            None if lock.is_new() => 1,
            None => {
                return Err(StorageError::Missing {
                    engine: name,
                    path: layout.current_path(),
                    what: "generation pointer (CURRENT)",
                    detail: "it does not exist".into(),
                });
            }
        };
        // A write-once rewrite a crash interrupted: its new generation holds the writes made
        // since it began and is kept (with the one `CURRENT` names, frozen) until a compaction
        // finishes it. A pointer naming `CURRENT`'s generation or an older one is stale: the
        // switch happened.
        let building = match layout.read_building(name)? {
            Some(built) if built > number => Some(built),
            Some(_) => {
                layout.clear_building()?;
                None
            }
            None => None,
        };
        for stale in layout.generations()? {
            if stale != number && Some(stale) != building {
                let dir = layout.dir(stale);
                info!(engine = name, dir = %dir.display(), "removing a generation that is not live");
                engine.forget(&dir);
                layout.remove(stale)?;
            }
        }
        let dir = layout.dir(number);
        let store = if lock.is_new() {
            std::fs::create_dir_all(&dir)
                .map_err(|e| StorageError::io_at("create generation", &dir, e))?;
            let store = engine.open(&dir, true)?;
            engine.persist(&store)?;
            layout.set_current(number)?;
            store
        } else {
            let dir_name = GenerationLayout::dir_name(number);
            lock.require(name, &dir_name, EntryKind::Dir, "live generation")?;
            engine.open(&dir, false)?
        };
        let mut live = Generation { number, store };
        let mut frozen = None;
        if let Some(built) = building {
            let dir = layout.dir(built);
            let dir_name = GenerationLayout::dir_name(built);
            lock.require(name, &dir_name, EntryKind::Dir, "generation being built")?;
            let side = engine
                .side_keyspace()
                .ok_or_else(|| StorageError::Corrupt {
                    engine: name,
                    path: layout.building_path(),
                    detail:
                        "a write-once rewrite was in progress, but the engine keeps no tombstones"
                            .into(),
                })?;
            let target = engine.open(&dir, false)?;
            let shadow = Shadow::recovered(side.side_entries(&target)?)?;
            info!(
                engine = name,
                frozen = number,
                building = built,
                "opened a store whose online rewrite was interrupted; the next compaction finishes it"
            );
            let old = std::mem::replace(
                &mut live,
                Generation {
                    number: built,
                    store: target,
                },
            );
            frozen = Some(Arc::new(Frozen {
                generation: Arc::new(old),
                shadow: Mutex::new(shadow),
            }));
        }
        Ok(Self {
            engine,
            layout,
            view: RwLock::new((Arc::new(live), frozen)),
            writer: RwLock::new(None),
            rewriting: Mutex::new(()),
            last_rewrite: Mutex::new(None),
            gaps: CommitGaps::default(),
            settings,
            _lock: lock,
        })
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        self.layout.root()
    }

    /// The live generation's number, the one `CURRENT` names (one more after each rewrite).
    pub fn generation(&self) -> u64 {
        match &*self.view.read() {
            (_, Some(frozen)) => frozen.generation.number,
            (live, None) => live.number,
        }
    }

    /// True while a write-once rewrite has a generation frozen (it runs, or it was interrupted
    /// and the next compaction finishes it).
    pub fn rewrite_in_progress(&self) -> bool {
        self.view.read().1.is_some()
    }

    /// The engine.
    pub fn engine(&self) -> &E {
        &self.engine
    }

    /// Runs `f` on the engine instance writes go to (the live generation's, or the one a
    /// write-once rewrite builds).
    pub fn with_live<T>(&self, f: impl FnOnce(&E::Store) -> T) -> T {
        let live = self.live();
        f(&live.store)
    }

    /// What the last successful rewrite did.
    pub fn last_rewrite(&self) -> Option<RewriteStats> {
        self.last_rewrite.lock().clone()
    }

    /// Closes the store through the engine's own close (e.g. to record a clean close and let
    /// go of cached handles), after the last reader is done with it.
    pub fn close(self) -> Result<(), StorageError> {
        let Self {
            engine,
            layout,
            view,
            settings,
            ..
        } = self;
        let (live, frozen) = view.into_inner();
        let mut generations = vec![live];
        if let Some(frozen) = frozen {
            match wait_unique(frozen, settings.retire_wait) {
                Ok(frozen) => generations.push(frozen.generation),
                Err(_) => {
                    return Err(StorageError::Closed {
                        reason: "a reader still holds the frozen generation".into(),
                    });
                }
            }
        }
        let mut closed = Ok(());
        for generation in generations {
            let number = generation.number;
            let result = match wait_unique(generation, settings.retire_wait) {
                Ok(generation) => engine.close(generation.store, &layout.dir(number)),
                Err(_) => Err(StorageError::Closed {
                    reason: "a reader still holds the live generation".into(),
                }),
            };
            if closed.is_ok() {
                closed = result;
            }
        }
        closed
    }

    fn live(&self) -> Arc<Generation<E::Store>> {
        Arc::clone(&self.view.read().0)
    }

    /// Applies every write captured so far to `target`, in order, merged into writes of about
    /// `persist_every_bytes`; returns the bytes they held and how many batches there were.
    /// With `durable_chunks`, each such write is also made durable before the next, so that a
    /// long backlog is flushed in steps, not in one fsync that the node's own commits would
    /// queue behind.
    fn replay(
        &self,
        capture: &WriteCapture,
        target: &E::Store,
        durable_chunks: bool,
    ) -> Result<(u64, u64), StorageError> {
        let Some((batches, bytes)) = capture.drain() else {
            return Err(self.overtaken());
        };
        let count = batches.len() as u64;
        // Merged writes, in order (later operations win, as across separate writes): one
        // transaction per chunk instead of one per captured commit spares the engine the churn.
        let chunk_bytes = self.settings.persist_every_bytes.max(1);
        let mut merged = WriteBatch::new();
        let mut merged_bytes = 0u64;
        for batch in batches {
            merged_bytes += capture::batch_bytes(&batch);
            for op in batch.into_ops() {
                match op {
                    BatchOp::Put { key, value } => merged.put(key, value),
                    BatchOp::Delete { key } => merged.delete(key),
                    BatchOp::DeleteRange(range) => merged.delete_range(range),
                };
            }
            if merged_bytes >= chunk_bytes {
                target.write(std::mem::take(&mut merged), WriteOptions::BUFFERED)?;
                merged_bytes = 0;
                if durable_chunks {
                    self.engine.persist(target)?;
                }
            }
        }
        if !merged.is_empty() {
            target.write(merged, WriteOptions::BUFFERED)?;
        }
        Ok((bytes, count))
    }

    fn overtaken(&self) -> StorageError {
        StorageError::Overtaken {
            operation: "online rewrite",
            detail: format!(
                "more than {} MiB of writes arrived while it copied",
                self.settings.capture_limit_bytes >> 20
            ),
        }
    }

    /// Refuses with [`StorageError::NoSpace`] unless `needed` bytes plus the engine's reserve
    /// are free.
    fn ensure_free_space(&self, needed: u64) -> Result<(), StorageError> {
        let available = available_space(self.layout.root())?;
        let reserve = self.engine.free_space_reserve();
        if available < needed.saturating_add(reserve) {
            warn!(
                engine = self.engine.name(),
                available, needed, reserve, "online rewrite refused: too little free space"
            );
            return Err(StorageError::NoSpace {
                operation: "online rewrite",
            });
        }
        Ok(())
    }

    /// The online rewrite (see [`crate::rewrite`]).
    fn rewrite(&self, pacer: &dyn CompactionPacer) -> Result<RewriteStats, StorageError> {
        let _one_at_a_time = self.rewriting.lock();
        let started = Instant::now();
        let interrupted = self.view().1;
        if let Some(frozen) = interrupted {
            let live_estimate = live_estimate(&frozen.generation.store)?;
            return self.finish_write_once(frozen, pacer, started, live_estimate);
        }
        let old = self.live();
        let number = old.number + 1;
        let live_estimate = live_estimate(&old.store)?;
        // The copy holds the live data; a tenth more covers the engine's layout.
        self.ensure_free_space(live_estimate.map_or(0, |live| live.saturating_add(live / 10)))?;
        let dir = self.layout.dir(number);
        self.engine.forget(&dir);
        self.layout.remove(number)?;
        std::fs::create_dir_all(&dir)
            .map_err(|e| StorageError::io_at("create generation", &dir, e))?;
        let target = match self.engine.open(&dir, true) {
            Ok(target) => target,
            Err(e) => {
                self.discard(None, number, pacer);
                return Err(e);
            }
        };
        crash_point("rewrite.created");
        if self.write_once_side().is_some() {
            return self.begin_write_once(old, target, pacer, started, live_estimate);
        }
        let capture = Arc::new(WriteCapture::new(self.settings.capture_limit_bytes));
        *self.writer.write() = Some(Arc::clone(&capture));
        let mut stats = RewriteStats {
            generation: number,
            ..RewriteStats::default()
        };
        let copied = self.copy_and_catch_up(
            &old,
            &target,
            &capture,
            pacer,
            live_estimate.unwrap_or(u64::MAX),
            &mut stats,
        );
        let switched = match copied {
            Ok(()) => self.switch(target, &capture, &mut stats),
            Err(e) => Err((e, Some(target))),
        };
        metrics::counter!(crate::metric::REWRITE_BYTES_COPIED_TOTAL).increment(stats.bytes_copied);
        if let Err((e, target)) = switched {
            metrics::counter!(crate::metric::REWRITES_TOTAL, "result" => "abandoned").increment(1);
            *self.writer.write() = None;
            warn!(engine = self.engine.name(), generation = number, error = %e,
                "online rewrite abandoned; the old generation stays live");
            self.discard(target, number, pacer);
            return Err(e);
        }
        // The swap happened: `target` now lives in `self.view`; retire the old generation.
        crash_point("rewrite.switched");
        self.retire(old, pacer);
        crash_point("rewrite.retired");
        stats.duration = started.elapsed();
        self.finished(&stats);
        Ok(stats)
    }

    /// Logs, counts and keeps what a rewrite that switched did.
    fn finished(&self, stats: &RewriteStats) {
        info!(
            engine = self.engine.name(),
            generation = stats.generation,
            entries_copied = stats.entries_copied,
            entries_skipped = stats.entries_skipped,
            bytes_copied = stats.bytes_copied,
            batches_replayed = stats.batches_replayed,
            writers_paused_us = stats.writers_paused.as_micros() as u64,
            duration_ms = stats.duration.as_millis() as u64,
            "online rewrite finished"
        );
        metrics::counter!(crate::metric::REWRITES_TOTAL, "result" => "switched").increment(1);
        metrics::histogram!(crate::metric::REWRITE_WRITERS_PAUSED_SECONDS)
            .record(stats.writers_paused.as_secs_f64());
        *self.last_rewrite.lock() = Some(stats.clone());
    }

    /// The side keyspace a write-once rewrite keeps its tombstones in, when the settings ask
    /// for one and the engine has it.
    fn write_once_side(&self) -> Option<&dyn SideKeyspace<E::Store>> {
        if self.settings.write_once {
            self.engine.side_keyspace()
        } else {
            None
        }
    }

    /// Freezes `old` and sends every later write to `target` (the new generation, empty and
    /// durable): `BUILDING` names it first, so that a crash from here on finds both. Then
    /// copies and switches ([`Self::finish_write_once`]).
    fn begin_write_once(
        &self,
        old: Arc<Generation<E::Store>>,
        target: E::Store,
        pacer: &dyn CompactionPacer,
        started: Instant,
        live_estimate: Option<u64>,
    ) -> Result<RewriteStats, StorageError> {
        let number = old.number + 1;
        let named = self
            .engine
            .persist(&target)
            .and_then(|()| self.layout.set_building(number));
        if let Err(e) = named {
            warn!(engine = self.engine.name(), generation = number, error = %e,
                "online rewrite abandoned before it began; the old generation stays live");
            // A pointer renamed into place before a failed directory sync would name a
            // generation that is gone: only once it is removed may the generation go.
            match self.layout.clear_building() {
                Ok(()) => self.discard(Some(target), number, pacer),
                Err(clear) => {
                    warn!(error = %clear, "could not remove BUILDING; the generation it names stays for the next open");
                    drop(target);
                }
            }
            return Err(e);
        }
        crash_point("rewrite.building");
        let frozen = Arc::new(Frozen {
            generation: old,
            shadow: Mutex::new(Shadow::new(self.settings.capture_limit_bytes)),
        });
        {
            let _writes_wait = self.writer.write();
            let target = Arc::new(Generation {
                number,
                store: target,
            });
            *self.view.write() = (target, Some(Arc::clone(&frozen)));
        }
        debug!(
            engine = self.engine.name(),
            generation = number,
            "online rewrite: writes go to the new generation only"
        );
        self.finish_write_once(frozen, pacer, started, live_estimate)
    }

    /// Copies what `frozen` holds and nobody wrote or deleted since into the generation that
    /// writes go to, makes it durable and names it in `CURRENT` (the commit point), then
    /// retires `frozen`. On an error before the commit point both generations stay, reads and
    /// writes go on, and the next rewrite starts the copy over (skipping what is there).
    fn finish_write_once(
        &self,
        frozen: Arc<Frozen<E::Store>>,
        pacer: &dyn CompactionPacer,
        started: Instant,
        live_estimate: Option<u64>,
    ) -> Result<RewriteStats, StorageError> {
        let target = self.live();
        let number = target.number;
        let mut stats = RewriteStats {
            generation: number,
            ..RewriteStats::default()
        };
        let committed =
            self.copy_and_commit(&frozen, &target.store, pacer, live_estimate, &mut stats);
        metrics::counter!(crate::metric::REWRITE_BYTES_COPIED_TOTAL).increment(stats.bytes_copied);
        if let Err(e) = committed {
            match self.fold_back(&frozen) {
                Ok(true) => {
                    metrics::counter!(crate::metric::REWRITES_TOTAL, "result" => "abandoned")
                        .increment(1);
                    warn!(engine = self.engine.name(), generation = number, error = %e,
                        "online rewrite abandoned; the writes made meanwhile are back in the old generation, which stays live");
                    drop(frozen);
                    match wait_unique(target, self.settings.retire_wait) {
                        Ok(target) => self.discard(Some(target.store), number, pacer),
                        Err(_) => self.discard(None, number, pacer),
                    }
                }
                Ok(false) => {
                    metrics::counter!(crate::metric::REWRITES_TOTAL, "result" => "interrupted")
                        .increment(1);
                    warn!(engine = self.engine.name(), generation = number, error = %e,
                        "online rewrite interrupted; reads and writes go on, and the next compaction finishes it");
                }
                Err(fold) => {
                    metrics::counter!(crate::metric::REWRITES_TOTAL, "result" => "interrupted")
                        .increment(1);
                    warn!(engine = self.engine.name(), generation = number, error = %e, fold_back_error = %fold,
                        "online rewrite interrupted and its writes could not be moved back; reads and writes go on, and the next compaction finishes it");
                }
            }
            return Err(e);
        }
        let paused = Instant::now();
        {
            let _writes_wait = self.writer.write();
            self.view.write().1 = None;
        }
        stats.writers_paused = paused.elapsed();
        if let Err(e) = self.layout.clear_building() {
            warn!(error = %e, "could not remove BUILDING; the next open does");
        }
        if let Some(side) = self.engine.side_keyspace()
            && let Err(e) = side.clear_side(&target.store)
        {
            warn!(error = %e, "could not clear the rewrite's tombstones; the next rewrite leaves them behind");
        }
        drop(target);
        crash_point("rewrite.switched");
        let old = Arc::clone(&frozen.generation);
        drop(frozen);
        self.retire(old, pacer);
        crash_point("rewrite.retired");
        stats.duration = started.elapsed();
        self.finished(&stats);
        Ok(stats)
    }

    /// Gives up the write-once rewrite of `frozen`: holding the write lock, writes the writes
    /// made since it began into the old generation, durably, makes it the one writes go to
    /// again and removes `BUILDING`. False (nothing changed) when they are not all known or
    /// hold more than [`RewriteSettings::fold_back_limit_bytes`].
    fn fold_back(&self, frozen: &Arc<Frozen<E::Store>>) -> Result<bool, StorageError> {
        let _writes_wait = self.writer.write();
        let target = self.live();
        let batch = {
            let shadow = frozen.shadow.lock();
            if shadow.batch_bytes() > self.settings.fold_back_limit_bytes {
                return Ok(false);
            }
            match shadow.fold_back(|key| target.store.get(key))? {
                Some(batch) => batch,
                None => return Ok(false),
            }
        };
        // Nothing to write when nothing was (an engine that refuses any write on a full disk
        // must still be able to give up a rewrite that ran out of room).
        if !batch.is_empty() {
            frozen
                .generation
                .store
                .write(batch, WriteOptions::DURABLE)?;
        }
        crash_point("rewrite.folded_back");
        // From here a crash finds both generations agreeing on every write; without the
        // pointer it finds the old one alone.
        self.layout.clear_building()?;
        *self.view.write() = (Arc::clone(&frozen.generation), None);
        Ok(true)
    }

    /// The copy of a write-once rewrite, up to its commit point (`CURRENT` names the new
    /// generation).
    fn copy_and_commit(
        &self,
        frozen: &Frozen<E::Store>,
        target: &E::Store,
        pacer: &dyn CompactionPacer,
        live_estimate: Option<u64>,
        stats: &mut RewriteStats,
    ) -> Result<(), StorageError> {
        let mut since_persist = 0u64;
        let mut write_chunk = |entries: Vec<KeyValue>,
                               chunk_full: bool,
                               stats: &mut RewriteStats|
         -> Result<(), StorageError> {
            since_persist += self.write_unshadowed(frozen, target, entries, stats)?;
            // Made durable a chunk at a time, so that no commit of the node (they make the
            // same file durable) waits for more than a chunk of the copy.
            if since_persist > 0
                && (chunk_full || since_persist >= self.settings.persist_every_bytes)
            {
                self.engine.persist(target)?;
                since_persist = 0;
            }
            Ok(())
        };
        self.copy_steps(
            &frozen.generation.store,
            pacer,
            live_estimate.unwrap_or(u64::MAX),
            stats,
            &|_| 0,
            &mut write_chunk,
        )?;
        self.engine.persist(target)?;
        crash_point("rewrite.copied");
        debug!(
            bytes_copied = stats.bytes_copied,
            entries_skipped = stats.entries_skipped,
            "online rewrite: copy done, switching"
        );
        self.name_live(stats.generation)?;
        crash_point("rewrite.pointer_written");
        Ok(())
    }

    /// Names generation `number` in `CURRENT` (a rewrite's commit point). A pointer renamed
    /// into place before an error (a failed directory fsync) counts as named: what it names
    /// now is what a crash would open.
    fn name_live(&self, number: u64) -> Result<(), StorageError> {
        if let Err(e) = self.layout.set_current(number) {
            if self.layout.read_current(self.engine.name()).ok().flatten() != Some(number) {
                return Err(e);
            }
            warn!(error = %e, "the generation pointer names the new generation, but making it durable failed");
        }
        Ok(())
    }

    /// Writes to `target` the copied `entries` that nobody wrote or deleted since the rewrite
    /// began, holding the write lock so that no write lands between the check and the copy;
    /// returns the bytes written.
    fn write_unshadowed(
        &self,
        frozen: &Frozen<E::Store>,
        target: &E::Store,
        entries: Vec<KeyValue>,
        stats: &mut RewriteStats,
    ) -> Result<u64, StorageError> {
        if entries.is_empty() {
            return Ok(0);
        }
        let writes_wait = self.writer.write();
        let known: Vec<Option<bool>> = {
            let shadow = frozen.shadow.lock();
            entries
                .iter()
                .map(|(key, _)| {
                    if shadow.deleted(key) {
                        Some(true)
                    } else {
                        shadow.written(key)
                    }
                })
                .collect()
        };
        let mut batch = WriteBatch::new();
        let mut bytes = 0u64;
        for ((key, value), shadowed) in entries.into_iter().zip(known) {
            let shadowed = match shadowed {
                Some(shadowed) => shadowed,
                None => target.get(&key)?.is_some(),
            };
            if shadowed {
                stats.entries_copied -= 1;
                stats.entries_skipped += 1;
                continue;
            }
            bytes += (key.len() + value.len()) as u64;
            batch.put(key, value);
        }
        if !batch.is_empty() {
            target.write(batch, WriteOptions::BUFFERED)?;
        }
        // A writer that waited gets the lock before the copy's next chunk does: an unpaced copy
        // takes it back at once, and unfairly the node's commits waited behind several chunks
        // (redb, 545 MiB live, writer flat out: their p99 during rewrites was 36.9 ms, 24.3 ms
        // with the lock handed over; one release run each).
        RwLockWriteGuard::unlock_fair(writes_wait);
        Ok(bytes)
    }

    /// Copies `old` into `target` step by step with the capture running, replaying the
    /// captured writes after each chunk, then catches up until the backlog is short.
    fn copy_and_catch_up(
        &self,
        old: &Generation<E::Store>,
        target: &E::Store,
        capture: &WriteCapture,
        pacer: &dyn CompactionPacer,
        live_estimate: u64,
        stats: &mut RewriteStats,
    ) -> Result<(), StorageError> {
        let mut since_persist = 0u64;
        // Each chunk is followed by the writes captured meanwhile (replayed after the copied
        // values, so a newer value wins) and made durable: the node's commit that meets a
        // flush then waits for one chunk and a chunk's worth of its own writes, not for a whole
        // step and the backlog of a step (seconds of the node's writes when the copy is capped).
        let mut write_chunk = |mut entries: Vec<KeyValue>,
                               chunk_full: bool,
                               stats: &mut RewriteStats|
         -> Result<(), StorageError> {
            // Entries read with an earlier chunk's page: a key the node wrote since, and whose
            // write an earlier replay applied, keeps that newer state.
            let touched = capture.drop_touched(&mut entries) as u64;
            stats.entries_copied -= touched;
            stats.entries_skipped += touched;
            let bytes = entries_bytes(&entries);
            if !entries.is_empty() {
                target.write(puts(entries), WriteOptions::BUFFERED)?;
            }
            let (replayed_bytes, replayed) = self.replay(capture, target, true)?;
            stats.batches_replayed += replayed;
            since_persist += bytes + replayed_bytes;
            if chunk_full || since_persist >= self.settings.persist_every_bytes {
                self.engine.persist(target)?;
                since_persist = 0;
            }
            Ok(())
        };
        // Keys written or deleted since the capture began get their state from the replay:
        // copying them would write them twice.
        let drop_touched = |page: &mut Vec<KeyValue>| capture.drop_touched(page);
        self.copy_steps(
            &old.store,
            pacer,
            live_estimate,
            stats,
            &drop_touched,
            &mut write_chunk,
        )?;
        crash_point("rewrite.copied");
        self.engine.persist(target)?;
        debug!(
            bytes_copied = stats.bytes_copied,
            "online rewrite: copy done, catching up"
        );
        // Catch up in rounds, each made durable, until a round is short: the switch then does
        // about one more round while writers wait.
        let deadline = Instant::now() + self.settings.catch_up_limit;
        loop {
            let round = Instant::now();
            let (replayed_bytes, replayed) = self.replay(capture, target, true)?;
            stats.batches_replayed += replayed;
            self.engine.persist(target)?;
            if replayed_bytes <= self.settings.switch_backlog_bytes
                || round.elapsed() <= self.settings.switch_round
            {
                break;
            }
            if Instant::now() >= deadline {
                return Err(StorageError::Overtaken {
                    operation: "online rewrite",
                    detail: format!(
                        "writes kept arriving faster than they could be replayed for {:?}",
                        self.settings.catch_up_limit
                    ),
                });
            }
        }
        crash_point("rewrite.caught_up");
        debug!("online rewrite: caught up, switching");
        Ok(())
    }

    /// Copies every entry of `source` in key order, a pacer step at a time: each scanned page
    /// less what `drop_page` removes is gathered into chunks of about
    /// [`RewriteSettings::persist_every_bytes`], and `write_chunk` gets each full chunk (`true`)
    /// and what is left at the end of each step (`false`, maybe nothing). Under an I/O cap the
    /// copy keeps its pace a chunk at a time.
    fn copy_steps(
        &self,
        source: &E::Store,
        pacer: &dyn CompactionPacer,
        live_estimate: u64,
        stats: &mut RewriteStats,
        drop_page: &dyn Fn(&mut Vec<KeyValue>) -> usize,
        write_chunk: &mut ChunkWriter<'_>,
    ) -> Result<(), StorageError> {
        let step_bytes = pacer.step_bytes().max(1);
        let mut planner = ChunkPlanner::new(
            &self.gaps,
            self.settings.min_chunk_bytes,
            self.settings.persist_every_bytes,
            self.settings.rest_share,
            self.settings.rest_wait,
        );
        let mut remaining = Some(KeyRange::full());
        let mut first = true;
        // The largest entry of the last scan, which sizes the next one.
        let mut last_page_largest = None;
        while let Some(range) = remaining.take() {
            if !first {
                pacer.before_step()?;
            }
            first = false;
            // A step's first chunk, like every other, goes when the node rests.
            let mut chunk_bytes = planner.turn();
            // The copy must never eat the space the node's own writes need: room for this
            // step on top of the engine's reserve, or the copy stops.
            let left = live_estimate.saturating_sub(stats.bytes_copied);
            self.ensure_free_space(step_bytes.min(left).max(1))?;
            let mut chunk: Vec<KeyValue> = Vec::new();
            let mut chunk_filled = 0u64;
            let mut step = 0u64;
            let step_started = Instant::now();
            let mut cursor = Some(range);
            while let Some(range) = cursor.take() {
                // No more than the step still needs, nor than the chunk still holds.
                let wanted = step_bytes
                    .saturating_sub(step)
                    .min(chunk_bytes.saturating_sub(chunk_filled));
                let limit = scan_limit(self.settings.scan_entries, wanted, last_page_largest);
                let mut page: Vec<KeyValue> = source.scan(&range, ScanOrder::Ascending, limit)?;
                let full_page = page.len() == limit;
                last_page_largest = page.iter().map(|(k, v)| (k.len() + v.len()) as u64).max();
                let next = page.last().map(|(k, _)| key_successor(k));
                stats.entries_skipped += drop_page(&mut page) as u64;
                let bytes = entries_bytes(&page);
                step += bytes;
                chunk_filled += bytes;
                stats.entries_copied += page.len() as u64;
                chunk.extend(page);
                // A page may hold several chunks: where small entries give way to large ones,
                // a scan sized by the small ones reads up to `scan_entries` large ones. Each
                // chunk goes at its planned size and the rest waits for the next turn, so that
                // no write holds the node's writes for more than a chunk and one entry (sled,
                // 545 MiB live, writer flat out, one run with debug logs: whole pages of up to
                // 2.9 MiB held the write lock for 24-57 ms, and each of the 11 node writes over
                // 30 ms during its rewrites had waited 17-55 ms for one).
                while chunk_filled >= chunk_bytes && !chunk.is_empty() {
                    let (head, head_bytes) = split_off_chunk(&mut chunk, chunk_bytes);
                    chunk_filled -= head_bytes;
                    write_chunk(head, true, stats)?;
                    planner.written(head_bytes);
                    // Under an I/O cap, a chunk at a time at about the cap rather than the
                    // whole step at full speed and a wait: every commit's flush waits behind
                    // what a copy at full speed wrote (sled, 545 MiB live, writer flat out: the
                    // disk's cache flushes took 50-100 ms while an unpaced copy ran, 0.02 ms
                    // between rewrites).
                    pacer.keep_pace(step - chunk_filled, step_started)?;
                    // The next chunk goes when the node rests, sized to that rest.
                    chunk_bytes = planner.turn();
                }
                if let (true, Some(next)) = (full_page, next) {
                    let rest = range.with_start_at_least(&next);
                    if step >= step_bytes {
                        remaining = Some(rest);
                    } else {
                        cursor = Some(rest);
                    }
                }
            }
            write_chunk(chunk, false, stats)?;
            pacer.step_done(step);
            stats.bytes_copied += step;
            crash_point("rewrite.copy_step");
        }
        let turns = planner.turns;
        debug!(
            node_idle = turns.idle,
            node_resting = turns.rest,
            node_busy = turns.timed_out,
            "online rewrite: copy chunks written between the node's writes"
        );
        Ok(())
    }

    /// Holding the write lock (writers wait, readers go on): replays the last captured writes,
    /// makes `target` durable, names it in `CURRENT` (the commit point) and makes it live.
    /// On an error before the commit point, gives `target` back.
    fn switch(
        &self,
        target: E::Store,
        capture: &WriteCapture,
        stats: &mut RewriteStats,
    ) -> Result<(), (StorageError, Option<E::Store>)> {
        let mut writer = self.writer.write();
        let paused = Instant::now();
        let committed = (|| {
            let (backlog, replayed) = self.replay(capture, &target, false)?;
            stats.batches_replayed += replayed;
            debug!(
                backlog,
                replayed, "online rewrite: last writes replayed under the write lock"
            );
            self.engine.persist(&target)?;
            crash_point("rewrite.final_persisted");
            self.name_live(stats.generation)
        })();
        if let Err(e) = committed {
            *writer = None;
            return Err((e, Some(target)));
        }
        crash_point("rewrite.pointer_written");
        self.view.write().0 = Arc::new(Generation {
            number: stats.generation,
            store: target,
        });
        *writer = None;
        stats.writers_paused = paused.elapsed();
        Ok(())
    }

    fn retire(&self, old: Arc<Generation<E::Store>>, pacer: &dyn CompactionPacer) {
        let number = old.number;
        let dir = self.layout.dir(number);
        match wait_unique(old, self.settings.retire_wait) {
            Ok(generation) => {
                let closing = Instant::now();
                if let Err(e) = self.engine.retire(generation.store, &dir) {
                    warn!(dir = %dir.display(), error = %e, "closing the old generation failed");
                }
                debug!(
                    generation = number,
                    close_ms = closing.elapsed().as_millis() as u64,
                    "online rewrite: old generation closed"
                );
                let removing = Instant::now();
                let removed = self.remove_in_steps(number, pacer);
                debug!(
                    generation = number,
                    remove_ms = removing.elapsed().as_millis() as u64,
                    "online rewrite: old generation removed"
                );
                if let Err(e) = removed {
                    // Not fatal: the next open removes it.
                    warn!(dir = %dir.display(), error = %e, "could not remove the old generation");
                }
            }
            Err(_) => {
                warn!(dir = %dir.display(), "the old generation still has readers; it is removed at the next open");
            }
        }
    }

    /// Removes generation `number` in the settings' retire steps, all at once when the
    /// compactor is stopping.
    fn remove_in_steps(
        &self,
        number: u64,
        pacer: &dyn CompactionPacer,
    ) -> Result<(), StorageError> {
        self.layout.remove_gradually(
            number,
            self.settings.retire_step_bytes,
            self.settings.retire_step_pause,
            &|| pacer.stopping(),
        )
    }

    /// Removes a new generation that will not become live.
    fn discard(&self, target: Option<E::Store>, number: u64, pacer: &dyn CompactionPacer) {
        crash_point("rewrite.abandoned");
        let dir = self.layout.dir(number);
        if let Some(target) = target
            && let Err(e) = self.engine.retire(target, &dir)
        {
            warn!(dir = %dir.display(), error = %e, "closing an abandoned generation failed");
        }
        self.engine.forget(&dir);
        // An abandoned copy may be nearly as large as the live data: freed in steps like an
        // old generation, so that the node's syncs do not wait for all of it at once.
        if let Err(e) = self.remove_in_steps(number, pacer) {
            warn!(dir = %dir.display(), error = %e, "could not remove an abandoned generation; the next open removes it");
        }
    }
}

/// What the live data of `store` is thought to be: its own figure, or its size less what it
/// says is reclaimable; `None` when it cannot tell (the copy is then checked step by step only).
fn live_estimate<S: KvStore>(store: &S) -> Result<Option<u64>, StorageError> {
    let space = store.space_report()?;
    Ok(space.live_bytes.or_else(|| {
        space
            .reclaimable
            .map(|reclaimable| space.on_disk.saturating_sub(reclaimable))
    }))
}

/// `batch` without its values: what the shadow of a write-once rewrite records.
fn keys_of(batch: &WriteBatch) -> WriteBatch {
    let mut keys = WriteBatch::new();
    for op in batch.ops() {
        match op {
            BatchOp::Put { key, .. } => keys.put(key.clone(), Vec::new()),
            BatchOp::Delete { key } => keys.delete(key.clone()),
            BatchOp::DeleteRange(range) => keys.delete_range(range.clone()),
        };
    }
    keys
}

/// Key and value bytes of `entries`.
fn entries_bytes(entries: &[KeyValue]) -> u64 {
    entries
        .iter()
        .map(|(k, v)| (k.len() + v.len()) as u64)
        .sum()
}

/// A batch putting every entry.
fn puts(entries: Vec<KeyValue>) -> WriteBatch {
    let mut batch = WriteBatch::new();
    for (key, value) in entries {
        batch.put(key, value);
    }
    batch
}

/// Takes from the front of `chunk` the entries that first reach `limit` bytes (at least one
/// entry; all of them when they hold less), and returns them with their bytes.
fn split_off_chunk(chunk: &mut Vec<KeyValue>, limit: u64) -> (Vec<KeyValue>, u64) {
    let mut bytes = 0u64;
    let mut taken = 0;
    for (key, value) in chunk.iter() {
        if bytes >= limit && taken > 0 {
            break;
        }
        bytes += (key.len() + value.len()) as u64;
        taken += 1;
    }
    let rest = chunk.split_off(taken);
    (std::mem::replace(chunk, rest), bytes)
}

/// Entries the copy's next scan asks for: about `wanted` bytes at the size of the largest
/// entry of the last scan (neighbouring keys tend to hold values of one kind), between 1 and
/// `max_entries`. Before any entry is seen, a few: the first values may be large.
fn scan_limit(max_entries: usize, wanted: u64, last_page_largest: Option<u64>) -> usize {
    const FIRST_SCAN_ENTRIES: usize = 8;
    let max_entries = max_entries.max(1);
    let Some(largest) = last_page_largest else {
        return FIRST_SCAN_ENTRIES.min(max_entries);
    };
    let fitting = wanted.div_ceil(largest.max(1));
    usize::try_from(fitting).map_or(max_entries, |n| n.clamp(1, max_entries))
}

/// Waits until `shared` has no other holder, then takes it; gives it back after `wait`.
fn wait_unique<T>(mut shared: Arc<T>, wait: Duration) -> Result<T, Arc<T>> {
    let deadline = Instant::now() + wait;
    loop {
        match Arc::try_unwrap(shared) {
            Ok(value) => return Ok(value),
            Err(still) if Instant::now() < deadline => {
                shared = still;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(still) => return Err(still),
        }
    }
}

impl<E: GenerationEngine> GenerationalStore<E> {
    /// The generation writes go to and, while a write-once rewrite builds it, the frozen one.
    fn view(&self) -> View<E::Store> {
        self.view.read().clone()
    }

    /// A scan while a write-once rewrite builds `head` from `frozen` (no write in flight): the
    /// first `limit` entries of `range` of `head` and of what `frozen` holds and nobody deleted
    /// since, merged (`head` wins a key both hold). A key `frozen` holds beyond `head`'s first
    /// `limit` entries may be in `head` too; it then sorts after all of them and is left out.
    fn scan_through(
        head: &E::Store,
        frozen: &Frozen<E::Store>,
        range: &KeyRange,
        order: ScanOrder,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StorageError> {
        if range.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let ours = head.scan(range, order, limit)?;
        let mut theirs: Vec<KeyValue> = Vec::new();
        let mut rest = Some(range.clone());
        while let Some(part) = rest.take() {
            let page = frozen.generation.store.scan(&part, order, limit)?;
            let full = page.len() == limit;
            let shadow = frozen.shadow.lock();
            let last = page.last().map(|(key, _)| key.clone());
            theirs.extend(page.into_iter().filter(|(key, _)| !shadow.deleted(key)));
            let (true, Some(last)) = (full && theirs.len() < limit, last) else {
                break;
            };
            // The next page, past a deleted range that holds the last key whole.
            let next = match order {
                ScanOrder::Ascending => {
                    let next = key_successor(&last);
                    match shadow.deleted_range_holding(&next).map(|r| r.end()) {
                        Some(None) => break,
                        Some(Some(end)) => part.with_start_at_least(end),
                        None => part.with_start_at_least(&next),
                    }
                }
                ScanOrder::Descending => {
                    match shadow.deleted_range_holding(&last).map(|r| r.start()) {
                        Some(None) => break,
                        Some(Some(start)) => part.with_end_at_most(start),
                        None => part.with_end_at_most(&last),
                    }
                }
            };
            if !next.is_empty() {
                rest = Some(next);
            }
        }
        Ok(merge_pages(ours, theirs, order, limit))
    }
}

/// The first `limit` entries of two pages sorted in `order`; `ours` wins a key both hold.
fn merge_pages(
    ours: Vec<KeyValue>,
    theirs: Vec<KeyValue>,
    order: ScanOrder,
    limit: usize,
) -> Vec<KeyValue> {
    let mut merged = Vec::with_capacity(limit.min(ours.len() + theirs.len()));
    let mut ours = ours.into_iter().peekable();
    let mut theirs = theirs.into_iter().peekable();
    while merged.len() < limit {
        let take_ours = match (ours.peek(), theirs.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((a, _)), Some((b, _))) => {
                if a == b {
                    theirs.next();
                    true
                } else {
                    (a < b) == (order == ScanOrder::Ascending)
                }
            }
        };
        let next = if take_ours {
            ours.next()
        } else {
            theirs.next()
        };
        merged.extend(next);
    }
    merged
}

impl<E: GenerationEngine> KvRead for GenerationalStore<E> {
    /// While a write-once rewrite runs: the new generation's value, else none if the node
    /// deleted the key since the rewrite began, else the frozen generation's.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        let (live, frozen) = self.view();
        if let Some(value) = live.store.get(key)? {
            return Ok(Some(value));
        }
        match frozen {
            Some(frozen) if !frozen.shadow.lock().deleted(key) => frozen.generation.store.get(key),
            _ => Ok(None),
        }
    }

    /// While a write-once rewrite runs, a scan waits for a write in flight (so that it sees
    /// each batch whole) and merges both generations: the new generation winning a key both
    /// hold, the frozen one's entries under a tombstone left out.
    fn scan(
        &self,
        range: &KeyRange,
        order: ScanOrder,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StorageError> {
        let (live, frozen) = self.view();
        if frozen.is_none() {
            return live.store.scan(range, order, limit);
        }
        let _no_write_in_flight = self.writer.read();
        match self.view() {
            (live, Some(frozen)) => Self::scan_through(&live.store, &frozen, range, order, limit),
            (live, None) => live.store.scan(range, order, limit),
        }
    }
}

impl<E: GenerationEngine> KvWrite for GenerationalStore<E> {
    /// Applies `batch` to the live generation; while a rewrite runs, also queues it for the
    /// new generation (after it was applied, under the write lock). While a write-once rewrite
    /// runs, applies it to the new generation only, with a tombstone for each delete in the
    /// same engine transaction.
    fn write(&self, batch: WriteBatch, options: WriteOptions) -> Result<(), StorageError> {
        let _in_flight = self.gaps.begin();
        let capture = self.writer.write();
        let (live, frozen) = self.view();
        if let Some(frozen) = frozen {
            let side = self.engine.side_keyspace().ok_or(StorageError::Closed {
                reason: "a write-once rewrite runs on an engine without tombstones".into(),
            })?;
            let keys = keys_of(&batch);
            let bytes = capture::batch_bytes(&batch);
            let tombstones = frozen.shadow.lock().tombstones_for(&batch);
            side.write_with_side(&live.store, batch, tombstones, options)?;
            frozen.shadow.lock().record(&keys, bytes);
            return Ok(());
        }
        match capture.as_ref() {
            None => live.store.write(batch, options),
            Some(capture) => {
                live.store.write(batch.clone(), options)?;
                capture.push(batch);
                Ok(())
            }
        }
    }
}

impl<E: GenerationEngine> Compactable for GenerationalStore<E> {
    /// Rewrites the whole store online, unpaced.
    fn compact_range(&self, range: &KeyRange) -> Result<(), StorageError> {
        self.compact_range_paced(range, &Unpaced)
    }

    /// Rewrites the whole store online, one `pacer` step at a time (the range only decides
    /// whether anything is done: an empty range is a no-op).
    fn compact_range_paced(
        &self,
        range: &KeyRange,
        pacer: &dyn CompactionPacer,
    ) -> Result<(), StorageError> {
        if range.is_empty() {
            return Ok(());
        }
        match self.rewrite(pacer) {
            Ok(_) => Ok(()),
            // No room for a copy: an engine that compacts in place still gets the space back,
            // with every other access waiting for it.
            Err(StorageError::NoSpace { .. })
                if self.live().store.capabilities().compaction_reclaims_space
                    && !self.rewrite_in_progress() =>
            {
                warn!(
                    engine = self.engine.name(),
                    "no room for an online rewrite; compacting the live generation in place (reads and writes wait for it)"
                );
                self.live().store.compact_range(range)
            }
            Err(e) => Err(e),
        }
    }

    fn size_on_disk(&self) -> Result<u64, StorageError> {
        directory_size(self.layout.root())
    }

    /// Bytes on disk of the whole store; reclaimable: the live generation's own estimate plus
    /// every byte outside it (a generation not yet removed); live bytes: the live generation's.
    fn space_report(&self) -> Result<SpaceReport, StorageError> {
        let on_disk = self.size_on_disk()?;
        let inner = self.live().store.space_report()?;
        Ok(SpaceReport {
            on_disk,
            reclaimable: inner
                .reclaimable
                .map(|r| r.saturating_add(on_disk.saturating_sub(inner.on_disk))),
            live_bytes: inner.live_bytes,
        })
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            compaction_access: CompactionAccess::Online,
            compaction_scope: CompactionScope::WholeStore,
            ..self.engine.capabilities()
        }
    }
}
