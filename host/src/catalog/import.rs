//! `latchkey catalog import`: an official MCP registry `server.json` (the schema the registry
//! publishes at static.modelcontextprotocol.io/schemas/…/server.schema.json) becomes one catalog
//! entry in Docker's format. Pure: a document's text in, the entry (and what to tell the user) out;
//! [`super::user_file`] writes it.
//!
//! What the entry runs is one of the document's packages or remotes: by default the first package
//! that speaks stdio, else the first remote; `--package <registryType>` or `--remote` choose.
//!
//! - npm: `command: [npx, -y, <identifier>@<version>]` (`--registry <url>` for another registry);
//!   PyPI: `command: [uvx, <identifier>@<version>]` (uv's documented form of an exact version);
//!   OCI: `image:` the identifier, which since the 2025-10-11 schema carries its tag, or the older
//!   `registryBaseUrl` + `identifier` + `version` joined into one reference. nuget and mcpb are
//!   refused: latchkey has no runner for them.
//! - Arguments (`runtimeArguments` before the package, `packageArguments` after it; `positional`
//!   and `named`) with a fixed `value` or `default` are written as they are; `{var}` references in
//!   a value are filled from its `variables`. An OCI package's `runtimeArguments` are `docker run`
//!   options, which latchkey does not take: they are dropped with a notice.
//! - `remotes`: `streamable-http` becomes `remote: {url, headers}`; `sse` is refused with the
//!   catalog's advice (latchkey does not speak the deprecated transport).
//! - Inputs (environment variables, headers, argument values, variables): one marked `isSecret`
//!   becomes a declared secret `{name: <server>.<variable lowercased>, env: VARIABLE}`, stored
//!   later with `latchkey secret set`; a header gets it as `${VARIABLE}`. A secret's `value` or
//!   `default` in the document is never written (a notice says it was dropped). A non-secret input
//!   with a fixed value is written; one the user must choose (required without a default, or
//!   offering `choices`) becomes Docker's per-server config: a property of the entry's `config`
//!   schema and a `{{<server>.<key>}}` placeholder where the value goes (in a header, through an
//!   `env` variable, since placeholders are filled in `env` and `command`). An optional input
//!   without a default is left out, with a notice.
//!
//! The entry is written as YAML text that [`super::parse`] reads back without a problem (a test
//! checks every mapping): scalars are double-quoted JSON strings, which YAML reads unchanged.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use serde::Deserialize;

use super::rules;

/// How to import one document.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The entry's name, instead of the last part of the registry name.
    pub name: Option<String>,
    /// Import the package of this `registryType`.
    pub package: Option<String>,
    /// Import the first Streamable HTTP remote.
    pub remote: bool,
}

