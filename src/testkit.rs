//! Keys and token minting for tests (unit tests and, with the `testkit` feature, the
//! end-to-end suites). The keys are test-only fixtures from `testdata/keys/`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64ct::{Base64UrlUnpadded, Encoding};
use jwt_compact::alg::{Ed25519, Es256, Rsa, RsaPrivateKey};
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{Algorithm as JwsAlgorithm, AlgorithmSignature};
use serde_json::{Map, Value, json};
use std::sync::OnceLock;

use crate::algorithm::{Algorithm, KeyFamily};

/// A private test key. Each fixture is parsed once per process.
#[derive(Debug)]
pub struct TestKey {
    private_jwk: Value,
    family: KeyFamily,
    signer: OnceLock<Signer>,
}

#[derive(Debug)]
enum Signer {
    Rsa(Box<RsaPrivateKey>),
    P256(Box<p256::ecdsa::SigningKey>),
    Ed25519(Box<ed25519_compact::SecretKey>),
}

macro_rules! fixture {
    ($name:ident, $file:literal, $family:expr, $doc:literal) => {
        #[doc = $doc]
        pub fn $name() -> &'static TestKey {
            static KEY: OnceLock<TestKey> = OnceLock::new();
            KEY.get_or_init(|| TestKey::load(include_str!($file), $family))
        }
    };
}

impl TestKey {
    fn load(text: &str, family: KeyFamily) -> TestKey {
        TestKey {
            private_jwk: serde_json::from_str(text).expect("test key fixture is JSON"),
            family,
            signer: OnceLock::new(),
        }
    }

    fixture!(
        rsa_a,
        "../testdata/keys/rsa-2048-a.json",
        KeyFamily::Rsa,
        "RSA 2048."
    );
    fixture!(
        rsa_b,
        "../testdata/keys/rsa-2048-b.json",
        KeyFamily::Rsa,
        "Another RSA 2048."
    );
    fixture!(
        rsa_3072,
        "../testdata/keys/rsa-3072.json",
        KeyFamily::Rsa,
        "RSA 3072."
    );
    fixture!(
        rsa_weak,
        "../testdata/keys/rsa-1024-weak.json",
        KeyFamily::Rsa,
        "RSA 1024: below the minimum, must be refused by key-set parsing."
    );
    fixture!(
        p256,
        "../testdata/keys/p256.json",
        KeyFamily::P256,
        "P-256, for ES256."
    );
    fixture!(
        ed25519,
        "../testdata/keys/ed25519.json",
        KeyFamily::Ed25519,
        "Ed25519, for EdDSA."
    );

    fn signer(&self) -> &Signer {
        self.signer.get_or_init(|| {
            let jwk: JsonWebKey<'_> = serde_json::from_value(self.private_jwk.clone()).unwrap();
            match self.family {
                KeyFamily::Rsa => Signer::Rsa(Box::new(RsaPrivateKey::try_from(&jwk).unwrap())),
                KeyFamily::P256 => {
                    Signer::P256(Box::new(p256::ecdsa::SigningKey::try_from(&jwk).unwrap()))
                }
                KeyFamily::Ed25519 => Signer::Ed25519(Box::new(
                    ed25519_compact::SecretKey::try_from(&jwk).unwrap(),
                )),
                KeyFamily::P384 => panic!("no P-384 test key fixture"),
            }
        })
    }

    /// The public half as a JWK with `kid` and optionally `alg`, `use: sig`.
    pub fn public_jwk(&self, kid: &str, alg: Option<&str>) -> Value {
        let mut jwk = self.private_jwk.as_object().cloned().unwrap_or_default();
        for private in ["d", "p", "q", "dp", "dq", "qi", "oth"] {
            jwk.remove(private);
        }
        jwk.insert("kid".into(), kid.into());
        jwk.insert("use".into(), "sig".into());
        if let Some(alg) = alg {
            jwk.insert("alg".into(), alg.into());
        }
        Value::Object(jwk)
    }

    /// The private JWK (for tests that check private material is refused).
    pub fn private_jwk(&self, kid: &str) -> Value {
        let mut jwk = self.private_jwk.clone();
        jwk["kid"] = kid.into();
        jwk
    }

