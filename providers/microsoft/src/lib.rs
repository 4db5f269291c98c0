//! Microsoft Entra ID (placeholder being completed).

use latchkey_provider_sdk::*;

pub struct Microsoft;

impl Provider for Microsoft {
    fn info() -> ProviderInfo {
        ProviderInfo {
            id: "microsoft".into(),
            display_name: "Microsoft Entra ID".into(),
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
                authorization: "https://login.microsoftonline.com/common/oauth2/v2.0/authorize".into(),
                token: "https://login.microsoftonline.com/common/oauth2/v2.0/token".into(),
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

export_provider!(Microsoft);
