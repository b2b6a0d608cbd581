//! Free loopback ports for servers started by tests and load runs.

use std::collections::HashSet;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Mutex, OnceLock};

/// How many times to ask the kernel for a port before giving up. The kernel
/// may hand back a port we already gave out (its listener is closed by then),
/// so a few retries are normal; exhausting them means something is wrong.
const ATTEMPTS: usize = 256;

fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Returns a TCP port on 127.0.0.1 that was free when checked and that this
/// process has never handed out before.
///
/// The port is not held open: the caller (often another process, such as
/// Envoy) binds it later. Remembering handed-out ports stops two servers in
/// one test process from being given the same port in that window.
pub fn free_port() -> io::Result<u16> {
    for _ in 0..ATTEMPTS {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = listener.local_addr()?.port();
        // A poisoned lock only means another thread panicked while holding
        // it; the set itself is still consistent.
        let mut ports = handed_out().lock().unwrap_or_else(|e| e.into_inner());
        if ports.insert(port) {
            return Ok(port);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrNotAvailable,
        format!("no new free port on 127.0.0.1 after {ATTEMPTS} attempts"),
    ))
}
