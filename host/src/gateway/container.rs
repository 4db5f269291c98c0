//! Upstreams that run in Docker containers, through the Engine API (bollard).
//!
//! A container is created with stdin open and attached, started, and spoken to over its
//! stdin/stdout; Docker removes it when it exits (its stdin closes when the gateway lets go). It
//! runs with `no-new-privileges`, every capability dropped, at most [`PIDS_LIMIT`] processes and
//! threads, on network `none` unless the catalog asks for another, with the catalog's CPU and
//! memory limits, and with labels that name the gateway instance ([`Instance`]), so that
//! containers left by a gateway that died can be found (`docker ps --filter label=dev.latchkey.gateway`)
//! and are removed the next time a gateway starts. The image must already be present: a gateway
//! never pulls behind the user's back.
//!
//! The server's secrets and token are its environment, as for a local process; for a container
//! that means Docker keeps them in the container's configuration, where `docker inspect` (anyone
//! who may use the Docker socket) reads them while it runs. README.md says so.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{AttachContainerOptions, CreateContainerOptions, ListContainersOptions, RemoveContainerOptions};
use futures::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncRead, AsyncWrite};

use super::docker_endpoint;
use crate::catalog::config::Resolved;
use crate::catalog::{Kind, Server};
use crate::paths::Paths;
use crate::store::FileLock;

/// The label every gateway container carries; its value is the gateway's [`Instance`] id.
pub const LABEL: &str = "dev.latchkey.gateway";
const SERVER_LABEL: &str = "dev.latchkey.server";

/// Processes and threads a server's container may run: a fork bomb stops here, and a Node or
/// Python server uses a few dozen.
pub const PIDS_LIMIT: i64 = 512;

/// This gateway process as its containers' label names it: `<pid>-<random>`, and an exclusive lock
/// on `<cache dir>/gateways/<id>.lock` held for as long as the process lives. Another gateway tells
/// a live owner from a dead one by trying that lock, which the operating system drops when the
/// process dies, on every platform: no process table (`/proc`) is read, and a process id that a
/// later process reuses cannot pass for the owner. A container whose instance has no lock file
/// here belongs to a gateway of another user or `LATCHKEY_HOME`, and is left alone.
pub struct Instance {
    pub id: String,
    _alive: Option<FileLock>,
}

static INSTANCE: OnceLock<Instance> = OnceLock::new();

impl Instance {
    /// This process's instance, its lock taken on first use. Without the lock (the cache folder
    /// cannot be written) the containers still run; a later gateway then leaves them alone.
    pub fn current(paths: &Paths) -> &'static Instance {
        INSTANCE.get_or_init(|| {
            let id = format!("{}-{:016x}", std::process::id(), rand::random::<u64>());
            let alive = FileLock::acquire_within(&lock_path(paths, &id), Duration::ZERO)
                .inspect_err(|error| tracing::warn!("containers of this gateway cannot be told from leftovers: {error:#}"))
                .ok();
            Instance { id, _alive: alive }
        })
    }
}

fn lock_path(paths: &Paths, id: &str) -> PathBuf {
    paths.cache_dir.join("gateways").join(format!("{id}.lock"))
}

/// Connect to the Docker Engine the `docker` CLI would use ([`docker_endpoint`]: `DOCKER_HOST`,
/// the current Docker context, or the platform's default).
pub async fn connect() -> anyhow::Result<Docker> {
    connect_to(&docker_endpoint::resolve(&docker_endpoint::Sources::from_env())?).await
}

/// Connect to the Docker Engine at `endpoint`.
pub async fn connect_to(endpoint: &docker_endpoint::Endpoint) -> anyhow::Result<Docker> {
    let unreachable = |e: bollard::errors::Error| anyhow::anyhow!("Docker is not reachable at {endpoint}: {e}; is dockerd running?");
    let docker = Docker::connect_with_host(&endpoint.host).map_err(unreachable)?.negotiate_version().await.map_err(unreachable)?;
    Ok(docker)
}

