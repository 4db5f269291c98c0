//! Standard OAuth 2.0 behaviour: the defaults of every [`crate::Provider`] hook, the building
//! blocks that providers use in their overrides, and reading the bodies that authorization servers
//! send back: JSON (RFC 6749 §5.1), or `application/x-www-form-urlencoded` (GitHub without an
//! `Accept` header, Facebook's `text/plain`), as [`Fields`].

use serde_json::{Map, Value};

use crate::{
    ClientAuth, Endpoints, Failure, FailureKind, Flow, HttpRequest, HttpResponse, LoopbackRedirect, Params, Pkce, Redirect, RefreshPolicy,
    RevocationEndpoint, TokenContext, TokenSet,
};

/// Token-response fields that [`read_token_response`] maps onto [`TokenSet`]; everything else is
/// kept as extra context.
pub const TOKEN_FIELDS: &[&str] =
    &["access_token", "token_type", "expires_in", "refresh_token", "refresh_token_expires_in", "scope", "id_token"];

/// The `scope` parameter, or nothing when no scopes were requested (RFC 6749 §3.3 lets the server
/// apply its default).
pub fn scope_param(scopes: &[String], separator: &str) -> Params {
    if scopes.is_empty() { Vec::new() } else { vec![("scope".to_string(), scopes.join(separator))] }
}

/// Split a scope string on spaces and commas, dropping empty parts.
pub fn split_scopes(scope: &str) -> Vec<String> {
    scope.split([' ', ',']).filter(|part| !part.is_empty()).map(str::to_string).collect()
}

/// RFC 6749 §5.1 and §5.2: a JSON (or form-encoded) token response, or an error with `error` and
/// `error_description`. An `error` field means failure whatever the status code, because some
/// servers report errors with HTTP 200.
pub fn read_token_response(context: &TokenContext, response: &HttpResponse) -> Result<TokenSet, Failure> {
    let fields = success_fields(response, error_in)?;
    token_set(&fields, context)
}

/// The fields of a successful answer: a readable body in which `find_error` sees no error, with a
/// 2xx status. `find_error` is where providers plug in their own error shapes (Slack's
/// `ok: false`, Microsoft's AADSTS codes); [`error_in`] is the RFC 6749 §5.2 one.
pub fn success_fields(response: &HttpResponse, find_error: impl Fn(&Fields, &HttpResponse) -> Option<Failure>) -> Result<Fields, Failure> {
    let fields = Fields::parse(response).map_err(|failure| status_failure(response, failure))?;
    if let Some(failure) = find_error(&fields, response) {
        return Err(failure);
    }
    if !(200..300).contains(&response.status) {
        return Err(status_failure(
            response,
            Failure {
                kind: FailureKind::Other,
                code: format!("http_{}", response.status),
                message: format!("the authorization server answered HTTP {} without an OAuth error code", response.status),
                retry_after: None,
            },
        ));
    }
    Ok(fields)
}

/// Map the standard token fields of `fields` onto a [`TokenSet`]. A missing `scope` means the
/// requested scopes were granted (RFC 6749 §5.1).
pub fn token_set(fields: &Fields, context: &TokenContext) -> Result<TokenSet, Failure> {
    let access_token = fields.string("access_token").filter(|token| !token.is_empty()).ok_or_else(|| Failure {
        kind: FailureKind::Other,
        code: "missing_access_token".into(),
        message: "the token response has no access_token".into(),
        retry_after: None,
    })?;
    let scopes = match fields.string("scope") {
        Some(scope) => split_scopes(&scope),
        None => context.requested_scopes.clone(),
    };
    Ok(TokenSet {
        access_token,
        token_type: normalise_token_type(fields.string("token_type").as_deref()),
        // `expires_in: 0` means "does not expire" for some servers (Mailchimp).
        expires_in: fields.integer("expires_in").filter(|seconds| *seconds > 0),
        expires_at: None,
        refresh_token: fields.string("refresh_token").filter(|token| !token.is_empty()),
        refresh_token_expires_in: fields.integer("refresh_token_expires_in").filter(|seconds| *seconds > 0),
        scopes,
        id_token: fields.string("id_token"),
        extra: fields.extra(TOKEN_FIELDS),
    })
}

