//! A minimal token issuer for tests and the demo: generates keys, publishes
//! them as a JWKS, mints signed JWTs. Signing uses aws-lc-rs, an
//! implementation independent of keyward's verification path when keyward
//! runs the RustCrypto backend.

use crate::fixtures::b64;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use serde_json::{json, Value};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

enum Pair {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

struct Key {
    kid: String,
    pair: Pair,
}

/// Signing keys and a way to mint tokens with them.
pub struct TestIssuer {
    /// The `iss` of minted tokens.
    pub issuer: String,
    keys: Mutex<Vec<Key>>,
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl TestIssuer {
    /// An issuer with one ES256 key, kid `key-1`.
    pub fn new(issuer: &str) -> Self {
        let issuer = TestIssuer {
            issuer: issuer.to_owned(),
            keys: Mutex::new(Vec::new()),
        };
        issuer.add_key("key-1", "ES256");
        issuer
    }

    /// Generates a new key (`ES256` or `EdDSA`) with this kid.
    pub fn add_key(&self, kid: &str, alg: &str) {
        let pair = match alg {
            "ES256" => {
                Pair::Es256(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap())
            }
            "EdDSA" => Pair::EdDsa(Ed25519KeyPair::generate().unwrap()),
            other => panic!("TestIssuer signs ES256 and EdDSA, not {other}"),
        };
        self.keys.lock().unwrap().push(Key {
            kid: kid.to_owned(),
            pair,
        });
    }

    /// Stops publishing (and signing with) the key with this kid.
    pub fn remove_key(&self, kid: &str) {
        self.keys.lock().unwrap().retain(|k| k.kid != kid);
    }

    /// The public JWKS.
    pub fn jwks(&self) -> String {
        let keys: Vec<Value> = self
            .keys
            .lock()
            .unwrap()
            .iter()
            .map(|k| match &k.pair {
                Pair::Es256(p) => {
                    let point = p.public_key().as_ref();
                    json!({"kty":"EC","crv":"P-256","kid":k.kid,"use":"sig","alg":"ES256",
                           "x": b64(&point[1..33]), "y": b64(&point[33..65])})
                }
                Pair::EdDsa(p) => {
                    json!({"kty":"OKP","crv":"Ed25519","kid":k.kid,"use":"sig","alg":"EdDSA",
                                         "x": b64(p.public_key().as_ref())})
                }
            })
            .collect();
        json!({ "keys": keys }).to_string()
    }

    /// Standard access-token claims for `sub`, valid for 10 minutes from now.
    pub fn claims(&self, sub: &str, audience: &str) -> Value {
        let now = unix_now();
        json!({
            "iss": self.issuer, "sub": sub, "aud": audience, "client_id": "web-app",
            "iat": now, "nbf": now, "exp": now + 600, "scope": "openid read",
        })
    }

    /// Signs `claims` with the key `kid` (header `typ: at+jwt`).
    pub fn mint(&self, kid: &str, claims: &Value) -> String {
        self.mint_with_header(kid, true, claims)
    }

    /// Signs `claims` with the key `kid`, with a header that names no `kid`.
    pub fn mint_without_kid(&self, kid: &str, claims: &Value) -> String {
        self.mint_with_header(kid, false, claims)
    }

    fn mint_with_header(&self, kid: &str, name_kid: bool, claims: &Value) -> String {
        let keys = self.keys.lock().unwrap();
        let key = keys
            .iter()
            .find(|k| k.kid == kid)
            .unwrap_or_else(|| panic!("no key {kid}"));
        let alg = match key.pair {
            Pair::Es256(_) => "ES256",
            Pair::EdDsa(_) => "EdDSA",
        };
        let header = if name_kid {
            json!({"alg": alg, "kid": kid, "typ": "at+jwt"})
        } else {
            json!({"alg": alg, "typ": "at+jwt"})
        }
        .to_string();
        let input = format!(
            "{}.{}",
            b64(header.as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = match &key.pair {
            Pair::Es256(p) => p
                .sign(&SystemRandom::new(), input.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
            Pair::EdDsa(p) => p.sign(input.as_bytes()).as_ref().to_vec(),
        };
        format!("{input}.{}", b64(&signature))
    }
}

/// An HS256 token over `claims_json` with `secret` (header `kid: hs-1`), for
/// tests that need many cheap, distinct, valid tokens.
pub fn mint_hs256(secret: &[u8], claims_json: &str) -> String {
    let header = r#"{"alg":"HS256","kid":"hs-1"}"#;
    let input = format!("{}.{}", b64(header.as_bytes()), b64(claims_json.as_bytes()));
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64(tag.as_ref()))
}

/// The JWKS holding the HS256 key `hs-1` of [`mint_hs256`].
pub fn hs256_jwks(secret: &[u8]) -> String {
    json!({"keys": [{"kty": "oct", "kid": "hs-1", "alg": "HS256", "k": b64(secret)}]}).to_string()
}
