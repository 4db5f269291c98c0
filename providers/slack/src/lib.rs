//! Slack, OAuth v2 (`/oauth/v2/authorize` and `oauth.v2.access`), bot and user tokens.
//!
//! What differs from the standard:
//! - One installation can yield two tokens: a bot token (`xoxb-`, asked for with `scope`) at the
//!   top level of the answer, and a user token (`xoxp-`, asked for with `user_scope`) nested in
//!   `authed_user`. The `token` config key says which one the server needs; the catalog's scopes
//!   go into the matching parameter and that token is the one stored. With only user scopes there
//!   is no top-level `access_token` at all.
//! - Scopes are comma-separated, in the request and in the answer.
//! - Every answer is HTTP 200 with `ok: true` or `ok: false` and an `error` code of Slack's own;
//!   the codes are mapped onto failure kinds below. Rate limiting adds `Retry-After`.
//! - `token_type` is `bot` or `user`, and is kept: it says which token it is.
//! - Workspace context (`team`, `enterprise`, `bot_user_id`, `app_id`, the installing user) is
//!   kept in `extra`; nested objects are flattened to `team_id`, `team_name`, …
//! - Refresh tokens exist only with token rotation (`token_rotation`), or with PKCE. Each one
//!   works once ("revoked after a short grace period"), so the policy is `rotate-single-use`.
//!   Refresh answers are flat: the refreshed token is at the top level whichever kind it is.
//! - Slack prefers HTTP Basic client authentication.
//! - PKCE is opt-in per app (`pkce`), and turns the app into a public client for good: no
//!   client secret is sent. Without it, sending PKCE parameters fails (`pkce_not_allowed`).
//! - Redirects: a normal app only accepts https redirect URLs, so there is no loopback listener
//!   (the user pastes the final URL). A PKCE app may use `http://localhost`, but Slack matches the
//!   redirect URL registered in the app exactly, port included, so the port is fixed
//!   (`redirect_port`); and these "desktop" redirects cannot request bot scopes.
//! - Revocation is the Web API method `auth.revoke`, authenticated with the token itself (as a
//!   bearer; no client credentials). It revokes the access token it is called with, which ends the
//!   installation's grant for that token, so the refresh token that the host offers first is
//!   refused here and the host offers the access token instead. Only `{"ok": true, "revoked":
//!   true}` confirms a revocation, and `token_revoked` / `account_inactive` (Slack knows the token
//!   and it no longer works). `invalid_auth` means Slack did not recognise the token at all — it
//!   revoked nothing — and `token_expired` that an expired rotating token cannot revoke the grant
//!   its refresh token still holds: neither is reported as revoked.
//! - After the token exchange (contract 0.3's `post-token`), `auth.test` says which workspace the
//!   token belongs to (`team_id`, `team`, and `team_url`, the workspace's address that links and
//!   some APIs need) and, for a user token, who signed in. A bot token's `auth.test` names the
//!   bot, which is nobody's account.
//!
//! Sources: <https://docs.slack.dev/authentication/installing-with-oauth>,
//! <https://docs.slack.dev/reference/methods/auth.test>,
//! <https://docs.slack.dev/reference/methods/oauth.v2.access>,
//! <https://docs.slack.dev/authentication/using-token-rotation>,
//! <https://docs.slack.dev/authentication/using-pkce>.

use latchkey_provider_sdk::standard::ErrorRule;
use latchkey_provider_sdk::standard::Fields;
use latchkey_provider_sdk::*;
use serde_json::Value;

pub struct Slack;

const AUTHORIZE_AGAIN: &str = "the authorization is no longer valid: authorize again";
const CHECK_APP: &str = "Slack rejected the app's credentials or settings: check the client id, secret and redirect URL";
const BAD_CALL: &str = "Slack rejected the request: this is a latchkey or provider bug, please report it";
const UNAVAILABLE: &str = "Slack is temporarily unavailable";

