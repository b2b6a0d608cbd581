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
//! version (`FORMAT`) and every realm file, name and content
//! ([`super::realm::realm_files`]). Editing, adding or removing a realm file picks a new key,
//! so a stale database is never used; old ones stay until the cache is cleared.
//!
//! # What is not shared
//!
//! Nothing in the database depends on the instance: the realms name no host or port
//! (`hostname-strict=false`: the issuer follows the request's host and port), the
//! preparation makes no sessions or tokens, and ports, the transaction log and H2's trace
//! file belong to each instance's own `data/`. What *is* shared is what the import created,
//! the realms' generated keys included: every instance started from one prepared database
//! signs with the same keys (its tokens still differ in `iss`, which names its port). A test
//! that needs keys of its own adds a key to its instance (see [`super::AdminClient`]).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::distribution::{BUILD_OPTIONS, cache_dir};
use super::launch::{Launch, make_home};
use super::realm::{ADMIN_PASSWORD, ADMIN_USERNAME, realm_files};
use super::{VERSION, short_hash};
use crate::flock::FileLock;

/// Bump when the way the database is prepared changes, so old ones are not used.
const FORMAT: &str = "tokengate prepared keycloak database 1";
/// Where Keycloak's `dev-file` database lives inside `kc.home.dir`.
pub(super) const H2_DIR: &str = "data/h2";
/// Written last into a prepared database's directory.
const COMPLETE: &str = ".complete";
/// Staging directories of preparations start with this.
const STAGING_PREFIX: &str = ".prepare-";

/// A prepared database: `<cache>/keycloak-<VERSION>-db/<key>/h2/`.
#[derive(Debug, Clone)]
pub struct PreparedDatabase {
    pub dir: PathBuf,
    /// The realms it holds, by name.
    pub realms: Vec<String>,
}

/// The realm files, read once: the key and the import come from the same bytes.
struct RealmFiles {
    /// File name and content.
    files: Vec<(String, Vec<u8>)>,
    realms: Vec<String>,
}

impl RealmFiles {
    fn read() -> Result<Self> {
        let mut files = Vec::new();
        let mut realms = Vec::new();
        for path in realm_files()? {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let export: serde_json::Value = serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not JSON", path.display()))?;
            let realm = export["realm"]
                .as_str()
                .filter(|r| !r.is_empty())
                .with_context(|| format!("{} has no \"realm\" name", path.display()))?;
            realms.push(realm.to_string());
            files.push((name, bytes));
        }
        Ok(Self { files, realms })
    }

    /// What names the prepared database: everything that shapes its content.
    fn key(&self) -> String {
        let admin = format!("{ADMIN_USERNAME}:{ADMIN_PASSWORD}");
        let build = BUILD_OPTIONS.join(" ");
        let mut parts: Vec<&[u8]> = vec![
            FORMAT.as_bytes(),
            VERSION.as_bytes(),
            build.as_bytes(),
            admin.as_bytes(),
        ];
        for (name, bytes) in &self.files {
            parts.push(name.as_bytes());
            parts.push(bytes);
        }
        short_hash(&parts)
    }
}

/// The key of the database for the repository's realm files.
pub fn database_key() -> Result<String> {
    Ok(RealmFiles::read()?.key())
}

