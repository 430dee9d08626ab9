//! Property tests: no single-byte change to a valid token verifies, and no
//! input (tokens, JWKS documents) makes the verifier panic.

mod common;

use common::*;
use keyward_core::{Algorithm, Backend, KeySet, Validation};
use proptest::prelude::*;
use serde_json::Value;

const ALGS: [&str; 6] = ["RS256", "PS256", "ES256", "ES512", "EdDSA", "HS256"];

fn validation() -> Validation {
    base_validation().algorithms(Algorithm::ALL)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_single_byte_change_rejects(alg_index in 0..ALGS.len(), position in any::<prop::sample::Index>(), replacement in any::<u8>()) {
        let token = valid_token(ALGS[alg_index]);
        let i = position.index(token.len());
        let mut bytes = token.clone().into_bytes();
        prop_assume!(bytes[i] != replacement);
        bytes[i] = replacement;
        // a non-UTF-8 result is not a &str token at all: rejected by type
        if let Ok(mutated) = String::from_utf8(bytes) {
            for &backend in Backend::available() {
                let verifier = verifier(backend, validation());
                prop_assert!(verifier.verify_cached::<Value>(&mutated).is_err(), "{} accepted at {}", ALGS[alg_index], i);
            }
        }
    }

    #[test]
    fn arbitrary_strings_never_panic(input in ".{0,400}") {
        let verifier = verifier(Backend::default(), validation());
        prop_assert!(verifier.verify_cached::<Value>(&input).is_err());
    }

    #[test]
    fn token_shaped_input_never_panics(
        header in prop::collection::vec(any::<u8>(), 0..120),
        payload in prop::collection::vec(any::<u8>(), 0..200),
        signature in "[A-Za-z0-9_-]{0,700}",
        kid in prop::sample::select(vec!["rsa-1", "ec-p256", "ec-p521", "ed-1", "hmac-1", "nope"]),
        alg in prop::sample::select(Algorithm::ALL.to_vec()),
        json_header in any::<bool>(),
    ) {
        use base64ct::{Base64UrlUnpadded, Encoding};
        let header = if json_header {
            format!(r#"{{"alg":"{alg}","kid":"{kid}","typ":"at+jwt"}}"#).into_bytes()
        } else {
            header
        };
        let token = format!(
            "{}.{}.{}",
            Base64UrlUnpadded::encode_string(&header),
            Base64UrlUnpadded::encode_string(&payload),
            signature
        );
        for &backend in Backend::available() {
            let verifier = verifier(backend, validation());
            prop_assert!(verifier.verify_cached::<Value>(&token).is_err());
        }
    }

    #[test]
    fn jwks_parsing_never_panics(doc in r#"\{"keys":\[(\{("(kty|crv|n|e|x|y|k|alg|use|kid|key_ops)":("[A-Za-z0-9_-]{0,40}"|[0-9]+|null|\[\]),?){0,6}\},?){0,4}\]\}"#) {
        for &backend in Backend::available() {
            let _ = KeySet::from_jwks_with(&doc, backend);
        }
    }
}