/// A document turned into a catalog entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub name: String,
    /// The registry's name and version, for the comment above the entry.
    pub origin: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub run: Run,
    pub env: Vec<(String, String)>,
    pub secrets: Vec<Secret>,
    /// Properties of the entry's `config` schema.
    pub config: Vec<Property>,
    /// What was chosen, for the user: "npm package weather-mcp@1.2.0".
    pub chosen: String,
    /// The other packages and remotes the document offers, as `--package`/`--remote` name them.
    pub alternatives: Vec<String>,
    /// What the user should know: dropped values and arguments left out.
    pub notices: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Run {
    Command(Vec<String>),
    /// A container; `command`, when not empty, replaces the image's command.
    Image {
        image: String,
        command: Vec<String>,
    },
    Remote {
        url: String,
        headers: Vec<(String, String)>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Secret {
    pub name: String,
    pub env: String,
}

/// One key of Docker's per-server `config` schema.
#[derive(Clone, Debug, PartialEq)]
pub struct Property {
    pub key: String,
    /// `string`, `number` or `boolean`.
    pub kind: &'static str,
    pub description: Option<String>,
    pub choices: Vec<String>,
    pub default: Option<String>,
    pub required: bool,
}

/// A document that cannot be imported, and why.
#[derive(Debug)]
pub struct ImportError {
    pub document: String,
    /// Line and column (from 1) when the JSON itself is wrong.
    pub position: Option<(usize, usize)>,
    pub message: String,
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.position {
            Some((line, column)) => write!(f, "{}:{line}:{column}: {}", self.document, self.message),
            None => write!(f, "{}: {}", self.document, self.message),
        }
    }
}

impl std::error::Error for ImportError {}

// ---------------------------------------------------------------------------------------------
// The document, as the registry's schema defines it. Fields latchkey does not use (repository,
// icons, websiteUrl, _meta, …) are ignored, as the schema lets clients do.

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServerJson {
    name: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    packages: Vec<Package>,
    #[serde(default)]
    remotes: Vec<Transport>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Package {
    registry_type: String,
    #[serde(default)]
    registry_base_url: Option<String>,
    identifier: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    runtime_hint: Option<String>,
    /// Required by the schema; a document without one is taken to mean stdio.
    #[serde(default)]
    transport: Option<Transport>,
    #[serde(default)]
    runtime_arguments: Vec<Input>,
    #[serde(default)]
    package_arguments: Vec<Input>,
    #[serde(default)]
    environment_variables: Vec<Input>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Transport {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    headers: Vec<Input>,
    /// `{name}` references in `url`.
    #[serde(default)]
    variables: BTreeMap<String, Input>,
}

/// The schema's `Input` and everything built on it (`KeyValueInput` for environment variables
/// and headers, `PositionalArgument` and `NamedArgument`): one shape, the fields each uses.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Input {
    /// `positional` or `named`, for arguments.
    #[serde(default, rename = "type")]
    kind: Option<String>,
    /// The variable or header name, or a named argument's flag.
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    value_hint: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    is_required: bool,
    #[serde(default)]
    is_secret: bool,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    default: Option<String>,
    #[serde(default)]
    choices: Vec<String>,
    #[serde(default)]
    variables: BTreeMap<String, Input>,
}

impl Input {
    /// A value the document fixes: `value`, or a `default` when there is nothing to choose from.
    fn fixed(&self) -> Option<&str> {
        self.value.as_deref().or(self.default.as_deref().filter(|_| self.choices.is_empty()))
    }
}

// ---------------------------------------------------------------------------------------------

/// Turn the text of one `server.json` (called `document` in messages) into a catalog entry.
pub fn convert(document: &str, text: &str, options: &Options) -> Result<Entry, ImportError> {
    let error = |message: String| ImportError { document: document.to_string(), position: None, message };
    // serde would read a JSON array as the fields in order, with baffling messages.
    if !text.trim_start().starts_with('{') {
        return Err(error("this is not a JSON object; a server.json is one object, `{\"name\": …, \"packages\": […]}`".into()));
    }
    let server: ServerJson = serde_json::from_str(text).map_err(|json| {
        // serde_json's message ends with the position, which the error puts first instead.
        let full = json.to_string();
        let mut message = full.strip_suffix(&format!(" at line {} column {}", json.line(), json.column())).unwrap_or(&full).to_string();
        if text.contains("\"registry_type\"") || text.contains("\"version_detail\"") {
            message.push_str(
                "; this document uses the registry's first schema (2025-07-09, snake_case names such as `registry_type`); \
                 the registry now publishes camelCase names (`registryType`, `environmentVariables`…): update the document",
            );
        } else if json.is_data() {
            message.push_str("; see the MCP registry's server.schema.json for the fields of a server.json");
        }
        ImportError { document: document.to_string(), position: Some((json.line(), json.column())), message }
    })?;
    let name = match &options.name {
        Some(name) => name.clone(),
        None => server.name.rsplit('/').next().unwrap_or(&server.name).to_string(),
    };
    rules::server_name(&name).map_err(|message| {
        error(format!("the entry's name comes from `name: {}`: {message}; choose one with `--name <name>`", server.name))
    })?;
    let mut builder = Builder { server: name.clone(), env: Vec::new(), secrets: Vec::new(), config: Vec::new(), notices: Vec::new() };
    let (run, chosen, alternatives) = choose(&server, options, &mut builder).map_err(error)?;
    Ok(Entry {
        name,
        origin: format!("{}{}", server.name, server.version.as_ref().map(|version| format!(" {version}")).unwrap_or_default()),
        title: server.title,
        description: server.description,
        run,
        env: builder.env,
        secrets: builder.secrets,
        config: builder.config,
        chosen,
        alternatives,
        notices: builder.notices,
    })
}

/// The documents at `path`: the file itself, or in a folder every `*.json` file and every
/// `<folder>/server.json` one level down (the layout of a checkout of many servers), by name.
pub fn read_documents(path: &Path) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let read = |file: &Path| std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()));
    if !path.is_dir() {
        return Ok(vec![(path.to_path_buf(), read(path)?)]);
    }
    let mut files = crate::paths::visible_files(path, &["json"]);
    let entries = std::fs::read_dir(path).with_context(|| format!("cannot read the folder {}", path.display()))?;
    files.extend(entries.filter_map(|entry| Some(entry.ok()?.path().join("server.json"))).filter(|file| file.is_file()));
    files.sort();
    if files.is_empty() {
        anyhow::bail!("{} holds no `*.json` file (nor `<folder>/server.json`); give a server.json or a folder of them", path.display());
    }
    files.iter().map(|file| Ok((file.clone(), read(file)?))).collect()
}

