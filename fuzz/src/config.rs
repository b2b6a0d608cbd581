//! The plugin configuration parser on arbitrary bytes (seeds: the gateways' and the tests'
//! configurations; dictionary: every field name).
//!
//! Invariants: no panic; an error is one non-empty line naming a field; an accepted
//! configuration builds an engine and a worker (from the same bytes), parses the same twice,
//! and decides a request without a token and one with a malformed token within the rules of
//! refusals (no 5xx but 503, and 503 only for keys that are not loaded yet).

use tokengate::config;
use tokengate::engine::{Decision, Engine, Request};
use tokengate::filter::Worker;
use tokengate::filter::fake::FakeHost;
use tokengate::rejection::Rejection;

use crate::oracle;

/// Runs one input.
pub fn run(data: &[u8]) {
    let parsed = config::parse(data);
    let config = match parsed {
        Err(err) => {
            let line = err.to_string();
            assert!(!line.is_empty() && !line.contains('\n'), "error {line:?}");
            assert!(
                Worker::configure(&mut FakeHost::new(), data, Some(1)).is_err(),
                "the worker accepts what the parser refuses"
            );
            return;
        }
        Ok(config) => config,
    };
    // The second parse must decide alike (its Debug text may differ: key sets index kids in a
    // randomly seeded hash map).
    let again = config::parse(data).expect("parses the second time");
    let _ = config.warnings();
    let mut host = FakeHost::new();
    if let Err(err) = Worker::configure(&mut host, data, Some(1)) {
        panic!("the parser accepts, the worker refuses: {err}");
    }
    let mut engine = Engine::new(config);
    let mut second = Engine::new(again);
    for token in [None, Some("Bearer not.a.jwt"), Some("Bearer opaque")] {
        let mut headers = vec![
            (":path".to_owned(), b"/".to_vec()),
            (":method".to_owned(), b"GET".to_vec()),
            (":authority".to_owned(), b"api.example.com".to_vec()),
        ];
        if let Some(token) = token {
            headers.push(("authorization".to_owned(), token.as_bytes().to_vec()));
        }
        let request = Request::with_headers(headers);
        let evaluation = engine.authenticate(&request, 1_750_000_000);
        let repeated = second.authenticate(&request, 1_750_000_000);
        assert_eq!(
            (&evaluation.decision, evaluation.rule, evaluation.provider),
            (&repeated.decision, repeated.rule, repeated.provider),
            "the same configuration parsed twice decides otherwise"
        );
        if let Decision::Deny(rejection) = &evaluation.decision {
            oracle::check_rejection(rejection);
            assert!(
                !matches!(
                    rejection,
                    Rejection::ClockUnavailable | Rejection::IdpUnavailable(_)
                ),
                "{rejection:?} without a call"
            );
        }
    }
}
