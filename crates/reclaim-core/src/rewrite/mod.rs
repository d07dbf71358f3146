//! The online rewrite: compaction for engines that cannot compact while the node runs.
//!
//! Some engines give space back only by rewriting their files, and do it with every other
//! access locked out (redb's `compact` needs the database to itself; sled 0.34 cannot compact at
//! all). At a node's scale that pause grows with the live data. [`GenerationalStore`] wraps such
//! an engine and compacts by copying the live data into a fresh *generation* of it while reads
//! and writes continue:
//!
//! ```text
//! DIR/
//!   RECLAIM_BACKEND, reclaim.lock   the store directory (crate::dir)
//!   CURRENT                         names the live generation; replaced atomically
//!   BUILDING                        names the generation a write-once rewrite builds (while it does)
//!   gen-000007/                     the live generation: one engine instance
//!   gen-000008/                     a rewrite in progress
//! ```
//!
//! An open removes every generation that neither `CURRENT` nor a `BUILDING` naming a later one
//! names.
//!
//! ## Write-once (an engine with a [`SideKeyspace`])
//!
//! 1. **Freeze.** The new generation is created and made durable, `BUILDING` names it, and
//!    from then on every write goes to it alone, with a *tombstone* for each of its deletes in
//!    the engine's side keyspace, in the same engine transaction. The old generation is frozen:
//!    nothing writes to it.
//! 2. **Read through.** A read takes the new generation's value, else nothing if the key was
//!    deleted since the freeze, else the frozen generation's; a scan merges both the same way
//!    (and waits for a write in flight, so that it sees each batch whole).
//! 3. **Copy.** The frozen generation is copied in key order, a pacer step at a time
//!    ([`crate::kv::CompactionPacer`]), into the new one: each chunk holding the write lock
//!    for as long as it takes to drop the keys written or deleted since the freeze and write
//!    the rest (so a copied value never overwrites a newer one), made durable a chunk at a
//!    time.
//! 4. **Switch.** The new generation is made durable and `CURRENT` names it (the commit
//!    point); the frozen generation is dropped from reads, `BUILDING` removed, the tombstones
//!    cleared, and the old generation retired (closed once its last reader is done, removed in
//!    steps). Writers wait only for the swap of two pointers.
//!
//! The node's writes reach the disk once, not twice (the replay of the mode below writes them
//! again into the copy, which is what a commit during a rewrite paid for most).
//!
//! Crash safety: before `BUILDING` is durable nothing was redirected; after it, the new
//! generation holds every acknowledged write with the tombstones of its deletes (one engine
//! transaction each) and the frozen one everything else, so an open that finds `BUILDING`
//! serves both as in step 2 and the next compaction finishes the copy (keys the new
//! generation holds are skipped). A failure or a stop before the commit point moves the
//! writes made meanwhile back into the old generation (holding the write lock), removes
//! `BUILDING` and the new generation: the store is as if the rewrite had not begun. When
//! those writes are not all known (after a restart) or exceed
//! [`RewriteSettings::fold_back_limit_bytes`], the rewrite stays in progress instead, both
//! generations serve reads and writes, and the next compaction finishes it.
//!
//! ## Replaying (an engine without one)
//!
//! 1. **Capture.** From the start of the rewrite, every write applied to the live generation is
//!    also queued (in memory, under the store's write lock, after it was applied).
//! 2. **Copy.** The live data is copied in key order, one bounded scan at a time, into the new
//!    generation; after each chunk the queued writes are replayed onto it in order. A step is
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
//! A failure anywhere before the commit point (no space, an I/O error, shutdown, writes that
//! outgrow the capture bound) removes the new generation and leaves the old one live, changed
//! by nothing.
//!
//! ## Both: the copy writes between the node's writes
//!
//! The store times the node's writes (`gaps.rs`): its usual pause within a burst (a block's
//! commit is a few writes in a row) and its usual rest between bursts. Each copy chunk waits
//! until the burst is over and is sized to fill part of the rest left
//! ([`RewriteSettings::rest_share`], between [`RewriteSettings::min_chunk_bytes`] and
//! [`RewriteSettings::persist_every_bytes`]), so that it ends before the node writes again
//! instead of making the node's next commit wait for its write and its flush.
//!
//! An engine joins by implementing [`GenerationEngine`]: open a generation in a directory, make
//! it durable, close it; and [`SideKeyspace`] to be rewritten write-once.

mod capture;
mod engine;
mod gaps;
mod layout;
mod shadow;
mod store;

pub use capture::WriteCapture;
pub use engine::{GenerationEngine, SideKeyspace};
pub use layout::{BUILDING_FILE, CURRENT_FILE, GenerationLayout};
pub use store::{GenerationalStore, RewriteSettings, RewriteStats};
