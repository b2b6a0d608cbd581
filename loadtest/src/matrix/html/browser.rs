//! `report.html` in a real browser: headless Chromium (Debian's `chromium`) loads the report
//! from `file://`, a probe copy of it records what was laid out (boxes of the verdict grid,
//! the GAP cell, the charts; errors the page raised) into the DOM it dumps, and a second load
//! writes the first screen as `report.png`. The report itself stays script-free: only the
//! probe copy, written next to it and removed afterwards, carries the measuring script.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

/// The first screen a reader sees: the GAP row must be inside it.
pub const FIRST_SCREEN: (u32, u32) = (1280, 800);

/// A Chromium that does not answer within this is stuck (a first start takes a few seconds).
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(90);

/// Where the probe's findings are left in the dumped DOM.
const PROBE_ID: &str = "tokengate-probe";

/// Collects errors from the moment the page starts parsing (a resource that fails to load
/// fires `error` on its element, caught in the capture phase).
const PROBE_HEAD: &str = "<script>(function(){var e=[];window.__tgErrors=e;\
window.addEventListener('error',function(v){e.push(String(v.message||(v.target&&v.target.\
outerHTML||'').slice(0,120)||'error'))},true);var c=console.error;console.error=function()\
{e.push(Array.prototype.join.call(arguments,' '));c.apply(console,arguments)};})();</script>";

/// Measures after the whole body is parsed; the boxes are viewport-relative, so a box whose
/// bottom is at most the viewport's height is on the first screen.
const PROBE_TAIL: &str = "<script>(function(){function b(x){if(!x)return null;\
var r=x.getBoundingClientRect();return{top:r.top,bottom:r.bottom,width:r.width,height:r.height}}\
var q=function(s){return document.querySelector(s)};\
var g=q('#verdict-grid tr[data-gateway=\"jwt-no-exp\"] td[data-scenario=\"api-expired\"]');\
var charts=[].map.call(document.querySelectorAll('figure.chart'),function(f){\
return{name:f.getAttribute('data-chart'),shown:!f.closest('details:not([open])'),\
box:b(f.querySelector('svg'))}});\
var o={viewport:{width:innerWidth,height:innerHeight},headline:b(q('#headline')),\
headline_text:q('#headline')&&q('#headline').textContent,verdict_grid:b(q('#verdict-grid')),\
gap_cell:b(g),gap_cell_text:g&&g.textContent,gap_cell_class:g&&g.className,\
writeup_table:b(q('#writeup-table')),charts:charts,errors:window.__tgErrors};\
var p=document.createElement('pre');p.id='tokengate-probe';p.textContent=JSON.stringify(o);\
document.body.appendChild(p);})();</script>";

/// The Chromium to use: `$TOKENGATE_CHROMIUM`, else the first of Debian's and other common
/// names on `PATH`.
pub fn find_chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("TOKENGATE_CHROMIUM").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// What the probe found, as the page laid it out.
#[derive(Debug)]
pub struct Probe {
    /// The probe's JSON: `viewport`, `headline`, `verdict_grid`, `gap_cell` (boxes with
    /// `top`, `bottom`, `width`, `height`), `charts` (`name`, `shown`, `box`), `errors`.
    pub layout: serde_json::Value,
    /// Console messages Chromium logged for the page (`--enable-logging=stderr`).
    pub console_errors: Vec<String>,
}

