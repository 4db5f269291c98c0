//! The MCP gateway: one MCP server to the user's AI client, an MCP client to each catalog server.
//!
//! - [`upstream`]: each catalog server as an upstream (local process, Docker [`container`], or
//!   remote Streamable HTTP), started on demand and restarted on crashes and credential changes;
//! - [`inject`]: the secrets and OAuth tokens each upstream receives;
//! - [`environment`]: the rest of a local process's environment, which is not the gateway's;
//! - [`refresh`]: the scheduler that refreshes tokens before they expire while the gateway runs;
//! - [`http`]: the Streamable HTTP front door (`/mcp`, `/health`) with its bearer token and
//!   Origin/Host checks; [`stdio`], the stdio front door, needs none of that;
//! - [`relayed`], [`relay`] and [`wire`]: the hot path, which takes a `tools/call` to a server on
//!   stdio and its answer through the gateway as bytes, rewriting only the tool's name and the
//!   request's id;
//! - [`sessions`]: its sessions, which end (`DELETE`, idle timeout) and are limited in number;
//! - [`sign_in`]: a server that needs its user to sign in, signed in from inside the AI client
//!   (URL-mode elicitation and a loopback page that starts the provider's authorization).
//!
//! Aggregation: tools and prompts are exposed as `<server><separator><name>` (default `__`), sorted
//! by that name, so the list is the same on every call; no server name contains the separator (the
//! catalog refuses `__`, [`Gateway::new`] any other), so the first separator in a name ends the
//! server's part. A server that cannot start until its user signs in is listed with one tool,
//! `<server><separator>sign_in` ([`sign_in`]). Resources are exposed as `latchkey://<server>/<the server's own URI>`
//! ([`RESOURCE_PREFIX`]), so two servers that list the same URI cannot shadow each other; a read
//! of a server's own URI (a resource link in a tool's result) goes to the one server that listed
//! it, and is refused when several did. With `--no-prefix` (one server) names and URIs are the
//! server's own. A server that fails to start is reported (log, `/health`) and
//! left out; the others keep working. A list waits at most [`LIST_WAIT`] for any one server (one
//! that is still starting, say): the list goes out without it, and it sends list-changed
//! notifications once it is up. Calls wait for the gateway's timeout (`--timeout`).

pub mod container;
pub mod docker_endpoint;
pub mod environment;
pub mod http;
pub mod inject;
pub mod memory;
pub mod process_tree;
pub mod refresh;
pub mod relay;
pub mod relayed;
pub mod sessions;
pub mod sign_in;
pub mod stdio;
pub mod upstream;
pub mod wire;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, GetPromptRequestParams, GetPromptResponse, Implementation,
    ListPromptsResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams, Prompt, ReadResourceRequestParams,
    ReadResourceResponse, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::transport::common::http_header::HEADER_SESSION_ID;
use rmcp::{ErrorData as McpError, Peer, RoleServer, ServerHandler};
use tokio::sync::mpsc;

use crate::catalog::{Catalog, Server};
use crate::oauth::engine::Engine;
use upstream::{Event, Upstream, UpstreamError};

/// The start of an exposed resource URI, followed by `<server>/` and the server's own URI.
pub const RESOURCE_PREFIX: &str = "latchkey://";

/// The key of the one client over stdio among [`Inner::clients`] (HTTP clients are keyed by
/// their session ID, a UUID).
const STDIO_CLIENT: &str = "stdio";

/// How many upstreams [`Gateway::start_all`] starts at once: a start holds a process's pipes, or a
/// remote server's HTTP client (TLS roots and all) while it connects, so ten thousand at once
/// would hold them all at once (a gateway of 10 000 remote servers peaked above 400 MB).
const STARTS_AT_ONCE: usize = 32;

/// How long a list waits for one server before it goes out without it.
pub const LIST_WAIT: Duration = Duration::from_secs(10);

/// How the gateway names what it aggregates.
#[derive(Clone, Debug)]
pub struct Naming {
    /// Put between the server name and the tool or prompt name; `None` exposes names unchanged
    /// (only sensible with a single server).
    pub separator: Option<String>,
}

impl Default for Naming {
    fn default() -> Naming {
        Naming { separator: Some("__".into()) }
    }
}

