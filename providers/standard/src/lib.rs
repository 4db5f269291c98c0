//! Standard OAuth 2.0 and OpenID Connect, with nothing provider-specific: the provider latchkey
//! uses for any authorization server that no other provider claims (an MCP server's own
//! authorization server found by discovery, Keycloak, oidc-provider, …). Every hook is the SDK
//! default; endpoints come from the catalog's `server_metadata` or from discovery.

use latchkey_provider_sdk::*;

pub struct Standard;

impl Provider for Standard {
    fn info() -> ProviderInfo {
        ProviderInfo {
            id: "standard".into(),
            display_name: "Standard OAuth 2.0 / OpenID Connect".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            issuers: Vec::new(),
            config_keys: Vec::new(),
            documentation: "https://www.rfc-editor.org/rfc/rfc6749".into(),
        }
    }

    fn configure(_config: &Config) -> Result<Flow, String> {
        // Empty endpoints: they come from the catalog's server_metadata or from discovery.
        Ok(Flow::standard(Endpoints::new("", "")))
    }
}

export_provider!(Standard);
