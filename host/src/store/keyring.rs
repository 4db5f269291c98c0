//! The keyring store: values in the OS keyring through the `keyring` crate (version 4, whose
//! default set of stores is the Secret Service over zbus, pure Rust, on Linux and the BSDs; the
//! Keychain on macOS; the Credential Manager on Windows), names in a names-only index.
//!
//! Items are stored under the service `latchkey:<config dir>` with the entry's key as the user, so
//! two latchkey homes (`LATCHKEY_HOME`) never see each other's items, just as they never share an
//! index.
//!
//! The index (`<config dir>/keyring-index.json`) exists because keyrings cannot list items
//! portably; it holds keys and names, never values. It is kept consistent under its writer's lock:
//! a new name is added before the value is written and taken out again if the write fails, so a
//! crash in between can leave a listed name without a value (visible, and `rm` clears it), but
//! never a value that nothing lists.
//!
//! The store connects once per process. A connection that cannot be made means "unreachable",
//! the one case where [`super::Store::open`] falls back to the file store; a locked keyring, or
//! any other failure later, is an error that says how to fix it.

use std::path::Path;

use keyring::{Entry, Error};
use secrecy::{ExposeSecret, SecretString};

use super::document::Document;
use super::names::Name;

pub(crate) const INDEX_FILE_NAME: &str = "keyring-index.json";

/// Which keyring this platform has, for messages.
pub const KEYRING_KIND: &str = if cfg!(target_os = "macos") {
    "macOS Keychain"
} else if cfg!(windows) {
    "Windows Credential Manager"
} else {
    "Secret Service"
};

/// How to unlock it.
const UNLOCK_ADVICE: &str = if cfg!(target_os = "macos") {
    "unlock it with `security unlock-keychain`"
} else if cfg!(windows) {
    "sign in to Windows as the user who owns the credentials"
} else {
    "unlock it: log in to your desktop session, or unlock the Login keyring in Passwords and Keys (seahorse); \
     without a desktop, restart it unlocked with `gnome-keyring-daemon --replace --unlock`, which reads the \
     keyring's password from standard input"
};

/// Why the keyring could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// No connection to the keyring service (no D-Bus session, no Secret Service provider…).
    #[error("the OS keyring ({KEYRING_KIND}) is not reachable: {detail}")]
    Unreachable { detail: String },
    /// The keyring is there but refused access without the user (locked, prompt dismissed, no
    /// default collection to write to).
    #[error(
        "the OS keyring ({KEYRING_KIND}) is locked or refused access ({detail}); {UNLOCK_ADVICE}; \
         or keep secrets in a private file instead with LATCHKEY_STORE=file"
    )]
    Locked { detail: String },
    #[error("the OS keyring ({KEYRING_KIND}) could not {action}: {detail}")]
    Failed { action: String, detail: String },
}

pub(crate) struct KeyringStore {
    service: String,
    index: Document<Name>,
}

impl KeyringStore {
    /// Connect to the keyring (once per process) and use the index under `config_dir`.
    pub(crate) fn open(config_dir: &Path, locks_dir: &Path) -> Result<KeyringStore, KeyringError> {
        if let Err(error) = Entry::store_status() {
            return Err(KeyringError::Unreachable { detail: error.to_string() });
        }
        Ok(KeyringStore {
            service: format!("latchkey:{}", config_dir.display()),
            index: Document::new(config_dir.join(INDEX_FILE_NAME), locks_dir),
        })
    }

    fn entry(&self, name: &Name, action: &str) -> Result<Entry, KeyringError> {
        Entry::new(&self.service, &name.key()).map_err(|error| classify(error, action, name))
    }

    pub(crate) fn get(&self, name: &Name) -> anyhow::Result<Option<SecretString>> {
        let entry = self.entry(name, "read")?;
        match entry.get_password() {
            Ok(value) => Ok(Some(SecretString::from(value))),
            Err(Error::NoEntry) => Ok(None),
            Err(error) => Err(classify(error, "read", name).into()),
        }
    }

    pub(crate) fn set(&self, name: &Name, value: &SecretString) -> anyhow::Result<()> {
        let entry = self.entry(name, "store")?;
        let key = name.key();
        let locked = self.index.lock()?;
        let added = locked.change(|names| names.insert(key.clone(), name.clone()))?;
        let Err(error) = entry.set_password(value.expose_secret()) else {
            return Ok(());
        };
        let error = anyhow::Error::new(classify(error, "store", name));
        if added && let Err(undo) = locked.change(|names| names.remove(&key)) {
            return Err(error.context(format!(
                "and {} still lists {name} without a value ({undo:#}); `latchkey secret rm` or a later set clears it",
                self.index.path().display()
            )));
        }
        Err(error)
    }

    pub(crate) fn delete(&self, name: &Name) -> anyhow::Result<bool> {
        let entry = self.entry(name, "remove")?;
        let locked = self.index.lock()?;
        let had_value = match entry.delete_credential() {
            Ok(()) => true,
            Err(Error::NoEntry) => false,
            Err(error) => return Err(classify(error, "remove", name).into()),
        };
        let was_listed = locked.change(|names| names.remove(&name.key()))?;
        Ok(had_value || was_listed)
    }

    pub(crate) fn names(&self) -> anyhow::Result<Vec<Name>> {
        Ok(self.index.entries_as::<Name>()?.into_values().collect())
    }
}

/// Sort a keyring error into what the user can do about it. Error values are never formatted
/// with `{:?}`: some variants carry the stored bytes.
fn classify(error: Error, action: &str, name: &Name) -> KeyringError {
    let action = format!("{action} the {name}");
    match error {
        Error::NoDefaultStore => KeyringError::Unreachable {
            detail: Entry::store_status().as_ref().err().map_or_else(|| error.to_string(), ToString::to_string),
        },
        Error::NoStorageAccess(platform) => KeyringError::Locked { detail: platform.to_string() },
        Error::PlatformFailure(platform) if platform.to_string().to_lowercase().contains("locked") => {
            KeyringError::Locked { detail: platform.to_string() }
        }
        Error::BadEncoding(_) | Error::BadDataFormat(..) => KeyringError::Failed {
            action,
            detail: "the keyring item does not hold text that latchkey wrote; remove it with your keyring manager".into(),
        },
        Error::Ambiguous(items) => KeyringError::Failed {
            action,
            detail: format!("{} keyring items match it; remove the extra ones with your keyring manager", items.len()),
        },
        other => KeyringError::Failed { action, detail: other.to_string() },
    }
}
