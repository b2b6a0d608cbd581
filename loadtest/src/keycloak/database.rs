//! Keycloak's H2 database, prepared once per machine with every realm imported, and copied into
//! each instance.
//!
//! An empty database is what makes a first start expensive: creating the schema, the master
//! realm and importing the realms took over 100 s of a 180 s start on two busy cores, and
//! every test binary paid it again. So the database is made once by a throw-away Keycloak
//! (`--import-realm`, stopped cleanly) and kept in the cache under a key; every instance
//! starts from a copy and skips schema creation and import.
//!
//! # What the key covers
//!
//! The Keycloak version, the build options, the bootstrap admin, the preparation's own
//! version ([`FORMAT`]) and every realm file, name and content
//! ([`super::realm::realm_files`]). Editing, adding or removing a realm file picks a new key,
//! so a stale database is never used; old ones stay until the cache is cleared.
//!
//! # What is not shared
//!
//! Nothing in the database depends on the instance: the realms name no host or port
//! (`hostname-strict=false`: the issuer follows the request's host and port), the
//! preparation makes no sessions or tokens, and ports, the transaction log and the H2 lock
//! file belong to each instance's own `data/`. What *is* shared is what the import created,
//! the realms' generated keys included: every instance started from one prepared database
//! signs with the same keys (its tokens still differ in `iss`, which names its port). A test
//! that needs keys of its own adds a key to its instance (see [`super::AdminClient`]).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use super::distribution::{BUILD_OPTIONS, cache_dir};
use super::realm::{ADMIN_PASSWORD, ADMIN_USERNAME, realm_files, realm_name};
use super::server::{Launch, make_home};
use super::{VERSION, short_hash};
use crate::flock::FileLock;

/// Bump when the way the database is prepared changes, so old ones are not used.
const FORMAT: &str = "tokengate prepared keycloak database 1";
/// Where Keycloak's `dev-file` database lives inside `kc.home.dir`.
pub(super) const H2_DIR: &str = "data/h2";
/// Written last into a prepared database's directory.
const COMPLETE: &str = ".complete";

/// A prepared database: `<cache>/keycloak-<VERSION>-db/<key>/h2/`.
#[derive(Debug, Clone)]
pub struct PreparedDatabase {
    pub dir: PathBuf,
    /// The realms it holds, by name.
    pub realms: Vec<String>,
}

/// The key of the database for the repository's realm files.
pub fn database_key() -> Result<String> {
    let files = realm_files()?;
    let mut parts: Vec<Vec<u8>> = vec![
        FORMAT.into(),
        VERSION.into(),
        BUILD_OPTIONS.join(" ").into(),
        format!("{ADMIN_USERNAME}:{ADMIN_PASSWORD}").into(),
    ];
    for file in &files {
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
        parts.push(name.unwrap_or_default().into());
        parts.push(fs::read(file).with_context(|| format!("reading {}", file.display()))?);
    }
    let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    Ok(short_hash(&parts))
}

/// The prepared database for the repository's realm files, made first if the cache has none
/// (a full Keycloak start with the import, logged to `<log_dir>/keycloak-prepare.log`).
/// Safe to call concurrently: one process prepares, the others wait for it.
pub(super) fn ensure_prepared(
    dist: &Path,
    java_home: &Path,
    log_dir: &Path,
) -> Result<PreparedDatabase> {
    let key = database_key()?;
    let root = cache_dir().join(format!("keycloak-{VERSION}-db"));
    let dir = root.join(&key);
    let realms = realm_files()?
        .iter()
        .map(|f| realm_name(f))
        .collect::<Result<Vec<_>>>()?;
    let prepared = PreparedDatabase {
        dir: dir.clone(),
        realms: realms.clone(),
    };
    if dir.join(COMPLETE).is_file() {
        return Ok(prepared);
    }
    crate::paths::ensure_dir(&root)?;
    let lock_path = root.join(".lock");
    let _lock = match FileLock::try_exclusive(&lock_path)? {
        Some(lock) => lock,
        None => {
            eprintln!("keycloak: another process is preparing the database; waiting for it");
            FileLock::exclusive(&lock_path)?
        }
    };
    if dir.join(COMPLETE).is_file() {
        return Ok(prepared);
    }

    let started = Instant::now();
    eprintln!(
        "keycloak: preparing the database for realms {realms:?} (once per realm change; \
         schema creation and import, minutes on busy cores) into {}",
        dir.display()
    );
    let staging = root.join(format!(".prepare-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    let home = staging.join("home");
    make_home(dist, &home)?;
    let import = home.join("data/import");
    crate::paths::ensure_dir(&import)?;
    for file in realm_files()? {
        let name = file.file_name().context("realm file without a name")?;
        fs::copy(&file, import.join(name))
            .with_context(|| format!("copying {} into {}", file.display(), import.display()))?;
    }

    let launch = Launch::on_free_ports(dist, java_home, &home, log_dir, "keycloak-prepare")?;
    let (process, follower) = launch.spawn(true)?;
    let spawned = Instant::now();
    launch.wait_ready(&process, follower, "preparing the database")?;
    // What every first start cost before databases were prepared.
    let cold_start = spawned.elapsed();
    for realm in &realms {
        launch.check_realm(realm).with_context(|| {
            format!(
                "the prepared Keycloak does not serve realm {realm}; log {}",
                process.log_path().display()
            )
        })?;
    }
    // A clean stop closes the database; a killed Keycloak may leave it mid-write.
    let status = process
        .stop(super::STOP_GRACE)
        .context("stopping the preparing Keycloak")?;
    // SIGTERM makes Keycloak (and kc.sh) exit 143 after closing the database; a signal
    // death means the grace ran out and the database may be mid-write.
    if status.code().is_none() {
        bail!(
            "the preparing Keycloak did not shut down cleanly ({}); log {}",
            crate::process::describe_status(status),
            process.log_path().display()
        );
    }
    let h2 = home.join(H2_DIR);
    let ready = staging.join("ready");
    crate::paths::ensure_dir(&ready)?;
    fs::rename(&h2, ready.join("h2")).with_context(|| format!("moving {} aside", h2.display()))?;
    fs::write(
        ready.join(COMPLETE),
        format!("{FORMAT}\nkeycloak {VERSION}\nrealms {realms:?}\n"),
    )?;
    let _ = fs::remove_dir_all(&dir);
    fs::rename(&ready, &dir)
        .with_context(|| format!("moving the prepared database to {}", dir.display()))?;
    let _ = fs::remove_dir_all(&staging);
    eprintln!(
        "keycloak: database prepared in {:.1?} (cold start with schema creation and import: \
         ready after {cold_start:.1?})",
        started.elapsed()
    );
    Ok(prepared)
}

/// Copies the prepared database into an instance's home (`<home>/data/h2/`).
pub(super) fn copy_into(prepared: &PreparedDatabase, home: &Path) -> Result<()> {
    let from = prepared.dir.join("h2");
    let to = home.join(H2_DIR);
    crate::paths::ensure_dir(&to)?;
    for entry in fs::read_dir(&from).with_context(|| format!("listing {}", from.display()))? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        // The lock and trace files belong to the process that wrote them.
        if !entry.file_type()?.is_file()
            || name.ends_with(".lock.db")
            || name.ends_with(".trace.db")
        {
            continue;
        }
        let target = to.join(entry.file_name());
        fs::copy(entry.path(), &target).with_context(|| {
            format!("copying {} to {}", entry.path().display(), target.display())
        })?;
    }
    Ok(())
}