/// The registry types latchkey runs.
const RUNNABLE: &[&str] = &["npm", "pypi", "oci"];

/// What `--package` calls a package.
fn package_label(package: &Package) -> String {
    package.registry_type.clone()
}

fn is_stdio(transport: Option<&Transport>) -> bool {
    transport.is_none_or(|transport| transport.kind == "stdio")
}

/// Pick the package or remote to import, and build the entry's way of running from it.
fn choose(server: &ServerJson, options: &Options, builder: &mut Builder) -> Result<(Run, String, Vec<String>), String> {
    let offered = || {
        let mut offered: Vec<String> = server.packages.iter().map(package_label).collect();
        if !server.remotes.is_empty() {
            offered.push("remote (--remote)".into());
        }
        if offered.is_empty() { "nothing".to_string() } else { offered.join(", ") }
    };
    if options.remote && options.package.is_some() {
        return Err("`--remote` and `--package` each choose what to import; give one".into());
    }
    let package = if options.remote {
        None
    } else if let Some(wanted) = &options.package {
        let index = server
            .packages
            .iter()
            .position(|package| package.registry_type.eq_ignore_ascii_case(wanted))
            .ok_or_else(|| format!("there is no `{wanted}` package; the document offers {}", offered()))?;
        Some(index)
    } else {
        // The first package latchkey can run, else a remote, else the first package (whose
        // refusal then says why).
        let runnable = |package: &Package| RUNNABLE.contains(&package.registry_type.as_str()) && is_stdio(package.transport.as_ref());
        server.packages.iter().position(runnable).or(if server.remotes.is_empty() {
            (!server.packages.is_empty()).then_some(0)
        } else {
            None
        })
    };
    let mut alternatives: Vec<String> = Vec::new();
    let (run, chosen) = match package {
        Some(index) => {
            let package = &server.packages[index];
            alternatives.extend(server.packages.iter().enumerate().filter(|(other, _)| *other != index).map(|(_, p)| package_label(p)));
            alternatives.extend((!server.remotes.is_empty()).then(|| "remote".to_string()));
            builder.package(package, &format!("packages[{index}]"))?
        }
        None => {
            if server.remotes.is_empty() {
                return Err(format!(
                    "the document has neither `packages` nor `remotes`, so there is nothing to run; the document offers {}",
                    offered()
                ));
            }
            let index = server.remotes.iter().position(|remote| remote.kind == "streamable-http").unwrap_or(0);
            alternatives.extend(server.packages.iter().map(package_label));
            builder.remote(&server.remotes[index], &format!("remotes[{index}]"))?
        }
    };
    Ok((run, chosen, alternatives))
}

/// Where an input's value goes, which decides what a secret or a placeholder can be there.
#[derive(Clone, Copy, PartialEq)]
enum Place {
    Command,
    Env,
    Header,
    Url,
}

