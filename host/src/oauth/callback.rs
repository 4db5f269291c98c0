//! The loopback redirect listener (RFC 8252 §7.3) and pasted redirect URLs.
//!
//! The listener binds 127.0.0.1 only, on the provider's fixed port or an ephemeral one, and serves
//! exactly the redirect path. When the authorization server redirects the browser there, the
//! request is handed to the flow, and the browser's page is answered only once the flow says how
//! the code exchange went, so "you can close this tab" is never shown for a failed login.
//! [`Listener::finish`] then waits until the page is sent: the command usually exits right after,
//! and would otherwise take the page down with it.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::Html;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::plugins::{LoopbackRedirect, Params};

#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error(
        "port {port} on 127.0.0.1 is in use, and the provider's redirect URI needs exactly that port; stop the program \
         using it (e.g. `ss -ltnp 'sport = :{port}'` shows which) or use --paste"
    )]
    PortInUse { port: u16 },
    #[error("cannot listen on 127.0.0.1 for the OAuth redirect: {0}")]
    Bind(std::io::Error),
    #[error(
        "no answer from the browser within {} seconds; the provider may have shown an error page instead of redirecting \
         back (a redirect URI mismatch, for example). Run the command again, or use --paste",
        .0.as_secs()
    )]
    TimedOut(Duration),
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

/// A loopback listener waiting for the redirect.
pub struct Listener {
    redirect_uri: String,
    callbacks: mpsc::Receiver<Callback>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

/// How long [`Listener::finish`] waits for the browser to take its page.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

impl Listener {
    /// Listen for `redirect` on 127.0.0.1.
    pub async fn bind(redirect: &LoopbackRedirect) -> Result<Listener, CallbackError> {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, redirect.port.unwrap_or(0)));
        let listener = TcpListener::bind(address).await.map_err(|error| match (error.kind(), redirect.port) {
            (std::io::ErrorKind::AddrInUse, Some(port)) => CallbackError::PortInUse { port },
            _ => CallbackError::Bind(error),
        })?;
        let port = listener.local_addr().map_err(CallbackError::Bind)?.port();
        let path = if redirect.path.starts_with('/') { redirect.path.clone() } else { format!("/{}", redirect.path) };
        let redirect_uri = format!("http://{}:{port}{path}", redirect.host);

        let (sender, callbacks) = mpsc::channel(4);
        let (shutdown, stopped) = oneshot::channel::<()>();
        let app = axum::Router::new().route(&path, axum::routing::get(receive)).with_state(sender);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Listener { redirect_uri, callbacks, shutdown: Some(shutdown), server: Some(server) })
    }

    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// The next redirect, or an error after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Result<Callback, CallbackError> {
        match tokio::time::timeout(timeout, self.callbacks.recv()).await {
            Ok(Some(callback)) => Ok(callback),
            _ => Err(CallbackError::TimedOut(timeout)),
        }
    }

    /// Answer `callback`, stop listening, and wait (a few seconds at most) until the browser has
    /// its page: the graceful shutdown lets the request in flight finish.
    pub async fn finish(mut self, callback: Callback, outcome: Outcome) {
        callback.respond(outcome);
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(DELIVERY_TIMEOUT, server).await;
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

async fn receive(State(sender): State<mpsc::Sender<Callback>>, Query(params): Query<Params>) -> Html<String> {
    let (reply, outcome) = oneshot::channel();
    if sender.send(Callback { params, reply }).await.is_err() {
        return page("latchkey is no longer waiting", "Run the command again to sign in.", false);
    }
    match outcome.await {
        Ok(Outcome::Success(message)) => page("Signed in", &message, true),
        Ok(Outcome::Failure(message)) => page("Sign-in failed", &message, false),
        Err(_) => page("Sign-in was not completed", "latchkey stopped before finishing. Check the terminal.", false),
    }
}

fn page(title: &str, message: &str, success: bool) -> Html<String> {
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
        match Listener::bind(&redirect).await {
            Err(CallbackError::PortInUse { port: reported }) => assert_eq!(reported, port),
            other => panic!("expected PortInUse, got {:?}", other.map(|l| l.redirect_uri().to_string())),
        }
    }

    #[tokio::test]
    async fn the_browser_gets_its_page_only_after_the_flow_answers() {
        let redirect = LoopbackRedirect { host: "127.0.0.1".into(), port: None, path: "/callback".into() };
        let mut listener = Listener::bind(&redirect).await.unwrap();
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
}
