//! Pacing of background compaction: how a task is cut into slices and when each slice may run.
//!
//! The spec's compactor runs one whole compaction at a time, as fast as it can. A paced
//! compactor ([`crate::compaction::Compactor::with_pacing`]) instead cuts every range of a task
//! into slices of about [`Pacing::max_slice_bytes`] (the engine sizes them, see
//! [`crate::kv::Compactable::compaction_slices`]), sleeps [`Pacing::pause_between_slices`]
//! between slices, and before each slice waits while the node reports itself busy (a
//! [`LoadSignal`]) or while the clock is outside every configured [`TimeWindow`]. The
//! single-flight gate stays held from the first slice to the last; shutdown interrupts any wait
//! or pause at once and stops before the next slice.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::StorageError;
use crate::kv::CompactionPacer;
use crate::worker::StopSignal;

/// Something the node feeds that tells whether foreground work is heavy right now.
///
/// Guarantee asked of an implementation: `is_busy` is cheap and never blocks (it is polled
/// between slices).
pub trait LoadSignal: Send + Sync {
    /// True while compaction should hold back.
    fn is_busy(&self) -> bool;
}

/// A [`LoadSignal`] fed with commit latencies and an explicit busy flag.
///
/// Busy while the flag is set, or while the moving average of recent commit latencies (each new
/// sample weighs 1/8) is above the threshold. Feeding it is lock-free.
#[derive(Debug)]
pub struct CommitLatencyGate {
    threshold_micros: u64,
    average_micros: AtomicU64,
    busy: AtomicBool,
}

impl CommitLatencyGate {
    /// A gate that reports busy while recent commits take longer than `threshold` on average.
    pub fn new(threshold: Duration) -> Self {
        Self {
            threshold_micros: duration_micros(threshold),
            average_micros: AtomicU64::new(0),
            busy: AtomicBool::new(false),
        }
    }

    /// Records how long one commit took.
    pub fn record_commit(&self, latency: Duration) {
        let sample = duration_micros(latency);
        // A lost update under contention only delays the average by one sample.
        let old = self.average_micros.load(Ordering::Relaxed);
        let new = old - old / 8 + sample / 8;
        self.average_micros.store(new, Ordering::Relaxed);
    }

    /// Marks the node busy (or not) regardless of latency, e.g. while catching up.
    pub fn set_busy(&self, busy: bool) {
        self.busy.store(busy, Ordering::Release);
    }

    /// The current moving average of commit latency.
    pub fn average_commit_latency(&self) -> Duration {
        Duration::from_micros(self.average_micros.load(Ordering::Relaxed))
    }
}

impl LoadSignal for CommitLatencyGate {
    fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Acquire)
            || self.average_micros.load(Ordering::Relaxed) > self.threshold_micros
    }
}

fn duration_micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// How often a compaction slice that keeps waiting for its turn logs `compaction_wait` again.
pub const WAIT_LOG_EVERY: Duration = Duration::from_secs(60);

/// Seconds in a day.
const DAY_SECONDS: u32 = 86_400;

/// A daily window of UTC time in which compaction slices may start, written `HH:MM-HH:MM`.
/// A window whose end is before its start wraps over midnight (`22:00-04:00`); equal ends mean
/// the whole day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    start: u32,
    end: u32,
}

/// A time window that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid time window {input:?}: expected HH:MM-HH:MM in UTC (00:00 to 24:00)")]
pub struct InvalidTimeWindow {
    /// What was given.
    pub input: String,
}

impl TimeWindow {
    /// The window from `start` to `end`, both seconds after midnight UTC (at most 86,400).
    pub fn new(start: u32, end: u32) -> Option<Self> {
        (start <= DAY_SECONDS && end <= DAY_SECONDS).then_some(Self {
            start: start % DAY_SECONDS,
            end: end % DAY_SECONDS,
        })
    }

    /// Parses `HH:MM-HH:MM`.
    pub fn parse(input: &str) -> Result<Self, InvalidTimeWindow> {
        let invalid = || InvalidTimeWindow {
            input: input.to_owned(),
        };
        let clock = |s: &str| -> Option<u32> {
            let (h, m) = s.trim().split_once(':')?;
            let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
            (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 3600 + m * 60)
        };
        let (start, end) = input.split_once('-').ok_or_else(invalid)?;
        let (start, end) = (
            clock(start).ok_or_else(invalid)?,
            clock(end).ok_or_else(invalid)?,
        );
        Self::new(start, end).ok_or_else(invalid)
    }

