//! One catalog file: YAML to checked [`Server`]s, with every problem tied to a line.
//!
//! serde-saphyr parses the YAML; its errors carry positions, and [`Located`] values keep theirs for
//! the checks that run after parsing. A file is read twice: first for keys named `client_secret`
//! anywhere (so that one is refused with the advice to store it, not as an unknown field), then
//! into the typed entries. A structural error stops the file at the first problem, as serde must;
//! the checks that follow report every problem they find.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};

use super::keys::{self, Unknown};
use super::model::{ConfigObject, Container, EnvVar, Kind, Located, OAuth, Remote, Secret, Server, Source, Transport};
use super::{config, headers, rules};

/// What a file says and what is wrong with it.
#[derive(Debug, Default)]
pub struct Parsed {
    pub servers: Vec<Server>,
    pub registrations: Vec<RegistrationEntry>,
    pub problems: Vec<super::Problem>,
    /// What the user should know that does not stop the file (a key Docker and latchkey ignore).
    pub notices: Vec<super::Problem>,
}

/// A `registrations:` entry: a client id for a server that may be defined in another file.
#[derive(Debug)]
pub struct RegistrationEntry {
    pub server: Located<String>,
    /// Which provider of the server, when it has more than one.
    pub provider: Option<Located<String>>,
    pub client_id: Located<String>,
}

/// The top level of a catalog file. Unknown keys are not refused here but reported as notices by
/// [`keys`], as Docker ignores them.
#[derive(Deserialize)]
pub(crate) struct RawFile {
    /// Our name for the server map.
    #[serde(default)]
    servers: Entries<RawServer>,
    /// Docker's legacy name for it.
    #[serde(default)]
    registry: Entries<RawServer>,
    #[serde(default)]
    registrations: Entries<RawRegistration>,
    // Docker's catalog header: descriptive only.
    #[serde(default, rename = "name")]
    _name: Option<IgnoredAny>,
    #[serde(default, rename = "displayName")]
    _display_name: Option<IgnoredAny>,
    #[serde(default, rename = "policy")]
    _policy: Option<IgnoredAny>,
    /// The version of Docker's catalog format (2 today); the fields it adds are all known.
    #[serde(default, rename = "version")]
    _version: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRegistration {
    client_id: Located<String>,
    #[serde(default)]
    provider: Option<Located<String>>,
}

/// A server entry as written. Every field of Docker's `Server` is listed, so that a Docker catalog
/// loads (see [`Server::ignored`]); other keys are notices from [`keys`], as Docker ignores them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawServer {
    #[serde(default)]
    name: Option<Located<String>>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    image: Option<Located<String>>,
    #[serde(default)]
    command: Option<Located<Vec<String>>>,
    #[serde(default)]
    remote: Option<Located<Remote>>,
    #[serde(default)]
    env: Vec<EnvVar>,
    /// Variables a local process takes from the gateway's environment, besides the defaults.
    #[serde(default, rename = "inherit_env")]
    inherit_env: Vec<Located<String>>,
    #[serde(default)]
    secrets: Vec<Secret>,
    #[serde(default)]
    oauth: Option<Located<OAuth>>,
    #[serde(default)]
    network: Option<Located<String>>,
    #[serde(default)]
    cpus: Option<Located<f64>>,
    #[serde(default)]
    memory: Option<Located<String>>,
    /// Docker's `server | remote | poci`; checked against the entry's kind.
    #[serde(default, rename = "type")]
    docker_type: Option<Located<String>>,
    // Docker fields that change how Docker runs the server; latchkey does not act on them.
    #[serde(default)]
    volumes: Option<IgnoredAny>,
    #[serde(default)]
    user: Option<IgnoredAny>,
    #[serde(default)]
    allow_hosts: Option<IgnoredAny>,
    #[serde(default)]
    extra_hosts: Option<IgnoredAny>,
    #[serde(default)]
    disable_network: Option<IgnoredAny>,
    /// Docker's per-server configuration schema (see [`super::config`]).
    #[serde(default)]
    config: Vec<ConfigObject>,
    #[serde(default)]
    sse_endpoint: Option<IgnoredAny>,
    // Docker fields that only describe the server (or tune Docker's own container reuse).
    #[serde(default, rename = "icon")]
    _icon: Option<IgnoredAny>,
    #[serde(default, rename = "readme")]
    _readme: Option<IgnoredAny>,
    #[serde(default, rename = "metadata")]
    _metadata: Option<IgnoredAny>,
    /// Docker's tool list: names only here (a `type: poci` entry lists its tools by them).
    #[serde(default)]
    tools: Option<Vec<ToolName>>,
    #[serde(default, rename = "prefix")]
    _prefix: Option<IgnoredAny>,
    #[serde(default, rename = "policy")]
    _policy: Option<IgnoredAny>,
    #[serde(default, rename = "longLived")]
    _long_lived: Option<IgnoredAny>,
    #[serde(default, rename = "dateAdded")]
    _date_added: Option<IgnoredAny>,
    #[serde(default, rename = "upstream")]
    _upstream: Option<IgnoredAny>,
    #[serde(default, rename = "source")]
    _source: Option<IgnoredAny>,
}

