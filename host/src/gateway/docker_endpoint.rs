//! Which Docker Engine the gateway's containers run on, chosen as the `docker` CLI chooses, so
//! that latchkey reaches whichever engine `docker ps` reaches:
//!
//! 1. `DOCKER_HOST`;
//! 2. else the context that `DOCKER_CONTEXT` names, or `currentContext` in the CLI's `config.json`
//!    (in `DOCKER_CONFIG`, by default `~/.docker`). This is how Docker Desktop (on macOS, Windows
//!    and Linux), colima, OrbStack, Rancher Desktop and Podman Desktop point the CLI at engines
//!    whose sockets are not the platform's default: Docker Desktop on macOS listens on
//!    `~/.docker/run/docker.sock`, and `/var/run/docker.sock` exists only if the user allowed it.
//!    A context's endpoint is in `contexts/meta/<hex SHA-256 of its name>/meta.json`;
//! 3. else the platform's default: `/var/run/docker.sock`, or the named pipe
//!    `//./pipe/docker_engine` on Windows.
//!
//! A context that is named but cannot be read is an error naming the file, not a silent fall back
//! to the default: the user meant another engine. So is a context with TLS certificates, which
//! latchkey does not load: it never speaks in the clear to an engine the user reaches over TLS.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};

#[cfg(windows)]
const DEFAULT_HOST: &str = "npipe:////./pipe/docker_engine";
#[cfg(not(windows))]
const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// The context the CLI calls the platform default (and `DOCKER_HOST`).
const DEFAULT_CONTEXT: &str = "default";

/// The engine to connect to, and what chose it (for messages).
#[derive(Debug, PartialEq)]
pub struct Endpoint {
    pub host: String,
    chosen_by: ChosenBy,
}

#[derive(Debug, PartialEq)]
enum ChosenBy {
    Variable,
    Context(String),
    Default,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.chosen_by {
            ChosenBy::Variable => write!(f, "DOCKER_HOST={}", self.host),
            ChosenBy::Context(name) => write!(f, "{} (the Docker context `{name}`)", self.host),
            ChosenBy::Default => {
                write!(f, "the default {} (set DOCKER_HOST, or `docker context use`, for another)", self.host)
            }
        }
    }
}

/// What the choice reads: the environment, passed in so that tests need not change the process's.
pub struct Sources {
    pub docker_host: Option<String>,
    pub docker_context: Option<String>,
    /// The CLI's configuration folder; `None` when there is no home folder to find it in.
    pub config_dir: Option<PathBuf>,
}

impl Sources {
    pub fn from_env() -> Sources {
        let variable = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        let config_dir = variable("DOCKER_CONFIG")
            .map(PathBuf::from)
            .or_else(|| directories::BaseDirs::new().map(|dirs| dirs.home_dir().join(".docker")));
        Sources { docker_host: variable("DOCKER_HOST"), docker_context: variable("DOCKER_CONTEXT"), config_dir }
    }
}

/// The engine `sources` choose (see the module's documentation for the order).
pub fn resolve(sources: &Sources) -> anyhow::Result<Endpoint> {
    if let Some(host) = &sources.docker_host {
        return Ok(Endpoint { host: host.clone(), chosen_by: ChosenBy::Variable });
    }
    let default = || Endpoint { host: DEFAULT_HOST.to_string(), chosen_by: ChosenBy::Default };
    let Some(config_dir) = &sources.config_dir else {
        return Ok(default());
    };
    let (name, named_by) = match &sources.docker_context {
        Some(name) => (name.clone(), "DOCKER_CONTEXT".to_string()),
        None => match current_context(&config_dir.join("config.json"))? {
            Some(name) => (name, format!("`currentContext` in {}", config_dir.join("config.json").display())),
            None => return Ok(default()),
        },
    };
    if name == DEFAULT_CONTEXT {
        return Ok(default());
    }
    let id = hex::encode(Sha256::digest(name.as_bytes()));
    // A context with TLS material is spoken to over TLS by the CLI; latchkey does not load it, and
    // would otherwise send a container's tokens to that engine unencrypted.
    let tls = config_dir.join("contexts/tls").join(&id).join("docker");
    if tls.exists() {
        anyhow::bail!(
            "the Docker context `{name}` ({named_by}) connects with TLS certificates ({}), which latchkey does not use; \
             choose a context on this machine with `docker context use`, or set DOCKER_HOST to a local socket",
            tls.display()
        );
    }
    let meta = config_dir.join("contexts/meta").join(id).join("meta.json");
    let host = context_host(&meta).with_context(|| {
        format!(
            "the Docker context `{name}` ({named_by}) cannot be used: {}; `docker context ls` lists the contexts, \
             `docker context use default` goes back to the default engine, and DOCKER_HOST overrides both",
            meta.display()
        )
    })?;
    Ok(Endpoint { host, chosen_by: ChosenBy::Context(name) })
}

