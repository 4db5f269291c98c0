//! Streamable HTTP sessions with a lifecycle: each one ends, and everything it held goes with it.
//!
//! rmcp's [`LocalSessionManager`] keeps one entry per session (a channel to the session's worker,
//! which owns its streams and the handler's serve loop). A session ends when the client sends
//! `DELETE /mcp` with its `Mcp-Session-Id`, or when it has been idle for the idle timeout
//! (`--session-idle-timeout`): no request from its client began or ended in that time (an open
//! `GET` stream alone does not keep it alive). The front door notes each request
//! ([`Sessions::active`]), including the calls its hot path answers without rmcp, so the idle
//! timeout is kept here rather than by rmcp's worker (its `keep_alive`, which sees only what
//! crosses rmcp). Most clients never send `DELETE`, so the timeout is what ends most sessions. A
//! client that comes back after its session ended gets `404`, and the protocol has it start a new
//! session.
//!
//! [`Sessions`] wraps rmcp's manager to add what it lacks:
//! - when a session ends (either way), the gateway forgets it as a client to notify
//!   ([`Gateway::forget_client`]), so nothing outlives the session;
//! - at most [`Limits::max_sessions`] at a time: the front door answers a new session beyond that
//!   with `503` and `Retry-After` (`http.rs`); a session that still races past that check is
//!   refused here;
//! - the number of open sessions, for `/health`;
//! - each session's calls on the hot path ([`super::relayed::Relayed`]), cancelled when it ends;
//! - the memory ended sessions freed goes back to the system ([`super::memory::Freed`]), so the
//!   gateway's footprint follows the sessions alive now, not the most it ever had at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex, Weak};
use std::time::{Duration, Instant};

use futures::Stream;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::WorkerTransport;
use rmcp::transport::streamable_http_server::session::ServerSseMessage;
use rmcp::transport::streamable_http_server::session::local::{LocalSessionManager, LocalSessionManagerError, LocalSessionWorker};
use rmcp::transport::streamable_http_server::{SessionId, SessionManager};

use super::Gateway;
use super::memory::Freed;
use super::relayed::Relayed;

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
    open: StdMutex<HashMap<SessionId, Open>>,
    /// Noted when a session ends.
    freed: Freed,
    gateway: Gateway,
}

/// An open session.
struct Open {
    /// When a request of its client last began or ended.
    active: Instant,
    relayed: Arc<Relayed>,
}

impl Sessions {
    pub fn new(gateway: Gateway, limits: Limits) -> Arc<Sessions> {
        let mut local = LocalSessionManager::default();
        // Idle sessions are ended here ([`end_idle_sessions`]), which sees the hot path too.
        local.session_config.keep_alive = None;
        let sessions = Arc::new(Sessions { local, limits, open: StdMutex::new(HashMap::new()), freed: Freed::watch(), gateway });
        tokio::spawn(end_idle_sessions(Arc::downgrade(&sessions)));
        sessions
    }

    /// A request of session `id`'s client began or ended: its calls on the hot path, or `None`
    /// for a session that is not open.
    pub fn active(&self, id: &str) -> Option<Arc<Relayed>> {
        let mut open = self.open.lock().expect("sessions lock");
        let session = open.get_mut(id)?;
        session.active = Instant::now();
        Some(session.relayed.clone())
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
                open.insert(id.clone(), Open { active: Instant::now(), relayed: Arc::default() });
                tracing::debug!("session {id} opened ({} open)", open.len());
                return Ok((id, transport));
            }
        }
        self.local.close_session(&id).await?;
        Err(SessionsError::Full(self.limits.max_sessions))
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        let closed = self.open.lock().expect("sessions lock").remove(id);
        if let Some(session) = closed {
            session.relayed.cancel_all();
            self.gateway.forget_client(id);
            self.freed.note();
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

/// End the sessions idle for longer than the idle timeout, looking every quarter of it (at most
/// every 30 s); until the sessions are gone.
async fn end_idle_sessions(sessions: Weak<Sessions>) {
    let every = match sessions.upgrade() {
        Some(sessions) => (sessions.limits.idle_timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(30)),
        None => return,
    };
    loop {
        tokio::time::sleep(every).await;
        let Some(sessions) = sessions.upgrade() else { return };
        let timeout = sessions.limits.idle_timeout;
        let idle: Vec<SessionId> = sessions
            .open
            .lock()
            .expect("sessions lock")
            .iter()
            .filter(|(_, session)| session.active.elapsed() > timeout)
            .map(|(id, _)| id.clone())
            .collect();
        for id in idle {
            tracing::debug!("session {id} idle for {} s; ending it", timeout.as_secs());
            if let Err(error) = sessions.close_session(&id).await {
                tracing::debug!("ending idle session {id}: {error}");
            }
        }
    }
}
