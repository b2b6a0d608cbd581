//! A short soak through one Envoy worker: 50 000 distinct tokens (two passes of valid ones,
//! then ones with bad signatures). Asserts that every answer is as expected, that tokengate's
//! cache gauge never passes its configured bound (and reaches it: the bound is what is being
//! tested), and that Envoy's RSS at the end is not far above its RSS once the cache was full.
//! The long run is `loadtest soak` (see its --help).

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
