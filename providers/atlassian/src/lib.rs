//! Atlassian Cloud (Jira, Confluence, …): OAuth 2.0 "3LO" apps.
//!
//! What differs from the standard:
//! - The authorization URL must carry `audience=api.atlassian.com` and `prompt=consent`, and a
//!   refresh token only comes with the `offline_access` scope, which is always added.
//! - The token endpoint is documented with JSON bodies (`{"grant_type": …, "client_id": …}`),
//!   which is what is sent; the host puts the client credentials into the JSON object.
//! - Refresh tokens rotate and each works once ("the refresh token you used for the request is
//!   disabled"): `rotate-single-use`. They expire after 90 days unused.
//! - The authorization server is Auth0's: a rotated-away refresh token is HTTP 403 `invalid_grant`
//!   "Unknown or invalid refresh token.", and a wrong client secret is 401 `access_denied`
//!   "Unauthorized", which means a misconfigured client here, not a user who said no.
//! - The callback URL registered in the developer console must match exactly, so the redirect is
//!   `http://localhost:<redirect_port>/callback`.
//!
//! - After the token exchange (contract 0.3's `post-token`): every API call goes through
//!   `https://api.atlassian.com/ex/{jira|confluence}/{cloudId}/…`, and the cloud id comes from
//!   `GET https://api.atlassian.com/oauth/token/accessible-resources`. The user may have granted
//!   several sites, each a [`Site`] whose context is `cloud_id` and `site_url`; one is chosen (a
//!   prompt, or `--site`). `GET https://api.atlassian.com/me` (the `read:me` scope) says who signed
//!   in; without that scope it answers 403 and the account is left unknown.
//!
//! Sources: <https://developer.atlassian.com/cloud/jira/platform/oauth-2-3lo-apps/>,
//! <https://developer.atlassian.com/cloud/oauth/getting-started/refresh-tokens/>.

use latchkey_provider_sdk::serde_json::Value;
use latchkey_provider_sdk::standard::ErrorRule;
use latchkey_provider_sdk::*;

pub struct Atlassian;

const OFFLINE_ACCESS: &str = "offline_access";
const ACCESSIBLE_RESOURCES: &str = "https://api.atlassian.com/oauth/token/accessible-resources";
const ME: &str = "https://api.atlassian.com/me";

impl Provider for Atlassian {
    fn info() -> ProviderInfo {
        ProviderInfo {
            id: "atlassian".into(),
            display_name: "Atlassian (Jira, Confluence)".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            issuers: vec!["https://auth.atlassian.com".into()],
            config_keys: vec![
                common::redirect_port_key(
                    "Port of the http://localhost:<port>/callback URL registered as the app's callback URL \
                     (Atlassian matches it exactly).",
                ),
                config_key("prompt", "Atlassian's `prompt` parameter; its documentation requires `consent`.", Some("consent")),
            ],
            documentation: "https://developer.atlassian.com/cloud/jira/platform/oauth-2-3lo-apps/".into(),
        }
    }

    fn configure(config: &Config) -> Result<Flow, String> {
        common::registered_app(
            config,
            Endpoints {
                issuer: Some("https://auth.atlassian.com".into()),
                authorization: "https://auth.atlassian.com/authorize".into(),
                token: "https://auth.atlassian.com/oauth/token".into(),
                refresh: None,
                revocation: Some(RevocationEndpoint {
                    url: "https://auth.atlassian.com/oauth/revoke".into(),
                    client_auth: ClientAuth::Post,
                }),
                userinfo: Some("https://api.atlassian.com/me".into()),
                device_authorization: None,
            },
            Pkce::Supported,
            ClientAuth::Post,
            RefreshPolicy::RotateSingleUse,
        )
    }

    fn authorize_params(scopes: &[String], config: &Config) -> Result<Params, String> {
        let mut params = standard::scope_param(&common::with_scope(scopes, OFFLINE_ACCESS), " ");
        params.push(("audience".into(), "api.atlassian.com".into()));
        common::pass_through(&mut params, config, &["prompt"]);
        Ok(params)
    }

    /// Token requests as the documented JSON object; revocation stays a form.
    fn prepare_request(context: &TokenContext, request: HttpRequest) -> Result<HttpRequest, String> {
        Ok(match context.kind {
            RequestKind::Revocation => request,
            _ => standard::form_to_json(request),
        })
    }

    fn read_token_response(context: &TokenContext, response: &HttpResponse) -> Result<TokenSet, Failure> {
        let fields = standard::success_fields(response, |fields, response| {
            // Auth0 answers a wrong client secret with 401 `access_denied`.
            let rules: &[ErrorRule] = if response.status == 401 { BAD_CLIENT } else { &[] };
            standard::error_in_with(rules, fields, response)
        })?;
        standard::token_set(&fields, context)
    }

    fn post_token_plan(_tokens: &TokenSet, _config: &Config) -> Result<Vec<HttpRequest>, String> {
        Ok(vec![common::api_get(ACCESSIBLE_RESOURCES), common::api_get(ME)])
    }

    /// The sites the token reaches, each with its cloud id; the person, when `read:me` was granted.
    fn post_token_read(_tokens: &TokenSet, _config: &Config, responses: &[HttpResponse]) -> Result<PostTokenResult, Failure> {
        let resources = common::api_json(responses.first(), "Atlassian's accessible-resources")?;
        let text = |value: &Value, key: &str| value.get(key).and_then(Value::as_str).filter(|text| !text.is_empty()).map(str::to_string);
        let sites = resources
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|resource| {
                let (id, url) = (text(resource, "id")?, text(resource, "url"));
                let mut context = vec![("cloud_id".to_string(), id.clone())];
                context.extend(url.clone().map(|url| ("site_url".to_string(), url)));
                Some(Site { name: text(resource, "name").unwrap_or_else(|| id.clone()), id, url, context })
            })
            .collect();
        // Without `read:me`, /me answers 403: who signed in stays unknown, the sites still count.
        let account = common::api_json(responses.get(1), "Atlassian's /me").ok().and_then(|me| {
            let label = text(&me, "email").or_else(|| text(&me, "name")).or_else(|| text(&me, "nickname"))?;
            Some(Account { subject: text(&me, "account_id")?, label })
        });
        Ok(PostTokenResult { account, context: Params::new(), sites })
    }
}

const BAD_CLIENT: &[ErrorRule] = &[ErrorRule::new(
    "access_denied",
    FailureKind::Misconfigured,
    "Atlassian rejected the client id or secret: store the app's current secret from the developer console",
)];

export_provider!(Atlassian);
