//! A connection to one remote MCP server over Streamable HTTP: the gateway's remote upstream, and
//! what `latchkey tools` uses.
//!
//! Authorization is reactive, as the MCP specification describes it: requests go out with
//! whatever token the [`Authorizer`] has (none at first), and the server's refusals drive the rest:
//! - 401: the bearer client has already tried one refresh ([`super::bearer`]); the authorizer
//!   gets the challenge and obtains a new grant (the CLI opens the browser, the gateway reports
//!   that the server needs `latchkey oauth authorize`), then the request is sent again;
//! - 403 `insufficient_scope`: the authorizer re-authorizes for the union of the scopes it asked
//!   for before and the challenged ones (MCP 2026-07-28, SEP-2350), then the request is retried.
//!
//! Each operation authorizes at most once for a 401 and [`MAX_STEP_UPS`] times for a 403, so a
//! server that never accepts does not loop the user through the browser.
//!
//! The protocol era is found by rmcp: `server/discover` first (2026-07-28, stateless), falling back
//! to the `initialize` handshake for older servers; or the caller pins a protocol version.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rmcp::model::{CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation, JsonObject, ProtocolVersion, Tool};
use rmcp::service::{ClientInitializeError, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::{
    AuthRequiredError, InsufficientScopeError, StreamableHttpClientTransportConfig, StreamableHttpError,
};
use rmcp::{ClientHandler, ClientLifecycleMode, ClientServiceExt, Peer, RoleClient, ServiceError};
use url::Url;

use super::bearer::{BearerClient, TokenSource};
use crate::oauth::discovery::Challenge;

/// Re-authorizations for more scope within one operation.
pub const MAX_STEP_UPS: u32 = 2;

/// Why the server refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 401: no token, or one the server does not accept.
    Unauthorized,
    /// 403 with a challenge: the token lacks scopes.
    InsufficientScope,
}

/// A [`TokenSource`] that can also obtain a new grant when the server refuses.
pub trait Authorizer: TokenSource {
    /// Get a grant that answers `challenge` (the parsed `WWW-Authenticate` of the refusal).
    fn authorize(&self, refusal: Refusal, challenge: &Challenge) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// latchkey as an MCP client: no sampling, roots or elicitation to offer. The protocol version is
/// the one a legacy `initialize` asks for.
#[derive(Clone)]
struct Latchkey(Option<ProtocolVersion>);

impl ClientHandler for Latchkey {
    fn get_info(&self) -> ClientConfig {
        let config = ClientConfig::new(ClientCapabilities::default(), Implementation::new("latchkey", env!("CARGO_PKG_VERSION")));
        match &self.0 {
            Some(version) => config.with_protocol_version(version.clone()),
            None => config,
        }
    }
}

/// The protocol version named `name`, for pinning a connection to it.
pub fn protocol_version(name: &str) -> anyhow::Result<ProtocolVersion> {
    ProtocolVersion::KNOWN_VERSIONS.iter().find(|known| known.as_str() == name).cloned().ok_or_else(|| {
        let known: Vec<&str> = ProtocolVersion::KNOWN_VERSIONS.iter().map(ProtocolVersion::as_str).collect();
        anyhow::anyhow!("unknown MCP protocol version `{name}`; latchkey speaks {}", known.join(", "))
    })
}

/// A live connection to a remote MCP server.
pub struct RemoteUpstream<A: Authorizer> {
    url: Url,
    authorizer: Arc<A>,
    http: reqwest::Client,
    protocol: Option<ProtocolVersion>,
    service: RunningService<RoleClient, Latchkey>,
}

impl<A: Authorizer> RemoteUpstream<A> {
    /// Connect to the server at `url`, authorizing through `authorizer` when it asks; with
    /// `protocol`, speak that version instead of finding the server's era.
    pub async fn connect(url: &Url, authorizer: Arc<A>, protocol: Option<ProtocolVersion>) -> anyhow::Result<RemoteUpstream<A>> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("latchkey/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the HTTP client")?;
        let service = open(url, &authorizer, &http, protocol.as_ref()).await?;
        Ok(RemoteUpstream { url: url.clone(), authorizer, http, protocol, service })
    }

    /// Every tool the server offers (all pages).
    pub async fn list_tools(&mut self) -> anyhow::Result<Vec<Tool>> {
        self.with_authorization("tools/list", |peer| async move { peer.list_all_tools().await }).await
    }

