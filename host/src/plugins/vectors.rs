//! Test vectors: a provider's documented request/response examples, run through the compiled
//! component in the same sandbox that production uses, and compared field by field.
//!
//! A vector is one JSON file. It names the hook it exercises, the hook's inputs, and what the hook
//! must return; `source` is the documentation the example comes from, so that a reader can check
//! the vector against the provider's own words. Built-in providers keep theirs in
//! `providers/<id>/vectors/*.json`; `latchkey provider test` runs a directory of them against any
//! component.
//!
//! # Format
//!
//! ```json
//! {
//!   "name": "code exchange: the documented success response",
//!   "source": "https://developers.google.com/identity/protocols/oauth2/web-server",
//!   "note": "optional: why the vector exists, for readers",
//!   "config": {"tenant": "contoso.onmicrosoft.com"},
//!   "hook": "read-token-response",
//!   "context": {"kind": "authorization-code", "requested_scopes": ["openid"], "callback": {}},
//!   "response": {"status": 200, "headers": {}, "json": {"access_token": "…", "token_type": "Bearer"}},
//!   "expect": {"token": {"access_token": "…", "scopes": ["openid"], "extra": {}}}
//! }
//! ```
//!
//! - `config` holds the catalog's configuration entries; the provider's defaults are filled in
//!   and unknown keys refused exactly as in production. It goes to every hook that takes a
//!   configuration, and into `context.config`.
//! - Name/value lists (`config`, `headers`, `form`, `callback`, `params`, `extra`) are JSON
//!   objects of strings; a name that occurs several times takes an array of strings.
//! - Bodies are one of `json` (any JSON value), `form` (an object, form-encoded) or `body` (text).
//!   A response with `json` or `form` and no `content-type` header gets the matching one.
//!
//! Per `hook`, the inputs and the one expectation in `expect`:
//!
//! | hook | inputs | `expect` |
//! |---|---|---|
//! | `configure` | `config` | `{"flow": {…}}` or `{"error": "text in the refusal"}` |
//! | `authorize-params` | `config`, `scopes` | `{"params": {…}}` or `{"error": "…"}` |
//! | `prepare-request` | `config`, `context`, `request` | `{"request": {…}}` or `{"error": "…"}` |
//! | `read-token-response` | `config`, `context`, `response` | `{"token": {…}}` or `{"failure": {…}}` |
//! | `read-revocation-response` | `response` | `{"revoked": true}` or `{"failure": {…}}` |
//! | `merge-refreshed` | `config`, `policy`, `previous`, `fresh` | `{"token": {…}}` |
//! | `post-token-plan` | `config`, `tokens` | `{"requests": [{…}, …]}` or `{"error": "…"}` |
//! | `post-token-read` | `config`, `tokens`, `responses` | `{"result": {…}}` or `{"failure": {…}}` |
//!
//! - `context.kind` is `authorization-code` (the default), `refresh-token`, `revocation`,
//!   `device-code` or `client-credentials` (the last two are new in contract 0.2; a 0.1
//!   component gets them as the host sends them: unreshaped, and read as `authorization-code`).
//! - `request` has `method` (default `POST`), `url`, `headers` and a body; `response` has
//!   `status` (default 200), `headers` and a body.
//! - `policy` is `keep-previous`, `rotate` or `rotate-single-use`; without it, the policy of the
//!   flow that `configure` returns for `config`, as the host does.
//! - `previous`, `fresh` and `tokens` are token sets: `access_token` is required, `token_type`
//!   defaults to `Bearer`, lists to empty and the rest to null; `responses` is an array of
//!   responses, one per planned request.
//! - The `post-token` hooks are new in contract 0.3. A plan is checked as the host checks it: its
//!   requests may only go to the origins of the endpoints of the flow `configure` returns.
//!
//! Expectations use the same shapes: a token set has `access_token`, `token_type`,
//! `expires_in`, `expires_at`, `refresh_token`, `refresh_token_expires_in`, `scopes`, `id_token`
//! and `extra`; a failure has `kind` (`reauthorize`, `misconfigured`, `retry`, `other`), `code`,
//! `retry_after` and `message_contains`; a flow has `endpoints` (`issuer`, `authorization`,
//! `token`, `refresh`, `revocation` as `{"url", "client_auth"}`, `userinfo`,
//! `device_authorization`), `scope_separator`, `pkce`, `client_auth` (`basic`, `post`, `none`,
//! `private-key-jwt`), `refresh`, `redirect` (`"https-only"` or `{"loopback": {"host", "port",
//! "path"}}`), `send_resource` and `refresh_ahead`; a post-token result has `account` (`{"subject",
//! "label"}` or null), `context` and `sites` (each `{"id", "name", "url", "context"}`).
//!
//! Comparison: an object checks only the fields it lists (`null` means "must be absent"), so a
//! vector states what its example shows. Name/value lists and JSON bodies are compared whole,
//! since an extra entry there (a leaked token in `extra`, a stray header) is itself a bug.
//! Arrays are compared in order. On a mismatch the [`Outcome`] lists every differing field with
//! the expected and actual value, and a hook that traps or panics reports the guest's message.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::bindings::{
    ClientAuth, Failure, FailureKind, Flow, HttpRequest, HttpResponse, Params, Pkce, PostTokenResult, Redirect, RefreshPolicy, RequestKind,
    TokenContext, TokenSet,
};
use super::provider::{CallError, Provider, request_origins};

