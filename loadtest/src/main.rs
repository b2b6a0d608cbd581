//! `loadtest`: bring up the native stack, run the scenario matrix, render Envoy configs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use loadtest::keycloak::Keycloak;
use loadtest::render::{self, Topology};
use loadtest::stack::{NativeStack, StackOptions};

#[derive(Parser)]
#[command(name = "loadtest", version, about = "tokengate's native stack runner and load driver")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start Keycloak, the backend and Envoy with the given gateways on free 127.0.0.1
    /// ports; print the URLs; tear everything down on Ctrl-C.
    Up {
        /// Gateways (templates in envoy/), comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "jwt")]
        gateway: Vec<String>,
        /// Envoy worker threads per gateway.
        #[arg(long, default_value_t = 1)]
        envoy_workers: u32,
    },
    /// Start one Keycloak with the repo's realm and keep it running until Ctrl-C / SIGTERM.
    Keycloak {
        /// Write `TOKENGATE_KEYCLOAK_URL=...` lines here once Keycloak is ready.
        #[arg(long)]
        env_file: Option<PathBuf>,
    },
    /// Render gateway templates for an environment.
    Render {
        /// Gateways to render, comma-separated; all when omitted.
        #[arg(long, value_delimiter = ',')]
        gateway: Vec<String>,
        #[arg(long, value_enum, default_value_t = Profile::Compose)]
        profile: Profile,
        /// Output directory (one `<gateway>.yaml` each).
        #[arg(long)]
        out: PathBuf,
        /// Templates directory.
        #[arg(long)]
        envoy_dir: Option<PathBuf>,
        /// Wasm path as Envoy will see it (compose default: /etc/envoy/tokengate.wasm).
        #[arg(long)]
        wasm_path: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Profile {
    /// Service hostnames of compose/docker-compose.yml.
    Compose,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up {
            gateway,
            envoy_workers,
        } => up(&gateway, envoy_workers),
        Command::Keycloak { env_file } => keycloak(env_file),
        Command::Render {
            gateway,
            profile,
            out,
            envoy_dir,
            wasm_path,
        } => render_templates(&gateway, profile, &out, envoy_dir, wasm_path),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("loadtest: {err:#}");
            ExitCode::from(1)
        }
    }
}

/// Blocks until Ctrl-C or SIGTERM.
fn wait_for_shutdown() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result?,
            _ = term.recv() => {}
        }
        Ok(())
    })
}

fn up(gateways: &[String], envoy_workers: u32) -> Result<()> {
    let options = StackOptions {
        envoy_workers,
        ..StackOptions::default()
    };
    eprintln!("starting Keycloak, the backend and {} ...", gateways.join(", "));
    let stack = NativeStack::start(gateways, &options)?;
    println!("{}", stack.describe());
    println!("Ctrl-C stops everything.");
    wait_for_shutdown()?;
    eprintln!("stopping ...");
    drop(stack);
    Ok(())
}

fn keycloak(env_file: Option<PathBuf>) -> Result<()> {
    let dir = loadtest::paths::run_dir("keycloak");
    let keycloak = Keycloak::start(&dir)?;
    let mut lines = vec![format!("TOKENGATE_KEYCLOAK_URL={}", keycloak.base_url())];
    if let Some(management) = keycloak.management_url() {
        lines.push(format!("TOKENGATE_KEYCLOAK_MANAGEMENT_URL={management}"));
    }
    let text = lines.join("\n") + "\n";
    if let Some(path) = env_file {
        // Written whole, then renamed: a reader never sees half a file.
        let partial = path.with_extension("partial");
        std::fs::write(&partial, &text).with_context(|| format!("writing {}", partial.display()))?;
        std::fs::rename(&partial, &path)?;
    }
    print!("{text}");
    if let Some(start) = keycloak.startup_duration() {
        eprintln!("Keycloak ready in {start:.1?}; Ctrl-C or SIGTERM stops it");
    }
    wait_for_shutdown()?;
    keycloak.stop()
}

fn render_templates(
    gateways: &[String],
    profile: Profile,
    out: &std::path::Path,
    envoy_dir: Option<PathBuf>,
    wasm_path: Option<String>,
) -> Result<()> {
    let envoy_dir = envoy_dir.unwrap_or_else(|| loadtest::paths::repo_root().join("envoy"));
    let mut topology = match profile {
        Profile::Compose => Topology::compose(),
    };
    if let Some(wasm_path) = wasm_path {
        topology.wasm_path = wasm_path;
    }
    let names = if gateways.is_empty() {
        render::gateways(&envoy_dir)?
    } else {
        gateways.to_vec()
    };
    for name in names {
        let text = render::render_gateway(&envoy_dir, &name, &topology, None)?;
        let path = render::write_rendered(out, &name, &text)?;
        println!("{}", path.display());
    }
    Ok(())
}