/// The parts of the entry collected while reading the chosen package or remote.
struct Builder {
    server: String,
    env: Vec<(String, String)>,
    secrets: Vec<Secret>,
    config: Vec<Property>,
    notices: Vec<String>,
}

const NPM_REGISTRY: &str = "https://registry.npmjs.org";
const PYPI: &str = "https://pypi.org";

impl Builder {
    fn package(&mut self, package: &Package, field: &str) -> Result<(Run, String), String> {
        let kind = package.registry_type.as_str();
        if let Some(transport) = &package.transport
            && transport.kind != "stdio"
        {
            return Err(format!(
                "`{field}.transport.type` is `{}`: latchkey runs a local package over stdio only; import the server's \
                 `remotes` with `--remote` if it has one, or choose another package with `--package <registryType>`",
                transport.kind
            ));
        }
        let version = || {
            package.version.as_deref().filter(|version| !version.is_empty() && *version != "latest").ok_or_else(|| {
                format!(
                    "`{field}.version` is missing (or `latest`): an {kind} package runs at the exact version the document \
                     names; add it to the document"
                )
            })
        };
        let expected_hint = match kind {
            "npm" => "npx",
            "pypi" => "uvx",
            "oci" => "docker",
            "nuget" | "mcpb" => {
                return Err(format!(
                    "`{field}.registryType` is `{kind}`, which latchkey cannot run (it runs npm packages with npx, PyPI \
                     packages with uvx and OCI images with Docker); choose another package with `--package`, or write \
                     the entry by hand with `command:`"
                ));
            }
            other => {
                return Err(format!(
                    "`{field}.registryType` is `{other}`, which is not a registry type of the schema (npm, pypi, oci, \
                     nuget, mcpb); choose another package with `--package`"
                ));
            }
        };
        if let Some(hint) = &package.runtime_hint
            && hint != expected_hint
        {
            self.notices.push(format!("`{field}.runtimeHint` is `{hint}`; latchkey runs {kind} packages with `{expected_hint}`"));
        }
        let base_url = package.registry_base_url.as_deref().map(|url| url.trim_end_matches('/'));
        let mut arguments = Vec::new();
        for (index, argument) in package.package_arguments.iter().enumerate() {
            arguments.extend(self.argument(argument, &format!("{field}.packageArguments[{index}]"))?);
        }
        let mut runtime = Vec::new();
        if kind == "oci" {
            if !package.runtime_arguments.is_empty() {
                let dropped: Vec<String> =
                    package.runtime_arguments.iter().filter_map(|argument| argument.name.clone().or(argument.value_hint.clone())).collect();
                self.notices.push(format!(
                    "`{field}.runtimeArguments` ({}) are `docker run` options, which latchkey does not take: it starts \
                     containers itself, without a network unless the entry sets `network:`; add what the server needs \
                     to the entry (`network`, `env`) by hand",
                    dropped.join(", ")
                ));
            }
        } else {
            for (index, argument) in package.runtime_arguments.iter().enumerate() {
                runtime.extend(self.argument(argument, &format!("{field}.runtimeArguments[{index}]"))?);
            }
        }
        for (index, variable) in package.environment_variables.iter().enumerate() {
            self.environment_variable(variable, &format!("{field}.environmentVariables[{index}]"))?;
        }
        let identifier = package.identifier.as_str();
        Ok(match kind {
            "npm" => {
                let spec = format!("{identifier}@{}", version()?);
                let mut command = vec!["npx".to_string(), "-y".to_string()];
                if let Some(url) = base_url.filter(|url| *url != NPM_REGISTRY) {
                    command.extend(["--registry".to_string(), url.to_string()]);
                }
                command.extend(runtime);
                command.push(spec.clone());
                command.extend(arguments);
                (Run::Command(command), format!("npm package {spec}"))
            }
            "pypi" => {
                if let Some(url) = base_url.filter(|url| *url != PYPI) {
                    return Err(format!(
                        "`{field}.registryBaseUrl` is `{url}`, not PyPI: write the entry by hand with uvx's `--index` \
                         option for that index"
                    ));
                }
                let spec = format!("{identifier}@{}", version()?);
                let mut command = vec!["uvx".to_string()];
                command.extend(runtime);
                command.push(spec.clone());
                command.extend(arguments);
                (Run::Command(command), format!("PyPI package {spec}"))
            }
            _ => {
                let image = oci_reference(identifier, base_url, package.version.as_deref())
                    .map_err(|message| format!("`{field}.identifier`: {message}"))?;
                if image.contains(char::is_whitespace) || image.is_empty() {
                    return Err(format!("`{field}.identifier` `{identifier}` is not an image reference"));
                }
                if !arguments.is_empty() {
                    self.notices.push(format!(
                        "`{field}.packageArguments` become the container's `command` ({}), which replaces the image's own",
                        arguments.join(" ")
                    ));
                }
                let chosen = format!("OCI image {image}");
                (Run::Image { image, command: arguments }, chosen)
            }
        })
    }

