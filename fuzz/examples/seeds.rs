//! Writes the committed seed corpora, `fuzz/seeds/<target>/`, from the project's test vectors:
//! the gateways' plugin configurations (envoy/*.yaml), the testkit's keys and tokens, and the
//! public keys of the Wycheproof vectors (/work/shared/testdata/wycheproof, or the directory
//! in `WYCHEPROOF_DIR`). `scripts/fuzz seeds` runs it; the output is deterministic except for
//! the tokens' signatures under randomised schemes (PS256), so rerun only when a target's
//! input format changes.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tokengate_fuzz::engine;
use tokengate_fuzz::input::Choices;
use tokengate_fuzz::keys::Key;
use tokengate_fuzz::token::mint;

fn write(root: &Path, target: &str, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let dir = root.join(target);
    fs::create_dir_all(&dir)?;
    fs::write(dir.join(name), bytes)
}

/// The JSON blocks under `value: |` in an Envoy configuration (the plugin configurations).
fn plugin_configurations(yaml: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = yaml.lines().peekable();
    while let Some(line) = lines.next() {
        if !line.trim_end().ends_with("value: |") {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let mut block = String::new();
        while let Some(next) = lines.peek() {
            let next_indent = next.len() - next.trim_start().len();
            if !next.trim().is_empty() && next_indent <= indent {
                break;
            }
            block.push_str(next.trim_start());
            block.push('\n');
            lines.next();
        }
        if block.trim_start().starts_with('{') {
            out.push(block);
        }
    }
    out
}

/// The first key of each Wycheproof file, as a JWK (`keyJwk` or `publicKeyJwk`).
fn wycheproof_jwks(dir: &Path) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    let mut files: Vec<PathBuf> = entries.flatten().map(|entry| entry.path()).collect();
    files.sort();
    for file in files {
        let Some(stem) = file.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else {
            continue;
        };
        let Ok(text) = fs::read_to_string(&file) else {
            continue;
        };
        let Ok(document) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let group = document.get("testGroups").and_then(|g| g.get(0));
        let jwk = group.and_then(|g| g.get("keyJwk").or_else(|| g.get("publicKeyJwk")));
        if let Some(jwk) = jwk {
            out.push((stem, jwk.clone()));
        }
    }
    out
}

fn main() -> std::io::Result<()> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = here.join("seeds");
    let wycheproof = std::env::var_os("WYCHEPROOF_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/shared/testdata/wycheproof"));

    // config: every gateway's configuration, and the harnesses' policies.
    let mut envoy: Vec<PathBuf> = fs::read_dir(here.join("../envoy"))?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    envoy.sort();
    for file in envoy {
        let stem = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("envoy")
            .to_owned();
        for (at, block) in plugin_configurations(&fs::read_to_string(&file)?)
            .iter()
            .enumerate()
        {
            write(
                &root,
                "config",
                &format!("envoy-{stem}-{at}.json"),
                block.as_bytes(),
            )?;
        }
    }
    write(
        &root,
        "config",
        "engine-policy.json",
        engine::policy().to_string().as_bytes(),
    )?;

    // engine: the empty input (the first base token, valid), each base token as raw text,
    // and short structured inputs.
    for (at, _) in engine::BASES.iter().enumerate() {
        let choice = [u8::try_from(at).unwrap_or(0)];
        let minted = mint(&mut Choices::new(&choice), &engine::BASES, &[], engine::NOW);
        write(
            &root,
            "engine",
            &format!("raw-base-{at}"),
            minted.token.as_bytes(),
        )?;
    }
    write(&root, "engine", "empty", b"")?;
    for (name, bytes) in [
        ("path-orders-post", &[1u8, 1, 0, 0][..]),
        (
            "device-both",
            &[6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2],
        ),
        (
            "two-requests",
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 4, 0, 0, 0],
        ),
    ] {
        write(&root, "engine", name, bytes)?;
    }

    // jwks: the test keys' sets (allow all algorithms, probe 0 and the first kid), and the
    // Wycheproof public keys.
    let mut sets = vec![(
        "testkit-all".to_owned(),
        json!({"keys": Key::ALL.iter().enumerate().map(|(at, key)| key.public_jwk(&format!("k{at}"), None)).collect::<Vec<_>>()}),
    )];
    for (at, key) in Key::ALL.iter().enumerate() {
        sets.push((
            format!("testkit-{at}"),
            json!({"keys": [key.public_jwk("k", None)]}),
        ));
    }
    for (name, jwk) in wycheproof_jwks(&wycheproof) {
        sets.push((format!("wycheproof-{name}"), json!({"keys": [jwk]})));
    }
    for (name, set) in sets {
        for probe in [0u8, 16] {
            let mut bytes = vec![0u8, probe];
            bytes.extend_from_slice(set.to_string().as_bytes());
            write(&root, "jwks", &format!("{name}-{probe}"), &bytes)?;
        }
    }

    // introspection: Keycloak-shaped answers.
    let answers = [
        json!({"active": true, "iss": "https://idp.example/realms/r", "aud": "api", "sub": "alice",
               "exp": 1_750_000_300, "iat": 1_749_999_700, "scope": "openid email",
               "token_type": "Bearer", "typ": "Bearer", "client_id": "gw",
               "realm_access": {"roles": ["user", "admin"]}}),
        json!({"active": true, "iss": "https://idp.example/realms/r", "aud": ["api", "account"],
               "scope": "email", "exp": 1_750_000_100}),
        json!({"active": false}),
        json!({"active": "true"}),
    ];
    for (at, answer) in answers.iter().enumerate() {
        let mut bytes = vec![0u8, 0];
        bytes.extend_from_slice(answer.to_string().as_bytes());
        write(&root, "introspection", &format!("answer-{at}"), &bytes)?;
    }

    // token_source, policy, worker: structured inputs from the empty one.
    for at in 0..7u8 {
        write(
            &root,
            "token_source",
            &format!("source-{at}"),
            &[at, 1, 0, 1],
        )?;
    }
    write(&root, "policy", "empty", b"")?;
    write(
        &root,
        "policy",
        "rules",
        &[3, 1, 0, 0, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 1, 1],
    )?;
    write(&root, "worker", "empty", b"")?;
    // A remote-JWT request, the JWKS answer, a wake-up; an opaque one, its answer.
    write(
        &root,
        "worker",
        "remote-then-opaque",
        &[
            0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 5, 0, 0, 0, 0, 4,
        ],
    )?;
    // logout: the unmutated logout token of each base in its form body, and raw bodies.
    for at in 0..4u8 {
        write(&root, "logout", &format!("token-{at}"), &[0, at])?;
    }
    write(&root, "logout", "form-escaped", &[0, 0, 0, 0, 0, 0, 1, 1])?;
    write(
        &root,
        "logout",
        "body-two",
        b"\x01logout_token=a.b.c&logout_token=a.b.c",
    )?;
    write(
        &root,
        "logout",
        "body-escape",
        b"\x01state=1&logout%5Ftoken=e30.e30.%2B",
    )?;
    Ok(())
}
