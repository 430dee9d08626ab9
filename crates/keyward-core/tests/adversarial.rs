//! Adversarial review (issue 12): trying to break the promises of the
//! verifier-hardening change through the public API only.

mod common;

use common::*;
use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::Scalar;
use keyward_core::{
    Algorithm, Backend, BoundTokens, ErrorKind, FixedClock, Jwk, KeySet, Validation, Verifier,
    DEFAULT_MAX_OBJECT_MEMBERS,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256, Sha512};

fn b64(bytes: &[u8]) -> String {
    use base64ct::{Base64UrlUnpadded, Encoding};
    Base64UrlUnpadded::encode_string(bytes)
}

fn unb64(s: &str) -> Vec<u8> {
    use base64ct::{Base64UrlUnpadded, Encoding};
    Base64UrlUnpadded::decode_vec(s).unwrap()
}

fn claims() -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "u", "exp": NOW + 600, "iat": NOW})
}

const SECRET: [u8; 32] = [42u8; 32];

fn hmac_sha256(input: &[u8]) -> Vec<u8> {
    let mut ipad = [0x36u8; 64];
    let mut opad = [0x5cu8; 64];
    for (i, b) in SECRET.iter().enumerate() {
        ipad[i] ^= b;
        opad[i] ^= b;
    }
    let inner = Sha256::new()
        .chain_update(ipad)
        .chain_update(input)
        .finalize();
    Sha256::new()
        .chain_update(opad)
        .chain_update(inner)
        .finalize()
        .to_vec()
}

/// An HS256 token with exactly this header and payload text.
fn hs256(header: &str, payload: &str) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let tag = hmac_sha256(input.as_bytes());
    format!("{input}.{}", b64(&tag))
}

fn hs_keys() -> KeySet {
    let jwks = json!({"keys": [{"kty": "oct", "kid": "hs", "alg": "HS256", "k": b64(&SECRET)}]});
    KeySet::from_jwks(&jwks.to_string()).unwrap()
}

fn hs_validation() -> Validation {
    Validation::new()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .algorithms([Algorithm::HS256])
}

fn hs_verify(validation: Validation, token: &str) -> Result<Value, keyward_core::Error> {
    Verifier::new(hs_keys(), validation)
        .with_clock(FixedClock(NOW))
        .verify_cached::<Value>(token)
        .map(|v| v.into_claims())
}

const HS_HEADER: &str = r#"{"alg":"HS256","kid":"hs"}"#;

fn payload_with(extra: &str) -> String {
    let base = claims().to_string();
    let body = base.trim_end_matches('}');
    format!("{body},{extra}}}")
}

// ---------------------------------------------------------------------------
// duplicates: escaped spellings, across depths, inline/hashed boundary
// ---------------------------------------------------------------------------

#[test]
fn attack_escaped_duplicate_names_in_header_are_refused() {
    for header in [
        // escaped "alg" after a plain one
        r#"{"alg":"HS256","kid":"hs","\u0061lg":"HS256"}"#,
        // escaped first, plain second
        r#"{"\u0061lg":"HS256","kid":"hs","alg":"HS256"}"#,
        // both escaped, differently
        r#"{"alg":"HS256","k\u0069d":"hs","\u006bid":"hs"}"#,
        // an ignored member, escaped vs plain
        r#"{"alg":"HS256","kid":"hs","x":1,"\u0078":2}"#,
        // non-ASCII: a surrogate pair vs the raw character
        "{\"alg\":\"HS256\",\"kid\":\"hs\",\"\u{1F600}\":1,\"\\ud83d\\ude00\":2}",
        // escaped solidus vs plain
        r#"{"alg":"HS256","kid":"hs","a/b":1,"a\/b":2}"#,
    ] {
        let token = hs256(header, &claims().to_string());
        let err = hs_verify(hs_validation(), &token).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Malformed, "{header}: {err}");
    }
}

