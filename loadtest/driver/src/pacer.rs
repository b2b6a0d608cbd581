//! Sub-millisecond pacing with a Linux `timerfd`.
//!
//! tokio's timer wheel has 1 ms resolution: sleeping until a due time with
//! it would send requests up to a millisecond late, which at a gateway p50 of
//! ~0.3 ms would swamp the latency being measured. A `timerfd` armed with an
//! absolute CLOCK_MONOTONIC deadline fires with the kernel's hrtimer
//! precision, and registered in tokio's reactor it wakes the driver thread's
//! runtime like any socket.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

pub(crate) struct Pacer {
    fd: AsyncFd<OwnedFd>,
}

impl Pacer {
    /// Must be called inside a tokio runtime with I/O enabled.
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: plain system call; the result is checked below.
        let raw = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a freshly created descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: `fd` is open and owned by the AsyncFd, which closes it only
        // when dropped; `OwnedFd::as_raw_fd` always returns that descriptor.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE)? };
        Ok(Self { fd })
    }

    /// Returns at (or just after) `deadline_ns` on the `clock::now_ns` clock;
    /// at once if the deadline has passed.
    pub(crate) async fn sleep_until(&self, deadline_ns: u64) -> io::Result<()> {
        self.arm(deadline_ns)?;
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| read_expirations(fd.get_ref())) {
                Ok(result) => {
                    // The expiration is consumed: forget the readiness now
                    // rather than find out with a failing read next time.
                    // The next deadline is armed before waiting, so its
                    // expiry is a fresh event.
                    guard.clear_ready();
                    return result;
                }
                // Stale readiness (an expiration read earlier): try_io has
                // cleared it; wait for the armed deadline.
                Err(_would_block) => continue,
            }
        }
    }

    fn arm(&self, deadline_ns: u64) -> io::Result<()> {
        // An all-zero it_value would disarm the timer instead.
        let deadline_ns = deadline_ns.max(1);
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: (deadline_ns / 1_000_000_000) as libc::time_t,
                tv_nsec: (deadline_ns % 1_000_000_000) as libc::c_long,
            },
        };
        // SAFETY: the descriptor is open for the lifetime of `self`; `spec` is
        // a valid itimerspec and the old value is not requested. Re-arming
        // also resets the expiration count, so no stale tick survives.
        let rc = unsafe {
            libc::timerfd_settime(
                self.fd.get_ref().as_raw_fd(),
                libc::TFD_TIMER_ABSTIME,
                &spec,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Reads the expiration count; WouldBlock when the timer has not fired.
fn read_expirations(fd: &OwnedFd) -> io::Result<()> {
    let mut count = 0u64;
    // SAFETY: reads at most 8 bytes into a u64 owned by this frame.
    let n = unsafe {
        libc::read(
            fd.as_raw_fd(),
            (&mut count as *mut u64).cast::<libc::c_void>(),
            std::mem::size_of::<u64>(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Asks the kernel for the smallest timer slack on the calling thread, so
/// the reactor's own epoll timeouts are not rounded up by the default 50 µs.
pub(crate) fn minimise_timer_slack() {
    // SAFETY: prctl(PR_SET_TIMERSLACK) only changes a per-thread setting.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
    }
}

/// Nice value of a driver thread. On a machine that also hosts the system under test
/// (Keycloak's JVM can keep both cores of a small box busy), an equal-priority driver thread is
/// preempted for milliseconds and sends late, which makes the run invalid however well the
/// gateway does. The driver is the measuring instrument and sleeps between arrivals, so ranking
/// it above the rest costs the others little.
const DRIVER_NICE: libc::c_int = -10;

/// Raises the calling thread's scheduling priority to [`DRIVER_NICE`]; returns whether it could
/// (it needs `CAP_SYS_NICE`, e.g. root; without it the run goes on at normal priority, and the
/// validity checks still catch any lateness).
pub(crate) fn raise_priority() -> bool {
    // SAFETY: gettid has no preconditions; setpriority on our own thread id changes only this
    // thread's nice value.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, DRIVER_NICE) == 0
    }
}