/// `currentContext` of the CLI's `config.json`; `None` when the file or the key is absent.
fn current_context(config: &Path) -> anyhow::Result<Option<String>> {
    #[derive(Deserialize)]
    struct Config {
        #[serde(rename = "currentContext", default)]
        current_context: Option<String>,
    }
    let text = match std::fs::read_to_string(config) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error).with_context(|| format!("reading the Docker CLI's configuration {}", config.display())),
    };
    let parsed: Config = serde_json::from_str(&text)
        .with_context(|| format!("the Docker CLI's configuration {} is not valid JSON; fix it, or set DOCKER_HOST", config.display()))?;
    Ok(parsed.current_context.filter(|name| !name.is_empty()))
}

/// The Docker endpoint's host of a context's `meta.json`.
fn context_host(meta: &Path) -> anyhow::Result<String> {
    #[derive(Deserialize)]
    struct Meta {
        #[serde(rename = "Endpoints")]
        endpoints: Endpoints,
    }
    #[derive(Deserialize)]
    struct Endpoints {
        docker: Option<DockerEndpoint>,
    }
    #[derive(Deserialize)]
    struct DockerEndpoint {
        #[serde(rename = "Host")]
        host: Option<String>,
    }
    let text = std::fs::read_to_string(meta).context("its endpoint file cannot be read")?;
    let parsed: Meta = serde_json::from_str(&text).context("its endpoint file is not what `docker context create` writes")?;
    parsed.endpoints.docker.and_then(|docker| docker.host).filter(|host| !host.is_empty()).context("its endpoint file names no Docker host")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(dir: &Path) -> Sources {
        Sources { docker_host: None, docker_context: None, config_dir: Some(dir.to_path_buf()) }
    }

    /// A context as `docker context create <name> --docker host=<host>` writes it.
    fn create_context(dir: &Path, name: &str, host: &str) {
        let meta = dir.join("contexts/meta").join(hex::encode(Sha256::digest(name.as_bytes())));
        std::fs::create_dir_all(&meta).unwrap();
        let text = format!(
            r#"{{"Name":"{name}","Metadata":{{"Description":"Docker Desktop"}},"Endpoints":{{"docker":{{"Host":"{host}","SkipTLSVerify":false}}}}}}"#
        );
        std::fs::write(meta.join("meta.json"), text).unwrap();
    }

    #[test]
    fn the_current_context_names_the_engine_unless_docker_host_does() {
        let dir = tempfile::tempdir().unwrap();
        let desktop = "unix:///Users/me/.docker/run/docker.sock";
        create_context(dir.path(), "desktop-linux", desktop);
        std::fs::write(dir.path().join("config.json"), r#"{"auths": {}, "currentContext": "desktop-linux"}"#).unwrap();

        let chosen = resolve(&sources(dir.path())).unwrap();
        assert_eq!(chosen, Endpoint { host: desktop.into(), chosen_by: ChosenBy::Context("desktop-linux".into()) });
        assert_eq!(chosen.to_string(), format!("{desktop} (the Docker context `desktop-linux`)"));

        let variable = Sources { docker_host: Some("tcp://10.0.0.1:2375".into()), ..sources(dir.path()) };
        assert_eq!(resolve(&variable).unwrap().to_string(), "DOCKER_HOST=tcp://10.0.0.1:2375");

        create_context(dir.path(), "colima", "unix:///Users/me/.colima/default/docker.sock");
        let named = Sources { docker_context: Some("colima".into()), ..sources(dir.path()) };
        assert!(resolve(&named).unwrap().host.contains(".colima"));
    }

    #[test]
    fn without_a_context_the_platform_default_is_used() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(resolve(&sources(dir.path())).unwrap().host, DEFAULT_HOST);
        std::fs::write(dir.path().join("config.json"), r#"{"currentContext": "default"}"#).unwrap();
        assert_eq!(resolve(&sources(dir.path())).unwrap().chosen_by, ChosenBy::Default);
    }

    #[test]
    fn a_context_that_cannot_be_read_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), r#"{"currentContext": "gone"}"#).unwrap();
        let message = format!("{:#}", resolve(&sources(dir.path())).unwrap_err());
        assert!(message.contains("the Docker context `gone` (`currentContext` in"), "{message}");
        assert!(message.contains("meta.json") && message.contains("docker context use default"), "{message}");

        // A context whose engine the CLI reaches over TLS: refused, never spoken to in the clear.
        create_context(dir.path(), "remote", "tcp://docker.example.com:2376");
        let tls = dir.path().join("contexts/tls").join(hex::encode(Sha256::digest(b"remote"))).join("docker");
        std::fs::create_dir_all(&tls).unwrap();
        let remote = Sources { docker_context: Some("remote".into()), ..sources(dir.path()) };
        let message = format!("{:#}", resolve(&remote).unwrap_err());
        assert!(message.contains("connects with TLS certificates") && message.contains("docker context use"), "{message}");

        std::fs::write(dir.path().join("config.json"), "{not json").unwrap();
        let message = format!("{:#}", resolve(&sources(dir.path())).unwrap_err());
        assert!(message.contains("config.json is not valid JSON"), "{message}");
    }
}
