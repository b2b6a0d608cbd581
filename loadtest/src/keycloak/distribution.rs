//! The Keycloak server distribution: fetched from Maven Central, unpacked, built once.
//!
//! Everything lives in the machine's cache ([`cache_dir`]), not in the checkout, so a fresh
//! clone on the same machine (CI makes one per run) finds it ready:
//!
//! - `downloads/keycloak-quarkus-dist-<VERSION>.zip`, fetched with `mvn dependency:copy`;
//! - `keycloak-<VERSION>/`, the zip unpacked, never run or built;
//! - `keycloak-<VERSION>-build-<hash>/`, a copy built with `kc.sh build` for how
//!   [`super::Keycloak::start`] runs it. The hash covers the build options and the JDK, so two
//!   checkouts that build differently never rebuild each other's copy under a running server.
//!
//! A file lock makes each step safe for several processes at once; a step already done is
//! skipped.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::{LOG_TAIL_LINES, STOP_GRACE, VERSION, find_on_path, non_empty_env, short_hash};
use crate::flock::FileLock;
use crate::process::{ManagedProcess, ProcessSpec, describe_status};

/// Overrides where [`cache_dir`] is.
pub const CACHE_DIR_ENV: &str = "TOKENGATE_CACHE_DIR";

/// Options baked into the distribution by `kc.sh build`. Every start must
/// agree with them, or `--optimized` refuses to start.
pub(super) const BUILD_OPTIONS: &[&str] = &["--db=dev-file", "--health-enabled=true"];
/// The heap used unless `JAVA_OPTS_KC_HEAP` is already set.
const DEFAULT_HEAP: &str = "-Xms64m -Xmx512m";
/// `kc.sh build` takes about 40 s on two idle cores and several minutes on busy ones.
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);
/// The zip is 177 MB; Maven Central serves it in well under a minute here.
const FETCH_TIMEOUT: Duration = Duration::from_secs(600);

/// The machine's cache for Keycloak: `$TOKENGATE_CACHE_DIR` if set, else
/// `$HOME/.cache/tokengate` (`<repo>/.cache` without a `HOME`). Shared by every checkout on
/// the machine; everything in it can be deleted and is made again on first use.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = non_empty_env(CACHE_DIR_ENV) {
        return PathBuf::from(dir);
    }
    match non_empty_env("HOME") {
        Some(home) => Path::new(&home).join(".cache/tokengate"),
        None => crate::paths::repo_root().join(".cache"),
    }
}

/// The unpacked distribution, `<cache>/keycloak-<VERSION>`; fetched and
/// unpacked first if missing. Never run or built in place ([`ensure_built`] copies it).
/// Idempotent; safe to call concurrently, from threads or processes.
pub fn ensure_distribution() -> Result<PathBuf> {
    let cache = cache_dir();
    let dist = cache.join(format!("keycloak-{VERSION}"));
    if distribution_complete(&dist) {
        return Ok(dist);
    }
    crate::paths::ensure_dir(&cache)?;
    let _lock = FileLock::exclusive(&lock_path(&cache))?;
    // Another process may have finished while we waited for the lock.
    if distribution_complete(&dist) {
        return Ok(dist);
    }
    let zip = fetch_zip(&cache)?;
    unpack(&zip, &cache, &dist)?;
    Ok(dist)
}

