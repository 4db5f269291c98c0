//! A catalog server whose OAuth endpoints are listeners of the test's, with a credential already
//! in the file store: for tests of what latchkey sends on a provider's behalf (refresh,
//! revocation) that need no sign-in first.

use std::fs;
use std::time::{Duration, SystemTime};

use latchkey::store::{Credential, CredentialId, SecretString, Store, StoreKind, TokenSet};

use crate::{Home, Run};

/// One server's catalog entry with one OAuth provider entry.
#[derive(Clone, Debug)]
pub struct Server {
    pub name: String,
    /// `provider:`; `None` leaves the choice to the issuer (or `standard`).
    pub provider: Option<String>,
    pub issuer: String,
    pub token_endpoint: String,
    pub revocation_endpoint: Option<String>,
    pub client_id: String,
    pub config: Vec<(String, String)>,
    pub scopes: Vec<String>,
}

impl Server {
    /// A server whose token endpoint is `<origin>/token`, with the issuer `origin`.
    pub fn new(name: &str, provider: Option<&str>, origin: &str) -> Server {
        Server {
            name: name.into(),
            provider: provider.map(str::to_string),
            issuer: origin.into(),
            token_endpoint: format!("{origin}/token"),
            revocation_endpoint: None,
            client_id: format!("{name}-client"),
            config: Vec::new(),
            scopes: vec!["read".into()],
        }
    }

    pub fn yaml(&self) -> String {
        let Server { name, issuer, token_endpoint, client_id, .. } = self;
        let provider = self.provider.as_deref().map(|id| format!("provider: {id}, ")).unwrap_or_default();
        let revocation = self.revocation_endpoint.as_deref().map(|url| format!(", revocation_endpoint: \"{url}\"")).unwrap_or_default();
        let config = if self.config.is_empty() {
            String::new()
        } else {
            let pairs: Vec<String> = self.config.iter().map(|(key, value)| format!("{key}: \"{value}\"")).collect();
            format!(", config: {{{}}}", pairs.join(", "))
        };
        let scopes: Vec<String> = self.scopes.iter().map(|scope| format!("\"{scope}\"")).collect();
        format!(
            "servers:\n  {name}:\n    command: [{name}-server]\n    secrets:\n      - {{name: {name}.token, env: TOKEN}}\n    oauth:\n      \
             scopes: [{scopes}]\n      providers:\n        - {{{provider}secret: {name}.token, registration: {{client_id: {client_id}}}{config}, \
             server_metadata: {{issuer: \"{issuer}\", authorization_endpoint: \"{issuer}/authorize\", token_endpoint: \"{token_endpoint}\"{revocation}}}}}\n",
            scopes = scopes.join(", "),
        )
    }

    /// Write the entry into `home`'s catalogs, the client secret and a credential (with `access`
    /// and `refresh` tokens, for the entry's issuer and client) into its file store.
    pub fn install(&self, home: &Home, secret: &str, access: &str, refresh: Option<&str>) {
        let dir = home.path().join("catalogs");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(format!("{}.yaml", self.name)), self.yaml()).unwrap();
        let store = Store::open_kind(&home.paths(), Some(StoreKind::File)).unwrap();
        store.set_secret(&format!("{}.client_secret", self.name), &SecretString::from(secret.to_string())).unwrap();
        let tokens = TokenSet {
            scopes: self.scopes.clone(),
            ..TokenSet::bearer(
                access.to_string().into(),
                refresh.map(|token| token.to_string().into()),
                Some(SystemTime::now() + Duration::from_secs(3600)),
            )
        };
        let provider = self.provider.clone().unwrap_or_else(|| "standard".into());
        let credential = Credential::authorized(CredentialId::new(&self.name, &self.issuer, &self.client_id), provider, tokens);
        store.save_credential(&credential).unwrap();
    }

    /// The credentials stored for this server.
    pub fn stored(&self, home: &Home) -> Vec<Credential> {
        let store = Store::open_kind(&home.paths(), Some(StoreKind::File)).unwrap();
        store
            .credential_ids()
            .unwrap()
            .into_iter()
            .filter(|id| id.server == self.name)
            .filter_map(|id| store.load_credential(&id).unwrap())
            .collect()
    }
}

/// `latchkey <args>` in `home` with the file store.
pub fn run(home: &Home, args: &[&str]) -> Run {
    home.run(args, &[(latchkey::store::STORE_VAR, "file")], b"")
}
