//! Google (OAuth 2.0 for web-server and installed apps, plus OpenID Connect).
//!
//! Google is close to the standard; what differs:
//! - A refresh token only comes back for `access_type=offline`, and only on first consent unless
//!   `prompt=consent` forces it again, so both are always sent. `include_granted_scopes=true`
//!   keeps earlier grants in the new token (incremental authorization).
//! - Users may untick scopes on the consent screen (granular consent): the granted set is the
//!   response's `scope`, which the standard reader already prefers over the requested scopes.
//! - Refresh answers carry no new refresh token: the previous one is kept (`keep-previous`).
//! - Time-limited grants report `refresh_token_expires_in` (kept by the standard reader).
//! - Client credentials go in the body: Google long rejected HTTP Basic, and although its
//!   discovery document now lists both methods, the body is the one that always worked.
//! - Revocation takes no client authentication and answers 400 `invalid_token` for a token that
//!   is already expired or revoked, which is the outcome revocation wanted.
//!
//! Source: <https://developers.google.com/identity/protocols/oauth2/web-server>.

use latchkey_provider_sdk::standard::Fields;
use latchkey_provider_sdk::*;

pub struct Google;

const ISSUER: &str = "https://accounts.google.com";

/// Revocation errors that mean the token is already unusable.
const ALREADY_REVOKED: &[&str] = &["invalid_token", "invalid_grant"];

impl Provider for Google {
    fn info() -> ProviderInfo {
        ProviderInfo {
            id: "google".into(),
            display_name: "Google".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            issuers: vec![ISSUER.into()],
            config_keys: vec![
                config_key(
                    "prompt",
                    "Google's `prompt` parameter. `consent` makes Google issue a refresh token on every \
                     authorization, not only the first; add `select_account` (space-separated) to let the user \
                     pick an account.",
                    Some("consent"),
                ),
                config_key("login_hint", "Email address or `sub` of the account to preselect on Google's sign-in page.", None),
                config_key(
                    "hd",
                    "Google Workspace domain (such as `example.com`) whose accounts the sign-in page offers. A hint \
                     only: it does not restrict who can sign in.",
                    None,
                ),
            ],
            documentation: "https://developers.google.com/identity/protocols/oauth2/web-server".into(),
        }
    }

    fn configure(_config: &Config) -> Result<Flow, String> {
        let endpoints = Endpoints::new("https://accounts.google.com/o/oauth2/v2/auth", "https://oauth2.googleapis.com/token")
            .issuer(ISSUER)
            .revocation("https://oauth2.googleapis.com/revoke", ClientAuth::None)
            .userinfo("https://openidconnect.googleapis.com/v1/userinfo")
            // https://developers.google.com/identity/protocols/oauth2/limited-input-device
            .device_authorization("https://oauth2.googleapis.com/device/code");
        // Desktop clients take a loopback redirect on any port, as the standard flow has it.
        // Google does not implement RFC 8707 resource indicators.
        Ok(Flow::standard(endpoints)
            .pkce(Pkce::Supported)
            .client_auth(ClientAuth::Post)
            .refresh(RefreshPolicy::KeepPrevious)
            .send_resource(false))
    }

    fn authorize_params(scopes: &[String], config: &Config) -> Result<Params, String> {
        let mut params = standard::scope_param(scopes, " ");
        params.push(("access_type".into(), "offline".into()));
        params.push(("include_granted_scopes".into(), "true".into()));
        common::pass_through(&mut params, config, &["prompt", "login_hint", "hd"]);
        Ok(params)
    }

    fn read_revocation_response(response: &HttpResponse) -> Result<(), Failure> {
        if response.status == 400 && already_revoked(response) {
            return Ok(());
        }
        standard::read_revocation_response(response)
    }
}

fn already_revoked(response: &HttpResponse) -> bool {
    Fields::parse(response).ok().and_then(|fields| fields.string("error")).is_some_and(|code| ALREADY_REVOKED.contains(&code.as_str()))
}

export_provider!(Google);
