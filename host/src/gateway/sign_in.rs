//! Signing in from inside the AI client, with MCP's URL-mode elicitation (2025-11-25).
//!
//! A server whose OAuth credential is missing, or needs a new sign-in, cannot start, so it has no
//! tools to list. Rather than vanish from the client, it is listed with one tool,
//! `<server>__sign_in`. A call that reaches such a server (that tool, or any of the server's) is
//! answered with a link to a page the gateway serves on 127.0.0.1:
//! - to a client that declared URL elicitation, as the URL-elicitation-required error (`-32042`),
//!   which the client shows to its user and retries after;
//! - to any other client, as a tool error whose text carries the same link and the `latchkey
//!   oauth authorize` command.
//!
//! Following the link starts the provider's authorization there and then: the engine's target,
//! PKCE and `state`, the provider's hooks and its redirect rule, exactly as `oauth authorize`
//! starts it. The page redirects the browser to the provider, which redirects back to the usual
//! loopback listener; the gateway exchanges the code and stores the tokens. They go from the
//! provider to latchkey's store and never through the client. Then the gateway starts the
//! server with its new credential, sends `notifications/elicitation/complete` to each client that
//! was given the link, and tells every client that the tool list changed; the client's retry
//! reaches the server.
//!
//! Each server has at most one sign-in under way, and each its own link (a random id), so several
//! servers waiting for a sign-in get one elicitation each. A link nobody followed, or a sign-in
//! nobody finished, ends after [`SIGN_IN_TIMEOUT`], and the next call offers a new one. The page
//! answers only requests addressed to its own loopback address (a DNS-rebinding page cannot
//! reach it under another name) and only the ids it handed out.
//!
//! A server whose authorization server is discovered from the server itself (a remote entry
//! without `oauth.providers`) may want no OAuth at all: it is offered a sign-in once it refused
//! the gateway (401) and a refresh did not help ([`Upstream::refused_credential`]).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex as StdMutex, Weak};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rmcp::model::{CallToolResult, ContentBlock, CustomNotification, ErrorCode, ServerNotification, Tool};
use rmcp::{ErrorData as McpError, Peer, RoleServer};
use serde_json::json;

use super::upstream::{Upstream, UpstreamError};
use super::{Gateway, Inner};
use crate::catalog::{Binding, BindingEntry};
use crate::oauth::authorize::{Mode, Pending};
use crate::oauth::callback::page;
use crate::oauth::engine::{Overrides, Target};
use crate::store::Status;

/// The tool a server that needs a sign-in is listed with (under `<server><separator>`).
pub const SIGN_IN_TOOL: &str = "sign_in";

/// How long a link stays good, and how long a sign-in may take once the link was followed.
pub const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(600);

/// MCP's URL-elicitation-required error (2025-11-25, "URL mode elicitation").
const URL_ELICITATION_REQUIRED: ErrorCode = ErrorCode(-32042);

/// The sign-ins offered, and the loopback page that starts them.
#[derive(Default)]
pub(super) struct SignIns {
    /// By link id.
    offered: StdMutex<HashMap<String, Offered>>,
    /// Where the page listens, once a first link was handed out.
    page: tokio::sync::OnceCell<SocketAddr>,
}

struct Offered {
    server: String,
    binding: Binding,
    offered_at: Instant,
    progress: Progress,
    /// The clients that were given this link, by the key they are notified under: each gets
    /// `notifications/elicitation/complete`.
    clients: HashMap<String, Peer<RoleServer>>,
}

enum Progress {
    /// Nobody followed the link yet.
    Offered,
    /// The page is starting the authorization (a second visit meanwhile is asked to reload).
    Starting,
    /// The provider's authorization URL, where a reload of the page goes again.
    Started(String),
}

impl Offered {
    /// A link that nobody followed in time. One that was followed ends with its flow's timeout.
    fn expired(&self) -> bool {
        matches!(self.progress, Progress::Offered) && self.offered_at.elapsed() > SIGN_IN_TIMEOUT
    }
}

/// Why the page cannot start a sign-in.
enum PageError {
    Unknown,
    Starting,
    Failed(String),
}

impl Gateway {
    /// The binding of `upstream`'s that needs the user to sign in: one whose credential is
    /// missing or was refused for good. `None` for a server that failed for another reason, a
    /// missing client secret among them (no sign-in helps with that; its error names the fix).
    ///
    /// A remote server without `oauth.providers` may want no OAuth at all: its discovered
    /// binding needs a sign-in only once the server refused the gateway's credential (or its
    /// lack of one) and a refresh did not help.
    pub(super) async fn sign_in_needed(&self, upstream: &Upstream) -> Option<Binding> {
        let tokens = self.inner.engine.tokens();
        for binding in upstream.bindings() {
            if binding.entry == BindingEntry::Discovery {
                if upstream.refused_credential() {
                    return Some(binding);
                }
                continue;
            }
            match tokens.stored(&binding).await {
                Ok(None) => return Some(binding),
                Ok(Some(credential)) if matches!(credential.status, Status::NeedsReauthorization { .. }) => return Some(binding),
                Ok(Some(_)) => {}
                Err(error) => tracing::debug!("{binding}: not offering a sign-in: {error:#}"),
            }
        }
        None
    }

