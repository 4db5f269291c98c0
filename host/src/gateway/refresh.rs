//! Keeping tokens alive while the gateway runs: for each OAuth credential (each binding of each
//! server), sleep until shortly before
//! the access token expires (with jitter, so that servers do not refresh in step), refresh, and
//! tell the upstream (see [`super::upstream`] for how each kind picks the new token up).
//!
//! "Shortly before" is [`REFRESH_SKEW`] plus jitter, but never more than half the token's
//! remaining lifetime, so that short-lived tokens are refreshed once per lifetime rather than in
//! a loop. The refresh is skipped when the stored token is already newer than the one the
//! scheduler planned for (another process refreshed it).
//!
//! It never gives up silently: a credential that cannot be refreshed is logged as an error and
//! shown in `/health` (and, from the store, in `latchkey oauth ls`); transient failures back off
//! and try again; a credential that is missing or needs re-authorization is checked again
//! periodically, so authorizing while the gateway runs is picked up without a restart.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::Gateway;
use super::upstream::Upstream;
use crate::catalog::{Binding, BindingEntry};
use crate::oauth::access::Tokens;
use crate::oauth::lifecycle::{REFRESH_SKEW, RefreshError, backoff};
use crate::store::Status;

/// How often a credential that needs the user is looked at again.
const RECHECK: Duration = Duration::from_secs(30);
/// How long to sleep for a token with no expiry before looking again.
const NO_EXPIRY_RECHECK: Duration = Duration::from_secs(3600);

/// A credential's state as `/health` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct CredentialHealth {
    /// `authorized`, `refreshing`, `retrying`, `needs-reauthorization`, `not-authorized`, `error`.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<i64>,
}

/// Every OAuth server's credential state, shared with `/health`.
#[derive(Clone, Default)]
pub struct Credentials {
    states: Arc<StdMutex<BTreeMap<String, CredentialHealth>>>,
}

impl Credentials {
    pub fn snapshot(&self) -> BTreeMap<String, CredentialHealth> {
        self.states.lock().expect("credentials lock").clone()
    }

    fn set(&self, server: &str, state: &'static str, detail: Option<String>, expires_at: Option<SystemTime>) {
        let expires_in = expires_at.map(|at| match at.duration_since(SystemTime::now()) {
            Ok(left) => left.as_secs() as i64,
            Err(past) => -(past.duration().as_secs() as i64),
        });
        let mut states = self.states.lock().expect("credentials lock");
        let previous = states.insert(server.to_string(), CredentialHealth { state, detail: detail.clone(), expires_in });
        // Say it once per change, loudly when the user must act.
        if previous.is_none_or(|p| p.state != state) {
            match state {
                "needs-reauthorization" | "not-authorized" | "error" => {
                    tracing::error!("{server}: {state}: {}", detail.unwrap_or_default())
                }
                _ => tracing::info!("{server}: {state}"),
            }
        }
    }
}

/// Start a refresh loop for every OAuth credential of `gateway`'s servers: one per binding, so a
/// server with two providers keeps both tokens alive, and a remote server signed in through
/// discovery alone keeps its own.
pub fn spawn(gateway: &Gateway) -> Credentials {
    let credentials = Credentials::default();
    let tokens = gateway.engine().tokens();
    for upstream in gateway.upstreams() {
        for binding in upstream.server.bindings() {
            tokio::spawn(keep_alive(tokens.clone(), binding, upstream.clone(), credentials.clone()));
        }
    }
    credentials
}

async fn keep_alive(tokens: Tokens, binding: Binding, upstream: Arc<Upstream>, credentials: Credentials) {
    let server = binding.server.clone();
    // `/health` names the credential: the server, and which provider when it has several.
    let name = binding.to_string();
    let mut failures = 0u32;
    let mut last_seen: Option<SystemTime> = None;
    loop {
        // A remote server without an `oauth` section that was never signed in may need no OAuth at
        // all: it is not asked for an authorization server, and nothing is reported.
        if binding.entry == BindingEntry::Discovery && !tokens.any_for(&server).await.unwrap_or(true) {
            tokio::time::sleep(RECHECK).await;
            continue;
        }
        let stored = match tokens.stored(&binding).await {
            Ok(Some(credential)) => credential,
            Ok(None) => {
                credentials.set(&name, "not-authorized", Some(format!("run `{}`", binding.authorize_command())), None);
                tokio::time::sleep(RECHECK).await;
                continue;
            }
            Err(error) => {
                credentials.set(&name, "error", Some(format!("{error:#}")), None);
                tokio::time::sleep(RECHECK).await;
                continue;
            }
        };
        // Tokens that changed behind the gateway's back (`oauth authorize` or a refresh by another
        // process) reach the upstream too.
        if last_seen.is_some() && last_seen != stored.tokens.expires_at {
            upstream.credentials_changed().await;
        }
        last_seen = stored.tokens.expires_at;
        if let Status::NeedsReauthorization { reason } = &stored.status {
            credentials.set(&name, "needs-reauthorization", Some(format!("{reason}; run `{}`", binding.authorize_command())), None);
            tokio::time::sleep(RECHECK).await;
            continue;
        }
        let Some(expires_at) = stored.tokens.expires_at else {
            credentials.set(&name, "authorized", Some("the token has no expiry".into()), None);
            tokio::time::sleep(NO_EXPIRY_RECHECK).await;
            continue;
        };
        if failures == 0 {
            credentials.set(&name, "authorized", None, Some(expires_at));
        }
        let jitter = Duration::from_secs_f64(rand::random::<f64>() * 10.0);
        let remaining = expires_at.duration_since(SystemTime::now()).unwrap_or_default();
        let refresh_at = expires_at.checked_sub((REFRESH_SKEW + jitter).min(remaining / 2)).unwrap_or(expires_at);
        let wait = if failures > 0 { backoff(failures) } else { refresh_at.duration_since(SystemTime::now()).unwrap_or_default() };
        tokio::time::sleep(wait).await;

        credentials.set(&name, "refreshing", None, Some(expires_at));
        // "Due" as of the token planned for: a stored token that expires later is someone else's
        // refresh, and is kept as it is.
        let planned_for = expires_at.checked_sub(REFRESH_SKEW).unwrap_or(expires_at);
        match tokens.refresh(&binding, Some(planned_for)).await {
            Ok(fresh) => {
                failures = 0;
                last_seen = fresh.tokens.expires_at;
                if fresh.tokens.expires_at != Some(expires_at) {
                    upstream.credentials_changed().await;
                }
                credentials.set(&name, "authorized", None, fresh.tokens.expires_at);
            }
            Err(RefreshError::NeedsReauthorization { reason, .. }) => {
                credentials.set(&name, "needs-reauthorization", Some(format!("{reason}; run `{}`", binding.authorize_command())), None);
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                let state = if error.is_transient() { "retrying" } else { "error" };
                credentials.set(&name, state, Some(error.to_string()), Some(expires_at));
            }
        }
    }
}
