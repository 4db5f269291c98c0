//! One upstream MCP server, as the gateway's MCP client: started on first use, restarted when it
//! crashes or when its credentials change, and reconnected transparently.
//!
//! How each kind gets fresh tokens while the gateway runs:
//! - a **local process** or **container** reads its token from its environment once, at start; after
//!   a refresh the upstream is marked stale and restarted *between* calls (a restart waits for
//!   calls in flight, and new calls wait for the restart), then initialized again, so the client's
//!   session with the gateway never notices;
//! - a **remote** server gets the token as `Authorization: Bearer` on every request; after a refresh
//!   the next connection uses the new token, and a 401 from the server triggers one refresh and one
//!   retry.

use std::process::Stdio;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ClientConfig, GetPromptRequestParams, GetPromptResponse, Implementation, Prompt,
    ReadResourceRequestParams, ReadResourceResponse, Resource, Tool,
};
use rmcp::service::{NotificationContext, RunningService, ServiceError};
use rmcp::{ClientHandler, Peer, RoleClient, ServiceExt};
use secrecy::ExposeSecret;
use serde::Serialize;
use tokio::sync::{RwLock, mpsc};

use super::inject;
use crate::catalog::{Kind, Server};
use crate::oauth::engine::Engine;

/// How long an upstream may take to start and answer `initialize`.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Something an upstream told the gateway.
#[derive(Clone, Debug)]
pub enum Event {
    ToolsChanged,
    PromptsChanged,
    ResourcesChanged,
}

/// Receives the upstream's notifications and passes list changes on to the gateway.
#[derive(Clone)]
pub struct Handler {
    events: mpsc::UnboundedSender<Event>,
}

impl ClientHandler for Handler {
    fn get_info(&self) -> ClientConfig {
        let mut config = ClientConfig::default();
        config.client_info = Implementation::new("latchkey-gateway", env!("CARGO_PKG_VERSION"));
        config
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        let _ = self.events.send(Event::ToolsChanged);
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        let _ = self.events.send(Event::PromptsChanged);
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        let _ = self.events.send(Event::ResourcesChanged);
    }
}

enum State {
    Stopped,
    Running { service: RunningService<RoleClient, Handler>, stale: bool },
}

/// What `/health` shows about an upstream.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Health {
    /// `not started`, `running`, `restarting`, `failed`.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub restarts: u32,
}

pub struct Upstream {
    pub server: Server,
    engine: Arc<Engine>,
    events: mpsc::UnboundedSender<Event>,
    state: RwLock<State>,
    health: StdMutex<Health>,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("server `{server}` could not start: {reason}")]
    Start { server: String, reason: String },
    #[error("server `{server}` failed: {error}")]
    Call { server: String, error: ServiceError },
}

impl Upstream {
    pub fn new(server: Server, engine: Arc<Engine>, events: mpsc::UnboundedSender<Event>) -> Arc<Upstream> {
        Arc::new(Upstream {
            server,
            engine,
            events,
            state: RwLock::new(State::Stopped),
            health: StdMutex::new(Health { state: "not started".into(), ..Health::default() }),
        })
    }

    pub fn name(&self) -> &str {
        &self.server.name
    }

    pub fn health(&self) -> Health {
        self.health.lock().expect("health lock").clone()
    }

    fn set_health(&self, state: &str, error: Option<String>) {
        let mut health = self.health.lock().expect("health lock");
        health.state = state.to_string();
        health.error = error;
    }

    /// New credentials: restart before the next call (local) or reconnect (remote).
    pub async fn credentials_changed(&self) {
        if let State::Running { stale, .. } = &mut *self.state.write().await {
            *stale = true;
        }
    }

    /// Start the upstream now (the gateway does this at start so failures show early).
    pub async fn start(self: &Arc<Self>) -> Result<(), UpstreamError> {
        self.with_peer(|_| async { Ok(()) }).await
    }

    pub async fn list_tools(self: &Arc<Self>) -> Result<Vec<Tool>, UpstreamError> {
        self.with_peer(|peer| async move { peer.list_all_tools().await }).await
    }

    pub async fn list_prompts(self: &Arc<Self>) -> Result<Vec<Prompt>, UpstreamError> {
        self.with_peer(|peer| async move { peer.list_all_prompts().await }).await
    }

    pub async fn list_resources(self: &Arc<Self>) -> Result<Vec<Resource>, UpstreamError> {
        self.with_peer(|peer| async move { peer.list_all_resources().await }).await
    }

    pub async fn call_tool(self: &Arc<Self>, params: CallToolRequestParams) -> Result<CallToolResponse, UpstreamError> {
        self.with_peer(move |peer| {
            let params = params.clone();
            async move { peer.call_tool_once(params).await }
        })
        .await
    }

    pub async fn get_prompt(self: &Arc<Self>, params: GetPromptRequestParams) -> Result<GetPromptResponse, UpstreamError> {
        self.with_peer(move |peer| {
            let params = params.clone();
            async move { peer.get_prompt_once(params).await }
        })
        .await
    }

    pub async fn read_resource(self: &Arc<Self>, params: ReadResourceRequestParams) -> Result<ReadResourceResponse, UpstreamError> {
        self.with_peer(move |peer| {
            let params = params.clone();
            async move { peer.read_resource_once(params).await }
        })
        .await
    }