/// Loads `html` (in its own directory, so relative references would resolve as the report's
/// do) with the probe and returns what it recorded.
pub fn probe(chromium: &Path, html: &Path, window: (u32, u32)) -> Result<Probe> {
    let text =
        std::fs::read_to_string(html).with_context(|| format!("reading {}", html.display()))?;
    let with_probe = text
        .replacen("<head>", &format!("<head>{PROBE_HEAD}"), 1)
        .replacen("</body>", &format!("{PROBE_TAIL}</body>"), 1);
    let copy = html.with_extension("probe.html");
    std::fs::write(&copy, with_probe).with_context(|| format!("writing {}", copy.display()))?;
    let run = run_chromium(chromium, &copy, window, &["--dump-dom"]);
    let _ = std::fs::remove_file(&copy);
    let (stdout, stderr) = run?;
    let start = stdout
        .find(&format!("<pre id=\"{PROBE_ID}\">"))
        .ok_or_else(|| anyhow!("the probe left nothing in the DOM Chromium dumped"))?;
    let json = &stdout[start..];
    let json = &json[json.find('>').map_or(0, |i| i + 1)..];
    let json = &json[..json.find("</pre>").unwrap_or(json.len())];
    let json = json
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&");
    let layout = serde_json::from_str(&json).context("the probe's JSON")?;
    Ok(Probe {
        layout,
        console_errors: console_errors(&stderr),
    })
}

/// Writes the first screen of `html` as a PNG.
pub fn screenshot(chromium: &Path, html: &Path, png: &Path, window: (u32, u32)) -> Result<()> {
    let flag = format!("--screenshot={}", png.display());
    let _ = std::fs::remove_file(png);
    run_chromium(chromium, html, window, &[flag.as_str()])?;
    let size = std::fs::metadata(png).map(|m| m.len()).unwrap_or(0);
    if size == 0 {
        bail!("Chromium wrote no screenshot at {}", png.display());
    }
    Ok(())
}

/// After `loadtest run` wrote the report: `report.png` next to `report.html` when Chromium is
/// here, else a note saying how to get one. Never fails the run: the report is written.
pub fn screenshot_or_note(dir: &Path) {
    let html = dir.join("report.html");
    let png = dir.join("report.png");
    match find_chromium() {
        None => eprintln!(
            "note: no Chromium found, so no report.png (scripts/setup installs Debian's \
             chromium; or set TOKENGATE_CHROMIUM)"
        ),
        Some(chromium) => match screenshot(&chromium, &html, &png, FIRST_SCREEN) {
            Ok(()) => eprintln!("screenshot of the report's first screen: {}", png.display()),
            Err(err) => eprintln!("note: no report.png: {err:#}"),
        },
    }
}

/// Every console message Chromium logged for the page. Its log gives every level as INFO, and
/// the report runs no script and the probe writes nothing to the console, so any message at all
/// is the browser's complaint about the page (an uncaught exception, a console.error).
fn console_errors(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|line| line.contains(":CONSOLE"))
        .map(str::to_owned)
        .collect()
}

/// Runs headless Chromium on `page` with `extra` flags, in a profile of its own, bounded in
/// time; returns its stdout and stderr.
fn run_chromium(
    chromium: &Path,
    page: &Path,
    (width, height): (u32, u32),
    extra: &[&str],
) -> Result<(String, String)> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let page = page
        .canonicalize()
        .with_context(|| format!("finding {}", page.display()))?;
    let profile = std::env::temp_dir().join(format!(
        "tokengate-chromium-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let out = profile.join("stdout");
    let err = profile.join("stderr");
    std::fs::create_dir_all(&profile)?;
    let result = (|| -> Result<(String, String)> {
        let mut child = Command::new(chromium)
            .args([
                "--headless",
                // Root in a container has no user namespace sandbox to offer.
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--hide-scrollbars",
                "--enable-logging=stderr",
                "--v=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("--window-size={width},{height}"))
            .args(extra)
            .arg(format!("file://{}", page.display()))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out)?)
            .stderr(std::fs::File::create(&err)?)
            .spawn()
            .with_context(|| format!("starting {}", chromium.display()))?;
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if started.elapsed() > CHROMIUM_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "{} did not finish in {CHROMIUM_TIMEOUT:?}",
                    chromium.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let stdout = std::fs::read_to_string(&out).unwrap_or_default();
        let stderr = std::fs::read_to_string(&err).unwrap_or_default();
        if !status.success() {
            let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
            bail!(
                "{} exited with {status}: {}",
                chromium.display(),
                tail.join(" | ")
            );
        }
        Ok((stdout, stderr))
    })();
    let _ = std::fs::remove_dir_all(&profile);
    result
}