    /// Call `name` with `arguments`.
    pub async fn call_tool(&mut self, name: &str, arguments: Option<JsonObject>) -> anyhow::Result<CallToolResult> {
        let mut params = CallToolRequestParams::new(name.to_string());
        params.arguments = arguments;
        self.with_authorization("tools/call", move |peer| {
            let params = params.clone();
            async move { peer.call_tool(params).await }
        })
        .await
    }

    /// End the session (a legacy server is told with DELETE).
    pub async fn close(self) {
        let _ = self.service.cancel().await;
    }

    /// Run `request`; when the server refuses, authorize and run it again.
    async fn with_authorization<T, F, Fut>(&mut self, what: &str, request: F) -> anyhow::Result<T>
    where
        F: Fn(Peer<RoleClient>) -> Fut,
        Fut: Future<Output = Result<T, ServiceError>>,
    {
        let mut budget = Budget::default();
        loop {
            let error = match request(self.service.peer().clone()).await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let refused = match &error {
                ServiceError::TransportSend(transport) => refusal_in(transport.error.as_ref()),
                _ => None,
            };
            let Some((refusal, challenge)) = refused else {
                anyhow::bail!("{what} at {} failed: {}", self.url, describe_service(&error));
            };
            budget.spend(refusal, &challenge, &self.url)?;
            self.authorizer.authorize(refusal, &challenge).await?;
            if self.service.is_closed() {
                self.service = open(&self.url, &self.authorizer, &self.http, self.protocol.as_ref()).await?;
            }
        }
    }
}

/// Connect, authorizing when the connection itself is refused.
async fn open<A: Authorizer>(
    url: &Url,
    authorizer: &Arc<A>,
    http: &reqwest::Client,
    protocol: Option<&ProtocolVersion>,
) -> anyhow::Result<RunningService<RoleClient, Latchkey>> {
    let mut budget = Budget::default();
    loop {
        let client = BearerClient::new(http.clone(), authorizer.clone());
        let transport = StreamableHttpClientTransport::with_client(client, StreamableHttpClientTransportConfig::with_uri(url.as_str()));
        let lifecycle = match protocol {
            None => ClientLifecycleMode::Auto { preferred_versions: vec![ProtocolVersion::LATEST], legacy_version: None },
            Some(version) if version.has_initialize() => ClientLifecycleMode::Initialize,
            Some(version) => ClientLifecycleMode::Discover { preferred_versions: vec![version.clone()] },
        };
        let error = match Latchkey(protocol.cloned()).serve_with_lifecycle(transport, lifecycle).await {
            Ok(service) => return Ok(service),
            Err(error) => error,
        };
        let Some((refusal, challenge)) = init_refusal(&error) else {
            anyhow::bail!("cannot connect to the MCP server at {url}: {}", describe_init(&error));
        };
        budget.spend(refusal, &challenge, url)?;
        authorizer.authorize(refusal, &challenge).await?;
    }
}

/// How many authorizations one operation may still run.
#[derive(Default)]
struct Budget {
    unauthorized: u32,
    step_ups: u32,
}

impl Budget {
    fn spend(&mut self, refusal: Refusal, challenge: &Challenge, url: &Url) -> anyhow::Result<()> {
        let said = challenge.error.as_deref().map(|error| format!(" (`{error}`)")).unwrap_or_default();
        match refusal {
            Refusal::Unauthorized if self.unauthorized >= 1 => anyhow::bail!(
                "the MCP server at {url} refused the new authorization too{said}; check that the account you signed in with may use it"
            ),
            Refusal::InsufficientScope if self.step_ups >= MAX_STEP_UPS => anyhow::bail!(
                "the MCP server at {url} still asks for more scope after {MAX_STEP_UPS} re-authorizations{said}; the account or app may not be allowed the scopes `{}`",
                challenge.scope.as_deref().unwrap_or("(none named)")
            ),
            Refusal::Unauthorized => self.unauthorized += 1,
            Refusal::InsufficientScope => self.step_ups += 1,
        }
        Ok(())
    }
}

fn init_refusal(error: &ClientInitializeError) -> Option<(Refusal, Challenge)> {
    match error {
        ClientInitializeError::TransportError { error, .. } => refusal_in(error.error.as_ref()),
        ClientInitializeError::LegacyFallbackFailed { fallback, .. } => init_refusal(fallback),
        _ => None,
    }
}

