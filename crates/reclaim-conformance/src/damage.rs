//! Helpers for backend tests that damage a store on disk and check it is refused cleanly.

use std::path::{Path, PathBuf};

/// Every regular file under `dir`, recursively, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("list directory").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Overwrites every byte of `file` at offsets that are multiples of `stride` with its
/// complement: a corruption no checksum can miss.
pub fn flip_bytes(file: &Path, stride: usize) {
    let mut bytes = std::fs::read(file).expect("read file");
    for b in bytes.iter_mut().step_by(stride.max(1)) {
        *b = !*b;
    }
    std::fs::write(file, bytes).expect("write file");
}

/// Truncates `file` to `fraction` of its length.
pub fn truncate(file: &Path, fraction: f64) {
    let len = std::fs::metadata(file).expect("stat").len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(file)
        .expect("open");
    file.set_len((len as f64 * fraction) as u64)
        .expect("truncate");
}

use std::sync::Arc;

use reclaim_core::{KvStore, StorageError, WriteBatch, WriteOptions};

/// Keys written by [`fill`].
pub const FILLED_KEYS: u32 = 300;

/// Writes [`FILLED_KEYS`] synced entries of 1 KiB into `store`.
pub fn fill(store: &dyn KvStore) {
    for chunk in 0..FILLED_KEYS / 100 {
        let mut batch = WriteBatch::new();
        for i in chunk * 100..(chunk + 1) * 100 {
            batch.put(
                format!("k{i:05}").into_bytes(),
                crate::data::random_bytes(u64::from(i), 1024),
            );
        }
        store.write(batch, WriteOptions::DURABLE).expect("fill");
    }
}

/// After damage, opening must fail with a readable error, or — where the engine only detects
/// damage lazily — every read must return either the exact value written or an error. Never a
/// panic, never a wrong value. Returns the open error, if any.
pub fn check_damaged(
    open: impl Fn() -> Result<Arc<dyn KvStore>, StorageError>
    + std::panic::UnwindSafe
    + std::panic::RefUnwindSafe,
) -> Option<StorageError> {
    let outcome = std::panic::catch_unwind(|| match open() {
        Err(e) => {
            assert!(!e.to_string().is_empty());
            Some(e)
        }
        Ok(store) => {
            for i in 0..FILLED_KEYS {
                if let Ok(Some(value)) = store.get(format!("k{i:05}").as_bytes()) {
                    assert_eq!(
                        value,
                        crate::data::random_bytes(u64::from(i), 1024),
                        "wrong value for k{i:05}"
                    );
                }
            }
            None
        }
    });
    outcome.unwrap_or_else(|_| panic!("a damaged store made the adapter panic"))
}

/// Opens one particular (damaged) store.
pub type ReopenFn = dyn Fn() -> Result<Arc<dyn KvStore>, StorageError> + Send + Sync;

/// How one damage trial damages a store's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// Flip one bit at a random offset of a random file.
    BitFlip,
    /// Zero a 4 KiB page at a random offset of a random file.
    ZeroedPage,
    /// Cut a random file at a random length.
    Truncation,
}

/// What one damage trial found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The store refused to open (or the chain's stores did), with a typed error.
    Refused(String),
    /// The store opened; every retained height read back exactly, or as a typed error (the
    /// first one is kept) for the records the damage reached.
    Detected(String),
    /// The store opened and every retained height read back exactly.
    Intact,
    /// A retained value read back wrong, or as missing: silent damage.
    Silent(String),
    /// The adapter or the stores panicked.
    Panicked(String),
    /// Opening or reading did not finish within the trial's limit.
    Hung,
}

