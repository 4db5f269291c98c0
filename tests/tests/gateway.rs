//! `latchkey gateway run` with real peers: the real binary in a private `LATCHKEY_HOME` (file
//! store), a catalog written by each test, and third-party programs on both sides of it.
//!
//! - Client: the reference TypeScript MCP SDK (`tests/peers/mcp-client.mjs`), over stdio and over
//!   Streamable HTTP; it runs a list of steps and prints one JSON line per step.
//! - Upstreams: npm `@modelcontextprotocol/server-everything` as a local process and inside a
//!   Docker container (image built by `tests/support/everything-image.sh` with `docker import`);
//!   a remote MCP server that checks tokens from npm `oidc-provider` by introspection
//!   (`tests/peers/protected-server.mjs` and `oidc-server.mjs`); and a deliberately broken server
//!   (`tests/peers/bad-server.mjs`) for crashes and malformed output.
//!
//! Container tests need a Docker Engine (DOCKER_HOST): `tests/run` starts a private one
//! (`tests/support/with-dockerd.sh`). Without one they skip with a message, unless
//! `LATCHKEY_TEST_DOCKER=1` promises one, which turns the skip into a failure.
//!
//! Every child process is killed when its test ends, and every wait has a deadline.
//! Prerequisites: Node 20 or later and `npm ci --prefix tests/peers`.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use latchkey::paths::{self, Paths};
use latchkey::store::ExposeSecret;
use latchkey::store::{Credential, CredentialId, SecretString, Store, StoreKind, TokenSet};
use latchkey_tests::hostile::Attacker;
use latchkey_tests::recorder::{Recorder, Response};
use latchkey_tests::{Home, fixture, latchkey_bin};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Longest any one client run may take before the test fails (nothing here should come close).
const CLIENT_DEADLINE: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------
// Tests: the process upstream and the SDK client over stdio

#[test]
fn process_upstream_gets_its_token_and_secrets_but_never_a_secret_without_env() {
    let gateway = Setup::new(&local_server("everything", &format!("command: {}", everything_command())));
    gateway.store_local_credential("everything", "access-token-for-everything");

    // Over HTTP, so that the gateway holds a front-door token (in its environment) to keep back.
    let http = gateway.http(&["--servers", "everything"]);
    let steps = http.client(&[
        json!({"list": "tools"}),
        json!({"call": "everything__get-env"}),
        json!({"call": "everything__echo", "arguments": {"message": "through the gateway"}}),
        json!({"list": "prompts"}),
    ]);

    let tools = names(&steps[0]);
    assert!(tools.contains(&"everything__echo".to_string()) && tools.contains(&"everything__get-env".to_string()), "{tools:?}");
    assert!(tools.windows(2).all(|pair| pair[0] < pair[1]), "tools are sorted: {tools:?}");
    assert_injected(&text(&steps[1]), "access-token-for-everything");
    assert_eq!(text(&steps[2]), "Echo: through the gateway");
    assert!(names(&steps[3]).iter().all(|prompt| prompt.starts_with("everything__")), "{:?}", steps[3]);
}

#[test]
fn a_local_server_gets_a_minimal_environment_and_what_its_entry_inherits() {
    let gateway = Setup::new(&format!(
        "servers:\n  everything:\n    command: {}\n    inherit_env: [LATCHKEY_TEST_INHERITED]\n    env: [{{name: FIXED, value: fixed-value}}]\n",
        everything_command()
    ));
    let mut command = client_command("stdio", latchkey_bin().to_str().unwrap(), &["gateway", "run", "--servers", "everything"], None);
    // The gateway's own environment: the keyring's bus, an unrelated variable, and one the entry names.
    gateway
        .prepare(&mut command)
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/run/user/1000/bus-of-the-keyring")
        .env("LATCHKEY_TEST_ARBITRARY", "arbitrary-value")
        .env("LATCHKEY_TEST_INHERITED", "inherited-value")
        .env("LC_MESSAGES", "C");
    let steps = run_client(command, &[json!({"call": "everything__get-env"})]).steps();
    let env_json = text(&steps[0]);
    let env: Value = serde_json::from_str(&env_json).unwrap_or_else(|e| panic!("get-env did not answer JSON ({e}): {env_json}"));
    assert!(env.get("DBUS_SESSION_BUS_ADDRESS").is_none(), "the keyring's bus address stays in the gateway: {env_json}");
    assert!(env.get("LATCHKEY_TEST_ARBITRARY").is_none(), "nor does any other variable: {env_json}");
    assert!(!env_json.contains(paths::HOME_VAR), "{env_json}");
    assert_eq!(env["LATCHKEY_TEST_INHERITED"], "inherited-value", "a variable the entry names is passed: {env_json}");
    assert_eq!(env["FIXED"], "fixed-value", "{env_json}");
    assert_eq!(env["LC_MESSAGES"], "C", "the locale is passed: {env_json}");
    assert!(env["PATH"].is_string() && env["HOME"].is_string(), "what every server needs is passed: {env_json}");
}

#[test]
fn settings_reach_a_server_through_its_placeholders_and_a_missing_required_one_names_the_fix() {
    let gateway = Setup::new(&format!(
        "servers:\n  everything:\n    command: {}\n    env:\n      - {{name: MODE, value: \"{{{{everything.mode}}}}\"}}\n\
         \x20     - {{name: LEVEL, value: \"{{{{everything.level|or:info}}}}\"}}\n    config:\n      - name: everything\n\
         \x20       type: object\n        properties:\n          mode: {{type: string, enum: [fast, safe]}}\n\
         \x20         level: {{type: string}}\n        required: [mode]\n",
        everything_command()
    ));
    // Without its required setting the server does not start, and /health says what to run.
    let http = gateway.http(&["--servers", "everything"]);
    // The gateway starts its servers in the background: wait until this one has been tried.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let health = loop {
        let health = http.health();
        if health["upstreams"]["everything"]["state"] == "failed" || std::time::Instant::now() > deadline {
            break health;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let error = health["upstreams"]["everything"]["error"].as_str().unwrap_or_else(|| panic!("{health:#}"));
    assert!(error.contains("run `latchkey config set everything.mode fast|safe`"), "{health:#}");
    drop(http);

    gateway.latchkey(&["config", "set", "everything.mode", "safe"]);
    let http = gateway.http(&["--servers", "everything"]);
    let env_json = text(&http.client(&[json!({"call": "everything__get-env"})])[0]);
    let env: Value = serde_json::from_str(&env_json).unwrap_or_else(|e| panic!("get-env did not answer JSON ({e}): {env_json}"));
    assert_eq!(env["MODE"], "safe", "the stored setting arrives: {env_json}");
    assert_eq!(env["LEVEL"], "info", "an unset setting takes the placeholder's `or:` default: {env_json}");
}

#[test]
fn a_separator_inside_a_server_name_is_refused() {
    let gateway = Setup::new(&format!("servers:\n  team-notes:\n    command: {}\n", everything_command()));
    let output = gateway
        .command(latchkey_bin())
        .args(["gateway", "run", "--servers", "team-notes", "--separator", "-"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("server `team-notes` contains the separator `-`") && stderr.contains("--separator"), "{stderr}");
}

#[test]
fn list_changed_notifications_reach_the_client() {
    let gateway = Setup::new(&format!("servers:\n  everything:\n    command: {}\n", everything_command()));
    // server-everything registers a session resource for the file, and says so with
    // notifications/resources/list_changed.
    let steps = [
        json!({"list": "resources"}),
        json!({"call": "everything__gzip-file-as-resource",
           "arguments": {"name": "hello.gz", "data": "data:text/plain;base64,aGVsbG8=", "outputType": "resourceLink"}}),
        json!({"wait": "resources", "ms": 10000}),
        json!({"list": "resources"}),
        json!({"read": "demo://resource/session/hello.gz"}),
    ];
    // Over stdio, and to an HTTP session (the gateway keeps its clients by session).
    let http = gateway.http(&["--servers", "everything"]);
    for steps in [gateway.stdio(&["--servers", "everything"], &steps), http.client(&steps)] {
        let uri = "latchkey://everything/demo://resource/session/hello.gz".to_string();
        assert!(!names(&steps[0]).contains(&uri), "{:?}", steps[0]);
        ok(&steps[1]);
        ok(&steps[2]);
        assert!(names(&steps[3]).contains(&uri), "the new resource is listed: {:?}", steps[3]);
        // A resource link names the server's own URI, which goes to the one server that listed it.
        assert_eq!(ok(&steps[4])["contents"][0]["uri"], "demo://resource/session/hello.gz");
    }
}

#[test]
fn two_servers_with_the_same_resource_uri_do_not_shadow_each_other() {
    let everything = everything_command();
    let gateway = Setup::new(&format!("servers:\n  first:\n    command: {everything}\n  second:\n    command: {everything}\n"));
    let own = "demo://resource/session/same.gz";
    let gzip = |data: &str| json!({"name": "same.gz", "data": format!("data:text/plain;base64,{data}"), "outputType": "resourceLink"});
    let steps = gateway.stdio(
        &["--servers", "first,second"],
        &[
            json!({"call": "first__gzip-file-as-resource", "arguments": gzip("Zmlyc3Q=")}),
            json!({"call": "second__gzip-file-as-resource", "arguments": gzip("c2Vjb25kIHNlcnZlcg==")}),
            json!({"list": "resources"}),
            json!({"read": format!("latchkey://first/{own}")}),
            json!({"read": format!("latchkey://second/{own}")}),
            json!({"read": own}),
        ],
    );
    ok(&steps[0]);
    ok(&steps[1]);
    let listed = names(&steps[2]);
    for server in ["first", "second"] {
        assert!(listed.contains(&format!("latchkey://{server}/{own}")), "{server}'s resource is listed: {listed:?}");
    }
    assert!(!listed.contains(&own.to_string()), "{listed:?}");
    let first = ok(&steps[3])["contents"][0]["blob"].clone();
    let second = ok(&steps[4])["contents"][0]["blob"].clone();
    assert!(first.is_string() && second.is_string() && first != second, "each read reached its own server: {first} {second}");
    let error = steps[5].to_string();
    assert!(error.contains("listed by several servers") && error.contains(&format!("latchkey://second/{own}")), "{error}");
}

// ---------------------------------------------------------------------------------------------
// Tests: the container upstream

#[test]
fn container_upstream_gets_its_token_runs_confined_and_is_removed() {
    let Some(image) = docker_image() else { return };
    let gateway = Setup::new(&local_server("boxed", &format!("image: {image}")));
    gateway.store_local_credential("boxed", "access-token-for-the-container");

    let http = gateway.http(&["--servers", "boxed"]);
    let steps = http.client(&[json!({"call": "boxed__get-env"})]);
    assert_injected(&text(&steps[0]), "access-token-for-the-container");

    let ids = docker(&["ps", "-q", "--filter", "label=dev.latchkey.server=boxed"]);
    let id = ids.lines().next().unwrap_or_else(|| panic!("no running container is labelled for server boxed"));
    let inspected: Value = serde_json::from_str(&docker(&["inspect", id])).unwrap();
    let host = &inspected[0]["HostConfig"];
    assert_eq!(host["NetworkMode"], "none", "{host:#}");
    assert!(host["SecurityOpt"].to_string().contains("no-new-privileges"), "{host:#}");
    assert_eq!(host["CapDrop"], json!(["ALL"]), "{host:#}");
    assert_eq!(host["PidsLimit"], latchkey::gateway::container::PIDS_LIMIT, "{host:#}");
    assert_eq!(host["AutoRemove"], true, "{host:#}");
    // The label names the gateway instance, whose lock the gateway holds while it lives.
    let instance = inspected[0]["Config"]["Labels"]["dev.latchkey.gateway"].as_str().unwrap().to_string();
    assert!(instance.starts_with(&format!("{}-", http.child.pid())), "{instance}");
    assert!(gateway.home.path().join(format!("cache/gateways/{instance}.lock")).is_file(), "{instance}");

    drop(http);
    eventually("the container is removed after the gateway ends", || {
        docker(&["ps", "-aq", "--filter", "label=dev.latchkey.server=boxed"]).trim().is_empty()
    });
}

#[test]
fn containers_of_a_gateway_that_died_are_removed_and_those_of_a_live_one_are_kept() {
    let Some(image) = docker_image() else { return };
    // Its own server name: another test waits for the containers of `boxed` to go.
    let gateway = Setup::new(&local_server("sweeper", &format!("image: {image}")));
    gateway.store_local_credential("sweeper", "access-token-for-the-container");
    // Two containers labelled as earlier gateways': one whose instance lock nobody holds any more
    // (that gateway died), one whose lock this test holds (that gateway still runs).
    let instances = gateway.home.path().join("cache/gateways");
    fs::create_dir_all(&instances).unwrap();
    fs::write(instances.join("4242-dead.lock"), "").unwrap();
    let live = fs::File::create(instances.join("4343-beef.lock")).unwrap();
    live.lock().unwrap();
    let create = |owner: &str| {
        let label = format!("dev.latchkey.gateway={owner}");
        docker(&["create", "--network", "none", "--label", &label, "--label", "dev.latchkey.test=leftover", &image]).trim().to_string()
    };
    let (dead, alive) = (create("4242-dead"), create("4343-beef"));

    let http = gateway.http(&["--servers", "sweeper"]);
    let remaining = docker(&["ps", "-aq", "--no-trunc", "--filter", "label=dev.latchkey.test=leftover"]);
    let _ = docker(&["rm", "-f", &alive]);
    drop(http);
    assert!(!remaining.contains(&dead), "the dead gateway's container is removed: {remaining}");
    assert!(remaining.contains(&alive), "the live gateway's container is kept: {remaining}");
    assert!(!instances.join("4242-dead.lock").exists(), "the dead gateway's lock file is forgotten");
}

// ---------------------------------------------------------------------------------------------
// Tests: the HTTP front door with the SDK client

#[test]
fn sdk_client_over_http_needs_the_token_and_sees_every_server() {
    let gateway = Setup::new(&format!(
        "servers:\n  everything:\n    command: {}\n  bad:\n    command: [node, {}]\n",
        everything_command(),
        peer("bad-server.mjs").display()
    ));
    let http = gateway.http(&["--servers", "everything,bad"]);

    let refused = run_client(client_command("http", &http.url, &[], None), &[json!({"list": "tools"})]);
    assert_ne!(refused.code, Some(0), "a client without the token must not get in: {refused:?}");
    assert!(refused.stderr.contains("send Authorization: Bearer <token>"), "the 401 says what is missing: {}", refused.stderr);

    let steps = http.client(&[
        json!({"list": "tools"}),
        json!({"call": "everything__get-sum", "arguments": {"a": 2, "b": 40}}),
        json!({"call": "bad__echo", "arguments": {"message": "hi"}}),
    ]);
    let tools = names(&steps[0]);
    assert!(tools.contains(&"bad__echo".to_string()) && tools.contains(&"everything__get-sum".to_string()), "{tools:?}");
    assert!(text(&steps[1]).contains("42"), "{:?}", steps[1]);
    assert_eq!(text(&steps[2]), "echo: hi");

    let health_url = http.url.replace("/mcp", "/health");
    let (status, _) = http_get(&health_url, &[]);
    assert_eq!(status, 200);
    // A DNS-rebinding page sends its own name as Host, and its own Origin: rmcp refuses both on /mcp.
    let port = http.url.split(':').nth(2).and_then(|rest| rest.split('/').next()).unwrap();
    let bearer = format!("Bearer {}", http.token);
    for (header, value) in [("Host", format!("evil.example:{port}")), ("Origin", "http://evil.example".to_string())] {
        let (status, body) = http_get(&http.url, &[(header, &value), ("Authorization", &bearer)]);
        assert_eq!(status, 403, "{header}: {value} must be refused on /mcp: {body}");
    }
    // The same page reads /health the same way.
    for (header, value) in [("Host", format!("evil.example:{port}")), ("Origin", "http://evil.example".to_string())] {
        let (status, body) = http_get(&health_url, &[(header, &value)]);
        assert_eq!(status, 403, "{header}: {value} must be refused on /health: {body}");
        assert!(body.contains("refused") && !body.contains("everything"), "{header}: {body}");
    }
    let (status, _) = http_get(&health_url, &[("Host", &format!("localhost:{port}")), ("Origin", "http://localhost:3000")]);
    assert_eq!(status, 200, "loopback names are fine");
    let health = http.health();
    assert_eq!(health["status"], "ok", "{health:#}");
    assert_eq!(health["upstreams"]["everything"]["state"], "running", "{health:#}");
}

// ---------------------------------------------------------------------------------------------
// Tests: HTTP sessions end, and are limited

#[test]
fn http_sessions_that_are_deleted_or_left_idle_end_with_everything_they_held() {
    let gateway = Setup::new(&format!("servers:\n  everything:\n    command: {}\n", everything_command()));
    let http = gateway.http(&["--servers", "everything", "--session-idle-timeout", "8"]);
    // The server is up first, so that opening the sessions takes well under their idle timeout.
    eventually("the server is up", || http.health()["upstreams"]["everything"]["state"] == "running");
    let sessions: Vec<String> = (0..3).map(|n| http.session(n)).collect();
    let open = |http: &HttpGateway| http.health()["sessions"].clone();
    assert_eq!(open(&http)["open"], 3, "{:#}", http.health());
    assert_eq!(open(&http)["notified_clients"], 3, "every session is a client to notify: {:#}", http.health());

    // DELETE ends a session at once, and the gateway stops holding it as a client.
    assert_eq!(http.delete(&sessions[0]), 202);
    let after_delete = open(&http);
    assert_eq!((after_delete["open"].as_u64(), after_delete["notified_clients"].as_u64()), (Some(2), Some(2)), "{after_delete:#}");
    assert_eq!(http.call(&sessions[0], "gone").0, 404, "a deleted session is unknown");

    // The two never deleted end after the idle timeout, and so does the gateway's hold on them.
    eventually("the idle sessions ended", || open(&http)["open"] == 0);
    eventually("the gateway forgot their clients", || open(&http)["notified_clients"] == 0);
    assert_eq!(http.call(&sessions[1], "late").0, 404, "an expired session is unknown; its client starts a new one");
    let fresh = http.session(3);
    assert!(http.call(&fresh, "new").1.contains("Echo: new"));
}

#[test]
fn calls_the_http_hot_path_answers_keep_their_session_alive_and_a_foreign_page_is_refused() {
    let gateway = Setup::new(&format!("servers:\n  everything:\n    command: {}\n", everything_command()));
    let http = gateway.http(&["--servers", "everything", "--session-idle-timeout", "3"]);
    eventually("the server is up", || http.health()["upstreams"]["everything"]["state"] == "running");
    let session = http.session(0);
    // Calls answered without rmcp, for twice the idle timeout: they count as the session's activity.
    for n in 0..6 {
        let (status, body) = http.call(&session, &format!("keep {n}"));
        assert!(status == 200 && body.contains(&format!("Echo: keep {n}")), "call {n}: {status} {body}");
        std::thread::sleep(Duration::from_secs(1));
    }
    assert_eq!(http.health()["sessions"]["open"], 1, "{:#}", http.health());
    // A DNS-rebinding page that learnt the session and the token is refused on the hot path too.
    let port = http.url.split(':').nth(2).and_then(|rest| rest.split('/').next()).unwrap();
    let body =
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "everything__echo", "arguments": {"message": "x"}}});
    for (header, value) in [("Host", format!("evil.example:{port}")), ("Origin", "http://evil.example".to_string())] {
        let mut headers = http.session_headers(&session).to_vec();
        headers.push((header, value.clone()));
        let response = http_request("POST", &http.url, &headers, &body.to_string());
        assert_eq!(response.status, 403, "{header}: {value} must be refused: {}", response.body);
    }
}