/// Slack's `error` codes for `oauth.v2.access` (from the method's documentation), by what to do.
const SLACK_ERRORS: &[ErrorRule] = &[
    ErrorRule::new("invalid_code", FailureKind::Reauthorize, "the authorization code is invalid or has expired: authorize again"),
    ErrorRule::new("invalid_refresh_token", FailureKind::Reauthorize, AUTHORIZE_AGAIN),
    ErrorRule::new("invalid_code_verifier", FailureKind::Reauthorize, AUTHORIZE_AGAIN),
    ErrorRule::new("token_revoked", FailureKind::Reauthorize, AUTHORIZE_AGAIN),
    ErrorRule::new("token_expired", FailureKind::Reauthorize, AUTHORIZE_AGAIN),
    ErrorRule::new(
        "account_inactive",
        FailureKind::Reauthorize,
        "the user or workspace was deactivated: authorize again with an active account",
    ),
    ErrorRule::new("bad_client_secret", FailureKind::Misconfigured, CHECK_APP),
    ErrorRule::new("invalid_client_id", FailureKind::Misconfigured, CHECK_APP),
    ErrorRule::new(
        "bad_redirect_uri",
        FailureKind::Misconfigured,
        "the redirect URL does not match the one registered in the Slack app: register it under OAuth & Permissions",
    ),
    ErrorRule::new(
        "oauth_authorization_url_mismatch",
        FailureKind::Misconfigured,
        "the flow did not start at Slack's v2 authorization URL: set authorization_endpoint to https://slack.com/oauth/v2/authorize",
    ),
    ErrorRule::new(
        "pkce_not_allowed",
        FailureKind::Misconfigured,
        "PKCE is not enabled for this Slack app: enable it in the app settings, or set the config key `pkce` to false",
    ),
    ErrorRule::new("no_scopes", FailureKind::Misconfigured, "Slack needs at least one scope: list scopes in the catalog"),
    ErrorRule::new(
        "cannot_install_an_org_installed_app",
        FailureKind::Misconfigured,
        "the app is installed for the whole Enterprise organization and cannot be installed into one workspace",
    ),
    ErrorRule::new("invalid_grant_type", FailureKind::Misconfigured, BAD_CALL),
    ErrorRule::new("invalid_arguments", FailureKind::Misconfigured, BAD_CALL),
    ErrorRule::new("invalid_form_data", FailureKind::Misconfigured, BAD_CALL),
    ErrorRule::new("invalid_post_type", FailureKind::Misconfigured, BAD_CALL),
    ErrorRule::new("missing_post_type", FailureKind::Misconfigured, BAD_CALL),
    ErrorRule::new("not_authed", FailureKind::Misconfigured, BAD_CALL),
    ErrorRule::new("ratelimited", FailureKind::Retry, "Slack is rate limiting this app"),
    ErrorRule::new("internal_error", FailureKind::Retry, UNAVAILABLE),
    ErrorRule::new("fatal_error", FailureKind::Retry, UNAVAILABLE),
    ErrorRule::new("service_unavailable", FailureKind::Retry, UNAVAILABLE),
    ErrorRule::new("request_timeout", FailureKind::Retry, UNAVAILABLE),
    ErrorRule::new("team_added_to_org", FailureKind::Retry, "the workspace is moving into an Enterprise organization; try again later"),
    ErrorRule::new("org_login_required", FailureKind::Retry, "the workspace is moving into an Enterprise organization; try again later"),
];

/// `auth.revoke` errors for a token that Slack knows and that no longer works: already revoked.
const ALREADY_REVOKED: &[&str] = &["token_revoked", "account_inactive"];

