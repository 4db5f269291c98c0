//! Requests to the token and revocation endpoints, shaped by the provider's hooks.
//!
//! The host builds the standard form request (RFC 6749 §4.1.3, §6; RFC 7009 §2.1), lets the
//! provider reshape it (`prepare-request`: JSON bodies, headers, path, method — never another
//! origin, which [`Provider::prepare_request`] refuses), then adds the client credentials itself —
//! the provider never sees the secret — in the way the registration or the provider declares
//! (HTTP Basic, in the body, or none), sends it, and hands the raw answer to the provider
//! (`read-token-response`), which normalises it or classifies the failure. Client credentials
//! that the host adds win over anything the provider put in their place: a provider's own
//! `Authorization` header survives only where the client authenticates with `none` (Slack's and
//! Dropbox's revocation take the token itself as a bearer).
//!
//! Messages name the endpoint the flow declared, never the URL a provider shaped: HubSpot puts
//! the refresh token in its revocation URL's path.

use base64::Engine as _;
use secrecy::ExposeSecret;

use super::http::{Client, SendError};
use super::registration::ClientRegistration;
use crate::plugins::{
    CallError, ClientAuth, Failure, Flow, HttpRequest, HttpResponse, Params, Provider, RequestKind, TokenContext, TokenSet,
};

/// Everything needed to talk to one authorization server as one client.
#[derive(Clone)]
pub struct TokenEndpoint {
    pub provider: Provider,
    pub flow: Flow,
    pub client: ClientRegistration,
    pub config: Params,
    pub http: Client,
}

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error(transparent)]
    Plugin(#[from] CallError),
    // Not a `source`: the message already carries it, and error chains would print it twice.
    #[error("cannot reach the authorization server: {0}")]
    Send(SendError),
    #[error("{endpoint}: {}", .failure.message)]
    Failed { endpoint: String, failure: Failure },
    #[error("the client authenticates with {method} but has no client secret")]
    MissingSecret { method: &'static str },
    #[error("the client authenticates with private_key_jwt but has no private key")]
    MissingKey,
    #[error(transparent)]
    Key(#[from] super::client_key::KeyError),
    #[error("the provider has no revocation endpoint")]
    NoRevocation,
    /// The provider's `prepare-request` refused to revoke each token the credential has.
    #[error("provider `{provider}` revokes none of the credential's tokens: {}", .refusals.join("; "))]
    NothingToRevoke { provider: String, refusals: Vec<String> },
}

impl ExchangeError {
    /// The provider's classification, when the server answered with an error.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            ExchangeError::Failed { failure, .. } => Some(failure),
            _ => None,
        }
    }
}

/// The inputs of an authorization-code exchange.
pub struct CodeExchange<'a> {
    pub code: &'a str,
    pub redirect_uri: &'a str,
    pub code_verifier: Option<&'a str>,
    pub resource: Option<&'a str>,
    pub requested_scopes: &'a [String],
    pub callback: Params,
}

impl TokenEndpoint {
    /// How this client authenticates: the registration's agreement, else the provider's rule.
    pub fn client_auth(&self) -> ClientAuth {
        self.client.auth_method.unwrap_or(self.flow.client_auth)
    }

    /// Exchange an authorization code for tokens.
    pub async fn exchange_code(&self, exchange: CodeExchange<'_>) -> Result<TokenSet, ExchangeError> {
        let mut form: Params = vec![
            ("grant_type".into(), "authorization_code".into()),
            ("code".into(), exchange.code.into()),
            ("redirect_uri".into(), exchange.redirect_uri.into()),
        ];
        if let Some(verifier) = exchange.code_verifier {
            form.push(("code_verifier".into(), verifier.into()));
        }
        self.push_resource(&mut form, exchange.resource);
        let context = self.context(RequestKind::AuthorizationCode, exchange.requested_scopes, exchange.callback);
        self.token_request(&self.flow.endpoints.token, "the token endpoint", form, context).await
    }

    /// Use a refresh token (RFC 6749 §6). The answer is not yet merged with the stored set.
    pub async fn refresh(&self, refresh_token: &str, resource: Option<&str>, scopes: &[String]) -> Result<TokenSet, ExchangeError> {
        let mut form: Params = vec![("grant_type".into(), "refresh_token".into()), ("refresh_token".into(), refresh_token.into())];
        self.push_resource(&mut form, resource);
        let context = self.context(RequestKind::RefreshToken, scopes, Vec::new());
        let (url, name) = match &self.flow.endpoints.refresh {
            Some(refresh) => (refresh.clone(), "the refresh endpoint"),
            None => (self.flow.endpoints.token.clone(), "the token endpoint"),
        };
        self.token_request(&url, name, form, context).await
    }

