//! latchkey's MCP client of one remote server (Streamable HTTP, through rmcp): the gateway's
//! remote upstream and `latchkey tools --url` both connect through [`Remote`].
//!
//! The two differ only in what they give [`Remote::new`]:
//! - the [`Authorizer`], which decides what a refusal that a refresh could not answer leads to:
//!   `tools --url` signs in, in the browser ([`super::credential`]); the gateway has no one to
//!   ask, so its authorizer fails with the command that fixes the credential
//!   ([`super::catalog_credential`]) and the gateway shows that in `/health`;
//! - the [`ClientHandler`]: the gateway passes list-changed notifications on to its clients;
//! - the lifecycle: the gateway keeps the `initialize` handshake; `tools --url` lets rmcp find the
//!   server's era (`server/discover` first, 2026-07-28, stateless; `initialize` for older
//!   servers), or pins a protocol version ([`lifecycle`]).
//!
//! A [`Remote`] does not own the connection: [`Remote::open`] hands out the rmcp service and
//! [`Remote::authorized`] runs requests on whatever peer the caller has, so the gateway keeps its
//! own restarts, timeouts and concurrent calls around it.
//!
//! Authorization is reactive, as the MCP specification describes it: requests go out with
//! whatever token the authorizer has (none at first), and the server's refusals drive the rest:
//! - 401: the bearer client has already tried one refresh ([`super::bearer`]); the authorizer
//!   gets the challenge and obtains a new grant, then the request is sent again;
//! - 403 `insufficient_scope`: the authorizer re-authorizes for the union of the scopes it asked
//!   for before and the challenged ones (MCP 2026-07-28, SEP-2350), then the request is retried.
//!
//! Each operation authorizes at most once for a 401 and [`MAX_STEP_UPS`] times for a 403, so a
//! server that never accepts does not loop the user through the browser.
//!
//! Redirects are followed only within the server's origin ([`same_origin_redirects`]): every
//! request carries the catalog's headers (API keys among them), which reqwest would pass on to
//! another origin (it strips only `Authorization` and cookies).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use http::{HeaderName, HeaderValue};
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation, ProtocolVersion};
use rmcp::service::{ClientInitializeError, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::{
    AuthRequiredError, InsufficientScopeError, StreamableHttpClientTransportConfig, StreamableHttpError,
};
use rmcp::{ClientHandler, ClientLifecycleMode, ClientServiceExt, RoleClient, ServiceError};
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
    /// Get a grant that answers `challenge` (the parsed `WWW-Authenticate` of the refusal), or
    /// fail with what the user has to do when there is no one to ask.
    fn authorize(&self, refusal: Refusal, challenge: &Challenge) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// `tools --url` as an MCP client: no sampling, roots or elicitation to offer. The protocol
/// version is the one a legacy `initialize` asks for.
#[derive(Clone)]
pub struct Latchkey(pub Option<ProtocolVersion>);

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

/// How to start a session: speak `protocol`, or find the server's era when none is pinned.
pub fn lifecycle(protocol: Option<&ProtocolVersion>) -> ClientLifecycleMode {
    match protocol {
        None => ClientLifecycleMode::Auto { preferred_versions: vec![ProtocolVersion::LATEST], legacy_version: None },
        Some(version) if version.has_initialize() => ClientLifecycleMode::Initialize,
        Some(version) => ClientLifecycleMode::Discover { preferred_versions: vec![version.clone()] },
    }
}

/// A session [`Remote::open`] could not start because the server refused it, and authorizing did
/// not help: `error` says what the user can do. Found in `open`'s error with `downcast_ref`.
#[derive(Debug, thiserror::Error)]
#[error("{error:#}")]
pub struct RefusedSession {
    pub refusal: Refusal,
    error: anyhow::Error,
}

/// Why an operation through a [`Remote`] failed.
#[derive(Debug)]
pub enum Failure<E = ServiceError> {
    /// The server refused, and authorizing did not help or was not possible; `error` says what
    /// the user can do.
    Refused { refusal: Refusal, error: anyhow::Error },
    /// Anything else, as rmcp reported it: the caller decides what it means (the gateway tells a
    /// crashed server from an error answer).
    Other(E),
}

impl Failure {
    /// The failure as the command line reports it: what failed, where, and why.
    pub fn explain(self, what: &str, url: &Url) -> anyhow::Error {
        match self {
            Failure::Refused { error, .. } => error,
            Failure::Other(error) => anyhow::anyhow!("{what} at {url} failed: {}", describe_service(&error)),
        }
    }
}

/// Redirects the client follows: up to [`MAX_REDIRECTS`], each to the origin of the first
/// request. A redirect elsewhere is not followed: its 3xx answer is the answer, and the request
/// fails with it.
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let same_origin = attempt.previous().first().is_some_and(|first| first.origin() == attempt.url().origin());
        if !same_origin {
            attempt.stop()
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
        } else {
            attempt.follow()
        }
    })
}