/// The refusal somewhere in a transport error's chain, with its parsed challenge.
fn refusal_in(error: &(dyn std::error::Error + 'static)) -> Option<(Refusal, Challenge)> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(refused) = error.downcast_ref::<AuthRequiredError>() {
            return Some((Refusal::Unauthorized, Challenge::parse(&refused.www_authenticate_header).unwrap_or_default()));
        }
        if let Some(refused) = error.downcast_ref::<InsufficientScopeError>() {
            return Some((Refusal::InsufficientScope, Challenge::parse(&refused.www_authenticate_header).unwrap_or_default()));
        }
        current = error.source();
    }
    None
}

// rmcp's transport errors name the transport's Rust type and drop the cause of an HTTP failure
// (connection refused, TLS…); these say what happened.

fn describe_init(error: &ClientInitializeError) -> String {
    match error {
        ClientInitializeError::TransportError { error, .. } => describe_transport(error.error.as_ref()),
        ClientInitializeError::LegacyFallbackFailed { fallback, .. } => describe_init(fallback),
        other => other.to_string(),
    }
}

fn describe_service(error: &ServiceError) -> String {
    match error {
        ServiceError::TransportSend(error) => describe_transport(error.error.as_ref()),
        ServiceError::McpError(error) => format!("the server answered with error {}: {}", error.code.0, error.message),
        other => other.to_string(),
    }
}

fn describe_transport(error: &(dyn std::error::Error + 'static)) -> String {
    match error.downcast_ref::<StreamableHttpError<reqwest::Error>>() {
        Some(StreamableHttpError::Client(http)) => chain(http),
        _ => chain(error),
    }
}

/// An error and its causes, each once.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_found_inside_transport_errors() {
        let unauthorized: StreamableHttpError<std::io::Error> =
            StreamableHttpError::AuthRequired(AuthRequiredError::new(r#"Bearer resource_metadata="https://mcp.example/prm", scope="a b""#.into()));
        let (refusal, challenge) = refusal_in(&unauthorized).expect("a 401 is a refusal");
        assert_eq!(refusal, Refusal::Unauthorized);
        assert_eq!(challenge.scope.as_deref(), Some("a b"));
        assert_eq!(challenge.resource_metadata.as_deref(), Some("https://mcp.example/prm"));

        let forbidden: StreamableHttpError<std::io::Error> = StreamableHttpError::InsufficientScope(InsufficientScopeError::new(
            r#"Bearer error="insufficient_scope", scope="files:write""#.into(),
            Some("files:write".into()),
        ));
        let (refusal, challenge) = refusal_in(&forbidden).expect("a 403 with a challenge is a refusal");
        assert_eq!(refusal, Refusal::InsufficientScope);
        assert_eq!(challenge.error.as_deref(), Some("insufficient_scope"));

        let other: StreamableHttpError<std::io::Error> = StreamableHttpError::UnexpectedEndOfStream;
        assert!(refusal_in(&other).is_none());
    }

    #[test]
    fn an_operation_authorizes_once_for_401_and_steps_up_a_bounded_number_of_times() {
        let url = Url::parse("https://mcp.example/mcp").unwrap();
        let challenge = Challenge { scope: Some("admin".into()), error: Some("insufficient_scope".into()), ..Challenge::default() };
        let mut budget = Budget::default();
        budget.spend(Refusal::Unauthorized, &challenge, &url).unwrap();
        for _ in 0..MAX_STEP_UPS {
            budget.spend(Refusal::InsufficientScope, &challenge, &url).unwrap();
        }
        let error = budget.spend(Refusal::InsufficientScope, &challenge, &url).unwrap_err().to_string();
        assert!(error.contains("still asks for more scope") && error.contains("`admin`"), "{error}");
        let error = budget.spend(Refusal::Unauthorized, &challenge, &url).unwrap_err().to_string();
        assert!(error.contains("refused the new authorization too"), "{error}");
    }

    #[test]
    fn protocol_versions_are_checked() {
        assert_eq!(protocol_version("2025-11-25").unwrap(), ProtocolVersion::V_2025_11_25);
        let error = protocol_version("2099-01-01").unwrap_err().to_string();
        assert!(error.contains("2026-07-28"), "{error}");
    }
}