impl RawServer {
    /// The Docker fields present that would change how the server runs under Docker.
    fn ignored(&self) -> Vec<String> {
        [
            ("volumes", self.volumes.is_some()),
            ("user", self.user.is_some()),
            ("allowHosts", self.allow_hosts.is_some()),
            ("extraHosts", self.extra_hosts.is_some()),
            ("disableNetwork", self.disable_network.is_some()),
            ("sseEndpoint", self.sse_endpoint.is_some()),
        ]
        .into_iter()
        .filter(|(_, present)| *present)
        .map(|(field, _)| field.to_string())
        .collect()
    }
}

/// A tool of Docker's `tools:` list, by name; the rest (a POCI tool's container and parameters) is
/// Docker's to read.
#[derive(Deserialize)]
struct ToolName {
    #[serde(default)]
    name: String,
}

/// A YAML mapping kept in file order, each key with its position. (Duplicate keys are already a
/// parse error.)
struct Entries<T>(Vec<(Located<String>, T)>);

impl<T> Default for Entries<T> {
    fn default() -> Self {
        Entries(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Entries<T> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor<T>(std::marker::PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for EntriesVisitor<T> {
            type Value = Entries<T>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of server names to entries")
            }

            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Entries::default())
            }

            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Entries::default())
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Located<String>>()? {
                    entries.push((key, map.next_value()?));
                }
                Ok(Entries(entries))
            }
        }

        // `any`, not `map`: an empty `servers:` (a null) is an empty map.
        deserializer.deserialize_any(EntriesVisitor(std::marker::PhantomData))
    }
}

/// Collects problems for one file.
struct Problems<'a> {
    source: &'a Source,
    list: Vec<super::Problem>,
}

impl Problems<'_> {
    fn at<T>(&mut self, place: &Located<T>, message: impl Into<String>) {
        self.at_position(place.line(), place.column(), message);
    }

    fn at_position(&mut self, line: u64, column: u64, message: impl Into<String>) {
        self.list.push(super::Problem { source: self.source.clone(), line, column, message: message.into() });
    }

    fn check<T>(&mut self, place: &Located<T>, result: Result<(), String>) {
        if let Err(message) = result {
            self.at(place, message);
        }
    }

    fn count(&self) -> usize {
        self.list.len()
    }
}

/// Parse and check one catalog file.
pub fn parse(source: &Source, text: &str) -> Parsed {
    let mut problems = Problems { source, list: Vec::new() };
    let mut notices = Problems { source, list: Vec::new() };
    let found = match keys::scan(text) {
        Ok(found) => found,
        Err(error) => {
            yaml_error(&mut problems, &error);
            return Parsed { problems: problems.list, ..Parsed::default() };
        }
    };
    let secrets: Vec<_> = found.iter().filter(|key| keys::is_client_secret(&key.name)).collect();
    match secrets {
        secrets if !secrets.is_empty() => {
            for key in secrets {
                let server = key.server().unwrap_or("<server>");
                problems.at_position(
                    key.line,
                    key.column,
                    format!(
                        "`{}` does not belong in a catalog: catalogs are shared, and a client secret must stay private. \
                         Remove this line and store the secret with `latchkey secret set {server}.client_secret` \
                         (the value is read from stdin)",
                        key.name
                    ),
                );
            }
            return Parsed { problems: problems.list, ..Parsed::default() };
        }
        _ => {}
    }
    for key in &found {
        match keys::unknown(key) {
            Some(Unknown::Refused(message)) => problems.at_position(key.line, key.column, message),
            Some(Unknown::Ignored(message)) => notices.at_position(key.line, key.column, message),
            None => {}
        }
    }
    // A misspelt key where spelling matters: report them all now, with their suggestions, rather
    // than the first one as serde would.
    if problems.count() > 0 {
        return Parsed { problems: problems.list, ..Parsed::default() };
    }
    let file = match serde_saphyr::from_str::<Option<RawFile>>(text) {
        Ok(Some(file)) => file,
        Ok(None) => return Parsed::default(),
        Err(error) => {
            yaml_error(&mut problems, &error);
            return Parsed { problems: problems.list, ..Parsed::default() };
        }
    };
    let mut servers = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    for (key, raw) in file.servers.0.into_iter().chain(file.registry.0) {
        if let Some(first) = seen.insert(key.to_string(), key.line()) {
            problems.at(&key, format!("server `{key}` is also defined on line {first} (under `servers:` and `registry:`); keep one"));
            continue;
        }
        if let Some(server) = check_server(source, key, raw, &mut problems, &mut notices) {
            servers.push(server);
        }
    }
    let mut registrations = Vec::new();
    for (server, raw) in file.registrations.0 {
        let before = problems.count();
        problems.check(&server, rules::server_name(&server));
        if let Some(provider) = &raw.provider {
            problems.check(provider, rules::provider_id(provider));
        }
        problems.check(&raw.client_id, client_id(&raw.client_id));
        if problems.count() == before {
            registrations.push(RegistrationEntry { server, provider: raw.provider, client_id: raw.client_id });
        }
    }
    Parsed { servers, registrations, problems: problems.list, notices: notices.list }
}

