//! Cross-process locks: an exclusive lock on a small file under `<config dir>/locks/`, held for
//! as long as the guard lives.
//!
//! The operating system drops the lock when the process dies, so a crash never leaves a stale
//! lock behind. The lock files stay in place: deleting one while another process waits on it
//! would let a third process lock a new file of the same name. `std::fs::File::lock` is the
//! portable primitive here (flock on Unix, LockFileEx on Windows); it also excludes two handles of
//! one process, so threads are serialized too.
//!
//! A holder can still hang (stopped in a shell, or waiting on a keyring prompt nobody answers), so
//! a wait is bounded: after [`LOCK_TIMEOUT`] it fails, naming the holder, which writes its process
//! id and command line into the lock file once it has the lock.

use std::fs::{File, OpenOptions};
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::paths;

/// How long a lock is waited for. A holder does one refresh (an HTTP request bounded at 30
/// seconds, and a store write) or one store write, so this is a holder that is stuck.
pub(crate) const LOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// The longest pause between two attempts at a lock that is held.
const MAX_POLL: Duration = Duration::from_millis(100);

/// Held lock; dropping it unlocks.
#[derive(Debug)]
pub(crate) struct FileLock {
    _file: File,
}

impl FileLock {
    /// Take the exclusive lock on `path`, creating the file (and its private folder), waiting at
    /// most [`LOCK_TIMEOUT`] for another holder.
    pub(crate) fn acquire(path: &Path) -> anyhow::Result<FileLock> {
        FileLock::acquire_within(path, LOCK_TIMEOUT)
    }

    pub(crate) fn acquire_within(path: &Path, timeout: Duration) -> anyhow::Result<FileLock> {
        let dir = path.parent().context("a lock file needs a parent folder")?;
        paths::create_private_dir(dir)?;
        let mut options = OpenOptions::new();
        options.create(true).truncate(false).write(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).with_context(|| format!("cannot open the lock file {}", path.display()))?;
        let started = Instant::now();
        let mut pause = Duration::from_millis(5);
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < timeout => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(MAX_POLL);
                }
                Err(std::fs::TryLockError::WouldBlock) => return Err(held_too_long(path, timeout)),
                Err(std::fs::TryLockError::Error(error)) => {
                    return Err(error).with_context(|| format!("cannot lock {}", path.display()));
                }
            }
        }
        // Who holds it, for the message of a process that waits too long. Best effort: the lock
        // is what matters.
        let holder = format!("{} {}\n", std::process::id(), command_line());
        let _ = file.set_len(0).and_then(|_| file.rewind()).and_then(|_| file.write_all(holder.as_bytes()));
        Ok(FileLock { _file: file })
    }
}

/// This process's command line, for the lock file (latchkey takes no secret as an argument).
fn command_line() -> String {
    let line = std::env::args().collect::<Vec<_>>().join(" ");
    line.chars().filter(|c| !c.is_control()).take(300).collect()
}

/// The error for a lock that stayed held for `timeout`: who holds it, and what to do.
fn held_too_long(path: &Path, timeout: Duration) -> anyhow::Error {
    let recorded = std::fs::read_to_string(path).unwrap_or_default();
    let holder = recorded.lines().next().and_then(|line| line.split_once(' ')).filter(|(pid, _)| pid.parse::<u32>().is_ok());
    match holder {
        Some((pid, command)) => anyhow::anyhow!(
            "waited {} seconds for {}, which process {pid} (`{command}`) holds; if that process is stuck (stopped, or \
             waiting on a keyring prompt), finish or end it (`kill {pid}`), then run this again",
            timeout.as_secs(),
            path.display()
        ),
        None => anyhow::anyhow!(
            "waited {} seconds for {}, which another process holds (it did not say which; `fuser {}` shows it); finish or \
             end that process, then run this again",
            timeout.as_secs(),
            path.display(),
            path.display()
        ),
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

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    use super::*;

    /// Set for the copy of this test binary that [`a_lock_held_too_long_names_its_holder`] starts.
    const HOLD_VAR: &str = "LATCHKEY_TEST_HOLD_LOCK";

    /// Not a test of its own: in a second process, hold the lock on `$LATCHKEY_TEST_HOLD_LOCK`
    /// until standard input closes.
    #[test]
    #[ignore = "a helper process for a_lock_held_too_long_names_its_holder"]
    fn hold_a_lock_for_another_process() {
        let Some(path) = std::env::var_os(HOLD_VAR) else { return };
        let _lock = FileLock::acquire(Path::new(&path)).unwrap();
        println!("holding");
        std::io::stdout().flush().unwrap();
        std::io::copy(&mut std::io::stdin(), &mut std::io::sink()).unwrap();
    }

    #[test]
    fn a_lock_held_too_long_names_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = lock_path(dir.path(), "gmail:https://accounts.google.com:1234");
        let mut holder = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "store::lock::tests::hold_a_lock_for_another_process", "--ignored", "--nocapture", "--test-threads=1"])
            .env(HOLD_VAR, &path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(holder.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains("holding") {
            line.clear();
            assert_ne!(stdout.read_line(&mut line).unwrap(), 0, "the holder ended without taking the lock");
        }

        // In a thread, so that a wait that never ends fails this test instead of hanging it.
        let waiting = path.clone();
        let (done, result) = std::sync::mpsc::channel();
        std::thread::spawn(move || done.send(FileLock::acquire_within(&waiting, Duration::from_millis(300)).map(drop)));
        let outcome = result.recv_timeout(Duration::from_secs(60)).expect("the wait for a held lock did not end");
        let message = outcome.expect_err("the lock is held by the other process").to_string();
        assert!(message.contains(&format!("process {}", holder.id())), "{message}");
        assert!(message.contains("hold_a_lock_for_another_process") && message.contains(&format!("kill {}", holder.id())), "{message}");

        drop(holder.stdin.take());
        holder.wait().unwrap();
        FileLock::acquire_within(&path, Duration::from_secs(10)).expect("free once the holder is gone");
    }
}
