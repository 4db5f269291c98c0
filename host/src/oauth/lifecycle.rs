//! What happens to a credential after authorization: listing, refreshing, revoking, and handing
//! out a current access token.
//!
//! Refresh never loses a token: it runs under the credential's cross-process lock, re-reads the
//! stored credential first (another process may have refreshed it), lets the provider merge the
//! answer with what was stored (keeping the refresh token when none comes back), and saves the
//! result — a rotated refresh token included — before anyone uses the new access token. A refresh
//! token the server refuses (`invalid_grant`) marks the credential as needing re-authorization;
//! transient failures (HTTP 5xx, 429, network) are retried with backoff. A credential of the client
//! credentials grant has no refresh token: its client asks for a new token instead, and the
//! gateway asks for the first one itself when the catalog names that grant.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use super::discovery;
use super::engine::{Engine, Target};
use super::exchange::{self, ExchangeError};
use super::tokens;
use crate::catalog::Binding;
use crate::plugins::FailureKind;
use crate::store::{ChosenSite, Credential, CredentialId, Grant, Status};

/// Refresh this long before expiry, unless the provider's flow says otherwise (`refresh-ahead`).
pub const REFRESH_SKEW: Duration = Duration::from_secs(60);
/// The most a provider's `refresh-ahead` is taken as: more would refresh short-lived tokens on
/// every use.
const LONGEST_REFRESH_AHEAD: Duration = Duration::from_secs(60 * 60);
/// Attempts for a refresh that fails transiently, in one call.
const ATTEMPTS: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("server `{server}` is not authorized yet; run `{command}`")]
    NotAuthorized { server: String, command: String },
    #[error("server `{server}` needs re-authorization ({reason}); run `{command}`")]
    NeedsReauthorization { server: String, reason: String, command: String },
    #[error(
        "server `{server}` has no refresh token (the authorization server issued none; many issue one only when asked for \
         offline access, with the `offline_access` scope or a provider setting, at the first consent): add that to the \
         server's `oauth.scopes` or its provider's `config` in the catalog, revoke the app's access in the provider's \
         account settings and run `{command}`; or authorize again whenever the access token expires"
    )]
    NoRefreshToken { server: String, command: String },
    #[error("refreshing server `{server}` failed: {error}")]
    Failed { server: String, error: ExchangeError },
    #[error("the secret store failed while refreshing server `{server}`: {error:#}")]
    Store { server: String, error: anyhow::Error },
    /// The credential's target could not be resolved (catalog, provider, discovery, issuer binding).
    #[error("cannot refresh server `{server}`: {error:#}")]
    Unresolved { server: String, error: anyhow::Error },
}

impl RefreshError {
    /// Whether trying again later may help.
    pub fn is_transient(&self) -> bool {
        match self {
            RefreshError::Failed { error, .. } => transient(error),
            _ => false,
        }
    }
}

/// One credential as `oauth ls` shows it: no token, only facts about it.
#[derive(Clone, Debug, Serialize)]
pub struct CredentialView {
    pub server: String,
    /// Which of the server's credentials (`server[provider]` when it has several), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binding: Option<String>,
    pub provider: String,
    pub issuer: String,
    pub client_id: String,
    /// The user's name for the account (`oauth authorize --account`); absent for the default one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// `authorized`, `expired`, `needs-reauthorization`.
    pub state: &'static str,
    /// Seconds until the access token expires (negative: expired); `None` when unknown.
    pub expires_in: Option<i64>,
    pub scopes: Vec<String>,
    pub refreshable: bool,
    /// `authorization_code`, `device_code` or `client_credentials`.
    pub grant: &'static str,
    /// Who signed in (an e-mail address, user name or subject), when the ID token, the userinfo
    /// endpoint or the provider's calls after sign-in said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed_in_as: Option<String>,
    /// The site chosen among several the token reaches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<ChosenSite>,
    /// What the provider's calls after sign-in learned for the servers (not secret).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub context: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl CredentialView {
    pub fn of(credential: &Credential, now: SystemTime) -> CredentialView {
        let expires_in = credential.tokens.expires_at.map(|at| match at.duration_since(now) {
            Ok(left) => left.as_secs() as i64,
            Err(past) => -(past.duration().as_secs() as i64),
        });
        let (state, reason) = match &credential.status {
            Status::NeedsReauthorization { reason } => ("needs-reauthorization", Some(reason.clone())),
            Status::Authorized if expires_in.is_some_and(|left| left <= 0) => ("expired", credential.last_refresh_error.clone()),
            Status::Authorized => ("authorized", credential.last_refresh_error.clone()),
        };
        CredentialView {
            server: credential.id.server.clone(),
            binding: None,
            provider: credential.provider.clone(),
            issuer: credential.id.issuer.clone(),
            client_id: credential.id.client_id.clone(),
            account: credential.id.account.clone(),
            state,
            expires_in,
            scopes: credential.tokens.scopes.clone(),
            refreshable: (credential.tokens.refresh_token.is_some() || credential.grant == Grant::ClientCredentials)
                && matches!(credential.status, Status::Authorized),
            grant: credential.grant.name(),
            signed_in_as: credential.identity.as_ref().map(|identity| identity.label.clone()),
            site: credential.site.clone(),
            context: credential.context.clone(),
            reason,
        }
    }
}