    /// The tool that stands for `upstream` while it needs a sign-in.
    pub(super) fn sign_in_tool(&self, upstream: &Upstream) -> Tool {
        let server = upstream.name();
        let description = format!(
            "Sign in to {server}: its tools appear once you are signed in. Calling this tool gives you a link to open in your \
             browser; latchkey receives the tokens, and this client never sees them."
        );
        // No arguments; some clients want `properties` even when there are none.
        let schema = json!({"type": "object", "properties": {}});
        Tool::new(self.exposed(server, SIGN_IN_TOOL), description, Arc::new(schema.as_object().cloned().unwrap_or_default()))
    }

    /// Answer a call that reached `upstream`, which needs `binding` signed in (`failure` says
    /// how the call failed): a URL elicitation for a client that takes one, a tool error with the
    /// same link otherwise.
    pub(super) async fn ask_to_sign_in(
        &self,
        upstream: &Upstream,
        binding: Binding,
        failure: &UpstreamError,
        client: (String, Peer<RoleServer>),
    ) -> Result<rmcp::model::CallToolResponse, McpError> {
        let server = upstream.name().to_string();
        let command = binding.authorize_command();
        let info = client.1.peer_info();
        let takes_url = info.as_ref().and_then(|info| info.capabilities.elicitation.as_ref()).is_some_and(|modes| modes.url.is_some());
        let (id, url) = match self.offer_sign_in(&server, binding, client).await {
            Ok(offer) => offer,
            Err(error) => {
                tracing::warn!("the sign-in page could not start: {error:#}");
                let message = format!("{failure}\n\nTo sign in, run `{command}` (the sign-in page could not start: {error:#}).");
                return Ok(rmcp::model::CallToolResponse::Complete(CallToolResult::error(vec![ContentBlock::text(message)])));
            }
        };
        if takes_url {
            let message = format!("Sign in to {server} in your browser; latchkey keeps the tokens, and this client never sees them.");
            let elicitation = json!({"mode": "url", "elicitationId": id, "url": url, "message": message});
            return Err(McpError::new(
                URL_ELICITATION_REQUIRED,
                format!("server `{server}` needs you to sign in"),
                Some(json!({"elicitations": [elicitation]})),
            ));
        }
        let message = format!("{failure}\n\nTo sign in, open {url} in a browser (or run `{command}`), then call the tool again.");
        Ok(rmcp::model::CallToolResponse::Complete(CallToolResult::error(vec![ContentBlock::text(message)])))
    }

    /// The link id and URL of `server`'s sign-in, offered now unless one is under way; `client`
    /// is told when it completes.
    async fn offer_sign_in(&self, server: &str, binding: Binding, client: (String, Peer<RoleServer>)) -> anyhow::Result<(String, String)> {
        let address = *self.inner.sign_ins.page.get_or_try_init(|| serve_page(Arc::downgrade(&self.inner))).await?;
        let mut offered = self.inner.sign_ins.offered.lock().expect("sign-ins lock");
        offered.retain(|_, sign_in| !sign_in.expired());
        let id = match offered.iter_mut().find(|(_, sign_in)| sign_in.server == server) {
            Some((id, sign_in)) => {
                sign_in.clients.insert(client.0, client.1);
                id.clone()
            }
            None => {
                let id = hex::encode(rand::random::<[u8; 16]>());
                let clients = HashMap::from([client]);
                let sign_in =
                    Offered { server: server.to_string(), binding, offered_at: Instant::now(), progress: Progress::Offered, clients };
                offered.insert(id.clone(), sign_in);
                id
            }
        };
        Ok((id.clone(), format!("http://{address}/sign-in/{id}")))
    }

