//! Keeping tokens alive while the gateway runs: for each OAuth credential (each binding of each
//! server), wait until shortly before the access token expires (with jitter, so that servers do
//! not refresh in step), refresh, and tell the upstream (see [`super::upstream`] for how each kind
//! picks the new token up). One task schedules every credential from one queue of due times, and
//! runs at most [`IN_FLIGHT`] checks and refreshes at once.
//!
//! "Shortly before" is the provider's `refresh-ahead` (else [`REFRESH_SKEW`]) plus jitter, but never more than half the token's
//! remaining lifetime, so that short-lived tokens are refreshed once per lifetime rather than in
//! a loop. The refresh is skipped when the stored token is already newer than the one the
//! scheduler planned for (another process refreshed it).
//!
//! It never gives up silently: a credential that cannot be refreshed is logged as an error and
//! shown in `/health` (and, from the store, in `latchkey oauth ls`); transient failures back off
//! and try again; a credential that is missing or needs re-authorization is checked again
//! periodically, so authorizing while the gateway runs is picked up without a restart.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant, SystemTime};

use futures::FutureExt;
use serde::Serialize;
use tokio::task::JoinSet;

use super::Gateway;
use super::memory::Freed;
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
pub struct CredentialHealth {
    /// `authorized`, `refreshing`, `retrying`, `needs-reauthorization`, `not-authorized`, `error`.
    state: &'static str,
    detail: Option<String>,
    expires_at: Option<SystemTime>,
}

/// Every watched credential's state, shared with `/health`, which writes it out where it is, a
/// chunk at a time (with 10 000 credentials, a copy for each `/health` was ~1.5 MB of small
/// allocations).
///
/// A credential has a slot, its number in name order, made at start with its name: a check changes
/// its slot in place. (A map filled by the first pass of checks left its nodes scattered among
/// that pass's short-lived allocations: with 10 000 credentials, heap pages that could not be
/// handed back.)
#[derive(Clone)]
pub struct Credentials {
    /// `/health`'s names: the server, and which provider when it has several.
    names: Arc<[Box<str>]>,
    /// By slot; `None` until the credential's first check.
    states: Arc<StdMutex<Vec<Option<CredentialHealth>>>>,
}

impl Credentials {
    /// Slots for the credentials named `names`, in that order (sorted).
    pub(super) fn new(names: Vec<Box<str>>) -> Credentials {
        let states = names.iter().map(|_| None).collect();
        Credentials { names: names.into(), states: Arc::new(StdMutex::new(states)) }
    }

    /// Hand `write` the name and state of each credential checked so far, in name order from slot
    /// `from` on, under the lock, until it returns `false`; the slot to go on from, or `None` when
    /// every one was handed. `/health` writes them a chunk at a time.
    pub fn each_from(&self, from: usize, mut write: impl FnMut(&str, &CredentialHealth) -> bool) -> Option<usize> {
        let states = self.states.lock().expect("credentials lock");
        for (slot, state) in states.iter().enumerate().skip(from) {
            if let Some(state) = state
                && !write(&self.names[slot], state)
            {
                return Some(slot + 1);
            }
        }
        None
    }

    /// Whether a credential needs the user, or failed.
    pub fn any_unusable(&self) -> bool {
        let states = self.states.lock().expect("credentials lock");
        states.iter().flatten().any(|credential| matches!(credential.state, "needs-reauthorization" | "not-authorized" | "error"))
    }

    pub(super) fn set(&self, slot: usize, state: &'static str, detail: Option<String>, expires_at: Option<SystemTime>) {
        let mut states = self.states.lock().expect("credentials lock");
        let (Some(name), Some(kept)) = (self.names.get(slot), states.get_mut(slot)) else { return };
        let previous = kept.replace(CredentialHealth { state, detail: detail.clone(), expires_at });
        // Say it once per change, loudly when the user must act.
        if previous.is_none_or(|p| p.state != state) {
            match state {
                "needs-reauthorization" | "not-authorized" | "error" => {
                    tracing::error!("{name}: {state}: {}", detail.unwrap_or_default())
                }
                _ => tracing::info!("{name}: {state}"),
            }
        }
    }
}

impl Serialize for CredentialHealth {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("state", self.state)?;
        if let Some(detail) = &self.detail {
            map.serialize_entry("detail", detail)?;
        }
        // As of now: the seconds left (negative: past), not as of the last check.
        if let Some(at) = self.expires_at {
            let expires_in = match at.duration_since(SystemTime::now()) {
                Ok(left) => left.as_secs() as i64,
                Err(past) => -(past.duration().as_secs() as i64),
            };
            map.serialize_entry("expires_in", &expires_in)?;
        }
        map.end()
    }
}

/// At most this many credentials are checked or refreshed at once; the others wait their turn
/// (a refresh has the HTTP client's timeout, so none waits long).
const IN_FLIGHT: usize = 32;

