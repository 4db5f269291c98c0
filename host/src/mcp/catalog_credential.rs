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
use crate::catalog::Server;
use crate::oauth::discovery::Challenge;
use crate::oauth::engine::{Engine, Overrides, Target};
use crate::oauth::lifecycle::RefreshError;
use crate::store::Status;

pub struct CatalogCredential {
    engine: Arc<Engine>,
    server: String,
    /// `None` for a server without OAuth: its requests go out without a token.
    grant: Option<Grant>,
}

struct Grant {
    target: Target,
    token: Mutex<SecretString>,
}

impl CatalogCredential {
    /// `server`'s current token (refreshed first when due). A server that is not authorized
    /// fails here, with the command to run, rather than in a round trip to the server.
    pub async fn load(engine: &Arc<Engine>, server: &Server) -> anyhow::Result<CatalogCredential> {
        let grant = match server.oauth.as_ref().is_some_and(|oauth| !oauth.providers.is_empty()) {
            true => {
                let target = engine.target(&server.name, None, &Overrides::default()).await?;
                let token = engine.access_token_for(&target).await?;
                Some(Grant { target, token: Mutex::new(token) })
            }
            false => None,
        };
        Ok(CatalogCredential { engine: engine.clone(), server: server.name.clone(), grant })
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
        let fresh = usable(
            self.engine.refresh_target(&grant.target, None).await.map(|credential| credential.tokens.access_token).map_err(Into::into),
        )?;
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
                "server `{server}` asks for authorization{said}, but its catalog entry has no `oauth` section; add one, then run `latchkey oauth authorize {server}`"
            );
        };
        // The refresh that failed left its verdict in the store.
        match self.engine.load(&grant.target.id).await?.map(|credential| credential.status) {
            Some(Status::NeedsReauthorization { reason }) => {
                Err(RefreshError::NeedsReauthorization { server: server.clone(), reason }.into())
            }
            _ => anyhow::bail!(
                "server `{server}` refused latchkey's token{said}, and a refresh did not help; run `latchkey oauth authorize {server}`"
            ),
        }
    }
}
