//! The Windows build of latchkey (`latchkey.exe`, `x86_64-pc-windows-gnu`) run under Wine, as a
//! user on Windows runs it: listing and verifying providers, validating catalogs, secrets in the
//! file store, signing in with `oauth authorize --paste` against a real authorization server
//! (`tests/peers/oidc-server.mjs`, run natively on 127.0.0.1, which Wine shares), a local server
//! whose program is a `.cmd` shim, as `npx` and `uvx` are on Windows, the gateway started over
//! stdio by an MCP client that signs a server in from inside the client, and `client connect` on
//! Claude Desktop's file.
//!
//! Each test has its own `LATCHKEY_HOME` on the Wine prefix's `C:` drive, given to latchkey.exe as
//! a Windows path, and the file store (Wine's Credential Manager is not Windows', so the keyring
//! store is not tried here).
//!
//! `LATCHKEY_TEST_WINDOWS_EXE` names the exe, `CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER` the Wine
//! that runs it and `WINEPREFIX` the prefix: `tests/run` builds the exe and sets them
//! (`tests/support/with-wine.sh`). Without the first, each test skips with a message; with it, a
//! missing Wine or prefix is a failure.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};
use std::{env, fs};

use latchkey_tests::peers::{NodePeer, node, peers_dir};
use latchkey_tests::{Run, files_containing};

/// How long one latchkey.exe run may take. Wine starts in a second, but a debug build compiles a
/// provider component in seconds, and under Wine every run compiles what it loads (wasmtime cannot
/// map the compiled-code cache there): `provider ls`, all 23 built-ins, takes a minute or more.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// Where latchkey.exe is and what runs it.
struct Wine {
    runner: PathBuf,
    exe: PathBuf,
    prefix: PathBuf,
}

impl Wine {
    /// The Wine set-up that `tests/run` promises, or `None` (the test skips) without one.
    fn get() -> Option<Wine> {
        let Some(exe) = env::var_os("LATCHKEY_TEST_WINDOWS_EXE").map(PathBuf::from) else {
            eprintln!("skipping: LATCHKEY_TEST_WINDOWS_EXE is not set; tests/run builds latchkey.exe and runs this under Wine");
            return None;
        };
        let variable = |name: &str| {
            env::var_os(name).map(PathBuf::from).unwrap_or_else(|| {
                panic!("LATCHKEY_TEST_WINDOWS_EXE is set, but {name} is not; run the tests through tests/support/with-wine.sh")
            })
        };
        let (runner, prefix) = (variable("CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER"), variable("WINEPREFIX"));
        assert!(exe.is_file(), "{} is missing: build it with `cargo build -p latchkey --target x86_64-pc-windows-gnu`", exe.display());
        assert!(prefix.join("drive_c").is_dir(), "{} is not a Wine prefix (no drive_c)", prefix.display());
        Some(Wine { runner, exe, prefix })
    }

    /// A fresh `LATCHKEY_HOME` on the prefix's `C:` drive.
    fn home(&self) -> WinHome {
        let dir = tempfile::Builder::new().prefix("latchkey-home-").tempdir_in(self.prefix.join("drive_c")).unwrap();
        WinHome { windows: self.windows_path(dir.path()), dir }
    }

    /// What `path` (on this machine) is called under Wine: `C:\…` inside the prefix's `drive_c`,
    /// `Z:\…` (Wine's drive for `/`) elsewhere.
    fn windows_path(&self, path: &Path) -> String {
        let (drive, rest) = match path.strip_prefix(self.prefix.join("drive_c")) {
            Ok(rest) => ("C:", rest),
            Err(_) => ("Z:", path.strip_prefix("/").expect("an absolute path")),
        };
        let parts: Vec<_> = rest.iter().map(|part| part.to_string_lossy()).collect();
        format!("{drive}\\{}", parts.join("\\"))
    }

    /// `latchkey.exe <args>` in `home`, with the file store and no colour.
    fn command(&self, home: &WinHome, args: &[&str]) -> Command {
        let mut command = Command::new(&self.runner);
        command
            .arg(&self.exe)
            .args(args)
            .env("LATCHKEY_HOME", &home.windows)
            .env("LATCHKEY_STORE", "file")
            .env("NO_COLOR", "1")
            .env_remove("LATCHKEY_LOG");
        command
    }

