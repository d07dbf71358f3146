//! # reclaim-conformance
//!
//! The suite every reclaim engine adapter must pass, ours and outsiders'. Add this crate as a
//! dev-dependency and write one line in a test file:
//!
//! ```ignore
//! use std::sync::Arc;
//! reclaim_conformance::conformance_suite!(my_engine, |dir: &std::path::Path| {
//!     Ok(Arc::new(MyStore::open(dir)?) as Arc<dyn reclaim_core::KvStore>)
//! });
//! ```
//!
//! It expands into a module `my_engine` with one `#[test]` per case. The factory opens the
//! store kept in `dir` (creating it if needed); the suite "reopens" a store by dropping every
//! handle to it and calling the factory again on the same directory. An engine without files
//! uses the `in_memory` form, which leaves out the cases about directories on disk:
//! `conformance_suite!(memory, factory, in_memory);`.
//!
//! Each case panics with a message saying what broke; [`run_case`] turns that into a result
//! for tooling. Cases that measure (space, pauses, costs) record figures ([`report::figure`]),
//! printed as `conformance-figure:` lines; [`report::Report`] runs every case against an
//! adapter and renders the results and figures as a table a CI job can publish.
//!
//! What the suite cannot do portably — fill a disk, remount it read-only — an adapter's own
//! tests can, on a size-limited file system from [`tmpfs::Tmpfs`] (needs mount permission;
//! the workspace's `tests/full_disk.rs` shows the checks for every engine).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use reclaim_core::{KvStore, StorageError};

pub mod cases;
pub mod chain;
pub mod damage;
pub mod data;
pub mod executor;
pub mod memory;
pub mod pacing;
pub mod report;
pub mod rewrite_kill;
pub mod tmpfs;

/// Opens the store kept in a directory (creating it if needed).
pub type OpenFn = dyn Fn(&Path) -> Result<Arc<dyn KvStore>, StorageError> + Send + Sync;

/// What a case needs: a scratch directory and the adapter's factory.
pub struct Harness {
    open: Arc<OpenFn>,
    dir: tempfile::TempDir,
    fresh_stores: AtomicU64,
}

impl Harness {
    /// A harness around `open`, with a new temporary directory.
    pub fn new(
        open: impl Fn(&Path) -> Result<Arc<dyn KvStore>, StorageError> + Send + Sync + 'static,
    ) -> Self {
        Self {
            open: Arc::new(open),
            dir: tempfile::tempdir().expect("create a temporary directory"),
            fresh_stores: AtomicU64::new(0),
        }
    }

    /// The directory of the main store of this case.
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// The scratch directory all stores of this case live in.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// Opens the main store.
    pub fn open(&self) -> Arc<dyn KvStore> {
        self.open_at(&self.store_dir())
    }

    /// Opens the store in `path`, panicking with the adapter's error if it fails.
    pub fn open_at(&self, path: &Path) -> Arc<dyn KvStore> {
        self.try_open_at(path)
            .unwrap_or_else(|e| panic!("opening {} failed: {e}", path.display()))
    }

    /// Opens the store in `path`.
    pub fn try_open_at(&self, path: &Path) -> Result<Arc<dyn KvStore>, StorageError> {
        (self.open)(path)
    }

    /// Opens a new, empty store in its own directory.
    pub fn fresh(&self) -> (PathBuf, Arc<dyn KvStore>) {
        let n = self.fresh_stores.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.path().join(format!("fresh-{n}"));
        let store = self.open_at(&path);
        (path, store)
    }

    /// Drops `store` (which must be the last handle) and opens the same directory again.
    pub fn reopen_at(&self, path: &Path, store: Arc<dyn KvStore>) -> Arc<dyn KvStore> {
        assert_eq!(
            Arc::strong_count(&store),
            1,
            "the case still holds another handle to the store it reopens"
        );
        drop(store);
        self.open_at(path)
    }

    /// Drops the main store (the last handle) and opens it again.
    pub fn reopen(&self, store: Arc<dyn KvStore>) -> Arc<dyn KvStore> {
        self.reopen_at(&self.store_dir(), store)
    }
}

