//! A private JSON file of entries by key, shared by concurrent processes: the file store's data
//! and the keyring store's names-only index.
//!
//! Readers need no lock: every write replaces the whole file atomically (a private temporary file,
//! fsync, rename, folder fsync), so a reader sees the old or the new file, never a mix. Writers
//! take an exclusive lock on a separate lock file (the data file itself is replaced, so a lock on
//! it would be lost), read, change and write back while holding it, so no writer loses another's
//! entries.
//!
//! A document keeps the entries it last read or wrote, with the file's stamp then (its identity,
//! size and times): a read that finds the same stamp uses them rather than parsing the file again.
//! The file store holds every credential, and a gateway's refresh scheduler reads them one at a
//! time: with 10 000 credentials, parsing the whole file for each read was seconds of CPU per
//! pass. A write by another process replaces the file, which changes its stamp.
//!
//! This process's own writes change the kept entries in place, under the cache's lock, and keep
//! them for the readers while the file is written: readers neither parse the file meanwhile nor
//! hold a copy that the writer would have to copy again (with 10 000 credentials, both had made
//! each refresh cost megabytes of short-lived entries). A write that fails drops the kept
//! entries, so the next read takes the file as it is.

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use anyhow::Context;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::lock::{self, FileLock};
use crate::paths;

/// The layout version this latchkey writes and reads.
const VERSION: u32 = 1;

pub(crate) type Entries<V> = BTreeMap<String, V>;

#[derive(Serialize)]
struct LayoutOut<'a, V> {
    version: u32,
    entries: &'a Entries<V>,
}

#[derive(Deserialize)]
struct LayoutIn<V> {
    entries: Entries<V>,
}

pub(crate) struct Document<V> {
    path: PathBuf,
    lock_path: PathBuf,
    /// The entries as last read or written.
    cache: Mutex<Option<Cached<V>>>,
    /// How many times the file was parsed: the tests check that readers leave it to the kept entries.
    #[cfg(test)]
    parses: std::sync::atomic::AtomicUsize,
}

/// The entries as last read or written, and the file's stamp then (`None`: there was no file).
struct Cached<V> {
    stamp: Option<Stamp>,
    entries: Entries<V>,
    /// This process is replacing the file with these entries: they are the ones to read, whatever
    /// the file's stamp says meanwhile.
    writing: bool,
}

/// What tells one version of a file from another: a replaced file is a new file (identity and
/// change time), and a rewritten one has a new size or modification time.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    identity: (u64, u64, i64, i64),
}

impl Stamp {
    fn of(metadata: &fs::Metadata) -> Stamp {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt;
        Stamp {
            len: metadata.len(),
            modified: metadata.modified().ok(),
            #[cfg(unix)]
            identity: (metadata.dev(), metadata.ino(), metadata.ctime(), metadata.ctime_nsec()),
        }
    }
}

/// The writer's lock on a [`Document`].
pub(crate) struct Locked<'a, V> {
    document: &'a Document<V>,
    _lock: FileLock,
}

impl<V: Serialize + DeserializeOwned + Clone> Document<V> {
    /// The document at `path`, locked through `<locks_dir>/<file name>.lock`.
    pub(crate) fn new(path: PathBuf, locks_dir: &Path) -> Document<V> {
        let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        Document {
            lock_path: lock::lock_path(locks_dir, &name),
            path,
            cache: Mutex::new(None),
            #[cfg(test)]
            parses: Default::default(),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// What `look` finds in the entries as last written (none when the file does not exist yet),
    /// looked at where they are kept rather than copied.
    pub(crate) fn read<R>(&self, look: impl FnOnce(&Entries<V>) -> R) -> anyhow::Result<R> {
        // Stamped under the lock, since this process keeps the stamp of what it wrote with the
        // entries; a stale cache is parsed once, by the first reader, and the others wait for it
        // rather than parse too.
        let mut cache = self.cache.lock().expect("document cache lock");
        let cached = self.current(&mut cache)?;
        Ok(look(&cached.entries))
    }

    /// The entry `key`, as last written.
    pub(crate) fn get(&self, key: &str) -> anyhow::Result<Option<V>> {
        self.read(|entries| entries.get(key).cloned())
    }

    /// The kept entries, read again first unless they came from the file as it is now (stamped
    /// before the read: a file replaced in between is read again next time).
    fn current<'a>(&self, cache: &'a mut Option<Cached<V>>) -> anyhow::Result<&'a mut Cached<V>> {
        let stamp = match cache {
            // This process is writing the file: its entries are the ones to read, and the file is
            // not looked at (on Windows a look holds a handle, which holds up the write's rename).
            Some(cached) if cached.writing => cached.stamp.clone(),
            _ => self.stamp()?,
        };
        let cached = match cache.take() {
            Some(cached) if cached.stamp == stamp => cached,
            _ => Cached { entries: if stamp.is_some() { self.parse()? } else { Entries::new() }, stamp, writing: false },
        };
        Ok(cache.insert(cached))
    }