/// `seconds` for people, in one unit: `90s`, `45m`, `5h`, `3d`.
pub fn human_duration(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// What `oauth revoke` did.
#[derive(Clone, Debug, Serialize)]
pub struct RevokeReport {
    pub server: String,
    /// The endpoint that revoked the grant, when the provider has one and it answered.
    pub revoked_at: Option<String>,
    /// Why the provider was not asked, or what it answered.
    pub remote_note: Option<String>,
    /// Local credentials deleted.
    pub deleted: usize,
    /// Local credentials kept because the provider did not confirm their revocation.
    pub kept: usize,
}

impl Engine {
    /// Every stored credential, as `oauth ls` shows them.
    pub async fn list(&self) -> anyhow::Result<Vec<CredentialView>> {
        let now = SystemTime::now();
        let credentials = self
            .blocking_store(|store| {
                store.credential_ids()?.iter().filter_map(|id| store.load_credential(id).transpose()).collect::<anyhow::Result<Vec<_>>>()
            })
            .await?;
        Ok(credentials
            .iter()
            .map(|credential| CredentialView { binding: self.binding_of(&credential.id), ..CredentialView::of(credential, now) })
            .collect())
    }

    /// The name of the binding a stored credential belongs to, as far as the catalog tells without
    /// asking anyone: the server's only binding, or the provider entry with that client and issuer.
    fn binding_of(&self, id: &CredentialId) -> Option<String> {
        let server = self.catalog().server(&id.server).ok()?.for_account(id.account.clone());
        let bindings = server.bindings();
        if let [only] = bindings.as_slice() {
            return Some(only.to_string());
        }
        let providers: Vec<_> = server.oauth.iter().flat_map(|oauth| oauth.providers.iter()).collect();
        let mut matching = bindings.iter().filter(|binding| {
            binding.provider_index().and_then(|index| providers.get(index)).is_some_and(|entry| {
                entry.registration.as_ref().is_some_and(|registration| *registration.client_id == id.client_id)
                    && entry.server_metadata.as_ref().is_none_or(|metadata| discovery::issuers_match(&metadata.issuer, &id.issuer))
            })
        });
        match (matching.next(), matching.next()) {
            (Some(binding), None) => Some(binding.to_string()),
            _ => None,
        }
    }

    /// Every server's accounts other than the default that credentials are stored for, sorted.
    pub async fn accounts(&self) -> anyhow::Result<BTreeMap<String, BTreeSet<String>>> {
        self.blocking_store(move |store| {
            let mut accounts: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for id in store.credential_ids()? {
                if let Some(account) = id.account {
                    accounts.entry(id.server).or_default().insert(account);
                }
            }
            Ok(accounts)
        })
        .await
    }

    /// The stored credential `id`, if any.
    pub async fn load(&self, id: &CredentialId) -> anyhow::Result<Option<Credential>> {
        let id = id.clone();
        self.blocking_store(move |store| store.load_credential(&id)).await
    }

    /// Refresh `binding`'s credential now, whatever its expiry.
    pub async fn refresh(&self, binding: &Binding) -> anyhow::Result<Credential> {
        let target = self.resolve(binding).await?;
        Ok(self.refresh_target(&target, None).await?)
    }

    /// Refresh the credential of `server`'s binding that `provider` names, or of each of its
    /// bindings, for `account` (else the catalog entry's `oauth.account`, else the default account).
    pub async fn refresh_server(&self, server: &str, provider: Option<&str>, account: Option<&str>) -> anyhow::Result<Vec<Credential>> {
        let mut entry = self.catalog().server(server)?.clone();
        if let Some(account) = account {
            crate::store::validate_account_name(account)?;
            entry = entry.for_account(Some(account.to_string()));
        }
        let entry = &entry;
        let bindings = match provider {
            Some(_) => vec![entry.binding(provider)?],
            None => entry.bindings(),
        };
        if bindings.is_empty() {
            entry.binding(None)?;
        }
        let mut refreshed = Vec::new();
        for binding in &bindings {
            refreshed.push(self.refresh(binding).await?);
        }
        Ok(refreshed)
    }

    /// A current access token for `binding`, refreshed first when it expires within
    /// [`REFRESH_SKEW`].
    pub async fn access_token(&self, binding: &Binding) -> anyhow::Result<SecretString> {
        let target = self.resolve(binding).await?;
        self.access_token_for(&target).await
    }

    pub async fn access_token_for(&self, target: &Target) -> anyhow::Result<SecretString> {
        let server = target.id.server.clone();
        let credential = match self.load(&target.id).await? {
            Some(credential) => credential,
            // Unattended: no person to ask, so the client asks for its first token itself.
            None if target.grant == Grant::ClientCredentials => {
                return Ok(self.issue_client_credentials(target).await?.tokens.access_token);
            }
            None => return Err(RefreshError::NotAuthorized { server, command: target.binding.authorize_command() }.into()),
        };
        if let Status::NeedsReauthorization { reason } = &credential.status {
            return Err(
                RefreshError::NeedsReauthorization { server, reason: reason.clone(), command: target.binding.authorize_command() }.into()
            );
        }
        if !due(&credential, SystemTime::now(), target.refresh_ahead()) {
            return Ok(credential.tokens.access_token.clone());
        }
        let fresh = self.refresh_target(target, Some(SystemTime::now())).await?;
        Ok(fresh.tokens.access_token)
    }

    /// Whether any credential is stored for `server` (a store read, no token).
    pub async fn has_credentials(&self, server: &str) -> anyhow::Result<bool> {
        let server = server.to_string();
        self.blocking_store(move |store| Ok(store.credential_ids()?.iter().any(|id| id.server == server))).await
    }

    /// Refresh under the credential's lock. With `only_if_due_at`, a credential that another
    /// process refreshed meanwhile (no longer due at that time) is returned as it is.
    pub async fn refresh_target(&self, target: &Target, only_if_due_at: Option<SystemTime>) -> Result<Credential, RefreshError> {
        let server = target.id.server.clone();
        let store = self.store().clone();
        let id = target.id.clone();
        let lock = tokio::task::spawn_blocking(move || store.lock_credential(&id))
            .await
            .expect("lock task")
            .map_err(|error| RefreshError::Store { server: server.clone(), error })?;
        // A store that fails (locked keyring, damaged entry) says so: "not authorized" would send
        // the user to sign in again for nothing.
        let stored = self
            .load(&target.id)
            .await
            .map_err(|error| RefreshError::Store { server: server.clone(), error })?
            .ok_or(RefreshError::NotAuthorized { server: server.clone(), command: target.binding.authorize_command() })?;
        if let Some(at) = only_if_due_at
            && !due(&stored, at, target.refresh_ahead())
        {
            return Ok(stored);
        }
        if let Status::NeedsReauthorization { reason } = &stored.status {
            return Err(RefreshError::NeedsReauthorization { server, reason: reason.clone(), command: target.binding.authorize_command() });
        }
        let reissue = stored.tokens.refresh_token.is_none() && stored.grant == Grant::ClientCredentials;
        if stored.tokens.refresh_token.is_none() && !reissue {
            return Err(RefreshError::NoRefreshToken { server, command: target.binding.authorize_command() });
        }

        let mut attempt = 0;
        let outcome = loop {
            attempt += 1;
            let answer = match &stored.tokens.refresh_token {
                Some(refresh_token) => {
                    target.endpoint.refresh(refresh_token.expose_secret(), target.resource.as_deref(), &stored.tokens.scopes).await
                }
                None => target.endpoint.client_credentials(&target.scopes, target.resource.as_deref()).await,
            };
            match answer {
                Err(error) if attempt < ATTEMPTS && transient(&error) => {
                    let wait = error
                        .failure()
                        .and_then(|f| f.retry_after)
                        .map(|s| Duration::from_secs(s.min(30).into()))
                        .unwrap_or(backoff(attempt));
                    tracing::info!("refreshing {server} failed ({error}); retrying in {wait:?}");
                    tokio::time::sleep(wait).await;
                }
                other => break other,
            }
        };

        let mut updated = stored.clone();
        let result = match outcome {
            // A new grant of the client's own: nothing of the old token set carries over.
            Ok(fresh) if reissue => {
                updated.tokens = tokens::to_stored(&fresh, SystemTime::now());
                updated.status = Status::Authorized;
                updated.last_refresh_error = None;
                Ok(())
            }
            Ok(fresh) => {
                let now = SystemTime::now();
                let provider = target.endpoint.provider.clone();
                let policy = target.endpoint.flow.refresh;
                let previous = tokens::to_provider(&stored.tokens, now);
                let merged = exchange::blocking(move || provider.merge_refreshed(policy, &previous, &fresh)).await;
                match merged {
                    Ok(merged) => {
                        // Kept once known: a refresh answer seldom has an ID token.
                        updated.identity = updated.identity.or_else(|| target.identity_in(&merged));
                        updated.tokens = tokens::to_stored(&merged, now);
                        updated.status = Status::Authorized;
                        updated.last_refresh_error = None;
                        Ok(())
                    }
                    Err(error) => Err(ExchangeError::Plugin(error)),
                }
            }
            Err(error) => Err(error),
        };
        let result = match result {
            Ok(()) => Ok(()),
            Err(error) => {
                if error.failure().is_some_and(|failure| failure.kind == FailureKind::Reauthorize) {
                    updated.status =
                        Status::NeedsReauthorization { reason: error.failure().map(|f| f.message.clone()).unwrap_or_default() };
                }
                updated.last_refresh_error = Some(error.to_string());
                Err(error)
            }
        };
        // Saved before the new access token is handed to anyone: a rotated refresh token is the
        // only one that still works.
        let saved = updated.clone();
        let save = self.blocking_store(move |store| store.save_credential(&saved)).await;
        drop(lock);
        if let Err(error) = save {
            return Err(RefreshError::Store { server, error });
        }
        match result {
            Ok(()) => Ok(updated),
            Err(error) => match &updated.status {
                Status::NeedsReauthorization { reason } => {
                    Err(RefreshError::NeedsReauthorization { server, reason: reason.clone(), command: target.binding.authorize_command() })
                }
                Status::Authorized => Err(RefreshError::Failed { server, error }),
            },
        }
    }

    /// Revoke `server`'s grants at the provider where it has an endpoint, then delete the local
    /// credentials. Each credential goes only to the revocation endpoint of the binding it belongs
    /// to (the same server, issuer and client): one that no binding of the server resolves to any
    /// more is not sent anywhere. A credential whose revocation the provider did not confirm (it
    /// refused, did not answer, or could not be asked) is kept, so that nothing still valid at the
    /// provider is forgotten here; `forget` deletes it anyway.
    pub async fn revoke(&self, server: &str, account: Option<&str>, forget: bool) -> anyhow::Result<RevokeReport> {
        let ids: Vec<CredentialId> = {
            let (server, account) = (server.to_string(), account.map(str::to_string));
            self.blocking_store(move |store| {
                Ok(store
                    .credential_ids()?
                    .into_iter()
                    .filter(|id| id.server == server && (account.is_none() || id.account == account))
                    .collect())
            })
            .await?
        };
        let mut report = RevokeReport { server: server.to_string(), revoked_at: None, remote_note: None, deleted: 0, kept: 0 };
        if ids.is_empty() {
            report.remote_note = Some("nothing stored for this server".into());
            return Ok(report);
        }
        let (targets, problems) = self.targets_of(server).await;
        for id in ids {
            // Every account of a binding signs in at the same provider as the same client.
            let target = targets.iter().find(|target| target.id == id.clone().with_account(None));
            let settled = match (target, self.load(&id).await?) {
                (Some(target), Some(credential)) => revoke_at_provider(target, &credential, &mut report).await,
                (None, Some(_)) => {
                    let why = if problems.is_empty() {
                        "the server's catalog entry and registrations no longer lead to that issuer and client".to_string()
                    } else {
                        problems.join("; ")
                    };
                    report.remote_note = Some(format!(
                        "the credential from issuer {} (client {}) was not sent to any provider: {why}",
                        id.issuer, id.client_id
                    ));
                    false
                }
                (_, None) => true,
            };
            if !settled && !forget {
                report.kept += 1;
                continue;
            }
            if self.blocking_store(move |store| store.delete_credential(&id)).await? {
                report.deleted += 1;
            }
        }
        Ok(report)
    }

    /// The targets of every binding of `server`, and why the others could not be resolved.
    async fn targets_of(&self, server: &str) -> (Vec<Target>, Vec<String>) {
        let bindings = match self.catalog().server(server) {
            Ok(entry) => entry.bindings(),
            Err(error) => return (Vec::new(), vec![error.to_string()]),
        };
        let (mut targets, mut problems) = (Vec::new(), Vec::new());
        for binding in bindings {
            match self.resolve(&binding).await {
                Ok(target) => targets.push(target),
                Err(error) => problems.push(format!("{error:#}")),
            }
        }
        (targets, problems)
    }
}

/// Ask the provider to revoke `credential`'s grant; whether that is settled there (revoked, or
/// the provider has no way to revoke it), noting what happened in `report`.
async fn revoke_at_provider(target: &Target, credential: &Credential, report: &mut RevokeReport) -> bool {
    let tokens = &credential.tokens;
    let refresh_token = tokens.refresh_token.as_ref().map(|token| token.expose_secret());
    match target.endpoint.revoke(refresh_token, tokens.access_token.expose_secret()).await {
        Ok(()) => {
            report.revoked_at = target.endpoint.flow.endpoints.revocation.as_ref().map(|r| r.url.clone());
            true
        }
        // Nothing more can be done here: the user ends the grant at the provider.
        Err(ExchangeError::NoRevocation) => {
            report.remote_note = Some(format!(
                "no revocation endpoint is known for `{}` (neither provider `{}` nor the catalog's `server_metadata` names one); to \
                 end the grant, remove the app's access in the provider's account settings",
                credential.id.server, credential.provider
            ));
            true
        }
        Err(error) => {
            report.remote_note = Some(format!("the provider did not confirm the revocation: {error}"));
            false
        }
    }
}

/// Whether `credential`'s access token expires within `ahead` of `now`.
pub fn due(credential: &Credential, now: SystemTime, ahead: Duration) -> bool {
    credential.tokens.expires_at.is_some_and(|at| at <= now + ahead)
}

impl Target {
    /// How long before expiry this credential is refreshed: the provider's `refresh-ahead`
    /// (bounded), else [`REFRESH_SKEW`].
    pub fn refresh_ahead(&self) -> Duration {
        self.endpoint.flow.refresh_ahead.map_or(REFRESH_SKEW, |seconds| Duration::from_secs(seconds.into()).min(LONGEST_REFRESH_AHEAD))
    }
}

fn transient(error: &ExchangeError) -> bool {
    match error.failure() {
        Some(failure) => failure.kind == FailureKind::Retry,
        None => matches!(error, ExchangeError::Send(_)),
    }
}

/// 1 s, 2 s, 4 s… capped at 60 s, with up to 20 % jitter so that processes do not retry in step.
pub fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_secs(1u64 << attempt.saturating_sub(1).min(6)).min(Duration::from_secs(60));
    let jitter = rand::random::<f64>() * 0.2;
    base.mul_f64(1.0 + jitter)
}