#[test]
fn a_session_beyond_the_limit_gets_503_with_retry_after_until_one_ends() {
    let gateway = Setup::new(&format!("servers:\n  everything:\n    command: {}\n", everything_command()));
    let http = gateway.http(&["--servers", "everything", "--max-sessions", "2"]);
    let sessions: Vec<String> = (0..2).map(|n| http.session(n)).collect();

    let refused = http.initialize(&[]);
    assert_eq!(refused.status, 503, "{refused:?}");
    assert_eq!(refused.header("retry-after"), Some("60"), "{refused:?}");
    let error: Value = serde_json::from_str(&refused.body).unwrap_or_else(|e| panic!("{e}: {}", refused.body));
    assert_eq!(error["jsonrpc"], "2.0");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("all 2 sessions are in use") && message.contains("DELETE") && message.contains("--max-sessions"), "{message}");
    // A foreign page learns nothing, not even that the gateway is full.
    let foreign = http.initialize(&[("Origin", "http://evil.example")]);
    assert_eq!(foreign.status, 403, "{foreign:?}");
    assert!(!foreign.body.contains("sessions"), "{foreign:?}");

    // The open sessions keep working; once one ends, a new one gets in.
    assert!(http.call(&sessions[1], "still here").1.contains("Echo: still here"));
    assert_eq!(http.delete(&sessions[0]), 202);
    let admitted = http.session(2);
    assert!(http.call(&admitted, "admitted").1.contains("Echo: admitted"));
    assert_eq!(http.health()["sessions"]["open"], 2);
}

// ---------------------------------------------------------------------------------------------
// Tests: a remote upstream with tokens from oidc-provider

#[test]
fn remote_token_that_expires_is_refreshed_without_the_client_noticing() {
    // Access tokens live 8 s; the gateway's scheduler refreshes them before they expire.
    let remote = Remote::start(8);
    remote.setup.authorize("remote");

    let steps = remote
        .setup
        .stdio(&["--servers", "remote"], &[json!({"call": "remote__whoami"}), json!({"sleep": 10_000}), json!({"call": "remote__whoami"})]);
    let (first, second) = (identity(&steps[0]), identity(&steps[2]));
    assert_eq!(first["sub"], "alice");
    assert_ne!(first["token"], second["token"], "the first token expired during the session; a new one must have been used");
}

#[test]
fn remote_401_refreshes_once_and_retries() {
    // The server's tokens live 3 s, but the stored credential claims an hour (a token the server
    // stopped accepting early): only the server's 401 can tell the gateway.
    let remote = Remote::start(3);
    remote.setup.authorize("remote");
    remote.setup.edit_credential("remote", |credential| {
        credential.tokens.expires_at = Some(SystemTime::now() + Duration::from_secs(3600));
    });

    let http = remote.setup.http(&["--servers", "remote"]);
    let steps = http.client(&[json!({"call": "remote__whoami"}), json!({"sleep": 4500}), json!({"call": "remote__whoami"})]);
    let (first, second) = (identity(&steps[0]), identity(&steps[2]));
    assert_ne!(first["token"], second["token"], "{steps:?}");
    http.child.wait_for("answered 401; refreshing the token and retrying once", Duration::from_secs(5));
}

#[test]
fn a_revoked_grant_is_reported_not_hidden() {
    let remote = Remote::start(3600);
    remote.setup.authorize("remote");
    let http = remote.setup.http(&["--servers", "remote"]);
    // oidc-provider revokes the whole grant with the access token, so the refresh fails too.
    let steps = http.client(&[
        json!({"call": "remote__whoami"}),
        json!({"post": format!("{}/revoke-last", remote.url.trim_end_matches("/mcp"))}),
        json!({"call": "remote__whoami"}),
    ]);
    identity(&steps[0]);
    assert_eq!(ok(&steps[1]), 204);
    let message = tool_error(&steps[2]);
    assert!(message.contains("needs re-authorization") && message.contains("latchkey oauth authorize remote"), "{message}");

    let health = http.health();
    assert_eq!(health["status"], "degraded", "{health:#}");
    assert!(health["upstreams"]["remote"]["error"].as_str().unwrap_or("").contains("latchkey oauth authorize remote"), "{health:#}");
    let listed = remote.setup.latchkey(&["oauth", "ls", "--json"]);
    assert!(listed.contains("needs-reauthorization"), "{listed}");
}

#[test]
fn a_request_for_more_scope_is_reported_and_the_server_keeps_working() {
    // The gateway cannot ask anyone to sign in: the call that needs more scope fails with the
    // command that gets it, and the other tools keep working.
    let remote = Remote::start(3600);
    remote.setup.authorize("remote");
    let http = remote.setup.http(&["--servers", "remote"]);
    let steps = http.client(&[json!({"call": "remote__admin"}), json!({"call": "remote__whoami"})]);
    let message = tool_error(&steps[0]);
    assert!(message.contains("`admin`") && message.contains("latchkey oauth authorize remote --scopes"), "{message}");
    assert_eq!(identity(&steps[1])["sub"], "alice");
    let health = http.health();
    assert_eq!(health["upstreams"]["remote"]["state"], "running", "{health:#}");
    assert_eq!(health["upstreams"]["remote"]["restarts"], 0, "{health:#}");
}

// ---------------------------------------------------------------------------------------------
// Tests: signing in from inside the client (URL-mode elicitation)

/// What a client that declares URL elicitation does with a server that needs a sign-in: list,
/// call (refused with the elicitation), follow the link as a person would (the scripted browser,
/// logging to `CONSENT_LOG`), wait for the completion and the new tools, and call again.
fn signing_in_steps(server: &str) -> Vec<Value> {
    vec![
        json!({"list": "tools"}),
        json!({"call": format!("{server}__whoami")}),
        json!({"follow": "elicitation"}),
        json!({"wait": "elicitation", "ms": 30_000}),
        json!({"wait": "tools", "ms": 30_000}),
        json!({"list": "tools"}),
        json!({"call": format!("{server}__whoami")}),
    ]
}

