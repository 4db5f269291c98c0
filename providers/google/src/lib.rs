//! Google (placeholder being completed).

use latchkey_provider_sdk::*;

pub struct Google;

impl Provider for Google {
    fn info() -> ProviderInfo {
        ProviderInfo {
            id: "google".into(),
            display_name: "Google".into(),
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
                authorization: "https://accounts.google.com/o/oauth2/v2/auth".into(),
                token: "https://oauth2.googleapis.com/token".into(),
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

export_provider!(Google);
