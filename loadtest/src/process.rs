//! Child processes (Envoy, the backend, an IdP) that cannot outlive us.

use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};

/// How long `Drop` lets a process shut down on SIGTERM before killing it.
const DROP_GRACE: Duration = Duration::from_secs(2);
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// What to run and where its output goes.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    /// Names the log file, `<log_dir>/<name>.log`.
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Added to (not replacing) the inherited environment.
    pub env: Vec<(OsString, OsString)>,
    pub cwd: Option<PathBuf>,
    pub log_dir: PathBuf,
}

impl ProcessSpec {
    pub fn new(name: &str, program: impl Into<PathBuf>, log_dir: impl Into<PathBuf>) -> Self {
        Self {
            name: name.to_string(),
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            log_dir: log_dir.into(),
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_os_string(), value.as_ref().to_os_string()));
        self
    }

    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    pub fn log_path(&self) -> PathBuf {
        self.log_dir.join(format!("{}.log", self.name))
    }
}

/// A running child in its own process group, with stdout and stderr appended
/// to a log file. It is killed when this value is dropped, when `stop` is
/// called, or (by the kernel) when this process dies.
#[derive(Debug)]
pub struct ManagedProcess {
    name: String,
    pid: u32,
    log_path: PathBuf,
    state: Mutex<ChildState>,
}

#[derive(Debug)]
struct ChildState {
    child: Child,
    exit: Option<ExitStatus>,
}

impl ChildState {
    /// Records and returns the exit status once the leader has exited.
    ///
    /// On exit, group members left behind are killed *before* the leader is
    /// reaped: while the leader is an unreaped zombie its pid (the group id)
    /// cannot be reused, so the group signal cannot reach an unrelated
    /// process. After reaping we never signal the group again.
    fn poll(&mut self, pid: u32) -> Option<ExitStatus> {
        if self.exit.is_some() {
            return self.exit;
        }
        match leader_exited(pid) {
            Some(false) => None,
            Some(true) => {
                signal_group(pid, libc::SIGKILL);
                self.exit = self.child.wait().ok();
                self.exit
            }
            // waitid failed (it should not); fall back to std's reaping.
            None => {
                self.exit = self.child.try_wait().ok().flatten();
                self.exit
            }
        }
    }
}