/// A serde-saphyr error as a problem: its own message, our file and line.
fn yaml_error(problems: &mut Problems, error: &serde_saphyr::Error) {
    /// Keeps serde-saphyr's wording but leaves the position to us, since we print `file:line:column`.
    struct NoPosition;
    impl serde_saphyr::Localizer for NoPosition {
        fn attach_location<'a>(&self, base: std::borrow::Cow<'a, str>, _: serde_saphyr::Location) -> std::borrow::Cow<'a, str> {
            base
        }
    }
    let formatter = serde_saphyr::UserMessageFormatter.with_localizer(&NoPosition);
    let message = error.render_with_options(serde_saphyr::render_options! {
        formatter: &formatter,
        snippets: serde_saphyr::SnippetMode::Off,
    });
    let (line, column) = error.location().map(|at| (at.line(), at.column())).unwrap_or((0, 0));
    problems.at_position(line, column, message);
}

/// Check one entry and build the [`Server`], or record why not.
fn check_server(source: &Source, key: Located<String>, raw: RawServer, problems: &mut Problems, notices: &mut Problems) -> Option<Server> {
    let before = problems.count();
    let name = key.to_string();
    problems.check(&key, rules::server_name(&name));
    if let Some(written) = &raw.name
        && written.as_str() != name
    {
        problems.at(written, format!("`name: {written}` differs from the entry's key `{name}`; the key is the server's name, so remove `name` or make it `{name}`"));
    }
    let ignored = raw.ignored();
    let kind = check_kind(&key, &raw, problems);
    check_env(&raw, problems);
    check_inherit_env(&raw, problems);
    let secrets = check_secrets(&raw.secrets, problems);
    if let (Some(oauth), Some(kind)) = (&raw.oauth, &kind)
        && !matches!(kind, Kind::Poci { .. })
    {
        check_oauth(&name, oauth, kind, &raw.secrets, problems);
    }
    check_config(&name, &raw, problems, notices);
    if problems.count() > before {
        return None;
    }
    let account = raw.oauth.as_ref().and_then(|oauth| oauth.account.as_ref()).map(|account| account.to_string());
    Some(Server {
        name,
        title: raw.title,
        description: raw.description,
        kind: kind?,
        env: raw.env,
        secrets,
        oauth: raw.oauth.map(Located::into_inner).and_then(OAuth::normalized).map(Arc::new),
        config: raw.config,
        ignored,
        source: source.clone(),
        line: key.line(),
        account,
    })
}

