//! `latchkey doctor`: everything that can stop a user, found in one pass, each with its fix.
//!
//! The checks reuse what the other commands do, never a copy of it: the store as
//! [`Store::open`] chooses it (and [`Store::notice`], the reason for a file-store fallback), the
//! catalogs as `catalog validate` checks them ([`catalog::check`]), the required settings of
//! [`catalog::config::missing`], the OAuth clients as a sign-in would settle them
//! ([`Engine::readiness`]: client id, client secret, the provider's redirect rule), the
//! credentials as `oauth ls` shows them, the drop-in providers that `provider ls` reports as not
//! loaded, Docker as the gateway connects to it, and the AI clients as `client ls` reads them.
//!
//! A check that cannot run because an earlier one failed (no store, so no credentials) says so
//! instead of failing the report. Nothing here touches the network: the clock is compared with
//! the `Date` header of the last OAuth server a sign-in or refresh reached ([`crate::oauth::clock`]),
//! and reported as not checked before there was one. No message holds a secret: secrets are only
//! tested for presence.

use std::path::Path;
use std::time::SystemTime;

use serde::Serialize;

use crate::catalog::{self, Catalog, Kind, Source};
use crate::clients::{self, Scope};
use crate::gateway::{container, docker_endpoint};
use crate::oauth::clock::{ClockFile, Reading};
use crate::oauth::engine::Engine;
use crate::oauth::lifecycle::{CredentialView, human_duration};
use crate::oauth::registration::RegistrationSource;
use crate::paths::Paths;
use crate::plugins::{self, Redirect};
use crate::store::{STORE_VAR, Store, StoreKind};

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    /// Works, but the user should know (a fallback, a notice, a sign-in still to do).
    Warning,
    /// Stops something from working.
    Problem,
}

/// One line of the report.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// What part of latchkey: `store`, `docker`, `catalog`, `config`, `oauth`, `credential`,
    /// `provider`, `client`, `clock`.
    pub area: &'static str,
    /// Which thing in that area: a file, a server, a client.
    pub subject: String,
    pub status: Status,
    pub message: String,
    /// The command to run or what to do; `None` when there is nothing to do.
    pub fix: Option<String>,
}

/// Every check, in the order the areas are listed above.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    fn add(&mut self, area: &'static str, subject: impl Into<String>, status: Status, message: impl Into<String>, fix: Option<String>) {
        self.checks.push(Check { area, subject: subject.into(), status, message: message.into(), fix });
    }

    /// Whether any check found a problem (warnings aside).
    pub fn has_problems(&self) -> bool {
        self.checks.iter().any(|check| check.status == Status::Problem)
    }
}

/// Run every check for the configuration in `paths`.
pub async fn run(paths: &Paths) -> Report {
    let mut report = Report::default();
    let store = check_store(paths, &mut report);
    let validated = catalog::check(paths, None);
    check_docker(&validated.catalog, &mut report).await;
    check_catalogs(&validated, &mut report);
    check_settings(paths, &validated.catalog, &mut report);
    let known_servers: Vec<String> = validated.catalog.servers().map(|server| server.name.clone()).collect();
    let plugins = match plugins::load(paths) {
        Ok(loaded) => {
            check_providers(&loaded.1, &mut report);
            Some(loaded)
        }
        Err(error) => {
            report.add("provider", "providers", Status::Problem, format!("cannot load the providers: {error:#}"), None);
            None
        }
    };
    match (store, plugins) {
        (Some(store), Some(plugins)) => match Engine::assemble(paths.clone(), validated.catalog, plugins, store) {
            Ok(engine) => {
                let signed_in = check_credentials(&engine, &mut report).await;
                check_oauth(&engine, &signed_in, &mut report).await;
            }
            Err(error) => report.add("oauth", "registrations", Status::Problem, format!("{error:#}"), None),
        },
        _ => report.add("oauth", "servers", Status::Warning, "not checked: the secret store or the providers did not open", None),
    }
    check_clients(&known_servers, &mut report);
    check_clock(ClockFile::read(&paths.clock_file()), SystemTime::now(), &mut report);
    report
}

/// How far the clock may be from a server's before tokens are at risk: ID tokens and client
/// assertions are commonly accepted with a minute or so of skew, and expiries are checked to the
/// minute (the refresh-ahead margin).
const CLOCK_WARNING: u64 = 30;
const CLOCK_PROBLEM: u64 = 120;

