//! Secrets and OAuth credentials: in the OS keyring, or in a private file where there is none.
//!
//! Two backends behind one [`Store`]:
//! - the keyring ([`keyring`]): values in the platform's keyring (Secret Service, Keychain,
//!   Credential Manager), names in a names-only index so entries can be listed;
//! - the file store ([`file`]): one JSON file, mode 0600, replaced atomically under a lock.
//!
//! Which one: `LATCHKEY_STORE=keyring|file` decides; unset, latchkey uses the keyring and falls
//! back to the file store only when the keyring is unreachable (no D-Bus session, no Secret
//! Service), with a [`Store::notice`] to show the user (commands show it once, see
//! [`Store::notice_once`]; `latchkey doctor` every time). A locked keyring or any other keyring
//! failure is an error: falling back then would hide the user's entries or split them between two
//! stores.
//!
//! What is stored: named secrets (`gmail.client_secret`) and one [`Credential`] per
//! [`CredentialId`] (server, issuer, client id); see [`names`] for how keys are kept apart. Values
//! are [`SecretString`]s, which never show in `Debug` output. [`Store::lock_credential`] gives
//! the OAuth engine one refresh at a time per credential, across processes.
//!
//! Every method blocks (D-Bus calls, file locks): call them from `spawn_blocking` in async code.

mod credential;
mod document;
mod file;
mod keyring;
mod lock;
mod names;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

pub use self::credential::{ChosenSite, Credential, Grant, Identity, LATEST_EXPIRY, Status, TokenSet, expiry_after};
pub(crate) use self::document::Document;
pub use self::keyring::{KEYRING_KIND, KeyringError};
pub use self::lock::CredentialLock;
pub(crate) use self::lock::FileLock;
pub use self::names::{CredentialId, validate_account_name, validate_secret_name};

use self::file::FileStore;
use self::keyring::KeyringStore;
use self::names::Name;
use crate::paths::Paths;

/// The marker in the configuration folder that says the file-store notice was shown.
const NOTICE_MARKER: &str = "file-store-notice-shown";

/// The environment variable that chooses the store: `keyring` or `file`.
pub const STORE_VAR: &str = "LATCHKEY_STORE";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    Keyring,
    File,
}

impl StoreKind {
    /// The choice in `LATCHKEY_STORE`; `None` when unset or empty (keyring, else file).
    pub fn from_env() -> anyhow::Result<Option<StoreKind>> {
        StoreKind::parse(&std::env::var(STORE_VAR).unwrap_or_default())
    }

    fn parse(value: &str) -> anyhow::Result<Option<StoreKind>> {
        match value.trim() {
            "" => Ok(None),
            "keyring" => Ok(Some(StoreKind::Keyring)),
            "file" => Ok(Some(StoreKind::File)),
            other => anyhow::bail!("{STORE_VAR}={other} is not a store: use `keyring` or `file`, or leave it unset"),
        }
    }
}

enum Backend {
    Keyring(KeyringStore),
    File(FileStore),
}

/// The secret store. See the module documentation.
pub struct Store {
    backend: Backend,
    locks_dir: PathBuf,
    notice: Option<String>,
}

impl Store {
    /// The store that `LATCHKEY_STORE` chooses, or the keyring with the file store as fallback.
    /// Show [`Store::notice`] to the user when there is one.
    pub fn open(paths: &Paths) -> anyhow::Result<Store> {
        Store::open_kind(paths, StoreKind::from_env()?)
    }

    /// The store of `kind`, or, for `None`, the keyring with the file store as fallback.
    pub fn open_kind(paths: &Paths, kind: Option<StoreKind>) -> anyhow::Result<Store> {
        let config_dir = &paths.config_dir;
        let locks_dir = config_dir.join("locks");
        let (backend, notice) = match kind {
            Some(StoreKind::File) => (Backend::File(FileStore::new(config_dir, &locks_dir)), None),
            Some(StoreKind::Keyring) => {
                let store = KeyringStore::open(config_dir, &locks_dir).map_err(|error| {
                    anyhow::anyhow!("{error}; {STORE_VAR}=keyring requires it: start the keyring, or set {STORE_VAR}=file")
                })?;
                (Backend::Keyring(store), None)
            }
            None => match KeyringStore::open(config_dir, &locks_dir) {
                Ok(store) => (Backend::Keyring(store), None),
                Err(KeyringError::Unreachable { detail }) => {
                    let store = FileStore::new(config_dir, &locks_dir);
                    let notice = format!(
                        "the OS keyring is not reachable ({detail}), so secrets are kept in the file {}; \
                         set {STORE_VAR}=file to choose it, or {STORE_VAR}=keyring to require the keyring",
                        store.path().display()
                    );
                    (Backend::File(store), Some(notice))
                }
                Err(other) => return Err(other.into()),
            },
        };
        tracing::debug!(kind = ?Store::kind_of(&backend), "secret store opened");
        Ok(Store { backend, locks_dir, notice })
    }

    fn kind_of(backend: &Backend) -> StoreKind {
        match backend {
            Backend::Keyring(_) => StoreKind::Keyring,
            Backend::File(_) => StoreKind::File,
        }
    }

    pub fn kind(&self) -> StoreKind {
        Store::kind_of(&self.backend)
    }

