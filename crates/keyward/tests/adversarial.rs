//! Adversarial review (issue 12) through `Authenticator`, the verified-token
//! cache, the axum layer and the `Session`: public API only.
//!
//! Each test asserts a promise that held, or that broke and was fixed
//! (the verified-token cache's key identity, a string `email_verified` in
//! userinfo, empty scope elements).

use keyward::{
    AuthenticateOptions, Authenticator, ClaimMapping, Clock, Error, ErrorKind, KeySource,
    SessionError,
};
use keyward_core::{async_trait, Algorithm, KeyQuery, KeySet};
use keyward_testkit::{hs256_jwks, mint_hs256, unix_now, Route, TestIssuer, TestServer};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ISS: &str = "https://issuer.example";
const AUD: &str = "https://api.example";
const NO_INFO: AuthenticateOptions = AuthenticateOptions {
    include_user_info: false,
};
const WITH_INFO: AuthenticateOptions = AuthenticateOptions {
    include_user_info: true,
};
const SECRET: &[u8] = b"a-32-byte-secret-for-the-hs256-k";

#[derive(Clone, Debug)]
struct TestClock(Arc<AtomicU64>);

impl Clock for TestClock {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A key source whose set the test replaces, answering from memory.
#[derive(Clone)]
struct Swappable {
    set: Arc<Mutex<KeySet>>,
}

impl Swappable {
    fn new(jwks: &str) -> Self {
        Swappable {
            set: Arc::new(Mutex::new(KeySet::from_jwks(jwks).unwrap())),
        }
    }
    fn replace(&self, jwks: &str) {
        *self.set.lock().unwrap() = KeySet::from_jwks(jwks).unwrap();
    }
}

#[async_trait]
impl KeySource for Swappable {
    async fn resolve(&self, _query: &KeyQuery<'_>) -> Result<KeySet, Error> {
        Ok(self.set.lock().unwrap().clone())
    }
    fn resolve_cached(&self, _query: &KeyQuery<'_>) -> Option<KeySet> {
        Some(self.set.lock().unwrap().clone())
    }
}

/// The issuer's JWKS with every `kid` removed (IdPs that publish a single
/// kid-less key exist; so do tokens without `kid`).
fn jwks_without_kids(issuer: &TestIssuer) -> String {
    let mut jwks: Value = serde_json::from_str(&issuer.jwks()).unwrap();
    for key in jwks["keys"].as_array_mut().unwrap() {
        key.as_object_mut().unwrap().remove("kid");
    }
    jwks.to_string()
}

fn with_source(source: &Swappable, cache: bool) -> Authenticator {
    let b = Authenticator::builder()
        .issuer(ISS)
        .audience(AUD)
        .keys(source.clone());
    if cache { b } else { b.no_token_cache() }.build().unwrap()
}

// ---------------------------------------------------------------------------
// the verified-token cache and key removal
// ---------------------------------------------------------------------------

/// Kid-less keys: the token was verified by key-1; the source rotates to
/// key-2 (also kid-less, same algorithm). Uncached: invalid_signature. The
/// cache must not keep serving the token.
#[tokio::test]
async fn attack_cache_kidless_key_replaced_by_another_kidless_key() {
    let issuer = TestIssuer::new(ISS);
    issuer.add_key("key-2", "ES256");
    let source = Swappable::new(&jwks_without_kids(&issuer));
    let cached = with_source(&source, true);
    let uncached = with_source(&source, false);
    let token = issuer.mint_without_kid("key-1", &issuer.claims("user-1", AUD));
    cached.authenticate_token(&token, NO_INFO).await.unwrap();
    cached.authenticate_token(&token, NO_INFO).await.unwrap();
    uncached.authenticate_token(&token, NO_INFO).await.unwrap();
    // key-1 is withdrawn
    issuer.remove_key("key-1");
    source.replace(&jwks_without_kids(&issuer));
    let fresh = uncached.authenticate_token(&token, NO_INFO).await;
    assert_eq!(fresh.unwrap_err().kind(), ErrorKind::InvalidSignature);
    let served = cached.authenticate_token(&token, NO_INFO).await;
    assert_eq!(
        served
            .map(|s| s.user_id().map(str::to_owned))
            .map_err(|e| e.kind()),
        Err(ErrorKind::InvalidSignature),
        "the cache served a token whose verifying key has left the source"
    );
}

/// Same `kid`, new key material (a key replaced in place, e.g. after a
/// compromise): the old key is gone from the source, so tokens it signed
/// must no longer be accepted.
#[tokio::test]
async fn attack_cache_same_kid_new_key_material() {
    let old = TestIssuer::new(ISS);
    let new = TestIssuer::new(ISS); // also "key-1", a different key
    let source = Swappable::new(&old.jwks());
    let cached = with_source(&source, true);
    let uncached = with_source(&source, false);
    let token = old.mint("key-1", &old.claims("user-1", AUD));
    cached.authenticate_token(&token, NO_INFO).await.unwrap();
    source.replace(&new.jwks());
    let fresh = uncached.authenticate_token(&token, NO_INFO).await;
    assert_eq!(fresh.unwrap_err().kind(), ErrorKind::InvalidSignature);
    let served = cached.authenticate_token(&token, NO_INFO).await;
    assert_eq!(
        served.map(|_| ()).map_err(|e| e.kind()),
        Err(ErrorKind::InvalidSignature),
        "the cache served a token signed by a key the source no longer has"
    );
}

/// Control: kid'd key removed entirely -> not served (held before).
#[tokio::test]
async fn attack_cache_kid_removed_entirely() {
    let issuer = TestIssuer::new(ISS);
    issuer.add_key("key-2", "ES256");
    let source = Swappable::new(&issuer.jwks());
    let cached = with_source(&source, true);
    let token = issuer.mint("key-1", &issuer.claims("user-1", AUD));
    cached.authenticate_token(&token, NO_INFO).await.unwrap();
    issuer.remove_key("key-1");
    source.replace(&issuer.jwks());
    let err = cached
        .authenticate_token(&token, NO_INFO)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownKey, "{err}");
}