/// The catalog server a `--servers` entry names, and the account it is served for: `gmail` (the
/// entry's own `oauth.account`, if it names one), or `gmail@work` for one of the user's accounts.
fn select<'a>(catalog: &'a Catalog, selector: &str) -> anyhow::Result<(&'a Server, Option<String>)> {
    match selector.split_once('@') {
        Some((name, account)) => {
            crate::store::validate_account_name(account)?;
            Ok((catalog.server(name)?, Some(account.to_string())))
        }
        None => {
            let server = catalog.server(selector)?;
            Ok((server, server.account.clone()))
        }
    }
}

/// The gateway. Cheap to clone: every HTTP session gets a clone.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    upstreams: BTreeMap<String, Arc<Upstream>>,
    naming: Naming,
    engine: Arc<Engine>,
    /// Connected clients, for list-changed notifications, by HTTP session ID ([`STDIO_CLIENT`]
    /// over stdio). A session's entry goes when the session ends ([`Gateway::forget_client`]).
    clients: StdMutex<HashMap<String, Peer<RoleServer>>>,
    /// The servers that listed each (server's own) resource URI.
    resource_owners: StdMutex<HashMap<String, Vec<String>>>,
    sign_ins: sign_in::SignIns,
}

impl Gateway {
    /// A gateway for `servers` (catalog names; every catalog server when empty), giving each
    /// upstream `timeout` to start and to answer each request.
    pub fn new(engine: Arc<Engine>, servers: &[String], naming: Naming, timeout: Duration) -> anyhow::Result<Gateway> {
        let (events, receiver) = mpsc::unbounded_channel::<(String, Event)>();
        let mut upstreams = BTreeMap::new();
        let selected: Vec<(&Server, Option<String>)> = if servers.is_empty() {
            engine.catalog().servers().map(|server| (server, server.account.clone())).collect()
        } else {
            servers.iter().map(|selector| select(engine.catalog(), selector)).collect::<anyhow::Result<_>>()?
        };
        for (server, account) in &selected {
            let name = server.served_name(account.as_deref());
            if let Some(separator) = naming.separator.as_deref().filter(|separator| separator.is_empty() || name.contains(*separator)) {
                anyhow::bail!(
                    "server `{name}` contains the separator `{separator}`, so the names of its tools would be ambiguous; run the \
                     gateway with another --separator (one that no server name contains), or rename the server"
                );
            }
        }
        // One copy of each catalog entry, whatever the number of accounts it is served for.
        let mut entries: HashMap<&str, Arc<Server>> = HashMap::new();
        for (server, account) in selected {
            let name = server.served_name(account.as_deref());
            if upstreams.contains_key(&name) {
                anyhow::bail!("`{name}` is named twice in --servers; name each server (and account) once");
            }
            let entry = entries.entry(server.name.as_str()).or_insert_with(|| Arc::new(server.clone())).clone();
            upstreams.insert(name, Upstream::new(entry, account, engine.clone(), events.clone(), timeout));
        }
        let gateway = Gateway {
            inner: Arc::new(Inner {
                upstreams,
                naming,
                engine,
                clients: StdMutex::new(HashMap::new()),
                resource_owners: StdMutex::new(HashMap::new()),
                sign_ins: sign_in::SignIns::default(),
            }),
        };
        gateway.forward_events(receiver);
        Ok(gateway)
    }

    /// Each server served for an account other than the default, checked against the accounts
    /// signed in: a misspelt account would otherwise run a server with no credential.
    pub async fn check_accounts(&self) -> anyhow::Result<()> {
        if self.upstreams().all(|upstream| upstream.account().is_none()) {
            return Ok(());
        }
        let signed_in = self.inner.engine.accounts().await?;
        for upstream in self.upstreams() {
            let Some(account) = upstream.account() else { continue };
            let server = &upstream.entry().name;
            let known = signed_in.get(server);
            if !known.is_some_and(|known| known.contains(account)) {
                let listed = match known {
                    Some(known) => known.iter().map(String::as_str).collect::<Vec<_>>().join(", "),
                    None => "none yet".to_string(),
                };
                anyhow::bail!(
                    "server `{server}` has no account `{account}` (its accounts: {listed}); sign it in with `latchkey oauth \
                     authorize {server} --account {account}`, or name one of its accounts in --servers"
                );
            }
        }
        Ok(())
    }