/// Check a run of [`signing_in_steps`] for `server` in `setup`; `log` is everything the client
/// and the gateway printed.
fn assert_signed_in_through_url_elicitation(setup: &Setup, server: &str, steps: &[Value], consent_log: &Path, log: &str) {
    assert_eq!(names(&steps[0]), [format!("{server}__sign_in")], "the server stays visible by its sign-in tool");

    // The first call is refused with the elicitation: a link to the gateway's loopback page.
    assert_eq!(steps[1]["code"], -32042, "{}", steps[1]);
    let elicitation = &steps[1]["data"]["elicitations"][0];
    assert_eq!(elicitation["mode"], "url", "{elicitation}");
    let (id, url) = (elicitation["elicitationId"].as_str().unwrap(), elicitation["url"].as_str().unwrap());
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with(&format!("/sign-in/{id}")), "{url}");

    // The person follows it: the page sends the browser to the provider, and back to latchkey.
    assert_eq!(ok(&steps[2])["exitCode"], 0, "the scripted browser failed: {}", fs::read_to_string(consent_log).unwrap_or_default());
    let browser = fs::read_to_string(consent_log).unwrap();
    assert!(
        browser.contains("sign-in page 303") && browser.contains("status 200") && browser.contains("go back to your AI client"),
        "{browser}"
    );
    assert_eq!(ok(&steps[3])["completed"], json!([id]), "notifications/elicitation/complete for that link");
    ok(&steps[4]);
    let tools = names(&steps[5]);
    assert!(tools.contains(&format!("{server}__whoami")) && !tools.contains(&format!("{server}__sign_in")), "{tools:?}");

    // The retry succeeds with the stored token (the server answers its SHA-256 fingerprint),
    // which never passed through the client: no message it received, nor the gateway's log.
    let identity = identity(&steps[6]);
    assert_eq!(identity["sub"], "alice");
    let store = setup.store();
    let ids = store.credential_ids().unwrap();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let stored = store.load_credential(&ids[0]).unwrap().unwrap();
    let token = stored.tokens.access_token.expose_secret();
    assert_eq!(identity["token"], hex::encode(Sha256::digest(token.as_bytes()))[..12], "the server got the stored token");
    assert!(!log.contains(token), "the client's output and the gateway's log never hold the token");
}

#[test]
fn a_server_that_needs_a_sign_in_is_signed_in_through_url_elicitation_over_stdio() {
    let remote = Remote::start(3600);
    let consent_log = remote.setup.home.path().join("consent.log");
    let env = [("MCP_ELICITATION", "url"), ("CONSENT_LOG", consent_log.to_str().unwrap())];
    let run = remote.setup.stdio_run_with(&["--servers", "remote"], &env, &signing_in_steps("remote"));
    // Over stdio the client's output holds the gateway's log too.
    assert_signed_in_through_url_elicitation(&remote.setup, "remote", &run.steps(), &consent_log, &run.stderr);
}

#[test]
fn a_server_that_needs_a_sign_in_is_signed_in_through_url_elicitation_over_http() {
    let remote = Remote::start(3600);
    let consent_log = remote.setup.home.path().join("consent.log");
    let env = [("MCP_ELICITATION", "url"), ("CONSENT_LOG", consent_log.to_str().unwrap())];
    let http = remote.setup.http(&["--servers", "remote"]);
    // The completion reaches an HTTP client on its session's standalone stream (GET /mcp).
    let run = http.client_run_with(&env, &signing_in_steps("remote"));
    let log = format!("{}\n{}", run.stderr, http.child.output());
    assert_signed_in_through_url_elicitation(&remote.setup, "remote", &run.steps(), &consent_log, &log);
}

#[test]
fn a_remote_server_that_refuses_the_gateway_is_signed_in_through_url_elicitation_by_discovery() {
    // No `oauth` section: the sign-in is offered because the server refused (401), and the
    // authorization server its metadata names registers latchkey dynamically.
    let peers = AuthPeers::start(3600);
    let setup = Setup::new(&format!("servers:\n  found:\n    remote: {{url: \"{}\"}}\n", peers.url));
    let consent_log = setup.home.path().join("consent.log");
    let env = [("MCP_ELICITATION", "url"), ("CONSENT_LOG", consent_log.to_str().unwrap())];
    let run = setup.stdio_run_with(&["--servers", "found"], &env, &signing_in_steps("found"));
    assert_signed_in_through_url_elicitation(&setup, "found", &run.steps(), &consent_log, &run.stderr);
}

#[test]
fn a_client_without_url_elicitation_gets_the_link_and_the_command_in_the_tool_error() {
    let remote = Remote::start(3600);
    let steps = remote.setup.stdio(&["--servers", "remote"], &[json!({"call": "remote__whoami"}), json!({"call": "remote__sign_in"})]);
    for step in &steps {
        let message = tool_error(step);
        assert!(message.contains("To sign in, open http://127.0.0.1:") && message.contains("/sign-in/"), "{message}");
        assert!(message.contains("or run `latchkey oauth authorize remote`"), "{message}");
    }
    // One sign-in per server: both calls were given the same link.
    let link = |step: &Value| tool_error(step).split_whitespace().find(|word| word.starts_with("http://")).unwrap().to_string();
    assert_eq!(link(&steps[0]), link(&steps[1]));
}

