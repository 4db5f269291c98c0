//! One upstream MCP server, as the gateway's MCP client: started on first use, restarted when it
//! crashes or when its credentials change, and reconnected transparently.
//!
//! How each kind gets fresh tokens while the gateway runs:
//! - a **local process** or **container** reads its token from its environment once, at start; after
//!   a refresh the upstream is marked stale and restarted *between* calls (a restart waits for
//!   calls in flight, and new calls wait for the restart), then initialized again, so the client's
//!   session with the gateway never notices;
//! - a **remote** server is reached through latchkey's one remote MCP client
//!   ([`crate::mcp::remote`]), configured for the gateway: the `initialize` handshake, and a
//!   credential that never asks anyone to sign in ([`crate::mcp::catalog_credential`]). The token
//!   goes out as `Authorization: Bearer` on every request, with the entry's `headers` (expanded
//!   at each start, so a reconnect picks up changed secrets: [`inject`]); after a refresh the next request goes
//!   out on a new connection with the new token; a 401 from the server (at `initialize` or on any
//!   later request) triggers one refresh and one retry; a refusal that the refresh does not answer
//!   fails the upstream as a failed start does, with the `latchkey oauth authorize` command that
//!   fixes it (a 403 for more scope fails only that request).
//!
//! Nothing waits forever: every request, `initialize` included, has the gateway's timeout; a
//! server that failed to start is tried again only after a backoff (requests meanwhile fail at
//! once with the reason), so one broken server never slows the others down; and a start runs in
//! a task of its own, so a caller that gives up waiting (a list with its own deadline) does not
//! cut it short. A server that a list had to leave out announces itself with list-changed
//! notifications once it is up.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ClientConfig, ErrorData, GetPromptRequestParams, GetPromptResponse, Implementation, Prompt,
    ProtocolVersion, ReadResourceRequestParams, ReadResourceResponse, Resource, ServerResult, Tool,
};
use rmcp::service::{NotificationContext, RunningService, ServiceError};
use rmcp::{ClientHandler, ClientLifecycleMode, Peer, RoleClient, ServiceExt};
use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::{RwLock, RwLockReadGuard, mpsc};
use tokio_util::bytes::Bytes;
use url::Url;

use super::inject;
use super::process_tree::{self, ProcessTree};
use super::relay::{self, Relay};
use super::wire::Envelope;
use crate::catalog::config::{self, Resolved, ValueFile};
use crate::catalog::{Binding, Kind, Server};
use crate::mcp::catalog_credential::CatalogCredential;
use crate::mcp::remote::{Failure, Refusal, RefusedSession, Remote};
use crate::oauth::engine::Engine;
use crate::oauth::lifecycle::backoff;

/// Something an upstream told the gateway.
#[derive(Clone, Debug)]
pub enum Event {
    ToolsChanged,
    PromptsChanged,
    ResourcesChanged,
}

/// Where an upstream's events go: the gateway, which learns from the server name which upstream
/// sent each.
pub type Events = mpsc::UnboundedSender<(String, Event)>;

/// Receives the upstream's notifications and passes list changes on to the gateway.
#[derive(Clone)]
pub struct Handler {
    server: String,
    events: Events,
}

impl Handler {
    fn send(&self, event: Event) {
        let _ = self.events.send((self.server.clone(), event));
    }
}

impl ClientHandler for Handler {
    fn get_info(&self) -> ClientConfig {
        let mut config = ClientConfig::default();
        config.client_info = Implementation::new("latchkey-gateway", env!("CARGO_PKG_VERSION"));
        config
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.send(Event::ToolsChanged);
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.send(Event::PromptsChanged);
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.send(Event::ResourcesChanged);
    }
}

/// The remote client of a remote upstream's current connection: it carries that connection's
/// credential.
type RemoteClient = Remote<Handler, CatalogCredential>;

enum State {
    Stopped,
    /// Boxed, so that an upstream that is not running (thousands that have not started, or
    /// failed to) holds only the small variants.
    Running(Box<Running>),
    /// The last start failed; the next is tried from `retry_at` on.
    Failed {
        /// Shared with [`Health::error`]: thousands of servers that cannot start hold it once each.
        reason: Arc<str>,
        retry_at: Instant,
        failures: u32,
    },
}

