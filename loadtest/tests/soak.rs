//! A short soak through one Envoy worker: 50 000 distinct tokens (two passes of valid ones,
//! then ones with bad signatures). Asserts that every answer is as expected, that tokengate's
//! cache gauge never passes its configured bound (and reaches it: the bound is what is being
//! tested), that Envoy's RSS stays flat over the second pass (the cache full throughout), and
//! that its RSS at the end is not far above its RSS once the cache was full.
//! The long run is `loadtest soak` (see its --help).
//!
//! The filter is `TOKENGATE_WASM` if set (as everywhere in the kit), else the release build:
//! `TOKENGATE_WASM=/path/to/variant.wasm cargo test -p loadtest --test soak` soaks another build.

use std::time::Duration;

use loadtest::soak::{Options, run};

const CACHE: u64 = 2048;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distinct_tokens_leave_the_cache_bounded_and_memory_flat() {
    let options = Options {
        valid: 15_000,
        invalid: 20_000,
        connections: 16,
        cache_entries: CACHE,
        checkpoints: 5,
        max_duration: Duration::from_secs(600),
        minting_threads: 1,
    };
    let report = run(&options).await.unwrap();
    println!("{}", report.render());
    assert_eq!(report.errors(), 0, "{}", report.render());
    assert_eq!(report.max_cache_entries(), CACHE, "{}", report.render());
    // Over the second pass of valid tokens the cache is full throughout, so resident memory
    // stays flat (measured: +0 MiB, 124.9 MiB throughout); a cache that never evicts grows it
    // by ~0.9 KiB a token (+13.7 MiB over the pass). 4 MiB is ~280 bytes a token. This does
    // not trust the gauge: it catches entries the gauge does not count.
    let (before, after) = report.rss_over_phase("valid again").unwrap();
    assert!(
        after <= before + 4 * 1024,
        "RSS grew from {before} KiB to {after} KiB over 15 000 tokens with the cache full:\n{}",
        report.render()
    );
    // After the first reading (3000 tokens, the cache full) the worker has seen every kind of
    // allocation it will make; 47 000 more distinct tokens may not add more than a quarter
    // (plus 16 MiB for the allocator's own rounding). A leak of even 200 bytes a token
    // (~9 MiB here) on top of noise trips it only with luck; the long run is where small
    // leaks show.
    let (after_fill, end) = report.rss_after_fill_and_end(3000).unwrap();
    assert!(
        end <= after_fill + after_fill / 4 + 16 * 1024,
        "RSS grew from {after_fill} KiB after the fill to {end} KiB:\n{}",
        report.render()
    );
}