/// `auth.revoke` errors that leave the grant as it was, with what the user can do.
const REVOCATION_ERRORS: &[ErrorRule] = &[
    ErrorRule::new(
        "invalid_auth",
        FailureKind::Other,
        "Slack did not recognise the token, so it revoked nothing and the grant may still be valid: remove the app from \
         the workspace (Settings & administration → Manage apps) to end it",
    ),
    ErrorRule::new(
        "token_expired",
        FailureKind::Other,
        "the access token expired, and Slack revokes a grant only through a live access token: refresh the credential \
         (`latchkey oauth refresh <server>`), then revoke it again",
    ),
    ErrorRule::new(
        "not_authed",
        FailureKind::Misconfigured,
        "Slack received no token to revoke: this is a latchkey or provider bug, please report it",
    ),
];

const REFRESH_TOKEN_REFUSED: &str = "Slack's `auth.revoke` revokes the access token it is called with, not a refresh token";

/// Which of the installation's tokens the server needs.
#[derive(Clone, Copy, PartialEq)]
enum TokenKind {
    Bot,
    User,
}

impl TokenKind {
    fn from_config(config: &Config) -> Result<TokenKind, String> {
        match common::one_of(config, "token", "bot", &["bot", "user"])? {
            "user" => Ok(TokenKind::User),
            _ => Ok(TokenKind::Bot),
        }
    }

    /// The authorization parameter that carries this token's scopes.
    fn scope_param(self) -> &'static str {
        match self {
            TokenKind::Bot => "scope",
            TokenKind::User => "user_scope",
        }
    }

    /// Slack's `token_type` for this token.
    fn token_type(self) -> &'static str {
        match self {
            TokenKind::Bot => "bot",
            TokenKind::User => "user",
        }
    }
}

impl Provider for Slack {
    fn info() -> ProviderInfo {
        ProviderInfo {
            id: "slack".into(),
            display_name: "Slack".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            // Slack's OAuth v2 has no issuer; `https://slack.com` is its separate OpenID Connect
            // flow ("Sign in with Slack"), which this provider does not implement.
            issuers: Vec::new(),
            config_keys: vec![
                config_key(
                    "token",
                    "Which token the server needs: `bot` (the catalog's scopes are bot scopes, sent as `scope`; \
                     the xoxb- bot token is stored) or `user` (they are user scopes, sent as `user_scope`; the \
                     xoxp- token of the installing user is stored).",
                    Some("bot"),
                ),
                config_key(
                    "pkce",
                    "`true` if PKCE is enabled in the Slack app's settings. Such an app is a public client: no \
                     client secret is sent, the redirect goes to http://localhost:<redirect_port>/callback, and \
                     only user tokens can be requested (`token = user`).",
                    Some("false"),
                ),
                config_key(
                    "token_rotation",
                    "`true` if token rotation is turned on for the Slack app: tokens then expire after 12 hours \
                     and come with single-use refresh tokens.",
                    Some("false"),
                ),
                common::redirect_port_key(
                    "With `pkce = true`: the port of the http://localhost:<port>/callback redirect URL registered \
                     in the Slack app (Slack matches it exactly).",
                ),
                config_key("team", "Workspace id (such as T0123ABCD) to install into, skipping Slack's workspace picker.", None),
            ],
            documentation: "https://docs.slack.dev/authentication/installing-with-oauth".into(),
        }
    }

    fn configure(config: &Config) -> Result<Flow, String> {
        let token = TokenKind::from_config(config)?;
        let pkce = config.flag("pkce")?;
        let rotation = config.flag("token_rotation")?;
        if pkce && token == TokenKind::Bot {
            return Err("Slack does not allow bot scopes on the localhost redirect of a PKCE app: set config key \
                        `token` to `user`, or use a Slack app without PKCE for a bot token"
                .into());
        }
        let redirect = if pkce { common::fixed_port_loopback(config, "localhost")? } else { Redirect::HttpsOnly };
        let endpoints = Endpoints::new("https://slack.com/oauth/v2/authorize", "https://slack.com/api/oauth.v2.access")
            .revocation("https://slack.com/api/auth.revoke", ClientAuth::None);
        Ok(Flow::standard(endpoints)
            .scope_separator(",")
            .pkce(if pkce { Pkce::Required } else { Pkce::Unsupported })
            .client_auth(if pkce { ClientAuth::None } else { ClientAuth::Basic })
            .refresh(if pkce || rotation { RefreshPolicy::RotateSingleUse } else { RefreshPolicy::KeepPrevious })
            .redirect(redirect)
            .send_resource(false))
    }

