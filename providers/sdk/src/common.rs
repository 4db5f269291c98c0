//! Helpers: what several providers do the same way, written once (the building blocks standard
//! OAuth 2.0 leaves to each provider are in [`crate::standard`]): the flow most registered apps use, the
//! config keys that pass straight into the authorization URL, a config key with a fixed set of
//! values, revocation endpoints that are not RFC 7009 (a token of the wrong kind refused, a
//! request without a body, an answer read with the provider's own error shapes), and the API calls
//! of `post-token`.
//!
//! These are conventions, not the standard, so they live apart from [`crate::standard`]: a
//! provider opts into each one, and changes anything of a returned [`Flow`] with its builder
//! methods (`common::registered_app(…)?.scope_separator(",")`).

use crate::standard::{self, Fields};
use crate::{
    ClientAuth, Config, ConfigKey, Endpoints, Failure, FailureKind, Flow, HttpRequest, HttpResponse, LoopbackRedirect, Params, Pkce,
    Redirect, RefreshPolicy, RequestKind, TokenContext, config_key,
};

/// The flow of an app registered in a provider's developer console: no RFC 8707 `resource`, and
/// the exact redirect `http://localhost:<redirect_port>/callback` that such consoles compare
/// against. What tells these providers apart is the arguments.
pub fn registered_app(
    config: &Config,
    endpoints: Endpoints,
    pkce: Pkce,
    client_auth: ClientAuth,
    refresh: RefreshPolicy,
) -> Result<Flow, String> {
    Ok(Flow::standard(endpoints)
        .pkce(pkce)
        .client_auth(client_auth)
        .refresh(refresh)
        .redirect(fixed_port_loopback(config, "localhost")?)
        .send_resource(false))
}

/// Append the config keys among `keys` that are set to something, unchanged, as authorization
/// URL parameters of the same name (`prompt`, `login_hint`, …). An empty value counts as unset,
/// so a catalog entry can switch a parameter off.
pub fn pass_through(params: &mut Params, config: &Config, keys: &[&str]) {
    for key in keys {
        if let Some(value) = config.get(key).filter(|value| !value.is_empty()) {
            params.push((key.to_string(), value.to_string()));
        }
    }
}

/// The value of config key `name` (or `default`), which must be one of `allowed`; the error lists
/// them.
pub fn one_of<'a>(config: &'a Config, name: &str, default: &'a str, allowed: &[&str]) -> Result<&'a str, String> {
    let value = config.get_or(name, default);
    if allowed.contains(&value) {
        return Ok(value);
    }
    let quoted: Vec<String> = allowed.iter().map(|choice| format!("`{choice}`")).collect();
    let choices = match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => "set to a known value".into(),
    };
    Err(format!("config key `{name}` must be {choices}, not `{value}`"))
}

/// Reshape the host's RFC 7009 revocation request for an endpoint that is not RFC 7009 and takes
/// only one kind of token; token requests pass unchanged. `reshape` gets the request and the
/// token to revoke. When the host's `token_type_hint` is `refused_hint` (`access_token` or
/// `refresh_token`), the revocation is refused with `advice` (what the user can do instead)
/// rather than sent to fail.
pub fn reshape_revocation(
    context: &TokenContext,
    request: HttpRequest,
    refused_hint: &str,
    advice: &str,
    reshape: impl FnOnce(HttpRequest, String) -> HttpRequest,
) -> Result<HttpRequest, String> {
    if context.kind != RequestKind::Revocation {
        return Ok(request);
    }
    let (token, hint) = revocation_token(&request)?;
    if hint == refused_hint {
        return Err(advice.into());
    }
    Ok(reshape(request, token))
}

/// Drop the body and its content type, for endpoints that take the token elsewhere (a header,
/// the path).
pub fn without_body(request: &mut HttpRequest) {
    request.body = Vec::new();
    request.headers.retain(|(name, _)| !name.eq_ignore_ascii_case("content-type"));
}

/// A revocation answer: any 2xx is success, anything else is read with the provider's own error
/// finder (see [`standard::success_fields`]), which also covers answers without a known error.
pub fn read_revocation_with(
    response: &HttpResponse,
    find_error: impl Fn(&Fields, &HttpResponse) -> Option<Failure>,
) -> Result<(), Failure> {
    if (200..300).contains(&response.status) {
        return Ok(());
    }
    standard::success_fields(response, find_error).map(|_| ())
}