    /// Revoke a credential's grant (RFC 7009, or the provider's variant): its refresh token, whose
    /// revocation ends the grant, or its access token when the provider's `prepare-request` refuses
    /// the refresh token (Slack's `auth.revoke` and Dropbox's RPC take an access token, HubSpot
    /// only a refresh token). `Ok` only when the provider's `read-revocation-response` confirmed it.
    ///
    /// Client authentication: at a provider that declares a revocation endpoint, what it declares
    /// for it (`none` there means no client credentials at all: Google's and Slack's take only the
    /// token) — also when the catalog moved the endpoint, since the provider's `prepare-request`
    /// still shapes the request; without one, the client authenticates as at the token endpoint
    /// (RFC 7009 §2.1). A public client never sends a secret.
    pub async fn revoke(&self, refresh_token: Option<&str>, access_token: &str) -> Result<(), ExchangeError> {
        let revocation = self.flow.endpoints.revocation.clone().ok_or(ExchangeError::NoRevocation)?;
        let (provider, config) = (self.provider.clone(), self.config.clone());
        let declared = blocking(move || provider.configure(&config)).await?.endpoints.revocation;
        let auth = match declared.map(|own| own.client_auth) {
            Some(ClientAuth::None) => None,
            Some(own) if self.client_auth() != ClientAuth::None => Some(own),
            _ => Some(self.client_auth()),
        };
        let offers = refresh_token.map(|token| (token, "refresh_token")).into_iter().chain([(access_token, "access_token")]);
        let context = self.context(RequestKind::Revocation, &[], Vec::new());
        let mut refusals = Vec::new();
        for (token, hint) in offers {
            let form: Params = vec![("token".into(), token.into()), ("token_type_hint".into(), hint.into())];
            let request = match self.prepare(&revocation.url, "the revocation endpoint", form, &context, auth).await {
                Ok(request) => request,
                Err(ExchangeError::Plugin(CallError::Refused { message, .. })) => {
                    refusals.push(format!("{} refused: {message}", hint.replace('_', " ")));
                    continue;
                }
                Err(error) => return Err(error),
            };
            let response = self.http.send(&request).await.map_err(ExchangeError::Send)?;
            let provider = self.provider.clone();
            let answer = blocking(move || provider.read_revocation_response(&response)).await?;
            return answer.map_err(|failure| ExchangeError::Failed { endpoint: revocation.url, failure });
        }
        Err(ExchangeError::NothingToRevoke { provider: self.provider.id().to_string(), refusals })
    }

    fn push_resource(&self, form: &mut Params, resource: Option<&str>) {
        if let (true, Some(resource)) = (self.flow.send_resource, resource) {
            form.push(("resource".into(), resource.into()));
        }
    }

    fn context(&self, kind: RequestKind, scopes: &[String], callback: Params) -> TokenContext {
        TokenContext { kind, requested_scopes: scopes.to_vec(), callback, config: self.config.clone() }
    }

    /// Poll the token endpoint with a device code (RFC 8628 §3.4).
    pub async fn device_code(&self, device_code: &str, resource: Option<&str>, scopes: &[String]) -> Result<TokenSet, ExchangeError> {
        let mut form: Params =
            vec![("grant_type".into(), "urn:ietf:params:oauth:grant-type:device_code".into()), ("device_code".into(), device_code.into())];
        self.push_resource(&mut form, resource);
        let context = self.context(RequestKind::DeviceCode, scopes, Vec::new());
        self.token_request(&self.flow.endpoints.token, "the token endpoint", form, context).await
    }

    /// The client's own token (RFC 6749 §4.4), for unattended use.
    pub async fn client_credentials(&self, scopes: &[String], resource: Option<&str>) -> Result<TokenSet, ExchangeError> {
        let mut form: Params = vec![("grant_type".into(), "client_credentials".into())];
        if !scopes.is_empty() {
            form.push(("scope".into(), scopes.join(&self.flow.scope_separator)));
        }
        self.push_resource(&mut form, resource);
        let context = self.context(RequestKind::ClientCredentials, scopes, Vec::new());
        self.token_request(&self.flow.endpoints.token, "the token endpoint", form, context).await
    }

