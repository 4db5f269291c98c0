//! `latchkey oauth register | authorize | ls | refresh | revoke`.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};
use serde_json::json;

use super::Failure;
use super::output::{self, BOLD, GREEN, YELLOW};
use crate::catalog::Binding;
use crate::oauth::authorize::{Mode, Pending};
use crate::oauth::device::Verification;
use crate::oauth::engine::{self, Engine, Overrides};
use crate::oauth::lifecycle::{CredentialView, human_duration};
use crate::oauth::manual::ManualRegistration;
use crate::oauth::post_token::{SiteChoice, SiteChooser, describe_site};
use crate::paths::Paths;
use crate::plugins::Site;
use crate::store::{Credential, Grant};

#[derive(Subcommand)]
pub enum OAuthCommand {
    /// Record a client registered by hand with the provider (for servers whose catalog entry has
    /// no client id, endpoints or the scopes you need). The secret is read from stdin, never argv.
    Register(RegisterArgs),
    /// Sign in with the browser and store the tokens.
    Authorize(AuthorizeArgs),
    /// List stored credentials: state, expiry, scopes, whether they can be refreshed.
    #[command(alias = "list")]
    Ls {
        #[arg(long)]
        json: bool,
    },
    /// Refresh a server's access tokens now (each of its providers', or the one --provider names).
    Refresh {
        server: String,
        /// Which of the server's OAuth providers: its provider id, or the secret that receives its token.
        #[arg(long)]
        provider: Option<String>,
        /// Which of your accounts (the name given to `oauth authorize --account`).
        #[arg(long)]
        account: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a server's grant at the provider (where it has an endpoint) and delete the local
    /// copy. When the provider does not confirm the revocation, the local copy is kept.
    Revoke {
        server: String,
        /// Only this account's credentials (by default, every account's).
        #[arg(long)]
        account: Option<String>,
        /// Delete the local copy even when the provider did not confirm the revocation.
        #[arg(long)]
        forget: bool,
        #[arg(long)]
        json: bool,
    },
}

/// How to run the browser flow; shared with `tools` for servers that ask for authorization.
#[derive(Args, Clone, Debug, Default)]
pub struct InteractionArgs {
    /// Print the URL instead of opening a browser.
    #[arg(long)]
    pub no_browser: bool,
    /// For machines without a browser: print the URL, then read the URL the browser ended on from
    /// standard input (no local listener is needed).
    #[arg(long)]
    pub paste: bool,
    /// The redirect URI registered with the provider, for --paste with https-only providers.
    #[arg(long, requires = "paste")]
    pub redirect_uri: Option<String>,
    /// Seconds to wait for the browser.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

#[derive(Args)]
pub struct RegisterArgs {
    server: String,
    #[arg(long)]
    client_id: String,
    /// Read the client secret from standard input (or a hidden prompt) and store it as
    /// `<server>.client_secret`.
    #[arg(long)]
    client_secret_stdin: bool,
    #[arg(long, requires = "token_endpoint")]
    authorization_endpoint: Option<String>,
    #[arg(long, requires = "authorization_endpoint")]
    token_endpoint: Option<String>,
    /// The device authorization endpoint (RFC 8628), for `oauth authorize --device`.
    #[arg(long)]
    device_authorization_endpoint: Option<String>,
    /// The authorization server's issuer identifier (checked against `iss` in redirects).
    #[arg(long)]
    issuer: Option<String>,
    /// Scopes to request, separated by commas or spaces.
    #[arg(long)]
    scopes: Option<String>,
    /// The provider plugin to use (see `latchkey provider ls`).
    #[arg(long)]
    provider: Option<String>,
    /// How the client authenticates at the token endpoint; `none` for a public client (no
    /// secret). Without it, the server's metadata and the provider decide.
    #[arg(long, value_parser = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"])]
    auth_method: Option<String>,
}

#[derive(Args)]
pub struct AuthorizeArgs {
    server: String,
    /// Which of the server's OAuth providers, when it has several: its provider id, or the
    /// secret that receives its token.
    #[arg(long)]
    provider: Option<String>,
    /// Scopes to request instead of the catalog's, separated by commas or spaces.
    #[arg(long)]
    scopes: Option<String>,
    /// Keep this sign-in as one of several accounts for the server, under this name (`work`, or
    /// the account's e-mail address, which is also sent as `login_hint`). Without it, the sign-in
    /// is the server's default account.
    #[arg(long)]
    account: Option<String>,
    /// Sign in on another device (RFC 8628): latchkey prints an address and a code to enter
    /// there, and waits. For SSH sessions, containers and headless machines.
    #[arg(long, conflicts_with_all = ["client_credentials", "paste", "no_browser", "redirect_uri"])]
    device: bool,
    /// No person signs in: the client asks for its own token with its secret (RFC 6749 §4.4),
    /// and asks again whenever it ends. The catalog's `grant: client_credentials` does the same.
    #[arg(long, conflicts_with_all = ["paste", "no_browser", "redirect_uri"])]
    client_credentials: bool,
    /// When the token reaches several sites (Atlassian sites, say), the one to use: its id, name
    /// or address. Without it, latchkey asks on a terminal.
    #[arg(long)]
    site: Option<String>,
    #[command(flatten)]
    interaction: InteractionArgs,
}

pub fn run(command: OAuthCommand) -> Result<(), Failure> {
    let paths = Paths::discover()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let open = |paths: Paths| -> anyhow::Result<Engine> {
            let engine = Engine::open(paths)?;
            for notice in engine.notices() {
                output::note(&notice);
            }
            Ok(engine)
        };
        match command {
            OAuthCommand::Register(args) => register(&open(paths)?, args).await,
            OAuthCommand::Authorize(args) => authorize(&open(paths)?, args).await,
            OAuthCommand::Ls { json } => list(&open(paths)?, json).await,
            OAuthCommand::Refresh { server, provider, account, json } => {
                refresh(&open(paths)?, &server, provider.as_deref(), account.as_deref(), json).await
            }
            OAuthCommand::Revoke { server, account, forget, json } => {
                revoke(&open(paths)?, &server, account.as_deref(), forget, json).await
            }
        }
    })
}

