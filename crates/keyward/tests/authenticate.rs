//! `authenticate` against a counting issuer on 127.0.0.1: zero requests to
//! the issuer with `include_user_info: false`, userinfo only when needed,
//! and the verified-token cache.

use http::Request;
use keyward::{
    AuthenticateOptions, Authenticator, Clock, ErrorKind, RemoteKeySource, StaticKeySource,
    UserInfoFailure,
};
use keyward_testkit::{unix_now, Route, TestIssuer, TestServer};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const AUD: &str = "https://api.example";
const NO_INFO: AuthenticateOptions = AuthenticateOptions {
    include_user_info: false,
};
const WITH_INFO: AuthenticateOptions = AuthenticateOptions {
    include_user_info: true,
};

/// An issuer on loopback: discovery, JWKS and userinfo, counted.
struct Issuer {
    server: TestServer,
    keys: TestIssuer,
}

impl Issuer {
    async fn start() -> Self {
        let server = TestServer::start().await;
        let keys = TestIssuer::new(&server.base());
        server.set(
            "/.well-known/openid-configuration",
            Route::json(
                json!({"issuer": server.base(), "jwks_uri": server.url("/jwks"), "userinfo_endpoint": server.url("/userinfo")})
                    .to_string(),
            ),
        );
        let issuer = Issuer { server, keys };
        issuer.publish();
        issuer
    }

    fn publish(&self) {
        self.server.set(
            "/jwks",
            Route::json(self.keys.jwks()).header("Cache-Control", "max-age=3600"),
        );
    }

    fn requests(&self) -> usize {
        ["/.well-known/openid-configuration", "/jwks", "/userinfo"]
            .iter()
            .map(|p| self.server.hits(p))
            .sum()
    }

    fn token(&self, claims: Value) -> String {
        self.keys.mint("key-1", &claims)
    }

    fn claims(&self, sub: &str) -> Value {
        self.keys.claims(sub, AUD)
    }

    fn builder(&self) -> keyward::AuthenticatorBuilder {
        Authenticator::builder()
            .issuer(self.server.base())
            .audience(AUD)
            .validation(|v| v.typ("at+jwt"))
    }
}

fn bearer(token: &str) -> Request<()> {
    Request::builder()
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap()
}

#[derive(Clone, Debug)]
struct TestClock(Arc<AtomicU64>);

impl Clock for TestClock {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_authenticates_make_no_request_with_baked_keys_and_one_with_remote() {
    let issuer = Issuer::start().await;
    let mut claims = issuer.claims("user-1");
    claims["email"] = json!("ada@example.com");
    claims["email_verified"] = json!(true);
    claims["orgs"] = json!([{"id":"o1","slug":"acme","name":"Acme","role":"admin"}]);
    let token = issuer.token(claims);

    let baked = issuer
        .builder()
        .baked_jwks(&issuer.keys.jwks())
        .build()
        .unwrap();
    for _ in 0..1000 {
        let session = baked.authenticate(&bearer(&token), NO_INFO).await.unwrap();
        assert_eq!(session.email(), Some("ada@example.com"));
        assert!(session.is_member("o1") && !session.is_member("acme"));
    }
    assert_eq!(issuer.requests(), 0, "baked keys: no request to the issuer");

    // the same without the verified-token cache: still no request
    let uncached = issuer
        .builder()
        .baked_jwks(&issuer.keys.jwks())
        .no_token_cache()
        .build()
        .unwrap();
    for _ in 0..100 {
        uncached
            .authenticate(&bearer(&token), NO_INFO)
            .await
            .unwrap();
    }
    assert_eq!(issuer.requests(), 0);

    let remote = issuer
        .builder()
        .remote_jwks(&issuer.server.url("/jwks"))
        .build()
        .unwrap();
    for _ in 0..1000 {
        remote.authenticate(&bearer(&token), NO_INFO).await.unwrap();
    }
    assert_eq!(
        issuer.server.hits("/jwks"),
        1,
        "remote keys: one JWKS fetch"
    );
    assert_eq!(issuer.requests(), 1);