    /// True when `second_of_day` (UTC) lies in the window.
    pub fn contains(&self, second_of_day: u32) -> bool {
        let s = second_of_day % DAY_SECONDS;
        match self.start.cmp(&self.end) {
            std::cmp::Ordering::Equal => true,
            std::cmp::Ordering::Less => (self.start..self.end).contains(&s),
            std::cmp::Ordering::Greater => s >= self.start || s < self.end,
        }
    }
}

impl fmt::Display for TimeWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hm = |s: u32| (s / 3600, s % 3600 / 60);
        let ((sh, sm), (eh, em)) = (hm(self.start), hm(self.end));
        write!(f, "{sh:02}:{sm:02}-{eh:02}:{em:02}")
    }
}

/// Seconds since midnight UTC now.
pub fn utc_second_of_day() -> u32 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    (secs % u64::from(DAY_SECONDS)) as u32
}

/// How a compactor paces its tasks. The default is unpaced: every range in one call, no waits
/// (the spec's behaviour).
#[derive(Clone)]
pub struct Pacing {
    /// Target size of one slice in bytes of engine data; 0 compacts every range in one call.
    pub max_slice_bytes: u64,
    /// Sleep between two slices of a task.
    pub pause_between_slices: Duration,
    /// Before each slice, wait while this reports busy.
    pub load: Option<Arc<dyn LoadSignal>>,
    /// Run the next slice anyway once the load signal has held it back this long, so a node
    /// that is always busy still gets its disk back. `None` waits for as long as it takes.
    pub max_deferral: Option<Duration>,
    /// Slices start only inside one of these UTC windows; empty means at any time. Windows are
    /// never overridden by `max_deferral`.
    pub windows: Vec<TimeWindow>,
    /// How often a waiting task looks at the load signal and the clock again.
    pub poll_interval: Duration,
    /// Cap on compaction's own pace, bytes of engine data per second: after a slice (or a step
    /// of an online rewrite) of `n` bytes, the next one starts no sooner than `n / cap` seconds
    /// after it began. Engine-agnostic and limited to the compaction task: it never slows
    /// flushes, an engine's own background work or the node's writes. An I/O cap implies
    /// slicing: without a slice size, slices are [`DEFAULT_SLICE_BYTES`]. `None`: no cap.
    pub io_bytes_per_sec: Option<u64>,
}

impl Default for Pacing {
    fn default() -> Self {
        Self::unpaced()
    }
}

impl fmt::Debug for Pacing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pacing")
            .field("max_slice_bytes", &self.max_slice_bytes)
            .field("pause_between_slices", &self.pause_between_slices)
            .field("has_load_signal", &self.load.is_some())
            .field("max_deferral", &self.max_deferral)
            .field("windows", &self.windows)
            .field("poll_interval", &self.poll_interval)
            .field("io_bytes_per_sec", &self.io_bytes_per_sec)
            .finish()
    }
}

/// Default slice size of [`Pacing::sliced`]: 64 MiB of engine data.
pub const DEFAULT_SLICE_BYTES: u64 = 64 << 20;
/// Default pause between slices of [`Pacing::sliced`].
pub const DEFAULT_SLICE_PAUSE: Duration = Duration::from_millis(100);
/// Default poll interval while waiting for the load signal or a window.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(50);

impl Pacing {
    /// No slicing, no pauses, no waiting: the spec's compactor.
    pub fn unpaced() -> Self {
        Self {
            max_slice_bytes: 0,
            pause_between_slices: Duration::ZERO,
            load: None,
            max_deferral: None,
            windows: Vec::new(),
            poll_interval: DEFAULT_POLL_INTERVAL,
            io_bytes_per_sec: None,
        }
    }

    /// Slices of [`DEFAULT_SLICE_BYTES`] with [`DEFAULT_SLICE_PAUSE`] between them.
    pub fn sliced() -> Self {
        Self {
            max_slice_bytes: DEFAULT_SLICE_BYTES,
            pause_between_slices: DEFAULT_SLICE_PAUSE,
            ..Self::unpaced()
        }
    }

