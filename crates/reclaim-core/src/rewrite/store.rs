//! [`GenerationalStore`]: an engine kept as generations, compacted by an online rewrite.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use tracing::{debug, info, warn};

use super::capture::{self, WriteCapture};
use super::engine::GenerationEngine;
use super::layout::GenerationLayout;
use crate::dir::{EntryKind, StoreDirLock, available_space, directory_size, open_store_dir};
use crate::error::StorageError;
use crate::kv::{
    BatchOp, Capabilities, Compactable, CompactionAccess, CompactionPacer, CompactionScope,
    KeyValue, KvRead, KvWrite, ScanOrder, SpaceReport, Unpaced, WriteBatch, WriteOptions,
};
use crate::range::{KeyRange, key_successor};

/// Tuning of the online rewrite. The defaults suit a node; tests shrink them.
#[derive(Debug, Clone)]
pub struct RewriteSettings {
    /// Queued writes (keys and values) a rewrite holds in memory at most; past it the rewrite
    /// gives up with [`StorageError::Overtaken`] and the old generation stays live.
    pub capture_limit_bytes: u64,
    /// Entries read per scan while copying, at most. Fewer when the last scan met large
    /// entries: a scan asks for about what the step still needs, so that a step is close to
    /// [`CompactionPacer::step_bytes`] whatever the value size. Where small values give way to
    /// large ones, one step may read this many large values.
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
            capture_limit_bytes: 512 << 20,
            scan_entries: 64,
            persist_every_bytes: 1 << 20,
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

/// One generation: its number and the engine instance holding it.
#[derive(Debug)]
struct Generation<S> {
    number: u64,
    store: S,
}

/// A store kept as generations of an engine ([`GenerationEngine`]), whose compaction is the
/// online rewrite described in [`crate::rewrite`]: reads and writes continue while it runs,
/// writers wait only for the switch (a few flushes, not a copy), readers never.
///
/// Guarantees: every acknowledged write survives a crash at any point of a rewrite; after a
/// crash exactly one generation is live and the others are removed at the next open; a failed,
/// interrupted or overtaken rewrite changes nothing.
pub struct GenerationalStore<E: GenerationEngine> {
    engine: E,
    layout: GenerationLayout,
    live: RwLock<Arc<Generation<E::Store>>>,
    /// Held by every write; `Some` while a rewrite captures writes.
    writer: Mutex<Option<Arc<WriteCapture>>>,
    /// One rewrite at a time.
    rewriting: Mutex<()>,
    /// What the last successful rewrite did.
    last_rewrite: Mutex<Option<RewriteStats>>,
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
        for stale in layout.generations()? {
            if stale != number {
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
            let dir_name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            lock.require(name, &dir_name, EntryKind::Dir, "live generation")?;
            engine.open(&dir, false)?
        };
        Ok(Self {
            engine,
            layout,
            live: RwLock::new(Arc::new(Generation { number, store })),
            writer: Mutex::new(None),
            rewriting: Mutex::new(()),
            last_rewrite: Mutex::new(None),
            settings,
            _lock: lock,
        })
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        self.layout.root()
    }

    /// The live generation's number (one more after each rewrite).
    pub fn generation(&self) -> u64 {
        self.live.read().number
    }

    /// The engine.
    pub fn engine(&self) -> &E {
        &self.engine
    }

    /// Runs `f` on the live generation's engine instance.
    pub fn with_live<T>(&self, f: impl FnOnce(&E::Store) -> T) -> T {
        let live = Arc::clone(&self.live.read());
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
            live,
            settings,
            ..
        } = self;
        let live = live.into_inner();
        let number = live.number;
        match wait_unique(live, settings.retire_wait) {
            Ok(generation) => engine.close(generation.store, &layout.dir(number)),
            Err(_) => Err(StorageError::Closed {
                reason: "a reader still holds the live generation".into(),
            }),
        }
    }

    fn live(&self) -> Arc<Generation<E::Store>> {
        Arc::clone(&self.live.read())
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
        let old = self.live();
        let number = old.number + 1;
        let space = old.store.space_report()?;
        // The copy holds the live data; a tenth more covers the engine's layout. An engine
        // that cannot estimate its live data is checked step by step only.
        let live_estimate = space.live_bytes.or_else(|| {
            space
                .reclaimable
                .map(|reclaimable| space.on_disk.saturating_sub(reclaimable))
        });
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
        let capture = Arc::new(WriteCapture::new(self.settings.capture_limit_bytes));
        *self.writer.lock() = Some(Arc::clone(&capture));
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
            *self.writer.lock() = None;
            warn!(engine = self.engine.name(), generation = number, error = %e,
                "online rewrite abandoned; the old generation stays live");
            self.discard(target, number, pacer);
            return Err(e);
        }
        // The swap happened: `target` now lives in `self.live`; retire the old generation.
        crash_point("rewrite.switched");
        self.retire(old, pacer);
        crash_point("rewrite.retired");
        stats.duration = started.elapsed();
        info!(
            engine = self.engine.name(),
            generation = number,
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
        Ok(stats)
    }

