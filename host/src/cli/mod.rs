//! The `latchkey` command line: parse arguments, call the library, print. Humans get tables and
//! colour (on a terminal only); `--json` gives machines a stable shape.
//!
//! Exit codes: 0 success; 1 the command failed (the message says why); 2 the command line is
//! wrong; 3 the input was checked and found invalid (`provider verify`, `catalog validate`), or
//! `doctor` found a problem.

mod catalog;
mod client;
mod config;
mod docs;
mod doctor;
mod gateway;
mod oauth;
mod output;
mod provider;
mod secret;
mod tools;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "latchkey", version, about = "MCP gateway and OAuth client with WebAssembly provider plugins")]
struct Cli {
    /// Show more of what latchkey does (repeat for more); LATCHKEY_LOG=debug does the same.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// MCP servers and their OAuth setup: list, show, validate.
    #[command(subcommand)]
    Catalog(catalog::CatalogCommand),
    /// AI clients (Claude, Cursor, VS Code, Zed, Codex...): connect the gateway to one, list them.
    #[command(subcommand)]
    Client(client::ClientCommand),
    /// Check everything that can stop latchkey working (store, catalogs, OAuth clients,
    /// credentials, providers, AI clients), each with its fix. Exits 3 when something is a problem.
    Doctor(doctor::DoctorArgs),
    /// Print the shell completion script for bash, zsh, fish, PowerShell or elvish.
    Completions(docs::CompletionsArgs),
    /// Print latchkey's man page (roff), or write a page per command into a folder.
    Man(docs::ManArgs),
    /// Settings that catalog entries declare (Docker's per-server `config`): set, list, remove.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// The MCP gateway: serve the catalog's servers to an AI client.
    #[command(subcommand)]
    Gateway(gateway::GatewayCommand),
    /// OAuth credentials: register a client, authorize, list, refresh, revoke.
    #[command(subcommand)]
    Oauth(oauth::OAuthCommand),
    /// OAuth provider components: list, inspect, verify.
    #[command(subcommand)]
    Provider(provider::ProviderCommand),
    /// Secrets (client secrets, API keys) in the OS keyring or the file store: set, list, remove.
    #[command(subcommand)]
    Secret(secret::SecretCommand),
    /// A remote MCP server's tools, used directly: list, call (signing in when it asks).
    #[command(subcommand)]
    Tools(tools::ToolsCommand),
}

/// How a command ended, beyond success.
#[derive(Debug)]
pub enum Failure {
    /// The command could not do its work.
    Error(anyhow::Error),
    /// The input was checked and is invalid; the reason has been printed.
    Invalid,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(error: E) -> Failure {
        Failure::Error(error.into())
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let outcome = match cli.command {
        Command::Catalog(command) => catalog::run(command),
        Command::Client(command) => client::run(command),
        Command::Completions(args) => docs::completions(args),
        Command::Doctor(args) => doctor::run(args),
        Command::Man(args) => docs::man(args),
        Command::Config(command) => config::run(command),
        Command::Gateway(command) => gateway::run(command),
        Command::Oauth(command) => oauth::run(command),
        Command::Provider(command) => provider::run(command),
        Command::Secret(command) => secret::run(command),
        Command::Tools(command) => tools::run(command),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Invalid) => ExitCode::from(3),
        Err(Failure::Error(error)) => {
            output::error(&format!("{error:#}"));
            ExitCode::FAILURE
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("LATCHKEY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("latchkey={default}")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .with_target(false)
        .init();
}