/// `bearer` in any case becomes `Bearer`, a missing type becomes `Bearer`; other values carry
/// meaning and are kept.
pub fn normalise_token_type(token_type: Option<&str>) -> String {
    match token_type {
        None | Some("") => "Bearer".to_string(),
        Some(value) if value.eq_ignore_ascii_case("bearer") => "Bearer".to_string(),
        Some(value) => value.to_string(),
    }
}

/// The failure described by an `error` field, if there is one.
pub fn error_in(fields: &Fields, response: &HttpResponse) -> Option<Failure> {
    error_in_with(&[], fields, response)
}

/// Like [`error_in`], with a provider's own error codes looked up before the standard ones.
pub fn error_in_with(rules: &[ErrorRule], fields: &Fields, response: &HttpResponse) -> Option<Failure> {
    let code = fields.string("error")?;
    let description = fields.string("error_description");
    let mut failure = classify_with(rules, &code, description.as_deref());
    if failure.kind == FailureKind::Retry {
        failure.retry_after = retry_after(response);
    }
    Some(failure)
}

/// What one error code means: what the host should do, and advice for the user. Providers keep a
/// table of these for their own codes; [`RFC6749_ERRORS`] is the standard one.
#[derive(Clone, Copy, Debug)]
pub struct ErrorRule {
    pub code: &'static str,
    pub kind: FailureKind,
    pub advice: &'static str,
}

impl ErrorRule {
    pub const fn new(code: &'static str, kind: FailureKind, advice: &'static str) -> ErrorRule {
        ErrorRule { code, kind, advice }
    }
}

const BAD_CLIENT: &str = "the authorization server rejected the client: check the client id and secret";
const BAD_REQUEST: &str = "the authorization server rejected the request: check the client's configuration";
const UNAVAILABLE: &str = "the authorization server is temporarily unavailable";

/// RFC 6749 §5.2 error codes (and the transient ones of §4.1.2.1 and RFC 8628 §3.5's), sorted into what
/// the user or host should do.
pub const RFC6749_ERRORS: &[ErrorRule] = &[
    ErrorRule::new(
        "invalid_grant",
        FailureKind::Reauthorize,
        "the grant is no longer valid (expired, revoked or already used): authorize again",
    ),
    ErrorRule::new("invalid_client", FailureKind::Misconfigured, BAD_CLIENT),
    ErrorRule::new("unauthorized_client", FailureKind::Misconfigured, BAD_CLIENT),
    ErrorRule::new("invalid_request", FailureKind::Misconfigured, BAD_REQUEST),
    ErrorRule::new("unsupported_grant_type", FailureKind::Misconfigured, BAD_REQUEST),
    ErrorRule::new("invalid_scope", FailureKind::Misconfigured, BAD_REQUEST),
    ErrorRule::new("redirect_uri_mismatch", FailureKind::Misconfigured, BAD_REQUEST),
    ErrorRule::new("temporarily_unavailable", FailureKind::Retry, UNAVAILABLE),
    ErrorRule::new("server_error", FailureKind::Retry, UNAVAILABLE),
    ErrorRule::new("slow_down", FailureKind::Retry, "the authorization server asks latchkey to poll more slowly"),
    ErrorRule::new("authorization_pending", FailureKind::Retry, "the sign-in on the other device is not finished yet"),
    ErrorRule::new("expired_token", FailureKind::Reauthorize, "the device code expired before the sign-in was finished: sign in again"),
    ErrorRule::new("access_denied", FailureKind::Reauthorize, "access was denied"),
];

/// RFC 6749 §5.2 error codes, sorted into what the user or host should do.
pub fn classify(code: &str, description: Option<&str>) -> Failure {
    classify_with(&[], code, description)
}