// ---------------------------------------------------------------------------
// the cache re-checks time on every hit
// ---------------------------------------------------------------------------

fn clocked(
    issuer: &TestIssuer,
    clock: &TestClock,
    cache: bool,
    max_age: Option<u64>,
) -> Authenticator {
    let b = Authenticator::builder()
        .issuer(ISS)
        .audience(AUD)
        .baked_jwks(&issuer.jwks())
        .clock(clock.clone())
        .validation(move |v| match max_age {
            Some(s) => v.max_age(Duration::from_secs(s)),
            None => v,
        });
    if cache { b } else { b.no_token_cache() }.build().unwrap()
}

#[tokio::test]
async fn attack_cache_rechecks_exp_nbf_and_future_iat() {
    let issuer = TestIssuer::new(ISS);
    let now = unix_now();
    let clock = TestClock(Arc::new(AtomicU64::new(now)));
    let mut claims = issuer.claims("user-1", AUD);
    claims["exp"] = json!(now + 100);
    claims["nbf"] = json!(now + 30);
    claims["iat"] = json!(now + 30);
    let token = issuer.mint("key-1", &claims);
    for max_age in [None, Some(3600)] {
        let cached = clocked(&issuer, &clock, true, max_age);
        let uncached = clocked(&issuer, &clock, false, max_age);
        clock.0.store(now, Ordering::SeqCst);
        cached.authenticate_token(&token, NO_INFO).await.unwrap();
        for (at, expect) in [
            (now + 159, None),                        // just before exp + leeway
            (now + 160, Some(ErrorKind::Expired)),    // exp + leeway (exclusive)
            (now + 50, None),                         // back in range
            (now - 30, None),                         // nbf - leeway
            (now - 31, Some(ErrorKind::NotYetValid)), // before nbf - leeway
        ] {
            clock.0.store(at, Ordering::SeqCst);
            let a = cached
                .authenticate_token(&token, NO_INFO)
                .await
                .map(|_| ())
                .map_err(|e| e.kind());
            let b = uncached
                .authenticate_token(&token, NO_INFO)
                .await
                .map(|_| ())
                .map_err(|e| e.kind());
            assert_eq!(
                a,
                b,
                "cached vs uncached at now{:+}, max_age {max_age:?}",
                at as i64 - now as i64
            );
            assert_eq!(
                a.err(),
                expect,
                "at now{:+}, max_age {max_age:?}: {a:?}",
                at as i64 - now as i64
            );
        }
    }
}

