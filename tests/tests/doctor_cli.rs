//! `latchkey doctor` as a user runs it: the built binary, a private LATCHKEY_HOME with the file
//! store, a private HOME where the AI clients' files live, and real broken files.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use latchkey_tests::recorder::{Recorder, Response};
use latchkey_tests::stored::Server;
use latchkey_tests::{Home, Run};
use serde_json::{Value, json};

/// A latchkey home beside a user's home folder for the clients' files.
struct User {
    latchkey: Home,
    home: tempfile::TempDir,
}

impl User {
    fn new() -> User {
        User { latchkey: Home::new(), home: tempfile::tempdir().unwrap() }
    }

    /// Write `text` to `relative` under `dir`, creating its folders.
    fn write(dir: &Path, relative: &str, text: &str) {
        let path = dir.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    /// `latchkey <args>` with HOME here, none of the variables that move the clients' files, and
    /// `env` on top (the file store unless `env` says otherwise).
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = self.latchkey.command(args);
        command.env("HOME", self.home.path()).env("PATH", self.home.path().join("bin")).env("LATCHKEY_STORE", "file");
        for variable in ["XDG_CONFIG_HOME", "CLAUDE_CONFIG_DIR", "CODEX_HOME", "APPDATA", "DOCKER_HOST"] {
            command.env_remove(variable);
        }
        command.envs(env.iter().copied());
        Run::piped(command, b"")
    }

    /// `latchkey doctor --json`'s checks, after checking its exit code.
    fn doctor(&self, code: i32) -> Vec<Value> {
        let run = self.run(&["doctor", "--json"], &[]);
        assert_eq!(run.code, Some(code), "{run:#?}");
        run.json()["checks"].as_array().unwrap().clone()
    }
}

/// The checks of `area` whose subject and message contain `subject` and `message`.
fn find<'a>(checks: &'a [Value], area: &str, subject: &str, message: &str) -> Vec<&'a Value> {
    checks
        .iter()
        .filter(|check| {
            check["area"] == area
                && check["subject"].as_str().unwrap().contains(subject)
                && check["message"].as_str().unwrap().contains(message)
        })
        .collect()
}

/// The one check of `area` about `subject` whose message has `message`: its status and fix.
fn one(checks: &[Value], area: &str, subject: &str, message: &str) -> (String, String) {
    let found = find(checks, area, subject, message);
    assert_eq!(found.len(), 1, "one {area} check of {subject} saying {message:?} in {checks:#?}");
    let check = found[0];
    (check["status"].as_str().unwrap().to_string(), check["fix"].as_str().unwrap_or_default().to_string())
}

const SERVERS: &str = r#"
registrations:
  gmail: {client_id: 1234.apps.googleusercontent.com}
servers:
  notes:
    command: [notes-mcp]
    secrets:
      - {name: notes.token, env: NOTES_TOKEN}
    oauth:
      providers:
        - secret: notes.token
          server_metadata:
            issuer: https://auth.example.com
            authorization_endpoint: https://auth.example.com/authorize
            token_endpoint: https://auth.example.com/token
  mailer:
    command: [mailer-mcp]
    env: [{name: MODE, value: "{{mailer.mode}}"}]
    config:
      - name: mailer
        type: object
        properties: {mode: {type: string, enum: [fast, safe]}}
        required: [mode]
"#;

