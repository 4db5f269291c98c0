//! Who signed in: the identity an OpenID Connect ID token names, or else the provider's userinfo
//! endpoint (OpenID Connect's, or an API's own such as GitHub's `/user`), so that `oauth ls` can
//! say whose mailbox a token reads.
//!
//! The ID token came straight from the token endpoint over the connection latchkey opened to the
//! issuer the client is bound to, which OpenID Connect Core §3.1.3.7 (6) accepts in place of
//! checking its signature; its `iss` and `aud` are still checked, so a token meant for another
//! client or from another issuer names no one. The userinfo endpoint is asked only where the
//! provider's flow or the catalog names one for that authorization server, with the new access
//! token, as any API call would be. The identity is for people to read, never for a decision about
//! where a token goes.

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::discovery::issuers_match;
use crate::store::Identity;

/// The longest ID token read; real ones are a few kilobytes.
const LONGEST_ID_TOKEN: usize = 64 * 1024;
/// The longest label kept.
const LONGEST_LABEL: usize = 256;

#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    aud: Option<Audience>,
    sub: Option<String>,
    email: Option<String>,
    preferred_username: Option<String>,
    name: Option<String>,
}

/// A userinfo answer: OpenID Connect's claims, or an API's user object (GitHub: `id`, `login`).
#[derive(Deserialize)]
struct UserInfo {
    sub: Option<String>,
    id: Option<serde_json::Value>,
    email: Option<String>,
    preferred_username: Option<String>,
    login: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// The identity `id_token` names, when it is a JWT issued by `issuer` for `client_id`.
pub fn from_id_token(id_token: &str, issuer: &str, client_id: &str) -> Option<Identity> {
    if id_token.len() > LONGEST_ID_TOKEN {
        return None;
    }
    let payload = id_token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: Claims = serde_json::from_slice(&bytes).ok()?;
    if !issuers_match(claims.iss.as_deref()?, issuer) {
        return None;
    }
    let for_client = match claims.aud? {
        Audience::One(audience) => audience == client_id,
        Audience::Many(audiences) => audiences.iter().any(|audience| audience == client_id),
    };
    let subject = claims.sub.filter(|sub| !sub.is_empty() && is_label(sub))?;
    if !for_client {
        return None;
    }
    Some(identity(subject, [claims.email, claims.preferred_username, claims.name]))
}

/// Who the access token belongs to, asked of the userinfo endpoint at `url`.
pub async fn from_userinfo(http: &super::http::Client, url: &str, access_token: &SecretString) -> Option<Identity> {
    let url = super::http::endpoint_url(url).ok()?;
    let bearer = format!("Bearer {}", access_token.expose_secret());
    let (status, body) = http.get_json(&url, &[("authorization", &bearer)]).await.ok()?;
    if !(200..300).contains(&status) {
        tracing::debug!("the userinfo endpoint answered HTTP {status}: who signed in is not known");
        return None;
    }
    let info: UserInfo = serde_json::from_value(body?).ok()?;
    let id = info.id.and_then(|id| match id {
        serde_json::Value::String(id) => Some(id),
        serde_json::Value::Number(id) => Some(id.to_string()),
        _ => None,
    });
    let subject = info.sub.or(id).filter(|subject| !subject.is_empty() && is_label(subject))?;
    Some(identity(subject, [info.email, info.preferred_username, info.login, info.name]))
}

/// `subject` with the first of `labels` that reads well, else the subject itself.
fn identity<const N: usize>(subject: String, labels: [Option<String>; N]) -> Identity {
    let label = labels.into_iter().flatten().find(|label| !label.is_empty() && is_label(label)).unwrap_or_else(|| subject.clone());
    Identity { subject, label }
}

/// Short, printable text: what a terminal may show as it is.
fn is_label(text: &str) -> bool {
    text.len() <= LONGEST_LABEL && !text.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(claims: serde_json::Value) -> String {
        let encode = |json: &serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json.to_string());
        format!("{}.{}.signature", encode(&serde_json::json!({"alg": "RS256"})), encode(&claims))
    }

