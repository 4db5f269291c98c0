//! The SDK's reading of token-endpoint and revocation answers (`standard::read_token_response`,
//! `standard::read_revocation_response`, and `standard::Fields` beneath them), natively: what every
//! provider that keeps the defaults runs on an authorization server's answer.
//!
//! An input is an HTTP response written as text: the status code on the first line, then
//! `name: value` header lines, an empty line, and the body (see `seeds/token_response/`).
//!
//! What must hold besides "no panic": a token set has a non-empty access token and type, no zero
//! lifetime, no token among its `extra` context (which is shown to the user), and scopes without
//! separators; a failure's code and message never quote a token from the body.

#![no_main]

use latchkey_provider_sdk::standard::{self, Fields, TOKEN_FIELDS};
use latchkey_provider_sdk::{Failure, HttpResponse, RequestKind, TokenContext};
use libfuzzer_sys::fuzz_target;

/// Token-response fields whose values are secrets.
const SECRET_FIELDS: &[&str] = &["access_token", "refresh_token", "id_token"];

fuzz_target!(|data: &[u8]| {
    let Some(response) = response(data) else { return };
    let context = TokenContext {
        kind: RequestKind::AuthorizationCode,
        requested_scopes: vec!["openid".into(), "email".into()],
        callback: Vec::new(),
        config: Vec::new(),
    };
    match standard::read_token_response(&context, &response) {
        Ok(tokens) => {
            assert!(!tokens.access_token.is_empty());
            assert!(!tokens.token_type.is_empty());
            assert_ne!(tokens.expires_in, Some(0));
            assert_ne!(tokens.refresh_token_expires_in, Some(0));
            assert_ne!(tokens.refresh_token.as_deref(), Some(""));
            for (key, _) in &tokens.extra {
                assert!(!TOKEN_FIELDS.contains(&key.as_str()), "`{key}` was kept as extra context");
            }
            if !tokens.scopes.iter().eq(&context.requested_scopes) {
                assert!(tokens.scopes.iter().all(|scope| !scope.is_empty() && !scope.contains([' ', ','])), "{:?}", tokens.scopes);
            }
        }
        Err(failure) => assert_quotes_no_token(&failure, &response),
    }
    if let Err(failure) = standard::read_revocation_response(&response) {
        assert_quotes_no_token(&failure, &response);
    }
});

/// `status\nname: value\n…\n\nbody`; `None` when the first line is not a status code.
fn response(data: &[u8]) -> Option<HttpResponse> {
    let head_end = data.windows(2).position(|pair| pair == b"\n\n");
    let (head, body) = match head_end {
        Some(end) => (&data[..end], data[end + 2..].to_vec()),
        None => (data, Vec::new()),
    };
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.lines();
    let status = lines.next()?.trim().parse().ok()?;
    let headers =
        lines.filter_map(|line| line.split_once(':')).map(|(name, value)| (name.trim().to_string(), value.trim().to_string())).collect();
    Some(HttpResponse { status, headers, body })
}

/// A token must not appear in `failure`: failures are printed and logged. Checked for tokens that
/// cannot be mistaken for the failure's own words (8 characters or more, a digit, no whitespace)
/// and that the answer does not repeat elsewhere (in an `error_description`, say).
fn assert_quotes_no_token(failure: &Failure, response: &HttpResponse) {
    let Ok(fields) = Fields::parse(response) else { return };
    let elsewhere: Vec<String> = fields
        .extra(SECRET_FIELDS)
        .into_iter()
        .flat_map(|(key, value)| [key, value])
        .chain(response.headers.iter().flat_map(|(name, value)| [name.clone(), value.clone()]))
        .chain([format!("http_{}", response.status)])
        .collect();
    for token in SECRET_FIELDS.iter().filter_map(|field| fields.string(field)) {
        let token_like = token.len() >= 8 && token.contains(|c: char| c.is_ascii_digit()) && !token.contains(char::is_whitespace);
        if !token_like || elsewhere.iter().any(|text| text.contains(&token)) {
            continue;
        }
        assert!(!failure.message.contains(&token) && !failure.code.contains(&token), "{failure:?} quotes the token {token:?}");
    }
}
