//! Cross-process locks: an exclusive lock on a small file under `<config dir>/locks/`, held for
//! as long as the guard lives.
//!
//! The operating system drops the lock when the process dies, so a crash never leaves a stale
//! lock behind. The lock files stay in place: deleting one while another process waits on it
//! would let a third process lock a new file of the same name. `std::fs::File::lock` is the
//! portable primitive here (flock on Unix, LockFileEx on Windows); it also excludes two handles of
//! one process, so threads are serialized too.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::paths;

/// Held lock; dropping it unlocks.
#[derive(Debug)]
pub(crate) struct FileLock {
    _file: File,
}

impl FileLock {
    /// Wait for the exclusive lock on `path`, creating the file (and its private folder).
    pub(crate) fn acquire(path: &Path) -> anyhow::Result<FileLock> {
        let dir = path.parent().context("a lock file needs a parent folder")?;
        paths::create_private_dir(dir)?;
        let mut options = OpenOptions::new();
        options.create(true).truncate(false).write(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(path).with_context(|| format!("cannot open the lock file {}", path.display()))?;
        file.lock().with_context(|| format!("cannot lock {}", path.display()))?;
        Ok(FileLock { _file: file })
    }
}

/// The lock file for `name` (a store key or a file name) in `locks_dir`.
pub(crate) fn lock_path(locks_dir: &Path, name: &str) -> PathBuf {
    let file: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-') { c } else { '_' }).collect();
    locks_dir.join(format!("{file}.lock"))
}

/// One refresh at a time for a credential, across processes: the OAuth engine holds this guard
/// from loading the credential until the refreshed one is saved. Dropping it releases the lock.
#[derive(Debug)]
pub struct CredentialLock {
    _lock: FileLock,
}

impl CredentialLock {
    pub(crate) fn new(lock: FileLock) -> CredentialLock {
        CredentialLock { _lock: lock }
    }
}
