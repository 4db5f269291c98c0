//! The gateway's side of a stdio server's pipes, shared by rmcp and the hot path.
//!
//! rmcp's client still speaks to the server (`initialize`, lists, notifications, the server's own
//! requests), through an in-memory pipe that [`attach`] hands it. Beside it, [`Relay::request`]
//! sends a request as bytes, under an id of its own (a string, `"latchkey:<n>"`; rmcp numbers its
//! requests, so the two never meet), and hands back the server's answer as bytes: the reader sees
//! that id in the answer's envelope and routes it to the waiting call instead of to rmcp. A call
//! that is dropped before its answer (the client cancelled it, the gateway's timeout passed)
//! sends the server `notifications/cancelled`, as rmcp does for its own requests.
//!
//! When the server's output ends (it exited), every waiting call fails with
//! [`rmcp::service::ServiceError::TransportClosed`] and rmcp sees its pipe end too, so the
//! upstream's crash handling runs as before.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex, OnceLock};

use rmcp::model::ProtocolVersion;
use rmcp::service::ServiceError;
use serde::Serialize;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::bytes::Bytes;

use super::wire::{self, Envelope, Notification, Request};

/// How the relay's request ids start, as they appear in a message (JSON string quotes included).
const ID_PREFIX: &str = "\"latchkey:";

/// How much rmcp's end of the in-memory pipe buffers.
const PIPE_CAPACITY: usize = 64 * 1024;

/// A handle on one server's pipes; cheap to clone.
#[derive(Clone)]
pub struct Relay {
    inner: Arc<Inner>,
}

struct Inner {
    to_server: mpsc::Sender<Bytes>,
    /// Calls waiting for their answer, by the number in their id. `None` once the server's output
    /// has ended: nothing will answer a new call.
    waiting: StdMutex<Option<HashMap<u64, oneshot::Sender<Bytes>>>>,
    next_id: AtomicU64,
    /// The protocol version the server agreed to at `initialize`.
    protocol_version: OnceLock<ProtocolVersion>,
}

/// Relay between a server's `stdout` and `stdin` and the gateway: the relay, and the pipe end to
/// give rmcp's client as its transport.
pub fn attach<R, W>(stdout: R, stdin: W) -> (Relay, DuplexStream)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (ours, rmcps) = tokio::io::duplex(PIPE_CAPACITY);
    let (from_rmcp, mut to_rmcp) = tokio::io::split(ours);
    let to_server = wire::writer(stdin);
    let relay = Relay {
        inner: Arc::new(Inner {
            to_server: to_server.clone(),
            waiting: StdMutex::new(Some(HashMap::new())),
            next_id: AtomicU64::new(0),
            protocol_version: OnceLock::new(),
        }),
    };
    tokio::spawn(async move { wire::pump(from_rmcp, &to_server).await });
    let inner = Arc::downgrade(&relay.inner);
    tokio::spawn(async move {
        let mut stdout = tokio::io::BufReader::new(stdout);
        let mut line = Vec::new();
        while let Ok(true) = wire::read_line(&mut stdout, &mut line).await {
            let Some(inner) = inner.upgrade() else { break };
            if let Some(waiting) = answered_call(&line).and_then(|id| inner.take_waiting(id)) {
                let _ = waiting.send(Bytes::copy_from_slice(&line));
                continue;
            }
            drop(inner);
            line.push(b'\n');
            if to_rmcp.write_all(&line).await.is_err() {
                break;
            }
        }
        // The server's output ended: fail what waits, and end rmcp's side too.
        if let Some(inner) = inner.upgrade() {
            inner.waiting.lock().expect("waiting lock").take();
        }
        let _ = to_rmcp.shutdown().await;
    });
    (relay, rmcps)
}

/// The number of the relay's call that `message` answers, if it answers one.
fn answered_call(message: &[u8]) -> Option<u64> {
    let envelope = Envelope::of(message)?;
    if envelope.method.is_some() {
        return None;
    }
    envelope.id?.get().strip_prefix(ID_PREFIX)?.strip_suffix('"')?.parse().ok()
}

impl Inner {
    fn take_waiting(&self, id: u64) -> Option<oneshot::Sender<Bytes>> {
        self.waiting.lock().expect("waiting lock").as_mut()?.remove(&id)
    }
}

impl Relay {
    /// The server agreed to `version` at `initialize`.
    pub fn agreed(&self, version: ProtocolVersion) {
        let _ = self.inner.protocol_version.set(version);
    }

    /// Whether the server's answers suit a client of protocol version `client` as they are: the
    /// same version, or two with the `initialize` handshake, between which rmcp's full path
    /// converts nothing either (it converts only for versions without it: `resultType`).
    pub fn answers_fit(&self, client: &ProtocolVersion) -> bool {
        self.inner.protocol_version.get().is_some_and(|server| server == client || server.has_initialize() && client.has_initialize())
    }

    /// Send the request `method` with `params` (its JSON, as it is), and wait for the server's
    /// answer: the whole message, its id the relay's own.
    pub async fn request(&self, method: &str, params: impl Serialize) -> Result<Bytes, ServiceError> {
        let number = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let id = format!("latchkey:{number}");
        // JSON values and rmcp's parameter types always serialize.
        let message = serde_json::to_vec(&Request { jsonrpc: "2.0", id: &id, method, params }).expect("request parameters serialize");
        let (answer, answered) = oneshot::channel();
        match self.inner.waiting.lock().expect("waiting lock").as_mut() {
            Some(waiting) => waiting.insert(number, answer),
            None => return Err(ServiceError::TransportClosed),
        };
        let mut pending = Pending { relay: self, number, id: &id };
        if self.inner.to_server.send(Bytes::from(message)).await.is_err() {
            return Err(ServiceError::TransportClosed);
        }
        let answer = answered.await.map_err(|_| ServiceError::TransportClosed);
        pending.number = u64::MAX;
        answer
    }
}

