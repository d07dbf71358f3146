//! The online rewrite survives a kill at every step of the generation switch and at moments
//! spread over its run, with a writer acknowledging durable writes throughout
//! (`reclaim_conformance::rewrite_kill`): write-once (redb's default), and replaying (the
//! protocol of an engine without a side keyspace, kept proven on a real engine here).

use reclaim_core::rewrite::{GenerationalStore, RewriteSettings};
use reclaim_redb::RedbEngine;

#[test]
fn rewrite_kill() {
    reclaim_conformance::rewrite_kill::run(
        "rewrite_kill",
        |dir: &std::path::Path| reclaim_redb::RedbStore::open(dir),
        drop,
    );
}

#[test]
fn rewrite_kill_replaying() {
    let settings = RewriteSettings {
        write_once: false,
        ..RewriteSettings::default()
    };
    reclaim_conformance::rewrite_kill::run_with_points(
        "rewrite_kill_replaying",
        reclaim_conformance::rewrite_kill::REPLAY_CRASH_POINTS,
        |dir: &std::path::Path| GenerationalStore::open_with(dir, RedbEngine, settings.clone()),
        drop,
    );
}
