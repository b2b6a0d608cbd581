//! The JDK that runs Keycloak.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use super::{find_on_path, non_empty_env};

/// A JDK to run Keycloak with, instead of the one [`java_home`] picks.
pub const JAVA_HOME_ENV: &str = "TOKENGATE_JAVA_HOME";

/// Where JDKs are installed on Debian-like systems.
const JVM_DIR: &str = "/usr/lib/jvm";
/// Java releases Keycloak 26.7 supports, most preferred first.
const SUPPORTED_JAVA: &[u32] = &[25, 21, 17];

/// The JDK to run Keycloak with: `TOKENGATE_JAVA_HOME` if set, else the
/// newest supported one (25, then 21, then 17) among the JDKs in
/// `/usr/lib/jvm`, `JAVA_HOME` and the `java` on `PATH`.
pub fn java_home() -> Result<PathBuf> {
    if let Some(dir) = non_empty_env(JAVA_HOME_ENV) {
        let dir = PathBuf::from(dir);
        if dir.join("bin/java").is_file() {
            return Ok(dir);
        }
        bail!(
            "{JAVA_HOME_ENV}={} has no bin/java; point it at a JDK {SUPPORTED_JAVA:?} or unset it",
            dir.display()
        );
    }

    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(entries) = fs::read_dir(JVM_DIR) {
        let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        dirs.sort();
        candidates.extend(dirs);
    }
    if let Some(dir) = non_empty_env("JAVA_HOME") {
        candidates.push(PathBuf::from(dir));
    }
    if let Some(java) = find_on_path("java")
        && let Ok(real) = java.canonicalize()
        && let Some(home) = real.parent().and_then(Path::parent)
    {
        candidates.push(home.to_path_buf());
    }

    let mut found: Vec<(u32, PathBuf)> = Vec::new();
    for dir in candidates {
        let Ok(real) = dir.canonicalize() else {
            continue;
        };
        if !real.join("bin/java").is_file() || found.iter().any(|(_, d)| *d == real) {
            continue;
        }
        if let Some(major) = java_major(&real) {
            found.push((major, real));
        }
    }
    for wanted in SUPPORTED_JAVA {
        if let Some((_, dir)) = found.iter().find(|(major, _)| major == wanted) {
            return Ok(dir.clone());
        }
    }
    let seen: Vec<String> = found
        .iter()
        .map(|(major, dir)| format!("{} (Java {major})", dir.display()))
        .collect();
    bail!(
        "no JDK {SUPPORTED_JAVA:?} found for Keycloak (found: [{}]); install one or set {JAVA_HOME_ENV}",
        seen.join(", ")
    )
}

/// The major version from a JDK's `release` file (`JAVA_VERSION="25.0.3"`).
fn java_major(home: &Path) -> Option<u32> {
    let release = fs::read_to_string(home.join("release")).ok()?;
    let line = release
        .lines()
        .find_map(|l| l.strip_prefix("JAVA_VERSION="))?;
    let version = line.trim().trim_matches('"');
    version.split(['.', '-', '+']).next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_java_major() -> Result<()> {
        let dir = crate::paths::run_dir("keycloak-java-unit");
        fs::write(
            dir.join("release"),
            "IMPLEMENTOR=\"x\"\nJAVA_VERSION=\"25.0.3\"\n",
        )?;
        assert_eq!(java_major(&dir), Some(25));
        fs::write(dir.join("release"), "JAVA_VERSION=\"17\"\n")?;
        assert_eq!(java_major(&dir), Some(17));
        fs::write(dir.join("release"), "IMPLEMENTOR=\"x\"\n")?;
        assert_eq!(java_major(&dir), None);
        Ok(())
    }
}
