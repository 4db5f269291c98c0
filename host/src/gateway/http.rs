//! The Streamable HTTP front door: `/mcp` for MCP clients, `/health` for people and monitors.
//!
//! It binds 127.0.0.1 unless told otherwise, and `/mcp` wants `Authorization: Bearer <token>` (a
//! token from `LATCHKEY_GATEWAY_TOKEN`, or one generated and printed at start) unless
//! `--allow-unauthenticated`. On every route `Host` must be a loopback name (or the address given
//! to `--host`) and `Origin`, when sent, a loopback `http` origin: that stops DNS-rebinding pages
//! from reading or driving the gateway through a browser. rmcp checks that itself on `/mcp`
//! (configured here), so this module's check runs on the other routes only (`/health`): running
//! it on every MCP call as well cost about 7 % of the gateway's CPU per call. The client's token
//! ends here: upstreams only ever see their own credentials.
//!
//! `/mcp` sessions end and are limited ([`super::sessions`]); a new session beyond the limit gets
//! `503 Service Unavailable` with `Retry-After` and a JSON-RPC error saying what to do.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use rmcp::model::ProtocolVersion;
use rmcp::transport::common::http_header::HEADER_SESSION_ID;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::json;

use super::Gateway;
use super::refresh::Credentials;
use super::relayed::{Message, Relayed};
use super::sessions::{Limits, Sessions};
use super::upstream::{Health, Upstream};
use super::wire::Envelope;

/// The environment variable that sets the front door's bearer token.
pub const TOKEN_VAR: &str = "LATCHKEY_GATEWAY_TOKEN";

pub struct Options {
    pub host: IpAddr,
    pub port: u16,
    /// `None`: no authentication (`--allow-unauthenticated`).
    pub token: Option<SecretString>,
    pub sessions: Limits,
}

/// A random token for the front door: 32 bytes, hex.
pub fn generate_token() -> SecretString {
    let bytes: [u8; 32] = rand::random();
    SecretString::from(hex::encode(bytes))
}

/// Serve until `shutdown` completes.
pub async fn serve(
    gateway: Gateway,
    credentials: Credentials,
    options: Options,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let address = SocketAddr::new(options.host, options.port);
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {address}: {e}; choose another --port, or stop what uses it"))?;
    let bound = listener.local_addr()?;

    let mut hosts: Vec<String> = LOOPBACK_NAMES.iter().map(|name| name.to_string()).collect();
    if !options.host.is_loopback() {
        hosts.push(options.host.to_string());
    }
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts.clone())
        .with_allowed_origins(["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"])
        .enforce_origin_validation();
    let mcp_gateway = gateway.clone();
    let sessions = Sessions::new(gateway.clone(), options.sessions);
    let hot_path = Arc::new(HotPath {
        gateway: gateway.clone(),
        sessions: sessions.clone(),
        hosts: hosts.clone(),
        max_body: config.max_request_body_bytes,
    });
    let service = StreamableHttpService::new(move || Ok(mcp_gateway.clone()), sessions.clone(), config);
    let hosts = Arc::new(hosts);

    // Layers run outside in: the token first, then the session limit, then the hot path.
    let mut mcp = axum::Router::new()
        .nest_service("/mcp", service)
        .layer(middleware::from_fn_with_state(hot_path, relay_tool_calls))
        .layer(middleware::from_fn_with_state((sessions.clone(), hosts.clone()), refuse_sessions_beyond_the_limit));
    if let Some(token) = options.token {
        mcp = mcp.layer(middleware::from_fn_with_state(Arc::new(token), require_bearer));
    }
    let app = axum::Router::new()
        .route("/health", axum::routing::get(health))
        .with_state(HealthState { gateway, credentials, sessions })
        .layer(middleware::from_fn_with_state(hosts, require_local_host_and_origin))
        .merge(mcp);

    tracing::info!("gateway listening on http://{bound}/mcp");
    eprintln!("latchkey gateway: MCP at http://{bound}/mcp, health at http://{bound}/health");
    // An MCP response goes out in several small writes (headers, SSE events, the last chunk); with
    // Nagle's algorithm each waits for the client's delayed ACK, adding ~40 ms to every call.
    let listener = listener.tap_io(|connection| {
        if let Err(error) = connection.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY on a connection: {error}");
        }
    });
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await?;
    Ok(())
}