/// A vector file that cannot be used, with the reason.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", .file.display())]
pub struct VectorError {
    pub file: PathBuf,
    pub message: String,
}

/// One loaded test vector.
#[derive(Clone, Debug)]
pub struct Vector {
    pub name: String,
    /// The documentation the example comes from.
    pub source: String,
    pub file: PathBuf,
    config: Params,
    case: Case,
    expect: Expect,
}

/// A hook and its inputs.
#[derive(Clone, Debug)]
enum Case {
    Configure,
    AuthorizeParams { scopes: Vec<String> },
    PrepareRequest { context: ContextInput, request: HttpRequest },
    ReadTokenResponse { context: ContextInput, response: HttpResponse },
    ReadRevocationResponse { response: HttpResponse },
    MergeRefreshed { policy: Option<RefreshPolicy>, previous: Box<TokenSet>, fresh: Box<TokenSet> },
    PostTokenPlan { tokens: Box<TokenSet> },
    PostTokenRead { tokens: Box<TokenSet>, responses: Vec<HttpResponse> },
}

/// What the hook must return: a value to compare against (under `key`), or a refusal or failure.
#[derive(Clone, Debug)]
struct Expect {
    key: String,
    value: Value,
}

/// A token context without its config, which comes from the vector's `config`.
#[derive(Clone, Debug)]
struct ContextInput {
    kind: RequestKind,
    requested_scopes: Vec<String>,
    callback: Params,
}

/// The result of running one vector.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub name: String,
    pub source: String,
    pub file: PathBuf,
    /// Every field that differs from the expectation.
    pub mismatches: Vec<Mismatch>,
    /// A hook that could not run to completion (trap, panic, invalid output), or a vector the
    /// component's configuration refused, with the host's explanation.
    pub hook_error: Option<String>,
}

/// One field whose value differs: where, what the vector expects, what the hook returned. Values
/// are compact JSON; `nothing` means absent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub path: String,
    pub expected: String,
    pub actual: String,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty() && self.hook_error.is_none()
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.passed() { "ok" } else { "FAIL" };
        writeln!(f, "{verdict} {}: {}", self.file.display(), self.name)?;
        if self.passed() {
            return Ok(());
        }
        writeln!(f, "  source: {}", self.source)?;
        for mismatch in &self.mismatches {
            writeln!(f, "  {}: expected {}, got {}", mismatch.path, mismatch.expected, mismatch.actual)?;
        }
        if let Some(error) = &self.hook_error {
            writeln!(f, "  hook failed: {error}")?;
        }
        Ok(())
    }
}

/// Every `*.json` file in `dir`, in name order. A missing or empty folder is an error: a test that
/// silently runs no vectors proves nothing.
pub fn load_dir(dir: &Path) -> Result<Vec<Vector>, VectorError> {
    let error = |message: String| VectorError { file: dir.to_path_buf(), message };
    let entries = std::fs::read_dir(dir).map_err(|e| error(format!("cannot read the vectors folder: {e}")))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json") && path.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(error("no *.json vector files in this folder".into()));
    }
    files.iter().map(|file| load_file(file)).collect()
}

pub fn load_file(file: &Path) -> Result<Vector, VectorError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| VectorError { file: file.to_path_buf(), message: format!("cannot read the file: {e}") })?;
    parse(&text, file)
}

/// Parse a vector from `text`; `file` only names it in messages.
pub fn parse(text: &str, file: &Path) -> Result<Vector, VectorError> {
    let error = |message: String| VectorError { file: file.to_path_buf(), message };
    let raw: RawVector = serde_json::from_str(text).map_err(|e| error(format!("not a test vector: {e}")))?;
    let name = raw.name.clone();
    let source = raw.source.clone();
    let config = match &raw.config {
        Some(value) => params_from_json(value, "config").map_err(error)?,
        None => Params::new(),
    };
    let (case, expect) = raw.into_case().map_err(error)?;
    Ok(Vector { name, source, file: file.to_path_buf(), config, case, expect })
}

