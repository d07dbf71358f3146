//! [`CommitGaps`]: when the node's writes come and go, so that a rewrite's copy can write its
//! chunks between them instead of in their way.
//!
//! A node writes in bursts: a block's commit is a few writes in a row (the block, the state),
//! then nothing until the next block (a second on a live chain, a few milliseconds during
//! catch-up). A copy chunk that starts once a burst is over, and is short enough to end before
//! the next one, delays no commit; one that starts inside a burst, or just before one, makes
//! the node wait for the whole chunk and its flush. So the copy waits until the node has been
//! quiet for about its usual pause within a burst, then writes a chunk sized to fit in part of
//! the usual rest between bursts.

use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// How long without a write before the node counts as idle: the copy then stops waiting for
/// writes and uses its largest chunks. Longer pauses are not taken as the node's rhythm.
const IDLE_AFTER: Duration = Duration::from_millis(250);

/// Weight of a new rest (a gap at least half the usual rest) in the smoothed rest, and of a
/// new pause within a burst in the smoothed pause.
const WEIGHT: f64 = 0.2;

/// Weight of a short gap in the smoothed rest: a node whose rhythm quickens pulls it down.
const SHORT_WEIGHT: f64 = 0.02;

/// The node's writes as a rewrite's copy sees them: how many are in flight, when the last one
/// began and ended, and how long its pauses within a burst and its rests between bursts are.
#[derive(Debug, Default)]
pub(crate) struct CommitGaps {
    state: Mutex<GapState>,
    /// Notified at every write's start and end.
    changed: Condvar,
}

#[derive(Debug, Default)]
struct GapState {
    in_flight: u32,
    last_end: Option<Instant>,
    /// Smoothed rest between bursts, in seconds.
    rest: Option<f64>,
    /// Smoothed pause between the writes of one burst, in seconds.
    pause: f64,
}

impl GapState {
    /// How long the node must have been quiet for its burst to count as over.
    fn quiet(&self) -> Duration {
        let rest = self.rest.unwrap_or(0.0);
        Duration::from_secs_f64((2.0 * self.pause + 0.000_2).min(rest / 2.0))
    }

    fn learn(&mut self, gap: Duration) {
        let gap = gap.as_secs_f64();
        match self.rest {
            None => self.rest = Some(gap),
            Some(rest) if gap >= rest / 2.0 => self.rest = Some(smooth(rest, gap, WEIGHT)),
            Some(rest) => {
                self.rest = Some(smooth(rest, gap, SHORT_WEIGHT));
                self.pause = smooth(self.pause, gap, WEIGHT);
            }
        }
    }
}

/// `old` moved towards `new` by `weight` (exponential smoothing).
fn smooth(old: f64, new: f64, weight: f64) -> f64 {
    old + weight * (new - old)
}

/// When the copy may write its next chunk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Turn {
    /// The node wrote nothing for a while: any chunk size.
    Idle,
    /// The node is resting between bursts, and usually starts again after about this long.
    Rest(Duration),
    /// The node did not rest within the wait: the copy goes on anyway (it must make progress).
    TimedOut,
}

impl CommitGaps {
    /// A write of the node begins; it ends when the returned guard is dropped.
    pub(crate) fn begin(&self) -> WriteInFlight<'_> {
        let now = Instant::now();
        let mut state = self.state.lock();
        if state.in_flight == 0
            && let Some(last_end) = state.last_end
        {
            let gap = now.saturating_duration_since(last_end);
            if gap < IDLE_AFTER {
                state.learn(gap);
            }
        }
        state.in_flight += 1;
        drop(state);
        self.changed.notify_all();
        WriteInFlight(self)
    }

    fn end(&self) {
        let mut state = self.state.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        state.last_end = Some(Instant::now());
        drop(state);
        self.changed.notify_all();
    }

    /// Waits, at most `max_wait`, for the moment a chunk disturbs the node least: once no
    /// write is in flight and none began for the node's usual pause within a burst. Returns
    /// at once when the node has been idle for a while.
    pub(crate) fn wait_turn(&self, max_wait: Duration) -> Turn {
        let deadline = Instant::now() + max_wait;
        let mut state = self.state.lock();
        loop {
            let now = Instant::now();
            let mut wake = deadline;
            if state.in_flight == 0 {
                let Some(end) = state.last_end else {
                    return Turn::Idle;
                };
                let quiet_for = now.saturating_duration_since(end);
                if quiet_for >= IDLE_AFTER {
                    return Turn::Idle;
                }
                let quiet = state.quiet();
                if quiet_for >= quiet {
                    let rest = Duration::from_secs_f64(state.rest.unwrap_or(0.0));
                    return Turn::Rest(rest.saturating_sub(quiet_for));
                }
                wake = wake.min(end + quiet);
            }
            if now >= deadline {
                return Turn::TimedOut;
            }
            self.changed.wait_until(&mut state, wake);
        }
    }
}

/// Ends a write's entry in [`CommitGaps`] when dropped (also when the write fails).
pub(crate) struct WriteInFlight<'a>(&'a CommitGaps);

impl Drop for WriteInFlight<'_> {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// Sizes a copy's chunks to the node's rhythm ([`CommitGaps`]): before each chunk it waits for
/// the node to rest, then sizes the chunk to fill a share of the usual rest at the copy's
/// measured speed, between a smallest and a largest size. An idle node gets the largest.
#[derive(Debug)]
pub(crate) struct ChunkPlanner<'a> {
    gaps: &'a CommitGaps,
    smallest: u64,
    largest: u64,
    share: f64,
    wait: Duration,
    /// Smoothed copy speed in bytes a second: scanning, writing and flushing a chunk.
    speed: Option<f64>,
    started: Instant,
    /// What the turns were: the node idle, resting, or busy past the wait.
    pub(crate) turns: TurnCounts,
}

