//! Hostile token shapes against a normal token of the same algorithm
//! (ES256, both backends): what an anonymous client can make one
//! verification cost. Every hostile token is at most 32 KiB (the default
//! size limit), so it reaches the parsers:
//!
//! - `header member bomb`: a header of ~3,500 two- and three-character
//!   members (before the hardening issue, duplicate detection was quadratic:
//!   ~35 ms per token);
//! - `payload member bomb`: the same in a validly signed payload;
//! - `wide objects`: a validly signed payload of 150 objects of 17 members
//!   each (every one past the inline-compare limit of 16);
//! - `large valid token`: 32 KiB, a `groups` claim of ~2,000 strings;
//! - `oversized`: one byte over the limit, through `authenticate` with the
//!   verified-token cache on and off.
//!
//! Uses only API that existed before the hardening issue, so the same file
//! measures the previous commit (see `docs/benchmarks.md`).

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use criterion::{criterion_group, criterion_main, Criterion};
use keyward::AuthenticateOptions;
use keyward_benches::{
    keyward_authenticator, keyward_verifier, run_ready, Claims, AUDIENCE, ISSUER,
};
use keyward_core::Backend;
use keyward_testkit::fixtures::b64;
use serde_json::{json, Value};
use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

const LIMIT: usize = 32 * 1024;

struct Signer {
    pair: EcdsaKeyPair,
}

impl Signer {
    fn jwks(&self) -> String {
        let point = self.pair.public_key().as_ref();
        json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "es-hostile", "alg": "ES256",
            "x": b64(&point[1..33]), "y": b64(&point[33..65])}]})
        .to_string()
    }

    fn sign(&self, header: &str, payload: &str) -> String {
        let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
        let sig = self
            .pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .unwrap();
        format!("{input}.{}", b64(sig.as_ref()))
    }
}

fn claims() -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    json!({
        "iss": ISSUER, "sub": "user-4f1c9a2e", "aud": AUDIENCE,
        "exp": now + 3600, "iat": now, "nbf": now,
        "scope": "openid profile email read:projects write:projects",
        "email": "ada.lovelace@example.com",
        "orgs": [
            {"id": "org_7Hk2", "slug": "analytical-engines", "name": "Analytical Engines Ltd"},
            {"id": "org_9Qx1", "slug": "difference", "name": "Difference Engine Society"},
            {"id": "org_3Zr8", "slug": "royal-society", "name": "The Royal Society"}
        ]
    })
}

const HEADER: &str = r#"{"alg":"ES256","typ":"at+jwt","kid":"es-hostile"}"#;

/// `"0":0,"1":0,...` (hex names) — as many as fit so that the token built
/// by `wrap` stays within the limit.
fn members_filling(wrap: impl Fn(&str) -> String) -> String {
    let mut members = String::new();
    let mut i = 0u32;
    loop {
        let next = format!("{}\"{i:x}\":0", if members.is_empty() { "" } else { "," });
        let candidate = format!("{members}{next}");
        if wrap(&candidate).len() > LIMIT {
            return members;
        }
        members = candidate;
        i += 1;
    }
}

fn cases(signer: &Signer) -> Vec<(&'static str, String)> {
    let payload = claims().to_string();
    let normal = signer.sign(HEADER, &payload);
    let header_with = |m: &str| {
        signer.sign(
            &format!(r#"{{"alg":"ES256","kid":"es-hostile",{m}}}"#),
            &payload,
        )
    };
    let header_bomb = header_with(&members_filling(header_with));
    let payload_with = |m: &str| {
        let body = payload.trim_end_matches('}');
        signer.sign(HEADER, &format!("{body},{m}}}"))
    };
    let payload_bomb = payload_with(&members_filling(payload_with));
    let mut wide = claims();
    wide["objects"] = (0..150)
        .map(|o| {
            (b'a'..=b'q')
                .map(|m| (char::from(m).to_string(), json!(o)))
                .collect()
        })
        .collect::<Vec<serde_json::Map<String, Value>>>()
        .into();
    let wide = signer.sign(HEADER, &wide.to_string());
    let mut large = claims();
    let mut groups = Vec::new();
    loop {
        groups.push(format!("group-{:05}", groups.len()));
        large["groups"] = json!(groups);
        if signer.sign(HEADER, &large.to_string()).len() > LIMIT {
            groups.pop();
            large["groups"] = json!(groups);
            break;
        }
    }
    let large = signer.sign(HEADER, &large.to_string());
    for (name, token) in [
        ("header bomb", &header_bomb),
        ("payload bomb", &payload_bomb),
        ("large", &large),
    ] {
        assert!(token.len() <= LIMIT, "{name}: {}", token.len());
    }
    vec![
        ("normal token", normal),
        ("header member bomb", header_bomb),
        ("payload member bomb", payload_bomb),
        ("wide objects", wide),
        ("large valid token", large),
    ]
}

fn hostile(c: &mut Criterion) {
    let signer = Signer {
        pair: EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap(),
    };
    let jwks = signer.jwks();
    let cases = cases(&signer);
    for backend in [Backend::AwsLc, Backend::RustCrypto] {
        let verifier = keyward_verifier(&jwks, backend);
        let mut g = c.benchmark_group(format!("hostile/ES256 [{}]", backend.name()));
        for (name, token) in &cases {
            let outcome = verifier.verify_cached::<Claims>(token).map(|_| ());
            eprintln!(
                "[{}] {name}: {} bytes, {}",
                backend.name(),
                token.len(),
                outcome.map_or_else(|e| e.kind().as_str().to_owned(), |()| "ok".to_owned())
            );
            g.bench_function(*name, |b| {
                b.iter(|| {
                    let _ = black_box(verifier.verify_cached::<Claims>(black_box(token)));
                })
            });
        }
        g.finish();
    }

    // one byte over the limit, through authenticate, cache on and off
    let options = AuthenticateOptions {
        include_user_info: false,
    };
    let mut over = cases[0].1.clone();
    over.insert_str(0, &"A".repeat(LIMIT + 1 - over.len()));
    let mut g = c.benchmark_group("hostile/oversized authenticate");
    for (name, cache) in [("cache on", true), ("cache off", false)] {
        let auth = keyward_authenticator(&jwks, cache);
        assert!(run_ready(auth.authenticate_token(&over, options)).is_err());
        g.bench_function(name, |b| {
            b.iter(|| {
                let _ = black_box(run_ready(
                    auth.authenticate_token(black_box(&over), options),
                ));
            })
        });
    }
    g.finish();
}

criterion_group!(benches, hostile);
criterion_main!(benches);
