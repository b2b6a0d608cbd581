//! The backend binary and the JWKS server the Envoy tests run against.

use super::*;

#[tokio::test]
async fn backend_binary_echoes_identity_headers() -> Result<()> {
    let dir = paths::run_dir("backend-binary");
    let (process, addr) = backend::spawn(&dir, "backend", 2)?;
    let response = http::send(
        "POST",
        &format!("http://{addr}/api/orders?id=7"),
        &[
            ("Authorization", "Bearer first"),
            ("Authorization", "Bearer second"),
            ("X-JWT-Sub", "alice"),
            ("x-tokengate-status", "ok"),
            ("x-other", "not echoed"),
            ("content-type", "application/json"),
        ],
        Some(br#"{"item":"book"}"#.to_vec()),
    )
    .await?;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("Content-Type"), Some("application/json"));
    let body = response.json()?;
    assert_eq!(body["ok"], true);
    assert_eq!(body["method"], "POST");
    assert_eq!(body["path"], "/api/orders?id=7");
    let identity = body["identity"]
        .as_object()
        .context("identity is not an object")?;
    assert_eq!(
        identity.get("authorization"),
        Some(&serde_json::json!(["Bearer first", "Bearer second"]))
    );
    assert_eq!(identity.get("x-jwt-sub"), Some(&serde_json::json!("alice")));
    assert_eq!(
        identity.get("x-tokengate-status"),
        Some(&serde_json::json!("ok"))
    );
    assert_eq!(identity.len(), 3, "identity: {identity:?}");

    // SIGTERM is a clean shutdown.
    let status = process.stop(Duration::from_secs(5))?;
    assert_eq!(status.code(), Some(0), "log: {}", process.log_contents());
    Ok(())
}

#[tokio::test]
async fn backend_serve_answers_every_method_and_path() -> Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(backend::serve(listener));
    for (method, path) in [
        ("GET", "/"),
        ("PUT", "/a/b/c"),
        ("DELETE", "/users/1"),
        ("PATCH", "/x"),
        ("OPTIONS", "/anything"),
    ] {
        let response = http::send(method, &format!("http://{addr}{path}"), &[], None).await?;
        assert_eq!(response.status, 200, "{method} {path}");
        let body = response.json()?;
        assert_eq!(body["method"], method);
        assert_eq!(body["path"], path);
        assert_eq!(body["identity"], serde_json::json!({}));
    }
    // HEAD gets the headers and no body.
    let head = http::send("HEAD", &format!("http://{addr}/"), &[], None).await?;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    server.abort();
    Ok(())
}

// ---------------------------------------------------------------- JWKS server

#[tokio::test]
async fn jwks_server_serves_counts_stops_and_restarts() -> Result<()> {
    let mut jwks = JwksServer::reserve()?;
    let port = jwks.port();
    assert!(
        TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err(),
        "reserved port accepts connections before start"
    );

    jwks.start()?;
    jwks.start()?; // idempotent
    let keys = r#"{"keys":[]}"#;
    jwks.set_response("/jwks", 200, keys.to_string());
    let response = http::get(&jwks.url("/jwks?x=1"), &[]).await?;
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), keys);
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(http::get(&jwks.url("/other"), &[]).await?.status, 404);
    jwks.set_response("/jwks", 503, "{}".to_string());
    assert_eq!(http::get(&jwks.url("/jwks"), &[]).await?.status, 503);
    assert_eq!(jwks.request_count("/jwks"), 2);
    assert_eq!(jwks.request_count("/other"), 1);
    assert_eq!(jwks.request_count("/never"), 0);

    // An idle keep-alive connection is closed by stop, not just the listener.
    let mut idle = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    idle.set_read_timeout(Some(Duration::from_secs(5)))?;
    idle.write_all(b"GET /jwks HTTP/1.1\r\nHost: x\r\n\r\n")?;
    let mut buf = [0u8; 4096];
    let n = idle.read(&mut buf)?;
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 503"));

    jwks.stop();
    assert!(!jwks.is_running());
    let closed = match idle.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    };
    assert!(closed, "open connection survived stop");
    assert!(
        TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err(),
        "port still accepts connections after stop"
    );
    assert!(http::get(&jwks.url("/jwks"), &[]).await.is_err());

    jwks.start()?;
    jwks.set_response("/jwks", 200, keys.to_string());
    assert_eq!(http::get(&jwks.url("/jwks"), &[]).await?.status, 200);
    assert_eq!(jwks.request_count("/jwks"), 4);

    jwks.set_delay(Duration::from_millis(400));
    let started = Instant::now();
    assert_eq!(http::get(&jwks.url("/jwks"), &[]).await?.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(400));
    Ok(())
}

#[test]
fn jwks_server_works_from_sync_code() -> Result<()> {
    let mut jwks = JwksServer::reserve()?;
    jwks.start()?;
    jwks.set_response("/certs", 200, r#"{"keys":[1]}"#.to_string());
    let response = http::get_blocking(&jwks.url("/certs"), Duration::from_secs(5))?;
    assert_eq!(response.status, 200);
    assert_eq!(response.json()?["keys"][0], 1);
    assert_eq!(jwks.request_count("/certs"), 1);
    drop(jwks);
    Ok(())
}

// ---------------------------------------------------------------- Envoy