/// A `GET` of a provider's JSON API, for [`crate::Provider::post_token_plan`]: the host adds the
/// access token as the bearer.
pub fn api_get(url: &str) -> HttpRequest {
    HttpRequest { method: "GET".into(), url: url.into(), headers: vec![("accept".into(), "application/json".into())], body: Vec::new() }
}

/// The JSON of an answer to a call planned by `post-token`, or a failure naming `call`: a token
/// refused (401) means signing in again, 429 and 5xx mean later.
pub fn api_json(response: Option<&HttpResponse>, call: &str) -> Result<serde_json::Value, Failure> {
    let Some(response) = response else {
        return Err(Failure {
            kind: FailureKind::Other,
            code: "no_answer".into(),
            message: format!("{call} got no answer"),
            retry_after: None,
        });
    };
    let failure = |kind, why: String| Failure {
        kind,
        code: format!("http_{}", response.status),
        message: format!("{call}: {why}"),
        retry_after: None,
    };
    match response.status {
        200..=299 => serde_json::from_slice(&response.body).map_err(|_| failure(FailureKind::Other, "the answer is not JSON".into())),
        401 => Err(failure(FailureKind::Reauthorize, "the new token was refused (HTTP 401); sign in again".into())),
        status => Err(standard::status_failure(response, failure(FailureKind::Other, format!("HTTP {status}")))),
    }
}

// Small building blocks: the loopback redirect most providers register, scopes a provider must
// always ask for, and the token that the host puts into a revocation request.

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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(entries: &[(&str, &str)]) -> Config {
        Config::new(entries.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect())
    }

    #[test]
    fn one_of_takes_the_default_and_lists_the_choices_when_refusing() {
        let empty = config(&[]);
        assert_eq!(one_of(&empty, "actor", "user", &["user", "app"]).unwrap(), "user");
        assert_eq!(one_of(&config(&[("actor", "app")]), "actor", "user", &["user", "app"]).unwrap(), "app");
        assert_eq!(
            one_of(&config(&[("actor", "bot")]), "actor", "user", &["user", "app"]).unwrap_err(),
            "config key `actor` must be `user` or `app`, not `bot`"
        );
        assert_eq!(
            one_of(&config(&[("mode", "x")]), "mode", "a", &["a", "b", "c"]).unwrap_err(),
            "config key `mode` must be `a`, `b` or `c`, not `x`"
        );
    }

    #[test]
    fn pass_through_skips_unset_and_empty_keys_and_keeps_their_order() {
        let mut params = vec![("scope".to_string(), "read".to_string())];
        pass_through(&mut params, &config(&[("login_hint", "ada"), ("prompt", "")]), &["prompt", "login_hint", "hd"]);
        assert_eq!(params, vec![("scope".into(), "read".into()), ("login_hint".into(), "ada".into())]);
    }

    #[test]
    fn reshape_revocation_reshapes_only_revocations_and_refuses_the_named_kind() {
        let request = |hint: &str| HttpRequest {
            method: "POST".into(),
            url: "https://example.com/revoke".into(),
            headers: vec![("content-type".into(), "application/x-www-form-urlencoded".into())],
            body: format!("token=t0k&token_type_hint={hint}").into_bytes(),
        };
        let context = |kind| TokenContext { kind, requested_scopes: Vec::new(), callback: Vec::new(), config: Vec::new() };
        let into_path = |mut request: HttpRequest, token: String| {
            without_body(&mut request);
            request.url = format!("{}/{token}", request.url);
            request
        };
        let reshaped = reshape_revocation(&context(RequestKind::Revocation), request("access_token"), "refresh_token", "advice", into_path);
        let reshaped = reshaped.unwrap();
        assert_eq!(reshaped.url, "https://example.com/revoke/t0k");
        assert!(reshaped.body.is_empty() && reshaped.headers.is_empty());
        let refused = reshape_revocation(&context(RequestKind::Revocation), request("refresh_token"), "refresh_token", "advice", into_path);
        assert_eq!(refused.unwrap_err(), "advice");
        let exchange =
            reshape_revocation(&context(RequestKind::RefreshToken), request("refresh_token"), "refresh_token", "advice", into_path);
        let exchange = exchange.unwrap();
        assert_eq!((exchange.url, exchange.body), (request("refresh_token").url, request("refresh_token").body));
    }
}
