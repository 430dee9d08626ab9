//! Tokens minted by independent implementations (PyJWT, jwcrypto) and the
//! RFC 7515 / 7520 / 8037 examples, verified by every compiled backend.
//! Each invalid case breaks exactly one rule of an otherwise valid token.

mod common;

use common::*;
use keyward_core::{
    Algorithm, Backend, ErrorKind, FixedClock, Jwk, KeySet, RegisteredClaims, Validation, Verifier,
};
use serde_json::Value;
use std::time::Duration;

fn validation_for(options: &Value) -> Validation {
    let mut v = Validation::new().typ("at+jwt").issuer(ISSUER);
    let audiences = options.get("audience").and_then(Value::as_array);
    match audiences {
        Some(list) => {
            for a in list {
                v = v.audience(a.as_str().unwrap());
            }
        }
        None => v = v.audience(AUDIENCE),
    }
    if let Some(algs) = options.get("algorithms").and_then(Value::as_array) {
        v = v.algorithms(
            algs.iter()
                .map(|a| Algorithm::parse(a.as_str().unwrap()).unwrap()),
        );
    }
    if let Some(secs) = options.get("leeway").and_then(Value::as_u64) {
        v = v.leeway(Duration::from_secs(secs));
    }
    if let Some(secs) = options.get("max_age").and_then(Value::as_u64) {
        v = v.max_age(Duration::from_secs(secs));
    }
    if options.get("any_audience") == Some(&Value::Bool(true)) {
        v = v.accept_any_audience();
    }
    if options.get("require_sub") == Some(&Value::Bool(true)) {
        v = v.require_sub(true);
    }
    for client in options
        .get("client_id")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        v = v.client_id(client.as_str().unwrap());
    }
    for claim in options
        .get("require")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        v = v.require_claim(claim.as_str().unwrap());
    }
    v
}