#[test]
fn remote_headers_arrive_expanded_and_an_oauth_token_replaces_their_authorization() {
    let remote = Remote::with_headers(3600, r#"X-Api-Key: "key-${API_KEY}", X-Team: "$TEAM-$$1", Authorization: "Bearer $API_KEY""#);
    remote.setup.authorize("remote");
    remote.setup.store().set_secret("remote.api_key", &SecretString::from("api-key-9f3e")).unwrap();

    let steps = remote.setup.stdio(&["--servers", "remote"], &[json!({"call": "remote__headers"}), json!({"call": "remote__whoami"})]);
    let headers: Value = serde_json::from_str(&text(&steps[0])).unwrap();
    assert_eq!(headers["x-api-key"], "key-api-key-9f3e", "a secret's value, put in: {headers}");
    assert_eq!(headers["x-team"], "blue-$1", "a fixed variable, and `$$` as `$`: {headers}");
    assert_eq!(headers["authorization"], json!([identity(&steps[1])["token"]]), "only the OAuth token is sent: {headers}");

    // `tools --server` connects the same way; it says (at debug level) which Authorization wins,
    // and never prints a header's value.
    let output =
        remote.setup.command(latchkey_bin()).args(["-vv", "tools", "call", "--server", "remote", "headers", "--json"]).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{stderr}");
    let called: Value = serde_json::from_str(&stdout).unwrap();
    let headers: Value = serde_json::from_str(called["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(headers["x-api-key"], "key-api-key-9f3e", "{headers}");
    assert!(stderr.contains("in place of the catalog's `Authorization` header"), "{stderr}");
    assert!(!stderr.contains("api-key-9f3e"), "a header's value is never logged: {stderr}");
}

#[test]
fn a_redirect_to_another_origin_is_not_followed_with_the_catalog_headers() {
    // Whatever connects to the sink would have been sent the API key.
    let sink = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    sink.set_nonblocking(true).unwrap();
    let elsewhere = format!("http://{}/mcp", sink.local_addr().unwrap());
    let redirector = Redirector::start(&elsewhere);
    let gateway = Setup::new(&format!(
        "servers:\n  hop:\n    remote: {{url: \"{}\", headers: {{X-Api-Key: \"$API_KEY\"}}}}\n\
         \x20   secrets:\n      - {{name: hop.api_key, env: API_KEY}}\n",
        redirector.url
    ));
    gateway.store().set_secret("hop.api_key", &SecretString::from("api-key-never-elsewhere")).unwrap();

    let output = gateway.command(latchkey_bin()).args(["tools", "ls", "--server", "hop"]).stdin(Stdio::null()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(redirector.hits() > 0, "the server was asked: {stderr}");
    assert!(stderr.contains("307"), "the redirect is the answer: {stderr}");
    assert!(!stderr.contains("api-key-never-elsewhere"), "{stderr}");
    match sink.accept() {
        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the other origin was contacted: {other:?}"),
    }
}

/// An HTTP server that answers every request with a 307 to `location`, counting them.
struct Redirector {
    url: String,
    hits: Arc<Mutex<usize>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Redirector {
    fn start(location: &str) -> Redirector {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        let (hits, stop) = (Arc::new(Mutex::new(0)), Arc::new(std::sync::atomic::AtomicBool::new(false)));
        let (counter, stopped, location) = (hits.clone(), stop.clone(), location.to_string());
        let thread = thread::spawn(move || {
            while !stopped.load(std::sync::atomic::Ordering::SeqCst) {
                let Ok((mut stream, _)) = listener.accept() else {
                    thread::sleep(Duration::from_millis(10));
                    continue;
                };
                stream.set_nonblocking(false).unwrap();
                *counter.lock().unwrap() += 1;
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("content-length")
                    {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let _ = write!(
                    stream,
                    "HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        Redirector { url, hits, stop, thread: Some(thread) }
    }

    fn hits(&self) -> usize {
        *self.hits.lock().unwrap()
    }
}

impl Drop for Redirector {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn a_header_whose_secret_is_not_stored_fails_the_start_with_the_command_that_stores_it() {
    let remote = Remote::with_headers(3600, r#"X-Api-Key: "key-${API_KEY}""#);
    remote.setup.authorize("remote");

    let output = remote.setup.command(latchkey_bin()).args(["tools", "ls", "--server", "remote"]).stdin(Stdio::null()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    for part in ["header `X-Api-Key`", "$API_KEY", "`latchkey secret set remote.api_key`"] {
        assert!(stderr.contains(part), "{part}: {stderr}");
    }

    let http = remote.setup.http(&["--servers", "remote"]);
    eventually("the gateway tried to start the server", || http.health()["upstreams"]["remote"]["state"] == "failed");
    let health = http.health();
    let error = health["upstreams"]["remote"]["error"].as_str().unwrap_or("");
    assert!(error.contains("header `X-Api-Key`") && error.contains("latchkey secret set remote.api_key"), "{health:#}");
}

// ---------------------------------------------------------------------------------------------
// Tests: one credential per binding

#[test]
fn two_providers_on_one_server_each_send_their_own_token_and_each_is_refreshed() {
    // Access tokens live 8 s: the scheduler must refresh both credentials, not only the first.
    let peers = AuthPeers::start(8);
    let issuer = &peers.issuer;
    let provider = |secret: &str, client: &str, method: &str| {
        format!(
            "        - provider: standard\n          secret: {secret}\n          server_metadata:\n            issuer: {issuer}\n\
             \x20           authorization_endpoint: {issuer}/auth\n            token_endpoint: {issuer}/token\n\
             \x20           token_endpoint_auth_methods_supported: [{method}]\n          registration: {{client_id: {client}}}\n"
        )
    };
    let gateway = Setup::new(&format!(
        "servers:\n  pair:\n    command: {}\n    secrets:\n      - {{name: pair.token_a, env: TOKEN_A}}\n\
         \x20     - {{name: pair.token_b, env: TOKEN_B}}\n      - {{name: pair.token_a.client_secret}}\n    oauth:\n\
         \x20     scopes: [openid, offline_access]\n      providers:\n{}{}",
        everything_command(),
        provider("pair.token_a", "basic-client", "client_secret_basic"),
        provider("pair.token_b", "public-client", "none"),
    ));
    // Each provider has its own client secret: A's never goes to B's authorization server.
    gateway.store().set_secret("pair.token_a.client_secret", &SecretString::from("basic-secret")).unwrap();

    // Two providers: each is authorized on its own, named by the secret that receives its token.
    let ambiguous = gateway.try_authorize(&["pair"]);
    let said = String::from_utf8_lossy(&ambiguous.stderr);
    assert!(!ambiguous.status.success() && said.contains("--provider") && said.contains("pair.token_b"), "{said}");
    for secret in ["pair.token_a", "pair.token_b"] {
        let output = gateway.try_authorize(&["pair", "--provider", secret]);
        assert!(output.status.success(), "authorizing {secret}: {}", String::from_utf8_lossy(&output.stderr));
    }
    let listed: Value = serde_json::from_str(&gateway.latchkey(&["oauth", "ls", "--json"])).unwrap();
    let mut bindings: Vec<(String, String)> = listed["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|view| (view["binding"].as_str().unwrap_or("").to_string(), view["client_id"].as_str().unwrap().to_string()))
        .collect();
    bindings.sort();
    assert_eq!(
        bindings,
        [("pair[pair.token_a]".to_string(), "basic-client".to_string()), ("pair[pair.token_b]".to_string(), "public-client".to_string())],
        "oauth ls names each provider's credential: {listed:#}"
    );
    let refreshed: Value = serde_json::from_str(&gateway.latchkey(&["oauth", "refresh", "pair", "--json"])).unwrap();
    assert_eq!(refreshed["credentials"].as_array().map(Vec::len), Some(2), "oauth refresh renews each provider's: {refreshed:#}");
    let stored = |client: &str| {
        let store = gateway.store();
        let id = store.credential_ids().unwrap().into_iter().find(|id| id.server == "pair" && id.client_id == client).expect("stored");
        store.load_credential(&id).unwrap().unwrap().tokens.access_token.expose_secret().to_string()
    };
    let http = gateway.http(&["--servers", "pair"]);
    let env = || -> Value { serde_json::from_str(&text(&http.client(&[json!({"call": "pair__get-env"})])[0])).unwrap() };
    // Tokens that live 8 s are refreshed while this runs (and on every start of the server): the
    // server's variables are compared with what is stored right after it answered.
    let consistent = || {
        let now = env();
        let (a, b) = (stored("basic-client"), stored("public-client"));
        (now["TOKEN_A"] == a.as_str() && now["TOKEN_B"] == b.as_str()).then_some((a, b))
    };
    let mut first = None;
    eventually("the server gets provider A's token in A's variable and B's in B's", || {
        first = consistent();
        first.is_some()
    });
    let first = first.unwrap();
    assert_ne!(first.0, first.1);

    // Both expire within 8 s; the scheduler refreshes each and restarts the server with both.
    eventually("both credentials are refreshed and the server runs with both new tokens", || {
        consistent().is_some_and(|(a, b)| a != first.0 && b != first.1)
    });
    let health = http.health();
    for name in ["pair[pair.token_a]", "pair[pair.token_b]"] {
        let state = health["credentials"][name]["state"].as_str().unwrap_or("absent");
        assert!(["authorized", "refreshing"].contains(&state), "/health shows each credential: {health:#}");
    }
}

#[test]
fn a_client_credentials_server_gets_a_token_with_no_sign_in_and_a_new_one_before_it_ends() {
    // Tokens live 8 s; no one runs `oauth authorize`: the gateway asks for the client's own token.
    let peers = AuthPeers::start(8);
    let issuer = &peers.issuer;
    let gateway = Setup::new(&everything_with_oauth(
        "robot",
        "'mcp:tools'",
        OAuthEntry { grant: Some("client_credentials"), ..OAuthEntry::standard(issuer, "service-client", "client_secret_basic") },
    ));
    gateway.store().set_secret("robot.client_secret", &SecretString::from("service-secret")).unwrap();
    let stored = || {
        let store = gateway.store();
        let id = store.credential_ids().unwrap().into_iter().find(|id| id.server == "robot")?;
        let credential = store.load_credential(&id).unwrap().unwrap();
        assert_eq!(credential.grant, latchkey::store::Grant::ClientCredentials);
        Some(credential.tokens.access_token.expose_secret().to_string())
    };
    assert_eq!(stored(), None, "nothing is stored before the gateway runs");
    let http = gateway.http(&["--servers", "robot"]);
    let token = || -> Value {
        serde_json::from_str::<Value>(&text(&http.client(&[json!({"call": "robot__get-env"})])[0])).unwrap()["TOKEN"].clone()
    };
    let mut first = None;
    eventually("the server runs with the client's own token, which the gateway asked for and stored", || {
        first = stored().filter(|stored| token() == stored.as_str());
        first.is_some()
    });
    let first = first.unwrap();
    eventually("a new token is asked for before the first ends, and the server gets it", || {
        stored().is_some_and(|now| now != first && token() == now.as_str())
    });
}

#[test]
fn two_accounts_of_one_server_are_served_side_by_side_each_with_its_own_token() {
    let peers = AuthPeers::start(3600);
    let issuer = &peers.issuer;
    let gateway =
        Setup::new(&everything_with_oauth("notes", "openid, offline_access", OAuthEntry::standard(issuer, "public-client", "none")));
    for (account, login) in [("work", "alice"), ("home", "bob")] {
        let output = gateway
            .command(latchkey_bin())
            .args(["oauth", "authorize", "notes", "--account", account, "--timeout", "60"])
            .env("BROWSER", peer("browser.sh"))
            .env_remove("CONSENT_MODE")
            .env("CONSENT_LOGIN", login)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(output.status.success(), "authorizing {account}: {}", String::from_utf8_lossy(&output.stderr));
    }
    let stored = |account: &str| {
        let store = gateway.store();
        let id = store.credential_ids().unwrap().into_iter().find(|id| id.account.as_deref() == Some(account)).expect("stored");
        store.load_credential(&id).unwrap().unwrap().tokens.access_token.expose_secret().to_string()
    };
    assert_ne!(stored("work"), stored("home"));
    let listed: Value = serde_json::from_str(&gateway.latchkey(&["oauth", "ls", "--json"])).unwrap();
    let mut accounts: Vec<(String, String)> = listed["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .map(|view| (view["account"].as_str().unwrap_or("").to_string(), view["signed_in_as"].as_str().unwrap_or("").to_string()))
        .collect();
    accounts.sort();
    assert_eq!(accounts, [("home".to_string(), "bob".to_string()), ("work".to_string(), "alice".to_string())], "{listed:#}");

    let (code, said) = gateway.run(&["gateway", "run", "--servers", "notes@hobby"], b"");
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("server `notes` has no account `hobby` (its accounts: home, work)"), "{said}");
    assert!(said.contains("`latchkey oauth authorize notes --account hobby`"), "{said}");

    let http = gateway.http(&["--servers", "notes@work,notes@home"]);
    let token = |served: &str| -> Value {
        serde_json::from_str::<Value>(&text(&http.client(&[json!({"call": format!("{served}__get-env")})])[0])).unwrap()["TOKEN"].clone()
    };
    eventually("each account's server runs with that account's token", || {
        token("notes-work") == stored("work").as_str() && token("notes-home") == stored("home").as_str()
    });
}

/// An account API shaped like Atlassian's: two sites the token reaches, and who signed in.
fn account_api() -> Recorder {
    Recorder::answering(|request| match request.target.as_str() {
        "/accessible-resources" => Response::json(
            200,
            json!([
                {"id": "c-1", "name": "Acme", "url": "https://acme.example", "scopes": ["read:jira-work"]},
                {"id": "c-2", "name": "Globex", "url": "https://globex.example", "scopes": ["read:jira-work"]},
            ]),
        ),
        "/me" => Response::json(200, json!({"account_id": "712020:mia", "email": "mia@example.com", "account_type": "atlassian"})),
        _ => Response::empty(404),
    })
}

#[test]
fn after_sign_in_the_provider_learns_the_account_and_the_chosen_sites_context_reaches_the_server() {
    let peers = AuthPeers::start(3600);
    let api = account_api();
    let issuer = &peers.issuer;
    // The provider's calls go to the account API, an origin the flow names (its userinfo endpoint).
    let (config, userinfo) = (format!("{{api: \"{}\"}}", api.origin()), api.url("/me"));
    let gateway = Setup::new(&everything_with_oauth(
        "jira",
        "openid, offline_access",
        OAuthEntry {
            provider: "sites",
            config: Some(&config),
            context: Some("{CLOUD_ID: cloud_id, SITE_URL: site_url, KIND: account_type}"),
            userinfo: Some(&userinfo),
            ..OAuthEntry::standard(issuer, "public-client", "none")
        },
    ));
    let component = gateway.home.path().join("sites.wasm");
    fs::write(&component, fixture("sites", "")).unwrap();
    gateway.latchkey(&["provider", "install", component.to_str().unwrap()]);
    let stored = || {
        let store = gateway.store();
        let id = store.credential_ids().unwrap().into_iter().find(|id| id.server == "jira")?;
        store.load_credential(&id).unwrap()
    };

    // Two sites, no terminal to ask on and no `--site`: the token is kept, the error names both.
    let unchosen = gateway.try_authorize(&["jira"]);
    let said = String::from_utf8_lossy(&unchosen.stderr);
    assert!(!unchosen.status.success(), "{said}");
    assert!(said.contains("signed in to `jira` and stored the token"), "{said}");
    assert!(said.contains("the token reaches 2 sites and none was chosen: `c-1` (Acme, https://acme.example), `c-2` (Globex"), "{said}");
    assert!(said.contains("sign in again with `--site <id>`"), "{said}");
    let kept = stored().expect("the token was stored all the same");
    assert!(kept.context.is_empty() && kept.site.is_none(), "{:?}", kept.context);
    let (code, said) = gateway.run(&["tools", "call", "--server", "jira", "get-env"], b"");
    assert_ne!(code, Some(0), "{said}");
    assert!(said.contains("maps $CLOUD_ID to `cloud_id`, which its sign-in did not learn"), "{said}");

    let nowhere = gateway.try_authorize(&["jira", "--site", "initech"]);
    let said = String::from_utf8_lossy(&nowhere.stderr);
    assert!(said.contains("`--site initech` matches none of them") && said.contains("`c-1` (Acme"), "{said}");

    // Named by its name: the site's context and the account are kept.
    let chosen = gateway.try_authorize(&["jira", "--site", "Globex"]);
    assert!(chosen.status.success(), "{}", String::from_utf8_lossy(&chosen.stderr));
    let credential = stored().unwrap();
    let token = credential.tokens.access_token.expose_secret().to_string();
    assert_eq!(credential.site.as_ref().map(|site| site.id.as_str()), Some("c-2"));
    assert_eq!(credential.identity.as_ref().map(|who| (who.subject.as_str(), who.label.as_str())), Some(("712020:mia", "mia@example.com")));
    let listed: Value = serde_json::from_str(&gateway.latchkey(&["oauth", "ls", "--json"])).unwrap();
    let view = &listed["credentials"][0];
    assert_eq!(view["context"], json!({"account_type": "atlassian", "cloud_id": "c-2", "site_url": "https://globex.example"}), "{view:#}");
    assert_eq!((view["site"]["name"].as_str(), view["signed_in_as"].as_str()), (Some("Globex"), Some("mia@example.com")), "{view:#}");
    let table = gateway.latchkey(&["oauth", "ls"]);
    assert!(table.lines().any(|line| line.contains("jira") && line.contains("mia@example.com · Globex")), "{table}");

    // Each call carried the new token, and went to the API only.
    let calls: Vec<_> =
        api.requests().into_iter().filter(|request| request.header("authorization") == Some(&format!("Bearer {token}"))).collect();
    let paths: Vec<&str> = calls.iter().map(|request| request.target.as_str()).collect();
    assert_eq!(paths, ["/accessible-resources", "/me"], "{:#?}", api.requests());

    // The server receives the chosen site's context in the variables the catalog names.
    let http = gateway.http(&["--servers", "jira"]);
    let env = || -> Value { serde_json::from_str(&text(&http.client(&[json!({"call": "jira__get-env"})])[0])).unwrap_or_default() };
    let mut seen = Value::Null;
    eventually("the server runs with the chosen site's context", || {
        seen = env();
        seen["TOKEN"] == token.as_str()
    });
    let context = (seen["CLOUD_ID"].as_str(), seen["SITE_URL"].as_str(), seen["KIND"].as_str());
    assert_eq!(context, (Some("c-2"), Some("https://globex.example"), Some("atlassian")), "{seen:#}");
}

#[test]
fn a_providers_refresh_ahead_refreshes_a_token_that_is_still_valid_by_the_default() {
    // Both credentials expire in 40 minutes: by latchkey's default (60 s ahead) that is fresh; a
    // provider that says to refresh 50 minutes ahead gets a new token before the server starts.
    let token_endpoint = Recorder::start(Response::json(200, json!({"access_token": "at-2", "token_type": "Bearer", "expires_in": 3600})));
    let origin = token_endpoint.origin();
    let entry = |name: &str, config: &str| {
        format!(
            "  {name}:\n    command: {}\n    secrets:\n      - {{name: {name}.token, env: TOKEN}}\n    oauth:\n      providers:\n\
             \x20       - provider: sites\n          secret: {name}.token\n          config: {{api: \"{origin}\"{config}}}\n\
             \x20         server_metadata: {{issuer: \"{origin}\", authorization_endpoint: \"{origin}/authorize\", token_endpoint: \"{origin}/token\", \
             token_endpoint_auth_methods_supported: [none]}}\n          registration: {{client_id: public-client}}\n",
            everything_command(),
        )
    };
    let gateway = Setup::new(&format!("servers:\n{}{}", entry("early", ", refresh_ahead: \"3000\""), entry("usual", "")));
    let component = gateway.home.path().join("sites.wasm");
    fs::write(&component, fixture("sites", "")).unwrap();
    gateway.latchkey(&["provider", "install", component.to_str().unwrap()]);
    for server in ["early", "usual"] {
        let expires = SystemTime::now() + Duration::from_secs(40 * 60);
        let tokens = TokenSet::bearer(SecretString::from("at-1"), Some(SecretString::from("rt-1")), Some(expires));
        let id = CredentialId::new(server, &origin, "public-client");
        gateway.store().save_credential(&Credential::authorized(id, "sites", tokens)).unwrap();
    }
    // `get-env` prints the environment as indented JSON: the `"TOKEN": "…"` line's value.
    let token = |server: &str| -> String {
        let (code, said) = gateway.run(&["tools", "call", "--server", server, "get-env"], b"");
        assert_eq!(code, Some(0), "{said}");
        let line = said.lines().find(|line| line.trim_start().starts_with("\"TOKEN\"")).unwrap_or_else(|| panic!("no TOKEN in {said}"));
        line.split_once(':').map(|(_, value)| value.trim().trim_end_matches(',').trim_matches('"').to_string()).unwrap_or_default()
    };
    assert_eq!(token("usual"), "at-1", "60 s ahead of a token valid for 40 minutes: not due");
    assert_eq!(token("early"), "at-2", "50 minutes ahead: due, refreshed before the server started");
    assert_eq!(token_endpoint.requests().len(), 1, "{:#?}", token_endpoint.requests());
}

#[test]
fn a_discovery_only_remote_server_gets_its_token_sent_and_refreshed() {
    let peers = AuthPeers::start(8);
    let gateway = Setup::new(&format!("servers:\n  found:\n    remote: {{url: \"{}\"}}\n", peers.url));

    // Not signed in yet: the server's refusal says how to sign in, not to add an `oauth` section.
    let (code, said) = gateway.run(&["tools", "call", "--server", "found", "whoami"], b"");
    assert_ne!(code, Some(0), "{said}");
    assert!(said.contains("latchkey oauth authorize found") && !said.contains("oauth` section"), "{said}");

    // No `oauth` section: the server's metadata names the authorization server, which registers
    // latchkey dynamically.
    gateway.authorize("found");
    let steps = gateway
        .stdio(&["--servers", "found"], &[json!({"call": "found__whoami"}), json!({"sleep": 10_000}), json!({"call": "found__whoami"})]);
    let (first, second) = (identity(&steps[0]), identity(&steps[2]));
    assert_eq!(first["sub"], "alice");
    assert_ne!(first["token"], second["token"], "the first token expired during the session; the gateway refreshed it");
}

// ---------------------------------------------------------------------------------------------
// Tests: issuer binding (a server that names another authorization server gets nothing)

/// A remote entry for `url` whose OAuth provider is only a pre-registered client.
fn unbound_client_entry(url: &str) -> String {
    format!(
        "servers:\n  mixed:\n    remote: {{url: \"{url}\"}}\n    secrets:\n      - {{name: mixed.token}}\n    oauth:\n\
         \x20     providers:\n        - {{secret: mixed.token, registration: {{client_id: basic-client}}}}\n"
    )
}

#[test]
fn a_client_pinned_by_the_catalog_never_meets_the_authorization_server_its_server_names() {
    let remote = Remote::start(3600);
    let attacker = Attacker::start();
    remote._peers.name_authorization_server(attacker.issuer());
    remote.setup.authorize("remote");
    remote.setup.latchkey(&["oauth", "refresh", "remote"]);
    let steps = remote.setup.stdio(&["--servers", "remote"], &[json!({"call": "remote__whoami"})]);
    assert_eq!(identity(&steps[0])["client_id"], "basic-client");
    assert!(attacker.received().is_empty(), "{:?}", attacker.received());
    attacker.sink.assert_empty("a catalog-pinned client");
}

#[test]
fn a_client_bound_with_register_issuer_refuses_the_authorization_server_a_hostile_server_names() {
    let peers = AuthPeers::start(3600);
    let attacker = Attacker::start();
    peers.name_authorization_server(attacker.issuer());
    let gateway = Setup::new(&format!("servers:\n  mixed:\n    remote: {{url: \"{}\"}}\n", peers.url));
    let register = ["oauth", "register", "mixed", "--client-id", "basic-client", "--client-secret-stdin", "--issuer", &peers.issuer];
    let (code, said) = gateway.run(&register, b"basic-secret\n");
    assert_eq!(code, Some(0), "{said}");

    let refused = gateway.try_authorize(&["mixed"]);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{said}");
    for part in [
        format!("bound to `{}`", peers.issuer),
        format!("names `{}` instead", attacker.issuer()),
        format!("latchkey oauth register mixed --client-id basic-client --issuer {}", attacker.issuer()),
    ] {
        assert!(said.contains(&part), "{part}: {said}");
    }
    assert!(!said.contains("basic-secret"), "{said}");
    attacker.sink.assert_empty("authorize with a client bound by `oauth register --issuer`");

    // The server names the client's own authorization server again: the sign-in works.
    peers.name_authorization_server(&peers.issuer);
    gateway.authorize("mixed");
    let steps = gateway.stdio(&["--servers", "mixed"], &[json!({"call": "mixed__whoami"})]);
    assert_eq!(identity(&steps[0])["client_id"], "basic-client");
    attacker.sink.assert_empty("the whole test");
}

#[test]
fn an_unbound_client_with_a_secret_is_refused_at_register_and_at_authorize() {
    let peers = AuthPeers::start(3600);
    let attacker = Attacker::start();
    peers.name_authorization_server(attacker.issuer());
    let gateway = Setup::new(&format!("servers:\n  mixed:\n    remote: {{url: \"{}\"}}\n", peers.url));

    let (code, said) =
        gateway.run(&["oauth", "register", "mixed", "--client-id", "basic-client", "--client-secret-stdin"], b"basic-secret\n");
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains(&format!("latchkey oauth register mixed --client-id basic-client --issuer {}", attacker.issuer())), "{said}");
    assert!(!gateway.home.path().join("registrations.json").exists(), "nothing was registered");
    assert!(gateway.store().get_secret("mixed.client_secret").unwrap().is_none(), "the secret was not stored");

    // The same client in the catalog, its secret stored by hand (the security review's H2).
    gateway.rewrite_catalog(&unbound_client_entry(&peers.url));
    gateway.store().set_secret("mixed.client_secret", &SecretString::from("basic-secret")).unwrap();
    let refused = gateway.try_authorize(&["mixed"]);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{said}");
    assert!(said.contains(&format!("--issuer {}", attacker.issuer())) && said.contains("server_metadata"), "{said}");
    attacker.sink.assert_empty("an unbound confidential client");
}

#[test]
fn a_credential_stored_before_issuer_binding_keeps_working_and_binds_its_client() {
    let peers = AuthPeers::start(3600);
    let attacker = Attacker::start();
    // Tokens for (mixed, the real issuer, basic-client), as latchkey stored them when it still
    // signed such a client in through discovery; written here in that format, by hand.
    let pinned = Setup::new(&format!(
        "servers:\n  mixed:\n    remote: {{url: \"{url}\"}}\n    secrets:\n      - {{name: mixed.token}}\n    oauth:\n\
         \x20     scopes: [openid, offline_access]\n      providers:\n        - secret: mixed.token\n          server_metadata:\n\
         \x20           issuer: {issuer}\n            authorization_endpoint: {issuer}/auth\n            token_endpoint: {issuer}/token\n\
         \x20         registration: {{client_id: basic-client}}\n",
        url = peers.url,
        issuer = peers.issuer
    ));
    pinned.store().set_secret("mixed.client_secret", &SecretString::from("basic-secret")).unwrap();
    pinned.authorize("mixed");
    let before = pinned.store().credential_ids().unwrap().into_iter().find(|id| id.server == "mixed").unwrap();
    let tokens = pinned.store().load_credential(&before).unwrap().unwrap().tokens;
    let gateway = Setup::new(&unbound_client_entry(&peers.url));
    let envelope = json!({"format": "latchkey.oauth-credential/1", "credential": {
        "server": "mixed", "issuer": peers.issuer, "client_id": "basic-client", "provider": "standard",
        "tokens": {"access_token": tokens.access_token.expose_secret(), "token_type": "Bearer",
                   "refresh_token": tokens.refresh_token.as_ref().unwrap().expose_secret(),
                   "expires_at": 1, "scopes": ["openid", "offline_access"]},
        "status": {"state": "authorized"}}});
    let file = json!({"version": 1, "entries": {
        before.key(): {"kind": "credential", "server": "mixed", "issuer": peers.issuer, "client_id": "basic-client", "value": envelope.to_string()},
        "secret/mixed.client_secret": {"kind": "secret", "name": "mixed.client_secret", "value": "basic-secret"}}});
    latchkey::paths::write_private_atomically(&gateway.home.path().join("secrets.json"), file.to_string().as_bytes()).unwrap();

    // The expired token is refreshed at the issuer it came from, and sent: no sign-in.
    let steps = gateway.stdio(&["--servers", "mixed"], &[json!({"call": "mixed__whoami"})]);
    assert_eq!(identity(&steps[0])["client_id"], "basic-client");
    gateway.latchkey(&["oauth", "refresh", "mixed"]);

    // The server turns hostile: nothing goes to the authorization server it names now.
    peers.name_authorization_server(attacker.issuer());
    let (code, said) = gateway.run(&["oauth", "refresh", "mixed"], b"");
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains(&format!("bound to `{}`", peers.issuer)) && said.contains(attacker.issuer()), "{said}");
    let (code, said) = gateway.run(&["oauth", "revoke", "mixed"], b"");
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("kept 1 local credential"), "{said}");
    attacker.sink.assert_empty("refresh and revoke of a credential bound by its stored issuer");
    assert!(gateway.store().credential_ids().unwrap().iter().any(|id| id.server == "mixed"), "the credential is kept");
}

/// `tools call --url <url> whoami` as client `basic-client`, its secret on stdin, with `extra`
/// options: the exit code, the identity the server saw (when it answered) and stderr.
fn whoami_with_client_secret(setup: &Setup, url: &str, extra: &[&str]) -> (Option<i32>, Option<Value>, String) {
    let args = [
        &["tools", "call", "--url", url, "--client-id", "basic-client", "--client-secret-stdin", "--timeout", "60"][..],
        extra,
        &["whoami"],
    ]
    .concat();
    let output = setup.run_signing_in(&args, b"basic-secret\n");
    let said = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!said.contains("basic-secret"), "the secret is never printed: {said}");
    (output.status.code(), serde_json::from_slice(&output.stdout).ok(), said)
}

#[test]
fn tools_url_with_a_client_secret_needs_issuer_and_refuses_the_authorization_server_a_hostile_server_names() {
    let peers = AuthPeers::start(3600);
    let attacker = Attacker::start();

    // Without --issuer: refused, with the command that binds the client to the issuer found.
    let unbound = Setup::new("servers: {}\n");
    let (code, _, said) = whoami_with_client_secret(&unbound, &peers.url, &[]);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains(&format!("--client-id basic-client --client-secret-stdin --issuer {}", peers.issuer)), "{said}");
    assert!(unbound.store().credential_ids().unwrap().is_empty(), "nothing was signed in");

    // With the issuer that registered the client: signed in, and the call goes through.
    let (code, identity, said) = whoami_with_client_secret(&unbound, &peers.url, &["--issuer", &peers.issuer]);
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(identity.expect("whoami answered")["client_id"], "basic-client");

    // The server names the attacker's authorization server: refused before anything reaches it.
    peers.name_authorization_server(attacker.issuer());
    let bound = Setup::new("servers: {}\n");
    let (code, identity, said) = whoami_with_client_secret(&bound, &peers.url, &["--issuer", &peers.issuer]);
    assert_eq!(code, Some(1), "{said}");
    assert!(identity.is_none(), "{said}");
    for part in [
        format!("bound to `{}` (by `--issuer`)", peers.issuer),
        format!("names `{}` instead", attacker.issuer()),
        format!("--issuer {}", attacker.issuer()),
    ] {
        assert!(said.contains(&part), "{part}: {said}");
    }
    attacker.sink.assert_empty("tools --url with --issuer and a server that names another authorization server");
    assert!(bound.store().credential_ids().unwrap().is_empty(), "nothing was signed in");

    // Without --issuer the hostile server's authorization server is named, and refused too.
    let (code, _, said) = whoami_with_client_secret(&bound, &peers.url, &[]);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains(&format!("--issuer {}", attacker.issuer())), "{said}");
    attacker.sink.assert_empty("the whole test");
}

// ---------------------------------------------------------------------------------------------
// Tests: bad input

#[test]
fn tools_ls_and_call_reach_a_catalog_server_through_the_gateway_pipeline() {
    let gateway = Setup::new(&local_server("everything", &format!("command: {}", everything_command())));
    gateway.store_local_credential("everything", "access-token-for-tools");

    let listed: Value = serde_json::from_str(&gateway.latchkey(&["tools", "ls", "--server", "everything", "--json"])).unwrap();
    let tools: Vec<&str> = listed["tools"].as_array().unwrap().iter().filter_map(|tool| tool["name"].as_str()).collect();
    assert!(tools.contains(&"echo") && tools.contains(&"get-env"), "names as the server gives them: {tools:?}");

    let called: Value = serde_json::from_str(&gateway.latchkey(&["tools", "call", "--server", "everything", "get-env", "--json"])).unwrap();
    assert_injected(called["content"][0]["text"].as_str().unwrap(), "access-token-for-tools");
}

#[test]
fn an_unknown_server_name_lists_the_known_ones() {
    let gateway = Setup::new(&format!("servers:\n  everything:\n    command: {}\n", everything_command()));
    let output =
        gateway.command(latchkey_bin()).args(["gateway", "run", "--servers", "everything,nope"]).stdin(Stdio::null()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("unknown server `nope`") && stderr.contains("known servers:") && stderr.contains("everything"), "{stderr}");
}

#[test]
fn a_missing_image_is_reported_and_the_other_servers_work() {
    let Some(_) = docker_image() else { return };
    let gateway = Setup::new(&format!(
        "servers:\n  everything:\n    command: {}\n  absent:\n    image: latchkey-test/absent:1\n",
        everything_command()
    ));
    let run = gateway.stdio_run(
        &["--servers", "everything,absent"],
        &[
            json!({"list": "tools"}),
            json!({"call": "absent__echo", "arguments": {"message": "x"}}),
            json!({"call": "everything__echo", "arguments": {"message": "still here"}}),
        ],
    );
    let steps = run.steps();
    assert!(names(&steps[0]).iter().all(|tool| tool.starts_with("everything__")), "{:?}", steps[0]);
    let message = tool_error(&steps[1]);
    assert!(message.contains("`latchkey-test/absent:1`") && message.contains("is not on this machine"), "{message}");
    assert_eq!(text(&steps[2]), "Echo: still here");
    assert!(run.stderr.contains("absent is not available"), "{}", run.stderr);
}

#[test]
fn unreachable_docker_is_reported_with_docker_host() {
    let dead = tempfile::tempdir().unwrap();
    let docker_host = format!("unix://{}/docker.sock", dead.path().display());
    let gateway = Setup::new("servers:\n  boxed:\n    image: latchkey-test/everything:any\n");
    let mut command = client_command("stdio", latchkey_bin().to_str().unwrap(), &["gateway", "run", "--servers", "boxed"], None);
    gateway.prepare(&mut command).env("DOCKER_HOST", &docker_host);
    let steps = run_client(command, &[json!({"call": "boxed__echo", "arguments": {"message": "x"}})]).steps();
    let message = tool_error(&steps[0]);
    assert!(message.contains(&format!("DOCKER_HOST={docker_host}")) && message.contains("is dockerd running?"), "{message}");
}

#[test]
fn the_current_docker_context_chooses_the_engine_as_the_docker_cli_does() {
    let Some(image) = docker_image() else { return };
    let docker_host = std::env::var("DOCKER_HOST").expect("the tests' Docker Engine is named by DOCKER_HOST");
    // Contexts as the real CLI writes them, as Docker Desktop, colima or OrbStack set them up.
    let config = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| {
        let output = Command::new("docker").args(args).env("DOCKER_CONFIG", config.path()).env_remove("DOCKER_HOST").output().unwrap();
        assert!(output.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    };
    cli(&["context", "create", "private-engine", "--docker", &format!("host={docker_host}")]);
    cli(&["context", "create", "stopped-engine", "--docker", "host=unix:///nonexistent/docker.sock"]);
    cli(&["context", "use", "private-engine"]);
    let gateway = Setup::new(&local_server("contexted", &format!("image: {image}")));
    gateway.store_local_credential("contexted", "access-token-through-the-context");
    let call = |context: Option<&str>| {
        let mut command = client_command("stdio", latchkey_bin().to_str().unwrap(), &["gateway", "run", "--servers", "contexted"], None);
        gateway.prepare(&mut command).env_remove("DOCKER_HOST").env("DOCKER_CONFIG", config.path());
        if let Some(context) = context {
            command.env("DOCKER_CONTEXT", context);
        }
        run_client(command, &[json!({"call": "contexted__get-env"})]).steps().remove(0)
    };

    assert_injected(&text(&call(None)), "access-token-through-the-context");
    let message = tool_error(&call(Some("stopped-engine")));
    assert!(message.contains("unix:///nonexistent/docker.sock (the Docker context `stopped-engine`)"), "{message}");
}

/// A launcher as `npx` is one (the server is its child), whose server has a helper process that
/// never reads stdin, so that closing the server's stdin does not end it: the whole tree must end
/// with the gateway.
#[cfg(target_os = "linux")]
#[test]
fn a_local_server_ends_with_the_gateway_launcher_children_and_all() {
    let dir = tempfile::tempdir().unwrap();
    let (launcher, helper_pid) = (dir.path().join("launcher.sh"), dir.path().join("helper.pid"));
    let everything = everything_command();
    let server = everything.trim_start_matches('[').trim_end_matches(']').replace(", ", " ");
    fs::write(&launcher, format!("sh -c 'echo $$ > \"$0\"; while :; do sleep 1; done' \"$HELPER_PID\" &\n{server}\n")).unwrap();
    let gateway = Setup::new(&format!(
        "servers:\n  launched:\n    command: [sh, {}]\n    env:\n      - {{name: HELPER_PID, value: {}}}\n",
        launcher.display(),
        helper_pid.display()
    ));
    /// Ends the helper if the test fails, so that nothing outlives it.
    struct Reap(Option<String>);
    impl Drop for Reap {
        fn drop(&mut self) {
            if let Some(pid) = &self.0 {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
    }
    let mut helper = Reap(None);
    let alive = |pid: &str| fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| !stat.contains(") Z "));

    let mut command = client_command("stdio", latchkey_bin().to_str().unwrap(), &["gateway", "run", "--servers", "launched"], None);
    gateway.prepare(&mut command);
    let steps = run_client(command, &[json!({"call": "launched__echo", "arguments": {"message": "tree"}})]).steps();
    assert_eq!(text(&steps[0]), "Echo: tree");
    let pid = fs::read_to_string(&helper_pid).unwrap().trim().to_string();
    helper.0 = Some(pid.clone());
    eventually("the server's helper process has ended with the gateway", || !alive(&pid));
}

#[test]
fn an_upstream_that_crashes_mid_call_fails_that_call_and_restarts() {
    let gateway = Setup::new(&bad_server("bad", &[]));
    let steps = gateway.stdio(
        &["--servers", "bad"],
        &[
            json!({"call": "bad__echo", "arguments": {"message": "before"}}),
            json!({"call": "bad__crash"}),
            json!({"call": "bad__echo", "arguments": {"message": "after"}}),
        ],
    );
    assert_eq!(text(&steps[0]), "echo: before");
    let message = tool_error(&steps[1]);
    assert!(message.contains("server `bad` stopped during the request"), "{message}");
    assert_eq!(text(&steps[2]), "echo: after");
    let starts = gateway.bad_server_starts();
    assert_eq!(starts.len(), 2, "started once, restarted once: {starts:?}");
    assert_ne!(starts[0], starts[1]);
}

#[test]
fn a_call_the_client_cancels_is_cancelled_upstream() {
    let gateway = Setup::new(&bad_server("bad", &[]));
    let started = Instant::now();
    let steps = gateway.stdio(
        &["--servers", "bad"],
        &[
            json!({"call": "bad__sleep", "arguments": {"ms": 60_000}, "cancelAfterMs": 500}),
            json!({"sleep": 500}),
            // Asked while the session is still open: closing it would cancel the call anyway.
            json!({"call": "bad__log"}),
        ],
    );
    assert_eq!(steps[0]["ok"], false, "the cancelled call ends with an error: {:?}", steps[0]);
    assert!(started.elapsed() < Duration::from_secs(50), "the client waited for the cancelled call: {:?}", started.elapsed());
    let log = text(&steps[2]);
    assert!(log.lines().any(|line| line.starts_with("cancelled ")), "the upstream heard of the cancellation: {log}");
    assert_eq!(gateway.bad_server_starts().len(), 1, "and was not restarted for it: {log}");
}

/// Steps that take a running stdio server's calls through the gateway's hot path: listed first, so
/// the server is running when the calls come.
fn hot_path_steps() -> Vec<Value> {
    vec![
        json!({"list": "tools"}),
        json!({"call": "bad__verbatim"}),
        json!({"call": "bad__sleep", "arguments": {"ms": 60_000}, "cancelAfterMs": 300}),
        json!({"sleep": 500}),
        json!({"call": "bad__log"}),
        json!({"call": "bad__no_such_tool"}),
    ]
}

fn assert_crossed_as_written(gateway: &Setup, steps: &[Value]) {
    // A field no MCP type has survives only a relay that passes the answer on as it is.
    assert_eq!(ok(&steps[1])["x-verbatim"]["kept"], true, "{:?}", steps[1]);
    assert_eq!(text(&steps[1]), "as written");
    assert_eq!(steps[2]["ok"], false, "the cancelled call ends with an error: {:?}", steps[2]);
    let log = text(&steps[4]);
    let sleeping = log.lines().find_map(|line| line.strip_prefix("sleeping ")).expect("the sleep reached the server");
    assert!(log.lines().any(|line| line == format!("cancelled {sleeping}")), "the server heard the cancellation of its call: {log}");
    let message = tool_error(&steps[5]);
    assert!(message.contains("server `bad` failed") && message.contains("no tool no_such_tool"), "{message}");
    assert_eq!(gateway.bad_server_starts().len(), 1);
}

#[test]
fn a_call_to_a_running_stdio_server_crosses_the_gateway_as_the_server_wrote_it() {
    let gateway = Setup::new(&bad_server("bad", &[]));
    let steps = gateway.stdio(&["--servers", "bad"], &hot_path_steps());
    assert_crossed_as_written(&gateway, &steps);
}

#[test]
fn a_call_over_http_to_a_running_stdio_server_crosses_the_gateway_as_the_server_wrote_it() {
    let gateway = Setup::new(&bad_server("bad", &[]));
    let http = gateway.http(&["--servers", "bad"]);
    let steps = http.client(&hot_path_steps());
    assert_crossed_as_written(&gateway, &steps);
    assert_eq!(http.health()["upstreams"]["bad"]["state"], "running");
}

#[test]
fn malformed_upstream_output_never_hangs_the_gateway() {
    let catalog = format!("{}{}", bad_server("bad", &[]), bad_server("mute", &["garbage-init"]).replacen("servers:\n", "", 1));
    let gateway = Setup::new(&catalog);
    let started = Instant::now();
    let steps = gateway.stdio(
        &["--servers", "bad,mute", "--timeout", "3"],
        &[
            json!({"list": "tools"}),
            json!({"call": "bad__echo", "arguments": {"message": "past a garbage line"}}),
            json!({"call": "bad__garbage"}),
            json!({"call": "bad__echo", "arguments": {"message": "still fine"}}),
            json!({"call": "mute__echo"}),
        ],
    );
    // `mute` answers `initialize` with garbage: it is left out, and never holds the others up.
    assert!(names(&steps[0]).iter().all(|tool| tool.starts_with("bad__")), "{:?}", steps[0]);
    assert_eq!(text(&steps[1]), "echo: past a garbage line");
    assert!(tool_error(&steps[2]).contains("did not answer within 3 s"), "{:?}", steps[2]);
    assert_eq!(text(&steps[3]), "echo: still fine");
    let message = tool_error(&steps[4]);
    assert!(message.contains("server `mute` could not start") && message.contains("initialize"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(60), "took {:?}", started.elapsed());
}

#[test]
fn a_client_that_disconnects_mid_call_leaves_the_http_gateway_working() {
    let gateway = Setup::new(&bad_server("bad", &[]));
    let http = gateway.http(&["--servers", "bad"]);
    let mut leaving = client_command("http", &http.url, &[], Some(&http.token));
    leaving.env("MCP_STEPS", json!([{"call": "bad__sleep", "arguments": {"ms": 30_000}}]).to_string());
    let mut leaving = Peer::spawn("leaving client", &mut leaving);
    eventually("the call reached the upstream", || gateway.bad_server_log().contains("sleeping "));
    leaving.kill();

    let steps = http.client(&[json!({"call": "bad__echo", "arguments": {"message": "next client"}})]);
    assert_eq!(text(&steps[0]), "echo: next client");
    assert_eq!(http.health()["upstreams"]["bad"]["state"], "running");
}

#[test]
fn a_stdio_client_that_disconnects_mid_call_ends_the_gateway_and_its_upstream() {
    let gateway = Setup::new(&bad_server("bad", &[]));
    let mut command = gateway.command(latchkey_bin());
    command.args(["gateway", "run", "--servers", "bad"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut send = |message: Value| writeln!(stdin, "{message}").unwrap();
    send(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}));
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.contains("\"id\":1"), "{line}");
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "bad__sleep", "arguments": {"ms": 30000}}}));
    eventually("the call reached the upstream", || gateway.bad_server_log().contains("sleeping "));
    drop(stdin);

    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the gateway kept running after its stdio client left");
        }
        thread::sleep(Duration::from_millis(50));
    }
    let upstream = gateway.bad_server_starts()[0];
    eventually("the upstream process ended with the gateway", || !Path::new(&format!("/proc/{upstream}")).exists());
}

// ---------------------------------------------------------------------------------------------
// A private home with a catalog

struct Setup {
    home: Home,
}

impl Setup {
    fn new(catalog: &str) -> Setup {
        let home = Home::new();
        let dir = home.path().join("catalogs");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("test.yaml"), catalog).unwrap();
        Setup { home }
    }

    /// This home and the file store, no colour, no extra logging.
    fn prepare<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        command
            .env(paths::HOME_VAR, self.home.path())
            .env(latchkey::store::STORE_VAR, "file")
            .env("NO_COLOR", "1")
            .env("BAD_SERVER_LOG", self.home.path().join("bad-server.log"))
            .env_remove("LATCHKEY_LOG")
            .env_remove(GATEWAY_TOKEN_VAR)
    }

    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        self.prepare(&mut command);
        command
    }

    fn latchkey(&self, args: &[&str]) -> String {
        let output = self.command(latchkey_bin()).args(args).stdin(Stdio::null()).output().unwrap();
        assert!(output.status.success(), "latchkey {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn store(&self) -> Store {
        Store::open_kind(&Paths::under(self.home.path().to_path_buf()), Some(StoreKind::File)).unwrap()
    }

    /// Secrets for [`local_server`] entries, and an hour-long OAuth credential with `token`.
    fn store_local_credential(&self, server: &str, token: &str) {
        let store = self.store();
        store.set_secret(&format!("{server}.api_key"), &SecretString::from("api-key-value")).unwrap();
        store.set_secret(&format!("{server}.client_secret"), &SecretString::from(CLIENT_SECRET_MARK)).unwrap();
        let tokens = TokenSet::bearer(SecretString::from(token), None, Some(SystemTime::now() + Duration::from_secs(3600)));
        let credential = Credential::authorized(CredentialId::new(server, LOCAL_ISSUER, "local-client"), "standard", tokens);
        store.save_credential(&credential).unwrap();
    }

    fn edit_credential(&self, server: &str, edit: impl FnOnce(&mut Credential)) {
        let store = self.store();
        let id = store.credential_ids().unwrap().into_iter().find(|id| id.server == server).expect("a stored credential");
        let mut credential = store.load_credential(&id).unwrap().unwrap();
        edit(&mut credential);
        store.save_credential(&credential).unwrap();
    }

    /// `oauth authorize <server>` with the scripted browser (tests/peers/browser.sh).
    fn authorize(&self, server: &str) {
        let output = self.try_authorize(&[server]);
        assert!(output.status.success(), "authorizing {server}: {}", String::from_utf8_lossy(&output.stderr));
    }

    /// `oauth authorize <args>` with the scripted browser, however it ends.
    fn try_authorize(&self, args: &[&str]) -> std::process::Output {
        self.command(latchkey_bin())
            .args(["oauth", "authorize", "--timeout", "60"])
            .args(args)
            .env("BROWSER", peer("browser.sh"))
            .env_remove("CONSENT_MODE")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `latchkey <args>` with `stdin`, however it ends: the exit code and everything it printed.
    fn run(&self, args: &[&str], stdin: &[u8]) -> (Option<i32>, String) {
        let output = self.output(self.command(latchkey_bin()).args(args), stdin);
        (output.status.code(), format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)))
    }

    /// `latchkey <args>` with `stdin` and the scripted browser, however it ends.
    fn run_signing_in(&self, args: &[&str], stdin: &[u8]) -> std::process::Output {
        self.output(self.command(latchkey_bin()).args(args).env("BROWSER", peer("browser.sh")).env_remove("CONSENT_MODE"), stdin)
    }

    fn output(&self, command: &mut Command, stdin: &[u8]) -> std::process::Output {
        let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let _ = child.stdin.take().unwrap().write_all(stdin);
        child.wait_with_output().unwrap()
    }

    /// The catalog is now `catalog`.
    fn rewrite_catalog(&self, catalog: &str) {
        fs::write(self.home.path().join("catalogs/test.yaml"), catalog).unwrap();
    }

    /// The SDK client over stdio, with `latchkey gateway run <args>` as its server.
    fn stdio_run(&self, args: &[&str], steps: &[Value]) -> ClientRun {
        self.stdio_run_with(args, &[], steps)
    }

    /// [`Self::stdio_run`] with `env` for the client (and the gateway it starts).
    fn stdio_run_with(&self, args: &[&str], env: &[(&str, &str)], steps: &[Value]) -> ClientRun {
        let mut gateway_args = vec!["gateway", "run"];
        gateway_args.extend_from_slice(args);
        let mut command = client_command("stdio", latchkey_bin().to_str().unwrap(), &gateway_args, None);
        self.prepare(&mut command).envs(env.iter().copied());
        run_client(command, steps)
    }

    fn stdio(&self, args: &[&str], steps: &[Value]) -> Vec<Value> {
        self.stdio_run(args, steps).steps()
    }

    /// `latchkey gateway run --transport http` on an ephemeral port, with a bearer token.
    fn http(&self, args: &[&str]) -> HttpGateway {
        let token = "test-gateway-token".to_string();
        let mut command = self.command(latchkey_bin());
        command.args(["-v", "gateway", "run", "--transport", "http", "--port", "0"]).args(args).env(GATEWAY_TOKEN_VAR, &token);
        let child = Peer::spawn("gateway", &mut command);
        let line = child.wait_for("latchkey gateway: MCP at ", Duration::from_secs(60));
        let url = line.split("MCP at ").nth(1).and_then(|rest| rest.split(',').next()).unwrap().to_string();
        HttpGateway { child, url, token }
    }

    /// What the bad servers of this home wrote to BAD_SERVER_LOG (nothing before one starts).
    fn bad_server_log(&self) -> String {
        fs::read_to_string(self.home.path().join("bad-server.log")).unwrap_or_default()
    }

    fn bad_server_starts(&self) -> Vec<u32> {
        self.bad_server_log().lines().filter_map(|line| line.strip_prefix("start ")?.parse().ok()).collect()
    }
}

/// Where `gateway run --transport http` takes its front-door token from.
const GATEWAY_TOKEN_VAR: &str = "LATCHKEY_GATEWAY_TOKEN";
const LOCAL_ISSUER: &str = "http://127.0.0.1:9";
/// The value of the secret without `env`: it must never reach a server.
const CLIENT_SECRET_MARK: &str = "client-secret-never-passed";

/// One provider entry of a catalog server, at oidc-provider's `issuer`.
struct OAuthEntry<'a> {
    provider: &'a str,
    issuer: &'a str,
    client_id: &'a str,
    /// `token_endpoint_auth_methods_supported`'s one method.
    auth_method: &'a str,
    grant: Option<&'a str>,
    /// The entry's `config:` and `context:`, as YAML flow mappings.
    config: Option<&'a str>,
    context: Option<&'a str>,
    userinfo: Option<&'a str>,
}