/// A copy of the distribution built (`kc.sh build`) for how [`super::Keycloak::start`] runs
/// it, with `java_home`: `<cache>/keycloak-<VERSION>-build-<hash>`. Builds at most once per
/// build options and JDK.
pub fn ensure_built(java_home: &Path) -> Result<PathBuf> {
    let pristine = ensure_distribution()?;
    let cache = cache_dir();
    let wanted = build_marker(java_home);
    let dist = cache.join(format!(
        "keycloak-{VERSION}-build-{}",
        short_hash(&[&wanted])
    ));
    let marker = dist.join(".tokengate-build");
    let wrapper = java_wrapper_path(&cache);
    // The stamp catches a build made behind our back (say a `kc.sh
    // start-dev` run from this directory), which `--optimized` would reject.
    let current = || {
        fs::read_to_string(&marker).is_ok_and(|m| m == format!("{wanted}{}", build_stamp(&dist)))
            && (!setpriv_available() || wrapper.is_file())
    };
    if current() {
        return Ok(dist);
    }
    let _lock = FileLock::exclusive(&lock_path(&cache))?;
    if current() {
        return Ok(dist);
    }
    if setpriv_available() {
        write_java_wrapper(&wrapper)?;
    }
    if !distribution_complete(&dist) {
        copy_tree(&pristine, &cache, &dist)?;
    }
    // A half-finished earlier build must not look current.
    let _ = fs::remove_file(&marker);
    eprintln!(
        "keycloak: building {} with `kc.sh build` (once per machine; ~40 s on two idle cores)",
        dist.display()
    );
    let build = ManagedProcess::spawn(
        java_env(
            ProcessSpec::new(
                &format!("keycloak-{VERSION}-build"),
                dist.join("bin/kc.sh"),
                &cache,
            )
            .arg("build")
            .args(BUILD_OPTIONS),
            java_home,
            &cache,
        )
        .cwd(&dist),
    )
    .context("starting `kc.sh build`")?;
    let status = match build.wait_exit(BUILD_TIMEOUT) {
        Some(status) => status,
        None => {
            let _ = build.stop(STOP_GRACE);
            bail!(
                "`kc.sh build` did not finish within {BUILD_TIMEOUT:?}; log {}:\n{}",
                build.log_path().display(),
                build.log_tail(LOG_TAIL_LINES)
            );
        }
    };
    if !status.success() {
        bail!(
            "`kc.sh build` failed ({}); log {}:\n{}",
            describe_status(status),
            build.log_path().display(),
            build.log_tail(LOG_TAIL_LINES)
        );
    }
    fs::write(&marker, format!("{wanted}{}", build_stamp(&dist)))
        .with_context(|| format!("writing {}", marker.display()))?;
    Ok(dist)
}

/// Adds the Java settings every `kc.sh` run gets.
pub(super) fn java_env(spec: ProcessSpec, java_home: &Path, cache: &Path) -> ProcessSpec {
    let mut spec = spec.env("JAVA_HOME", java_home);
    if setpriv_available() {
        spec = spec.env("JAVA", java_wrapper_path(cache));
    }
    if std::env::var_os("JAVA_OPTS_KC_HEAP").is_none() {
        spec = spec.env("JAVA_OPTS_KC_HEAP", DEFAULT_HEAP);
    }
    spec
}

fn distribution_complete(dist: &Path) -> bool {
    dist.join("bin/kc.sh").is_file() && dist.join("lib/quarkus-run.jar").is_file()
}

fn lock_path(cache: &Path) -> PathBuf {
    cache.join(format!("keycloak-{VERSION}.lock"))
}

fn build_marker(java_home: &Path) -> String {
    let java = java_home
        .canonicalize()
        .unwrap_or_else(|_| java_home.to_path_buf());
    format!(
        "kc.sh build {}\njava {}\nwrapper {}\n",
        BUILD_OPTIONS.join(" "),
        java.display(),
        setpriv_available()
    )
}

/// When Quarkus last wrote the built application into the distribution.
fn build_stamp(dist: &Path) -> String {
    let modified = fs::metadata(dist.join("lib/quarkus/quarkus-application.dat"))
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
    match modified {
        Some(t) => format!("built {}.{:09}\n", t.as_secs(), t.subsec_nanos()),
        None => "built never\n".to_string(),
    }
}

/// The distribution zip in `<cache>/downloads/`, fetched with Maven if absent.
fn fetch_zip(cache: &Path) -> Result<PathBuf> {
    let downloads = cache.join("downloads");
    let name = format!("keycloak-quarkus-dist-{VERSION}.zip");
    let zip = downloads.join(&name);
    if zip.is_file() {
        return Ok(zip);
    }
    if find_on_path("mvn").is_none() {
        bail!(
            "Keycloak {VERSION} is not in {} and `mvn` is not on PATH to fetch it \
             (install Maven, or put {name} into {} by hand)",
            cache.display(),
            downloads.display()
        );
    }
    // Into a private directory first, so an interrupted copy never looks like
    // a complete zip.
    let partial = downloads.join(format!(".partial-{}", std::process::id()));
    let _ = fs::remove_dir_all(&partial);
    crate::paths::ensure_dir(&partial)?;
    let mvn = find_on_path("mvn").context("mvn left PATH")?;
    let fetch = ManagedProcess::spawn(
        ProcessSpec::new(&format!("keycloak-{VERSION}-fetch"), mvn, &downloads)
            .arg("-q")
            .arg("-B")
            .arg("dependency:copy")
            .arg(format!(
                "-Dartifact=org.keycloak:keycloak-quarkus-dist:{VERSION}:zip"
            ))
            .arg(format!("-DoutputDirectory={}", partial.display())),
    )
    .context("running mvn")?;
    let failure = match fetch.wait_exit(FETCH_TIMEOUT) {
        Some(status) if status.success() => None,
        Some(status) => Some(describe_status(status)),
        None => {
            let _ = fetch.stop(STOP_GRACE);
            Some(format!("not done within {FETCH_TIMEOUT:?}"))
        }
    };
    if let Some(failure) = failure {
        let _ = fs::remove_dir_all(&partial);
        bail!(
            "mvn could not fetch org.keycloak:keycloak-quarkus-dist:{VERSION}:zip ({failure}); \
             log {}:\n{}",
            fetch.log_path().display(),
            fetch.log_tail(LOG_TAIL_LINES)
        );
    }
    let fetched = partial.join(&name);
    fs::rename(&fetched, &zip)
        .with_context(|| format!("moving {} to {}", fetched.display(), zip.display()))?;
    let _ = fs::remove_dir_all(&partial);
    Ok(zip)
}

