//! `latchkey provider ls | inspect | verify | new | test | install | remove`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

use super::Failure;
use super::output::{self, BOLD, GREEN, RED};
use crate::paths::Paths;
use crate::plugins::provider::request_origins;
use crate::plugins::replacements::Replacements;
use crate::plugins::scaffold::{self, SdkSource};
use crate::plugins::vectors::{self, Outcome};
use crate::plugins::{self, Flow, Origin, PluginError, Problem, Provider, Registry, Runtime};

#[derive(Subcommand)]
pub enum ProviderCommand {
    /// List the providers: built-ins and drop-ins, and drop-ins that failed to load.
    #[command(alias = "list")]
    Ls {
        #[arg(long)]
        json: bool,
    },
    /// Show a provider's flow: endpoints, client authentication, PKCE, refresh and redirect rules.
    Inspect {
        /// The provider id, as `provider ls` shows it.
        id: String,
        /// A configuration entry, as a catalog's `config` would set it (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_config_entry)]
        config: Vec<(String, String)>,
        #[arg(long)]
        json: bool,
    },
    /// Check a provider component: format, contract version, imports, and `info()` under the
    /// sandbox's limits. Exits with 3 and the reason when the component is not usable.
    Verify {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Create a provider crate on the SDK: Cargo.toml, src/lib.rs with every hook, example test
    /// vectors and a README. It builds with `cargo build --target wasm32-wasip2 --release`.
    New {
        /// The provider's id (a-z, 0-9 and `-`), as catalogs will name it.
        name: String,
        /// The folder to create (default: ./<name>).
        #[arg(long)]
        path: Option<PathBuf>,
        /// The SDK crate to depend on by path (default: the SDK of the checkout latchkey was built
        /// from, else latchkey's git repository).
        #[arg(long, env = "LATCHKEY_SDK_PATH")]
        sdk_path: Option<PathBuf>,
    },
    /// Run test vectors (recorded requests and responses) through a component in the production
    /// sandbox. Exits with 3 when a vector fails or the component is not usable.
    Test {
        file: PathBuf,
        /// The folder of `*.json` vectors (default: ./vectors).
        #[arg(long, default_value = "vectors")]
        vectors: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Verify a component, then copy it into the providers folder as <id>.wasm (atomically). A
    /// running gateway picks it up without a restart.
    Install {
        file: PathBuf,
        /// Let this file replace the built-in provider with the same id: its sha256 is recorded,
        /// and only a file with that hash replaces the built-in.
        #[arg(long)]
        replace: bool,
    },
    /// Remove a dropped-in provider. Built-in providers cannot be removed (a drop-in with the same
    /// id replaces one when installed with `--replace`).
    Remove { id: String },
}

pub fn run(command: ProviderCommand) -> Result<(), Failure> {
    let paths = Paths::discover()?;
    match command {
        ProviderCommand::Ls { json } => list(&paths, json),
        ProviderCommand::Inspect { id, config, json } => inspect(&paths, &id, &config, json),
        ProviderCommand::Verify { file, json } => verify(&paths, file, json),
        ProviderCommand::New { name, path, sdk_path } => scaffold(&name, path, sdk_path.as_deref()),
        ProviderCommand::Test { file, vectors, json } => test(&paths, &file, &vectors, json),
        ProviderCommand::Install { file, replace } => install(&paths, &file, replace),
        ProviderCommand::Remove { id } => remove(&paths, &id),
    }
}

fn origin_text(origin: &Origin) -> String {
    match origin {
        Origin::BuiltIn(_) => "built-in".to_string(),
        Origin::File(path) => path.display().to_string(),
    }
}

fn list(paths: &Paths, as_json: bool) -> Result<(), Failure> {
    let (_runtime, registry) = plugins::load(paths)?;
    if as_json {
        let providers: Vec<_> = registry.providers().map(identity).collect();
        let failures: Vec<_> =
            registry.failures().iter().map(|failure| json!({"origin": failure.origin, "error": failure.problem.to_string()})).collect();
        output::json(&json!({"providers": providers, "notices": registry.notices(), "failures": failures}));
        return Ok(());
    }
    let mut table = output::table(&["ID", "NAME", "VERSION", "CONTRACT", "SOURCE"]);
    for provider in registry.providers() {
        let info = provider.info();
        let row = [&info.id, &info.display_name, &info.version].map(String::clone);
        table.add_row(row.into_iter().chain([provider.contract().to_string(), origin_text(provider.origin())]).collect::<Vec<_>>());
    }
    output::print_table(&table);
    for notice in registry.notices() {
        output::note(notice);
    }
    for failure in registry.failures() {
        output::warning(&format!("not loaded: {failure}"));
    }
    Ok(())
}

fn parse_config_entry(entry: &str) -> Result<(String, String), String> {
    entry.split_once('=').map(|(key, value)| (key.to_string(), value.to_string())).ok_or_else(|| format!("`{entry}` is not KEY=VALUE"))
}

fn inspect(paths: &Paths, id: &str, entries: &[(String, String)], as_json: bool) -> Result<(), Failure> {
    let (_runtime, registry) = plugins::load(paths)?;
    let provider = registry.get(id)?;
    let config = provider.resolve_config(entries)?;
    let flow = provider.configure(&config)?;
    let authorize = sample_authorize_params(provider, &config);
    if as_json {
        output::json(&describe(provider, &flow, &authorize));
        return Ok(());
    }
    let info = provider.info();
    let mut out = anstream::stdout();
    let _ = writeln!(out, "{BOLD}{}{BOLD:#} {} ({})", info.display_name, info.version, info.id);
    let mut table = output::table(&["", ""]);
    let optional = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".into());
    let rows: Vec<(&str, String)> = vec![
        ("source", origin_text(provider.origin())),
        ("contract", provider.contract().package()),
        ("issuer", optional(&flow.endpoints.issuer)),
        ("authorization", or_catalog(&flow.endpoints.authorization)),
        ("token", or_catalog(&flow.endpoints.token)),
        ("refresh", optional(&flow.endpoints.refresh)),
        ("revocation", flow.endpoints.revocation.as_ref().map(|r| format!("{} ({})", r.url, r.client_auth)).unwrap_or_else(|| "-".into())),
        ("device authorization", optional(&flow.endpoints.device_authorization)),
        ("client auth", flow.client_auth.to_string()),
        ("pkce", flow.pkce.to_string()),
        ("scope separator", format!("{:?}", flow.scope_separator)),
        ("refresh tokens", flow.refresh.to_string()),
        (
            "refreshed",
            match flow.refresh_ahead {
                Some(seconds) => format!("{seconds} s before expiry"),
                None => "60 s before expiry (the default)".into(),
            },
        ),
        ("redirect", flow.redirect.to_string()),
        (
            "authorization URL",
            match &authorize {
                Ok(params) => params.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join(" "),
                Err(refusal) => refusal.clone(),
            } + &format!(" (for scopes {})", SAMPLE_SCOPES.join(", ")),
        ),
        ("sends resource", if flow.send_resource { "yes" } else { "no (RFC 8707 resource is omitted)" }.to_string()),
        ("issuers", if info.issuers.is_empty() { "-".into() } else { info.issuers.join(", ") }),
        ("may contact", contacted_text(&flow)),
        ("documentation", if info.documentation.is_empty() { "-".into() } else { info.documentation.clone() }),
    ];
    for (name, value) in rows {
        table.add_row(vec![name.to_string(), value]);
    }
    output::print_table(&table);
    if !info.config_keys.is_empty() {
        let _ = writeln!(out, "\n{BOLD}config keys{BOLD:#} (set under oauth.providers[].config in the catalog)");
        let mut keys = output::table(&["KEY", "DEFAULT", "DESCRIPTION"]);
        for key in &info.config_keys {
            keys.add_row(vec![key.name.clone(), key.default.clone().unwrap_or_else(|| "-".into()), key.description.clone()]);
        }
        output::print_table(&keys);
    }
    Ok(())
}

/// The origins the host sends requests to for this provider, as `inspect` and `install` show them.
fn contacted_text(flow: &Flow) -> String {
    let origins = request_origins(flow);
    let catalog = "the token endpoint's origin in the catalog's server_metadata";
    if origins.is_empty() { format!("only {catalog}") } else { format!("{} (or {catalog}, which replaces them)", origins.join(", ")) }
}

fn or_catalog(endpoint: &str) -> String {
    if endpoint.is_empty() { "from the catalog or discovery".into() } else { endpoint.to_string() }
}

/// Scopes to show a provider's authorization parameters with: two, so that the separator shows.
pub const SAMPLE_SCOPES: [&str; 2] = ["scope-a", "scope-b"];

/// The provider's `authorize-params` for [`SAMPLE_SCOPES`] and `config`, or why it refused.
fn sample_authorize_params(provider: &Provider, config: &plugins::Params) -> Result<plugins::Params, String> {
    let scopes: Vec<String> = SAMPLE_SCOPES.iter().map(|scope| scope.to_string()).collect();
    provider.authorize_params(&scopes, config).map_err(|error| error.to_string())
}

/// What names a provider and its component in `--json` output: all of `provider ls`, the start of
/// `provider inspect`.
fn identity(provider: &Provider) -> serde_json::Value {
    let info = provider.info();
    json!({
        "id": info.id,
        "display_name": info.display_name,
        "version": info.version,
        "origin": provider.origin(),
        "sha256": provider.sha256(),
        "issuers": info.issuers,
        "contract": provider.contract().version(),
    })
}

/// The `--json` shape of a provider, its default flow, and the parameters its `authorize-params`
/// returns for [`SAMPLE_SCOPES`].
pub fn describe(provider: &Provider, flow: &Flow, authorize: &Result<plugins::Params, String>) -> serde_json::Value {
    let info = provider.info();
    let mut described = identity(provider);
    described["documentation"] = json!(info.documentation);
    described["config_keys"] =
        info.config_keys.iter().map(|key| json!({"name": key.name, "description": key.description, "default": key.default})).collect();
    described["flow"] = json!({
        "endpoints": {
            "issuer": flow.endpoints.issuer,
            "authorization": flow.endpoints.authorization,
            "token": flow.endpoints.token,
            "refresh": flow.endpoints.refresh,
            "revocation": flow.endpoints.revocation.as_ref().map(|r| json!({"url": r.url, "client_auth": r.client_auth.to_string()})),
            "userinfo": flow.endpoints.userinfo,
            "device_authorization": flow.endpoints.device_authorization,
        },
        "scope_separator": flow.scope_separator,
        "pkce": flow.pkce.to_string(),
        "client_auth": flow.client_auth.to_string(),
        "refresh": flow.refresh.to_string(),
        "redirect": flow.redirect.to_string(),
        "send_resource": flow.send_resource,
        "refresh_ahead": flow.refresh_ahead,
        "request_origins": request_origins(flow),
    });
    described["authorize"] = match authorize {
        Ok(params) => {
            json!({"scopes": SAMPLE_SCOPES, "params": params.iter().map(|(name, value)| json!([name, value])).collect::<Vec<_>>()})
        }
        Err(refusal) => json!({"scopes": SAMPLE_SCOPES, "error": refusal}),
    };
    described
}

/// A component file, loaded and checked as the registry would load a drop-in, with its bytes; the
/// outer error means the command could not run, the inner one that the component is not usable.
fn load_component(paths: &Paths, file: &Path) -> Result<Result<(Provider, Vec<u8>), PluginError>, Failure> {
    let runtime = Runtime::new(Some(paths.compiled_dir()), plugins::Limits::default())?;
    let origin = Origin::File(file.to_path_buf());
    Ok(std::fs::read(file)
        .map_err(|error| PluginError::new(&origin, plugins::Problem::Unreadable(error)))
        .and_then(|bytes| Provider::load(&runtime, origin, &bytes).map(|provider| (provider, bytes))))
}

/// Say why a component is not usable, and end with exit code 3.
fn invalid(file: &Path, error: &PluginError, as_json: bool) -> Failure {
    if as_json {
        output::json(&json!({"ok": false, "file": file, "error": error.problem.to_string()}));
    } else {
        let _ = writeln!(anstream::stderr(), "{RED}invalid{RED:#}: {error}");
    }
    Failure::Invalid
}

fn verify(paths: &Paths, file: PathBuf, as_json: bool) -> Result<(), Failure> {
    let (provider, bytes) = load_component(paths, &file)?.map_err(|error| invalid(&file, &error, as_json))?;
    let info = provider.info();
    let contract = provider.contract().package();
    if as_json {
        output::json(
            &json!({"ok": true, "file": file, "id": info.id, "version": info.version, "bytes": bytes.len(), "sha256": provider.sha256(), "contract": contract}),
        );
    } else {
        let _ = writeln!(
            anstream::stdout(),
            "{GREEN}ok{GREEN:#}: {} is provider `{}` {} ({} KiB, {contract})",
            file.display(),
            info.id,
            info.version,
            bytes.len().div_ceil(1024),
        );
    }
    Ok(())
}

fn scaffold(name: &str, path: Option<PathBuf>, sdk_path: Option<&Path>) -> Result<(), Failure> {
    let dir = path.unwrap_or_else(|| PathBuf::from(name));
    let sdk = SdkSource::locate(sdk_path)?;
    let created = scaffold::create(name, &dir, &sdk)?;
    let sdk_text = match &sdk {
        SdkSource::Path(sdk_dir) => sdk_dir.display().to_string(),
        SdkSource::Git { url, tag } => format!("{url} at {tag}"),
    };
    let mut out = anstream::stdout();
    let _ = writeln!(out, "{GREEN}Created{GREEN:#} provider `{name}` in {} (SDK: {sdk_text}):", created.dir.display());
    for file in &created.files {
        let _ = writeln!(out, "  {}", file.strip_prefix(&created.dir).unwrap_or(file).display());
    }
    let artefact = created.artefact.display();
    let _ = writeln!(
        out,
        "\nNext:\n  cd {}\n  cargo build --target wasm32-wasip2 --release\n  latchkey provider test {artefact} --vectors vectors\n  latchkey provider install {artefact}",
        created.dir.display()
    );
    Ok(())
}

fn test(paths: &Paths, file: &Path, vectors_dir: &Path, as_json: bool) -> Result<(), Failure> {
    let (provider, _) = load_component(paths, file)?.map_err(|error| invalid(file, &error, as_json))?;
    let vectors = vectors::load_dir(vectors_dir).map_err(|error| {
        let hint = if vectors_dir.is_dir() { "" } else { " (give the folder of *.json vectors with --vectors <dir>)" };
        anyhow::anyhow!("{error}{hint}")
    })?;
    let outcomes: Vec<Outcome> = vectors.iter().map(|vector| vector.run(&provider)).collect();
    let failed = outcomes.iter().filter(|outcome| !outcome.passed()).count();
    let info = provider.info();
    if as_json {
        let results: Vec<_> = outcomes
            .iter()
            .map(|outcome| {
                json!({
                    "file": outcome.file,
                    "name": outcome.name,
                    "source": outcome.source,
                    "passed": outcome.passed(),
                    "mismatches": outcome.mismatches.iter().map(|m| json!({"path": m.path, "expected": m.expected, "actual": m.actual})).collect::<Vec<_>>(),
                    "hook_error": outcome.hook_error,
                })
            })
            .collect();
        output::json(
            &json!({"ok": failed == 0, "file": file, "id": info.id, "version": info.version, "passed": outcomes.len() - failed, "failed": failed, "vectors": results}),
        );
    } else {
        let mut out = anstream::stdout();
        for outcome in &outcomes {
            let _ = write!(out, "{outcome}");
        }
        let style = if failed == 0 { GREEN } else { RED };
        let _ = writeln!(
            out,
            "{style}{} of {} vectors passed{style:#} for provider `{}` {} ({})",
            outcomes.len() - failed,
            outcomes.len(),
            info.id,
            info.version,
            file.display()
        );
    }
    if failed == 0 { Ok(()) } else { Err(Failure::Invalid) }
}

fn install(paths: &Paths, file: &Path, replace: bool) -> Result<(), Failure> {
    let (provider, bytes) = load_component(paths, file)?.map_err(|error| invalid(file, &error, false))?;
    let (id, version) = (provider.id(), &provider.info().version);
    let (runtime, registry) = plugins::load(paths)?;
    let built_in = Registry::load(&runtime, None).get(id).ok().cloned();
    if built_in.is_some() && !replace {
        return Err(anyhow::anyhow!(
            "{} is provider `{id}`, the id of a built-in provider, and nothing was installed: a drop-in replaces a built-in \
             only when asked to. To replace the built-in `{id}` with this file, run `latchkey provider install --replace {}`; \
             otherwise give the provider another id",
            file.display(),
            file.display()
        )
        .into());
    }
    let existing = registry.get(id).ok();
    // Replace the drop-in that has this id now, whatever its file is called: two files with one
    // id would make the second fail to load.
    let target = match existing.map(Provider::origin) {
        Some(Origin::File(path)) => path.clone(),
        _ => paths.providers_dir().join(format!("{id}.wasm")),
    };
    crate::paths::create_private_dir(&paths.providers_dir())?;
    if built_in.is_some() {
        // Recorded before the file lands, so that a watching gateway that sees the file allows it.
        Replacements::allow(&paths.providers_dir(), id, provider.sha256())?;
    }
    // A hidden temporary file renamed into place: the registry and the gateway's watcher skip
    // hidden files, so they never see a half-written component.
    crate::paths::write_private_atomically(&target, &bytes)?;
    let mut out = anstream::stdout();
    let _ = match (&built_in, existing.filter(|previous| matches!(previous.origin(), Origin::File(_)))) {
        (Some(built_in), _) => writeln!(
            out,
            "{GREEN}Installed{GREEN:#} `{id}` {version} as {}; it replaces the built-in `{id}` {} (sha256 {} recorded in {}; \
             `latchkey provider remove {id}` brings the built-in back).",
            target.display(),
            built_in.info().version,
            provider.sha256(),
            Replacements::path(&paths.providers_dir()).display()
        ),
        (None, Some(previous)) => {
            writeln!(out, "{GREEN}Replaced{GREEN:#} `{id}` {} with {version} in {}.", previous.info().version, target.display())
        }
        (None, None) => writeln!(out, "{GREEN}Installed{GREEN:#} `{id}` {version} as {}.", target.display()),
    };
    let contacted = match provider.resolve_config(&[]).and_then(|config| provider.configure(&config)) {
        Ok(flow) => contacted_text(&flow),
        Err(_) => format!("depends on its configuration (`latchkey provider inspect {id} --config KEY=VALUE` shows them)"),
    };
    let _ = writeln!(out, "It may send requests to: {contacted}.");
    let _ = writeln!(out, "A running gateway picks it up without a restart; catalog entries use it with `provider: {id}`.");
    Ok(())
}

fn remove(paths: &Paths, id: &str) -> Result<(), Failure> {
    let (runtime, registry) = plugins::load(paths)?;
    let mut out = anstream::stdout();
    // A drop-in that does not load has no provider to go by: one that would replace the built-in
    // `id`, or one whose file name is the id.
    let named = paths.providers_dir().join(format!("{id}.wasm"));
    let unloaded = registry.failures().into_iter().find_map(|failure| match (&failure.origin, &failure.problem) {
        (Origin::File(file), Problem::ReplacesBuiltIn { id: claimed, .. }) if claimed == id => Some(file.clone()),
        (Origin::File(file), _) if *file == named && registry.get(id).is_err() => Some(file.clone()),
        _ => None,
    });
    if let Some(file) = unloaded {
        std::fs::remove_file(&file).with_context(|| format!("cannot remove {}", file.display()))?;
        let _ = writeln!(out, "{GREEN}Removed{GREEN:#} {}, which did not load.", file.display());
        return Ok(());
    }
    let provider = registry.get(id)?;
    let Origin::File(file) = provider.origin() else {
        return Err(anyhow::anyhow!(
            "`{id}` is built into latchkey and cannot be removed; to change it, replace it with a provider that has the id \
             `{id}`: `latchkey provider install --replace <file.wasm>`"
        )
        .into());
    };
    std::fs::remove_file(file).with_context(|| format!("cannot remove {}", file.display()))?;
    let _ = write!(out, "{GREEN}Removed{GREEN:#} `{id}` {} ({}).", provider.info().version, file.display());
    match Registry::load(&runtime, None).get(id) {
        Ok(built_in) => {
            Replacements::forget(&paths.providers_dir(), id)?;
            writeln!(out, " The built-in `{id}` {} is used again.", built_in.info().version)
        }
        Err(_) => writeln!(out),
    }
    .ok();
    Ok(())
}