impl<'a> OAuthEntry<'a> {
    /// The `standard` provider, for `client_id` authenticating with `auth_method`.
    fn standard(issuer: &'a str, client_id: &'a str, auth_method: &'a str) -> OAuthEntry<'a> {
        OAuthEntry { provider: "standard", issuer, client_id, auth_method, grant: None, config: None, context: None, userinfo: None }
    }
}

/// A catalog with one server `name` running server-everything, whose `$TOKEN` is the token of
/// `entry` for `scopes` (a YAML flow sequence's content).
fn everything_with_oauth(name: &str, scopes: &str, entry: OAuthEntry) -> String {
    let OAuthEntry { provider, issuer, client_id, auth_method, .. } = entry;
    let line =
        |key: &str, value: Option<&str>, indent: usize| value.map(|value| format!("{:indent$}{key}: {value}\n", "")).unwrap_or_default();
    format!(
        "servers:\n  {name}:\n    command: {}\n    secrets:\n      - {{name: {name}.token, env: TOKEN}}\n    oauth:\n\
         \x20     scopes: [{scopes}]\n      providers:\n        - provider: {provider}\n          secret: {name}.token\n{}{}{}\
         \x20         server_metadata:\n            issuer: {issuer}\n            authorization_endpoint: {issuer}/auth\n\
         \x20           token_endpoint: {issuer}/token\n{}            token_endpoint_auth_methods_supported: [{auth_method}]\n\
         \x20         registration: {{client_id: {client_id}}}\n",
        everything_command(),
        line("grant", entry.grant, 10),
        line("config", entry.config, 10),
        line("context", entry.context, 10),
        line("userinfo_endpoint", entry.userinfo, 12),
    )
}

/// A catalog with one local server (`how`: its `command:` or `image:` line) that declares a token
/// (OAuth, `<name>.token` → `$OAUTH_TOKEN`), an API key (`$API_KEY`), a client secret without
/// `env`, and a fixed variable.
fn local_server(name: &str, how: &str) -> String {
    format!(
        "servers:\n  {name}:\n    {how}\n    env:\n      - {{name: FIXED, value: fixed-value}}\n    secrets:\n\
         \x20     - {{name: {name}.token, env: OAUTH_TOKEN}}\n      - {{name: {name}.api_key, env: API_KEY}}\n\
         \x20     - {{name: {name}.client_secret}}\n    oauth:\n      providers:\n        - provider: standard\n\
         \x20         secret: {name}.token\n          server_metadata:\n            issuer: {LOCAL_ISSUER}\n\
         \x20           authorization_endpoint: {LOCAL_ISSUER}/auth\n            token_endpoint: {LOCAL_ISSUER}/token\n\
         \x20         registration: {{client_id: local-client}}\n"
    )
}

/// What server-everything's `get-env` printed, checked against what [`local_server`] declares.
fn assert_injected(env_json: &str, token: &str) {
    let env: Value = serde_json::from_str(env_json).unwrap_or_else(|e| panic!("get-env did not answer JSON ({e}): {env_json}"));
    assert_eq!(env["OAUTH_TOKEN"], token, "the OAuth access token arrives");
    assert_eq!(env["API_KEY"], "api-key-value", "a stored secret with env arrives");
    assert_eq!(env["FIXED"], "fixed-value");
    assert!(!env_json.contains(CLIENT_SECRET_MARK), "a secret without env must never be passed: {env_json}");
    assert!(env.get(GATEWAY_TOKEN_VAR).is_none(), "the front door's own token stays in the gateway: {env_json}");
}

/// The catalog entry of a `bad-server.mjs` (with `args`); it inherits BAD_SERVER_LOG from the
/// gateway (a local process gets only the variables its entry names).
fn bad_server(name: &str, args: &[&str]) -> String {
    let mut command = vec!["node".to_string(), peer("bad-server.mjs").display().to_string()];
    command.extend(args.iter().map(|arg| arg.to_string()));
    format!("servers:\n  {name}:\n    command: [{}]\n    inherit_env: [BAD_SERVER_LOG]\n", command.join(", "))
}

fn everything_command() -> String {
    let script = peer("node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(script.is_file(), "server-everything is not installed: run `npm ci --prefix tests/peers`");
    format!("[node, {}, stdio]", script.display())
}

// ---------------------------------------------------------------------------------------------
// The remote upstream: oidc-provider and a server that checks its tokens

struct Remote {
    setup: Setup,
    url: String,
    _peers: AuthPeers,
}

impl Remote {
    /// oidc-provider issuing `ttl`-second access tokens, the protected server, and a catalog
    /// with its `remote` entry (client `basic-client`, whose secret is stored).
    fn start(ttl: u64) -> Remote {
        Remote::with_headers(ttl, "")
    }

    /// [`Remote::start`], the entry sending `headers` (a YAML flow mapping's content); it
    /// declares `$API_KEY` (the secret `remote.api_key`, not stored) and `$TEAM` (`blue`).
    fn with_headers(ttl: u64, headers: &str) -> Remote {
        let peers = AuthPeers::start(ttl);
        let (issuer, url) = (peers.issuer.clone(), peers.url.clone());
        let setup = Setup::new(&format!(
            "servers:\n  remote:\n    remote: {{url: \"{url}\", headers: {{{headers}}}}}\n    env: [{{name: TEAM, value: blue}}]\n\
             \x20   secrets:\n      - {{name: remote.token}}\n      - {{name: remote.api_key, env: API_KEY}}\n    oauth:\n\
             \x20     scopes: [openid, offline_access]\n      providers:\n        - provider: standard\n          secret: remote.token\n\
             \x20         server_metadata:\n            issuer: {issuer}\n            authorization_endpoint: {issuer}/auth\n\
             \x20           token_endpoint: {issuer}/token\n            token_endpoint_auth_methods_supported: [client_secret_basic]\n\
             \x20         registration: {{client_id: basic-client}}\n"
        ));
        setup.store().set_secret("remote.client_secret", &SecretString::from("basic-secret")).unwrap();
        Remote { setup, url, _peers: peers }
    }
}

/// oidc-provider (`issuer`) and the protected MCP server (`url`) that checks its tokens, whose
/// resource metadata names `issuer` as its authorization server until told otherwise.
struct AuthPeers {
    issuer: String,
    url: String,
    _protected: Peer,
    _oidc: Peer,
}

impl AuthPeers {
    fn start(ttl: u64) -> AuthPeers {
        let mut oidc = Command::new("node");
        oidc.arg(peer("oidc-server.mjs")).arg("0").env("OIDC_ACCESS_TOKEN_TTL", ttl.to_string()).env("OIDC_LOOPBACK_RESOURCES", "1");
        let oidc = Peer::spawn("oidc-server", &mut oidc);
        let issuer = oidc.wait_for("ready ", Duration::from_secs(60)).trim_start_matches("ready ").to_string();
        let mut protected = Command::new("node");
        protected.arg(peer("protected-server.mjs")).env("ISSUER", &issuer);
        let protected = Peer::spawn("protected-server", &mut protected);
        let url = protected.wait_for("ready ", Duration::from_secs(60)).trim_start_matches("ready ").to_string();
        AuthPeers { issuer, url, _protected: protected, _oidc: oidc }
    }

    /// From now on the server's resource metadata names `issuer` as its authorization server.
    fn name_authorization_server(&self, issuer: &str) {
        let (status, body) = http_post(&self.url.replace("/mcp", "/authorization-server"), issuer);
        assert_eq!(status, 204, "{body}");
    }
}

/// What the protected server's `whoami` said.
fn identity(step: &Value) -> Value {
    serde_json::from_str(&text(step)).unwrap_or_else(|_| panic!("whoami did not answer: {step}"))
}

// ---------------------------------------------------------------------------------------------
// The HTTP gateway

struct HttpGateway {
    child: Peer,
    url: String,
    token: String,
}

impl HttpGateway {
    fn client(&self, steps: &[Value]) -> Vec<Value> {
        self.client_run_with(&[], steps).steps()
    }

    /// The SDK client over HTTP with `env`, however it ends.
    fn client_run_with(&self, env: &[(&str, &str)], steps: &[Value]) -> ClientRun {
        let mut command = client_command("http", &self.url, &[], Some(&self.token));
        command.envs(env.iter().copied());
        run_client(command, steps)
    }

    fn health(&self) -> Value {
        let (status, body) = http_get(&self.url.replace("/mcp", "/health"), &[]);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// A session opened by hand, as a client that never sends `DELETE` would: `initialize`,
    /// `notifications/initialized`, one call. Its `Mcp-Session-Id`.
    fn session(&self, n: usize) -> String {
        let initialized = self.initialize(&[]);
        assert_eq!(initialized.status, 200, "{initialized:?}");
        let id = initialized.header("mcp-session-id").unwrap_or_else(|| panic!("no session ID: {initialized:?}")).to_string();
        let notification = json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string();
        let accepted = http_request("POST", &self.url, &self.session_headers(&id), &notification);
        assert_eq!(accepted.status, 202, "{accepted:?}");
        let (status, body) = self.call(&id, &format!("session {n}"));
        assert!(status == 200 && body.contains(&format!("Echo: session {n}")), "{status}: {body}");
        id
    }

    /// An `initialize` request with the token and `extra` headers, however it is answered.
    fn initialize(&self, extra: &[(&str, &str)]) -> HttpResponse {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                          "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}});
        let bearer = format!("Bearer {}", self.token);
        let mut headers = vec![("Authorization", bearer.as_str()), ("Accept", "application/json, text/event-stream")];
        headers.extend_from_slice(extra);
        http_request("POST", &self.url, &headers, &body.to_string())
    }

    /// `everything__echo` with `message` on session `id`: the status and the body (SSE).
    fn call(&self, id: &str, message: &str) -> (u16, String) {
        let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                          "params": {"name": "everything__echo", "arguments": {"message": message}}});
        let response = http_request("POST", &self.url, &self.session_headers(id), &body.to_string());
        (response.status, response.body)
    }

    /// `DELETE /mcp` for session `id`: the status.
    fn delete(&self, id: &str) -> u16 {
        http_request("DELETE", &self.url, &self.session_headers(id), "").status
    }

    fn session_headers<'a>(&'a self, id: &'a str) -> [(&'a str, String); 4] {
        [
            ("Authorization", format!("Bearer {}", self.token)),
            ("Accept", "application/json, text/event-stream".to_string()),
            ("Mcp-Session-Id", id.to_string()),
            ("MCP-Protocol-Version", "2025-06-18".to_string()),
        ]
    }
}