    fn remote(&mut self, remote: &Transport, field: &str) -> Result<(Run, String), String> {
        match remote.kind.as_str() {
            "streamable-http" => {}
            "sse" => {
                return Err(format!(
                    "`{field}.type` is `sse`, the deprecated HTTP+SSE transport, which latchkey does not speak; if the \
                     server also offers Streamable HTTP (often at `/mcp` where SSE is at `/sse`), import a document that \
                     lists it as `streamable-http`, otherwise leave this server out of latchkey's catalogs"
                ));
            }
            other => {
                return Err(format!("`{field}.type` is `{other}`; a remote is `streamable-http` (or the deprecated `sse`)"));
            }
        }
        let template = remote.url.as_deref().ok_or_else(|| format!("`{field}.url` is missing"))?;
        let url = self.fill(template, &remote.variables, Place::Url, &format!("{field}.url"))?;
        rules::endpoint(&url).map_err(|message| format!("`{field}.url`: {message}"))?;
        let mut headers = Vec::new();
        for (index, header) in remote.headers.iter().enumerate() {
            let header_field = format!("{field}.headers[{index}]");
            let name = header.name.clone().ok_or_else(|| format!("`{header_field}.name` is missing"))?;
            if let Some(value) = self.header(&name, header, &header_field)? {
                headers.push((name, value));
            }
        }
        Ok((Run::Remote { url: url.clone(), headers }, format!("remote {url}")))
    }

    /// A header's value, with `${VAR}` for its secret or configured parts; `None` to leave it out.
    fn header(&mut self, name: &str, header: &Input, field: &str) -> Result<Option<String>, String> {
        let variable = env_variable(name);
        if header.is_secret {
            // A template such as `Bearer {token}` keeps its text; its variables are the secrets.
            if let Some(template) = header.value.as_deref().filter(|value| !header.variables.is_empty() && value.contains('{')) {
                return self.fill(template, &header.variables, Place::Header, field).map(Some);
            }
            self.drop_secret_value(header, field);
            return Ok(Some(format!("${{{}}}", self.secret(&variable, field)?)));
        }
        self.value(header, &name.to_ascii_lowercase().replace('-', "_"), Place::Header, field)
    }

    fn environment_variable(&mut self, variable: &Input, field: &str) -> Result<(), String> {
        let name = variable.name.clone().ok_or_else(|| format!("`{field}.name` is missing"))?;
        rules::env_name(&name).map_err(|message| format!("`{field}.name`: {message}"))?;
        if variable.is_secret {
            self.drop_secret_value(variable, field);
            self.secret(&name, field)?;
            return Ok(());
        }
        if let Some(value) = self.value(variable, &name.to_ascii_lowercase(), Place::Env, field)? {
            self.set_env(name, value, field)?;
        }
        Ok(())
    }