/// The file as written, before the per-hook checks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVector {
    name: String,
    source: String,
    /// For readers of the file only.
    #[serde(default, rename = "note")]
    _note: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    config: Option<Value>,
    hook: String,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    context: Option<Value>,
    #[serde(default)]
    request: Option<Value>,
    #[serde(default)]
    response: Option<Value>,
    #[serde(default)]
    policy: Option<String>,
    #[serde(default)]
    previous: Option<Value>,
    #[serde(default)]
    fresh: Option<Value>,
    #[serde(default)]
    tokens: Option<Value>,
    #[serde(default)]
    responses: Option<Vec<Value>>,
    expect: Value,
}

const HOOKS: &[&str] = &[
    "configure",
    "authorize-params",
    "prepare-request",
    "read-token-response",
    "read-revocation-response",
    "merge-refreshed",
    "post-token-plan",
    "post-token-read",
];

impl RawVector {
    fn into_case(self) -> Result<(Case, Expect), String> {
        if self.source.trim().is_empty() || self.name.trim().is_empty() {
            return Err("`name` and `source` must not be empty: say what the vector checks and where the example comes from".into());
        }
        let inputs = [
            ("scopes", self.scopes.is_some()),
            ("context", self.context.is_some()),
            ("request", self.request.is_some()),
            ("response", self.response.is_some()),
            ("policy", self.policy.is_some()),
            ("previous", self.previous.is_some()),
            ("fresh", self.fresh.is_some()),
            ("tokens", self.tokens.is_some()),
            ("responses", self.responses.is_some()),
        ];
        let (used, expectations): (&[&str], &[&str]) = match self.hook.as_str() {
            "configure" => (&[], &["flow", "error"]),
            "authorize-params" => (&["scopes"], &["params", "error"]),
            "prepare-request" => (&["context", "request"], &["request", "error"]),
            "read-token-response" => (&["context", "response"], &["token", "failure"]),
            "read-revocation-response" => (&["response"], &["revoked", "failure"]),
            "merge-refreshed" => (&["policy", "previous", "fresh"], &["token"]),
            "post-token-plan" => (&["tokens"], &["requests", "error"]),
            "post-token-read" => (&["tokens", "responses"], &["result", "failure"]),
            other => return Err(format!("unknown hook `{other}`; hooks are {}", HOOKS.join(", "))),
        };
        if let Some((input, _)) = inputs.iter().find(|(input, given)| *given && !used.contains(input)) {
            return Err(format!("`{input}` is not an input of `{}` (its inputs: config, {})", self.hook, used.join(", ")));
        }
        let expect = expectation(&self.expect, expectations)?;
        let context = || context_from_json(self.context.as_ref());
        let required = |value: &Option<Value>, name: &str| value.clone().ok_or_else(|| format!("`{}` needs `{name}`", self.hook));
        let case = match self.hook.as_str() {
            "configure" => Case::Configure,
            "authorize-params" => Case::AuthorizeParams { scopes: self.scopes.clone().unwrap_or_default() },
            "prepare-request" => {
                Case::PrepareRequest { context: context()?, request: request_from_json(&required(&self.request, "request")?)? }
            }
            "read-token-response" => {
                Case::ReadTokenResponse { context: context()?, response: response_from_json(&required(&self.response, "response")?)? }
            }
            "read-revocation-response" => {
                Case::ReadRevocationResponse { response: response_from_json(&required(&self.response, "response")?)? }
            }
            "post-token-plan" => Case::PostTokenPlan { tokens: Box::new(token_from_json(&required(&self.tokens, "tokens")?, "tokens")?) },
            "post-token-read" => Case::PostTokenRead {
                tokens: Box::new(token_from_json(&required(&self.tokens, "tokens")?, "tokens")?),
                responses: self.responses.as_deref().unwrap_or_default().iter().map(response_from_json).collect::<Result<_, _>>()?,
            },
            _ => Case::MergeRefreshed {
                policy: self.policy.as_deref().map(|policy| parse_named(POLICIES, "policy", policy)).transpose()?,
                previous: Box::new(token_from_json(&required(&self.previous, "previous")?, "previous")?),
                fresh: Box::new(token_from_json(&required(&self.fresh, "fresh")?, "fresh")?),
            },
        };
        Ok((case, expect))
    }
}

