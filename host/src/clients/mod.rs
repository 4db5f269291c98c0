//! `latchkey client`: put latchkey's gateway into an AI client's MCP configuration, take it out,
//! and tell which clients have it.
//!
//! Each client keeps its MCP servers in a file of its own, in its own format and under its own key
//! ([`table`] lists them). latchkey owns exactly one entry there, named `latchkey`, that runs
//! `<this latchkey> gateway run [--servers a,b]` over stdio; everything else in the file belongs to
//! the user and the client, and stays byte for byte: the files are edited through a syntax tree
//! that keeps comments, order and spacing ([`json`] for JSON and JSONC, [`toml`] for Codex), never
//! parsed and re-serialized. Continue is the exception that proves the rule: it reads MCP servers
//! from block files, so latchkey writes a block of its own ([`continue_block`]) and never edits
//! the user's `config.yaml`.
//!
//! Every command is planned first: [`connect`] and [`disconnect`] read the file and return a
//! [`Change`] (before and after), which the caller shows as a diff (`--dry-run`) or
//! [applies](Change::apply): a backup of the old file beside it, then an atomic replace, and only
//! if the file was not changed since it was read. A file that does not parse is never touched; the
//! error names its line and column.

mod continue_block;
mod json;
mod table;
mod toml;

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::Context;

pub use table::{CLIENTS, Client, Scope, find};

/// The name of latchkey's entry in every client's configuration.
pub const ENTRY: &str = "latchkey";

/// A client's file format, and where in it the servers are.
#[derive(Clone, Copy, Debug)]
pub enum Format {
    /// A JSON object of servers under `key` at the top level, in the `dialect` the client reads.
    Json { key: &'static str, shape: Shape, dialect: Dialect },
    /// Codex's `config.toml`: `[mcp_servers.<name>]` tables.
    Toml,
    /// A Continue block file of latchkey's own.
    ContinueBlock,
}

/// What a JSON client accepts beyond strict JSON.
#[derive(Clone, Copy, Debug)]
pub enum Dialect {
    Strict,
    /// Comments, but no trailing commas (comments stripped, then `JSON.parse`).
    Comments,
    /// Comments and trailing commas (VS Code's and Zed's settings files).
    Jsonc,
}

/// How a JSON client spells a stdio server.
#[derive(Clone, Copy, Debug)]
pub enum Shape {
    /// `{"command": "...", "args": [...]}`.
    Plain,
    /// The same with `"type": <type>` first.
    Typed(&'static str),
    /// opencode: `{"type": "local", "command": [program, args...]}`.
    OpenCode,
}

/// The command a client runs to start latchkey's gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    pub program: String,
    pub args: Vec<String>,
}

impl Launch {
    /// `<program> gateway run`, with `--servers a,b` when `servers` names some (else every catalog
    /// server is served).
    pub fn gateway(program: &Path, servers: &[String]) -> Launch {
        let mut args = vec!["gateway".to_string(), "run".to_string()];
        if !servers.is_empty() {
            args.push("--servers".into());
            args.push(servers.join(","));
        }
        Launch { program: program.to_string_lossy().into_owned(), args }
    }

    /// The catalog servers this launch serves: `None` for every one.
    pub fn servers(&self) -> Option<Vec<String>> {
        let mut args = self.args.iter();
        let mut servers = Vec::new();
        while let Some(arg) = args.next() {
            let list = match arg.strip_prefix("--servers=") {
                Some(list) => list,
                None if arg == "--servers" => args.next().map_or("", String::as_str),
                None => continue,
            };
            servers.extend(list.split(',').filter(|name| !name.is_empty()).map(str::to_string));
        }
        (!servers.is_empty()).then_some(servers)
    }
}

/// Where a file is wrong, for an error that names it.
#[derive(Debug)]
pub(crate) struct Problem {
    line: usize,
    column: usize,
    message: String,
}

impl Problem {
    /// A problem at byte `offset` of `text`.
    fn at(text: &str, offset: usize, message: impl Into<String>) -> Problem {
        let before = &text[..offset.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |last| last.chars().count()) + 1;
        Problem { line, column, message: message.into() }
    }

