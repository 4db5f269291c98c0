//! The authorization-code flow (RFC 6749 §4.1) with PKCE S256 (RFC 7636), `state`, RFC 8707
//! `resource` and RFC 9207 `iss`, in three steps so that the caller owns all interaction:
//!
//! 1. [`start`] binds the loopback listener (or prepares for a pasted URL), registers the client
//!    dynamically if it must (the redirect URI is known only now), and builds the authorization
//!    URL through the provider's `authorize-params` hook;
//! 2. the caller opens the browser or prints the URL, then calls [`Pending::wait`] or
//!    [`Pending::complete_pasted`], which check the redirect and exchange the code;
//! 3. the caller stores the tokens and only then tells the browser, through [`Exchanged`].

use std::time::Duration;

use super::callback::{self, Callback, CallbackError, Listener, Outcome};
use super::discovery::AuthServerMetadata;
use super::exchange::{self, CodeExchange, ExchangeError, TokenEndpoint};
use super::registration::{self, ClientRegistration, RegistrationError};
use crate::plugins::{CallError, LoopbackRedirect, Params, Pkce, Redirect, TokenSet};
use oauth2::PkceCodeChallenge;

/// What to authorize: the token endpoint (provider, flow with final endpoints, client, config),
/// the scopes and resource, and what the authorization server promised about `iss`.
pub struct Request {
    pub endpoint: TokenEndpoint,
    pub scopes: Vec<String>,
    pub resource: Option<String>,
    /// The issuer to expect in the redirect (RFC 9207), when known.
    pub issuer: Option<String>,
    /// The server advertises `authorization_response_iss_parameter_supported`: `iss` must come.
    pub iss_required: bool,
    /// `login_hint` (OpenID Connect Core §3.1.2.1), unless the provider sets its own.
    pub login_hint: Option<String>,
}

/// How the client identity is obtained.
pub enum ClientSource {
    Ready(ClientRegistration),
    /// Register dynamically once the redirect URI is known.
    Dynamic {
        registration_endpoint: String,
        metadata: Box<AuthServerMetadata>,
    },
}

/// How the redirect comes back.
pub enum Mode {
    /// A loopback listener receives it.
    Listen,
    /// The user pastes the URL the browser ended on; `redirect_uri` overrides the provider's
    /// (needed for https-only providers).
    Paste { redirect_uri: Option<String> },
}

#[derive(Debug, thiserror::Error)]
pub enum AuthorizeError {
    #[error(transparent)]
    Callback(#[from] CallbackError),
    #[error(transparent)]
    Registration(#[from] RegistrationError),
    #[error(transparent)]
    Plugin(#[from] CallError),
    // Not a `source`: the message already carries it, and error chains would print it twice.
    #[error("the code exchange failed: {0}")]
    Exchange(ExchangeError),
    #[error("the authorization endpoint `{url}` is not usable: {reason}")]
    BadEndpoint { url: String, reason: String },
    #[error(
        "this provider accepts only https redirect URIs, so latchkey cannot listen for the redirect; register an https \
         redirect URI with the app and run again with --paste --redirect-uri <that URI>"
    )]
    HttpsOnly,
    #[error(
        "the redirect's `state` does not match the request latchkey made: it is not from this sign-in (a stale tab, or an attempt at cross-site request forgery); run the command again"
    )]
    StateMismatch,
    #[error(
        "the redirect's `iss` is `{found}`, but the authorization server is `{expected}` (RFC 9207): refusing a response from another server"
    )]
    IssuerMismatch { found: String, expected: String },
    #[error("the redirect has no `iss`, but the authorization server promises one (RFC 9207): refusing it")]
    IssuerMissing,
    #[error("the authorization server refused: {error}{}", .description.as_ref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Denied { error: String, description: Option<String> },
    #[error(
        "the redirect carries neither an authorization code nor an error, so the sign-in cannot finish; run the command \
         again (with --paste, paste the whole address the browser ended on)"
    )]
    NoCode,
}

/// An authorization in progress: show [`Pending::url`] to the user, then wait.
pub struct Pending {
    url: String,
    state: String,
    verifier: Option<String>,
    redirect_uri: String,
    listener: Option<Listener>,
    request: Request,
}

/// Tokens from a successful exchange, with the browser still waiting for its page.
pub struct Exchanged {
    pub tokens: TokenSet,
    /// The client used; new when it was registered dynamically, so the caller can keep it.
    pub client: ClientRegistration,
    /// Scopes that were requested.
    pub scopes: Vec<String>,
    browser: Option<(Listener, Callback)>,
}

impl Exchanged {
    /// Tell the browser that everything, storage included, succeeded.
    pub async fn confirm(self, message: &str) {
        self.tell(Outcome::Success(message.to_string())).await;
    }

    /// Tell the browser that a later step failed.
    pub async fn fail(self, message: &str) {
        self.tell(Outcome::Failure(message.to_string())).await;
    }

    async fn tell(self, outcome: Outcome) {
        if let Some((listener, callback)) = self.browser {
            listener.finish(callback, outcome).await;
        }
    }
}

