//! The HTTP client for talking to authorization servers, and the rules for which URLs it may use.
//!
//! OAuth endpoints must be https, except on loopback (RFC 8252 §8.3; the MCP security best
//! practices). Redirects are not followed for token, registration and revocation requests: a
//! redirected POST would carry credentials to wherever the server points.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use url::Url;

use super::clock::{ClockFile, Reading};
use crate::plugins::{HttpRequest, HttpResponse};

/// A URL that may not be an OAuth endpoint; the message says why and what to write instead.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UrlError(String);

/// Parse `url` and check it with the same rule the catalog applies to endpoints: https, or http
/// on loopback; no credentials, no fragment.
pub fn endpoint_url(url: &str) -> Result<Url, UrlError> {
    crate::catalog::rules::endpoint(url).map_err(UrlError)?;
    Url::parse(url).map_err(|e| UrlError(e.to_string()))
}

/// An HTTP client for OAuth traffic: bounded time, no redirects, a recognisable user agent.
#[derive(Clone)]
pub struct Client {
    inner: reqwest::Client,
    /// Where the servers' `Date` headers are kept as readings of the clock, if anywhere.
    clock: Option<Arc<ClockFile>>,
}

/// A request that did not get an answer. It names the endpoint by its origin only: a request
/// URL may carry a secret in its path or query (HubSpot revokes a refresh token by putting it in
/// the path), and this message is printed, logged and shown in `--json`.
#[derive(Debug, thiserror::Error)]
#[error("{method} {origin}: {reason}")]
pub struct SendError {
    pub method: String,
    /// `scheme://host:port` of the request, or a placeholder when the URL did not parse.
    pub origin: String,
    pub reason: String,
}

impl SendError {
    fn new(method: &str, url: &str, reason: String) -> SendError {
        let origin = Url::parse(url).map_or_else(|_| "(an unparsable URL)".to_string(), |url| url.origin().ascii_serialization());
        SendError { method: method.to_string(), origin, reason }
    }
}

/// The largest response body read from an authorization server.
const MAX_BODY: usize = 1 << 20;

impl Client {
    pub fn new() -> Client {
        let inner = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("latchkey/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("building the HTTP client");
        Client { inner, clock: None }
    }

    /// This client, keeping the clock readings that answers' `Date` headers give in `clock`.
    pub fn recording_clock(self, clock: ClockFile) -> Client {
        Client { clock: Some(Arc::new(clock)), ..self }
    }

    /// Note what an answer from `url` says about the clock.
    fn received(&self, url: &Url, response: &HttpResponse) {
        let Some(clock) = &self.clock else { return };
        let date = response.headers.iter().find(|(name, _)| name.eq_ignore_ascii_case("date"));
        if let Some(reading) =
            date.and_then(|(_, date)| Reading::from_date_header(&url.origin().ascii_serialization(), date, SystemTime::now()))
        {
            clock.record(reading);
        }
    }

    /// Send a request the provider hooks have shaped, and read the whole (bounded) answer.
    pub async fn send(&self, request: &HttpRequest) -> Result<HttpResponse, SendError> {
        let fail = |reason: String| SendError::new(&request.method, &request.url, reason);
        // The rule's own message quotes the URL: not repeated here.
        let url = endpoint_url(&request.url).map_err(|_| {
            fail("not an endpoint latchkey may use: it must be https (http only on loopback), without a user name or fragment".into())
        })?;
        let method = reqwest::Method::from_bytes(request.method.as_bytes()).map_err(|e| fail(e.to_string()))?;
        let mut builder = self.inner.request(method, url.clone());
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if !request.body.is_empty() {
            builder = builder.body(request.body.clone());
        }
        let response = builder.send().await.map_err(|e| fail(describe(e)))?;
        let response = read_response(response).await.map_err(fail)?;
        self.received(&url, &response);
        Ok(response)
    }

    /// GET a JSON document (discovery), returning the status and the parsed body.
    pub async fn get_json(&self, url: &Url, headers: &[(&str, &str)]) -> Result<(u16, Option<serde_json::Value>), SendError> {
        let fail = |reason: String| SendError::new("GET", url.as_str(), reason);
        let mut builder = self.inner.get(url.clone()).header("accept", "application/json");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let response = builder.send().await.map_err(|e| fail(describe(e)))?;
        let response = read_response(response).await.map_err(fail)?;
        self.received(url, &response);
        let body = serde_json::from_slice(&response.body).ok();
        Ok((response.status, body))
    }

    /// POST `body` as JSON (dynamic client registration), returning the status and the parsed
    /// answer, read within the same bound.
    pub async fn post_json(&self, url: &Url, body: &serde_json::Value) -> Result<(u16, Option<serde_json::Value>), SendError> {
        let fail = |reason: String| SendError::new("POST", url.as_str(), reason);
        let response = self.inner.post(url.clone()).json(body).send().await.map_err(|e| fail(describe(e)))?;
        let response = read_response(response).await.map_err(fail)?;
        self.received(url, &response);
        Ok((response.status, serde_json::from_slice(&response.body).ok()))
    }

    pub fn inner(&self) -> &reqwest::Client {
        &self.inner
    }
}

impl Default for Client {
    fn default() -> Client {
        Client::new()
    }
}

async fn read_response(mut response: reqwest::Response) -> Result<HttpResponse, String> {
    let status = response.status().as_u16();
    let headers =
        response.headers().iter().filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_string()))).collect();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(describe)? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(format!("the response is larger than {} KiB", MAX_BODY >> 10));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(HttpResponse { status, headers, body })
}

/// reqwest's errors hide the useful part (connection refused, timeout) in their source chain.
/// Their own text ends in `for url (…)`, the whole request URL: dropped, since it may carry a
/// secret (see [`SendError`]).
pub(crate) fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = if error.is_timeout() { "timed out".to_string() } else { error.to_string() };
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port on 127.0.0.1 where nothing listens: bound, then released.
    fn closed_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    #[tokio::test]
    async fn a_request_that_gets_no_answer_is_reported_without_its_url() {
        const MARK: &str = "refresh-token-MARK-42";
        let port = closed_port();
        // HubSpot's revocation: the refresh token in the path; others put secrets in the query.
        let request = HttpRequest {
            method: "DELETE".into(),
            url: format!("http://127.0.0.1:{port}/oauth/v1/refresh-tokens/{MARK}?token={MARK}"),
            headers: Vec::new(),
            body: Vec::new(),
        };
        let error = Client::new().send(&request).await.unwrap_err();
        let message = format!("{error} {error:?}");
        assert!(!message.contains(MARK), "{message}");
        assert!(message.contains(&format!("DELETE http://127.0.0.1:{port}")), "the endpoint's origin is named: {message}");

        // A URL latchkey refuses to use is not repeated either.
        let refused = HttpRequest { url: format!("http://example.com/revoke/{MARK}"), ..request };
        let message = Client::new().send(&refused).await.unwrap_err().to_string();
        assert!(!message.contains(MARK) && message.contains("http://example.com") && message.contains("https"), "{message}");

        let discovery = Url::parse(&format!("http://127.0.0.1:{port}/{MARK}/.well-known/oauth-protected-resource")).unwrap();
        let message = Client::new().get_json(&discovery, &[]).await.unwrap_err().to_string();
        assert!(!message.contains(MARK), "{message}");
    }
}