#[test]
fn a_clean_home_has_no_problem() {
    let user = User::new();
    let checks = user.doctor(0);
    assert_eq!(one(&checks, "store", "secrets.json", "LATCHKEY_STORE=file").0, "ok");
    let (status, fix) = one(&checks, "client", "AI clients", "no AI client");
    assert_eq!((status.as_str(), fix.as_str()), ("warning", "latchkey client connect <client> (`latchkey client ls` lists them)"));
    assert_eq!(one(&checks, "clock", "", "not checked yet").0, "ok");
    assert!(checks.iter().all(|check| check["status"] != "problem"), "{checks:#?}");

    let run = user.run(&["doctor"], &[]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(run.stdout.contains("store\n") && run.stdout.ends_with("0 problems, 1 warning\n"), "{run:#?}");
}

#[test]
fn every_problem_is_reported_with_its_fix() {
    let user = User::new();
    let config = user.latchkey.path();
    User::write(config, "catalogs/servers.yaml", SERVERS);
    User::write(config, "catalogs/broken.yaml", "servers:\n  broken:\n    image: [x\n");
    User::write(config, "providers/acme.wasm", "not a component");
    let connected = user.run(&["client", "connect", "claude-code"], &[]);
    assert_eq!(connected.code, Some(0), "{connected:#?}");
    User::write(
        user.home.path(),
        ".cursor/mcp.json",
        r#"{"mcpServers": {"latchkey": {"command": "/old/bin/latchkey", "args": ["gateway", "run"]}}}"#,
    );

    let checks = user.doctor(3);
    let broken = config.join("catalogs/broken.yaml").display().to_string();
    let (status, fix) = one(&checks, "catalog", "broken.yaml", &format!("{broken}:3:"));
    assert_eq!(status, "problem");
    assert_eq!(fix, format!("edit {broken} and check it with `latchkey catalog validate {broken}`"));
    assert_eq!(one(&checks, "catalog", "servers.yaml", "valid").0, "ok");

    let (status, fix) = one(&checks, "config", "mailer", "`mailer.mode`");
    assert_eq!((status.as_str(), fix.as_str()), ("problem", "latchkey config set mailer.mode fast|safe"));

    let (status, fix) = one(&checks, "oauth", "notes", "no OAuth client id");
    assert_eq!(status, "problem");
    assert!(fix.starts_with("latchkey oauth register notes --client-id <id>"), "{fix}");
    let (status, fix) = one(&checks, "oauth", "gmail", "needs a client secret");
    assert_eq!((status.as_str(), fix.as_str()), ("problem", "latchkey secret set gmail.client_secret"));
    assert_eq!(one(&checks, "oauth", "gmail", "client id 1234.apps.googleusercontent.com").0, "ok");
    let (_, fix) = one(&checks, "oauth", "gmail", "redirect URI to register");
    assert!(fix.starts_with("register http://127.0.0.1/callback "), "the provider's loopback rule, without a port: {fix}");
    assert!(find(&checks, "oauth", "google-calendar", "").is_empty(), "built-in servers not set up are not reported: {checks:#?}");

    let (status, fix) = one(&checks, "provider", "acme.wasm", "not loaded");
    assert_eq!(status, "problem");
    assert!(fix.contains("latchkey provider verify"), "{fix}");

    assert_eq!(one(&checks, "client", "Claude Code", "runs this latchkey's gateway").0, "ok");
    let (status, fix) = one(&checks, "client", "Cursor", "/old/bin/latchkey, which does not exist");
    assert_eq!((status.as_str(), fix.as_str()), ("problem", "latchkey client connect cursor"));

    // Every line a person sees has its fix under it.
    let run = user.run(&["doctor"], &[]);
    assert_eq!(run.code, Some(3), "{run:#?}");
    assert!(run.stdout.contains("fix: latchkey secret set gmail.client_secret"), "{run:#?}");
    assert!(run.stdout.contains("problem mailer:"), "{run:#?}");

    // Fixed as the doctor says, each problem goes.
    fs::remove_file(config.join("catalogs/broken.yaml")).unwrap();
    let set = user.run(&["config", "set", "mailer.mode", "safe"], &[]);
    assert_eq!(set.code, Some(0), "{set:#?}");
    let stored = user.latchkey.run(&["secret", "set", "gmail.client_secret"], &[("LATCHKEY_STORE", "file")], b"a-client-SECRET");
    assert_eq!(stored.code, Some(0), "{stored:#?}");
    let checks = user.doctor(3);
    assert!(find(&checks, "config", "mailer", "").is_empty() && find(&checks, "catalog", "broken.yaml", "").is_empty(), "{checks:#?}");
    assert!(find(&checks, "oauth", "gmail", "needs a client secret").is_empty(), "{checks:#?}");
    let (status, fix) = one(&checks, "oauth", "gmail", "not signed in");
    assert_eq!((status.as_str(), fix.as_str()), ("warning", "latchkey oauth authorize gmail"));
    assert!(!serde_json::to_string(&checks).unwrap().contains("a-client-SECRET"), "no secret in the report");
}

/// The file-store fallback's notice shows once, then only in the doctor's report.
#[cfg(all(unix, not(target_os = "macos")))]
#[test]
fn the_file_store_notice_shows_once_then_in_the_doctor() {
    let user = User::new();
    let no_bus = format!("unix:path={}", user.latchkey.path().join("no-bus").display());
    let fallback = [("LATCHKEY_STORE", ""), ("DBUS_SESSION_BUS_ADDRESS", no_bus.as_str())];
    let first = user.run(&["secret", "ls"], &fallback);
    assert_eq!(first.code, Some(0), "{first:#?}");
    assert!(first.stderr.starts_with("note: the OS keyring is not reachable"), "{first:#?}");
    let second = user.run(&["secret", "ls"], &fallback);
    assert_eq!(second.code, Some(0), "{second:#?}");
    assert!(second.stderr.is_empty(), "shown once: {second:#?}");

    let run = user.run(&["doctor", "--json"], &fallback);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let checks = run.json()["checks"].as_array().unwrap().clone();
    let (status, fix) = one(&checks, "store", "secrets.json", "the OS keyring is not reachable");
    assert_eq!(status, "warning");
    assert!(fix.contains("LATCHKEY_STORE=file"), "{fix}");
}

/// A token endpoint that answers with `Date: <now + ahead>`.
fn token_endpoint_ahead_by(ahead: Duration) -> Recorder {
    let tokens = Response::json(200, json!({"access_token": "at-2", "token_type": "Bearer", "expires_in": 3600}));
    Recorder::start(tokens.with_header("Date", &httpdate::fmt_http_date(SystemTime::now() + ahead)))
}

/// The clock is compared with the `Date` header of the last OAuth server a refresh reached: one
/// that agrees, then one whose clock is seven and a half minutes ahead of this machine's.
#[test]
fn the_clock_is_compared_with_the_last_oauth_server_a_refresh_reached() {
    let user = User::new();
    let (agreeing, ahead) = (token_endpoint_ahead_by(Duration::ZERO), token_endpoint_ahead_by(Duration::from_secs(450)));
    Server::new("notes", None, &agreeing.origin()).install(&user.latchkey, "notes-secret", "at-1", Some("rt-1"));
    Server::new("mail", None, &ahead.origin()).install(&user.latchkey, "mail-secret", "at-1", Some("rt-1"));

    let refresh = user.run(&["oauth", "refresh", "notes"], &[]);
    assert_eq!(refresh.code, Some(0), "{refresh:#?}");
    let (status, fix) = one(&user.doctor(0), "clock", "system clock", &format!("agrees with {}", agreeing.origin()));
    assert_eq!((status.as_str(), fix.as_str()), ("ok", ""));

    let refresh = user.run(&["oauth", "refresh", "mail"], &[]);
    assert_eq!(refresh.code, Some(0), "{refresh:#?}");
    let (status, fix) = one(&user.doctor(3), "clock", "system clock", &format!("7m behind {}", ahead.origin()));
    assert_eq!(status, "problem");
    assert!(!fix.is_empty(), "the fix says how to set the clock");
}