/// `require_exp(false)` with no `exp` and no max age: the token is accepted
/// and cached; nothing time-based must break, and a token without exp must
/// still follow the key (removing the key refuses it).
#[tokio::test]
async fn attack_cache_without_exp_follows_key_removal() {
    let issuer = TestIssuer::new(ISS);
    issuer.add_key("key-2", "ES256");
    let source = Swappable::new(&issuer.jwks());
    let auth = Authenticator::builder()
        .issuer(ISS)
        .audience(AUD)
        .keys(source.clone())
        .validation(|v| v.require_exp(false))
        .build()
        .unwrap();
    let mut claims = issuer.claims("user-1", AUD);
    claims.as_object_mut().unwrap().remove("exp");
    let token = issuer.mint("key-1", &claims);
    let a = auth.authenticate_token(&token, NO_INFO).await.unwrap();
    assert!(a.same_as(&auth.authenticate_token(&token, NO_INFO).await.unwrap()));
    issuer.remove_key("key-1");
    source.replace(&issuer.jwks());
    assert!(auth.authenticate_token(&token, NO_INFO).await.is_err());
    assert!(keyward::UNBOUNDED_LIFETIME <= Duration::from_secs(3600));
}

// ---------------------------------------------------------------------------
// a token that fails verification is never served from the cache
// ---------------------------------------------------------------------------

#[tokio::test]
async fn attack_cache_never_serves_near_miss_tokens() {
    let issuer = TestIssuer::new(ISS);
    let auth = Authenticator::builder()
        .issuer(ISS)
        .audience(AUD)
        .baked_jwks(&issuer.jwks())
        .build()
        .unwrap();
    let token = issuer.mint("key-1", &issuer.claims("user-1", AUD));
    auth.authenticate_token(&token, NO_INFO).await.unwrap();
    auth.authenticate_token(&token, NO_INFO).await.unwrap();
    let (input, sig) = token.rsplit_once('.').unwrap();
    // a non-canonical last base64 character (same bits for a strict-less
    // decoder): 64 bytes -> 86 chars, the last carries 2 spare bits
    let last = sig.chars().last().unwrap();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let idx = alphabet.find(last).unwrap();
    let sibling = alphabet.chars().nth(idx ^ 1).unwrap();
    let mut near = vec![
        format!("{token} "),
        format!(" {token}"),
        format!("{token}."),
        format!("{token}="),
        format!("{input}.{}{sibling}", &sig[..sig.len() - 1]),
        format!("{input}.{}", &sig[..sig.len() - 1]),
        token.to_uppercase(),
        format!("{token}\n"),
    ];
    // the payload's first character changed
    let (h, rest) = token.split_once('.').unwrap();
    let mut p: Vec<char> = rest.chars().collect();
    p[1] = if p[1] == 'A' { 'B' } else { 'A' };
    near.push(format!("{h}.{}", p.into_iter().collect::<String>()));
    for bad in near {
        for _ in 0..2 {
            let r = auth.authenticate_token(&bad, NO_INFO).await;
            assert!(r.is_err(), "served {bad:?}");
        }
    }
    // a token whose claims cannot be mapped is refused, twice, not cached
    let mut claims = issuer.claims("user-1", AUD);
    claims["orgs"] = json!("acme");
    let bad = issuer.mint("key-1", &claims);
    for _ in 0..2 {
        assert_eq!(
            auth.authenticate_token(&bad, NO_INFO)
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidClaim
        );
    }
}