/// How many turns of a copy found the node idle, resting, or busy past the wait.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct TurnCounts {
    pub(crate) idle: u64,
    pub(crate) rest: u64,
    pub(crate) timed_out: u64,
}

impl<'a> ChunkPlanner<'a> {
    /// Chunks of `smallest..=largest` bytes filling `share` of the node's usual rest; a turn
    /// waits at most `wait` for the node to rest.
    pub(crate) fn new(
        gaps: &'a CommitGaps,
        smallest: u64,
        largest: u64,
        share: f64,
        wait: Duration,
    ) -> Self {
        let largest = largest.max(1);
        Self {
            gaps,
            smallest: smallest.clamp(1, largest),
            largest,
            share: share.clamp(0.0, 1.0),
            wait,
            speed: None,
            started: Instant::now(),
            turns: TurnCounts::default(),
        }
    }

    /// A chunk of `bytes` was written and made durable since the last turn: the copy's speed
    /// is learnt from it.
    pub(crate) fn written(&mut self, bytes: u64) {
        let took = self.started.elapsed().as_secs_f64().max(1e-6);
        let speed = bytes as f64 / took;
        self.speed = Some(match self.speed {
            Some(old) => smooth(old, speed, WEIGHT),
            None => speed,
        });
    }

    /// Waits for the node's next rest and returns how many bytes the next chunk should hold.
    pub(crate) fn turn(&mut self) -> u64 {
        let size = match self.gaps.wait_turn(self.wait) {
            Turn::Idle => {
                self.turns.idle += 1;
                self.largest
            }
            Turn::TimedOut => {
                self.turns.timed_out += 1;
                self.smallest
            }
            Turn::Rest(left) => {
                self.turns.rest += 1;
                let fits = self.speed.unwrap_or(0.0) * left.as_secs_f64() * self.share;
                (fits as u64).clamp(self.smallest, self.largest)
            }
        };
        self.started = Instant::now();
        size
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Bursts of two writes 0.1 ms apart, every `rest` (plus the bursts' own time).
    fn rhythm(gaps: &CommitGaps, bursts: usize, rest: Duration) {
        for _ in 0..bursts {
            drop(gaps.begin());
            std::thread::sleep(Duration::from_micros(100));
            drop(gaps.begin());
            std::thread::sleep(rest);
        }
    }

    #[test]
    fn a_node_that_never_wrote_is_idle() {
        let gaps = CommitGaps::default();
        assert_eq!(gaps.wait_turn(Duration::from_secs(5)), Turn::Idle);
    }

    #[test]
    fn the_rest_between_bursts_is_learnt_apart_from_the_pauses_within_them() {
        let gaps = CommitGaps::default();
        rhythm(&gaps, 30, Duration::from_millis(10));
        let state = gaps.state.lock();
        let rest = state.rest.expect("a rest was learnt");
        assert!((0.005..0.1).contains(&rest), "rest {rest}");
        assert!(state.pause < 0.005, "pause {}", state.pause);
    }

    #[test]
    fn the_turn_comes_once_a_burst_is_over() {
        let gaps = Arc::new(CommitGaps::default());
        rhythm(&gaps, 30, Duration::from_millis(10));
        let (began, begin) = crossbeam_channel::bounded(0);
        let writer = {
            let gaps = Arc::clone(&gaps);
            std::thread::spawn(move || {
                let write = gaps.begin();
                let _ = began.send(());
                std::thread::sleep(Duration::from_millis(20));
                drop(write);
            })
        };
        begin.recv().expect("writer began");
        let turn = gaps.wait_turn(Duration::from_secs(10));
        writer.join().expect("writer thread");
        let Turn::Rest(left) = turn else {
            panic!("expected a rest, got {turn:?}");
        };
        assert!(left < IDLE_AFTER, "{left:?}");
    }

    #[test]
    fn a_node_that_never_rests_lets_the_copy_go_on() {
        let gaps = CommitGaps::default();
        let _write = gaps.begin();
        assert_eq!(gaps.wait_turn(Duration::from_millis(5)), Turn::TimedOut);
    }

    #[test]
    fn a_node_quiet_for_long_is_idle_again() {
        let gaps = CommitGaps::default();
        rhythm(&gaps, 3, Duration::from_millis(1));
        std::thread::sleep(IDLE_AFTER);
        assert_eq!(gaps.wait_turn(Duration::from_secs(5)), Turn::Idle);
    }

    #[test]
    fn chunks_fill_a_share_of_the_rest_within_bounds() {
        let gaps = CommitGaps::default();
        let mut planner =
            ChunkPlanner::new(&gaps, 64 << 10, 1 << 20, 0.5, Duration::from_millis(50));
        // An idle node: the largest chunks.
        assert_eq!(planner.turn(), 1 << 20);
        // A node that never rests: the smallest, after the wait.
        let write = gaps.begin();
        assert_eq!(planner.turn(), 64 << 10);
        drop(write);
        assert_eq!(planner.turns.idle, 1);
        assert_eq!(planner.turns.timed_out, 1);
        // A resting node and a copy of unknown speed: the smallest; a fast copy: the largest.
        rhythm(&gaps, 30, Duration::from_millis(10));
        assert_eq!(planner.turn(), 64 << 10);
        planner.speed = Some(1e12);
        rhythm(&gaps, 1, Duration::ZERO);
        assert_eq!(planner.turn(), 1 << 20);
        assert_eq!(planner.turns.rest, 2);
    }
}
