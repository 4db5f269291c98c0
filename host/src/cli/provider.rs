//! `latchkey provider ls | inspect | verify`.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;

use super::Failure;
use super::output::{self, BOLD, GREEN, RED};
use crate::paths::Paths;
use crate::plugins::{self, Flow, Origin, Provider, Runtime};

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
}

pub fn run(command: ProviderCommand) -> Result<(), Failure> {
    let paths = Paths::discover()?;
    match command {
        ProviderCommand::Ls { json } => list(&paths, json),
        ProviderCommand::Inspect { id, json } => inspect(&paths, &id, json),
        ProviderCommand::Verify { file, json } => verify(&paths, file, json),
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
        let providers: Vec<_> = registry
            .providers()
            .map(|provider| {
                let info = provider.info();
                json!({
                    "id": info.id,
                    "display_name": info.display_name,
                    "version": info.version,
                    "origin": provider.origin(),
                    "sha256": provider.sha256(),
                    "issuers": info.issuers,
                })
            })
            .collect();
        let failures: Vec<_> = registry
            .failures()
            .iter()
            .map(|failure| json!({"origin": failure.origin, "error": failure.problem.to_string()}))
            .collect();
        output::json(&json!({"providers": providers, "notices": registry.notices(), "failures": failures}));
        return Ok(());
    }
    let mut table = output::table(&["ID", "NAME", "VERSION", "SOURCE"]);
    for provider in registry.providers() {
        let info = provider.info();
        table.add_row(vec![info.id.clone(), info.display_name.clone(), info.version.clone(), origin_text(provider.origin())]);
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

fn inspect(paths: &Paths, id: &str, as_json: bool) -> Result<(), Failure> {
    let (_runtime, registry) = plugins::load(paths)?;
    let provider = registry.get(id)?;
    let config = provider.resolve_config(&[])?;
    let flow = provider.configure(&config)?;
    if as_json {
        output::json(&describe(provider, &flow));
        return Ok(());
    }
    let info = provider.info();
    let mut out = anstream::stdout();
    use std::io::Write;
    let _ = writeln!(out, "{BOLD}{}{BOLD:#} {} ({})", info.display_name, info.version, info.id);
    let mut table = output::table(&["", ""]);
    let optional = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".into());
    let rows: Vec<(&str, String)> = vec![
        ("source", origin_text(provider.origin())),
        ("issuer", optional(&flow.endpoints.issuer)),
        ("authorization", or_catalog(&flow.endpoints.authorization)),
        ("token", or_catalog(&flow.endpoints.token)),
        ("refresh", optional(&flow.endpoints.refresh)),
        (
            "revocation",
            flow.endpoints.revocation.as_ref().map(|r| format!("{} ({})", r.url, r.client_auth)).unwrap_or_else(|| "-".into()),
        ),
        ("client auth", flow.client_auth.to_string()),
        ("pkce", flow.pkce.to_string()),
        ("scope separator", format!("{:?}", flow.scope_separator)),
        ("refresh tokens", flow.refresh.to_string()),
        ("redirect", flow.redirect.to_string()),
        ("sends resource", if flow.send_resource { "yes" } else { "no (RFC 8707 resource is omitted)" }.to_string()),
        ("issuers", if info.issuers.is_empty() { "-".into() } else { info.issuers.join(", ") }),
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

fn or_catalog(endpoint: &str) -> String {
    if endpoint.is_empty() { "from the catalog or discovery".into() } else { endpoint.to_string() }
}

/// The `--json` shape of a provider and its default flow.
pub fn describe(provider: &Provider, flow: &Flow) -> serde_json::Value {
    let info = provider.info();
    json!({
        "id": info.id,
        "display_name": info.display_name,
        "version": info.version,
        "origin": provider.origin(),
        "sha256": provider.sha256(),
        "issuers": info.issuers,
        "documentation": info.documentation,
        "config_keys": info.config_keys.iter().map(|key| json!({"name": key.name, "description": key.description, "default": key.default})).collect::<Vec<_>>(),
        "flow": {
            "endpoints": {
                "issuer": flow.endpoints.issuer,
                "authorization": flow.endpoints.authorization,
                "token": flow.endpoints.token,
                "refresh": flow.endpoints.refresh,
                "revocation": flow.endpoints.revocation.as_ref().map(|r| json!({"url": r.url, "client_auth": r.client_auth.to_string()})),
                "userinfo": flow.endpoints.userinfo,
            },
            "scope_separator": flow.scope_separator,
            "pkce": flow.pkce.to_string(),
            "client_auth": flow.client_auth.to_string(),
            "refresh": flow.refresh.to_string(),
            "redirect": flow.redirect.to_string(),
            "send_resource": flow.send_resource,
        },
    })
}

fn verify(paths: &Paths, file: PathBuf, as_json: bool) -> Result<(), Failure> {
    let runtime = Runtime::new(Some(paths.compiled_dir()), plugins::Limits::default())?;
    let origin = Origin::File(file.clone());
    let loaded = std::fs::read(&file)
        .map_err(|error| plugins::PluginError::new(&origin, plugins::Problem::Unreadable(error)))
        .and_then(|bytes| Provider::load(&runtime, origin, &bytes).map(|provider| (provider, bytes.len())));
    match loaded {
        Ok((provider, size)) => {
            let info = provider.info();
            if as_json {
                output::json(&json!({"ok": true, "file": file, "id": info.id, "version": info.version, "bytes": size, "sha256": provider.sha256(), "contract": format!("{}@{}", plugins::bindings::CONTRACT_PACKAGE, plugins::bindings::CONTRACT_VERSION)}));
            } else {
                let mut out = anstream::stdout();
                use std::io::Write;
                let _ = writeln!(
                    out,
                    "{GREEN}ok{GREEN:#}: {} is provider `{}` {} ({} KiB, {}@{})",
                    file.display(),
                    info.id,
                    info.version,
                    size.div_ceil(1024),
                    plugins::bindings::CONTRACT_PACKAGE,
                    plugins::bindings::CONTRACT_VERSION
                );
            }
            Ok(())
        }
        Err(error) => {
            if as_json {
                output::json(&json!({"ok": false, "file": file, "error": error.problem.to_string()}));
            } else {
                let mut err = anstream::stderr();
                use std::io::Write;
                let _ = writeln!(err, "{RED}invalid{RED:#}: {error}");
            }
            Err(Failure::Invalid)
        }
    }
}
