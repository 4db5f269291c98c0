//! Salesforce: the OAuth 2.0 web server flow of connected apps and external client apps.
//!
//! What differs from the standard:
//! - Endpoints live on the login host: `login.salesforce.com`, `test.salesforce.com` for
//!   sandboxes, or the org's My Domain (`login_host`).
//! - The answer has no `expires_in`: an access token lives as long as the org's session timeout.
//!   Instead it carries `instance_url`, the base URL every API call must use, plus `id` (the
//!   identity URL), `issued_at` (milliseconds, as a string) and `signature`; all are kept as
//!   context with the credential, and a refresh updates them.
//! - A refresh token is only issued for the `refresh_token` (or `offline_access`) scope, which is
//!   added when missing. Refresh answers carry no new refresh token by default: `keep-previous`.
//! - Client credentials go in the body.
//! - Error codes beyond RFC 6749: `invalid_client_id`; and `invalid_grant` covers very different
//!   causes, told apart by the description: "ip restricted or invalid login hours" is a
//!   configuration problem, not a lost grant.
//! - Revocation at `/services/oauth2/revoke` takes the token without client credentials.
//! - After the token exchange (contract 0.3's `post-token`), the identity URL says who signed in
//!   (`user_id`, `username`) and which org (`organization_id`), kept as context for the servers.
//!
//! Sources: <https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_web_server_flow.htm>,
//! <https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_refresh_token_flow.htm>,
//! <https://help.salesforce.com/s/articleView?id=sf.remoteaccess_revoke_token.htm>,
//! <https://help.salesforce.com/s/articleView?id=sf.remoteaccess_using_openid.htm>.

use latchkey_provider_sdk::standard::ErrorRule;
use latchkey_provider_sdk::standard::Fields;
use latchkey_provider_sdk::*;

pub struct Salesforce;

const LOGIN_HOST: &str = "login.salesforce.com";

/// Domains that Salesforce login hosts end with (My Domain, sandboxes, Government Cloud).
const LOGIN_DOMAINS: &[&str] = &[".salesforce.com", ".force.com", ".salesforce.mil"];

const SALESFORCE_ERRORS: &[ErrorRule] = &[
    ErrorRule::new(
        "invalid_client_id",
        FailureKind::Misconfigured,
        "Salesforce does not know the client id: use the consumer key of the connected app",
    ),
    ErrorRule::new(
        "invalid_client",
        FailureKind::Misconfigured,
        "Salesforce rejected the client credentials: use the consumer key and secret of the connected app",
    ),
];

impl Provider for Salesforce {
    fn info() -> ProviderInfo {
        ProviderInfo {
            id: "salesforce".into(),
            display_name: "Salesforce".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            issuers: vec!["https://login.salesforce.com".into(), "https://test.salesforce.com".into()],
            config_keys: vec![
                config_key(
                    "login_host",
                    "Login host: login.salesforce.com, test.salesforce.com for sandboxes, or the org's My Domain \
                     (such as acme.my.salesforce.com).",
                    Some(LOGIN_HOST),
                ),
                common::redirect_port_key("Port of the http://localhost:<port>/callback callback URL registered in the connected app."),
                config_key("prompt", "Salesforce's `prompt` parameter, such as `login consent` or `select_account`.", None),
                config_key("login_hint", "User name to prefill on the login page.", None),
            ],
            documentation: "https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_web_server_flow.htm".into(),
        }
    }

    fn configure(config: &Config) -> Result<Flow, String> {
        let host = config.host("login_host", "login.salesforce.com")?;
        if !LOGIN_DOMAINS.iter().any(|domain| host.ends_with(domain)) {
            return Err(format!(
                "config key `login_host` must be a Salesforce login host (login.salesforce.com, test.salesforce.com or \
                 a My Domain ending in {}), not `{host}`",
                LOGIN_DOMAINS.join(", ")
            ));
        }
        let base = format!("https://{host}/services/oauth2");
        common::registered_app(
            config,
            Endpoints {
                issuer: Some(format!("https://{host}")),
                authorization: format!("{base}/authorize"),
                token: format!("{base}/token"),
                refresh: None,
                revocation: Some(RevocationEndpoint { url: format!("{base}/revoke"), client_auth: ClientAuth::None }),
                userinfo: Some(format!("{base}/userinfo")),
                device_authorization: None,
            },
            Pkce::Supported,
            ClientAuth::Post,
            RefreshPolicy::KeepPrevious,
        )
    }

    fn authorize_params(scopes: &[String], config: &Config) -> Result<Params, String> {
        let offline = scopes.iter().any(|scope| scope == "refresh_token" || scope == "offline_access");
        let scopes = if offline || scopes.is_empty() { scopes.to_vec() } else { common::with_scope(scopes, "refresh_token") };
        let mut params = standard::scope_param(&scopes, " ");
        common::pass_through(&mut params, config, &["prompt", "login_hint"]);
        Ok(params)
    }

    fn read_token_response(context: &TokenContext, response: &HttpResponse) -> Result<TokenSet, Failure> {
        let fields = standard::success_fields(response, salesforce_error)?;
        standard::token_set(&fields, context)
    }

    /// The identity URL the token response named (`id`), when it is on the login host.
    fn post_token_plan(tokens: &TokenSet, config: &Config) -> Result<Vec<HttpRequest>, String> {
        let login = format!("https://{}/", config.host("login_host", LOGIN_HOST)?);
        let identity = tokens.extra.iter().find(|(name, _)| name == "id").map(|(_, url)| url.as_str());
        Ok(identity.filter(|url| url.starts_with(&login)).map(common::api_get).into_iter().collect())
    }

    /// Who signed in, and the org (`organization_id`) the servers work in.
    fn post_token_read(_tokens: &TokenSet, _config: &Config, responses: &[HttpResponse]) -> Result<PostTokenResult, Failure> {
        let identity = common::api_json(responses.first(), "Salesforce's identity URL")?;
        let text = |key: &str| identity.get(key).and_then(|value| value.as_str()).filter(|text| !text.is_empty()).map(str::to_string);
        let account = text("user_id").map(|subject| Account { label: text("username").unwrap_or_else(|| subject.clone()), subject });
        let context = ["organization_id", "user_id"].into_iter().filter_map(|key| Some((key.to_string(), text(key)?))).collect();
        Ok(PostTokenResult { account, context, sites: Vec::new() })
    }
}

/// RFC 6749 errors with Salesforce's additions, and `invalid_grant` told apart by its description.
fn salesforce_error(fields: &Fields, response: &HttpResponse) -> Option<Failure> {
    let mut failure = standard::error_in_with(SALESFORCE_ERRORS, fields, response)?;
    let description = fields.string("error_description").unwrap_or_default().to_ascii_lowercase();
    if failure.code == "invalid_grant" && description.contains("ip restricted") {
        failure.kind = FailureKind::Misconfigured;
        failure.message = standard::describe(
            "the connected app's IP restrictions or the user's login hours refuse this login: relax the app's IP \
             relaxation policy or the profile's login IP ranges",
            &failure.code,
            fields.string("error_description").as_deref(),
        );
    }
    Some(failure)
}

export_provider!(Salesforce);
