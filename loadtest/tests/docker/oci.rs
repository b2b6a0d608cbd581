//! The filter's OCI images as a registry serves them: Istio's WasmPlugin and Envoy Gateway pull
//! `oci://…/tokengate:<version>` and expect one layer holding the module as `plugin.wasm`.
//! Both images (`scripts/build-filter-image`) are pushed to the test run's own registry and
//! read back through the registry API, the way those pullers read them.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};
use serde_json::Value;

use super::stack::docker;

/// Manifest media types a registry may answer with for a `docker build` image.
const MANIFEST_TYPES: [&str; 2] = [
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
];
const CONFIG_TYPES: [&str; 2] = [
    "application/vnd.docker.container.image.v1+json",
    "application/vnd.oci.image.config.v1+json",
];
/// Istio's "compat" image variant: a gzipped tar layer (Docker's or OCI's media type).
const LAYER_TYPES: [&str; 2] = [
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.oci.image.layer.v1.tar+gzip",
];
const WASM_MAGIC: &[u8] = b"\0asm\x01\0\0\0";

pub fn run(command: &mut Command) -> Result<Vec<u8>> {
    let out = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    ensure!(
        out.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(out.stdout)
}

fn get(runtime: &tokio::runtime::Runtime, url: &str) -> Result<loadtest::http::Response> {
    let accept = MANIFEST_TYPES.join(", ");
    let response = runtime.block_on(loadtest::http::get(url, &[("accept", &accept)]))?;
    ensure!(
        response.status == 200,
        "GET {url}: {} {}",
        response.status,
        response.text()
    );
    Ok(response)
}

/// The file `kit` image carries at `path`.
fn file_of_image(image: &str, path: &str, into: &Path) -> Result<Vec<u8>> {
    let id = String::from_utf8(run(docker().args(["create", image]))?)?;
    let id = id.trim();
    let copied = run(docker().args(["cp", &format!("{id}:{path}")]).arg(into));
    run(docker().args(["rm", id]))?;
    copied?;
    Ok(std::fs::read(into)?)
}

/// `wasm-validate` (wabt) with `flags`: whether the module validates.
pub fn validates(wasm: &Path, flags: &[&str]) -> Result<bool> {
    let status = Command::new("wasm-validate")
        .args(flags)
        .arg(wasm)
        .output()
        .context("running wasm-validate (Debian package wabt)")?
        .status;
    Ok(status.success())
}

/// The fast filter as a fresh host build of this checkout makes it (`TOKENGATE_HOST_WASM`,
/// built by scripts/test-docker at the path the image builds at, from the same vendored
/// crates): the same sources, toolchain, flags and paths give the same bytes, so any
/// difference means the image's build did not see these sources.
pub fn host_build() -> Result<(Vec<u8>, PathBuf)> {
    let path = PathBuf::from(std::env::var("TOKENGATE_HOST_WASM").context(
        "TOKENGATE_HOST_WASM (the host build to compare the image's filter with) is not set: \
         run scripts/test-docker",
    )?);
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok((bytes, path))
}

/// The two images `scripts/build-filter-image` builds: the fast one (SIMD, the module the
/// compose stack ran and a fresh host build makes) and the portable one (no SIMD).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Fast,
    Portable,
}

/// What every check of an image needs: the registry, a directory for the files read back, the
/// module the kit image carries (the one the compose stack ran).
pub struct Checker {
    registry: String,
    dir: PathBuf,
    runtime: tokio::runtime::Runtime,
    tested: Vec<u8>,
}

