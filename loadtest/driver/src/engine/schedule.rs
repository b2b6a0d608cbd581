//! The schedules a driver thread runs: the open loop's paced arrivals handed to connections
//! (with the backlog when every connection is busy), the closed loop's workers, and the drain
//! at the end of the window. Children of the engine module, so they share its thread state.

use super::*;

/// Open loop: hands each arrival of this thread to a connection at its due
/// time, paced by a timerfd.
pub(super) async fn open_schedule(thread: &Rc<DriverThread>, open: &OpenLoop) -> Result<()> {
    let pacer = Pacer::new().context("creating the pacing timerfd")?;
    let plan = &thread.plan;
    let t0 = thread.window_start.saturating_sub(plan.warmup_ns);
    let period_ns = 1e9 / open.rate;
    // With arrivals less than two spins apart (per thread) the thread would
    // spin most of the time, and it rarely sleeps long enough to pay the
    // wake-up cost anyway.
    let thread_period_ns = period_ns * thread.threads() as f64;
    let spin_ns = match duration_ns(open.spin) {
        spin if thread_period_ns >= 2.0 * spin as f64 => spin,
        _ => 0,
    };
    let schedule_ns = plan.warmup_ns.saturating_add(plan.duration_ns);
    let step = thread.threads() as u64;
    let mut index = thread.k as u64;
    let mut burst = 0u32;
    loop {
        // Monotonic in `index`; exact enough for any run length accepted.
        let offset = (index as f64 * period_ns) as u64;
        if offset >= schedule_ns {
            break;
        }
        let due = t0.saturating_add(offset);
        if due > now_ns() {
            if burst > 0 {
                // Let the connections' tasks send what was just dispatched
                // before the timer is re-armed (a system call or two).
                burst = 0;
                tokio::task::yield_now().await;
                continue;
            }
            if spin_ns == 0 {
                pacer
                    .sleep_until(due)
                    .await
                    .context("waiting on the pacing timerfd")?;
            } else {
                if due.saturating_sub(now_ns()) > spin_ns {
                    pacer
                        .sleep_until(due - spin_ns)
                        .await
                        .context("waiting on the pacing timerfd")?;
                }
                // Each yield lets the runtime poll I/O (without blocking) and
                // run the connections' tasks before the clock is read again.
                while now_ns() < due {
                    tokio::task::yield_now().await;
                }
            }
            continue;
        }
        let measured = offset >= plan.warmup_ns;
        arrive(
            thread,
            Job {
                index,
                due,
                measured,
            },
        );
        index += step;
        burst += 1;
        if burst >= MAX_BURST {
            burst = 0;
            tokio::task::yield_now().await;
        }
    }
    Ok(())
}

/// An arrival: an idle connection, else a new one below the cap, else the
/// backlog, else dropped.
fn arrive(thread: &Rc<DriverThread>, job: Job) {
    let mut state = thread.state.borrow_mut();
    if job.measured {
        state.stats.scheduled += 1;
        state.mark_window_start(&thread.wire);
    }
    let conn = match state.take_idle() {
        Some(conn) => Some(conn),
        None if state.slots < state.max_slots => {
            state.slots += 1;
            None
        }
        None => {
            if state.backlog.len() < state.backlog_cap {
                state.backlog.push_back(job);
            } else if job.measured {
                state.stats.dropped += 1;
            }
            return;
        }
    };
    state.busy += 1;
    if job.measured {
        state.measured_busy += 1;
    }
    drop(state);
    tokio::task::spawn_local(open_worker(Rc::clone(thread), conn, job));
}