/// A started server.
struct Running {
    /// A local server's processes; first, so that they end before the connection is dropped.
    tree: Option<ProcessTree>,
    service: RunningService<RoleClient, Handler>,
    /// A server on stdio (a local process or a container): the hot path to it.
    relay: Option<Relay>,
    /// A remote server's client.
    remote: Option<Arc<RemoteClient>>,
    /// Its credentials changed: restart (or reconnect) before the next request.
    stale: bool,
    /// Tells this run from later ones, so that a failure seen on an old connection never stops
    /// a newer one.
    generation: u64,
}

impl Running {
    /// Whether requests can go out through it now.
    fn current(&self) -> bool {
        !self.stale && !self.service.is_closed()
    }
}

impl State {
    /// End a running server: its processes first, then its connection.
    async fn stop(self) {
        if let State::Running(running) = self {
            let Running { tree, service, .. } = *running;
            drop(tree);
            let _ = service.cancel().await;
        }
    }

    /// Whether it is run `generation`.
    fn is_run(&self, generation: u64) -> bool {
        matches!(self, State::Running(running) if running.generation == generation)
    }
}

/// What a request goes out through: rmcp's client, and the hot path to a server on stdio.
#[derive(Clone)]
struct Link {
    peer: Peer<RoleClient>,
    relay: Option<Relay>,
}

/// What a request runs with: the read guard that keeps a restart waiting, the link, the remote
/// client (remote servers) and the run's generation.
type Ready<'a> = (RwLockReadGuard<'a, State>, Link, Option<Arc<RemoteClient>>, u64);

/// What `/health` shows about an upstream.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Health {
    /// `not started`, `starting`, `running`, `restarting`, `failed`.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Arc<str>>,
    pub restarts: u32,
}

pub struct Upstream {
    /// The catalog entry, shared by every account it is served for: a server served for a
    /// hundred accounts holds one entry, not a hundred copies (see [`Upstream::server`]).
    entry: Arc<Server>,
    /// The account it is served for; `None`: the default one.
    account: Option<String>,
    /// [`Server::served_name`].
    name: String,
    engine: Arc<Engine>,
    events: Events,
    /// For `initialize` and for every request.
    timeout: Duration,
    state: RwLock<State>,
    generations: AtomicU64,
    /// A list went out without this server: announce its lists once it is up.
    left_out: AtomicBool,
    /// The server refused its credential (401) and a refresh did not help, since it last ran:
    /// only a new sign-in will ([`super::sign_in`]).
    refused_credential: AtomicBool,
    health: StdMutex<Health>,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("server `{server}` could not start: {reason}")]
    Start { server: String, reason: String },
    #[error("server `{server}` failed: {error}")]
    Call { server: String, error: ServiceError },
    #[error("server `{server}` stopped during the request ({error}); it is being restarted, so try again")]
    Crashed { server: String, error: ServiceError },
    #[error("server `{server}` did not answer within {} s (the gateway's --timeout)", .timeout.as_secs())]
    Timeout { server: String, timeout: Duration },
    #[error("server `{server}` refused the request: {reason}")]
    Refused { server: String, reason: String },
}

impl Upstream {
    /// The upstream of catalog `entry` served for `account` (the entry's own, or one that
    /// `--servers gmail@work` names).
    pub fn new(entry: Arc<Server>, account: Option<String>, engine: Arc<Engine>, events: Events, timeout: Duration) -> Arc<Upstream> {
        Arc::new(Upstream {
            name: entry.served_name(account.as_deref()),
            entry,
            account,
            engine,
            events,
            timeout,
            state: RwLock::new(State::Stopped),
            generations: AtomicU64::new(0),
            left_out: AtomicBool::new(false),
            refused_credential: AtomicBool::new(false),
            health: StdMutex::new(Health { state: "not started", ..Health::default() }),
        })
    }

    /// What the gateway serves it as: the server's name, with its account when not the default.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The catalog entry as the catalog has it: its name and kind are the upstream's.
    pub fn entry(&self) -> &Server {
        &self.entry
    }

