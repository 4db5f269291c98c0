//! The catalog: which MCP servers exist, how each runs, and how it gets its OAuth tokens.
//!
//! Entries are YAML in the shape of Docker's MCP catalog server entries, with pull request #444's
//! OAuth additions (`server_metadata` under RFC 8414 names, `registration: {client_id}`), so Docker
//! entries load unchanged:
//!
//! ```yaml
//! servers:                      # Docker's legacy `registry:` works too
//!   gmail:
//!     remote: {url: https://gmailmcp.googleapis.com/mcp/v1}   # or image: …, or command: [argv…]
//!     secrets:
//!       - {name: gmail.access_token}          # receives the token (a remote server gets it as a bearer)
//!       - {name: gmail.client_secret}         # no env: never passed to the server
//!     oauth:
//!       scopes: [https://www.googleapis.com/auth/gmail.readonly]
//!       providers:
//!         - provider: google
//!           secret: gmail.access_token
//!           server_metadata: {issuer: …, authorization_endpoint: …, token_endpoint: …}
//!           registration: {client_id: 1234.apps.googleusercontent.com}
//! registrations:                # latchkey only: a client id for a server defined elsewhere
//!   slack: {client_id: "123.456"}
//! ```
//!
//! Loading: the default catalog embedded in the binary (`default.yaml`: Google, Slack and Microsoft
//! servers, without client ids), then `<config dir>/catalogs/*.yaml` (and `*.yml`) in file-name
//! order. A later entry with the same name replaces the whole earlier entry, and the catalog says
//! so in a notice. `registrations:` entries are applied after every file's servers are in, so a
//! user file can give a built-in server its client id without copying the entry; the last one
//! wins. `latchkey oauth register <server> --client-id …` records a client id outside the catalogs
//! (`registrations.json`, [`crate::oauth::manual`]), which the OAuth engine prefers to these.
//!
//! Rules, each reported with file, line and column: YAML syntax; misspelt keys where spelling
//! matters, with a "did you mean" ([`keys`]); missing fields; exactly one of `image` / `command` /
//! `remote` (`command` with `image` is the container's command); https for every URL (http only
//! for loopback addresses); declared, unique secret names; a provider `secret` that is declared
//! (and, for a local server, has an `env`); container limits (`network`, default `none`; `cpus`;
//! `memory`) on images only, and never `network: host`; a remote's `headers` valid HTTP, naming
//! only the server's variables ([`headers`]), and its `transport_type` Streamable HTTP (`http`,
//! `streamable`, `streaming`, `streamable-http`; the deprecated `sse` is refused: latchkey has no
//! client for it); `config` schemas whose `required` settings exist ([`config`]). A
//! `client_secret` key anywhere, or an env variable holding one, is refused with the command that
//! stores it instead: `latchkey secret set <server>.client_secret` (value read from stdin).
//!
//! Docker's catalogs load as Docker loads them: every field of Docker's catalog types is known,
//! and a key that neither Docker nor latchkey knows, at the top level or in a server entry, is a
//! notice naming it (Docker ignores it too), not an error; inside `remote`, `oauth`, `secrets`,
//! `env` and `registrations` it is a problem, since a typo there changes what latchkey does.
//! Docker's fields that change how Docker would run the server (`volumes`, `user`, `allowHosts`,
//! `extraHosts`, `disableNetwork`, `sseEndpoint`) are listed in [`Server::ignored`], which
//! `catalog show` and `catalog validate` print; the descriptive ones (`icon`, `readme`,
//! `metadata`, `tools`, `prefix`, `policy`, `longLived`, `dateAdded`, `upstream`, `source`, a
//! secret's `example`, and `oauth.providers[].env`, which Docker never reads either) are dropped
//! quietly. Docker's older OAuth shape `oauth: {enabled: true, provider: <app>}` means "discover
//! the authorization server and sign in" (a remote server), `enabled: false` no OAuth. `type` is
//! checked against the entry's kind; `type: poci` (Docker's per-tool containers) is listed and
//! refused when started. Per-server settings (`config:` and `{{<server>.<key>}}` in `env` and
//! `command`) work as in Docker: see [`config`].
//!
//! `latchkey catalog import` turns MCP registry `server.json` documents into entries ([`import`])
//! and adds them to the user catalog `imported.yaml` ([`user_file`]).
//!
//! Not checked here: whether a named provider plugin exists and accepts the `config` keys (the
//! OAuth engine asks the plugin registry), and whether secrets have values (the secret store).