pub fn split_scopes(scopes: &str) -> Vec<String> {
    scopes.split([',', ' ']).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

async fn register(engine: &Engine, args: RegisterArgs) -> Result<(), Failure> {
    let RegisterArgs {
        server,
        client_id,
        client_secret_stdin,
        authorization_endpoint,
        token_endpoint,
        device_authorization_endpoint,
        issuer,
        scopes,
        provider,
        auth_method,
    } = args;
    let paths = engine.paths();
    engine.catalog().server(&server)?;
    if client_id.trim().is_empty() {
        return Err(anyhow::anyhow!("--client-id is empty; give the client id the provider's console shows").into());
    }
    if client_secret_stdin && auth_method.as_deref() == Some("private_key_jwt") {
        return Err(anyhow::anyhow!(
            "--auth-method private_key_jwt signs with the client's private key, not a secret; drop --client-secret-stdin and store \
             the key with `latchkey secret set {server}.client_key < key.pem`"
        )
        .into());
    }
    if client_secret_stdin && auth_method.as_deref() == Some("none") {
        return Err(anyhow::anyhow!(
            "--auth-method none registers a public client, which has no secret; drop --client-secret-stdin, or pick \
             client_secret_basic or client_secret_post"
        )
        .into());
    }
    for url in [&authorization_endpoint, &token_endpoint, &device_authorization_endpoint, &issuer].into_iter().flatten() {
        engine::check_endpoint(url)?;
    }
    if let Some(id) = &provider {
        engine.registry().current().get(id)?;
    }
    let client_id = client_id.trim().to_string();
    let registration = ManualRegistration {
        client_id: client_id.clone(),
        provider,
        issuer,
        authorization_endpoint,
        token_endpoint,
        device_authorization_endpoint,
        scopes: scopes.as_deref().map(split_scopes),
        token_endpoint_auth_method: auth_method,
    };
    // A client secret goes only to the authorization server the client is bound to.
    engine.check_registration(&server, &registration, client_secret_stdin).await?;
    let secret_store = if client_secret_stdin {
        let name = format!("{server}.client_secret");
        engine.set_secret(&name, super::secret::read_value(&name)?).await?;
        Some(engine.store_description())
    } else {
        None
    };
    let mut registrations = crate::oauth::manual::Registrations::load(paths)?;
    registrations.set(&server, registration)?;
    let secret_note = secret_store.map(|place| format!(", client secret in {place}")).unwrap_or_default();
    anstream::println!("Registered client {BOLD}{client_id}{BOLD:#} for {server}{secret_note}.");
    anstream::println!("Next: latchkey oauth authorize {server}");
    Ok(())
}

async fn authorize(engine: &Engine, args: AuthorizeArgs) -> Result<(), Failure> {
    let site = SiteChoice { named: args.site.clone(), ask: std::io::stdin().is_terminal().then(|| SiteChooser(Arc::new(ask_for_site))) };
    let overrides = Overrides { scopes: args.scopes.as_deref().map(split_scopes), site, ..Overrides::default() };
    let binding = engine.binding(&args.server, args.provider.as_deref(), args.account.as_deref())?;
    let mut target = engine.target(&binding, &overrides).await?;
    if args.device {
        let pending = engine.start_device(&target).await?;
        show_verification(pending.verification());
        let tokens = wait_with_spinner("waiting for the sign-in on the other device", pending.wait(&target.endpoint)).await?;
        let credential = engine.save_tokens(&target, &tokens, Grant::DeviceCode).await?;
        report_authorized(&binding, &credential);
        return Ok(());
    }
    if args.client_credentials || target.grant == Grant::ClientCredentials {
        let credential = engine.issue_client_credentials(&target).await?;
        report_authorized(&binding, &credential);
        return Ok(());
    }
    let pending = engine.start(&target, mode(&args.interaction)).await?;
    let exchanged = complete(pending, &args.interaction).await?;
    match engine.save(&mut target, &exchanged).await {
        Ok(credential) => {
            exchanged.confirm("latchkey stored the tokens. You can close this tab.").await;
            report_authorized(&binding, &credential);
            Ok(())
        }
        Err(error) => {
            exchanged.fail("latchkey could not finish the sign-in. Check the terminal.").await;
            Err(error.into())
        }
    }
}

fn report_authorized(binding: &Binding, credential: &Credential) {
    let view = CredentialView::of(credential, SystemTime::now());
    anstream::println!("{GREEN}Authorized{GREEN:#} {binding} with {} ({}).", credential.provider, describe_expiry(&view));
    if !view.refreshable {
        output::warning("no refresh token was issued: authorize again when the access token expires");
    }
}

/// Ask on the terminal which of `sites` to use: by number, id, name or address.
fn ask_for_site(sites: &[Site]) -> Option<usize> {
    let mut err = anstream::stderr();
    let _ = writeln!(err, "The token reaches {} sites:", sites.len());
    for (number, site) in sites.iter().enumerate() {
        let _ = writeln!(err, "  {}. {}", number + 1, describe_site(site));
    }
    let _ = write!(err, "Which one should the servers use? [1-{}] ", sites.len());
    let _ = err.flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).ok()?;
    let answer = line.trim();
    let by_number = answer.parse::<usize>().ok().and_then(|number| number.checked_sub(1)).filter(|index| *index < sites.len());
    by_number.or_else(|| sites.iter().position(|site| site.id == answer || site.name == answer || site.url.as_deref() == Some(answer)))
}