    /// A request to an endpoint that no provider hook shapes (RFC 8628's device authorization
    /// endpoint), with the client's credentials as at the token endpoint (RFC 8628 §3.1).
    pub async fn send_with_client_auth(&self, url: &str, form: &Params) -> Result<HttpResponse, ExchangeError> {
        let request = apply_client_auth(standard_request(url, form), &self.client, self.client_auth())?;
        self.http.send(&request).await.map_err(ExchangeError::Send)
    }

    async fn token_request(&self, url: &str, name: &'static str, form: Params, context: TokenContext) -> Result<TokenSet, ExchangeError> {
        let request = self.prepare(url, name, form, &context, Some(self.client_auth())).await?;
        let endpoint = url.to_string();
        let response = self.http.send(&request).await.map_err(ExchangeError::Send)?;
        let provider = self.provider.clone();
        let answer = blocking(move || provider.read_token_response(&context, &response)).await?;
        answer.map_err(|failure| ExchangeError::Failed { endpoint, failure })
    }

    /// The standard request for the endpoint at `url` (called `name` in errors), reshaped by the
    /// provider within `url`'s origin, with client credentials added. With `auth` `None`, no
    /// client credentials are added.
    async fn prepare(
        &self,
        url: &str,
        name: &'static str,
        form: Params,
        context: &TokenContext,
        auth: Option<ClientAuth>,
    ) -> Result<HttpRequest, ExchangeError> {
        let request = standard_request(url, &form);
        let provider = self.provider.clone();
        let context = context.clone();
        let shaped = blocking(move || provider.prepare_request(&context, &request, name)).await?;
        match auth {
            Some(auth) => apply_client_auth(shaped, &self.client, auth),
            None => Ok(shaped),
        }
    }
}

/// The standard form POST of RFC 6749 §3.2, before a provider shapes it.
fn standard_request(url: &str, form: &Params) -> HttpRequest {
    HttpRequest {
        method: "POST".into(),
        url: url.to_string(),
        headers: vec![("content-type".into(), "application/x-www-form-urlencoded".into()), ("accept".into(), "application/json".into())],
        body: encode_form(form),
    }
}

/// Add the client's credentials to a request the provider has shaped. They win: with `basic` or
/// `post` the provider's `Authorization` header goes, and body fields of the same names are
/// replaced; with `none` (a public client) the provider's header stays.
pub fn apply_client_auth(mut request: HttpRequest, client: &ClientRegistration, auth: ClientAuth) -> Result<HttpRequest, ExchangeError> {
    let secret = || {
        client
            .client_secret
            .as_ref()
            .map(|secret| secret.expose_secret().to_string())
            .ok_or(ExchangeError::MissingSecret { method: super::registration::auth_method_name(auth) })
    };
    match auth {
        ClientAuth::Basic => {
            // RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
            let credentials = format!("{}:{}", form_encode(&client.client_id), form_encode(&secret()?));
            let value = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(credentials));
            without_authorization(&mut request);
            request.headers.push(("authorization".into(), value));
        }
        ClientAuth::Post => {
            let secret = secret()?;
            without_authorization(&mut request);
            add_body_fields(&mut request, &[("client_id", &client.client_id), ("client_secret", &secret)]);
        }
        ClientAuth::None => add_body_fields(&mut request, &[("client_id", &client.client_id)]),
        ClientAuth::PrivateKeyJwt => {
            let (name, key) = client.client_key.as_ref().ok_or(ExchangeError::MissingKey)?;
            // The endpoint the assertion is for (RFC 7523 §3: the token endpoint, for a token request).
            let audience = url::Url::parse(&request.url).map_or_else(
                |_| request.url.clone(),
                |mut url| {
                    url.set_query(None);
                    url.set_fragment(None);
                    url.to_string()
                },
            );
            let assertion = super::client_key::assertion(name, key, &client.client_id, &audience)?;
            without_authorization(&mut request);
            add_body_fields(
                &mut request,
                &[
                    ("client_id", &client.client_id),
                    ("client_assertion_type", super::client_key::ASSERTION_TYPE),
                    ("client_assertion", &assertion),
                ],
            );
        }
    }
    Ok(request)
}

fn without_authorization(request: &mut HttpRequest) {
    request.headers.retain(|(name, _)| !name.eq_ignore_ascii_case("authorization"));
}

