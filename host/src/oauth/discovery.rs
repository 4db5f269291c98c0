//! MCP authorization discovery: from an MCP server's URL (and its 401 answer) to the authorization
//! server's metadata, as the MCP specification (2025-11-25, 2026-07-28) orders it:
//!
//! 1. Protected-resource metadata (RFC 9728): the `resource_metadata` URL of the
//!    `WWW-Authenticate` challenge, else `/.well-known/oauth-protected-resource/<path>`, else the
//!    root variant. Its `resource` must be the server's URL (or a parent of it).
//! 2. Authorization-server metadata: for an issuer with a path, RFC 8414 with the path inserted,
//!    OpenID Connect with the path inserted, then OpenID Connect with the path appended; without a
//!    path, RFC 8414 then OpenID Connect. The document's `issuer` must be the issuer it was fetched
//!    for (a trailing slash on a root issuer is tolerated: Google's PRM lists
//!    `https://accounts.google.com/`).
//! 3. Servers from the 2025-03-26 era without protected-resource metadata: the server's origin is
//!    the authorization server; its RFC 8414 document, or else the default `/authorize`, `/token`
//!    and `/register` endpoints.

use serde::{Deserialize, Serialize};
use url::Url;

use super::http::{self, Client};

/// Authorization-server metadata (RFC 8414 field names; OpenID Connect discovery uses the same).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthServerMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo_endpoint: Option<String>,
    /// RFC 8628's device authorization endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_authorization_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub code_challenge_methods_supported: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub authorization_response_iss_parameter_supported: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub client_id_metadata_document_supported: bool,
}

/// What discovery found for an MCP server.
#[derive(Clone, Debug)]
pub struct Discovered {
    /// The RFC 8707 resource to ask tokens for.
    pub resource: String,
    pub metadata: AuthServerMetadata,
    /// Scopes to request: the challenge's `scope`, else the resource's `scopes_supported`.
    pub scopes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error(transparent)]
    Url(#[from] http::UrlError),
    #[error(transparent)]
    Send(#[from] http::SendError),
    #[error("the protected-resource metadata at {url} is for `{resource}`, not for {server}; refusing to send tokens for it")]
    ResourceMismatch { url: String, resource: String, server: String },
    #[error("the authorization-server metadata at {url} names issuer `{found}`, but it was fetched for `{expected}`")]
    IssuerMismatch { url: String, found: String, expected: String },
    #[error("no authorization-server metadata for {issuer} (tried {tried})")]
    NoMetadata { issuer: String, tried: String },
    #[error("{url} is not valid {what}: {reason}")]
    Malformed { url: String, what: &'static str, reason: String },
}

/// The parameters of a `WWW-Authenticate: Bearer …` challenge.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Challenge {
    pub resource_metadata: Option<String>,
    pub scope: Option<String>,
    pub error: Option<String>,
}

impl Challenge {
    /// Parse the Bearer challenge of a `WWW-Authenticate` header value (RFC 6750 §3).
    pub fn parse(header: &str) -> Option<Challenge> {
        let rest = header.trim_start();
        let (scheme, params) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let mut challenge = Challenge::default();
        for (name, value) in auth_params(params) {
            match name.to_ascii_lowercase().as_str() {
                "resource_metadata" => challenge.resource_metadata = Some(value),
                "scope" => challenge.scope = Some(value),
                "error" => challenge.error = Some(value),
                _ => {}
            }
        }
        Some(challenge)
    }
}

/// `name=value` and `name="quoted \"value\""` pairs separated by commas.
fn auth_params(input: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut chars = input.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let name: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ',' && !c.is_whitespace())).collect();
        if name.is_empty() {
            return pairs;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next_if_eq(&'=').is_none() {
            continue;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.next_if_eq(&'"').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    other => value.push(other),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect::<String>().trim().to_string();
        }
        pairs.push((name, value));
    }
}

/// The canonical form of a resource URI: lower-case scheme and host, no fragment, no trailing
/// slash on the path (RFC 8707 §2; the MCP specification's canonical server URI).
pub fn canonical_resource(url: &Url) -> String {
    let mut url = url.clone();
    url.set_fragment(None);
    url.to_string().trim_end_matches('/').to_string()
}