    fn run(&self, home: &WinHome, args: &[&str], stdin: &[u8]) -> Run {
        let mut command = self.command(home, args);
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().unwrap_or_else(|e| panic!("running {}: {e}", self.runner.display()));
        let _ = child.stdin.take().unwrap().write_all(stdin);
        finish(child, args)
    }

    fn ok(&self, home: &WinHome, args: &[&str]) -> Run {
        let run = self.run(home, args, b"");
        assert_eq!(run.code, Some(0), "latchkey.exe {args:?} failed: {run:#?}");
        run
    }
}

/// Collect `child`'s output, killing it after [`RUN_TIMEOUT`]: a Windows program that hangs under
/// Wine must fail the test, not stall the suite.
fn finish(mut child: Child, args: &[&str]) -> Run {
    let deadline = Instant::now() + RUN_TIMEOUT;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        let (sender, receiver) = mpsc::channel();
        thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut text);
            }
            let _ = sender.send(String::from_utf8_lossy(&text).into_owned());
        });
        receiver
    };
    let stdout = drain(child.stdout.take().map(|pipe| Box::new(pipe) as Box<dyn Read + Send>));
    let stderr = drain(child.stderr.take().map(|pipe| Box::new(pipe) as Box<dyn Read + Send>));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("latchkey.exe {args:?} did not finish within {RUN_TIMEOUT:?} under Wine");
        }
        thread::sleep(Duration::from_millis(20));
    };
    // A process that latchkey.exe started and left running would hold the pipes open.
    let text = |output: mpsc::Receiver<String>, name: &str| {
        output.recv_timeout(deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(5)).unwrap_or_else(|_| {
            panic!("latchkey.exe {args:?} exited ({status}), but its {name} stayed open: a process it started still runs")
        })
    };
    Run { code: status.code(), stdout: text(stdout, "stdout"), stderr: text(stderr, "stderr") }
}

/// A `LATCHKEY_HOME` inside the Wine prefix, removed when dropped.
struct WinHome {
    dir: tempfile::TempDir,
    /// The same folder as latchkey.exe names it (`C:\latchkey-home-…`).
    windows: String,
}

impl WinHome {
    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn catalog(&self, name: &str, yaml: &str) -> PathBuf {
        let dir = self.path().join("catalogs");
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join(name);
        fs::write(&file, yaml).unwrap();
        file
    }
}

/// The built-in Google provider's component, as the build of the host left it
/// (`<target>/latchkey-providers`, shared by every platform's build: host/build.rs).
fn google_component(wine: &Wine) -> PathBuf {
    // <target>/x86_64-pc-windows-gnu/debug/latchkey.exe
    let target = wine.exe.ancestors().nth(3).expect("the exe lives in <target>/<triple>/<profile>");
    let component = target.join("latchkey-providers/wasm32-wasip2/provider/latchkey_provider_google.wasm");
    assert!(component.is_file(), "{} is missing; building latchkey builds it", component.display());
    component
}

#[test]
fn providers_are_listed_and_a_component_verifies() {
    let Some(wine) = Wine::get() else { return };
    let home = wine.home();

    let run = wine.ok(&home, &["provider", "ls"]);
    for id in ["standard", "google", "slack", "microsoft", "github"] {
        assert!(run.stdout.lines().any(|line| line.split_whitespace().next() == Some(id)), "`{id}` is not listed:\n{}", run.stdout);
    }

    let file = home.path().join("google.wasm");
    fs::copy(google_component(&wine), &file).unwrap();
    let windows_file = wine.windows_path(&file);
    let run = wine.ok(&home, &["provider", "verify", &windows_file]);
    assert!(run.stdout.starts_with(&format!("ok: {windows_file} is provider `google` ")), "{run:#?}");

    // Not a component: refused, naming the file by its Windows path.
    fs::write(home.path().join("broken.wasm"), "not wasm").unwrap();
    let broken = wine.windows_path(&home.path().join("broken.wasm"));
    let run = wine.run(&home, &["provider", "verify", &broken], b"");
    assert_eq!(run.code, Some(3), "{run:#?}");
    assert!(run.stderr.starts_with(&format!("invalid: {broken}: ")), "{run:#?}");
}