// ---------------------------------------------------------------------------
// cancellation
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_cancelled_authenticate_leaves_nothing_behind() {
    let issuer = TestIssuer::new(ISS);
    let server = TestServer::start().await;
    server.set(
        "/jwks",
        Route::json(issuer.jwks()).delay(Duration::from_millis(400)),
    );
    let auth = Authenticator::builder()
        .issuer(ISS)
        .audience(AUD)
        .remote_jwks(&server.url("/jwks"))
        .build()
        .unwrap();
    let token = issuer.mint("key-1", &issuer.claims("user-1", AUD));
    // cancelled while the JWKS is being fetched
    for _ in 0..3 {
        let r = tokio::time::timeout(
            Duration::from_millis(50),
            auth.authenticate_token(&token, NO_INFO),
        )
        .await;
        assert!(r.is_err(), "should have timed out");
    }
    // a later call completes, and is then served from the cache
    let s = tokio::time::timeout(
        Duration::from_secs(10),
        auth.authenticate_token(&token, NO_INFO),
    )
    .await
    .expect("stuck after cancellation")
    .unwrap();
    let again = auth.authenticate_token(&token, NO_INFO).await.unwrap();
    assert!(s.same_as(&again));
    // a bad token after cancellations is still refused
    let other = TestIssuer::new(ISS);
    let forged = other.mint("key-1", &other.claims("user-1", AUD));
    let _ = tokio::time::timeout(
        Duration::from_millis(1),
        auth.authenticate_token(&forged, NO_INFO),
    )
    .await;
    assert!(auth.authenticate_token(&forged, NO_INFO).await.is_err());

    // cancelled during userinfo, then completed
    server.set(
        "/userinfo",
        Route::json(json!({"sub":"user-1","email":"u@x","email_verified":true}).to_string())
            .delay(Duration::from_millis(300)),
    );
    let auth = Authenticator::builder()
        .issuer(ISS)
        .audience(AUD)
        .baked_jwks(&issuer.jwks())
        .user_info_endpoint(&server.url("/userinfo"))
        .unwrap()
        .build()
        .unwrap();
    let r = tokio::time::timeout(
        Duration::from_millis(50),
        auth.authenticate_token(&token, WITH_INFO),
    )
    .await;
    assert!(r.is_err());
    let s = tokio::time::timeout(
        Duration::from_secs(10),
        auth.authenticate_token(&token, WITH_INFO),
    )
    .await
    .expect("stuck after a cancelled userinfo call")
    .unwrap();
    assert_eq!(s.email(), Some("u@x"));
    // the cached (pre-userinfo) session did not pick up the profile
    let plain = auth.authenticate_token(&token, NO_INFO).await.unwrap();
    assert_eq!(plain.email(), None);
}

// ---------------------------------------------------------------------------
// cnf through Authenticator with hand-written JSON (escaped names)
// ---------------------------------------------------------------------------

fn hs_auth(cache: bool, mapping: ClaimMapping) -> Authenticator {
    let b = Authenticator::builder()
        .issuer(ISS)
        .audience(AUD)
        .baked_jwks(&hs256_jwks(SECRET))
        .claim_mapping(mapping)
        .validation(|v| v.algorithms([Algorithm::HS256]));
    if cache { b } else { b.no_token_cache() }.build().unwrap()
}

fn hs_token(extra: &str) -> String {
    let now = unix_now();
    let sep = if extra.is_empty() { "" } else { "," };
    mint_hs256(
        SECRET,
        &format!(
            r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"user-1","iat":{now},"exp":{}{sep}{extra}}}"#,
            now + 600
        ),
    )
}

