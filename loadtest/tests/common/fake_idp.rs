//! The fault-injecting IdP (`src/bin/fake_idp.rs`) as a child process the test can configure,
//! freeze, kill and bring back on the same port.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use loadtest::process::{ManagedProcess, ProcessSpec};

pub struct FakeIdp {
    dir: PathBuf,
    port: u16,
    process: Option<ManagedProcess>,
    starts: u32,
}

impl FakeIdp {
    pub fn start(dir: &Path) -> Result<FakeIdp> {
        let port = loadtest::ports::free_port()?;
        let mut idp = FakeIdp {
            dir: dir.to_owned(),
            port,
            process: None,
            starts: 0,
        };
        idp.spawn()?;
        Ok(idp)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn spawn(&mut self) -> Result<()> {
        let binary = loadtest::paths::sibling_binary("fake_idp")?;
        let listen = format!("127.0.0.1:{}", self.port);
        self.starts += 1;
        let process = ManagedProcess::spawn(
            ProcessSpec::new(&format!("fake-idp-{}", self.starts), binary, &self.dir)
                .arg("--listen")
                .arg(&listen),
        )?;
        process.wait_for_log(&format!("listening on {listen}"), Duration::from_secs(10))?;
        self.process = Some(process);
        Ok(())
    }

    fn pid(&self) -> Result<i32> {
        let process = self
            .process
            .as_ref()
            .context("the fake IdP is not running")?;
        Ok(i32::try_from(process.pid())?)
    }

    fn signal(&self, signal: i32) -> Result<()> {
        // SAFETY: kill(2) on the pid of a child this fixture started and has not reaped.
        if unsafe { libc::kill(self.pid()?, signal) } != 0 {
            bail!("kill({signal}): {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Freezes the process: the kernel still accepts connections and buffers requests, nothing
    /// answers, exactly as for a stopped (or GC-paused, or swapped-out) Keycloak.
    pub fn hang(&self) -> Result<()> {
        self.signal(libc::SIGSTOP)
    }

    pub fn resume(&self) -> Result<()> {
        self.signal(libc::SIGCONT)
    }

    /// SIGKILL: open connections are reset, new ones refused, the state is lost.
    pub fn kill(&mut self) -> Result<()> {
        self.signal(libc::SIGKILL)?;
        if let Some(process) = self.process.take() {
            process.wait_exit(Duration::from_secs(5));
        }
        Ok(())
    }

    /// A fresh process on the same port; its documents must be set again.
    pub fn restart(&mut self) -> Result<()> {
        self.spawn()
    }

    pub fn set_document(&self, path: &str, body: &str) -> Result<()> {
        self.control(&format!("/_control/set{path}"), body)
            .map(|_| ())
    }

    pub fn set_inactive(&self, token: &str) -> Result<()> {
        self.control("/_control/inactive", token).map(|_| ())
    }

    pub fn set_mode(&self, mode: &str) -> Result<()> {
        self.control("/_control/mode", mode).map(|_| ())
    }

    pub fn count(&self, path: &str) -> Result<u64> {
        let text = self.control(&format!("/_control/count{path}"), "")?;
        text.trim()
            .parse()
            .with_context(|| format!("count answer {text:?}"))
    }

    /// One request on its own connection; the answer's body.
    fn control(&self, path: &str, body: &str) -> Result<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))
            .with_context(|| format!("fake IdP control {path}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nhost: idp\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )?;
        stream.flush()?;
        stream.shutdown(std::net::Shutdown::Write)?;
        let mut answer = String::new();
        // The server keeps the connection until we close it: read up to the promised length.
        let mut buffer = [0u8; 4096];
        loop {
            let n = stream.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            answer.push_str(&String::from_utf8_lossy(&buffer[..n]));
            if let Some((head, body)) = answer.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|v| v.trim().parse::<usize>().ok());
                if length.is_some_and(|length| body.len() >= length) {
                    break;
                }
            }
        }
        let (head, body) = answer
            .split_once("\r\n\r\n")
            .with_context(|| format!("fake IdP control {path}: {answer:?}"))?;
        if !head.starts_with("HTTP/1.1 200") {
            bail!("fake IdP control {path}: {head}");
        }
        Ok(body.to_owned())
    }
}