    fn parse(&self) -> anyhow::Result<Entries<V>> {
        #[cfg(test)]
        self.parses.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == ErrorKind::NotFound => return Ok(Entries::new()),
            Err(error) => return Err(error).with_context(|| format!("cannot read {}", self.path.display())),
        };
        self.check_private()?;
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        let shown = self.path.display();
        // serde_json's messages can quote a value, which may be a secret: report the position only.
        let damaged = |error: serde_json::Error| {
            anyhow::anyhow!(
                "{shown} is damaged (invalid at line {}, column {}); restore it from a backup or move it away",
                error.line(),
                error.column()
            )
        };
        let version: Version = serde_json::from_slice(&bytes).map_err(damaged)?;
        if version.version != VERSION {
            anyhow::bail!(
                "{shown} has layout version {}, and this latchkey reads version {VERSION}; use the latchkey that wrote it",
                version.version
            );
        }
        let layout: LayoutIn<V> = serde_json::from_slice(&bytes).map_err(damaged)?;
        Ok(layout.entries)
    }

    /// Take the writer's lock (waiting for other writers), for read-change-write.
    pub(crate) fn lock(&self) -> anyhow::Result<Locked<'_, V>> {
        Ok(Locked { _lock: FileLock::acquire(&self.lock_path)?, document: self })
    }

    /// A file that others can read is refused rather than used: its secrets may already be out.
    fn check_private(&self) -> anyhow::Result<()> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&self.path).with_context(|| format!("cannot read {}", self.path.display()))?.permissions().mode();
            if mode & 0o077 != 0 {
                anyhow::bail!(
                    "{} can be read by other users (mode {:04o}); make it private with `chmod 600 {}`, and consider \
                     the secrets in it exposed",
                    self.path.display(),
                    mode & 0o7777,
                    self.path.display()
                );
            }
        }
        Ok(())
    }
}

impl<V: Serialize + DeserializeOwned + Clone> Locked<'_, V> {
    /// Change the entries as last written with `change`, which says whether it changed them, and
    /// if it did, replace the file with them, atomically (see the module comment). The entries
    /// are changed where they are kept (no other writer can replace the file meanwhile), not
    /// copied: a store of thousands of entries is not copied for each change.
    pub(crate) fn change(&self, change: impl FnOnce(&mut Entries<V>) -> bool) -> anyhow::Result<bool> {
        let document = self.document;
        let encoded = {
            let mut cache = document.cache.lock().expect("document cache lock");
            let cached = document.current(&mut cache)?;
            if !change(&mut cached.entries) {
                return Ok(false);
            }
            cached.writing = true;
            serde_json::to_vec_pretty(&LayoutOut { version: VERSION, entries: &cached.entries }).context("cannot encode the store")
        };
        match encoded.and_then(|bytes| document.replace(bytes)) {
            Ok(stamp) => {
                if let Some(cached) = &mut *document.cache.lock().expect("document cache lock") {
                    (cached.stamp, cached.writing) = (stamp, false);
                }
                Ok(true)
            }
            Err(error) => {
                // The kept entries are not what the file holds: the next read takes the file.
                document.cache.lock().expect("document cache lock").take();
                Err(error)
            }
        }
    }
}

impl<V> Document<V> {
    /// The file's stamp now; `None` when there is no file.
    fn stamp(&self) -> anyhow::Result<Option<Stamp>> {
        match fs::metadata(&self.path) {
            Ok(metadata) => Ok(Some(Stamp::of(&metadata))),
            Err(error) if error.kind() == ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error).with_context(|| format!("cannot read {}", self.path.display())),
        }
    }

    /// Replace the file with `bytes` (and a final newline); its new stamp.
    fn replace(&self, mut bytes: Vec<u8>) -> anyhow::Result<Option<Stamp>> {
        let dir = self.path.parent().context("a store file needs a parent folder")?;
        paths::create_private_dir(dir)?;
        bytes.push(b'\n');
        paths::write_private_atomically(&self.path, &bytes)?;
        drop(bytes);
        self.stamp()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::Document;

    /// Set the entry `key` to `value`; whether that changed it.
    fn try_set(document: &Document<String>, value: &str) -> anyhow::Result<bool> {
        document.lock()?.change(|entries| entries.insert("key".into(), value.into()).as_deref() != Some(value))
    }

    fn set(document: &Document<String>, value: &str) {
        assert!(try_set(document, value).unwrap());
    }

    #[test]
    fn readers_use_the_kept_entries_while_this_process_writes() {
        let dir = tempfile::tempdir().unwrap();
        let document: Document<String> = Document::new(dir.path().join("document.json"), &dir.path().join("locks"));
        set(&document, "0");
        assert_eq!(document.get("key").unwrap().as_deref(), Some("0"));
        let writing = AtomicBool::new(true);
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    while writing.load(Ordering::Relaxed) {
                        assert!(document.get("key").unwrap().is_some(), "a reader found no entry while the file was written");
                        // Not flat out: under Wine every look at the file is a round trip to its
                        // server, and readers that never pause slow the writes to a crawl.
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                });
            }
            // Every write is tried before any is checked: a failed one must not leave the readers
            // reading for ever.
            let written: Vec<anyhow::Result<bool>> = (1..=20).map(|n| try_set(&document, &n.to_string())).collect();
            writing.store(false, Ordering::Relaxed);
            for result in written {
                assert!(result.unwrap());
            }
        });
        assert_eq!(document.parses.load(Ordering::Relaxed), 0, "readers parsed the file while this process wrote it");
        assert_eq!(document.get("key").unwrap().as_deref(), Some("20"));
        // Another process's write is read from the file.
        let other: Document<String> = Document::new(dir.path().join("document.json"), &dir.path().join("locks"));
        set(&other, "theirs");
        assert_eq!(document.get("key").unwrap().as_deref(), Some("theirs"));
        assert_eq!(document.parses.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_change_that_changes_nothing_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let document: Document<String> = Document::new(dir.path().join("document.json"), &dir.path().join("locks"));
        assert!(!document.lock().unwrap().change(|entries| entries.remove("key").is_some()).unwrap());
        assert!(!dir.path().join("document.json").exists());
    }
}
