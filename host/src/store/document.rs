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

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
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
    /// The entries as last read or written, and the file's stamp then.
    cache: Mutex<Option<(Stamp, Arc<Entries<V>>)>>,
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
        Document { lock_path: lock::lock_path(locks_dir, &name), path, cache: Mutex::new(None) }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The entries as last written (shared, not copied); none when the file does not exist yet.
    pub(crate) fn read(&self) -> anyhow::Result<Arc<Entries<V>>> {
        self.entries()
    }

    /// The entry `key`, as last written.
    pub(crate) fn get(&self, key: &str) -> anyhow::Result<Option<V>> {
        Ok(self.entries()?.get(key).cloned())
    }

    /// The entries as last written: the cached ones while the file is the one they came from.
    fn entries(&self) -> anyhow::Result<Arc<Entries<V>>> {
        let metadata = match fs::metadata(&self.path) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == ErrorKind::NotFound => return Ok(Arc::default()),
            Err(error) => return Err(error).with_context(|| format!("cannot read {}", self.path.display())),
        };
        let stamp = Stamp::of(&metadata);
        if let Some((cached, entries)) = &*self.cache.lock().expect("document cache lock")
            && *cached == stamp
        {
            return Ok(entries.clone());
        }
        // Stamped before the read: a file replaced in between is read again next time.
        let entries = Arc::new(self.parse()?);
        *self.cache.lock().expect("document cache lock") = Some((stamp, entries.clone()));
        Ok(entries)
    }

    fn parse(&self) -> anyhow::Result<Entries<V>> {
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
    /// The entries, to change and [`Locked::write`]: taken from the cache rather than copied (no
    /// other writer can replace the file meanwhile), so that a store of thousands of entries is
    /// not copied for each change.
    pub(crate) fn read(&self) -> anyhow::Result<Entries<V>> {
        let entries = self.document.entries()?;
        self.document.cache.lock().expect("document cache lock").take();
        Ok(Arc::try_unwrap(entries).unwrap_or_else(|shared| shared.as_ref().clone()))
    }

    /// Replace the file with `entries`, atomically (see the module comment), and keep them as the
    /// cached entries (taken, not copied: a copy of thousands of entries per change was most of a
    /// gateway's memory churn while refreshing).
    pub(crate) fn write(&self, entries: Entries<V>) -> anyhow::Result<()> {
        let path = &self.document.path;
        let dir = path.parent().context("a store file needs a parent folder")?;
        paths::create_private_dir(dir)?;
        let layout = LayoutOut { version: VERSION, entries: &entries };
        let mut bytes = serde_json::to_vec_pretty(&layout).context("cannot encode the store")?;
        bytes.push(b'\n');
        paths::write_private_atomically(path, &bytes)?;
        drop(bytes);
        let written = fs::metadata(path).ok().map(|metadata| (Stamp::of(&metadata), Arc::new(entries)));
        *self.document.cache.lock().expect("document cache lock") = written;
        Ok(())
    }
}
