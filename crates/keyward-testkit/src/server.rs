//! A small, real HTTP/1.1 server on 127.0.0.1 for fault injection.
//!
//! Every response closes its connection (`Connection: close`), so each
//! request is counted exactly once and no pooled connection hides a fault.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A request as a dynamic route sees it.
#[derive(Clone, Debug)]
pub struct Received {
    /// The request method.
    pub method: String,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
    /// The body (read up to its `Content-Length`).
    pub body: Vec<u8>,
}

impl Received {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as `application/x-www-form-urlencoded` pairs.
    pub fn form(&self) -> Vec<(String, String)> {
        url_decode_pairs(&String::from_utf8_lossy(&self.body))
    }
}

fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("00");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn url_decode_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (url_decode(k), url_decode(v)),
            None => (url_decode(p), String::new()),
        })
        .collect()
}

/// Computes the answer from the request.
pub type Handler = std::sync::Arc<dyn Fn(&Received) -> Route + Send + Sync>;

/// What the server answers on one path.
#[derive(Clone)]
pub struct Route {
    status: u16,
    body: Vec<u8>,
    headers: Vec<(String, String)>,
    delay: Duration,
    trickle: Option<Duration>,
    etag: Option<String>,
    content_length: bool,
    reset: bool,
    handler: Option<Handler>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl Route {
    /// Answers each request with what `handler` returns (its delay and
    /// other settings apply).
    pub fn dynamic(handler: impl Fn(&Received) -> Route + Send + Sync + 'static) -> Self {
        Route {
            handler: Some(std::sync::Arc::new(handler)),
            ..Route::status_only(500)
        }
    }

    /// `200` with a JSON body.
    pub fn json(body: impl Into<Vec<u8>>) -> Self {
        Route {
            status: 200,
            body: body.into(),
            headers: vec![("Content-Type".into(), "application/json".into())],
            delay: Duration::ZERO,
            trickle: None,
            etag: None,
            content_length: true,
            reset: false,
            handler: None,
        }
    }

    /// Omits `Content-Length`: the body ends when the connection closes, so
    /// a client cannot know its size before reading it.
    pub fn without_content_length(mut self) -> Self {
        self.content_length = false;
        self
    }

    /// Reads the request, waits the route's delay, then closes the
    /// connection without answering: the client sees its request written and
    /// the connection reset.
    pub fn reset() -> Self {
        Route {
            reset: true,
            ..Route::status_only(500)
        }
    }

    /// An empty response with this status.
    pub fn status_only(status: u16) -> Self {
        Route {
            status,
            ..Route::json(Vec::new())
        }
    }

    /// Sets the status code.
    pub fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Adds a response header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Waits this long before answering.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Sends the body one byte at a time with this pause between bytes.
    pub fn trickle(mut self, per_byte: Duration) -> Self {
        self.trickle = Some(per_byte);
        self
    }

    /// Sends this `ETag` and answers `304` to a matching `If-None-Match`.
    pub fn etag(mut self, etag: &str) -> Self {
        self.etag = Some(etag.into());
        self
    }
}

#[derive(Default)]
struct State {
    routes: Mutex<HashMap<String, Route>>,
    hits: Mutex<HashMap<String, usize>>,
    not_modified: AtomicUsize,
    aborted_writes: AtomicUsize,
    bytes_written: AtomicUsize,
}

/// The server; stops when dropped.
pub struct TestServer {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    /// Starts on 127.0.0.1 on a free port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let accept_state = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, accept_state.clone()));
            }
        });
        TestServer { addr, state, task }
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The full URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    /// Sets (or replaces) the answer for `path`.
    pub fn set(&self, path: &str, route: Route) {
        self.state.routes.lock().unwrap().insert(path.into(), route);
    }

    /// Requests received for `path` so far.
    pub fn hits(&self, path: &str) -> usize {
        self.state
            .hits
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// `304` answers sent so far.
    pub fn not_modified(&self) -> usize {
        self.state.not_modified.load(Ordering::SeqCst)
    }

    /// Responses whose body could not be written completely because the
    /// client stopped reading (closed the connection).
    pub fn aborted_writes(&self) -> usize {
        self.state.aborted_writes.load(Ordering::SeqCst)
    }

    /// Body bytes written in total.
    pub fn bytes_written(&self) -> usize {
        self.state.bytes_written.load(Ordering::SeqCst)
    }
}

async fn serve(mut stream: TcpStream, state: Arc<State>) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > 64 * 1024 {
            return;
        }
    }
    let end = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(head.len())
        + 4;
    let mut body = head.split_off(end.min(head.len()));
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next().unwrap_or("").split(' ');
    let method = request_line.next().unwrap_or("GET").to_owned();
    let path = request_line
        .next()
        .unwrap_or("/")
        .split('?')
        .next()
        .unwrap_or("/")
        .to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let if_none_match = headers
        .iter()
        .find(|(n, _)| n == "if-none-match")
        .map(|(_, v)| v.clone());
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
        .min(1024 * 1024);
    while body.len() < length {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&buf[..n]),
        }
    }
    let received = Received {
        method,
        headers,
        body,
    };
    *state.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    let route = state.routes.lock().unwrap().get(&path).cloned();
    let route = match route {
        Some(Route {
            handler: Some(handler),
            delay,
            ..
        }) => {
            tokio::time::sleep(delay).await;
            Some(handler(&received))
        }
        other => other,
    };
    let Some(route) = route else {
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await;
        return;
    };
    tokio::time::sleep(route.delay).await;
    if route.reset {
        state.aborted_writes.fetch_add(1, Ordering::SeqCst);
        return; // dropped unanswered
    }
    let not_modified = route.etag.is_some() && route.etag == if_none_match;
    let (status, body) = if not_modified {
        state.not_modified.fetch_add(1, Ordering::SeqCst);
        (304, &[][..])
    } else {
        (route.status, &route.body[..])
    };
    let mut response = format!("HTTP/1.1 {status} X\r\nConnection: close\r\n");
    if route.content_length {
        response.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (name, value) in &route.headers {
        response.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(etag) = &route.etag {
        response.push_str(&format!("ETag: {etag}\r\n"));
    }
    response.push_str("\r\n");
    if stream.write_all(response.as_bytes()).await.is_err() {
        return;
    }
    let result = match route.trickle {
        Some(pause) => {
            let mut result = Ok(());
            for byte in body {
                if let Err(e) = stream.write_all(&[*byte]).await {
                    result = Err(e);
                    break;
                }
                state.bytes_written.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(pause).await;
            }
            result
        }
        None => {
            let mut result = Ok(());
            for chunk in body.chunks(64 * 1024) {
                if let Err(e) = stream.write_all(chunk).await {
                    result = Err(e);
                    break;
                }
                state.bytes_written.fetch_add(chunk.len(), Ordering::SeqCst);
            }
            result
        }
    };
    if result.is_err() {
        state.aborted_writes.fetch_add(1, Ordering::SeqCst);
    }
    let _ = stream.shutdown().await;
}
