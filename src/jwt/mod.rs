//! Local JWT validation: token parsing and the rules of RFC 7519 / 8725 / 9068 on top of
//! jwt-compact ([`validate`]), and the claim checks and claim paths it shares with
//! introspection ([`claims`]).

pub mod claims;
pub mod validate;

pub use claims::{ClaimPath, ClaimView};
pub use validate::{Parsed, Verified, validate};