#[derive(Debug)]
struct HttpResponse {
    status: u16,
    /// Each header line as it came.
    head: String,
    body: String,
}

impl HttpResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// One request over plain HTTP/1.0 (loopback only; the server closes the connection after the
/// response, SSE streams included). `Host` is the address connected to unless `headers` has one;
/// a non-empty body goes as JSON unless `headers` says otherwise.
fn http_request<V: AsRef<str>>(method: &str, url: &str, headers: &[(&str, V)], body: &str) -> HttpResponse {
    let rest = url.strip_prefix("http://").expect("a loopback http URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = TcpStream::connect(host).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let has = |wanted: &str| headers.iter().any(|(name, _)| name.eq_ignore_ascii_case(wanted));
    let mut head = format!("{method} {path} HTTP/1.0\r\n");
    if !has("host") {
        head.push_str(&format!("Host: {host}\r\n"));
    }
    if !body.is_empty() && !has("content-type") {
        head.push_str("Content-Type: application/json\r\n");
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {}\r\n", value.as_ref()));
    }
    write!(stream, "{head}Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    HttpResponse { status, head: head.to_string(), body: body.to_string() }
}

/// POST `body` as text: the status and the body.
fn http_post(url: &str, body: &str) -> (u16, String) {
    let response = http_request("POST", url, &[("Content-Type", "text/plain")], body);
    (response.status, response.body)
}

/// GET with `headers` (and an `Accept` for JSON and SSE): the status and the body.
fn http_get(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut headers = headers.to_vec();
    headers.push(("Accept", "application/json, text/event-stream"));
    let response = http_request("GET", url, &headers, "");
    (response.status, response.body)
}

// ---------------------------------------------------------------------------------------------
// The SDK client

/// `node tests/peers/mcp-client.mjs <mode> <target> <args…>`.
fn client_command(mode: &str, target: &str, args: &[&str], token: Option<&str>) -> Command {
    let mut command = Command::new("node");
    command.arg(peer("mcp-client.mjs")).args([mode, target]).args(args).env_remove("MCP_TOKEN");
    if let Some(token) = token {
        command.env("MCP_TOKEN", token);
    }
    command
}

#[derive(Debug)]
struct ClientRun {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl ClientRun {
    fn steps(&self) -> Vec<Value> {
        assert_eq!(self.code, Some(0), "the MCP client failed:\n{}\n{}", self.stdout, self.stderr);
        self.stdout.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))).collect()
    }
}

