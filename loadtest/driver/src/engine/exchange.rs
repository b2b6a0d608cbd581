//! One connection and one exchange on it: opening a keep-alive HTTP/1.1 connection (its bytes
//! counted), sending a request and reading its whole response within the request's deadline,
//! and sorting failures into error kinds. Children of the engine module, so they share its
//! thread state.

use http_body_util::BodyExt;
use hyper::client::conn::http1::SendRequest;
use hyper::header::WWW_AUTHENTICATE;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::AbortHandle;

use super::*;
use crate::wire::CountingStream;

/// A keep-alive HTTP/1.1 connection. Dropping it closes it.
pub(super) struct Conn {
    sender: SendRequest<Full<Bytes>>,
    driver: AbortHandle,
}

impl Conn {
    /// The peer closed it (or it failed) while it sat idle.
    pub(super) fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) outcome: Outcome,
    pub(super) www_authenticate: Option<String>,
}

fn classify_hyper_error(e: &hyper::Error) -> ErrorKind {
    if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_parse() || e.is_parse_status() || e.is_user() {
        ErrorKind::Protocol
    } else if e.is_canceled() || e.is_closed() || e.is_incomplete_message() {
        ErrorKind::Closed
    } else {
        ErrorKind::Io
    }
}

pub(super) async fn connect(thread: &DriverThread) -> Result<Conn, ErrorKind> {
    let stream = TcpStream::connect(thread.plan.config.addr)
        .await
        .map_err(|_| ErrorKind::Connect)?;
    // Requests are small and latency-bound: never wait for Nagle.
    let _ = stream.set_nodelay(true);
    let io = TokioIo::new(CountingStream::new(stream, Rc::clone(&thread.wire)));
    let (sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|_| ErrorKind::Connect)?;
    let driver = tokio::task::spawn_local(async move {
        // Ends when the peer closes or the Conn is dropped (aborted); the
        // request in flight sees any error.
        let _ = connection.await;
    })
    .abort_handle();
    thread.state.borrow_mut().stats.connections_opened += 1;
    Ok(Conn { sender, driver })
}

/// Sends one request (opening a connection if `conn` is None) and reads the
/// whole response. Returns the connection if it can be reused, the time the
/// exchange ended, and the answer or failure.
pub(super) async fn exchange(
    thread: &DriverThread,
    conn: Option<Conn>,
    job: &Job,
    sent_at: u64,
) -> (Option<Conn>, u64, Result<Answer, ErrorKind>) {
    let request = thread.build_request(job.index);
    let index = job.index;
    let attempt = async move {
        let mut conn = match conn {
            Some(conn) => conn,
            None => connect(thread).await?,
        };
        if conn.sender.ready().await.is_err() {
            // The connection closed while idle (the peer ended keep-alive):
            // nothing was sent on it, so open another within the budget.
            conn = connect(thread).await?;
            conn.sender
                .ready()
                .await
                .map_err(|e| classify_hyper_error(&e))?;
        }
        let response = conn
            .sender
            .send_request(request)
            .await
            .map_err(|e| classify_hyper_error(&e))?;
        let (parts, mut body) = response.into_parts();
        let status = parts.status.as_u16();
        let outcome = thread
            .plan
            .classifier
            .classify_request(index, status, &parts.headers);
        let www_authenticate = if outcome == Outcome::Unexpected
            && thread.state.borrow().stats.samples.len() < SAMPLE_LIMIT
        {
            parts
                .headers
                .get(WWW_AUTHENTICATE)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        } else {
            None
        };
        // Read (and discard) the body: the response ends at its last byte.
        while let Some(frame) = body.frame().await {
            frame.map_err(|e| classify_hyper_error(&e))?;
        }
        Ok::<_, ErrorKind>((
            conn,
            Answer {
                status,
                outcome,
                www_authenticate,
            },
        ))
    };
    let result = tokio::time::timeout_at(tokio_instant(thread.deadline(sent_at)), attempt).await;
    let done = now_ns();
    match result {
        Ok(Ok((conn, answer))) => (Some(conn), done, Ok(answer)),
        // A failed or timed-out connection is dropped, which closes it.
        Ok(Err(kind)) => (None, done, Err(kind)),
        Err(_elapsed) => (None, done, Err(ErrorKind::Timeout)),
    }
}
