//! The file store: every entry in one private JSON file, `<config dir>/secrets.json` (mode 0600 in
//! a 0700 folder), for machines without a reachable OS keyring. The values are as safe as the
//! user's account: anyone who can read the file as this user can read the secrets.

use std::path::Path;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::credential::plain;
use super::document::Document;
use super::names::Name;

pub(crate) const FILE_NAME: &str = "secrets.json";

#[derive(Serialize, Deserialize)]
struct FileEntry {
    #[serde(flatten)]
    name: Name,
    #[serde(with = "plain")]
    value: SecretString,
}

pub(crate) struct FileStore {
    document: Document<FileEntry>,
}

impl FileStore {
    pub(crate) fn new(config_dir: &Path, locks_dir: &Path) -> FileStore {
        FileStore { document: Document::new(config_dir.join(FILE_NAME), locks_dir) }
    }

    pub(crate) fn path(&self) -> &Path {
        self.document.path()
    }

    pub(crate) fn get(&self, name: &Name) -> anyhow::Result<Option<SecretString>> {
        Ok(self.document.get(&name.key())?.map(|entry| entry.value))
    }

    pub(crate) fn set(&self, name: &Name, value: SecretString) -> anyhow::Result<()> {
        self.set_all([(name.clone(), value)])
    }

    /// Set every entry of `values` in one write of the file.
    pub(crate) fn set_all(&self, values: impl IntoIterator<Item = (Name, SecretString)>) -> anyhow::Result<()> {
        self.document.lock()?.change(|entries| {
            for (name, value) in values {
                entries.insert(name.key(), FileEntry { name, value });
            }
            true
        })?;
        Ok(())
    }

    pub(crate) fn delete(&self, name: &Name) -> anyhow::Result<bool> {
        self.document.lock()?.change(|entries| entries.remove(&name.key()))
    }

    pub(crate) fn names(&self) -> anyhow::Result<Vec<Name>> {
        // Each entry is read as its name alone: listing decodes no value.
        Ok(self.document.entries_as::<Name>()?.into_values().collect())
    }
}
