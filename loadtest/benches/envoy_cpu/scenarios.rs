//! The scenarios: which gateway, which filter build, which tokens.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tokens {
    None,
    /// One valid token on every request: the verified-token cache hit path.
    Repeated,
    /// Distinct valid tokens, cycled, more of them than any cache holds.
    Unique,
    /// The unique tokens with one signature bit flipped.
    Tampered,
    /// Distinct valid tokens signed with another algorithm's test key (ES256, EdDSA).
    UniqueWith(Algorithm),
}

impl Tokens {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Tokens::None => "none",
            Tokens::Repeated => "repeated",
            Tokens::Unique => "unique",
            Tokens::Tampered => "unique, bad signature",
            Tokens::UniqueWith(Algorithm::Es256) => "unique, ES256",
            Tokens::UniqueWith(_) => "unique, EdDSA",
        }
    }
}

/// The code loaded into the gateway's wasm filter (gateways without one ignore it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Wasm {
    /// The fast build (`TOKENGATE_WASM` or the release build).
    Tokengate,
    /// The portable build: no SIMD.
    TokengatePortable,
    /// `filters/passthrough`: does nothing, the floor of a Rust proxy-wasm filter.
    Passthrough,
    /// `filters/passthrough-sdk`: the same on the proxy-wasm Rust SDK.
    PassthroughSdk,
}

impl Wasm {
    /// Where the build puts the module (the fast build: see `loadtest::paths::wasm_path`).
    pub(crate) fn built_path(self) -> Result<PathBuf> {
        let (path, build) = match self {
            Wasm::Tokengate => return loadtest::paths::wasm_path(),
            Wasm::TokengatePortable => (
                "portable/wasm32-wasip1/release/tokengate.wasm",
                "scripts/build-filter portable",
            ),
            Wasm::Passthrough => (
                "wasm32-wasip1/release/passthrough.wasm",
                "cargo build --release --target wasm32-wasip1 -p passthrough",
            ),
            Wasm::PassthroughSdk => (
                "wasm32-wasip1/release/passthrough_sdk.wasm",
                "cargo build --release --target wasm32-wasip1 -p passthrough-sdk",
            ),
        };
        let path = target_dir().join(path);
        if path.is_file() {
            return Ok(path);
        }
        bail!("{} not found; build it with `{build}`", path.display())
    }

    pub(crate) fn file_name(self) -> &'static str {
        match self {
            Wasm::Tokengate => "tokengate.wasm",
            Wasm::TokengatePortable => "tokengate-portable.wasm",
            Wasm::Passthrough => "passthrough.wasm",
            Wasm::PassthroughSdk => "passthrough-sdk.wasm",
        }
    }
}

pub(crate) struct Scenario {
    pub(crate) name: &'static str,
    pub(crate) gateway: &'static str,
    pub(crate) wasm: Wasm,
    /// RFC 7386 merge patch for the gateway's plugin configuration (`${IDP_PORT}` is the
    /// local JWKS server's port).
    pub(crate) plugin_patch: Option<&'static str>,
    pub(crate) tokens: Tokens,
    pub(crate) expected_status: u16,
    /// Sessions ended through the gateway's logout listener before the load (gateways with
    /// one): the revocation set the cached path checks is then not empty.
    pub(crate) ended_sessions: usize,
}

/// Logout tokens posted before `jwt-bcl-repeated` measures.
pub(crate) const ENDED_SESSIONS: usize = 1000;

/// The `jwt` gateway turned into the policy `benches/engine.rs` measures: three providers
/// (the gateway's own as `internal`, a partner IdP, an introspected machine provider taking
/// opaque tokens) and ten rules, the tenth covering the bench's `GET /orders/42`. The nulls
/// remove the single-issuer fields the providers now hold.
pub(crate) const POLICY: &str = r#"{
  "mode": null, "issuer": null, "audiences": null, "algorithms": null,
  "clock_skew_seconds": null, "jwks": null, "forward": null,
  "providers": {
    "internal": {
      "mode": "jwt",
      "issuer": "http://127.0.0.1:${IDP_PORT}/realms/tokengate",
      "audiences": ["tokengate-api"], "algorithms": ["RS256", "ES256"], "clock_skew_seconds": 5,
      "jwks": {"remote": {"cluster": "idp", "authority": "127.0.0.1:${IDP_PORT}",
               "path": "/realms/tokengate/protocol/openid-connect/certs",
               "refresh_seconds": 300, "timeout_ms": 2000}},
      "forward": {"strip_authorization": false, "claims_to_headers": [
        {"claim": "sub", "header": "x-jwt-sub"},
        {"claim": "azp", "header": "x-jwt-client"},
        {"claim": "scope", "header": "x-jwt-scope"},
        {"claim": "realm_access.roles", "header": "x-jwt-roles"}
      ]}
    },
    "partner": {
      "issuer": "https://partner.example/realms/p", "audiences": ["tokengate-api"],
      "algorithms": ["EdDSA"],
      "jwks": {"remote": {"cluster": "idp", "authority": "127.0.0.1:${IDP_PORT}",
               "path": "/realms/tokengate/protocol/openid-connect/certs"}}
    },
    "machines": {
      "mode": "introspect", "opaque": true, "issuer": "https://machines.example",
      "audiences": [],
      "introspection": {"cluster": "idp", "authority": "127.0.0.1:${IDP_PORT}",
                        "path": "/introspect", "client_id": "gateway", "client_secret": "s"}
    }
  },
  "rules": [
    {"name": "health", "match": {"path": {"exact": "/health"}}, "requires": "public"},
    {"name": "admin", "match": {"path": {"prefix": "/admin/"}}, "requires": {"provider": "partner"}},
    {"name": "writes", "match": {"path": {"pattern": "/api/*/orders"}, "methods": ["POST"]},
     "requires": {"provider": "partner"}},
    {"name": "api", "match": {"path": {"pattern": "/api/**"}}, "requires": {"provider": "partner"}},
    {"name": "reports", "match": {"path": {"prefix": "/reports"}, "hosts": ["*.example.com"]},
     "requires": {"provider": "partner"}},
    {"name": "docs", "match": {"path": {"prefix": "/docs"}}, "requires": {"provider": "partner"}},
    {"name": "stock", "match": {"path": {"pattern": "/stock/*/items"}},
     "requires": {"provider": "partner"}},
    {"name": "users", "match": {"path": {"exact": "/users"}, "methods": ["GET"]},
     "requires": {"provider": "partner"}},
    {"name": "orders-write", "match": {"path": {"prefix": "/orders"}, "methods": ["POST", "PUT"]},
     "requires": {"provider": "partner"}},
    {"name": "orders", "match": {"path": {"pattern": "/orders/**"}},
     "requires": {"any": [{"provider": "internal"}, {"provider": "partner"},
                          {"provider": "machines"}]}}
  ]
}"#;