/// Discover how to authorize against the MCP server at `server`, given the `WWW-Authenticate`
/// header of its 401 answer if there was one. Of the authorization servers its metadata lists,
/// `preferred` (the issuer a client is bound to) when it is one of them, else the first: the
/// caller compares the result with the issuer it expects before sending anything to it.
pub async fn discover(
    client: &Client,
    server: &Url,
    challenge: Option<&Challenge>,
    preferred: Option<&str>,
) -> Result<Discovered, DiscoveryError> {
    let server_resource = canonical_resource(server);
    let prm = protected_resource_metadata(client, server, challenge, preferred).await?;
    let Some(prm) = prm else {
        return legacy_discovery(client, server, challenge, server_resource).await;
    };
    let metadata = authorization_server_metadata(client, &prm.issuer).await?;
    let scopes = match challenge.and_then(|c| c.scope.as_deref()) {
        Some(scope) => scope.split_whitespace().map(str::to_string).collect(),
        None => prm.scopes_supported,
    };
    Ok(Discovered { resource: canonical_resource(&prm.resource), metadata, scopes })
}

/// A protected-resource metadata document as served.
#[derive(Deserialize)]
struct ProtectedResourceMetadata {
    resource: Option<String>,
    #[serde(default)]
    authorization_servers: Vec<String>,
    #[serde(default)]
    scopes_supported: Vec<String>,
}

/// What discovery takes from protected-resource metadata, checked.
#[doc(hidden)]
#[derive(Clone, Debug)]
pub struct ProtectedResource {
    /// The resource identifier; it covers the MCP server's URL.
    pub resource: Url,
    /// The authorization server to use: the preferred one when it is listed, else the first.
    pub issuer: String,
    pub scopes_supported: Vec<String>,
}

/// Read the protected-resource metadata `body` fetched from `url` for the MCP server `server`: its
/// `resource` (the server's URL when absent) must cover the server, and it must list an
/// authorization server; `preferred` is chosen when listed. Public for the fuzz targets (`fuzz/`)
/// only.
#[doc(hidden)]
pub fn read_protected_resource(
    url: &Url,
    body: Option<serde_json::Value>,
    server: &Url,
    preferred: Option<&str>,
) -> Result<ProtectedResource, DiscoveryError> {
    let malformed = |reason: String| DiscoveryError::Malformed { url: url.to_string(), what: "protected-resource metadata", reason };
    let body = body.ok_or_else(|| malformed("the body is not JSON".into()))?;
    let prm: ProtectedResourceMetadata = serde_json::from_value(body).map_err(|e| malformed(e.to_string()))?;
    let resource = prm.resource.unwrap_or_else(|| canonical_resource(server));
    let resource_url = http::endpoint_url(&resource)?;
    if !covers(&resource_url, server) {
        return Err(DiscoveryError::ResourceMismatch { url: url.to_string(), resource, server: canonical_resource(server) });
    }
    let listed = preferred.and_then(|preferred| prm.authorization_servers.iter().find(|issuer| issuers_match(issuer, preferred)));
    let issuer =
        listed.or(prm.authorization_servers.first()).cloned().ok_or_else(|| malformed("it lists no authorization_servers".into()))?;
    Ok(ProtectedResource { resource: resource_url, issuer, scopes_supported: prm.scopes_supported })
}

/// Whether the resource identifier `resource` covers the server URL: the same origin, and the
/// server's path at or below the resource's. A resource with a query (which RFC 8707 says it
/// should not have) names that one URL, not a tree: `https://mcp.example/?x` is not the root.
fn covers(resource: &Url, server: &Url) -> bool {
    let resource_path = resource.path().trim_end_matches('/');
    let server_path = server.path().trim_end_matches('/');
    if resource.origin() != server.origin() {
        return false;
    }
    if resource.query().is_some() {
        return server_path == resource_path && resource.query() == server.query();
    }
    server_path == resource_path || server_path.starts_with(&format!("{resource_path}/"))
}

async fn protected_resource_metadata(
    client: &Client,
    server: &Url,
    challenge: Option<&Challenge>,
    preferred: Option<&str>,
) -> Result<Option<ProtectedResource>, DiscoveryError> {
    let mut candidates = Vec::new();
    if let Some(url) = challenge.and_then(|c| c.resource_metadata.as_deref()) {
        candidates.push(http::endpoint_url(url)?);
    } else {
        let path = server.path().trim_end_matches('/');
        if !path.is_empty() {
            candidates.push(well_known(server, "oauth-protected-resource", path));
        }
        candidates.push(well_known(server, "oauth-protected-resource", ""));
    }
    for url in candidates {
        let (status, body) = client.get_json(&url, &[]).await?;
        if status == 200 {
            return read_protected_resource(&url, body, server, preferred).map(Some);
        }
    }
    Ok(None)
}

