//! Shared fixture loading for keyward-core's integration tests.
#![allow(dead_code)]

use keyward_core::{Backend, FixedClock, KeySet, Validation, Verifier};

pub const JWKS: &str = include_str!("../fixtures/jwks.json");
pub const CASES: &str = include_str!("../fixtures/cases.json");
pub const RFC: &str = include_str!("../fixtures/rfc.json");
pub const NOW: u64 = 1_700_000_000;
pub const ISSUER: &str = "https://issuer.example";
pub const AUDIENCE: &str = "https://api.example";

/// The validation every fixture token satisfies.
pub fn base_validation() -> Validation {
    Validation::new()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .typ("at+jwt")
}

pub fn key_set(backend: Backend) -> KeySet {
    KeySet::from_jwks_with(JWKS, backend).unwrap()
}

pub fn verifier(backend: Backend, validation: Validation) -> Verifier {
    Verifier::new(key_set(backend), validation).with_clock(FixedClock(NOW))
}

pub fn valid_token(alg: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/valid/{alg}.jwt",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path).unwrap().trim().to_owned()
}