    /// The command-line words of one argument; none for an optional one without a value.
    fn argument(&mut self, argument: &Input, field: &str) -> Result<Vec<String>, String> {
        match argument.kind.as_deref() {
            Some("positional") => {
                // Without a `valueHint` the schema requires a `value`, so the key is never used then.
                let key = argument.value_hint.as_deref().map_or_else(|| "argument".to_string(), config_key);
                Ok(self.value(argument, &key, Place::Command, field)?.into_iter().collect())
            }
            Some("named") => {
                let flag = argument
                    .name
                    .clone()
                    .ok_or_else(|| format!("`{field}.name` is missing: a named argument is a flag such as `--port`"))?;
                if argument.fixed().is_none() && argument.choices.is_empty() && argument.value_hint.is_none() && !argument.is_required {
                    // A flag without a value to give it: an option the user may add to the command.
                    self.notices.push(format!("`{field}` (`{flag}`) is optional and has no value: left out of the command"));
                    return Ok(Vec::new());
                }
                Ok(self.value(argument, &config_key(&flag), Place::Command, field)?.map(|value| vec![flag, value]).unwrap_or_default())
            }
            Some(other) => Err(format!("`{field}.type` is `{other}`; an argument is `positional` or `named`")),
            None => Err(format!("`{field}.type` is missing; an argument is `positional` or `named`")),
        }
    }

    /// The value of a non-secret input at `place`: fixed (with its `{variables}` filled), a config
    /// placeholder for a value the user chooses, or `None` for an optional input without one.
    fn value(&mut self, input: &Input, key: &str, place: Place, field: &str) -> Result<Option<String>, String> {
        if input.is_secret {
            return Err(format!(
                "`{field}` is marked secret, and latchkey gives a server its secrets only in environment variables \
                 (or remote headers); write the entry by hand with the secret under `secrets:`"
            ));
        }
        if let Some(fixed) = input.fixed() {
            return self.fill(fixed, &input.variables, place, field).map(Some);
        }
        if !input.is_required && input.choices.is_empty() && input.default.is_none() {
            self.notices.push(format!("`{field}` is optional and has no default: left out"));
            return Ok(None);
        }
        self.configured(input, key, place, field).map(Some)
    }

    /// A value the user sets with `latchkey config set <server>.<key>`: a property of the entry's
    /// config schema, and its placeholder (in a header, a variable that holds it).
    fn configured(&mut self, input: &Input, key: &str, place: Place, field: &str) -> Result<String, String> {
        let placeholder = format!("{{{{{}.{key}}}}}", self.server);
        if place == Place::Url {
            return Err(format!(
                "`{field}` needs a value for `{key}`{}, which has no default; latchkey fills configured values in \
                 `env` and `command` only, so add a `default` to the document's variable and import it again",
                input.description.as_deref().map(|text| format!(" ({text})")).unwrap_or_default()
            ));
        }
        if !self.config.iter().any(|property| property.key == key) {
            self.config.push(Property {
                key: key.to_string(),
                kind: match input.format.as_deref() {
                    Some("number") => "number",
                    Some("boolean") => "boolean",
                    _ => "string",
                },
                description: input.description.clone(),
                choices: input.choices.clone(),
                default: input.default.clone(),
                required: input.is_required || input.default.is_none(),
            });
        }
        if place == Place::Header {
            let variable = env_variable(key);
            self.set_env(variable.clone(), placeholder, field)?;
            return Ok(format!("${{{variable}}}"));
        }
        Ok(placeholder)
    }

