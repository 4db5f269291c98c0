//! The loopback redirect listener (RFC 8252 §7.3) and pasted redirect URLs.
//!
//! The listener binds 127.0.0.1, on the provider's fixed port or an ephemeral one, and serves
//! exactly the redirect path. When the redirect host is `localhost`, which a browser may resolve
//! to `::1` as well, it also listens on [::1] with the same port, so that no other local program
//! can take that address and receive the code.
//!
//! Only a request that carries this sign-in's `state` reaches the flow. Anything else (another
//! path, a stale tab, a local program or web page poking at the port) gets a short 400 page and is
//! otherwise ignored: the listener keeps waiting for the real redirect, so a stray request cannot
//! abort the sign-in. When the authorization server redirects the browser there, the request is
//! handed to the flow, and the browser's page is answered only once the flow says how the code
//! exchange went, so "you can close this tab" is never shown for a failed login.
//! [`Listener::finish`] then waits until the page is sent: the command usually exits right after,
//! and would otherwise take the page down with it.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::Html;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

use crate::plugins::{LoopbackRedirect, Params};

#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error(
        "port {port} on {address} is in use, and the provider's redirect URI needs exactly that port; stop the program \
         using it (e.g. `ss -ltnp 'sport = :{port}'` shows which) or use --paste"
    )]
    PortInUse { port: u16, address: &'static str },
    #[error("cannot listen on {address} for the OAuth redirect: {error}")]
    Bind { address: &'static str, error: std::io::Error },
    #[error(
        "no answer from the browser within {} seconds{}; the provider may have shown an error page instead of redirecting \
         back (a redirect URI mismatch, for example). Run the command again, or use --paste",
        .timeout.as_secs(),
        ignored_note(*.ignored)
    )]
    TimedOut { timeout: Duration, ignored: usize },
    // Not repeated: what was pasted may hold the authorization code.
    #[error("what was pasted is not a URL; paste the whole address the browser ended on, starting with http")]
    NotAUrl,
}

/// What the flow tells the browser once it knows the outcome.
pub enum Outcome {
    Success(String),
    Failure(String),
}

/// One redirect that arrived, with the way to answer the browser.
pub struct Callback {
    pub params: Params,
    reply: oneshot::Sender<Outcome>,
}

impl Callback {
    pub fn respond(self, outcome: Outcome) {
        // The browser may have gone away; nothing to do then.
        let _ = self.reply.send(outcome);
    }
}

fn ignored_note(ignored: usize) -> String {
    match ignored {
        0 => String::new(),
        1 => " (1 request to the redirect address was ignored: it did not carry this sign-in's `state`)".into(),
        n => format!(" ({n} requests to the redirect address were ignored: they did not carry this sign-in's `state`)"),
    }
}

/// A loopback listener waiting for the redirect.
pub struct Listener {
    redirect_uri: String,
    callbacks: mpsc::Receiver<Callback>,
    /// Requests answered 400 and not passed on.
    ignored: Arc<AtomicUsize>,
    shutdown: watch::Sender<bool>,
    servers: Vec<tokio::task::JoinHandle<()>>,
}

/// What every request to the listener is checked against.
struct Expected {
    path: String,
    state: String,
    callbacks: mpsc::Sender<Callback>,
    ignored: Arc<AtomicUsize>,
}

/// Attempts at an ephemeral port free on both loopback families, before giving up.
const DUAL_STACK_ATTEMPTS: usize = 8;

/// How long [`Listener::finish`] waits for the browser to take its page.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