/// `expect` must be an object with exactly one of `allowed`. The texts a refusal or a failure's
/// message must contain have to be strings: anything else would match every answer.
fn expectation(expect: &Value, allowed: &[&str]) -> Result<Expect, String> {
    let keys = || allowed.iter().map(|key| format!("`{key}`")).collect::<Vec<_>>().join(" or ");
    match expect.as_object() {
        Some(object) if object.len() == 1 => {
            let (key, value) = object.iter().next().expect("one entry");
            if !allowed.contains(&key.as_str()) {
                return Err(format!("`expect` has `{key}`; this hook expects {}", keys()));
            }
            if key == "error" && !value.is_string() {
                return Err(format!("`expect.error` must be a string, the text the refusal contains, not {value}"));
            }
            if let Some(needle) = value.get("message_contains").filter(|needle| !needle.is_string()) {
                return Err(format!("`expect.{key}.message_contains` must be a string, the text the message contains, not {needle}"));
            }
            Ok(Expect { key: key.clone(), value: value.clone() })
        }
        _ => Err(format!("`expect` must be an object with one key: {}", keys())),
    }
}

impl Vector {
    /// Run the vector through `provider`'s component.
    pub fn run(&self, provider: &Provider) -> Outcome {
        let mut outcome = Outcome {
            name: self.name.clone(),
            source: self.source.clone(),
            file: self.file.clone(),
            mismatches: Vec::new(),
            hook_error: None,
        };
        match self.actual(provider) {
            Ok((key, actual)) => compare_expectation(&self.expect, &key, &actual, &mut outcome.mismatches),
            Err(error) => outcome.hook_error = Some(error),
        }
        outcome
    }

    /// Call the hook; the answer as (expectation key, canonical JSON), or why the hook failed.
    /// A refusal is an answer (`error`) when the vector expects one.
    fn actual(&self, provider: &Provider) -> Result<(String, Value), String> {
        let config = provider.resolve_config(&self.config);
        let refusal = |result: Result<Value, CallError>, key: &str| match result {
            Ok(value) => Ok((key.to_string(), value)),
            Err(CallError::Refused { message, .. }) if self.expect.key == "error" => Ok(("error".into(), Value::String(message))),
            Err(error) => Err(error.to_string()),
        };
        match &self.case {
            Case::Configure => refusal(config.and_then(|config| provider.configure(&config)).map(|flow| flow_json(&flow)), "flow"),
            Case::AuthorizeParams { scopes } => {
                refusal(config.and_then(|config| provider.authorize_params(scopes, &config)).map(|params| params_json(&params)), "params")
            }
            Case::PrepareRequest { context, request } => {
                let prepared = config.and_then(|config| provider.prepare_request(&context.with(config), request, "the vector's endpoint"));
                let body_key = body_key(&self.expect.value);
                refusal(prepared.map(|request| request_json(&request, body_key)), "request")
            }
            Case::ReadTokenResponse { context, response } => {
                let config = config.map_err(|error| error.to_string())?;
                match provider.read_token_response(&context.with(config), response).map_err(|error| error.to_string())? {
                    Ok(tokens) => Ok(("token".into(), token_json(&tokens))),
                    Err(failure) => Ok(("failure".into(), failure_json(&failure))),
                }
            }
            Case::ReadRevocationResponse { response } => {
                match provider.read_revocation_response(response).map_err(|error| error.to_string())? {
                    Ok(()) => Ok(("revoked".into(), Value::Bool(true))),
                    Err(failure) => Ok(("failure".into(), failure_json(&failure))),
                }
            }
            Case::MergeRefreshed { policy, previous, fresh } => {
                let policy = match policy {
                    Some(policy) => *policy,
                    None => config.and_then(|config| provider.configure(&config)).map_err(|error| error.to_string())?.refresh,
                };
                let merged = provider.merge_refreshed(policy, previous, fresh).map_err(|error| error.to_string())?;
                Ok(("token".into(), token_json(&merged)))
            }
            Case::PostTokenPlan { tokens } => {
                let planned = config.and_then(|config| {
                    let origins = request_origins(&provider.configure(&config)?);
                    provider.post_token_plan(tokens, &config, &origins)
                });
                let expected = self.expect.value.as_array().cloned().unwrap_or_default();
                let requests = |requests: Vec<HttpRequest>| -> Value {
                    let json = requests
                        .iter()
                        .enumerate()
                        .map(|(i, request)| request_json(request, body_key(expected.get(i).unwrap_or(&Value::Null))));
                    Value::Array(json.collect())
                };
                refusal(planned.map(requests), "requests")
            }
            Case::PostTokenRead { tokens, responses } => {
                let config = config.map_err(|error| error.to_string())?;
                match provider.post_token_read(tokens, &config, responses).map_err(|error| error.to_string())? {
                    Ok(result) => Ok(("result".into(), post_token_json(&result))),
                    Err(failure) => Ok(("failure".into(), failure_json(&failure))),
                }
            }
        }
    }
}

impl ContextInput {
    fn with(&self, config: Params) -> TokenContext {
        TokenContext { kind: self.kind, requested_scopes: self.requested_scopes.clone(), callback: self.callback.clone(), config }
    }
}