    /// Copies `old` into `target` step by step with the capture running, replaying the
    /// captured writes after each step, then catches up until the backlog is short.
    fn copy_and_catch_up(
        &self,
        old: &Generation<E::Store>,
        target: &E::Store,
        capture: &WriteCapture,
        pacer: &dyn CompactionPacer,
        live_estimate: u64,
        stats: &mut RewriteStats,
    ) -> Result<(), StorageError> {
        let step_bytes = pacer.step_bytes().max(1);
        let chunk_bytes = self.settings.persist_every_bytes.max(1);
        let mut remaining = Some(KeyRange::full());
        let mut since_persist = 0u64;
        let mut first = true;
        // The largest entry of the last scan, which sizes the next one.
        let mut last_page_largest = None;
        while let Some(range) = remaining.take() {
            if !first {
                pacer.before_step()?;
            }
            first = false;
            // The copy must never eat the space the node's own writes need: room for this
            // step on top of the engine's reserve, or the copy stops (the old generation
            // stays live).
            let left = live_estimate.saturating_sub(stats.bytes_copied);
            self.ensure_free_space(step_bytes.min(left).max(1))?;
            let mut batch = WriteBatch::new();
            let mut batch_bytes = 0u64;
            let mut step = 0u64;
            let step_started = Instant::now();
            let mut cursor = Some(range);
            while let Some(range) = cursor.take() {
                // No more than the step still needs, nor than the chunk (below) still holds.
                let wanted = step_bytes
                    .saturating_sub(step)
                    .min(chunk_bytes.saturating_sub(batch_bytes));
                let limit = scan_limit(self.settings.scan_entries, wanted, last_page_largest);
                let mut page: Vec<KeyValue> =
                    old.store.scan(&range, ScanOrder::Ascending, limit)?;
                let full_page = page.len() == limit;
                last_page_largest = page.iter().map(|(k, v)| (k.len() + v.len()) as u64).max();
                let next = page.last().map(|(k, _)| key_successor(k));
                // Keys written or deleted since the capture began get their state from the
                // replay: copying them would write them twice.
                stats.entries_skipped += capture.drop_touched(&mut page) as u64;
                for (key, value) in page {
                    let bytes = (key.len() + value.len()) as u64;
                    step += bytes;
                    batch_bytes += bytes;
                    stats.entries_copied += 1;
                    batch.put(key, value);
                }
                // A step is written and made durable a chunk at a time, each chunk followed by
                // the writes captured meanwhile (replayed after the copied values, so a newer
                // value wins): the node's commit that meets a flush then waits for one chunk
                // and a chunk's worth of its own writes, not for a whole step and the backlog
                // of a step (seconds of the node's writes when the copy is capped).
                if batch_bytes >= chunk_bytes {
                    target.write(std::mem::take(&mut batch), WriteOptions::BUFFERED)?;
                    let (_, replayed) = self.replay(capture, target, true)?;
                    stats.batches_replayed += replayed;
                    self.engine.persist(target)?;
                    since_persist = 0;
                    batch_bytes = 0;
                    // Under an I/O cap, a chunk at a time at about the cap rather than the
                    // whole step at full speed and a wait: every commit's flush waits behind
                    // what a copy at full speed wrote (sled, 545 MiB live, writer flat out: the
                    // disk's cache flushes took 50-100 ms while an unpaced copy ran, 0.02 ms
                    // between rewrites).
                    pacer.keep_pace(step, step_started)?;
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
            if !batch.is_empty() {
                target.write(batch, WriteOptions::BUFFERED)?;
            }
            pacer.step_done(step);
            stats.bytes_copied += step;
            let (replayed_bytes, replayed) = self.replay(capture, target, true)?;
            stats.batches_replayed += replayed;
            since_persist += batch_bytes + replayed_bytes;
            if since_persist >= self.settings.persist_every_bytes {
                self.engine.persist(target)?;
                since_persist = 0;
            }
            crash_point("rewrite.copy_step");
        }
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

    /// Holding the write lock (writers wait, readers go on): replays the last captured writes,
    /// makes `target` durable, names it in `CURRENT` (the commit point) and makes it live.
    /// On an error before the commit point, gives `target` back.
    fn switch(
        &self,
        target: E::Store,
        capture: &WriteCapture,
        stats: &mut RewriteStats,
    ) -> Result<(), (StorageError, Option<E::Store>)> {
        let mut writer = self.writer.lock();
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
            if let Err(e) = self.layout.set_current(stats.generation) {
                // The pointer may have been renamed into place before the error (a failed
                // directory fsync): what it names now is what a crash would open.
                if self.layout.read_current(self.engine.name()).ok().flatten()
                    != Some(stats.generation)
                {
                    return Err(e);
                }
                warn!(error = %e, "the generation pointer names the new generation, but making it durable failed");
            }
            Ok(())
        })();
        if let Err(e) = committed {
            *writer = None;
            return Err((e, Some(target)));
        }
        crash_point("rewrite.pointer_written");
        *self.live.write() = Arc::new(Generation {
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

impl<E: GenerationEngine> KvRead for GenerationalStore<E> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        self.live().store.get(key)
    }

    fn scan(
        &self,
        range: &KeyRange,
        order: ScanOrder,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StorageError> {
        self.live().store.scan(range, order, limit)
    }
}

impl<E: GenerationEngine> KvWrite for GenerationalStore<E> {
    /// Applies `batch` to the live generation; while a rewrite runs, also queues it for the
    /// new generation (after it was applied, under the write lock).
    fn write(&self, batch: WriteBatch, options: WriteOptions) -> Result<(), StorageError> {
        let capture = self.writer.lock();
        let live = self.live();
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
                if self.live().store.capabilities().compaction_reclaims_space =>
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
