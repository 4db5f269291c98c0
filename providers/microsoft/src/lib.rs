//! Microsoft Entra ID, Microsoft identity platform v2.0 endpoints.
//!
//! What differs from the standard:
//! - Endpoints are per tenant, `https://{host}/{tenant}/oauth2/v2.0/…`, where the tenant is
//!   `common`, `organizations`, `consumers`, a tenant id or a domain, and the host is the global
//!   cloud's or a national cloud's.
//! - A refresh token only comes with the `offline_access` scope, so it is always added.
//! - The token request may name the scopes of the one resource the token is for (a Microsoft
//!   extension); it is sent, so that the token targets the requested resource and
//!   `offline_access` is asked for again.
//! - v2.0 rejects RFC 8707 `resource` (AADSTS901002), so the host must not send it.
//! - Refresh tokens rotate, but the old one stays valid: `rotate`.
//! - Errors carry `AADSTSnnnnn` codes (in `error_codes` and at the start of
//!   `error_description`) that say more than `error`: an expired or revoked grant means
//!   authorize again, a bad or expired client secret means fix the configuration.
//! - `interaction_required` and `consent_required` at the token endpoint mean going back to the
//!   authorization endpoint.
//! - Loopback redirects are registered as `http://localhost` and match on any port.
//! - `ext_expires_in` (extended lifetime during outages) is kept as extra context, and
//!   `expires_in` is accepted as a string, as Azure AD sends it on some endpoints.
//! - There is no revocation endpoint: tokens are revoked through Microsoft Graph
//!   (`revokeSignInSessions`) or by removing consent.
//! - An app may prove itself with a certificate instead of a secret (`credential: certificate`):
//!   a `private_key_jwt` client assertion signed with the certificate's key, whose header names
//!   the certificate by its thumbprint. The host signs; the key and certificate are stored as
//!   `<server>.client_key` (one PEM holding both).
//!
//! Sources: <https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow>,
//! <https://learn.microsoft.com/en-us/entra/identity-platform/certificate-credentials>.

use latchkey_provider_sdk::standard::ErrorRule;
use latchkey_provider_sdk::standard::Fields;
use latchkey_provider_sdk::*;

pub struct Microsoft;

/// The scope that makes Microsoft issue a refresh token.
const OFFLINE_ACCESS: &str = "offline_access";

/// Sign-in hosts of the clouds (global, US Government, China operated by 21Vianet), each with the
/// Microsoft Graph host that serves its OIDC userinfo endpoint.
const CLOUDS: &[(&str, &str)] = &[
    ("login.microsoftonline.com", "graph.microsoft.com"),
    ("login.microsoftonline.us", "graph.microsoft.us"),
    ("login.partner.microsoftonline.cn", "microsoftgraph.chinacloudapi.cn"),
];

/// `error` values whose meaning Microsoft extends beyond RFC 6749.
const OAUTH_ERRORS: &[ErrorRule] = &[
    ErrorRule::new(
        "interaction_required",
        FailureKind::Reauthorize,
        "Microsoft needs the user to sign in interactively again (multi-factor authentication or a Conditional Access policy)",
    ),
    ErrorRule::new("consent_required", FailureKind::Reauthorize, "the user or an administrator has to consent to the requested scopes"),
    ErrorRule::new(
        "invalid_resource",
        FailureKind::Misconfigured,
        "the requested resource does not exist or is not set up in this tenant: check the scopes and the tenant",
    ),
];

const GRANT_GONE: &str = "the grant has expired or was revoked: authorize again";
const SIGN_IN_AGAIN: &str = "Microsoft requires the user to sign in again";
const BAD_SECRET: &str = "Microsoft rejected the client secret: store the current secret of the app registration";
const APP_SETUP: &str = "the app registration does not fit this request: check the client id, tenant and redirect URI";
const NO_RESOURCE_PARAMETER: &str = "the v2.0 endpoints reject the `resource` parameter: name the resource in the scopes instead";
const UNAVAILABLE: &str = "Microsoft's sign-in service is temporarily unavailable";

