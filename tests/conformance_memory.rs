//! The conformance suite against the in-memory reference engine.

reclaim_conformance::conformance_suite!(
    memory,
    reclaim_conformance::memory::open_memory,
    in_memory
);