#[tokio::test]
async fn attack_cnf_escaped_through_authenticator() {
    for cache in [true, false] {
        let auth = hs_auth(cache, ClaimMapping::default());
        for extra in [
            r#""\u0063nf":{"jkt":"x"}"#,
            r#""cnf":{"x5t#S256":"y"}"#,
            r#""cnf":{}"#,
        ] {
            let token = hs_token(extra);
            for _ in 0..2 {
                assert_eq!(
                    auth.authenticate_token(&token, NO_INFO)
                        .await
                        .unwrap_err()
                        .kind(),
                    ErrorKind::SenderConstrainedToken,
                    "{extra}, cache {cache}"
                );
            }
        }
    }
}

#[cfg(feature = "axum")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_cnf_through_axum_layer_after_a_cached_bearer_token() {
    use axum::routing::get;
    use axum::Router;
    use keyward::axum::{AuthLayer, Authenticated};
    async fn me(Authenticated(session): Authenticated) -> String {
        session.user_id().unwrap_or("-").to_owned()
    }
    let auth = hs_auth(true, ClaimMapping::default());
    let app = Router::new()
        .route("/me", get(me))
        .layer(AuthLayer::new(auth).options(WITH_INFO));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = reqwest::Client::new();
    let bound = hs_token(r#""\u0063nf":{"jkt":"x"}"#);
    for _ in 0..2 {
        let r = client
            .get(format!("http://{addr}/me"))
            .bearer_auth(&bound)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(
            challenge.contains("error=\"invalid_token\"")
                && challenge.contains("error_description="),
            "{challenge}"
        );
        assert_eq!(
            r.text().await.unwrap(),
            r#"{"error":"sender_constrained_token"}"#
        );
    }
}

// ---------------------------------------------------------------------------
// claims: organisations, email, scopes
// ---------------------------------------------------------------------------

