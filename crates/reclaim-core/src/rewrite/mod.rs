//! The online rewrite: compaction for engines that cannot compact while the node runs.
//!
//! Some engines give space back only by rewriting their files, and do it with every other
//! access locked out (redb's `compact` needs the database to itself; sled 0.34 cannot compact at
//! all). At a node's scale that pause grows with the live data. [`GenerationalStore`] wraps such
//! an engine and compacts by copying the live data into a fresh *generation* of it while reads
//! and writes continue on the old one:
//!
//! ```text
//! DIR/
//!   RECLAIM_BACKEND, reclaim.lock   the store directory (crate::dir)
//!   CURRENT                         names the live generation; replaced atomically
//!   gen-000007/                     the live generation: one engine instance
//!   gen-000008/                     a rewrite in progress (removed on open unless CURRENT names it)
//! ```
//!
//! 1. **Capture.** From the start of the rewrite, every write applied to the live generation is
//!    also queued (in memory, under the store's write lock, after it was applied).
//! 2. **Copy.** The live data is copied in key order, one bounded scan at a time, into the new
//!    generation; after each step the queued writes are replayed onto it in order. A step is
//!    [`crate::kv::CompactionPacer::step_bytes`] long and waits for its turn, so the copy yields to a busy
//!    node, pauses, and stops at shutdown.
//! 3. **Catch up and switch.** The new generation is made durable, the queue drained until it is
//!    short; then, holding the write lock (writers wait, readers do not), the last queued writes
//!    are replayed, the new generation is made durable again, `CURRENT` is replaced (the commit
//!    point) and the live pointer is swapped.
//! 4. **Retire.** The old generation is closed once its last reader is done, and removed.
//!
//! Why the result holds exactly the live data: a scan step reads a consistent state that
//! includes every write queued before it (writes are queued after they are applied), and every
//! write applied after it is queued and replayed after the step's copy. So the last thing that
//! touches any key in the new generation is either the last write to it or a copy that already
//! reflects that write.
//!
//! Crash safety: until `CURRENT` names the new generation, the old one is live and holds every
//! acknowledged write (writes go to it first); the new generation is durable before `CURRENT`
//! names it, and no write is acknowledged between that and the swap (the write lock is held).
//! An open removes every generation `CURRENT` does not name. A failure anywhere before the
//! commit point (no space, an I/O error, shutdown, writes that outgrow the capture bound) removes
//! the new generation and leaves the old one live, changed by nothing.
//!
//! An engine joins by implementing [`GenerationEngine`]: open a generation in a directory, make
//! it durable, close it.

mod capture;
mod engine;
mod layout;
mod shadow;
mod store;

pub use capture::WriteCapture;
pub use engine::{GenerationEngine, SideKeyspace};
pub use layout::{BUILDING_FILE, CURRENT_FILE, GenerationLayout};
pub use store::{GenerationalStore, RewriteSettings, RewriteStats};
