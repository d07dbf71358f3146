//! Bounds on one pruning run ([`PruneLimits`]) and the budget a segment spends batch by batch
//! ([`PruneLimiter`]), so that a large backlog is worked off in bounded steps instead of one
//! long run (Reth and Aptos bound their pruners the same way).

use std::time::{Duration, Instant};

/// Bounds on one pruning run. The default is unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PruneLimits {
    /// Heights each segment may prune per run (a segment's trailing heights, such as an
    /// evidence window, count too). `None`: no bound.
    pub max_heights: Option<u64>,
    /// Wall time after which a run stops at the next batch boundary (each segment still prunes
    /// at least one batch per run). `None`: no bound.
    pub max_duration: Option<Duration>,
}

impl PruneLimits {
    /// No bound: a run goes all the way to the retain height.
    pub const UNBOUNDED: Self = Self {
        max_heights: None,
        max_duration: None,
    };

    /// True when neither bound is set.
    pub fn is_unbounded(&self) -> bool {
        self.max_heights.is_none() && self.max_duration.is_none()
    }
}

/// Spends a [`PruneLimits`] budget batch by batch during one segment's pruning. The first batch
/// is always allowed (unless the height budget is 0), whatever the time bound, so that every
/// run makes progress.
#[derive(Debug, Clone)]
pub struct PruneLimiter {
    heights_left: u64,
    deadline: Option<Instant>,
    spent_any: bool,
}

impl PruneLimiter {
    /// A limiter that never stops a run.
    pub fn unlimited() -> Self {
        Self::with_deadline(None, None)
    }

    /// A limiter for `limits`, whose time bound starts now.
    pub fn new(limits: PruneLimits) -> Self {
        Self::with_deadline(
            limits.max_heights,
            limits.max_duration.map(|d| Instant::now() + d),
        )
    }

    /// A limiter with at most `max_heights` heights (`None`: no bound) and an absolute
    /// `deadline`, which several segments of one run share.
    pub fn with_deadline(max_heights: Option<u64>, deadline: Option<Instant>) -> Self {
        Self {
            heights_left: max_heights.unwrap_or(u64::MAX),
            deadline,
            spent_any: false,
        }
    }

    /// The end (exclusive) of the next batch from `from` towards `target`, at most
    /// `batch_heights` long and within the budget; `None` when the budget is spent.
    pub fn batch_end(&self, from: u64, target: u64, batch_heights: u64) -> Option<u64> {
        let out_of_time = self.spent_any && self.deadline.is_some_and(|d| Instant::now() >= d);
        if self.heights_left == 0 || out_of_time {
            return None;
        }
        let step = batch_heights.max(1).min(self.heights_left);
        Some(target.min(from.saturating_add(step)))
    }

    /// Records `heights` pruned.
    pub fn spend(&mut self, heights: u64) {
        self.heights_left = self.heights_left.saturating_sub(heights);
        self.spent_any = true;
    }

    /// Runs `batch(from, to)` for consecutive batches from `from` towards `target`, within the
    /// budget, spending each batch's heights after it succeeds. Returns the height reached and
    /// whether it is `target` (false: the budget ran out first). The first error stops the loop;
    /// what earlier batches committed stays.
    ///
    /// Batches hold `batch_heights` heights, or more when the span would take more than
    /// [`MAX_BATCHES_PER_CALL`] of them: a large backlog (a retain height raised by much) is
    /// pruned in that many batches at most. Many small range deletes cost some engines dearly
    /// (RocksDB re-reads every range tombstone of its memtable for each new iterator: 90,000
    /// heights in batches of 10 took 789 s, against 1.1 s in batches of 1,000).
    pub fn run_batches<E>(
        &mut self,
        mut from: u64,
        target: u64,
        batch_heights: u64,
        mut batch: impl FnMut(u64, u64) -> Result<(), E>,
    ) -> Result<(u64, bool), E> {
        let batch_heights =
            batch_heights.max(target.saturating_sub(from).div_ceil(MAX_BATCHES_PER_CALL));
        while from < target {
            let Some(to) = self.batch_end(from, target, batch_heights) else {
                return Ok((from, false));
            };
            batch(from, to)?;
            self.spend(to - from);
            from = to;
        }
        Ok((from, true))
    }
}

/// The most batches one [`PruneLimiter::run_batches`] call cuts its span into.
pub const MAX_BATCHES_PER_CALL: u64 = 100;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_backlog_is_cut_into_at_most_the_maximum_batches() {
        let mut count = 0u64;
        let mut heights = Vec::new();
        let reached = PruneLimiter::unlimited()
            .run_batches(1, 90_001, 10, |a, b| {
                count += 1;
                heights.push(b - a);
                ok(a, b)
            })
            .unwrap();
        assert_eq!(reached, (90_001, true));
        assert_eq!(count, MAX_BATCHES_PER_CALL);
        assert!(heights.iter().all(|&h| h == 900), "{heights:?}");
        // A node's steady state (100 heights a run) keeps the batches asked for.
        let mut sizes = Vec::new();
        PruneLimiter::unlimited()
            .run_batches(1, 101, 10, |a, b| {
                sizes.push(b - a);
                ok(a, b)
            })
            .unwrap();
        assert_eq!(sizes, vec![10; 10]);
    }

    fn ok(_: u64, _: u64) -> Result<(), ()> {
        Ok(())
    }

    #[test]
    fn batches_tile_the_range_within_the_height_budget() {
        let mut limiter = PruneLimiter::new(PruneLimits {
            max_heights: Some(25),
            max_duration: None,
        });
        let mut seen = Vec::new();
        let reached = limiter
            .run_batches(1, 100, 10, |a, b| {
                seen.push((a, b));
                ok(a, b)
            })
            .unwrap();
        assert_eq!(seen, vec![(1, 11), (11, 21), (21, 26)]);
        assert_eq!(reached, (26, false));
        let mut unlimited = PruneLimiter::unlimited();
        assert_eq!(unlimited.run_batches(5, 5, 10, ok).unwrap(), (5, true));
        assert_eq!(unlimited.run_batches(5, 9, 10, ok).unwrap(), (9, true));
    }

    #[test]
    fn the_first_batch_runs_even_past_the_deadline() {
        let mut limiter = PruneLimiter::new(PruneLimits {
            max_heights: None,
            max_duration: Some(Duration::ZERO),
        });
        assert_eq!(limiter.run_batches(1, 100, 10, ok).unwrap(), (11, false));
    }

    #[test]
    fn a_zero_height_budget_runs_nothing() {
        let mut limiter = PruneLimiter::with_deadline(Some(0), None);
        assert_eq!(limiter.run_batches(1, 100, 10, ok).unwrap(), (1, false));
    }

    #[test]
    fn an_error_stops_the_loop() {
        let mut limiter = PruneLimiter::unlimited();
        let mut calls = 0;
        let result = limiter.run_batches(1, 100, 10, |a, _| {
            calls += 1;
            if a == 11 { Err("boom") } else { Ok(()) }
        });
        assert_eq!(result, Err("boom"));
        assert_eq!(calls, 2);
    }
}
