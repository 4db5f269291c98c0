//! Where latchkey keeps its files, and how it writes the ones that must stay private.
//!
//! By default the platform's conventions apply (`~/.config/latchkey` and `~/.cache/latchkey` on
//! Linux, `~/Library/Application Support/dev.latchkey.latchkey` on macOS, `%APPDATA%` on
//! Windows). `LATCHKEY_HOME` puts everything under one folder instead: `$LATCHKEY_HOME/` for
//! configuration and `$LATCHKEY_HOME/cache/` for caches.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

#[cfg(windows)]
mod owner_only;

/// The environment variable that overrides every location.
pub const HOME_VAR: &str = "LATCHKEY_HOME";

#[derive(Clone, Debug)]
pub struct Paths {
    pub config_dir: PathBuf,
    pub cache_dir: PathBuf,
}

impl Paths {
    /// The locations for this user: `LATCHKEY_HOME`, or the platform's conventions.
    pub fn discover() -> anyhow::Result<Paths> {
        if let Some(home) = std::env::var_os(HOME_VAR).filter(|value| !value.is_empty()) {
            return Ok(Paths::under(PathBuf::from(home)));
        }
        let dirs = directories::ProjectDirs::from("dev", "latchkey", "latchkey")
            .context("cannot find a home folder for latchkey's configuration; set LATCHKEY_HOME to a folder latchkey may use")?;
        Ok(Paths { config_dir: dirs.config_dir().to_path_buf(), cache_dir: dirs.cache_dir().to_path_buf() })
    }

    /// Everything under `home`.
    pub fn under(home: PathBuf) -> Paths {
        Paths { cache_dir: home.join("cache"), config_dir: home }
    }

    /// The drop-in folder for provider components.
    pub fn providers_dir(&self) -> PathBuf {
        self.config_dir.join("providers")
    }

    /// Compiled provider code.
    pub fn compiled_dir(&self) -> PathBuf {
        self.cache_dir.join("compiled")
    }

    /// The latest comparison of the clock with an OAuth server's ([`crate::oauth::clock`]).
    pub fn clock_file(&self) -> PathBuf {
        self.cache_dir.join("clock.json")
    }
}

/// Create `dir` and its parents, readable by the current user only: mode 0700 on Unix, an access
/// list for the current user alone on Windows, which what is created in it inherits. An existing
/// folder is tightened the same way.
pub fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make {} private (mode 0700)", dir.display()))?;
    }
    #[cfg(windows)]
    owner_only::restrict_to_current_user(dir, true)
        .with_context(|| format!("cannot make {} private (an access list for you alone)", dir.display()))?;
    Ok(())
}

/// The name prefix of [`write_private_atomically`]'s temporary files: `.latchkey-<pid>-<random>`.
const TEMP_PREFIX: &str = ".latchkey-";

/// A temporary file older than this is left over, whoever wrote it: a write takes milliseconds.
const STALE_AFTER: Duration = Duration::from_secs(60);

/// Write `bytes` to `path` so that `path` is either the old file or the complete new one, never a
/// partial write: a private temporary file in the same folder, flushed to disk, then renamed over
/// `path`, and the folder synced.
///
/// A writer that is killed between the two leaves its temporary file, which holds secrets, behind:
/// each write first removes the ones that are stale (see [`remove_stale_temporaries`]).
pub fn write_private_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    write_atomically(path, bytes, None)
}

/// [`write_private_atomically`], with the contents written by `write` (buffered), for a file too
/// large to hold twice in memory: a store of thousands of credentials is copied from the old file
/// to the new one. An error from `write` leaves the file as it was.
pub fn write_private_atomically_with(path: &Path, write: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>) -> anyhow::Result<()> {
    write_atomically_with(path, None, write)
}

/// [`write_private_atomically`], with `permissions` for the new file instead of the private
/// default (a file someone else's program owns keeps the mode it had).
pub fn write_atomically(path: &Path, bytes: &[u8], permissions: Option<fs::Permissions>) -> anyhow::Result<()> {
    write_atomically_with(path, permissions, |file| file.write_all(bytes).with_context(|| format!("cannot write {}", path.display())))
}