    fn authorize_params(scopes: &[String], config: &Config) -> Result<Params, String> {
        let token = TokenKind::from_config(config)?;
        if scopes.is_empty() {
            return Err(format!("Slack needs at least one scope: list the {} scopes the server needs in the catalog", token.token_type()));
        }
        let mut params = vec![(token.scope_param().to_string(), scopes.join(","))];
        common::pass_through(&mut params, config, &["team"]);
        Ok(params)
    }

    /// `auth.revoke` is a Web API method: it revokes the access token it is called with, so the
    /// token moves from the RFC 7009 form into the `Authorization` header, and a refresh token is
    /// refused (the host then offers the access token).
    fn prepare_request(context: &TokenContext, request: HttpRequest) -> Result<HttpRequest, String> {
        common::reshape_revocation(context, request, "refresh_token", REFRESH_TOKEN_REFUSED, |mut request, token| {
            let mut form = standard::form_fields(&request);
            form.retain(|(name, _)| name != "token" && name != "token_type_hint");
            request.body = standard::encode_form(&form);
            standard::set_header(&mut request, "authorization", &format!("Bearer {token}"));
            request
        })
    }

    fn read_token_response(context: &TokenContext, response: &HttpResponse) -> Result<TokenSet, Failure> {
        let wanted = TokenKind::from_config(&Config::new(context.config.clone())).map_err(misconfigured("invalid_config"))?;
        let fields = standard::success_fields(response, slack_error)?;
        // A refresh answer is flat, whichever token was refreshed.
        let source = match (context.kind, wanted) {
            (RequestKind::RefreshToken, _) | (_, TokenKind::Bot) => fields.clone(),
            (_, TokenKind::User) => fields.object("authed_user").unwrap_or_default(),
        };
        if source.string("access_token").is_none_or(|token| token.is_empty()) {
            return Err(missing_token(wanted, &fields));
        }
        let mut tokens = standard::token_set(&source, context)?;
        if source.string("token_type").is_none() {
            tokens.token_type = wanted.token_type().into();
        }
        tokens.extra = workspace_context(&fields);
        Ok(tokens)
    }

    fn read_revocation_response(response: &HttpResponse) -> Result<(), Failure> {
        let revocation_error = |fields: &Fields, response: &HttpResponse| match fields.get("ok") {
            Some(Value::Bool(false)) => fields.string("error").map(|code| {
                let rules = if REVOCATION_ERRORS.iter().any(|rule| rule.code == code) { REVOCATION_ERRORS } else { SLACK_ERRORS };
                let mut failure = standard::classify_with(rules, &code, None);
                if failure.kind == FailureKind::Retry {
                    failure.retry_after = standard::retry_after(response);
                }
                failure
            }),
            _ => slack_error(fields, response),
        };
        match standard::success_fields(response, revocation_error) {
            Ok(fields) if fields.get("revoked") == Some(&Value::Bool(true)) => Ok(()),
            Ok(_) => Err(Failure {
                kind: FailureKind::Other,
                code: "not_revoked".into(),
                message: "Slack answered `ok` without `revoked: true`, so the token was not revoked".into(),
                retry_after: None,
            }),
            Err(failure) if ALREADY_REVOKED.contains(&failure.code.as_str()) => Ok(()),
            Err(failure) => Err(failure),
        }
    }

    fn post_token_plan(_tokens: &TokenSet, _config: &Config) -> Result<Vec<HttpRequest>, String> {
        Ok(vec![common::api_get(AUTH_TEST)])
    }