    #[test]
    fn the_identity_is_the_email_else_the_user_name_and_always_the_subject() {
        let google = token(serde_json::json!({
            "iss": "https://accounts.google.com", "aud": "app.apps.googleusercontent.com", "sub": "10769150350006150715113082367",
            "email": "jane@example.com", "email_verified": true
        }));
        let identity = from_id_token(&google, "https://accounts.google.com", "app.apps.googleusercontent.com").unwrap();
        assert_eq!(identity, Identity { subject: "10769150350006150715113082367".into(), label: "jane@example.com".into() });
        let microsoft = token(serde_json::json!({
            "iss": "https://login.microsoftonline.com/tenant/v2.0", "aud": ["other", "app"], "sub": "AAAA", "preferred_username": "jane@contoso.com"
        }));
        assert_eq!(from_id_token(&microsoft, "https://login.microsoftonline.com/tenant/v2.0", "app").unwrap().label, "jane@contoso.com");
        let bare = token(serde_json::json!({"iss": "http://127.0.0.1:9000/", "aud": "app", "sub": "alice"}));
        assert_eq!(from_id_token(&bare, "http://127.0.0.1:9000", "app").unwrap().label, "alice");
    }

    /// A userinfo endpoint on 127.0.0.1 that answers one request with `status` and `body`, and
    /// hands back the request it got.
    fn userinfo_endpoint(status: u16, body: &'static str) -> (String, std::thread::JoinHandle<String>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/user", listener.local_addr().unwrap());
        let served = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = vec![0; 4096];
            let read = stream.read(&mut request).unwrap();
            let answer = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(answer.as_bytes()).unwrap();
            String::from_utf8_lossy(&request[..read]).into_owned()
        });
        (url, served)
    }

    #[tokio::test]
    async fn without_an_id_token_the_userinfo_endpoint_names_who_signed_in() {
        let http = crate::oauth::http::Client::new();
        let token = SecretString::from("the-access-token".to_string());
        // GitHub's `/user`: a numeric id and a login.
        let (url, served) = userinfo_endpoint(200, r#"{"id": 583231, "login": "octocat", "name": "The Octocat"}"#);
        let identity = from_userinfo(&http, &url, &token).await.unwrap();
        assert_eq!(identity, Identity { subject: "583231".into(), label: "octocat".into() });
        let request = served.join().unwrap().to_ascii_lowercase();
        assert!(request.starts_with("get /user ") && request.contains("authorization: bearer the-access-token"), "{request}");
        // OpenID Connect's userinfo.
        let (url, _) = userinfo_endpoint(200, r#"{"sub": "248289761001", "email": "janedoe@example.com"}"#);
        assert_eq!(from_userinfo(&http, &url, &token).await.unwrap().label, "janedoe@example.com");
        // A refusal, or an answer without a subject, names no one.
        let (url, _) = userinfo_endpoint(401, r#"{"error": "invalid_token"}"#);
        assert_eq!(from_userinfo(&http, &url, &token).await, None);
        let (url, _) = userinfo_endpoint(200, r#"{"login": "no-id"}"#);
        assert_eq!(from_userinfo(&http, &url, &token).await, None);
    }

    #[test]
    fn a_token_from_another_issuer_or_for_another_client_names_no_one() {
        let claims =
            |iss: &str, aud: &str| token(serde_json::json!({"iss": iss, "aud": aud, "sub": "alice", "email": "alice@example.com"}));
        assert!(from_id_token(&claims("https://evil.example", "app"), "https://as.example", "app").is_none());
        assert!(from_id_token(&claims("https://as.example", "someone-else"), "https://as.example", "app").is_none());
        assert!(from_id_token("not a jwt", "https://as.example", "app").is_none());
        assert!(from_id_token(&format!("a.{}.c", "%%%"), "https://as.example", "app").is_none());
        let escape = token(serde_json::json!({"iss": "https://as.example", "aud": "app", "sub": "alice", "email": "\u{1b}[31mroot"}));
        assert_eq!(from_id_token(&escape, "https://as.example", "app").unwrap().label, "alice", "an unprintable label is not shown");
    }
}
