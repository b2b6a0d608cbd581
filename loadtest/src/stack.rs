//! Bringing up a gateway natively: render its template for 127.0.0.1 and free ports, start
//! Envoy on it, wait until it is ready.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::envoy::{Envoy, EnvoyOptions};
use crate::keycloak::Keycloak;
use crate::ports::free_port;
use crate::process::ManagedProcess;
use crate::render::{self, Topology};

/// What to run: a gateway template, optionally with its plugin configuration patched.
#[derive(Debug, Clone)]
pub struct GatewaySpec {
    pub gateway: String,
    /// RFC 7386 merge patch applied to the tokengate plugin configuration.
    pub plugin_patch: Option<Value>,
    /// Envoy worker threads.
    pub concurrency: u32,
    /// `--component-log-level`, e.g. `wasm:debug`.
    pub component_log_level: Option<String>,
    /// The filter build to load; default [`crate::paths::wasm_path`] (the fast build).
    pub wasm: Option<PathBuf>,
    /// The logout listener's port (templates with one, `jwt-bcl`); default a free port.
    pub logout_port: Option<u16>,
    /// The other replica's logout port, relayed to; default [`render::NO_PEER_PORT`].
    pub peer_logout_port: Option<u16>,
    /// Adds jwt-bcl's logout listener to a template without one
    /// ([`crate::render_logout::render_with_logout`]).
    pub backchannel_logout: bool,
}

impl GatewaySpec {
    pub fn new(gateway: &str) -> GatewaySpec {
        GatewaySpec {
            gateway: gateway.to_owned(),
            plugin_patch: None,
            concurrency: 1,
            component_log_level: None,
            wasm: None,
            logout_port: None,
            peer_logout_port: None,
            backchannel_logout: false,
        }
    }

    /// Two replicas: this one's logout listener on `own`, relaying to the other's on `peer`.
    pub fn replica(mut self, own: u16, peer: u16) -> GatewaySpec {
        self.logout_port = Some(own);
        self.peer_logout_port = Some(peer);
        self
    }

    /// With the logout listener added ([`GatewaySpec::backchannel_logout`]).
    pub fn with_logout_listener(mut self) -> GatewaySpec {
        self.backchannel_logout = true;
        self
    }

    /// Loads this filter file instead of the default build.
    pub fn wasm(mut self, path: PathBuf) -> GatewaySpec {
        self.wasm = Some(path);
        self
    }

    pub fn patch(mut self, patch: Value) -> GatewaySpec {
        self.plugin_patch = Some(patch);
        self
    }

    pub fn concurrency(mut self, workers: u32) -> GatewaySpec {
        self.concurrency = workers;
        self
    }
}

pub struct RunningGateway {
    pub envoy: Envoy,
    pub config_path: PathBuf,
    pub topology: Topology,
}

impl RunningGateway {
    pub fn url(&self, path: &str) -> String {
        self.envoy.listen_url(path)
    }

    /// A URL on the logout listener (templates with one, `jwt-bcl`).
    pub fn logout_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.topology.logout_port)
    }
}

/// A gateway rendered to a file, not started.
pub struct RenderedGateway {
    pub config_path: PathBuf,
    pub topology: Topology,
}

/// Renders `spec` for a native run against the given backend and IdP ports.
pub fn render_native(
    dir: &Path,
    spec: &GatewaySpec,
    backend_port: u16,
    idp_port: u16,
) -> Result<RenderedGateway> {
    let wasm = match &spec.wasm {
        Some(path) => path.clone(),
        None => crate::paths::wasm_path()?,
    };
    let mut topology = Topology::native(
        free_port()?,
        free_port()?,
        backend_port,
        idp_port,
        wasm.display().to_string(),
    );
    topology.wasm_runtime = crate::paths::wasm_runtime();
    topology.logout_port = match spec.logout_port {
        Some(port) => port,
        None => free_port()?,
    };
    topology.peer_logout_port = spec.peer_logout_port.unwrap_or(render::NO_PEER_PORT);
    let envoy_dir = crate::paths::repo_root().join("envoy");
    let patch = spec.plugin_patch.as_ref();
    let text = if spec.backchannel_logout {
        crate::render_logout::render_with_logout(&envoy_dir, &spec.gateway, &topology, patch)
    } else {
        render::render_gateway(&envoy_dir, &spec.gateway, &topology, patch)
    }
    .with_context(|| format!("rendering gateway {}", spec.gateway))?;
    let config_path = render::write_rendered(dir, &spec.gateway, &text)?;
    Ok(RenderedGateway {
        config_path,
        topology,
    })
}

fn envoy_options(spec: &GatewaySpec) -> Result<EnvoyOptions> {
    let mut options = EnvoyOptions::from_paths()?;
    options.concurrency = spec.concurrency;
    options.component_log_level = spec.component_log_level.clone();
    Ok(options)
}

/// Renders and starts a gateway; returns once Envoy is ready.
pub fn start_gateway(
    dir: &Path,
    spec: &GatewaySpec,
    backend_port: u16,
    idp_port: u16,
) -> Result<RunningGateway> {
    let rendered = render_native(dir, spec, backend_port, idp_port)?;
    let envoy = Envoy::start(
        &rendered.config_path,
        rendered.topology.admin_port,
        rendered.topology.listen_port,
        &envoy_options(spec)?,
        dir,
    )?;
    Ok(RunningGateway {
        envoy,
        config_path: rendered.config_path,
        topology: rendered.topology,
    })
}

