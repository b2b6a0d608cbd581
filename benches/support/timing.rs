//! The timing loop the core's benchmarks share (`benches/rsa`, `benches/engine.rs`), natively
//! and under WASI: each benchmark is warmed up (V8 tiers hot functions up), then timed in
//! `RUNS` runs of about `RUN_TIME`; the median and minimum per operation are printed.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// Timed runs per benchmark; the median is reported.
pub const RUNS: usize = 7;
/// Target duration of one timed run.
const RUN_TIME: Duration = Duration::from_millis(150);

pub struct Bench {
    filter: Option<String>,
    /// Name, median µs, minimum µs of every benchmark run so far.
    pub rows: Vec<(String, f64, f64)>,
}

impl Bench {
    /// `cargo bench` passes `--bench`; any argument not starting with `-` filters by name.
    pub fn from_args() -> Bench {
        Bench {
            filter: std::env::args().skip(1).find(|arg| !arg.starts_with('-')),
            rows: Vec::new(),
        }
    }

    /// Whether the name filter selects `name` (to skip costly preparation too).
    pub fn wants(&self, name: &str) -> bool {
        self.filter
            .as_deref()
            .is_none_or(|filter| name.contains(filter))
    }

    /// Times `f` (which must return true: it is checked once before timing).
    pub fn run(&mut self, name: &str, mut f: impl FnMut() -> bool) {
        if !self.wants(name) {
            return;
        }
        assert!(f(), "{name}: the operation failed");
        let (median, min) = time(|calls| {
            let t = Instant::now();
            for _ in 0..calls {
                black_box(f());
            }
            t.elapsed()
        });
        self.report(name, median, min);
    }

    /// Times `f` with the CPU's caches cold: before each call `evictor` writes over more
    /// memory than the caches hold, outside the timed span (each call is timed alone, so a row
    /// includes one clock read, well under 1 µs). This is how the filter runs inside a proxy,
    /// where the proxy's own work between two requests evicts the filter's code and data.
    pub fn run_cold(&mut self, name: &str, evictor: &mut Evictor, mut f: impl FnMut() -> bool) {
        if !self.wants(name) {
            return;
        }
        assert!(f(), "{name}: the operation failed");
        let (median, min) = time(|calls| {
            (0..calls)
                .map(|_| {
                    evictor.evict();
                    let t = Instant::now();
                    black_box(f());
                    t.elapsed()
                })
                .sum()
        });
        self.report(name, median, min);
    }

    fn report(&mut self, name: &str, median: f64, min: f64) {
        println!("{name:<66} {median:>9.2} µs  (min {min:>9.2})");
        self.rows.push((name.to_owned(), median, min));
    }
}

/// The median and the minimum µs per call over `RUNS` runs of `measure(calls)`, which makes
/// `calls` calls and returns the time they took. Warmed up first; each run lasts about
/// `RUN_TIME` of wall-clock time, whatever `measure` does besides the timed calls.
fn time(mut measure: impl FnMut(u32) -> Duration) -> (f64, f64) {
    let start = Instant::now();
    let mut warm = 0u32;
    while start.elapsed() < RUN_TIME / 2 || warm < 3 {
        measure(1);
        warm += 1;
    }
    let pace = f64::from(warm) / start.elapsed().as_secs_f64();
    let calls = ((RUN_TIME.as_secs_f64() * pace) as u32).max(3);
    let mut samples: Vec<f64> = (0..RUNS)
        .map(|_| measure(calls).as_secs_f64() * 1e6 / f64::from(calls))
        .collect();
    samples.sort_by(f64::total_cmp);
    (samples[RUNS / 2], samples[0])
}

/// Memory written one byte per cache line, to push everything else out of the caches.
pub struct Evictor {
    lines: Vec<u8>,
    round: u8,
}

impl Evictor {
    /// Larger than the L2 and the share of L3 one core of a small machine has.
    const BYTES: usize = 4 << 20;
    const LINE: usize = 64;

    pub fn new() -> Evictor {
        Evictor {
            lines: vec![0; Self::BYTES],
            round: 0,
        }
    }

    /// Writes every line (a new value each round, so no write can be skipped).
    pub fn evict(&mut self) {
        self.round = self.round.wrapping_add(1);
        for line in self.lines.iter_mut().step_by(Self::LINE) {
            *line = line.wrapping_add(self.round);
        }
        black_box(&self.lines);
    }
}

/// What the numbers were measured on.
pub fn target_name() -> &'static str {
    if cfg!(target_arch = "wasm32") {
        if cfg!(target_feature = "simd128") {
            "wasm32 (simd128)"
        } else {
            "wasm32 (no simd128)"
        }
    } else {
        std::env::consts::ARCH
    }
}
