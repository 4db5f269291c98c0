//! `latchkey client ls | connect | disconnect`.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Subcommand;
use clap::builder::PossibleValuesParser;
use serde_json::json;

use super::Failure;
use super::output::{self, DIM, GREEN};
use crate::catalog::Catalog;
use crate::clients::{self, CLIENTS, Change, Launch, Scope, Status};
use crate::paths::Paths;

#[derive(Subcommand)]
pub enum ClientCommand {
    /// List the AI clients latchkey knows: installed or not, connected or not, which servers.
    #[command(alias = "list")]
    Ls {
        /// A project's configuration files instead of the user's (default: this folder).
        #[arg(long, value_name = "DIR", num_args = 0..=1, default_missing_value = ".")]
        project: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Add latchkey's gateway to an AI client's MCP servers, as the entry `latchkey`; everything
    /// else in the client's file stays as it is, and the old file is kept as `<file>.latchkey.bak`.
    Connect {
        #[arg(value_parser = client_ids())]
        client: String,
        /// Catalog servers the client gets, comma-separated (default: every catalog server).
        #[arg(long, value_delimiter = ',')]
        servers: Vec<String>,
        /// The project's configuration file instead of the user's (default: this folder).
        #[arg(long, value_name = "DIR", num_args = 0..=1, default_missing_value = ".")]
        project: Option<PathBuf>,
        /// Print the change as a diff and write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove latchkey's entry from an AI client's MCP servers, and nothing else.
    Disconnect {
        #[arg(value_parser = client_ids())]
        client: String,
        /// The project's configuration file instead of the user's (default: this folder).
        #[arg(long, value_name = "DIR", num_args = 0..=1, default_missing_value = ".")]
        project: Option<PathBuf>,
        /// Print the change as a diff and write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// The known client ids, for the parser's error messages and the shell completions.
fn client_ids() -> PossibleValuesParser {
    PossibleValuesParser::new(CLIENTS.iter().map(|client| client.id))
}

pub fn run(command: ClientCommand) -> Result<(), Failure> {
    match command {
        ClientCommand::Ls { project, json } => list(&scope(project)?, json),
        ClientCommand::Connect { client, servers, project, dry_run } => {
            let client = clients::find(&client)?;
            if !servers.is_empty() {
                let catalog = Catalog::load(&Paths::discover()?)?;
                for server in &servers {
                    catalog.server(server)?;
                }
            }
            if std::env::var_os(crate::paths::HOME_VAR).is_some_and(|home| !home.is_empty()) {
                // The client starts the gateway with its own environment, not this shell's.
                output::warning(&format!(
                    "{} is set here, but {} starts the gateway without it: add it to the `latchkey` entry's environment, \
                     or the gateway uses the default configuration folder",
                    crate::paths::HOME_VAR,
                    client.name
                ));
            }
            let program = std::env::current_exe().and_then(dunce::canonicalize)?;
            let change = clients::connect(client, &scope(project)?, &Launch::gateway(&program, &servers))?;
            finish(&change, dry_run, "connected", "already runs latchkey's gateway")
        }
        ClientCommand::Disconnect { client, project, dry_run } => {
            let change = clients::disconnect(clients::find(&client)?, &scope(project)?)?;
            finish(&change, dry_run, "disconnected", "has no latchkey entry")
        }
    }
}

/// `--project [DIR]` as an absolute folder, or the user's files.
fn scope(project: Option<PathBuf>) -> anyhow::Result<Scope> {
    Ok(match project {
        None => Scope::User,
        Some(dir) => Scope::Project(std::path::absolute(&dir)?),
    })
}

/// Show or apply `change`, and say what happened.
fn finish(change: &Change, dry_run: bool, done: &str, nothing: &str) -> Result<(), Failure> {
    let name = change.client.name;
    let shown = change.path.display();
    if change.is_nothing() {
        let _ = writeln!(anstream::stdout(), "{name} {nothing} ({shown}); nothing to change");
        return Ok(());
    }
    if dry_run {
        let _ = write!(anstream::stdout(), "{}", change.diff());
        return Ok(());
    }
    let backup = change.apply()?;
    let mut out = anstream::stdout();
    let _ = writeln!(out, "{GREEN}{done}{GREEN:#} {name}: {shown}");
    if let Some(backup) = backup {
        let _ = writeln!(out, "{DIM}the previous file is {}{DIM:#}", backup.display());
    }
    if clients::is_installed(change.client) {
        let _ = writeln!(out, "restart {name} (or reload its MCP servers) to apply the change");
    } else {
        output::note(&format!("{name} does not look installed here; it will find latchkey when it is"));
    }
    Ok(())
}

fn list(scope: &Scope, json: bool) -> Result<(), Failure> {
    let statuses = clients::statuses(scope);
    if json {
        let clients: Vec<_> = statuses
            .iter()
            .map(|status| {
                json!({
                    "id": status.client.id,
                    "name": status.client.name,
                    "installed": status.installed,
                    "connected": status.entry.is_some(),
                    // null: every catalog server (or not connected).
                    "servers": status.entry.as_ref().and_then(Launch::servers),
                    "command": status.entry.as_ref().map(|launch| std::iter::once(&launch.program).chain(&launch.args).collect::<Vec<_>>()),
                    "path": status.path,
                    "problem": status.problem,
                })
            })
            .collect();
        output::json(&json!({ "clients": clients }));
        return Ok(());
    }
    let mut table = output::table(&["CLIENT", "INSTALLED", "CONNECTED", "SERVERS", "CONFIGURATION"]);
    for status in &statuses {
        table.add_row(vec![
            status.client.id.to_string(),
            yes_no(status.installed),
            connected_text(status),
            servers_text(status),
            home_relative(&status.path),
        ]);
    }
    output::print_table(&table);
    for status in &statuses {
        if let Some(problem) = &status.problem {
            output::warning(problem);
        }
    }
    Ok(())
}

fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.into()
}

fn connected_text(status: &Status) -> String {
    match (&status.problem, &status.entry) {
        (Some(_), _) => "unreadable".into(),
        (None, Some(_)) => "yes".into(),
        (None, None) => "no".into(),
    }
}

fn servers_text(status: &Status) -> String {
    match status.entry.as_ref().map(Launch::servers) {
        None => "-".into(),
        Some(None) => "all".into(),
        Some(Some(servers)) => servers.join(","),
    }
}

/// `~/...` for a path in the home folder: shorter, and what the clients' documentation shows.
fn home_relative(path: &Path) -> String {
    let home = directories::BaseDirs::new().map(|dirs| dirs.home_dir().to_path_buf());
    match home.as_deref().and_then(|home| path.strip_prefix(home).ok()) {
        Some(rest) => format!("~{}{}", std::path::MAIN_SEPARATOR, rest.display()),
        None => path.display().to_string(),
    }
}
