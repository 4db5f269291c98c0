//! GitHub: OAuth Apps and GitHub Apps (user access tokens), on github.com or GitHub Enterprise
//! Server.
//!
//! What differs from the standard:
//! - The token endpoint answers form-encoded (`access_token=…&scope=repo%2Cgist&token_type=bearer`)
//!   unless asked for JSON, so `Accept: application/json` is always sent and both encodings are
//!   read.
//! - Errors come back with HTTP 200 and codes of GitHub's own: `bad_verification_code` (the code is
//!   wrong, expired or used), `incorrect_client_credentials`, `bad_refresh_token`,
//!   `unverified_user_email`; they are mapped onto failure kinds below.
//! - Scopes are space-separated in the request but comma-separated in the answer.
//! - OAuth App tokens (`gho_`) never expire and come without `expires_in` or a refresh token.
//!   GitHub App user tokens (`ghu_`) expire after 8 hours; their refresh tokens (`ghr_`) work once,
//!   and using one also kills the previous access token: `rotate-single-use`. GitHub Apps take no
//!   scopes (their permissions are set in the app), and answer with `scope: ""`.
//! - A loopback callback registered as `http://127.0.0.1/callback` accepts any port.
//! - Revocation is a REST call, not RFC 7009: `DELETE /applications/{client_id}/token` with HTTP
//!   Basic client credentials and a JSON body `{"access_token": …}`, answered with 204. Contract
//!   0.1.0 does not give providers the client id, which GitHub puts in the URL path, so revocation
//!   is offered only when the `revocation_client_id` config key repeats it. The call takes an
//!   access token, so a refresh token (`ghr_`, which the host offers first) is refused and the
//!   host offers the access token instead.
//! - GitHub Enterprise Server has the same endpoints under its own host, and its REST API under
//!   `/api/v3`.
//!
//! Not expressible in contract 0.1.0: finding the installations a GitHub App user token reaches
//! (`GET /user/installations`), a post-token call.
//!
//! Sources: <https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps>,
//! <https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/refreshing-user-access-tokens>,
//! <https://docs.github.com/en/apps/oauth-apps/maintaining-oauth-apps/troubleshooting-oauth-app-access-token-request-errors>,
//! <https://docs.github.com/en/rest/apps/oauth-applications#delete-an-app-token>.

use latchkey_provider_sdk::standard::ErrorRule;
use latchkey_provider_sdk::standard::Fields;
use latchkey_provider_sdk::*;

pub struct GitHub;

const GITHUB_COM: &str = "https://github.com";
const AUTHORIZE_AGAIN: &str = "the grant is no longer valid: authorize again";

/// GitHub's token-endpoint error codes, from its troubleshooting pages.
const GITHUB_ERRORS: &[ErrorRule] = &[
    ErrorRule::new(
        "bad_verification_code",
        FailureKind::Reauthorize,
        "the authorization code is wrong, expired (codes live 10 minutes) or already used: authorize again",
    ),
    ErrorRule::new("bad_refresh_token", FailureKind::Reauthorize, AUTHORIZE_AGAIN),
    ErrorRule::new("expired_token", FailureKind::Reauthorize, AUTHORIZE_AGAIN),
    ErrorRule::new(
        "unverified_user_email",
        FailureKind::Reauthorize,
        "the GitHub user must verify their primary email address, then authorize again",
    ),
    ErrorRule::new(
        "incorrect_client_credentials",
        FailureKind::Misconfigured,
        "GitHub rejected the client id or secret: store the app's current client secret",
    ),
    ErrorRule::new(
        "redirect_uri_mismatch",
        FailureKind::Misconfigured,
        "the redirect URI does not match the app's callback URL: register http://127.0.0.1/callback",
    ),
    ErrorRule::new("application_suspended", FailureKind::Misconfigured, "the GitHub app is suspended: reinstate it in its settings"),
];

/// OAuth App or GitHub App: they refresh, and take scopes, differently.
#[derive(Clone, Copy, PartialEq)]
enum AppType {
    OAuthApp,
    GitHubApp,
}

impl AppType {
    fn from_config(config: &Config) -> Result<AppType, String> {
        match common::one_of(config, "app_type", "oauth-app", &["oauth-app", "github-app"])? {
            "github-app" => Ok(AppType::GitHubApp),
            _ => Ok(AppType::OAuthApp),
        }
    }
}