impl ManagedProcess {
    pub fn spawn(spec: ProcessSpec) -> Result<Self> {
        crate::paths::ensure_dir(&spec.log_dir)?;
        let log_path = spec.log_path();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening log file {}", log_path.display()))?;
        let log_err = log
            .try_clone()
            .with_context(|| format!("duplicating log file handle {}", log_path.display()))?;

        let mut cmd = Command::new(&spec.program);
        cmd.args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            // Own group, so `stop` reaches grandchildren (shell pipelines,
            // wrapper scripts) and a Ctrl-C meant for us is not duplicated.
            .process_group(0);
        if let Some(dir) = &spec.cwd {
            cmd.current_dir(dir);
        }
        let parent_pid = std::process::id();
        // SAFETY: the closure runs in the forked child before exec and only
        // makes async-signal-safe system calls (prctl, getppid).
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // If we died between fork and prctl, the death signal was
                // never armed; the child has been re-parented already.
                if libc::getppid() as u32 != parent_pid {
                    return Err(io::Error::other("parent exited during spawn"));
                }
                Ok(())
            });
        }

        let child = spawn_on_spawner_thread(cmd).with_context(|| {
            format!(
                "spawning {} ({} {})",
                spec.name,
                spec.program.display(),
                display_args(&spec.args)
            )
        })?;
        Ok(Self {
            name: spec.name,
            pid: child.id(),
            log_path,
            state: Mutex::new(ChildState { child, exit: None }),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Everything the process has written so far (lossily decoded).
    pub fn log_contents(&self) -> String {
        read_lossy(&self.log_path, None)
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        // Reading only the end keeps this cheap for long load-test logs.
        let text = read_lossy(&self.log_path, Some(256 * 1024));
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The exit status if the process has exited, without waiting.
    pub fn try_exit_status(&self) -> Option<ExitStatus> {
        self.state().poll(self.pid)
    }

    pub fn is_running(&self) -> bool {
        self.try_exit_status().is_none()
    }

    /// Waits up to `timeout` for the process to exit on its own.
    pub fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Waits until the log contains `needle`. Fails if the process exits
    /// first or the timeout passes; the error carries the log tail.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log_contents().contains(needle) {
                return Ok(());
            }
            if let Some(status) = self.try_exit_status() {
                // It may have printed the line just before exiting.
                if self.log_contents().contains(needle) {
                    return Ok(());
                }
                return Err(anyhow!(
                    "{} exited ({}) before logging {needle:?}; log tail:\n{}",
                    self.name,
                    describe_status(status),
                    self.log_tail(40)
                ));
            }
            if Instant::now() >= deadline {
                return Err(anyhow!(
                    "{} did not log {needle:?} within {timeout:?}; log tail:\n{}",
                    self.name,
                    self.log_tail(40)
                ));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// SIGTERM to the whole process group, up to `grace` for the process to
    /// exit, then SIGKILL to the group. Always reaps the process and kills any
    /// group members left behind. Safe to call more than once.
    pub fn stop(&self, grace: Duration) -> Result<ExitStatus> {
        let mut state = self.state();
        if let Some(status) = state.poll(self.pid) {
            return Ok(status);
        }
        // The leader is not reaped yet, so its pid still names our group.
        signal_group(self.pid, libc::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = state.poll(self.pid) {
                return Ok(status);
            }
            std::thread::sleep(POLL_INTERVAL);
        }
        signal_group(self.pid, libc::SIGKILL);
        let status = state
            .child
            .wait()
            .with_context(|| format!("reaping {} (pid {})", self.name, self.pid))?;
        state.exit = Some(status);
        Ok(status)
    }

    fn state(&self) -> MutexGuard<'_, ChildState> {
        // A panic while holding the lock cannot leave the state inconsistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        let _ = self.stop(DROP_GRACE);
    }
}

/// Human-readable exit status: "exit code 1" or "killed by signal 9".
pub fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        (None, None) => status.to_string(),
    }
}

fn signal_group(pgid: u32, signal: libc::c_int) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    // ESRCH (no members left) is an expected outcome.
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// Whether the child `pid` has exited, without reaping it; None if waitid
/// fails.
fn leader_exited(pid: u32) -> Option<bool> {
    let id = libc::id_t::try_from(pid).ok()?;
    // SAFETY: siginfo_t is plain data, valid when zeroed; waitid only writes
    // into it. WNOWAIT leaves the child waitable for std's Child::wait.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let rc = libc::waitid(
            libc::P_PID,
            id,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        if rc != 0 {
            return None;
        }
        // With WNOHANG, si_pid stays 0 when the child has not exited.
        Some(info.si_pid() != 0)
    }
}

fn read_lossy(path: &Path, max_tail_bytes: Option<u64>) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    if let Some(max) = max_tail_bytes
        && let Ok(meta) = file.metadata()
        && meta.len() > max
    {
        let _ = file.seek(SeekFrom::Start(meta.len() - max));
    }
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

fn display_args(args: &[OsString]) -> String {
    args.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

struct SpawnRequest {
    command: Command,
    reply: mpsc::Sender<io::Result<Child>>,
}

/// Spawns `command` on one long-lived thread.
///
/// PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not
/// the process. Test harness threads end after each test, yet a child shared
/// by many tests must live on; so every spawn happens on a thread that lives
/// as long as the process.
fn spawn_on_spawner_thread(command: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<io::Result<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("tokengate-spawner".to_string())
            .spawn(move || {
                // The static keeps a sender alive, so this loop (and thread)
                // runs until the process exits.
                for mut request in rx {
                    let _ = request.reply.send(request.command.spawn());
                }
            })?;
        Ok(tx)
    });
    let sender = match spawner {
        Ok(sender) => sender,
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("starting the spawner thread: {e}"),
            ));
        }
    };
    let (reply_tx, reply_rx) = mpsc::channel();
    sender
        .send(SpawnRequest {
            command,
            reply: reply_tx,
        })
        .map_err(|_| io::Error::other("spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("spawner thread dropped the request"))?
}
