//! The hot path's `tools/call`, whichever front door it came through ([`super::stdio`],
//! [`super::http`]).
//!
//! A client's message is looked at through its envelope ([`super::wire::Envelope`]) only: a
//! `tools/call` for a tool of a server on stdio that is running now, and whose answers suit the
//! client's protocol version as they are ([`super::relay::Relay::answers_fit`]), is a [`Call`]:
//! its `name` becomes the server's own, and the server's answer goes back under the client's id,
//! neither crossing rmcp's typed layers. A call that fails is answered with the same tool error
//! as on the full path; one whose server turns out not to be running (it must start, or its user
//! must sign in) is given back to the front door for the full path. A client's
//! `notifications/cancelled` for a call in [`Relayed`] cancels it, and with it the server's.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex as StdMutex};

use rmcp::model::ProtocolVersion;
use serde::Deserialize;
use serde_json::value::{RawValue, to_raw_value};
use tokio::sync::Semaphore;
use tokio::task::AbortHandle;
use tokio_util::bytes::Bytes;

use super::upstream::{Upstream, UpstreamError};
use super::wire::{self, Envelope};
use super::{Gateway, tool_error_result};

/// A `tools/call` on the hot path.
pub struct Call {
    upstream: Arc<Upstream>,
    /// The client's id.
    id: Box<RawValue>,
    /// The parameters for the server: the tool's own name.
    params: Box<RawValue>,
    version: ProtocolVersion,
}

/// What a client's message is to the hot path.
pub enum Message {
    Call(Call),
    /// A cancellation of the relayed call with this id (its JSON text).
    Cancel(Box<str>),
    /// For the full path.
    Other,
}

#[derive(Deserialize)]
struct Cancelled<'a> {
    #[serde(rename = "requestId", borrow)]
    request_id: &'a RawValue,
}

impl Gateway {
    /// What the message `envelope` is to the hot path, from a client of protocol `version`
    /// whose relayed calls are `relayed`.
    pub(super) fn classify(&self, envelope: &Envelope<'_>, version: &ProtocolVersion, relayed: &Relayed) -> Message {
        match (envelope.method, envelope.id, envelope.params) {
            (Some("tools/call"), Some(id), Some(params)) => self.relayable(id, params, version).map_or(Message::Other, Message::Call),
            (Some("notifications/cancelled"), None, Some(params)) => {
                let Ok(cancelled) = serde_json::from_str::<Cancelled>(params.get()) else { return Message::Other };
                let key: Box<str> = cancelled.request_id.get().into();
                if relayed.holds(&key) { Message::Cancel(key) } else { Message::Other }
            }
            _ => Message::Other,
        }
    }

    fn relayable(&self, id: &RawValue, params: &RawValue, version: &ProtocolVersion) -> Option<Call> {
        let mut params: BTreeMap<&str, &RawValue> = serde_json::from_str(params.get()).ok()?;
        let exposed: String = serde_json::from_str(params.get("name")?.get()).ok()?;
        let (upstream, own) = self.route(&exposed)?;
        if !upstream.relays_now(version) {
            return None;
        }
        let own = to_raw_value(own).ok()?;
        params.insert("name", &own);
        Some(Call { upstream: upstream.clone(), id: id.to_owned(), params: to_raw_value(&params).ok()?, version: version.clone() })
    }
}

impl Call {
    /// The client's answer (a whole JSON-RPC response), or `None` when the full path must take
    /// the call after all.
    async fn answer(self) -> Option<Bytes> {
        let result = match self.upstream.call_tool_as_is(&self.params, &self.version).await? {
            Ok(result) => result,
            // Refused, or not running after all: the full path signs its user in or starts it.
            Err(UpstreamError::Start { .. } | UpstreamError::Refused { .. }) => return None,
            Err(error) => to_raw_value(&tool_error_result(&error)).ok()?,
        };
        Some(wire::response(&self.id, Ok(&result)))
    }
}

/// How many calls of one client the hot path runs at once; more wait for one of them to end.
const IN_FLIGHT: usize = 256;

/// One client's calls on the hot path, by the client's id, so that it can cancel them.
pub struct Relayed {
    calls: StdMutex<HashMap<Box<str>, AbortHandle>>,
    in_flight: Arc<Semaphore>,
}

impl Default for Relayed {
    fn default() -> Relayed {
        Relayed { calls: StdMutex::default(), in_flight: Arc::new(Semaphore::new(IN_FLIGHT)) }
    }
}

impl Relayed {
    /// Run `call` in a task of its own (once fewer than [`IN_FLIGHT`] run), cancellable by its
    /// id until it ends; `finish` gets its answer (`None`: for the full path). The task, to abort
    /// when nobody waits for it.
    pub async fn spawn<F, Finish>(self: &Arc<Self>, call: Call, finish: F) -> AbortHandle
    where
        F: FnOnce(Option<Bytes>) -> Finish + Send + 'static,
        Finish: Future<Output = ()> + Send,
    {
        let turn = self.in_flight.clone().acquire_owned().await.expect("the semaphore is never closed");
        let key: Box<str> = call.id.get().into();
        let relayed = self.clone();
        // Held until the call is registered, so that it cannot end and unregister before.
        let mut calls = self.calls.lock().expect("relayed lock");
        let task = tokio::spawn({
            let key = key.clone();
            async move {
                let answer = call.answer().await;
                relayed.calls.lock().expect("relayed lock").remove(&key);
                finish(answer).await;
                drop(turn);
            }
        });
        calls.insert(key, task.abort_handle());
        task.abort_handle()
    }

    fn holds(&self, key: &str) -> bool {
        self.calls.lock().expect("relayed lock").contains_key(key)
    }

    /// Cancel the call with this id: the server is told, and the client gets no answer.
    pub fn cancel(&self, key: &str) {
        if let Some(call) = self.calls.lock().expect("relayed lock").remove(key) {
            call.abort();
        }
    }

    /// Cancel every call: the client is gone.
    pub fn cancel_all(&self) {
        for (_, call) in self.calls.lock().expect("relayed lock").drain() {
            call.abort();
        }
    }
}
