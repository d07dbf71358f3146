//! The store directory every on-disk backend lives in: an exclusive lock, a marker naming the
//! engine, and the one way bytes on disk are measured. Engine-agnostic: a backend passes its
//! engine name and keeps its own files beside these two.
//!
//! ```text
//! DIR/
//!   RECLAIM_BACKEND   the engine name ("redb", "sled", "rocksdb"), written once at creation
//!   reclaim.lock      held with an exclusive OS file lock while the store is open
//!   ...               the engine's own files
//! ```

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use crate::error::StorageError;

/// The file naming the engine of a store directory.
pub const MARKER_FILE: &str = "RECLAIM_BACKEND";

/// The file locked while a store is open.
pub const LOCK_FILE: &str = "reclaim.lock";

/// How long opening keeps retrying a lock it finds held before it reports
/// [`StorageError::Locked`]. The lock is tied to an open file, and a child process that another
/// thread of this process is starting holds a copy of every open file until it has started
/// its program (descriptors are closed on exec, not on fork): for that moment, a store this
/// process has just closed still looks held. A store really held elsewhere costs its second
/// opener this long before the refusal.
pub const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(500);

/// An exclusive lock on a store directory; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct StoreDirLock {
    _file: File,
    path: PathBuf,
    created: bool,
}

/// What kind of entry an engine keeps in its store directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file that is never empty once created.
    File,
    /// A directory that is never empty once created.
    Dir,
}

impl StoreDirLock {
    /// The locked store directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when this open made the directory a store (wrote its marker): the engine may
    /// create its files. Otherwise they must already be there ([`StoreDirLock::require`]).
    pub fn is_new(&self) -> bool {
        self.created
    }

    /// Checks that the engine's `name` (a file or directory inside the store directory) is
    /// there and not empty, unless this open created the store. A missing, empty or
    /// dangling-link entry of an existing store is [`StorageError::Missing`]: the engine must
    /// not create a new, empty store over a lost one.
    pub fn require(
        &self,
        engine: &'static str,
        name: &str,
        kind: EntryKind,
        what: &'static str,
    ) -> Result<(), StorageError> {
        Self::require_in(&self.path, self.created, engine, name, kind, what)
    }

    fn require_in(
        dir: &Path,
        created: bool,
        engine: &'static str,
        name: &str,
        kind: EntryKind,
        what: &'static str,
    ) -> Result<(), StorageError> {
        if created {
            return Ok(());
        }
        let path = dir.join(name);
        let missing = |detail: String| StorageError::Missing {
            engine,
            path: path.clone(),
            what,
            detail,
        };
        let link = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(missing("it does not exist".into()));
            }
            Err(e) => return Err(StorageError::io_at("stat store file", &path, e)),
        };
        let meta = if link.file_type().is_symlink() {
            match std::fs::metadata(&path) {
                Ok(meta) => meta,
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    let target = std::fs::read_link(&path)
                        .map(|t| t.display().to_string())
                        .unwrap_or_else(|_| "?".into());
                    return Err(missing(format!(
                        "it is a link to {target}, which does not exist"
                    )));
                }
                Err(e) => return Err(StorageError::io_at("stat store file", &path, e)),
            }
        } else {
            link
        };
        match kind {
            EntryKind::File if !meta.is_file() => Err(missing("it is not a regular file".into())),
            EntryKind::File if meta.len() == 0 => Err(missing("it is empty".into())),
            EntryKind::Dir if !meta.is_dir() => Err(missing("it is not a directory".into())),
            EntryKind::Dir => {
                let empty = std::fs::read_dir(&path)
                    .map_err(|e| StorageError::io_at("list store directory", &path, e))?
                    .next()
                    .is_none();
                if empty {
                    Err(missing("it is empty".into()))
                } else {
                    Ok(())
                }
            }
            EntryKind::File => Ok(()),
        }
    }
}

/// [`StoreDirLock::require`] for an entry `name` inside `dir` (a subdirectory of a locked store,
/// such as one generation of a [`crate::rewrite::GenerationalStore`]) that must exist.
pub fn require_entry(
    dir: &Path,
    engine: &'static str,
    name: &str,
    kind: EntryKind,
    what: &'static str,
) -> Result<(), StorageError> {
    StoreDirLock::require_in(dir, false, engine, name, kind, what)
}