fn check_kind(key: &Located<String>, raw: &RawServer, problems: &mut Problems) -> Option<Kind> {
    let before = problems.count();
    if let (Some(remote), true) = (&raw.remote, raw.image.is_some() || raw.command.is_some()) {
        let other = if raw.image.is_some() { "image" } else { "command" };
        problems.at(
            remote,
            format!(
                "`{key}` has both `remote` and `{other}`: a server is a container (`image`), a local process \
                 (`command`) or a remote URL (`remote`); keep one"
            ),
        );
    }
    let poci = raw.docker_type.as_ref().is_some_and(|docker_type| docker_type.as_str() == "poci");
    if poci {
        // Docker's tool containers: the tools carry their own images; nothing else applies.
        return Some(Kind::Poci { tools: raw.tools.iter().flatten().map(|tool| tool.name.clone()).collect() });
    }
    if raw.image.is_none() && raw.command.is_none() && raw.remote.is_none() {
        let hint = if raw.sse_endpoint.is_some() {
            " (Docker's deprecated `sseEndpoint: URL` is written `remote: {url: URL, transport_type: sse}`)"
        } else {
            ""
        };
        problems.at(
            key,
            format!(
                "`{key}` says neither `image` (a container), `command` (a local process) nor `remote` (a URL); \
                 add one, e.g. `remote: {{url: https://example.com/mcp}}`{hint}"
            ),
        );
    }
    if let Some(image) = &raw.image
        && (image.trim().is_empty() || image.contains(char::is_whitespace))
    {
        problems.at(image, format!("image `{image}` is not an image reference such as `example/server:1.2`"));
    }
    if let Some(command) = &raw.command
        && command.first().is_none_or(|program| program.trim().is_empty())
    {
        problems.at(command, "`command` needs at least the program to run, e.g. `command: [npx, -y, some-mcp-server]`");
    }
    if let Some(remote) = &raw.remote {
        problems.check(&remote.url, rules::endpoint(&remote.url));
        check_remote(key, remote, raw, problems);
    }
    if let Some(docker_type) = &raw.docker_type {
        let expected = if raw.remote.is_some() { "remote" } else { "server" };
        match docker_type.as_str() {
            "server" | "remote" if docker_type.as_str() != expected => problems
                .at(docker_type, format!("`type: {docker_type}` does not match the entry, which is `{expected}`; fix or remove `type`")),
            "server" | "remote" => {}
            other => problems.at(
                docker_type,
                format!("`type: {other}` is not one of `server`, `remote` or `poci`; remove it (latchkey infers the kind)"),
            ),
        }
    }
    let container = check_container(raw, problems);
    if problems.count() > before {
        return None;
    }
    let command = raw.command.clone().map(Located::into_inner).unwrap_or_default();
    Some(match (&raw.image, &raw.remote) {
        (Some(image), _) => Kind::Image { image: image.to_string(), command, container },
        (None, Some(remote)) => Kind::Remote { remote: (**remote).clone() },
        (None, None) => Kind::Command { command, inherit_env: raw.inherit_env.iter().map(|name| name.to_string()).collect() },
    })
}

/// The transport latchkey speaks, and headers that are HTTP and name only declared variables.
fn check_remote(key: &Located<String>, remote: &Remote, raw: &RawServer, problems: &mut Problems) {
    if *remote.transport == Transport::Sse {
        problems.at(
            &remote.transport,
            format!(
                "`{key}` uses `transport_type: sse`, the deprecated HTTP+SSE transport, which latchkey does not speak; \
                 if the server also offers Streamable HTTP (often at `/mcp` where SSE is at `/sse`), point `url` there \
                 and remove `transport_type`, otherwise leave `{key}` out of latchkey's catalogs"
            ),
        );
    }
    let declared = |variable: &str| {
        raw.env.iter().any(|var| var.name.as_str() == variable)
            || raw.secrets.iter().any(|secret| secret.env.as_ref().is_some_and(|env| env.as_str() == variable))
    };
    // Header names are case-insensitive: two spellings of one would send one of them, unsaid.
    let mut seen: HashMap<String, &str> = HashMap::new();
    for (name, value) in &remote.headers {
        if let Err(message) = headers::name(name) {
            problems.at(value, message);
        }
        if let Some(first) = seen.insert(name.to_ascii_lowercase(), name) {
            problems.at(value, format!("header `{name}` is also set as `{first}` (header names ignore case); set it once"));
        }
        match headers::value(name, value) {
            Err(message) => problems.at(value, message),
            Ok(variables) => {
                for variable in variables.into_iter().filter(|variable| !declared(variable)) {
                    problems.at(
                        value,
                        format!(
                            "header `{name}` uses ${variable}, which `{key}` does not declare; add a secret \
                             `- {{name: {key}.<secret>, env: {variable}}}` (or an `env` entry) for it, or write `$$` for a literal `$`"
                        ),
                    );
                }
            }
        }
    }
}

