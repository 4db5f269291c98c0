//! Auth0: a tenant's authorization server, on the tenant or custom domain given in the config.
//!
//! What differs from the standard:
//! - Endpoints are on the tenant's domain (`/authorize`, `/oauth/token`, `/oauth/revoke`,
//!   `/userinfo`), and the issuer ends with a slash: `https://{domain}/`.
//! - Without `audience` the access token is opaque and only good for `/userinfo`; an API's
//!   identifier goes in the `audience` config key. `connection` skips the login page's identity
//!   provider choice, `organization` logs into an Auth0 Organization.
//! - A refresh token needs `offline_access` (added) and "Allow Offline Access" on the API.
//! - Refresh-token rotation comes with reuse detection: using a rotated-away refresh token
//!   revokes the whole family, so refreshes must never race (`rotate-single-use`).
//! - A wrong client secret is answered with 401 `access_denied` "Unauthorized", which here means
//!   a misconfigured client, not a user who declined; a dead refresh token is 403
//!   `invalid_grant` "Unknown or invalid refresh token."; rate limiting is 429
//!   `too_many_requests`.
//! - Client authentication is a per-application setting; Post is the default for regular web
//!   applications. `/oauth/revoke` revokes a refresh token (and the access tokens it issued).
//!
//! Sources: <https://auth0.com/docs/get-started/authentication-and-authorization-flow/authorization-code-flow/call-your-api-using-the-authorization-code-flow>,
//! <https://auth0.com/docs/secure/tokens/refresh-tokens/refresh-token-rotation>,
//! <https://auth0.com/docs/api/authentication>.

use latchkey_provider_sdk::standard::ErrorRule;
use latchkey_provider_sdk::*;

pub struct Auth0;

const OFFLINE_ACCESS: &str = "offline_access";

/// Auth0's codes, looked up before the RFC 6749 ones.
const AUTH0_ERRORS: &[ErrorRule] = &[
    ErrorRule::new("too_many_requests", FailureKind::Retry, "Auth0 is rate limiting this client"),
    ErrorRule::new("mfa_required", FailureKind::Reauthorize, "Auth0 requires multi-factor authentication: authorize again"),
];

/// What a 401 `access_denied` means at the token endpoint.
const BAD_CLIENT: ErrorRule = ErrorRule::new(
    "access_denied",
    FailureKind::Misconfigured,
    "Auth0 rejected the client id or secret: check the application's credentials and its token endpoint authentication method",
);

impl Provider for Auth0 {
    fn info() -> ProviderInfo {
        ProviderInfo {
            id: "auth0".into(),
            display_name: "Auth0".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            issuers: Vec::new(),
            config_keys: vec![
                config_key("domain", "The tenant's domain, such as example.us.auth0.com, or its custom domain.", None),
                config_key("audience", "Identifier of the API the access token is for (without it the token only reads /userinfo).", None),
                config_key("connection", "Connection to log in with, skipping the login page's choice (such as `github`).", None),
                config_key("organization", "Id or name of the Auth0 Organization to log into.", None),
                common::redirect_port_key("Port of the http://localhost:<port>/callback allowed callback URL of the Auth0 application."),
            ],
            documentation: "https://auth0.com/docs/api/authentication".into(),
        }
    }

    fn configure(config: &Config) -> Result<Flow, String> {
        let domain = config.host("domain", "example.us.auth0.com")?;
        let base = format!("https://{domain}");
        common::registered_app(
            config,
            Endpoints {
                issuer: Some(format!("{base}/")),
                authorization: format!("{base}/authorize"),
                token: format!("{base}/oauth/token"),
                refresh: None,
                revocation: Some(RevocationEndpoint { url: format!("{base}/oauth/revoke"), client_auth: ClientAuth::Post }),
                userinfo: Some(format!("{base}/userinfo")),
                device_authorization: None,
            },
            Pkce::Supported,
            ClientAuth::Post,
            RefreshPolicy::RotateSingleUse,
        )
    }

    fn authorize_params(scopes: &[String], config: &Config) -> Result<Params, String> {
        let mut params = standard::scope_param(&common::with_scope(scopes, OFFLINE_ACCESS), " ");
        common::pass_through(&mut params, config, &["audience", "connection", "organization"]);
        Ok(params)
    }

    fn read_token_response(context: &TokenContext, response: &HttpResponse) -> Result<TokenSet, Failure> {
        let fields = standard::success_fields(response, |fields, response| {
            let bad_client = [BAD_CLIENT];
            let rules: &[ErrorRule] = if response.status == 401 { &bad_client } else { AUTH0_ERRORS };
            standard::error_in_with(rules, fields, response)
        })?;
        standard::token_set(&fields, context)
    }
}

export_provider!(Auth0);