impl Provider for GitHub {
    fn info() -> ProviderInfo {
        ProviderInfo {
            id: "github".into(),
            display_name: "GitHub".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            issuers: Vec::new(),
            config_keys: vec![
                config_key(
                    "app_type",
                    "`oauth-app` (tokens that never expire, scopes from the catalog) or `github-app` (8-hour user \
                     tokens with single-use refresh tokens; permissions come from the app, so no scopes).",
                    Some("oauth-app"),
                ),
                config_key("base_url", "GitHub's address: https://github.com, or a GitHub Enterprise Server's.", Some(GITHUB_COM)),
                config_key(
                    "revocation_client_id",
                    "The app's client id again, to revoke tokens through GitHub's REST API (it goes in the URL path, \
                     which providers cannot see otherwise). Without it, tokens are only deleted locally.",
                    None,
                ),
                config_key("login", "GitHub login to preselect on the sign-in page.", None),
                config_key("allow_signup", "`false` to hide the sign-up option on the authorization page.", None),
                config_key("prompt", "`select_account` to always show GitHub's account picker.", None),
            ],
            documentation: "https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps".into(),
        }
    }

    fn configure(config: &Config) -> Result<Flow, String> {
        let app_type = AppType::from_config(config)?;
        let base = config.base_url("base_url", GITHUB_COM)?;
        let api = api_url(&base);
        let endpoints = Endpoints::new(format!("{base}/login/oauth/authorize"), format!("{base}/login/oauth/access_token"))
            .userinfo(format!("{api}/user"))
            // https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps#device-flow
            .device_authorization(format!("{base}/login/device/code"));
        let endpoints = match config.get("revocation_client_id").filter(|id| !id.is_empty()) {
            Some(id) if id.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-') => {
                endpoints.revocation(format!("{api}/applications/{id}/token"), ClientAuth::Basic)
            }
            Some(id) => return Err(format!("config key `revocation_client_id` must be the app's client id, not `{id}`")),
            None => endpoints,
        };
        let refresh = match app_type {
            AppType::OAuthApp => RefreshPolicy::KeepPrevious,
            AppType::GitHubApp => RefreshPolicy::RotateSingleUse,
        };
        // PKCE (S256) is supported since July 2025, for OAuth Apps and GitHub Apps alike.
        Ok(Flow::standard(endpoints).pkce(Pkce::Supported).client_auth(ClientAuth::Post).refresh(refresh).send_resource(false))
    }

    fn authorize_params(scopes: &[String], config: &Config) -> Result<Params, String> {
        let mut params = match AppType::from_config(config)? {
            AppType::GitHubApp if !scopes.is_empty() => {
                return Err("GitHub Apps take no scopes: their permissions are set in the app's settings. Remove the \
                            scopes from the catalog, or set config key `app_type` to `oauth-app`"
                    .into());
            }
            _ => standard::scope_param(scopes, " "),
        };
        common::pass_through(&mut params, config, &["login", "allow_signup", "prompt"]);
        Ok(params)
    }

    /// Token requests ask for JSON; revocation becomes GitHub's REST call.
    fn prepare_request(context: &TokenContext, mut request: HttpRequest) -> Result<HttpRequest, String> {
        if context.kind != RequestKind::Revocation {
            standard::set_header(&mut request, "accept", "application/json");
            return Ok(request);
        }
        let (token, hint) = common::revocation_token(&request)?;
        if hint == "refresh_token" {
            return Err("GitHub's `DELETE /applications/{client_id}/token` revokes an access token, not a refresh token".into());
        }
        request.method = "DELETE".into();
        request.body = serde_json::json!({ "access_token": token }).to_string().into_bytes();
        standard::set_header(&mut request, "content-type", "application/json");
        standard::set_header(&mut request, "accept", "application/vnd.github+json");
        standard::set_header(&mut request, "x-github-api-version", "2022-11-28");
        Ok(request)
    }

    fn read_token_response(context: &TokenContext, response: &HttpResponse) -> Result<TokenSet, Failure> {
        let fields = standard::success_fields(response, |fields, response| standard::error_in_with(GITHUB_ERRORS, fields, response))?;
        standard::token_set(&fields, context)
    }

    /// 204 means revoked. A REST error body has `message`, not an OAuth `error`.
    fn read_revocation_response(response: &HttpResponse) -> Result<(), Failure> {
        if (200..300).contains(&response.status) {
            return Ok(());
        }
        let message = Fields::parse(response).ok().and_then(|fields| fields.string("message")).unwrap_or_default();
        let (kind, advice) = match response.status {
            401 | 403 => (FailureKind::Misconfigured, "GitHub rejected the client credentials: check the client id and secret"),
            404 => (
                FailureKind::Misconfigured,
                "GitHub does not know this app: check that config key `revocation_client_id` is the app's client id",
            ),
            422 => (FailureKind::Other, "GitHub refused to revoke the token"),
            _ => (FailureKind::Other, "the revocation failed"),
        };
        let failure = Failure {
            kind,
            code: format!("http_{}", response.status),
            message: standard::describe(advice, &format!("HTTP {}", response.status), Some(&message)),
            retry_after: None,
        };
        Err(standard::status_failure(response, failure))
    }
}

/// The REST API's address: api.github.com, or `/api/v3` on GitHub Enterprise Server.
fn api_url(base: &str) -> String {
    if base == GITHUB_COM { "https://api.github.com".to_string() } else { format!("{base}/api/v3") }
}

export_provider!(GitHub);