    /// Sets the slice size.
    pub fn with_slice_bytes(mut self, bytes: u64) -> Self {
        self.max_slice_bytes = bytes;
        self
    }

    /// Sets the pause between slices.
    pub fn with_pause(mut self, pause: Duration) -> Self {
        self.pause_between_slices = pause;
        self
    }

    /// Waits before each slice while `load` reports busy.
    pub fn with_load_signal(mut self, load: Arc<dyn LoadSignal>) -> Self {
        self.load = Some(load);
        self
    }

    /// Runs a slice anyway after the load signal held it back for `max`.
    pub fn with_max_deferral(mut self, max: Duration) -> Self {
        self.max_deferral = Some(max);
        self
    }

    /// Lets slices start only inside `windows` (UTC).
    pub fn with_windows(mut self, windows: Vec<TimeWindow>) -> Self {
        self.windows = windows;
        self
    }

    /// Caps compaction's own pace at `bytes_per_sec` (see [`Pacing::io_bytes_per_sec`]).
    pub fn with_io_limit(mut self, bytes_per_sec: u64) -> Self {
        self.io_bytes_per_sec = Some(bytes_per_sec.max(1));
        self
    }

    /// True when this pacing never waits and never slices.
    pub fn is_unpaced(&self) -> bool {
        self.max_slice_bytes == 0
            && self.pause_between_slices.is_zero()
            && self.load.is_none()
            && self.windows.is_empty()
            && self.io_bytes_per_sec.is_none()
    }

    /// The slice size tasks are planned with: [`Pacing::max_slice_bytes`], or
    /// [`DEFAULT_SLICE_BYTES`] when only an I/O cap asks for slicing; 0 for one call per range.
    pub fn effective_slice_bytes(&self) -> u64 {
        match (self.max_slice_bytes, self.io_bytes_per_sec) {
            (0, Some(_)) => DEFAULT_SLICE_BYTES,
            (bytes, _) => bytes,
        }
    }

    /// Under the I/O cap, how long to wait after `bytes` of work that began `elapsed` ago
    /// before the next piece may start (zero without a cap).
    pub fn io_hold(&self, bytes: u64, elapsed: Duration) -> Duration {
        match self.io_bytes_per_sec {
            Some(cap) if cap > 0 => {
                Duration::from_secs_f64(bytes as f64 / cap as f64).saturating_sub(elapsed)
            }
            _ => Duration::ZERO,
        }
    }

    /// True when a slice may start now as far as the time windows go (no windows: always).
    pub fn in_window_now(&self) -> bool {
        self.in_window()
    }

    fn in_window(&self) -> bool {
        self.windows.is_empty() || {
            let now = utc_second_of_day();
            self.windows.iter().any(|w| w.contains(now))
        }
    }

    /// Waits until the next slice may start. Returns how long it waited and whether the wait
    /// ended because of `max_deferral`, or `None` when `stop` fired first.
    pub(crate) fn wait_turn(&self, stop: &StopSignal) -> Option<Turn> {
        let started = std::time::Instant::now();
        let mut deferred_by_load = Duration::ZERO;
        let mut next_log = started;
        loop {
            if stop.is_stopped() {
                return None;
            }
            let in_window = self.in_window();
            let busy = in_window && self.load.as_ref().is_some_and(|l| l.is_busy());
            if in_window && !busy {
                return Some(Turn {
                    waited: started.elapsed(),
                    forced: false,
                });
            }
            // A wait is never silent: say what it waits for when it starts, then every minute.
            if std::time::Instant::now() >= next_log {
                let windows: Vec<String> = self.windows.iter().map(ToString::to_string).collect();
                tracing::info!(
                    reason = if in_window { "node_busy" } else { "outside_time_windows" },
                    waited_s = started.elapsed().as_secs(),
                    windows = %windows.join(","),
                    max_deferral_s = self.max_deferral.map(|d| d.as_secs()),
                    "compaction_wait"
                );
                next_log += WAIT_LOG_EVERY;
            }
            if busy && self.max_deferral.is_some_and(|max| deferred_by_load >= max) {
                return Some(Turn {
                    waited: started.elapsed(),
                    forced: true,
                });
            }
            let poll = self.poll_interval.max(Duration::from_millis(1));
            if stop.sleep(poll) {
                return None;
            }
            if busy {
                deferred_by_load += poll;
            }
        }
    }
}

