//! GitLab: gitlab.com or a self-managed instance (GitLab is an OpenID Connect provider).
//!
//! What differs from the standard:
//! - Every endpoint is under the instance's base URL (`base_url`), which is also the issuer.
//! - Access tokens expire after two hours; each refresh returns a new refresh token and revokes
//!   the old one (`rotate-single-use`).
//! - `created_at` (Unix seconds) comes with every token and is kept as context; `token_type` is
//!   lower-case `bearer`.
//! - Client credentials go in the body, as the documentation's requests show. Redirect URIs
//!   match exactly, so the loopback redirect has a fixed port.
//! - Errors are Doorkeeper's RFC 6749 codes; a revoked or used refresh token is `invalid_grant`.
//!
//! Source: <https://docs.gitlab.com/api/oauth2/>.

use latchkey_provider_sdk::*;

pub struct GitLab;

const GITLAB_COM: &str = "https://gitlab.com";

impl Provider for GitLab {
    fn info() -> ProviderInfo {
        ProviderInfo {
            id: "gitlab".into(),
            display_name: "GitLab".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            issuers: vec![GITLAB_COM.into()],
            config_keys: vec![
                config_key("base_url", "The GitLab instance: https://gitlab.com or a self-managed one's address.", Some(GITLAB_COM)),
                common::redirect_port_key(
                    "Port of the http://127.0.0.1:<port>/callback redirect URI registered in the GitLab application.",
                ),
            ],
            documentation: "https://docs.gitlab.com/api/oauth2/".into(),
        }
    }

    fn configure(config: &Config) -> Result<Flow, String> {
        let base = config.base_url("base_url", GITLAB_COM)?;
        let endpoints = Endpoints::new(format!("{base}/oauth/authorize"), format!("{base}/oauth/token"))
            .issuer(base.clone())
            .revocation(format!("{base}/oauth/revoke"), ClientAuth::Post)
            .userinfo(format!("{base}/oauth/userinfo"));
        Ok(Flow::standard(endpoints)
            .pkce(Pkce::Supported)
            .client_auth(ClientAuth::Post)
            .refresh(RefreshPolicy::RotateSingleUse)
            .redirect(common::fixed_port_loopback(config, "127.0.0.1")?)
            .send_resource(false))
    }
}

export_provider!(GitLab);
