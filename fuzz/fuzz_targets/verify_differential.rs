//! Full verification with both crypto backends: each must return an error or
//! a valid result without panicking, and both must agree on accept / reject
//! and on the error kind.
//!
//! Two input shapes share the target (and its corpus):
//!
//! - UTF-8 bytes are a compact token, verified against a fixed key set with
//!   a key for every algorithm; the duplicate-member checks' work must stay
//!   linear in the token (a member bomb fails the run on any machine).
//! - Bytes starting with `0xFF` (never UTF-8) describe an Ed25519 signature
//!   over a fixed, well-formed token, made with a key this target holds:
//!   the nonce `r`, a small-order point added to `R = rB`, and mutations of
//!   the encodings of `R` (non-canonical y, flipped sign bit, raw bytes) and
//!   `S` (plus the group order, top bits set). The backends' own Ed25519
//!   rules differ (aws-lc accepted a small-order `R`, ed25519-dalek's
//!   `verify_strict` does not); keyward's common checks must make them agree
//!   on every such signature, and the honest signature must verify.
#![no_main]
use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
use curve25519_dalek::Scalar;
use keyward_core::fuzzing::{duplicate_check_work, MAX_WORK_PER_MEMBER};
use keyward_core::{Algorithm, Backend, FixedClock, KeySet, Validation, Verifier};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha512};
use std::sync::OnceLock;

const JWKS: &str = include_str!("../../crates/keyward-core/tests/fixtures/jwks.json");
const NOW: u64 = 1_700_000_000;

fn verifiers(jwks: &str) -> [Verifier; 2] {
    let make = |backend| {
        Verifier::new(
            KeySet::from_jwks_with(jwks, backend).expect("fixture JWKS"),
            Validation::new().algorithms(Algorithm::ALL).accept_any_audience(),
        )
        .with_clock(FixedClock(NOW))
    };
    [make(Backend::RustCrypto), make(Backend::AwsLc)]
}

/// Verifies `token` with both backends and checks that they agree; returns
/// whether it was accepted.
fn differential(verifiers: &[Verifier; 2], token: &str) -> bool {
    let [rust_crypto, aws_lc] = verifiers;
    let a = rust_crypto.verify_cached::<serde_json::Value>(token);
    let b = aws_lc.verify_cached::<serde_json::Value>(token);
    match (&a, &b) {
        (Ok(x), Ok(y)) => {
            assert_eq!(x.claims(), y.claims());
            true
        }
        (Err(x), Err(y)) => {
            assert_eq!(x.kind(), y.kind(), "backends disagree on {token:?}");
            false
        }
        _ => panic!("backends disagree on accept/reject for {token:?}: {a:?} vs {b:?}"),
    }
}

fn b64(bytes: &[u8]) -> String {
    use base64ct::{Base64UrlUnpadded, Encoding};
    Base64UrlUnpadded::encode_string(bytes)
}

/// The target's Ed25519 key (secret scalar `a`, public `A = aB`), its
/// verifiers, and the signing input of a valid token.
struct Ed25519Case {
    a: Scalar,
    public: [u8; 32],
    verifiers: [Verifier; 2],
    signing_input: String,
}

fn ed25519_case() -> &'static Ed25519Case {
    static CASE: OnceLock<Ed25519Case> = OnceLock::new();
    CASE.get_or_init(|| {
        let a = Scalar::from_bytes_mod_order([0x5a; 32]);
        let public = (ED25519_BASEPOINT_POINT * a).compress().to_bytes();
        let jwks = format!(
            r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"ed","x":"{}"}}]}}"#,
            b64(&public)
        );
        let header = br#"{"alg":"EdDSA","kid":"ed"}"#;
        let payload = format!(r#"{{"sub":"fuzz","exp":{},"iat":{NOW}}}"#, NOW + 600);
        Ed25519Case {
            a,
            public,
            verifiers: verifiers(&jwks),
            signing_input: format!("{}.{}", b64(header), b64(payload.as_bytes())),
        }
    })
}

/// `ctl[0]`: bits 0-1 choose the `R` encoding, bits 2-3 the `S` encoding;
/// `ctl[1]` picks the small-order point added to `R`; then 32 bytes of `r`.
fn ed25519_signature(data: &[u8]) {
    let case = ed25519_case();
    let [r_mode, torsion, rest @ ..] = data else { return };
    let mut r_bytes = [0u8; 32];
    let n = rest.len().min(32);
    r_bytes[..n].copy_from_slice(&rest[..n]);
    let r = Scalar::from_bytes_mod_order(r_bytes);
    let torsion = usize::from(*torsion % 8);
    let point = ED25519_BASEPOINT_POINT * r + EIGHT_TORSION[torsion];
    let canonical_r = point.compress().to_bytes();
    let mut big_r = canonical_r;
    match r_mode & 3 {
        0 => {}
        // the non-canonical encoding y + p, where y + p < 2^255 (y < 19)
        1 => {
            let y_is_small = big_r[1..31].iter().all(|&b| b == 0) && big_r[31] & 0x7f == 0;
            if y_is_small && big_r[0] < 19 {
                big_r[0] += 0xed;
                big_r[1..31].fill(0xff);
                big_r[31] |= 0x7f;
            }
        }
        2 => big_r[31] ^= 0x80,
        _ => big_r = r_bytes,
    }
    // k = H(R || A || M) over the encoding as sent, as a verifier computes it
    let k = Scalar::from_bytes_mod_order_wide(
        &Sha512::new()
            .chain_update(big_r)
            .chain_update(case.public)
            .chain_update(case.signing_input.as_bytes())
            .finalize()
            .into(),
    );
    let mut s = (r + k * case.a).to_bytes();
    match (r_mode >> 2) & 3 {
        0 => {}
        // S + L: the same scalar, not canonically encoded (below 2^253)
        1 => add_group_order(&mut s),
        2 => s[31] |= 0xe0,
        _ => s[31] |= 0x10,
    }
    let mut signature = [0u8; 64];
    signature[..32].copy_from_slice(&big_r);
    signature[32..].copy_from_slice(&s);
    let token = format!("{}.{}", case.signing_input, b64(&signature));
    let accepted = differential(&case.verifiers, &token);
    // the honest signature: R = rB (r != 0) canonically encoded, S canonical
    let honest = big_r == canonical_r && torsion == 0 && (r_mode >> 2) & 3 == 0 && r != Scalar::ZERO;
    assert_eq!(accepted, honest, "honest = {honest} for {token:?}");
}

/// The group order L = 2^252 + 27742317777372353535851937790883648493.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

fn add_group_order(s: &mut [u8; 32]) {
    let mut carry = 0u16;
    for (byte, l) in s.iter_mut().zip(L) {
        let sum = u16::from(*byte) + u16::from(l) + carry;
        *byte = sum as u8;
        carry = sum >> 8;
    }
}

fuzz_target!(|data: &[u8]| {
    if let [0xff, rest @ ..] = data {
        return ed25519_signature(rest);
    }
    let Ok(token) = std::str::from_utf8(data) else { return };
    static FIXTURE: OnceLock<[Verifier; 2]> = OnceLock::new();
    let fixture = FIXTURE.get_or_init(|| verifiers(JWKS));
    // header and payload checks, twice (once per backend): linear work
    let (_, work) = duplicate_check_work(|| differential(fixture, token));
    let bound = 2 * MAX_WORK_PER_MEMBER * data.len() as u64;
    assert!(work <= bound, "{work} name comparisons for {} bytes", data.len());
});
