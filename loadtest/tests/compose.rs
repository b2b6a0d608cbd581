//! The compose stack, checked without a Docker engine: `docker-compose config` for every
//! gateway, consistency with the native stack (same templates, renderer, realm, versions),
//! the rendered configs through `envoy --mode validate` with the real filter, and hadolint on
//! the Dockerfiles (the kit's and the stand-in images'). Broken variants of the compose file
//! must be caught.

// A failed expectation in a test panics: that is how the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};
use loadtest::compose;

fn root() -> PathBuf {
    loadtest::paths::repo_root()
}

fn compose_file() -> PathBuf {
    root().join("compose/docker-compose.yml")
}

#[test]
fn the_compose_file_matches_the_native_stack() -> Result<()> {
    let problems = compose::check(&compose_file(), &root())?;
    ensure!(
        problems.is_empty(),
        "compose problems:\n{}",
        problems.join("\n")
    );
    Ok(())
}

/// A copy of the compose file, edited, next to the original (relative mounts still resolve).
fn broken_variant(name: &str, from: &str, to: &str) -> Result<PathBuf> {
    let text = std::fs::read_to_string(compose_file())?;
    ensure!(
        text.contains(from),
        "the compose file no longer contains {from:?}"
    );
    let path = root().join(format!("compose/.broken-{name}.yml"));
    std::fs::write(&path, text.replacen(from, to, 1))?;
    Ok(path)
}

#[test]
fn broken_services_mounts_and_paths_are_caught() -> Result<()> {
    let cases = [
        (
            "config-path",
            "/etc/envoy/${GATEWAY:-jwt}.yaml",
            "/etc/envoy/${GATEWAY:-jwt}.yml",
            "envoy does not run",
        ),
        (
            "realm-mount",
            "../keycloak/realm-tokengate.json",
            "../keycloak/realm.json",
            "does not exist",
        ),
        (
            "service",
            "\n  backend:\n",
            "\n  api:\n",
            "which is undefined",
        ),
        (
            "envoy-version",
            "envoyproxy/envoy:v1.40.0",
            "envoyproxy/envoy:v1.31.0",
            "is not the tested",
        ),
        (
            "wasm",
            "/etc/tokengate/tokengate.wasm",
            "/etc/tokengate/filter.wasm",
            "does not place the filter",
        ),
        (
            "logout-listener",
            " --backchannel-logout",
            "",
            "does not render the back-channel logout listener",
        ),
        (
            "logout-url",
            "http://envoy:10001/backchannel-logout",
            "http://envoy:10000/backchannel-logout",
            "is not run with `--target-logout-url http://envoy:10001/backchannel-logout`",
        ),
    ];
    for (name, from, to, expected) in cases {
        let path = broken_variant(name, from, to)?;
        let problems = compose::check(&path, &root());
        std::fs::remove_file(&path)?;
        let problems = problems?;
        ensure!(
            problems.iter().any(|p| p.contains(expected)),
            "{name}: expected a problem containing {expected:?}, got {problems:#?}"
        );
    }
    Ok(())
}

/// The compose path end to end, short of Docker: `loadtest render` (what the
/// gateway-config service runs) renders every gateway for the compose topology, and Envoy
/// validates each with the real filter in place.
#[test]
fn rendered_compose_configs_validate() -> Result<()> {
    let out = loadtest::paths::run_dir("compose-render");
    let wasm = loadtest::paths::wasm_path()?;
    let status = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args([
            "render",
            "--profile",
            "compose",
            "--backchannel-logout",
            "--out",
        ])
        .arg(&out)
        .arg("--wasm-path")
        .arg(&wasm)
        .status()?;
    ensure!(status.success(), "loadtest render failed");
    let envoy = loadtest::paths::envoy_binary()?;
    let gateways = loadtest::render::gateways(&root().join("envoy"))?;
    for gateway in gateways {
        let path = out.join(format!("{gateway}.yaml"));
        let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
        ensure!(
            text.contains("address: keycloak") || gateway == "no-auth",
            "{gateway}"
        );
        // The gateways the matrix sends logouts to carry the logout listener, rendered by
        // the same command the gateway-config service runs.
        let receives = ["jwt", "hybrid", "jwt-bcl"].contains(&gateway.as_str());
        ensure!(
            text.contains("name: logout") == receives,
            "{gateway}: logout listener {}expected",
            if receives { "" } else { "not " }
        );
        loadtest::envoy::Envoy::validate(&envoy, &path)?;
    }
    Ok(())
}

#[test]
fn the_dockerfile_passes_hadolint() -> Result<()> {
    let hadolint = root().join(".venv/bin/hadolint");
    ensure!(hadolint.exists(), "hadolint missing: run scripts/setup");
    // The kit's Dockerfile and those of the stand-in images (compose/standins/).
    let mut dockerfiles = vec![root().join("compose/Dockerfile")];
    for entry in std::fs::read_dir(root().join("compose/standins"))? {
        let candidate = entry?.path().join("Dockerfile");
        if candidate.is_file() {
            dockerfiles.push(candidate);
        }
    }
    ensure!(dockerfiles.len() > 1, "no stand-in Dockerfiles found");
    let output = Command::new(&hadolint)
        .arg("--no-color")
        .args(&dockerfiles)
        .output()?;
    ensure!(
        output.status.success(),
        "hadolint:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
    // And the checker is not toothless: a bad line is reported.
    let bad = Path::new(&root()).join("compose/.broken.Dockerfile");
    std::fs::write(&bad, "FROM debian\nRUN apt-get install curl\n")?;
    let output = Command::new(&hadolint).arg("--no-color").arg(&bad).output();
    std::fs::remove_file(&bad)?;
    ensure!(
        !output?.status.success(),
        "hadolint accepted an unpinned, untagged Dockerfile"
    );
    Ok(())
}
