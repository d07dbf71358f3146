//! When pruning is followed by a compaction: a [`CompactionPolicy`] looks at what pruning has
//! left pending since the last compaction and says "compact these heights now" or "wait".
//!
//! Policies are pure (no I/O, no threads, no clock), so each is tested as a table. The pruning
//! executor is given one ([`crate::pruning::PruningExecutor::with_policy`]); the mechanism
//! around it (persisting the pending record, building the task, dispatching it, the spec's log
//! lines) stays in the executor.

use std::fmt;

use crate::kv::SpaceReport;

/// What pruning has deleted since the last compaction started: the heights pruned and the
/// height range `[from, to)` they span (over every registered segment).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PendingCompaction {
    /// Heights pruned since the last compaction (the largest count of any segment per run).
    pub pruned_heights: u64,
    /// The lowest height touched by those runs; `None` when nothing is pending.
    pub from: Option<u64>,
    /// The highest retain height of those runs (exclusive end of the range).
    pub to: u64,
    /// `pruned_heights` when the engines' space was last asked for and no compaction
    /// followed (0: not since the last compaction). A policy that asks once per interval
    /// counts from here, so a store with too little to give back is not asked after every
    /// prune.
    pub space_checked_at: u64,
}

impl PendingCompaction {
    /// True when nothing was pruned since the last compaction.
    pub fn is_empty(&self) -> bool {
        self.from.is_none() && self.pruned_heights == 0
    }

    /// Adds one pruning run that deleted `heights` heights from `lowest_touched` up to
    /// `retain_height` (exclusive). A run that deleted anything counts at least one height.
    pub fn record_run(&mut self, lowest_touched: u64, retain_height: u64, heights: u64) {
        self.pruned_heights = self.pruned_heights.saturating_add(heights.max(1));
        self.from = Some(self.from.map_or(lowest_touched, |f| f.min(lowest_touched)));
        self.to = self.to.max(retain_height);
    }

    /// The pending height range `[from, to)`, `from` defaulting to `to` when unknown.
    pub fn height_range(&self) -> (u64, u64) {
        (self.from.unwrap_or(self.to).min(self.to), self.to)
    }
}

/// What a policy decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyDecision {
    /// Compact the key ranges of heights `[from, to)` now.
    Compact {
        /// First height (inclusive).
        from: u64,
        /// End height (exclusive).
        to: u64,
    },
    /// Not yet: keep the record pending and ask again after the next prune.
    Wait,
    /// This policy never compacts after pruning (CometBFT's `compact = false`).
    Off,
}

/// Decides whether the heights pruned since the last compaction are worth compacting now.
///
/// Guarantees an implementation must give: `decide` is pure and cheap (it runs on the pruning
/// path after every run that deleted something) and never asks for heights outside
/// `pending.height_range()`.
pub trait CompactionPolicy: Send + Sync + fmt::Debug {
    /// The name used in logs and configuration.
    fn name(&self) -> &'static str;

    /// Whether `decide` needs `space` for what is pending now (the executor then asks every
    /// engine for its [`SpaceReport`] before deciding; otherwise it passes an empty one and
    /// asks nobody). A report may cost a walk of the live data, so a policy asks only when its
    /// answer could be "compact".
    fn wants_space(&self, _pending: &PendingCompaction) -> bool {
        false
    }

    /// The decision for what is pending now, given the engines' space (summed over every
    /// engine the segments use; `reclaimable` is `None` unless every engine estimated it).
    fn decide(&self, pending: &PendingCompaction, space: &SpaceReport) -> PolicyDecision;
}

/// CometBFT's rule: compact once `interval` heights have been pruned since the last compaction
/// (`[storage] compaction_interval`, default 1000), over everything pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntervalPolicy {
    interval: u64,
}

impl IntervalPolicy {
    /// Compacts every `interval` pruned heights (an interval of 0 counts as 1).
    pub fn new(interval: u64) -> Self {
        Self {
            interval: interval.max(1),
        }
    }

    /// Pruned heights between compactions.
    pub fn interval(&self) -> u64 {
        self.interval
    }
}

