//! Strava (API v3).
//!
//! What differs from the standard:
//! - Scopes are comma-separated, and the user may untick some on the consent screen. The
//!   accepted ones come back only in the callback's query (`scope=read,activity:read_all`), not
//!   in the token response, so the granted scopes are read from the callback.
//! - The token response gives an absolute expiry, `expires_at` (Unix seconds), next to
//!   `expires_in`; both are kept. Access tokens last six hours.
//! - The refresh token may change on a refresh; the latest must be kept (`rotate`).
//! - The code exchange embeds the athlete; its id is kept as context (the rest is profile data).
//! - Client credentials go in the body only. `approval_prompt=force` re-shows the consent screen
//!   (Strava's name for `prompt=consent`).
//! - Only the callback domain is registered, so `localhost` on any port and path works.
//! - Errors are Strava's own: `{"message": "Bad Request", "errors": [{"resource", "field",
//!   "code"}]}`, told apart by resource and field.
//! - Deauthorization (`POST /oauth/deauthorize`) takes an access token as `access_token`; it
//!   cannot take a refresh token, and contract 0.1.0 hands the provider the refresh token
//!   whenever there is one, so such a revocation is refused with advice instead of sent.
//!
//! Source: <https://developers.strava.com/docs/authentication/>.

use latchkey_provider_sdk::standard::Fields;
use latchkey_provider_sdk::*;
use serde_json::Value;

pub struct Strava;

const REFRESH_TOKEN_REFUSED: &str = "Strava deauthorizes with an access token, not a refresh token; revoke access at \
                                     https://www.strava.com/settings/apps to end the grant";

impl Provider for Strava {
    fn info() -> ProviderInfo {
        ProviderInfo {
            id: "strava".into(),
            display_name: "Strava".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            issuers: Vec::new(),
            config_keys: vec![config_key(
                "approval_prompt",
                "`auto` (skip the consent screen when already approved) or `force` (always show it).",
                Some("auto"),
            )],
            documentation: "https://developers.strava.com/docs/authentication/".into(),
        }
    }

    fn configure(config: &Config) -> Result<Flow, String> {
        approval_prompt(config)?;
        let endpoints = Endpoints::new("https://www.strava.com/oauth/authorize", "https://www.strava.com/oauth/token")
            .revocation("https://www.strava.com/oauth/deauthorize", ClientAuth::None);
        Ok(Flow::standard(endpoints)
            .scope_separator(",")
            .pkce(Pkce::Unsupported)
            .client_auth(ClientAuth::Post)
            .redirect(common::loopback("localhost", None))
            .send_resource(false))
    }

    fn authorize_params(scopes: &[String], config: &Config) -> Result<Params, String> {
        let mut params = standard::scope_param(scopes, ",");
        params.push(("approval_prompt".into(), approval_prompt(config)?.into()));
        Ok(params)
    }

    /// Deauthorization takes the access token as `access_token`.
    fn prepare_request(context: &TokenContext, request: HttpRequest) -> Result<HttpRequest, String> {
        common::reshape_revocation(context, request, "refresh_token", REFRESH_TOKEN_REFUSED, |mut request, token| {
            request.body = standard::encode_form(&vec![("access_token".to_string(), token)]);
            request
        })
    }

    fn read_token_response(context: &TokenContext, response: &HttpResponse) -> Result<TokenSet, Failure> {
        let fields = standard::success_fields(response, strava_error)?;
        let mut tokens = standard::token_set(&fields, context)?;
        tokens.expires_at = fields.integer("expires_at");
        if let Some((_, accepted)) = context.callback.iter().find(|(name, _)| name == "scope") {
            tokens.scopes = standard::split_scopes(accepted);
        }
        let athlete_id = fields.object("athlete").and_then(|athlete| athlete.string("id"));
        tokens.extra = athlete_id.map(|id| ("athlete_id".to_string(), id)).into_iter().collect();
        Ok(tokens)
    }

    fn read_revocation_response(response: &HttpResponse) -> Result<(), Failure> {
        common::read_revocation_with(response, strava_error)
    }
}

fn approval_prompt(config: &Config) -> Result<&str, String> {
    common::one_of(config, "approval_prompt", "auto", &["auto", "force"])
}

/// Strava's `{"message", "errors": [{"resource", "field", "code"}]}`, classified by what was
/// invalid; an RFC 6749 `error` is read too.
fn strava_error(fields: &Fields, response: &HttpResponse) -> Option<Failure> {
    if let Some(failure) = standard::error_in(fields, response) {
        return Some(failure);
    }
    let Some(Value::Array(errors)) = fields.get("errors") else { return None };
    let first = errors.first().and_then(Value::as_object);
    let text = |key: &str| first.and_then(|error| error.get(key)).and_then(Value::as_str).unwrap_or("");
    let (resource, field, code) = (text("resource"), text("field"), text("code"));
    let (kind, advice) = match (resource, field) {
        _ if response.status == 429 || response.status >= 500 => (FailureKind::Retry, "Strava is rate limiting or unavailable"),
        ("AuthorizationCode" | "RefreshToken" | "Athlete", _) | (_, "refresh_token" | "code") => {
            (FailureKind::Reauthorize, "Strava no longer accepts the grant: authorize again")
        }
        ("Application", _) | (_, "client_id" | "client_secret" | "redirect_uri") => {
            (FailureKind::Misconfigured, "Strava rejected the application's settings: check the client id, secret and callback domain")
        }
        _ => (FailureKind::Other, "Strava returned an error"),
    };
    let detail = format!("{resource} {field} {code}: {}", fields.string("message").unwrap_or_default());
    Some(Failure {
        kind,
        code: if code.is_empty() { format!("http_{}", response.status) } else { format!("{resource}.{field}.{code}") },
        message: format!("{advice} ({})", detail.trim()),
        retry_after: if kind == FailureKind::Retry { standard::retry_after(response) } else { None },
    })
}

export_provider!(Strava);
