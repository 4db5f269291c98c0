//! A plain HTTP/1.1 listener on 127.0.0.1 that records every connection and request and answers
//! each request with one fixed response (or one per request, [`Recorder::answering`]): an endpoint
//! whose tests check what arrived (a token or revocation endpoint as a provider's documentation
//! describes it, an account API), or a listener that must receive nothing (where a hostile
//! provider would send the client secret).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// What the recorder answers.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: String,
    /// Headers besides the content's type and length.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn json(status: u16, body: serde_json::Value) -> Response {
        Response { status, content_type: "application/json".into(), headers: Vec::new(), body: body.to_string() }
    }

    pub fn empty(status: u16) -> Response {
        Response { status, content_type: "text/plain".into(), headers: Vec::new(), body: String::new() }
    }

    /// This response with the header `name: value` too.
    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// One request as it arrived.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// The path with its query.
    pub target: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(header, _)| header.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    /// The body's fields when it is a form.
    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body).into_owned().collect()
    }

    pub fn field(&self, name: &str) -> Option<String> {
        self.form().into_iter().find(|(field, _)| field == name).map(|(_, value)| value)
    }

    /// Everything that arrived, as text: to look for a secret anywhere in it.
    pub fn text(&self) -> String {
        let headers: String = self.headers.iter().map(|(name, value)| format!("{name}: {value}\n")).collect();
        format!("{} {}\n{headers}\n{}", self.method, self.target, String::from_utf8_lossy(&self.body))
    }
}

pub struct Recorder {
    address: String,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Recorder {
    /// A recorder that answers every request with `response`.
    pub fn start(response: Response) -> Recorder {
        Recorder::answering(move |_| response.clone())
    }

    /// A recorder that answers each request with what `answer` makes of it.
    pub fn answering(answer: impl Fn(&Request) -> Response + Send + 'static) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (counted, recorded, stopped) = (connections.clone(), requests.clone(), stop.clone());
        let thread = thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                let Ok((stream, _)) = listener.accept() else {
                    thread::sleep(Duration::from_millis(10));
                    continue;
                };
                counted.fetch_add(1, Ordering::SeqCst);
                stream.set_nonblocking(false).unwrap();
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                serve(stream, &answer, &recorded);
            }
        });
        Recorder { address, connections, requests, stop, thread: Some(thread) }
    }

    /// A listener that must receive nothing: it answers as a token endpoint would, so that a
    /// request that reaches it would look like a success.
    pub fn trap() -> Recorder {
        Recorder::start(Response::json(200, serde_json::json!({"access_token": "stolen", "token_type": "Bearer", "expires_in": 3600})))
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn origin(&self) -> String {
        self.url("")
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Requests on one connection until it closes (or a read fails), each answered with `answer`'s.
fn serve(stream: TcpStream, answer: &dyn Fn(&Request) -> Response, recorded: &Mutex<Vec<Request>>) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    while let Some(request) = read_request(&mut reader) {
        let close = request.header("connection").is_some_and(|value| value.eq_ignore_ascii_case("close"));
        let response = answer(&request);
        recorded.lock().unwrap().push(request);
        let reason = if (200..300).contains(&response.status) { "OK" } else { "Error" };
        let headers: String = response.headers.iter().map(|(name, value)| format!("{name}: {value}\r\n")).collect();
        let written = write!(
            writer,
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{headers}\r\n{}",
            response.status,
            response.content_type,
            response.body.len(),
            response.body
        );
        if close || written.is_err() {
            return;
        }
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let length: usize = headers.iter().find(|(name, _)| name == "content-length").and_then(|(_, value)| value.parse().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request { method, target, headers, body })
}

/// Send one request over plain HTTP/1.0 to a loopback `url` and return the status and the body:
/// for a test that asks a peer something directly.
pub fn send(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let rest = url.strip_prefix("http://").expect("a loopback http URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = TcpStream::connect(host).unwrap();
    let headers: String = headers.iter().map(|(name, value)| format!("{name}: {value}\r\n")).collect();
    write!(stream, "{method} {path} HTTP/1.0\r\nHost: {host}\r\n{headers}Content-Length: {}\r\n\r\n", body.len()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    (status, body.to_string())
}
