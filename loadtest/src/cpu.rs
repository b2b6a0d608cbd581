//! CPU time used by processes over a window, for costing requests.
//!
//! Another process's time comes from `/proc/<pid>/stat` (`utime` + `stime`,
//! summed over all its threads, in clock ticks); this process's own time from
//! `getrusage`, which has microsecond resolution; the whole machine's from
//! `/proc/stat`, which also counts what no process is charged for (interrupt
//! and softirq work such as loopback networking) and other processes.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

/// User and system CPU time consumed by a process, all threads together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTime {
    pub user: Duration,
    pub system: Duration,
}

impl CpuTime {
    pub fn total(&self) -> Duration {
        self.user + self.system
    }

    /// The time used since `earlier` (zero where the counter did not grow).
    pub fn since(&self, earlier: &CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// `sysconf(_SC_CLK_TCK)`: the unit of the times in `/proc/<pid>/stat`.
pub fn clock_ticks_per_second() -> Result<u64> {
    // SAFETY: sysconf has no memory-safety preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks)
        .ok()
        .filter(|&t| t > 0)
        .ok_or_else(|| anyhow!("sysconf(_SC_CLK_TCK) returned {ticks}"))
}

/// CPU time of the whole machine, all CPUs together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MachineCpu {
    /// Spent running anything: user, nice, system, irq and softirq time.
    pub busy: Duration,
    /// Busy plus idle, iowait and steal time.
    pub total: Duration,
}

impl MachineCpu {
    /// The time elapsed since `earlier`.
    pub fn since(&self, earlier: &MachineCpu) -> MachineCpu {
        MachineCpu {
            busy: self.busy.saturating_sub(earlier.busy),
            total: self.total.saturating_sub(earlier.total),
        }
    }
}

/// CPU time of the whole machine so far, from `/proc/stat`.
pub fn machine_cpu() -> Result<MachineCpu> {
    let text = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let (busy, total) = parse_machine_ticks(&text).context("parsing /proc/stat")?;
    let hz = clock_ticks_per_second()?;
    Ok(MachineCpu {
        busy: ticks_to_duration(busy, hz),
        total: ticks_to_duration(total, hz),
    })
}

/// Busy and total ticks from the aggregate `cpu` line of `/proc/stat`.
pub fn parse_machine_ticks(stat: &str) -> Result<(u64, u64)> {
    let line = stat
        .lines()
        .find(|l| l.split_ascii_whitespace().next() == Some("cpu"))
        .ok_or_else(|| anyhow!("no aggregate \"cpu\" line"))?;
    // user nice system idle iowait irq softirq steal [guest guest_nice]; guest
    // time is already inside user and nice.
    let fields: Vec<u64> = line
        .split_ascii_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse().with_context(|| format!("{f:?} is not a number")))
        .collect::<Result<_>>()?;
    let [user, nice, system, idle, iowait, irq, softirq, steal] = fields[..] else {
        bail!("the cpu line has {} of the 8 fields needed", fields.len());
    };
    let busy = user + nice + system + irq + softirq;
    Ok((busy, busy + idle + iowait + steal))
}

/// CPU time of process `pid` so far, from `/proc/<pid>/stat`.
pub fn process_cpu(pid: u32) -> Result<CpuTime> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let (utime, stime) = parse_stat_times(&text).with_context(|| format!("parsing {path}"))?;
    let hz = clock_ticks_per_second()?;
    Ok(CpuTime {
        user: ticks_to_duration(utime, hz),
        system: ticks_to_duration(stime, hz),
    })
}

/// CPU time of this process so far (all threads; children not included).
pub fn own_cpu() -> Result<CpuTime> {
    // SAFETY: rusage is plain data, valid when zeroed; getrusage only writes
    // into it.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return Err(std::io::Error::last_os_error()).context("getrusage(RUSAGE_SELF)");
        }
        usage
    };
    Ok(CpuTime {
        user: timeval_to_duration(usage.ru_utime),
        system: timeval_to_duration(usage.ru_stime),
    })
}

/// `utime` and `stime` (fields 14 and 15, in clock ticks) of a
/// `/proc/<pid>/stat` line.
pub fn parse_stat_times(stat: &str) -> Result<(u64, u64)> {
    // Field 2 is the command name in parentheses, which may itself hold
    // spaces and parentheses: the fixed fields start after the last ')'.
    let close = stat
        .rfind(')')
        .ok_or_else(|| anyhow!("no ')' closing the command name"))?;
    // After it come fields 3 (state) onwards, so utime and stime are the 12th
    // and 13th.
    let mut fields = stat[close + 1..].split_ascii_whitespace().skip(11);
    let mut next = |name: &str| -> Result<u64> {
        let field = fields
            .next()
            .ok_or_else(|| anyhow!("too few fields, no {name}"))?;
        field
            .parse()
            .with_context(|| format!("{name} {field:?} is not a number"))
    };
    let utime = next("utime")?;
    let stime = next("stime")?;
    Ok((utime, stime))
}

fn ticks_to_duration(ticks: u64, hz: u64) -> Duration {
    let micros = u128::from(ticks) * 1_000_000 / u128::from(hz.max(1));
    Duration::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
}

fn timeval_to_duration(tv: libc::timeval) -> Duration {
    let secs = u64::try_from(tv.tv_sec).unwrap_or(0);
    let micros = u64::try_from(tv.tv_usec).unwrap_or(0);
    Duration::from_secs(secs) + Duration::from_micros(micros)
}

