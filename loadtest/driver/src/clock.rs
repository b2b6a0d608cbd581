//! One clock for the whole driver: CLOCK_MONOTONIC in nanoseconds, the same
//! clock `timerfd` deadlines are expressed in.

use std::time::Duration;

/// Nanoseconds since an arbitrary point (boot), from CLOCK_MONOTONIC.
///
/// A vDSO call, tens of nanoseconds: cheap enough to read per request.
pub(crate) fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec. CLOCK_MONOTONIC always
    // exists on Linux, so the call cannot fail.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// The tokio instant of a `now_ns` deadline, for tokio's (millisecond)
/// timeouts. Both clocks are CLOCK_MONOTONIC; the conversion goes through a
/// relative duration so it needs no access to tokio's internals.
pub(crate) fn tokio_instant(deadline_ns: u64) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now + Duration::from_nanos(deadline_ns.saturating_sub(now_ns()))
}

/// Nanoseconds to microseconds, rounded to the nearest.
pub(crate) fn ns_to_us(ns: u64) -> u64 {
    ns.saturating_add(500) / 1_000
}

pub(crate) fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// CPU time (user + system) the calling thread has used, in nanoseconds.
pub(crate) fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}
