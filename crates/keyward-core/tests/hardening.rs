//! The verifier-hardening issue, through the public API on every compiled
//! backend: Ed25519 signatures with a small-order `R`, `cnf` tokens on the
//! bearer path, `crit` edge cases, and the member cap.

mod common;

use common::*;
use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::Scalar;
use keyward_core::{
    Backend, BoundTokens, ErrorKind, FixedClock, KeySet, Validation, Verifier,
    DEFAULT_MAX_OBJECT_MEMBERS,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha512};

fn b64(bytes: &[u8]) -> String {
    use base64ct::{Base64UrlUnpadded, Encoding};
    Base64UrlUnpadded::encode_string(bytes)
}

fn claims() -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "u", "exp": NOW + 600, "iat": NOW})
}

/// An Ed25519 key pair from raw scalar arithmetic, so that a test can choose
/// the nonce point `R` (which no honest signer would).
struct Ed25519 {
    a: Scalar,
    public: [u8; 32],
}

impl Ed25519 {
    fn new(seed: u8) -> Self {
        let mut bytes = [seed; 32];
        bytes[0] &= 248;
        bytes[31] = (bytes[31] & 127) | 64;
        let a = Scalar::from_bytes_mod_order(bytes);
        let public = (ED25519_BASEPOINT_POINT * a).compress().to_bytes();
        Ed25519 { a, public }
    }

    fn jwks(&self) -> String {
        json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": b64(&self.public)}]})
            .to_string()
    }

    /// Signs `message` with nonce `r`: R = rB, S = r + H(R‖A‖M)·a. With
    /// `r = 0`, R is the identity (a small-order point), and the signature
    /// still satisfies the cofactorless equation [S]B = R + [k]A.
    fn sign(&self, message: &[u8], r: Scalar) -> [u8; 64] {
        let big_r = (ED25519_BASEPOINT_POINT * r).compress().to_bytes();
        let mut h = Sha512::new();
        h.update(big_r);
        h.update(self.public);
        h.update(message);
        let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
        let s = r + k * self.a;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&big_r);
        sig[32..].copy_from_slice(s.as_bytes());
        sig
    }

    fn token(&self, r: Scalar) -> String {
        let input = format!(
            "{}.{}",
            b64(br#"{"alg":"EdDSA","kid":"ed","typ":"at+jwt"}"#),
            b64(claims().to_string().as_bytes())
        );
        format!("{input}.{}", b64(&self.sign(input.as_bytes(), r)))
    }
}

/// Item 2: aws-lc accepted a signature whose `R` is the identity; the
/// RustCrypto backend refused it. Now both refuse it (and any small-order
/// `R`), and both accept the same key's honest signatures.
#[test]
fn ed25519_small_order_r_is_refused_by_every_backend() {
    let key = Ed25519::new(7);
    let honest = key.token(Scalar::from(123_456_789u64));
    let identity_r = key.token(Scalar::ZERO);
    assert_eq!(
        &identity_r.rsplit('.').next().map(|s| s.len()),
        &Some(86),
        "a 64-byte signature"
    );
    // R is the identity's encoding (y = 1)
    let sig = base64ct_decode(identity_r.rsplit('.').next().unwrap());
    let mut identity = [0u8; 32];
    identity[0] = 1;
    assert_eq!(sig[..32], identity);
    for &backend in Backend::available() {
        let verifier = Verifier::new(
            KeySet::from_jwks_with(&key.jwks(), backend).unwrap(),
            base_validation(),
        )
        .with_clock(FixedClock(NOW));
        verifier
            .verify_cached::<Value>(&honest)
            .unwrap_or_else(|e| panic!("[{}] honest signature: {e}", backend.name()));
        let err = verifier.verify_cached::<Value>(&identity_r).unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::InvalidSignature,
            "[{}]",
            backend.name()
        );
    }
}

fn base64ct_decode(s: &str) -> Vec<u8> {
    use base64ct::{Base64UrlUnpadded, Encoding};
    Base64UrlUnpadded::decode_vec(s).unwrap()
}

fn hs256(header: &str, payload: &str) -> (String, KeySet) {
    use sha2::Sha256;
    let secret = [42u8; 32];
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    // HMAC-SHA256 by hand (RFC 2104), to need no other dependency
    let mut ipad = [0x36u8; 64];
    let mut opad = [0x5cu8; 64];
    for (i, b) in secret.iter().enumerate() {
        ipad[i] ^= b;
        opad[i] ^= b;
    }
    let inner = Sha256::new()
        .chain_update(ipad)
        .chain_update(input.as_bytes())
        .finalize();
    let tag = Sha256::new()
        .chain_update(opad)
        .chain_update(inner)
        .finalize();
    let jwks = json!({"keys": [{"kty": "oct", "kid": "hs", "alg": "HS256", "k": b64(&secret)}]});
    (
        format!("{input}.{}", b64(&tag)),
        KeySet::from_jwks(&jwks.to_string()).unwrap(),
    )
}

