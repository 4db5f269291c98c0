//! Just enough of an MCP stdio client to time `tools/call`: the server (or the gateway in front of
//! it) runs as this process's child, requests go out as lines on its stdin, and a reader task
//! hands each response line to the call waiting for its id, so that many calls can be in flight.
//! Server-sent notifications and requests are read and ignored (the client declares no
//! capabilities, so none needs an answer).

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::oneshot;

type Waiting = Arc<Mutex<HashMap<u64, oneshot::Sender<(Value, Instant)>>>>;

pub struct Session {
    child: Child,
    stdin: tokio::sync::Mutex<ChildStdin>,
    waiting: Waiting,
    next_id: AtomicU64,
}

impl Session {
    /// Start `command` (program and arguments) and initialize it.
    pub async fn open(command: &[String]) -> Result<Session> {
        let (program, arguments) = command.split_first().context("an empty stdio command")?;
        let mut child = Command::new(program)
            .args(arguments)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {program}"))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let stdin = child.stdin.take().context("no stdin")?;
        let waiting: Waiting = Arc::default();
        let reader = waiting.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let arrived = Instant::now();
                let Ok(message) = serde_json::from_str::<Value>(&line) else { continue };
                let is_response = message.get("result").is_some() || message.get("error").is_some();
                if let (true, Some(id)) = (is_response, message.get("id").and_then(Value::as_u64))
                    && let Some(waiter) = reader.lock().expect("waiting lock").remove(&id)
                {
                    let _ = waiter.send((message, arrived));
                }
            }
        });
        let session = Session { child, stdin: tokio::sync::Mutex::new(stdin), waiting, next_id: AtomicU64::new(1) };
        let initialize = json!({
            "protocolVersion": crate::mcp::PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "latchkey-gateway-bench", "version": env!("CARGO_PKG_VERSION")},
        });
        session.request("initialize", initialize).await.with_context(|| format!("initialize {program}"))?;
        session.write(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"})).await?;
        Ok(session)
    }

    /// The child's process id.
    pub fn pid(&self) -> Result<u32> {
        self.child.id().context("the stdio server has exited")
    }

    /// Call `tool` with `arguments`: the `result` object, and when the response line was read.
    pub async fn call_tool(&self, tool: &str, arguments: Value) -> Result<(Value, Instant)> {
        let (result, arrived) = self.request("tools/call", json!({"name": tool, "arguments": arguments})).await?;
        if result.get("isError").and_then(Value::as_bool) == Some(true) {
            bail!("{tool} failed: {result}");
        }
        Ok((result, arrived))
    }

    async fn request(&self, method: &str, params: Value) -> Result<(Value, Instant)> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = oneshot::channel();
        self.waiting.lock().expect("waiting lock").insert(id, sender);
        self.write(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})).await?;
        let (message, arrived) = receiver.await.map_err(|_| anyhow!("{method}: the stdio server closed its output"))?;
        match (message.get("result"), message.get("error")) {
            (Some(result), _) => Ok((result.clone(), arrived)),
            (None, Some(error)) => Err(anyhow!("{method}: {error}")),
            _ => Err(anyhow!("{method}: not a JSON-RPC response: {message}")),
        }
    }

    async fn write(&self, message: &Value) -> Result<()> {
        let mut line = serde_json::to_vec(message)?;
        line.push(b'\n');
        let mut stdin = self.stdin.lock().await;
        stdin.write_all(&line).await?;
        stdin.flush().await?;
        Ok(())
    }
}
