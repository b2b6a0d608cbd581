//! The upstream JSON API that Envoy routes to in tests and load runs.
//!
//! It answers every method and path with 200 and echoes the identity headers
//! it received, so tests can see what the gateway forwarded or stripped: their values in
//! the JSON body, their names in the response header [`IDENTITY_HEADERS_RECEIVED`] (what the
//! load driver reads: it judges statuses and headers, never bodies).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value};
use tokio::net::TcpListener;

use crate::process::{ManagedProcess, ProcessSpec};

/// Serves the API on `listener` until the task is dropped; one task per
/// connection, HTTP/1.1 with keep-alive.
pub async fn serve(listener: TcpListener) -> Result<()> {
    loop {
        let (stream, _peer) = match listener.accept().await {
            Ok(conn) => conn,
            // Usually EMFILE under load: back off instead of spinning, and
            // keep serving the connections already open.
            Err(e) => {
                eprintln!("backend: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(handle);
            // Clients resetting connections is normal; nothing to report.
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Response header listing, comma-separated and sorted, the names of the
/// identity headers that reached the backend; absent when none did.
pub const IDENTITY_HEADERS_RECEIVED: &str = "x-backend-identity-headers";

/// Whether a request header is echoed back under `identity`.
pub fn is_identity_header(name: &str) -> bool {
    name.starts_with("x-jwt-") || name.starts_with("x-tokengate-") || name == "authorization"
}

async fn handle(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, mut body) = request.into_parts();

    // Repeated headers become an array, so a test can tell one forwarded
    // value from two.
    let mut identity = Map::new();
    for name in parts.headers.keys() {
        let name_str = name.as_str();
        if !is_identity_header(name_str) {
            continue;
        }
        let values: Vec<Value> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let value = match <[Value; 1]>::try_from(values) {
            Ok([single]) => single,
            Err(many) => Value::Array(many),
        };
        identity.insert(name_str.to_string(), value);
    }

    // Drain the body frame by frame without buffering it.
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            break;
        }
    }

    let reply = serde_json::json!({
        "ok": true,
        "method": parts.method.as_str(),
        "path": parts.uri.path_and_query().map_or("/", |pq| pq.as_str()),
        "identity": identity,
    });
    let mut response = Response::new(Full::new(Bytes::from(reply.to_string())));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if !identity.is_empty() {
        let names: Vec<&str> = identity.keys().map(String::as_str).collect();
        // Header names are tokens, so their list is always a valid header value.
        if let Ok(value) = HeaderValue::from_str(&names.join(",")) {
            headers.insert(IDENTITY_HEADERS_RECEIVED, value);
        }
    }
    Ok(response)
}

/// Starts the `backend` binary on a free port, logging to `<dir>/<name>.log`,
/// and waits until it is listening.
pub fn spawn(dir: &Path, name: &str, threads: usize) -> Result<(ManagedProcess, SocketAddr)> {
    let binary = crate::paths::sibling_binary("backend")?;
    let port = crate::ports::free_port().context("reserving a port for the backend")?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let process = ManagedProcess::spawn(
        ProcessSpec::new(name, binary, dir)
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--threads")
            .arg(threads.to_string()),
    )?;
    process.wait_for_log(&format!("listening on {addr}"), Duration::from_secs(10))?;
    Ok((process, addr))
}
