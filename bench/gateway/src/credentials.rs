//! The many-credentials scenario: one gateway keeping `--credentials` OAuth credentials alive
//! against an authorization server this benchmark runs, as a shared machine's gateway would for
//! a team's servers and accounts.
//!
//! The benchmark seeds a private `LATCHKEY_HOME`: a catalog of remote servers `c00001`…, each
//! with a pre-registered client of this authorization server, and the file store with one stored
//! credential per server and account (`--accounts` each, `a001`…, or the default account alone;
//! written at once, through latchkey's own store), whose access tokens were
//! obtained at random times over a `--lifetime` (seconds), so that they expire spread over the
//! next one (from three minutes on, once the gateway has started), as a day's sign-ins would.
//! The servers themselves answer nothing (their URL is a `404`): what runs is the gateway's
//! refresh scheduler.
//!
//! The token endpoint answers every refresh with a new access token valid for `--lifetime`
//! seconds and notes when it came and how long before the old token's expiry. For `--duration`
//! seconds the benchmark prints, every `--every` seconds, the gateway's resident memory, the
//! refreshes since the last line and how long `/health` took; then the summary: peak memory, the
//! refreshes per second (most and mean), how long before expiry they came (the scheduler promises
//! 60–70 s: `REFRESH_SKEW` plus up to 10 s of jitter) and how many came late.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use axum::extract::State;
use axum::response::IntoResponse;
use latchkey::paths::Paths;
use latchkey::store::{Credential, CredentialId, SecretString, Store, StoreKind, TokenSet};
use serde_json::json;

use crate::{mcp, procfs};

pub struct Settings {
    pub credentials: usize,
    /// Accounts per catalog server; 1: the default account alone, one server per credential.
    pub accounts: usize,
    /// Seconds an access token lives.
    pub lifetime: u64,
    /// Seconds to watch the gateway.
    pub duration: u64,
    /// Seconds between two lines of the time series.
    pub every: u64,
}

/// How long after seeding the first token expires: the gateway's start and its first check of
/// every credential (about 20 s for 10 000) come well before, so that what is measured is the
/// scheduler's steady state, not tokens found due at start.
const SETTLE: Duration = Duration::from_secs(180);

/// The client every server's entry registers.
const CLIENT_ID: &str = "bench-client";

/// The authorization server's books: each refresh token's current expiry, and every refresh.
#[derive(Default)]
struct Books {
    expiry: HashMap<String, SystemTime>,
    /// When each refresh came, and how many seconds before the token it replaced expired
    /// (negative: after).
    refreshes: Vec<(Instant, f64)>,
    lifetime: u64,
    issued: u64,
}

type Shared = Arc<Mutex<Books>>;

impl Settings {
    /// How many catalog servers hold the credentials.
    fn servers(&self) -> usize {
        self.credentials.div_ceil(self.accounts.max(1))
    }

    /// Each credential's server and account (`None`: the default account, when servers have one
    /// account each).
    fn selectors(&self) -> Vec<(String, Option<String>)> {
        (0..self.credentials)
            .map(|n| {
                let server = format!("c{:05}", n / self.accounts.max(1) + 1);
                let account = (self.accounts > 1).then(|| format!("a{:03}", n % self.accounts + 1));
                (server, account)
            })
            .collect()
    }
}

