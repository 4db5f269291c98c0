//! `oauth revoke` tells the truth: for each built-in provider with a revocation endpoint, the
//! request that arrives carries the token the provider's documentation asks for, where it asks
//! for it, with exactly the client authentication it asks for; "Revoked" is printed and the local
//! copy deleted only when the provider confirmed the revocation.
//!
//! The endpoints are real listeners: a recorder ([`Recorder`]) that answers as the provider's
//! documentation says a successful revocation is answered, and for Slack an emulator of its Web
//! API (`tests/peers/slack-server.mjs`, built from the documentation of `auth.revoke`) that knows
//! which tokens work. Credentials are put in the file store directly ([`stored::Server`]); the
//! catalog's `server_metadata` points the provider's endpoints at the listener.

use base64::Engine as _;
use latchkey_tests::Home;
use latchkey_tests::peers::NodePeer;
use latchkey_tests::recorder::{self, Recorder, Request, Response};
use latchkey_tests::stored::{self, Server};
use serde_json::{Value, json};

const SECRET: &str = "the-client-secret";

/// Which of the credential's tokens the provider revokes with.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Token {
    Refresh,
    Access,
}

/// Where the token travels.
#[derive(Clone, Copy, Debug)]
enum Carried {
    /// A form field of this name (`token`, with `token_type_hint`, in RFC 7009).
    Form(&'static str),
    /// A field of a JSON body.
    Json(&'static str),
    /// `Authorization: Bearer`.
    Bearer,
    /// The last segment of the URL path.
    Path,
}

/// The client authentication that arrives.
#[derive(Clone, Copy, Debug, PartialEq)]
enum ClientAuth {
    Basic,
    /// `client_id` and `client_secret` in the body.
    Post,
    /// No client credentials at all.
    Nothing,
}

struct Case {
    provider: &'static str,
    config: &'static [(&'static str, &'static str)],
    method: &'static str,
    token: Token,
    carried: Carried,
    auth: ClientAuth,
    /// A header the provider's documentation requires, with its value.
    header: Option<(&'static str, &'static str)>,
    /// How the provider answers a successful revocation.
    answer: fn() -> Response,
}

fn ok_empty() -> Response {
    Response::empty(200)
}

fn no_content() -> Response {
    Response::empty(204)
}

fn ok_json() -> Response {
    Response::json(200, json!({}))
}

/// Revoke a stored credential of `case.provider` at a recorder, and check what arrived and what
/// latchkey made of the answer.
fn check(case: Case) {
    let home = Home::new();
    let endpoint = Recorder::start((case.answer)());
    let mut server = Server::new("svc", Some(case.provider), &endpoint.origin());
    server.revocation_endpoint = Some(endpoint.url("/revoke"));
    server.config = case.config.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect();
    let (access, refresh) = (format!("at-{}-access", case.provider), format!("rt-{}-refresh", case.provider));
    server.install(&home, SECRET, &access, Some(&refresh));

    let run = stored::run(&home, &["oauth", "revoke", "svc"]);
    let requests = endpoint.requests();
    let [request] = requests.as_slice() else { panic!("expected one revocation request, got {requests:#?}\n{run:#?}") };
    println!("{}:\n{}", case.provider, request.text());

    let (token, other) = match case.token {
        Token::Refresh => (&refresh, &access),
        Token::Access => (&access, &refresh),
    };
    assert_eq!(request.method, case.method, "{request:#?}");
    let expected_path = match case.carried {
        Carried::Path => format!("/revoke/{token}"),
        _ => "/revoke".to_string(),
    };
    assert_eq!(request.target, expected_path, "{request:#?}");
    match case.carried {
        Carried::Form(field) => {
            assert_eq!(request.field(field).as_ref(), Some(token), "{request:#?}");
            if field == "token" {
                let hint = if case.token == Token::Refresh { "refresh_token" } else { "access_token" };
                assert_eq!(request.field("token_type_hint").as_deref(), Some(hint), "{request:#?}");
            }
        }
        Carried::Json(field) => {
            let body: Value = serde_json::from_slice(&request.body).unwrap_or_else(|e| panic!("a JSON body ({e}): {request:#?}"));
            assert_eq!(body[field].as_str(), Some(token.as_str()), "{request:#?}");
        }
        Carried::Bearer => assert_eq!(request.header("authorization"), Some(format!("Bearer {token}").as_str()), "{request:#?}"),
        Carried::Path => {}
    }
    assert!(!request.text().contains(other.as_str()), "the other token was sent too: {request:#?}");
    check_client_auth(request, case.auth, &server.client_id);
    if let Some((name, value)) = case.header {
        assert_eq!(request.header(name), Some(value), "{request:#?}");
    }

    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(run.stdout.contains(&format!("Revoked the grant at {}", endpoint.url("/revoke"))), "{run:#?}");
    assert!(server.stored(&home).is_empty(), "the local copy is deleted once the provider confirmed");
    assert!(!run.output().contains(&refresh) && !run.output().contains(&access), "a token was printed: {run:#?}");
}

fn check_client_auth(request: &Request, auth: ClientAuth, client_id: &str) {
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:{SECRET}")));
    let body = String::from_utf8_lossy(&request.body);
    match auth {
        ClientAuth::Basic => {
            assert_eq!(request.header("authorization"), Some(basic.as_str()), "{request:#?}");
            assert!(!body.contains(SECRET), "{request:#?}");
        }
        ClientAuth::Post => {
            let json: Option<Value> = serde_json::from_slice(&request.body).ok();
            let field = |name: &str| match &json {
                Some(json) => json[name].as_str().map(str::to_string),
                None => request.field(name),
            };
            assert_eq!(field("client_id").as_deref(), Some(client_id), "{request:#?}");
            assert_eq!(field("client_secret").as_deref(), Some(SECRET), "{request:#?}");
            assert_eq!(request.header("authorization"), None, "{request:#?}");
        }
        ClientAuth::Nothing => {
            assert!(!request.text().contains(SECRET), "the client secret was sent: {request:#?}");
            assert!(
                request.field("client_id").is_none() && !request.header("authorization").is_some_and(|value| value.starts_with("Basic "))
            );
        }
    }
}

macro_rules! revocation_tests {
    ($($name:ident: $case:expr;)*) => {$(
        #[test]
        fn $name() {
            check($case);
        }
    )*};
}

use Carried::{Bearer, Form, Json, Path};
use ClientAuth::{Basic, Nothing, Post};
use Token::{Access, Refresh};

const NO_CONFIG: &[(&str, &str)] = &[];

revocation_tests! {
    // https://developers.asana.com/docs/oauth#token-deauthorization-endpoint
    asana: Case { provider: "asana", config: NO_CONFIG, method: "POST", token: Refresh, carried: Form("token"), auth: Post, header: None, answer: ok_empty };
    // https://developer.atlassian.com/cloud/oauth/getting-started/implementing-oauth-3lo/ (revoke)
    atlassian: Case { provider: "atlassian", config: NO_CONFIG, method: "POST", token: Refresh, carried: Form("token"), auth: Post, header: None, answer: ok_empty };
    // https://auth0.com/docs/api/authentication#revoke-refresh-token
    auth0: Case { provider: "auth0", config: &[("domain", "example.us.auth0.com")], method: "POST", token: Refresh, carried: Form("token"), auth: Post, header: None, answer: ok_empty };
    // https://developer.box.com/reference/post-oauth2-revoke/
    r#box: Case { provider: "box", config: NO_CONFIG, method: "POST", token: Refresh, carried: Form("token"), auth: Post, header: None, answer: ok_empty };
    // https://discord.com/developers/docs/topics/oauth2#authorization-code-grant-token-revocation-example
    discord: Case { provider: "discord", config: NO_CONFIG, method: "POST", token: Refresh, carried: Form("token"), auth: Basic, header: None, answer: ok_empty };
    // https://www.dropbox.com/developers/documentation/http/documentation#auth-token-revoke
    dropbox: Case { provider: "dropbox", config: NO_CONFIG, method: "POST", token: Access, carried: Bearer, auth: Nothing, header: None, answer: || Response::json(200, Value::Null) };
    // https://docs.github.com/en/rest/apps/oauth-applications#delete-an-app-token
    github: Case { provider: "github", config: &[("revocation_client_id", "svc-client")], method: "DELETE", token: Access, carried: Json("access_token"), auth: Basic, header: Some(("x-github-api-version", "2022-11-28")), answer: no_content };
    // https://docs.gitlab.com/api/oauth2/#revoke-a-token
    gitlab: Case { provider: "gitlab", config: NO_CONFIG, method: "POST", token: Refresh, carried: Form("token"), auth: Post, header: None, answer: ok_json };
    // https://developers.google.com/identity/protocols/oauth2/web-server#tokenrevoke
    google: Case { provider: "google", config: NO_CONFIG, method: "POST", token: Refresh, carried: Form("token"), auth: Nothing, header: None, answer: ok_json };
    // https://developers.hubspot.com/docs/api-reference/legacy/authentication/oauth-tokens/v1/migration-guide (DELETE refresh-tokens/{token})
    hubspot: Case { provider: "hubspot", config: NO_CONFIG, method: "DELETE", token: Refresh, carried: Path, auth: Nothing, header: None, answer: no_content };
    // https://linear.app/developers/oauth-2-0-authentication#revoking-an-access-token
    linear: Case { provider: "linear", config: NO_CONFIG, method: "POST", token: Refresh, carried: Form("token"), auth: Post, header: None, answer: ok_empty };
    // https://developers.notion.com/reference/revoke-token
    notion: Case { provider: "notion", config: NO_CONFIG, method: "POST", token: Refresh, carried: Json("token"), auth: Basic, header: Some(("notion-version", "2022-06-28")), answer: ok_json };
    // https://developer.okta.com/docs/api/openapi/okta-oauth/oauth/tag/OrgAS/#tag/OrgAS/operation/revoke
    okta: Case { provider: "okta", config: &[("domain", "dev-123456.okta.com")], method: "POST", token: Refresh, carried: Form("token"), auth: Basic, header: None, answer: ok_empty };
    // https://github.com/reddit-archive/reddit/wiki/OAuth2#manually-revoking-a-token
    reddit: Case { provider: "reddit", config: NO_CONFIG, method: "POST", token: Refresh, carried: Form("token"), auth: Basic, header: None, answer: no_content };
    // https://help.salesforce.com/s/articleView?id=sf.remoteaccess_revoke_token.htm
    salesforce: Case { provider: "salesforce", config: NO_CONFIG, method: "POST", token: Refresh, carried: Form("token"), auth: Nothing, header: None, answer: ok_empty };
    // https://developers.strava.com/docs/authentication/#deauthorization
    strava: Case { provider: "strava", config: NO_CONFIG, method: "POST", token: Access, carried: Form("access_token"), auth: Nothing, header: None, answer: ok_json };
    // https://docs.x.com/resources/fundamentals/authentication/oauth-2-0/user-access-token (revoke)
    x: Case { provider: "x", config: NO_CONFIG, method: "POST", token: Refresh, carried: Form("token"), auth: Basic, header: None, answer: || Response::json(200, json!({"revoked": true})) };
    // https://developers.zoom.us/docs/integrations/oauth/#revoking-an-access-token
    zoom: Case { provider: "zoom", config: NO_CONFIG, method: "POST", token: Refresh, carried: Form("token"), auth: Basic, header: None, answer: || Response::json(200, json!({"status": "success"})) };
}

// ---------------------------------------------------------------------------------------------
// Slack, against the emulator

const ACCESS: &str = "xoxp-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy";
const REFRESH: &str = "xoxe-1-My0xLTIxMTU2NTQ0ODkyLTE1NTQ2NTY3MDMzMTE";

/// The emulator, knowing `tokens` (token → `access` or `refresh`).
fn slack(tokens: Value) -> NodePeer {
    NodePeer::start("slack-server.mjs", &[("SLACK_TOKENS", &tokens.to_string())])
}

/// A Slack server in `home` whose endpoints are the emulator's, with a stored credential.
fn slack_server(home: &Home, emulator: &NodePeer, config: &[(&str, &str)], refresh: Option<&str>) -> Server {
    let mut server = Server::new("slack", Some("slack"), &emulator.url(""));
    server.token_endpoint = emulator.url("/api/oauth.v2.access");
    server.revocation_endpoint = Some(emulator.url("/api/auth.revoke"));
    server.config = config.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect();
    server.install(home, SECRET, ACCESS, refresh);
    server
}

/// What reached the emulator.
fn arrived(emulator: &NodePeer) -> Vec<Value> {
    let (status, body) = recorder::send("GET", &emulator.url("/_requests"), &[], b"");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body).unwrap().as_array().unwrap().clone()
}

/// Whether Slack still accepts `token` (`auth.test`).
fn works(emulator: &NodePeer, token: &str) -> bool {
    let (_, body) = recorder::send("POST", &emulator.url("/api/auth.test"), &[("Authorization", &format!("Bearer {token}"))], b"");
    serde_json::from_str::<Value>(&body).unwrap()["ok"] == true
}

fn assert_revoked_with_the_access_token(config: &[(&str, &str)]) {
    let emulator = slack(json!({ACCESS: "access", REFRESH: "refresh"}));
    let home = Home::new();
    let server = slack_server(&home, &emulator, config, Some(REFRESH));
    assert!(works(&emulator, ACCESS));

    let run = stored::run(&home, &["oauth", "revoke", "slack"]);
    let requests: Vec<Value> = arrived(&emulator).into_iter().filter(|request| request["path"] == "/api/auth.revoke").collect();
    let [request] = requests.as_slice() else { panic!("expected one auth.revoke call, got {requests:#?}\n{run:#?}") };
    assert_eq!(request["headers"]["authorization"], format!("Bearer {ACCESS}"), "{request:#}");
    assert!(!request.to_string().contains(SECRET) && !request.to_string().contains(REFRESH), "{request:#}");
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(run.stdout.contains("Revoked the grant"), "{run:#?}");
    assert!(server.stored(&home).is_empty());
    assert!(!works(&emulator, ACCESS), "Slack no longer accepts the access token");
}

/// A confidential Slack app (HTTP Basic at the token endpoint) with the revocation endpoint set
/// in the catalog: the host adds no client credentials, so the provider's bearer header arrives.
#[test]
fn slack_revokes_the_access_token_of_a_confidential_app() {
    assert_revoked_with_the_access_token(&[("token_rotation", "true")]);
}

/// A PKCE app (a public client): the refresh token is not what `auth.revoke` takes.
#[test]
fn slack_revokes_the_access_token_of_a_pkce_app() {
    assert_revoked_with_the_access_token(&[("pkce", "true"), ("token", "user"), ("redirect_port", "53682")]);
}

/// `invalid_auth`: Slack did not recognise the token, revoked nothing, and the credential is kept.
#[test]
fn slack_invalid_auth_is_not_a_revocation() {
    let emulator = slack(json!({"xoxp-another-token": "access"}));
    let home = Home::new();
    let server = slack_server(&home, &emulator, &[("pkce", "true"), ("token", "user"), ("redirect_port", "53682")], None);

    let run = stored::run(&home, &["oauth", "revoke", "slack"]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(run.stdout.contains("Not revoked at the provider"), "{run:#?}");
    assert!(run.stdout.contains("Slack did not recognise the token"), "{run:#?}");
    assert!(run.stderr.contains("latchkey oauth revoke slack --forget"), "{run:#?}");
    assert_eq!(server.stored(&home).len(), 1, "the credential is kept");
    assert!(!run.output().contains(ACCESS));
    println!("{}", run.output());
}

/// HubSpot puts the refresh token in the revocation URL's path: when the revocation fails,
/// neither the message nor `--json` may carry that URL.
#[test]
fn a_failed_hubspot_revocation_never_shows_the_token_in_its_url() {
    let home = Home::new();
    let answer = json!({"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown refresh token"});
    let endpoint = Recorder::start(Response::json(400, answer));
    let mut server = Server::new("crm", Some("hubspot"), &endpoint.origin());
    server.revocation_endpoint = Some(endpoint.url("/revoke"));
    let refresh = "rt-0f1e2d3c-hubspot";
    server.install(&home, SECRET, "at-hubspot", Some(refresh));

    for args in [&["oauth", "revoke", "crm"][..], &["oauth", "revoke", "crm", "--json"]] {
        let run = stored::run(&home, args);
        assert_eq!(run.code, Some(1), "{run:#?}");
        assert!(run.output().contains("BAD_REFRESH_TOKEN"), "{run:#?}");
        assert!(!run.output().contains(refresh), "the refresh token was printed: {run:#?}");
    }
    assert_eq!(endpoint.requests()[0].target, format!("/revoke/{refresh}"), "the token did travel in the path");
    assert_eq!(server.stored(&home).len(), 1, "the credential is kept");
}