/// Creates (if needed), locks and checks the store directory `path` for `engine`.
///
/// Errors, each changing nothing on disk: `path` is a file or cannot be created
/// ([`StorageError::BadPath`]); another process holds it ([`StorageError::Locked`]); it holds a
/// store of another engine, or unrelated files ([`StorageError::BadPath`]).
pub fn open_store_dir(path: &Path, engine: &'static str) -> Result<StoreDirLock, StorageError> {
    let bad = |detail: String| StorageError::BadPath {
        engine,
        path: path.to_owned(),
        detail,
    };
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_dir() => return Err(bad("it is a file, not a directory".into())),
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {
            std::fs::create_dir_all(path).map_err(|e| bad(format!("cannot create it: {e}")))?;
        }
        Err(e) => return Err(bad(e.to_string())),
    }
    let lock_path = path.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| match e.kind() {
            ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem => {
                bad(format!("directory is not writable: {e}"))
            }
            _ => StorageError::io_at("open store lock file", &lock_path, e),
        })?;
    lock_with_retry(&file, path, &lock_path, LockKind::Exclusive)?;
    let mut created = false;
    match detect_engine(path)? {
        Some(found) if found == engine => {}
        Some(found) => {
            return Err(bad(format!(
                "it holds a {found} store; open it with the {found} backend"
            )));
        }
        None => {
            let foreign = std::fs::read_dir(path)
                .map_err(|e| StorageError::io_at("list store directory", path, e))?
                .filter_map(Result::ok)
                .any(|entry| entry.file_name() != LOCK_FILE);
            if foreign {
                return Err(bad(
                    "the directory is not empty and is not a reclaim store".into()
                ));
            }
            write_durably(&path.join(MARKER_FILE), engine.as_bytes())?;
            created = true;
        }
    }
    Ok(StoreDirLock {
        _file: file,
        path: path.to_owned(),
        created,
    })
}

/// A shared lock on a store directory opened for a read-only look; released when dropped.
/// Several readers may hold it together; a writer (an exclusive [`StoreDirLock`]) may not.
#[derive(Debug)]
pub struct SharedDirLock {
    _file: Option<File>,
    path: PathBuf,
}

impl SharedDirLock {
    /// The store directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// As [`StoreDirLock::require`], for a store that must already exist.
    pub fn require(
        &self,
        engine: &'static str,
        name: &str,
        kind: EntryKind,
        what: &'static str,
    ) -> Result<(), StorageError> {
        StoreDirLock::require_in(&self.path, false, engine, name, kind, what)
    }
}

/// Opens the existing store directory `path` of `engine` for reading only, under a shared
/// lock, writing nothing (it works on a read-only file system).
///
/// Errors, each changing nothing: `path` is missing, a file, or not a store of `engine`
/// ([`StorageError::BadPath`]); a writer holds it ([`StorageError::Locked`]).
pub fn open_store_dir_read_only(
    path: &Path,
    engine: &'static str,
) -> Result<SharedDirLock, StorageError> {
    let bad = |detail: String| StorageError::BadPath {
        engine,
        path: path.to_owned(),
        detail,
    };
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_dir() => return Err(bad("it is a file, not a directory".into())),
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(bad("it does not exist".into()));
        }
        Err(e) => return Err(StorageError::io_at("stat store directory", path, e)),
    }
    match detect_engine(path)? {
        Some(found) if found == engine => {}
        Some(found) => {
            return Err(bad(format!(
                "it holds a {found} store; open it with the {found} backend"
            )));
        }
        None => return Err(bad("it is not a reclaim store (no marker)".into())),
    }
    let lock_path = path.join(LOCK_FILE);
    let file = match File::open(&lock_path) {
        Ok(file) => Some(file),
        // A store whose lock file is gone has no writer that could hold it.
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(StorageError::io_at("open store lock file", &lock_path, e)),
    };
    if let Some(file) = &file {
        lock_with_retry(file, path, &lock_path, LockKind::Shared)?;
    }
    Ok(SharedDirLock {
        _file: file,
        path: path.to_owned(),
    })
}

#[derive(Clone, Copy)]
enum LockKind {
    Exclusive,
    Shared,
}

