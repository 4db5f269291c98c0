//! `gateway-bench`: times MCP `tools/call` round trips against several Streamable HTTP endpoints in
//! one run and prints one table.
//!
//! The endpoints are usually proxies in front of the same stdio server (latchkey's gateway,
//! supergateway, mcp-proxy) plus the server's own HTTP mode ("direct"); `bench/gateway/run` starts
//! them. The machine is shared and noisy, so the targets are measured *interleaved*: every round
//! runs one sequential batch and one concurrent batch against each target in turn (starting with a
//! different target each round), and the numbers of all rounds are pooled. A noisy minute then
//! hurts every target alike, and the ratios stay meaningful.
//!
//! Per target it reports latency (p50/p99) and throughput, sequential and with `--concurrency`
//! calls in flight on one session; the CPU time the proxy process spent per call (and its
//! upstream's, i.e. its descendants'), from `/proc/<pid>/stat` before and after each batch; and the
//! proxy's peak resident memory (VmHWM) at the end.
//!
//! A target is reached over Streamable HTTP (`url=`), or started as a child process and spoken to
//! over stdio (`stdio=`): latchkey's `gateway run` over stdio next to the server itself, the way an
//! AI client starts either.
//!
//! `--scenario churn` measures something else: the proxy's memory over rounds of short sessions
//! ([`churn`]); `--scenario sessions`, many sessions open at once ([`sessions`]); `--scenario
//! servers`, one gateway in front of many catalog servers ([`servers`]); `--scenario
//! credentials`, one gateway keeping thousands of OAuth credentials alive ([`credentials`]).

mod churn;
mod credentials;
mod mcp;
mod procfs;
mod report;
mod servers;
mod sessions;
mod stdio;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use serde_json::{Value, json};

use report::{Batch, Measured};

#[derive(Parser)]
#[command(about = "MCP tools/call round trips against Streamable HTTP endpoints, side by side")]
struct Args {
    /// An endpoint: `name=N,url=U,pid=P,tool=T` over Streamable HTTP, or `name=N,stdio=COMMAND,tool=T`
    /// to start COMMAND (split at spaces) and speak stdio to it; plus `,direct` when the process is
    /// the MCP server itself rather than a proxy in front of it. Repeat; the first one is what
    /// ratios are relative to.
    #[arg(long = "target", required_unless_present = "latchkey")]
    targets: Vec<String>,
    /// credentials: the latchkey binary, which this scenario starts itself.
    #[arg(long)]
    latchkey: Option<std::path::PathBuf>,
    /// credentials: how many OAuth credentials the gateway keeps alive.
    #[arg(long, default_value_t = 10_000)]
    credentials: usize,
    /// credentials: how many accounts each catalog server has (`--credentials` / this many
    /// servers, each served once per account, `c00001@a001`…); 1: one server per credential.
    #[arg(long, default_value_t = 1)]
    accounts: usize,
    /// credentials: seconds an access token lives.
    #[arg(long, default_value_t = 3600)]
    lifetime: u64,
    /// credentials: seconds to watch the gateway, once it has checked every credential.
    #[arg(long, default_value_t = 300)]
    duration: u64,
    /// credentials: seconds between two lines of the time series.
    #[arg(long, default_value_t = 15)]
    every: u64,
    /// Rounds; each runs one sequential and one concurrent batch per target.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Sequential calls per target and round.
    #[arg(long, default_value_t = 400)]
    calls: usize,
    /// Calls in flight in the concurrent batches (on one session).
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Calls per target and round in the concurrent batches.
    #[arg(long, default_value_t = 800)]
    concurrent_calls: usize,
    /// Untimed calls per target first (start-up, JIT, connection pools).
    #[arg(long, default_value_t = 200)]
    warmup: usize,
    #[arg(long, value_enum, default_value_t = Scenario::Calls)]
    scenario: Scenario,
    /// churn: sessions opened per round, each used for one call; sessions: sessions open at once.
    #[arg(long, default_value_t = 500)]
    sessions: usize,
    /// servers: how many catalog servers the gateway serves (`s001`…, as bench/gateway/run names them).
    #[arg(long, default_value_t = 200)]
    servers: usize,
    /// servers: tools/list requests, and as many /health requests.
    #[arg(long, default_value_t = 50)]
    lists: usize,
    /// churn: end each session with DELETE instead of abandoning it.
    #[arg(long)]
    delete: bool,
    /// churn: seconds to wait after each round before measuring (longer than the gateway's idle
    /// timeout, to see abandoned sessions expire); sessions: after the sessions ended.
    #[arg(long, default_value_t = 10)]
    settle: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// tools/call latency, throughput and CPU per call, interleaved across the targets.
    Calls,
    /// Rounds of short sessions (`--rounds`, `--sessions`, `--concurrency` at a time), each
    /// target in turn, with the proxy's memory after each round.
    Churn,
    /// `--sessions` sessions open at once (`--concurrency` set-ups at a time), one call on each
    /// at once, each target in turn: latency, throughput and the proxy's memory.
    Sessions,
    /// One gateway in front of `--servers` catalog servers: start-up until every upstream runs,
    /// tools/list, /health and calls spread over every server, and memory.
    Servers,
    /// One gateway (`--latchkey`) keeping `--credentials` OAuth credentials alive against an
    /// authorization server this benchmark runs: memory over time and how refreshes spread.
    Credentials,
}

