//! JWKS documents into key sets, with both backends: no panic, and the
//! same keys usable (same kids, same number skipped).
#![no_main]
use keyward_core::{Backend, KeySet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = std::str::from_utf8(data) else { return };
    let a = KeySet::from_jwks_with(doc, Backend::RustCrypto);
    let b = KeySet::from_jwks_with(doc, Backend::AwsLc);
    match (a, b) {
        (Ok(a), Ok(b)) => {
            let kids = |s: &KeySet| s.keys().iter().map(|k| k.kid().map(str::to_owned)).collect::<Vec<_>>();
            assert_eq!(kids(&a), kids(&b));
            assert_eq!(a.skipped().len(), b.skipped().len());
        }
        (Err(a), Err(b)) => assert_eq!(a.kind(), b.kind()),
        (a, b) => panic!("backends disagree: {a:?} vs {b:?}"),
    }
    let _ = keyward_keys::public_jwks(doc);
});