/// Step 1: listen (or prepare for pasting), settle the client, and build the authorization URL.
pub async fn start(mut request: Request, client: ClientSource, mode: Mode) -> Result<Pending, AuthorizeError> {
    // Known before listening: the listener passes on only redirects that carry it.
    let state = random_token();
    let (listener, redirect_uri) = match (&mode, &request.endpoint.flow.redirect) {
        (Mode::Paste { redirect_uri: Some(uri) }, _) => (None, uri.clone()),
        (Mode::Paste { redirect_uri: None }, Redirect::Loopback(loopback)) => (None, pasted_loopback_uri(loopback)),
        (_, Redirect::HttpsOnly) => return Err(AuthorizeError::HttpsOnly),
        (Mode::Listen, Redirect::Loopback(loopback)) => {
            let listener = Listener::bind(loopback, &state).await?;
            let uri = listener.redirect_uri().to_string();
            (Some(listener), uri)
        }
    };
    request.endpoint.client = match client {
        ClientSource::Ready(client) => client,
        ClientSource::Dynamic { registration_endpoint, metadata } => {
            registration::register_dynamically(&request.endpoint.http, &registration_endpoint, &metadata, &redirect_uri, &request.scopes)
                .await?
        }
    };

    let (challenge, verifier) = match request.endpoint.flow.pkce {
        Pkce::Unsupported => (None, None),
        Pkce::Required | Pkce::Supported => {
            let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
            (Some(challenge.as_str().to_string()), Some(verifier.secret().to_string()))
        }
    };
    let mut params: Params = vec![
        ("response_type".into(), "code".into()),
        ("client_id".into(), request.endpoint.client.client_id.clone()),
        ("redirect_uri".into(), redirect_uri.clone()),
        ("state".into(), state.clone()),
    ];
    if let Some(challenge) = challenge {
        params.push(("code_challenge".into(), challenge));
        params.push(("code_challenge_method".into(), "S256".into()));
    }
    if let (true, Some(resource)) = (request.endpoint.flow.send_resource, &request.resource) {
        params.push(("resource".into(), resource.clone()));
    }
    let provider = request.endpoint.provider.clone();
    let (scopes, config) = (request.scopes.clone(), request.endpoint.config.clone());
    params.extend(exchange::blocking(move || provider.authorize_params(&scopes, &config)).await?);
    if let Some(hint) = &request.login_hint
        && !params.iter().any(|(name, _)| name == "login_hint")
    {
        params.push(("login_hint".into(), hint.clone()));
    }

    let endpoint = &request.endpoint.flow.endpoints.authorization;
    let mut url =
        super::http::endpoint_url(endpoint).map_err(|e| AuthorizeError::BadEndpoint { url: endpoint.clone(), reason: e.to_string() })?;
    url.query_pairs_mut().extend_pairs(&params);
    Ok(Pending { url: url.to_string(), state, verifier, redirect_uri, listener, request })
}

impl Pending {
    /// The URL to open in the browser.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// Step 2, listening: wait for the redirect and exchange the code.
    pub async fn wait(mut self, timeout: Duration) -> Result<Exchanged, AuthorizeError> {
        let mut listener = self.listener.take().expect("wait() needs Mode::Listen");
        let callback = listener.next(timeout).await?;
        let params = callback.params.clone();
        match self.finish(params).await {
            Ok(mut exchanged) => {
                exchanged.browser = Some((listener, callback));
                Ok(exchanged)
            }
            Err(error) => {
                listener.finish(callback, Outcome::Failure(format!("{error}. Check the terminal for details."))).await;
                Err(error)
            }
        }
    }

    /// Step 2, pasting: check the URL the user pasted and exchange its code.
    pub async fn complete_pasted(self, pasted: &str) -> Result<Exchanged, AuthorizeError> {
        let params = callback::parse_pasted(pasted)?;
        self.finish(params).await
    }

    async fn finish(self, params: Params) -> Result<Exchanged, AuthorizeError> {
        let get = |name: &str| params.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
        // RFC 9207 first: an error from the wrong server must not be acted on either.
        match (get("iss"), &self.request.issuer) {
            (Some(found), Some(expected)) if found != *expected => {
                return Err(AuthorizeError::IssuerMismatch { found, expected: expected.clone() });
            }
            (None, Some(_)) if self.request.iss_required => return Err(AuthorizeError::IssuerMissing),
            _ => {}
        }
        if get("state").as_deref() != Some(self.state.as_str()) {
            return Err(AuthorizeError::StateMismatch);
        }
        if let Some(error) = get("error") {
            return Err(AuthorizeError::Denied { error, description: get("error_description") });
        }
        let code = get("code").filter(|code| !code.is_empty()).ok_or(AuthorizeError::NoCode)?;
        let tokens = self
            .request
            .endpoint
            .exchange_code(CodeExchange {
                code: &code,
                redirect_uri: &self.redirect_uri,
                code_verifier: self.verifier.as_deref(),
                resource: self.request.resource.as_deref(),
                requested_scopes: &self.request.scopes,
                callback: params.clone(),
            })
            .await
            .map_err(AuthorizeError::Exchange)?;
        Ok(Exchanged { tokens, client: self.request.endpoint.client.clone(), scopes: self.request.scopes, browser: None })
    }
}

/// A loopback redirect URI for pasting: the fixed port, or a conventional one (the browser will
/// fail to load it, and the user copies it from the address bar).
fn pasted_loopback_uri(loopback: &LoopbackRedirect) -> String {
    let port = loopback.port.unwrap_or(8976);
    format!("http://{}:{port}{}", loopback.host, loopback.path)
}

/// 32 random bytes, base64url: the `state` value.
fn random_token() -> String {
    use base64::Engine as _;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