/// Add fields to a form or JSON body, whichever the provider left.
fn add_body_fields(request: &mut HttpRequest, fields: &[(&str, &str)]) {
    let is_json = request
        .headers
        .iter()
        .any(|(name, value)| name.eq_ignore_ascii_case("content-type") && value.to_ascii_lowercase().contains("json"));
    if is_json && let Ok(serde_json::Value::Object(mut object)) = serde_json::from_slice(&request.body) {
        for (name, value) in fields {
            object.insert((*name).to_string(), serde_json::Value::String((*value).to_string()));
        }
        request.body = serde_json::Value::Object(object).to_string().into_bytes();
        return;
    }
    let mut form: Params =
        url::form_urlencoded::parse(&request.body).into_owned().filter(|(name, _)| !fields.iter().any(|(f, _)| f == name)).collect();
    form.extend(fields.iter().map(|(name, value)| ((*name).to_string(), (*value).to_string())));
    request.body = encode_form(&form);
}

pub fn encode_form(params: &Params) -> Vec<u8> {
    url::form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish().into_bytes()
}

fn form_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Run a provider hook off the async runtime: WASI's synchronous bindings block.
pub async fn blocking<R: Send + 'static>(hook: impl FnOnce() -> Result<R, CallError> + Send + 'static) -> Result<R, CallError> {
    tokio::task::spawn_blocking(hook).await.expect("a provider hook call panicked the host")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::registration::RegistrationSource;

    fn client(secret: Option<&str>) -> ClientRegistration {
        ClientRegistration {
            client_id: "id with space".into(),
            client_secret: secret.map(|s| s.to_string().into()),
            auth_method: None,
            source: RegistrationSource::CommandLine,
            client_key: None,
        }
    }

    fn form_request() -> HttpRequest {
        HttpRequest {
            method: "POST".into(),
            url: "https://as.example/token".into(),
            headers: vec![("content-type".into(), "application/x-www-form-urlencoded".into())],
            body: b"grant_type=authorization_code&code=abc".to_vec(),
        }
    }

    #[test]
    fn basic_auth_form_encodes_both_parts() {
        let request = apply_client_auth(form_request(), &client(Some("s3cr:t")), ClientAuth::Basic).unwrap();
        let header = request.headers.iter().find(|(n, _)| n == "authorization").unwrap();
        let decoded = base64::engine::general_purpose::STANDARD.decode(header.1.trim_start_matches("Basic ")).unwrap();
        assert_eq!(String::from_utf8(decoded).unwrap(), "id+with+space:s3cr%3At");
        assert_eq!(request.body, b"grant_type=authorization_code&code=abc");
    }

    #[test]
    fn post_auth_adds_credentials_to_form_and_json_bodies() {
        let request = apply_client_auth(form_request(), &client(Some("s")), ClientAuth::Post).unwrap();
        assert_eq!(
            String::from_utf8(request.body).unwrap(),
            "grant_type=authorization_code&code=abc&client_id=id+with+space&client_secret=s"
        );
        let mut json = form_request();
        json.headers = vec![("Content-Type".into(), "application/json".into())];
        json.body = br#"{"grant_type":"authorization_code"}"#.to_vec();
        let request = apply_client_auth(json, &client(Some("s")), ClientAuth::Post).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["client_secret"], "s");
        assert_eq!(body["grant_type"], "authorization_code");
    }

    #[test]
    fn public_clients_send_only_their_id_and_secrets_are_required_otherwise() {
        let request = apply_client_auth(form_request(), &client(None), ClientAuth::None).unwrap();
        assert!(String::from_utf8(request.body).unwrap().ends_with("client_id=id+with+space"));
        assert!(request.headers.iter().all(|(n, _)| n != "authorization"));
        assert!(matches!(apply_client_auth(form_request(), &client(None), ClientAuth::Basic), Err(ExchangeError::MissingSecret { .. })));
    }

    #[test]
    fn host_credentials_win_and_a_provider_authorization_survives_only_without_client_auth() {
        let with_bearer = || {
            let mut request = form_request();
            request.headers.push(("Authorization".into(), "Bearer the-token".into()));
            request
        };
        let bearer = |request: &HttpRequest| {
            request.headers.iter().any(|(name, value)| name.eq_ignore_ascii_case("authorization") && value == "Bearer the-token")
        };
        for auth in [ClientAuth::Basic, ClientAuth::Post] {
            let request = apply_client_auth(with_bearer(), &client(Some("s")), auth).unwrap();
            assert!(!bearer(&request), "{auth:?} kept the provider's header: {:?}", request.headers);
        }
        let request = apply_client_auth(with_bearer(), &client(None), ClientAuth::None).unwrap();
        assert!(bearer(&request), "{:?}", request.headers);
    }
}