/// [`start_gateway`], with the rendered config changed by `edit` first (for a test that needs
/// a piece no load-tested template carries, such as an access log).
pub fn start_gateway_edited(
    dir: &Path,
    spec: &GatewaySpec,
    backend_port: u16,
    idp_port: u16,
    edit: impl FnOnce(&str) -> Result<String>,
) -> Result<RunningGateway> {
    let rendered = render_native(dir, spec, backend_port, idp_port)?;
    let text = std::fs::read_to_string(&rendered.config_path)
        .with_context(|| format!("reading {}", rendered.config_path.display()))?;
    std::fs::write(&rendered.config_path, edit(&text)?)
        .with_context(|| format!("writing {}", rendered.config_path.display()))?;
    let envoy = Envoy::start(
        &rendered.config_path,
        rendered.topology.admin_port,
        rendered.topology.listen_port,
        &envoy_options(spec)?,
        dir,
    )?;
    Ok(RunningGateway {
        envoy,
        config_path: rendered.config_path,
        topology: rendered.topology,
    })
}

/// Renders and starts a gateway that must refuse to start; returns Envoy's log.
pub fn start_gateway_expecting_refusal(
    dir: &Path,
    spec: &GatewaySpec,
    backend_port: u16,
    idp_port: u16,
) -> Result<String> {
    let rendered = render_native(dir, spec, backend_port, idp_port)?;
    Envoy::start_expecting_refusal(
        &rendered.config_path,
        &envoy_options(spec)?,
        dir,
        Duration::from_secs(30),
    )
}

/// How the native stack is sized.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Envoy worker threads per gateway.
    pub envoy_workers: u32,
    pub backend_threads: usize,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            envoy_workers: 1,
            backend_threads: 1,
        }
    }
}

/// The whole topology on 127.0.0.1: Keycloak (started here, or the one named by
/// `TOKENGATE_KEYCLOAK_URL`), the backend, and one Envoy per gateway. Everything stops when it
/// is dropped; every child also dies with this process.
pub struct NativeStack {
    pub dir: PathBuf,
    keycloak: Keycloak,
    _backend: ManagedProcess,
    pub backend_addr: SocketAddr,
    gateways: Vec<(String, RunningGateway)>,
}

impl NativeStack {
    /// Starts the stack with one Envoy per named gateway template.
    pub fn start(gateways: &[String], options: &StackOptions) -> Result<NativeStack> {
        let entries: Vec<(String, GatewaySpec)> = gateways
            .iter()
            .map(|name| (name.clone(), GatewaySpec::new(name)))
            .collect();
        Self::start_specs(&entries, options)
    }

    /// Starts the stack with one Envoy per `(label, spec)`: a label names a gateway in the
    /// stack, so the same template can run twice with different plugin patches.
    pub fn start_specs(
        gateways: &[(String, GatewaySpec)],
        options: &StackOptions,
    ) -> Result<NativeStack> {
        let dir = crate::paths::run_dir("stack");
        let envoy_dir = crate::paths::repo_root().join("envoy");
        let known = render::gateways(&envoy_dir)?;
        if let Some((_, unknown)) = gateways
            .iter()
            .find(|(_, spec)| !known.contains(&spec.gateway))
        {
            anyhow::bail!(
                "unknown gateway `{}`; envoy/ has {}",
                unknown.gateway,
                known.join(", ")
            );
        }
        let keycloak = match Keycloak::from_env()? {
            Some(external) => external,
            None => Keycloak::start(&dir.join("keycloak"))?,
        };
        let (backend, backend_addr) =
            crate::backend::spawn(&dir, "backend", options.backend_threads)?;
        let mut running = Vec::new();
        for (label, spec) in gateways {
            let gateway_dir = dir.join(label);
            crate::paths::ensure_dir(&gateway_dir)?;
            let spec = spec.clone().concurrency(options.envoy_workers);
            let gateway = start_gateway(&gateway_dir, &spec, backend_addr.port(), keycloak.port())
                .with_context(|| format!("starting gateway {label}"))?;
            running.push((label.clone(), gateway));
        }
        Ok(NativeStack {
            dir,
            keycloak,
            _backend: backend,
            backend_addr,
            gateways: running,
        })
    }

    pub fn keycloak(&self) -> &Keycloak {
        &self.keycloak
    }

    pub fn gateway(&self, name: &str) -> Option<&RunningGateway> {
        self.gateways
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, g)| g)
    }

    pub fn gateways(&self) -> impl Iterator<Item = (&str, &RunningGateway)> {
        self.gateways.iter().map(|(n, g)| (n.as_str(), g))
    }

    /// Where everything listens, one line per component.
    pub fn describe(&self) -> String {
        let mut lines = vec![
            format!(
                "keycloak   {}  (issuer {})",
                self.keycloak.base_url(),
                self.keycloak.issuer()
            ),
            format!("backend    http://{}", self.backend_addr),
        ];
        for (name, gateway) in &self.gateways {
            lines.push(format!(
                "{name:<10} {}  (admin http://127.0.0.1:{}/stats)",
                gateway.url(""),
                gateway.envoy.admin_port()
            ));
        }
        lines.push(format!("logs       {}", self.dir.display()));
        lines.join("\n")
    }
}
