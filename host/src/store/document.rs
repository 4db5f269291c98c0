//! A private JSON file of entries by key, shared by concurrent processes: the file store's data
//! and the keyring store's names-only index.
//!
//! Readers need no lock: every write replaces the whole file atomically (a private temporary file,
//! fsync, rename, folder fsync), so a reader sees the old or the new file, never a mix. Writers
//! take an exclusive lock on a separate lock file (the data file itself is replaced, so a lock on
//! it would be lost), read, change and write back while holding it, so no writer loses another's
//! entries.

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

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
    _entries: PhantomData<fn() -> V>,
}

/// The writer's lock on a [`Document`].
pub(crate) struct Locked<'a, V> {
    document: &'a Document<V>,
    _lock: FileLock,
}

impl<V: Serialize + DeserializeOwned> Document<V> {
    /// The document at `path`, locked through `<locks_dir>/<file name>.lock`.
    pub(crate) fn new(path: PathBuf, locks_dir: &Path) -> Document<V> {
        let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        Document { lock_path: lock::lock_path(locks_dir, &name), path, _entries: PhantomData }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The entries as last written; none when the file does not exist yet.
    pub(crate) fn read(&self) -> anyhow::Result<Entries<V>> {
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

impl<V: Serialize + DeserializeOwned> Locked<'_, V> {
    pub(crate) fn read(&self) -> anyhow::Result<Entries<V>> {
        self.document.read()
    }

    /// Replace the file with `entries`, atomically (see the module comment).
    pub(crate) fn write(&self, entries: &Entries<V>) -> anyhow::Result<()> {
        let path = &self.document.path;
        let dir = path.parent().context("a store file needs a parent folder")?;
        paths::create_private_dir(dir)?;
        let layout = LayoutOut { version: VERSION, entries };
        let mut bytes = serde_json::to_vec_pretty(&layout).context("cannot encode the store")?;
        bytes.push(b'\n');
        paths::write_private_atomically(path, &bytes)
    }
}