/// The clock against the last OAuth server's `Date` header, if one was read.
fn check_clock(reading: Option<Reading>, now: SystemTime, report: &mut Report) {
    let Some(reading) = reading else {
        let message = "not checked yet: the clock is compared with an OAuth server's `Date` header when a sign-in or refresh reaches one";
        report.add("clock", "system clock", Status::Ok, message, None);
        return;
    };
    let drift = reading.offset_seconds.unsigned_abs();
    let when = format!("its `Date` header {} ago", human_duration(reading.age(now).as_secs()));
    let (status, fix) = match drift {
        drift if drift <= CLOCK_WARNING => (Status::Ok, None),
        drift if drift <= CLOCK_PROBLEM => (Status::Warning, Some(SYNC_CLOCK.to_string())),
        _ => (Status::Problem, Some(SYNC_CLOCK.to_string())),
    };
    let message = if drift <= 2 {
        format!("agrees with {} ({when})", reading.origin)
    } else {
        let side = if reading.offset_seconds > 0 { "behind" } else { "ahead of" };
        let consequence = if status == Status::Ok { "" } else { ": fresh tokens can look expired, and signed ones not yet valid" };
        format!("{} {side} {} ({when}){consequence}", human_duration(drift), reading.origin)
    };
    report.add("clock", "system clock", status, message, fix);
}

/// How to set the clock from the network, on this platform.
const SYNC_CLOCK: &str = if cfg!(target_os = "macos") {
    "turn on System Settings › General › Date & Time › Set time and date automatically"
} else if cfg!(windows) {
    "Settings › Time & language › Date & time: turn on Set time automatically, then Sync now"
} else {
    "synchronise the clock from the network: `timedatectl set-ntp true` (systemd), or start chrony or ntpd"
};

/// The store that every command would open, and whether it answers.
fn check_store(paths: &Paths, report: &mut Report) -> Option<Store> {
    let store = match Store::open(paths) {
        Ok(store) => store,
        Err(error) => {
            let fix = format!("start or unlock the OS keyring, or keep secrets in a private file with {STORE_VAR}=file");
            report.add("store", "secret store", Status::Problem, format!("{error:#}"), Some(fix));
            return None;
        }
    };
    // Listing reads the names only; reading one value is what a locked keyring refuses.
    let answered = store.secret_names().and_then(|names| match names.first() {
        Some(name) => store.get_secret(name).map(drop),
        None => Ok(()),
    });
    match (answered, store.kind(), store.notice()) {
        (Err(error), ..) => {
            let fix = format!("unlock the OS keyring, or keep secrets in a private file with {STORE_VAR}=file");
            report.add("store", store.describe(), Status::Problem, format!("{error:#}"), Some(fix));
        }
        (Ok(()), StoreKind::File, Some(notice)) => {
            let fix = format!("start the OS keyring (a desktop session's Secret Service), or set {STORE_VAR}=file to keep this choice");
            report.add("store", store.describe(), Status::Warning, format!("file store in use: {notice}"), Some(fix));
        }
        (Ok(()), StoreKind::File, None) => {
            report.add("store", store.describe(), Status::Ok, format!("file store, chosen with {STORE_VAR}=file"), None)
        }
        (Ok(()), StoreKind::Keyring, _) => report.add("store", store.describe(), Status::Ok, "the keyring is reachable", None),
    }
    Some(store)
}

/// Docker answers, when a catalog server runs in a container.
async fn check_docker(catalog: &Catalog, report: &mut Report) {
    let images: Vec<&str> =
        catalog.servers().filter(|server| matches!(server.kind, Kind::Image { .. })).map(|server| server.name.as_str()).collect();
    if images.is_empty() {
        return;
    }
    let subject = format!("Docker (for {})", images.join(", "));
    let reached = match docker_endpoint::resolve(&docker_endpoint::Sources::from_env()) {
        Ok(endpoint) => container::connect_to(&endpoint).await.map(|_| endpoint),
        Err(error) => Err(error),
    };
    match reached {
        Ok(endpoint) => report.add("docker", subject, Status::Ok, format!("Docker is reachable at {endpoint}"), None),
        Err(error) => report.add(
            "docker",
            subject,
            Status::Problem,
            format!("{error:#}"),
            Some("start Docker (dockerd or Docker Desktop), or choose the engine with `docker context use` or DOCKER_HOST".into()),
        ),
    }
}

/// Each user catalog file: valid, or its problems with file and line; notices as warnings.
fn check_catalogs(validated: &catalog::Report, report: &mut Report) {
    for source in &validated.sources {
        let Source::File(path) = source else { continue };
        let problems: Vec<_> = validated.problems.iter().filter(|problem| &problem.source == source).collect();
        if problems.is_empty() {
            report.add("catalog", path.display().to_string(), Status::Ok, "valid", None);
        }
        for problem in problems {
            report.add(
                "catalog",
                path.display().to_string(),
                Status::Problem,
                problem.to_string(),
                Some(format!("edit {} and check it with `latchkey catalog validate {}`", path.display(), path.display())),
            );
        }
    }
    for notice in validated.catalog.notices() {
        report.add("catalog", "notice", Status::Warning, notice.clone(), None);
    }
}

