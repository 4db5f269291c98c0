//! Who latchkey is to an authorization server: the OAuth client.
//!
//! The MCP specification's order: a pre-registered client (the catalog's `registration.client_id`,
//! `latchkey oauth register`, or `--client-id`), then a Client ID Metadata Document (when the
//! server advertises `client_id_metadata_document_supported` and latchkey has a document URL),
//! then RFC 7591 Dynamic Client Registration (when the server has a `registration_endpoint`).
//! Providers such as Google, Slack and Microsoft offer neither of the last two: for them the user
//! registers an app by hand, and the client secret lives in the secret store.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::discovery::AuthServerMetadata;
use super::http::Client;
use crate::plugins::ClientAuth;

/// An OAuth client: its id, its secret if it is confidential, and how it authenticates.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClientRegistration {
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "optional_secret")]
    pub client_secret: Option<SecretString>,
    /// The token-endpoint authentication the registration agreed on; `None` lets the provider's
    /// flow decide.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "optional_auth")]
    pub auth_method: Option<ClientAuth>,
    pub source: RegistrationSource,
    /// For `private_key_jwt`: the stored secret that holds the client's private key, and the key.
    /// Never written anywhere with the registration.
    #[serde(skip)]
    pub client_key: Option<(String, SecretString)>,
}

/// Where a client registration came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RegistrationSource {
    /// `registration.client_id` in a catalog.
    Catalog,
    /// `latchkey oauth register`.
    Manual,
    /// `--client-id` on the command line.
    CommandLine,
    /// A Client ID Metadata Document URL used as the client id.
    MetadataDocument,
    /// RFC 7591 Dynamic Client Registration.
    Dynamic,
}

impl std::fmt::Display for RegistrationSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RegistrationSource::Catalog => "catalog",
            RegistrationSource::Manual => "oauth register",
            RegistrationSource::CommandLine => "command line",
            RegistrationSource::MetadataDocument => "client metadata document",
            RegistrationSource::Dynamic => "dynamic registration",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error(
        "no OAuth client for {issuer}: the authorization server supports neither client metadata documents nor dynamic \
         registration, so register an app with the provider and run `latchkey oauth register {server} --client-id <id> \
         --client-secret-stdin` (or pass --client-id)"
    )]
    NoClient { server: String, issuer: String },
    #[error("dynamic client registration at {url} failed: {reason}")]
    Dynamic { url: String, reason: String },
}

/// The OAuth name of a client authentication method (RFC 7591 §2).
pub fn auth_method_name(auth: ClientAuth) -> &'static str {
    match auth {
        ClientAuth::Basic => "client_secret_basic",
        ClientAuth::Post => "client_secret_post",
        ClientAuth::None => "none",
        ClientAuth::PrivateKeyJwt => "private_key_jwt",
    }
}

pub fn parse_auth_method(name: &str) -> Option<ClientAuth> {
    match name {
        "client_secret_basic" => Some(ClientAuth::Basic),
        "client_secret_post" => Some(ClientAuth::Post),
        "none" => Some(ClientAuth::None),
        "private_key_jwt" => Some(ClientAuth::PrivateKeyJwt),
        _ => None,
    }
}

/// The method to use with an authorization server: the first one its metadata lists that latchkey
/// supports (RFC 8414's default, `client_secret_basic`, when it lists none).
pub fn preferred_auth_method(metadata: &AuthServerMetadata) -> ClientAuth {
    metadata.token_endpoint_auth_methods_supported.iter().find_map(|name| parse_auth_method(name)).unwrap_or(ClientAuth::Basic)
}

/// A client whose id is the URL of its metadata document (draft-ietf-oauth-client-id-metadata-document).
pub fn metadata_document_client(url: &str) -> ClientRegistration {
    ClientRegistration {
        client_id: url.to_string(),
        client_secret: None,
        auth_method: Some(ClientAuth::None),
        source: RegistrationSource::MetadataDocument,
        client_key: None,
    }
}