/// The prepared database for the repository's realm files, made first if the cache has none
/// (a full Keycloak start with the import, logged to `<log_dir>/keycloak-prepare.log`).
/// Safe to call concurrently: one process prepares, the others wait for it.
pub(super) fn ensure_prepared(
    dist: &Path,
    java_home: &Path,
    log_dir: &Path,
) -> Result<PreparedDatabase> {
    let realm_files = RealmFiles::read()?;
    let root = cache_dir().join(format!("keycloak-{VERSION}-db"));
    let prepared = PreparedDatabase {
        dir: root.join(realm_files.key()),
        realms: realm_files.realms.clone(),
    };
    if prepared.dir.join(COMPLETE).is_file() {
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
    if prepared.dir.join(COMPLETE).is_file() {
        return Ok(prepared);
    }
    // Holding the lock, no preparation runs: staging left by a killed one is garbage.
    remove_staging(&root);

    let started = Instant::now();
    eprintln!(
        "keycloak: preparing the database for realms {:?} (once per realm change; schema \
         creation and import, minutes on busy cores) into {}",
        prepared.realms,
        prepared.dir.display()
    );
    let staging = root.join(format!("{STAGING_PREFIX}{}", std::process::id()));
    let result = prepare(
        dist,
        java_home,
        log_dir,
        &realm_files,
        &staging,
        &prepared.dir,
    );
    let _ = fs::remove_dir_all(&staging);
    let cold_start = result?;
    eprintln!(
        "keycloak: database prepared in {:.1?} (cold start with schema creation and import: \
         ready after {cold_start:.1?})",
        started.elapsed()
    );
    Ok(prepared)
}

/// Runs a Keycloak in `staging` on an empty database with the realms imported, stops it
/// cleanly and moves its database to `dir`. Returns the time from spawning it to ready.
fn prepare(
    dist: &Path,
    java_home: &Path,
    log_dir: &Path,
    realm_files: &RealmFiles,
    staging: &Path,
    dir: &Path,
) -> Result<Duration> {
    let home = staging.join("home");
    make_home(dist, &home)?;
    let import = home.join("data/import");
    crate::paths::ensure_dir(&import)?;
    for (name, bytes) in &realm_files.files {
        fs::write(import.join(name), bytes)
            .with_context(|| format!("writing {name} into {}", import.display()))?;
    }

    let launch = Launch::on_free_ports(dist, java_home, &home, log_dir, "keycloak-prepare")?;
    let spawned = Instant::now();
    let (process, follower) = launch.spawn(true)?;
    launch.wait_ready(&process, follower, "preparing the database")?;
    // What every first start cost before databases were prepared.
    let cold_start = spawned.elapsed();
    for realm in &realm_files.realms {
        launch.check_realm(realm).with_context(|| {
            format!(
                "the prepared Keycloak does not serve realm {realm}; log {}",
                process.log_path().display()
            )
        })?;
    }
    let status = process
        .stop(super::STOP_GRACE)
        .context("stopping the preparing Keycloak")?;
    // On SIGTERM Keycloak closes the database and exits (143); death by a signal means the
    // grace ran out and the database may be mid-write.
    if status.code().is_none() {
        bail!(
            "the preparing Keycloak did not shut down cleanly ({}); log {}",
            crate::process::describe_status(status),
            process.log_path().display()
        );
    }

    let ready = staging.join("ready");
    crate::paths::ensure_dir(&ready)?;
    let h2 = home.join(H2_DIR);
    fs::rename(&h2, ready.join("h2")).with_context(|| format!("moving {} aside", h2.display()))?;
    fs::write(
        ready.join(COMPLETE),
        format!(
            "{FORMAT}\nkeycloak {VERSION}\nrealms {:?}\n",
            realm_files.realms
        ),
    )?;
    let _ = fs::remove_dir_all(dir);
    fs::rename(&ready, dir)
        .with_context(|| format!("moving the prepared database to {}", dir.display()))?;
    Ok(cold_start)
}

fn remove_staging(root: &Path) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(STAGING_PREFIX)
        {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
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
        // H2's trace file is the writer's log, not data.
        if !entry.file_type()?.is_file() || name.ends_with(".trace.db") {
            continue;
        }
        let target = to.join(entry.file_name());
        fs::copy(entry.path(), &target).with_context(|| {
            format!("copying {} to {}", entry.path().display(), target.display())
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key changes with any realm file's content, and is stable otherwise.
    #[test]
    fn the_key_covers_every_realm_file() {
        let files = |second: &[u8]| RealmFiles {
            files: vec![
                ("realm-a.json".to_string(), b"{\"realm\":\"a\"}".to_vec()),
                ("realm-b.json".to_string(), second.to_vec()),
            ],
            realms: vec!["a".to_string(), "b".to_string()],
        };
        let key = files(b"{\"realm\":\"b\"}").key();
        assert_eq!(key, files(b"{\"realm\":\"b\"}").key());
        assert_ne!(key, files(b"{\"realm\":\"b\" }").key());
        let mut renamed = files(b"{\"realm\":\"b\"}");
        renamed.files[1].0 = "realm-c.json".to_string();
        assert_ne!(key, renamed.key());
        let mut fewer = files(b"{\"realm\":\"b\"}");
        fewer.files.pop();
        assert_ne!(key, fewer.key());
    }
}
