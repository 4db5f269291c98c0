//! Figma (REST API OAuth apps).
//!
//! What differs from the standard:
//! - Refreshing has its own endpoint, `POST /v1/oauth/refresh`, separate from the code exchange
//!   at `/v1/oauth/token`.
//! - The refresh answer has only a new access token and its lifetime; the refresh token is kept
//!   (`keep-previous`).
//! - Client credentials go in HTTP Basic on the api.figma.com endpoints (the old
//!   www.figma.com token URL took them in the body).
//! - The code exchange names the user: `user_id_string` is kept as context (`user_id`, the same
//!   number as a JSON number, is deprecated and dropped).
//! - Errors from the REST API use `{"status": 403, "err": "…"}` (or `"error": true` with a
//!   `message`) instead of an RFC 6749 `error` code; they are classified by HTTP status.
//! - There is no revocation endpoint: users remove the app from their account settings.
//!
//! Source: <https://developers.figma.com/docs/rest-api/oauth/>.

use latchkey_provider_sdk::standard::Fields;
use latchkey_provider_sdk::*;
use serde_json::Value;

pub struct Figma;

impl Provider for Figma {
    fn info() -> ProviderInfo {
        ProviderInfo {
            id: "figma".into(),
            display_name: "Figma".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            issuers: Vec::new(),
            config_keys: vec![common::redirect_port_key(
                "Port of the http://localhost:<port>/callback redirect URL registered for the Figma OAuth app.",
            )],
            documentation: "https://developers.figma.com/docs/rest-api/oauth/".into(),
        }
    }

    fn configure(config: &Config) -> Result<Flow, String> {
        common::registered_app(
            config,
            Endpoints {
                issuer: None,
                authorization: "https://www.figma.com/oauth".into(),
                token: "https://api.figma.com/v1/oauth/token".into(),
                refresh: Some("https://api.figma.com/v1/oauth/refresh".into()),
                revocation: None,
                userinfo: None,
                device_authorization: None,
            },
            Pkce::Supported,
            ClientAuth::Basic,
            RefreshPolicy::KeepPrevious,
        )
    }

    fn read_token_response(context: &TokenContext, response: &HttpResponse) -> Result<TokenSet, Failure> {
        let fields = standard::success_fields(response, figma_error)?;
        let mut tokens = standard::token_set(&fields, context)?;
        tokens.extra.retain(|(name, _)| name != "user_id");
        Ok(tokens)
    }
}

/// An RFC 6749 `error` code, or the REST API's `err` / `error: true` + `message`, classified by
/// status since it has no code.
fn figma_error(fields: &Fields, response: &HttpResponse) -> Option<Failure> {
    if matches!(fields.get("error"), Some(Value::String(_))) {
        return standard::error_in(fields, response);
    }
    let flagged = matches!(fields.get("error"), Some(Value::Bool(true)));
    let message = fields.string("err").or_else(|| flagged.then(|| fields.string("message")).flatten())?;
    let (kind, advice) = match response.status {
        400 => (FailureKind::Reauthorize, "Figma rejected the code or refresh token: authorize again"),
        401 | 403 => (FailureKind::Misconfigured, "Figma rejected the app's credentials: check the client id and secret"),
        429 | 500.. => (FailureKind::Retry, "Figma is rate limiting or unavailable"),
        _ => (FailureKind::Other, "Figma returned an error"),
    };
    let code = format!("http_{}", response.status);
    Some(Failure {
        kind,
        message: standard::describe(advice, &code, Some(&message)),
        code,
        retry_after: if kind == FailureKind::Retry { standard::retry_after(response) } else { None },
    })
}

export_provider!(Figma);
