//! tokengate against Envoy's own jwt_authn, in one real Envoy: a few thousand generated
//! tokens (the fixed edge cases and seeded random ones) sent to both listeners. Nothing
//! tokengate admits may be refused by jwt_authn unless it is a listed intended difference;
//! where tokengate is stricter is printed (`-- --nocapture`). The larger run is
//! `loadtest differential --count N --seed S`.

use loadtest::differential::{Options, run};
use serde_json::json;

fn options(count: usize) -> Options {
    Options {
        seed: 14,
        count,
        concurrency: 16,
        tokengate_patch: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokengate_admits_nothing_jwt_authn_refuses() {
    let started = std::time::Instant::now();
    let report = run(&options(3000)).await.unwrap();
    println!("sent in {:?}", started.elapsed());
    println!("{}", report.render());
    assert!(
        report.total >= 2900,
        "only {} tokens were sent",
        report.total
    );
    assert!(report.passed(), "{}", report.render());
    // Not vacuous: both admitted the valid cases and refused many others.
    assert!(report.both_admitted >= 9, "{}", report.render());
    assert!(report.both_refused >= 1000, "{}", report.render());
}

/// The comparison catches a filter that admits too much: tokengate given a minute of leeway
/// where jwt_authn has five seconds admits the tokens that expired beyond the skew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wider_clock_skew_is_caught() {
    let mut options = options(0);
    options.tokengate_patch = Some(json!({"clock_skew_seconds": 60}));
    let report = run(&options).await.unwrap();
    let labels: Vec<&str> = report.unintended.iter().map(|f| f.label.as_str()).collect();
    assert!(!report.passed(), "{}", report.render());
    for expected in ["exp beyond the skew", "nbf beyond the skew"] {
        assert!(
            labels.contains(&expected),
            "{expected} missing from {labels:?}"
        );
    }
}