fn write_atomically_with(
    path: &Path,
    permissions: Option<fs::Permissions>,
    write: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let dir = path.parent().context("a file to write needs a parent folder")?;
    remove_stale_temporaries(dir);
    let mut temp = tempfile::Builder::new()
        .prefix(&format!("{TEMP_PREFIX}{}-", std::process::id()))
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    // tempfile creates files with mode 0600 on Unix; on Windows a file inherits its folder's access
    // list, which a folder that is not private (a client's configuration folder) shares out.
    #[cfg(windows)]
    if permissions.is_none() {
        owner_only::restrict_to_current_user(temp.path(), false)
            .with_context(|| format!("cannot make {} private (an access list for you alone)", temp.path().display()))?;
    }
    let mut buffered = std::io::BufWriter::with_capacity(64 << 10, temp.as_file_mut());
    write(&mut buffered)?;
    buffered.flush().with_context(|| format!("cannot write {}", path.display()))?;
    drop(buffered);
    temp.as_file().sync_all().with_context(|| format!("cannot write {}", path.display()))?;
    if let Some(permissions) = permissions {
        temp.as_file().set_permissions(permissions).with_context(|| format!("cannot set the permissions of {}", path.display()))?;
    }
    // Kept (on Windows: no longer marked temporary, which would spare it the disk) and renamed with
    // the standard library, which uses POSIX rename semantics where Windows has them.
    let temp = temp.into_temp_path().keep().with_context(|| format!("cannot write {}", path.display()))?;
    if let Err(error) = replace(&temp, path) {
        let _ = fs::remove_file(&temp);
        return Err(error);
    }
    #[cfg(unix)]
    if let Ok(folder) = fs::File::open(dir) {
        let _ = folder.sync_all();
    }
    Ok(())
}

/// How long a replace waits for the programs that have the file open to close it (Windows).
#[cfg(windows)]
const OPEN_ELSEWHERE_WAIT: Duration = Duration::from_secs(5);

/// Rename `from` over `to`.
///
/// On Windows a file that is open cannot always be replaced: without POSIX rename semantics (older
/// Windows, some file systems, Wine) any handle on it refuses the rename, even a reader's that
/// only takes the file's size and times or shares deletion. Readers of latchkey's files hold them
/// for milliseconds (another thread checking the store's stamp, `latchkey auth status` reading
/// it), so the rename is tried again for a while, as npm's graceful-fs does on Windows, rather
/// than fail a write such as a refreshed token's.
#[cfg(windows)]
fn replace(from: &Path, to: &Path) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match fs::rename(from, to) {
            Err(error) if open_elsewhere(&error) && started.elapsed() < OPEN_ELSEWHERE_WAIT => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(error) if open_elsewhere(&error) => {
                return Err(error).with_context(|| {
                    format!(
                        "cannot replace {0}: Windows refused for {1} s, because another program has it open (an \
                         editor, a backup or antivirus scan) or it is read-only; close that program or clear the \
                         attribute (`attrib -r {0}`), and try again",
                        to.display(),
                        OPEN_ELSEWHERE_WAIT.as_secs()
                    )
                });
            }
            renamed => return renamed.with_context(|| format!("cannot replace {}", to.display())),
        }
    }
}

/// Rename `from` over `to`.
#[cfg(not(windows))]
fn replace(from: &Path, to: &Path) -> anyhow::Result<()> {
    fs::rename(from, to).with_context(|| format!("cannot replace {}", to.display()))
}

/// Whether a rename failed because the file is open somewhere (access denied, sharing or lock
/// violation), rather than for good. A read-only file is refused with the same error: it is
/// waited for too, and named in the advice when the wait ends.
#[cfg(windows)]
fn open_elsewhere(error: &std::io::Error) -> bool {
    use windows_sys::Win32::Foundation::{ERROR_ACCESS_DENIED, ERROR_LOCK_VIOLATION, ERROR_SHARING_VIOLATION};
    error.raw_os_error().is_some_and(|code| [ERROR_ACCESS_DENIED, ERROR_SHARING_VIOLATION, ERROR_LOCK_VIOLATION].contains(&(code as u32)))
}

/// Remove the temporary files in `dir` that no write will finish: those whose writer (the process
/// id in the name) is gone, and any older than [`STALE_AFTER`] (a reused process id, a name
/// without one). Best effort: a file that cannot be removed is left for the next write.
fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|name| name.strip_prefix(TEMP_PREFIX)) else { continue };
        let writer_gone = rest.split_once('-').and_then(|(pid, _)| pid.parse::<u32>().ok()).is_some_and(|pid| !is_running(pid));
        let old = entry
            .metadata()
            .ok()
            .and_then(|meta| meta.modified().ok())
            .and_then(|at| at.elapsed().ok())
            .is_some_and(|age| age > STALE_AFTER);
        if (writer_gone || old)
            && let Err(error) = fs::remove_file(entry.path())
        {
            tracing::debug!("cannot remove the stale temporary file {}: {error}", entry.path().display());
        }
    }
}

/// Whether process `pid` exists: `kill(pid, 0)` on Unix (a process of another user answers EPERM),
/// a process handle that has not exited on Windows. Elsewhere every process counts as running, and
/// only the age of a temporary file decides.
fn is_running(pid: u32) -> bool {
    pid == std::process::id() || process_exists(pid)
}

#[cfg(unix)]
fn process_exists(pid: u32) -> bool {
    // 0 and ids past pid_t's range would name process groups, not a process.
    let Some(pid) = libc::pid_t::try_from(pid).ok().filter(|pid| *pid > 0) else { return false };
    // SAFETY: signal 0 sends nothing; it only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM) }
}