/// Takes the store's lock on `file`, retrying for [`LOCK_RETRY`] before reporting
/// [`StorageError::Locked`] for the store `dir`.
fn lock_with_retry(
    file: &File,
    dir: &Path,
    lock_path: &Path,
    kind: LockKind,
) -> Result<(), StorageError> {
    let deadline = std::time::Instant::now() + LOCK_RETRY;
    loop {
        let attempt = match kind {
            LockKind::Exclusive => file.try_lock(),
            LockKind::Shared => file.try_lock_shared(),
        };
        match attempt {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StorageError::Locked {
                    path: dir.to_owned(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StorageError::io_at("lock store", lock_path, e));
            }
        }
    }
}

/// The engine named by the store directory's marker, `None` if it has none.
pub fn detect_engine(path: &Path) -> Result<Option<String>, StorageError> {
    match std::fs::read_to_string(path.join(MARKER_FILE)) {
        Ok(text) => Ok(Some(text.trim().to_owned())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::io_at(
            "read store marker",
            &path.join(MARKER_FILE),
            e,
        )),
    }
}

/// True if another process (or handle) holds the store directory's lock now.
pub fn is_locked(path: &Path) -> Result<bool, StorageError> {
    let file = match File::open(path.join(LOCK_FILE)) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            return Err(StorageError::io_at(
                "open store lock file",
                &path.join(LOCK_FILE),
                e,
            ));
        }
    };
    match file.try_lock_shared() {
        Ok(()) => Ok(false),
        Err(std::fs::TryLockError::WouldBlock) => Ok(true),
        Err(std::fs::TryLockError::Error(e)) => Err(StorageError::io_at(
            "probe store lock",
            &path.join(LOCK_FILE),
            e,
        )),
    }
}

/// Bytes on disk of everything under `path`: the filesystem blocks allocated to its regular
/// files, recursively (what `du` and the filesystem's free space count; see [`file_disk_bytes`]).
/// This is the one measure reported by every backend, the conformance suite and the benchmarks.
pub fn directory_size(path: &Path) -> Result<u64, StorageError> {
    directory_sum(path, file_disk_bytes)
}

/// The apparent length of everything under `path` (what `ls -l` shows): the sum of the lengths
/// of its regular files, recursively. Larger than [`directory_size`] when an engine grows its
/// files sparsely (redb doubles its file's length ahead of use), smaller when it preallocates.
pub fn directory_apparent_size(path: &Path) -> Result<u64, StorageError> {
    directory_sum(path, std::fs::Metadata::len)
}

/// Bytes a file occupies on its filesystem: its allocated blocks on Unix, where a sparse file's
/// holes cost nothing and a preallocated tail counts in full; its length elsewhere.
pub fn file_disk_bytes(meta: &std::fs::Metadata) -> u64 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        // st_blocks counts 512-byte units whatever the filesystem's block size.
        meta.blocks().saturating_mul(512)
    }
    #[cfg(not(unix))]
    {
        meta.len()
    }
}