/// Each server's required settings that have no value.
fn check_settings(paths: &Paths, catalog: &Catalog, report: &mut Report) {
    let values = match catalog::config::ValueFile::new(paths).read() {
        Ok(values) => values,
        Err(error) => {
            report.add("config", "settings", Status::Problem, format!("{error:#}"), None);
            return;
        }
    };
    for server in catalog.servers() {
        for missing in catalog::config::missing(server, &values) {
            report.add(
                "config",
                server.name.clone(),
                Status::Problem,
                format!("`{}` does not start without the required setting `{}`", server.name, missing.setting),
                Some(missing.fix),
            );
        }
    }
}

/// Drop-in providers that did not load, and the registry's notices.
fn check_providers(registry: &plugins::Registry, report: &mut Report) {
    for failure in registry.failures() {
        let (subject, fix) = match &failure.origin {
            plugins::Origin::File(path) => (
                path.display().to_string(),
                format!("fix or remove {}; check a provider with `latchkey provider verify <file>`", path.display()),
            ),
            plugins::Origin::BuiltIn(id) => (format!("built-in {id}"), "report this: a built-in provider should always load".into()),
        };
        report.add("provider", subject, Status::Problem, format!("not loaded: {}", failure.problem), Some(fix));
    }
    for notice in registry.notices() {
        report.add("provider", "notice", Status::Warning, notice.clone(), None);
    }
}

/// Each stored credential's state and expiry; returns the servers that have one.
async fn check_credentials(engine: &Engine, report: &mut Report) -> Vec<String> {
    let views = match engine.list().await {
        Ok(views) => views,
        Err(error) => {
            report.add("credential", "credentials", Status::Problem, format!("cannot read the credentials: {error:#}"), None);
            return Vec::new();
        }
    };
    for view in &views {
        let subject = view.binding.clone().unwrap_or_else(|| view.server.clone());
        let sign_in = Some(format!("latchkey oauth authorize {}", view.server));
        let (status, message, fix) = match (view.state, view.refreshable) {
            ("needs-reauthorization", _) => (
                Status::Problem,
                format!("needs a new sign-in: {}", view.reason.clone().unwrap_or_else(|| "the refresh was refused".into())),
                sign_in,
            ),
            ("expired", true) => (Status::Ok, "the access token expired; it is refreshed when next used".into(), None),
            ("expired", false) => (Status::Problem, "expired, and there is no refresh token: sign in again".into(), sign_in),
            (_, refreshable) => {
                let expiry = match view.expires_in {
                    Some(seconds) => format!("expires in {}", human_duration(seconds.max(0) as u64)),
                    None => "no expiry given".into(),
                };
                let refresh = if refreshable { "refreshable" } else { "no refresh token: sign in again when it expires" };
                (Status::Ok, format!("authorized with {}, {expiry}, {refresh}", view.provider), None)
            }
        };
        report.add("credential", subject, status, message, fix);
    }
    views.iter().map(|view: &CredentialView| view.server.clone()).collect()
}

/// Each OAuth server's client id, client secret and redirect URI, and whether it is signed in.
/// Built-in servers that the user has not set up (no client id, no credential) are skipped.
async fn check_oauth(engine: &Engine, signed_in: &[String], report: &mut Report) {
    for server in engine.catalog().servers() {
        let has_credential = signed_in.contains(&server.name);
        for binding in server.bindings() {
            let subject = binding.to_string();
            let readiness = match engine.readiness(&binding).await {
                Ok(readiness) => readiness,
                Err(error) => {
                    report.add("oauth", subject, Status::Problem, format!("{error:#}"), None);
                    continue;
                }
            };
            let set_up = readiness.client.is_some() || has_credential;
            if server.source == Source::BuiltIn && !set_up {
                continue;
            }
            match &readiness.client {
                Some((client_id, source)) => {
                    let from = match source {
                        RegistrationSource::Manual => "from `latchkey oauth register`",
                        _ => "from the catalog",
                    };
                    report.add("oauth", subject.clone(), Status::Ok, format!("client id {client_id} ({from})"), None);
                }
                None if readiness.discovers => report.add(
                    "oauth",
                    subject.clone(),
                    Status::Ok,
                    "no client id: latchkey registers one at sign-in if the authorization server allows dynamic registration",
                    Some(format!("if it does not, `latchkey oauth register {} --client-id <id>`", server.name)),
                ),
                None => report.add(
                    "oauth",
                    subject.clone(),
                    Status::Problem,
                    "no OAuth client id: register an app with the provider, then record its client id",
                    Some(format!(
                        "latchkey oauth register {} --client-id <id>, or `registrations: {{{}: {{client_id: <id>}}}}` in a user catalog",
                        server.name, server.name
                    )),
                ),
            }
            if let Some(missing) = &readiness.missing_secret {
                let fix = match missing {
                    crate::oauth::engine::TargetError::MissingSecret { name, .. } => Some(format!("latchkey secret set {name}")),
                    _ => None,
                };
                report.add("oauth", subject.clone(), Status::Problem, missing.to_string(), fix);
            }
            let (message, fix) = match &readiness.redirect {
                Redirect::Loopback(loopback) => {
                    let register = match loopback.port {
                        // RFC 8252: a loopback redirect URI is registered without a port, and any port matches.
                        None => format!("http://{}{} (a loopback URI: the provider matches it on any port)", loopback.host, loopback.path),
                        Some(_) => readiness.redirect.to_string(),
                    };
                    (
                        format!("redirect URI to register with the provider: {}", readiness.redirect),
                        Some(format!("register {register} with the provider as the app's redirect URI")),
                    )
                }
                Redirect::HttpsOnly => (
                    "the provider accepts only https redirect URIs: register one you own".to_string(),
                    Some(format!("{} --paste --redirect-uri <your https URI>", binding.authorize_command())),
                ),
            };
            report.add("oauth", subject.clone(), Status::Ok, message, fix);
            if !has_credential && readiness.missing_secret.is_none() && (readiness.client.is_some() || readiness.discovers) {
                report.add("oauth", subject, Status::Warning, "not signed in yet", Some(binding.authorize_command()));
            }
        }
    }
}

