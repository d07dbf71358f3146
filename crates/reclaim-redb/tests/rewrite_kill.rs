//! The online rewrite survives a kill at every step of the generation switch and at moments
//! spread over its run, with a writer acknowledging durable writes throughout
//! (`reclaim_conformance::rewrite_kill`).

#[test]
fn rewrite_kill() {
    reclaim_conformance::rewrite_kill::run(
        "rewrite_kill",
        |dir: &std::path::Path| reclaim_redb::RedbStore::open(dir),
        drop,
    );
}
