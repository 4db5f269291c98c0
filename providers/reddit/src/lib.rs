//! Reddit (OAuth2 for the Reddit API).
//!
//! What differs from the standard:
//! - A refresh token only comes with `duration=permanent`, which is sent by default; with
//!   `temporary` the token is good for an hour and cannot be refreshed.
//! - Client credentials go in HTTP Basic only ("Reddit only accepts client secret in the
//!   Authorization header"); installed apps have an empty secret.
//! - Every request needs a unique, descriptive `User-Agent`; generic ones are throttled or
//!   blocked. It is set on the token, refresh and revocation requests (`user_agent`).
//! - Errors may come with HTTP 200 (`{"error": "invalid_grant"}`), and a bad Basic credential is
//!   401 with a numeric `error` (`{"message": "Unauthorized", "error": 401}`).
//! - `token_type` is lower-case `bearer`; refresh answers keep the refresh token (`keep-previous`).
//! - An app has exactly one redirect URI, matched exactly: the loopback redirect has a fixed
//!   port. API calls go to `oauth.reddit.com`, not `www.reddit.com`.
//! - Revocation at `/api/v1/revoke_token` takes Basic credentials and answers 204.
//!
//! Sources: <https://github.com/reddit-archive/reddit/wiki/OAuth2>,
//! <https://github.com/reddit-archive/reddit/wiki/API>.

use latchkey_provider_sdk::standard::Fields;
use latchkey_provider_sdk::*;

pub struct Reddit;

const DEFAULT_USER_AGENT: &str = "latchkey-oauth/0.1 (by latchkey; +https://github.com/latchkey-dev/latchkey)";

impl Provider for Reddit {
    fn info() -> ProviderInfo {
        ProviderInfo {
            id: "reddit".into(),
            display_name: "Reddit".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            issuers: Vec::new(),
            config_keys: vec![
                config_key(
                    "user_agent",
                    "The User-Agent Reddit asks for: `<platform>:<app id>:<version> (by /u/<username>)`.",
                    Some(DEFAULT_USER_AGENT),
                ),
                config_key(
                    "duration",
                    "`permanent` (a refresh token, so access lasts) or `temporary` (one hour, no refresh token).",
                    Some("permanent"),
                ),
                common::redirect_port_key("Port of the http://localhost:<port>/callback redirect URI of the Reddit app."),
            ],
            documentation: "https://github.com/reddit-archive/reddit/wiki/OAuth2".into(),
        }
    }

    fn configure(config: &Config) -> Result<Flow, String> {
        duration(config)?;
        common::registered_app(
            config,
            Endpoints {
                issuer: None,
                authorization: "https://www.reddit.com/api/v1/authorize".into(),
                token: "https://www.reddit.com/api/v1/access_token".into(),
                refresh: None,
                revocation: Some(RevocationEndpoint {
                    url: "https://www.reddit.com/api/v1/revoke_token".into(),
                    client_auth: ClientAuth::Basic,
                }),
                userinfo: Some("https://oauth.reddit.com/api/v1/me".into()),
                device_authorization: None,
            },
            Pkce::Unsupported,
            ClientAuth::Basic,
            RefreshPolicy::KeepPrevious,
        )
    }

    fn authorize_params(scopes: &[String], config: &Config) -> Result<Params, String> {
        let mut params = standard::scope_param(scopes, " ");
        params.push(("duration".into(), duration(config)?.into()));
        Ok(params)
    }

    fn prepare_request(context: &TokenContext, mut request: HttpRequest) -> Result<HttpRequest, String> {
        let config = Config::new(context.config.clone());
        let user_agent = config.get_or("user_agent", DEFAULT_USER_AGENT).trim();
        if user_agent.is_empty() {
            return Err("config key `user_agent` must not be empty: Reddit blocks requests without a descriptive User-Agent".into());
        }
        standard::set_header(&mut request, "user-agent", user_agent);
        Ok(request)
    }

    fn read_token_response(context: &TokenContext, response: &HttpResponse) -> Result<TokenSet, Failure> {
        let fields = standard::success_fields(response, |fields, response| {
            if response.status == 401 {
                return Some(bad_credentials(fields));
            }
            standard::error_in(fields, response)
        })?;
        standard::token_set(&fields, context)
    }
}

fn duration(config: &Config) -> Result<&str, String> {
    common::one_of(config, "duration", "permanent", &["permanent", "temporary"])
}

/// A 401 from the token endpoint: the Basic credentials are missing or wrong.
fn bad_credentials(fields: &Fields) -> Failure {
    Failure {
        kind: FailureKind::Misconfigured,
        code: "http_401".into(),
        message: standard::describe(
            "Reddit rejected the app's credentials: check the client id and secret (installed apps have an empty secret)",
            "HTTP 401",
            fields.string("message").as_deref(),
        ),
        retry_after: None,
    }
}

export_provider!(Reddit);