// Comparison.

/// Fields whose object values are compared whole rather than field by field, at any depth below.
const WHOLE: &[&str] = &["params", "extra", "headers", "form", "json", "context"];

fn compare_expectation(expect: &Expect, actual_key: &str, actual: &Value, mismatches: &mut Vec<Mismatch>) {
    if expect.key != actual_key {
        // The hook answered the other way (a failure instead of tokens, say): show both in full.
        mismatches.push(Mismatch {
            path: actual_key.to_string(),
            expected: format!("no {actual_key} (expected {} {})", expect.key, expect.value),
            actual: actual.to_string(),
        });
        return;
    }
    if expect.key == "error" {
        let (expected, actual) = (expect.value.as_str().unwrap_or_default(), actual.as_str().unwrap_or_default());
        if !actual.contains(expected) {
            let expected = format!("a refusal containing {expected:?}");
            mismatches.push(Mismatch { path: "error".into(), expected, actual: format!("{actual:?}") });
        }
        return;
    }
    let whole = WHOLE.contains(&expect.key.as_str());
    compare(&expect.key, &expect.value, Some(actual), whole, mismatches);
}

fn compare(path: &str, expected: &Value, actual: Option<&Value>, whole: bool, mismatches: &mut Vec<Mismatch>) {
    match (expected, actual) {
        (Value::Object(expected), Some(Value::Object(actual))) => {
            for (key, expected_value) in expected {
                let child = format!("{path}.{key}");
                if key == "message_contains" {
                    contains(&child, expected_value, actual.get("message"), mismatches);
                    continue;
                }
                let whole = whole || WHOLE.contains(&key.as_str());
                compare(&child, expected_value, actual.get(key), whole, mismatches);
            }
            if whole {
                for (key, actual_value) in actual.iter().filter(|(key, _)| !expected.contains_key(*key)) {
                    let path = format!("{path}.{key}");
                    mismatches.push(Mismatch { path, expected: "nothing".into(), actual: actual_value.to_string() });
                }
            }
        }
        (Value::Array(expected), Some(Value::Array(actual))) if expected.len() == actual.len() => {
            for (index, (expected, actual)) in expected.iter().zip(actual).enumerate() {
                compare(&format!("{path}[{index}]"), expected, Some(actual), whole, mismatches);
            }
        }
        (expected, actual) if actual == Some(expected) => {}
        (Value::Null, None) => {}
        (expected, actual) => mismatches.push(Mismatch {
            path: path.to_string(),
            expected: expected.to_string(),
            actual: actual.map_or_else(|| "nothing".to_string(), Value::to_string),
        }),
    }
}

fn contains(path: &str, expected: &Value, actual: Option<&Value>, mismatches: &mut Vec<Mismatch>) {
    let needle = expected.as_str().unwrap_or_default();
    if !actual.and_then(Value::as_str).is_some_and(|text| text.contains(needle)) {
        mismatches.push(Mismatch {
            path: path.to_string(),
            expected: format!("text containing {expected}"),
            actual: actual.map_or_else(|| "nothing".to_string(), Value::to_string),
        });
    }
}

// Canonical JSON of the hooks' answers: the shapes the module documentation describes.

fn flow_json(flow: &Flow) -> Value {
    let endpoints = &flow.endpoints;
    let redirect = match &flow.redirect {
        Redirect::HttpsOnly => json!("https-only"),
        Redirect::Loopback(loopback) => json!({"loopback": {"host": loopback.host, "port": loopback.port, "path": loopback.path}}),
    };
    json!({
        "endpoints": {
            "issuer": endpoints.issuer,
            "authorization": endpoints.authorization,
            "token": endpoints.token,
            "refresh": endpoints.refresh,
            "revocation": endpoints.revocation.as_ref().map(|revocation| json!({
                "url": revocation.url,
                "client_auth": name_of(CLIENT_AUTH, revocation.client_auth),
            })),
            "userinfo": endpoints.userinfo,
            "device_authorization": endpoints.device_authorization,
        },
        "scope_separator": flow.scope_separator,
        "pkce": name_of(PKCE, flow.pkce),
        "client_auth": name_of(CLIENT_AUTH, flow.client_auth),
        "refresh": name_of(POLICIES, flow.refresh),
        "redirect": redirect,
        "send_resource": flow.send_resource,
        "refresh_ahead": flow.refresh_ahead,
    })
}

fn token_json(tokens: &TokenSet) -> Value {
    json!({
        "access_token": tokens.access_token,
        "token_type": tokens.token_type,
        "expires_in": tokens.expires_in,
        "expires_at": tokens.expires_at,
        "refresh_token": tokens.refresh_token,
        "refresh_token_expires_in": tokens.refresh_token_expires_in,
        "scopes": tokens.scopes,
        "id_token": tokens.id_token,
        "extra": params_json(&tokens.extra),
    })
}