/// The [`CompactionPacer`] a runner hands to one engine call: between the call's steps it
/// pauses, waits for the load signal and the time windows as between slices, and turns a stop
/// into [`StorageError::Interrupted`]. Steps are [`Pacing::max_slice_bytes`] long (unpaced:
/// [`crate::kv::UNPACED_STEP_BYTES`]).
pub(crate) struct StepPacer<'a> {
    pacing: &'a Pacing,
    stop: &'a StopSignal,
    waited_micros: AtomicU64,
    /// When the current step began (for the I/O cap).
    step_started: parking_lot::Mutex<std::time::Instant>,
    /// Bytes the last step reported through [`CompactionPacer::step_done`] (0: not reported,
    /// the cap then counts [`CompactionPacer::step_bytes`]).
    last_step_bytes: AtomicU64,
}

impl<'a> StepPacer<'a> {
    pub(crate) fn new(pacing: &'a Pacing, stop: &'a StopSignal) -> Self {
        Self {
            pacing,
            stop,
            waited_micros: AtomicU64::new(0),
            step_started: parking_lot::Mutex::new(std::time::Instant::now()),
            last_step_bytes: AtomicU64::new(0),
        }
    }

    /// How long the steps waited for their turns.
    pub(crate) fn waited(&self) -> Duration {
        Duration::from_micros(self.waited_micros.load(Ordering::Relaxed))
    }

    /// The last step, when the engine reported its bytes ([`CompactionPacer::step_done`]) and
    /// no later step has held for them yet: when it began and what it processed. The I/O cap
    /// holds the next slice for these bytes instead of the nominal slice size.
    pub(crate) fn unheld_step(&self) -> Option<(std::time::Instant, u64)> {
        match self.last_step_bytes.load(Ordering::Relaxed) {
            0 => None,
            bytes => Some((*self.step_started.lock(), bytes)),
        }
    }
}

impl CompactionPacer for StepPacer<'_> {
    fn stopping(&self) -> bool {
        self.stop.is_stopped()
    }

    fn step_bytes(&self) -> u64 {
        match self.pacing.effective_slice_bytes() {
            0 => crate::kv::UNPACED_STEP_BYTES,
            bytes => bytes,
        }
    }

    fn before_step(&self) -> Result<(), StorageError> {
        let interrupted = StorageError::Interrupted {
            operation: "compaction",
        };
        if self.stop.is_stopped() {
            return Err(interrupted);
        }
        if self.pacing.is_unpaced() {
            return Ok(());
        }
        let step = match self.last_step_bytes.swap(0, Ordering::Relaxed) {
            0 => self.step_bytes(),
            reported => reported,
        };
        let hold = self
            .pacing
            .io_hold(step, self.step_started.lock().elapsed());
        if !hold.is_zero() && self.stop.sleep(hold) {
            return Err(interrupted);
        }
        if !self.pacing.pause_between_slices.is_zero()
            && self.stop.sleep(self.pacing.pause_between_slices)
        {
            return Err(interrupted);
        }
        let turn = self.pacing.wait_turn(self.stop).ok_or(interrupted)?;
        self.waited_micros
            .fetch_add(duration_micros(turn.waited), Ordering::Relaxed);
        *self.step_started.lock() = std::time::Instant::now();
        Ok(())
    }

    fn step_done(&self, bytes: u64) {
        self.last_step_bytes.store(bytes, Ordering::Relaxed);
    }

    fn keep_pace(&self, done: u64, step_started: std::time::Instant) -> Result<(), StorageError> {
        let hold = self.pacing.io_hold(done, step_started.elapsed());
        if !hold.is_zero() && self.stop.sleep(hold) {
            return Err(StorageError::Interrupted {
                operation: "compaction",
            });
        }
        Ok(())
    }
}