    let discovered = issuer.builder().discovered_jwks().build().unwrap();
    for _ in 0..1000 {
        discovered
            .authenticate(&bearer(&token), NO_INFO)
            .await
            .unwrap();
    }
    assert_eq!(issuer.requests(), 3, "discovery + one JWKS fetch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_info_only_when_the_claims_lack_the_email() {
    let issuer = Issuer::start().await;
    issuer.server.set(
        "/userinfo",
        Route::json(
            json!({"sub":"user-1","email":"from-userinfo@example.com","email_verified":true,"name":"Ada"}).to_string(),
        ),
    );
    let auth = issuer
        .builder()
        .baked_jwks(&issuer.keys.jwks())
        .user_info_from_discovery()
        .build()
        .unwrap();

    let mut with_email = issuer.claims("user-1");
    with_email["email"] = json!("claims@example.com");
    with_email["email_verified"] = json!(true);
    let session = auth
        .authenticate(&bearer(&issuer.token(with_email)), WITH_INFO)
        .await
        .unwrap();
    assert_eq!(session.email(), Some("claims@example.com"));
    assert_eq!(
        issuer.server.hits("/userinfo"),
        0,
        "email present: no userinfo call"
    );

    let without = issuer.token(issuer.claims("user-1"));
    for _ in 0..5 {
        let session = auth
            .authenticate(&bearer(&without), WITH_INFO)
            .await
            .unwrap();
        assert_eq!(session.email(), Some("from-userinfo@example.com"));
        assert_eq!(session.name(), Some("Ada"));
    }
    assert_eq!(
        issuer.server.hits("/userinfo"),
        1,
        "absent: one call, then cached"
    );
    // and without asking for it, never
    let session = auth.authenticate(&bearer(&without), NO_INFO).await.unwrap();
    assert_eq!(session.email(), None);

    let mut empty = issuer.claims("user-1");
    empty["email"] = json!("");
    empty["jti"] = json!("another-token");
    let session = auth
        .authenticate(&bearer(&issuer.token(empty)), WITH_INFO)
        .await
        .unwrap();
    assert_eq!(session.email(), Some("from-userinfo@example.com"));
    assert_eq!(
        issuer.server.hits("/userinfo"),
        2,
        "empty string counts as absent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_user_info_lookups_for_one_token_are_one_request() {
    let issuer = Issuer::start().await;
    issuer.server.set(
        "/userinfo",
        Route::json(json!({"sub":"user-1","email":"a@b.c","email_verified":true}).to_string())
            .delay(Duration::from_millis(200)),
    );
    let auth = issuer
        .builder()
        .baked_jwks(&issuer.keys.jwks())
        .user_info_from_discovery()
        .build()
        .unwrap();
    let token = Arc::new(issuer.token(issuer.claims("user-1")));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (auth, token) = (auth.clone(), token.clone());
            tokio::spawn(async move { auth.authenticate_token(&token, WITH_INFO).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().email(), Some("a@b.c"));
    }
    assert_eq!(issuer.server.hits("/userinfo"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_info_guards_and_failures() {
    let issuer = Issuer::start().await;
    let token = issuer.token(issuer.claims("user-1"));
    let build = |failure| {
        issuer
            .builder()
            .baked_jwks(&issuer.keys.jwks())
            .user_info_endpoint(&issuer.server.url("/userinfo"))
            .unwrap()
            .user_info_failure(failure)
            .user_info_timeout(Duration::from_millis(300))
            .build()
            .unwrap()
    };

    issuer.server.set(
        "/userinfo",
        Route::json(json!({"sub":"someone-else","email":"x@y.z"}).to_string()),
    );
    for policy in [UserInfoFailure::Fail, UserInfoFailure::UseClaims] {
        let err = build(policy)
            .authenticate(&bearer(&token), WITH_INFO)
            .await
            .unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::UserIdMismatch,
            "no session, whatever the policy"
        );
    }

    for (name, route) in [
        ("500", Route::status_only(500)),
        (
            "timeout",
            Route::json(json!({"sub":"user-1"}).to_string()).delay(Duration::from_secs(3)),
        ),
        ("garbage", Route::json("not json")),
    ] {
        issuer.server.set("/userinfo", route);
        let started = std::time::Instant::now();
        let err = build(UserInfoFailure::Fail)
            .authenticate(&bearer(&token), WITH_INFO)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UserInfoUnavailable, "{name}: {err}");
        assert!(started.elapsed() < Duration::from_secs(2), "{name}");
        let session = build(UserInfoFailure::UseClaims)
            .authenticate(&bearer(&token), WITH_INFO)
            .await
            .unwrap();
        assert_eq!(session.user_id(), Some("user-1"));
        assert_eq!(session.email(), None);
        assert_eq!(
            session.user_info_error().unwrap().kind(),
            ErrorKind::UserInfoUnavailable,
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_token_cache() {
    let issuer = Issuer::start().await;
    let clock = TestClock(Arc::new(AtomicU64::new(unix_now())));
    let remote = RemoteKeySource::builder_for_jwks_url(&issuer.server.url("/jwks"))
        .unwrap()
        .unknown_kid_cooldown(Duration::from_millis(10))
        .build()
        .unwrap();
    let auth = issuer
        .builder()
        .keys(remote.clone())
        .clock(clock.clone())
        .build()
        .unwrap();
    let mut claims = issuer.claims("user-1");
    claims["exp"] = json!(clock.now() + 120);
    let token = issuer.token(claims);

    // a hit returns the very same session
    let first = auth.authenticate_token(&token, NO_INFO).await.unwrap();
    let second = auth.authenticate_token(&token, NO_INFO).await.unwrap();
    assert!(first.same_as(&second), "second call must be a cache hit");
    let uncached = issuer
        .builder()
        .keys(remote.clone())
        .clock(clock.clone())
        .no_token_cache()
        .build()
        .unwrap();
    let a = uncached.authenticate_token(&token, NO_INFO).await.unwrap();
    let b = uncached.authenticate_token(&token, NO_INFO).await.unwrap();
    assert!(!a.same_as(&b), "without the cache every call verifies");

    // one byte different: verified from scratch, and rejected
    let mut tampered = token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'Q' } else { 'A' });
    let err = auth
        .authenticate_token(&tampered, NO_INFO)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::InvalidSignature | ErrorKind::Malformed
        ),
        "{err}"
    );

    // an expired token is not served from the cache
    clock.0.fetch_add(120 + 60, Ordering::SeqCst); // exp + leeway
    let err = auth.authenticate_token(&token, NO_INFO).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Expired);
    clock.0.fetch_sub(120 + 60, Ordering::SeqCst);

    // a token whose key was removed at the issuer stops verifying once the
    // key source knows
    let cached = auth.authenticate_token(&token, NO_INFO).await.unwrap();
    assert_eq!(cached.user_id(), Some("user-1"));
    issuer.keys.add_key("key-2", "EdDSA");
    issuer.keys.remove_key("key-1");
    issuer.publish();
    remote.refresh().await.unwrap();
    let err = auth.authenticate_token(&token, NO_INFO).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownKey);
    let new_token = issuer.keys.mint("key-2", &issuer.claims("user-2"));
    assert_eq!(
        auth.authenticate_token(&new_token, NO_INFO)
            .await
            .unwrap()
            .user_id(),
        Some("user-2")
    );
}

#[tokio::test]
async fn credentials_errors_and_cookie() {
    let issuer = Issuer::start().await;
    let token = issuer.token(issuer.claims("user-1"));
    let auth = issuer
        .builder()
        .keys(StaticKeySource::from_jwks(&issuer.keys.jwks()).unwrap())
        .cookie("kw_at")
        .build()
        .unwrap();
    let none = Request::builder().body(()).unwrap();
    assert_eq!(
        auth.authenticate(&none, NO_INFO).await.unwrap_err().kind(),
        ErrorKind::NoCredentials
    );
    let cookie = Request::builder()
        .header("cookie", format!("theme=dark; kw_at={token}"))
        .body(())
        .unwrap();
    assert_eq!(
        auth.authenticate(&cookie, NO_INFO).await.unwrap().user_id(),
        Some("user-1")
    );
    let (parts, ()) = bearer(&token).into_parts();
    assert!(auth.authenticate(&parts, NO_INFO).await.is_ok());
    assert!(auth.authenticate(&parts.headers, NO_INFO).await.is_ok());
    let garbage = bearer("not-a-token");
    assert_eq!(
        auth.authenticate(&garbage, NO_INFO)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Malformed
    );
    // include_user_info without an endpoint is a clear error, not a silent skip
    let err = auth
        .authenticate(&bearer(&token), WITH_INFO)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UserInfoUnavailable);
    assert!(Authenticator::builder().build().is_err(), "no key source");
}