#[test]
fn catalogs_validate_and_a_mistake_is_named_by_windows_path_and_line() {
    let Some(wine) = Wine::get() else { return };
    let home = wine.home();
    home.catalog("mine.yaml", "servers:\n  notes:\n    command: [notes-server, --stdio]\n");
    let run = wine.ok(&home, &["catalog", "validate"]);
    assert!(run.stdout.starts_with("ok: 2 catalogs: "), "{run:#?}");

    let broken = home.catalog("broken.yaml", "servers:\n  web:\n    remote: {url: http://example.com/mcp}\n");
    let run = wine.run(&home, &["catalog", "validate", &wine.windows_path(&broken)], b"");
    assert_eq!(run.code, Some(3), "{run:#?}");
    assert!(run.stdout.contains(&format!("{}:3:", wine.windows_path(&broken))) && run.stdout.contains("is not https"), "{run:#?}");
}

#[test]
fn secrets_go_to_the_file_store_and_never_to_the_output() {
    let Some(wine) = Wine::get() else { return };
    let home = wine.home();
    let value = "s3cret-VALUE-on-windows";

    let set = wine.run(&home, &["secret", "set", "notes.token"], format!("{value}\r\n").as_bytes());
    assert_eq!(set.code, Some(0), "{set:#?}");
    let file = format!("{}\\secrets.json", home.windows);
    assert_eq!(set.stdout.trim(), format!("Stored secret notes.token in the file {file}."));

    let ls = wine.ok(&home, &["secret", "ls"]);
    let lines: Vec<&str> = ls.stdout.lines().map(str::trim).collect();
    assert_eq!(lines, ["NAME", "notes.token", &format!("1 secret in the file {file}")], "{ls:#?}");

    // The value (without the line ending a Windows console adds) is in the store's file alone.
    assert!(!format!("{set:?}{ls:?}").contains(value));
    assert_eq!(files_containing(home.path(), value), [home.path().join("secrets.json")]);
    let stored = fs::read_to_string(home.path().join("secrets.json")).unwrap();
    assert!(stored.contains(&format!("\"{value}\"")), "the value is stored without its line ending");
}

#[test]
fn oauth_authorize_with_a_pasted_redirect_signs_in() {
    let Some(wine) = Wine::get() else { return };
    let oidc = NodePeer::start("oidc-server.mjs", &[]);
    let issuer = oidc.url("");
    let home = wine.home();
    home.catalog("notes.yaml", &format!("servers:\n  notes:\n    command: [notes-server]\n{}", signed_in_at(&issuer)));

    let mut command = wine.command(&home, &["oauth", "authorize", "notes", "--paste"]);
    let mut latchkey = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // The authorization URL, from the prompt on stderr; the rest of stderr is kept for the report.
    let (found, url) = mpsc::channel();
    let stderr = BufReader::new(latchkey.stderr.take().unwrap());
    let stderr = thread::spawn(move || {
        let mut seen = String::new();
        for line in stderr.lines().map_while(Result::ok) {
            if let Some(url) = line.trim().strip_prefix(&format!("{issuer}/auth?")) {
                let _ = found.send(format!("{issuer}/auth?{url}"));
            }
            seen.push_str(&line);
            seen.push('\n');
        }
        seen
    });
    let Ok(url) = url.recv_timeout(RUN_TIMEOUT) else {
        let _ = latchkey.kill();
        let _ = latchkey.wait();
        panic!("latchkey.exe showed no authorization URL:\n{}", stderr.join().unwrap());
    };

    // The user signs in and consents in a browser, then copies the address it ends on.
    let browser = Command::new(node())
        .arg(peers_dir().join("consent.mjs"))
        .arg(&url)
        .env("CONSENT_MODE", "paste")
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let redirect = String::from_utf8_lossy(&browser.stdout).trim().to_string();
    assert!(browser.status.success() && redirect.starts_with("http://127.0.0.1:"), "the scripted browser failed: {browser:?}");
    latchkey.stdin.take().unwrap().write_all(format!("{redirect}\r\n").as_bytes()).unwrap();

    let mut run = finish(latchkey, &["oauth", "authorize", "--paste"]);
    run.stderr = stderr.join().unwrap();
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(run.stdout.contains("Authorized notes with standard"), "{run:#?}");

    let listed = wine.ok(&home, &["oauth", "ls", "--json"]).json();
    let credential = &listed["credentials"][0];
    assert_eq!(credential["server"], "notes", "{listed:#}");
    assert_eq!(credential["refreshable"], true, "{listed:#}");
}