    /// `template` with its `{name}` references to `variables` filled in for `place`; other text
    /// is kept (a `$` in a header doubled, as the catalog writes a literal `$`).
    fn fill(&mut self, template: &str, variables: &BTreeMap<String, Input>, place: Place, field: &str) -> Result<String, String> {
        let literal = |text: &str| if place == Place::Header { text.replace('$', "$$") } else { text.to_string() };
        let mut filled = String::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            let Some(length) = rest[open..].find('}') else { break };
            let name = &rest[open + 1..open + length];
            filled.push_str(&literal(&rest[..open]));
            match variables.get(name) {
                // The schema: a reference to no variable stays as written.
                None => filled.push_str(&literal(&rest[open..=open + length])),
                Some(variable) => {
                    let variable_field = format!("{field} variable `{name}`");
                    if variable.is_secret {
                        if place != Place::Header {
                            return Err(format!(
                                "{variable_field} is marked secret, and latchkey gives a server its secrets only in \
                                 environment variables (or remote headers); write the entry by hand"
                            ));
                        }
                        self.drop_secret_value(variable, &variable_field);
                        filled.push_str(&format!("${{{}}}", self.secret(&env_variable(name), &variable_field)?));
                    } else {
                        match variable.fixed() {
                            Some(value) => filled.push_str(&literal(value)),
                            None => filled.push_str(&self.configured(variable, &config_key(name), place, &variable_field)?),
                        }
                    }
                }
            }
            rest = &rest[open + length + 1..];
        }
        filled.push_str(&literal(rest));
        Ok(filled)
    }

    /// Declare the secret that fills variable `env`; its name is `<server>.<env lowercased>`.
    fn secret(&mut self, env: &str, field: &str) -> Result<String, String> {
        rules::env_name(env).map_err(|message| format!("`{field}`: {message}"))?;
        let name = format!("{}.{}", self.server, env.to_ascii_lowercase());
        rules::secret_name(&name).map_err(|message| format!("`{field}`: {message}"))?;
        if !self.secrets.iter().any(|secret| secret.name == name) {
            self.check_variable_free(env, field)?;
            self.secrets.push(Secret { name, env: env.to_string() });
        }
        Ok(env.to_string())
    }

    fn set_env(&mut self, name: String, value: String, field: &str) -> Result<(), String> {
        self.check_variable_free(&name, field)?;
        self.env.push((name, value));
        Ok(())
    }

    /// Each variable is set once, by `env` or by a secret.
    fn check_variable_free(&self, name: &str, field: &str) -> Result<(), String> {
        if self.env.iter().any(|(set, _)| set == name) || self.secrets.iter().any(|secret| secret.env == name) {
            return Err(format!(
                "`{field}` sets the variable `{name}`, which another input of the document sets too; write the entry by hand"
            ));
        }
        Ok(())
    }

    fn drop_secret_value(&mut self, input: &Input, field: &str) {
        if input.value.is_some() || input.default.is_some() {
            self.notices.push(format!(
                "`{field}` is marked secret and carries a value in the document: the value is not written into the \
                 catalog; store the secret with `latchkey secret set`"
            ));
        }
    }
}

/// An image reference from the package: the identifier when it names a tag or digest (the schema
/// since 2025-10-11), else the identifier and `version` (the earlier schema), on the registry of
/// `registryBaseUrl` when it is not Docker Hub and the identifier names no registry itself.
fn oci_reference(identifier: &str, base_url: Option<&str>, version: Option<&str>) -> Result<String, String> {
    let last = identifier.rsplit('/').next().unwrap_or(identifier);
    let mut reference = identifier.to_string();
    if !(last.contains(':') || identifier.contains('@')) {
        let version = version.filter(|version| !version.is_empty()).ok_or_else(|| {
            format!("`{identifier}` names no tag or digest, and the package has no `version`; name the published tag, such as `{identifier}:1.2.3`")
        })?;
        reference = format!("{reference}:{version}");
    }
    let first = identifier.split('/').next().unwrap_or_default();
    let names_registry = identifier.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let host = base_url.and_then(|url| url::Url::parse(url).ok()).and_then(|url| {
        let host = url.host_str()?.to_string();
        Some(match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host,
        })
    });
    if let Some(host) = host.filter(|host| !names_registry && !DOCKER_HUB.contains(&host.as_str())) {
        reference = format!("{host}/{reference}");
    }
    Ok(reference)
}

/// Docker Hub's names, the registry an image reference without one means.
const DOCKER_HUB: &[&str] = &["docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com", "hub.docker.com"];

/// The environment variable for a header or variable name: `X-API-Key` → `X_API_KEY`.
fn env_variable(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect()
}

/// A config key for an input: `--log-level` → `log_level`.
fn config_key(name: &str) -> String {
    name.trim_start_matches('-').chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect()
}

// ---------------------------------------------------------------------------------------------
// The entry as YAML