pub struct Target {
    pub name: String,
    endpoint: Endpoint,
    /// For a stdio target, set once it is started.
    pub pid: u32,
    tool: String,
    /// The process is the MCP server itself, not a proxy.
    pub direct: bool,
}

enum Endpoint {
    Http(String),
    Stdio(Vec<String>),
}

/// A session with a target, over either transport.
enum Connection {
    Http(mcp::Session),
    Stdio(stdio::Session),
}

impl Connection {
    async fn call_tool(&self, tool: &str, arguments: Value) -> Result<(Value, Instant)> {
        match self {
            Connection::Http(session) => session.call_tool(tool, arguments).await,
            Connection::Stdio(session) => session.call_tool(tool, arguments).await,
        }
    }
}

impl Target {
    /// The Streamable HTTP URL; the scenarios other than `calls` speak only HTTP.
    pub fn url(&self) -> Result<&str> {
        match &self.endpoint {
            Endpoint::Http(url) => Ok(url),
            Endpoint::Stdio(_) => bail!("{}: this scenario needs a url= target, not stdio=", self.name),
        }
    }

    /// Open a session: connect, or start the stdio command (and learn its pid).
    async fn connect(&mut self) -> Result<Connection> {
        Ok(match &self.endpoint {
            Endpoint::Http(url) => Connection::Http(mcp::Session::open(url).await?),
            Endpoint::Stdio(command) => {
                let session = stdio::Session::open(command).await?;
                self.pid = session.pid()?;
                Connection::Stdio(session)
            }
        })
    }

