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