/// Run the client with `steps`, within [`CLIENT_DEADLINE`].
fn run_client(mut command: Command, steps: &[Value]) -> ClientRun {
    command.env("MCP_STEPS", Value::from(steps.to_vec()).to_string());
    let mut client = Peer::spawn("MCP client", &mut command);
    let code = client.wait(CLIENT_DEADLINE);
    ClientRun { code, stdout: client.stdout(), stderr: client.output() }
}

/// A step's result, which must have succeeded.
fn ok(step: &Value) -> &Value {
    assert_eq!(step["ok"], true, "step failed: {step}");
    &step["result"]
}

/// The names a `list` step returned.
fn names(step: &Value) -> Vec<String> {
    ok(step).as_array().unwrap_or_else(|| panic!("not a list: {step}")).iter().map(|name| name.as_str().unwrap().to_string()).collect()
}

/// The text of a successful tool call.
fn text(step: &Value) -> String {
    let result = ok(step);
    assert_ne!(result["isError"], true, "the tool failed: {result}");
    result["content"][0]["text"].as_str().unwrap_or_else(|| panic!("no text: {result}")).to_string()
}

/// The message of a tool call that failed (as a tool error, which clients show to the user).
fn tool_error(step: &Value) -> String {
    let result = ok(step);
    assert_eq!(result["isError"], true, "the tool call should have failed: {result}");
    result["content"][0]["text"].as_str().unwrap().to_string()
}

