//! Spotify (Web API, authorization code flow).
//!
//! What differs from the standard:
//! - Redirect URIs are strict: https, or a loopback IP literal (`http://127.0.0.1`); `localhost`
//!   is refused. A loopback URI registered without a port accepts any port.
//! - Client credentials go in HTTP Basic.
//! - A refresh answer may or may not carry a new refresh token; when it does, it replaces the
//!   old one (`rotate`), otherwise the old one is kept.
//! - `show_dialog=true` makes Spotify ask again even when the user approved before.
//! - There is no revocation endpoint: users remove access in their account's Apps page.
//!
//! Sources: <https://developer.spotify.com/documentation/web-api/tutorials/code-flow>,
//! <https://developer.spotify.com/documentation/web-api/tutorials/refreshing-tokens>,
//! <https://developer.spotify.com/documentation/web-api/concepts/redirect_uri>.

use latchkey_provider_sdk::*;

pub struct Spotify;

impl Provider for Spotify {
    fn info() -> ProviderInfo {
        ProviderInfo {
            id: "spotify".into(),
            display_name: "Spotify".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            issuers: Vec::new(),
            config_keys: vec![config_key(
                "show_dialog",
                "`true` to show the authorization dialog even when the user already approved the app.",
                None,
            )],
            documentation: "https://developer.spotify.com/documentation/web-api/tutorials/code-flow".into(),
        }
    }

    fn configure(config: &Config) -> Result<Flow, String> {
        config.flag("show_dialog")?;
        let endpoints = Endpoints::new("https://accounts.spotify.com/authorize", "https://accounts.spotify.com/api/token");
        Ok(Flow::standard(endpoints).pkce(Pkce::Supported).send_resource(false))
    }

    fn authorize_params(scopes: &[String], config: &Config) -> Result<Params, String> {
        let mut params = standard::scope_param(scopes, " ");
        if config.flag("show_dialog")? {
            params.push(("show_dialog".into(), "true".into()));
        }
        Ok(params)
    }
}

export_provider!(Spotify);
