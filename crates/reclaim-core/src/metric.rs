//! Names of the metrics reclaim emits through the [`metrics`] facade.
//!
//! reclaim records into whatever recorder the node installs (Prometheus, StatsD, ...); with none
//! installed every call is a no-op. `docs/operations.md` lists each metric with its meaning.
//! Call [`describe`] once after installing a recorder to attach units and help texts.

/// Counter: heights that fell below the base (the most of any segment per run).
pub const PRUNED_HEIGHTS_TOTAL: &str = "reclaim_pruned_heights_total";
/// Counter, label `result` = `complete` | `more_to_do` | `refused` | `error`: pruning runs.
pub const PRUNE_RUNS_TOTAL: &str = "reclaim_prune_runs_total";
/// Histogram, seconds: wall time of one pruning run (every segment, compaction excluded).
pub const PRUNE_SECONDS: &str = "reclaim_prune_duration_seconds";
/// Counter: wake-ups of the background pruner merged into one already pending.
pub const PRUNE_WAKEUPS_MERGED_TOTAL: &str = "reclaim_prune_wakeups_merged_total";
/// Gauge, label `source` = `application` | `companion` | `effective`: retain heights in force.
pub const RETAIN_HEIGHT: &str = "reclaim_retain_height";
/// Gauge, label `segment` (e.g. `block_store`, `state_store`): each segment's base after the
/// last pruning run.
pub const SEGMENT_BASE: &str = "reclaim_segment_base";
/// Counter, label `result` = `succeeded` | `failed` | `stopped`: compaction tasks run.
pub const COMPACTIONS_TOTAL: &str = "reclaim_compactions_total";
/// Histogram, seconds: wall time of one compaction task, waits and pauses included.
pub const COMPACTION_SECONDS: &str = "reclaim_compaction_duration_seconds";
/// Histogram, seconds: one slice (one engine `compact_range` call).
pub const COMPACTION_SLICE_SECONDS: &str = "reclaim_compaction_slice_duration_seconds";
/// Histogram, seconds: time one slice waited for the load signal or a time window.
pub const COMPACTION_WAIT_SECONDS: &str = "reclaim_compaction_wait_seconds";
/// Counter, bytes: bytes on disk returned by compaction.
pub const COMPACTION_BYTES_RECLAIMED_TOTAL: &str = "reclaim_compaction_bytes_reclaimed_total";
/// Counter, label `reason` = `in_flight` | `queue_full` | `shut_down`: tasks refused by
/// `try_enqueue`.
pub const COMPACTION_ENQUEUE_SKIPPED_TOTAL: &str = "reclaim_compaction_enqueue_skipped_total";
/// Counter, label `result` = `switched` | `abandoned`: online rewrites of a generational store
/// (`crate::rewrite`).
pub const REWRITES_TOTAL: &str = "reclaim_rewrites_total";
/// Histogram, seconds: how long writers waited for one online rewrite's switch.
pub const REWRITE_WRITERS_PAUSED_SECONDS: &str = "reclaim_rewrite_writers_paused_seconds";
/// Counter, bytes: keys and values copied by online rewrites.
pub const REWRITE_BYTES_COPIED_TOTAL: &str = "reclaim_rewrite_bytes_copied_total";

/// Attaches units and help texts to every metric above in the installed recorder.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        PRUNED_HEIGHTS_TOTAL,
        Unit::Count,
        "Heights that fell below the base"
    );
    describe_counter!(
        PRUNE_RUNS_TOTAL,
        Unit::Count,
        "Pruning runs by result (complete, more_to_do, refused, error)"
    );
    describe_histogram!(
        PRUNE_SECONDS,
        Unit::Seconds,
        "Wall time of one pruning run, compaction excluded"
    );
    describe_counter!(
        PRUNE_WAKEUPS_MERGED_TOTAL,
        Unit::Count,
        "Background pruner wake-ups merged into one already pending"
    );
    describe_gauge!(
        RETAIN_HEIGHT,
        Unit::Count,
        "Retain heights in force by source (application, companion, effective)"
    );
    describe_gauge!(
        SEGMENT_BASE,
        Unit::Count,
        "Base of each pruned segment after the last pruning run"
    );
    describe_counter!(
        COMPACTIONS_TOTAL,
        Unit::Count,
        "Compaction tasks by result (succeeded, failed, stopped)"
    );
    describe_histogram!(
        COMPACTION_SECONDS,
        Unit::Seconds,
        "Wall time of one compaction task, waits and pauses included"
    );
    describe_histogram!(
        COMPACTION_SLICE_SECONDS,
        Unit::Seconds,
        "Duration of one compaction slice (one engine call)"
    );
    describe_histogram!(
        COMPACTION_WAIT_SECONDS,
        Unit::Seconds,
        "Time a compaction slice waited for the load signal or a time window"
    );
    describe_counter!(
        COMPACTION_BYTES_RECLAIMED_TOTAL,
        Unit::Bytes,
        "Bytes on disk returned by compaction"
    );
    describe_counter!(
        COMPACTION_ENQUEUE_SKIPPED_TOTAL,
        Unit::Count,
        "Compaction tasks refused by try_enqueue, by reason"
    );
    describe_counter!(
        REWRITES_TOTAL,
        Unit::Count,
        "Online rewrites by result (switched, abandoned)"
    );
    describe_histogram!(
        REWRITE_WRITERS_PAUSED_SECONDS,
        Unit::Seconds,
        "Time writers waited for one online rewrite's switch"
    );
    describe_counter!(
        REWRITE_BYTES_COPIED_TOTAL,
        Unit::Bytes,
        "Keys and values copied by online rewrites"
    );
}
