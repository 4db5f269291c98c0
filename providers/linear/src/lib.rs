//! Linear.
//!
//! What differs from the standard:
//! - Scopes are comma-separated in the authorization URL, and `read` is always granted.
//! - `actor=app` makes the token act as the application instead of the user (for agents and
//!   bots); `prompt=consent` forces the consent screen (workspace switching).
//! - The answer's `scope` is a JSON array (`["read", "write"]`), not a string; a string is read
//!   too.
//! - Since April 2026 every application gets short-lived access tokens with refresh tokens; each
//!   refresh returns a new refresh token that replaces the old one: `rotate-single-use`.
//! - Client credentials go in the body; revocation at `/oauth/revoke` takes the RFC 7009 form.
//!
//! Source: <https://linear.app/developers/oauth-2-0-authentication>.

use latchkey_provider_sdk::*;
use serde_json::Value;

pub struct Linear;

impl Provider for Linear {
    fn info() -> ProviderInfo {
        ProviderInfo {
            id: "linear".into(),
            display_name: "Linear".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            issuers: Vec::new(),
            config_keys: vec![
                config_key(
                    "actor",
                    "`user` (the token acts as the user who authorized) or `app` (it acts as the application, \
                     for agents and bots; needs a workspace admin).",
                    Some("user"),
                ),
                config_key("prompt", "`consent` to show the consent screen every time (and let the user switch workspaces).", None),
                common::redirect_port_key(
                    "Port of the http://localhost:<port>/callback redirect URI registered in the Linear application.",
                ),
            ],
            documentation: "https://linear.app/developers/oauth-2-0-authentication".into(),
        }
    }

    fn configure(config: &Config) -> Result<Flow, String> {
        actor(config)?;
        let endpoints = Endpoints::new("https://linear.app/oauth/authorize", "https://api.linear.app/oauth/token")
            .revocation("https://api.linear.app/oauth/revoke", ClientAuth::Post);
        let flow = common::registered_app(config, endpoints, Pkce::Supported, ClientAuth::Post, RefreshPolicy::RotateSingleUse)?;
        Ok(flow.scope_separator(","))
    }

    fn authorize_params(scopes: &[String], config: &Config) -> Result<Params, String> {
        let mut params = standard::scope_param(scopes, ",");
        if actor(config)? == "app" {
            params.push(("actor".into(), "app".into()));
        }
        common::pass_through(&mut params, config, &["prompt"]);
        Ok(params)
    }

    fn read_token_response(context: &TokenContext, response: &HttpResponse) -> Result<TokenSet, Failure> {
        let fields = standard::success_fields(response, standard::error_in)?;
        let mut tokens = standard::token_set(&fields, context)?;
        if let Some(Value::Array(granted)) = fields.get("scope") {
            tokens.scopes = granted.iter().filter_map(Value::as_str).map(str::to_string).collect();
        }
        Ok(tokens)
    }
}

fn actor(config: &Config) -> Result<&str, String> {
    common::one_of(config, "actor", "user", &["user", "app"])
}

export_provider!(Linear);