const MAX_REDIRECTS: usize = 10;

/// The HTTP client of every remote MCP server in the process: one connection pool and TLS
/// configuration, where a client per server held its own (a gateway of thousands of remote
/// servers, thousands). Nothing in it is a server's: tokens and headers go on each request.
fn http_client() -> anyhow::Result<reqwest::Client> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client.clone());
    }
    let client = reqwest::Client::builder()
        .redirect(same_origin_redirects())
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("latchkey/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")?;
    Ok(CLIENT.get_or_init(|| client).clone())
}

/// One remote MCP server, and how latchkey talks to it.
pub struct Remote<H, A> {
    url: Url,
    handler: H,
    lifecycle: ClientLifecycleMode,
    authorizer: Arc<A>,
    http: reqwest::Client,
    /// Sent with every request besides the token (a catalog entry's `headers`).
    headers: HashMap<HeaderName, HeaderValue>,
}

impl<H: ClientHandler + Clone, A: Authorizer> Remote<H, A> {
    pub fn new(url: &Url, handler: H, lifecycle: ClientLifecycleMode, authorizer: Arc<A>) -> anyhow::Result<Remote<H, A>> {
        Ok(Remote { url: url.clone(), handler, lifecycle, authorizer, http: http_client()?, headers: HashMap::new() })
    }

    /// Send `headers` with every request. An `Authorization` among them goes out only while the
    /// authorizer has no token: the token replaces it ([`BearerClient`]).
    pub fn with_headers(mut self, headers: HashMap<HeaderName, HeaderValue>) -> Remote<H, A> {
        self.headers = headers;
        self
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Start a session, authorizing when the connection itself is refused (a refusal that
    /// authorizing did not answer is a [`RefusedSession`]).
    pub async fn open(&self) -> anyhow::Result<RunningService<RoleClient, H>> {
        let connect = || {
            let client = BearerClient::new(self.http.clone(), self.authorizer.clone());
            let config = StreamableHttpClientTransportConfig::with_uri(self.url.as_str()).custom_headers(self.headers.clone());
            let transport = StreamableHttpClientTransport::with_client(client, config);
            self.handler.clone().serve_with_lifecycle(transport, self.lifecycle.clone())
        };
        self.with_authorization(connect, init_refusal).await.map_err(|failure| match failure {
            Failure::Refused { refusal, error } => RefusedSession { refusal, error }.into(),
            Failure::Other(error) => anyhow::anyhow!("cannot connect to the MCP server at {}: {}", self.url, describe_init(&error)),
        })
    }

    /// Run `request` (on a peer of a session from [`Remote::open`]); when the server refuses,
    /// authorize and run it again.
    pub async fn authorized<T, F, Fut>(&self, request: F) -> Result<T, Failure>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, ServiceError>>,
    {
        self.with_authorization(request, |error| match error {
            ServiceError::TransportSend(transport) => refusal_in(transport.error.as_ref()),
            _ => None,
        })
        .await
    }

    /// Run `attempt` until it succeeds, answering each refusal that `refused` finds in its error
    /// with the authorizer, within one [`Budget`].
    async fn with_authorization<T, E, F, Fut>(
        &self,
        attempt: F,
        refused: impl Fn(&E) -> Option<(Refusal, Challenge)>,
    ) -> Result<T, Failure<E>>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut budget = Budget::default();
        loop {
            let error = match attempt().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let Some((refusal, challenge)) = refused(&error) else { return Err(Failure::Other(error)) };
            let authorized = match budget.spend(refusal, &challenge, &self.url) {
                Ok(()) => self.authorizer.authorize(refusal, &challenge).await,
                Err(spent) => Err(spent),
            };
            authorized.map_err(|error| Failure::Refused { refusal, error })?;
        }
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
        let unauthorized: StreamableHttpError<std::io::Error> = StreamableHttpError::AuthRequired(AuthRequiredError::new(
            r#"Bearer resource_metadata="https://mcp.example/prm", scope="a b""#.into(),
        ));
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