fn hs_verifier(keys: KeySet, validation: Validation) -> Verifier {
    Verifier::new(
        keys,
        validation.algorithms([keyward_core::Algorithm::HS256]),
    )
    .with_clock(FixedClock(NOW))
}

/// Item 5: a token bound to a key (`cnf`: DPoP `jkt`, mTLS `x5t#S256`) is
/// not a bearer token.
#[test]
fn cnf_tokens_are_refused_unless_the_caller_checks_the_binding() {
    for cnf in [
        json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}),
        json!({"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}),
    ] {
        let mut c = claims();
        c["cnf"] = cnf;
        let (token, keys) = hs256(r#"{"alg":"HS256","kid":"hs"}"#, &c.to_string());
        let err = hs_verifier(keys.clone(), base_validation_untyped())
            .verify_cached::<Value>(&token)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::SenderConstrainedToken);
        assert!(err.message().contains("proof of possession"), "{err}");
        hs_verifier(
            keys,
            base_validation_untyped().bound_tokens(BoundTokens::CallerChecksBinding),
        )
        .verify_cached::<Value>(&token)
        .unwrap();
    }
    // "cnf": null is no binding
    let mut c = claims();
    c["cnf"] = Value::Null;
    let (token, keys) = hs256(r#"{"alg":"HS256","kid":"hs"}"#, &c.to_string());
    hs_verifier(keys, base_validation_untyped())
        .verify_cached::<Value>(&token)
        .unwrap();
}

fn base_validation_untyped() -> Validation {
    Validation::new().issuer(ISSUER).audience(AUDIENCE)
}

/// Item 4: `crit` edge cases, each through the verifier with a valid
/// signature (so nothing else can be why it is refused).
#[test]
fn crit_edge_cases_are_refused_with_a_valid_signature() {
    let payload = claims().to_string();
    let cases = [
        (
            r#"{"alg":"HS256","kid":"hs","crit":[]}"#,
            ErrorKind::Malformed,
        ),
        (
            r#"{"alg":"HS256","kid":"hs","crit":["b64"]}"#,
            ErrorKind::Malformed,
        ),
        (
            r#"{"alg":"HS256","kid":"hs","b64":true,"crit":["b64","b64"]}"#,
            ErrorKind::Malformed,
        ),
        (
            r#"{"alg":"HS256","kid":"hs","crit":["kid"]}"#,
            ErrorKind::Malformed,
        ),
        (
            r#"{"alg":"HS256","kid":"hs","crit":["alg"]}"#,
            ErrorKind::Malformed,
        ),
        (
            r#"{"alg":"HS256","kid":"hs","b64":false,"crit":["b64"]}"#,
            ErrorKind::UnsupportedCriticalHeader,
        ),
        (
            r#"{"alg":"HS256","kid":"hs","exp":1,"crit":["exp"]}"#,
            ErrorKind::UnsupportedCriticalHeader,
        ),
    ];
    for (header, kind) in cases {
        let (token, keys) = hs256(header, &payload);
        let err = hs_verifier(keys, base_validation_untyped())
            .verify_cached::<Value>(&token)
            .unwrap_err();
        assert_eq!(err.kind(), kind, "{header}: {err}");
    }
    let (token, keys) = hs256(r#"{"alg":"HS256","kid":"hs"}"#, &payload);
    hs_verifier(keys, base_validation_untyped())
        .verify_cached::<Value>(&token)
        .unwrap();
}

/// Item 1, the cap: an object at the cap passes, one member more is
/// `malformed` — in the header and in the payload at any depth; the cap is
/// configurable.
#[test]
fn the_member_cap_applies_to_header_and_payload_at_every_depth() {
    let filler = |n: usize| -> String {
        (0..n)
            .map(|i| format!("\"m{i}\":0"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let cap = DEFAULT_MAX_OBJECT_MEMBERS;
    // the header has alg and kid besides the filler
    let header = |extra: usize| format!(r#"{{"alg":"HS256","kid":"hs",{}}}"#, filler(extra));
    let claims_text = claims().to_string();
    let (at_cap, keys) = hs256(&header(cap - 2), &claims_text);
    hs_verifier(keys.clone(), base_validation_untyped())
        .verify_cached::<Value>(&at_cap)
        .unwrap();
    let (past_cap, _) = hs256(&header(cap - 1), &claims_text);
    let err = hs_verifier(keys.clone(), base_validation_untyped())
        .verify_cached::<Value>(&past_cap)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Malformed);
    assert!(err.message().contains("more than 512 members"), "{err}");
    // nested in the payload
    let mut c = claims();
    c["nested"] = serde_json::from_str(&format!("{{{}}}", filler(cap + 1))).unwrap();
    let (nested, _) = hs256(r#"{"alg":"HS256","kid":"hs"}"#, &c.to_string());
    let err = hs_verifier(keys.clone(), base_validation_untyped())
        .verify_cached::<Value>(&nested)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Malformed);
    // a raised cap admits it
    hs_verifier(keys, base_validation_untyped().max_object_members(cap + 1))
        .verify_cached::<Value>(&nested)
        .unwrap();
}