/// Keep every OAuth credential of `gateway`'s servers alive: one per binding, so a server with
/// two providers keeps both tokens alive, and a remote server signed in through discovery alone
/// keeps its own. One task holds them all in one queue of due times; a credential costs a queue
/// entry while it waits (a task each cost ~5 KB of future), and a task only while it is checked or
/// refreshed.
pub fn spawn(gateway: &Gateway) -> Credentials {
    let mut named: Vec<(Box<str>, Watched)> = gateway
        .upstreams()
        .flat_map(|upstream| {
            upstream.bindings().into_iter().enumerate().map(move |(binding, named)| {
                let watched = Watched { binding, upstream: upstream.clone(), state: State::default(), next: Step::Check };
                (named.to_string().into_boxed_str(), watched)
            })
        })
        .collect();
    named.sort_by(|(a, _), (b, _)| a.cmp(b));
    // Each credential's slot is its place in name order.
    let (names, watched): (Vec<Box<str>>, Vec<Watched>) = named.into_iter().unzip();
    let credentials = Credentials::new(names);
    tokio::spawn(schedule(gateway.engine().tokens(), credentials.clone(), watched));
    credentials
}

/// One credential the scheduler keeps alive: the upstream's binding number `binding`, made again
/// for each step rather than kept (10 000 credentials kept ~2 MB of bindings).
struct Watched {
    binding: usize,
    upstream: Arc<Upstream>,
    state: State,
    next: Step,
}

impl Watched {
    fn binding(&self) -> Option<Binding> {
        self.upstream.bindings().into_iter().nth(self.binding)
    }
}

/// What a credential's steps carry from one to the next.
#[derive(Clone, Copy, Default)]
struct State {
    /// Refreshes that failed in a row (backoff).
    failures: u32,
    /// The expiry of the token last seen, to notice tokens changed behind the gateway's back.
    last_seen: Option<SystemTime>,
}

#[derive(Clone, Copy)]
enum Step {
    /// Read the stored credential and plan what comes next.
    Check,
    /// Refresh the token that expires at `expires_at`; a stored token no longer due at
    /// `planned_for` was refreshed by someone else.
    Refresh { expires_at: SystemTime, planned_for: SystemTime },
}

/// What one step needs, owned, to run as a task of its own.
struct Job {
    tokens: Tokens,
    credentials: Credentials,
    binding: Binding,
    /// The credential's slot in [`Credentials`].
    slot: usize,
    upstream: Arc<Upstream>,
}

async fn schedule(tokens: Tokens, credentials: Credentials, mut watched: Vec<Watched>) {
    let mut due: BinaryHeap<Reverse<(Instant, usize)>> = (0..watched.len()).map(|index| Reverse((Instant::now(), index))).collect();
    let mut running = JoinSet::new();
    // A refresh rewrites the store, which may hold thousands of credentials; the first pass (as
    // many steps as there are credentials, each one's first check), alongside the upstreams'
    // starts, leaves a peak behind too. Later checks free little and ask for no trim.
    let freed = Freed::watch();
    let mut first_checks_left = watched.len();
    loop {
        if running.is_empty() && due.is_empty() {
            return;
        }
        while running.len() < IN_FLIGHT && due.peek().is_some_and(|Reverse((at, _))| *at <= Instant::now()) {
            let Some(Reverse((_, index))) = due.pop() else { break };
            let entry = &watched[index];
            // An upstream's server does not change, so its bindings are the ones counted at start.
            let Some(binding) = entry.binding() else { continue };
            let job =
                Job { tokens: tokens.clone(), credentials: credentials.clone(), slot: index, binding, upstream: entry.upstream.clone() };
            let (state, step) = (entry.state, entry.next);
            running.spawn(async move {
                let run = async {
                    match step {
                        Step::Check => check(&job, state).await,
                        Step::Refresh { expires_at, planned_for } => refresh(&job, state, expires_at, planned_for).await,
                    }
                };
                (index, matches!(step, Step::Refresh { .. }), AssertUnwindSafe(run).catch_unwind().await.ok())
            });
        }
        let next_due = due.peek().map(|Reverse((at, _))| *at).filter(|_| running.len() < IN_FLIGHT);
        tokio::select! {
            Some(Ok((index, refreshed, outcome))) = running.join_next() => {
                let first_pass_done = first_checks_left == 1;
                first_checks_left = first_checks_left.saturating_sub(1);
                if refreshed || first_pass_done {
                    freed.note();
                }
                let entry = &mut watched[index];
                let wait = match outcome {
                    Some((state, next, wait)) => {
                        (entry.state, entry.next) = (state, next);
                        wait
                    }
                    // A step that panicked: the credential is looked at again later rather than
                    // forgotten.
                    None => {
                        let name = entry.binding().map(|binding| binding.to_string()).unwrap_or_default();
                        tracing::error!("{name}: checking the credential failed unexpectedly; trying again");
                        entry.next = Step::Check;
                        RECHECK
                    }
                };
                due.push(Reverse((Instant::now() + wait, index)));
            }
            () = sleep_until_due(next_due) => {}
        }
    }
}

