//! The stale-image check can fail. An image whose `plugin.wasm` is not what these sources build
//! must be refused, and for that reason: the module of a fresh host build with one custom
//! section appended is still a valid module of the fast build, in the same one-layer layout,
//! as an image built from other sources would be; only its bytes differ. It goes through the
//! same check as `tokengate:<version>` (pushed, read back from the registry, compared).

use anyhow::{Result, bail, ensure};

use super::oci::{Checker, Variant, host_build, run, validates};
use super::stack::docker;

/// `module` with a custom section (id 0: engines ignore it) appended.
fn with_custom_section(module: &[u8], name: &str, payload: &[u8]) -> Vec<u8> {
    fn leb128(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let mut body = Vec::new();
    leb128(name.len(), &mut body);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(payload);
    let mut out = module.to_vec();
    out.push(0);
    leb128(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

pub fn a_stale_image_fails_the_check() -> Result<()> {
    let checker = Checker::new("docker-oci-stale")?;
    let tag = format!("{}-stale", env!("CARGO_PKG_VERSION"));
    let (host, _) = host_build()?;
    let stale = with_custom_section(&host, "tokengate-stale", b"built from other sources");
    ensure!(stale != host, "the stale module is the host build's");

    // The layout scripts/build-filter-image gives the real image: FROM scratch, /plugin.wasm.
    let context = checker.dir().join("stale-image");
    std::fs::create_dir_all(&context)?;
    std::fs::write(context.join("plugin.wasm"), &stale)?;
    std::fs::write(
        context.join("Dockerfile"),
        "FROM scratch\nCOPY plugin.wasm /plugin.wasm\n",
    )?;
    ensure!(
        validates(&context.join("plugin.wasm"), &["--enable-relaxed-simd"])?
            && !validates(&context.join("plugin.wasm"), &["--disable-simd"])?,
        "the stale module is not a valid fast build: only its bytes may differ"
    );
    let local = format!("tokengate:{tag}");
    run(docker()
        .args(["build", "--quiet", "-t", &local])
        .arg(&context))?;

    let result = checker.check(&tag, Variant::Fast);
    // The tags go whatever the outcome (the registry is the run's own and goes with it). The
    // registry's tag is there only when the check got as far as pushing.
    let removed = run(docker().args(["rmi", &local]));
    let _ = run(docker().args(["rmi", &format!("{}/{local}", checker.registry())]));
    let message = match result {
        Ok(_) => bail!("{local}, whose plugin.wasm is not these sources' build, passed the check"),
        Err(err) => format!("{err:#}"),
    };
    removed?;
    ensure!(
        message.contains("is not the module a fresh host build of these sources makes")
            && message.contains("(stale)"),
        "{local} failed the check, but not as stale: {message}"
    );
    println!("== oci: {local} (a stale plugin.wasm) failed the check as it must: {message}");
    Ok(())
}
