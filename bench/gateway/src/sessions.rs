//! The concurrent-sessions scenario: many Streamable HTTP sessions open at once, as a gateway
//! shared by a team, or by an IDE with many windows, holds them.
//!
//! For each target in turn: open `--sessions` sessions (`--concurrency` set-ups at a time) and
//! keep them all open; make one call on every session at once; end every session with `DELETE`
//! and wait `--settle` seconds. It prints how long opening took, the calls' p50 and p99 latency
//! and throughput with all of them in flight, and the proxy's resident memory (VmRSS) before,
//! with every session open, after the calls, and after the sessions ended.

use std::fmt::Write;
use std::time::{Duration, Instant};

use anyhow::Result;
use futures::StreamExt;
use serde_json::json;

use crate::report::percentile_ms;
use crate::{Target, mcp, procfs};

pub struct Sessions {
    pub sessions: usize,
    pub concurrency: usize,
    pub settle: Duration,
}

/// What one target did.
struct Measured {
    open: Duration,
    latencies: Vec<Duration>,
    wall: Duration,
    /// VmRSS in KiB: before, with every session open, after the calls, after the sessions ended.
    rss_kib: [u64; 4],
}

pub async fn run(targets: &[Target], sessions: &Sessions) -> Result<String> {
    let mut measured = Vec::new();
    for target in targets {
        measured.push(one_target(target, sessions).await?);
        eprintln!("{}: done", target.name);
    }
    Ok(render(targets, sessions, &measured))
}

async fn one_target(target: &Target, settings: &Sessions) -> Result<Measured> {
    let rss = || procfs::status_kib(target.pid, "VmRSS");
    let before = rss()?;
    // One client for every session, as in the churn scenario: the proxy is measured.
    let http = mcp::client()?;
    let url = target.url()?;
    let started = Instant::now();
    let opened: Vec<Result<mcp::Session>> = futures::stream::iter(0..settings.sessions)
        .map(|_| mcp::Session::open_with(http.clone(), url))
        .buffer_unordered(settings.concurrency)
        .collect()
        .await;
    let open = started.elapsed();
    let sessions = opened.into_iter().collect::<Result<Vec<_>>>()?;
    let with_sessions = rss()?;

    let started = Instant::now();
    let calls = sessions.iter().enumerate().map(|(n, session)| async move {
        let sent = Instant::now();
        let (_, arrived) = session.call_tool(&target.tool, json!({"message": format!("session {n}")})).await?;
        anyhow::Ok(arrived - sent)
    });
    let latencies = futures::future::join_all(calls).await.into_iter().collect::<Result<Vec<_>>>()?;
    let wall = started.elapsed();
    let after_calls = rss()?;

    for session in sessions {
        session.delete().await?;
    }
    tokio::time::sleep(settings.settle).await;
    Ok(Measured { open, latencies, wall, rss_kib: [before, with_sessions, after_calls, rss()?] })
}

fn render(targets: &[Target], settings: &Sessions, measured: &[Measured]) -> String {
    let mut table = format!(
        "\n{} sessions open at once ({} set-ups at a time), then one call on every session at once, then DELETE each; \
         the last RSS is {} s after.\n\n| target | open all s | calls p50 ms | calls p99 ms | calls/s | RSS MB before | \
         all open | after calls | after DELETE |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        settings.sessions,
        settings.concurrency,
        settings.settle.as_secs()
    );
    let mb = |kib: u64| kib as f64 / 1024.0;
    for (target, measured) in targets.iter().zip(measured) {
        let [before, open, calls, ended] = measured.rss_kib;
        let _ = writeln!(
            table,
            "| {} | {:.2} | {:.2} | {:.2} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} |",
            target.name,
            measured.open.as_secs_f64(),
            percentile_ms(&measured.latencies, 0.5),
            percentile_ms(&measured.latencies, 0.99),
            measured.latencies.len() as f64 / measured.wall.as_secs_f64(),
            mb(before),
            mb(open),
            mb(calls),
            mb(ended)
        );
    }
    table
}
