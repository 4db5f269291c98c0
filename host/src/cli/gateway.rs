//! `latchkey gateway run`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::builder::TypedValueParser;
use clap::{Subcommand, ValueEnum};
use secrecy::{ExposeSecret, SecretString};

use super::Failure;
use super::output;
use crate::gateway::sessions::Limits;
use crate::gateway::{self, Gateway, Naming, http};
use crate::oauth::engine::Engine;
use crate::paths::Paths;

#[derive(Subcommand)]
pub enum GatewayCommand {
    /// Serve the catalog's servers as one MCP server, over stdio or Streamable HTTP.
    Run {
        #[arg(long, value_enum, default_value_t = Transport::Stdio)]
        transport: Transport,
        /// Address to listen on (http); anything but loopback exposes the gateway to the network.
        #[arg(long, default_value = "127.0.0.1")]
        host: IpAddr,
        #[arg(long, default_value_t = 8811)]
        port: u16,
        /// Catalog servers to serve, comma-separated (default: every catalog server); `gmail@work`
        /// serves a server with one of your accounts (`oauth authorize --account`), as `gmail-work`.
        #[arg(long, value_delimiter = ',')]
        servers: Vec<String>,
        /// Between server and tool names: `<server><separator><tool>`.
        #[arg(long, default_value = "__")]
        separator: String,
        /// Expose tool and prompt names unchanged (one server only).
        #[arg(long, conflicts_with = "separator")]
        no_prefix: bool,
        /// Serve /mcp without a bearer token (http).
        #[arg(long)]
        allow_unauthenticated: bool,
        /// Seconds an upstream server may take to start, and to answer each request.
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
        timeout: u64,
        /// Seconds an HTTP session may be idle before it ends (its client then starts a new one).
        #[arg(long, default_value_t = Limits::DEFAULT_IDLE_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
        session_idle_timeout: u64,
        /// HTTP sessions open at once; a new one beyond that gets 503 with Retry-After.
        #[arg(long, default_value_t = Limits::DEFAULT_MAX_SESSIONS, value_parser = clap::value_parser!(u64).range(1..).map(|n| n as usize))]
        max_sessions: usize,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    Stdio,
    Http,
}

pub fn run(command: GatewayCommand) -> Result<(), Failure> {
    let GatewayCommand::Run {
        transport,
        host,
        port,
        servers,
        separator,
        no_prefix,
        allow_unauthenticated,
        timeout,
        session_idle_timeout,
        max_sessions,
    } = command;
    let paths = Paths::discover()?;
    // One worker: the gateway only moves messages between sockets and pipes, and with a second
    // worker every call hops between threads (3 context switches per tools/call instead of 1);
    // one worker spends ~20% less CPU per call and serves thousands of calls a second (see
    // bench/gateway). Blocking work still goes to tokio's blocking pool.
    gateway::memory::limit_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    runtime.block_on(async move {
        let engine = Arc::new(Engine::open(paths.clone())?);
        for notice in engine.notices() {
            output::note(&notice);
        }
        // Drop-in providers are reloaded while the gateway runs; without the watcher they still
        // work, only changes need a restart.
        let _provider_watcher = engine
            .registry()
            .watch()
            .map_err(|error| output::warning(&format!("{error:#}; changes to drop-in providers need a gateway restart")))
            .ok();
        if no_prefix && servers.len() != 1 {
            return Err(anyhow::anyhow!("--no-prefix needs exactly one server in --servers, or tool names could collide").into());
        }
        let naming = Naming { separator: (!no_prefix).then_some(separator) };
        let gateway = Gateway::new(engine, &servers, naming, Duration::from_secs(timeout))?;
        gateway.check_accounts().await?;
        let containers = gateway.upstreams().any(|upstream| matches!(upstream.entry().kind, crate::catalog::Kind::Image { .. }));
        if containers && let Ok(docker) = gateway::container::connect().await {
            match gateway::container::remove_leftovers(&docker, &paths).await {
                Ok(0) | Err(_) => {}
                Ok(removed) => output::note(&format!("removed {removed} container(s) left by earlier gateways")),
            }
        }
        // Started while the client connects: a slow or broken server must not hold up the
        // others (lists leave out what is not up yet; it announces itself when it is).
        gateway.start_all(|server, error| output::warning(&format!("{server} is not available: {error}")));
        let credentials = gateway::refresh::spawn(&gateway);
        let served = match transport {
            Transport::Stdio => gateway::stdio::serve(gateway, terminated()).await,
            Transport::Http => {
                let token = if allow_unauthenticated {
                    output::warning("serving /mcp without authentication (--allow-unauthenticated)");
                    None
                } else {
                    Some(match std::env::var(http::TOKEN_VAR) {
                        Ok(token) if !token.is_empty() => SecretString::from(token),
                        _ => {
                            let token = http::generate_token();
                            // The one place a secret is printed: the user needs it to connect.
                            eprintln!("latchkey gateway: bearer token {} (set {} to choose one)", token.expose_secret(), http::TOKEN_VAR);
                            token
                        }
                    })
                };
                if !host.is_loopback() {
                    output::warning(&format!("listening on {host}, which other machines can reach"));
                }
                let sessions = Limits { idle_timeout: Duration::from_secs(session_idle_timeout), max_sessions };
                http::serve(gateway, credentials, http::Options { host, port, token, sessions }, terminated()).await
            }
        };
        // Process upstreams die with the gateway (kill on drop); containers are removed here.
        if containers && let Ok(docker) = gateway::container::connect().await {
            let _ = gateway::container::remove_own(&docker).await;
        }
        Ok(served?)
    })
}

/// Ctrl-C or SIGTERM.
async fn terminated() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("a SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