/// Where to go and what to enter, for RFC 8628's user step; a QR code of the address on a
/// terminal, for a phone.
fn show_verification(verification: &Verification) {
    let mut err = anstream::stderr();
    let _ = writeln!(
        err,
        "On any device with a browser, open\n\n  {}\n\nand enter the code  {BOLD}{}{BOLD:#}\n",
        verification.uri, verification.user_code
    );
    if let Some(complete) = &verification.uri_complete {
        let _ = writeln!(err, "or open this address, which carries the code:\n\n  {complete}\n");
        if std::io::stderr().is_terminal()
            && let Ok(code) = qrcode::QrCode::new(complete.as_bytes())
        {
            let picture = code.render::<qrcode::render::unicode::Dense1x2>().quiet_zone(true).build();
            let _ = writeln!(err, "{picture}\n");
        }
    }
    let _ = writeln!(err, "The code is valid for {}.", human_duration(verification.lifetime.as_secs()));
}

/// Run `wait` with a spinner saying `message` on a terminal.
async fn wait_with_spinner<T>(message: &str, wait: impl Future<Output = T>) -> T {
    let spinner = indicatif::ProgressBar::new_spinner();
    if std::io::stderr().is_terminal() {
        spinner.set_message(message.to_string());
        spinner.enable_steady_tick(Duration::from_millis(120));
    } else {
        spinner.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let result = wait.await;
    spinner.finish_and_clear();
    result
}

pub fn mode(interaction: &InteractionArgs) -> Mode {
    if interaction.paste { Mode::Paste { redirect_uri: interaction.redirect_uri.clone() } } else { Mode::Listen }
}

/// Show the URL (and open the browser), then wait for the redirect or read the pasted URL.
pub async fn complete(pending: Pending, interaction: &InteractionArgs) -> anyhow::Result<crate::oauth::authorize::Exchanged> {
    let mut err = anstream::stderr();
    if interaction.paste {
        let _ = writeln!(err, "Open this URL in a browser, sign in, then paste the address the browser ends on:\n\n  {}\n", pending.url());
        let _ = write!(err, "URL: ");
        let _ = err.flush();
        let line = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).map(|_| line)
        })
        .await??;
        return Ok(pending.complete_pasted(&line).await?);
    }
    let opened = !interaction.no_browser && webbrowser::open(pending.url()).is_ok();
    if opened {
        let _ = writeln!(err, "Opened the browser. If nothing appeared, open:\n\n  {}\n", pending.url());
    } else {
        let _ = writeln!(err, "Open this URL in a browser to sign in:\n\n  {}\n", pending.url());
    }
    let message = format!("waiting for the browser to come back to {}", pending.redirect_uri());
    Ok(wait_with_spinner(&message, pending.wait(Duration::from_secs(interaction.timeout))).await?)
}

