//! Static checks of `compose/docker-compose.yml`, for machines without a Docker engine.
//!
//! `docker-compose config` (Debian's 1.29 parses without an engine) checks the file against
//! the Compose schema and resolves it for every `GATEWAY`; the checks here then make sure the
//! resolved stack is the one the native runner builds: the same Envoy templates rendered by the
//! same renderer for [`Topology::compose`], the same realm file, the Envoy and Keycloak
//! versions the tests run, and no dangling service, mount or config path.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, anyhow};
use serde_json::Value;

use crate::render::{self, Topology};

/// Services the topology needs.
pub const SERVICES: [&str; 5] = ["keycloak", "backend", "gateway-config", "envoy", "loadtest"];

/// The Envoy version the native stack runs (`scripts/setup`'s `ENVOY_VERSION`).
pub fn envoy_version(repo_root: &Path) -> Result<String> {
    let setup = std::fs::read_to_string(repo_root.join("scripts/setup"))?;
    setup
        .lines()
        .find_map(|line| line.strip_prefix("ENVOY_VERSION="))
        .map(|v| v.trim().to_owned())
        .ok_or_else(|| anyhow!("scripts/setup has no ENVOY_VERSION"))
}

/// `docker-compose -f FILE config` with `GATEWAY` set, as JSON.
fn resolved(compose_file: &Path, gateway: &str) -> Result<std::result::Result<Value, String>> {
    let output = Command::new("docker-compose")
        .arg("-f")
        .arg(compose_file)
        .arg("config")
        .env("GATEWAY", gateway)
        .output()
        .context(
            "running docker-compose (Debian package docker-compose; scripts/setup installs it)",
        )?;
    if !output.status.success() {
        return Ok(Err(String::from_utf8_lossy(&output.stderr)
            .trim()
            .to_owned()));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let yaml: serde_norway::Value = serde_norway::from_str(&text)?;
    Ok(Ok(serde_json::to_value(yaml)?))
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| match item {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `source:target[:mode]` volume strings of a service.
fn volumes(service: &Value) -> Vec<(String, String)> {
    strings(&service["volumes"])
        .iter()
        .filter_map(|v| {
            let mut parts = v.split(':');
            Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
        })
        .collect()
}

/// Back-channel logout: the gateways the matrix sends logouts to (jwt, hybrid) are rendered
/// with the logout listener, on the port the driver registers at Keycloak as the minting
/// client's back-channel URL (`envoy:<logout port>` inside the compose network; not published).
fn logout_problems(
    envoy_dir: &Path,
    gateway: &str,
    topology: &Topology,
    render_command: &str,
    driver: &str,
) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    if !render_command.contains("--backchannel-logout") {
        problems.push(
            "gateway-config does not render the back-channel logout listener \
             (`loadtest render --backchannel-logout`)"
                .to_owned(),
        );
    }
    let url = format!(
        "--target-logout-url http://envoy:{}{}",
        topology.logout_port,
        crate::render_logout::LOGOUT_PATH
    );
    if !driver.contains(&url) {
        problems.push(format!("loadtest is not run with `{url}`"));
    }
    let receives = crate::matrix::scenario::profile(gateway).is_some_and(|p| p.receives_logouts);
    if receives {
        let text = crate::render_logout::render_with_logout(envoy_dir, gateway, topology, None)?;
        let doc: Value = serde_norway::from_str(&text)?;
        let listening = doc["static_resources"]["listeners"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|listener| {
                listener["name"] == "logout"
                    && listener["address"]["socket_address"]["port_value"] == topology.logout_port
            });
        if !listening {
            problems.push(format!(
                "the rendered {gateway} has no logout listener on port {}",
                topology.logout_port
            ));
        }
    }
    Ok(problems)
}

/// Every problem found, one line each; empty when the compose file is consistent.
pub fn check(compose_file: &Path, repo_root: &Path) -> Result<Vec<String>> {
    let envoy_dir = repo_root.join("envoy");
    let gateways = render::gateways(&envoy_dir)?;
    let topology = Topology::compose();
    let wasm_dir = Path::new(&topology.wasm_path)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let envoy_version = envoy_version(repo_root)?;
    let realms = crate::keycloak::realm_files_in(&repo_root.join(crate::keycloak::REALM_DIR))?;
    let mut problems = Vec::new();
    for gateway in &gateways {
        let config = match resolved(compose_file, gateway)? {
            Ok(config) => config,
            Err(error) => {
                problems.push(format!(
                    "GATEWAY={gateway}: docker-compose config fails: {error}"
                ));
                continue;
            }
        };
        let services = &config["services"];
        let mut problem = |text: String| problems.push(format!("GATEWAY={gateway}: {text}"));
        for name in SERVICES {
            if services.get(name).is_none() {
                problem(format!("service `{name}` is missing"));
            }
        }
        let Some(map) = services.as_object() else {
            continue;
        };
        for (name, service) in map {
            for dependency in service["depends_on"]
                .as_object()
                .into_iter()
                .flat_map(|d| d.keys())
            {
                if !map.contains_key(dependency) {
                    problem(format!(
                        "`{name}` depends on undefined service `{dependency}`"
                    ));
                }
            }
            for (source, target) in volumes(service) {
                if source.starts_with('/')
                    && !source.ends_with("/out")
                    && !Path::new(&source).exists()
                {
                    problem(format!(
                        "`{name}` mounts {source} (for {target}), which does not exist"
                    ));
                }
            }
        }

        // Keycloak: the pinned version, every realm of the repo.
        let keycloak = &services["keycloak"];
        let image = keycloak["image"].as_str().unwrap_or_default();
        if image != format!("quay.io/keycloak/keycloak:{}", crate::keycloak::VERSION) {
            problem(format!(
                "keycloak image {image} is not the tested {}",
                crate::keycloak::VERSION
            ));
        }
        for realm in &realms {
            let realm_mounted = volumes(keycloak).iter().any(|(source, target)| {
                Path::new(source) == realm && target.starts_with("/opt/keycloak/data/import/")
            });
            if !realm_mounted {
                problem(format!("keycloak does not import {}", realm.display()));
            }
        }

        // Envoy: the tested version, the config rendered for this gateway, the filter beside it.
        let envoy = &services["envoy"];
        let image = envoy["image"].as_str().unwrap_or_default();
        if image != format!("envoyproxy/envoy:v{envoy_version}") {
            problem(format!(
                "envoy image {image} is not the tested {envoy_version}"
            ));
        }
        let config_path = wasm_dir.join(format!("{gateway}.yaml"));
        let command = strings(&envoy["command"]);
        if !command.iter().any(|arg| Path::new(arg) == config_path) {
            problem(format!(
                "envoy does not run {} (command: {})",
                config_path.display(),
                command.join(" ")
            ));
        }
        let envoy_mount = volumes(envoy)
            .into_iter()
            .find(|(_, target)| Path::new(target) == wasm_dir);
        let render_command = strings(&services["gateway-config"]["command"]).join(" ");
        match envoy_mount {
            None => problem(format!("envoy mounts nothing at {}", wasm_dir.display())),
            Some((volume, _)) => {
                let rendered_into = volumes(&services["gateway-config"])
                    .into_iter()
                    .find(|(source, _)| *source == volume)
                    .map(|(_, target)| target);
                match rendered_into {
                    None => problem(format!(
                        "gateway-config does not write the `{volume}` volume envoy reads"
                    )),
                    Some(dir) => {
                        if !render_command.contains("loadtest render")
                            || !render_command.contains(&format!("--out {dir}"))
                        {
                            problem(format!(
                                "gateway-config does not render with `loadtest render --out {dir}`"
                            ));
                        }
                        if !render_command.contains(&format!("{dir}/tokengate.wasm")) {
                            problem(format!(
                                "gateway-config does not place the filter at {dir}/tokengate.wasm"
                            ));
                        }
                    }
                }
            }
        }
        if services["gateway-config"]["environment"]["GATEWAY"] != Value::String(gateway.clone()) {
            problem("gateway-config does not receive GATEWAY".to_owned());
        }

        // Backend and driver: the addresses the compose topology renders into the configs.
        let backend = strings(&services["backend"]["command"]).join(" ");
        if !backend.contains(&format!(":{}", topology.backend_port)) {
            problem(format!(
                "backend does not listen on port {}",
                topology.backend_port
            ));
        }
        let driver = strings(&services["loadtest"]["command"]).join(" ");
        for expected in [
            format!("--target http://envoy:{}", topology.listen_port),
            format!("--target-gateway {gateway}"),
            format!(
                "--keycloak http://{}:{}",
                topology.idp_host, topology.idp_port
            ),
        ] {
            if !driver.contains(&expected) {
                problem(format!("loadtest is not run with `{expected}`"));
            }
        }
        logout_problems(&envoy_dir, gateway, &topology, &render_command, &driver)?
            .into_iter()
            .for_each(&mut problem);
        for service in ["keycloak", "envoy"] {
            if services[service]["healthcheck"].is_null() {
                problem(format!(
                    "`{service}` has no healthcheck (others wait for it)"
                ));
            }
        }
    }
    Ok(problems)
}