/// What a process, this process and the machine used over a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuWindow {
    /// Wall-clock length of the window.
    pub wall: Duration,
    /// CPU time of the sampled process.
    pub process: CpuTime,
    /// CPU time of this process.
    pub own: CpuTime,
    /// CPU time of the whole machine.
    pub machine: MachineCpu,
}

impl CpuWindow {
    /// The sampled process's CPU time as a share of one core (1.0 = 100 %).
    pub fn process_share(&self) -> f64 {
        share(self.process.total(), self.wall)
    }

    /// This process's CPU time as a share of one core.
    pub fn own_share(&self) -> f64 {
        share(self.own.total(), self.wall)
    }

    /// The machine's busy time in cores (2.0 = two cores busy throughout).
    pub fn machine_busy_share(&self) -> f64 {
        share(self.machine.busy, self.wall)
    }
}

fn share(cpu: Duration, wall: Duration) -> f64 {
    if wall.is_zero() {
        return 0.0;
    }
    cpu.as_secs_f64() / wall.as_secs_f64()
}

/// Measures the CPU time of one process, of this one and of the machine,
/// from `start` to `stop`.
#[derive(Debug, Clone)]
pub struct CpuSampler {
    pid: u32,
    started: Instant,
    process_at_start: CpuTime,
    own_at_start: CpuTime,
    machine_at_start: MachineCpu,
}

impl CpuSampler {
    /// Starts a window for process `pid`. Fails if the process cannot be read
    /// (gone, or not ours to see).
    pub fn start(pid: u32) -> Result<CpuSampler> {
        let process_at_start = process_cpu(pid)?;
        let own_at_start = own_cpu()?;
        let machine_at_start = machine_cpu()?;
        Ok(CpuSampler {
            pid,
            started: Instant::now(),
            process_at_start,
            own_at_start,
            machine_at_start,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The CPU time used since `start`. May be called more than once; each
    /// call measures from `start`.
    pub fn stop(&self) -> Result<CpuWindow> {
        let process = process_cpu(self.pid)?;
        let own = own_cpu()?;
        let machine = machine_cpu()?;
        let wall = self.started.elapsed();
        if process.total() < self.process_at_start.total() {
            bail!(
                "CPU time of pid {} went backwards: was the process replaced?",
                self.pid
            );
        }
        Ok(CpuWindow {
            wall,
            process: process.since(&self.process_at_start),
            own: own.since(&self.own_at_start),
            machine: machine.since(&self.machine_at_start),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_times_after_an_awkward_command_name() -> Result<()> {
        // Fields 1..=17 of a real line, with a command name holding ") (".
        let line = "4242 (my) (odd name) S 1 4242 4242 0 -1 4194560 1234 0 5 0 \
                    731 112 0 0 20 0 9 0 100 200000 300";
        assert_eq!(parse_stat_times(line)?, (731, 112));
        assert!(parse_stat_times("4242 (truncated) S 1 2 3").is_err());
        assert!(parse_stat_times("no parenthesis at all").is_err());
        Ok(())
    }

    #[test]
    fn parses_the_machine_line() -> Result<()> {
        let stat = "cpu  100 5 40 800 10 1 4 7 3 0\n\
                    cpu0 50 2 20 400 5 0 2 3 1 0\n\
                    intr 12345\n";
        // busy = 100 + 5 + 40 + 1 + 4; total adds idle, iowait, steal.
        assert_eq!(parse_machine_ticks(stat)?, (150, 967));
        assert!(parse_machine_ticks("cpu0 1 2 3 4 5 6 7 8\n").is_err());
        assert!(parse_machine_ticks("cpu 1 2 3\n").is_err());
        let machine = machine_cpu()?;
        assert!(machine.total >= machine.busy);
        Ok(())
    }

    #[test]
    fn converts_ticks_and_timevals() {
        assert_eq!(ticks_to_duration(250, 100), Duration::from_millis(2500));
        assert_eq!(ticks_to_duration(3, 1000), Duration::from_millis(3));
        let tv = libc::timeval {
            tv_sec: 2,
            tv_usec: 500_000,
        };
        assert_eq!(timeval_to_duration(tv), Duration::from_millis(2500));
    }

    #[test]
    fn sampler_sees_this_process_burn_cpu() -> Result<()> {
        assert!(clock_ticks_per_second()? > 0);
        let sampler = CpuSampler::start(std::process::id())?;
        // Spin until /proc shows at least a few ticks (10 ms each at the usual
        // 100 Hz), with a generous wall-clock limit for a loaded machine.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut x = 0u64;
        let window = loop {
            for i in 0..100_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            let window = sampler.stop()?;
            if window.process.total() >= Duration::from_millis(30) || Instant::now() > deadline {
                break window;
            }
        };
        assert!(window.process.total() >= Duration::from_millis(30));
        // getrusage and /proc count the same threads, at different
        // resolutions (and other tests may run alongside).
        assert!(window.own.total() >= Duration::from_millis(20));
        assert!(window.process_share() > 0.0);
        assert!(window.machine.busy > Duration::ZERO);
        assert!(window.wall > Duration::ZERO);
        Ok(())
    }

    #[test]
    fn reading_a_missing_process_fails() {
        // Above any pid_max the kernel allows.
        assert!(process_cpu(u32::MAX).is_err());
        assert!(CpuSampler::start(u32::MAX).is_err());
    }
}
