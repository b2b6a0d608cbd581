//! The idle pacing probe: the driver's pacing loop with nothing to send, to measure how late
//! this machine wakes a paced thread when no target is involved. That lateness is the floor
//! under every cell's schedule lag: on a quiet 2-core VM a few µs at p99, on a busy one
//! milliseconds (scheduler time slices). A cell's lag far above it is the cell's own (its
//! target's Envoy or Keycloak competing for the cores); near it, the machine's.

use std::time::Duration;

use anyhow::{Context, Result, anyhow};

use crate::clock::{duration_ns, now_ns, ns_to_us};
use crate::pacer::{Pacer, minimise_timer_slack, raise_priority};
use crate::result::{LatencySummary, new_histogram};

/// Paces `rate` empty arrivals per second for `duration` on a thread set up as a driver thread
/// is (timer slack, priority, a timerfd, the same `spin` before each due time), and returns
/// how late each arrival was noticed, in µs.
pub fn idle_pacing(rate: f64, duration: Duration, spin: Duration) -> Result<LatencySummary> {
    if !(rate.is_finite() && rate > 0.0) {
        return Err(anyhow!(
            "idle pacing probe: rate must be positive, got {rate}"
        ));
    }
    let thread = std::thread::Builder::new()
        .name("pacing-probe".into())
        .spawn(move || -> Result<LatencySummary> {
            minimise_timer_slack();
            let _ = raise_priority();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("building the probe's runtime")?;
            runtime.block_on(pace(rate, duration, spin))
        })
        .context("starting the pacing probe thread")?;
    thread
        .join()
        .map_err(|_| anyhow!("the pacing probe thread panicked"))?
}

async fn pace(rate: f64, duration: Duration, spin: Duration) -> Result<LatencySummary> {
    let pacer = Pacer::new().context("creating the probe's timerfd")?;
    let mut lag = new_histogram()?;
    let period_ns = 1e9 / rate;
    // As the engine: spinning only pays when arrivals are at least two spins apart.
    let spin_ns = match duration_ns(spin) {
        spin if period_ns >= 2.0 * spin as f64 => spin,
        _ => 0,
    };
    let length_ns = duration_ns(duration);
    let t0 = now_ns();
    let mut index = 0u64;
    loop {
        let offset = (index as f64 * period_ns) as u64;
        if offset >= length_ns {
            break;
        }
        let due = t0.saturating_add(offset);
        if due.saturating_sub(now_ns()) > spin_ns {
            pacer
                .sleep_until(due - spin_ns)
                .await
                .context("waiting on the probe's timerfd")?;
        }
        while now_ns() < due {
            tokio::task::yield_now().await;
        }
        lag.saturating_record(ns_to_us(now_ns().saturating_sub(due)));
        index += 1;
    }
    Ok(LatencySummary::of(&lag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paces_every_arrival_and_refuses_a_bad_rate() {
        let lag = idle_pacing(1000.0, Duration::from_millis(50), Duration::from_micros(50))
            .expect("probe");
        assert_eq!(lag.count, 50);
        assert!(lag.p50_us <= lag.p99_us && lag.p99_us <= lag.max_us);
        assert!(idle_pacing(0.0, Duration::from_millis(10), Duration::ZERO).is_err());
    }
}