async fn token(State(books): State<Shared>, body: String) -> axum::response::Response {
    let form: HashMap<String, String> = form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    let (Some("refresh_token"), Some(refresh_token)) = (form.get("grant_type").map(String::as_str), form.get("refresh_token")) else {
        let error = json!({"error": "unsupported_grant_type"});
        return (axum::http::StatusCode::BAD_REQUEST, axum::Json(error)).into_response();
    };
    let mut books = books.lock().expect("books lock");
    let now = SystemTime::now();
    let Some(expires) = books.expiry.get(refresh_token).copied() else {
        return (axum::http::StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_grant"}))).into_response();
    };
    let lead = match expires.duration_since(now) {
        Ok(left) => left.as_secs_f64(),
        Err(late) => -late.duration().as_secs_f64(),
    };
    books.refreshes.push((Instant::now(), lead));
    let lifetime = books.lifetime;
    books.expiry.insert(refresh_token.clone(), now + Duration::from_secs(lifetime));
    books.issued += 1;
    let access_token = format!("access-{}", books.issued);
    axum::Json(json!({"access_token": access_token, "token_type": "Bearer", "expires_in": lifetime, "refresh_token": refresh_token}))
        .into_response()
}

/// Seed `home` for `settings.credentials` servers of the authorization server at `issuer`.
fn seed(home: &Path, issuer: &str, settings: &Settings, books: &Shared) -> Result<()> {
    let catalogs = home.join("catalogs");
    std::fs::create_dir_all(&catalogs)?;
    // A file per thousand servers: the catalog parser bounds the size of one YAML document.
    let numbers: Vec<usize> = (1..=settings.servers()).collect();
    for (part, chunk) in numbers.chunks(1000).enumerate() {
        let mut catalog = String::from("servers:\n");
        for n in chunk {
            let _ = write!(
                catalog,
                "  c{n:05}:\n    remote: {{url: \"{issuer}/mcp\"}}\n    oauth:\n      providers:\n        - server_metadata: \
                 {{issuer: \"{issuer}\", authorization_endpoint: \"{issuer}/authorize\", token_endpoint: \"{issuer}/token\", \
                 token_endpoint_auth_methods_supported: [none]}}\n          registration: {{client_id: {CLIENT_ID}}}\n"
            );
        }
        std::fs::write(catalogs.join(format!("credentials-{part:02}.yaml")), catalog)?;
    }

    let now = SystemTime::now();
    let mut books = books.lock().expect("books lock");
    let credentials: Vec<Credential> = settings
        .selectors()
        .into_iter()
        .enumerate()
        .map(|(n, (server, account))| {
            // Obtained at a random time in the last lifetime: it expires within the next one, from
            // the time the gateway has started and checked them all on.
            let expires_at = now + SETTLE + Duration::from_secs_f64(rand::random::<f64>() * settings.lifetime as f64);
            let refresh_token = format!("refresh-{}", n + 1);
            books.expiry.insert(refresh_token.clone(), expires_at);
            let tokens = TokenSet::bearer(
                SecretString::from(format!("seeded-{}", n + 1)),
                Some(SecretString::from(refresh_token)),
                Some(expires_at),
            );
            Credential::authorized(CredentialId::new(server, issuer, CLIENT_ID).with_account(account), "standard", tokens)
        })
        .collect();
    drop(books);
    let store = Store::open_kind(&Paths::under(home.to_path_buf()), Some(StoreKind::File))?;
    store.save_credentials(&credentials).context("seeding the store")
}

pub async fn run(latchkey: &Path, settings: &Settings) -> Result<String> {
    let books: Shared = Arc::new(Mutex::new(Books { lifetime: settings.lifetime, ..Books::default() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let issuer = format!("http://{}", listener.local_addr()?);
    let app = axum::Router::new().route("/token", axum::routing::post(token)).with_state(books.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let home = tempfile::tempdir()?;
    // The usual start, not the first: the provider components compiled into the home's cache.
    let warmed = tokio::process::Command::new(latchkey)
        .args(["provider", "ls"])
        .env("LATCHKEY_HOME", home.path())
        .stdout(Stdio::null())
        .status()
        .await?;
    if !warmed.success() {
        bail!("`latchkey provider ls` failed ({warmed})");
    }
    let seeding = Instant::now();
    seed(home.path(), &issuer, settings, &books)?;
    let store_mb = std::fs::metadata(home.path().join("secrets.json"))?.len() as f64 / 1e6;
    eprintln!("seeded {} credentials in {:.1} s ({store_mb:.1} MB store)", settings.credentials, seeding.elapsed().as_secs_f64());

    let servers: Vec<String> = settings
        .selectors()
        .into_iter()
        .map(|(server, account)| match account {
            Some(account) => format!("{server}@{account}"),
            None => server,
        })
        .collect();
    let port = free_port()?;
    let mut gateway = tokio::process::Command::new(latchkey)
        .args(["gateway", "run", "--transport", "http", "--host", "127.0.0.1", "--allow-unauthenticated", "--port"])
        .arg(port.to_string())
        .arg("--servers")
        .arg(servers.join(","))
        .env("LATCHKEY_HOME", home.path())
        .env("LATCHKEY_STORE", "file")
        .env("RUST_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(home.path().join("gateway.log"))?)
        .kill_on_drop(true)
        .spawn()
        .context("starting the gateway")?;
    let pid = gateway.id().context("the gateway has no pid")?;
    let http = mcp::client()?;
    let health_url = format!("http://127.0.0.1:{port}/health");
    let waited = Instant::now();
    let authorized = loop {
        if let Some(status) = gateway.try_wait()? {
            let log = std::fs::read_to_string(home.path().join("gateway.log")).unwrap_or_default();
            bail!("the gateway exited at start ({status}); it said:\n{log}");
        }
        let health: serde_json::Value = match http.get(&health_url).send().await {
            Ok(response) => response.json().await?,
            Err(_) => serde_json::Value::Null,
        };
        let authorized = health["credentials"]
            .as_object()
            .map_or(0, |credentials| credentials.values().filter(|credential| credential["state"] == "authorized").count());
        if authorized == settings.credentials {
            break waited.elapsed();
        }
        if waited.elapsed() > Duration::from_secs(600) {
            bail!("{authorized} of {} credentials checked after 600 s", settings.credentials);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("every credential checked {:.1} s after the gateway started", authorized.as_secs_f64());

    let mut table = format!(
        "\n{} credentials ({} servers × {} accounts), tokens living {} s and expiring spread over the next {} s; the gateway \
         watched for {} s.\n\n\
         | t s | gateway RSS MB | of it anonymous MB | refreshes | refreshes/s | /health ms |\n|---:|---:|---:|---:|---:|---:|\n",
        settings.credentials,
        settings.servers(),
        settings.accounts.max(1),
        settings.lifetime,
        settings.lifetime,
        settings.duration
    );
    let watching = Instant::now();
    let mut counted = books.lock().expect("books lock").refreshes.len();
    let mut healths = Vec::new();
    while watching.elapsed() < Duration::from_secs(settings.duration) {
        tokio::time::sleep(Duration::from_secs(settings.every)).await;
        let asked = Instant::now();
        http.get(&health_url).send().await?.bytes().await?;
        let health = asked.elapsed();
        healths.push(health);
        let total = books.lock().expect("books lock").refreshes.len();
        let _ = writeln!(
            table,
            "| {:.0} | {:.1} | {:.1} | {} | {:.1} | {:.1} |",
            watching.elapsed().as_secs_f64(),
            procfs::status_kib(pid, "VmRSS")? as f64 / 1024.0,
            procfs::status_kib(pid, "RssAnon")? as f64 / 1024.0,
            total - counted,
            (total - counted) as f64 / settings.every as f64,
            health.as_secs_f64() * 1000.0
        );
        counted = total;
    }
    let peak = procfs::status_kib(pid, "VmHWM")? as f64 / 1024.0;
    let cpu = procfs::cpu_ticks(pid)? as f64 / procfs::ticks_per_second();
    gateway.kill().await?;

    let books = books.lock().expect("books lock");
    let mut leads: Vec<f64> = books.refreshes.iter().map(|(_, lead)| *lead).collect();
    leads.sort_by(f64::total_cmp);
    let late = leads.iter().filter(|lead| **lead < 0.0).count();
    let started = books.refreshes.first().map(|(at, _)| *at);
    let mut per_second: HashMap<u64, usize> = HashMap::new();
    for (at, _) in &books.refreshes {
        *per_second.entry(at.duration_since(started.unwrap_or(*at)).as_secs()).or_default() += 1;
    }
    let busiest = per_second.values().max().copied().unwrap_or(0);
    let span = books.refreshes.last().zip(started).map_or(0.0, |((last, _), first)| last.duration_since(first).as_secs_f64());
    let lead = |q: f64| leads.get(((leads.len().saturating_sub(1)) as f64 * q).round() as usize).copied().unwrap_or(f64::NAN);
    healths.sort();
    let _ = write!(
        table,
        "\n| credentials | all checked s | peak RSS MB | gateway CPU s | refreshes | most in one second | mean/s | \
         seconds before expiry min / p50 / max | late | /health p50 ms |\n|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|\n\
         | {} | {:.1} | {peak:.1} | {cpu:.1} | {} | {busiest} | {:.1} | {:.1} / {:.1} / {:.1} | {late} | {:.1} |\n",
        settings.credentials,
        authorized.as_secs_f64(),
        books.refreshes.len(),
        books.refreshes.len() as f64 / span.max(1.0),
        lead(0.0),
        lead(0.5),
        lead(1.0),
        healths.get(healths.len() / 2).map_or(f64::NAN, |health| health.as_secs_f64() * 1000.0)
    );
    Ok(table)
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