mod bindings;
pub mod config;
pub(crate) mod headers;
pub mod import;
mod keys;
mod model;
mod parse;
pub(crate) mod rules;
pub mod user_file;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use bindings::{Binding, BindingError, Entry as BindingEntry};
pub use model::{
    CatalogGrant, ConfigObject, ConfigProperty, Container, EnvVar, Kind, Located, OAuth, OAuthProvider, Registration, Remote, Secret,
    Server, ServerMetadata, Source, Transport, ValueType,
};

use crate::paths::Paths;

/// The default catalog, embedded in the binary.
pub const DEFAULT_CATALOG: &str = include_str!("default.yaml");

/// Every server the catalogs define, by name.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    servers: BTreeMap<String, Server>,
    /// Things the user should know that are not problems (an entry replacing another).
    notices: Vec<String>,
    /// Where user catalogs go, for advice in errors.
    dir: Option<PathBuf>,
}

/// One thing wrong in a catalog file.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Problem {
    pub source: Source,
    /// From 1; 0 when the problem concerns the whole file (it cannot be read).
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.source, self.message)
        } else {
            write!(f, "{}:{}:{}: {}", self.source, self.line, self.column, self.message)
        }
    }
}

/// The catalogs have problems; each one says where and how to fix it.
#[derive(Debug, thiserror::Error)]
pub struct CatalogError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for CatalogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.problems.len();
        write!(f, "the catalog has {count} problem{}:", if count == 1 { "" } else { "s" })?;
        for problem in &self.problems {
            write!(f, "\n  {problem}")?;
        }
        write!(f, "\nfix them and check with `latchkey catalog validate`")
    }
}

/// Asked for a server that no catalog defines.
#[derive(Debug, thiserror::Error)]
#[error("unknown server `{name}`; known servers: {known}. {hint}")]
pub struct UnknownServer {
    pub name: String,
    pub known: String,
    hint: String,
}

/// Everything `latchkey catalog validate` reports.
#[derive(Debug)]
pub struct Report {
    /// The servers that passed their checks.
    pub catalog: Catalog,
    pub problems: Vec<Problem>,
    /// The files read, in order, the built-in catalog first.
    pub sources: Vec<Source>,
    /// The file that was checked alone, as the catalog names it.
    pub focus: Option<Source>,
}

impl Catalog {
    /// The default catalog and the user's catalogs. Any problem in any file is an error that lists
    /// them all: a server half-defined is worse than a clear refusal.
    pub fn load(paths: &Paths) -> Result<Catalog, CatalogError> {
        let report = check(paths, None);
        if report.problems.is_empty() { Ok(report.catalog) } else { Err(CatalogError { problems: report.problems }) }
    }

    /// A catalog of `text` alone (no default catalog), for tests and tools.
    pub fn from_yaml(source: Source, text: &str) -> Result<Catalog, CatalogError> {
        let report = assemble(vec![(source, Ok(text.to_string()))], None);
        if report.problems.is_empty() { Ok(report.catalog) } else { Err(CatalogError { problems: report.problems }) }
    }

    /// The server called `name`.
    pub fn server(&self, name: &str) -> Result<&Server, UnknownServer> {
        self.servers.get(name).ok_or_else(|| UnknownServer {
            name: name.to_string(),
            known: if self.servers.is_empty() { "none".into() } else { self.servers.keys().cloned().collect::<Vec<_>>().join(", ") },
            hint: match &self.dir {
                Some(dir) => format!(
                    "A server is added with an entry in a YAML file in {} (check it with `latchkey catalog validate`)",
                    dir.display()
                ),
                None => "Check the name with `latchkey catalog ls`".into(),
            },
        })
    }

    /// Every server, by name.
    pub fn servers(&self) -> impl Iterator<Item = &Server> {
        self.servers.values()
    }

    pub fn notices(&self) -> &[String] {
        &self.notices
    }
}

/// User catalogs: `*.yaml` and `*.yml` in [`catalogs_dir`], read in name order (hidden files, such
/// as an editor's companions, are skipped).
const CATALOG_EXTENSIONS: &[&str] = &["yaml", "yml"];

/// Where user catalogs live.
pub fn catalogs_dir(paths: &Paths) -> PathBuf {
    paths.config_dir.join("catalogs")
}

