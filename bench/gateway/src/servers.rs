//! The many-servers scenario: one gateway in front of `--servers` catalog servers (the tiny
//! `echo-mcp`, so that the servers cost little next to the gateway), as a team's shared machine
//! might run it.
//!
//! It prints how long the gateway took from its process's start until `/health` showed every
//! upstream running; the latency of `tools/list` (every server's tools, checked complete) and of
//! `/health`; the latency and throughput of `tools/call` spread over every server, `--concurrency`
//! in flight; and the resident memory of the gateway and of all its servers together.

use std::fmt::Write;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::{Value, json};

use crate::report::percentile_ms;
use crate::{Connection, Target, echo, in_flight, mcp, procfs};

pub struct Servers {
    pub servers: usize,
    pub calls: usize,
    pub concurrency: usize,
    /// `tools/list` and `/health` requests, each.
    pub lists: usize,
}

/// How long to wait for every upstream to run before giving up.
const READY_DEADLINE: Duration = Duration::from_secs(300);

/// The name the run script gives server `n` (0-based) and its tool.
pub fn tool(n: usize) -> String {
    format!("s{:03}__echo", n + 1)
}

pub async fn run(target: &Target, settings: &Servers) -> Result<String> {
    let http = mcp::client()?;
    let health_url = format!("{}/health", target.url()?.trim_end_matches("/mcp"));
    let running = |health: &Value| {
        health["upstreams"].as_object().map_or(0, |upstreams| upstreams.values().filter(|upstream| upstream["state"] == "running").count())
    };
    let waited = Instant::now();
    loop {
        // Not listening yet reads as nothing running.
        let health = match http.get(&health_url).send().await {
            Ok(response) => response.json().await?,
            Err(_) => Value::Null,
        };
        if running(&health) == settings.servers {
            break;
        }
        if waited.elapsed() > READY_DEADLINE {
            bail!("{} of {} upstreams running after {READY_DEADLINE:?}: {health}", running(&health), settings.servers);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ready = procfs::age(target.pid)?;
    eprintln!("{}: every upstream running {:.2} s after the gateway started", target.name, ready.as_secs_f64());

    let session = mcp::Session::open_with(http.clone(), target.url()?).await?;
    let mut lists = Vec::new();
    for _ in 0..settings.lists {
        let sent = Instant::now();
        let (result, arrived) = session.request("tools/list", json!({})).await?;
        lists.push(arrived - sent);
        let tools = result["tools"].as_array().map_or(0, Vec::len);
        if tools != settings.servers || result.get("nextCursor").is_some() {
            bail!("tools/list listed {tools} tools in its first page, not the {} servers' tools", settings.servers);
        }
    }
    let mut healths = Vec::new();
    for _ in 0..settings.lists {
        let sent = Instant::now();
        let health: Value = http.get(&health_url).send().await?.json().await?;
        healths.push(sent.elapsed());
        if running(&health) != settings.servers {
            bail!("an upstream stopped running: {health}");
        }
    }

    let session = Connection::Http(session);
    let tools: Vec<String> = (0..settings.servers).map(tool).collect();
    let started = Instant::now();
    let calls = in_flight(settings.calls, settings.concurrency, |n| echo(&session, &target.name, &tools[n % tools.len()], n)).await?;
    let wall = started.elapsed();

    let kib = |pid| procfs::status_kib(pid, "VmRSS").unwrap_or(0);
    let children = procfs::descendants(target.pid);
    let servers_kib: u64 = children.iter().map(|pid| kib(*pid)).sum();
    let mb = |kib: u64| kib as f64 / 1024.0;
    let mut table = format!(
        "\n{} catalog servers (echo-mcp) behind one gateway; {} tools/list and /health requests; {} calls spread over every \
         server, {} in flight.\n\n| target | all running s | tools/list p50 ms | /health p50 ms | calls p50 ms | calls p99 ms | \
         calls/s | gateway RSS MB | peak | servers' RSS MB (processes) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        settings.servers, settings.lists, settings.calls, settings.concurrency
    );
    let _ = writeln!(
        table,
        "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {:.1} | {:.1} | {:.0} ({}) |",
        target.name,
        ready.as_secs_f64(),
        percentile_ms(&lists, 0.5),
        percentile_ms(&healths, 0.5),
        percentile_ms(&calls, 0.5),
        percentile_ms(&calls, 0.99),
        calls.len() as f64 / wall.as_secs_f64(),
        mb(kib(target.pid)),
        mb(procfs::status_kib(target.pid, "VmHWM")?),
        mb(servers_kib),
        children.len()
    );
    Ok(table)
}
