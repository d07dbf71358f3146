pub use reclaim_core as core;