/// The host names a request's `Host` may carry, and the hosts of the `Origin`s allowed.
const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Refuse a request whose `Host` is not one of `hosts` (any port), or whose `Origin` is not a
/// loopback `http` origin: a page on another site that rebinds its name to 127.0.0.1 sends its own
/// name in both.
async fn require_local_host_and_origin(State(hosts): State<Arc<Vec<String>>>, request: Request, next: Next) -> Response {
    match foreign_host_or_origin(&hosts, &request) {
        Some(refusal) => refusal,
        None => next.run(request).await,
    }
}

/// The `403` for a request whose `Host` or `Origin` is not this machine's (see
/// [`require_local_host_and_origin`]), or `None`.
fn foreign_host_or_origin(hosts: &[String], request: &Request) -> Option<Response> {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<axum::http::uri::Authority>().ok())
        .or_else(|| request.uri().authority().cloned());
    let host_allowed = host.is_some_and(|host| hosts.iter().any(|allowed| allowed.eq_ignore_ascii_case(bare_host(host.host()))));
    if !host_allowed {
        let names = hosts.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", ");
        let message =
            format!("latchkey gateway: refused: the Host header must name this machine ({names}); connect through one of those names\n");
        return Some((StatusCode::FORBIDDEN, message).into_response());
    }
    if let Some(origin) = request.headers().get(header::ORIGIN) {
        let origin_allowed = origin.to_str().ok().and_then(|origin| url::Url::parse(origin).ok()).is_some_and(|origin| {
            origin.scheme() == "http" && origin.host_str().is_some_and(|host| LOOPBACK_NAMES.contains(&bare_host(host)))
        });
        if !origin_allowed {
            let message = "latchkey gateway: refused: a request from a web page is accepted only from a page on this machine \
                           (Origin http://localhost, http://127.0.0.1 or http://[::1])\n";
            return Some((StatusCode::FORBIDDEN, message).into_response());
        }
    }
    None
}

/// Answer a request for a new session (a `POST` without `Mcp-Session-Id`: `initialize`) with
/// `503`, `Retry-After` and a JSON-RPC error while every session is in use. A foreign page learns
/// nothing from it: that request gets rmcp's `403` otherwise, so it gets this module's here.
async fn refuse_sessions_beyond_the_limit(
    State((sessions, hosts)): State<(Arc<Sessions>, Arc<Vec<String>>)>,
    request: Request,
    next: Next,
) -> Response {
    let new_session = request.method() == axum::http::Method::POST && !request.headers().contains_key(HEADER_SESSION_ID);
    if !new_session || !sessions.is_full() {
        return next.run(request).await;
    }
    if let Some(refusal) = foreign_host_or_origin(&hosts, &request) {
        return refusal;
    }
    let limits = sessions.limits();
    let retry_after = limits.retry_after().as_secs();
    tracing::warn!("refused a new session: all {} are in use", limits.max_sessions);
    let message = format!(
        "latchkey gateway: all {} sessions are in use; try again in {retry_after} s. Sessions end when their client sends DELETE \
         /mcp with its Mcp-Session-Id, or after {} s idle; an operator can raise --max-sessions or lower --session-idle-timeout",
        limits.max_sessions,
        limits.idle_timeout.as_secs()
    );
    let body = json!({"jsonrpc": "2.0", "id": null, "error": {"code": SESSIONS_EXHAUSTED, "message": message}});
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    response
}

/// What the hot path needs: the gateway, the sessions, and the hosts rmcp allows.
struct HotPath {
    gateway: Gateway,
    sessions: Arc<Sessions>,
    hosts: Vec<String>,
    /// rmcp's limit on a request's body.
    max_body: usize,
}