/// Until `at`; never, without one.
async fn sleep_until_due(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Read the stored credential, say what state it is in, and plan the next step: a refresh shortly
/// before it expires, or another check later.
async fn check(job: &Job, mut state: State) -> (State, Step, Duration) {
    let Job { tokens, credentials, binding, slot, upstream } = job;
    // A remote server without an `oauth` section that was never signed in may need no OAuth at
    // all: it is not asked for an authorization server, and nothing is reported.
    if binding.entry == BindingEntry::Discovery && !tokens.any_for(&binding.server).await.unwrap_or(true) {
        return (state, Step::Check, RECHECK);
    }
    let stored = match tokens.stored_or_issued(binding).await {
        Ok(Some(credential)) => credential,
        Ok(None) => {
            credentials.set(*slot, "not-authorized", Some(format!("run `{}`", binding.authorize_command())), None);
            return (state, Step::Check, RECHECK);
        }
        Err(error) => {
            credentials.set(*slot, "error", Some(format!("{error:#}")), None);
            return (state, Step::Check, RECHECK);
        }
    };
    // Tokens that changed behind the gateway's back (`oauth authorize` or a refresh by another
    // process) reach the upstream too.
    if state.last_seen.is_some() && state.last_seen != stored.tokens.expires_at {
        upstream.credentials_changed().await;
    }
    state.last_seen = stored.tokens.expires_at;
    if let Status::NeedsReauthorization { reason } = &stored.status {
        credentials.set(*slot, "needs-reauthorization", Some(format!("{reason}; run `{}`", binding.authorize_command())), None);
        return (state, Step::Check, RECHECK);
    }
    let Some(expires_at) = stored.tokens.expires_at else {
        credentials.set(*slot, "authorized", Some("the token has no expiry".into()), None);
        return (state, Step::Check, NO_EXPIRY_RECHECK);
    };
    if state.failures == 0 {
        credentials.set(*slot, "authorized", None, Some(expires_at));
    }
    let jitter = Duration::from_secs_f64(rand::random::<f64>() * 10.0);
    let remaining = expires_at.duration_since(SystemTime::now()).unwrap_or_default();
    let ahead = tokens.refresh_ahead(binding).await.unwrap_or(REFRESH_SKEW);
    let refresh_at = expires_at.checked_sub((ahead + jitter).min(remaining / 2)).unwrap_or(expires_at);
    // "Due" as of the token planned for: a stored token that expires later is someone else's
    // refresh, and is kept as it is.
    let planned_for = expires_at.checked_sub(ahead).unwrap_or(expires_at);
    let wait = if state.failures > 0 { backoff(state.failures) } else { refresh_at.duration_since(SystemTime::now()).unwrap_or_default() };
    (state, Step::Refresh { expires_at, planned_for }, wait)
}

/// Refresh the token that expires at `expires_at`, then check again at once.
async fn refresh(job: &Job, mut state: State, expires_at: SystemTime, planned_for: SystemTime) -> (State, Step, Duration) {
    let Job { tokens, credentials, binding, slot, upstream } = job;
    credentials.set(*slot, "refreshing", None, Some(expires_at));
    match tokens.refresh(binding, Some(planned_for)).await {
        Ok(fresh) => {
            state.failures = 0;
            state.last_seen = fresh.tokens.expires_at;
            if fresh.tokens.expires_at != Some(expires_at) {
                upstream.credentials_changed().await;
            }
            credentials.set(*slot, "authorized", None, fresh.tokens.expires_at);
        }
        Err(RefreshError::NeedsReauthorization { reason, .. }) => {
            credentials.set(*slot, "needs-reauthorization", Some(format!("{reason}; run `{}`", binding.authorize_command())), None);
        }
        Err(error) => {
            state.failures = state.failures.saturating_add(1);
            let status = if error.is_transient() { "retrying" } else { "error" };
            credentials.set(*slot, status, Some(error.to_string()), Some(expires_at));
        }
    }
    (state, Step::Check, Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::Credentials;

    #[test]
    fn health_shows_the_states_with_the_time_left_as_of_the_answer() {
        let credentials = Credentials::new(vec!["chat".into(), "mail".into(), "unchecked".into()]);
        credentials.set(1, "authorized", None, Some(SystemTime::now() + Duration::from_secs(10)));
        credentials.set(0, "not-authorized", Some("run `latchkey oauth authorize chat`".into()), None);
        assert!(credentials.any_unusable());
        std::thread::sleep(Duration::from_millis(1100));
        let mut shown = serde_json::Map::new();
        let all = credentials.each_from(0, |name, state| shown.insert(name.into(), serde_json::to_value(state).unwrap()).is_none());
        assert_eq!(all, None);
        let shown = serde_json::Value::Object(shown);
        assert_eq!(shown["chat"], serde_json::json!({"state": "not-authorized", "detail": "run `latchkey oauth authorize chat`"}));
        assert_eq!(shown["mail"]["state"], "authorized");
        assert!(shown.get("unchecked").is_none(), "a credential not checked yet has no state: {shown}");
        let left = shown["mail"]["expires_in"].as_i64().unwrap();
        assert!((0..=8).contains(&left), "expires_in is the time left now, not at the check: {shown}");
    }
}
