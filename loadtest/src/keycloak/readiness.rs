//! Waiting for a starting Keycloak, for as long as it is visibly working.
//!
//! A fixed deadline is wrong both ways on a shared machine: a first start on two busy cores
//! took over three minutes (the JVM and Quarkus 76 s, the schema ~80 s, the master realm
//! ~30 s, the realm import ~25 s), while a hung one should not hold a test run for minutes.
//! So the wait goes on while Keycloak makes progress and gives up when it stops:
//!
//! - *progress* is a new line in its log, or CPU time used by its process group (at least
//!   [`CPU_BUSY`] in a [`CPU_WINDOW`]): schema creation runs for minutes under load without
//!   logging a line, and the JVM's start is silent too;
//! - it gives up after [`STALL_LIMIT`] without progress, or after [`OVERALL_LIMIT`] in all;
//! - it says what Keycloak is doing (read from the log) when that changes and every
//!   [`REPORT_EVERY`], on stderr.
//!
//! [`Watch`] is the decision, fed with what was observed and the clock; [`GroupCpu`] reads the
//! CPU time.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Give up when neither the log nor the CPU shows progress for this long.
pub const STALL_LIMIT: Duration = Duration::from_secs(120);
/// Give up after this long in all, progress or not.
pub const OVERALL_LIMIT: Duration = Duration::from_secs(900);
/// CPU time is judged over windows of this length...
pub const CPU_WINDOW: Duration = Duration::from_secs(10);
/// ...and counts as progress if the group used at least this much in one: 2.5 % of a core.
/// A ready, idle Keycloak used 0.3 % (19 ticks in 60 s); a starting one on two cores loaded
/// to 10 runnable processes got about 20 %.
pub const CPU_BUSY: Duration = Duration::from_millis(250);
/// How often to say that Keycloak is still at it.
const REPORT_EVERY: Duration = Duration::from_secs(30);

/// What Keycloak is doing, from the last log line that says so. Keycloak 26 starts serving
/// HTTP ("started in") *before* it creates the schema and imports realms; readiness waits
/// for the latter.
const PHASES: &[(&str, &str)] = &[
    ("ISPN000974", "starting Quarkus"),
    ("HHH100501", "starting Quarkus (JPA)"),
    (") started in ", "Quarkus started; bootstrapping"),
    (
        "Initializing database schema",
        "creating the database schema",
    ),
    ("Updating database", "migrating the database schema"),
    ("ISPN000556", "starting the caches"),
    ("Initializing master realm", "creating the master realm"),
    ("Importing from directory", "importing realms"),
    ("Full importing from file", "importing realms"),
    (
        "Created temporary admin user",
        "creating the bootstrap admin",
    ),
    (
        "Bootstrap completed",
        "bootstrap completed; waiting for /health/ready",
    ),
];
/// Before the first line that names a phase.
const FIRST_PHASE: &str = "starting the JVM";

/// The phase the log line `line` announces, if any.
pub fn phase_of(line: &str) -> Option<&'static str> {
    PHASES
        .iter()
        .find(|(needle, _)| line.contains(needle))
        .map(|(_, phase)| *phase)
}

/// Whether to keep waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Waiting,
    /// No progress for [`STALL_LIMIT`].
    Stalled {
        phase: &'static str,
        idle: Duration,
    },
    /// [`OVERALL_LIMIT`] passed, though it was still working.
    TooLong {
        phase: &'static str,
    },
}

/// The state of one wait. Feed it every poll with [`observe`](Self::observe).
#[derive(Debug)]
pub struct Watch {
    started: Instant,
    last_progress: Instant,
    last_report: Instant,
    phase: &'static str,
    reported_phase: Option<&'static str>,
    log_len: u64,
    cpu_window: Option<(Instant, Duration)>,
}

/// What one poll saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct Observed<'a> {
    /// The log's length in bytes.
    pub log_len: u64,
    /// Complete lines added to the log since the previous poll.
    pub new_lines: &'a [&'a str],
    /// CPU time of the process group so far, if readable.
    pub cpu: Option<Duration>,
}

impl Watch {
    pub fn new(now: Instant) -> Self {
        Self {
            started: now,
            last_progress: now,
            last_report: now,
            phase: FIRST_PHASE,
            reported_phase: None,
            log_len: 0,
            cpu_window: None,
        }
    }