fn directory_sum(
    path: &Path,
    file_bytes: fn(&std::fs::Metadata) -> u64,
) -> Result<u64, StorageError> {
    let mut total: u64 = 0;
    let entries = std::fs::read_dir(path)
        .map_err(|e| StorageError::io_at("list store directory", path, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StorageError::io_at("list store directory", path, e))?;
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            // A file removed while we walk (an engine deleting an obsolete file) counts as 0.
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(StorageError::io_at("stat store file", &entry.path(), e)),
        };
        if meta.is_dir() {
            match directory_sum(&entry.path(), file_bytes) {
                Ok(bytes) => total = total.saturating_add(bytes),
                Err(StorageError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        } else if meta.is_file() {
            total = total.saturating_add(file_bytes(&meta));
        }
    }
    Ok(total)
}

/// The file in which an adapter records, at each clean close, a high-water mark of what its
/// engine held (a write count, a sequence number) with the engine's generation.
pub const CLEAN_FILE: &str = "CLEAN";

/// Records a clean close of generation `generation` of the store in `dir` whose engine held
/// up to `mark` (durably: written through a temporary file, fsynced, renamed).
pub fn record_clean_close(dir: &Path, generation: u64, mark: u64) -> Result<(), StorageError> {
    write_durably(
        &dir.join(CLEAN_FILE),
        format!("{generation} {mark}").as_bytes(),
    )
}

/// Refuses an engine that opened at a lower `mark` than the one recorded at the last clean
/// close of the same `generation`: the engine recovered to an earlier state (damage to its
/// log or manifest), dropping writes it had acknowledged. No record, or one of another
/// generation, is no evidence either way. The check is read-only.
pub fn check_clean_close(
    dir: &Path,
    engine: &'static str,
    generation: u64,
    mark: u64,
) -> Result<(), StorageError> {
    let path = dir.join(CLEAN_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        // No record; but a link to nowhere in its place is a lost record, not an absent one.
        Err(e) if e.kind() == ErrorKind::NotFound && std::fs::symlink_metadata(&path).is_ok() => {
            return Err(StorageError::Missing {
                engine,
                path,
                what: "clean-close record",
                detail: "it is a link to a file that does not exist".into(),
            });
        }
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StorageError::io_at("read clean-close record", &path, e)),
    };
    let mut fields = text.split_whitespace().map(str::parse::<u64>);
    let (Some(Ok(recorded_generation)), Some(Ok(recorded))) = (fields.next(), fields.next()) else {
        return Err(StorageError::Corrupt {
            engine,
            path,
            detail: format!("{CLEAN_FILE} holds {text:?}, not a generation and a mark"),
        });
    };
    if recorded_generation == generation && recorded > mark {
        return Err(StorageError::Corrupt {
            engine,
            path: dir.to_owned(),
            detail: format!(
                "the engine recovered to an earlier state: {recorded} at the last clean close, {mark} now (its log or manifest is damaged; acknowledged writes would be lost)"
            ),
        });
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file, fsyncs it, renames it into place and
/// fsyncs the directory: after a crash the file holds either its old or its new content.
pub fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    let tmp = path.with_extension("tmp");
    let mut file =
        File::create(&tmp).map_err(|e| StorageError::io_at("create temporary file", &tmp, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| StorageError::io_at("write temporary file", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| StorageError::io_at("rename into place", path, e))?;
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Bytes an unprivileged process may still write on the file system holding `path`.
pub fn available_space(path: &Path) -> Result<u64, StorageError> {
    let stats = rustix::fs::statvfs(path)
        .map_err(|e| StorageError::io_at("statvfs", path, std::io::Error::from(e)))?;
    Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
}

/// Fsyncs a directory so that renames and creations inside it survive a crash.
pub fn sync_dir(path: &Path) -> Result<(), StorageError> {
    File::open(path)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| StorageError::io_at("fsync directory", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_opener_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = open_store_dir(dir.path(), "memory").unwrap();
        assert!(is_locked(dir.path()).unwrap());
        let err = open_store_dir(dir.path(), "memory").unwrap_err();
        assert!(matches!(err, StorageError::Locked { .. }), "{err}");
        assert!(err.to_string().contains("in use by another process"));
        drop(first);
        assert!(!is_locked(dir.path()).unwrap());
        open_store_dir(dir.path(), "memory").unwrap();
    }

    /// What a child process being started elsewhere in this process does to a store closed
    /// here: the lock stays held for a moment after the close. The opener waits it out.
    #[test]
    fn a_lock_let_go_within_the_retry_window_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let first = open_store_dir(dir.path(), "memory").unwrap();
        let holder = std::thread::spawn(move || {
            std::thread::sleep(LOCK_RETRY / 10);
            drop(first);
        });
        open_store_dir(dir.path(), "memory").unwrap();
        holder.join().unwrap();
    }

    #[test]
    fn wrong_engine_file_path_and_foreign_directory_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(open_store_dir(dir.path(), "redb").unwrap());
        let err = open_store_dir(dir.path(), "sled").unwrap_err();
        assert!(err.to_string().contains("holds a redb store"), "{err}");
        let file = dir.path().join("plain");
        std::fs::write(&file, b"x").unwrap();
        let err = open_store_dir(&file, "redb").unwrap_err();
        assert!(err.to_string().contains("is a file"), "{err}");
        let foreign = tempfile::tempdir().unwrap();
        std::fs::write(foreign.path().join("data.bin"), b"x").unwrap();
        let err = open_store_dir(foreign.path(), "redb").unwrap_err();
        assert!(err.to_string().contains("not a reclaim store"), "{err}");
        assert_eq!(
            std::fs::read(foreign.path().join("data.bin")).unwrap(),
            b"x"
        );
    }

    #[test]
    fn an_existing_store_must_keep_its_engine_files() {
        let dir = tempfile::tempdir().unwrap();
        let first = open_store_dir(dir.path(), "redb").unwrap();
        assert!(first.is_new());
        first
            .require("redb", "db", EntryKind::File, "database file")
            .unwrap();
        drop(first);
        let again = open_store_dir(dir.path(), "redb").unwrap();
        assert!(!again.is_new());
        let missing = |err: StorageError, needle: &str| {
            assert!(matches!(err, StorageError::Missing { .. }), "{err}");
            assert!(err.to_string().contains(needle), "{err}");
        };
        missing(
            again
                .require("redb", "db", EntryKind::File, "database file")
                .unwrap_err(),
            "does not exist",
        );
        std::fs::write(dir.path().join("db"), b"").unwrap();
        missing(
            again
                .require("redb", "db", EntryKind::File, "database file")
                .unwrap_err(),
            "empty",
        );
        std::fs::remove_file(dir.path().join("db")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("nowhere"), dir.path().join("db")).unwrap();
        missing(
            again
                .require("redb", "db", EntryKind::File, "database file")
                .unwrap_err(),
            "link",
        );
        assert!(
            !dir.path().join("nowhere").exists(),
            "nothing created at the link's target"
        );
        std::fs::remove_file(dir.path().join("db")).unwrap();
        std::fs::create_dir(dir.path().join("db")).unwrap();
        missing(
            again
                .require("redb", "db", EntryKind::File, "database file")
                .unwrap_err(),
            "not a regular file",
        );
        missing(
            again
                .require("redb", "db", EntryKind::Dir, "generation")
                .unwrap_err(),
            "empty",
        );
        std::fs::write(dir.path().join("db/x"), b"1").unwrap();
        again
            .require("redb", "db", EntryKind::Dir, "generation")
            .unwrap();
    }

    #[test]
    fn readers_share_the_lock_and_exclude_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        drop(open_store_dir(dir.path(), "redb").unwrap());
        let first = open_store_dir_read_only(dir.path(), "redb").unwrap();
        let second = open_store_dir_read_only(dir.path(), "redb").unwrap();
        let err = open_store_dir(dir.path(), "redb").unwrap_err();
        assert!(matches!(err, StorageError::Locked { .. }), "{err}");
        drop((first, second));
        let writer = open_store_dir(dir.path(), "redb").unwrap();
        let err = open_store_dir_read_only(dir.path(), "redb").unwrap_err();
        assert!(matches!(err, StorageError::Locked { .. }), "{err}");
        drop(writer);
        let err = open_store_dir_read_only(dir.path(), "sled").unwrap_err();
        assert!(err.to_string().contains("holds a redb store"), "{err}");
        let err = open_store_dir_read_only(&dir.path().join("nope"), "redb").unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        assert!(!dir.path().join("nope").exists());
    }

    #[test]
    fn a_rollback_below_the_clean_close_mark_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        check_clean_close(dir.path(), "e", 1, 0).unwrap();
        record_clean_close(dir.path(), 3, 100).unwrap();
        check_clean_close(dir.path(), "e", 3, 100).unwrap();
        check_clean_close(dir.path(), "e", 3, 250).unwrap();
        check_clean_close(dir.path(), "e", 4, 0).unwrap();
        let err = check_clean_close(dir.path(), "e", 3, 99).unwrap_err();
        assert!(err.to_string().contains("earlier state"), "{err}");
        std::fs::write(dir.path().join(CLEAN_FILE), b"garbage").unwrap();
        assert!(check_clean_close(dir.path(), "e", 3, 100).is_err());
    }

    #[test]
    fn directory_size_sums_nested_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), [0u8; 100]).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/b"), [0u8; 23]).unwrap();
        assert_eq!(directory_apparent_size(dir.path()).unwrap(), 123);
        // Two files with data occupy at least a block each.
        assert!(directory_size(dir.path()).unwrap() >= 2 * 512);
    }

    #[cfg(unix)]
    #[test]
    fn directory_size_counts_allocated_blocks_not_sparse_length() {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::File::create(dir.path().join("sparse")).unwrap();
        // 64 MiB long, nothing written: a hole (every Unix filesystem we run on supports them).
        file.set_len(64 << 20).unwrap();
        drop(file);
        std::fs::write(dir.path().join("dense"), vec![7u8; 1 << 20]).unwrap();
        assert_eq!(
            directory_apparent_size(dir.path()).unwrap(),
            (64 << 20) + (1 << 20)
        );
        let allocated = directory_size(dir.path()).unwrap();
        assert!(
            ((1 << 20)..(2 << 20)).contains(&allocated),
            "allocated {allocated}"
        );
    }
}