/// A deterministic generator for the trials (no dependency on a random crate's stream).
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Applies `damage` to one of `files` chosen by `seed`; returns what it did.
pub fn apply_damage(files: &[PathBuf], damage: Damage, seed: u64) -> String {
    let mut state = seed;
    let candidates: Vec<&PathBuf> = files
        .iter()
        .filter(|f| std::fs::metadata(f).is_ok_and(|m| m.len() > 0))
        .collect();
    if candidates.is_empty() {
        return "no file to damage".into();
    }
    let file = candidates[(splitmix(&mut state) % candidates.len() as u64) as usize];
    let mut bytes = std::fs::read(file).expect("read file");
    let len = bytes.len() as u64;
    let at = (splitmix(&mut state) % len) as usize;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let what = match damage {
        Damage::BitFlip => {
            let bit = (splitmix(&mut state) % 8) as u8;
            bytes[at] ^= 1 << bit;
            format!("bit {bit} of byte {at} of {name} ({len} bytes) flipped")
        }
        Damage::ZeroedPage => {
            let start = at / 4096 * 4096;
            let end = (start + 4096).min(bytes.len());
            bytes[start..end].fill(0);
            format!("bytes {start}..{end} of {name} ({len} bytes) zeroed")
        }
        Damage::Truncation => {
            bytes.truncate(at);
            format!("{name} cut from {len} to {at} bytes")
        }
    };
    std::fs::write(file, bytes).expect("write file");
    what
}

/// Copies the directory `from` to `to`, recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("list").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Opens the damaged store with `open`, then the chain's stores on it, and reads every
/// retained height of the test chain (first height 1): exact, an error, or a refusal are
/// fine; a wrong or missing value, a panic or a hang is not. Runs on its own thread with a
/// time limit.
pub fn judge(open: Arc<ReopenFn>, limit: std::time::Duration) -> Verdict {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let verdict = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| judge_now(&*open)))
            .unwrap_or_else(|payload| {
                Verdict::Panicked(
                    payload
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_default(),
                )
            });
        let _ = tx.send(verdict);
    });
    rx.recv_timeout(limit).unwrap_or(Verdict::Hung)
}

fn judge_now(open: &dyn Fn() -> Result<Arc<dyn KvStore>, StorageError>) -> Verdict {
    use crate::chain::{block, expected_params, expected_validators};
    let db = match open() {
        Ok(db) => db,
        Err(e) => return Verdict::Refused(e.to_string()),
    };
    let blocks = match reclaim_cometbft::BlockStore::open(Arc::clone(&db)) {
        Ok(b) => b,
        Err(e) => return Verdict::Refused(e.to_string()),
    };
    let states = match reclaim_cometbft::StateStore::open(db, Default::default()) {
        Ok(s) => s,
        Err(e) => return Verdict::Refused(e.to_string()),
    };
    let (b, s) = (blocks.bounds(), states.bounds());
    if b.height != DAMAGE_CHAIN_HEIGHT || s.height != DAMAGE_CHAIN_HEIGHT {
        return Verdict::Silent(format!(
            "the store opened at heights {} / {} instead of {DAMAGE_CHAIN_HEIGHT}",
            b.height, s.height
        ));
    }
    let silent = |what: &str, h: u64, got: &dyn std::fmt::Debug| {
        Verdict::Silent(format!(
            "{what} of retained height {h} read back as {got:?}"
        ))
    };
    let mut first_error: Option<String> = None;
    let mut note = |e: &dyn std::fmt::Display| {
        first_error.get_or_insert_with(|| e.to_string());
    };
    for h in b.base..=b.height {
        let expected = block(h);
        match blocks.load_block_meta(h) {
            Err(e) => note(&e),
            Ok(Some(v)) if v == expected.meta => {}
            Ok(other) => return silent("block meta", h, &other.map(|v| v.len())),
        }
        match blocks.load_block_parts(h) {
            Err(e) => note(&e),
            Ok(parts) if parts == expected.parts => {}
            Ok(other) => return silent("block parts", h, &other.len()),
        }
        match blocks.load_block_commit(h) {
            Err(e) => note(&e),
            Ok(Some(v)) if v == expected.commit => {}
            Ok(other) => return silent("commit", h, &other.map(|v| v.len())),
        }
    }
    for h in s.base..=s.height {
        match states.load_validators(h) {
            Err(e) => note(&e),
            Ok(Some(v)) if v == expected_validators(1, h) => {}
            Ok(other) => return silent("validators", h, &other.map(|v| v.len())),
        }
        match states.load_consensus_params(h) {
            Err(e) => note(&e),
            Ok(Some(v)) if v == expected_params(1, h) => {}
            Ok(other) => return silent("params", h, &other.map(|v| v.len())),
        }
    }
    match first_error {
        Some(e) => Verdict::Detected(e),
        None => Verdict::Intact,
    }
}