impl CompactionPolicy for IntervalPolicy {
    fn name(&self) -> &'static str {
        "interval"
    }

    fn decide(&self, pending: &PendingCompaction, _space: &SpaceReport) -> PolicyDecision {
        if pending.is_empty() || pending.pruned_heights < self.interval {
            return PolicyDecision::Wait;
        }
        let (from, to) = pending.height_range();
        PolicyDecision::Compact { from, to }
    }
}

/// Never compacts after pruning (CometBFT's `compact = false`, the default there).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NeverCompact;

impl CompactionPolicy for NeverCompact {
    fn name(&self) -> &'static str {
        "off"
    }

    fn decide(&self, _pending: &PendingCompaction, _space: &SpaceReport) -> PolicyDecision {
        PolicyDecision::Off
    }
}

/// Compacts only when the space is there (TiKV's rule, by measured dead space): once the
/// engines estimate at least `min_reclaimable_bytes` reclaimable **and** at least
/// `min_reclaimable_percent` % of their bytes on disk, and never more often than every
/// `fallback_interval` pruned heights (without that floor, an engine whose file regrows after
/// every compaction — redb at GiB scale — was compacted after every prune: 320 compactions in a
/// 40,000-height run instead of 32, for no space). Engines that cannot estimate fall back to
/// CometBFT's interval rule alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpaceAwarePolicy {
    /// Reclaimable bytes below which compaction is not worth it.
    pub min_reclaimable_bytes: u64,
    /// Share of the bytes on disk, in percent (1–100), below which it is not worth it either.
    pub min_reclaimable_percent: u8,
    /// Pruned heights between compactions when the engines give no estimate.
    pub fallback_interval: u64,
}

impl SpaceAwarePolicy {
    /// Defaults: 64 MiB and 30 % (TiKV's `region-compact-tombstones-percent`), falling back to
    /// CometBFT's 1000 heights.
    pub const DEFAULT: Self = Self {
        min_reclaimable_bytes: 64 << 20,
        min_reclaimable_percent: 30,
        fallback_interval: 1000,
    };
}

impl SpaceAwarePolicy {
    /// Something is pending and at least `fallback_interval` heights were pruned since the last
    /// compaction, and since the engines' space was last found wanting: the floor under which
    /// this policy never compacts, and the most often it asks the engines.
    fn interval_reached(&self, pending: &PendingCompaction) -> bool {
        let floor = self.fallback_interval.max(1);
        !pending.is_empty()
            && pending.pruned_heights >= floor
            && pending.pruned_heights >= pending.space_checked_at.saturating_add(floor)
    }
}