fn post_token_json(result: &PostTokenResult) -> Value {
    let sites: Vec<Value> = result
        .sites
        .iter()
        .map(|site| json!({"id": site.id, "name": site.name, "url": site.url, "context": params_json(&site.context)}))
        .collect();
    json!({
        "account": result.account.as_ref().map(|account| json!({"subject": account.subject, "label": account.label})),
        "context": params_json(&result.context),
        "sites": sites,
    })
}

fn failure_json(failure: &Failure) -> Value {
    json!({
        "kind": name_of(FAILURE_KINDS, failure.kind),
        "code": failure.code,
        "message": failure.message,
        "retry_after": failure.retry_after,
    })
}

/// Which body field an expected request states (`form`, `json` or `body`); `body` when none.
fn body_key(expected: &Value) -> &'static str {
    ["form", "json"].into_iter().find(|key| expected.get(key).is_some()).unwrap_or("body")
}

/// The request with header names in lower case (they are case-insensitive) and its body decoded
/// the way the expectation states it.
fn request_json(request: &HttpRequest, body_key: &str) -> Value {
    let headers: Params = request.headers.iter().map(|(name, value)| (name.to_ascii_lowercase(), value.clone())).collect();
    let text = String::from_utf8_lossy(&request.body);
    let body = match body_key {
        "form" => params_json(&form_urlencoded::parse(&request.body).into_owned().collect()),
        "json" => serde_json::from_slice(&request.body).unwrap_or_else(|_| Value::String(format!("(not JSON) {text}"))),
        _ => Value::String(text.into_owned()),
    };
    let mut object = Map::new();
    object.insert("method".into(), json!(request.method));
    object.insert("url".into(), json!(request.url));
    object.insert("headers".into(), params_json(&headers));
    object.insert(body_key.into(), body);
    Value::Object(object)
}

/// Name/value pairs as an object; a repeated name holds an array of its values in order.
fn params_json(params: &Params) -> Value {
    let mut object = Map::new();
    for (name, value) in params {
        match object.get_mut(name) {
            None => {
                object.insert(name.clone(), Value::String(value.clone()));
            }
            Some(Value::Array(values)) => values.push(Value::String(value.clone())),
            Some(first) => *first = Value::Array(vec![first.take(), Value::String(value.clone())]),
        }
    }
    Value::Object(object)
}

// Reading the inputs.

fn params_from_json(value: &Value, what: &str) -> Result<Params, String> {
    let object = value.as_object().ok_or_else(|| format!("`{what}` must be an object of strings"))?;
    let mut params = Params::new();
    for (name, value) in object {
        match value {
            Value::String(text) => params.push((name.clone(), text.clone())),
            Value::Array(values) => {
                for value in values {
                    let text = value.as_str().ok_or_else(|| format!("`{what}.{name}` must hold strings"))?;
                    params.push((name.clone(), text.to_string()));
                }
            }
            _ => return Err(format!("`{what}.{name}` must be a string or an array of strings, not {value}")),
        }
    }
    Ok(params)
}

fn object_of<'a>(value: &'a Value, what: &str, allowed: &[&str]) -> Result<&'a Map<String, Value>, String> {
    let object = value.as_object().ok_or_else(|| format!("`{what}` must be an object"))?;
    if let Some(key) = object.keys().find(|key| !allowed.contains(&key.as_str())) {
        return Err(format!("`{what}` has an unknown field `{key}`; its fields are {}", allowed.join(", ")));
    }
    Ok(object)
}

fn context_from_json(value: Option<&Value>) -> Result<ContextInput, String> {
    let empty = json!({});
    let object = object_of(value.unwrap_or(&empty), "context", &["kind", "requested_scopes", "callback"])?;
    let kind = match object.get("kind").map(|kind| kind.as_str().ok_or("`context.kind` must be a string")) {
        Some(kind) => parse_named(REQUEST_KINDS, "context.kind", kind?)?,
        None => RequestKind::AuthorizationCode,
    };
    let requested_scopes = match object.get("requested_scopes") {
        Some(scopes) => serde_json::from_value(scopes.clone()).map_err(|_| "`context.requested_scopes` must be an array of strings")?,
        None => Vec::new(),
    };
    let callback = object.get("callback").map(|callback| params_from_json(callback, "context.callback")).transpose()?.unwrap_or_default();
    Ok(ContextInput { kind, requested_scopes, callback })
}