#[test]
fn attack_escaped_duplicate_names_past_the_inline_limit() {
    // 20 plain members (16 inline + 4 hashed), then escaped repeats of an
    // inline one, a hashed one; in header, payload (top level and nested)
    let plain: Vec<String> = (0..20).map(|i| format!("\"m{i}\":0")).collect();
    let plain = plain.join(",");
    for dup in [r#""\u006d3":1"#, r#""\u006d18":1"#, r#""m\u0031\u0039":1"#] {
        let header = format!(r#"{{"alg":"HS256","kid":"hs",{plain},{dup}}}"#);
        let err = hs_verify(hs_validation(), &hs256(&header, &claims().to_string())).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Malformed, "header {dup}: {err}");
        let payload = payload_with(&format!("{plain},{dup}"));
        let err = hs_verify(hs_validation(), &hs256(HS_HEADER, &payload)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Malformed, "payload {dup}: {err}");
        let payload = payload_with(&format!(r#""n":[{{}},{{{plain},{dup}}}]"#));
        let err = hs_verify(hs_validation(), &hs256(HS_HEADER, &payload)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Malformed, "nested {dup}: {err}");
    }
    // registered claim names: escaped duplicate of sub / exp / cnf
    for dup in [r#""s\u0075b":"admin""#, r#""\u0065xp":99999999999"#] {
        let payload = payload_with(dup);
        let err = hs_verify(hs_validation(), &hs256(HS_HEADER, &payload)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Malformed, "{dup}: {err}");
    }
    // null vs non-null duplicates
    for extra in [
        r#""x":null,"\u0078":1"#,
        r#""x":1,"\u0078":null"#,
        r#""x":null,"x":null"#,
    ] {
        let payload = payload_with(extra);
        let err = hs_verify(hs_validation(), &hs256(HS_HEADER, &payload)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Malformed, "{extra}: {err}");
    }
}

#[test]
fn attack_escaped_duplicates_in_jwk() {
    let ok = r#"{"kty":"oct","kid":"hs","alg":"HS256","k":"KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio"}"#;
    Jwk::parse(ok).unwrap();
    for bad in [
        r#"{"kty":"oct","kid":"hs","alg":"HS256","k":"KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio","\u006b":"AAAA"}"#,
        r#"{"kty":"oct","\u006bid":"a","kid":"b","alg":"HS256","k":"KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio"}"#,
        r#"{"kty":"oct","kid":"hs","alg":"HS256","k":"KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio","x":{"a":1,"\u0061":2}}"#,
    ] {
        assert_eq!(
            Jwk::parse(bad).unwrap_err().kind(),
            ErrorKind::Malformed,
            "{bad}"
        );
    }
}

#[test]
fn attack_same_names_at_different_depths_are_not_duplicates() {
    let header = r#"{"alg":"HS256","kid":"hs","x":{"alg":"none","kid":"other","x":{"x":{"alg":1}}},"y":[{"alg":1},{"alg":1},[{"y":1}]]}"#;
    let payload = payload_with(
        r#""sub2":{"sub":"admin","iss":"evil","exp":0,"cnf":null},"arr":[{"sub":1},{"sub":1}],"deep":{"deep":{"deep":{"deep":1}}}"#,
    );
    let claims = hs_verify(hs_validation(), &hs256(header, &payload)).unwrap();
    assert_eq!(claims["sub"], "u");
    // a nested "cnf" is not a binding
    let payload = payload_with(r#""ext":{"cnf":{"jkt":"x"}}"#);
    hs_verify(hs_validation(), &hs256(HS_HEADER, &payload)).unwrap();
    // JWK: same names nested
    Jwk::parse(
        r#"{"kty":"oct","kid":"hs","alg":"HS256","k":"KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio","ext":{"kty":1,"kid":{"kid":2}}}"#,
    )
    .unwrap();
}

// ---------------------------------------------------------------------------
// member cap: exactly at the cap, one past it, in payload top level and JWK
// ---------------------------------------------------------------------------

fn filler(prefix: &str, n: usize) -> String {
    (0..n)
        .map(|i| format!("\"{prefix}{i}\":0"))
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn attack_member_cap_exact_in_payload_top_level() {
    let cap = DEFAULT_MAX_OBJECT_MEMBERS;
    // claims() has 5 members
    let at = payload_with(&filler("m", cap - 5));
    hs_verify(hs_validation(), &hs256(HS_HEADER, &at)).unwrap();
    let past = payload_with(&filler("m", cap - 4));
    let err = hs_verify(hs_validation(), &hs256(HS_HEADER, &past)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Malformed, "{err}");
    // nulls count too
    let past_nulls = payload_with(
        &(0..cap - 4)
            .map(|i| format!("\"n{i}\":null"))
            .collect::<Vec<_>>()
            .join(","),
    );
    let err = hs_verify(hs_validation(), &hs256(HS_HEADER, &past_nulls)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Malformed, "{err}");
    // configurable: a lower cap refuses what the default accepts
    let err = hs_verify(
        hs_validation().max_object_members(5),
        &hs256(HS_HEADER, &payload_with(r#""x":1"#)),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Malformed, "{err}");
    hs_verify(
        hs_validation().max_object_members(6),
        &hs256(HS_HEADER, &payload_with(r#""x":1"#)),
    )
    .unwrap();
    // an array is not an object: 5000 elements pass
    let arr = payload_with(&format!(
        "\"a\":[{}]",
        (0..5000)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    ));
    hs_verify(hs_validation(), &hs256(HS_HEADER, &arr)).unwrap();
}

#[test]
fn attack_member_cap_exact_in_jwk() {
    let cap = DEFAULT_MAX_OBJECT_MEMBERS;
    let base =
        r#""kty":"oct","kid":"hs","alg":"HS256","k":"KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio""#;
    let at = format!("{{{base},{}}}", filler("m", cap - 4));
    Jwk::parse(&at).unwrap();
    let past = format!("{{{base},{}}}", filler("m", cap - 3));
    assert_eq!(Jwk::parse(&past).unwrap_err().kind(), ErrorKind::Malformed);
    // nested object in the JWK past the cap
    let nested = format!("{{{base},\"x\":{{{}}}}}", filler("m", cap + 1));
    assert_eq!(
        Jwk::parse(&nested).unwrap_err().kind(),
        ErrorKind::Malformed
    );
    // in a JWKS, such a key is skipped, the good one kept
    let jwks = format!(r#"{{"keys":[{past},{{{base}}}]}}"#);
    let set = KeySet::from_jwks(&jwks).unwrap();
    assert_eq!(set.len(), 1);
    assert_eq!(set.skipped().len(), 1);
}

// ---------------------------------------------------------------------------
// crit
// ---------------------------------------------------------------------------

#[test]
fn attack_crit_more_edge_cases() {
    let payload = claims().to_string();
    let refused = [
        // b64 without a member, listed with an escape
        r#"{"alg":"HS256","kid":"hs","crit":["\u0062\u0036\u0034"]}"#,
        // registered names with escapes
        r#"{"alg":"HS256","kid":"hs","crit":["\u0061lg"]}"#,
        r#"{"alg":"HS256","kid":"hs","typ":"JWT","crit":["typ"]}"#,
        r#"{"alg":"HS256","kid":"hs","crit":["jku"],"jku":"https://x"}"#,
        r#"{"alg":"HS256","kid":"hs","crit":["x5c"]}"#,
        r#"{"alg":"HS256","kid":"hs","crit":["cty"]}"#,
        r#"{"alg":"HS256","kid":"hs","crit":["enc"]}"#,
        // duplicates, one escaped
        r#"{"alg":"HS256","kid":"hs","b64":true,"crit":["b64","\u0062\u0036\u0034"]}"#,
        // b64 null
        r#"{"alg":"HS256","kid":"hs","b64":null,"crit":["b64"]}"#,
        // crit not an array
        r#"{"alg":"HS256","kid":"hs","crit":"b64","b64":true}"#,
        r#"{"alg":"HS256","kid":"hs","crit":null}"#,
        r#"{"alg":"HS256","kid":"hs","crit":{}}"#,
        // non-string entry
        r#"{"alg":"HS256","kid":"hs","b64":true,"crit":["b64",1]}"#,
        // empty name
        r#"{"alg":"HS256","kid":"hs","crit":[""]}"#,
        // crit with a duplicate crit member
        r#"{"alg":"HS256","kid":"hs","crit":["x"],"crit":["b64"],"b64":true}"#,
        // b64 false without crit
        r#"{"alg":"HS256","kid":"hs","b64":false}"#,
        // a name listed twice that is not b64
        r#"{"alg":"HS256","kid":"hs","crit":["ext","ext"],"ext":1}"#,
    ];
    for header in refused {
        let err = hs_verify(hs_validation(), &hs256(header, &payload)).unwrap_err();
        assert!(
            matches!(
                err.kind(),
                ErrorKind::Malformed | ErrorKind::UnsupportedCriticalHeader
            ),
            "{header}: {err}"
        );
    }
    // still accepted: b64 true listed once
    hs_verify(
        hs_validation(),
        &hs256(
            r#"{"alg":"HS256","kid":"hs","b64":true,"crit":["b64"]}"#,
            &payload,
        ),
    )
    .unwrap();
}

// ---------------------------------------------------------------------------
// Ed25519: more non-canonical / small-order shapes, on every backend
// ---------------------------------------------------------------------------

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

    fn jwks_for(public: &[u8; 32]) -> String {
        json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": b64(public)}]})
            .to_string()
    }

    fn k(r_bytes: &[u8; 32], public: &[u8; 32], message: &[u8]) -> Scalar {
        let mut h = Sha512::new();
        h.update(r_bytes);
        h.update(public);
        h.update(message);
        Scalar::from_bytes_mod_order_wide(&h.finalize().into())
    }

    fn input() -> String {
        format!(
            "{}.{}",
            b64(br#"{"alg":"EdDSA","kid":"ed","typ":"at+jwt"}"#),
            b64(claims().to_string().as_bytes())
        )
    }

    /// A signature with these R bytes (whatever they encode) and
    /// S = r + k·a, where k hashes the R bytes as given.
    fn sign_with_r_bytes(&self, message: &[u8], r_bytes: [u8; 32], r: Scalar) -> [u8; 64] {
        let k = Self::k(&r_bytes, &self.public, message);
        let s = r + k * self.a;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&r_bytes);
        sig[32..].copy_from_slice(s.as_bytes());
        sig
    }

    fn token(sig: &[u8; 64]) -> String {
        format!("{}.{}", Self::input(), b64(sig))
    }
}

/// little-endian addition of two 256-bit numbers (wrapping)
fn add_le(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(a[i]) + u16::from(b[i]) + carry;
        out[i] = sum as u8;
        carry = sum >> 8;
    }
    out
}

const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

fn ed_verify(backend: Backend, public: &[u8; 32], token: &str) -> Result<(), ErrorKind> {
    let keys = KeySet::from_jwks_with(&Ed25519::jwks_for(public), backend).map_err(|e| e.kind())?;
    if keys.is_empty() {
        return Err(ErrorKind::UnknownKey);
    }
    Verifier::new(keys, base_validation())
        .with_clock(FixedClock(NOW))
        .verify_cached::<Value>(token)
        .map(|_| ())
        .map_err(|e| e.kind())
}

#[test]
fn attack_ed25519_non_canonical_and_small_order_shapes_on_every_backend() {
    let key = Ed25519::new(9);
    let msg = Ed25519::input();
    let r = Scalar::from(987_654_321u64);
    let honest_r = (ED25519_BASEPOINT_POINT * r).compress().to_bytes();
    let honest = key.sign_with_r_bytes(msg.as_bytes(), honest_r, r);
    let mut bad: Vec<(&str, [u8; 64])> = Vec::new();
    // S + L (the classic malleability)
    let mut s_plus_l = honest;
    let s: [u8; 32] = honest[32..].try_into().unwrap();
    s_plus_l[32..].copy_from_slice(&add_le(&s, &L));
    bad.push(("S + L", s_plus_l));
    // S with the top bits set
    let mut s_high = honest;
    s_high[63] |= 0xe0;
    bad.push(("S high bits", s_high));
    // identity R, negative zero, non-canonical (y = p + 1)
    let mut identity = [0u8; 32];
    identity[0] = 1;
    bad.push((
        "identity",
        key.sign_with_r_bytes(msg.as_bytes(), identity, Scalar::ZERO),
    ));
    let mut neg_zero = identity;
    neg_zero[31] |= 0x80;
    bad.push((
        "identity -0",
        key.sign_with_r_bytes(msg.as_bytes(), neg_zero, Scalar::ZERO),
    ));
    let mut nc_identity = [0xffu8; 32];
    nc_identity[0] = 0xee;
    nc_identity[31] = 0x7f;
    bad.push((
        "identity y=p+1",
        key.sign_with_r_bytes(msg.as_bytes(), nc_identity, Scalar::ZERO),
    ));
    let mut nc_identity_neg = nc_identity;
    nc_identity_neg[31] |= 0x80;
    bad.push((
        "identity y=p+1, sign",
        key.sign_with_r_bytes(msg.as_bytes(), nc_identity_neg, Scalar::ZERO),
    ));
    // every small-order point as R (S = k·a: the cofactorless equation
    // fails for the non-identity ones, but no backend may accept any)
    for (i, t) in EIGHT_TORSION.iter().enumerate() {
        let enc = t.compress().to_bytes();
        let sig = key.sign_with_r_bytes(msg.as_bytes(), enc, Scalar::ZERO);
        bad.push((["t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7"][i], sig));
    }
    // R = rB + T (mixed order)
    let mixed = (ED25519_BASEPOINT_POINT * r + EIGHT_TORSION[1])
        .compress()
        .to_bytes();
    bad.push(("R + T8", key.sign_with_r_bytes(msg.as_bytes(), mixed, r)));
    // honest R with the sign bit flipped
    let mut flipped = honest;
    flipped[31] ^= 0x80;
    bad.push(("R sign flipped", flipped));
    for &backend in Backend::available() {
        assert_eq!(
            ed_verify(backend, &key.public, &Ed25519::token(&honest)),
            Ok(()),
            "[{}] honest",
            backend.name()
        );
        for (name, sig) in &bad {
            assert_eq!(
                ed_verify(backend, &key.public, &Ed25519::token(sig)),
                Err(ErrorKind::InvalidSignature),
                "[{}] {name}",
                backend.name()
            );
        }
    }
}

/// A mixed-order public key (A = aB + T8, not small order, so the loader
/// takes it): backends must still agree on every signature.
#[test]
fn attack_ed25519_mixed_order_public_key_backends_agree() {
    let base = Ed25519::new(11);
    let point = ED25519_BASEPOINT_POINT * base.a + EIGHT_TORSION[1];
    let public = point.compress().to_bytes();
    let key = Ed25519 { a: base.a, public };
    let msg = Ed25519::input();
    let mut answers = Vec::new();
    for n in 1..40u64 {
        let r = Scalar::from(n * 7_919);
        let r_bytes = (ED25519_BASEPOINT_POINT * r).compress().to_bytes();
        let sig = key.sign_with_r_bytes(msg.as_bytes(), r_bytes, r);
        let token = Ed25519::token(&sig);
        let per_backend: Vec<Result<(), ErrorKind>> = Backend::available()
            .iter()
            .map(|&b| ed_verify(b, &public, &token))
            .collect();
        assert!(
            per_backend.windows(2).all(|w| w[0] == w[1]),
            "backends disagree on nonce {n}: {per_backend:?}"
        );
        answers.push(per_backend[0]);
    }
    eprintln!(
        "mixed-order key: {} of {} signatures accepted (backends: {:?})",
        answers.iter().filter(|a| a.is_ok()).count(),
        answers.len(),
        Backend::available()
            .iter()
            .map(|b| b.name())
            .collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------------------
// one key, one algorithm
// ---------------------------------------------------------------------------

fn rsa1_without_alg() -> String {
    let jwks: Value = serde_json::from_str(JWKS).unwrap();
    let rsa1 = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == "rsa-1")
        .unwrap()
        .clone();
    assert!(rsa1.get("alg").is_none());
    json!({"keys": [rsa1]}).to_string()
}

fn rsa_verify(
    backend: Backend,
    jwks: &str,
    validation: Validation,
    token: &str,
) -> Result<(), ErrorKind> {
    Verifier::new(KeySet::from_jwks_with(jwks, backend).unwrap(), validation)
        .with_clock(FixedClock(NOW))
        .verify_cached::<Value>(token)
        .map(|_| ())
        .map_err(|e| e.kind())
}

/// Strip the kid from a token's header, keeping the signature (which is
/// then invalid, but the question is which keys are tried at all).
fn without_kid(token: &str, alg: &str) -> String {
    let mut parts = token.split('.');
    let _ = parts.next();
    let payload = parts.next().unwrap();
    let sig = parts.next().unwrap();
    let header = format!(r#"{{"alg":"{alg}","typ":"at+jwt"}}"#);
    format!("{}.{payload}.{sig}", b64(header.as_bytes()))
}

#[test]
fn attack_algless_rsa_key_is_rs256_only_unless_named() {
    let jwks = rsa1_without_alg();
    for &backend in Backend::available() {
        assert_eq!(
            rsa_verify(backend, &jwks, base_validation(), &valid_token("RS256")),
            Ok(())
        );
        for alg in ["RS384", "RS512", "PS256", "PS384", "PS512"] {
            let err = rsa_verify(backend, &jwks, base_validation(), &valid_token(alg)).unwrap_err();
            assert_ne!(
                err,
                ErrorKind::InvalidSignature,
                "[{}] {alg} must not even be tried",
                backend.name()
            );
            // named explicitly: verifies
            let named = Algorithm::parse(alg).unwrap();
            assert_eq!(
                rsa_verify(
                    backend,
                    &jwks,
                    base_validation().algorithms([Algorithm::RS256, named]),
                    &valid_token(alg)
                ),
                Ok(()),
                "[{}] {alg} named",
                backend.name()
            );
            // naming another PS/RS algorithm does not admit this one
            let other = if alg == "PS256" {
                Algorithm::PS384
            } else {
                Algorithm::PS256
            };
            assert!(
                rsa_verify(
                    backend,
                    &jwks,
                    base_validation().algorithms([Algorithm::RS256, other]),
                    &valid_token(alg)
                )
                .is_err(),
                "[{}] {alg} with only {other:?} named",
                backend.name()
            );
        }
        // RS256 not in an explicit list that names only PS256: refused
        assert!(rsa_verify(
            backend,
            &jwks,
            base_validation().algorithms([Algorithm::PS256]),
            &valid_token("RS256")
        )
        .is_err());
        // kid-less PS256 token against the alg-less key: no candidate at all
        let kidless = without_kid(&valid_token("PS256"), "PS256");
        let err = rsa_verify(backend, &jwks, base_validation(), &kidless).unwrap_err();
        assert_ne!(
            err,
            ErrorKind::InvalidSignature,
            "[{}] kid-less PS256 tried with the alg-less key",
            backend.name()
        );
    }
    // the key itself: supports RS256 only; admits PS256 only when listed
    let set = KeySet::from_jwks(&jwks).unwrap();
    let key = &set.keys()[0];
    assert!(key.supports(Algorithm::RS256));
    for alg in [
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
    ] {
        assert!(!key.supports(alg), "{alg:?}");
        assert!(key.admits(alg, Some(&[alg])));
        assert!(!key.admits(alg, Some(&[])));
    }
}

/// A JWK with an explicit `alg` verifies that algorithm only, even when the
/// caller lists others.
#[test]
fn attack_rsa_key_with_alg_is_bound_even_with_an_explicit_list() {
    let jwks: Value = serde_json::from_str(JWKS).unwrap();
    let mut rsa1 = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == "rsa-1")
        .unwrap()
        .clone();
    rsa1["alg"] = json!("PS256");
    let jwks = json!({"keys": [rsa1]}).to_string();
    let all = base_validation().algorithms([Algorithm::RS256, Algorithm::PS256, Algorithm::RS384]);
    for &backend in Backend::available() {
        assert_eq!(
            rsa_verify(backend, &jwks, all.clone(), &valid_token("PS256")),
            Ok(())
        );
        assert!(rsa_verify(backend, &jwks, all.clone(), &valid_token("RS256")).is_err());
        assert!(rsa_verify(backend, &jwks, all.clone(), &valid_token("RS384")).is_err());
    }
}

// ---------------------------------------------------------------------------
// cnf variants through Verifier
// ---------------------------------------------------------------------------

#[test]
fn attack_cnf_variants() {
    for extra in [
        r#""cnf":{"jkt":"abc"}"#,
        r#""\u0063nf":{"jkt":"abc"}"#,
        r#""cnf":{}"#,
        r#""cnf":"x""#,
        r#""cnf":false"#,
        r#""cnf":[]"#,
        r#""cnf":0"#,
    ] {
        let token = hs256(HS_HEADER, &payload_with(extra));
        let err = hs_verify(hs_validation(), &token).unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::SenderConstrainedToken,
            "{extra}: {err}"
        );
        hs_verify(
            hs_validation().bound_tokens(BoundTokens::CallerChecksBinding),
            &token,
        )
        .unwrap();
    }
    // "Cnf" / "cnf " are other claims
    for extra in [r#""Cnf":{"jkt":"abc"}"#, r#""cnf ":{"jkt":"abc"}"#] {
        hs_verify(hs_validation(), &hs256(HS_HEADER, &payload_with(extra))).unwrap();
    }
    // a cnf in the header is not a payload binding (and is ignored)
    hs_verify(
        hs_validation(),
        &hs256(
            r#"{"alg":"HS256","kid":"hs","cnf":{"jkt":"x"}}"#,
            &claims().to_string(),
        ),
    )
    .unwrap();
}

#[test]
fn attack_signature_length_and_b64_sanity() {
    // the RS256 fixture with its signature truncated / extended is refused
    // without panicking, on every backend
    let normal = valid_token("RS256");
    let (input, sig) = normal.rsplit_once('.').unwrap();
    let raw = unb64(sig);
    for bad in [
        &raw[..raw.len() - 1],
        &[raw.as_slice(), &[0u8]].concat()[..],
        &[][..],
    ] {
        let token = format!("{input}.{}", b64(bad));
        for &backend in Backend::available() {
            assert!(verifier(backend, base_validation())
                .verify_cached::<Value>(&token)
                .is_err());
        }
    }
}

/// Item 1's JWK half: a 1 MiB JWKS (before: ~55 s). Keys at the member cap,
/// and one key far past it.
#[test]
fn attack_large_jwks_of_keys_at_the_member_cap() {
    let key = |i: usize, members: usize| {
        format!(
            r#"{{"kty":"oct","kid":"k{i}","alg":"HS256","k":"KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio",{}}}"#,
            filler("m", members)
        )
    };
    let mut keys = Vec::new();
    let mut size = 0;
    while size < 1024 * 1024 {
        let k = key(keys.len(), DEFAULT_MAX_OBJECT_MEMBERS - 4);
        size += k.len() + 1;
        keys.push(k);
    }
    keys.push(key(keys.len(), 100_000));
    let jwks = format!(r#"{{"keys":[{}]}}"#, keys.join(","));
    let set = KeySet::from_jwks(&jwks).unwrap();
    assert_eq!(set.skipped().len(), 1);
    assert_eq!(set.len(), keys.len() - 1);
}
