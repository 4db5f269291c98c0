//! Reading the bodies that authorization servers send back: JSON (RFC 6749 §5.1), or
//! `application/x-www-form-urlencoded` (GitHub without an `Accept` header, Facebook's `text/plain`).

use serde_json::{Map, Value};

use crate::{Failure, FailureKind, HttpResponse, Params};

/// The top-level fields of a response body, whatever its encoding.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fields {
    map: Map<String, Value>,
}

impl Fields {
    /// Parse `response`'s body. HTML and other non-token bodies become a [`Failure`] that says
    /// what arrived, since that almost always means a wrong endpoint URL.
    pub fn parse(response: &HttpResponse) -> Result<Fields, Failure> {
        let content_type = header(&response.headers, "content-type").unwrap_or("").to_ascii_lowercase();
        let text = String::from_utf8_lossy(&response.body);
        let trimmed = text.trim_start();
        if trimmed.starts_with('<') || content_type.contains("text/html") {
            return Err(unexpected_body(response.status, "an HTML page"));
        }
        if trimmed.starts_with('{') {
            return match serde_json::from_str::<Value>(trimmed) {
                Ok(Value::Object(map)) => Ok(Fields { map }),
                _ => Err(unexpected_body(response.status, "malformed JSON")),
            };
        }
        if trimmed.is_empty() {
            return Err(unexpected_body(response.status, "an empty body"));
        }
        if content_type.contains("json") {
            return Err(unexpected_body(response.status, "JSON that is not an object"));
        }
        if trimmed.contains('=') && !trimmed.contains(char::is_whitespace) {
            let map = form_urlencoded::parse(trimmed.as_bytes())
                .map(|(key, value)| (key.into_owned(), Value::String(value.into_owned())))
                .collect();
            return Ok(Fields { map });
        }
        Err(unexpected_body(response.status, "plain text"))
    }

    pub fn from_json(map: Map<String, Value>) -> Fields {
        Fields { map }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|value| !value.is_null())
    }

    /// A string field; numbers and booleans are given as text.
    pub fn string(&self, key: &str) -> Option<String> {
        match self.get(key)? {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            Value::Bool(flag) => Some(flag.to_string()),
            _ => None,
        }
    }

    /// A non-negative integer, sent as a number or as a string (Azure AD v1 and PayPal send
    /// `"3599"`).
    pub fn integer(&self, key: &str) -> Option<u64> {
        match self.get(key)? {
            Value::Number(number) => number.as_u64().or_else(|| number.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
            Value::String(text) => text.trim().parse().ok(),
            _ => None,
        }
    }

    /// A nested object (Slack's `authed_user`).
    pub fn object(&self, key: &str) -> Option<Fields> {
        match self.get(key)? {
            Value::Object(map) => Some(Fields { map: map.clone() }),
            _ => None,
        }
    }

    /// Every field not named in `known`, as text (objects and arrays as compact JSON): context to
    /// keep with the credential.
    pub fn extra(&self, known: &[&str]) -> Params {
        self.map
            .iter()
            .filter(|(key, value)| !known.contains(&key.as_str()) && !value.is_null())
            .map(|(key, value)| {
                let text = match value {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                (key.clone(), text)
            })
            .collect()
    }
}

/// The first header called `name`, compared case-insensitively.
pub fn header<'a>(headers: &'a Params, name: &str) -> Option<&'a str> {
    headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
}

fn unexpected_body(status: u16, what: &str) -> Failure {
    let kind = if status >= 500 || status == 429 { FailureKind::Retry } else { FailureKind::Misconfigured };
    Failure {
        kind,
        code: format!("http_{status}"),
        message: format!(
            "the token endpoint answered HTTP {status} with {what} instead of a token response; \
             check that token_endpoint points at the provider's OAuth token URL"
        ),
        retry_after: None,
    }
}