    pub fn upstreams(&self) -> impl Iterator<Item = &Arc<Upstream>> {
        self.inner.upstreams.values()
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.inner.engine
    }

    /// Start every upstream in the background, [`STARTS_AT_ONCE`] at a time, calling `failed`
    /// for each one that does not start (as it happens); the gateway serves the rest.
    ///
    /// One task walks them all (a task per upstream, waiting its turn, cost ~1 KB each), and hands
    /// back what the starts freed (thousands of starts that failed leave ~15 MB in the heap).
    pub fn start_all(&self, failed: impl Fn(&str, &upstream::UpstreamError) + Clone + Send + 'static) {
        use futures::StreamExt;
        let upstreams: Vec<Arc<Upstream>> = self.inner.upstreams.values().cloned().collect();
        let freed = memory::Freed::watch();
        tokio::spawn(async move {
            futures::stream::iter(upstreams)
                .for_each_concurrent(STARTS_AT_ONCE, move |upstream| {
                    let failed = failed.clone();
                    async move {
                        if let Err(error) = upstream.start().await {
                            failed(upstream.name(), &error);
                        }
                    }
                })
                .await;
            freed.note();
        });
    }

    fn forward_events(&self, mut receiver: mpsc::UnboundedReceiver<(String, Event)>) {
        let inner = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            while let Some((server, event)) = receiver.recv().await {
                let Some(inner) = inner.upgrade() else { break };
                tracing::info!("{server}: {event:?}; telling connected clients");
                let clients: Vec<(String, Peer<RoleServer>)> =
                    inner.clients.lock().expect("clients lock").iter().map(|(key, peer)| (key.clone(), peer.clone())).collect();
                for (key, peer) in clients {
                    let sent = match event {
                        Event::ToolsChanged => peer.notify_tool_list_changed().await,
                        Event::PromptsChanged => peer.notify_prompt_list_changed().await,
                        Event::ResourcesChanged => peer.notify_resource_list_changed().await,
                    };
                    if sent.is_err() {
                        inner.clients.lock().expect("clients lock").remove(&key);
                    }
                }
            }
        });
    }

    /// A client's session ended: stop notifying it, and drop what its peer handle holds.
    pub fn forget_client(&self, session: &str) {
        self.inner.clients.lock().expect("clients lock").remove(session);
    }

    /// How many clients list-changed notifications go to.
    pub fn clients(&self) -> usize {
        self.inner.clients.lock().expect("clients lock").len()
    }

    fn exposed(&self, server: &str, name: &str) -> String {
        match &self.inner.naming.separator {
            Some(separator) => format!("{server}{separator}{name}"),
            None => name.to_string(),
        }
    }

    /// The upstream and the upstream's own name for an exposed name.
    fn route<'a>(&self, exposed: &'a str) -> Option<(&Arc<Upstream>, &'a str)> {
        match &self.inner.naming.separator {
            Some(separator) => {
                let (server, name) = exposed.split_once(separator.as_str())?;
                self.inner.upstreams.get(server).map(|upstream| (upstream, name))
            }
            None => self.inner.upstreams.values().next().map(|upstream| (upstream, exposed)),
        }
    }

    /// The URI a server's resource is listed under.
    fn exposed_uri(&self, server: &str, uri: &str) -> String {
        match &self.inner.naming.separator {
            Some(_) => format!("{RESOURCE_PREFIX}{server}/{uri}"),
            None => uri.to_string(),
        }
    }

    /// The upstream and the upstream's own URI for a URI a client reads.
    fn route_resource(&self, uri: &str) -> Result<(&Arc<Upstream>, String), McpError> {
        let unknown = || McpError::resource_not_found(format!("unknown resource `{uri}`; list them with resources/list"), None);
        if self.inner.naming.separator.is_none() {
            return self.inner.upstreams.values().next().map(|upstream| (upstream, uri.to_string())).ok_or_else(unknown);
        }
        if let Some((server, own)) = uri.strip_prefix(RESOURCE_PREFIX).and_then(|rest| rest.split_once('/')) {
            return self.inner.upstreams.get(server).map(|upstream| (upstream, own.to_string())).ok_or_else(unknown);
        }
        let owners = self.inner.resource_owners.lock().expect("owners lock").get(uri).cloned().unwrap_or_default();
        match owners.as_slice() {
            [server] => self.inner.upstreams.get(server).map(|upstream| (upstream, uri.to_string())).ok_or_else(unknown),
            [] => Err(unknown()),
            several => {
                let choices = several.iter().map(|server| format!("`{}`", self.exposed_uri(server, uri))).collect::<Vec<_>>();
                Err(McpError::invalid_params(
                    format!("resource `{uri}` is listed by several servers; read one of {}", choices.join(", ")),
                    None,
                ))
            }
        }
    }

    /// Ask every upstream concurrently, each for at most [`LIST_WAIT`]; failures and late
    /// answers are logged and left out. The answers by server, and the upstreams left out.
    async fn gather<T, F, Fut>(&self, ask: F) -> (Vec<(String, T)>, Vec<Arc<Upstream>>)
    where
        F: Fn(Arc<Upstream>) -> Fut,
        Fut: std::future::Future<Output = Result<T, upstream::UpstreamError>>,
    {
        let asks = self.inner.upstreams.iter().map(|(name, upstream)| {
            let answer = tokio::time::timeout(LIST_WAIT, ask(upstream.clone()));
            async move { (name, upstream, answer.await) }
        });
        let (mut answers, mut left_out) = (Vec::new(), Vec::new());
        for (name, upstream, answer) in futures::future::join_all(asks).await {
            let error = match answer {
                Ok(Ok(value)) => {
                    answers.push((name.clone(), value));
                    continue;
                }
                Ok(Err(error)) => error.to_string(),
                Err(_) => format!("server `{name}` did not answer within {} s; listing without it for now", LIST_WAIT.as_secs()),
            };
            tracing::warn!("{error}");
            upstream.mark_left_out();
            left_out.push(upstream.clone());
        }
        (answers, left_out)
    }

    /// [`Self::gather`] for tools or prompts: every server's items under their exposed names,
    /// sorted by them, and the upstreams left out.
    async fn gather_exposed<T, F, Fut>(&self, ask: F) -> (Vec<T>, Vec<Arc<Upstream>>)
    where
        T: Exposed,
        F: Fn(Arc<Upstream>) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<T>, upstream::UpstreamError>>,
    {
        let (answers, left_out) = self.gather(ask).await;
        let mut items: Vec<T> = answers
            .into_iter()
            .flat_map(|(server, items)| {
                items.into_iter().map(move |mut item| {
                    let exposed = self.exposed(&server, item.name());
                    item.rename(exposed);
                    item
                })
            })
            .collect();
        items.sort_by(|a, b| a.name().cmp(b.name()));
        (items, left_out)
    }
}

