//! Small building blocks that many providers' overrides share: the loopback redirect most
//! providers register, scopes a provider must always ask for, and the token that the host puts
//! into a revocation request.

use crate::{Config, ConfigKey, HttpRequest, LoopbackRedirect, Redirect, config_key};

/// The config key of the redirect port, for providers that match the redirect URI exactly, port
/// included.
pub const REDIRECT_PORT: &str = "redirect_port";

/// The port suggested for those providers (rclone uses it too, so it is rarely taken).
pub const DEFAULT_REDIRECT_PORT: &str = "53682";

/// `http://<host>[:<port>]/callback`. `port: None` means any port (RFC 8252 §7.3).
pub fn loopback(host: &str, port: Option<u16>) -> Redirect {
    Redirect::Loopback(LoopbackRedirect { host: host.into(), port, path: "/callback".into() })
}

/// The [`REDIRECT_PORT`] config key; `description` says where the user registers the redirect.
pub fn redirect_port_key(description: &str) -> ConfigKey {
    config_key(REDIRECT_PORT, description, Some(DEFAULT_REDIRECT_PORT))
}

/// `http://<host>:<redirect_port>/callback`, for providers that match the port exactly.
pub fn fixed_port_loopback(config: &Config, host: &str) -> Result<Redirect, String> {
    Ok(loopback(host, Some(config.port(REDIRECT_PORT, DEFAULT_REDIRECT_PORT)?)))
}

/// `scopes` with `required` appended when it is missing (`offline_access` for a refresh token).
pub fn with_scope(scopes: &[String], required: &str) -> Vec<String> {
    let mut scopes = scopes.to_vec();
    if !scopes.iter().any(|scope| scope == required) {
        scopes.push(required.to_string());
    }
    scopes
}

/// The first value of `name` in a form-encoded request body.
pub fn form_value(request: &HttpRequest, name: &str) -> Option<String> {
    form_urlencoded::parse(&request.body).find(|(key, _)| key == name).map(|(_, value)| value.into_owned())
}

/// The token the host asks to revoke, and its `token_type_hint` (`access_token` or
/// `refresh_token`), from the RFC 7009 form the host builds.
pub fn revocation_token(request: &HttpRequest) -> Result<(String, String), String> {
    let token = form_value(request, "token").ok_or("the revocation request has no `token` field")?;
    Ok((token, form_value(request, "token_type_hint").unwrap_or_default()))
}