/// `scheme://host/.well-known/<name><path>` (RFC 8414 §3.1 path insertion).
fn well_known(base: &Url, name: &str, path: &str) -> Url {
    let mut url = base.clone();
    url.set_path(&format!("/.well-known/{name}{path}"));
    url.set_query(None);
    url.set_fragment(None);
    url
}

/// Fetch and check the metadata of the authorization server `issuer`.
pub async fn authorization_server_metadata(client: &Client, issuer: &str) -> Result<AuthServerMetadata, DiscoveryError> {
    let issuer_url = http::endpoint_url(issuer)?;
    let path = issuer_url.path().trim_end_matches('/').to_string();
    let mut candidates =
        vec![well_known(&issuer_url, "oauth-authorization-server", &path), well_known(&issuer_url, "openid-configuration", &path)];
    if !path.is_empty() {
        let mut appended = issuer_url.clone();
        appended.set_path(&format!("{path}/.well-known/openid-configuration"));
        candidates.push(appended);
    }
    for url in &candidates {
        let (status, body) = client.get_json(url, &[]).await?;
        if status != 200 {
            continue;
        }
        return read_auth_server_metadata(url, body, Some(issuer));
    }
    Err(DiscoveryError::NoMetadata { issuer: issuer.to_string(), tried: candidates.iter().map(Url::as_str).collect::<Vec<_>>().join(", ") })
}

/// Read the authorization-server metadata `body` fetched from `url`: it must name `issuer` when
/// one is expected, and its endpoints must be usable. Public for the fuzz targets (`fuzz/`) only.
#[doc(hidden)]
pub fn read_auth_server_metadata(
    url: &Url,
    body: Option<serde_json::Value>,
    issuer: Option<&str>,
) -> Result<AuthServerMetadata, DiscoveryError> {
    let malformed = |reason: String| DiscoveryError::Malformed { url: url.to_string(), what: "authorization-server metadata", reason };
    let body = body.ok_or_else(|| malformed("the body is not JSON".into()))?;
    let metadata: AuthServerMetadata = serde_json::from_value(body).map_err(|e| malformed(e.to_string()))?;
    if let Some(expected) = issuer {
        let found = metadata.issuer.clone().unwrap_or_default();
        if !issuers_match(&found, expected) {
            return Err(DiscoveryError::IssuerMismatch { url: url.to_string(), found, expected: expected.to_string() });
        }
    }
    validate_endpoints(&metadata)?;
    Ok(metadata)
}

/// Exact comparison, except that a root issuer may differ by a trailing slash.
pub fn issuers_match(found: &str, expected: &str) -> bool {
    if found == expected {
        return true;
    }
    let is_root = |issuer: &str| Url::parse(issuer).is_ok_and(|url| url.path() == "/");
    is_root(found) && is_root(expected) && found.trim_end_matches('/') == expected.trim_end_matches('/')
}

fn validate_endpoints(metadata: &AuthServerMetadata) -> Result<(), DiscoveryError> {
    http::endpoint_url(&metadata.authorization_endpoint)?;
    http::endpoint_url(&metadata.token_endpoint)?;
    // The device endpoint is checked when `oauth authorize --device` uses it: a bad one must not
    // stop every other sign-in.
    for optional in [&metadata.revocation_endpoint, &metadata.registration_endpoint].into_iter().flatten() {
        http::endpoint_url(optional)?;
    }
    Ok(())
}

