//! Free ports, run directories and managed processes: output, groups, escalation, death with
//! the test process.

use super::*;

#[test]
fn free_ports_are_distinct_and_bindable() -> Result<()> {
    let ports: Vec<u16> = (0..300)
        .map(|_| ports::free_port())
        .collect::<Result<_, _>>()?;
    let unique: HashSet<u16> = ports.iter().copied().collect();
    assert_eq!(unique.len(), ports.len(), "a port was handed out twice");
    for port in ports.iter().take(20) {
        TcpListener::bind((Ipv4Addr::LOCALHOST, *port))
            .with_context(|| format!("binding handed-out port {port}"))?;
    }
    Ok(())
}

// ---------------------------------------------------------------- paths

#[test]
fn run_dirs_are_fresh_and_binaries_are_found() -> Result<()> {
    let a = paths::run_dir("harness");
    let b = paths::run_dir("harness");
    assert_ne!(a, b);
    assert!(a.is_dir() && b.is_dir());
    assert!(
        a.starts_with(paths::repo_root().join("target").join("tokengate-runs")) || {
            // CARGO_TARGET_DIR moves the runs directory along with the target.
            std::env::var_os("CARGO_TARGET_DIR").is_some()
        }
    );
    let backend = paths::sibling_binary("backend")?;
    assert!(backend.is_file());
    assert!(paths::sibling_binary("no-such-binary-here").is_err());
    Ok(())
}

// ---------------------------------------------------------------- process

#[test]
fn managed_process_captures_output_env_and_cwd() -> Result<()> {
    let dir = paths::run_dir("process-output");
    let process = ManagedProcess::spawn(
        ProcessSpec::new("shell", "/bin/sh", &dir)
            .arg("-c")
            .arg("echo \"to stdout $GREETING\"; echo 'to stderr' >&2; pwd; exit 3")
            .env("GREETING", "hello")
            .cwd("/tmp"),
    )?;
    let status = process
        .wait_exit(Duration::from_secs(10))
        .context("shell did not exit")?;
    assert_eq!(status.code(), Some(3));
    assert!(!process.is_running());
    let log = process.log_contents();
    assert!(log.contains("to stdout hello"), "log: {log}");
    assert!(log.contains("to stderr"), "log: {log}");
    assert!(log.contains("/tmp"), "log: {log}");
    assert_eq!(process.log_path(), dir.join("shell.log"));
    assert_eq!(process.log_tail(1), "/tmp");
    // Stopping an exited process just reports its status.
    assert_eq!(process.stop(Duration::from_millis(100))?.code(), Some(3));
    Ok(())
}

#[test]
fn spawn_failure_names_the_program() {
    let dir = paths::run_dir("process-missing");
    let err = ManagedProcess::spawn(ProcessSpec::new("ghost", "/no/such/program", &dir))
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
    assert!(err.contains("/no/such/program"), "error: {err}");
}

#[test]
fn stop_kills_the_whole_process_group() -> Result<()> {
    let dir = paths::run_dir("process-group");
    let process = ManagedProcess::spawn(
        ProcessSpec::new("sleepers", "/bin/sh", &dir)
            .arg("-c")
            .arg("sleep 100 & sleep 100; echo unreachable"),
    )?;
    let pgid = process.pid();
    wait_until(Duration::from_secs(10), || {
        Ok(live_group_members(pgid)?.len() >= 3)
    })
    .context("shell and both sleeps did not appear")?;
    assert!(process.is_running());

    let started = Instant::now();
    process.stop(Duration::from_secs(5))?;
    assert!(!process.is_running());
    // sh dies on SIGTERM at once; no need to wait out the grace period.
    assert!(started.elapsed() < Duration::from_secs(4));
    let survivors = group_members_after_kill(pgid)?;
    assert!(
        survivors.is_empty(),
        "survivors in group {pgid}: {survivors:?}"
    );
    Ok(())
}

