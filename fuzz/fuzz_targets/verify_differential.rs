//! Full verification of arbitrary bytes against a fixed key set with a key
//! for every algorithm, with both crypto backends: each must return an error
//! or a valid result without panicking, and both must agree on accept /
//! reject and on the error kind.
#![no_main]
use keyward_core::{Algorithm, Backend, FixedClock, KeySet, Validation, Verifier};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const JWKS: &str = include_str!("../../crates/keyward-core/tests/fixtures/jwks.json");

fn verifiers() -> &'static [Verifier; 2] {
    static V: OnceLock<[Verifier; 2]> = OnceLock::new();
    V.get_or_init(|| {
        let make = |backend| {
            Verifier::new(
                KeySet::from_jwks_with(JWKS, backend).expect("fixture JWKS"),
                Validation::new().algorithms(Algorithm::ALL).accept_any_audience(),
            )
            .with_clock(FixedClock(1_700_000_000))
        };
        [make(Backend::RustCrypto), make(Backend::AwsLc)]
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else { return };
    let [rust_crypto, aws_lc] = verifiers();
    let a = rust_crypto.verify_cached::<serde_json::Value>(token);
    let b = aws_lc.verify_cached::<serde_json::Value>(token);
    match (&a, &b) {
        (Ok(x), Ok(y)) => assert_eq!(x.claims(), y.claims()),
        (Err(x), Err(y)) => assert_eq!(x.kind(), y.kind(), "backends disagree on {token:?}"),
        _ => panic!("backends disagree on accept/reject for {token:?}: {a:?} vs {b:?}"),
    }
});
