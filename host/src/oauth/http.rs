//! The HTTP client for talking to authorization servers, and the rules for which URLs it may use.
//!
//! OAuth endpoints must be https, except on loopback (RFC 8252 §8.3; the MCP security best
//! practices). Redirects are not followed for token, registration and revocation requests: a
//! redirected POST would carry credentials to wherever the server points.

use std::time::Duration;

use url::Url;

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
}

/// A request that did not get an answer.
#[derive(Debug, thiserror::Error)]
#[error("{method} {url}: {reason}")]
pub struct SendError {
    pub method: String,
    pub url: String,
    pub reason: String,
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
        Client { inner }
    }

    /// Send a request the provider hooks have shaped, and read the whole (bounded) answer.
    pub async fn send(&self, request: &HttpRequest) -> Result<HttpResponse, SendError> {
        let fail = |reason: String| SendError { method: request.method.clone(), url: request.url.clone(), reason };
        let url = endpoint_url(&request.url).map_err(|e| fail(e.to_string()))?;
        let method = reqwest::Method::from_bytes(request.method.as_bytes()).map_err(|e| fail(e.to_string()))?;
        let mut builder = self.inner.request(method, url);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if !request.body.is_empty() {
            builder = builder.body(request.body.clone());
        }
        let response = builder.send().await.map_err(|e| fail(describe(&e)))?;
        read_response(response).await.map_err(fail)
    }

    /// GET a JSON document (discovery), returning the status and the parsed body.
    pub async fn get_json(&self, url: &Url, headers: &[(&str, &str)]) -> Result<(u16, Option<serde_json::Value>), SendError> {
        let fail = |reason: String| SendError { method: "GET".into(), url: url.to_string(), reason };
        let mut builder = self.inner.get(url.clone()).header("accept", "application/json");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let response = builder.send().await.map_err(|e| fail(describe(&e)))?;
        let response = read_response(response).await.map_err(fail)?;
        let body = serde_json::from_slice(&response.body).ok();
        Ok((response.status, body))
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
    while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e))? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(format!("the response is larger than {} KiB", MAX_BODY >> 10));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(HttpResponse { status, headers, body })
}

/// reqwest's errors hide the useful part (connection refused, timeout) in their source chain.
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() { "timed out".to_string() } else { error.to_string() };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