fn describe_expiry(view: &CredentialView) -> String {
    match view.expires_in {
        None => "no expiry given".into(),
        Some(seconds) if seconds <= 0 => "expired".into(),
        Some(seconds) => format!("expires in {}", human_duration(seconds as u64)),
    }
}

async fn list(engine: &Engine, as_json: bool) -> Result<(), Failure> {
    let views = engine.list().await?;
    if as_json {
        output::json(&json!({ "credentials": views }));
        return Ok(());
    }
    if views.is_empty() {
        anstream::println!("No credentials yet. Authorize a server with `latchkey oauth authorize <server>`.");
        return Ok(());
    }
    let mut table = output::table(&["SERVER", "ACCOUNT", "PROVIDER", "STATE", "EXPIRES", "REFRESHABLE", "SCOPES"]);
    for view in &views {
        let expires = match view.expires_in {
            None => "-".to_string(),
            Some(seconds) if seconds <= 0 => "expired".to_string(),
            Some(seconds) => format!("in {}", human_duration(seconds as u64)),
        };
        table.add_row(vec![
            view.binding.clone().unwrap_or_else(|| view.server.clone()),
            {
                let who = match (&view.account, &view.signed_in_as) {
                    (Some(account), Some(who)) if account != who => format!("{account} ({who})"),
                    (Some(name), _) | (None, Some(name)) => name.clone(),
                    (None, None) => "-".into(),
                };
                match &view.site {
                    Some(site) => format!("{who} · {}", site.name),
                    None => who,
                }
            },
            view.provider.clone(),
            view.state.replace('-', " "),
            expires,
            if view.refreshable { "yes" } else { "no" }.to_string(),
            view.scopes.join(" "),
        ]);
    }
    output::print_table(&table);
    for view in views.iter().filter(|view| view.state == "needs-reauthorization") {
        let account = view.account.as_ref().map(|account| format!(" --account {account}")).unwrap_or_default();
        output::warning(&format!(
            "{} needs re-authorization: {}; run `latchkey oauth authorize {}{account}`",
            view.binding.as_ref().unwrap_or(&view.server),
            view.reason.clone().unwrap_or_default(),
            view.server
        ));
    }
    Ok(())
}

async fn refresh(engine: &Engine, server: &str, provider: Option<&str>, account: Option<&str>, as_json: bool) -> Result<(), Failure> {
    let credentials = engine.refresh_server(server, provider, account).await?;
    let now = SystemTime::now();
    let views: Vec<CredentialView> = credentials.iter().map(|credential| CredentialView::of(credential, now)).collect();
    match (as_json, views.as_slice()) {
        (true, [view]) => output::json(view),
        (true, views) => output::json(&json!({ "credentials": views })),
        (false, [view]) => anstream::println!("{GREEN}Refreshed{GREEN:#} {server} ({}).", describe_expiry(view)),
        (false, views) => {
            for view in views {
                anstream::println!("{GREEN}Refreshed{GREEN:#} {server} with {} ({}).", view.provider, describe_expiry(view));
            }
        }
    }
    Ok(())
}

async fn revoke(engine: &Engine, server: &str, account: Option<&str>, forget: bool, as_json: bool) -> Result<(), Failure> {
    let report = engine.revoke(server, account, forget).await?;
    let plural = |count: usize| if count == 1 { "" } else { "s" };
    if as_json {
        output::json(&report);
    } else {
        match &report.revoked_at {
            Some(url) => anstream::println!("{GREEN}Revoked{GREEN:#} the grant at {url}."),
            None => {
                anstream::println!("{YELLOW}Not revoked at the provider{YELLOW:#}: {}.", report.remote_note.clone().unwrap_or_default())
            }
        }
        anstream::println!("Deleted {} local credential{} for {server}.", report.deleted, plural(report.deleted));
    }
    if report.kept > 0 {
        return Err(anyhow::anyhow!(
            "kept {} local credential{} for {server}, whose revocation the provider did not confirm; fix the cause and run \
             `latchkey oauth revoke {server}` again, or delete the local copy without revoking: `latchkey oauth revoke {server} --forget`",
            report.kept,
            plural(report.kept)
        )
        .into());
    }
    Ok(())
}
