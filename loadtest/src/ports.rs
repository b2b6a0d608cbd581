//! Free loopback ports for servers started by tests and load runs.

use std::collections::HashSet;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use crate::flock::FileLock;

/// How many times to ask the kernel for a port before giving up. The kernel
/// may hand back a port we already gave out (its listener is closed by then),
/// so a few retries are normal; exhausting them means something is wrong.
const ATTEMPTS: usize = 256;

/// Ports this process handed out, with the lock file claiming each one (held until exit).
fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

fn claims() -> &'static Mutex<Vec<FileLock>> {
    static CLAIMS: OnceLock<Mutex<Vec<FileLock>>> = OnceLock::new();
    CLAIMS.get_or_init(|| Mutex::new(Vec::new()))
}

/// Claims `port` for this process against the other processes of the kit (a test binary and
/// the `loadtest` it runs both hand out ports): an exclusive `flock` on a file named after the
/// port, which the kernel drops when the process exits, however it exits. `false` when another
/// live process holds it; `true` also when claiming is impossible (no temp dir), so ports
/// still work, only without the cross-process guard.
fn claim_across_processes(port: u16) -> bool {
    let dir: PathBuf = std::env::temp_dir().join("tokengate-ports");
    if std::fs::create_dir_all(&dir).is_err() {
        return true;
    }
    match FileLock::try_exclusive(&dir.join(port.to_string())) {
        Ok(Some(lock)) => {
            claims()
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(lock);
            true
        }
        Ok(None) => false,
        // The lock file cannot be opened: no guard, but the port still works.
        Err(_) => true,
    }
}

/// Returns a TCP port on 127.0.0.1 that was free when checked, that this
/// process has never handed out before, and that no other live process of the
/// kit has claimed.
///
/// The port is not held open: the caller (often another process, such as
/// Envoy) binds it later. Remembering handed-out ports stops two servers in
/// one test process from being given the same port in that window. Ports come
/// from below the kernel's ephemeral range when there is room there, so that
/// the local end of an outgoing connection (which the kernel takes from that
/// range) cannot occupy the port in that window either.
pub fn free_port() -> io::Result<u16> {
    let below_ephemeral = ephemeral_range_start()
        .filter(|&start| start > FIRST_FIXED_PORT + 1024)
        .map(|start| FIRST_FIXED_PORT..start);
    let mut seed = seed();
    for _ in 0..ATTEMPTS {
        let wanted = match &below_ephemeral {
            Some(range) => {
                seed = xorshift(seed);
                range.start + (seed % u64::from(range.end - range.start)) as u16
            }
            None => 0,
        };
        let Ok(listener) = TcpListener::bind((Ipv4Addr::LOCALHOST, wanted)) else {
            continue;
        };
        let port = listener.local_addr()?.port();
        // A poisoned lock only means another thread panicked while holding
        // it; the set itself is still consistent.
        drop(listener);
        let mut ports = handed_out().lock().unwrap_or_else(|e| e.into_inner());
        if !ports.contains(&port) && claim_across_processes(port) {
            ports.insert(port);
            return Ok(port);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrNotAvailable,
        format!("no new free port on 127.0.0.1 after {ATTEMPTS} attempts"),
    ))
}

/// Lowest port handed out from outside the ephemeral range (above the
/// well-known and commonly registered ones).
const FIRST_FIXED_PORT: u16 = 10_000;

/// The first port of Linux's ephemeral range, if readable.
fn ephemeral_range_start() -> Option<u16> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Differs between processes and calls, so concurrent test binaries start
/// from different ports.
fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (u64::from(std::process::id()) << 32 | u64::from(nanos)) | 1
}

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port claimed once cannot be claimed again while the claim lives: `flock` locks
    /// belong to the open file, so a second open (as by another process) is refused.
    #[test]
    fn a_claimed_port_is_refused_to_the_next_claimant() {
        let port = free_port().expect("a free port");
        assert!(!claim_across_processes(port));
    }
}
