//! X (formerly Twitter): OAuth 2.0 authorization code flow with PKCE, API v2.
//!
//! What differs from the standard:
//! - PKCE is required.
//! - Confidential clients must authenticate with HTTP Basic; public clients send only their
//!   `client_id` in the body (`client_type`).
//! - A refresh token only comes with the `offline.access` scope (with a dot), which is added.
//!   Refresh tokens rotate with every refresh: `rotate-single-use`. Access tokens live two hours.
//! - `token_type` is lower-case `bearer`.
//! - A refresh token that no longer works is answered with `invalid_request` "Value passed for
//!   the token was invalid." rather than `invalid_grant`, so on a refresh that answer means
//!   authorize again.
//! - Revocation answers `{"revoked": true}`; `false` is a failure.
//!
//! Sources: <https://docs.x.com/fundamentals/authentication/oauth-2-0/authorization-code>,
//! <https://docs.x.com/fundamentals/authentication/oauth-2-0/user-access-token>.

use latchkey_provider_sdk::standard::ErrorRule;
use latchkey_provider_sdk::standard::Fields;
use latchkey_provider_sdk::*;
use serde_json::Value;

pub struct X;

const OFFLINE_ACCESS: &str = "offline.access";

/// X's answer to a dead refresh token, on a refresh only.
const DEAD_REFRESH_TOKEN: ErrorRule = ErrorRule::new(
    "invalid_request",
    FailureKind::Reauthorize,
    "X no longer accepts the refresh token (used, revoked or expired): authorize again",
);

impl Provider for X {
    fn info() -> ProviderInfo {
        ProviderInfo {
            id: "x".into(),
            display_name: "X (Twitter)".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            issuers: Vec::new(),
            config_keys: vec![
                config_key(
                    "client_type",
                    "`confidential` (a web app or automated app with a client secret, sent with HTTP Basic) or \
                     `public` (a native app or single-page app: client id only).",
                    Some("confidential"),
                ),
                common::redirect_port_key("Port of the http://127.0.0.1:<port>/callback callback URI registered in the X app."),
            ],
            documentation: "https://docs.x.com/fundamentals/authentication/oauth-2-0/authorization-code".into(),
        }
    }

    fn configure(config: &Config) -> Result<Flow, String> {
        let client_auth = match common::one_of(config, "client_type", "confidential", &["confidential", "public"])? {
            "public" => ClientAuth::None,
            _ => ClientAuth::Basic,
        };
        let endpoints = Endpoints::new("https://x.com/i/oauth2/authorize", "https://api.x.com/2/oauth2/token")
            .revocation("https://api.x.com/2/oauth2/revoke", client_auth);
        Ok(Flow::standard(endpoints)
            .client_auth(client_auth)
            .refresh(RefreshPolicy::RotateSingleUse)
            .redirect(common::fixed_port_loopback(config, "127.0.0.1")?)
            .send_resource(false))
    }

    fn authorize_params(scopes: &[String], _config: &Config) -> Result<Params, String> {
        Ok(standard::scope_param(&common::with_scope(scopes, OFFLINE_ACCESS), " "))
    }

    fn read_token_response(context: &TokenContext, response: &HttpResponse) -> Result<TokenSet, Failure> {
        let refresh = context.kind == RequestKind::RefreshToken;
        let fields = standard::success_fields(response, |fields, response| {
            let rules: &[ErrorRule] = if refresh { &[DEAD_REFRESH_TOKEN] } else { &[] };
            standard::error_in_with(rules, fields, response)
        })?;
        standard::token_set(&fields, context)
    }

    fn read_revocation_response(response: &HttpResponse) -> Result<(), Failure> {
        standard::read_revocation_response(response)?;
        match Fields::parse(response).ok().and_then(|fields| fields.get("revoked").cloned()) {
            Some(Value::Bool(false)) => Err(Failure {
                kind: FailureKind::Other,
                code: "not_revoked".into(),
                message: "X answered that the token was not revoked".into(),
                retry_after: None,
            }),
            _ => Ok(()),
        }
    }
}

export_provider!(X);