#[test]
fn a_local_server_whose_program_is_a_cmd_shim_starts() {
    let Some(wine) = Wine::get() else { return };
    let home = wine.home();
    home.catalog("shim.yaml", &format!("servers:\n  shim:\n{}", shim_server(&wine, &home)));
    let run = wine.ok(&home, &["tools", "ls", "--server", "shim"]);
    assert!(run.stdout.contains("The server offers no tools."), "{run:#?}");
}

/// The gateway over stdio, started by an AI client (the reference SDK client, declaring URL
/// elicitation), with a server that needs a sign-in: its sign-in tool, the URL elicitation, the
/// gateway's loopback sign-in page, the callback and token exchange, the tokens stored, and the
/// server (a `.cmd` shim) started once they are: the gateway's HTTP listeners and its child
/// processes, as Windows runs them.
#[test]
fn a_server_is_signed_in_from_inside_the_client() {
    let Some(wine) = Wine::get() else { return };
    let oidc = NodePeer::start("oidc-server.mjs", &[]);
    let home = wine.home();
    home.catalog("notes.yaml", &format!("servers:\n  notes:\n{}{}", shim_server(&wine, &home), signed_in_at(&oidc.url(""))));
    let consent_log = home.path().join("consent.log");
    let steps = serde_json::json!([
        {"list": "tools"},
        {"call": "notes__sign_in"},
        {"follow": "elicitation"},
        {"wait": "elicitation", "ms": 120_000},
        {"wait": "tools", "ms": 120_000},
        {"list": "tools"},
    ]);
    let client = Command::new(node())
        .arg(peers_dir().join("mcp-client.mjs"))
        .args(["stdio".as_ref(), wine.runner.as_os_str(), wine.exe.as_os_str()])
        .args(["gateway", "run", "--servers", "notes"])
        .env("LATCHKEY_HOME", &home.windows)
        .env("LATCHKEY_STORE", "file")
        .env("NO_COLOR", "1")
        .env("MCP_ELICITATION", "url")
        .env("CONSENT_LOG", &consent_log)
        .env("MCP_STEPS", steps.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let run = finish(client, &["gateway", "run"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let steps: Vec<serde_json::Value> = run.stdout.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    let browser = fs::read_to_string(&consent_log).unwrap_or_default();

    assert_eq!(steps[0]["result"], serde_json::json!(["notes__sign_in"]), "{run:#?}");
    assert_eq!(steps[1]["code"], -32042, "{run:#?}");
    let elicitation = &steps[1]["data"]["elicitations"][0];
    let url = elicitation["url"].as_str().unwrap_or_default();
    assert!(url.starts_with("http://127.0.0.1:") && url.contains("/sign-in/"), "{elicitation}");
    assert_eq!(steps[2]["result"]["exitCode"], 0, "the scripted browser failed: {browser}\n{run:#?}");
    assert!(browser.contains("sign-in page 303") && browser.contains("go back to your AI client"), "{browser}");
    assert_eq!(steps[3]["result"]["completed"], serde_json::json!([elicitation["elicitationId"]]), "{run:#?}");
    // Signed in, the server runs: its sign-in tool is gone (the shim's own gateway serves no tools).
    assert_eq!(steps[5]["result"], serde_json::json!([]), "{run:#?}");
    let listed = wine.ok(&home, &["oauth", "ls", "--json"]).json();
    assert_eq!(listed["credentials"][0]["server"], "notes", "{listed:#}");
}

/// A catalog server's `command` and `env` (indented for a server entry): like npm's `npx.cmd`, a
/// batch file that runs the real program with its arguments. The program is latchkey.exe's own
/// gateway, in an empty home of its own (so it serves no tools).
fn shim_server(wine: &Wine, home: &WinHome) -> String {
    let shims = home.path().join("shims");
    fs::create_dir_all(&shims).unwrap();
    fs::write(shims.join("latchkey-server.cmd"), format!("@\"{}\" %*\r\n", wine.windows_path(&wine.exe))).unwrap();
    format!(
        "    command: [latchkey-server, gateway, run]\n    env:\n      - {{name: PATH, value: '{}'}}\n\
         \x20     - {{name: LATCHKEY_HOME, value: '{}\\inner'}}\n      - {{name: LATCHKEY_STORE, value: file}}\n",
        wine.windows_path(&shims),
        home.windows,
    )
}

/// A server entry's `secrets` and `oauth` (indented for a server entry): signed in at the
/// oidc-provider `issuer` as its public client.
fn signed_in_at(issuer: &str) -> String {
    format!(
        "    secrets:\n      - {{name: notes.token, env: TOKEN}}\n\
         \x20   oauth:\n      scopes: [openid, offline_access]\n      providers:\n        - provider: standard\n\
         \x20         secret: notes.token\n          server_metadata:\n            issuer: {issuer}\n\
         \x20           authorization_endpoint: {issuer}/auth\n            token_endpoint: {issuer}/token\n\
         \x20           token_endpoint_auth_methods_supported: [none]\n\
         \x20           authorization_response_iss_parameter_supported: true\n\
         \x20         registration: {{client_id: public-client}}\n"
    )
}

/// `client connect` as a Windows user of Claude Desktop runs it: the file in the roaming AppData
/// folder (Windows' known folder, which Wine keeps in the prefix), written with CRLF line endings
/// as Windows editors leave them, the entry naming latchkey.exe by its Windows path, and
/// `disconnect` giving back the file's bytes.
#[test]
fn client_connect_edits_claude_desktop_s_file_in_the_roaming_app_data_folder() {
    let Some(wine) = Wine::get() else { return };
    let home = wine.home();
    let users = wine.prefix.join("drive_c/users");
    let profile = fs::read_dir(&users)
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .find(|path| path.file_name().is_some_and(|name| name != "Public") && path.join("AppData/Roaming").is_dir())
        .unwrap_or_else(|| panic!("no user profile with AppData\\Roaming in {}", users.display()));
    let file = profile.join("AppData/Roaming/Claude/claude_desktop_config.json");
    /// Removes what the test wrote into the prefix's profile, whatever happens.
    struct Remove(PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
    let _remove = Remove(file.parent().unwrap().to_path_buf());
    fs::create_dir_all(file.parent().unwrap()).unwrap();
    let original = "{\r\n  \"mcpServers\": {\r\n    \"other\": {\"command\": \"other.exe\"}\r\n  },\r\n  \"theme\": \"dark\"\r\n}\r\n";
    fs::write(&file, original).unwrap();

    wine.ok(&home, &["client", "connect", "claude-desktop"]);
    let written = fs::read_to_string(&file).unwrap();
    assert!(written.contains("\"other.exe\"") && written.contains("\"theme\": \"dark\""), "the rest of the file stays: {written}");
    let exe = wine.windows_path(&wine.exe);
    assert!(written.contains(&serde_json::to_string(&exe).unwrap()), "the entry runs latchkey.exe by its Windows path: {written}");

    let listed = wine.ok(&home, &["client", "ls", "--json"]).json();
    let claude = listed["clients"].as_array().unwrap().iter().find(|client| client["id"] == "claude-desktop").unwrap().clone();
    assert_eq!(claude["connected"], true, "{claude:#}");
    assert_eq!(claude["command"], serde_json::json!([exe, "gateway", "run"]), "{claude:#}");
    assert_eq!(claude["path"], wine.windows_path(&file), "{claude:#}");

    wine.ok(&home, &["client", "disconnect", "claude-desktop"]);
    assert_eq!(fs::read_to_string(&file).unwrap(), original, "disconnect gives back the file as it was");
}
