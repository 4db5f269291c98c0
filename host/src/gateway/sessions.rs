//! Streamable HTTP sessions with a lifecycle: each one ends, and everything it held goes with it.
//!
//! rmcp's [`LocalSessionManager`] keeps one entry per session (a channel to the session's worker,
//! which owns its streams and the handler's serve loop). A session ends when the client sends
//! `DELETE /mcp` with its `Mcp-Session-Id`, or when it has been idle for the idle timeout (no
//! request, notification or response in either direction; an open `GET` stream alone does not
//! keep it alive), which rmcp's worker enforces as its `keep_alive` (`--session-idle-timeout`
//! instead of rmcp's 5 minutes). Most clients never send `DELETE`, so the timeout is what ends most
//! sessions. A client that comes back after its session ended gets `404`, and the protocol has it
//! start a new session.
//!
//! [`Sessions`] wraps rmcp's manager to add what it lacks:
//! - when a session ends (either way), the gateway forgets it as a client to notify
//!   ([`Gateway::forget_client`]), so nothing outlives the session;
//! - at most [`Limits::max_sessions`] at a time: the front door answers a new session beyond that
//!   with `503` and `Retry-After` (`http.rs`); a session that still races past that check is
//!   refused here;
//! - the number of open sessions, for `/health`;
//! - the memory ended sessions freed goes back to the system ([`release_freed_memory`]), so the
//!   gateway's footprint follows the sessions alive now, not the most it ever had at once.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex, Weak};
use std::time::Duration;

use futures::Stream;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::WorkerTransport;
use rmcp::transport::streamable_http_server::session::ServerSseMessage;
use rmcp::transport::streamable_http_server::session::local::{LocalSessionManager, LocalSessionManagerError, LocalSessionWorker};
use rmcp::transport::streamable_http_server::{SessionId, SessionManager};

use super::Gateway;

/// How long a session may be idle, and how many may be open at once.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub idle_timeout: Duration,
    pub max_sessions: usize,
}

impl Limits {
    /// `gateway run`'s defaults: an IDE left alone over lunch keeps its session; a client that
    /// reconnects all day without `DELETE` holds at most half an hour's worth of sessions.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
    pub const DEFAULT_MAX_SESSIONS: usize = 1000;

    /// The `Retry-After` for a session refused because all are in use: a session frees its place
    /// within the idle timeout at the latest, usually sooner (a client's `DELETE`).
    pub fn retry_after(&self) -> Duration {
        self.idle_timeout.clamp(Duration::from_secs(1), Duration::from_secs(60))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionsError {
    #[error("all {0} sessions are in use; retry later, or start the gateway with a higher --max-sessions")]
    Full(usize),
    #[error(transparent)]
    Local(#[from] LocalSessionManagerError),
}

/// rmcp's session manager, with an end for every session and a limit (see the module docs).
pub struct Sessions {
    local: LocalSessionManager,
    limits: Limits,
    /// The sessions created and not yet closed: rmcp may close one twice (`DELETE`, then the end
    /// of its worker), and only the first close counts.
    open: StdMutex<HashSet<SessionId>>,
    /// A session ended since memory was last released.
    ended: Arc<AtomicBool>,
    gateway: Gateway,
}

/// How often memory freed by ended sessions is handed back, at most.
const RELEASE_INTERVAL: Duration = Duration::from_secs(10);

impl Sessions {
    pub fn new(gateway: Gateway, limits: Limits) -> Sessions {
        let mut local = LocalSessionManager::default();
        local.session_config.keep_alive = Some(limits.idle_timeout);
        let ended = Arc::new(AtomicBool::new(false));
        tokio::spawn(release_memory_after_sessions_end(Arc::downgrade(&ended)));
        Sessions { local, limits, open: StdMutex::new(HashSet::new()), ended, gateway }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn open(&self) -> usize {
        self.open.lock().expect("sessions lock").len()
    }

    pub fn is_full(&self) -> bool {
        self.open() >= self.limits.max_sessions
    }
}

impl SessionManager for Sessions {
    type Error = SessionsError;
    type Transport = WorkerTransport<LocalSessionWorker>;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        if self.is_full() {
            return Err(SessionsError::Full(self.limits.max_sessions));
        }
        let (id, transport) = self.local.create_session().await?;
        {
            let mut open = self.open.lock().expect("sessions lock");
            // Checked again: other sessions may have been created while this one was.
            if open.len() < self.limits.max_sessions {
                open.insert(id.clone());
                tracing::debug!("session {id} opened ({} open)", open.len());
                return Ok((id, transport));
            }
        }
        self.local.close_session(&id).await?;
        Err(SessionsError::Full(self.limits.max_sessions))
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        let closed = self.open.lock().expect("sessions lock").remove(id);
        if closed {
            self.gateway.forget_client(id);
            self.ended.store(true, Ordering::Relaxed);
            tracing::debug!("session {id} closed ({} open)", self.open());
        }
        Ok(self.local.close_session(id).await?)
    }

    async fn initialize_session(&self, id: &SessionId, message: ClientJsonRpcMessage) -> Result<ServerJsonRpcMessage, Self::Error> {
        Ok(self.local.initialize_session(id, message).await?)
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        Ok(self.local.has_session(id).await?)
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.local.create_stream(id, message).await?)
    }

    async fn accept_message(&self, id: &SessionId, message: ClientJsonRpcMessage) -> Result<(), Self::Error> {
        Ok(self.local.accept_message(id, message).await?)
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.local.create_standalone_stream(id).await?)
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.local.resume(id, last_event_id).await?)
    }
}

/// Every [`RELEASE_INTERVAL`] in which a session ended, [`release_freed_memory`]; until the
/// sessions are gone.
async fn release_memory_after_sessions_end(ended: Weak<AtomicBool>) {
    loop {
        tokio::time::sleep(RELEASE_INTERVAL).await;
        let Some(ended) = ended.upgrade() else { return };
        if ended.swap(false, Ordering::Relaxed) {
            let _ = tokio::task::spawn_blocking(release_freed_memory).await;
        }
    }
}

/// Hand the free pages of the heap back to the system. glibc's malloc keeps what a burst of
/// sessions freed (bench/gateway's churn scenario: ~45 MB after 500 abandoned sessions expired,
/// never returned); `malloc_trim` returns every whole free page. Elsewhere this does nothing.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only takes glibc's own arena locks and returns free pages; it touches no
    // memory that is in use.
    unsafe {
        libc::malloc_trim(0);
    }
}
