//! Discovery documents an MCP server or authorization server serves
//! (`oauth::discovery::read_protected_resource` and `read_auth_server_metadata`, what `discover`
//! runs on each fetched body): any body is read without a panic.
//!
//! What must hold: accepted protected-resource metadata names a resource on the MCP server's own
//! origin, at or above its path, so tokens are never asked for another server; accepted
//! authorization-server metadata names the issuer it was fetched for, has only endpoints that
//! latchkey may call (https, or http on loopback), and round-trips through its serialized form
//! (it is stored with registrations).

#![no_main]

use latchkey::oauth::discovery::{AuthServerMetadata, canonical_resource, read_auth_server_metadata, read_protected_resource};
use latchkey::oauth::http::endpoint_url;
use libfuzzer_sys::fuzz_target;
use url::Url;

/// MCP servers the documents are read for: one with a path, one on loopback at the root.
const SERVERS: &[&str] = &["https://mcp.example.com/mcp", "http://127.0.0.1:8123/"];

fuzz_target!(|data: &[u8]| {
    // As `oauth::http::Client::get_json` hands bodies to discovery.
    let body: Option<serde_json::Value> = serde_json::from_slice(data).ok();
    let mut issuers: Vec<Option<String>> = vec![None];
    issuers.extend(body.as_ref().and_then(|body| body.get("issuer")?.as_str()).map(|issuer| Some(issuer.to_string())));

    for server in SERVERS {
        let server = Url::parse(server).unwrap();
        let prm_url = server.join("/.well-known/oauth-protected-resource").unwrap();
        // Unbound, and bound to an issuer the document may or may not list.
        for preferred in [None, Some("https://auth.example.com")] {
            let Ok(prm) = read_protected_resource(&prm_url, body.clone(), &server, preferred) else { continue };
            assert_eq!(prm.resource.origin(), server.origin(), "{} is not on {server}'s origin", prm.resource);
            let (resource, server) = (canonical_resource(&prm.resource), canonical_resource(&server));
            assert!(server == resource || server.starts_with(&format!("{resource}/")), "{resource} does not cover {server}");
            issuers.push(Some(prm.issuer));
        }
    }

    let metadata_url = Url::parse("https://auth.example.com/.well-known/oauth-authorization-server").unwrap();
    for issuer in issuers {
        let Ok(metadata) = read_auth_server_metadata(&metadata_url, body.clone(), issuer.as_deref()) else { continue };
        if let Some(expected) = &issuer {
            let found = metadata.issuer.as_deref().unwrap_or_default();
            assert_eq!(found.trim_end_matches('/'), expected.trim_end_matches('/'), "metadata for another issuer was accepted");
        }
        for endpoint in [&metadata.authorization_endpoint, &metadata.token_endpoint]
            .into_iter()
            .chain([&metadata.revocation_endpoint, &metadata.registration_endpoint].into_iter().flatten())
        {
            assert!(endpoint_url(endpoint).is_ok(), "endpoint {endpoint} was accepted");
        }
        let stored = serde_json::to_value(&metadata).unwrap();
        let loaded: AuthServerMetadata = serde_json::from_value(stored).unwrap();
        assert_eq!(loaded, metadata);
    }
});
