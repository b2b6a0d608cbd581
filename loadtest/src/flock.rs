//! Advisory file locks (`flock`) between the kit's processes: one test binary, the `loadtest`
//! it runs and a second test binary may fetch Keycloak, prepare its database or hand out ports
//! at the same time.
//!
//! The kernel drops a `flock` when the last descriptor of its open file closes, however the
//! process ends, so a killed holder never leaves a stale lock behind. Each lock opens its own
//! file description, so it also excludes other threads of this process.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::{Context, Result};

/// An exclusive `flock` on a file, held until dropped.
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

impl FileLock {
    /// Blocks until the lock on `path` (created if missing) is ours.
    pub fn exclusive(path: &Path) -> Result<Self> {
        let file = open(path)?;
        loop {
            match flock(&file, libc::LOCK_EX) {
                Ok(()) => return Ok(Self { _file: file }),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).with_context(|| format!("locking {}", path.display())),
            }
        }
    }

    /// The lock on `path` if no one else holds it; `None` if someone does.
    pub fn try_exclusive(path: &Path) -> Result<Option<Self>> {
        let file = open(path)?;
        match flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
            Ok(()) => Ok(Some(Self { _file: file })),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e).with_context(|| format!("locking {}", path.display())),
        }
    }
}

fn open(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening lock file {}", path.display()))
}

fn flock(file: &File, operation: libc::c_int) -> io::Result<()> {
    // SAFETY: flock has no memory-safety preconditions; the descriptor is valid for as long as
    // `file` lives.
    if unsafe { libc::flock(file.as_raw_fd(), operation) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_refused_until_dropped() -> Result<()> {
        let path = crate::paths::run_dir("flock-unit").join("lock");
        let held = FileLock::exclusive(&path)?;
        assert!(FileLock::try_exclusive(&path)?.is_none());
        drop(held);
        let again = FileLock::try_exclusive(&path)?;
        assert!(again.is_some());
        Ok(())
    }
}