/// 2025-03-26 servers: the MCP server's origin is the authorization server.
async fn legacy_discovery(
    client: &Client,
    server: &Url,
    challenge: Option<&Challenge>,
    resource: String,
) -> Result<Discovered, DiscoveryError> {
    let origin = server.origin().ascii_serialization();
    let url = well_known(server, "oauth-authorization-server", "");
    let (status, body) = client.get_json(&url, &[]).await?;
    let metadata = if status == 200 {
        read_auth_server_metadata(&url, body, None)?
    } else {
        AuthServerMetadata {
            issuer: None,
            authorization_endpoint: format!("{origin}/authorize"),
            token_endpoint: format!("{origin}/token"),
            registration_endpoint: Some(format!("{origin}/register")),
            code_challenge_methods_supported: vec!["S256".into()],
            ..AuthServerMetadata::default()
        }
    };
    let scopes = challenge.and_then(|c| c.scope.as_deref()).map(|s| s.split_whitespace().map(str::to_string).collect()).unwrap_or_default();
    Ok(Discovered { resource, metadata, scopes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_are_parsed() {
        let challenge = Challenge::parse(
            r#"Bearer resource_metadata="https://mcp.example/.well-known/oauth-protected-resource/mcp", scope="files:read files:write", error="insufficient_scope""#,
        )
        .unwrap();
        assert_eq!(challenge.resource_metadata.as_deref(), Some("https://mcp.example/.well-known/oauth-protected-resource/mcp"));
        assert_eq!(challenge.scope.as_deref(), Some("files:read files:write"));
        assert_eq!(challenge.error.as_deref(), Some("insufficient_scope"));
        assert_eq!(Challenge::parse("Basic realm=x"), None);
        let unquoted = Challenge::parse("Bearer error=invalid_token, scope=a").unwrap();
        assert_eq!(unquoted.error.as_deref(), Some("invalid_token"));
        assert_eq!(unquoted.scope.as_deref(), Some("a"));
    }

    #[test]
    fn issuers_match_exactly_except_root_trailing_slash() {
        assert!(issuers_match("https://accounts.google.com", "https://accounts.google.com/"));
        assert!(issuers_match("https://as.example/tenant1", "https://as.example/tenant1"));
        assert!(!issuers_match("https://as.example/tenant1/", "https://as.example/tenant1"));
        assert!(!issuers_match("https://evil.example", "https://as.example"));
    }

    #[test]
    fn resources_cover_their_paths_only() {
        let url = |s: &str| Url::parse(s).unwrap();
        assert!(covers(&url("https://mcp.example/mcp"), &url("https://mcp.example/mcp")));
        assert!(covers(&url("https://mcp.example"), &url("https://mcp.example/mcp")));
        assert!(!covers(&url("https://mcp.example/other"), &url("https://mcp.example/mcp")));
        assert!(!covers(&url("https://evil.example/mcp"), &url("https://mcp.example/mcp")));
        // Found by the discovery_metadata fuzz target: a query made the root cover every path.
        assert!(!covers(&url("https://mcp.example?mcp"), &url("https://mcp.example/mcp")));
        assert!(covers(&url("https://mcp.example/mcp?v=2"), &url("https://mcp.example/mcp?v=2")));
    }

    #[test]
    fn documents_that_are_refused_say_why() {
        let url = Url::parse("https://as.example/.well-known/oauth-authorization-server").unwrap();
        let body = serde_json::json!({"issuer": "https://as.example", "authorization_endpoint": "https://as.example/authorize"});
        let error = read_auth_server_metadata(&url, Some(body), Some("https://as.example")).unwrap_err().to_string();
        assert!(error.contains("missing field `token_endpoint`"), "{error}");
        let body = serde_json::json!({"issuer": "https://as.example", "authorization_endpoint": "https://as.example/a", "token_endpoint": "https://as.example/t", "scopes_supported": "a b"});
        let error = read_auth_server_metadata(&url, Some(body), None).unwrap_err().to_string();
        assert!(error.contains("invalid type: string \"a b\", expected a sequence"), "{error}");

        let server = Url::parse("https://mcp.example/mcp").unwrap();
        let body = serde_json::json!({"resource": "https://mcp.example", "authorization_servers": ["https://as.example", "https://bound.example/"]});
        let prm = read_protected_resource(&url, Some(body.clone()), &server, None).unwrap();
        assert_eq!((prm.resource.as_str(), prm.issuer.as_str()), ("https://mcp.example/", "https://as.example"));
        let prm = read_protected_resource(&url, Some(body), &server, Some("https://bound.example")).unwrap();
        assert_eq!(prm.issuer, "https://bound.example/", "the bound issuer is chosen when listed");
        let body = serde_json::json!({"resource": "https://mcp.example/mcp", "authorization_servers": []});
        let error = read_protected_resource(&url, Some(body), &server, None).unwrap_err().to_string();
        assert!(error.contains("lists no authorization_servers"), "{error}");
    }

    #[test]
    fn canonical_resources_drop_trailing_slash_and_fragment() {
        assert_eq!(canonical_resource(&Url::parse("HTTPS://MCP.Example/mcp/#x").unwrap()), "https://mcp.example/mcp");
        assert_eq!(canonical_resource(&Url::parse("https://mcp.example/").unwrap()), "https://mcp.example");
    }
}
