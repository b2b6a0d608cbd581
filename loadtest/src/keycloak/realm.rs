//! The realms in `keycloak/realm-*.json` and the facts about them that tests rely on: client
//! ids and secrets, users, roles, audiences. `keycloak/README.md` describes the same files for
//! people; keep the two in step.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// The directory, relative to the repository root, whose `realm-*.json` files every started
/// instance imports.
pub const REALM_DIR: &str = "keycloak";

/// The realm every client and user below lives in, unless named `PARTNER_*`.
pub const REALM: &str = "tokengate";
/// The first realm's export, relative to the repository root. Docker compose mounts the same
/// file.
pub const REALM_FILE: &str = "keycloak/realm-tokengate.json";

/// A second realm: a partner IdP whose access tokens are ES256-signed by default.
pub const PARTNER_REALM: &str = "tokengate-partner";
/// The partner realm's export, relative to the repository root.
pub const PARTNER_REALM_FILE: &str = "keycloak/realm-tokengate-partner.json";

/// The audience the gateway checks; every minted access token carries it, in both realms.
pub const API_AUDIENCE: &str = "tokengate-api";

/// A confidential client of a realm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    pub id: &'static str,
    pub secret: &'static str,
}

/// A realm user with a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct User {
    pub username: &'static str,
    pub password: &'static str,
}

/// Mints tokens (client credentials and password grants); 300 s lifetime.
pub const LOADTEST: Client = Client {
    id: "tokengate-loadtest",
    secret: "loadtest-secret",
};
/// The gateway's own client: no flows, only calls the introspection endpoint.
/// Every minted token has it in `aud`, which Keycloak requires for
/// introspection to answer `active: true`.
pub const GATEWAY: Client = Client {
    id: "tokengate-gateway",
    secret: "gateway-secret",
};
/// Client credentials; its access tokens expire 2 s after issue.
pub const SHORT_LIVED: Client = Client {
    id: "tokengate-short",
    secret: "short-secret",
};
/// How long [`SHORT_LIVED`]'s access tokens live.
pub const SHORT_LIVED_LIFESPAN: Duration = Duration::from_secs(2);
/// Client credentials; its access tokens are signed with ES256 (P-256).
pub const ES256: Client = Client {
    id: "tokengate-es256",
    secret: "es256-secret",
};
/// Client credentials; its tokens are for another API: `aud` holds `tokengate-gateway` (so
/// introspection answers) but not `tokengate-api`.
pub const OTHER_API: Client = Client {
    id: "tokengate-other-api",
    secret: "other-api-secret",
};

/// A realm user for the password grant (through [`LOADTEST`]), with realm
/// role [`USER_ROLE`] and without [`ADMIN_ROLE`].
pub const ALICE: User = User {
    username: "alice",
    password: "alice-password",
};
/// A realm user with realm roles [`USER_ROLE`] and [`ADMIN_ROLE`].
pub const CAROL: User = User {
    username: "carol",
    password: "carol-password",
};
/// The realm role that `alice` and `carol` have (`realm_access.roles`).
pub const USER_ROLE: &str = "user";
/// The realm role only `carol` has.
pub const ADMIN_ROLE: &str = "admin";

/// The partner realm's token-minting client: client credentials and password grants, `aud`
/// holds [`API_AUDIENCE`] and the partner realm's [`PARTNER_GATEWAY`].
pub const PARTNER_LOADTEST: Client = Client {
    id: "partner-loadtest",
    secret: "partner-loadtest-secret",
};
/// The gateway's client in the partner realm (same id as [`GATEWAY`], its own secret): calls
/// the partner realm's introspection endpoint.
pub const PARTNER_GATEWAY: Client = Client {
    id: "tokengate-gateway",
    secret: "partner-gateway-secret",
};
/// The partner realm's user for the password grant (through [`PARTNER_LOADTEST`]), with the
/// partner realm's role [`USER_ROLE`].
pub const BOB: User = User {
    username: "bob",
    password: "bob-password",
};

/// Per realm, a client that mints tokens and the gateway client that introspects them.
pub const MINTING_CLIENTS: &[(&str, Client, Client)] = &[
    (REALM, LOADTEST, GATEWAY),
    (PARTNER_REALM, PARTNER_LOADTEST, PARTNER_GATEWAY),
];

/// The master realm's administrator in instances started here (bootstrap admin).
pub const ADMIN_USERNAME: &str = "admin";
pub const ADMIN_PASSWORD: &str = "admin";

/// Every realm export the harness imports: `<repo>/keycloak/realm-*.json`, sorted by name.
pub fn realm_files() -> Result<Vec<PathBuf>> {
    realm_files_in(&crate::paths::repo_root().join(REALM_DIR))
}

/// The `realm-*.json` files directly in `dir`, sorted by name; fails if there are none.
pub fn realm_files_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("realm-") && name.ends_with(".json") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    if files.is_empty() {
        bail!("no realm-*.json in {}", dir.display());
    }
    Ok(files)
}

/// The `realm` field of a realm export: the realm's name.
pub fn realm_name(file: &Path) -> Result<String> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let export: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))?;
    match export["realm"].as_str() {
        Some(name) if !name.is_empty() => Ok(name.to_string()),
        _ => bail!("{} has no \"realm\" name", file.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realm_files_are_the_sorted_realm_json_files_only() -> Result<()> {
        let dir = crate::paths::run_dir("realm-files-unit");
        for name in [
            "realm-b.json",
            "realm-a.json",
            "README.md",
            "realm-c.txt",
            "x.json",
        ] {
            std::fs::write(dir.join(name), r#"{"realm":"r"}"#)?;
        }
        std::fs::create_dir(dir.join("realm-dir.json"))?;
        let names: Vec<String> = realm_files_in(&dir)?
            .iter()
            .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
            .collect();
        assert_eq!(names, ["realm-a.json", "realm-b.json"]);
        assert!(realm_files_in(&crate::paths::run_dir("realm-files-empty")).is_err());
        Ok(())
    }

    /// The repository's files: both realms, named as the constants say, and nothing else
    /// imported by accident.
    #[test]
    fn the_repository_realms_are_the_two_named_here() -> Result<()> {
        let root = crate::paths::repo_root();
        let files = realm_files()?;
        assert_eq!(
            files,
            [root.join(PARTNER_REALM_FILE), root.join(REALM_FILE)],
            "keycloak/realm-*.json changed: update the constants and keycloak/README.md"
        );
        assert_eq!(realm_name(&root.join(REALM_FILE))?, REALM);
        assert_eq!(realm_name(&root.join(PARTNER_REALM_FILE))?, PARTNER_REALM);
        Ok(())
    }
}