/// A call sent and not yet answered: dropped before its answer, it tells the server to stop.
struct Pending<'a> {
    relay: &'a Relay,
    /// `u64::MAX` once answered.
    number: u64,
    id: &'a str,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if self.number == u64::MAX || self.relay.inner.take_waiting(self.number).is_none() {
            return;
        }
        let cancelled = Notification {
            jsonrpc: "2.0",
            method: "notifications/cancelled",
            params: json!({"requestId": self.id, "reason": "the gateway's client cancelled the request, or it timed out"}),
        };
        // Not waited for (a drop cannot wait): with the server's queue full, it is not told.
        if let Ok(message) = serde_json::to_vec(&cancelled)
            && self.relay.inner.to_server.try_send(Bytes::from(message)).is_err()
        {
            tracing::debug!("could not tell the server of a cancelled call: its input is full or closed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, BufReader};

    /// A relay over in-memory pipes, with the server's ends: what it reads, and where it writes.
    fn relay() -> (Relay, DuplexStream, BufReader<DuplexStream>, tokio::io::DuplexStream) {
        let (server_stdin, relay_stdin) = tokio::io::duplex(4096);
        let (relay_stdout, server_stdout) = tokio::io::duplex(4096);
        let (relay, rmcps) = attach(relay_stdout, relay_stdin);
        (relay, rmcps, BufReader::new(server_stdin), server_stdout)
    }

    /// A `tools/call` with `params` through `relay`, in a task of its own.
    fn call(relay: &Relay, params: serde_json::Value) -> tokio::task::JoinHandle<Result<Bytes, ServiceError>> {
        let relay = relay.clone();
        tokio::spawn(async move { relay.request("tools/call", params).await })
    }

    #[tokio::test]
    async fn an_answer_goes_to_its_call_and_everything_else_to_rmcp() {
        let (relay, rmcps, mut server_reads, mut server_writes) = relay();
        let call = call(&relay, json!({"name": "echo"}));
        let mut sent = String::new();
        server_reads.read_line(&mut sent).await.unwrap();
        assert_eq!(sent, "{\"jsonrpc\":\"2.0\",\"id\":\"latchkey:0\",\"method\":\"tools/call\",\"params\":{\"name\":\"echo\"}}\n");
        server_writes.write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n").await.unwrap();
        server_writes.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":0,\"result\":{}}\n").await.unwrap();
        server_writes.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":\"latchkey:0\",\"result\":{\"content\":[]}}\n").await.unwrap();
        let answer = call.await.unwrap().unwrap();
        assert_eq!(&answer[..], b"{\"jsonrpc\":\"2.0\",\"id\":\"latchkey:0\",\"result\":{\"content\":[]}}");
        let mut to_rmcp = String::new();
        let mut rmcps = BufReader::new(rmcps);
        rmcps.read_line(&mut to_rmcp).await.unwrap();
        rmcps.read_line(&mut to_rmcp).await.unwrap();
        assert_eq!(
            to_rmcp,
            "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n{\"jsonrpc\":\"2.0\",\"id\":0,\"result\":{}}\n"
        );
    }

    #[tokio::test]
    async fn a_call_dropped_before_its_answer_cancels_it_at_the_server() {
        let (relay, _rmcps, mut server_reads, _server_writes) = relay();
        let call = call(&relay, json!({}));
        let mut line = String::new();
        server_reads.read_line(&mut line).await.unwrap();
        call.abort();
        line.clear();
        server_reads.read_line(&mut line).await.unwrap();
        assert!(line.contains("\"method\":\"notifications/cancelled\"") && line.contains("\"requestId\":\"latchkey:0\""), "{line}");
    }

    #[tokio::test]
    async fn answers_fit_a_client_of_the_same_version_or_both_with_initialize() {
        let (relay, ..) = relay();
        assert!(!relay.answers_fit(&ProtocolVersion::V_2025_11_25), "before the server agreed to a version");
        relay.agreed(ProtocolVersion::V_2025_11_25);
        assert!(relay.answers_fit(&ProtocolVersion::V_2025_11_25));
        assert!(relay.answers_fit(&ProtocolVersion::V_2025_06_18));
        assert!(!relay.answers_fit(&ProtocolVersion::V_2026_07_28), "rmcp converts between these");
        let (relay, ..) = self::relay();
        relay.agreed(ProtocolVersion::V_2026_07_28);
        assert!(relay.answers_fit(&ProtocolVersion::V_2026_07_28));
        assert!(!relay.answers_fit(&ProtocolVersion::V_2025_11_25));
    }

    #[tokio::test]
    async fn calls_fail_when_the_server_s_output_ends() {
        let (relay, _rmcps, mut server_reads, server_writes) = relay();
        let call = call(&relay, json!({}));
        server_reads.read_line(&mut String::new()).await.unwrap();
        drop(server_writes);
        assert!(matches!(call.await.unwrap(), Err(ServiceError::TransportClosed)));
        assert!(matches!(relay.request("tools/call", json!({})).await, Err(ServiceError::TransportClosed)));
    }
}
