//! Notion public connections (public integrations).
//!
//! What differs from the standard:
//! - There are no OAuth scopes: capabilities are set in the integration's settings and the user
//!   picks the pages to share. The authorization URL needs `owner=user`; scopes in the catalog
//!   are refused with that explanation.
//! - The token endpoint takes HTTP Basic client credentials only, and a JSON body; every call
//!   carries a `Notion-Version` header, sent with the token requests too.
//! - The `redirect_uri` of the token request is required when the authorization URL had one,
//!   which the host's always does, so the standard request fits.
//! - The answer has no `expires_in` (older integrations' tokens never expire); newer ones get a
//!   refresh token that rotates on each use ("a new access token and new refresh token"):
//!   `rotate-single-use`. `token_type` is lower-case `bearer`.
//! - The answer describes the installation (`bot_id`, `workspace_id`, `workspace_name`,
//!   `workspace_icon`, `duplicated_template_id`, and `owner`, who installed it); these are kept as
//!   context, the owner flattened to `owner_type` and `owner_user_id` (not the user's email).
//! - Errors use Notion's API shape, `{"object": "error", "status": 400, "code": …, "message": …}`,
//!   as well as the RFC 6749 one; both are read.
//! - Revocation is `POST /v1/oauth/revoke` with Basic credentials and a JSON body `{"token": …}`.
//!
//! Sources: <https://developers.notion.com/docs/authorization>,
//! <https://developers.notion.com/reference/create-a-token>,
//! <https://developers.notion.com/reference/refresh-a-token>,
//! <https://developers.notion.com/reference/status-codes>.

use latchkey_provider_sdk::standard::ErrorRule;
use latchkey_provider_sdk::standard::Fields;
use latchkey_provider_sdk::*;

pub struct Notion;

const DEFAULT_VERSION: &str = "2022-06-28";

/// Notion's API error codes that can come from the OAuth endpoints.
const NOTION_ERRORS: &[ErrorRule] = &[
    ErrorRule::new(
        "unauthorized",
        FailureKind::Misconfigured,
        "Notion rejected the client credentials: check the OAuth client id and secret",
    ),
    ErrorRule::new("restricted_resource", FailureKind::Misconfigured, "the integration may not do this: check its capabilities"),
    ErrorRule::new("validation_error", FailureKind::Misconfigured, "Notion rejected the request as malformed"),
    ErrorRule::new("rate_limited", FailureKind::Retry, "Notion is rate limiting this integration"),
    ErrorRule::new("internal_server_error", FailureKind::Retry, "Notion had an internal error"),
    ErrorRule::new("service_unavailable", FailureKind::Retry, "Notion is temporarily unavailable"),
];

impl Provider for Notion {
    fn info() -> ProviderInfo {
        ProviderInfo {
            id: "notion".into(),
            display_name: "Notion".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            issuers: Vec::new(),
            config_keys: vec![
                common::redirect_port_key(
                    "Port of the http://localhost:<port>/callback redirect URI listed in the connection's OAuth settings.",
                ),
                config_key("notion_version", "The `Notion-Version` header sent with the OAuth calls.", Some(DEFAULT_VERSION)),
            ],
            documentation: "https://developers.notion.com/docs/authorization".into(),
        }
    }

    fn configure(config: &Config) -> Result<Flow, String> {
        common::registered_app(
            config,
            Endpoints {
                issuer: None,
                authorization: "https://api.notion.com/v1/oauth/authorize".into(),
                token: "https://api.notion.com/v1/oauth/token".into(),
                refresh: None,
                revocation: Some(RevocationEndpoint {
                    url: "https://api.notion.com/v1/oauth/revoke".into(),
                    client_auth: ClientAuth::Basic,
                }),
                userinfo: None,
                device_authorization: None,
            },
            // Not documented; an unknown PKCE parameter is not worth a failed exchange.
            Pkce::Unsupported,
            ClientAuth::Basic,
            RefreshPolicy::RotateSingleUse,
        )
    }

    fn authorize_params(scopes: &[String], _config: &Config) -> Result<Params, String> {
        if !scopes.is_empty() {
            return Err("Notion has no OAuth scopes: set the integration's capabilities in its settings, and remove \
                        the scopes from the catalog"
                .into());
        }
        Ok(vec![("owner".into(), "user".into())])
    }

    /// JSON bodies and the `Notion-Version` header; revocation sends only the token.
    fn prepare_request(context: &TokenContext, mut request: HttpRequest) -> Result<HttpRequest, String> {
        if context.kind == RequestKind::Revocation {
            let (token, _) = common::revocation_token(&request)?;
            request.body = serde_json::json!({ "token": token }).to_string().into_bytes();
            standard::set_header(&mut request, "content-type", "application/json");
        } else {
            request = standard::form_to_json(request);
        }
        let config = Config::new(context.config.clone());
        standard::set_header(&mut request, "notion-version", config.get_or("notion_version", DEFAULT_VERSION));
        Ok(request)
    }

    fn read_token_response(context: &TokenContext, response: &HttpResponse) -> Result<TokenSet, Failure> {
        let fields = standard::success_fields(response, notion_error)?;
        let mut tokens = standard::token_set(&fields, context)?;
        tokens.extra = installation_context(&fields);
        Ok(tokens)
    }

    fn read_revocation_response(response: &HttpResponse) -> Result<(), Failure> {
        common::read_revocation_with(response, notion_error)
    }
}

/// An RFC 6749 `error`, or Notion's `{"object": "error", "code": …, "message": …}`.
fn notion_error(fields: &Fields, response: &HttpResponse) -> Option<Failure> {
    if let Some(failure) = standard::error_in_with(NOTION_ERRORS, fields, response) {
        return Some(failure);
    }
    if fields.string("object").as_deref() != Some("error") {
        return None;
    }
    let code = fields.string("code").unwrap_or_else(|| format!("http_{}", response.status));
    let mut failure = standard::classify_with(NOTION_ERRORS, &code, fields.string("message").as_deref());
    if failure.kind == FailureKind::Retry {
        failure.retry_after = standard::retry_after(response);
    }
    Some(failure)
}

const PLAIN_CONTEXT: &[&str] = &["bot_id", "workspace_id", "workspace_name", "workspace_icon", "duplicated_template_id"];

/// The installation, by allow-list: `owner.user` also holds the person's name and email, which
/// are not needed to use the token.
fn installation_context(fields: &Fields) -> Params {
    let mut extra: Params = PLAIN_CONTEXT.iter().filter_map(|key| fields.string(key).map(|value| ((*key).to_string(), value))).collect();
    if let Some(owner) = fields.object("owner") {
        if let Some(kind) = owner.string("type") {
            extra.push(("owner_type".into(), kind));
        }
        if let Some(id) = owner.object("user").and_then(|user| user.string("id")) {
            extra.push(("owner_user_id".into(), id));
        }
    }
    extra
}

export_provider!(Notion);