/// A case: a named function that panics when the adapter breaks the contract.
pub type Case = (&'static str, fn(&Harness));

/// **The one list of cases.** Each line is `kind module::case`: `all` cases run against every
/// adapter, `disk` cases only against adapters that keep files. [`CASES`], [`DISK_CASES`] and
/// [`conformance_suite!`] are all generated from it, so a case added here runs everywhere,
/// including the broken-adapter walk.
#[doc(hidden)]
#[macro_export]
macro_rules! __with_cases {
    ($callback:ident; $($args:tt)*) => {
        $crate::$callback! { [$($args)*]
            all cases::get_put_delete,
            all cases::batch_applies_in_order,
            all cases::batch_is_atomic_to_readers,
            all cases::delete_range_edges,
            all cases::ordered_scans_with_bounds_and_limits,
            all cases::synced_write_survives_reopen,
            all cases::buffered_writes_survive_a_clean_close,
            all cases::keys_up_to_the_declared_length_work,
            all cases::compaction_preserves_live_data,
            all cases::compaction_of_empty_store_and_range,
            all cases::compaction_concurrent_with_reads_and_writes,
            all cases::compaction_reclaims_space,
            all cases::space_estimates_match_what_compaction_gives_back,
            all cases::range_deletes_cost_what_the_engine_declares,
            all cases::online_compaction_does_not_block_reads_or_writes,
            all cases::random_operations_match_the_reference,
            all executor::executor_prunes_without_compactor,
            all executor::executor_single_flight_holds,
            all executor::executor_resumes_after_crash,
            all executor::executor_repeated_prune_is_idempotent,
            all executor::executor_pruned_chain_compacts_to_retained_size,
            all executor::executor_load_with_watchdog,
            all pacing::compaction_slices_and_plans_cover_the_ranges,
            all pacing::paced_compaction_after_pruning,
            all pacing::bounded_pruning_runs_resume,
            all pacing::retain_heights_are_held_back_and_persisted,
            all pacing::reads_racing_pruning_are_exact_or_refused,
            all pacing::background_pruner_follows_the_retain_height,
            all pacing::dropping_deleted_ranges_keeps_live_data,
            all pacing::dropping_deleted_ranges_never_resurrects_keys,
            all pacing::dropping_deleted_ranges_keeps_the_key_at_the_end,
            disk cases::bad_paths_are_refused,
            disk cases::a_held_store_is_refused,
            disk cases::a_store_whose_files_are_lost_is_refused,
        }
    };
}

/// Generates [`CASES`] and [`DISK_CASES`] from the case list.
#[doc(hidden)]
#[macro_export]
macro_rules! __case_consts {
    ([] $($kind:ident $module:ident :: $case:ident,)*) => {
        /// Cases every adapter runs (generated from the one case list).
        pub const CASES: &[$crate::Case] =
            $crate::__filter_cases!(all; []; $($kind $module $case,)*);
        /// Cases only adapters that keep files run (generated from the one case list).
        pub const DISK_CASES: &[$crate::Case] =
            $crate::__filter_cases!(disk; []; $($kind $module $case,)*);
    };
}

/// The entries of the case list of one kind, as a slice expression.
#[doc(hidden)]
#[macro_export]
macro_rules! __filter_cases {
    ($want:ident; [$($acc:tt)*]; ) => { &[$($acc)*] };
    (all; [$($acc:tt)*]; all $module:ident $case:ident, $($rest:tt)*) => {
        $crate::__filter_cases!(all; [$($acc)*
            (stringify!($case), $crate::$module::$case as fn(&$crate::Harness)),]; $($rest)*)
    };
    (disk; [$($acc:tt)*]; disk $module:ident $case:ident, $($rest:tt)*) => {
        $crate::__filter_cases!(disk; [$($acc)*
            (stringify!($case), $crate::$module::$case as fn(&$crate::Harness)),]; $($rest)*)
    };
    ($want:ident; [$($acc:tt)*]; $other:ident $module:ident $case:ident, $($rest:tt)*) => {
        $crate::__filter_cases!($want; [$($acc)*]; $($rest)*)
    };
}

__with_cases!(__case_consts;);

/// Runs one case and returns its panic message as an error.
pub fn run_case(case: fn(&Harness), harness: &Harness) -> Result<(), String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| case(harness))).map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "panic".to_owned())
    })
}

/// Expands into a module named `$name` with one `#[test]` per conformance case, run against
/// the adapter opened by `$open` (an expression of type
/// `Fn(&Path) -> Result<Arc<dyn KvStore>, StorageError>`). Add `, in_memory` for an adapter
/// without files (the `disk` cases are then left out).
#[macro_export]
macro_rules! conformance_suite {
    ($name:ident, $open:expr) => {
        $crate::__with_cases!(__suite_module; $name, $open, on_disk);
    };
    ($name:ident, $open:expr, in_memory) => {
        $crate::__with_cases!(__suite_module; $name, $open, in_memory);
    };
}

/// The test module of [`conformance_suite!`], generated from the case list.
#[doc(hidden)]
#[macro_export]
macro_rules! __suite_module {
    ([$name:ident, $open:expr, $mode:ident] $($kind:ident $module:ident :: $case:ident,)*) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            $( $crate::__suite_test!($mode $kind $module $case $open); )*
        }
    };
}

/// One test of [`conformance_suite!`]; `disk` cases are left out of an in-memory suite.
#[doc(hidden)]
#[macro_export]
macro_rules! __suite_test {
    (in_memory disk $module:ident $case:ident $open:expr) => {};
    ($mode:ident $kind:ident $module:ident $case:ident $open:expr) => {
        #[test]
        fn $case() {
            $crate::$module::$case(&$crate::Harness::new($open));
        }
    };
}