impl CompactionPolicy for SpaceAwarePolicy {
    fn name(&self) -> &'static str {
        "space"
    }

    /// Only once the interval floor is reached: before it the answer is "wait" whatever the
    /// space, and the engines' reports are not free (redb walks its trees).
    fn wants_space(&self, pending: &PendingCompaction) -> bool {
        self.interval_reached(pending)
    }

    fn decide(&self, pending: &PendingCompaction, space: &SpaceReport) -> PolicyDecision {
        let worth_it = self.interval_reached(pending)
            && match space.reclaimable {
                Some(reclaimable) => {
                    reclaimable >= self.min_reclaimable_bytes
                        && u128::from(reclaimable) * 100
                            >= u128::from(space.on_disk) * u128::from(self.min_reclaimable_percent)
                }
                None => true,
            };
        if worth_it {
            let (from, to) = pending.height_range();
            PolicyDecision::Compact { from, to }
        } else {
            PolicyDecision::Wait
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(pruned_heights: u64, from: Option<u64>, to: u64) -> PendingCompaction {
        PendingCompaction {
            pruned_heights,
            from,
            to,
            space_checked_at: 0,
        }
    }

    #[test]
    fn interval_policy_table() {
        let cases = [
            // (interval, pending, decision)
            (1000, pending(0, None, 0), PolicyDecision::Wait),
            (1000, pending(999, Some(1), 1000), PolicyDecision::Wait),
            (
                1000,
                pending(1000, Some(1), 1001),
                PolicyDecision::Compact { from: 1, to: 1001 },
            ),
            (
                1000,
                pending(5000, Some(40), 5040),
                PolicyDecision::Compact { from: 40, to: 5040 },
            ),
            (
                1,
                pending(1, Some(7), 8),
                PolicyDecision::Compact { from: 7, to: 8 },
            ),
            // An interval of 0 is read as 1, never as "always, even with nothing pending".
            (0, pending(0, None, 0), PolicyDecision::Wait),
            (
                0,
                pending(1, Some(3), 4),
                PolicyDecision::Compact { from: 3, to: 4 },
            ),
            // A record without a lower bound compacts from its end: an empty range.
            (
                10,
                pending(10, None, 50),
                PolicyDecision::Compact { from: 50, to: 50 },
            ),
        ];
        for (interval, pending, expected) in cases {
            assert_eq!(
                IntervalPolicy::new(interval).decide(&pending, &SpaceReport::default()),
                expected,
                "interval {interval}, {pending:?}"
            );
        }
    }

    #[test]
    fn never_compact_is_off_whatever_is_pending() {
        for p in [pending(0, None, 0), pending(u64::MAX, Some(1), 2)] {
            assert_eq!(
                NeverCompact.decide(&p, &SpaceReport::default()),
                PolicyDecision::Off
            );
        }
    }

    #[test]
    fn space_aware_policy_table() {
        const MIB: u64 = 1 << 20;
        let policy = SpaceAwarePolicy {
            min_reclaimable_bytes: 64 * MIB,
            min_reclaimable_percent: 30,
            fallback_interval: 1000,
        };
        let space = |on_disk: u64, reclaimable: Option<u64>| SpaceReport {
            on_disk,
            reclaimable,
            live_bytes: None,
        };
        let some = pending(1000, Some(5), 15);
        let compact = PolicyDecision::Compact { from: 5, to: 15 };
        let cases = [
            // (pending, space, decision)
            (
                pending(0, None, 0),
                space(900 * MIB, Some(800 * MIB)),
                PolicyDecision::Wait,
            ),
            (some, space(1000 * MIB, Some(300 * MIB)), compact),
            (
                some,
                space(1000 * MIB, Some(299 * MIB)),
                PolicyDecision::Wait,
            ),
            (some, space(100 * MIB, Some(63 * MIB)), PolicyDecision::Wait),
            (some, space(100 * MIB, Some(64 * MIB)), compact),
            (some, space(0, Some(0)), PolicyDecision::Wait),
            (some, space(u64::MAX, Some(u64::MAX)), compact),
            // Never before the interval, however much space: no compaction after every prune.
            (
                pending(999, Some(5), 15),
                space(1000 * MIB, Some(900 * MIB)),
                PolicyDecision::Wait,
            ),
            // No estimate: CometBFT's interval decides.
            (
                pending(999, Some(5), 15),
                space(1000 * MIB, None),
                PolicyDecision::Wait,
            ),
            (some, space(1000 * MIB, None), compact),
        ];
        for (pending, space, expected) in cases {
            assert_eq!(
                policy.decide(&pending, &space),
                expected,
                "{pending:?} {space:?}"
            );
        }
        // Space is asked for only when the answer could be "compact", and once per interval:
        // after a check that found too little, again only `fallback_interval` heights later.
        let checked_at = |pruned_heights, at| PendingCompaction {
            space_checked_at: at,
            ..pending(pruned_heights, Some(5), 15)
        };
        for (pending, wants) in [
            (pending(0, None, 0), false),
            (pending(999, Some(5), 15), false),
            (some, true),
            (pending(5000, Some(5), 15), true),
            (checked_at(1100, 1000), false),
            (checked_at(1999, 1000), false),
            (checked_at(2000, 1000), true),
        ] {
            assert_eq!(policy.wants_space(&pending), wants, "{pending:?}");
            // Between two checks the decision is "wait", whatever the (unasked) space.
            if !wants {
                assert_eq!(
                    policy.decide(&pending, &space(1000 * MIB, None)),
                    PolicyDecision::Wait,
                    "{pending:?}"
                );
            }
        }
        assert!(!IntervalPolicy::new(1).wants_space(&some));
        assert!(!NeverCompact.wants_space(&some));
    }

    #[test]
    fn runs_accumulate_into_one_range() {
        let mut p = PendingCompaction::default();
        assert!(p.is_empty());
        p.record_run(10, 20, 10);
        p.record_run(5, 15, 0);
        assert_eq!(p, pending(11, Some(5), 20));
        assert_eq!(p.height_range(), (5, 20));
    }
}
