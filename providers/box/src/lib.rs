//! Box (OAuth 2.0 with client-side authentication).
//!
//! What differs from the standard:
//! - Client credentials go in the body, at the token and at the revocation endpoint.
//! - Scopes are optional (the app's configured scopes apply); PKCE is not part of Box's flow.
//! - Access tokens last an hour. Refresh tokens last 60 days and work once: every refresh
//!   returns a new one (`rotate-single-use`).
//! - `token_type` is lower-case `bearer`; `restricted_to` (the items a down-scoped token may
//!   reach) is long and not needed to use the token, so it is not kept.
//! - Errors are RFC 6749 codes; an expired refresh token is `invalid_grant` "Refresh token has
//!   expired".
//!
//! Sources: <https://developer.box.com/guides/authentication/oauth2/>,
//! <https://developer.box.com/reference/post-oauth2-token/>,
//! <https://developer.box.com/guides/authentication/tokens/refresh/>.

use latchkey_provider_sdk::standard::TOKEN_FIELDS;
use latchkey_provider_sdk::*;

pub struct BoxProvider;

impl Provider for BoxProvider {
    fn info() -> ProviderInfo {
        ProviderInfo {
            id: "box".into(),
            display_name: "Box".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            issuers: Vec::new(),
            config_keys: vec![common::redirect_port_key(
                "Port of the http://localhost:<port>/callback redirect URI set in the Box app's configuration.",
            )],
            documentation: "https://developer.box.com/guides/authentication/oauth2/".into(),
        }
    }

    fn configure(config: &Config) -> Result<Flow, String> {
        common::registered_app(
            config,
            Endpoints {
                issuer: None,
                authorization: "https://account.box.com/api/oauth2/authorize".into(),
                token: "https://api.box.com/oauth2/token".into(),
                refresh: None,
                revocation: Some(RevocationEndpoint { url: "https://api.box.com/oauth2/revoke".into(), client_auth: ClientAuth::Post }),
                userinfo: None,
                device_authorization: None,
            },
            Pkce::Unsupported,
            ClientAuth::Post,
            RefreshPolicy::RotateSingleUse,
        )
    }

    fn read_token_response(context: &TokenContext, response: &HttpResponse) -> Result<TokenSet, Failure> {
        let fields = standard::success_fields(response, standard::error_in)?;
        let mut tokens = standard::token_set(&fields, context)?;
        let known: Vec<&str> = TOKEN_FIELDS.iter().copied().chain(["restricted_to"]).collect();
        tokens.extra = fields.extra(&known);
        Ok(tokens)
    }
}

export_provider!(BoxProvider);