#[cfg(windows)]
fn process_exists(pid: u32) -> bool {
    use windows_sys::Win32::Foundation::{CloseHandle, ERROR_ACCESS_DENIED, GetLastError, STILL_ACTIVE};
    use windows_sys::Win32::System::Threading::{GetExitCodeProcess, OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION};
    // SAFETY: the handle is closed before returning; GetExitCodeProcess writes one u32.
    unsafe {
        let process = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid);
        if process.is_null() {
            // A process of another user (or an elevated one) cannot be opened, but exists.
            return GetLastError() == ERROR_ACCESS_DENIED;
        }
        let mut code = 0u32;
        let exited = GetExitCodeProcess(process, &mut code) != 0 && code != STILL_ACTIVE as u32;
        CloseHandle(process);
        !exited
    }
}

#[cfg(not(any(unix, windows)))]
fn process_exists(_pid: u32) -> bool {
    true
}

/// The files directly in `dir` whose extension is one of `extensions`, sorted by name; a missing
/// folder has none. Hidden files are skipped: a copy in progress (`.acme.wasm`, written then
/// renamed into place) or an editor's companion file is never read half-written.
pub fn visible_files(dir: &Path, extensions: &[&str]) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| is_visible_file_named(path, extensions) && path.is_file())
        .collect();
    files.sort();
    files
}

/// Whether `path` names a file [`visible_files`] would list (its kind on disk aside).
pub fn is_visible_file_named(path: &Path, extensions: &[&str]) -> bool {
    path.extension().is_some_and(|ext| extensions.iter().any(|wanted| ext == *wanted))
        && path.file_name().is_some_and(|name| !name.to_string_lossy().starts_with('.'))
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    #[test]
    fn stale_temporary_files_go_with_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str| dir.path().join(name);
        // pid_max is at most 2^22 on Linux: no process has this id.
        fs::write(file(".latchkey-4999999-a1b2c3"), "secret of a killed writer").unwrap();
        fs::write(file(".latchkey-q9Z8y7"), "secret from an older latchkey").unwrap();
        let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
        fs::File::options().write(true).open(file(".latchkey-q9Z8y7")).unwrap().set_modified(an_hour_ago).unwrap();
        // A write in progress, in this process; and files that are not latchkey's.
        let own = format!(".latchkey-{}-inprogress", std::process::id());
        for name in [own.as_str(), ".latchkey", "notes.latchkey-1-x", ".editor-swap"] {
            fs::write(file(name), "kept").unwrap();
        }

        write_private_atomically(&file("secrets.json"), b"{}").unwrap();
        let mut left: Vec<String> =
            fs::read_dir(dir.path()).unwrap().map(|entry| entry.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        let mut expected = vec![own.clone(), ".latchkey".into(), "notes.latchkey-1-x".into(), ".editor-swap".into(), "secrets.json".into()];
        expected.sort();
        assert_eq!(left, expected);
    }

    /// A reader that has the file open when it is replaced (another thread checking its stamp,
    /// another process reading it) does not fail the write. On Windows without POSIX rename
    /// semantics, as under Wine, the rename waits for the reader to close it.
    #[test]
    fn a_file_open_for_reading_is_replaced_once_the_reader_closes_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.json");
        write_private_atomically(&path, b"old").unwrap();
        let reader = fs::File::open(&path).unwrap();
        let closed = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(reader);
        });
        write_private_atomically(&path, b"new").unwrap();
        closed.join().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
    }

    /// On Windows a private folder and the private files in it grant the current user alone, and
    /// nothing from the folders above (where Users or Everyone may read) is inherited. Wine keeps
    /// access lists as Unix modes: it drops the protection from inheritance, and lists SYSTEM in
    /// every list it derives from a mode. Who may open the file is what it keeps, and what this
    /// checks.
    #[cfg(windows)]
    #[test]
    fn private_folders_and_files_are_for_the_current_user_alone() {
        use windows_sys::Win32::Storage::FileSystem::FILE_ALL_ACCESS;

        use super::owner_only::read::{Who, access_list};

        let only_the_user = |path: &Path| {
            let entries = access_list(path).unwrap().expect("an access list");
            assert!(
                entries.iter().all(|entry| !entry.allowed || entry.who != Who::Other)
                    && entries.iter().any(|entry| entry.allowed && entry.who == Who::CurrentUser && entry.access == FILE_ALL_ACCESS),
                "{}: {entries:?}",
                path.display()
            );
        };
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("latchkey");
        create_private_dir(&private).unwrap();
        write_private_atomically(&private.join("secrets.json"), b"{}").unwrap();
        only_the_user(&private);
        only_the_user(&private.join("secrets.json"));

        // A file written with the permissions of the one it replaces (a client's configuration)
        // keeps what its folder gives.
        let shared = dir.path().join("settings.json");
        write_atomically(&shared, b"{}", Some(fs::metadata(dir.path()).unwrap().permissions())).unwrap();
        let entries = access_list(&shared).unwrap();
        assert!(entries.as_ref().is_none_or(|entries| entries.iter().any(|entry| entry.allowed && entry.who == Who::Other)), "{entries:?}");
    }
}