/// The outcome of waiting for a slice's turn.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Turn {
    pub(crate) waited: Duration,
    pub(crate) forced: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The I/O cap holds the next step for the bytes the last step reported, not for the
    /// nominal step size (a lower bound only: a sleep guarantees it, a busy machine cannot
    /// shorten it).
    #[test]
    fn the_cap_counts_the_bytes_a_step_reported() {
        let pacing = Pacing {
            max_slice_bytes: 64 << 10,
            io_bytes_per_sec: Some(4 << 20),
            ..Pacing::unpaced()
        };
        let stop = StopSignal::never();
        let pacer = StepPacer::new(&pacing, &stop);
        assert_eq!(pacer.step_bytes(), 64 << 10);
        // 1 MiB done at 4 MiB/s: the next step starts 250 ms after this one began at least.
        pacer.step_done(1 << 20);
        let started = std::time::Instant::now();
        pacer.before_step().unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(200),
            "{:?}",
            started.elapsed()
        );
    }

    /// Inside a step the cap holds the work for the bytes done since the step began, and a
    /// stop ends the wait at once with `Interrupted`.
    #[test]
    fn the_cap_paces_work_inside_a_step_and_a_stop_ends_the_wait() {
        let pacing = Pacing {
            io_bytes_per_sec: Some(4 << 20),
            ..Pacing::unpaced()
        };
        let stop = StopSignal::never();
        let pacer = StepPacer::new(&pacing, &stop);
        // 1 MiB done at 4 MiB/s: released 250 ms after the step began at least.
        let started = std::time::Instant::now();
        pacer.keep_pace(1 << 20, started).unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(200),
            "{:?}",
            started.elapsed()
        );
        let (sender, wake) = crossbeam_channel::bounded::<()>(0);
        let stopped = StopSignal::new(Arc::new(AtomicBool::new(false)), wake);
        stopped.request();
        drop(sender);
        let pacer = StepPacer::new(&pacing, &stopped);
        let started = std::time::Instant::now();
        // 1 GiB at 4 MiB/s would wait over four minutes.
        assert!(matches!(
            pacer.keep_pace(1 << 30, started),
            Err(StorageError::Interrupted { .. })
        ));
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn windows_parse_and_wrap() {
        let w = TimeWindow::parse("01:30-05:00").unwrap();
        assert_eq!(w.to_string(), "01:30-05:00");
        assert!(w.contains(2 * 3600));
        assert!(!w.contains(5 * 3600));
        assert!(!w.contains(3600));
        let wrap = TimeWindow::parse("22:00-04:00").unwrap();
        assert!(wrap.contains(23 * 3600));
        assert!(wrap.contains(3600));
        assert!(!wrap.contains(12 * 3600));
        let all = TimeWindow::parse("00:00-24:00").unwrap();
        assert!(all.contains(0) && all.contains(86_399));
        for bad in [
            "",
            "1-2",
            "25:00-01:00",
            "01:60-02:00",
            "0100-0200",
            "a:b-c:d",
        ] {
            assert!(TimeWindow::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    proptest::proptest! {
        /// Any text is a window or an error, never a panic; a parsed window prints back as
        /// what parses to the same window.
        #[test]
        fn any_text_parses_or_is_refused(text in proptest::prelude::any::<String>()) {
            if let Ok(window) = TimeWindow::parse(&text) {
                proptest::prop_assert_eq!(TimeWindow::parse(&window.to_string()).ok(), Some(window));
            }
        }

        #[test]
        fn window_shaped_text_parses_or_is_refused(text in "[0-9]{1,3}:[0-9]{1,3}-[0-9]{1,3}:[0-9]{1,3}") {
            let _ = TimeWindow::parse(&text);
        }
    }

    #[test]
    fn gate_follows_latency_and_flag() {
        let gate = CommitLatencyGate::new(Duration::from_millis(10));
        assert!(!gate.is_busy());
        for _ in 0..64 {
            gate.record_commit(Duration::from_millis(50));
        }
        assert!(
            gate.is_busy(),
            "average {:?}",
            gate.average_commit_latency()
        );
        for _ in 0..64 {
            gate.record_commit(Duration::from_millis(1));
        }
        assert!(
            !gate.is_busy(),
            "average {:?}",
            gate.average_commit_latency()
        );
        gate.set_busy(true);
        assert!(gate.is_busy());
    }
}