/// Classify `code` by the first rule that names it in `rules`, then in [`RFC6749_ERRORS`]; an
/// unknown code is [`FailureKind::Other`]. The message is the rule's advice with the code and the
/// server's description.
pub fn classify_with(rules: &[ErrorRule], code: &str, description: Option<&str>) -> Failure {
    let (kind, advice) = match rules.iter().chain(RFC6749_ERRORS).find(|rule| rule.code == code) {
        Some(rule) => (rule.kind, rule.advice),
        None => (FailureKind::Other, "the authorization server returned an error"),
    };
    Failure { kind, code: code.to_string(), message: describe(advice, code, description), retry_after: None }
}

/// A failure message: advice first, then the server's code and description.
pub fn describe(advice: &str, code: &str, description: Option<&str>) -> String {
    match description {
        Some(description) if !description.is_empty() => format!("{advice} ({code}: {description})"),
        _ => format!("{advice} ({code})"),
    }
}

/// Seconds from a numeric `Retry-After` header.
pub fn retry_after(response: &HttpResponse) -> Option<u32> {
    header(&response.headers, "retry-after")?.trim().parse().ok()
}

/// 5xx and 429 answers are transient whatever their body says.
pub fn status_failure(response: &HttpResponse, failure: Failure) -> Failure {
    if response.status >= 500 || response.status == 429 {
        Failure {
            kind: FailureKind::Retry,
            code: format!("http_{}", response.status),
            message: format!("the authorization server answered HTTP {}; try again later", response.status),
            retry_after: retry_after(response),
        }
    } else {
        failure
    }
}

/// RFC 7009 §2.2: any 2xx is success (an unknown token is not an error); 503 means retry.
pub fn read_revocation_response(response: &HttpResponse) -> Result<(), Failure> {
    if (200..300).contains(&response.status) {
        return Ok(());
    }
    let failure = Fields::parse(response).ok().and_then(|fields| error_in(&fields, response)).unwrap_or_else(|| Failure {
        kind: FailureKind::Other,
        code: format!("http_{}", response.status),
        message: format!("the revocation endpoint answered HTTP {}", response.status),
        retry_after: None,
    });
    Err(status_failure(response, failure))
}

/// Combine a stored token set with a refresh answer: a refresh token that did not come back is
/// kept (RFC 6749 §6 makes a new one optional), as are scopes and identity that the answer
/// leaves out; extra context is merged, the fresh values winning.
pub fn merge_refreshed(policy: RefreshPolicy, previous: TokenSet, fresh: TokenSet) -> TokenSet {
    // Every policy keeps the old refresh token when no new one arrives: under rotation that means
    // the server chose not to rotate this time, and dropping it would lose the grant.
    let _ = policy;
    let mut extra = previous.extra;
    for (key, value) in fresh.extra {
        match extra.iter_mut().find(|(existing, _)| *existing == key) {
            Some(entry) => entry.1 = value,
            None => extra.push((key, value)),
        }
    }
    TokenSet {
        access_token: fresh.access_token,
        token_type: fresh.token_type,
        expires_in: fresh.expires_in,
        expires_at: fresh.expires_at,
        refresh_token_expires_in: if fresh.refresh_token.is_some() {
            fresh.refresh_token_expires_in
        } else {
            fresh.refresh_token_expires_in.or(previous.refresh_token_expires_in)
        },
        refresh_token: fresh.refresh_token.or(previous.refresh_token),
        scopes: if fresh.scopes.is_empty() { previous.scopes } else { fresh.scopes },
        id_token: fresh.id_token.or(previous.id_token),
        extra,
    }
}

/// The name/value pairs of a form-encoded request body.
pub fn form_fields(request: &HttpRequest) -> Params {
    form_urlencoded::parse(&request.body).into_owned().collect()
}

