//! The OAuth credential of a remote catalog server as the gateway sends it: a [`TokenSource`]
//! and [`Authorizer`] for [`super::remote::Remote`] that never asks anyone to sign in.
//!
//! The token is read once per connection, when the gateway starts the upstream; the gateway's
//! refresh scheduler renews it before it expires and the upstream reconnects with the new one
//! (see `crate::gateway::upstream`), so requests cost no store read. A token the server refuses
//! anyway (revoked, or the clocks disagree) is refreshed once and the request retried. When that
//! does not help, the gateway cannot open a browser: [`Authorizer::authorize`] fails with the
//! `latchkey oauth authorize` command that fixes the credential, and the gateway reports it.

use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;

use super::bearer::TokenSource;
use super::credential::usable;
use super::remote::{Authorizer, Refusal};
use crate::catalog::{Binding, BindingEntry, Server};
use crate::oauth::access::Tokens;
use crate::oauth::discovery::Challenge;
use crate::oauth::engine::Engine;
use crate::oauth::lifecycle::RefreshError;
use crate::store::Status;

pub struct CatalogCredential {
    tokens: Tokens,
    server: String,
    /// `None` for a server without a token: its requests go out without one.
    grant: Option<Grant>,
}

struct Grant {
    binding: Binding,
    token: Mutex<SecretString>,
}

impl CatalogCredential {
    /// The current token (refreshed first when due) of `server`'s bearer binding: its first
    /// provider's, or, for a remote server without an `oauth` section, the discovered one if it was
    /// signed in. A server that is not authorized fails here, with the command to run, rather than
    /// in a round trip to the server.
    pub async fn load(engine: &Arc<Engine>, server: &Server) -> anyhow::Result<CatalogCredential> {
        let tokens = engine.tokens();
        let binding = match server.bearer_binding() {
            Some(binding) if binding.entry == BindingEntry::Discovery && !tokens.any_for(&server.name).await? => None,
            other => other,
        };
        let grant = match binding {
            Some(binding) => {
                let token = tokens.current(&binding).await?;
                Some(Grant { binding, token: Mutex::new(token) })
            }
            None => None,
        };
        Ok(CatalogCredential { tokens, server: server.name.clone(), grant })
    }
}

impl TokenSource for CatalogCredential {
    async fn token(&self) -> anyhow::Result<Option<SecretString>> {
        Ok(match &self.grant {
            Some(grant) => Some(grant.token.lock().await.clone()),
            None => None,
        })
    }

    async fn refresh(&self, rejected: &SecretString) -> anyhow::Result<Option<SecretString>> {
        let Some(grant) = &self.grant else { return Ok(None) };
        let mut token = grant.token.lock().await;
        // Concurrent requests refused together refresh once: the later ones find the new token.
        if token.expose_secret() != rejected.expose_secret() {
            return Ok(Some(token.clone()));
        }
        tracing::info!("{}: the server answered 401; refreshing the token and retrying once", self.server);
        let fresh =
            usable(self.tokens.refresh(&grant.binding, None).await.map(|credential| credential.tokens.access_token).map_err(Into::into))?;
        if let Some(fresh) = &fresh {
            *token = fresh.clone();
        }
        Ok(fresh)
    }
}

impl Authorizer for CatalogCredential {
    async fn authorize(&self, refusal: Refusal, challenge: &Challenge) -> anyhow::Result<()> {
        let server = &self.server;
        let said = challenge.error.as_deref().map(|error| format!(" (`{error}`)")).unwrap_or_default();
        if refusal == Refusal::InsufficientScope {
            anyhow::bail!(
                "server `{server}` asks for the scopes `{}`, which latchkey's grant lacks{said}; authorize it again asking for them too: \
                 `latchkey oauth authorize {server} --scopes \"<its scopes and these>\"` (`latchkey oauth ls` shows the scopes it has)",
                challenge.scope.as_deref().unwrap_or("(none named)")
            );
        }
        let Some(grant) = &self.grant else {
            anyhow::bail!(
                "server `{server}` asks for authorization{said}, and latchkey holds no credential for it; sign in with \
                 `latchkey oauth authorize {server}`"
            );
        };
        let command = grant.binding.authorize_command();
        // The refresh that failed left its verdict in the store.
        match self.tokens.stored(&grant.binding).await?.map(|credential| credential.status) {
            Some(Status::NeedsReauthorization { reason }) => {
                Err(RefreshError::NeedsReauthorization { server: server.clone(), reason, command }.into())
            }
            _ => anyhow::bail!("server `{server}` refused latchkey's token{said}, and a refresh did not help; run `{command}`"),
        }
    }
}
