//! HubSpot (public apps).
//!
//! What differs from the standard:
//! - Client credentials must be in the form body (`client_secret_post`), never in the query.
//! - `optional_scopes` lists scopes installed only where the account's tier has them.
//! - Access tokens last 30 minutes; refresh tokens do not rotate and the refresh answer keeps the
//!   same one (`keep-previous`).
//! - Errors carry HubSpot's own `status` code (`BAD_AUTH_CODE`, `BAD_REFRESH_TOKEN`,
//!   `BAD_CLIENT_ID`, `BAD_CLIENT_SECRET`, `BAD_REDIRECT_URI`, …) next to a `message` and, on
//!   newer endpoints, an RFC 6749 `error` that is less precise (a dead refresh token comes as
//!   `invalid_request`); the `status` wins.
//! - Only a refresh token can be revoked, with `DELETE /oauth/v1/refresh-tokens/{token}` (the
//!   token in the path, no client credentials, answered with 204). An access token just expires,
//!   so revoking one is refused with that explanation.
//!
//! Sources: <https://developers.hubspot.com/docs/api/oauth-quickstart-guide>,
//! <https://developers.hubspot.com/docs/api-reference/legacy/authentication/oauth-tokens/v1/migration-guide>.

use latchkey_provider_sdk::standard::ErrorRule;
use latchkey_provider_sdk::standard::Fields;
use latchkey_provider_sdk::*;

pub struct HubSpot;

const ACCESS_TOKEN_REFUSED: &str = "HubSpot can only revoke refresh tokens; its access tokens expire within 30 minutes";

const BAD_APP: &str = "HubSpot rejected the app's credentials or redirect URL: check the client id, secret and redirect URL";

/// HubSpot's `status` codes, from its OAuth errors.
const HUBSPOT_STATUS: &[ErrorRule] = &[
    ErrorRule::new("BAD_AUTH_CODE", FailureKind::Reauthorize, "the authorization code is invalid or expired: authorize again"),
    ErrorRule::new("BAD_REFRESH_TOKEN", FailureKind::Reauthorize, "the refresh token is invalid or was revoked: authorize again"),
    ErrorRule::new("BAD_CLIENT_ID", FailureKind::Misconfigured, BAD_APP),
    ErrorRule::new("BAD_CLIENT_SECRET", FailureKind::Misconfigured, BAD_APP),
    ErrorRule::new("BAD_REDIRECT_URI", FailureKind::Misconfigured, BAD_APP),
    ErrorRule::new(
        "BAD_GRANT_TYPE",
        FailureKind::Misconfigured,
        "HubSpot rejected the grant type: this is a latchkey bug, please report it",
    ),
    ErrorRule::new(
        "MISSING_SCOPES",
        FailureKind::Misconfigured,
        "the app does not have the requested scopes: add them in the app's settings",
    ),
];

impl Provider for HubSpot {
    fn info() -> ProviderInfo {
        ProviderInfo {
            id: "hubspot".into(),
            display_name: "HubSpot".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            issuers: Vec::new(),
            config_keys: vec![
                config_key("optional_scopes", "Space-separated scopes to install only where the account's subscription has them.", None),
                common::redirect_port_key("Port of the http://localhost:<port>/callback redirect URL of the HubSpot app."),
            ],
            documentation: "https://developers.hubspot.com/docs/api/oauth-quickstart-guide".into(),
        }
    }

    fn configure(config: &Config) -> Result<Flow, String> {
        common::registered_app(
            config,
            Endpoints {
                issuer: None,
                authorization: "https://app.hubspot.com/oauth/authorize".into(),
                token: "https://api.hubapi.com/oauth/v1/token".into(),
                refresh: None,
                revocation: Some(RevocationEndpoint {
                    url: "https://api.hubapi.com/oauth/v1/refresh-tokens".into(),
                    client_auth: ClientAuth::None,
                }),
                userinfo: None,
                device_authorization: None,
            },
            Pkce::Supported,
            ClientAuth::Post,
            RefreshPolicy::KeepPrevious,
        )
    }

    fn authorize_params(scopes: &[String], config: &Config) -> Result<Params, String> {
        let mut params = standard::scope_param(scopes, " ");
        if let Some(optional) = config.get("optional_scopes").filter(|optional| !optional.trim().is_empty()) {
            params.push(("optional_scopes".into(), standard::split_scopes(optional).join(" ")));
        }
        Ok(params)
    }

    /// Revocation deletes the refresh token named in the path.
    fn prepare_request(context: &TokenContext, request: HttpRequest) -> Result<HttpRequest, String> {
        common::reshape_revocation(context, request, "access_token", ACCESS_TOKEN_REFUSED, |mut request, token| {
            request.method = "DELETE".into();
            request.url = format!("{}/{}", request.url.trim_end_matches('/'), path_segment(&token));
            common::without_body(&mut request);
            request
        })
    }

    fn read_token_response(context: &TokenContext, response: &HttpResponse) -> Result<TokenSet, Failure> {
        let fields = standard::success_fields(response, hubspot_error)?;
        standard::token_set(&fields, context)
    }

    fn read_revocation_response(response: &HttpResponse) -> Result<(), Failure> {
        common::read_revocation_with(response, hubspot_error)
    }
}

/// HubSpot's `status` code first, then an RFC 6749 `error`.
fn hubspot_error(fields: &Fields, response: &HttpResponse) -> Option<Failure> {
    let status = fields.string("status").filter(|status| HUBSPOT_STATUS.iter().any(|rule| rule.code == status));
    match status {
        Some(status) => Some(standard::classify_with(HUBSPOT_STATUS, &status, fields.string("message").as_deref())),
        None => standard::error_in(fields, response),
    }
}

/// A token as one path segment: refresh tokens are UUID-like, but nothing guarantees it.
fn path_segment(token: &str) -> String {
    token
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

export_provider!(HubSpot);