/// The `jwt` gateway allowing the curve algorithms of the ES256 and EdDSA scenarios.
pub(crate) const CURVE_ALGORITHMS: &str = r#"{"algorithms": ["RS256", "ES256", "EdDSA"]}"#;

/// The kid and test key of each algorithm's tokens (the JWKS server serves all three).
pub(crate) fn signing_key(alg: Algorithm) -> (&'static str, &'static TestKey) {
    match alg {
        Algorithm::Es256 => ("ec1", TestKey::p256()),
        Algorithm::EdDsa => ("ed1", TestKey::ed25519()),
        _ => (KID, TestKey::rsa_a()),
    }
}

/// A scenario on the fast tokengate build, the gateway's own plugin configuration, no session
/// ended, expecting 200; `Scenario`'s methods below change one of those.
const fn scenario(name: &'static str, gateway: &'static str, tokens: Tokens) -> Scenario {
    Scenario {
        name,
        gateway,
        wasm: Wasm::Tokengate,
        plugin_patch: None,
        tokens,
        expected_status: 200,
        ended_sessions: 0,
    }
}

impl Scenario {
    const fn wasm(self, wasm: Wasm) -> Scenario {
        Scenario { wasm, ..self }
    }

    const fn patch(self, patch: &'static str) -> Scenario {
        Scenario {
            plugin_patch: Some(patch),
            ..self
        }
    }

    const fn expect(self, expected_status: u16) -> Scenario {
        Scenario {
            expected_status,
            ..self
        }
    }

    const fn ended_sessions(self, ended_sessions: usize) -> Scenario {
        Scenario {
            ended_sessions,
            ..self
        }
    }
}

/// `jwt-repeated-bare`'s patch: no claim forwarded as a header.
const NO_FORWARDING: &str = r#"{"forward": {"claims_to_headers": []}}"#;

/// `jwt-unique-sub`'s patch: forward only `sub`, as the `native-jwt` gateway does
/// (`claim_to_headers` of `envoy/native-jwt.yaml`), so the two do the same work per token.
const FORWARD_SUB_ONLY: &str =
    r#"{"forward": {"claims_to_headers": [{"claim": "sub", "header": "x-jwt-sub"}]}}"#;

const ES256: Tokens = Tokens::UniqueWith(Algorithm::Es256);
const EDDSA: Tokens = Tokens::UniqueWith(Algorithm::EdDsa);
const PORTABLE: Wasm = Wasm::TokengatePortable;

/// In the order the table prints them.
#[rustfmt::skip]
pub(crate) const SCENARIOS: &[Scenario] = &[
    scenario("no-auth",             "no-auth",    Tokens::None),
    scenario("passthrough",         "jwt",        Tokens::Repeated).wasm(Wasm::Passthrough),
    scenario("passthrough-sdk",     "jwt",        Tokens::Repeated).wasm(Wasm::PassthroughSdk),
    scenario("native-jwt-repeated", "native-jwt", Tokens::Repeated),
    scenario("native-jwt-unique",   "native-jwt", Tokens::Unique),
    scenario("jwt-repeated",        "jwt",        Tokens::Repeated),
    scenario("jwt-repeated-bare",   "jwt",        Tokens::Repeated).patch(NO_FORWARDING),
    scenario("jwt-unique",          "jwt",        Tokens::Unique),
    scenario("jwt-unique-sub",      "jwt",        Tokens::Unique).patch(FORWARD_SUB_ONLY),
    scenario("jwt-tampered",        "jwt",        Tokens::Tampered).expect(401),
    scenario("native-jwt-es256",    "native-jwt", ES256),
    scenario("jwt-es256",           "jwt",        ES256).patch(CURVE_ALGORITHMS),
    scenario("native-jwt-eddsa",    "native-jwt", EDDSA),
    scenario("jwt-eddsa",           "jwt",        EDDSA).patch(CURVE_ALGORITHMS),
    scenario("policy-repeated",     "jwt",        Tokens::Repeated).patch(POLICY),
    scenario("jwt-bcl-repeated",    "jwt-bcl",    Tokens::Repeated).ended_sessions(ENDED_SESSIONS),
    scenario("portable-repeated",   "jwt",        Tokens::Repeated).wasm(PORTABLE),
    scenario("portable-unique",     "jwt",        Tokens::Unique).wasm(PORTABLE),
];
