//! Discord.
//!
//! What differs from the standard:
//! - Bot installation rides on the same flow: the `bot` scope with `permissions` (an integer
//!   bitfield) and optionally `guild_id`; `integration_type` chooses a server (0) or user (1)
//!   install; `prompt=none` skips the consent screen for an earlier grant.
//! - A bot or `webhook.incoming` authorization returns a `guild` or `webhook` object with the
//!   token. Their ids are kept as context; the webhook's own token and URL are credentials and are
//!   not.
//! - Refresh tokens rotate: each refresh returns a new one (`rotate-single-use`). Access tokens
//!   last a week.
//! - Client credentials work with HTTP Basic, as the documentation's examples send them; the
//!   revocation endpoint (`/oauth2/token/revoke`) takes them the same way and revokes the whole
//!   authorization.
//! - Rate limiting is 429 with `retry_after` (seconds, fractional) in the JSON body as well as the
//!   `Retry-After` header.
//!
//! Source: <https://discord.com/developers/docs/topics/oauth2>.

use latchkey_provider_sdk::standard::Fields;
use latchkey_provider_sdk::*;

pub struct Discord;

impl Provider for Discord {
    fn info() -> ProviderInfo {
        ProviderInfo {
            id: "discord".into(),
            display_name: "Discord".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            issuers: Vec::new(),
            config_keys: vec![
                config_key("permissions", "With the `bot` scope: the bot's permissions as Discord's integer bitfield.", None),
                config_key("guild_id", "With the `bot` scope: the server to preselect.", None),
                config_key("integration_type", "`0` to install to a server, `1` to install to the user.", None),
                config_key("prompt", "`consent` (always ask) or `none` (skip the screen for an earlier grant).", None),
                common::redirect_port_key(
                    "Port of the http://localhost:<port>/callback redirect registered in the application's OAuth2 settings.",
                ),
            ],
            documentation: "https://discord.com/developers/docs/topics/oauth2".into(),
        }
    }

    fn configure(config: &Config) -> Result<Flow, String> {
        common::registered_app(
            config,
            Endpoints {
                issuer: None,
                authorization: "https://discord.com/oauth2/authorize".into(),
                token: "https://discord.com/api/oauth2/token".into(),
                refresh: None,
                revocation: Some(RevocationEndpoint {
                    url: "https://discord.com/api/oauth2/token/revoke".into(),
                    client_auth: ClientAuth::Basic,
                }),
                userinfo: None,
                device_authorization: None,
            },
            Pkce::Supported,
            ClientAuth::Basic,
            RefreshPolicy::RotateSingleUse,
        )
    }

    fn authorize_params(scopes: &[String], config: &Config) -> Result<Params, String> {
        let mut params = standard::scope_param(scopes, " ");
        for key in ["permissions", "guild_id", "integration_type"] {
            if let Some(value) = config.get(key).filter(|value| !value.is_empty()) {
                if !value.chars().all(|c| c.is_ascii_digit()) {
                    return Err(format!("config key `{key}` must be a number, not `{value}`"));
                }
                params.push((key.into(), value.into()));
            }
        }
        common::pass_through(&mut params, config, &["prompt"]);
        Ok(params)
    }

    fn read_token_response(context: &TokenContext, response: &HttpResponse) -> Result<TokenSet, Failure> {
        let fields = standard::success_fields(response, discord_error)?;
        let mut tokens = standard::token_set(&fields, context)?;
        tokens.extra = installation_context(&fields);
        Ok(tokens)
    }
}

/// RFC 6749 errors, and a 429 whose wait is in the body (`retry_after`, seconds).
fn discord_error(fields: &Fields, response: &HttpResponse) -> Option<Failure> {
    if response.status == 429 {
        let retry_after = standard::retry_after(response)
            .or_else(|| fields.get("retry_after").and_then(|value| value.as_f64()).map(|seconds| seconds.ceil() as u32));
        return Some(Failure {
            kind: FailureKind::Retry,
            code: "rate_limited".into(),
            message: standard::describe("Discord is rate limiting this application", "rate_limited", fields.string("message").as_deref()),
            retry_after,
        });
    }
    standard::error_in(fields, response)
}

/// Ids of what the authorization installed, by allow-list: `webhook` also holds the webhook's
/// token and URL, which are credentials.
fn installation_context(fields: &Fields) -> Params {
    let mut extra = Params::new();
    for (object, keys) in [("guild", &["id", "name"][..]), ("webhook", &["id", "channel_id", "guild_id"][..])] {
        if let Some(nested) = fields.object(object) {
            for key in keys {
                if let Some(value) = nested.string(key) {
                    extra.push((format!("{object}_{key}"), value));
                }
            }
        }
    }
    extra
}

export_provider!(Discord);