    /// Where entries go, for people: `the OS keyring (Secret Service)` or `the file <path>`.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Keyring(_) => format!("the OS keyring ({KEYRING_KIND})"),
            Backend::File(store) => format!("the file {}", store.path().display()),
        }
    }

    /// Why this is the file store although no one chose it; one line. `latchkey doctor` shows it;
    /// other commands show [`Store::notice_once`].
    pub fn notice(&self) -> Option<&str> {
        self.notice.as_deref()
    }

    /// [`Store::notice`] the first time the file store is chosen as the fallback in this
    /// configuration folder, and `None` after: a marker file remembers that it was shown, so that
    /// every command does not repeat it (`latchkey doctor` still reports it).
    pub fn notice_once(&self) -> Option<&str> {
        let notice = self.notice.as_deref()?;
        let marker = self.locks_dir.parent()?.join(NOTICE_MARKER);
        if marker.exists() {
            return None;
        }
        let remembered = crate::paths::create_private_dir(self.locks_dir.parent()?)
            .and_then(|()| crate::paths::write_private_atomically(&marker, b"the file-store notice was shown\n"));
        if let Err(error) = remembered {
            tracing::debug!("cannot remember that the file-store notice was shown: {error:#}");
        }
        Some(notice)
    }

    /// The secret called `name`, if it is stored.
    pub fn get_secret(&self, name: &str) -> anyhow::Result<Option<SecretString>> {
        self.get(&Name::secret(name)?)
    }

    /// Store `value` as the secret `name`, replacing any previous value.
    pub fn set_secret(&self, name: &str, value: &SecretString) -> anyhow::Result<()> {
        anyhow::ensure!(!value.expose_secret().is_empty(), "the value of secret {name} is empty; nothing was stored");
        self.set(&Name::secret(name)?, value)
    }

    /// Remove the secret `name`; `false` when there was none.
    pub fn delete_secret(&self, name: &str) -> anyhow::Result<bool> {
        self.delete(&Name::secret(name)?)
    }

    /// The names of the stored secrets, sorted; no value is read.
    pub fn secret_names(&self) -> anyhow::Result<Vec<String>> {
        let mut names: Vec<String> = self
            .names()?
            .into_iter()
            .filter_map(|name| match name {
                Name::Secret { name } => Some(name),
                Name::Credential(_) => None,
            })
            .collect();
        names.sort();
        Ok(names)
    }

    /// The credential stored for `id`, checked to be that credential's.
    pub fn load_credential(&self, id: &CredentialId) -> anyhow::Result<Option<Credential>> {
        match self.get(&Name::Credential(id.clone()))? {
            Some(stored) => Credential::decode(id, &stored).map(Some),
            None => Ok(None),
        }
    }

    /// Store `credential` under its id, replacing any previous one.
    pub fn save_credential(&self, credential: &Credential) -> anyhow::Result<()> {
        self.set(&Name::Credential(credential.id.clone()), &credential.encode())
    }

    /// Store every credential of `credentials`, as [`Store::save_credential`] does each: in one
    /// write of the file store (thousands at once, say, from an import or a benchmark), one by one
    /// in a keyring.
    pub fn save_credentials(&self, credentials: &[Credential]) -> anyhow::Result<()> {
        let named = credentials.iter().map(|credential| (Name::Credential(credential.id.clone()), credential.encode()));
        match &self.backend {
            Backend::Keyring(store) => named.into_iter().try_for_each(|(name, value)| store.set(&name, &value)),
            Backend::File(store) => store.set_all(named),
        }
    }

    /// Remove the credential for `id`; `false` when there was none.
    pub fn delete_credential(&self, id: &CredentialId) -> anyhow::Result<bool> {
        self.delete(&Name::Credential(id.clone()))
    }

    /// The ids of the stored credentials, sorted; no token is read.
    pub fn credential_ids(&self) -> anyhow::Result<Vec<CredentialId>> {
        let mut ids: Vec<CredentialId> = self
            .names()?
            .into_iter()
            .filter_map(|name| match name {
                Name::Credential(id) => Some(id),
                Name::Secret { .. } => None,
            })
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Wait for the exclusive, cross-process lock on `id`'s credential. Hold it from loading the
    /// credential for a refresh until the refreshed one is saved; drop it to release.
    pub fn lock_credential(&self, id: &CredentialId) -> anyhow::Result<CredentialLock> {
        Ok(CredentialLock::new(FileLock::acquire(&lock::lock_path(&self.locks_dir, &id.key()))?))
    }

    fn get(&self, name: &Name) -> anyhow::Result<Option<SecretString>> {
        match &self.backend {
            Backend::Keyring(store) => store.get(name),
            Backend::File(store) => store.get(name),
        }
    }

    fn set(&self, name: &Name, value: &SecretString) -> anyhow::Result<()> {
        match &self.backend {
            Backend::Keyring(store) => store.set(name, value),
            Backend::File(store) => store.set(name, value.clone()),
        }
    }

    fn delete(&self, name: &Name) -> anyhow::Result<bool> {
        match &self.backend {
            Backend::Keyring(store) => store.delete(name),
            Backend::File(store) => store.delete(name),
        }
    }

    fn names(&self) -> anyhow::Result<Vec<Name>> {
        match &self.backend {
            Backend::Keyring(store) => store.names(),
            Backend::File(store) => store.names(),
        }
    }
}
