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
        let start = Instant::now();
        let mut warm = 0u64;
        while start.elapsed() < RUN_TIME / 2 || warm < 3 {
            black_box(f());
            warm += 1;
        }
        let per_iter = start.elapsed().as_secs_f64() / warm as f64;
        let iters = ((RUN_TIME.as_secs_f64() / per_iter) as u64).max(3);
        let mut samples: Vec<f64> = (0..RUNS)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..iters {
                    black_box(f());
                }
                t.elapsed().as_secs_f64() * 1e6 / iters as f64
            })
            .collect();
        samples.sort_by(f64::total_cmp);
        let (median, min) = (samples[RUNS / 2], samples[0]);
        println!("{name:<66} {median:>9.2} µs  (min {min:>9.2})");
        self.rows.push((name.to_owned(), median, min));
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