#[tokio::test]
async fn attack_org_id_alias_and_slug_confusion() {
    let auth = hs_auth(true, ClaimMapping::default());
    // both "id" and its alias "org_id": two ids for one entry
    let token = hs_token(r#""orgs":[{"id":"o-mine","org_id":"o-victim"}]"#);
    match auth.authenticate_token(&token, NO_INFO).await {
        Err(e) => assert_eq!(e.kind(), ErrorKind::InvalidClaim),
        Ok(s) => assert!(
            !s.is_member("o-victim") || !s.is_member("o-mine"),
            "one entry answers two ids"
        ),
    }
    // slug == another org's id: only the id matches
    let token = hs_token(
        r#""orgs":[{"id":"o-mine","slug":"o-victim"},{"id":"o-2","slug":"acme"},{"id":"o-3","slug":"acme"}],"projects":[{"id":"p1","slug":"p-victim"},{"id":"p2","slug":"site"},{"id":"p3","slug":"site"}]"#,
    );
    let s = auth.authenticate_token(&token, NO_INFO).await.unwrap();
    assert!(!s.is_member("o-victim") && s.organization("o-victim").is_err());
    assert!(s.project("p-victim").is_err());
    assert_eq!(s.organization_by_slug("o-victim").unwrap().id, "o-mine");
    assert_eq!(
        s.organization_by_slug("acme").unwrap_err(),
        SessionError::AmbiguousSlug {
            slug: "acme".into()
        }
    );
    assert_eq!(
        s.project_by_slug("site").unwrap_err(),
        SessionError::AmbiguousSlug {
            slug: "site".into()
        }
    );
    // cached copy answers the same
    let c = auth.authenticate_token(&token, NO_INFO).await.unwrap();
    assert!(c.same_as(&s));
    // an org whose id is an empty string does not make is_member("") a
    // universal answer for other orgs; an org without slug is not found by
    // an empty slug
    let token = hs_token(r#""orgs":[{"id":"o1"}]"#);
    let s = auth.authenticate_token(&token, NO_INFO).await.unwrap();
    assert!(!s.is_member(""));
    assert!(s.organization_by_slug("").is_err());
}

#[tokio::test]
async fn attack_email_verified_shapes_in_the_token() {
    let strict = hs_auth(false, ClaimMapping::default());
    let lenient = hs_auth(false, ClaimMapping::default().accept_unverified_email(true));
    for (extra, served) in [
        (r#""email":"a@x","email_verified":true"#, true),
        (r#""email":"a@x","email_verified":false"#, false),
        (r#""email":"a@x""#, false),
        (r#""email":"a@x","email_verified":null"#, false),
        (r#""email":"a@x","Email_verified":true"#, false),
    ] {
        let token = hs_token(extra);
        let s = strict.authenticate_token(&token, NO_INFO).await.unwrap();
        assert_eq!(s.email().is_some(), served, "{extra}");
        let l = lenient.authenticate_token(&token, NO_INFO).await.unwrap();
        assert_eq!(l.email(), Some("a@x"), "{extra}");
    }
    // namespaced email claims are trusted as configured, whatever the flag
    let ns = hs_auth(false, ClaimMapping::default().with_namespace("https://ns/"));
    let token = hs_token(r#""https://ns/email":"n@x","email":"a@x","email_verified":false"#);
    let s = ns.authenticate_token(&token, NO_INFO).await.unwrap();
    assert_eq!(s.email(), Some("n@x"));
    assert_eq!(s.email_verified(), None);
    // the standard flag does not leak onto the namespaced address
    let token = hs_token(r#""https://ns/email":"n@x","email_verified":true"#);
    let s = ns.authenticate_token(&token, NO_INFO).await.unwrap();
    assert_eq!(s.email_verified(), None);
}

/// `email_verified` as the string "true" (AWS Cognito's userinfo answers
/// strings): in a token it refuses the whole token; in userinfo the whole
/// response becomes unreadable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_email_verified_as_a_string() {
    // in the token
    let auth = hs_auth(false, ClaimMapping::default());
    let token = hs_token(r#""email":"a@x","email_verified":"true""#);
    let r = auth.authenticate_token(&token, NO_INFO).await;
    eprintln!(
        "token with email_verified \"true\": {:?}",
        r.as_ref()
            .map(|s| s.email().map(str::to_owned))
            .map_err(|e| e.kind())
    );
    // in userinfo
    let server = TestServer::start().await;
    server.set(
        "/userinfo",
        Route::json(
            json!({"sub":"user-1","email":"u@x","email_verified":"true","name":"U"}).to_string(),
        ),
    );
    let auth = Authenticator::builder()
        .issuer(ISS)
        .audience(AUD)
        .baked_jwks(&hs256_jwks(SECRET))
        .validation(|v| v.algorithms([Algorithm::HS256]))
        .user_info_endpoint(&server.url("/userinfo"))
        .unwrap()
        .build()
        .unwrap();
    let token = hs_token("");
    let r = auth.authenticate_token(&token, WITH_INFO).await;
    let outcome = r
        .as_ref()
        .map(|s| (s.email().map(str::to_owned), s.name().map(str::to_owned)))
        .map_err(|e| e.kind());
    eprintln!("userinfo with email_verified \"true\": {outcome:?}");
    assert!(
        r.is_ok(),
        "a userinfo answer with a string email_verified fails the whole authentication: {outcome:?}"
    );
}

#[tokio::test]
async fn attack_userinfo_merge_keeps_the_flag() {
    let server = TestServer::start().await;
    let auth = |mapping: ClaimMapping| {
        Authenticator::builder()
            .issuer(ISS)
            .audience(AUD)
            .baked_jwks(&hs256_jwks(SECRET))
            .validation(|v| v.algorithms([Algorithm::HS256]))
            .claim_mapping(mapping)
            .user_info_endpoint(&server.url("/userinfo"))
            .unwrap()
            .build()
            .unwrap()
    };
    // token: verified flag but no email; userinfo: an email without flag
    server.set(
        "/userinfo",
        Route::json(json!({"sub":"user-1","email":"u@x"}).to_string()),
    );
    let token = hs_token(r#""email_verified":true"#);
    let s = auth(ClaimMapping::default())
        .authenticate_token(&token, WITH_INFO)
        .await
        .unwrap();
    assert_eq!(
        s.email(),
        None,
        "the token's flag was applied to userinfo's address"
    );
    // token: unverified address; userinfo: a different address, unverified
    server.set(
        "/userinfo",
        Route::json(json!({"sub":"user-1","email":"v@x","email_verified":false}).to_string()),
    );
    let token = hs_token(r#""email":"a@x","email_verified":false,"jti":"2""#);
    let s = auth(ClaimMapping::default())
        .authenticate_token(&token, WITH_INFO)
        .await
        .unwrap();
    assert_eq!(s.email(), None);
    assert_ne!(s.email_verified(), Some(true));
    // token unverified, userinfo verified for the same address
    server.set(
        "/userinfo",
        Route::json(json!({"sub":"user-1","email":"a@x","email_verified":true}).to_string()),
    );
    let token = hs_token(r#""email":"a@x","email_verified":false,"jti":"3""#);
    let s = auth(ClaimMapping::default())
        .authenticate_token(&token, WITH_INFO)
        .await
        .unwrap();
    assert_eq!((s.email(), s.email_verified()), (Some("a@x"), Some(true)));
}

#[tokio::test]
async fn attack_scope_and_scp_odd_data() {
    let auth = hs_auth(false, ClaimMapping::default());
    let session = |extra: &'static str| {
        let auth = auth.clone();
        async move { auth.authenticate_token(&hs_token(extra), NO_INFO).await }
    };
    // union, duplicates
    let s = session(r#""scope":"a b a","scp":["b","c","c"]"#)
        .await
        .unwrap();
    assert_eq!(s.scopes().iter().collect::<Vec<_>>(), ["a", "b", "c"]);
    // string scp with extra spaces
    let s = session(r#""scp":"  x   y ""#).await.unwrap();
    assert_eq!(s.scopes().iter().collect::<Vec<_>>(), ["x", "y"]);
    // empty string forms grant nothing
    let s = session(r##""scope":"","scp":"""##).await.unwrap();
    assert!(s.scopes().is_empty());
    // non-string elements: refused, not silently dropped
    for bad in [
        r#""scp":["a",1]"#,
        r#""scp":[null]"#,
        r#""scp":{"a":1}"#,
        r#""scp":true"#,
        r#""scope":["a",{}]"#,
    ] {
        assert_eq!(
            session(bad).await.unwrap_err().kind(),
            ErrorKind::InvalidClaim,
            "{bad}"
        );
    }
    // scp null is absent
    assert!(session(r#""scp":null"#).await.unwrap().scopes().is_empty());
    // an empty string inside an array: the string form never grants "",
    // the array form must not either
    let s = session(r#""scp":["","read"]"#).await.unwrap();
    let s2 = session(r#""scope":["", "read"]"#).await.unwrap();
    assert!(
        !s.has_scope("") && !s2.has_scope(""),
        "an array with an empty string grants the empty scope: scp {:?}, scope {:?}",
        s.scopes().iter().collect::<Vec<_>>(),
        s2.scopes().iter().collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn attack_scope_array_elements_with_spaces() {
    let auth = hs_auth(false, ClaimMapping::default());
    let s = auth
        .authenticate_token(&hs_token(r#""scp":["read write"]"#), NO_INFO)
        .await
        .unwrap();
    eprintln!(
        "scp [\"read write\"] -> {:?}",
        s.scopes().iter().collect::<Vec<_>>()
    );
    // not a grant of "read" or "write" on their own (fail closed)
    assert!(!s.has_scope("read") && !s.has_scope("write"));
}