    pub fn phase(&self) -> &'static str {
        self.phase
    }

    /// Takes in one poll at `now`; returns the verdict and, when something is worth saying,
    /// a line to print.
    pub fn observe(&mut self, now: Instant, seen: Observed<'_>) -> (Verdict, Option<String>) {
        if seen.log_len != self.log_len {
            self.log_len = seen.log_len;
            self.last_progress = now;
        }
        for line in seen.new_lines {
            if let Some(phase) = phase_of(line) {
                self.phase = phase;
            }
        }
        if let Some(cpu) = seen.cpu {
            match self.cpu_window {
                None => self.cpu_window = Some((now, cpu)),
                Some((since, at)) if now.duration_since(since) >= CPU_WINDOW => {
                    if cpu.saturating_sub(at) >= CPU_BUSY {
                        self.last_progress = now;
                    }
                    self.cpu_window = Some((now, cpu));
                }
                Some(_) => {}
            }
        }

        let elapsed = now.duration_since(self.started);
        let idle = now.duration_since(self.last_progress);
        let verdict = if elapsed >= OVERALL_LIMIT {
            Verdict::TooLong { phase: self.phase }
        } else if idle >= STALL_LIMIT {
            Verdict::Stalled {
                phase: self.phase,
                idle,
            }
        } else {
            Verdict::Waiting
        };

        let report = if self.reported_phase != Some(self.phase) {
            self.reported_phase = Some(self.phase);
            self.last_report = now;
            Some(format!("{} ({:.0?} so far)", self.phase, elapsed))
        } else if now.duration_since(self.last_report) >= REPORT_EVERY {
            self.last_report = now;
            Some(format!(
                "still {} ({:.0?} so far, last progress {:.0?} ago{})",
                self.phase,
                elapsed,
                idle,
                seen.cpu
                    .map(|c| format!(", {c:.0?} CPU"))
                    .unwrap_or_default()
            ))
        } else {
            None
        };
        (verdict, report)
    }
}

/// Reads a growing log from where the last call stopped, a complete line at a time.
#[derive(Debug)]
pub struct LogFollower {
    path: PathBuf,
    offset: u64,
    partial: String,
}

impl LogFollower {
    /// Follows `path` from its current end (earlier runs append to the same log).
    pub fn from_end(path: &Path) -> Self {
        let offset = fs::metadata(path).map_or(0, |m| m.len());
        Self {
            path: path.to_path_buf(),
            offset,
            partial: String::new(),
        }
    }

    /// The log's length and the complete lines added since the last call.
    pub fn poll(&mut self) -> (u64, Vec<String>) {
        let mut added = Vec::new();
        let Ok(mut file) = fs::File::open(&self.path) else {
            return (self.offset, Vec::new());
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return (self.offset, Vec::new());
        }
        let mut bytes = Vec::new();
        if let Ok(n) = file.read_to_end(&mut bytes) {
            self.offset += n as u64;
        }
        self.partial.push_str(&String::from_utf8_lossy(&bytes));
        while let Some(end) = self.partial.find('\n') {
            added.push(self.partial[..end].to_string());
            self.partial.drain(..=end);
        }
        (self.offset, added)
    }
}

/// CPU time (user + system) of every process in a process group, read from `/proc`.
#[derive(Debug)]
pub struct GroupCpu {
    pgid: u32,
    ticks_per_second: Option<u64>,
}

impl GroupCpu {
    pub fn new(pgid: u32) -> Self {
        Self {
            pgid,
            ticks_per_second: crate::cpu::clock_ticks_per_second().ok(),
        }
    }

    /// `None` where `/proc` cannot be read.
    pub fn total(&self) -> Option<Duration> {
        let ticks_per_second = self.ticks_per_second?;
        let mut ticks = 0u64;
        for entry in fs::read_dir("/proc").ok()?.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            // Processes come and go while we look: skip what cannot be read.
            if let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat"))
                && let Some((pgrp, used)) = parse_group_and_ticks(&stat)
                && pgrp == self.pgid
            {
                ticks += used;
            }
        }
        Some(Duration::from_secs_f64(
            ticks as f64 / ticks_per_second as f64,
        ))
    }
}

