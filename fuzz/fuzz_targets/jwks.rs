//! JWKS documents into key sets, with both backends: no panic, and the
//! same keys usable (same kids, same number skipped); and the duplicate
//! checks' work linear in the document (a member bomb in a JWK object fails
//! the run however fast the machine is).
#![no_main]
use keyward_core::fuzzing::{duplicate_check_work, MAX_WORK_PER_MEMBER};
use keyward_core::{Backend, KeySet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = std::str::from_utf8(data) else { return };
    let (a, work) = duplicate_check_work(|| KeySet::from_jwks_with(doc, Backend::RustCrypto));
    let bound = MAX_WORK_PER_MEMBER * data.len() as u64;
    assert!(work <= bound, "{work} name comparisons for {} bytes", data.len());
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
