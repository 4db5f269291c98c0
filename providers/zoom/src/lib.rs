//! Zoom: OAuth apps of the Zoom App Marketplace (user-managed and admin-managed).
//!
//! What differs from the standard:
//! - The token and revocation endpoints take HTTP Basic client credentials.
//! - Scopes are set in the app; the `scope` parameter is optional.
//! - Refresh tokens rotate: each refresh returns a new one and the old one stops working
//!   (`rotate-single-use`). Access tokens last an hour; `api_url` is kept as context.
//! - Errors come in two shapes: Zoom's numeric codes 4700–4741 with a `message` (or `reason`),
//!   which are mapped onto failure kinds below, and OAuth `error` with Zoom's `reason` instead of
//!   `error_description`. A dead refresh token is `invalid_request` or `invalid_grant` with the
//!   reason "Invalid Token!".
//! - `token_type` is lower-case `bearer`. Revocation at `/oauth/revoke` answers
//!   `{"status": "success"}`.
//!
//! Sources: <https://developers.zoom.us/docs/integrations/oauth/>,
//! <https://developers.zoom.us/docs/integrations/oauth-error-messages/>.

use latchkey_provider_sdk::standard::ErrorRule;
use latchkey_provider_sdk::standard::Fields;
use latchkey_provider_sdk::*;

pub struct Zoom;

const BAD_CLIENT: &str = "Zoom rejected the client id or secret: check them in the app's App Credentials";
const BAD_REQUEST: &str = "Zoom rejected the request: this is a latchkey or provider bug, please report it";

/// Zoom's OAuth error codes, from its error-message table.
const ZOOM_CODES: &[ErrorRule] = &[
    ErrorRule::new("4700", FailureKind::Other, "Zoom's OAuth service failed; report the tracking id to Zoom"),
    ErrorRule::new("4702", FailureKind::Misconfigured, BAD_CLIENT),
    ErrorRule::new("4704", FailureKind::Misconfigured, BAD_CLIENT),
    ErrorRule::new("4705", FailureKind::Misconfigured, BAD_REQUEST),
    ErrorRule::new("4706", FailureKind::Misconfigured, BAD_CLIENT),
    ErrorRule::new(
        "4709",
        FailureKind::Misconfigured,
        "the redirect URI does not match the app's OAuth redirect URL: add http://localhost:<redirect_port>/callback",
    ),
    ErrorRule::new("4711", FailureKind::Reauthorize, "the refresh token's scopes no longer match the app's scopes: authorize again"),
    ErrorRule::new("4717", FailureKind::Misconfigured, "the Zoom app has been disabled: enable it in the Marketplace"),
];

impl Provider for Zoom {
    fn info() -> ProviderInfo {
        ProviderInfo {
            id: "zoom".into(),
            display_name: "Zoom".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            issuers: Vec::new(),
            config_keys: vec![common::redirect_port_key(
                "Port of the http://localhost:<port>/callback OAuth redirect URL (and allow list entry) of the Zoom app.",
            )],
            documentation: "https://developers.zoom.us/docs/integrations/oauth/".into(),
        }
    }

    fn configure(config: &Config) -> Result<Flow, String> {
        common::registered_app(
            config,
            Endpoints {
                issuer: None,
                authorization: "https://zoom.us/oauth/authorize".into(),
                token: "https://zoom.us/oauth/token".into(),
                refresh: None,
                revocation: Some(RevocationEndpoint { url: "https://zoom.us/oauth/revoke".into(), client_auth: ClientAuth::Basic }),
                userinfo: None,
                device_authorization: None,
            },
            Pkce::Supported,
            ClientAuth::Basic,
            RefreshPolicy::RotateSingleUse,
        )
    }

    fn read_token_response(context: &TokenContext, response: &HttpResponse) -> Result<TokenSet, Failure> {
        let fields = standard::success_fields(response, |fields, response| zoom_error(fields, response, context.kind))?;
        standard::token_set(&fields, context)
    }

    fn read_revocation_response(response: &HttpResponse) -> Result<(), Failure> {
        common::read_revocation_with(response, |fields, response| zoom_error(fields, response, RequestKind::Revocation))
    }
}

/// A numeric Zoom `code`, or an OAuth `error` explained by `reason`.
fn zoom_error(fields: &Fields, response: &HttpResponse, kind: RequestKind) -> Option<Failure> {
    if let Some(code) = fields.integer("code").filter(|code| (4700..4800).contains(code)) {
        let message = fields.string("message").or_else(|| fields.string("reason"));
        return Some(standard::classify_with(ZOOM_CODES, &code.to_string(), message.as_deref()));
    }
    let code = fields.string("error")?;
    let reason = fields.string("error_description").or_else(|| fields.string("reason"));
    let dead_refresh_token = kind == RequestKind::RefreshToken && reason.as_deref() == Some("Invalid Token!");
    let rules: &[ErrorRule] = if dead_refresh_token { &[DEAD_REFRESH_TOKEN] } else { &[] };
    let mut failure = standard::classify_with(rules, &code, reason.as_deref());
    if failure.kind == FailureKind::Retry {
        failure.retry_after = standard::retry_after(response);
    }
    Some(failure)
}

/// Zoom's answer to a refresh token that was already used or revoked, whatever its `error`.
const DEAD_REFRESH_TOKEN: ErrorRule =
    ErrorRule::new("invalid_request", FailureKind::Reauthorize, "the refresh token was already used or revoked: authorize again");

export_provider!(Zoom);