    /// The page was followed: start the authorization (once) and give the provider's URL.
    async fn follow(&self, id: &str) -> Result<String, PageError> {
        let binding = {
            let mut offered = self.inner.sign_ins.offered.lock().expect("sign-ins lock");
            let sign_in = offered.get_mut(id).filter(|sign_in| !sign_in.expired()).ok_or(PageError::Unknown)?;
            match &sign_in.progress {
                Progress::Started(url) => return Ok(url.clone()),
                Progress::Starting => return Err(PageError::Starting),
                Progress::Offered => sign_in.progress = Progress::Starting,
            }
            sign_in.binding.clone()
        };
        let engine = &self.inner.engine;
        let started = async {
            let target = engine.target(&binding, &Overrides::default()).await?;
            let pending = engine.start(&target, Mode::Listen).await?;
            anyhow::Ok((target, pending))
        };
        match started.await {
            Ok((target, pending)) => {
                let url = pending.url().to_string();
                if let Some(sign_in) = self.inner.sign_ins.offered.lock().expect("sign-ins lock").get_mut(id) {
                    sign_in.progress = Progress::Started(url.clone());
                }
                tokio::spawn(finish(Arc::downgrade(&self.inner), id.to_string(), target, pending));
                Ok(url)
            }
            Err(error) => {
                // The next call offers a new link.
                self.inner.sign_ins.offered.lock().expect("sign-ins lock").remove(id);
                tracing::warn!("{binding}: the sign-in could not start: {error:#}");
                Err(PageError::Failed(format!("{error:#}")))
            }
        }
    }

    /// `server` is signed in: start it with its new credential, then tell the clients that were
    /// given link `id` that it completed, and every client that the tools changed.
    async fn signed_in(&self, server: &str, id: &str, clients: HashMap<String, Peer<RoleServer>>) {
        if let Some(upstream) = self.inner.upstreams.get(server) {
            upstream.credentials_changed().await;
            // Its list-changed notifications go out once it runs (see `Upstream::restart`).
            upstream.mark_left_out();
            if let Err(error) = upstream.start().await {
                tracing::warn!("{error}");
            }
        }
        for (_, peer) in clients {
            let complete = CustomNotification::new("notifications/elicitation/complete", Some(json!({"elicitationId": id})));
            if let Err(error) = peer.send_notification(ServerNotification::CustomNotification(complete)).await {
                tracing::debug!("{server}: a client that was given the sign-in link is gone: {error}");
            }
        }
    }
}

/// Wait for the provider's redirect, store the tokens, and announce the server.
async fn finish(inner: Weak<Inner>, id: String, mut target: Target, pending: Pending) {
    let outcome = pending.wait(SIGN_IN_TIMEOUT).await;
    let Some(inner) = inner.upgrade() else { return };
    let gateway = Gateway { inner };
    let Some(sign_in) = gateway.inner.sign_ins.offered.lock().expect("sign-ins lock").remove(&id) else { return };
    let exchanged = match outcome {
        Ok(exchanged) => exchanged,
        Err(error) => {
            tracing::warn!("{}: the sign-in did not complete ({error}); the next call offers a new link", sign_in.binding);
            return;
        }
    };
    match gateway.inner.engine.save(&mut target, &exchanged).await {
        Ok(_) => {
            exchanged.confirm("latchkey stored the tokens. You can close this tab and go back to your AI client.").await;
            tracing::info!("{}: signed in from the AI client", sign_in.binding);
            gateway.signed_in(&sign_in.server, &id, sign_in.clients).await;
        }
        Err(error) => {
            exchanged.fail("latchkey could not finish the sign-in; the gateway's log says why.").await;
            tracing::error!("{}: the tokens could not be stored: {error:#}", sign_in.binding);
        }
    }
}

/// Listen on an ephemeral 127.0.0.1 port for the sign-in links, for the gateway's lifetime.
async fn serve_page(inner: Weak<Inner>) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let address = listener.local_addr()?;
    let app = axum::Router::new().route("/sign-in/{id}", axum::routing::get(follow_link)).with_state((inner, address));
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!("the sign-in page stopped: {error}");
        }
    });
    Ok(address)
}

async fn follow_link(State((inner, address)): State<(Weak<Inner>, SocketAddr)>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    // A page served under another name (DNS rebinding) must not start anything.
    if headers.get(header::HOST).and_then(|host| host.to_str().ok()) != Some(address.to_string().as_str()) {
        return (StatusCode::MISDIRECTED_REQUEST, page("Not here", "This page answers only at its own loopback address.", false))
            .into_response();
    }
    let Some(inner) = inner.upgrade() else {
        return (StatusCode::GONE, page("The gateway is stopping", "Start your AI client's servers again to sign in.", false))
            .into_response();
    };
    match (Gateway { inner }).follow(&id).await {
        Ok(url) => (StatusCode::SEE_OTHER, [(header::LOCATION, url)]).into_response(),
        Err(PageError::Unknown) => {
            let message = "This sign-in link is not known, or it expired. Call the tool again in your AI client for a new one.";
            (StatusCode::NOT_FOUND, page("Link expired", message, false)).into_response()
        }
        Err(PageError::Starting) => {
            (StatusCode::CONFLICT, page("Starting", "The sign-in is starting in another tab; reload this page in a moment.", false))
                .into_response()
        }
        Err(PageError::Failed(reason)) => {
            (StatusCode::INTERNAL_SERVER_ERROR, page("The sign-in could not start", &reason, false)).into_response()
        }
    }
}
