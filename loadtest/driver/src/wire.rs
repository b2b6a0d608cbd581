//! Wire-byte accounting: a TcpStream wrapper that counts every byte read and
//! written, HTTP headers and framing included (what JMeter reports as
//! sent/received KB/s).

use std::cell::Cell;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Totals for all connections of one driver thread. Single-threaded by
/// construction (`Rc` + `Cell`): no atomics on the hot path.
#[derive(Debug, Default)]
pub(crate) struct WireCounters {
    sent: Cell<u64>,
    received: Cell<u64>,
}

impl WireCounters {
    /// (sent, received) so far.
    pub(crate) fn snapshot(&self) -> (u64, u64) {
        (self.sent.get(), self.received.get())
    }

    fn add_sent(&self, n: usize) {
        self.sent.set(self.sent.get().saturating_add(n as u64));
    }

    fn add_received(&self, n: usize) {
        self.received
            .set(self.received.get().saturating_add(n as u64));
    }
}

pub(crate) struct CountingStream {
    inner: TcpStream,
    counters: Rc<WireCounters>,
}

impl CountingStream {
    pub(crate) fn new(inner: TcpStream, counters: Rc<WireCounters>) -> Self {
        Self { inner, counters }
    }
}

impl AsyncRead for CountingStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = poll {
            this.counters
                .add_received(buf.filled().len().saturating_sub(before));
        }
        poll
    }
}

impl AsyncWrite for CountingStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = poll {
            this.counters.add_sent(n);
        }
        poll
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = poll {
            this.counters.add_sent(n);
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
