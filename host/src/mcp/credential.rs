//! The OAuth credential of a remote MCP server known only by its URL (`latchkey tools --url`),
//! as a [`TokenSource`] and [`Authorizer`] for [`super::remote::Remote`].
//!
//! Nothing is discovered up front: a credential stored for the URL (by an earlier run) is sent as
//! it is, and only the server's refusal makes latchkey discover the authorization server (from
//! the challenge), which settles the [`Target`]. With a target, tokens come from the engine, which
//! refreshes them when due under the credential's lock; a refusal first tries the refresh token,
//! and only then asks the user to sign in ([`SignIn`]). Credentials are stored under the server's
//! canonical URL, the issuer and the client id, so a server that moves to another authorization
//! server gets a new client and a new credential (MCP 2026-07-28, SEP-2352).

use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use secrecy::SecretString;
use tokio::sync::Mutex;
use url::Url;

use super::bearer::TokenSource;
use super::remote::{Authorizer, Refusal};
use crate::oauth::authorize::{Exchanged, Mode, Pending};
use crate::oauth::discovery::{self, Challenge};
use crate::oauth::engine::{Engine, Overrides, Target};
use crate::oauth::lifecycle::{self, RefreshError};
use crate::store::{Credential, Status};

/// How the user signs in: the browser, or a pasted redirect URL. (The gateway, which cannot ask
/// anyone, uses [`super::catalog_credential`] instead.)
pub trait SignIn: Send + Sync + 'static {
    fn mode(&self) -> Mode;

    /// Show the authorization URL and wait for the redirect (or the pasted URL).
    fn complete(&self, pending: Pending) -> impl Future<Output = anyhow::Result<Exchanged>> + Send;
}

/// The credential for one MCP server URL.
pub struct UrlCredential<S> {
    engine: Arc<Engine>,
    url: Url,
    /// The canonical URL: the credential's `server`.
    server: String,
    overrides: Overrides,
    sign_in: S,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    target: Option<Target>,
    /// Until a refusal settles the target: the token of the stored credential found at the first
    /// request, so that later requests do not search the store again.
    stored: Option<SecretString>,
    /// Scopes of the current grant, for the step-up union.
    scopes: Vec<String>,
}

impl<S: SignIn> UrlCredential<S> {
    /// `overrides` carries `--client-id`, `--client-secret-stdin`, `--issuer`,
    /// `--client-metadata-url` and `--scopes`.
    pub fn new(engine: Arc<Engine>, url: &Url, overrides: Overrides, sign_in: S) -> UrlCredential<S> {
        UrlCredential { engine, url: url.clone(), server: discovery::canonical_resource(url), overrides, sign_in, state: Mutex::default() }
    }

    /// The freshest usable credential stored for this URL (and `--client-id` and `--issuer`, when
    /// given).
    async fn stored(&self) -> anyhow::Result<Option<Credential>> {
        let server = self.server.clone();
        let (client_id, issuer) = (self.overrides.client_id.clone(), self.overrides.issuer.clone());
        let now = SystemTime::now();
        let credentials = self
            .engine
            .blocking_store(move |store| {
                let mut found = Vec::new();
                for id in store.credential_ids()? {
                    if id.server == server
                        && client_id.as_ref().is_none_or(|client| *client == id.client_id)
                        && issuer.as_ref().is_none_or(|issuer| discovery::issuers_match(&id.issuer, issuer))
                    {
                        found.extend(store.load_credential(&id)?);
                    }
                }
                Ok(found)
            })
            .await?;
        Ok(credentials
            .into_iter()
            .filter(|credential| credential.status == Status::Authorized && !lifecycle::due(credential, now, lifecycle::REFRESH_SKEW))
            .max_by_key(|credential| credential.tokens.expires_at))
    }

    async fn sign_in(&self, state: &mut State, mut target: Target) -> anyhow::Result<()> {
        let pending = self.engine.start(&target, self.sign_in.mode()).await?;
        let exchanged = self.sign_in.complete(pending).await?;
        let scopes = exchanged.scopes.clone();
        match self.engine.save(&mut target, &exchanged).await {
            Ok(_) => exchanged.confirm("latchkey stored the tokens. You can close this tab.").await,
            Err(error) => {
                exchanged.fail("latchkey could not finish the sign-in. Check the terminal.").await;
                return Err(error);
            }
        }
        state.target = Some(target);
        state.scopes = scopes;
        Ok(())
    }
}

/// A token, or `None` when only the user can help (not authorized, refresh refused or
/// impossible); failures of the store or the network stay errors.
pub(super) fn usable(result: anyhow::Result<SecretString>) -> anyhow::Result<Option<SecretString>> {
    match result {
        Ok(token) => Ok(Some(token)),
        Err(error) => match error.downcast_ref::<RefreshError>() {
            Some(refresh) if !refresh.is_transient() && !matches!(refresh, RefreshError::Store { .. }) => {
                tracing::info!("{refresh}");
                Ok(None)
            }
            _ => Err(error),
        },
    }
}

impl<S: SignIn> TokenSource for UrlCredential<S> {
    async fn token(&self) -> anyhow::Result<Option<SecretString>> {
        let mut state = self.state.lock().await;
        if let Some(target) = &state.target {
            return usable(self.engine.access_token_for(target).await);
        }
        if state.stored.is_none()
            && let Some(credential) = self.stored().await?
        {
            state.scopes = credential.tokens.scopes;
            state.stored = Some(credential.tokens.access_token);
        }
        Ok(state.stored.clone())
    }

    async fn refresh(&self, _rejected: &SecretString) -> anyhow::Result<Option<SecretString>> {
        let state = self.state.lock().await;
        // Without a target the credential's endpoints are unknown: the refusal goes to
        // `authorize`, which discovers them from the challenge and refreshes there.
        let Some(target) = &state.target else { return Ok(None) };
        usable(self.engine.refresh_target(target, None).await.map(|credential| credential.tokens.access_token).map_err(Into::into))
    }
}

impl<S: SignIn> Authorizer for UrlCredential<S> {
    async fn authorize(&self, refusal: Refusal, challenge: &Challenge) -> anyhow::Result<()> {
        let mut state = self.state.lock().await;
        let mut overrides = self.overrides.clone();
        if refusal == Refusal::InsufficientScope {
            let mut scopes = state.scopes.clone();
            for scope in challenge.scope.iter().flat_map(|scope| scope.split_whitespace()) {
                if !scopes.iter().any(|known| known == scope) {
                    scopes.push(scope.to_string());
                }
            }
            overrides.scopes = Some(scopes);
        }
        let first = state.target.is_none();
        let target = self.engine.target_for_url(&self.url, Some(challenge), &overrides).await?;
        if refusal == Refusal::Unauthorized && first {
            // A stored credential for this server, issuer and client may only need a refresh.
            if let Ok(credential) = self.engine.refresh_target(&target, None).await {
                state.scopes = credential.tokens.scopes;
                state.target = Some(target);
                return Ok(());
            }
        }
        self.sign_in(&mut state, target).await
    }
}
