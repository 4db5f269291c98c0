//! What the gateway may do with the OAuth engine, and nothing more: read a named secret
//! ([`Secrets`]), and get, refresh or look at a binding's credential ([`Tokens`]). Neither hands
//! out the store, the catalog or a client secret, so code that starts servers cannot reach a
//! credential other than through the binding it names.

use std::sync::Arc;
use std::time::SystemTime;

use secrecy::SecretString;

use super::engine::Engine;
use super::lifecycle::RefreshError;
use crate::catalog::Binding;
use crate::store::{Credential, Grant};

/// Named secrets (`latchkey secret set`).
#[derive(Clone)]
pub struct Secrets {
    engine: Arc<Engine>,
}

impl Secrets {
    /// The secret called `name`, if it is stored.
    pub async fn get(&self, name: &str) -> anyhow::Result<Option<SecretString>> {
        self.engine.secret(name).await
    }
}

/// Credentials, by binding. Each binding is resolved once (see [`Engine::resolve`]).
#[derive(Clone)]
pub struct Tokens {
    engine: Arc<Engine>,
}

impl Tokens {
    /// A current access token for `binding`, refreshed first when it is about to expire.
    pub async fn current(&self, binding: &Binding) -> anyhow::Result<SecretString> {
        self.engine.access_token(binding).await
    }

    /// The credential stored for `binding`, if any.
    pub async fn stored(&self, binding: &Binding) -> anyhow::Result<Option<Credential>> {
        let target = self.engine.resolve(binding).await?;
        self.engine.load(&target.id).await
    }

    /// The credential stored for `binding`; when there is none and no person is needed to get one
    /// (the catalog names the client credentials grant), the one the client asks for now.
    pub async fn stored_or_issued(&self, binding: &Binding) -> anyhow::Result<Option<Credential>> {
        let target = self.engine.resolve(binding).await?;
        match self.engine.load(&target.id).await? {
            None if target.grant == Grant::ClientCredentials => Ok(Some(self.engine.issue_client_credentials(&target).await?)),
            stored => Ok(stored),
        }
    }

    /// How long before expiry `binding`'s credential is refreshed (its provider's `refresh-ahead`).
    pub async fn refresh_ahead(&self, binding: &Binding) -> anyhow::Result<std::time::Duration> {
        Ok(self.engine.resolve(binding).await?.refresh_ahead())
    }

    /// Refresh `binding`'s credential under its lock; with `only_if_due_at`, one that another
    /// process refreshed meanwhile is returned as it is.
    pub async fn refresh(&self, binding: &Binding, only_if_due_at: Option<SystemTime>) -> Result<Credential, RefreshError> {
        let target =
            self.engine.resolve(binding).await.map_err(|error| RefreshError::Unresolved { server: binding.server.clone(), error })?;
        self.engine.refresh_target(&target, only_if_due_at).await
    }

    /// Whether anything is stored for `server`: a discovery-only server that was never authorized
    /// is not asked for its authorization server.
    pub async fn any_for(&self, server: &str) -> anyhow::Result<bool> {
        self.engine.has_credentials(server).await
    }
}

impl Engine {
    pub fn secrets(self: &Arc<Self>) -> Secrets {
        Secrets { engine: self.clone() }
    }

    pub fn tokens(self: &Arc<Self>) -> Tokens {
        Tokens { engine: self.clone() }
    }
}
