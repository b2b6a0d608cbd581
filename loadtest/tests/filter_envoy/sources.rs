//! Where the token comes from (header, cookie, query), its removal before forwarding, and
//! repeated token headers refused for every source.

use super::*;

#[tokio::test]
async fn token_sources_and_stripping() -> Result<()> {
    let fixture = Fixture::start(GatewaySpec::new("jwt").patch(json!({
        "forward": {"strip_authorization": true}
    })))?;
    fixture.wait_for_keys().await?;
    let response = fixture.get_bearer(&fixture.valid_token()).await?;
    assert_eq!(response.status, 200);
    let echoed = response.json()?;
    assert!(
        echoed["identity"].get("authorization").is_none(),
        "{echoed}"
    );
    assert_eq!(echoed["identity"]["x-jwt-sub"], SUB);

    let query = Fixture::start(GatewaySpec::new("jwt").patch(json!({
        "token_source": {"query": "access_token"},
        "forward": {"strip_authorization": true},
    })))?;
    query.wait_for_keys().await?;
    let url = query
        .gateway
        .url(&format!("/search?q=1&access_token={}", query.valid_token()));
    let response = http::get(&url, &[]).await?;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()?["path"], "/search?q=1");
    let url = query.gateway.url("/search?access_token=a&access_token=b");
    assert_eq!(http::get(&url, &[]).await?.status, 400);

    let cookie = Fixture::start(GatewaySpec::new("jwt").patch(json!({
        "token_source": {"cookie": "session"},
    })))?;
    cookie.wait_for_keys().await?;
    let value = format!("theme=dark; session={}", cookie.valid_token());
    let response = cookie.get(&[("cookie", &value)]).await?;
    assert_eq!(response.status, 200, "{}", response.text());
    Ok(())
}

/// Status of a GET sent as raw HTTP/1.1 (each header line exactly as given), for cases the
/// HTTP client would normalise: repeated lines, mixed-case names.
async fn raw_status(fixture: &Fixture, header_lines: &[String]) -> Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let port = fixture.gateway.envoy.listen_port();
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let mut request = format!("GET /orders/42 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n");
    for line in header_lines {
        request.push_str(line);
        request.push_str("\r\n");
    }
    request.push_str("Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok());
    status.ok_or_else(|| anyhow::anyhow!("no HTTP status in {text:?}"))
}

/// The filter reads only the header its token source needs. Envoy keeps `authorization` as
/// one entry, joining repeated lines with commas, so reading that one value still sees every
/// token; other headers (and `cookie`) stay separate entries and are read in full. Either way
/// a request carrying two tokens is refused with 400, whatever the spelling of the lines.
#[tokio::test]
async fn repeated_token_headers_are_refused_for_every_source() -> Result<()> {
    let fixture = Fixture::start(GatewaySpec::new("jwt"))?;
    fixture.wait_for_keys().await?;
    let valid = fixture.valid_token();
    let one = format!("Authorization: Bearer {valid}");
    assert_eq!(raw_status(&fixture, std::slice::from_ref(&one)).await?, 200);
    for lines in [
        vec![one.clone(), one.clone()],
        vec![
            format!("authorization: Bearer {valid}"),
            format!("AUTHORIZATION: Bearer {valid}"),
        ],
        vec![one.clone(), "Authorization: Basic dXNlcjpwYXNz".to_owned()],
    ] {
        assert_eq!(raw_status(&fixture, &lines).await?, 400, "{lines:?}");
    }

    let header = Fixture::start(GatewaySpec::new("jwt").patch(json!({
        "token_source": {"header": "X-Token", "prefix": ""},
    })))?;
    header.wait_for_keys().await?;
    let token = header.valid_token();
    assert_eq!(header.get(&[("x-token", &token)]).await?.status, 200);
    let twice = header
        .get(&[("x-token", &token), ("x-token", &token)])
        .await?;
    assert_eq!(twice.status, 400, "{}", twice.text());
    let lines = [format!("x-token: {token}"), format!("X-TOKEN: {token}")];
    assert_eq!(raw_status(&header, &lines).await?, 400);

    let cookie = Fixture::start(GatewaySpec::new("jwt").patch(json!({
        "token_source": {"cookie": "session"},
    })))?;
    cookie.wait_for_keys().await?;
    let token = cookie.valid_token();
    let session = format!("session={token}");
    let twice = cookie
        .get(&[
            ("cookie", "theme=dark"),
            ("cookie", &session),
            ("cookie", &session),
        ])
        .await?;
    assert_eq!(twice.status, 400, "{}", twice.text());
    let split = cookie
        .get(&[("cookie", "theme=dark"), ("cookie", &session)])
        .await?;
    assert_eq!(split.status, 200, "{}", split.text());
    Ok(())
}
