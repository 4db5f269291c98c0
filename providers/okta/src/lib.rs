//! Okta: a custom authorization server (`default` or another id) or the org authorization
//! server, on the Okta domain given in the config.
//!
//! What differs from the standard:
//! - Endpoints are templated: `https://{domain}/oauth2/{authorization_server}/v1/…`, or
//!   `https://{domain}/oauth2/v1/…` for the org authorization server (whose tokens are only good
//!   for Okta's own APIs). The issuer follows the same rule.
//! - A refresh token needs the `offline_access` scope (added) and the refresh-token grant enabled
//!   in the app.
//! - Refresh requests carry the scopes again: the token endpoint narrows a refresh to what is
//!   asked for.
//! - Refresh-token rotation is an app setting with a grace period during which the previous
//!   token still works: `rotate`.
//! - Client authentication is an app setting; `client_secret_basic` is Okta's default.
//! - Redirect URIs must match exactly, so the loopback redirect has a fixed port.
//!
//! Sources: <https://developer.okta.com/docs/guides/implement-grant-type/authcode/main/>,
//! <https://developer.okta.com/docs/guides/refresh-tokens/main/>,
//! <https://developer.okta.com/docs/api/openapi/okta-oauth/guides/overview/>.

use latchkey_provider_sdk::*;

pub struct Okta;

const OFFLINE_ACCESS: &str = "offline_access";

impl Provider for Okta {
    fn info() -> ProviderInfo {
        ProviderInfo {
            id: "okta".into(),
            display_name: "Okta".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            issuers: Vec::new(),
            config_keys: vec![
                config_key("domain", "The Okta domain, such as dev-123456.okta.com or a custom domain.", None),
                config_key(
                    "authorization_server",
                    "Id of the custom authorization server (`default` is the one every org has), or `org` for the \
                     org authorization server.",
                    Some("default"),
                ),
                common::redirect_port_key("Port of the http://localhost:<port>/callback sign-in redirect URI registered in the Okta app."),
            ],
            documentation: "https://developer.okta.com/docs/guides/implement-grant-type/authcode/main/".into(),
        }
    }

    fn configure(config: &Config) -> Result<Flow, String> {
        let domain = config.host("domain", "dev-123456.okta.com")?;
        let server = config.get_or("authorization_server", "default");
        if server.is_empty() || !server.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!("config key `authorization_server` must be an authorization server id or `org`, not `{server}`"));
        }
        let (issuer, base) = match server {
            "org" => (format!("https://{domain}"), format!("https://{domain}/oauth2/v1")),
            id => (format!("https://{domain}/oauth2/{id}"), format!("https://{domain}/oauth2/{id}/v1")),
        };
        common::registered_app(
            config,
            Endpoints {
                issuer: Some(issuer),
                authorization: format!("{base}/authorize"),
                token: format!("{base}/token"),
                refresh: None,
                revocation: Some(RevocationEndpoint { url: format!("{base}/revoke"), client_auth: ClientAuth::Basic }),
                userinfo: Some(format!("{base}/userinfo")),
                device_authorization: None,
            },
            Pkce::Supported,
            ClientAuth::Basic,
            RefreshPolicy::Rotate,
        )
    }

    fn authorize_params(scopes: &[String], _config: &Config) -> Result<Params, String> {
        Ok(standard::scope_param(&common::with_scope(scopes, OFFLINE_ACCESS), " "))
    }

    /// A refresh names the scopes again.
    fn prepare_request(context: &TokenContext, mut request: HttpRequest) -> Result<HttpRequest, String> {
        if context.kind == RequestKind::RefreshToken && !context.requested_scopes.is_empty() {
            let mut form = standard::form_fields(&request);
            form.retain(|(name, _)| name != "scope");
            form.push(("scope".into(), common::with_scope(&context.requested_scopes, OFFLINE_ACCESS).join(" ")));
            request.body = standard::encode_form(&form);
        }
        Ok(request)
    }
}

export_provider!(Okta);
