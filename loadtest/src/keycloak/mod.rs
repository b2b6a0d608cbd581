//! A real Keycloak for the end-to-end tests and load runs.
//!
//! - [`distribution`]: the server (pinned to [`VERSION`]) fetched from Maven Central with
//!   `mvn`, unpacked and built once with `kc.sh build`, in the machine's cache
//!   ([`cache_dir`], `$TOKENGATE_CACHE_DIR` or `~/.cache/tokengate`) so fresh clones find it;
//! - [`database`]: Keycloak's H2 database with every realm of `keycloak/realm-*.json`
//!   imported, prepared once per realm change and copied into each instance, so a start
//!   skips schema creation and import;
//! - [`server`]: one instance ([`Keycloak`]) on free ports, its own home and database,
//!   start, stop, restart; readiness is awaited as long as it makes progress (`readiness`);
//!   one process's ports, home and command line are `launch`;
//! - [`client`]: a realm's OAuth endpoints ([`KeycloakClient`]), [`admin`]: the admin API
//!   ([`AdminClient`]);
//! - [`realm`]: the realm files and the facts about them tests rely on.
//!
//! # How it runs
//!
//! Not with `start-dev`: that re-runs Quarkus' build step (about 20 s on two
//! cores) on *every* start, and writes the result into the shared
//! distribution, which races when two instances start together. Instead the
//! distribution is built once for the embedded H2 database (`dev-file`) and
//! every instance runs `kc.sh start --optimized` in production mode with
//! what start-dev would have set: plain HTTP, no strict hostname (the issuer
//! follows the request's host and port) and a local cache (no clustering).
//!
//! Each instance gets its own Keycloak home (`kc.home.dir`): a directory of
//! symlinks onto the distribution plus a real `data/` holding its copy of the prepared H2
//! database and its transaction log. Two instances therefore never share state, and a
//! restarted instance keeps its database, so its signing keys and the tokens it issued stay
//! valid.
//!
//! `kc.sh` runs Java as a background child and waits for it. So that Java
//! dies with us even when we are killed (our direct child gets the kernel's
//! parent-death signal, a grandchild would not), Java is started through a
//! small wrapper that arms `PR_SET_PDEATHSIG` with util-linux `setpriv`.
//!
//! # Sharing one Keycloak
//!
//! [`shared`] starts one Keycloak per test process on first use. Set
//! `TOKENGATE_KEYCLOAK_URL` (e.g. `http://127.0.0.1:8080`) to use an already
//! running Keycloak with the repository's realms instead, for instance one that CI
//! starts once for all test binaries; `TOKENGATE_KEYCLOAK_MANAGEMENT_URL`
//! (e.g. `http://127.0.0.1:9000`) adds a readiness check on `/health/ready`.
//! `keycloak/README.md` shows how to start one by hand.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use sha2::{Digest, Sha256};

pub mod admin;
pub mod client;
pub mod database;
pub mod distribution;
mod java;
mod launch;
mod readiness;
pub mod realm;
pub mod server;

pub use admin::{AdminClient, RealmKey, RealmKeys};
pub use client::{KeycloakClient, TokenResponse, UnverifiedJwt, basic_auth, decode_unverified};
pub use database::database_key;
pub use distribution::{CACHE_DIR_ENV, cache_dir, ensure_built, ensure_distribution};
pub use java::{JAVA_HOME_ENV, java_home};
pub use realm::*;
pub use server::{Keycloak, MANAGEMENT_URL_ENV, URL_ENV, shared};

/// The pinned Keycloak release.
pub const VERSION: &str = "26.7.3";

/// Keycloak shuts down in a second or two on SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(30);
const LOG_TAIL_LINES: usize = 60;

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The first 16 hex digits of SHA-256 over `parts`, each length-prefixed so that moving
/// bytes between parts changes the hash: names cache entries.
fn short_hash<T: AsRef<[u8]>>(parts: &[T]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        let part = part.as_ref();
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hasher
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_hashes_separate_their_parts() {
        let a = short_hash(&["ab", "c"]);
        assert_eq!(a.len(), 16);
        assert_eq!(a, short_hash(&["ab", "c"]));
        assert_ne!(a, short_hash(&["a", "bc"]));
        assert_ne!(a, short_hash(&["abc"]));
    }
}