fn check_container(raw: &RawServer, problems: &mut Problems) -> Container {
    let mut container = Container::default();
    if raw.image.is_none() {
        for (field, place) in [
            ("network", raw.network.as_ref().map(|v| (v.line(), v.column()))),
            ("cpus", raw.cpus.as_ref().map(|v| (v.line(), v.column()))),
            ("memory", raw.memory.as_ref().map(|v| (v.line(), v.column()))),
        ] {
            if let Some((line, column)) = place {
                problems.at_position(line, column, format!("`{field}` applies to containers (`image`) only; remove it"));
            }
        }
        return container;
    }
    if let Some(network) = &raw.network {
        problems.check(network, rules::network(network));
        container.network = network.to_string();
    }
    if let Some(cpus) = &raw.cpus {
        if !(cpus.is_finite() && **cpus > 0.0) {
            problems.at(cpus, format!("`cpus: {cpus}` must be a positive number, such as 1 or 0.5"));
        }
        container.cpus = Some(**cpus);
    }
    if let Some(memory) = &raw.memory {
        match rules::memory(memory) {
            Ok(bytes) => container.memory = Some(bytes),
            Err(message) => problems.at(memory, message),
        }
    }
    container
}

/// Docker's `config:` schemas, and the `{{<name>.<key>}}` placeholders in `env` and `command` that
/// read them (see [`config`]). A placeholder naming no declared setting is empty, as in Docker: a
/// notice, not a problem.
fn check_config(server: &str, raw: &RawServer, problems: &mut Problems, notices: &mut Problems) {
    for object in &raw.config {
        if object.name.trim().is_empty() {
            problems.at(
                &object.name,
                format!("this `config` object needs a `name` (usually the server's, `{server}`): its settings are set as `<name>.<key>`"),
            );
        }
        for required in &object.required {
            if !object.properties.contains_key(required.as_str()) {
                problems.at(
                    required,
                    format!(
                        "required setting `{required}` is not among the `properties` of config `{}`; add it there or remove it from `required`",
                        object.name
                    ),
                );
            }
        }
    }
    let env = raw.env.iter().map(|var| ((var.name.line(), var.name.column()), var.value.as_str()));
    let command =
        raw.command.iter().flat_map(|command| command.iter().map(|argument| ((command.line(), command.column()), argument.as_str())));
    for ((line, column), text) in env.chain(command) {
        for piece in config::pieces(text) {
            let config::Piece::Setting(placeholder) = piece else { continue };
            if config::property(&raw.config, placeholder.name, placeholder.key).is_none() {
                notices.at_position(
                    line,
                    column,
                    format!(
                        "placeholder `{{{{{}}}}}` names no setting declared under `config:`, so it is empty unless it has an `|or:` \
                         default; declare `{}` in the `config` object named `{}`",
                        placeholder.written.trim(),
                        placeholder.key,
                        placeholder.name
                    ),
                );
            }
        }
    }
}

/// `inherit_env`: variable names, for a local process only (a container or a remote server has no
/// part of the gateway's environment to inherit).
fn check_inherit_env(raw: &RawServer, problems: &mut Problems) {
    let local = raw.image.is_none() && raw.remote.is_none();
    for name in &raw.inherit_env {
        if !local {
            problems.at(name, "`inherit_env` applies to local processes (`command`) only; remove it, or set the variable under `env`");
            return;
        }
        problems.check(name, rules::env_name(name));
    }
}

fn check_env(raw: &RawServer, problems: &mut Problems) {
    let mut names: HashMap<&str, u64> = HashMap::new();
    let secret_envs = raw.secrets.iter().filter_map(|secret| secret.env.as_ref()).filter(|env| !env.is_empty());
    for name in raw.env.iter().map(|var| &var.name).chain(secret_envs) {
        problems.check(name, rules::env_name(name));
        if let Some(first) = names.insert(name.as_str(), name.line()) {
            problems.at(name, format!("environment variable `{name}` is already set on line {first}; each variable is set once"));
        }
    }
    for var in &raw.env {
        let lower = var.name.to_ascii_lowercase();
        if lower.contains("client_secret") && !var.value.is_empty() {
            problems.at(
                &var.name,
                format!(
                    "`{}` holds a client secret, which must not be written in a catalog; remove the value and store it \
                     with `latchkey secret set <server>.client_secret` (the value is read from stdin)",
                    var.name
                ),
            );
        }
    }
}

/// Check the declared secrets; Docker writes `env: ""` for "no variable", which becomes `None`.
fn check_secrets(secrets: &[Secret], problems: &mut Problems) -> Vec<Secret> {
    let mut seen: HashMap<&str, u64> = HashMap::new();
    for secret in secrets {
        problems.check(&secret.name, rules::secret_name(&secret.name));
        if let Some(first) = seen.insert(secret.name.as_str(), secret.name.line()) {
            problems.at(&secret.name, format!("secret `{}` is already declared on line {first}; declare it once", secret.name));
        }
    }
    secrets.iter().map(|secret| Secret { env: secret.env.clone().filter(|env| !env.is_empty()), ..secret.clone() }).collect()
}

