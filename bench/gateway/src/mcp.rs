//! Just enough of an MCP Streamable HTTP client to time `tools/call`: `initialize`, the
//! `initialized` notification, then requests on that session.
//!
//! A server may answer a POST with `application/json` or with an SSE stream; both are read. With
//! SSE the call is timed up to the event that carries its response, then the rest of the stream is
//! drained (not timed) so the connection goes back to the pool: a dropped half-read body would cost
//! a new TCP connection per call and measure the client instead of the proxy.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::{Value, json};

/// The protocol version the client asks for; every peer in the benchmark speaks it.
pub const PROTOCOL_VERSION: &str = "2025-06-18";

/// How long to wait for the end of an SSE stream whose response already arrived.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Session {
    http: reqwest::Client,
    url: String,
    headers: HeaderMap,
    next_id: AtomicU64,
}

impl Session {
    /// Open a session: `initialize`, then `notifications/initialized`.
    pub async fn open(url: &str) -> Result<Session> {
        Session::open_with(client()?, url).await
    }

    /// [`Session::open`] on `http`'s connections (many sessions, one client).
    pub async fn open_with(http: reqwest::Client, url: &str) -> Result<Session> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(ACCEPT, HeaderValue::from_static("application/json, text/event-stream"));
        let mut session = Session { http, url: url.to_string(), headers, next_id: AtomicU64::new(1) };

        let initialize = json!({
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "latchkey-gateway-bench", "version": env!("CARGO_PKG_VERSION")},
        });
        let (result, response_headers, _) = session.send("initialize", initialize).await.with_context(|| format!("initialize at {url}"))?;
        if let Some(id) = response_headers.get("mcp-session-id") {
            session.headers.insert("mcp-session-id", id.clone());
        }
        let version = result.get("protocolVersion").and_then(Value::as_str).unwrap_or(PROTOCOL_VERSION);
        session.headers.insert("mcp-protocol-version", HeaderValue::from_str(version)?);

        let notification = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let response = session.http.post(&session.url).headers(session.headers.clone()).json(&notification).send().await?;
        if !response.status().is_success() {
            bail!("{url} answered notifications/initialized with HTTP {}", response.status());
        }
        Ok(session)
    }

    /// End the session: `DELETE` with its `Mcp-Session-Id` (a server without sessions has none to end).
    pub async fn delete(self) -> Result<()> {
        if !self.headers.contains_key("mcp-session-id") {
            return Ok(());
        }
        let response = self.http.delete(&self.url).headers(self.headers.clone()).send().await?;
        if !response.status().is_success() {
            bail!("{} answered DELETE with HTTP {}", self.url, response.status());
        }
        Ok(())
    }

    /// Call `tool` with `arguments`: the `result` object of the response, and when the response
    /// arrived (before the rest of an SSE stream was drained).
    pub async fn call_tool(&self, tool: &str, arguments: Value) -> Result<(Value, Instant)> {
        let (result, _, arrived) = self.send("tools/call", json!({"name": tool, "arguments": arguments})).await?;
        if result.get("isError").and_then(Value::as_bool) == Some(true) {
            bail!("{tool} failed: {result}");
        }
        Ok((result, arrived))
    }

    /// Any request: its `result`, and when the response arrived.
    pub async fn request(&self, method: &str, params: Value) -> Result<(Value, Instant)> {
        let (result, _, arrived) = self.send(method, params).await?;
        Ok((result, arrived))
    }

    async fn send(&self, method: &str, params: Value) -> Result<(Value, HeaderMap, Instant)> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let mut response = self.http.post(&self.url).headers(self.headers.clone()).json(&body).send().await?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            bail!("{method}: HTTP {status}: {text}");
        }
        let headers = response.headers().clone();
        let is_sse =
            headers.get(CONTENT_TYPE).and_then(|value| value.to_str().ok()).is_some_and(|value| value.starts_with("text/event-stream"));
        let (message, arrived) = if is_sse {
            let message = read_sse_response(&mut response, id).await?;
            let arrived = Instant::now();
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, async { while let Ok(Some(_)) = response.chunk().await {} }).await;
            (message, arrived)
        } else {
            let message = response.json::<Value>().await?;
            (message, Instant::now())
        };
        match (message.get("result"), message.get("error")) {
            (Some(result), _) => Ok((result.clone(), headers, arrived)),
            (None, Some(error)) => Err(anyhow!("{method}: {error}")),
            _ => Err(anyhow!("{method}: not a JSON-RPC response: {message}")),
        }
    }
}

/// An HTTP client for sessions: connections pooled, no proxy, nothing waits forever.
pub fn client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder().no_proxy().pool_max_idle_per_host(64).timeout(Duration::from_secs(30)).build()?)
}

/// Read SSE events until one carries the response with `id`; notifications and priming events
/// (empty `data`) before it are skipped.
async fn read_sse_response(response: &mut reqwest::Response, id: u64) -> Result<Value> {
    let mut buffer = String::new();
    loop {
        let chunk = response.chunk().await?.ok_or_else(|| anyhow!("the SSE stream ended before the response to request {id}"))?;
        buffer.push_str(std::str::from_utf8(&chunk).context("SSE stream is not UTF-8")?);
        while let Some((event, rest)) = split_event(&buffer) {
            let data: Vec<&str> =
                event.lines().filter_map(|line| line.strip_prefix("data:")).map(|data| data.strip_prefix(' ').unwrap_or(data)).collect();
            let data = data.join("\n");
            let rest = rest.to_string();
            if !data.is_empty() {
                let message: Value = serde_json::from_str(&data).with_context(|| format!("SSE data is not JSON: {data}"))?;
                if message.get("id").and_then(Value::as_u64) == Some(id) {
                    return Ok(message);
                }
            }
            buffer = rest;
        }
    }
}

/// The first complete event of `buffer` and what follows it.
fn split_event(buffer: &str) -> Option<(&str, &str)> {
    ["\r\n\r\n", "\n\n"]
        .iter()
        .filter_map(|separator| buffer.find(separator).map(|at| (at, separator.len())))
        .min()
        .map(|(at, length)| (&buffer[..at], &buffer[at + length..]))
}

#[cfg(test)]
mod tests {
    use super::split_event;

    #[test]
    fn events_split_on_either_line_ending() {
        assert_eq!(split_event("data: a\n\ndata: b"), Some(("data: a", "data: b")));
        assert_eq!(split_event("data: a\r\n\r\nrest"), Some(("data: a", "rest")));
        assert_eq!(split_event("data: incomplete\n"), None);
    }
}