/// AADSTS codes (without the prefix), from
/// <https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes>.
const AADSTS_ERRORS: &[ErrorRule] = &[
    ErrorRule::new("50089", FailureKind::Reauthorize, GRANT_GONE),
    ErrorRule::new("50173", FailureKind::Reauthorize, GRANT_GONE),
    ErrorRule::new("54005", FailureKind::Reauthorize, "the authorization code was already redeemed: authorize again"),
    ErrorRule::new("65001", FailureKind::Reauthorize, "the user or an administrator has to consent to the requested scopes"),
    ErrorRule::new("70000", FailureKind::Reauthorize, GRANT_GONE),
    ErrorRule::new("70008", FailureKind::Reauthorize, GRANT_GONE),
    ErrorRule::new("70043", FailureKind::Reauthorize, SIGN_IN_AGAIN),
    ErrorRule::new("700082", FailureKind::Reauthorize, "the refresh token expired after a long time unused: authorize again"),
    ErrorRule::new("700084", FailureKind::Reauthorize, GRANT_GONE),
    ErrorRule::new("50076", FailureKind::Reauthorize, SIGN_IN_AGAIN),
    ErrorRule::new("50078", FailureKind::Reauthorize, SIGN_IN_AGAIN),
    ErrorRule::new("50079", FailureKind::Reauthorize, SIGN_IN_AGAIN),
    ErrorRule::new("50132", FailureKind::Reauthorize, SIGN_IN_AGAIN),
    ErrorRule::new("50133", FailureKind::Reauthorize, SIGN_IN_AGAIN),
    ErrorRule::new("70002", FailureKind::Misconfigured, BAD_SECRET),
    ErrorRule::new("7000215", FailureKind::Misconfigured, BAD_SECRET),
    ErrorRule::new(
        "7000222",
        FailureKind::Misconfigured,
        "the client secret has expired: create a new one in the app registration and store it",
    ),
    ErrorRule::new("7000218", FailureKind::Misconfigured, "Microsoft expects a client secret for this app: store one"),
    ErrorRule::new(
        "700025",
        FailureKind::Misconfigured,
        "the app registration is a public client, which must not send a client secret: remove the stored secret",
    ),
    ErrorRule::new(
        "50011",
        FailureKind::Misconfigured,
        "the redirect URI is not registered for the app: add http://localhost/callback to its redirect URIs",
    ),
    ErrorRule::new("700016", FailureKind::Misconfigured, APP_SETUP),
    ErrorRule::new("700011", FailureKind::Misconfigured, APP_SETUP),
    ErrorRule::new("700005", FailureKind::Misconfigured, APP_SETUP),
    ErrorRule::new("50194", FailureKind::Misconfigured, "the app is single-tenant: set the `tenant` config key to its tenant id"),
    ErrorRule::new("90002", FailureKind::Misconfigured, "the tenant does not exist: check the `tenant` config key"),
    ErrorRule::new("700022", FailureKind::Misconfigured, "a token can only be for one resource: request the scopes of one resource"),
    ErrorRule::new("9010010", FailureKind::Misconfigured, NO_RESOURCE_PARAMETER),
    ErrorRule::new("901002", FailureKind::Misconfigured, NO_RESOURCE_PARAMETER),
    ErrorRule::new("50033", FailureKind::Retry, UNAVAILABLE),
    ErrorRule::new("90006", FailureKind::Retry, UNAVAILABLE),
    ErrorRule::new("90024", FailureKind::Retry, UNAVAILABLE),
    ErrorRule::new("90033", FailureKind::Retry, UNAVAILABLE),
    ErrorRule::new("90090", FailureKind::Retry, UNAVAILABLE),
];

impl Provider for Microsoft {
    fn info() -> ProviderInfo {
        ProviderInfo {
            id: "microsoft".into(),
            display_name: "Microsoft Entra ID".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            // Tenant issuers look like https://login.microsoftonline.com/{tenant id}/v2.0.
            issuers: vec!["https://login.microsoftonline.com/".into()],
            config_keys: vec![
                config_key(
                    "tenant",
                    "Who can sign in: `common` (work, school and personal accounts), `organizations`, \
                     `consumers`, or one tenant's id or domain (required for single-tenant apps).",
                    Some("common"),
                ),
                config_key(
                    "cloud",
                    "Sign-in host of the cloud the app is registered in: `login.microsoftonline.com` (global), \
                     `login.microsoftonline.us` (US Government) or `login.partner.microsoftonline.cn` (China).",
                    Some(CLOUDS[0].0),
                ),
                config_key("prompt", "Microsoft's `prompt` parameter: `login`, `consent` or `select_account`.", None),
                config_key("login_hint", "User name (usually an email address) to preselect on the sign-in page.", None),
                config_key("domain_hint", "Domain of the user's organization, to skip the account-type choice.", None),
                config_key(
                    "credential",
                    "How the app proves itself: `secret` (a client secret) or `certificate` (a signed assertion; store the \
                     certificate's key and the certificate as one PEM with `latchkey secret set <server>.client_key`).",
                    Some("secret"),
                ),
            ],
            documentation: "https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow".into(),
        }
    }

