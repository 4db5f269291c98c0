//! Asana.
//!
//! What differs from the standard:
//! - The OAuth endpoints live under `https://app.asana.com/-/` (`oauth_authorize`, `oauth_token`,
//!   `oauth_revoke`).
//! - The token response embeds the user in a `data` object (`gid`, `name`, `email`); its `gid`
//!   and `name` are kept as context (`user_gid`, `user_name`), not the email.
//! - Access tokens last an hour; the refresh answer omits the refresh token, which does not
//!   expire and is kept (`keep-previous`).
//! - Scopes are `default` or granular ones (`tasks:read`), space-separated; client credentials go
//!   in the body, also for revocation.
//!
//! Source: <https://developers.asana.com/docs/oauth>.

use latchkey_provider_sdk::*;

pub struct Asana;

impl Provider for Asana {
    fn info() -> ProviderInfo {
        ProviderInfo {
            id: "asana".into(),
            display_name: "Asana".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            issuers: vec!["https://app.asana.com/api/1.0".into()],
            config_keys: vec![common::redirect_port_key("Port of the http://localhost:<port>/callback redirect URL of the Asana app.")],
            documentation: "https://developers.asana.com/docs/oauth".into(),
        }
    }

    fn configure(config: &Config) -> Result<Flow, String> {
        common::registered_app(
            config,
            Endpoints {
                issuer: Some("https://app.asana.com/api/1.0".into()),
                authorization: "https://app.asana.com/-/oauth_authorize".into(),
                token: "https://app.asana.com/-/oauth_token".into(),
                refresh: None,
                revocation: Some(RevocationEndpoint { url: "https://app.asana.com/-/oauth_revoke".into(), client_auth: ClientAuth::Post }),
                userinfo: Some("https://app.asana.com/api/1.0/openid_connect/userinfo".into()),
                device_authorization: None,
            },
            Pkce::Supported,
            ClientAuth::Post,
            RefreshPolicy::KeepPrevious,
        )
    }

    fn read_token_response(context: &TokenContext, response: &HttpResponse) -> Result<TokenSet, Failure> {
        let fields = standard::success_fields(response, standard::error_in)?;
        let mut tokens = standard::token_set(&fields, context)?;
        tokens.extra.retain(|(name, _)| name != "data");
        if let Some(user) = fields.object("data") {
            for (key, name) in [("gid", "user_gid"), ("name", "user_name")] {
                if let Some(value) = user.string(key) {
                    tokens.extra.push((name.into(), value));
                }
            }
        }
        Ok(tokens)
    }
}

export_provider!(Asana);