/// Encode `params` as an `application/x-www-form-urlencoded` body.
pub fn encode_form(params: &Params) -> Vec<u8> {
    form_urlencoded::Serializer::new(String::new()).extend_pairs(params).finish().into_bytes()
}

/// Replace (or add) a header.
pub fn set_header(request: &mut HttpRequest, name: &str, value: &str) {
    request.headers.retain(|(key, _)| !key.eq_ignore_ascii_case(name));
    request.headers.push((name.to_string(), value.to_string()));
}

/// Re-encode a form request body as a JSON object (Atlassian and Notion document JSON bodies).
pub fn form_to_json(mut request: HttpRequest) -> HttpRequest {
    let object: Map<String, Value> = form_fields(&request).into_iter().map(|(key, value)| (key, Value::String(value))).collect();
    request.body = Value::Object(object).to_string().into_bytes();
    set_header(&mut request, "content-type", "application/json");
    request
}

// The flow, from the RFCs' defaults: a provider states only where it differs.

impl Endpoints {
    /// A provider's authorization and token endpoints, and no others yet.
    pub fn new(authorization: impl Into<String>, token: impl Into<String>) -> Endpoints {
        Endpoints {
            issuer: None,
            authorization: authorization.into(),
            token: token.into(),
            refresh: None,
            revocation: None,
            userinfo: None,
            device_authorization: None,
        }
    }

    /// The issuer identifier (checked against RFC 9207's `iss`).
    pub fn issuer(self, issuer: impl Into<String>) -> Endpoints {
        Endpoints { issuer: Some(issuer.into()), ..self }
    }

    /// Where refreshes go instead of the token endpoint (Figma).
    pub fn refresh_at(self, url: impl Into<String>) -> Endpoints {
        Endpoints { refresh: Some(url.into()), ..self }
    }

    /// The revocation endpoint, and how the client authenticates there.
    pub fn revocation(self, url: impl Into<String>, client_auth: ClientAuth) -> Endpoints {
        Endpoints { revocation: Some(RevocationEndpoint { url: url.into(), client_auth }), ..self }
    }

    /// The endpoint that says who signed in.
    pub fn userinfo(self, url: impl Into<String>) -> Endpoints {
        Endpoints { userinfo: Some(url.into()), ..self }
    }

    /// The device authorization endpoint (RFC 8628), on the token endpoint's origin.
    pub fn device_authorization(self, url: impl Into<String>) -> Endpoints {
        Endpoints { device_authorization: Some(url.into()), ..self }
    }
}

impl Flow {
    /// The flow the RFCs and the MCP authorization spec describe: space-separated scopes, PKCE
    /// required (RFC 7636), HTTP Basic client authentication (RFC 6749 §2.3.1), rotating refresh
    /// tokens (OAuth 2.1), a loopback redirect on any port of 127.0.0.1 (RFC 8252 §7.3), the
    /// RFC 8707 `resource` sent, and the host's refresh-ahead default. The methods below change
    /// one thing each.
    pub fn standard(endpoints: Endpoints) -> Flow {
        Flow {
            endpoints,
            scope_separator: " ".into(),
            pkce: Pkce::Required,
            client_auth: ClientAuth::Basic,
            refresh: RefreshPolicy::Rotate,
            redirect: Redirect::Loopback(LoopbackRedirect { host: "127.0.0.1".into(), port: None, path: "/callback".into() }),
            send_resource: true,
            refresh_ahead: None,
        }
    }

    pub fn scope_separator(self, separator: &str) -> Flow {
        Flow { scope_separator: separator.into(), ..self }
    }

    pub fn pkce(self, pkce: Pkce) -> Flow {
        Flow { pkce, ..self }
    }

    pub fn client_auth(self, client_auth: ClientAuth) -> Flow {
        Flow { client_auth, ..self }
    }

    pub fn refresh(self, refresh: RefreshPolicy) -> Flow {
        Flow { refresh, ..self }
    }

    pub fn redirect(self, redirect: Redirect) -> Flow {
        Flow { redirect, ..self }
    }