    /// Run `request` against a running, current upstream. A remote 401 refreshes the token and
    /// retries once; a closed transport (the server crashed) fails this request and restarts the
    /// server in the background.
    async fn with_peer<F, Fut, R>(self: &Arc<Self>, request: F) -> Result<R, UpstreamError>
    where
        F: Fn(Peer<RoleClient>) -> Fut,
        Fut: std::future::Future<Output = Result<R, ServiceError>>,
    {
        let mut refreshed = false;
        loop {
            let peer = self.current_peer().await?;
            let guard = self.state.read().await;
            let result = request(peer).await;
            drop(guard);
            match result {
                Ok(value) => return Ok(value),
                Err(error) if error.auth_challenge().is_some() && !refreshed && matches!(self.server.kind, Kind::Remote { .. }) => {
                    refreshed = true;
                    tracing::info!("{}: the server answered 401; refreshing the token and retrying once", self.name());
                    self.refresh_credentials().await;
                    self.credentials_changed().await;
                }
                Err(error) => {
                    if matches!(error, ServiceError::TransportClosed | ServiceError::TransportSend(_)) {
                        self.crashed(&error).await;
                    }
                    return Err(UpstreamError::Call { server: self.name().to_string(), error });
                }
            }
        }
    }

    async fn refresh_credentials(&self) {
        let target = self.engine.target(self.name(), None, &crate::oauth::engine::Overrides::default()).await;
        match target {
            Ok(target) => {
                if let Err(error) = self.engine.refresh_target(&target, None).await {
                    tracing::warn!("{}: {error}", self.name());
                }
            }
            Err(error) => tracing::warn!("{}: {error:#}", self.name()),
        }
    }

    async fn crashed(self: &Arc<Self>, error: &ServiceError) {
        tracing::warn!("{}: the connection to the server closed ({error}); restarting it", self.name());
        {
            let mut state = self.state.write().await;
            *state = State::Stopped;
        }
        self.health.lock().expect("health lock").restarts += 1;
        self.set_health("restarting", Some(error.to_string()));
        let upstream = self.clone();
        tokio::spawn(async move {
            if let Err(error) = upstream.current_peer().await {
                tracing::warn!("{error}");
            }
        });
    }

    /// The peer of the running upstream, (re)starting it first when needed.
    async fn current_peer(&self) -> Result<Peer<RoleClient>, UpstreamError> {
        {
            let state = self.state.read().await;
            if let State::Running { service, stale: false } = &*state {
                if !service.is_closed() {
                    return Ok(service.peer().clone());
                }
            }
        }
        let mut state = self.state.write().await;
        if let State::Running { service, stale } = &*state {
            if !*stale && !service.is_closed() {
                return Ok(service.peer().clone());
            }
        }
        if let State::Running { service, .. } = std::mem::replace(&mut *state, State::Stopped) {
            // Calls in flight held the read lock, so none is cut off here.
            let _ = service.cancel().await;
        }
        match tokio::time::timeout(START_TIMEOUT, self.launch()).await {
            Ok(Ok(service)) => {
                let peer = service.peer().clone();
                *state = State::Running { service, stale: false };
                self.set_health("running", None);
                Ok(peer)
            }
            Ok(Err(reason)) => {
                self.set_health("failed", Some(reason.clone()));
                Err(UpstreamError::Start { server: self.name().to_string(), reason })
            }
            Err(_) => {
                let reason = format!("it did not answer `initialize` within {} s", START_TIMEOUT.as_secs());
                self.set_health("failed", Some(reason.clone()));
                Err(UpstreamError::Start { server: self.name().to_string(), reason })
            }
        }
    }

    async fn launch(&self) -> Result<RunningService<RoleClient, Handler>, String> {
        let handler = Handler { events: self.events.clone() };
        match &self.server.kind {
            Kind::Command { command } => {
                let env = inject::secret_env(&self.engine, &self.server).await.map_err(|e| format!("{e:#}"))?;
                let mut process = tokio::process::Command::new(&command[0]);
                process.args(&command[1..]);
                for variable in &self.server.env {
                    process.env(variable.name.as_str(), &variable.value);
                }
                for (name, value) in &env {
                    process.env(name, value.expose_secret());
                }
                let (transport, _) = rmcp::transport::TokioChildProcess::builder(process)
                    .stderr(Stdio::inherit())
                    .spawn()
                    .map_err(|e| format!("cannot run `{}`: {e}", command[0]))?;
                handler.serve(transport).await.map_err(|e| format!("it did not initialize: {e}"))
            }
            Kind::Remote { remote } => {
                let mut config = rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(remote.url.as_str());
                if let Some(token) = inject::bearer(&self.engine, &self.server).await.map_err(|e| format!("{e:#}"))? {
                    config = config.auth_header(token.expose_secret());
                }
                let transport = rmcp::transport::StreamableHttpClientTransport::from_config(config);
                handler.serve(transport).await.map_err(|e| format!("it did not initialize: {e}"))
            }
            Kind::Image { image, .. } => {
                let env = inject::secret_env(&self.engine, &self.server).await.map_err(|e| format!("{e:#}"))?;
                let transport = super::container::start(&self.server, image, &env).await.map_err(|e| format!("{e:#}"))?;
                handler.serve(transport).await.map_err(|e| format!("it did not initialize: {e}"))
            }
        }
    }
}