/// Unpacks `zip` (whose single top-level directory is `keycloak-<VERSION>`)
/// into a staging directory, then moves it to `dist` in one rename.
fn unpack(zip: &Path, cache: &Path, dist: &Path) -> Result<()> {
    let staging = cache.join(format!(".unpack-keycloak-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    crate::paths::ensure_dir(&staging)?;
    let mut command = if find_on_path("unzip").is_some() {
        let mut c = Command::new("unzip");
        c.arg("-q").arg(zip).arg("-d").arg(&staging);
        c
    } else if find_on_path("python3").is_some() {
        let mut c = Command::new("python3");
        c.args(["-m", "zipfile", "-e"]).arg(zip).arg(&staging);
        c
    } else {
        bail!(
            "neither `unzip` nor `python3` is on PATH to unpack {}",
            zip.display()
        );
    };
    let output = command
        .output()
        .with_context(|| format!("unpacking {}", zip.display()))?;
    if !output.status.success() {
        let _ = fs::remove_dir_all(&staging);
        bail!(
            "unpacking {} failed ({}); delete it to fetch it again:\n{}{}",
            zip.display(),
            describe_status(output.status),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let unpacked = staging.join(format!("keycloak-{VERSION}"));
    if !distribution_complete(&unpacked) {
        let _ = fs::remove_dir_all(&staging);
        bail!(
            "{} did not contain keycloak-{VERSION}/bin/kc.sh; delete it to fetch it again",
            zip.display()
        );
    }
    // Python's zipfile drops the executable bits.
    make_scripts_executable(&unpacked.join("bin"))?;
    let _ = fs::remove_dir_all(dist);
    fs::rename(&unpacked, dist)
        .with_context(|| format!("moving {} to {}", unpacked.display(), dist.display()))?;
    let _ = fs::remove_dir_all(&staging);
    Ok(())
}

/// Copies the tree `from` to `to` through a staging directory and one rename, so a copy
/// interrupted halfway never looks complete.
fn copy_tree(from: &Path, cache: &Path, to: &Path) -> Result<()> {
    let staging = cache.join(format!(".copy-keycloak-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    let output = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(&staging)
        .output()
        .context("running cp")?;
    if !output.status.success() {
        let _ = fs::remove_dir_all(&staging);
        bail!(
            "copying {} to {} failed ({}): {}",
            from.display(),
            staging.display(),
            describe_status(output.status),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let _ = fs::remove_dir_all(to);
    fs::rename(&staging, to)
        .with_context(|| format!("moving {} to {}", staging.display(), to.display()))
}

fn make_scripts_executable(bin: &Path) -> Result<()> {
    for entry in fs::read_dir(bin).with_context(|| format!("listing {}", bin.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "sh") {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
                .with_context(|| format!("making {} executable", path.display()))?;
        }
    }
    Ok(())
}

fn java_wrapper_path(cache: &Path) -> PathBuf {
    cache.join("keycloak-java-pdeathsig.sh")
}

/// `kc.sh` runs `$JAVA` in the background and waits for it; this wrapper
/// makes Java die with `kc.sh`, which dies with us.
fn write_java_wrapper(path: &Path) -> Result<()> {
    let script = "#!/bin/sh\n\
        # Written by loadtest::keycloak. kc.sh starts $JAVA as its child; arm the\n\
        # parent-death signal so Java cannot outlive kc.sh (and so the tests).\n\
        exec setpriv --pdeathsig KILL -- \"$JAVA_HOME/bin/java\" \"$@\"\n";
    let partial = path.with_extension(format!("partial-{}", std::process::id()));
    fs::write(&partial, script).with_context(|| format!("writing {}", partial.display()))?;
    fs::set_permissions(&partial, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} executable", partial.display()))?;
    fs::rename(&partial, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn setpriv_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| find_on_path("setpriv").is_some())
}