/// Runs `job` on `conn` (a new connection if None), then backlogged
/// arrivals while there are any, then returns the connection to the pool.
async fn open_worker(thread: Rc<DriverThread>, mut conn: Option<Conn>, mut job: Job) {
    loop {
        let sent_at = now_ns();
        let (back, done, result) = exchange(&thread, conn.take(), &job, sent_at).await;
        let mut state = thread.state.borrow_mut();
        state.stats.record(
            false,
            &thread.plan.config.label,
            &job,
            sent_at,
            done,
            result,
        );
        if job.measured {
            state.measured_busy = state.measured_busy.saturating_sub(1);
        }
        if let Some(next) = state.take_backlog(thread.cutoff()) {
            conn = back;
            job = next;
            continue;
        }
        match back {
            Some(conn) => state.idle.push_back(conn),
            None => state.slots = state.slots.saturating_sub(1),
        }
        thread.finish_worker(&mut state);
        return;
    }
}

/// Opens a connection ahead of demand; serves the backlog if arrivals
/// queued meanwhile.
pub(super) async fn preconnect(thread: Rc<DriverThread>) {
    let deadline = tokio_instant(thread.deadline(now_ns()));
    let opened = tokio::time::timeout_at(deadline, connect(&thread)).await;
    let backlogged = {
        let mut state = thread.state.borrow_mut();
        match opened {
            Ok(Ok(conn)) => match state.take_backlog(thread.cutoff()) {
                Some(job) => {
                    state.busy += 1;
                    Some((conn, job))
                }
                None => {
                    state.idle.push_back(conn);
                    None
                }
            },
            // Not an error of any request; arrivals will try again.
            _ => {
                state.slots = state.slots.saturating_sub(1);
                None
            }
        }
    };
    if let Some((conn, job)) = backlogged {
        open_worker(Rc::clone(&thread), Some(conn), job).await;
    }
}

/// Closed loop: one connection sending back to back until the end.
pub(super) async fn closed_worker(thread: Rc<DriverThread>) {
    let mut conn = None;
    loop {
        let started = now_ns();
        if started >= thread.end {
            break;
        }
        let measured = started >= thread.window_start;
        let job = {
            let mut state = thread.state.borrow_mut();
            let index = state
                .next_seq
                .saturating_mul(thread.threads() as u64)
                .saturating_add(thread.k as u64);
            state.next_seq += 1;
            if measured {
                state.stats.scheduled += 1;
                state.measured_busy += 1;
                state.mark_window_start(&thread.wire);
            }
            Job {
                index,
                due: started,
                measured,
            }
        };
        let (back, done, result) = exchange(&thread, conn.take(), &job, started).await;
        let connect_failed = matches!(result, Err(ErrorKind::Connect));
        {
            let mut state = thread.state.borrow_mut();
            state
                .stats
                .record(true, &thread.plan.config.label, &job, started, done, result);
            if measured {
                state.measured_busy = state.measured_busy.saturating_sub(1);
            }
        }
        conn = back;
        if connect_failed {
            let pause = now_ns().saturating_add(duration_ns(CLOSED_LOOP_CONNECT_BACKOFF));
            tokio::time::sleep_until(tokio_instant(pause.min(thread.end))).await;
        }
    }
    drop(conn);
    thread.finish_worker(&mut thread.state.borrow_mut());
}

/// After the schedule: waits for requests in flight (each bounded by its
/// own timeout), then counts anything left as timed out or never sent.
pub(super) async fn drain(thread: &DriverThread) {
    let hard_deadline = thread.cutoff().saturating_add(duration_ns(DRAIN_GRACE));
    let all_idle = async {
        loop {
            if thread.state.borrow().busy == 0 {
                return;
            }
            thread.all_idle.notified().await;
        }
    };
    let _ = tokio::time::timeout_at(tokio_instant(hard_deadline), all_idle).await;

    let mut state = thread.state.borrow_mut();
    let stragglers = state.measured_busy as u64;
    state.stats.sent += stragglers;
    state.stats.errors.timeout += stragglers;
    state.measured_busy = 0;
    let unsent = state.backlog.iter().filter(|job| job.measured).count() as u64;
    state.stats.dropped += unsent;
    state.backlog.clear();
}
