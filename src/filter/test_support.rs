//! What the worker's tests on a fake host share: one issuer, one instant, and a request
//! carrying nothing but a bearer token.

use super::{Now, Waiter};

pub(super) const ISSUER: &str = "http://idp/realms/r";
pub(super) const NOW: Now = Now {
    seconds: 1_750_000_000,
    millis: 1_750_000_000_000,
};

/// A request with only an `authorization: Bearer <token>` header.
pub(super) fn request(context_id: u32, token: &str) -> Waiter {
    let headers = vec![(
        "authorization".to_owned(),
        format!("Bearer {token}").into_bytes(),
    )];
    Waiter::new(context_id, crate::engine::Request::with_headers(headers))
}