/// Start `server`'s container with its `env` and `command` as `resolved` (placeholders filled)
/// and its secrets `env`, and return its stdout and stdin.
pub async fn start(
    server: &Server,
    image: &str,
    resolved: &Resolved,
    env: &[(String, SecretString)],
    paths: &Paths,
) -> anyhow::Result<(impl AsyncRead + Send + Unpin + 'static, impl AsyncWrite + Send + Unpin + 'static)> {
    let Kind::Image { container, .. } = &server.kind else {
        anyhow::bail!("server `{}` is not a container", server.name);
    };
    let docker = connect().await?;
    if docker.inspect_image(image).await.is_err() {
        anyhow::bail!(
            "the image `{image}` of server `{}` is not on this machine; get it first (`docker pull {image}`, or \
             `docker import`/`docker build` for a local image)",
            server.name
        );
    }
    let mut environment: Vec<String> = resolved.env.iter().map(|(name, value)| format!("{name}={value}")).collect();
    environment.extend(env.iter().map(|(name, value)| format!("{name}={}", value.expose_secret())));
    let labels = HashMap::from([(LABEL.to_string(), Instance::current(paths).id.clone()), (SERVER_LABEL.to_string(), server.name.clone())]);
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: (!resolved.command.is_empty()).then(|| resolved.command.clone()),
        env: Some(environment),
        labels: Some(labels),
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        open_stdin: Some(true),
        stdin_once: Some(true),
        tty: Some(false),
        host_config: Some(HostConfig {
            auto_remove: Some(true),
            security_opt: Some(vec!["no-new-privileges".into()]),
            // An MCP server reads stdin and writes stdout: it needs no capability of root's.
            cap_drop: Some(vec!["ALL".into()]),
            pids_limit: Some(PIDS_LIMIT),
            network_mode: Some(container.network.clone()),
            nano_cpus: container.cpus.map(|cpus| (cpus * 1e9) as i64),
            memory: container.memory.map(|bytes| bytes as i64),
            init: Some(true),
            ..HostConfig::default()
        }),
        ..ContainerCreateBody::default()
    };
    let created = docker
        .create_container(None::<CreateContainerOptions>, body)
        .await
        .map_err(|e| anyhow::anyhow!("cannot create the container of server `{}`: {e}", server.name))?;
    let attached = docker
        .attach_container(
            &created.id,
            Some(AttachContainerOptions { stdin: true, stdout: true, stderr: true, stream: true, logs: false, detach_keys: None }),
        )
        .await
        .map_err(|e| anyhow::anyhow!("cannot attach to the container of server `{}`: {e}", server.name))?;
    if let Err(error) = docker.start_container(&created.id, None).await {
        let _ = docker.remove_container(&created.id, Some(RemoveContainerOptions { force: true, ..Default::default() })).await;
        anyhow::bail!("cannot start the container of server `{}`: {error}", server.name);
    }
    tracing::info!(server = %server.name, container = %created.id, "container started");

    // Stdout carries MCP; stderr goes to the gateway's log.
    let name = server.name.clone();
    let stdout = attached.output.filter_map(move |item| {
        let name = name.clone();
        async move {
            match item {
                Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => Some(Ok(message)),
                Ok(LogOutput::StdErr { message }) => {
                    tracing::info!(server = %name, "{}", String::from_utf8_lossy(&message).trim_end());
                    None
                }
                Ok(LogOutput::StdIn { .. }) => None,
                Err(error) => Some(Err(std::io::Error::other(error))),
            }
        }
    });
    Ok((tokio_util::io::StreamReader::new(Box::pin(stdout)), attached.input))
}

/// Remove containers left by gateways (of this user and `LATCHKEY_HOME`) that are no longer
/// running, and forget those gateways' lock files.
pub async fn remove_leftovers(docker: &Docker, paths: &Paths) -> anyhow::Result<usize> {
    let own = Instance::current(paths).id.as_str();
    let mut dead = Vec::new();
    let removed = remove_where(docker, |owner| {
        // The id becomes a file name: only what this module writes is looked up.
        if owner == own || !owner.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return false;
        }
        let path = lock_path(paths, owner);
        let gone = path.exists() && FileLock::acquire_within(&path, Duration::ZERO).is_ok();
        if gone {
            dead.push(path);
        }
        gone
    })
    .await?;
    for path in dead {
        let _ = std::fs::remove_file(path);
    }
    Ok(removed)
}

/// Remove this gateway's own containers, as it shuts down: Docker removes a container once its
/// server exits on the end of its input, which a server busy with a call may not do for a while.
pub async fn remove_own(docker: &Docker) -> anyhow::Result<usize> {
    let Some(instance) = INSTANCE.get() else { return Ok(0) };
    remove_where(docker, |owner| owner == instance.id).await
}

/// Force-remove the gateway containers whose owner (the instance id in their label) `matches`.
async fn remove_where(docker: &Docker, mut matches: impl FnMut(&str) -> bool) -> anyhow::Result<usize> {
    let filters = HashMap::from([("label".to_string(), vec![LABEL.to_string()])]);
    let containers =
        docker.list_containers(Some(ListContainersOptions { all: true, filters: Some(filters), ..Default::default() })).await?;
    let mut removed = 0;
    for container in containers {
        let owner = container.labels.as_ref().and_then(|labels| labels.get(LABEL)).map_or("", String::as_str);
        if let (true, Some(id)) = (matches(owner), container.id)
            && docker.remove_container(&id, Some(RemoveContainerOptions { force: true, ..Default::default() })).await.is_ok()
        {
            removed += 1;
        }
    }
    Ok(removed)
}
