//! A fault-injecting identity provider: `fake_idp --listen 127.0.0.1:PORT`.
//!
//! Serves whatever documents the test sets (a JWKS, an introspection answer) and, on demand,
//! misbehaves in the ways a real IdP or the network in front of it does: slow answers, garbage,
//! oversize documents, a connection closed in the middle of the body, error statuses. It is a
//! process of its own so that a test can also SIGSTOP it (hang) and SIGKILL it (die), exactly as
//! it would an IdP: what the gateway sees of those is the kernel's behaviour, not the program's.
//!
//! Control, on the same port (the test's calls, never the gateway's):
//! - `POST /_control/set<path>`, body: the document served at `<path>` (200, JSON);
//! - `POST /_control/inactive`, body: a token the introspection endpoint calls inactive
//!   (`{"active":false}` for every request whose body contains it);
//! - `POST /_control/mode`, body: `ok`, `slow <ms>`, `garbage`, `oversize <bytes>`, `midbody`,
//!   or `status <code>`;
//! - `GET /_control/count<path>`: requests received at `<path>` so far.
//!
//! Deliberately minimal HTTP/1.1 (the gateway's own calls are simple): `content-length` bodies,
//! keep-alive until the peer closes.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const USAGE: &str = "usage: fake_idp --listen 127.0.0.1:PORT";
const MAX_HEAD: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq)]
enum Mode {
    Ok,
    Slow(Duration),
    Garbage,
    Oversize(usize),
    MidBody,
    Status(u16),
}

impl Mode {
    fn parse(text: &str) -> Option<Mode> {
        let mut words = text.split_whitespace();
        let mode = match (words.next()?, words.next()) {
            ("ok", None) => Mode::Ok,
            ("garbage", None) => Mode::Garbage,
            ("midbody", None) => Mode::MidBody,
            ("slow", Some(ms)) => Mode::Slow(Duration::from_millis(ms.parse().ok()?)),
            ("oversize", Some(bytes)) => Mode::Oversize(bytes.parse().ok()?),
            ("status", Some(code)) => Mode::Status(code.parse().ok()?),
            _ => return None,
        };
        Some(mode)
    }
}

#[derive(Default)]
struct State {
    documents: HashMap<String, String>,
    inactive: HashSet<String>,
    counts: HashMap<String, u64>,
    mode: Option<Mode>,
}

type Shared = Arc<Mutex<State>>;

fn lock(state: &Shared) -> MutexGuard<'_, State> {
    // Plain maps only: still consistent after a panic elsewhere.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

struct Request {
    path: String,
    body: Vec<u8>,
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let listen: SocketAddr = match (args.next().as_deref(), args.next()) {
        (Some("--listen"), Some(addr)) => addr
            .parse()
            .with_context(|| format!("--listen {addr:?} is not an address\n{USAGE}"))?,
        _ => bail!("{USAGE}"),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the runtime")?;
    runtime.block_on(serve(listen))
}

async fn serve(listen: SocketAddr) -> Result<()> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    // A restarted IdP binds the port again while the old connections sit in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket
        .bind(listen)
        .with_context(|| format!("binding {listen}"))?;
    let listener: TcpListener = socket.listen(1024)?;
    println!("fake_idp listening on {listen}");
    let state = Shared::default();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(stream, Arc::clone(&state)));
    }
}

async fn connection(mut stream: TcpStream, state: Shared) {
    let mut buffer = Vec::new();
    while let Some(request) = read_request(&mut stream, &mut buffer).await {
        if answer(&mut stream, &state, request).await.is_err() {
            return;
        }
    }
}

/// The next request on the connection, `None` when it closed or sent something unreadable.
async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Request> {
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if buffer.len() > MAX_HEAD || !read_more(stream, buffer).await {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let path = head.split_whitespace().nth(1)?.to_owned();
    let length: usize = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        if !read_more(stream, buffer).await {
            return None;
        }
    }
    let body = buffer[head_end..head_end + length].to_vec();
    buffer.drain(..head_end + length);
    let path = path.split('?').next().unwrap_or_default().to_owned();
    Some(Request { path, body })
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 16 * 1024];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buffer.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

async fn answer(stream: &mut TcpStream, state: &Shared, request: Request) -> std::io::Result<()> {
    let text = String::from_utf8_lossy(&request.body).trim().to_owned();
    if let Some(path) = request.path.strip_prefix("/_control/set") {
        lock(state).documents.insert(path.to_owned(), text);
        return respond(stream, 200, b"{}").await;
    }
    if request.path == "/_control/inactive" {
        lock(state).inactive.insert(text);
        return respond(stream, 200, b"{}").await;
    }
    if request.path == "/_control/mode" {
        let Some(mode) = Mode::parse(&text) else {
            return respond(stream, 400, b"{\"error\":\"unknown mode\"}").await;
        };
        lock(state).mode = Some(mode);
        return respond(stream, 200, b"{}").await;
    }
    if let Some(path) = request.path.strip_prefix("/_control/count") {
        let count = lock(state).counts.get(path).copied().unwrap_or(0);
        return respond(stream, 200, count.to_string().as_bytes()).await;
    }

    let (document, mode) = {
        let mut state = lock(state);
        *state.counts.entry(request.path.clone()).or_insert(0) += 1;
        let inactive = state
            .inactive
            .iter()
            .any(|token| contains(&request.body, token.as_bytes()));
        let document = match state.documents.get(&request.path) {
            Some(_) if inactive => Some("{\"active\":false}".to_owned()),
            other => other.cloned(),
        };
        (document, state.mode.clone().unwrap_or(Mode::Ok))
    };
    let Some(document) = document else {
        return respond(stream, 404, b"{\"error\":\"not found\"}").await;
    };
    match mode {
        Mode::Ok => respond(stream, 200, document.as_bytes()).await,
        Mode::Slow(delay) => {
            tokio::time::sleep(delay).await;
            respond(stream, 200, document.as_bytes()).await
        }
        Mode::Garbage => respond(stream, 200, b"\x00\xff<html>{\"active\":tru\xc3(").await,
        Mode::Status(code) => {
            respond(stream, code, b"{\"error\":\"temporarily_unavailable\"}").await
        }
        // The document itself, still valid JSON and still saying what it said, padded past any
        // sane limit: a gateway that admits on it read a body it should have refused to read.
        Mode::Oversize(bytes) => {
            let padded = match document.strip_prefix('{') {
                Some(rest) => format!("{{\"padding\":\"{}\",{rest}", "x".repeat(bytes)),
                None => document,
            };
            respond(stream, 200, padded.as_bytes()).await
        }
        // Headers promise the whole document; half of it comes, then the connection closes.
        Mode::MidBody => {
            let bytes = document.as_bytes();
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                bytes.len()
            );
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&bytes[..bytes.len() / 2]).await?;
            stream.flush().await?;
            stream.shutdown().await?;
            Err(std::io::Error::other("closed mid-body"))
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

async fn respond(stream: &mut TcpStream, status: u16, body: &[u8]) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.flush().await
}