/// What the gateway lists under `<server><separator><name>`.
trait Exposed {
    fn name(&self) -> &str;
    fn rename(&mut self, exposed: String);
}

impl Exposed for Tool {
    fn name(&self) -> &str {
        &self.name
    }
    fn rename(&mut self, exposed: String) {
        self.name = exposed.into();
    }
}

impl Exposed for Prompt {
    fn name(&self) -> &str {
        &self.name
    }
    fn rename(&mut self, exposed: String) {
        self.name = exposed;
    }
}

/// The key a client is known by among [`Inner::clients`]: its HTTP session ID, or
/// [`STDIO_CLIENT`].
fn client_key(extensions: &rmcp::model::Extensions) -> String {
    let session = extensions.get::<::http::request::Parts>().and_then(|request| request.headers.get(HEADER_SESSION_ID));
    match session.and_then(|id| id.to_str().ok()) {
        Some(id) => id.to_string(),
        None => STDIO_CLIENT.to_string(),
    }
}

/// A call that did not reach its tool, as a tool error: clients show those to the user, where a
/// protocol error would hide the message.
fn tool_error(error: &UpstreamError) -> CallToolResponse {
    CallToolResponse::Complete(tool_error_result(error))
}

fn tool_error_result(error: &UpstreamError) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(error.to_string())])
}

fn unknown(kind: &str, name: &str) -> McpError {
    McpError::invalid_params(format!("unknown {kind} `{name}`; list them with {kind}s/list"), None)
}

