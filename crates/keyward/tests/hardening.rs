//! The verifier-hardening issue through `Authenticator`: the verified-token
//! cache applies the same rules as verification (maximum age, the verifying
//! key's presence even for a token without `kid`, the size limit), and bound
//! (`cnf`) tokens are refused on the bearer path, cached or not.

use keyward::{
    AuthenticateOptions, Authenticator, BoundTokens, Clock, Error, ErrorKind, KeySource,
};
use keyward_core::{async_trait, KeyQuery, KeySet};
use keyward_testkit::{unix_now, TestIssuer};
use serde_json::json;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ISS: &str = "https://issuer.example";
const AUD: &str = "https://api.example";
const NO_INFO: AuthenticateOptions = AuthenticateOptions {
    include_user_info: false,
};

#[derive(Clone, Debug)]
struct TestClock(Arc<AtomicU64>);

impl Clock for TestClock {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A key source whose set the test replaces, answering from memory, and
/// counting full lookups.
#[derive(Clone)]
struct Swappable {
    set: Arc<Mutex<KeySet>>,
    lookups: Arc<AtomicUsize>,
}

impl Swappable {
    fn new(jwks: &str) -> Self {
        Swappable {
            set: Arc::new(Mutex::new(KeySet::from_jwks(jwks).unwrap())),
            lookups: Arc::default(),
        }
    }
    fn replace(&self, jwks: &str) {
        *self.set.lock().unwrap() = KeySet::from_jwks(jwks).unwrap();
    }
}

#[async_trait]
impl KeySource for Swappable {
    async fn resolve(&self, _query: &KeyQuery<'_>) -> Result<KeySet, Error> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        Ok(self.set.lock().unwrap().clone())
    }
    fn resolve_cached(&self, _query: &KeyQuery<'_>) -> Option<KeySet> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        Some(self.set.lock().unwrap().clone())
    }
}

fn builder(issuer: &TestIssuer) -> keyward::AuthenticatorBuilder {
    Authenticator::builder()
        .issuer(ISS)
        .audience(AUD)
        .baked_jwks(&issuer.jwks())
}

/// Item 8: a cached token past `iat + max_age` was served, where an
/// uncached one is `too_old`. Cached or not, the answer is the same at every
/// instant.
#[tokio::test]
async fn the_cache_applies_max_age_like_verification() {
    let issuer = TestIssuer::new(ISS);
    let clock = TestClock(Arc::new(AtomicU64::new(unix_now())));
    let mut claims = issuer.claims("user-1", AUD);
    claims["exp"] = json!(clock.now() + 3600);
    let token = issuer.mint("key-1", &claims);
    let with_max_age = |b: keyward::AuthenticatorBuilder| {
        b.validation(|v| v.max_age(Duration::from_secs(300)))
            .clock(clock.clone())
            .build()
            .unwrap()
    };
    let cached = with_max_age(builder(&issuer));
    let uncached = with_max_age(builder(&issuer).no_token_cache());
    let first = cached.authenticate_token(&token, NO_INFO).await.unwrap();
    assert!(first.same_as(&cached.authenticate_token(&token, NO_INFO).await.unwrap()));
    // the default leeway is 60 s: valid up to iat + 360 inclusive
    for (offset, ok) in [(360, true), (361, false), (1_000, false)] {
        clock
            .0
            .store(claims["iat"].as_u64().unwrap() + offset, Ordering::SeqCst);
        for (name, auth) in [("cached", &cached), ("uncached", &uncached)] {
            let result = auth.authenticate_token(&token, NO_INFO).await;
            match ok {
                true => assert!(result.is_ok(), "{name} at +{offset}: {result:?}"),
                false => assert_eq!(
                    result.unwrap_err().kind(),
                    ErrorKind::TooOld,
                    "{name} at +{offset}"
                ),
            }
        }
    }
}

/// The verifying key is re-checked on every hit by its `kid` — the key's own
/// `kid` when the token had none: a kid-less token whose key leaves the
/// source is not served from the cache (before, any key of the same
/// algorithm kept it alive).
#[tokio::test]
async fn a_kidless_cached_token_is_dropped_when_its_key_leaves_the_source() {
    let issuer = TestIssuer::new(ISS);
    issuer.add_key("key-2", "ES256");
    let both = issuer.jwks();
    let source = Swappable::new(&both);
    let auth = Authenticator::builder()
        .issuer(ISS)
        .audience(AUD)
        .keys(source.clone())
        .build()
        .unwrap();
    let token = issuer.mint_without_kid("key-1", &issuer.claims("user-1", AUD));
    let first = auth.authenticate_token(&token, NO_INFO).await.unwrap();
    assert!(first.same_as(&auth.authenticate_token(&token, NO_INFO).await.unwrap()));
    // key-1 leaves; key-2 (same algorithm) stays
    issuer.remove_key("key-1");
    source.replace(&issuer.jwks());
    let err = auth.authenticate_token(&token, NO_INFO).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidSignature, "{err}");
    // and back: verified again, not a stale entry
    source.replace(&both);
    let again = auth.authenticate_token(&token, NO_INFO).await.unwrap();
    assert!(!again.same_as(&first));
}