fn check_oauth(server: &str, oauth: &Located<OAuth>, kind: &Kind, secrets: &[Secret], problems: &mut Problems) {
    let local = !matches!(kind, Kind::Remote { .. });
    if let Some(provider) = &oauth.provider
        && !oauth.providers.is_empty()
    {
        problems
            .at(provider, "`oauth.provider` (Docker's older shape) and `oauth.providers` are both set; keep `providers`, which says more");
    }
    if oauth.enabled.as_ref().is_some_and(|enabled| !**enabled) {
        if !oauth.providers.is_empty() {
            problems.at(oauth, "`oauth` says `enabled: false` but lists `providers`; remove one");
        }
        return;
    }
    if let Some(account) = &oauth.account
        && let Err(error) = crate::store::validate_account_name(account)
    {
        problems.at(account, error.to_string());
    }
    for scope in &oauth.scopes {
        if scope.is_empty() || scope.contains(char::is_whitespace) {
            problems.at(scope, format!("scope `{scope}` contains spaces; write each scope as its own list item"));
        }
    }
    if local && oauth.providers.is_empty() {
        problems.at(
            oauth,
            format!(
                "`oauth` of a {} server needs a provider with `provider:` or `server_metadata:`; only a remote server \
                 can discover its authorization server",
                kind.name()
            ),
        );
    }
    for provider in &oauth.providers {
        if let Some(id) = &provider.provider {
            problems.check(id, rules::provider_id(id));
        }
        if local && provider.provider.is_none() && provider.server_metadata.is_none() {
            problems
                .at(provider, "this provider needs `provider: <id>` (see `latchkey provider ls`) or `server_metadata:` with its endpoints");
        }
        match &provider.secret {
            Some(name) => match secrets.iter().find(|secret| secret.name.as_str() == name.as_str()) {
                None => problems.at(
                    name,
                    format!(
                        "provider secret `{name}` is not declared under `secrets:`; add `- {{name: {name}{}}}`",
                        if local { ", env: <VARIABLE>" } else { "" }
                    ),
                ),
                Some(secret) if local && secret.env.as_ref().is_none_or(|env| env.is_empty()) => problems.at(
                    name,
                    format!(
                        "secret `{name}` receives the access token but has no `env`, so the {} server never sees it; add `env: <VARIABLE>`",
                        kind.name()
                    ),
                ),
                Some(_) => {}
            },
            None if local => problems.at(
                provider,
                format!(
                    "this provider needs `secret:` naming the declared secret that receives the access token (e.g. `{server}.access_token`)"
                ),
            ),
            None => {}
        }
        if let Some(metadata) = &provider.server_metadata {
            problems.check(&metadata.issuer, rules::issuer(&metadata.issuer));
            for (field, url) in metadata.endpoints() {
                problems.check(url, rules::endpoint(url).map_err(|message| format!("{field}: {message}")));
            }
        }
        if let Some(registration) = &provider.registration {
            problems.check(&registration.client_id, client_id(&registration.client_id));
        }
        for (variable, name) in &provider.context {
            problems.check(name, rules::env_name(variable).map_err(|message| format!("context: {message}")));
            if !crate::plugins::provider::is_context_name(name) {
                problems.at(name, format!("context name `{name}` is not 1-64 characters of a-z, 0-9 and `_`, as providers name context"));
            }
            let declared = secrets.iter().filter_map(|secret| secret.env.as_deref()).any(|env| env.as_str() == variable);
            if declared {
                problems.at(name, format!("`{variable}` already receives a secret; give the context its own variable"));
            }
        }
    }
}

fn client_id(id: &str) -> Result<(), String> {
    // Google client secrets carry this prefix: one pasted as the id would be published. Checked
    // first, so that no other message quotes it.
    if id.trim_start().starts_with("GOCSPX-") {
        return Err("this client id looks like a Google client secret (it starts with GOCSPX-); put the client id here and store \
             the secret with `latchkey secret set <server>.client_secret` (the value is read from stdin)"
            .into());
    }
    if id.trim().is_empty() || id.contains(char::is_whitespace) {
        return Err(format!("client id `{id}` is empty or has spaces; copy it from the provider's app registration"));
    }
    Ok(())
}
