//! The damage harness on fjall: a pruned chain's store gets one bit flipped, one 4 KiB page
//! zeroed or one file cut, over many seeds (`RECLAIM_DAMAGE_SEEDS`); every damaged store is
//! refused with a typed error or reads back every retained height exactly — never wrong or
//! missing data, never a panic, never a hang.

use std::sync::Arc;

use reclaim_conformance::damage::assert_damage_is_never_silent;
use reclaim_core::KvStore;

#[test]
fn damage_is_refused_or_harmless_never_silent() {
    assert_damage_is_never_silent(
        "fjall",
        Arc::new(|dir| Ok(Arc::new(reclaim_fjall::FjallStore::open(dir)?) as Arc<dyn KvStore>)),
    );
}