impl Checker {
    pub fn new(name: &str) -> Result<Checker> {
        super::stack::daemon()?;
        let registry = std::env::var("TOKENGATE_TEST_REGISTRY").context(
            "TOKENGATE_TEST_REGISTRY (host:port of the test run's registry) is not set: run \
             scripts/test-docker",
        )?;
        let dir: PathBuf = loadtest::paths::run_dir(name);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let tested = file_of_image(
            "tokengate-kit:local",
            "/app/tokengate.wasm",
            &dir.join("kit.wasm"),
        )?;
        Ok(Checker {
            registry,
            dir,
            runtime,
            tested,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The local image `tokengate:<tag>` pushed to the registry and read back as Istio and
    /// Envoy Gateway read it: one layer holding only `plugin.wasm`, the media types, the module
    /// of `variant`. Returns the module.
    pub fn check(&self, tag: &str, variant: Variant) -> Result<Vec<u8>> {
        let (registry, dir, runtime) = (&self.registry, &self.dir, &self.runtime);
        let local = format!("tokengate:{tag}");
        let remote = format!("{registry}/tokengate:{tag}");
        run(docker().args(["tag", &local, &remote]))
            .with_context(|| format!("{local} (scripts/build-filter-image builds it)"))?;
        run(docker().args(["push", &remote]))?;

        let base = format!("http://{registry}/v2/tokengate");
        let response = get(runtime, &format!("{base}/manifests/{tag}"))?;
        let manifest = response.json()?;
        let media_type = manifest["mediaType"].as_str().unwrap_or_default();
        ensure!(
            MANIFEST_TYPES.contains(&media_type)
                && response.header("content-type") == Some(media_type)
                && manifest["schemaVersion"] == 2,
            "{remote}: manifest {manifest}"
        );
        ensure!(
            CONFIG_TYPES.contains(&manifest["config"]["mediaType"].as_str().unwrap_or_default()),
            "{remote}: config media type {}",
            manifest["config"]["mediaType"]
        );
        let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
        ensure!(
            layers.len() == 1,
            "{remote}: {} layers, one expected",
            layers.len()
        );
        let layer = &layers[0];
        ensure!(
            LAYER_TYPES.contains(&layer["mediaType"].as_str().unwrap_or_default()),
            "{remote}: layer media type {}",
            layer["mediaType"]
        );

        let config: Value = get(
            runtime,
            &format!(
                "{base}/blobs/{}",
                manifest["config"]["digest"].as_str().unwrap_or("")
            ),
        )?
        .json()?;
        ensure!(
            config["rootfs"]["diff_ids"].as_array().map(Vec::len) == Some(1)
                && config["os"] == "linux",
            "{remote}: config {config}"
        );

        // The layer: exactly plugin.wasm, the module of the right build.
        let digest = layer["digest"].as_str().unwrap_or_default();
        let blob = get(runtime, &format!("{base}/blobs/{digest}"))?.body;
        let tarball = dir.join(format!("{tag}.tar.gz"));
        std::fs::write(&tarball, &blob)?;
        let sum = String::from_utf8(run(Command::new("sha256sum").arg(&tarball))?)?;
        ensure!(
            digest.strip_prefix("sha256:") == sum.split_whitespace().next(),
            "{remote}: the layer does not match its digest {digest}"
        );
        let listing = String::from_utf8(run(Command::new("tar").arg("-tzf").arg(&tarball))?)?;
        let entries: Vec<&str> = listing
            .lines()
            .map(|line| line.trim_start_matches("./"))
            .filter(|line| !line.is_empty())
            .collect();
        ensure!(
            entries == ["plugin.wasm"],
            "{remote}: the layer holds {entries:?}, only plugin.wasm expected"
        );
        let wasm = run(Command::new("tar")
            .arg("-xzOf")
            .arg(&tarball)
            .arg("plugin.wasm"))?;
        ensure!(
            wasm.starts_with(WASM_MAGIC),
            "{remote}: plugin.wasm is not a wasm module"
        );
        let module = dir.join(format!("{tag}.wasm"));
        std::fs::write(&module, &wasm)?;
        match variant {
            Variant::Portable => ensure!(
                validates(&module, &["--disable-simd"])?,
                "{remote}: the portable module uses SIMD"
            ),
            Variant::Fast => {
                // The host build first: a module that is not these sources' build is stale,
                // whatever else it matches (a stale kit image carries the same stale module).
                let (host, host_path) = host_build()?;
                ensure!(
                    wasm == host,
                    "{remote}: plugin.wasm ({} bytes) is not the module a fresh host build of \
                     these sources makes ({}, {} bytes): the image was built from other sources \
                     (stale)",
                    wasm.len(),
                    host_path.display(),
                    host.len()
                );
                ensure!(
                    wasm == self.tested,
                    "{remote}: plugin.wasm is not the filter the compose stack ran"
                );
                ensure!(
                    !validates(&module, &["--disable-simd"])?
                        && validates(&module, &["--enable-relaxed-simd"])?,
                    "{remote}: plugin.wasm is not the fast (SIMD) build"
                );
            }
        }
        println!(
            "== oci: {remote}: {media_type}, one layer ({}, {} bytes) holding plugin.wasm ({} bytes)",
            layer["mediaType"].as_str().unwrap_or_default(),
            blob.len(),
            wasm.len()
        );
        Ok(wasm)
    }
}

pub fn check_images() -> Result<()> {
    let checker = Checker::new("docker-oci")?;
    let version = env!("CARGO_PKG_VERSION");
    checker.check(version, Variant::Fast)?;
    checker.check(&format!("{version}-portable"), Variant::Portable)?;
    Ok(())
}
