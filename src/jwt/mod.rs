//! Local JWT validation: taking a compact JWS apart ([`parse`], with its own strict base64url
//! decoding, [`base64url`], and a one-pass reading of the claims, [`raw_claims`]), the rules
//! of RFC 7519 / 8725 / 9068 on top of jwt-compact ([`validate`]), and the claim checks and
//! claim paths it shares with introspection ([`claims`]).

pub mod base64url;
pub mod claims;
pub mod parse;
pub mod raw_claims;
pub mod validate;

pub use claims::{ClaimPath, ClaimView};
pub use validate::{Parsed, Verified, validate};