impl Entry {
    /// The entry as a catalog file's `servers:` mapping holds it, its key indented by `indent`
    /// spaces, after a comment saying where it came from (`document`).
    pub fn yaml(&self, document: &str, indent: usize) -> String {
        let pad = |level: usize| " ".repeat(indent + 2 * level);
        let mut out = String::new();
        let shown: String = document.chars().map(|c| if c.is_control() { '?' } else { c }).collect();
        let _ = writeln!(out, "{}# imported by `latchkey catalog import` from {shown} ({})", pad(0), self.origin);
        let _ = writeln!(out, "{}{}:", pad(0), self.name);
        let field = |out: &mut String, level: usize, key: &str, value: &str| {
            let _ = writeln!(out, "{}{key}: {}", pad(level), quoted(value));
        };
        if let Some(title) = &self.title {
            field(&mut out, 1, "title", title);
        }
        if let Some(description) = &self.description {
            field(&mut out, 1, "description", description);
        }
        match &self.run {
            Run::Command(command) => {
                let _ = writeln!(out, "{}command: {}", pad(1), flow(command));
            }
            Run::Image { image, command } => {
                field(&mut out, 1, "image", image);
                if !command.is_empty() {
                    let _ = writeln!(out, "{}command: {}", pad(1), flow(command));
                }
            }
            Run::Remote { url, headers } => {
                let _ = writeln!(out, "{}remote:", pad(1));
                field(&mut out, 2, "url", url);
                if !headers.is_empty() {
                    let _ = writeln!(out, "{}headers:", pad(2));
                    for (name, value) in headers {
                        let _ = writeln!(out, "{}{}: {}", pad(3), quoted(name), quoted(value));
                    }
                }
            }
        }
        if !self.env.is_empty() {
            let _ = writeln!(out, "{}env:", pad(1));
            for (name, value) in &self.env {
                let _ = writeln!(out, "{}- name: {}", pad(2), quoted(name));
                field(&mut out, 3, "value", value);
            }
        }
        if !self.secrets.is_empty() {
            let _ = writeln!(out, "{}secrets:", pad(1));
            for secret in &self.secrets {
                let _ = writeln!(out, "{}- name: {}", pad(2), quoted(&secret.name));
                field(&mut out, 3, "env", &secret.env);
            }
        }
        if !self.config.is_empty() {
            let _ = writeln!(out, "{}config:", pad(1));
            let _ = writeln!(out, "{}- name: {}", pad(2), quoted(&self.name));
            field(&mut out, 3, "description", &format!("Configuration for {}", self.name));
            field(&mut out, 3, "type", "object");
            let _ = writeln!(out, "{}properties:", pad(3));
            for property in &self.config {
                let _ = writeln!(out, "{}{}:", pad(4), quoted(&property.key));
                field(&mut out, 5, "type", property.kind);
                if let Some(description) = &property.description {
                    field(&mut out, 5, "description", description);
                }
                if !property.choices.is_empty() {
                    let _ = writeln!(out, "{}enum: {}", pad(5), flow(&property.choices));
                }
                if let Some(default) = &property.default {
                    field(&mut out, 5, "default", default);
                }
            }
            let required: Vec<String> =
                self.config.iter().filter(|property| property.required).map(|property| property.key.clone()).collect();
            if !required.is_empty() {
                let _ = writeln!(out, "{}required: {}", pad(3), flow(&required));
            }
        }
        out
    }

    /// The commands that store the entry's secrets.
    pub fn secret_commands(&self) -> Vec<String> {
        self.secrets.iter().map(|secret| format!("latchkey secret set {}", secret.name)).collect()
    }

    /// The commands that set the entry's required configuration.
    pub fn config_commands(&self) -> Vec<String> {
        self.config
            .iter()
            .filter(|property| property.required)
            .map(|property| format!("latchkey config set {}.{} <value>", self.name, property.key))
            .collect()
    }
}

/// A YAML double-quoted scalar: JSON's string syntax is YAML's, escapes included.
fn quoted(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

fn flow(items: &[String]) -> String {
    format!("[{}]", items.iter().map(|item| quoted(item)).collect::<Vec<_>>().join(", "))
}

#[cfg(test)]
#[path = "import_tests.rs"]
mod tests;