impl ServerHandler for Gateway {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_prompts()
                .enable_prompts_list_changed()
                .enable_resources()
                .enable_resources_list_changed()
                .build(),
        )
        .with_server_info(Implementation::new("latchkey", env!("CARGO_PKG_VERSION")))
        .with_instructions(match &self.inner.naming.separator {
            Some(separator) => format!("latchkey gateway: tools and prompts are named <server>{separator}<name>."),
            None => "latchkey gateway: tools and prompts keep their server's names.".to_string(),
        })
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        let key = client_key(&context.extensions);
        let mut clients = self.inner.clients.lock().expect("clients lock");
        // A session that ended between this notification and now must not linger here: its
        // transport is closed already (this sweep is cheap: one flag per open session).
        clients.retain(|_, peer| !peer.is_transport_closed());
        if !context.peer.is_transport_closed() {
            clients.insert(key, context.peer);
        }
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let (mut tools, left_out) = self.gather_exposed(|upstream| async move { upstream.list_tools().await }).await;
        // A server that waits for its user to sign in stays visible, by the tool that signs it in.
        let mut waiting = Vec::new();
        for upstream in left_out {
            if self.sign_in_needed(&upstream).await.is_some() {
                waiting.push(self.sign_in_tool(&upstream));
            }
        }
        if !waiting.is_empty() {
            tools.extend(waiting);
            tools.sort_by(|a, b| a.name.cmp(&b.name));
        }
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        mut request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let (upstream, name) = self.route(&request.name).ok_or_else(|| unknown("tool", &request.name))?;
        request.name = name.to_owned().into();
        match until_cancelled(&context, upstream.call_tool(request)).await? {
            Ok(response) => Ok(response),
            Err(error @ (UpstreamError::Start { .. } | UpstreamError::Refused { .. })) => match self.sign_in_needed(upstream).await {
                Some(binding) => {
                    let client = (client_key(&context.extensions), context.peer.clone());
                    self.ask_to_sign_in(upstream, binding, &error, client).await
                }
                None => Ok(tool_error(&error)),
            },
            // The tool did not run: tell the user why (a protocol error would hide the message).
            Err(error) => Ok(tool_error(&error)),
        }
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let (prompts, _) = self.gather_exposed(|upstream| async move { upstream.list_prompts().await }).await;
        Ok(ListPromptsResult::with_all_items(prompts))
    }

    async fn get_prompt(
        &self,
        mut request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let (upstream, name) = self.route(&request.name).ok_or_else(|| unknown("prompt", &request.name))?;
        request.name = name.to_owned();
        until_cancelled(&context, upstream.get_prompt(request)).await?.map_err(|error| McpError::internal_error(error.to_string(), None))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let (gathered, _) = self.gather(|upstream| async move { upstream.list_resources().await }).await;
        let mut owners: HashMap<String, Vec<String>> = HashMap::new();
        let mut resources = Vec::new();
        for (server, listed) in gathered {
            for mut resource in listed {
                owners.entry(resource.uri.clone()).or_default().push(server.clone());
                resource.uri = self.exposed_uri(&server, &resource.uri);
                resources.push(resource);
            }
        }
        resources.sort_by(|a, b| a.uri.cmp(&b.uri));
        *self.inner.resource_owners.lock().expect("owners lock") = owners;
        Ok(ListResourcesResult::with_all_items(resources))
    }

    async fn read_resource(
        &self,
        mut request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let (upstream, own) = self.route_resource(&request.uri)?;
        request.uri = own;
        until_cancelled(&context, upstream.read_resource(request)).await?.map_err(|error| McpError::internal_error(error.to_string(), None))
    }
}

/// Run `forward` (a request on its way to an upstream) until the client cancels its request
/// (`notifications/cancelled`, or it went away). rmcp only signals a cancellation to the handler,
/// so the handler stops waiting itself; dropping `forward` then drops the upstream request, which
/// rmcp's client answers with `notifications/cancelled` to the upstream, so its work stops too.
async fn until_cancelled<T>(context: &RequestContext<RoleServer>, forward: impl std::future::Future<Output = T>) -> Result<T, McpError> {
    tokio::select! {
        result = forward => Ok(result),
        () = context.ct.cancelled() => {
            tracing::debug!("the client cancelled request {:?}; cancelling it upstream", context.id);
            // rmcp drops the answer to a cancelled request; this only ends the handler.
            Err(McpError::internal_error("cancelled by the client", None))
        }
    }
}
