//! The stdio front door, as AI clients start MCP servers: the gateway on the client's stdin and
//! stdout, with a hot path for `tools/call`.
//!
//! rmcp serves the client (`initialize`, lists, prompts, resources, sign-in) through an in-memory
//! pipe. Each message from the client is looked at first: once the client has initialized, a
//! `tools/call` that the hot path can take ([`super::relayed`]) goes to its server without rmcp,
//! and a call it gives back goes to rmcp as the client sent it. The client's pipes (a FIFO, or
//! the socket pair Node's `child_process` makes) are read and written in place ([`client_io`]).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex, OnceLock};

use rmcp::model::ProtocolVersion;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_util::bytes::Bytes;

use super::Gateway;
use super::relayed::{Message, Relayed};
use super::wire::{self, Envelope};

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
        relayed: Arc::default(),
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
    to_client: mpsc::Sender<Bytes>,
    /// `None` once the client's stdin has ended: rmcp then sees its input end too.
    to_rmcp: StdMutex<Option<mpsc::Sender<Bytes>>>,
    /// The protocol version rmcp agreed with the client at `initialize`.
    protocol_version: OnceLock<ProtocolVersion>,
    /// The client sent `notifications/initialized`: calls may take the hot path.
    initialized: AtomicBool,
    relayed: Arc<Relayed>,
}

#[derive(Deserialize)]
struct Initialized {
    #[serde(rename = "protocolVersion")]
    protocol_version: ProtocolVersion,
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
            if self.to_client.send(Bytes::copy_from_slice(&line)).await.is_err() {
                break;
            }
        }
    }

    async fn read(self: Arc<Self>, stdin: impl AsyncRead + Unpin) {
        let mut stdin = tokio::io::BufReader::new(stdin);
        let mut line = Vec::new();
        while let Ok(true) = wire::read_line(&mut stdin, &mut line).await {
            let message = Bytes::copy_from_slice(&line);
            match self.classify(&line) {
                Message::Call(call) => {
                    let front = self.clone();
                    let finish = move |answer| async move {
                        match answer {
                            Some(answer) => drop(front.to_client.send(answer).await),
                            None => front.to_rmcp(message).await,
                        }
                    };
                    self.relayed.spawn(call, finish).await;
                }
                Message::Cancel(key) => self.relayed.cancel(&key),
                Message::Other => self.to_rmcp(message).await,
            }
        }
        // The client is gone: nothing will read an answer.
        self.to_rmcp.lock().expect("rmcp lock").take();
        self.relayed.cancel_all();
    }

    fn classify(&self, message: &[u8]) -> Message {
        let Some(envelope) = Envelope::of(message) else { return Message::Other };
        if envelope.method == Some("notifications/initialized") {
            self.initialized.store(true, Ordering::Relaxed);
        }
        match self.protocol_version.get() {
            Some(version) if self.initialized.load(Ordering::Relaxed) => self.gateway.classify(&envelope, version, &self.relayed),
            _ => Message::Other,
        }
    }

    async fn to_rmcp(&self, message: Bytes) {
        let to_rmcp = self.to_rmcp.lock().expect("rmcp lock").clone();
        if let Some(to_rmcp) = to_rmcp {
            let _ = to_rmcp.send(message).await;
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
