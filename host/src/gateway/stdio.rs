//! The stdio front door, as AI clients start MCP servers: the gateway on the client's stdin and
//! stdout, with a hot path for `tools/call`.
//!
//! rmcp serves the client (`initialize`, lists, prompts, resources, sign-in) through an in-memory
//! pipe. Each message from the client is looked at first ([`super::wire::Envelope`]): a
//! `tools/call`, once the client has initialized, for a tool of a server on stdio that is running
//! now and whose answers suit the client's protocol version as they are, is relayed to that
//! server ([`super::relay`]): only its `name` is rewritten (the server's own) and its answer's
//! `id` (the client's), so neither crosses rmcp's typed layers. (Where rmcp converts an answer
//! between two versions, such calls take the full path: [`super::relay::Relay::answers_fit`].)
//! What the hot path does not know how to finish goes to rmcp after all: a call whose server
//! turns out not to be running (it must start, or its user must sign in) is handed to rmcp as
//! the client sent it. A failed call is the same tool error the full path gives, and a client's
//! `notifications/cancelled` for a relayed call cancels it at the server.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex, OnceLock};

use rmcp::model::ProtocolVersion;
use serde::Deserialize;
use serde_json::value::{RawValue, to_raw_value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio_util::bytes::Bytes;

use super::upstream::{Upstream, UpstreamError};
use super::wire::{self, Envelope};
use super::{Gateway, tool_error_result};

/// How much rmcp's end of the in-memory pipe buffers.
const PIPE_CAPACITY: usize = 64 * 1024;

/// Serve the client on this process's stdin and stdout until it goes away (its stdin ends) or
/// `shutdown` completes.
pub async fn serve(gateway: Gateway, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let (stdin, stdout) = client_io();
    let to_client = wire::writer(stdout);
    let (ours, rmcps) = tokio::io::duplex(PIPE_CAPACITY);
    let (from_rmcp, to_rmcp) = tokio::io::split(ours);
    let front = Arc::new(Front {
        gateway: gateway.clone(),
        to_client,
        to_rmcp: StdMutex::new(Some(wire::writer(to_rmcp))),
        protocol_version: OnceLock::new(),
        initialized: AtomicBool::new(false),
        relayed: StdMutex::new(HashMap::new()),
    });
    tokio::spawn(front.clone().answer(from_rmcp));
    tokio::spawn(front.read(stdin));
    let service = rmcp::ServiceExt::serve(gateway, rmcps).await.map_err(|e| anyhow::anyhow!("the MCP client did not initialize: {e}"))?;
    tokio::select! {
        ended = service.waiting() => ended.map(drop).map_err(|e| anyhow::anyhow!("{e}")),
        () = shutdown => Ok(()),
    }
}

struct Front {
    gateway: Gateway,
    to_client: mpsc::UnboundedSender<Bytes>,
    /// `None` once the client's stdin has ended: rmcp then sees its input end too.
    to_rmcp: StdMutex<Option<mpsc::UnboundedSender<Bytes>>>,
    /// The protocol version rmcp agreed with the client at `initialize`.
    protocol_version: OnceLock<ProtocolVersion>,
    /// The client sent `notifications/initialized`.
    initialized: AtomicBool,
    /// Calls on the hot path, by the client's id (its JSON text).
    relayed: StdMutex<HashMap<Box<str>, AbortHandle>>,
}

/// What to do with a message from the client.
enum Route {
    /// A `tools/call` for this running upstream, with its id and its parameters for the server.
    Relay {
        upstream: Arc<Upstream>,
        id: Box<RawValue>,
        params: Box<RawValue>,
    },
    /// A cancellation of the relayed call with this id.
    Cancel(Box<str>),
    Rmcp,
}

#[derive(Deserialize)]
struct Initialized {
    #[serde(rename = "protocolVersion")]
    protocol_version: ProtocolVersion,
}

#[derive(Deserialize)]
struct Cancelled<'a> {
    #[serde(rename = "requestId", borrow)]
    request_id: &'a RawValue,
}

impl Front {
    /// Pass rmcp's messages on to the client, noting the protocol version it agreed to.
    async fn answer(self: Arc<Self>, from_rmcp: tokio::io::ReadHalf<tokio::io::DuplexStream>) {
        let mut from_rmcp = tokio::io::BufReader::new(from_rmcp);
        let mut line = Vec::new();
        while let Ok(true) = wire::read_line(&mut from_rmcp, &mut line).await {
            if self.protocol_version.get().is_none()
                && let Some(result) = Envelope::of(&line).and_then(|envelope| envelope.result)
                && let Ok(initialized) = serde_json::from_str::<Initialized>(result.get())
            {
                let _ = self.protocol_version.set(initialized.protocol_version);
            }
            if self.to_client.send(Bytes::copy_from_slice(&line)).is_err() {
                break;
            }
        }
    }

    async fn read(self: Arc<Self>, stdin: impl AsyncRead + Unpin) {
        let mut stdin = tokio::io::BufReader::new(stdin);
        let mut line = Vec::new();
        while let Ok(true) = wire::read_line(&mut stdin, &mut line).await {
            match self.route(&line) {
                Route::Relay { upstream, id, params } => self.relay(upstream, id, params, Bytes::copy_from_slice(&line)),
                Route::Cancel(id) => {
                    if let Some(call) = self.relayed.lock().expect("relayed lock").remove(&id) {
                        call.abort();
                    }
                }
                Route::Rmcp => self.to_rmcp(Bytes::copy_from_slice(&line)),
            }
        }
        // The client is gone: nothing will read an answer.
        self.to_rmcp.lock().expect("rmcp lock").take();
        for (_, call) in self.relayed.lock().expect("relayed lock").drain() {
            call.abort();
        }
    }