/// The hot path of `/mcp` ([`super::relayed`]): a `POST` of a `tools/call` in an open session
/// that the hot path can take is answered here, in JSON; so is a `notifications/cancelled` for
/// one of them (`202`). Everything else goes on to rmcp, which makes every check of its own: a
/// request that would fail one of them (its `Accept`, `Content-Type`, `Host` or `Origin`, a
/// protocol version without the `initialize` handshake) is left to rmcp to refuse. Every request
/// of a session counts as activity ([`Sessions::active`]), as it begins and as it ends.
async fn relay_tool_calls(State(hot): State<Arc<HotPath>>, request: Request, next: Next) -> Response {
    let Some(session) = request.headers().get(HEADER_SESSION_ID).and_then(|id| id.to_str().ok()).map(str::to_owned) else {
        return next.run(request).await;
    };
    let Some(relayed) = hot.sessions.active(&session) else { return next.run(request).await };
    let response = match hot.version_for_hot_path(&request) {
        Some(version) => hot.answer(request, &version, &relayed, next).await,
        None => next.run(request).await,
    };
    hot.sessions.active(&session);
    response
}

impl HotPath {
    /// The client's protocol version, if the hot path may take this request: a `POST` that rmcp
    /// would accept, from a client of a version with the `initialize` handshake.
    fn version_for_hot_path(&self, request: &Request) -> Option<ProtocolVersion> {
        let headers = request.headers();
        let media_types = |name| {
            headers
                .get_all(name)
                .iter()
                .filter_map(|value| value.to_str().ok())
                .flat_map(|value| value.split(','))
                .map(|media| media.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        };
        let accepted: Vec<String> = media_types(header::ACCEPT).collect();
        let acceptable =
            accepted.iter().any(|media| media == "application/json") && accepted.iter().any(|media| media == "text/event-stream");
        let json = media_types(header::CONTENT_TYPE).eq(["application/json".to_string()]);
        if request.method() != axum::http::Method::POST || !acceptable || !json || foreign_host_or_origin(&self.hosts, request).is_some() {
            return None;
        }
        // Without the header, the protocol has the server assume 2025-03-26.
        let version = match headers.get("mcp-protocol-version") {
            Some(value) => serde_json::from_value::<ProtocolVersion>(value.to_str().ok()?.into()).ok()?,
            None => ProtocolVersion::V_2025_03_26,
        };
        (version.has_initialize() && ProtocolVersion::KNOWN_VERSIONS.contains(&version)).then_some(version)
    }

    async fn answer(&self, request: Request, version: &ProtocolVersion, relayed: &Arc<Relayed>, next: Next) -> Response {
        let (parts, body) = request.into_parts();
        let Ok(body) = axum::body::to_bytes(body, self.max_body).await else {
            let message = format!("Payload Too Large: request body exceeds {} bytes", self.max_body);
            return (StatusCode::PAYLOAD_TOO_LARGE, message).into_response();
        };
        let message = match Envelope::of(&body) {
            Some(envelope) => self.gateway.classify(&envelope, version, relayed),
            None => Message::Other,
        };
        match message {
            Message::Call(call) => {
                let (answered, answer) = tokio::sync::oneshot::channel();
                let task = relayed.spawn(call, move |answer| async move { drop(answered.send(answer)) }).await;
                // A client that goes away cancels its call, and the server's.
                let _cancel_when_dropped = AbortOnDrop(task);
                if let Ok(Some(answer)) = answer.await {
                    return ([(header::CONTENT_TYPE, "application/json")], answer).into_response();
                }
            }
            Message::Cancel(key) => {
                relayed.cancel(&key);
                return StatusCode::ACCEPTED.into_response();
            }
            Message::Other => {}
        }
        next.run(Request::from_parts(parts, axum::body::Body::from(body))).await
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The JSON-RPC error code of the `503` (implementation-defined server errors are -32000 to -32099).
const SESSIONS_EXHAUSTED: i32 = -32000;

/// `host` without the brackets of an IPv6 literal.
fn bare_host(host: &str) -> &str {
    host.strip_prefix('[').and_then(|host| host.strip_suffix(']')).unwrap_or(host)
}

async fn require_bearer(State(token): State<Arc<SecretString>>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")));
    if presented.is_some_and(|presented| constant_time_eq(presented.as_bytes(), token.expose_secret().as_bytes())) {
        return next.run(request).await;
    }
    let mut response =
        (StatusCode::UNAUTHORIZED, "latchkey gateway: send Authorization: Bearer <token> (printed at start, or LATCHKEY_GATEWAY_TOKEN)\n")
            .into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"latchkey\""));
    response
}

/// Compare without leaking, through timing, how much of the token matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(Clone)]
struct HealthState {
    gateway: Gateway,
    credentials: Credentials,
    sessions: Arc<Sessions>,
}

#[derive(Serialize)]
struct SessionsReport {
    open: usize,
    max: usize,
    idle_timeout_seconds: u64,
    notified_clients: usize,
}

async fn health(State(HealthState { gateway, credentials, sessions }): State<HealthState>) -> Response {
    // Read once, so that `status` and the upstreams' states agree (~40 bytes an upstream).
    let upstreams: Vec<(UpstreamName, Health)> =
        gateway.upstreams().map(|upstream| (UpstreamName(upstream.clone()), upstream.health())).collect();
    let degraded = upstreams.iter().any(|(_, health)| health.state == "failed") || credentials.any_unusable();
    let limits = sessions.limits();
    let body = HealthBody {
        status: if degraded { "degraded" } else { "ok" },
        upstreams: upstreams.into_iter(),
        credentials,
        sessions: SessionsReport {
            open: sessions.open(),
            max: limits.max_sessions,
            idle_timeout_seconds: limits.idle_timeout.as_secs(),
            notified_clients: gateway.clients(),
        },
        part: Part::Start,
    };
    ([(header::CONTENT_TYPE, "application/json")], Body::from_stream(futures::stream::iter(body))).into_response()
}

struct UpstreamName(Arc<Upstream>);

impl AsRef<str> for UpstreamName {
    fn as_ref(&self) -> &str {
        self.0.name()
    }
}

/// `/health`'s body, written a chunk at a time as the client reads it: with 10 000 credentials or
/// servers it is about 2 MB, which as one buffer was the largest allocation of a gateway's life
/// (and a monitor asks for it again and again). The credentials' lock is held for a chunk at a
/// time.
struct HealthBody<U> {
    status: &'static str,
    upstreams: U,
    credentials: Credentials,
    sessions: SessionsReport,
    part: Part,
}

/// Where [`HealthBody`] has got to.
enum Part {
    Start,
    Upstreams {
        first: bool,
    },
    /// `next`: the credential's slot to go on from.
    Credentials {
        next: usize,
        first: bool,
    },
    End,
}

/// A chunk of `/health` is sent once it holds this many bytes.
const HEALTH_CHUNK: usize = 32 * 1024;

impl<K: AsRef<str>, U: Iterator<Item = (K, Health)>> Iterator for HealthBody<U> {
    type Item = Result<Vec<u8>, Infallible>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut chunk = Vec::with_capacity(HEALTH_CHUNK + 1024);
        while chunk.len() < HEALTH_CHUNK {
            match &mut self.part {
                Part::Start => {
                    chunk.extend_from_slice(b"{\"status\":");
                    json(&mut chunk, self.status);
                    chunk.extend_from_slice(b",\"upstreams\":{");
                    self.part = Part::Upstreams { first: true };
                }
                Part::Upstreams { first } => match self.upstreams.next() {
                    Some((name, health)) => entry(&mut chunk, first, name.as_ref(), &health),
                    None => {
                        chunk.extend_from_slice(b"},\"credentials\":{");
                        self.part = Part::Credentials { next: 0, first: true };
                    }
                },
                Part::Credentials { next, first } => {
                    let written = self.credentials.each_from(*next, |name, state| {
                        entry(&mut chunk, first, name, state);
                        chunk.len() < HEALTH_CHUNK
                    });
                    match written {
                        Some(slot) => *next = slot,
                        None => {
                            chunk.extend_from_slice(b"},\"sessions\":");
                            json(&mut chunk, &self.sessions);
                            chunk.push(b'}');
                            self.part = Part::End;
                        }
                    }
                }
                Part::End => break,
            }
        }
        (!chunk.is_empty()).then_some(Ok(chunk))
    }
}