#[test]
fn stop_escalates_to_sigkill_after_grace() -> Result<()> {
    let dir = paths::run_dir("process-stubborn");
    let process = ManagedProcess::spawn(
        ProcessSpec::new("stubborn", "/bin/sh", &dir)
            .arg("-c")
            .arg("trap '' TERM; echo armed; while true; do sleep 0.05; done"),
    )?;
    process.wait_for_log("armed", Duration::from_secs(10))?;
    let started = Instant::now();
    let status = process.stop(Duration::from_millis(300))?;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "status: {status:?}"
    );
    assert!(group_members_after_kill(process.pid())?.is_empty());
    Ok(())
}

#[test]
fn shared_child_outlives_the_thread_that_spawned_it() -> Result<()> {
    let dir = paths::run_dir("process-shared");
    let spawner_dir = dir.clone();
    let process = std::thread::spawn(move || {
        ManagedProcess::spawn(ProcessSpec::new("shared", "/bin/sleep", spawner_dir).arg("100"))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("spawning thread panicked"))??;
    // Had the short-lived thread forked it, PR_SET_PDEATHSIG would have
    // killed it when that thread ended.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        process.is_running(),
        "shared child died with its spawning thread"
    );
    assert!(is_alive(process.pid())?);
    process.stop(Duration::from_secs(2))?;
    assert!(!is_alive(process.pid())?);
    Ok(())
}

/// Runs `pdeathsig_helper` in a child copy of this test binary; that copy
/// spawns a long sleep and exits abruptly. The kernel must then kill the
/// sleep.
#[test]
fn children_die_when_the_test_process_dies() -> Result<()> {
    let dir = paths::run_dir("process-pdeathsig");
    let output = Command::new(std::env::current_exe()?)
        .args([
            "--exact",
            "processes::pdeathsig_helper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(PDEATHSIG_HELPER_ENV, &dir)
        .output()
        .context("running the helper process")?;
    let pid_file = dir.join("sleep.pid");
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .with_context(|| {
            format!(
                "helper wrote no pid file; its output:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        })?
        .trim()
        .parse()?;
    wait_until(Duration::from_secs(10), || Ok(!is_alive(pid)?))
        .with_context(|| format!("sleep {pid} survived its parent process"))
}

/// Does nothing in a normal run; see `children_die_when_the_test_process_dies`.
#[test]
fn pdeathsig_helper() -> Result<()> {
    let Some(dir) = std::env::var_os(PDEATHSIG_HELPER_ENV) else {
        return Ok(());
    };
    let dir = PathBuf::from(dir);
    let process = ManagedProcess::spawn(ProcessSpec::new("sleep", "/bin/sleep", &dir).arg("100"))?;
    std::fs::write(dir.join("sleep.pid"), process.pid().to_string())?;
    // Exit without running destructors, so only the kernel's death signal
    // can stop the sleep.
    std::process::exit(0)
}

fn wait_until(timeout: Duration, mut done: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !done()? {
        if Instant::now() >= deadline {
            bail!("condition not met within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// `(pid, state, pgrp)` from /proc/PID/stat, None if the process is gone.
fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses; fields resume
    // after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

/// Alive means present and not a zombie (an orphaned zombie may linger if
/// nothing reaps it).
fn is_alive(pid: u32) -> Result<bool> {
    Ok(matches!(proc_stat(pid), Some((state, _)) if state != 'Z' && state != 'X'))
}

/// The group's live members once a kill has had time to land: SIGKILL is delivered
/// asynchronously, so a member can still be running for a moment after `stop` returned.
fn group_members_after_kill(pgid: u32) -> Result<Vec<u32>> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let members = live_group_members(pgid)?;
        if members.is_empty() || Instant::now() >= deadline {
            return Ok(members);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn live_group_members(pgid: u32) -> Result<Vec<u32>> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let Ok(pid) = entry?.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Some((state, pgrp)) = proc_stat(pid)
            && pgrp == pgid
            && state != 'Z'
            && state != 'X'
        {
            members.push(pid);
        }
    }
    ensure!(members.len() < 1000, "implausible group size");
    Ok(members)
}