    /// The account it is served for; `None`: the default one.
    pub fn account(&self) -> Option<&str> {
        self.account.as_deref()
    }

    /// The server's OAuth bindings, for the upstream's account ([`Server::bindings`] of
    /// [`Upstream::server`], without copying the entry).
    pub fn bindings(&self) -> Vec<Binding> {
        self.entry.bindings().into_iter().map(|binding| binding.for_account(self.account.clone())).collect()
    }

    /// The catalog entry served for the upstream's account, as the pipeline takes it (its
    /// bindings, secrets and tokens are the account's): the entry itself for the entry's own
    /// account, else a copy made for the moment (a start, a sign-in) and not kept.
    pub fn server(&self) -> Cow<'_, Server> {
        if self.entry.account == self.account {
            Cow::Borrowed(&self.entry)
        } else {
            Cow::Owned(self.entry.for_account(self.account.clone()))
        }
    }

    pub fn health(&self) -> Health {
        self.health.lock().expect("health lock").clone()
    }

    fn set_health(&self, state: &'static str, error: Option<Arc<str>>) {
        let mut health = self.health.lock().expect("health lock");
        health.state = state;
        health.error = error;
    }

    /// New credentials: restart before the next call (local) or reconnect (remote); a server that
    /// could not start (say, for want of a token) is tried again at once.
    pub async fn credentials_changed(&self) {
        match &mut *self.state.write().await {
            State::Running(running) => running.stale = true,
            State::Failed { retry_at, .. } => *retry_at = Instant::now(),
            State::Stopped => {}
        }
    }

    /// A list went out without this server (it failed or was too slow).
    pub fn mark_left_out(&self) {
        self.left_out.store(true, Ordering::Relaxed);
    }

    /// Whether the server refused its credential (401) since it last ran, a refresh not helping.
    pub fn refused_credential(&self) -> bool {
        self.refused_credential.load(Ordering::Relaxed)
    }

    /// Start the upstream now (the gateway does this at start so failures show early).
    pub async fn start(self: &Arc<Self>) -> Result<(), UpstreamError> {
        self.with_peer((), |_, ()| async { Ok(()) }).await
    }

    pub async fn list_tools(self: &Arc<Self>) -> Result<Vec<Tool>, UpstreamError> {
        self.with_peer((), |link, ()| async move { link.peer.list_all_tools().await }).await
    }

    pub async fn list_prompts(self: &Arc<Self>) -> Result<Vec<Prompt>, UpstreamError> {
        self.with_peer((), |link, ()| async move { link.peer.list_all_prompts().await }).await
    }

    pub async fn list_resources(self: &Arc<Self>) -> Result<Vec<Resource>, UpstreamError> {
        self.with_peer((), |link, ()| async move { link.peer.list_all_resources().await }).await
    }

    /// A `tools/call`; to a server on stdio it goes out through the relay, without rmcp's client.
    pub async fn call_tool(self: &Arc<Self>, params: CallToolRequestParams) -> Result<CallToolResponse, UpstreamError> {
        self.with_peer(params, |link, params| async move {
            let Some(relay) = link.relay else { return link.peer.call_tool_once(params).await };
            let answer = relay.request("tools/call", &params).await?;
            match outcome(&answer)? {
                Ok(result) => match serde_json::from_str::<ServerResult>(result.get()) {
                    Ok(ServerResult::CallToolResult(result)) => Ok(CallToolResponse::Complete(result)),
                    Ok(ServerResult::InputRequiredResult(result)) => Ok(CallToolResponse::InputRequired(result)),
                    Ok(ServerResult::CreateTaskResult(result)) => Ok(CallToolResponse::Task(result)),
                    _ => Err(ServiceError::UnexpectedResponse),
                },
                Err(error) => Err(ServiceError::McpError(error)),
            }
        })
        .await
    }

    /// A `tools/call` with `params` as they are, to a server on stdio: its `result` as it is
    /// (JSON), or why the call failed. `None` unless the server is running and current now, so
    /// that everything else (a start, a sign-in) takes the full path.
    pub async fn call_tool_as_is(
        self: &Arc<Self>,
        params: &RawValue,
        protocol_version: &ProtocolVersion,
    ) -> Option<Result<Box<RawValue>, UpstreamError>> {
        if !self.relays_now(protocol_version) {
            return None;
        }
        let answer = self
            .with_peer(params, |link, params| async move {
                let Some(relay) = link.relay else { return Err(ServiceError::UnexpectedResponse) };
                let answer = relay.request("tools/call", params).await?;
                match outcome(&answer)? {
                    Ok(result) => Ok(result.to_owned()),
                    Err(error) => Err(ServiceError::McpError(error)),
                }
            })
            .await;
        Some(answer)
    }

    /// Whether the server is on stdio, running and current, now, and its answers suit a client
    /// of `protocol_version` as they are.
    pub(super) fn relays_now(&self, protocol_version: &ProtocolVersion) -> bool {
        self.state.try_read().is_ok_and(|state| {
            matches!(&*state, State::Running(running)
                if running.current() && running.relay.as_ref().is_some_and(|relay| relay.answers_fit(protocol_version)))
        })
    }

    pub async fn get_prompt(self: &Arc<Self>, params: GetPromptRequestParams) -> Result<GetPromptResponse, UpstreamError> {
        self.with_peer(params, |link, params| async move { link.peer.get_prompt_once(params).await }).await
    }

    pub async fn read_resource(self: &Arc<Self>, params: ReadResourceRequestParams) -> Result<ReadResourceResponse, UpstreamError> {
        self.with_peer(params, |link, params| async move { link.peer.read_resource_once(params).await }).await
    }

    /// Run `request` with `params` against a running, current upstream, within the timeout. A
    /// remote server's refusals go through its client's authorization, which may send the request
    /// again (so it gets a copy of `params` each time; a local server gets them as they are); a
    /// closed transport (the server crashed) fails this request and restarts the server in the
    /// background.
    async fn with_peer<P, F, Fut, R>(self: &Arc<Self>, params: P, request: F) -> Result<R, UpstreamError>
    where
        P: Clone,
        F: Fn(Link, P) -> Fut,
        Fut: std::future::Future<Output = Result<R, ServiceError>>,
    {
        // On the heap: this future (the request, the restart and token-refresh paths) is part of
        // every handler future rmcp spawns per request, and tokio copies a spawned future several
        // times; kept inline it made each tools/call copy ~100 KB (over a third of the gateway's
        // instructions per call, measured with callgrind: see bench/gateway).
        Box::pin(async move {
            // The read guard lives as long as the request, so a restart waits for it to finish.
            let (guard, link, remote, generation) = self.ready().await?;
            let call = async {
                match &remote {
                    Some(remote) => remote.authorized(|| request(link.clone(), params.clone())).await,
                    None => request(link, params).await.map_err(Failure::Other),
                }
            };
            let result = tokio::time::timeout(self.timeout, call).await;
            drop(guard);
            let error = match result {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(Failure::Other(error))) => error,
                Ok(Err(Failure::Refused { refusal, error })) => {
                    let reason = format!("{error:#}");
                    if refusal == Refusal::Unauthorized {
                        self.refused(generation, &reason).await;
                    }
                    return Err(UpstreamError::Refused { server: self.name().to_string(), reason });
                }
                Err(_) => return Err(UpstreamError::Timeout { server: self.name().to_string(), timeout: self.timeout }),
            };
            if matches!(error, ServiceError::TransportClosed | ServiceError::TransportSend(_)) {
                self.crashed(generation, &error).await;
                return Err(UpstreamError::Crashed { server: self.name().to_string(), error });
            }
            Err(UpstreamError::Call { server: self.name().to_string(), error })
        })
        .await
    }

    /// The server refused run `generation`'s credential, and only the user can fix it: until the
    /// credential changes, the upstream is failed like a server that could not start, so that
    /// `/health` says what to run and calls fail at once.
    async fn refused(&self, generation: u64, reason: &str) {
        let mut state = self.state.write().await;
        if !state.is_run(generation) {
            return;
        }
        std::mem::replace(&mut *state, State::Stopped).stop().await;
        self.refused_credential.store(true, Ordering::Relaxed);
        let reason: Arc<str> = reason.into();
        *state = State::Failed { reason: reason.clone(), retry_at: Instant::now() + backoff(1), failures: 1 };
        self.set_health("failed", Some(reason));
    }

    /// The connection of run `generation` closed: unless a newer run has replaced it already,
    /// forget it and start the server again in the background.
    async fn crashed(self: &Arc<Self>, generation: u64, error: &ServiceError) {
        {
            let mut state = self.state.write().await;
            if !state.is_run(generation) {
                return;
            }
            *state = State::Stopped;
        }
        tracing::warn!("{}: the connection to the server closed ({error}); restarting it", self.name());
        self.health.lock().expect("health lock").restarts += 1;
        self.set_health("restarting", Some(error.to_string().into()));
        let upstream = self.clone();
        tokio::spawn(async move {
            if let Err(error) = upstream.ready().await {
                tracing::warn!("{error}");
            }
        });
    }

    /// A read guard on the running, current upstream, with its peer, remote client and
    /// generation; (re)starts it first when needed.
    async fn ready(self: &Arc<Self>) -> Result<Ready<'_>, UpstreamError> {
        loop {
            {
                let state = self.state.read().await;
                match &*state {
                    State::Running(running) if running.current() => {
                        let link = Link { peer: running.service.peer().clone(), relay: running.relay.clone() };
                        let (remote, generation) = (running.remote.clone(), running.generation);
                        return Ok((state, link, remote, generation));
                    }
                    State::Failed { reason, retry_at, .. } if Instant::now() < *retry_at => {
                        return Err(UpstreamError::Start { server: self.name().to_string(), reason: reason.to_string() });
                    }
                    _ => {}
                }
            }
            // In a task of its own: a caller that stops waiting must not cancel a start halfway.
            let upstream = self.clone();
            tokio::spawn(async move { upstream.restart().await }).await.expect("the start task does not panic")?;
        }
    }

    /// Start the server unless it is running and current (or failed too recently).
    async fn restart(&self) -> Result<(), UpstreamError> {
        let mut state = self.state.write().await;
        let failures = match &*state {
            State::Running(running) if running.current() => return Ok(()),
            State::Failed { reason, retry_at, .. } if Instant::now() < *retry_at => {
                return Err(UpstreamError::Start { server: self.name().to_string(), reason: reason.to_string() });
            }
            State::Failed { failures, .. } => *failures,
            _ => 0,
        };
        // Calls in flight held the read lock, so none is cut off here.
        std::mem::replace(&mut *state, State::Stopped).stop().await;
        self.set_health("starting", None);
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        let reason = match tokio::time::timeout(self.timeout, self.launch(generation)).await {
            Ok(Ok(running)) => {
                *state = State::Running(Box::new(running));
                self.refused_credential.store(false, Ordering::Relaxed);
                self.set_health("running", None);
                if self.left_out.swap(false, Ordering::Relaxed) {
                    let handler = self.handler();
                    for event in [Event::ToolsChanged, Event::PromptsChanged, Event::ResourcesChanged] {
                        handler.send(event);
                    }
                }
                return Ok(());
            }
            Ok(Err(reason)) => reason,
            Err(_) => format!("it did not answer `initialize` within {} s (the gateway's --timeout)", self.timeout.as_secs()),
        };
        let failures = failures.saturating_add(1);
        let shared: Arc<str> = reason.as_str().into();
        *state = State::Failed { reason: shared.clone(), retry_at: Instant::now() + backoff(failures), failures };
        self.set_health("failed", Some(shared));
        Err(UpstreamError::Start { server: self.name().to_string(), reason })
    }

    fn handler(&self) -> Handler {
        Handler { server: self.name().to_string(), events: self.events.clone() }
    }

    /// Start the server as run `generation`.
    async fn launch(&self, generation: u64) -> Result<Running, String> {
        let handler = self.handler();
        let server = self.server();
        match &server.kind {
            Kind::Command { inherit_env, .. } => {
                let resolved = self.resolved(&server)?;
                let env = inject::secret_env(&self.engine, &server).await.map_err(|e| format!("{e:#}"))?;
                let Some((program, arguments)) = resolved.command.split_first().filter(|(program, _)| !program.is_empty()) else {
                    return Err("its `command` names no program once its settings are filled in; check `latchkey config ls`".into());
                };
                // Not the gateway's environment: a minimal one, then what the entry declares.
                let mut environment = super::environment::inherited(std::env::vars_os(), inherit_env);
                environment.extend(resolved.env.iter().map(|(name, value)| (name.into(), value.into())));
                let mut process = tokio::process::Command::new(super::environment::locate(program, &environment)?);
                process.args(arguments).env_clear().envs(environment);
                for (name, value) in &env {
                    process.env(name, value.expose_secret());
                }
                // Killed with the gateway, launcher and all, even when it exits with a call in
                // flight: closing stdin is not enough for a server that is busy.
                let (tree, stdout, stdin) = process_tree::spawn(process).map_err(|e| format!("cannot run `{program}`: {e}"))?;
                let (service, relay) = serve_relayed(handler, stdout, stdin).await?;
                Ok(Running { tree: Some(tree), service, relay: Some(relay), remote: None, stale: false, generation })
            }
            Kind::Remote { remote } => {
                let url = Url::parse(remote.url.as_str()).map_err(|e| format!("its URL `{}` is not valid: {e}", remote.url.as_str()))?;
                let headers = inject::remote_headers(&self.engine, &server, remote).await.map_err(|e| format!("{e:#}"))?;
                let credential = CatalogCredential::load(&self.engine, &server).await.map_err(|e| format!("{e:#}"))?;
                let client = Remote::new(&url, handler, ClientLifecycleMode::Initialize, Arc::new(credential))
                    .map_err(|e| format!("{e:#}"))?
                    .with_headers(headers);
                let service = client.open().await.map_err(|error| {
                    if error.downcast_ref::<RefusedSession>().is_some_and(|refused| refused.refusal == Refusal::Unauthorized) {
                        self.refused_credential.store(true, Ordering::Relaxed);
                    }
                    format!("{error:#}")
                })?;
                Ok(Running { tree: None, service, relay: None, remote: Some(Arc::new(client)), stale: false, generation })
            }
            Kind::Image { image, .. } => {
                let resolved = self.resolved(&server)?;
                let env = inject::secret_env(&self.engine, &server).await.map_err(|e| format!("{e:#}"))?;
                let (stdout, stdin) =
                    super::container::start(&server, image, &resolved, &env, self.engine.paths()).await.map_err(|e| format!("{e:#}"))?;
                let (service, relay) = serve_relayed(handler, stdout, stdin).await?;
                Ok(Running { tree: None, service, relay: Some(relay), remote: None, stale: false, generation })
            }
            Kind::Poci { .. } => Err(server.kind.refusal(self.name()).unwrap_or_default()),
        }
    }

    /// The entry's `env` and `command` with its settings (`latchkey config set`) filled in.
    fn resolved(&self, server: &Server) -> Result<Resolved, String> {
        let values = ValueFile::new(self.engine.paths()).read().map_err(|e| format!("{e:#}"))?;
        config::resolve(server, &values)
    }
}

/// A server's answer to a relayed request: its `result`, or its `error` as rmcp reads one.
fn outcome(answer: &Bytes) -> Result<Result<&RawValue, ErrorData>, ServiceError> {
    let envelope = Envelope::of(answer).ok_or(ServiceError::UnexpectedResponse)?;
    match (envelope.result, envelope.error) {
        (Some(result), None) => Ok(Ok(result)),
        (None, Some(error)) => serde_json::from_str(error.get()).map(Err).map_err(|_| ServiceError::UnexpectedResponse),
        _ => Err(ServiceError::UnexpectedResponse),
    }
}

/// Connect to a server on stdio through a relay, and initialize it.
async fn serve_relayed<R, W>(handler: Handler, stdout: R, stdin: W) -> Result<(RunningService<RoleClient, Handler>, Relay), String>
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
    W: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (relay, transport) = relay::attach(stdout, stdin);
    let service = handler.serve(transport).await.map_err(|e| format!("it did not initialize: {e}"))?;
    if let Some(info) = service.peer().peer_info() {
        relay.agreed(info.protocol_version.clone());
    }
    Ok((service, relay))
}