    /// Whether to send RFC 8707's `resource`; some providers reject it.
    pub fn send_resource(self, send_resource: bool) -> Flow {
        Flow { send_resource, ..self }
    }

    /// Refresh this many seconds before expiry, for a provider that rejects tokens early.
    pub fn refresh_ahead(self, seconds: u32) -> Flow {
        Flow { refresh_ahead: Some(seconds), ..self }
    }
}

// Reading response bodies.

/// The top-level fields of a response body, whatever its encoding.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fields {
    map: Map<String, Value>,
}

impl Fields {
    /// Parse `response`'s body. HTML and other non-token bodies become a [`Failure`] that says
    /// what arrived, since that almost always means a wrong endpoint URL.
    pub fn parse(response: &HttpResponse) -> Result<Fields, Failure> {
        let content_type = header(&response.headers, "content-type").unwrap_or("").to_ascii_lowercase();
        let text = String::from_utf8_lossy(&response.body);
        let trimmed = text.trim_start();
        if trimmed.starts_with('<') || content_type.contains("text/html") {
            return Err(unexpected_body(response.status, "an HTML page"));
        }
        if trimmed.starts_with('{') {
            return match serde_json::from_str::<Value>(trimmed) {
                Ok(Value::Object(map)) => Ok(Fields { map }),
                _ => Err(unexpected_body(response.status, "malformed JSON")),
            };
        }
        if trimmed.is_empty() {
            return Err(unexpected_body(response.status, "an empty body"));
        }
        if content_type.contains("json") {
            return Err(unexpected_body(response.status, "JSON that is not an object"));
        }
        if trimmed.contains('=') && !trimmed.contains(char::is_whitespace) {
            let map = form_urlencoded::parse(trimmed.as_bytes())
                .map(|(key, value)| (key.into_owned(), Value::String(value.into_owned())))
                .collect();
            return Ok(Fields { map });
        }
        Err(unexpected_body(response.status, "plain text"))
    }

    pub fn from_json(map: Map<String, Value>) -> Fields {
        Fields { map }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|value| !value.is_null())
    }

    /// A string field; numbers and booleans are given as text.
    pub fn string(&self, key: &str) -> Option<String> {
        match self.get(key)? {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            Value::Bool(flag) => Some(flag.to_string()),
            _ => None,
        }
    }

    /// A non-negative integer, sent as a number or as a string (Azure AD v1 and PayPal send
    /// `"3599"`).
    pub fn integer(&self, key: &str) -> Option<u64> {
        match self.get(key)? {
            Value::Number(number) => number.as_u64().or_else(|| number.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
            Value::String(text) => text.trim().parse().ok(),
            _ => None,
        }
    }

    /// A nested object (Slack's `authed_user`).
    pub fn object(&self, key: &str) -> Option<Fields> {
        match self.get(key)? {
            Value::Object(map) => Some(Fields { map: map.clone() }),
            _ => None,
        }
    }

    /// Every field not named in `known`, as text (objects and arrays as compact JSON): context to
    /// keep with the credential.
    pub fn extra(&self, known: &[&str]) -> Params {
        self.map
            .iter()
            .filter(|(key, value)| !known.contains(&key.as_str()) && !value.is_null())
            .map(|(key, value)| {
                let text = match value {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                (key.clone(), text)
            })
            .collect()
    }
}

/// The first header called `name`, compared case-insensitively.
pub fn header<'a>(headers: &'a Params, name: &str) -> Option<&'a str> {
    headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
}

fn unexpected_body(status: u16, what: &str) -> Failure {
    let kind = if status >= 500 || status == 429 { FailureKind::Retry } else { FailureKind::Misconfigured };
    Failure {
        kind,
        code: format!("http_{status}"),
        message: format!(
            "the token endpoint answered HTTP {status} with {what} instead of a token response; \
             check that token_endpoint points at the provider's OAuth token URL"
        ),
        retry_after: None,
    }
}