impl Listener {
    /// Listen for `redirect` on 127.0.0.1 (and [::1] for `localhost`), passing on only requests
    /// whose `state` is `state`.
    pub async fn bind(redirect: &LoopbackRedirect, state: &str) -> Result<Listener, CallbackError> {
        let listeners = bind_loopback(redirect.port, redirect.host == "localhost").await?;
        let port = listeners[0].local_addr().map_err(|error| CallbackError::Bind { address: "127.0.0.1", error })?.port();
        let path = if redirect.path.starts_with('/') { redirect.path.clone() } else { format!("/{}", redirect.path) };
        let redirect_uri = format!("http://{}:{port}{path}", redirect.host);

        let (sender, callbacks) = mpsc::channel(4);
        let ignored = Arc::new(AtomicUsize::new(0));
        let expected = Arc::new(Expected { path, state: state.to_string(), callbacks: sender, ignored: ignored.clone() });
        // A fallback rather than a route: the path is the provider's, and axum panics on route
        // syntax (`/:cb`, `/{x}`) in a path it is given.
        let app = axum::Router::new().fallback(receive).with_state(expected);
        let (shutdown, stopped) = watch::channel(false);
        let servers = listeners
            .into_iter()
            .map(|listener| {
                let (app, mut stopped) = (app.clone(), stopped.clone());
                tokio::spawn(async move {
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = stopped.wait_for(|stop| *stop).await;
                        })
                        .await;
                })
            })
            .collect();
        drop(stopped);
        Ok(Listener { redirect_uri, callbacks, ignored, shutdown, servers })
    }

    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// The next redirect of this sign-in, or an error after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Result<Callback, CallbackError> {
        match tokio::time::timeout(timeout, self.callbacks.recv()).await {
            Ok(Some(callback)) => Ok(callback),
            _ => Err(CallbackError::TimedOut { timeout, ignored: self.ignored.load(Ordering::SeqCst) }),
        }
    }

    /// Answer `callback`, stop listening, and wait (a few seconds at most) until the browser has
    /// its page: the graceful shutdown lets the request in flight finish.
    pub async fn finish(mut self, callback: Callback, outcome: Outcome) {
        callback.respond(outcome);
        self.shutdown.send_replace(true);
        let servers = std::mem::take(&mut self.servers);
        let _ = tokio::time::timeout(DELIVERY_TIMEOUT, futures::future::join_all(servers)).await;
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

/// 127.0.0.1 on `port` (or an ephemeral port), and with `both_families` [::1] on the same port.
/// A machine without IPv6 gets the IPv4 listener alone; an IPv6 port taken by another program is
/// refused for a fixed port (that program would get the code) and avoided for an ephemeral one.
async fn bind_loopback(port: Option<u16>, both_families: bool) -> Result<Vec<TcpListener>, CallbackError> {
    let bind = |address: SocketAddr, name: &'static str| async move {
        TcpListener::bind(address).await.map_err(|error| match (error.kind(), port) {
            (std::io::ErrorKind::AddrInUse, Some(port)) => CallbackError::PortInUse { port, address: name },
            _ => CallbackError::Bind { address: name, error },
        })
    };
    for _ in 0..DUAL_STACK_ATTEMPTS {
        let v4 = bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port.unwrap_or(0))), "127.0.0.1").await?;
        if !both_families {
            return Ok(vec![v4]);
        }
        let chosen = v4.local_addr().map_err(|error| CallbackError::Bind { address: "127.0.0.1", error })?.port();
        match bind(SocketAddr::from((Ipv6Addr::LOCALHOST, chosen)), "[::1]").await {
            Ok(v6) => return Ok(vec![v4, v6]),
            Err(error @ CallbackError::PortInUse { .. }) => return Err(error),
            // Taken on [::1] only: try another ephemeral port.
            Err(CallbackError::Bind { error, .. }) if error.kind() == std::io::ErrorKind::AddrInUse => continue,
            // No IPv6 loopback here, so no other program can listen on it either.
            Err(error) => {
                tracing::debug!("{error}; listening for the redirect on 127.0.0.1 only");
                return Ok(vec![v4]);
            }
        }
    }
    Err(CallbackError::Bind {
        address: "[::1]",
        error: std::io::Error::new(std::io::ErrorKind::AddrInUse, "no port was free on both 127.0.0.1 and [::1]"),
    })
}

async fn receive(State(expected): State<Arc<Expected>>, uri: Uri) -> (StatusCode, Html<String>) {
    let params: Params = uri.query().map(|query| url::form_urlencoded::parse(query.as_bytes()).into_owned().collect()).unwrap_or_default();
    let state = params.iter().find(|(name, _)| name == "state").map(|(_, value)| value.as_str());
    if uri.path() != expected.path || state != Some(expected.state.as_str()) {
        expected.ignored.fetch_add(1, Ordering::SeqCst);
        let message = "This address is not the redirect of the sign-in latchkey is waiting for, so it was ignored. \
                       Finish signing in in the tab latchkey opened.";
        return (StatusCode::BAD_REQUEST, page("Not this sign-in", message, false));
    }
    let (reply, outcome) = oneshot::channel();
    if expected.callbacks.send(Callback { params, reply }).await.is_err() {
        return (StatusCode::OK, page("latchkey is no longer waiting", "Run the command again to sign in.", false));
    }
    let page = match outcome.await {
        Ok(Outcome::Success(message)) => page("Signed in", &message, true),
        Ok(Outcome::Failure(message)) => page("Sign-in failed", &message, false),
        Err(_) => page("Sign-in was not completed", "latchkey stopped before finishing. Check the terminal.", false),
    };
    (StatusCode::OK, page)
}