/// `(pgrp, utime + stime)` from a `/proc/<pid>/stat` line. The command name (field 2) may
/// hold spaces and parentheses, so fields are counted from the last `)`.
fn parse_group_and_ticks(stat: &str) -> Option<(u32, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(3) ppid(4) pgrp(5) ... utime(14) stime(15).
    let pgrp = fields.get(2)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((pgrp, utime + stime))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn phases_come_from_keycloak_log_lines() {
        let cases = [
            (
                "INFO  [org.infinispan.CONTAINER] (main) ISPN000974: Virtual threads support: disabled",
                Some("starting Quarkus"),
            ),
            (
                "INFO  [io.quarkus] (main) Keycloak 26.7.3 on JVM (powered by Quarkus 3.33.3.1) started in 112.963s. Listening on: http://127.0.0.1:18080.",
                Some("Quarkus started; bootstrapping"),
            ),
            (
                "INFO  [org.keycloak.quarkus.runtime.storage.database.liquibase.QuarkusJpaUpdaterProvider] (executor-thread-1) Initializing database schema. Using changelog META-INF/jpa-changelog-master.xml",
                Some("creating the database schema"),
            ),
            (
                "INFO  [org.keycloak.services] (executor-thread-1) KC-SERVICES0050: Initializing master realm",
                Some("creating the master realm"),
            ),
            (
                "INFO  [org.keycloak.exportimport.singlefile.SingleFileImportProvider] (executor-thread-1) Full importing from file /x/data/import/realm-tokengate.json",
                Some("importing realms"),
            ),
            (
                "INFO  [org.keycloak.services.resources.KeycloakApplication] (executor-thread-1) Bootstrap completed in 258.617000 seconds",
                Some("bootstrap completed; waiting for /health/ready"),
            ),
            (
                "INFO  [org.keycloak.services] (executor-thread-1) KC-SERVICES0032: Import finished successfully",
                None,
            ),
            ("WARNING: With HTTPS not enabled", None),
        ];
        for (line, phase) in cases {
            assert_eq!(phase_of(line), phase, "{line}");
        }
    }

    /// Drives a watch through polls one second apart: (log grew, CPU so far in ms).
    fn run(polls: &[(bool, Option<u64>)]) -> Vec<Verdict> {
        let t0 = Instant::now();
        let mut watch = Watch::new(t0);
        let mut len = 0;
        polls
            .iter()
            .enumerate()
            .map(|(i, (grew, cpu))| {
                if *grew {
                    len += 10;
                }
                let seen = Observed {
                    log_len: len,
                    new_lines: &[],
                    cpu: cpu.map(Duration::from_millis),
                };
                watch.observe(t0 + S * (i as u32 + 1), seen).0
            })
            .collect()
    }

    #[test]
    fn a_silent_idle_process_stalls_after_the_limit() {
        let limit = STALL_LIMIT.as_secs() as usize;
        let verdicts = run(&vec![(false, Some(0)); limit + 1]);
        assert!(verdicts[..limit - 1].iter().all(|v| *v == Verdict::Waiting));
        assert!(matches!(verdicts[limit - 1], Verdict::Stalled { .. }));
    }

    #[test]
    fn log_lines_or_busy_cpu_keep_the_wait_going() {
        let n = STALL_LIMIT.as_secs() as usize * 3;
        // A line every minute.
        let lines: Vec<_> = (0..n).map(|i| (i % 60 == 0, None)).collect();
        assert!(run(&lines).iter().all(|v| *v == Verdict::Waiting));
        // Silent, but half a core busy (schema creation under load).
        let busy: Vec<_> = (0..n).map(|i| (false, Some(i as u64 * 500))).collect();
        assert!(run(&busy).iter().all(|v| *v == Verdict::Waiting));
        // Silent and barely running (an idle JVM's timers): not progress.
        let idle: Vec<_> = (0..n).map(|i| (false, Some(i as u64 * 5))).collect();
        assert!(
            run(&idle)
                .iter()
                .any(|v| matches!(v, Verdict::Stalled { .. }))
        );
    }

    #[test]
    fn the_overall_limit_holds_even_while_working() {
        let n = OVERALL_LIMIT.as_secs() as usize;
        let verdicts = run(&vec![(true, None); n]);
        assert!(verdicts[..n - 1].iter().all(|v| *v == Verdict::Waiting));
        assert!(matches!(verdicts[n - 1], Verdict::TooLong { .. }));
    }

    #[test]
    fn reports_phase_changes_and_then_every_half_minute() {
        let t0 = Instant::now();
        let mut watch = Watch::new(t0);
        let quiet = Observed::default();
        let (_, first) = watch.observe(t0, quiet);
        assert!(first.is_some_and(|r| r.starts_with(FIRST_PHASE)));
        assert_eq!(watch.observe(t0 + S, quiet).1, None);
        let lines = ["x Initializing database schema. Using changelog"];
        let seen = Observed {
            log_len: 40,
            new_lines: &lines,
            cpu: None,
        };
        let (_, changed) = watch.observe(t0 + 2 * S, seen);
        assert!(changed.is_some_and(|r| r.starts_with("creating the database schema")));
        assert_eq!(watch.phase(), "creating the database schema");
        let seen = Observed {
            log_len: 40,
            ..quiet
        };
        assert_eq!(watch.observe(t0 + 3 * S, seen).1, None);
        let (_, still) = watch.observe(t0 + 2 * S + REPORT_EVERY, seen);
        assert!(still.is_some_and(|r| r.starts_with("still creating the database schema")));
    }

    #[test]
    fn follows_a_log_line_by_line() -> anyhow::Result<()> {
        let path = crate::paths::run_dir("readiness-unit").join("k.log");
        fs::write(&path, "old line\n")?;
        let mut follower = LogFollower::from_end(&path);
        assert_eq!(follower.poll(), (9, vec![]));
        let mut file = fs::OpenOptions::new().append(true).open(&path)?;
        std::io::Write::write_all(&mut file, b"one\ntw")?;
        assert_eq!(follower.poll(), (15, vec!["one".to_string()]));
        std::io::Write::write_all(&mut file, b"o\n")?;
        assert_eq!(follower.poll(), (17, vec!["two".to_string()]));
        Ok(())
    }

    #[test]
    fn parses_group_and_cpu_from_proc_stat() {
        let stat = "4242 (my (odd) name) S 1 4200 4200 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(parse_group_and_ticks(stat), Some((4200, 300)));
        assert_eq!(parse_group_and_ticks("garbage"), None);
        // Our own group uses some CPU.
        let own = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        assert!(parse_group_and_ticks(&own).is_some(), "{own}");
    }
}