/// `"key":value` into `out`, after a comma unless it is its object's first entry.
fn entry(out: &mut Vec<u8>, first: &mut bool, key: &str, value: &impl Serialize) {
    if !std::mem::take(first) {
        out.push(b',');
    }
    json(out, key);
    out.push(b':');
    json(out, value);
}

/// `value` as JSON into `out`. Nothing in `/health` can fail to serialize (no map has keys that
/// are not strings), and a `Vec` takes every write.
fn json(out: &mut Vec<u8>, value: &(impl Serialize + ?Sized)) {
    serde_json::to_writer(out, value).expect("health values are JSON");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }

    /// The body of `/health` for `upstreams` and `credentials`, as its chunks.
    fn health_chunks(upstreams: Vec<(&'static str, Health)>, credentials: &Credentials) -> Vec<Vec<u8>> {
        let sessions = SessionsReport { open: 2, max: 100, idle_timeout_seconds: 600, notified_clients: 1 };
        let body =
            HealthBody { status: "ok", upstreams: upstreams.into_iter(), credentials: credentials.clone(), sessions, part: Part::Start };
        body.map(|chunk| chunk.unwrap()).collect()
    }

    #[test]
    fn health_is_written_a_chunk_at_a_time_and_reads_as_one_document() {
        let running = Health { state: "running", error: None, restarts: 0 };
        let failed = Health { state: "failed", error: Some("it \"exited\"".into()), restarts: 3 };
        let names: Vec<Box<str>> = (0..5000).map(|n| format!("server-{n:04}.account").into()).collect();
        let credentials = Credentials::new(names);
        // Every other credential checked: the others are left out, as not checked yet.
        for slot in (0..5000).step_by(2) {
            credentials.set(slot, "not-authorized", Some(format!("run `latchkey oauth authorize server-{slot:04}`")), None);
        }
        let chunks = health_chunks(vec![("a", running), ("b\"c", failed)], &credentials);
        assert!(chunks.len() > 3, "{} chunks", chunks.len());
        assert!(chunks.iter().all(|chunk| chunk.len() < HEALTH_CHUNK + 1024), "a chunk outgrew its size");
        let text = String::from_utf8(chunks.concat()).unwrap();
        // Each once, where a chunk ends as anywhere else (a JSON map would hide a repeated key).
        assert_eq!(text.matches("\"server-").count(), 2500);
        let health: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(health["status"], "ok");
        assert_eq!(health["upstreams"]["a"], json!({"state": "running", "restarts": 0}));
        assert_eq!(health["upstreams"]["b\"c"], json!({"state": "failed", "error": "it \"exited\"", "restarts": 3}));
        let shown = health["credentials"].as_object().unwrap();
        assert_eq!(shown.len(), 2500);
        for slot in (0..5000).step_by(2) {
            let name = format!("server-{slot:04}.account");
            assert_eq!(shown[&name]["detail"], format!("run `latchkey oauth authorize server-{slot:04}`"), "{name}");
        }
        assert_eq!(health["sessions"], json!({"open": 2, "max": 100, "idle_timeout_seconds": 600, "notified_clients": 1}));
        // With nothing to show, still a whole document.
        let empty: serde_json::Value = serde_json::from_slice(&health_chunks(vec![], &Credentials::new(vec![])).concat()).unwrap();
        assert_eq!(empty["upstreams"], json!({}));
        assert_eq!(empty["credentials"], json!({}));
    }
}