/// Register latchkey with `registration_endpoint` (RFC 7591) for the loopback `redirect_uri`.
pub async fn register_dynamically(
    client: &Client,
    registration_endpoint: &str,
    metadata: &AuthServerMetadata,
    redirect_uri: &str,
    scopes: &[String],
) -> Result<ClientRegistration, RegistrationError> {
    let fail = |reason: String| RegistrationError::Dynamic { url: registration_endpoint.to_string(), reason };
    let method = preferred_auth_method(metadata);
    let mut request = serde_json::json!({
        "client_name": "latchkey",
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": auth_method_name(method),
        // A command-line client on the user's machine (MCP 2026-07-28: DCR clients send it).
        "application_type": "native",
        "software_id": "dev.latchkey",
        "software_version": env!("CARGO_PKG_VERSION"),
    });
    if !scopes.is_empty() {
        request["scope"] = scopes.join(" ").into();
    }
    let url = super::http::endpoint_url(registration_endpoint).map_err(|e| fail(e.to_string()))?;
    // Read within the client's bound: a registration endpoint may answer with anything, of any size.
    let (status, body) = client.post_json(&url, &request).await.map_err(|e| fail(e.reason))?;
    let body = body.ok_or_else(|| fail(format!("HTTP {status}, and the body is not JSON")))?;
    if !(200..300).contains(&status) {
        let error = body.get("error").and_then(|v| v.as_str()).unwrap_or("no error code");
        let description = body.get("error_description").and_then(|v| v.as_str()).unwrap_or("");
        return Err(fail(format!("HTTP {status}: {error} {description}").trim().to_string()));
    }
    let client_id = body.get("client_id").and_then(|v| v.as_str()).ok_or_else(|| fail("the answer has no client_id".into()))?;
    let client_secret = body.get("client_secret").and_then(|v| v.as_str()).map(|s| SecretString::from(s.to_string()));
    let granted = body.get("token_endpoint_auth_method").and_then(|v| v.as_str()).and_then(parse_auth_method);
    // A server that issued no secret made a public client, whatever was asked.
    let auth_method = if client_secret.is_none() { ClientAuth::None } else { granted.unwrap_or(method) };
    Ok(ClientRegistration {
        client_id: client_id.to_string(),
        client_secret,
        auth_method: Some(auth_method),
        source: RegistrationSource::Dynamic,
        client_key: None,
    })
}

mod optional_secret {
    use super::*;

    pub fn serialize<S: serde::Serializer>(secret: &Option<SecretString>, serializer: S) -> Result<S::Ok, S::Error> {
        secret.as_ref().map(|s| s.expose_secret().to_string()).serialize(serializer)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<SecretString>, D::Error> {
        Ok(Option::<String>::deserialize(deserializer)?.map(SecretString::from))
    }
}

mod optional_auth {
    use super::*;

    pub fn serialize<S: serde::Serializer>(auth: &Option<ClientAuth>, serializer: S) -> Result<S::Ok, S::Error> {
        auth.map(auth_method_name).serialize(serializer)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<ClientAuth>, D::Error> {
        match Option::<String>::deserialize(deserializer)? {
            None => Ok(None),
            Some(name) => parse_auth_method(&name)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("unknown token endpoint auth method `{name}`"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A registration endpoint whose answer is valid JSON, 8 MiB of it, sent in chunks.
    async fn huge_answer() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/register", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buffer = [0; 4096];
            while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(read) => request.extend_from_slice(&buffer[..read]),
                }
            }
            let head = "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
            let filler = "a".repeat(64 << 10);
            let mut chunks = vec![r#"{"client_id":""#.to_string()];
            chunks.extend(std::iter::repeat_n(filler, 128));
            chunks.push(r#""}"#.to_string());
            let _ = stream.write_all(head.as_bytes()).await;
            for chunk in chunks {
                // The client hangs up once it has read enough: not an error here.
                if stream.write_all(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes()).await.is_err() {
                    return;
                }
            }
            let _ = stream.write_all(b"0\r\n\r\n").await;
        });
        url
    }

    #[tokio::test]
    async fn a_huge_registration_answer_is_refused_not_read_whole() {
        let endpoint = huge_answer().await;
        let metadata = AuthServerMetadata::default();
        let error = register_dynamically(&Client::new(), &endpoint, &metadata, "http://127.0.0.1:1/callback", &[]).await.unwrap_err();
        let message = error.to_string();
        assert!(message.contains("larger than 1024 KiB") && message.contains(&endpoint), "{message}");
    }
}
