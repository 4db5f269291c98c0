//! Clients registered by hand with `latchkey oauth register`: for servers that a catalog does not
//! fully describe (no client id, no endpoints, other scopes or provider).
//!
//! They live in `<config dir>/registrations.json`, which holds no secret (the client secret goes to
//! the secret store as `<server>.client_secret`), and is replaced atomically on every change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::paths::{self, Paths};

/// One `oauth register`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManualRegistration {
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    /// RFC 8628: where `oauth authorize --device` asks for a user code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_authorization_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// How the client authenticates at the token endpoint (RFC 7591's names), when the
    /// registration settles it: `none` for a public client, which has no secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
}

/// The registrations file.
pub struct Registrations {
    path: PathBuf,
    entries: BTreeMap<String, ManualRegistration>,
}

impl Registrations {
    pub fn path_in(paths: &Paths) -> PathBuf {
        paths.config_dir.join("registrations.json")
    }

    pub fn load(paths: &Paths) -> anyhow::Result<Registrations> {
        let path = Registrations::path_in(paths);
        let entries = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is damaged; fix or delete it and register again", path.display()))?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
        };
        Ok(Registrations { path, entries })
    }

    pub fn get(&self, server: &str) -> Option<&ManualRegistration> {
        self.entries.get(server)
    }

    /// Record `registration` for `server`, replacing an earlier one, and save.
    pub fn set(&mut self, server: &str, registration: ManualRegistration) -> anyhow::Result<()> {
        self.entries.insert(server.to_string(), registration);
        self.save()
    }

    /// Forget `server`'s registration; `false` when there was none.
    pub fn remove(&mut self, server: &str) -> anyhow::Result<bool> {
        let removed = self.entries.remove(server).is_some();
        if removed {
            self.save()?;
        }
        Ok(removed)
    }

    fn save(&self) -> anyhow::Result<()> {
        let dir: &Path = self.path.parent().context("the registrations file needs a folder")?;
        paths::create_private_dir(dir)?;
        let json = serde_json::to_vec_pretty(&self.entries).expect("registrations serialize");
        paths::write_private_atomically(&self.path, &json)
    }
}
