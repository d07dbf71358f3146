//! [`Tmpfs`]: a size-limited file system for an adapter's full-disk and read-only tests.
//!
//! A store on it fills up at a size the test chooses, so the test can check what the adapter
//! promises on a full disk (a clear error, no acknowledged write lost, writable again once
//! space is freed) and on a file system remounted read-only. Mounting needs root (or mount
//! permission): where it is refused, [`Tmpfs::mount`] says why, and a test should say it was
//! skipped rather than fail.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of a fixed size mounted on a fresh temporary directory; unmounted when dropped.
///
/// The unmount is lazy (`umount -l`): it is detached even while a file on it is still open,
/// an engine's background thread closing late, so no mount outlives the test that made it.
/// A test process that is killed still leaves its mount behind.
pub struct Tmpfs {
    mount: PathBuf,
    /// Holds the mount point; removed after `Drop::drop` has unmounted it.
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `bytes` bytes; the error is `mount`'s own message (or why it could
    /// not run), for the test's "skipped" line.
    pub fn mount(bytes: u64) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("cannot make a directory: {e}"))?;
        let mount = dir.path().join("fs");
        std::fs::create_dir(&mount).map_err(|e| format!("cannot make a mount point: {e}"))?;
        run_mount(
            &["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"],
            &mount,
        )?;
        Ok(Self { mount, _dir: dir })
    }

    /// Where the file system is mounted: put the store below it.
    pub fn path(&self) -> &Path {
        &self.mount
    }

    /// Remounts the file system read-only (`true`) or writable again (`false`); its files stay.
    pub fn remount(&self, read_only: bool) -> Result<(), String> {
        let mode = if read_only {
            "remount,ro"
        } else {
            "remount,rw"
        };
        run_mount(&["-o", mode], &self.mount)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

/// Runs `mount args... target`, returning its error output when it fails.
fn run_mount(args: &[&str], target: &Path) -> Result<(), String> {
    let output = Command::new("mount")
        .args(args)
        .arg(target)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}