/// The body of a request or response, and the content type it implies.
fn body_from_json(object: &Map<String, Value>, what: &str) -> Result<(Vec<u8>, Option<&'static str>), String> {
    let given: Vec<&str> = ["json", "form", "body"].into_iter().filter(|key| object.contains_key(*key)).collect();
    if given.len() > 1 {
        return Err(format!("`{what}` has both `{}` and `{}`: give one body", given[0], given[1]));
    }
    Ok(match given.first().copied() {
        Some("json") => (object["json"].to_string().into_bytes(), Some("application/json")),
        Some("form") => {
            let form = params_from_json(&object["form"], &format!("{what}.form"))?;
            let encoded = form_urlencoded::Serializer::new(String::new()).extend_pairs(&form).finish();
            (encoded.into_bytes(), Some("application/x-www-form-urlencoded"))
        }
        Some(_) => {
            let text = object["body"].as_str().ok_or_else(|| format!("`{what}.body` must be a string"))?;
            (text.as_bytes().to_vec(), None)
        }
        None => (Vec::new(), None),
    })
}

fn headers_from_json(object: &Map<String, Value>, what: &str) -> Result<Params, String> {
    object.get("headers").map(|headers| params_from_json(headers, &format!("{what}.headers"))).transpose().map(Option::unwrap_or_default)
}

fn request_from_json(value: &Value) -> Result<HttpRequest, String> {
    let object = object_of(value, "request", &["method", "url", "headers", "json", "form", "body"])?;
    let (body, _) = body_from_json(object, "request")?;
    let text = |key: &str| object.get(key).and_then(Value::as_str);
    Ok(HttpRequest {
        method: text("method").unwrap_or("POST").to_string(),
        url: text("url").ok_or("`request.url` is required")?.to_string(),
        headers: headers_from_json(object, "request")?,
        body,
    })
}

fn response_from_json(value: &Value) -> Result<HttpResponse, String> {
    let object = object_of(value, "response", &["status", "headers", "json", "form", "body"])?;
    let (body, content_type) = body_from_json(object, "response")?;
    let mut headers = headers_from_json(object, "response")?;
    if let Some(content_type) = content_type
        && !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
    {
        headers.push(("content-type".into(), content_type.into()));
    }
    let status = match object.get("status") {
        Some(status) => {
            status.as_u64().and_then(|status| u16::try_from(status).ok()).ok_or("`response.status` must be an HTTP status code")?
        }
        None => 200,
    };
    Ok(HttpResponse { status, headers, body })
}

const TOKEN_FIELDS: &[&str] =
    &["access_token", "token_type", "expires_in", "expires_at", "refresh_token", "refresh_token_expires_in", "scopes", "id_token", "extra"];

fn token_from_json(value: &Value, what: &str) -> Result<TokenSet, String> {
    let object = object_of(value, what, TOKEN_FIELDS)?;
    let text = |key: &str| -> Result<Option<String>, String> {
        match object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(other) => Err(format!("`{what}.{key}` must be a string, not {other}")),
        }
    };
    let seconds = |key: &str| -> Result<Option<u64>, String> {
        match object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value.as_u64().map(Some).ok_or_else(|| format!("`{what}.{key}` must be a number of seconds, not {value}")),
        }
    };
    Ok(TokenSet {
        access_token: text("access_token")?.ok_or_else(|| format!("`{what}.access_token` is required"))?,
        token_type: text("token_type")?.unwrap_or_else(|| "Bearer".into()),
        expires_in: seconds("expires_in")?,
        expires_at: seconds("expires_at")?,
        refresh_token: text("refresh_token")?,
        refresh_token_expires_in: seconds("refresh_token_expires_in")?,
        scopes: match object.get("scopes") {
            Some(scopes) => serde_json::from_value(scopes.clone()).map_err(|_| format!("`{what}.scopes` must be an array of strings"))?,
            None => Vec::new(),
        },
        id_token: text("id_token")?,
        extra: object.get("extra").map(|extra| params_from_json(extra, &format!("{what}.extra"))).transpose()?.unwrap_or_default(),
    })
}

// The contract's enums by the names vectors use (the WIT names).

const PKCE: &[(&str, Pkce)] = &[("required", Pkce::Required), ("supported", Pkce::Supported), ("unsupported", Pkce::Unsupported)];
const CLIENT_AUTH: &[(&str, ClientAuth)] =
    &[("basic", ClientAuth::Basic), ("post", ClientAuth::Post), ("none", ClientAuth::None), ("private-key-jwt", ClientAuth::PrivateKeyJwt)];
