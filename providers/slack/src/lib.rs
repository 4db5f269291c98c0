//! Slack (placeholder being completed).

use latchkey_provider_sdk::*;

pub struct Slack;

impl Provider for Slack {
    fn info() -> ProviderInfo {
        ProviderInfo {
            id: "slack".into(),
            display_name: "Slack".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            issuers: Vec::new(),
            config_keys: Vec::new(),
            documentation: String::new(),
        }
    }

    fn configure(_config: &Config) -> Result<Flow, String> {
        Ok(Flow {
            endpoints: Endpoints {
                issuer: None,
                authorization: "https://slack.com/oauth/v2/authorize".into(),
                token: "https://slack.com/api/oauth.v2.access".into(),
                refresh: None,
                revocation: None,
                userinfo: None,
            },
            scope_separator: " ".into(),
            pkce: Pkce::Supported,
            client_auth: ClientAuth::Post,
            refresh: RefreshPolicy::KeepPrevious,
            redirect: Redirect::Loopback(LoopbackRedirect { host: "127.0.0.1".into(), port: None, path: "/callback".into() }),
            send_resource: false,
        })
    }
}

export_provider!(Slack);