/// Hardening issue, item 7: userinfo's `email_verified` is read, and an
/// address it does not mark verified is not served (unless the mapping
/// accepts unverified email); one it marks verified is, with the flag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_info_email_is_served_only_when_verified() {
    let issuer = Issuer::start().await;
    let token = issuer.token(issuer.claims("user-1"));
    for (body, strict, lenient) in [
        (
            json!({"sub":"user-1","email":"u@x","email_verified":false}),
            None,
            Some("u@x"),
        ),
        (json!({"sub":"user-1","email":"u@x"}), None, Some("u@x")),
        (
            json!({"sub":"user-1","email":"u@x","email_verified":true}),
            Some("u@x"),
            Some("u@x"),
        ),
    ] {
        issuer
            .server
            .set("/userinfo", Route::json(body.to_string()));
        for (accept, expected) in [(false, strict), (true, lenient)] {
            let auth = issuer
                .builder()
                .baked_jwks(&issuer.keys.jwks())
                .user_info_from_discovery()
                .claim_mapping(keyward::ClaimMapping::default().accept_unverified_email(accept))
                .build()
                .unwrap();
            let session = auth.authenticate(&bearer(&token), WITH_INFO).await.unwrap();
            assert_eq!(session.email(), expected, "{body} accept={accept}");
            assert_eq!(
                session.email_verified(),
                body["email_verified"].as_bool(),
                "{body}"
            );
        }
    }
    // a token that marks its email unverified does not count as having one
    let mut claims = issuer.claims("user-1");
    claims["email"] = json!("token@x");
    claims["email_verified"] = json!(false);
    claims["jti"] = json!("unverified-in-token");
    let auth = issuer
        .builder()
        .baked_jwks(&issuer.keys.jwks())
        .build()
        .unwrap();
    let session = auth
        .authenticate(&bearer(&issuer.token(claims)), NO_INFO)
        .await
        .unwrap();
    assert_eq!(
        (session.email(), session.email_verified()),
        (None, Some(false))
    );
}