/// The height of the chain [`damage_harness`] writes.
pub const DAMAGE_CHAIN_HEIGHT: u64 = 120;

/// Writes the test chain (heights 1..=120, pruned below 40) into a fresh store at `pristine`
/// through `open_at`, then for every damage kind and `seeds` seeds copies it, damages the
/// copy and judges it. Returns (damage, seed, what was done, verdict) for every trial.
pub fn damage_harness(
    open_at: Arc<crate::OpenFn>,
    scratch: &Path,
    seeds: u64,
) -> Vec<(Damage, u64, String, Verdict)> {
    let pristine = scratch.join("pristine");
    {
        let db = open_at(&pristine).expect("open pristine store");
        let chain = crate::chain::open(db, Default::default());
        crate::chain::commit(&chain, 1, 1, DAMAGE_CHAIN_HEIGHT);
        let exec = reclaim_cometbft::pruning_executor(
            &chain.blocks,
            &chain.states,
            reclaim_cometbft::PruningSettings {
                evidence_max_age_heights: 0,
                ..Default::default()
            },
        );
        exec.prune(40).expect("prune pristine chain");
        // A last synced write so that everything before it is durable.
        let mut batch = WriteBatch::new();
        batch.put(b"zz-sync".to_vec(), b"1".to_vec());
        chain
            .blocks
            .db()
            .write(batch, WriteOptions::DURABLE)
            .expect("sync");
    }
    let mut results = Vec::new();
    for damage in [Damage::BitFlip, Damage::ZeroedPage, Damage::Truncation] {
        for seed in 0..seeds {
            let copy = scratch.join(format!("{damage:?}-{seed}"));
            copy_dir(&pristine, &copy);
            let files: Vec<PathBuf> = files_under(&copy)
                .into_iter()
                .filter(|f| {
                    let name = f
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    name != reclaim_core::dir::MARKER_FILE && name != reclaim_core::dir::LOCK_FILE
                })
                .collect();
            let what = apply_damage(
                &files,
                damage,
                seed.wrapping_mul(7919).wrapping_add(damage as u64),
            );
            let open_copy = Arc::clone(&open_at);
            let path = copy.clone();
            let verdict = judge(
                Arc::new(move || open_copy(&path)),
                std::time::Duration::from_secs(30),
            );
            results.push((damage, seed, what, verdict));
            let _ = std::fs::remove_dir_all(&copy);
        }
    }
    results
}

/// Seeds per damage kind in the default run; `RECLAIM_DAMAGE_SEEDS` sets more (the long mode).
pub fn damage_seeds() -> u64 {
    std::env::var("RECLAIM_DAMAGE_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(16)
}

/// Runs [`damage_harness`] for an engine and fails, listing every bad trial, unless each one
/// was refused with a typed error or read back exactly: no silent damage, no panic, no hang.
/// Prints a `damage-figure:` line with the counts per damage kind.
pub fn assert_damage_is_never_silent(engine: &str, open_at: Arc<crate::OpenFn>) {
    let scratch = tempfile::tempdir().expect("scratch directory");
    let results = damage_harness(open_at, scratch.path(), damage_seeds());
    let mut counts: std::collections::BTreeMap<String, [u32; 3]> = Default::default();
    let mut bad = Vec::new();
    for (damage, seed, what, verdict) in &results {
        let entry = counts.entry(format!("{damage:?}")).or_default();
        match verdict {
            Verdict::Refused(_) => entry[0] += 1,
            Verdict::Detected(_) => entry[1] += 1,
            Verdict::Intact => entry[2] += 1,
            other => bad.push(format!("{damage:?} seed {seed}: {what}: {other:?}")),
        }
    }
    for (damage, [refused, detected, intact]) in &counts {
        println!(
            "damage-figure: {engine} {damage}: {refused} refused at open, {detected} opened with the damaged records refused on read, {intact} read back exactly"
        );
    }
    assert!(
        bad.is_empty(),
        "{engine}: {} of {} damaged stores were not refused nor intact:\n{}",
        bad.len(),
        results.len(),
        bad.join("\n")
    );
}
