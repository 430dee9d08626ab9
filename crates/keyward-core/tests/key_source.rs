//! The async path: a key source that must do "I/O" is awaited; one with
//! keys in memory answers synchronously.

mod common;

use common::*;
use keyward_core::{
    async_trait, Error, ErrorKind, FixedClock, KeyQuery, KeySet, KeySource, Verifier,
};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Pretends to fetch: never answers from memory, counts resolutions.
struct Fetching {
    keys: KeySet,
    resolves: Arc<AtomicUsize>,
}

#[async_trait]
impl KeySource for Fetching {
    async fn resolve(&self, query: &KeyQuery<'_>) -> Result<KeySet, Error> {
        self.resolves.fetch_add(1, Ordering::SeqCst);
        tokio::task::yield_now().await;
        match query.kid {
            Some("offline") => Err(Error::new(ErrorKind::KeyUnavailable, "issuer unreachable")),
            _ => Ok(self.keys.clone()),
        }
    }
}

#[tokio::test]
async fn async_source_is_awaited_and_sync_path_refuses() {
    let resolves = Arc::new(AtomicUsize::new(0));
    let source = Fetching {
        keys: KeySet::from_jwks(JWKS).unwrap(),
        resolves: resolves.clone(),
    };
    let verifier = Verifier::new(source, base_validation()).with_clock(FixedClock(NOW));
    let token = valid_token("RS256");
    let verified = verifier.verify::<Value>(&token).await.unwrap();
    assert_eq!(verified.claims()["sub"], "user-123");
    assert_eq!(resolves.load(Ordering::SeqCst), 1);
    // the sync path never awaits: it says the keys are not in memory
    let err = verifier.verify_cached::<Value>(&token).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::KeyUnavailable);
    assert_eq!(resolves.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn source_errors_pass_through() {
    let source = Fetching {
        keys: KeySet::from_jwks(JWKS).unwrap(),
        resolves: Arc::new(AtomicUsize::new(0)),
    };
    // a token asking for kid "offline" (unsigned garbage is fine: the source
    // is asked before the signature is checked)
    let header = base64url(r#"{"alg":"ES256","kid":"offline","typ":"at+jwt"}"#);
    let token = format!("{header}.e30.AAAA");
    let verifier = Verifier::new(source, base_validation());
    let err = verifier.verify::<Value>(&token).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::KeyUnavailable);
}

#[tokio::test]
async fn wrappers_are_sources_and_in_memory_sets_never_await() {
    let keys = KeySet::from_jwks(JWKS).unwrap();
    let shared: Arc<dyn KeySource> = Arc::new(keys.clone());
    let verifier = Verifier::new(shared, base_validation()).with_clock(FixedClock(NOW));
    verifier
        .verify_cached::<Value>(&valid_token("ES512"))
        .unwrap();
    let boxed: Box<dyn KeySource> = Box::new(keys);
    let verifier = Verifier::new(boxed, base_validation()).with_clock(FixedClock(NOW));
    verifier
        .verify::<Value>(&valid_token("RS256"))
        .await
        .unwrap();
}

fn base64url(s: &str) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk.iter().fold(0u32, |acc, &x| (acc << 8) | x as u32) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// scripts/test sets KEYWARD_EXPECT_BACKEND for each run; this fails if
/// feature unification (another workspace member enabling the other
/// backend) silently changed what the run tests.
#[test]
fn the_run_tests_the_backend_it_claims_to() {
    if let Ok(expected) = std::env::var("KEYWARD_EXPECT_BACKEND") {
        assert_eq!(keyward_core::Backend::default().name(), expected);
        assert_eq!(
            keyward_core::Backend::available().len(),
            1,
            "only one backend compiled in"
        );
    }
}