/// A short page for the browser: a heading and one paragraph, both escaped.
pub(crate) fn page(title: &str, message: &str, success: bool) -> Html<String> {
    let escape = |text: &str| text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let colour = if success { "#1a7f37" } else { "#cf222e" };
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>latchkey: {title}</title></head>\
         <body style=\"font-family: system-ui, sans-serif; max-width: 40em; margin: 4em auto\">\
         <h1 style=\"color: {colour}\">{title}</h1><p>{message}</p></body></html>",
        title = escape(title),
        message = escape(message),
    ))
}

/// The query parameters of a redirect URL the user pasted.
pub fn parse_pasted(text: &str) -> Result<Params, CallbackError> {
    let trimmed = text.trim();
    let url = url::Url::parse(trimmed).map_err(|_| CallbackError::NotAUrl)?;
    Ok(url.query_pairs().into_owned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasted_urls_give_their_query() {
        let params = parse_pasted("  http://127.0.0.1:5000/callback?code=abc&state=xyz&iss=https%3A%2F%2Fas\n").unwrap();
        assert_eq!(params, vec![("code".into(), "abc".into()), ("state".into(), "xyz".into()), ("iss".into(), "https://as".into())]);
        assert!(matches!(parse_pasted("code=abc"), Err(CallbackError::NotAUrl)));
    }

    #[test]
    fn a_paste_that_is_not_a_url_is_not_repeated() {
        // Found by the callback_query fuzz target: the message quoted the paste, code and all.
        let message = parse_pasted("code=4/0AfJohXk-c0de&state=xyz").unwrap_err().to_string();
        assert!(!message.contains("4/0AfJohXk-c0de"), "{message}");
        assert!(message.contains("paste the whole address"), "{message}");
    }

    #[tokio::test]
    async fn a_fixed_port_in_use_is_reported_with_the_port() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let redirect = LoopbackRedirect { host: "127.0.0.1".into(), port: Some(port), path: "/callback".into() };
        match Listener::bind(&redirect, "s1").await {
            Err(CallbackError::PortInUse { port: reported, address: "127.0.0.1" }) => assert_eq!(reported, port),
            other => panic!("expected PortInUse, got {:?}", other.map(|l| l.redirect_uri().to_string())),
        }
    }

    #[tokio::test]
    async fn the_browser_gets_its_page_only_after_the_flow_answers() {
        let redirect = LoopbackRedirect { host: "127.0.0.1".into(), port: None, path: "/callback".into() };
        let mut listener = Listener::bind(&redirect, "s1").await.unwrap();
        let url = format!("{}?code=c1&state=s1", listener.redirect_uri());
        let browser = tokio::spawn(async move { reqwest::get(url).await.unwrap().text().await.unwrap() });
        let callback = listener.next(Duration::from_secs(5)).await.unwrap();
        assert_eq!(callback.params, vec![("code".into(), "c1".into()), ("state".into(), "s1".into())]);
        assert!(!browser.is_finished());
        callback.respond(Outcome::Failure("the code <was> rejected".into()));
        let page = browser.await.unwrap();
        assert!(page.contains("Sign-in failed"), "{page}");
        assert!(page.contains("the code &lt;was&gt; rejected"), "{page}");
    }

    #[tokio::test]
    async fn stray_requests_are_answered_400_and_the_redirect_still_arrives() {
        let redirect = LoopbackRedirect { host: "127.0.0.1".into(), port: None, path: "/callback".into() };
        let mut listener = Listener::bind(&redirect, "s1").await.unwrap();
        let base = listener.redirect_uri().to_string();
        let origin = base.trim_end_matches("/callback").to_string();
        for stray in [base.clone(), format!("{base}?code=c0&state=forged"), format!("{origin}/other?state=s1"), format!("{base}?%zz")] {
            // A listener that passed the stray on would hold its page until the flow answers.
            let response = tokio::time::timeout(Duration::from_secs(30), reqwest::get(&stray)).await.expect("answered at once").unwrap();
            assert_eq!(response.status(), 400, "{stray}");
            assert!(response.text().await.unwrap().contains("Not this sign-in"), "{stray}");
        }
        let url = format!("{base}?code=c1&state=s1");
        let browser = tokio::spawn(async move { reqwest::get(url).await.unwrap().text().await.unwrap() });
        let callback = listener.next(Duration::from_secs(5)).await.unwrap();
        assert_eq!(callback.params, vec![("code".into(), "c1".into()), ("state".into(), "s1".into())]);
        listener.finish(callback, Outcome::Success("done".into())).await;
        assert!(browser.await.unwrap().contains("Signed in"));
    }

    #[tokio::test]
    async fn a_timeout_counts_the_ignored_requests() {
        let redirect = LoopbackRedirect { host: "127.0.0.1".into(), port: None, path: "/callback".into() };
        let mut listener = Listener::bind(&redirect, "s1").await.unwrap();
        let stray = format!("{}?state=forged", listener.redirect_uri());
        let response = tokio::time::timeout(Duration::from_secs(30), reqwest::get(&stray)).await.expect("answered at once").unwrap();
        assert_eq!(response.status(), 400);
        let error = listener.next(Duration::from_millis(50)).await.err().expect("a timeout");
        assert!(error.to_string().contains("1 request to the redirect address was ignored"), "{error}");
    }

    #[tokio::test]
    async fn a_path_with_route_syntax_is_served_as_written() {
        let redirect = LoopbackRedirect { host: "127.0.0.1".into(), port: None, path: "/:cb".into() };
        let mut listener = Listener::bind(&redirect, "s1").await.unwrap();
        let url = format!("{}?code=c1&state=s1", listener.redirect_uri());
        let browser = tokio::spawn(async move { reqwest::get(url).await.unwrap().status() });
        let callback = listener.next(Duration::from_secs(5)).await.unwrap();
        listener.finish(callback, Outcome::Success("done".into())).await;
        assert_eq!(browser.await.unwrap(), 200);
    }

    #[tokio::test]
    async fn localhost_is_served_on_both_loopback_families_with_one_port() {
        if std::net::TcpListener::bind("[::1]:0").is_err() {
            eprintln!("skipped: this machine has no IPv6 loopback");
            return;
        }
        let redirect = LoopbackRedirect { host: "localhost".into(), port: None, path: "/callback".into() };
        let mut listener = Listener::bind(&redirect, "s1").await.unwrap();
        let port = listener.redirect_uri().trim_start_matches("http://localhost:").split('/').next().unwrap().to_string();
        // Another program cannot take [::1] on the same port: the listener holds it.
        assert!(std::net::TcpListener::bind(format!("[::1]:{port}")).is_err(), "[::1]:{port} is free for anyone");
        let url = format!("http://[::1]:{port}/callback?code=c6&state=s1");
        let browser = tokio::spawn(async move { reqwest::get(url).await.unwrap().status() });
        let callback = listener.next(Duration::from_secs(5)).await.unwrap();
        assert_eq!(callback.params[0], ("code".into(), "c6".into()));
        listener.finish(callback, Outcome::Success("done".into())).await;
        assert_eq!(browser.await.unwrap(), 200);
    }

    #[tokio::test]
    async fn a_fixed_port_taken_on_ipv6_is_refused_for_localhost() {
        let Ok(taken) = std::net::TcpListener::bind("[::1]:0") else {
            eprintln!("skipped: this machine has no IPv6 loopback");
            return;
        };
        let port = taken.local_addr().unwrap().port();
        let redirect = LoopbackRedirect { host: "localhost".into(), port: Some(port), path: "/callback".into() };
        match Listener::bind(&redirect, "s1").await {
            Err(CallbackError::PortInUse { port: reported, address: "[::1]" }) => assert_eq!(reported, port),
            other => panic!("expected PortInUse on [::1], got {:?}", other.map(|l| l.redirect_uri().to_string())),
        }
    }
}