    fn route(&self, message: &[u8]) -> Route {
        let Some(envelope) = Envelope::of(message) else { return Route::Rmcp };
        match (envelope.method, envelope.id, envelope.params) {
            (Some("tools/call"), Some(id), Some(params)) if self.initialized.load(Ordering::Relaxed) => {
                self.relayable(id, params).unwrap_or(Route::Rmcp)
            }
            (Some("notifications/cancelled"), None, Some(params)) => {
                let Ok(cancelled) = serde_json::from_str::<Cancelled>(params.get()) else { return Route::Rmcp };
                let id: Box<str> = cancelled.request_id.get().into();
                if self.relayed.lock().expect("relayed lock").contains_key(&id) { Route::Cancel(id) } else { Route::Rmcp }
            }
            (Some("notifications/initialized"), None, _) => {
                self.initialized.store(true, Ordering::Relaxed);
                Route::Rmcp
            }
            _ => Route::Rmcp,
        }
    }

    /// The hot path for a `tools/call`, if its tool is a running stdio server's.
    fn relayable(&self, id: &RawValue, params: &RawValue) -> Option<Route> {
        let mut params: BTreeMap<&str, &RawValue> = serde_json::from_str(params.get()).ok()?;
        let exposed: String = serde_json::from_str(params.get("name")?.get()).ok()?;
        let (upstream, own) = self.gateway.route(&exposed)?;
        if !upstream.relays_now(self.protocol_version.get()?) {
            return None;
        }
        let own = to_raw_value(own).ok()?;
        params.insert("name", &own);
        Some(Route::Relay { upstream: upstream.clone(), id: id.to_owned(), params: to_raw_value(&params).ok()? })
    }

    fn relay(self: &Arc<Self>, upstream: Arc<Upstream>, id: Box<RawValue>, params: Box<RawValue>, message: Bytes) {
        let mut relayed = self.relayed.lock().expect("relayed lock");
        let key: Box<str> = id.get().into();
        let front = self.clone();
        // Registered before the call can end and remove itself: the lock is held until then.
        let call = tokio::spawn(async move {
            let answer = match front.protocol_version.get() {
                Some(version) => upstream.call_tool_as_is(&params, version).await,
                None => None,
            };
            front.relayed.lock().expect("relayed lock").remove(id.get());
            let result = match answer {
                Some(Ok(result)) => result,
                // Not running after all, or refused: the full path starts it or signs its user in.
                None | Some(Err(UpstreamError::Start { .. } | UpstreamError::Refused { .. })) => return front.to_rmcp(message),
                Some(Err(error)) => match to_raw_value(&tool_error_result(&error)) {
                    Ok(result) => result,
                    Err(_) => return front.to_rmcp(message),
                },
            };
            let _ = front.to_client.send(wire::response(&id, Ok(&result)));
        });
        relayed.insert(key, call.abort_handle());
    }

    fn to_rmcp(&self, message: Bytes) {
        if let Some(to_rmcp) = &*self.to_rmcp.lock().expect("rmcp lock") {
            let _ = to_rmcp.send(message);
        }
    }
}

type ClientRead = Box<dyn AsyncRead + Unpin + Send>;
type ClientWrite = Box<dyn AsyncWrite + Unpin + Send>;

/// This process's stdin and stdout. tokio's own `stdin()` and `stdout()` hand every read and
/// write to a thread of its blocking pool (a file may block), which costs two thread switches per
/// message; a client's pipes (a FIFO, or the socket pair Node's `child_process` makes) are read
/// and written in place, as the gateway's own pipes to its servers are.
#[cfg(unix)]
fn client_io() -> (ClientRead, ClientWrite) {
    use std::fs::File;
    use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
    use std::os::unix::fs::FileTypeExt;

    use tokio::net::unix::pipe;

    /// What `fd` is: a pipe, a socket, or something else (a terminal, a file), which stays as it
    /// is (non-blocking mode on a terminal would be the shell's too).
    fn open(fd: BorrowedFd<'_>) -> Option<(File, std::fs::FileType)> {
        let file = File::from(fd.try_clone_to_owned().ok()?);
        let kind = file.metadata().ok()?.file_type();
        Some((file, kind))
    }
    fn socket(file: File) -> Option<tokio::net::UnixStream> {
        let socket = std::os::unix::net::UnixStream::from(OwnedFd::from(file));
        socket.set_nonblocking(true).ok()?;
        tokio::net::UnixStream::from_std(socket).ok()
    }
    let stdin = open(std::io::stdin().as_fd()).and_then(|(file, kind)| match kind {
        kind if kind.is_fifo() => pipe::Receiver::from_file(file).ok().map(|pipe| Box::new(pipe) as ClientRead),
        kind if kind.is_socket() => socket(file).map(|socket| Box::new(socket) as ClientRead),
        _ => None,
    });
    let stdout = open(std::io::stdout().as_fd()).and_then(|(file, kind)| match kind {
        kind if kind.is_fifo() => pipe::Sender::from_file(file).ok().map(|pipe| Box::new(pipe) as ClientWrite),
        kind if kind.is_socket() => socket(file).map(|socket| Box::new(socket) as ClientWrite),
        _ => None,
    });
    (stdin.unwrap_or_else(|| Box::new(tokio::io::stdin())), stdout.unwrap_or_else(|| Box::new(tokio::io::stdout())))
}

#[cfg(not(unix))]
fn client_io() -> (ClientRead, ClientWrite) {
    (Box::new(tokio::io::stdin()), Box::new(tokio::io::stdout()))
}