const POLICIES: &[(&str, RefreshPolicy)] = &[
    ("keep-previous", RefreshPolicy::KeepPrevious),
    ("rotate", RefreshPolicy::Rotate),
    ("rotate-single-use", RefreshPolicy::RotateSingleUse),
];
const REQUEST_KINDS: &[(&str, RequestKind)] = &[
    ("authorization-code", RequestKind::AuthorizationCode),
    ("refresh-token", RequestKind::RefreshToken),
    ("revocation", RequestKind::Revocation),
    ("device-code", RequestKind::DeviceCode),
    ("client-credentials", RequestKind::ClientCredentials),
];
const FAILURE_KINDS: &[(&str, FailureKind)] = &[
    ("reauthorize", FailureKind::Reauthorize),
    ("misconfigured", FailureKind::Misconfigured),
    ("retry", FailureKind::Retry),
    ("other", FailureKind::Other),
];

fn name_of<T: PartialEq + Copy>(table: &[(&'static str, T)], value: T) -> &'static str {
    table.iter().find(|(_, known)| *known == value).map(|(name, _)| *name).expect("every enum case has a name")
}

fn parse_named<T: Copy>(table: &[(&'static str, T)], what: &str, text: &str) -> Result<T, String> {
    table.iter().find(|(name, _)| *name == text).map(|(_, value)| *value).ok_or_else(|| {
        let names: Vec<&str> = table.iter().map(|(name, _)| *name).collect();
        format!("`{what}` must be one of {}, not `{text}`", names.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mismatches(expected: Value, actual: Value) -> Vec<Mismatch> {
        let mut found = Vec::new();
        compare_expectation(&Expect { key: "token".into(), value: expected }, "token", &actual, &mut found);
        found
    }

    #[test]
    fn objects_check_only_the_listed_fields_but_lists_of_pairs_are_whole() {
        let actual = json!({"access_token": "a", "scopes": ["x"], "extra": {"team_id": "T1", "leak": "xoxp"}});
        assert!(mismatches(json!({"access_token": "a"}), actual.clone()).is_empty());
        let found = mismatches(json!({"access_token": "b", "extra": {"team_id": "T1"}}), actual);
        assert_eq!(
            found,
            vec![
                Mismatch { path: "token.access_token".into(), expected: "\"b\"".into(), actual: "\"a\"".into() },
                Mismatch { path: "token.extra.leak".into(), expected: "nothing".into(), actual: "\"xoxp\"".into() },
            ]
        );
    }

    #[test]
    fn null_means_absent_and_arrays_compare_in_order() {
        let actual = json!({"refresh_token": "r", "scopes": ["a", "b"]});
        let found = mismatches(json!({"refresh_token": null, "scopes": ["b", "a"], "id_token": null}), actual);
        let paths: Vec<&str> = found.iter().map(|mismatch| mismatch.path.as_str()).collect();
        assert_eq!(paths, ["token.refresh_token", "token.scopes[0]", "token.scopes[1]"]);
    }

    #[test]
    fn repeated_names_become_arrays_and_read_back() {
        let params: Params = vec![("a".into(), "1".into()), ("b".into(), "2".into()), ("a".into(), "3".into())];
        let value = params_json(&params);
        assert_eq!(value, json!({"a": ["1", "3"], "b": "2"}));
        let mut read = params_from_json(&value, "params").unwrap();
        read.sort();
        let mut expected = params;
        expected.sort();
        assert_eq!(read, expected);
    }

    #[test]
    fn vectors_with_misplaced_inputs_are_refused_with_the_reason() {
        let text = r#"{"name": "n", "source": "s", "hook": "configure", "scopes": ["a"], "expect": {"flow": {}}}"#;
        let error = parse(text, Path::new("v.json")).unwrap_err();
        assert!(error.message.contains("`scopes` is not an input of `configure`"), "{error}");
        let text = r#"{"name": "n", "source": "s", "hook": "read-token-response", "response": {}, "expect": {"tokens": {}}}"#;
        let error = parse(text, Path::new("v.json")).unwrap_err();
        assert!(error.message.contains("expects `token` or `failure`"), "{error}");
    }

    #[test]
    fn texts_to_look_for_must_be_strings_or_they_would_match_anything() {
        let text = r#"{"name": "n", "source": "s", "hook": "configure", "expect": {"error": {"contains": "pkce"}}}"#;
        let error = parse(text, Path::new("v.json")).unwrap_err();
        assert!(error.message.contains("`expect.error` must be a string"), "{error}");
        let text = r#"{"name": "n", "source": "s", "hook": "read-revocation-response", "response": {"status": 400},
                       "expect": {"failure": {"message_contains": ["client"]}}}"#;
        let error = parse(text, Path::new("v.json")).unwrap_err();
        assert!(error.message.contains("`expect.failure.message_contains` must be a string"), "{error}");
        let text = r#"{"name": "n", "source": "s", "hook": "configure", "expect": {"error": "pkce"}}"#;
        assert!(parse(text, Path::new("v.json")).is_ok());
    }
}