// ---------------------------------------------------------------------------------------------
// Child processes

fn peer(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peers").join(name)
}

/// A child process whose stdout and stderr are collected; killed (by PID) when dropped, and its
/// output shown when the test failed.
struct Peer {
    name: String,
    child: std::process::Child,
    stdout: Arc<Mutex<String>>,
    output: Arc<Mutex<String>>,
    /// The threads that read stdout and stderr; each ends when its pipe closes.
    readers: [thread::JoinHandle<()>; 2],
}

impl Peer {
    fn spawn(name: &str, command: &mut Command) -> Peer {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let (stdout, output) = (Arc::new(Mutex::new(String::new())), Arc::new(Mutex::new(String::new())));
        let collect = |stream: Box<dyn Read + Send>, also: Option<Arc<Mutex<String>>>| {
            let output = output.clone();
            thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(also) = &also {
                        also.lock().unwrap().push_str(&format!("{line}\n"));
                    }
                    output.lock().unwrap().push_str(&format!("{line}\n"));
                }
            })
        };
        let readers =
            [collect(Box::new(child.stdout.take().unwrap()), Some(stdout.clone())), collect(Box::new(child.stderr.take().unwrap()), None)];
        Peer { name: name.into(), child, stdout, output, readers }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it printed (stdout and stderr, interleaved by line).
    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// The first line of its output that contains `text`, waiting up to `timeout`.
    fn wait_for(&self, text: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.output().lines().find(|line| line.contains(text)) {
                return line.to_string();
            }
            assert!(Instant::now() < deadline, "{} did not print {text:?} within {timeout:?}:\n{}", self.name, self.output());
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its exit code, waiting up to `timeout` (then it is killed and the test fails).
    fn wait(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the readers take the last lines: the pipes close when the child is gone, or a
                // moment later when a grandchild (the gateway a stdio client started) shares stderr.
                let drained = Instant::now() + Duration::from_secs(5);
                while !self.readers.iter().all(thread::JoinHandle::is_finished) && Instant::now() < drained {
                    thread::sleep(Duration::from_millis(10));
                }
                return status.code();
            }
            if Instant::now() > deadline {
                self.kill();
                panic!("{} did not finish within {timeout:?}:\n{}", self.name, self.output());
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            eprintln!("--- {} ---\n{}", self.name, self.output());
        }
    }
}

fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------------
// Docker

/// The server-everything image, built once per test process; `None` (skip) without a Docker
/// Engine, unless `LATCHKEY_TEST_DOCKER=1` promised one.
fn docker_image() -> Option<String> {
    static IMAGE: OnceLock<Option<String>> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            if let Err(problem) =
                Command::new("docker").arg("version").output().map_err(|e| e.to_string()).and_then(|output| {
                    if output.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&output.stderr).into_owned()) }
                })
            {
                assert!(
                    std::env::var("LATCHKEY_TEST_DOCKER").as_deref() != Ok("1"),
                    "LATCHKEY_TEST_DOCKER=1, but Docker is not reachable ({problem}); run the tests through tests/run"
                );
                eprintln!("skipping: no Docker Engine ({problem}); run under tests/support/with-dockerd.sh");
                return None;
            }
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("support/everything-image.sh");
            let output = Command::new(script).output().expect("running everything-image.sh");
            assert!(output.status.success(), "building the image failed: {}", String::from_utf8_lossy(&output.stderr));
            Some(String::from_utf8_lossy(&output.stdout).trim().to_string())
        })
        .clone()
}

fn docker(args: &[&str]) -> String {
    let output = Command::new("docker").args(args).output().unwrap();
    assert!(output.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}