    fn parse(spec: &str) -> Result<Target> {
        let (mut name, mut endpoint, mut pid, mut tool, mut direct) = (None, None, None, None, false);
        for part in spec.split(',') {
            match part.split_once('=') {
                Some(("name", value)) => name = Some(value.to_string()),
                Some(("url", value)) => endpoint = Some(Endpoint::Http(value.to_string())),
                Some(("stdio", value)) => endpoint = Some(Endpoint::Stdio(value.split_whitespace().map(String::from).collect())),
                Some(("pid", value)) => pid = Some(value.parse().with_context(|| format!("pid `{value}` is not a number"))?),
                Some(("tool", value)) => tool = Some(value.to_string()),
                None if part == "direct" => direct = true,
                _ => bail!("`{part}` in --target {spec}: expected name=, url=, stdio=, pid=, tool= or direct"),
            }
        }
        let missing = |what: &str| anyhow::anyhow!("--target {spec} has no {what}=");
        let endpoint = endpoint.ok_or_else(|| missing("url or stdio"))?;
        let pid = match (&endpoint, pid) {
            (Endpoint::Http(_), pid) => pid.ok_or_else(|| missing("pid"))?,
            (Endpoint::Stdio(_), None) => 0,
            (Endpoint::Stdio(_), Some(_)) => bail!("--target {spec}: a stdio target is started here, so it takes no pid="),
        };
        Ok(Target { name: name.ok_or_else(|| missing("name"))?, endpoint, pid, tool: tool.ok_or_else(|| missing("tool"))?, direct })
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.scenario == Scenario::Credentials {
        let latchkey = args.latchkey.context("--scenario credentials needs --latchkey <the latchkey binary>")?;
        let settings = credentials::Settings {
            credentials: args.credentials,
            accounts: args.accounts,
            lifetime: args.lifetime,
            duration: args.duration,
            every: args.every,
        };
        print!("{}", credentials::run(&latchkey, &settings).await?);
        return Ok(());
    }
    let mut targets: Vec<Target> = args.targets.iter().map(|spec| Target::parse(spec)).collect::<Result<_>>()?;
    if args.scenario == Scenario::Churn {
        let churn = churn::Churn {
            rounds: args.rounds,
            sessions: args.sessions,
            concurrency: args.concurrency,
            delete: args.delete,
            settle: Duration::from_secs(args.settle),
        };
        for target in &targets {
            print!("{}", churn::run(target, &churn).await?);
        }
        return Ok(());
    }
    if args.scenario == Scenario::Sessions {
        let settings =
            sessions::Sessions { sessions: args.sessions, concurrency: args.concurrency, settle: Duration::from_secs(args.settle) };
        print!("{}", sessions::run(&targets, &settings).await?);
        return Ok(());
    }
    if args.scenario == Scenario::Servers {
        let settings =
            servers::Servers { servers: args.servers, calls: args.concurrent_calls, concurrency: args.concurrency, lists: args.lists };
        for target in &targets {
            print!("{}", servers::run(target, &settings).await?);
        }
        return Ok(());
    }
    let mut sessions = Vec::new();
    for target in &mut targets {
        let session = Arc::new(target.connect().await?);
        eprintln!("{}: session open, warming up with {} calls", target.name, args.warmup);
        sequential(&session, target, args.warmup).await?;
        concurrent(&session, target, args.warmup, args.concurrency).await?;
        sessions.push(session);
    }

    let mut measured: Vec<Measured> = targets.iter().map(|_| Measured::default()).collect();
    for round in 0..args.rounds {
        eprintln!("round {}/{}", round + 1, args.rounds);
        for offset in 0..targets.len() {
            let index = (round + offset) % targets.len();
            let batch = sequential(&sessions[index], &targets[index], args.calls).await?;
            measured[index].sequential.add(batch);
        }
        for offset in 0..targets.len() {
            let index = (round + offset) % targets.len();
            let batch = concurrent(&sessions[index], &targets[index], args.concurrent_calls, args.concurrency).await?;
            measured[index].concurrent.add(batch);
        }
    }
    for (target, measured) in targets.iter().zip(&mut measured) {
        measured.peak_kib = procfs::status_kib(target.pid, "VmHWM")?;
        measured.rss_kib = procfs::status_kib(target.pid, "VmRSS")?;
    }
    print!("{}", report::render(&targets, &measured, args.concurrency, procfs::ticks_per_second()));
    Ok(())
}

/// CPU ticks of the target process and of its descendants (its upstream server).
fn cpu(target: &Target) -> Result<(u64, u64)> {
    let own = procfs::cpu_ticks(target.pid)?;
    // A descendant that exits between listing and reading simply stops counting.
    let children = procfs::descendants(target.pid).into_iter().filter_map(|pid| procfs::cpu_ticks(pid).ok()).sum();
    Ok((own, children))
}

/// Call the echo tool `tool` with a message for call `n`, check its answer, and time it (up to
/// the response's arrival).
async fn echo(session: &Connection, target: &str, tool: &str, n: usize) -> Result<Duration> {
    let message = format!("bench {n}");
    let started = Instant::now();
    let (result, arrived) = session.call_tool(tool, json!({"message": message})).await?;
    let text = result.pointer("/content/0/text").and_then(Value::as_str).unwrap_or_default();
    if text != format!("Echo: {message}") {
        bail!("{target}: {tool} answered {result} to `{message}`");
    }
    Ok(arrived - started)
}

/// `calls` calls, at most `in_flight` at once: call `n` is `call(n)`. Their latencies, in the
/// order they finished per worker.
async fn in_flight<F, Fut>(calls: usize, in_flight: usize, call: F) -> Result<Vec<Duration>>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<Duration>>,
{
    let next = AtomicUsize::new(0);
    let workers = (0..in_flight).map(|_| async {
        let mut latencies = Vec::new();
        loop {
            let n = next.fetch_add(1, Ordering::Relaxed);
            if n >= calls {
                return Ok::<_, anyhow::Error>(latencies);
            }
            latencies.push(call(n).await?);
        }
    });
    Ok(futures::future::try_join_all(workers).await?.into_iter().flatten().collect())
}

async fn sequential(session: &Connection, target: &Target, calls: usize) -> Result<Batch> {
    let before = cpu(target)?;
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(calls);
    for n in 0..calls {
        latencies.push(echo(session, &target.name, &target.tool, n).await?);
    }
    Batch::new(latencies, started.elapsed(), before, cpu(target)?)
}

async fn concurrent(session: &Arc<Connection>, target: &Target, calls: usize, in_flight: usize) -> Result<Batch> {
    let before = cpu(target)?;
    let started = Instant::now();
    let latencies = self::in_flight(calls, in_flight, |n| echo(session, &target.name, &target.tool, n)).await?;
    Batch::new(latencies, started.elapsed(), before, cpu(target)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_http_with_a_pid_or_stdio_without_one() {
        let http = Target::parse("name=a,url=http://127.0.0.1:1/mcp,pid=42,tool=echo").unwrap();
        assert_eq!((http.pid, http.url().unwrap()), (42, "http://127.0.0.1:1/mcp"));
        let stdio = Target::parse("name=b,stdio=node server.js stdio,tool=echo,direct").unwrap();
        assert!(matches!(&stdio.endpoint, Endpoint::Stdio(command) if command == &["node", "server.js", "stdio"]));
        assert!(stdio.direct && stdio.url().is_err());
        let refusal = |spec: &str| Target::parse(spec).err().map(|error| error.to_string()).unwrap_or_default();
        assert!(refusal("name=c,url=http://127.0.0.1:1/mcp,tool=echo").contains("no pid="));
        assert!(refusal("name=d,stdio=node s.js,pid=1,tool=echo").contains("takes no pid="));
    }
}
