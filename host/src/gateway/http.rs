//! The Streamable HTTP front door: `/mcp` for MCP clients, `/health` for people and monitors.
//!
//! It binds 127.0.0.1 unless told otherwise, and `/mcp` wants `Authorization: Bearer <token>` (a
//! token from `LATCHKEY_GATEWAY_TOKEN`, or one generated and printed at start) unless
//! `--allow-unauthenticated`. `Host` and `Origin` are checked against loopback names, which stops
//! DNS-rebinding pages from talking to the gateway through a browser. The client's token ends
//! here: upstreams only ever see their own credentials.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::Gateway;
use super::refresh::Credentials;
use super::upstream::Health;

/// The environment variable that sets the front door's bearer token.
pub const TOKEN_VAR: &str = "LATCHKEY_GATEWAY_TOKEN";

pub struct Options {
    pub host: IpAddr,
    pub port: u16,
    /// `None`: no authentication (`--allow-unauthenticated`).
    pub token: Option<SecretString>,
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

    let mut hosts = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    if !options.host.is_loopback() {
        hosts.push(options.host.to_string());
    }
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(hosts)
        .with_allowed_origins(["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"])
        .enforce_origin_validation();
    let mcp_gateway = gateway.clone();
    let service = StreamableHttpService::new(move || Ok(mcp_gateway.clone()), Arc::new(LocalSessionManager::default()), config);

    let mut mcp = axum::Router::new().nest_service("/mcp", service);
    if let Some(token) = options.token {
        mcp = mcp.layer(middleware::from_fn_with_state(Arc::new(token), require_bearer));
    }
    let app = axum::Router::new().route("/health", axum::routing::get(health)).with_state((gateway, credentials)).merge(mcp);

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

async fn health(State((gateway, credentials)): State<(Gateway, Credentials)>) -> impl IntoResponse {
    let upstreams: BTreeMap<&str, Health> = gateway.upstreams().map(|upstream| (upstream.name(), upstream.health())).collect();
    let credentials = credentials.snapshot();
    let degraded = upstreams.values().any(|health| health.state == "failed")
        || credentials.values().any(|credential| matches!(credential.state, "needs-reauthorization" | "not-authorized" | "error"));
    axum::Json(json!({
        "status": if degraded { "degraded" } else { "ok" },
        "upstreams": upstreams,
        "credentials": credentials,
    }))
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
}