    /// Signs `data` with `alg`, which must suit the key's family.
    pub fn sign(&self, alg: Algorithm, data: &[u8]) -> Vec<u8> {
        assert_eq!(alg.family(), self.family, "{alg} does not suit this key");
        match (alg, self.signer()) {
            (Algorithm::Es256, Signer::P256(key)) => sign_with(&Es256, key, data),
            (Algorithm::EdDsa, Signer::Ed25519(key)) => sign_with(&Ed25519, key, data),
            (rsa_alg, Signer::Rsa(key)) => {
                let rsa = match rsa_alg {
                    Algorithm::Rs256 => Rsa::rs256(),
                    Algorithm::Rs384 => Rsa::rs384(),
                    Algorithm::Rs512 => Rsa::rs512(),
                    Algorithm::Ps256 => Rsa::ps256(),
                    Algorithm::Ps384 => Rsa::ps384(),
                    _ => Rsa::ps512(),
                };
                sign_with(&rsa, key, data)
            }
            _ => panic!("{alg} does not suit this key"),
        }
    }
}

fn sign_with<A: JwsAlgorithm>(alg: &A, key: &A::SigningKey, data: &[u8]) -> Vec<u8> {
    alg.sign(key, data).as_bytes().into_owned()
}

/// Unpadded base64url.
pub fn b64url(bytes: impl AsRef<[u8]>) -> String {
    Base64UrlUnpadded::encode_string(bytes.as_ref())
}

/// `{"keys": [...]}`.
pub fn jwks(keys: &[Value]) -> Value {
    json!({ "keys": keys })
}

/// A token under construction: header and claims as JSON objects.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    /// The JOSE header.
    pub header: Map<String, Value>,
    /// The claims.
    pub claims: Map<String, Value>,
}

impl TokenSpec {
    /// A Keycloak-like access token: `typ: Bearer`, valid for an hour from `now`.
    pub fn access_token(alg: Algorithm, kid: &str, issuer: &str, audience: &str, now: i64) -> Self {
        let header = json!({ "alg": alg.jws_name(), "typ": "JWT", "kid": kid });
        let claims = json!({
            "iss": issuer,
            "aud": audience,
            "sub": "f3b6c1de-8c2a-4a43-9a8e-3c5f0d1a2b3c",
            "azp": "tokengate-loadtest",
            "typ": "Bearer",
            "scope": "openid profile email",
            "realm_access": { "roles": ["offline_access", "user"] },
            "iat": now,
            "exp": now + 3600,
            "jti": format!("jti-{now}"),
        });
        TokenSpec {
            header: header.as_object().cloned().unwrap_or_default(),
            claims: claims.as_object().cloned().unwrap_or_default(),
        }
    }

    /// Sets a header parameter.
    pub fn header(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.header.insert(name.to_owned(), value.into());
        self
    }

    /// Removes a header parameter.
    pub fn without_header(mut self, name: &str) -> Self {
        self.header.remove(name);
        self
    }

    /// Sets a claim.
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.claims.insert(name.to_owned(), value.into());
        self
    }

    /// Removes a claim.
    pub fn without_claim(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// Signs with `key` using the algorithm named in the header.
    pub fn sign(&self, key: &TestKey) -> String {
        let alg = self
            .header
            .get("alg")
            .and_then(Value::as_str)
            .and_then(Algorithm::from_jws_name)
            .expect("header alg must be a supported algorithm to sign");
        sign_raw(
            &Value::Object(self.header.clone()).to_string(),
            &Value::Object(self.claims.clone()).to_string(),
            key,
            alg,
        )
    }

    /// `header.payload.` plus the given signature segment, unsigned.
    pub fn with_signature_segment(&self, signature: &str) -> String {
        format!(
            "{}.{}.{}",
            b64url(Value::Object(self.header.clone()).to_string()),
            b64url(Value::Object(self.claims.clone()).to_string()),
            signature
        )
    }
}

/// Signs arbitrary header and payload texts (for malformed-but-signed tokens).
pub fn sign_raw(header_json: &str, payload_json: &str, key: &TestKey, alg: Algorithm) -> String {
    let signing_input = format!("{}.{}", b64url(header_json), b64url(payload_json));
    let signature = key.sign(alg, signing_input.as_bytes());
    format!("{signing_input}.{}", b64url(signature))
}

/// The same token with one signature byte changed: passes every cheap check, fails the
/// signature.
pub fn tamper_signature(token: &str) -> String {
    let (signed, signature) = token.rsplit_once('.').expect("a JWS has a signature");
    let mut bytes = Base64UrlUnpadded::decode_vec(signature).expect("signature is base64url");
    if let Some(last) = bytes.last_mut() {
        *last ^= 0x01;
    }
    format!("{signed}.{}", b64url(bytes))
}