    fn configure(config: &Config) -> Result<Flow, String> {
        let tenant = config.get_or("tenant", "common");
        if tenant.is_empty() || !tenant.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') {
            return Err(format!(
                "config key `tenant` must be `common`, `organizations`, `consumers`, a tenant id or a domain, not `{tenant}`"
            ));
        }
        let host = config.get_or("cloud", CLOUDS[0].0);
        let (host, graph) = CLOUDS.iter().find(|(login, _)| *login == host).ok_or_else(|| {
            let known: Vec<&str> = CLOUDS.iter().map(|(login, _)| *login).collect();
            format!("config key `cloud` must be one of {}, not `{host}`", known.join(", "))
        })?;
        let base = format!("https://{host}/{tenant}");
        let endpoints = Endpoints {
            // Only a tenant id has a fixed issuer; for `common` and friends it depends on the
            // user's tenant, so it cannot be checked here.
            issuer: is_tenant_id(tenant).then(|| format!("{base}/v2.0")),
            ..Endpoints::new(format!("{base}/oauth2/v2.0/authorize"), format!("{base}/oauth2/v2.0/token"))
                .userinfo(format!("https://{graph}/oidc/userinfo"))
                // https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-device-code
                .device_authorization(format!("{base}/oauth2/v2.0/devicecode"))
        };
        let client_auth = match common::one_of(config, "credential", "secret", &["secret", "certificate"])? {
            "certificate" => ClientAuth::PrivateKeyJwt,
            _ => ClientAuth::Post,
        };
        // Entra ID ignores the port when it matches http://localhost redirect URIs.
        Ok(Flow::standard(endpoints)
            .pkce(Pkce::Supported)
            .client_auth(client_auth)
            .redirect(common::loopback("localhost", None))
            .send_resource(false))
    }

    fn authorize_params(scopes: &[String], config: &Config) -> Result<Params, String> {
        let mut params = vec![("scope".to_string(), common::with_scope(scopes, OFFLINE_ACCESS).join(" "))];
        common::pass_through(&mut params, config, &["prompt", "login_hint", "domain_hint"]);
        Ok(params)
    }

    fn prepare_request(context: &TokenContext, mut request: HttpRequest) -> Result<HttpRequest, String> {
        let is_token_request = matches!(context.kind, RequestKind::AuthorizationCode | RequestKind::RefreshToken);
        let mut form = standard::form_fields(&request);
        if is_token_request && !context.requested_scopes.is_empty() && !form.iter().any(|(name, _)| name == "scope") {
            form.push(("scope".into(), common::with_scope(&context.requested_scopes, OFFLINE_ACCESS).join(" ")));
            request.body = standard::encode_form(&form);
        }
        Ok(request)
    }

    fn read_token_response(context: &TokenContext, response: &HttpResponse) -> Result<TokenSet, Failure> {
        let fields = standard::success_fields(response, microsoft_error)?;
        let mut tokens = standard::token_set(&fields, context)?;
        tokens.scopes = tokens.scopes.iter().map(|scope| percent_decode(scope)).collect();
        Ok(tokens)
    }
}

/// A tenant id is a GUID: 8-4-4-4-12 hex digits.
fn is_tenant_id(tenant: &str) -> bool {
    let groups: Vec<&str> = tenant.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(group, len)| group.len() == len && group.chars().all(|c| c.is_ascii_hexdigit()))
}

/// An `error` classified by its AADSTS code when Microsoft sent one, else by the `error` value.
/// The code becomes `AADSTSnnnnn`; the message keeps only the first line of the description,
/// since the rest is trace and correlation ids.
fn microsoft_error(fields: &Fields, response: &HttpResponse) -> Option<Failure> {
    let error = fields.string("error")?;
    let description = fields.string("error_description");
    let summary = description.as_deref().and_then(|text| text.lines().next()).map(str::trim);
    let mut failure = standard::classify_with(OAUTH_ERRORS, &error, summary);
    if let Some(number) = aadsts_number(fields, description.as_deref()) {
        if let Some(rule) = AADSTS_ERRORS.iter().find(|rule| rule.code == number) {
            failure.kind = rule.kind;
            failure.message = standard::describe(rule.advice, &error, summary);
        }
        failure.code = format!("AADSTS{number}");
    }
    if failure.kind == FailureKind::Retry {
        failure.retry_after = standard::retry_after(response);
    }
    Some(failure)
}

/// The first of `error_codes`, else the number after `AADSTS` at the start of the description.
fn aadsts_number(fields: &Fields, description: Option<&str>) -> Option<String> {
    let listed = match fields.get("error_codes") {
        Some(serde_json::Value::Array(codes)) => codes.first().and_then(|code| code.as_u64()).map(|code| code.to_string()),
        _ => None,
    };
    listed.or_else(|| {
        let digits: String = description?.trim_start().strip_prefix("AADSTS")?.chars().take_while(char::is_ascii_digit).collect();
        (!digits.is_empty()).then_some(digits)
    })
}

/// Undo `%XX` escapes: Microsoft's documented token responses show the granted scopes
/// percent-encoded (`https%3A%2F%2Fgraph.microsoft.com%2Fmail.read`). Scope values never contain
/// a literal `%`, so decoding a plain scope changes nothing.
fn percent_decode(scope: &str) -> String {
    let bytes = scope.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'%')
            .then(|| bytes.get(index + 1..index + 3))
            .flatten()
            .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                index += 3;
            }
            None => {
                decoded.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8(decoded).unwrap_or_else(|_| scope.to_string())
}

export_provider!(Microsoft);
