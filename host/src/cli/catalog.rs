//! `latchkey catalog ls | show | validate | import`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::anyhow;
use clap::Subcommand;
use serde_json::json;

use super::Failure;
use super::output::{self, BOLD, GREEN, RED};
use crate::catalog::config::{self, ValueFile};
use crate::catalog::user_file::{self, NewEntry};
use crate::catalog::{self, Catalog, Kind, OAuthProvider, Server, Transport, import};
use crate::oauth::manual::Registrations;
use crate::paths::Paths;
use crate::store::Grant;

#[derive(Subcommand)]
pub enum CatalogCommand {
    /// List the MCP servers: how each runs, its OAuth provider, whether it has a client id.
    #[command(alias = "list")]
    Ls {
        #[arg(long)]
        json: bool,
    },
    /// Show a server's entry: how it runs, its secrets and its OAuth setup.
    Show {
        /// The server's name, as `catalog ls` shows it.
        server: String,
        #[arg(long)]
        json: bool,
    },
    /// Check the catalogs, or one file as if it were added to them, and print every problem with
    /// its file and line. Exits with 3 when there is a problem.
    Validate {
        /// A catalog file; without one, the built-in catalog and every user catalog.
        file: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Add MCP registry `server.json` documents to the user catalog `imported.yaml`: an npm
    /// package runs with npx, a PyPI package with uvx, an OCI image in Docker, a remote over
    /// Streamable HTTP. Secrets become declared secrets (stored with `latchkey secret set`),
    /// values to choose become per-server config (`latchkey config set`).
    Import {
        /// A server.json file, or a folder: every `*.json` in it, and `<folder>/server.json`.
        path: PathBuf,
        /// Print the entries and the commands to run afterwards; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// The entry's name (one document only); by default the last part of the registry
        /// name (`io.github.user/weather` → `weather`).
        #[arg(long)]
        name: Option<String>,
        /// Import the package of this registry type (npm, pypi, oci) instead of the first one
        /// that speaks stdio.
        #[arg(long, value_name = "REGISTRY_TYPE")]
        package: Option<String>,
        /// Import the document's Streamable HTTP remote instead of a package.
        #[arg(long, conflicts_with = "package")]
        remote: bool,
        /// Replace an entry of the same name in imported.yaml, or override a built-in one.
        #[arg(long)]
        replace: bool,
    },
}

pub fn run(command: CatalogCommand) -> Result<(), Failure> {
    let paths = Paths::discover()?;
    match command {
        CatalogCommand::Ls { json } => list(&paths, json),
        CatalogCommand::Show { server, json } => show(&paths, &server, json),
        CatalogCommand::Validate { file, json } => validate(&paths, file, json),
        CatalogCommand::Import { path, dry_run, name, package, remote, replace } => {
            import(&paths, &path, &import::Options { name, package, remote }, dry_run, replace)
        }
    }
}

/// The OAUTH column: the provider ids; `auto` for a provider matched by its issuer; `discovery`
/// for a remote server that finds its authorization server itself.
fn oauth_text(server: &Server) -> String {
    match &server.oauth {
        None => "-".into(),
        Some(oauth) if oauth.providers.is_empty() => "discovery".into(),
        Some(oauth) => oauth
            .providers
            .iter()
            .map(|provider| provider.provider.as_ref().map_or_else(|| "auto".to_string(), |id| id.to_string()))
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// The CLIENT ID column: `set` when `oauth register` recorded one (it wins over the catalog's) or
/// every provider of the entry has one.
fn client_id_text(server: &Server, registrations: &Registrations) -> &'static str {
    if registrations.get(&server.name).is_some() {
        return "set";
    }
    match &server.oauth {
        Some(oauth) if !oauth.providers.is_empty() => {
            if oauth.providers.iter().all(|provider| provider.registration.is_some()) {
                "set"
            } else {
                "missing"
            }
        }
        _ => "-",
    }
}

fn list(paths: &Paths, as_json: bool) -> Result<(), Failure> {
    let catalog = Catalog::load(paths)?;
    if as_json {
        let servers: Vec<&Server> = catalog.servers().collect();
        output::json(&json!({"servers": servers, "notices": catalog.notices()}));
        return Ok(());
    }
    let registrations = Registrations::load(paths)?;
    let mut table = output::table(&["SERVER", "KIND", "OAUTH", "CLIENT ID", "SOURCE"]);
    for server in catalog.servers() {
        table.add_row(vec![
            server.name.clone(),
            server.kind.name().to_string(),
            oauth_text(server),
            client_id_text(server, &registrations).to_string(),
            server.source.to_string(),
        ]);
    }
    output::print_table(&table);
    for notice in catalog.notices() {
        output::note(notice);
    }
    Ok(())
}

fn show(paths: &Paths, name: &str, as_json: bool) -> Result<(), Failure> {
    let catalog = Catalog::load(paths)?;
    let server = catalog.server(name)?;
    if as_json {
        output::json(server);
        return Ok(());
    }
    let mut out = anstream::stdout();
    let _ = writeln!(out, "{BOLD}{}{BOLD:#}{}", server.name, server.title.as_ref().map(|title| format!(" {title}")).unwrap_or_default());
    if let Some(description) = &server.description {
        let _ = writeln!(out, "{description}");
    }
    let mut table = output::table(&["", ""]);
    let mut row = |name: &str, value: String| {
        table.add_row(vec![name.to_string(), value]);
    };
    row("source", format!("{}:{}", server.source, server.line));
    row("kind", server.kind.name().to_string());
    match &server.kind {
        Kind::Image { image, command, container } => {
            row("image", image.clone());
            if !command.is_empty() {
                row("command", command.join(" "));
            }
            row("network", container.network.clone());
            row("cpus", container.cpus.map_or_else(|| "-".into(), |cpus| cpus.to_string()));
            row("memory", container.memory.map_or_else(|| "-".into(), |bytes| format!("{} MiB", bytes.div_ceil(1 << 20))));
        }
        Kind::Command { command, inherit_env } => {
            row("command", command.join(" "));
            if !inherit_env.is_empty() {
                row("inherit_env", inherit_env.join(", "));
            }
        }
        Kind::Remote { remote } => {
            row("url", remote.url.to_string());
            row(
                "transport",
                match *remote.transport {
                    Transport::StreamableHttp => "Streamable HTTP",
                    Transport::Sse => "HTTP+SSE (deprecated)",
                }
                .into(),
            );
            // Header values may carry credentials; their names say enough here.
            if !remote.headers.is_empty() {
                row("headers", remote.headers.keys().cloned().collect::<Vec<_>>().join(", "));
            }
        }
        Kind::Poci { tools } => {
            row("tools", tools.join(", "));
            row("runs", "never: latchkey does not run Docker's per-tool containers".into());
        }
    }
    for var in &server.env {
        row("env", format!("{}={}", var.name, var.value));
    }
    if let Some(oauth) = &server.oauth {
        row(
            "scopes",
            if oauth.scopes.is_empty() {
                "-".into()
            } else {
                oauth.scopes.iter().map(|scope| scope.as_str()).collect::<Vec<_>>().join(" ")
            },
        );
        if oauth.providers.is_empty() {
            row("oauth", "discovered from the server (RFC 9728), client registered dynamically".into());
        }
    }
    output::print_table(&table);
    if !server.secrets.is_empty() {
        let _ = writeln!(out, "\n{BOLD}secrets{BOLD:#} (store values with `latchkey secret set <name>`)");
        let mut secrets = output::table(&["NAME", "ENV", "USE"]);
        for secret in &server.secrets {
            let receives_token =
                server.oauth.iter().flat_map(|oauth| &oauth.providers).any(|provider| provider.secret.as_ref() == Some(&secret.name));
            let purpose = if receives_token {
                "receives the access token"
            } else if secret.env.is_none() {
                "latchkey only, never passed to the server"
            } else {
                "-"
            };
            secrets.add_row(vec![
                secret.name.to_string(),
                secret.env.as_ref().map_or_else(|| "-".into(), |env| env.to_string()),
                purpose.into(),
            ]);
        }
        output::print_table(&secrets);
    }
    let values = ValueFile::new(paths).read()?;
    let settings: Vec<_> = config::list(std::iter::once(server), &values);
    if !settings.is_empty() {
        let _ = writeln!(out, "\n{BOLD}settings{BOLD:#} (give values with `latchkey config set <setting> <value>`)");
        let mut table = output::table(&["SETTING", "TYPE", "VALUE", "STATUS", "DESCRIPTION"]);
        for setting in settings.iter().filter(|setting| setting.server.is_some()) {
            table.add_row(vec![
                setting.setting.clone(),
                setting.value_type.map_or_else(|| "string".into(), |value_type| value_type.to_string()),
                setting.value.as_ref().or(setting.default.as_ref()).map_or_else(|| "-".into(), config::text_of),
                setting.status.to_string(),
                setting.description.clone().unwrap_or_default(),
            ]);
        }
        output::print_table(&table);
        for missing in config::missing(server, &values) {
            output::note(&format!("`{}` does not start without `{}`: run `{}`", server.name, missing.setting, missing.fix));
        }
    }
    let registered = Registrations::load(paths)?.get(&server.name).map(|registration| registration.client_id.clone());
    for provider in server.oauth.iter().flat_map(|oauth| &oauth.providers) {
        let _ =
            writeln!(out, "\n{BOLD}oauth{BOLD:#} ({})", provider.provider.as_ref().map_or("provider matched by issuer", |id| id.as_str()));
        output::print_table(&provider_table(&server.name, provider, registered.as_deref()));
    }
    if !server.ignored.is_empty() {
        output::note(&ignored_note(server));
    }
    Ok(())
}

/// One OAuth provider of an entry; `registered` is the client id `oauth register` recorded for the
/// server, which the OAuth engine uses instead of the entry's.
fn provider_table(server: &str, provider: &OAuthProvider, registered: Option<&str>) -> comfy_table::Table {
    let mut table = output::table(&["", ""]);
    let optional = |value: Option<&str>| value.unwrap_or("-").to_string();
    let mut rows: Vec<(&str, String)> = vec![("token secret", optional(provider.secret.as_deref().map(String::as_str)))];
    match &provider.server_metadata {
        Some(metadata) => {
            rows.push(("issuer", metadata.issuer.to_string()));
            rows.extend(metadata.endpoints().map(|(field, url)| (field.trim_end_matches("_endpoint"), url.to_string())));
            // Kept as written, not used: shown so that the entry reads as the server published it.
            rows.extend(metadata.other.iter().map(|(name, value)| {
                let shown = match value {
                    serde_json::Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                (name.as_str(), format!("{shown} (not used)"))
            }));
        }
        None => rows.push(("endpoints", "from the provider plugin or discovery".into())),
    }
    rows.push((
        "client id",
        match (registered, &provider.registration) {
            (Some(client_id), _) => format!("{client_id} (from `latchkey oauth register`)"),
            (None, Some(registration)) => registration.client_id.to_string(),
            (None, None) => {
                format!("missing: `latchkey oauth register {server} --client-id <id>`, or `registrations:` in a user catalog")
            }
        },
    ));
    for (key, value) in &provider.config {
        rows.push(("config", format!("{key}={value}")));
    }
    if let Some(grant) = provider.grant {
        rows.push(("grant", Grant::from(grant).name().to_string()));
    }
    for (variable, name) in &provider.context {
        rows.push(("context", format!("${variable} = {}", **name)));
    }
    for (name, value) in rows {
        table.add_row(vec![name.to_string(), value]);
    }
    table
}

fn ignored_note(server: &Server) -> String {
    format!(
        "`{}` ({}:{}): latchkey ignores Docker's {} for this server",
        server.name,
        server.source,
        server.line,
        server.ignored.iter().map(|field| format!("`{field}`")).collect::<Vec<_>>().join(", ")
    )
}

fn validate(paths: &Paths, file: Option<PathBuf>, as_json: bool) -> Result<(), Failure> {
    if let Some(file) = &file
        && !file.is_file()
    {
        return Err(Failure::Error(anyhow!("{} is not a file; give the path of a catalog YAML file", file.display())));
    }
    let report = catalog::check(paths, file.as_deref());
    let checked: Vec<&Server> =
        report.catalog.servers().filter(|server| report.focus.as_ref().is_none_or(|focus| &server.source == focus)).collect();
    let ok = report.problems.is_empty();
    if as_json {
        let ignored: Vec<_> = checked
            .iter()
            .filter(|server| !server.ignored.is_empty())
            .map(|server| json!({"server": server.name, "fields": server.ignored}))
            .collect();
        output::json(&json!({
            "ok": ok,
            "problems": report.problems,
            "servers": checked.len(),
            "sources": report.focus.as_ref().map_or_else(|| report.sources.clone(), |focus| vec![focus.clone()]),
            "ignored": ignored,
            "notices": report.catalog.notices(),
        }));
        return if ok { Ok(()) } else { Err(Failure::Invalid) };
    }
    let mut out = anstream::stdout();
    for problem in &report.problems {
        let _ = writeln!(out, "{problem}");
    }
    for server in checked.iter().filter(|server| !server.ignored.is_empty()) {
        output::note(&ignored_note(server));
    }
    let what = match &report.focus {
        Some(focus) => focus.to_string(),
        None => format!("{} catalog{}", report.sources.len(), if report.sources.len() == 1 { "" } else { "s" }),
    };
    if ok {
        for notice in report.catalog.notices() {
            output::note(notice);
        }
        let _ = writeln!(out, "{GREEN}ok{GREEN:#}: {what}: {} server{}", checked.len(), if checked.len() == 1 { "" } else { "s" });
        Ok(())
    } else {
        let count = report.problems.len();
        let _ = writeln!(out, "{RED}invalid{RED:#}: {what}: {count} problem{}", if count == 1 { "" } else { "s" });
        Err(Failure::Invalid)
    }
}

fn import(paths: &Paths, path: &std::path::Path, options: &import::Options, dry_run: bool, replace: bool) -> Result<(), Failure> {
    let documents = import::read_documents(path)?;
    if options.name.is_some() && documents.len() > 1 {
        return Err(Failure::Error(anyhow!(
            "`--name` names one entry, and {} holds {} documents; import them one at a time to name each",
            path.display(),
            documents.len()
        )));
    }
    let mut entries = Vec::new();
    let mut failed = 0;
    for (file, text) in &documents {
        let document = file.display().to_string();
        match import::convert(&document, text, options) {
            Ok(entry) => entries.push((document, entry)),
            Err(error) => {
                output::error(&error.to_string());
                failed += 1;
            }
        }
    }
    if failed > 0 {
        return Err(Failure::Error(anyhow!("nothing was imported: {failed} of {} documents cannot be imported", documents.len())));
    }
    for (index, (document, entry)) in entries.iter().enumerate() {
        if let Some((first, _)) = entries[..index].iter().find(|(_, other)| other.name == entry.name) {
            return Err(Failure::Error(anyhow!(
                "{first} and {document} both become `{}`; import one of them on its own with `--name <name>`",
                entry.name
            )));
        }
    }
    let new: Vec<NewEntry> = entries.iter().map(|(document, entry)| NewEntry { entry, document }).collect();
    let mut out = anstream::stdout();
    if dry_run {
        let _ = writeln!(out, "servers:");
        for entry in &new {
            let _ = write!(out, "{}", entry.entry.yaml(entry.document, 2));
        }
        for (document, entry) in &entries {
            after_import(document, entry, "would import");
        }
        output::note("dry run: nothing was written");
        return Ok(());
    }
    let plan = user_file::add(paths, &new, replace)?;
    plan.write()?;
    for replaced in &plan.replaced {
        output::note(&format!("replaced the entry at {replaced}"));
    }
    for (document, entry) in &entries {
        let _ = writeln!(out, "{GREEN}imported{GREEN:#} `{}` ({}) from {document} into {}", entry.name, entry.chosen, plan.path.display());
        after_import(document, entry, "imported");
    }
    Ok(())
}

/// What the user should know about an imported entry, and the commands that finish its set-up.
fn after_import(document: &str, entry: &import::Entry, done: &str) {
    if !entry.alternatives.is_empty() {
        output::note(&format!(
            "{document} {done} the {}; it also offers {} (choose with `--package <registryType>` or `--remote`)",
            entry.chosen,
            entry.alternatives.join(", ")
        ));
    }
    for notice in &entry.notices {
        output::note(&format!("{document}: {notice}"));
    }
    for command in entry.secret_commands() {
        output::note(&format!("store a secret of `{}` with `{command}` (the value is read from stdin)", entry.name));
    }
    for command in entry.config_commands() {
        output::note(&format!("set a value `{}` needs with `{command}`", entry.name));
    }
}