    fn into_error(self, path: &Path) -> anyhow::Error {
        anyhow::anyhow!(
            "{}:{}:{}: {}; latchkey has not changed the file: fix it (or move it away) and run the command again",
            path.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

/// The text of a client's file with latchkey's entry read, set or removed.
trait Edit {
    /// latchkey's entry, if the file has one.
    fn read(&self, text: &str) -> Result<Option<Launch>, Problem>;
    /// The text with latchkey's entry set to `launch`, everything else as it was.
    fn connect(&self, text: &str, launch: &Launch) -> Result<String, Problem>;
    /// The text without latchkey's entry; `None` when the whole file is latchkey's and goes.
    fn disconnect(&self, text: &str) -> Result<Option<String>, Problem>;
}

fn editor(format: Format) -> Box<dyn Edit> {
    match format {
        Format::Json { key, shape, dialect } => Box::new(json::Json { key, shape, dialect }),
        Format::Toml => Box::new(toml::Toml),
        Format::ContinueBlock => Box::new(continue_block::ContinueBlock),
    }
}

/// A planned change to one client's file: its text before and after (`None`: no file).
#[derive(Debug)]
pub struct Change {
    pub client: &'static Client,
    pub path: PathBuf,
    pub before: Option<String>,
    pub after: Option<String>,
}

impl Change {
    /// Whether applying the change would leave the file as it is.
    pub fn is_nothing(&self) -> bool {
        self.before == self.after
    }

    /// The change as a unified diff, with the file's path in the headers.
    pub fn diff(&self) -> String {
        let shown = self.path.display().to_string();
        let before = self.before.as_deref().unwrap_or("");
        let after = self.after.as_deref().unwrap_or("");
        let old = if self.before.is_some() { shown.as_str() } else { "/dev/null" };
        let new = if self.after.is_some() { shown.as_str() } else { "/dev/null" };
        similar::TextDiff::from_lines(before, after).unified_diff().context_radius(3).header(old, new).to_string()
    }

    /// Where [`apply`](Change::apply) keeps the file as it was.
    pub fn backup_path(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".latchkey.bak");
        self.path.with_file_name(name)
    }

    /// Write the change: the old file to [`backup_path`](Change::backup_path), then the new one in
    /// its place atomically, with the old file's permissions. Refused when the file changed since it
    /// was read (the client may have written it meanwhile). Returns the backup's path, if one was
    /// made.
    pub fn apply(&self) -> anyhow::Result<Option<PathBuf>> {
        if read_text(&self.path)? != self.before {
            anyhow::bail!("{} changed while latchkey was editing it; run the command again", self.path.display());
        }
        // A file that is a link (dotfiles kept in a repository) stays a link: the file it points
        // to is replaced.
        let target = dunce::canonicalize(&self.path).unwrap_or_else(|_| self.path.clone());
        let permissions = fs::metadata(&target).ok().map(|meta| meta.permissions());
        let backup = match &self.before {
            Some(before) => {
                let backup = self.backup_path();
                crate::paths::write_atomically(&backup, before.as_bytes(), permissions.clone())?;
                Some(backup)
            }
            None => None,
        };
        match &self.after {
            Some(after) => {
                if let Some(dir) = target.parent() {
                    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
                }
                crate::paths::write_atomically(&target, after.as_bytes(), permissions)?;
            }
            None => fs::remove_file(&self.path).with_context(|| format!("cannot remove {}", self.path.display()))?,
        }
        Ok(backup)
    }
}

/// The change that makes `client` (at `scope`) run `launch` as its `latchkey` server. Nothing when
/// it already does; an entry that runs something else (another latchkey, other servers) is
/// updated in place, keeping what the user added to it.
pub fn connect(client: &'static Client, scope: &Scope, launch: &Launch) -> anyhow::Result<Change> {
    let path = client.path(scope)?;
    let before = read_text(&path)?;
    let edit = editor(client.format);
    let text = before.as_deref().unwrap_or("");
    let current = edit.read(text).map_err(|problem| problem.into_error(&path))?;
    let after = if current.as_ref() == Some(launch) {
        before.clone()
    } else {
        Some(with_line_endings_of(text, edit.connect(text, launch).map_err(|problem| problem.into_error(&path))?))
    };
    Ok(Change { client, path, before, after })
}

/// `edited` with the line endings of `original`: the editors insert `\n` (and toml_edit writes
/// every line ending as `\n`), and a file written on Windows (CRLF) must keep its kind.
fn with_line_endings_of(original: &str, edited: String) -> String {
    if !original.contains("\r\n") {
        return edited;
    }
    let mut converted = String::with_capacity(edited.len() + 32);
    let mut previous = '\0';
    for c in edited.chars() {
        if c == '\n' && previous != '\r' {
            converted.push('\r');
        }
        converted.push(c);
        previous = c;
    }
    converted
}

/// The change that removes latchkey's entry from `client` (at `scope`); nothing when it has none.
pub fn disconnect(client: &'static Client, scope: &Scope) -> anyhow::Result<Change> {
    let path = client.path(scope)?;
    let before = read_text(&path)?;
    let after = match &before {
        None => None,
        Some(text) => {
            let edit = editor(client.format);
            if edit.read(text).map_err(|problem| problem.into_error(&path))?.is_none() {
                before.clone()
            } else {
                edit.disconnect(text).map_err(|problem| problem.into_error(&path))?.map(|after| with_line_endings_of(text, after))
            }
        }
    };
    Ok(Change { client, path, before, after })
}

/// Whether `client` looks installed for this user: its configuration folder exists, or one of its
/// programs is on PATH.
pub fn is_installed(client: &Client) -> bool {
    client.path(&Scope::User).is_ok_and(|user_file| client.installed(&user_file))
}

/// What `client ls` shows for one client and scope.
#[derive(Debug)]
pub struct Status {
    pub client: &'static Client,
    pub path: PathBuf,
    pub installed: bool,
    /// latchkey's entry, if the file has one.
    pub entry: Option<Launch>,
    /// Why the file could not be read.
    pub problem: Option<String>,
}

/// Each known client's state at `scope` (the user's files, or a project's for the clients that
/// have one).
pub fn statuses(scope: &Scope) -> Vec<Status> {
    CLIENTS
        .iter()
        .filter(|client| matches!(scope, Scope::User) || client.has_project_file())
        .filter_map(|client| {
            let path = client.path(scope).ok()?;
            let installed = is_installed(client);
            let (entry, problem) = match read_text(&path)
                .and_then(|text| editor(client.format).read(text.as_deref().unwrap_or("")).map_err(|problem| problem.into_error(&path)))
            {
                Ok(entry) => (entry, None),
                Err(error) => (None, Some(format!("{error:#}"))),
            };
            Some(Status { client, path, installed, entry, problem })
        })
        .collect()
}

/// A file's text; `None` when it does not exist.
fn read_text(path: &Path) -> anyhow::Result<Option<String>> {
    match fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes).map(Some).map_err(|error| {
            anyhow::anyhow!("{} is not UTF-8 text (byte {}); latchkey has not changed it", path.display(), error.utf8_error().valid_up_to())
        }),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
}

#[cfg(test)]
mod tests;
