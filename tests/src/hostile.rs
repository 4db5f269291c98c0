//! Hostile peers for the mix-up tests: an authorization server that a malicious MCP server names
//! in its protected-resource metadata ([`Attacker`]), and the place it wants the secrets sent to
//! ([`Sink`]), which records every request it gets and must stay empty.
//!
//! The attacker does what a real one would to collect a client secret (RFC 9207's mix-up): it
//! publishes RFC 8414 metadata under its own issuer whose token and revocation endpoints are the
//! sink, and its authorization endpoint sends the browser straight back to the client's redirect
//! URI with the client's own `state`, a made-up code and its own `iss`, so that a client that does
//! not check which authorization server it is talking to goes on to the code exchange.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// One HTTP request as it arrived: the request line, the headers, the body.
pub type Recorded = String;

/// A loopback HTTP listener on its own thread that answers each request with `answer` and keeps
/// what it received; stopped when dropped.
struct Listener {
    origin: String,
    received: Arc<Mutex<Vec<Recorded>>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

/// How a listener answers: status, extra headers, body.
type Answer = (u16, Vec<(String, String)>, String);

impl Listener {
    fn start(answer: impl Fn(&str, &str) -> Answer + Send + 'static) -> Listener {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        listener.set_nonblocking(true).unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let (received, stop) = (Arc::new(Mutex::new(Vec::new())), Arc::new(AtomicBool::new(false)));
        let (log, stopped) = (received.clone(), stop.clone());
        let thread = thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                let Ok((mut stream, _)) = listener.accept() else {
                    thread::sleep(Duration::from_millis(10));
                    continue;
                };
                stream.set_nonblocking(false).unwrap();
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let request = read_request(&mut stream);
                let target = request.split_whitespace().nth(1).unwrap_or("").to_string();
                log.lock().unwrap().push(request.clone());
                let (status, headers, body) = answer(&target, &request);
                let extra: String = headers.iter().map(|(name, value)| format!("{name}: {value}\r\n")).collect();
                let _ =
                    write!(stream, "HTTP/1.1 {status} Answer\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            }
        });
        Listener { origin, received, stop, thread: Some(thread) }
    }

    fn received(&self) -> Vec<Recorded> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Where the attacker's token and revocation endpoints point: anything that arrives here carried a
/// client secret, a code, a verifier or a token that was not the attacker's to get.
pub struct Sink {
    listener: Listener,
}

impl Sink {
    pub fn start() -> Sink {
        let answer = |_: &str, _: &str| {
            let body = r#"{"access_token":"attacker-token","token_type":"Bearer","expires_in":3600,"refresh_token":"attacker-refresh"}"#;
            (200, vec![("Content-Type".to_string(), "application/json".to_string())], body.to_string())
        };
        Sink { listener: Listener::start(answer) }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.listener.origin)
    }

    /// Every request it received.
    pub fn received(&self) -> Vec<Recorded> {
        self.listener.received()
    }

    /// Fail unless nothing at all arrived.
    pub fn assert_empty(&self, when: &str) {
        let received = self.received();
        assert!(
            received.is_empty(),
            "{when}: the attacker's token endpoint received {} request(s):\n{}",
            received.len(),
            received.join("\n---\n")
        );
    }
}

/// The attacker's authorization server: metadata under its own issuer, with the sink as its token
/// and revocation endpoints, and an authorization endpoint that bounces the browser back at once.
pub struct Attacker {
    listener: Listener,
    pub sink: Sink,
}

impl Attacker {
    pub fn start() -> Attacker {
        let sink = Sink::start();
        let (token, revocation) = (sink.url("/token"), sink.url("/revoke"));
        let issuer = Arc::new(Mutex::new(String::new()));
        let own = issuer.clone();
        let listener = Listener::start(move |target, _| {
            let issuer = own.lock().unwrap().clone();
            let json =
                |body: serde_json::Value| (200, vec![("Content-Type".to_string(), "application/json".to_string())], body.to_string());
            if target.starts_with("/.well-known/oauth-authorization-server") || target.starts_with("/.well-known/openid-configuration") {
                return json(serde_json::json!({
                    "issuer": issuer,
                    "authorization_endpoint": format!("{issuer}/authorize"),
                    "token_endpoint": token,
                    "revocation_endpoint": revocation,
                    "response_types_supported": ["code"],
                    "code_challenge_methods_supported": ["S256"],
                    "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
                    "authorization_response_iss_parameter_supported": true,
                }));
            }
            if let Some(query) = target.strip_prefix("/authorize?") {
                let url = url::Url::parse(&format!("http://x/?{query}")).unwrap();
                let param =
                    |name: &str| url.query_pairs().find(|(key, _)| key == name).map(|(_, value)| value.into_owned()).unwrap_or_default();
                let mut back = url::Url::parse(&param("redirect_uri")).unwrap_or_else(|_| url::Url::parse("http://127.0.0.1/").unwrap());
                back.query_pairs_mut()
                    .append_pair("code", "attacker-code")
                    .append_pair("state", &param("state"))
                    .append_pair("iss", &issuer);
                return (302, vec![("Location".to_string(), back.to_string())], String::new());
            }
            (404, Vec::new(), String::new())
        });
        *issuer.lock().unwrap() = listener.origin.clone();
        Attacker { listener, sink }
    }

    /// Its issuer identifier (its origin).
    pub fn issuer(&self) -> &str {
        &self.listener.origin
    }

    /// Every request its own listener (metadata, authorization endpoint) received.
    pub fn received(&self) -> Vec<Recorded> {
        self.listener.received()
    }
}

/// Read one request's head and its `Content-Length` body, as text.
fn read_request(stream: &mut TcpStream) -> Recorded {
    let mut reader = BufReader::new(stream);
    let mut request = String::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
        request.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    request.push_str(&String::from_utf8_lossy(&body));
    request
}