/// Each AI client whose configuration runs latchkey's gateway, whether it runs this binary, and
/// whether the servers it asks for (`--servers`) are in the catalog.
fn check_clients(known_servers: &[String], report: &mut Report) {
    let this = std::env::current_exe().and_then(dunce::canonicalize).ok();
    let mut connected = 0;
    for status in clients::statuses(&Scope::User) {
        let subject = format!("{} ({})", status.client.name, status.path.display());
        if let Some(problem) = &status.problem {
            if status.installed {
                report.add("client", subject, Status::Warning, problem.clone(), Some(format!("fix {}", status.path.display())));
            }
            continue;
        }
        let Some(launch) = &status.entry else { continue };
        connected += 1;
        let connect = Some(format!("latchkey client connect {}", status.client.id));
        let program = Path::new(&launch.program);
        if !program.exists() {
            report.add(
                "client",
                subject,
                Status::Problem,
                format!("its `latchkey` entry runs {}, which does not exist", launch.program),
                connect,
            );
        } else if this.as_deref().is_some_and(|this| dunce::canonicalize(program).ok().as_deref() != Some(this)) {
            report.add(
                "client",
                subject,
                Status::Warning,
                format!("its `latchkey` entry runs {}, not this latchkey", launch.program),
                connect,
            );
        } else if let Some(unknown) = launch.servers().and_then(|servers| servers.into_iter().find(|name| !known_servers.contains(name))) {
            report.add(
                "client",
                subject,
                Status::Problem,
                format!("its `latchkey` entry serves `{unknown}`, which no catalog defines (`latchkey catalog ls` lists them)"),
                Some(format!("latchkey client connect {} --servers <servers>", status.client.id)),
            );
        } else {
            report.add("client", subject, Status::Ok, "runs this latchkey's gateway", None);
        }
    }
    if connected == 0 {
        report.add(
            "client",
            "AI clients",
            Status::Warning,
            "no AI client runs latchkey's gateway",
            Some("latchkey client connect <client> (`latchkey client ls` lists them)".into()),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn clock_check(offset_seconds: Option<i64>) -> Check {
        let now = UNIX_EPOCH + Duration::from_secs(1_780_000_600);
        let reading =
            offset_seconds.map(|offset_seconds| Reading { origin: "https://auth.example".into(), offset_seconds, taken_at: 1_780_000_000 });
        let mut report = Report::default();
        check_clock(reading, now, &mut report);
        report.checks.pop().unwrap()
    }

    #[test]
    fn the_clock_is_judged_by_how_far_it_is_from_the_last_server() {
        let never = clock_check(None);
        assert_eq!(never.status, Status::Ok);
        assert!(never.message.starts_with("not checked yet"), "{}", never.message);

        let agrees = clock_check(Some(-1));
        assert_eq!((agrees.status, agrees.message.as_str()), (Status::Ok, "agrees with https://auth.example (its `Date` header 10m ago)"));
        assert_eq!(clock_check(Some(20)).status, Status::Ok);

        let slightly = clock_check(Some(-90));
        assert_eq!(slightly.status, Status::Warning);
        assert!(slightly.message.starts_with("90s ahead of https://auth.example"), "{}", slightly.message);

        let behind = clock_check(Some(420));
        assert_eq!(behind.status, Status::Problem);
        assert!(
            behind.message.starts_with("7m behind https://auth.example") && behind.message.contains("look expired"),
            "{}",
            behind.message
        );
        assert_eq!(behind.fix.as_deref(), Some(SYNC_CLOCK));
    }
}