    /// The workspace, and the person when the token is theirs (a bot token's answer has `bot_id`).
    fn post_token_read(_tokens: &TokenSet, _config: &Config, responses: &[HttpResponse]) -> Result<PostTokenResult, Failure> {
        let Some(response) = responses.first() else { return Err(misconfigured("no_answer")("auth.test got no answer".into())) };
        let fields = standard::success_fields(response, slack_error)?;
        let context = [("team_id", "team_id"), ("team", "team"), ("team_url", "url"), ("enterprise_id", "enterprise_id")]
            .into_iter()
            .filter_map(|(name, field)| Some((name.to_string(), fields.string(field).filter(|value| !value.is_empty())?)))
            .collect();
        let account = match (fields.string("bot_id"), fields.string("user_id"), fields.string("user")) {
            (None, Some(subject), Some(user)) => {
                let label = fields.string("team").map_or_else(|| user.clone(), |team| format!("{user} ({team})"));
                Some(Account { subject, label })
            }
            _ => None,
        };
        Ok(PostTokenResult { account, context, sites: Vec::new() })
    }
}

const AUTH_TEST: &str = "https://slack.com/api/auth.test";

fn misconfigured(code: &'static str) -> impl Fn(String) -> Failure {
    move |message| Failure { kind: FailureKind::Misconfigured, code: code.into(), message, retry_after: None }
}

/// `ok: false` (or, as some report for refreshes, an RFC 6749 `error` body), classified by
/// Slack's codes.
fn slack_error(fields: &Fields, response: &HttpResponse) -> Option<Failure> {
    match fields.get("ok") {
        Some(Value::Bool(true)) => None,
        ok => standard::error_in_with(SLACK_ERRORS, fields, response).or_else(|| {
            (ok == Some(&Value::Bool(false))).then(|| Failure {
                kind: FailureKind::Other,
                code: "ok_false".into(),
                message: "Slack answered `ok: false` without an error code".into(),
                retry_after: None,
            })
        }),
    }
}

/// A successful answer without the token the configuration asks for.
fn missing_token(wanted: TokenKind, fields: &Fields) -> Failure {
    let has_user_token = fields.object("authed_user").and_then(|user| user.string("access_token")).is_some();
    let message = match wanted {
        TokenKind::Bot if has_user_token => {
            "Slack issued only a user token: set the config key `token` to `user` if the server needs the user's token, \
             or request bot scopes"
        }
        TokenKind::Bot => "Slack's answer has no bot token: request bot scopes, or set the config key `token` to `user`",
        TokenKind::User => {
            "Slack's answer has no user token in `authed_user`: check that the catalog's scopes are user scopes, \
             or set the config key `token` to `bot`"
        }
    };
    misconfigured("missing_access_token")(message.into())
}

/// Objects whose fields are kept, flattened to `<object>_<field>`. The incoming webhook's `url`
/// is left out on purpose: it is a credential, and `extra` is not secret storage.
const NESTED_CONTEXT: &[(&str, &[&str])] = &[
    ("team", &["id", "name"]),
    ("enterprise", &["id", "name"]),
    ("authed_user", &["id"]),
    ("incoming_webhook", &["channel", "channel_id", "configuration_url"]),
];

/// Top-level fields kept as they are.
const PLAIN_CONTEXT: &[&str] = &["bot_user_id", "app_id", "is_enterprise_install"];

/// The installation's context, by allow-list: the answer also holds tokens (the other kind's
/// token among them), which must not end up in `extra`. `team` is `null` for org-wide installs.
fn workspace_context(fields: &Fields) -> Params {
    let mut extra = Params::new();
    for (object, keys) in NESTED_CONTEXT {
        if let Some(nested) = fields.object(object) {
            for key in *keys {
                if let Some(value) = nested.string(key) {
                    extra.push((format!("{object}_{key}"), value));
                }
            }
        }
    }
    for key in PLAIN_CONTEXT {
        if let Some(value) = fields.string(key) {
            extra.push(((*key).to_string(), value));
        }
    }
    extra
}

export_provider!(Slack);
