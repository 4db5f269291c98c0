//! The session-churn scenario: what a gateway keeps of sessions that are over.
//!
//! Each round opens `--sessions` Streamable HTTP sessions (`--concurrency` at a time), makes one
//! call on each, and then abandons it, as most clients do, or ends it with `DELETE` (`--delete`).
//! After the round it waits `--settle` seconds (longer than the gateway's idle timeout, so that
//! abandoned sessions can expire) and prints the proxy's resident memory (VmRSS) and, where the
//! target serves latchkey's `/health`, how many sessions it still holds open. A gateway whose
//! sessions end returns to about the first round's memory; one that keeps them grows every round.

use std::fmt::Write;
use std::time::Duration;

use anyhow::Result;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::{Target, mcp, procfs};

pub struct Churn {
    pub rounds: usize,
    pub sessions: usize,
    pub concurrency: usize,
    pub delete: bool,
    pub settle: Duration,
}

/// After one round: the proxy's memory, and the sessions its `/health` reports open.
struct Round {
    rss_kib: u64,
    open: Option<u64>,
}

pub async fn run(target: &Target, churn: &Churn) -> Result<String> {
    let before = procfs::status_kib(target.pid, "VmRSS")?;
    // One client for every session, as one program reconnecting would: the proxy is measured,
    // not the set-up of thousands of HTTP clients.
    let http = mcp::client()?;
    let mut rounds = Vec::new();
    for round in 1..=churn.rounds {
        let sessions = futures::stream::iter(0..churn.sessions)
            .map(|n| one_session(&http, target, churn.delete, round * churn.sessions + n))
            .buffer_unordered(churn.concurrency);
        let ended: Vec<Result<()>> = sessions.collect().await;
        ended.into_iter().collect::<Result<Vec<()>>>()?;
        tokio::time::sleep(churn.settle).await;
        let measured = Round { rss_kib: procfs::status_kib(target.pid, "VmRSS")?, open: open_sessions(&http, target.url()?).await };
        eprintln!("{}: round {round}/{}: RSS {:.1} MB, open sessions {:?}", target.name, churn.rounds, mb(measured.rss_kib), measured.open);
        rounds.push(measured);
    }
    Ok(render(target, churn, before, &rounds))
}

/// Open a session, call the tool once, then leave (or `DELETE` it).
async fn one_session(http: &reqwest::Client, target: &Target, delete: bool, n: usize) -> Result<()> {
    let session = mcp::Session::open_with(http.clone(), target.url()?).await?;
    let message = format!("churn {n}");
    session.call_tool(&target.tool, json!({"message": message})).await?;
    if delete {
        session.delete().await?;
    }
    Ok(())
}

/// `sessions.open` from latchkey's `/health` next to `url`; `None` for other targets.
async fn open_sessions(http: &reqwest::Client, url: &str) -> Option<u64> {
    let health: Value = http.get(url.replace("/mcp", "/health")).send().await.ok()?.json().await.ok()?;
    health.pointer("/sessions/open").and_then(Value::as_u64)
}

fn mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn render(target: &Target, churn: &Churn, before: u64, rounds: &[Round]) -> String {
    let ended = if churn.delete { "ended with DELETE" } else { "abandoned (no DELETE)" };
    let mut table = format!(
        "\n{}: {} rounds of {} sessions ({} at a time), one call each, {ended}; measured {} s after each round. \
         RSS before the first round: {:.1} MB.\n\n| round | sessions so far | open (per /health) | RSS MB | vs round 1 |\n|---:|---:|---:|---:|---:|\n",
        target.name,
        churn.rounds,
        churn.sessions,
        churn.concurrency,
        churn.settle.as_secs(),
        mb(before)
    );
    let first = rounds.first().map_or(0, |round| round.rss_kib);
    for (n, round) in rounds.iter().enumerate() {
        let open = round.open.map_or("—".to_string(), |open| open.to_string());
        let delta = mb(round.rss_kib) - mb(first);
        let _ = writeln!(table, "| {} | {} | {open} | {:.1} | {delta:+.1} |", n + 1, (n + 1) * churn.sessions, mb(round.rss_kib));
    }
    table
}
