//! Dropbox (OAuth 2 for the Dropbox API v2).
//!
//! What differs from the standard:
//! - Access tokens are short-lived (4 hours); a refresh token only comes with
//!   `token_access_type=offline`, which is sent by default. Scopes are optional (the app's
//!   permissions apply without them); `include_granted_scopes` and `force_reapprove` are passed
//!   through from the config.
//! - Refresh answers carry only a new access token: the refresh token is long-lived and kept
//!   (`keep-previous`).
//! - Client credentials go either in HTTP Basic or in the body, never both; the body is used.
//! - `token_type` is lower-case `bearer`; `account_id`, `uid` and, for team apps, `team_id` are
//!   kept as context.
//! - Malformed requests are answered with HTTP 400 and a `text/plain` explanation instead of
//!   JSON; it is shown as the reason.
//! - Revocation is the RPC `POST https://api.dropboxapi.com/2/auth/token/revoke`, authenticated
//!   with an access token as a bearer token and without a body; it ends the whole grant. It cannot
//!   revoke with a refresh token, so the refresh token that the host offers first is refused and
//!   the host offers the access token. An access token that Dropbox does not accept (expired after
//!   four hours, or unknown) revokes nothing while the refresh token may still hold the grant, so
//!   it is a failure with advice, never a revocation.
//! - Redirect URIs match exactly; `http://localhost` is allowed, with a fixed port.
//!
//! Sources: <https://developers.dropbox.com/oauth-guide>,
//! <https://www.dropbox.com/developers/documentation/http/documentation#oauth2-token>,
//! <https://www.dropbox.com/developers/documentation/http/documentation#auth-token-revoke>.

use latchkey_provider_sdk::standard::{Fields, header};
use latchkey_provider_sdk::*;

pub struct Dropbox;

const CONNECTED_APPS: &str = "https://www.dropbox.com/account/connected_apps";

const REFRESH_TOKEN_REFUSED: &str = "Dropbox revokes a grant through one of its access tokens, not its refresh token; \
                                     remove the app at https://www.dropbox.com/account/connected_apps to end the grant";

impl Provider for Dropbox {
    fn info() -> ProviderInfo {
        ProviderInfo {
            id: "dropbox".into(),
            display_name: "Dropbox".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            issuers: vec!["https://www.dropbox.com".into()],
            config_keys: vec![
                config_key(
                    "token_access_type",
                    "`offline` (a refresh token, so access lasts beyond the 4-hour access token) or `online`.",
                    Some("offline"),
                ),
                common::redirect_port_key("Port of the http://localhost:<port>/callback redirect URI registered in the Dropbox app."),
                config_key(
                    "include_granted_scopes",
                    "`user` or `team`: keep the scopes granted earlier in the new token (incremental authorization).",
                    None,
                ),
                config_key("force_reapprove", "`true` to show the approval page even when the user approved the app before.", None),
            ],
            documentation: "https://developers.dropbox.com/oauth-guide".into(),
        }
    }

    fn configure(config: &Config) -> Result<Flow, String> {
        common::one_of(config, "token_access_type", "offline", &["offline", "online"])?;
        // Optional, so checked only when set (the default given here is never read).
        if config.get("include_granted_scopes").is_some() {
            common::one_of(config, "include_granted_scopes", "user", &["user", "team"])?;
        }
        config.flag("force_reapprove")?;
        common::registered_app(
            config,
            Endpoints {
                issuer: Some("https://www.dropbox.com".into()),
                authorization: "https://www.dropbox.com/oauth2/authorize".into(),
                token: "https://api.dropboxapi.com/oauth2/token".into(),
                refresh: None,
                revocation: Some(RevocationEndpoint {
                    url: "https://api.dropboxapi.com/2/auth/token/revoke".into(),
                    client_auth: ClientAuth::None,
                }),
                userinfo: None,
                device_authorization: None,
            },
            Pkce::Supported,
            ClientAuth::Post,
            RefreshPolicy::KeepPrevious,
        )
    }

    fn authorize_params(scopes: &[String], config: &Config) -> Result<Params, String> {
        Self::configure(config)?;
        let mut params = standard::scope_param(scopes, " ");
        params.push(("token_access_type".into(), config.get_or("token_access_type", "offline").into()));
        if let Some(granted) = config.get("include_granted_scopes") {
            params.push(("include_granted_scopes".into(), granted.into()));
        }
        if config.flag("force_reapprove")? {
            params.push(("force_reapprove".into(), "true".into()));
        }
        Ok(params)
    }

    /// The revoke RPC takes the access token as its bearer credential and no body.
    fn prepare_request(context: &TokenContext, request: HttpRequest) -> Result<HttpRequest, String> {
        common::reshape_revocation(context, request, "refresh_token", REFRESH_TOKEN_REFUSED, |mut request, token| {
            common::without_body(&mut request);
            standard::set_header(&mut request, "authorization", &format!("Bearer {token}"));
            request
        })
    }

    fn read_token_response(context: &TokenContext, response: &HttpResponse) -> Result<TokenSet, Failure> {
        if let Some(failure) = plain_text_error(response) {
            return Err(failure);
        }
        standard::read_token_response(context, response)
    }

    fn read_revocation_response(response: &HttpResponse) -> Result<(), Failure> {
        if (200..300).contains(&response.status) {
            return Ok(());
        }
        if let Some(failure) = refused_token(response) {
            return Err(failure);
        }
        if let Some(failure) = plain_text_error(response) {
            return Err(failure);
        }
        standard::read_revocation_response(response)
    }
}

/// Dropbox explains a malformed call in plain text (HTTP 400).
fn plain_text_error(response: &HttpResponse) -> Option<Failure> {
    let content_type = header(&response.headers, "content-type").unwrap_or("");
    if response.status != 400 || !content_type.starts_with("text/plain") {
        return None;
    }
    Some(Failure {
        kind: FailureKind::Misconfigured,
        code: "http_400".into(),
        message: standard::describe(
            "Dropbox rejected the request as malformed: check the app key, secret and redirect URI",
            "HTTP 400",
            Some(String::from_utf8_lossy(&response.body).trim()),
        ),
        retry_after: None,
    })
}

/// A 401 whose `error[".tag"]` says that Dropbox did not accept the access token: it revoked
/// nothing, and the refresh token may still hold the grant.
fn refused_token(response: &HttpResponse) -> Option<Failure> {
    if response.status != 401 {
        return None;
    }
    let tag = Fields::parse(response).ok()?.object("error")?.string(".tag")?;
    Some(Failure {
        kind: FailureKind::Other,
        message: format!(
            "Dropbox did not accept the access token ({tag}), so it revoked nothing and the grant may still be valid: refresh \
             the credential (`latchkey oauth refresh <server>`) and revoke again, or remove the app at {CONNECTED_APPS}"
        ),
        code: tag,
        retry_after: None,
    })
}

export_provider!(Dropbox);