/// Item 5 through `Authenticator`: refused with `sender_constrained_token`,
/// the second time too (never cached); accepted when the caller checks the
/// binding itself.
#[tokio::test]
async fn bound_tokens_are_refused_cached_or_not() {
    let issuer = TestIssuer::new(ISS);
    let mut claims = issuer.claims("user-1", AUD);
    claims["cnf"] = json!({"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"});
    let token = issuer.mint("key-1", &claims);
    for auth in [
        builder(&issuer).build().unwrap(),
        builder(&issuer).no_token_cache().build().unwrap(),
    ] {
        for _ in 0..2 {
            let err = auth.authenticate_token(&token, NO_INFO).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::SenderConstrainedToken);
        }
    }
    let binding_checked = builder(&issuer)
        .validation(|v| v.bound_tokens(BoundTokens::CallerChecksBinding))
        .build()
        .unwrap();
    binding_checked
        .authenticate_token(&token, NO_INFO)
        .await
        .unwrap();
}

/// Item 10's second half: the size limit comes before the cache. A token
/// just over the limit is `token_too_large` with the cache on, every time,
/// and the key source is never asked. (That it is also refused before it is
/// hashed for a lookup is a cost, shown by the `verify` bench's oversized
/// token with the cache on and off.)
#[tokio::test]
async fn the_size_limit_is_checked_before_the_cache() {
    let issuer = TestIssuer::new(ISS);
    let source = Swappable::new(&issuer.jwks());
    let claims = issuer.claims("user-1", AUD);
    let token = |pad: usize| {
        let mut claims = claims.clone();
        claims["pad"] = json!("x".repeat(pad));
        issuer.mint("key-1", &claims)
    };
    // the first padded token of 1000 bytes or more sets the limit; the
    // next longer one is over it
    let mut pad = 0;
    while token(pad).len() < 1000 {
        pad += 1;
    }
    let at_limit = token(pad);
    let limit = at_limit.len();
    while token(pad).len() == limit {
        pad += 1;
    }
    let over = token(pad);
    assert!(over.len() > limit);
    let auth = Authenticator::builder()
        .issuer(ISS)
        .audience(AUD)
        .keys(source.clone())
        .validation(|v| v.max_token_size(limit))
        .build()
        .unwrap();
    auth.authenticate_token(&at_limit, NO_INFO).await.unwrap();
    let lookups = source.lookups.load(Ordering::SeqCst);
    for _ in 0..3 {
        let err = auth.authenticate_token(&over, NO_INFO).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TokenTooLarge);
    }
    assert_eq!(source.lookups.load(Ordering::SeqCst), lookups);
}