#[test]
fn oracle_cases_on_every_backend() {
    let manifest: Value = serde_json::from_str(CASES).unwrap();
    let cases = manifest["cases"].as_array().unwrap();
    assert!(
        cases.len() >= 100,
        "fixture manifest lost cases: {}",
        cases.len()
    );
    let mut failures = Vec::new();
    let mut checked = 0;
    for &backend in Backend::available() {
        let keys = key_set(backend);
        for case in cases {
            let name = case["name"].as_str().unwrap();
            let token = case["token"].as_str().unwrap();
            let expect = case["expect"].as_str().unwrap();
            let verifier = Verifier::new(keys.clone(), validation_for(&case["options"]))
                .with_clock(FixedClock(NOW));
            let got = match verifier.verify_cached::<RegisteredClaims>(token) {
                Ok(verified) => {
                    assert_eq!(
                        verified.claims().sub.as_deref().unwrap_or("user-123"),
                        "user-123",
                        "{name}"
                    );
                    "ok".to_owned()
                }
                Err(e) => {
                    // messages never carry the token or its signature
                    let sig = token.rsplit('.').next().unwrap();
                    assert!(sig.len() < 8 || !e.to_string().contains(sig), "{name}: {e}");
                    e.kind().as_str().to_owned()
                }
            };
            checked += 1;
            if got != expect {
                failures.push(format!(
                    "[{}] {name}: expected {expect}, got {got}",
                    backend.name()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} mismatched:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_algorithm_has_a_valid_oracle_token() {
    let manifest: Value = serde_json::from_str(CASES).unwrap();
    for alg in Algorithm::ALL {
        let name = format!("pyjwt-{alg}");
        let found = manifest["cases"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == name.as_str() && c["expect"] == "ok");
        assert!(found, "no valid {name} fixture");
    }
}

#[test]
fn fixture_jwks_skips_unusable_keys_only() {
    for &backend in Backend::available() {
        let keys = key_set(backend);
        let skipped: Vec<(Option<&str>, ErrorKind)> = keys
            .skipped()
            .iter()
            .map(|s| (s.kid.as_deref(), s.reason.kind()))
            .collect();
        assert_eq!(
            skipped,
            [
                (Some("enc-1"), ErrorKind::UnsupportedAlgorithm),
                (Some("x25519-1"), ErrorKind::UnsupportedAlgorithm),
                (Some("rsa-weak"), ErrorKind::WeakKey),
            ]
        );
        assert_eq!(keys.len(), 9);
        for kid in [
            "rsa-1",
            "rsa-rs256-only",
            "ec-p256",
            "ec-p384",
            "ec-p521",
            "ed-1",
            "hmac-1",
        ] {
            assert!(keys.contains_kid(kid), "{kid}");
        }
    }
}

#[test]
fn rfc_example_tokens() {
    let rfc: Value = serde_json::from_str(RFC).unwrap();
    let now = rfc["now"].as_u64().unwrap();
    let vectors = rfc["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 8);
    for &backend in Backend::available() {
        for vector in vectors {
            let name = vector["name"].as_str().unwrap();
            let alg = Algorithm::parse(vector["alg"].as_str().unwrap()).unwrap();
            let jwk = Jwk::parse_with(&vector["jwk"].to_string(), backend).unwrap();
            let verifier = Verifier::new(
                KeySet::from_keys(vec![jwk]),
                Validation::new().algorithms([alg]).accept_any_audience(),
            )
            .with_clock(FixedClock(now));
            let token = vector["token"].as_str().unwrap();
            let result = verifier.verify_cached::<RegisteredClaims>(token);
            if vector["json"].as_bool().unwrap() {
                let verified =
                    result.unwrap_or_else(|e| panic!("{name} [{}]: {e}", backend.name()));
                assert_eq!(verified.claims().iss.as_deref(), Some("joe"), "{name}");
                assert!(verified
                    .claims_json()
                    .contains("http://example.com/is_root"));
            } else {
                // The payload is text, not a JWT claims set: the signature
                // verifies (payload decoding happens only after it) and the
                // payload is then rejected.
                let err = result.unwrap_err();
                assert_eq!(
                    err.kind(),
                    ErrorKind::Malformed,
                    "{name} [{}]: {err}",
                    backend.name()
                );
            }
            // The same token with one signature character changed fails the
            // signature, which shows the check above passed it.
            let mut tampered = token.to_owned();
            let last_sig_char = tampered.len() - 3;
            let c = tampered.as_bytes()[last_sig_char];
            tampered.replace_range(
                last_sig_char..=last_sig_char,
                if c == b'A' { "B" } else { "A" },
            );
            let err = verifier
                .verify_cached::<RegisteredClaims>(&tampered)
                .unwrap_err();
            assert_eq!(
                err.kind(),
                ErrorKind::InvalidSignature,
                "{name} tampered [{}]",
                backend.name()
            );
        }
    }
}

#[test]
fn encoding_variants_of_a_valid_token_reject() {
    for &backend in Backend::available() {
        let verifier = verifier(backend, base_validation());
        let token = valid_token("ES256");
        verifier.verify_cached::<Value>(&token).unwrap();
        let (h, rest) = token.split_once('.').unwrap();
        let (p, s) = rest.split_once('.').unwrap();
        let mut variants = vec![
            (format!("{h}=.{p}.{s}"), ErrorKind::Malformed),
            // the payload is decoded only after the signature check, and the
            // signature covers the payload text as sent
            (format!("{h}.{p}=.{s}"), ErrorKind::InvalidSignature),
            (format!("{h}.{p}.{s}="), ErrorKind::Malformed),
            (format!("{h}.{p}.{s}.{s}"), ErrorKind::Malformed),
            (format!("{h}.{p}"), ErrorKind::Malformed),
            (format!("{h}.{p}.{s}."), ErrorKind::Malformed),
            (format!(" {token}"), ErrorKind::Malformed),
            (format!("{token}\n"), ErrorKind::Malformed),
            (
                format!("{h}.{}\n{}.{s}", &p[..10], &p[10..]),
                ErrorKind::InvalidSignature,
            ),
            (format!("{h}\n.{p}.{s}"), ErrorKind::Malformed),
            (String::new(), ErrorKind::Malformed),
            ("..".to_owned(), ErrorKind::Malformed),
        ];
        // the standard alphabet instead of the URL-safe one
        for (segment, kind) in [
            (h, ErrorKind::Malformed),
            (p, ErrorKind::InvalidSignature),
            (s, ErrorKind::Malformed),
        ] {
            if segment.contains(['-', '_']) {
                let std_alphabet = segment.replace('-', "+").replace('_', "/");
                variants.push((token.replacen(segment, &std_alphabet, 1), kind));
            }
        }
        // non-canonical trailing bits in the signature (64 bytes -> 86
        // chars, the last one carries 2 unused bits)
        let last = s.chars().last().unwrap();
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let idx = alphabet.find(last).unwrap();
        let noncanonical = alphabet.chars().nth(idx | 1).unwrap();
        assert_ne!(
            noncanonical, last,
            "fixture signature ends in a value with low bits set"
        );
        variants.push((
            format!("{h}.{p}.{}{noncanonical}", &s[..s.len() - 1]),
            ErrorKind::Malformed,
        ));

        for (variant, kind) in variants {
            let err = verifier.verify_cached::<Value>(&variant).unwrap_err();
            assert_eq!(err.kind(), kind, "{variant:?}");
        }
    }
}

#[test]
fn size_limit_applies_before_decoding() {
    for &backend in Backend::available() {
        let token = valid_token("RS256");
        let tight = verifier(backend, base_validation().max_token_size(token.len() - 1));
        assert_eq!(
            tight.verify_cached::<Value>(&token).unwrap_err().kind(),
            ErrorKind::TokenTooLarge
        );
        let exact = verifier(backend, base_validation().max_token_size(token.len()));
        exact.verify_cached::<Value>(&token).unwrap();
        // default limit 32 KiB: a huge token is refused without decoding,
        // even if it is garbage
        let huge = "a".repeat(32 * 1024 + 1);
        let default = verifier(backend, base_validation());
        assert_eq!(
            default.verify_cached::<Value>(&huge).unwrap_err().kind(),
            ErrorKind::TokenTooLarge
        );
    }
}

#[test]
fn typed_claims_and_raw_json() {
    #[derive(serde::Deserialize, Debug)]
    struct Org {
        slug: String,
        name: String,
    }
    #[derive(serde::Deserialize, Debug)]
    struct Claims {
        #[serde(flatten)]
        registered: RegisteredClaims,
        email: String,
        orgs: Vec<Org>,
    }
    #[derive(serde::Deserialize, Debug)]
    struct WrongShape {
        #[allow(dead_code)]
        email: u64,
    }
    for &backend in Backend::available() {
        let verifier = verifier(backend, base_validation());
        let verified = verifier
            .verify_cached::<Claims>(&valid_token("EdDSA"))
            .unwrap();
        assert_eq!(verified.header().alg(), Algorithm::EdDSA);
        assert_eq!(verified.header().kid(), Some("ed-1"));
        assert_eq!(verified.claims().email, "alice@example.com");
        assert_eq!(verified.claims().orgs[0].slug, "acme");
        assert_eq!(verified.claims().orgs[1].name, "Globex");
        assert_eq!(
            verified.claims().registered.exp.unwrap().as_secs(),
            NOW as i64 + 3000
        );
        let raw: Value = serde_json::from_str(verified.claims_json()).unwrap();
        assert_eq!(raw["scope"], "openid profile read:projects");
        // a claims type that does not fit is invalid_claim, and the message
        // does not echo the value
        let err = verifier
            .verify_cached::<WrongShape>(&valid_token("EdDSA"))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidClaim);
        assert!(!err.to_string().contains("alice"), "{err}");
    }
}

#[test]
fn header_json_is_exactly_what_was_signed() {
    let verifier = verifier(Backend::default(), base_validation());
    let verified = verifier
        .verify_cached::<Value>(&valid_token("ES384"))
        .unwrap();
    let header: Value = serde_json::from_str(verified.header().json()).unwrap();
    assert_eq!(header["kid"], "ec-p384");
    assert_eq!(header["typ"], "at+jwt");
}

#[test]
fn kidless_tokens_try_a_bounded_number_of_keys() {
    // The fixture JWKS lists ec-p256 before the P-256 key without kid; the
    // kid-less token is signed by the latter, so it verifies only when two
    // candidates may be tried.
    let manifest: Value = serde_json::from_str(CASES).unwrap();
    let token = manifest["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "no-kid-tries-compatible-keys")
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    for &backend in Backend::available() {
        verifier(backend, base_validation().max_kidless_candidates(2))
            .verify_cached::<Value>(&token)
            .unwrap();
        let err = verifier(backend, base_validation().max_kidless_candidates(1))
            .verify_cached::<Value>(&token)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidSignature);
    }
}

/// Found by the `jwks` fuzz target: 32 bytes that are not an Ed25519 point
/// (one character of a real key changed). The RustCrypto backend refused the
/// key, aws-lc accepted it and failed later; now every backend refuses it at
/// load, the same way.
#[test]
fn fuzz_regression_ed25519_non_point_is_refused_by_every_backend() {
    let doc = r#"{"keys": [{"x": "Y81Pc8FygEcHtYVv4JGH5zsqHU3HnE7NlpNmz_A1ccY", "kty": "OKP", "crv": "Ed25519", "kid": "ed-1", "use": "sig"}]}"#;
    assert_every_backend_skips_as_malformed(doc);
}

/// Found by the `jwks` fuzz target: an even RSA modulus (never a valid key).
/// The rsa crate refused it, aws-lc accepted it; now both refuse it at load.
#[test]
fn fuzz_regression_even_rsa_modulus_is_refused_by_every_backend() {
    let mut n = vec![0xc5u8; 257];
    n[256] = 0x10; // even
    let n = keyward_testkit_free_b64(&n);
    let doc = format!(r#"{{"keys":[{{"kty":"RSA","kid":"even","n":"{n}","e":"AQAB"}}]}}"#);
    assert_every_backend_skips_as_malformed(&doc);
}

/// Every backend loads `doc` into an empty set, the key skipped as malformed.
fn assert_every_backend_skips_as_malformed(doc: &str) {
    for &backend in Backend::available() {
        let set = KeySet::from_jwks_with(doc, backend).unwrap();
        assert!(set.is_empty(), "[{}]", backend.name());
        assert_eq!(
            set.skipped()[0].reason.kind(),
            ErrorKind::Malformed,
            "[{}]",
            backend.name()
        );
    }
}

fn keyward_testkit_free_b64(bytes: &[u8]) -> String {
    use base64ct::{Base64UrlUnpadded, Encoding};
    Base64UrlUnpadded::encode_string(bytes)
}