/// Load every catalog and collect every problem. With `extra`, that file is checked too, as if it
/// were the last user catalog, and only its problems are reported.
pub fn check(paths: &Paths, extra: Option<&Path>) -> Report {
    let dir = catalogs_dir(paths);
    let mut files = crate::paths::visible_files(&dir, CATALOG_EXTENSIONS);
    let focus = extra.map(|extra| {
        // The file may already be one of the user catalogs, under another spelling of its path.
        let canonical = extra.canonicalize().ok();
        match files.iter().find(|file| canonical.is_some() && file.canonicalize().ok() == canonical) {
            Some(file) => file.clone(),
            None => {
                files.push(extra.to_path_buf());
                extra.to_path_buf()
            }
        }
    });
    let mut sources = vec![(Source::BuiltIn, Ok(DEFAULT_CATALOG.to_string()))];
    for file in files {
        let source = Source::File(file.clone());
        let text = std::fs::read_to_string(&file).map_err(|error| Problem {
            source: source.clone(),
            line: 0,
            column: 0,
            message: format!("cannot read the file: {error}"),
        });
        sources.push((source, text));
    }
    let mut report = assemble(sources, Some(dir));
    if let Some(focus) = focus {
        let focus = Source::File(focus);
        report.problems.retain(|problem| problem.source == focus);
        report.focus = Some(focus);
    }
    report
}

/// Parse each source in order, let later servers replace earlier ones, then apply registrations.
fn assemble(sources: Vec<(Source, Result<String, Problem>)>, dir: Option<PathBuf>) -> Report {
    let mut catalog = Catalog { dir, ..Catalog::default() };
    let mut problems = Vec::new();
    let mut registrations = Vec::new();
    let mut read = Vec::new();
    for (source, text) in sources {
        read.push(source.clone());
        let text = match text {
            Ok(text) => text,
            Err(problem) => {
                problems.push(problem);
                continue;
            }
        };
        let parsed = parse::parse(&source, &text);
        problems.extend(parsed.problems);
        catalog.notices.extend(parsed.notices.iter().map(Problem::to_string));
        for server in parsed.servers {
            if let Some(earlier) = catalog.servers.get(&server.name) {
                catalog.notices.push(format!(
                    "`{}` from {}:{} replaces the entry from {}:{}",
                    server.name, server.source, server.line, earlier.source, earlier.line
                ));
            }
            catalog.servers.insert(server.name.clone(), server);
        }
        registrations.extend(parsed.registrations.into_iter().map(|entry| (source.clone(), entry)));
    }
    for (source, entry) in registrations {
        if let Err(message) = catalog.register(&source, &entry) {
            problems.push(Problem { source, line: entry.server.line(), column: entry.server.column(), message });
        }
    }
    Report { catalog, problems, sources: read, focus: None }
}

impl Catalog {
    /// Give a server's OAuth provider the client id of a `registrations:` entry.
    fn register(&mut self, source: &Source, entry: &parse::RegistrationEntry) -> Result<(), String> {
        let known = self.servers.keys().cloned().collect::<Vec<_>>().join(", ");
        let server = self
            .servers
            .get_mut(entry.server.as_str())
            .ok_or_else(|| format!("registration for unknown server `{}`; known servers: {known}", entry.server))?;
        let Some(oauth) = server.oauth.as_mut().map(Arc::make_mut).filter(|oauth| !oauth.providers.is_empty()) else {
            return Err(format!("server `{}` has no `oauth.providers` to register a client id for", entry.server));
        };
        let ids = || oauth_provider_ids(oauth);
        let index = match &entry.provider {
            Some(wanted) => oauth
                .providers
                .iter()
                .position(|provider| provider.provider.as_ref().is_some_and(|id| id.as_str() == wanted.as_str()))
                .ok_or_else(|| format!("server `{}` has no provider `{wanted}`; its providers: {}", entry.server, ids()))?,
            None if oauth.providers.len() == 1 => 0,
            None => {
                return Err(format!(
                    "server `{}` has {} providers; say which with `provider:` (one of {})",
                    entry.server,
                    oauth.providers.len(),
                    ids()
                ));
            }
        };
        let replaced = oauth.providers[index].registration.replace(Registration { client_id: entry.client_id.clone() });
        if replaced.is_some() {
            self.notices.push(format!(
                "{source}:{}: the client id of `{}` replaces the one in its entry",
                entry.server.line(),
                entry.server
            ));
        }
        Ok(())
    }
}

fn oauth_provider_ids(oauth: &OAuth) -> String {
    oauth
        .providers
        .iter()
        .map(|provider| provider.provider.as_ref().map_or("(unnamed)".to_string(), |id| id.to_string()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
