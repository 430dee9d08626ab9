//! The remote source's lifecycle under failure, through the public API,
//! against a loopback issuer that misbehaves on purpose. One test (or more)
//! per problem of the key-source review; each counts requests, waits or
//! outcomes rather than timing anything.

use keyward_core::{ErrorKind, KeySource, Validation, Verifier};
use keyward_keys::{RemoteKeySource, RotatingKeySource, SourceState, StaticKeySource};
use keyward_testkit::{Route, TestIssuer, TestServer};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ISS: &str = "https://issuer.test";
const AUD: &str = "https://api.test";
const JWKS: &str = "/jwks";

fn verifier_for(source: impl KeySource + 'static) -> Verifier {
    Verifier::new(source, Validation::new().issuer(ISS).audience(AUD))
}

/// A server whose `/jwks` is the issuer's live key set.
async fn live_server(issuer: &Arc<TestIssuer>, cache_control: &'static str) -> TestServer {
    let server = TestServer::start().await;
    let live = Arc::clone(issuer);
    server.set(
        JWKS,
        Route::dynamic(move |_| Route::json(live.jwks()).header("Cache-Control", cache_control)),
    );
    server
}

fn remote(server: &TestServer, cooldown_ms: u64) -> RemoteKeySource {
    RemoteKeySource::builder_for_jwks_url(&server.url(JWKS))
        .unwrap()
        .unknown_kid_cooldown(Duration::from_millis(cooldown_ms))
        .build()
        .unwrap()
}

fn token(issuer: &TestIssuer, kid: &str) -> String {
    issuer.mint(kid, &issuer.claims("user-1", AUD))
}

/// Waits (bounded) until `done` holds.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// Problem 1: the second and third rotation through the documented chain.
async fn three_rotations(start_up_refresh: bool) {
    let issuer = Arc::new(TestIssuer::new(ISS)); // key-1
    let server = live_server(&issuer, "max-age=3600").await;
    let baked = StaticKeySource::from_jwks(&issuer.jwks()).unwrap();
    let remote = remote(&server, 100);
    if start_up_refresh {
        remote.refresh().await.unwrap();
    }
    let verifier = verifier_for(RotatingKeySource::new().then(baked).then(remote.clone()));
    verifier
        .verify::<Value>(&token(&issuer, "key-1"))
        .await
        .unwrap();
    eventually("the first fetch", || remote.state() == SourceState::Fresh).await;
    let mut expected_hits = 1;
    assert_eq!(server.hits(JWKS), expected_hits);
    for (added, removed) in [
        ("key-2", None),
        ("key-3", Some("key-1")),
        ("key-4", Some("key-2")),
    ] {
        tokio::time::sleep(Duration::from_millis(150)).await; // past the claim cooldown
        issuer.add_key(added, "ES256");
        if let Some(removed) = removed {
            issuer.remove_key(removed);
        }
        verifier
            .verify::<Value>(&token(&issuer, added))
            .await
            .unwrap_or_else(|e| panic!("rotation to {added}: {e}"));
        expected_hits += 1;
        assert_eq!(server.hits(JWKS), expected_hits, "one fetch for {added}");
        if let Some(removed) = removed {
            // the baked set still offers it; the fetched set does not
            assert!(remote.disowns(removed));
        }
    }
    // key-1 is baked and removed at the issuer: refused, without a request
    let err = verifier
        .verify::<Value>(&issuer_token_for_removed())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownKey, "{err}");
    assert!(err.message().contains("removed"), "{err}");
    assert_eq!(server.hits(JWKS), expected_hits);
}

/// A token with `kid: key-1` signed by some key: the chain must refuse the
/// kid as removed before any signature check.
fn issuer_token_for_removed() -> String {
    let other = TestIssuer::new(ISS); // its own key-1
    other.mint("key-1", &other.claims("user-1", AUD))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_rotations_through_the_chain_with_start_up_refresh() {
    three_rotations(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_rotations_through_the_chain_without_start_up_refresh() {
    three_rotations(false).await;
}

// Problem 2: a token without `kid` must not bring a removed key back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kid_less_token_after_removal_is_refused() {
    let issuer = Arc::new(TestIssuer::new(ISS)); // key-1
    issuer.add_key("key-2", "ES256");
    let baked_jwks = issuer.jwks();
    let signed_by_old = issuer.mint_without_kid("key-1", &issuer.claims("user-1", AUD));
    let signed_by_new = issuer.mint_without_kid("key-2", &issuer.claims("user-1", AUD));
    issuer.remove_key("key-1");
    let server = live_server(&issuer, "max-age=3600").await;
    let remote = remote(&server, 100);
    remote.refresh().await.unwrap();

    // baked keys with kids
    let chain = RotatingKeySource::new()
        .then(StaticKeySource::from_jwks(&baked_jwks).unwrap())
        .then(remote.clone());
    let verifier = verifier_for(chain);
    assert!(verifier.verify::<Value>(&signed_by_old).await.is_err());
    assert!(verifier.verify_cached::<Value>(&signed_by_old).is_err());
    verifier.verify::<Value>(&signed_by_new).await.unwrap();
    verifier.verify_cached::<Value>(&signed_by_new).unwrap();

    // baked keys without kids: recognised by their material
    let mut doc: Value = serde_json::from_str(&baked_jwks).unwrap();
    for key in doc["keys"].as_array_mut().unwrap() {
        key.as_object_mut().unwrap().remove("kid");
    }
    let chain = RotatingKeySource::new()
        .then(StaticKeySource::from_jwks(&doc.to_string()).unwrap())
        .then(remote.clone());
    let verifier = verifier_for(chain);
    assert!(verifier.verify::<Value>(&signed_by_old).await.is_err());
    verifier.verify::<Value>(&signed_by_new).await.unwrap();
    assert_eq!(server.hits(JWKS), 1);
}

// Problem 3: a cold start with the issuer down is rate-limited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_start_with_the_jwks_endpoint_down_is_rate_limited() {
    let issuer = TestIssuer::new(ISS);
    let server = TestServer::start().await;
    server.set(JWKS, Route::status_only(503));
    let cooldown = Duration::from_millis(200);
    let source = remote(&server, cooldown.as_millis() as u64);
    let verifier = Arc::new(verifier_for(source.clone()));
    let token = Arc::new(token(&issuer, "key-1"));
    let started = Instant::now();
    let attempts = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (verifier, token, attempts) = (verifier.clone(), token.clone(), attempts.clone());
        tasks.push(tokio::spawn(async move {
            while started.elapsed() < Duration::from_secs(1) {
                let err = verifier.verify::<Value>(&token).await.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::KeyUnavailable, "{err}");
                attempts.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    let hits = server.hits(JWKS);
    let bound = 1 + (elapsed.as_millis() / cooldown.as_millis()) as usize;
    eprintln!(
        "{} verifications in {elapsed:?} → {hits} JWKS requests (bound {bound})",
        attempts.load(Ordering::Relaxed)
    );
    assert!(attempts.load(Ordering::Relaxed) > 100);
    assert!(hits <= bound, "{hits} requests, bound {bound}");
    assert_eq!(source.state(), SourceState::Failing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_start_with_discovery_down_is_rate_limited() {
    let server = TestServer::start().await;
    server.set("/.well-known/openid-configuration", Route::status_only(503));
    let cooldown = Duration::from_millis(200);
    let source = RemoteKeySource::builder_for_issuer(&server.base())
        .unknown_kid_cooldown(cooldown)
        .build()
        .unwrap();
    let issuer = TestIssuer::new(&server.base());
    let verifier = verifier_for(source.clone());
    let started = Instant::now();
    let mut tokens = 0;
    while started.elapsed() < Duration::from_secs(1) {
        // 51 distinct tokens, and more
        let token = issuer.mint("key-1", &issuer.claims(&format!("user-{tokens}"), AUD));
        let err = verifier.verify::<Value>(&token).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::KeyUnavailable, "{err}");
        tokens += 1;
    }
    let hits = server.hits("/.well-known/openid-configuration");
    let bound = 1 + (started.elapsed().as_millis() / cooldown.as_millis()) as usize;
    eprintln!("{tokens} tokens → {hits} discovery requests (bound {bound})");
    assert!(tokens > 50);
    assert!(hits <= bound, "{hits} discovery requests, bound {bound}");
    assert_eq!(source.stats().discovery_fetches as usize, hits);
}

// Problem 4: cancelled callers neither restart nor duplicate the fetch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_bursts_share_one_fetch() {
    let issuer = Arc::new(TestIssuer::new(ISS));
    let server = TestServer::start().await;
    let live = Arc::clone(&issuer);
    server.set(
        JWKS,
        Route::dynamic(move |_| {
            Route::json(live.jwks())
                .header("Cache-Control", "max-age=3600")
                .delay(Duration::from_millis(400))
        }),
    );
    let source = remote(&server, 30_000);
    let verifier = Arc::new(verifier_for(source.clone()));
    let token = Arc::new(token(&issuer, "key-1"));
    let mut cancelled = 0;
    for _ in 0..20 {
        let mut burst = Vec::new();
        for _ in 0..50 {
            let (verifier, token) = (verifier.clone(), token.clone());
            burst.push(tokio::spawn(async move {
                tokio::time::timeout(Duration::from_millis(40), verifier.verify::<Value>(&token))
                    .await
                    .is_err()
            }));
        }
        for task in burst {
            cancelled += usize::from(task.await.unwrap());
        }
    }
    eprintln!(
        "{cancelled} of 1000 lookups cancelled; {} requests",
        server.hits(JWKS)
    );
    // the one attempt completes although every caller that started it left
    eventually("the fetch to land", || source.state() == SourceState::Fresh).await;
    verifier.verify_cached::<Value>(&token).unwrap();
    assert_eq!(server.hits(JWKS), 1, "one request for all bursts");
    assert!(
        cancelled > 0,
        "the endpoint was slow enough to cancel callers"
    );
}

// Problem 5: cached keys never wait, even while a retry hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_keys_never_wait_during_a_hanging_retry() {
    let issuer = Arc::new(TestIssuer::new(ISS));
    let server = live_server(&issuer, "max-age=0").await;
    let source = RemoteKeySource::builder_for_jwks_url(&server.url(JWKS))
        .unwrap()
        .min_ttl(Duration::from_millis(200))
        .unknown_kid_cooldown(Duration::from_millis(100))
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    source.refresh().await.unwrap();
    // from now on the endpoint hangs past the client's timeout
    server.set(
        JWKS,
        Route::json(issuer.jwks()).delay(Duration::from_secs(30)),
    );
    let verifier = verifier_for(source.clone());
    let token = token(&issuer, "key-1");
    let (mut calls, mut slow) = (0, 0);
    let started = Instant::now();
    // through the hanging timed refresh, its failure (timeout) and the retry
    while started.elapsed() < Duration::from_secs(3) {
        match tokio::time::timeout(Duration::from_millis(50), verifier.verify::<Value>(&token))
            .await
        {
            Ok(result) => {
                result.unwrap();
            }
            Err(_) => slow += 1,
        }
        calls += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stats = source.stats();
    eprintln!("{calls} verifications, {slow} slower than 50 ms; {stats:?}");
    assert!(server.hits(JWKS) >= 2, "the refresh was attempted");
    assert!(stats.failures >= 1, "the hanging refresh timed out");
    assert_eq!(slow, 0, "no verification waited for the hanging refresh");
    assert_eq!(stats.waits, 0, "no lookup waited for the refresher");
    assert!(stats.stale_serves > 0);
}

// Problem 6: an empty or all-unusable set is a failed fetch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_or_unusable_set_is_a_failed_fetch() {
    for bad in [
        r#"{"keys":[]}"#.to_owned(),
        r#"{"keys":[{"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"},{"kty":"oct","kid":"short","k":"AAAA"}]}"#.to_owned(),
    ] {
        let issuer = Arc::new(TestIssuer::new(ISS));
        let server = live_server(&issuer, "max-age=3600").await;
        let remote = remote(&server, 50);
        let chain = RotatingKeySource::new()
            .then(StaticKeySource::from_jwks(&issuer.jwks()).unwrap())
            .then(remote.clone());
        remote.refresh().await.unwrap();
        server.set(JWKS, Route::json(bad.clone()));
        tokio::time::sleep(Duration::from_millis(60)).await;
        let err = remote.refresh().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::KeyUnavailable);
        assert!(err.message().contains("no usable key"), "{err}");
        assert_eq!(remote.state(), SourceState::Stale, "{bad}");
        // the good set stays, and the baked kid is not "removed"
        assert!(!remote.disowns("key-1"));
        verifier_for(remote.clone())
            .verify::<Value>(&token(&issuer, "key-1"))
            .await
            .unwrap();
        verifier_for(chain)
            .verify::<Value>(&token(&issuer, "key-1"))
            .await
            .unwrap();
    }
}

// Problem 7: an unknown kid during an outage is `key_unavailable`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kid_during_an_outage_is_key_unavailable() {
    let issuer = Arc::new(TestIssuer::new(ISS));
    let server = live_server(&issuer, "max-age=3600").await;
    let source = remote(&server, 50);
    source.refresh().await.unwrap();
    server.set(JWKS, Route::status_only(500));
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert!(source.refresh().await.is_err());
    assert_eq!(source.state(), SourceState::Stale);
    issuer.add_key("key-2", "ES256");
    let verifier = verifier_for(source.clone());
    let err = verifier
        .verify::<Value>(&token(&issuer, "key-2"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::KeyUnavailable, "{err}");
    // the cached key still verifies
    verifier
        .verify::<Value>(&token(&issuer, "key-1"))
        .await
        .unwrap();
}

// Problem 8: a key published during a slow refresh is learnt by an attempt
// that starts after the claim, not refused for a cooldown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_published_during_a_slow_refresh() {
    let issuer = Arc::new(TestIssuer::new(ISS));
    let server = live_server(&issuer, "max-age=3600").await;
    let source = remote(&server, 30_000);
    source.refresh().await.unwrap();
    let live = Arc::clone(&issuer);
    server.set(
        JWKS,
        Route::dynamic(move |_| Route::json(live.jwks()).delay(Duration::from_millis(300))),
    );
    // a slow refresh starts; its response is the set without key-2
    let slow = tokio::spawn({
        let source = source.clone();
        async move { source.refresh().await }
    });
    eventually("the slow refresh to reach the server", || {
        server.hits(JWKS) == 2
    })
    .await;
    issuer.add_key("key-2", "ES256");
    verifier_for(source.clone())
        .verify::<Value>(&token(&issuer, "key-2"))
        .await
        .unwrap();
    slow.await.unwrap().unwrap();
    assert_eq!(server.hits(JWKS), 3, "the claim got an attempt of its own");
    assert_eq!(source.stats().unknown_kid_refetches, 1);
}

// Problem 9: redirects are checked hop by hop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_to_plain_http_is_refused() {
    let issuer = Arc::new(TestIssuer::new(ISS));
    let server = live_server(&issuer, "max-age=3600").await;
    // 192.0.2.1 (TEST-NET-1) is never contacted: the policy refuses the hop
    server.set(
        "/moved",
        Route::status_only(302).header("Location", "http://192.0.2.1/jwks"),
    );
    server.set(
        "/moved-locally",
        Route::status_only(302).header("Location", &server.url(JWKS)),
    );
    let build = |path: &str| {
        RemoteKeySource::builder_for_jwks_url(&server.url(path))
            .unwrap()
            .allow_redirects(true)
            .build()
            .unwrap()
    };
    let err = build("/moved").refresh().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::KeyUnavailable);
    assert!(err.message().contains("plain http"), "{err}");
    // a hop that obeys the policy is followed
    build("/moved-locally").refresh().await.unwrap();
    assert_eq!(server.hits(JWKS), 1);
}

// Problem 10: `Duration::MAX` settings and a huge `max-age` do not panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extreme_durations_do_not_panic() {
    let issuer = Arc::new(TestIssuer::new(ISS));
    let server = live_server(&issuer, "max-age=99999999999999999999").await;
    let source = RemoteKeySource::builder_for_jwks_url(&server.url(JWKS))
        .unwrap()
        .stale_if_error(Duration::MAX)
        .max_ttl(Duration::MAX)
        .max_backoff(Duration::MAX)
        .discovery_ttl(Duration::MAX)
        .unknown_kid_cooldown(Duration::MAX)
        .build()
        .unwrap();
    let verifier = verifier_for(source.clone());
    verifier
        .verify::<Value>(&token(&issuer, "key-1"))
        .await
        .unwrap();
    issuer.add_key("key-2", "ES256");
    // one refetch claim is open; after it, the (endless) cooldown holds
    verifier
        .verify::<Value>(&token(&issuer, "key-2"))
        .await
        .unwrap();
    issuer.add_key("key-3", "ES256");
    let err = verifier
        .verify::<Value>(&token(&issuer, "key-3"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownKey);
    assert_eq!(server.hits(JWKS), 2);

    let failing = TestServer::start().await;
    failing.set(JWKS, Route::status_only(500));
    let source = RemoteKeySource::builder_for_jwks_url(&failing.url(JWKS))
        .unwrap()
        .min_ttl(Duration::MAX)
        .stale_if_error(Duration::MAX)
        .max_backoff(Duration::MAX)
        .unknown_kid_cooldown(Duration::MAX)
        .build()
        .unwrap();
    assert!(source.refresh().await.is_err());
    assert!(source.refresh().await.is_err(), "backing off: no request");
    assert_eq!(failing.hits(JWKS), 1);
}

// Problem 11: HTTP caching — `Age`, `Expires`, `304` lifetimes, invalid
// directives. The lifetime is observed through the timed refresh (at 80% of
// it) with no traffic at all.
async fn requests_within(route: Route, window: Duration) -> usize {
    // a path of its own: a request for another test's server that reuses
    // this port is not counted
    static CASE: AtomicUsize = AtomicUsize::new(0);
    let path = format!(
        "/jwks-{}-{}",
        std::process::id(),
        CASE.fetch_add(1, Ordering::Relaxed)
    );
    let server = TestServer::start().await;
    server.set(&path, route);
    let source = RemoteKeySource::builder_for_jwks_url(&server.url(&path))
        .unwrap()
        .min_ttl(Duration::ZERO)
        .default_ttl(Duration::from_secs(3600))
        .unknown_kid_cooldown(Duration::from_millis(100))
        .build()
        .unwrap();
    source.refresh().await.unwrap();
    tokio::time::sleep(window).await;
    assert_eq!(source.stats().fetches as usize, server.hits(&path));
    server.hits(&path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_freshness_rules() {
    let issuer = TestIssuer::new(ISS);
    let jwks = || Route::json(issuer.jwks());
    let window = Duration::from_millis(2500);
    // max-age alone: an hour, no refresh in the window
    assert_eq!(
        requests_within(jwks().header("Cache-Control", "max-age=3600"), window).await,
        1
    );
    // a CDN copy near its end: max-age − Age = 1 s → refreshed (at 0.8 s, 1.6 s, ...)
    let aged = requests_within(
        jwks()
            .header("Cache-Control", "max-age=3600")
            .header("Age", "3599"),
        window,
    )
    .await;
    assert!(aged >= 2, "Age honoured: {aged} requests");
    // Expires − Date = 1 s
    let now = std::time::SystemTime::now();
    let date = httpdate_fmt(now);
    let expires = httpdate_fmt(now + Duration::from_secs(1));
    let by_expires = requests_within(
        jwks().header("Date", &date).header("Expires", &expires),
        window,
    )
    .await;
    assert!(by_expires >= 2, "Expires honoured: {by_expires} requests");
    // an invalid max-age is stale (the minimum), not "absent" (the 1 h default)
    let invalid = requests_within(jwks().header("Cache-Control", "max-age=soon"), window).await;
    assert!(
        invalid >= 2,
        "invalid max-age treated as stale: {invalid} requests"
    );
    // Expires: 0 is already expired
    let expired = requests_within(jwks().header("Expires", "0"), window).await;
    assert!(
        expired >= 2,
        "Expires: 0 treated as expired: {expired} requests"
    );
    // no freshness information: the default (1 h here)
    assert_eq!(requests_within(jwks(), window).await, 1);
}

fn httpdate_fmt(t: std::time::SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_modified_keeps_the_previous_lifetime() {
    let issuer = TestIssuer::new(ISS);
    let server = TestServer::start().await;
    server.set(
        JWKS,
        Route::json(issuer.jwks())
            .etag("\"v1\"")
            .header("Cache-Control", "max-age=1"),
    );
    let source = RemoteKeySource::builder_for_jwks_url(&server.url(JWKS))
        .unwrap()
        .min_ttl(Duration::ZERO)
        .default_ttl(Duration::from_secs(3600))
        .unknown_kid_cooldown(Duration::from_millis(100))
        .build()
        .unwrap();
    source.refresh().await.unwrap();
    // revalidations answer 304 without Cache-Control
    server.set(JWKS, Route::json(issuer.jwks()).etag("\"v1\""));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let hits = server.hits(JWKS);
    eprintln!("{hits} requests, {} answered 304", server.not_modified());
    // 0.8 s, 1.6 s, 2.4 s: the 1 s lifetime is kept, not the 1 h default
    assert!(hits >= 3, "{hits} requests");
    assert!(server.not_modified() >= 2);
    assert_eq!(source.state(), SourceState::Fresh);
}

// Problem 12: hostile JWKS documents are refused in linear time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_one_mebibyte_documents() {
    let issuer = Arc::new(TestIssuer::new(ISS));
    let server = TestServer::start().await;
    let source = remote(&server, 50);
    // a huge array of junk entries: refused at entry 101, nothing parsed
    let mut junk = String::from(r#"{"keys":["#);
    while junk.len() < 1024 * 1024 - 16 {
        junk.push_str("{},");
    }
    junk.push_str("{}]}");
    assert!(junk.len() <= 1024 * 1024);
    server.set(JWKS, Route::json(junk));
    let started = Instant::now();
    let err = source.refresh().await.unwrap_err();
    eprintln!("1 MiB array of {{}}: refused in {:?}", started.elapsed());
    assert!(err.message().contains("more than 100 keys"), "{err}");

    // one key with tens of thousands of members: that key is refused by the
    // member cap; the document's good key still loads
    let good: Value = serde_json::from_str(&issuer.jwks()).unwrap();
    let mut bomb = String::from(r#"{"kty":"EC""#);
    let mut i = 0;
    while bomb.len() < 1024 * 1024 - 2048 {
        bomb.push_str(&format!(r#","m{i}":0"#));
        i += 1;
    }
    bomb.push('}');
    let doc = format!(r#"{{"keys":[{bomb},{}]}}"#, good["keys"][0]);
    server.set(JWKS, Route::json(doc));
    // past the backoff after the refused document (one cooldown, at least 100 ms)
    tokio::time::sleep(Duration::from_millis(150)).await;
    let started = Instant::now();
    let keys = source.refresh().await.unwrap();
    eprintln!(
        "one key with {i} members: loaded the rest in {:?}",
        started.elapsed()
    );
    assert_eq!(keys.len(), 1);
    assert_eq!(keys.skipped().len(), 1);
}

// Problem 13: the set is refreshed without traffic, and a JWKS URL that
// starts answering 404 sends the source back to discovery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediscovery_after_the_jwks_url_returns_404() {
    let server = TestServer::start().await;
    let issuer = Arc::new(TestIssuer::new(&server.base()));
    let discovery = |jwks_path: &str| {
        Route::json(
            serde_json::json!({"issuer": server.base(), "jwks_uri": server.url(jwks_path)})
                .to_string(),
        )
    };
    server.set("/.well-known/openid-configuration", discovery("/keys-a"));
    let live = Arc::clone(&issuer);
    server.set(
        "/keys-a",
        Route::dynamic(move |_| Route::json(live.jwks()).header("Cache-Control", "max-age=3600")),
    );
    let source = RemoteKeySource::builder_for_issuer(&server.base())
        .unknown_kid_cooldown(Duration::from_millis(100))
        .build()
        .unwrap();
    source.refresh().await.unwrap();
    // the issuer moves its keys
    server.set("/keys-a", Route::status_only(404));
    server.set("/.well-known/openid-configuration", discovery("/keys-b"));
    let live = Arc::clone(&issuer);
    server.set(
        "/keys-b",
        Route::dynamic(move |_| Route::json(live.jwks()).header("Cache-Control", "max-age=3600")),
    );
    issuer.add_key("key-2", "ES256");
    tokio::time::sleep(Duration::from_millis(150)).await;
    // the claim's attempt hits the 404 (the stale set is kept) ...
    let verifier = Verifier::new(
        source.clone(),
        Validation::new().issuer(server.base()).audience(AUD),
    );
    let token2 = issuer.mint("key-2", &issuer.claims("user-1", AUD));
    let first = verifier.verify::<Value>(&token2).await;
    assert!(first.is_err());
    // ... and the retry after the backoff reads discovery again
    eventually("the source to recover", || {
        source.state() == SourceState::Fresh
    })
    .await;
    verifier.verify::<Value>(&token2).await.unwrap();
    assert_eq!(server.hits("/keys-a"), 2);
    assert_eq!(server.hits("/keys-b"), 1);
    assert_eq!(source.stats().discovery_fetches, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshed_without_traffic_and_stops_with_its_last_handle() {
    let issuer = TestIssuer::new(ISS);
    let server = TestServer::start().await;
    server.set(
        JWKS,
        Route::json(issuer.jwks()).header("Cache-Control", "max-age=1"),
    );
    let source = RemoteKeySource::builder_for_jwks_url(&server.url(JWKS))
        .unwrap()
        .min_ttl(Duration::ZERO)
        .unknown_kid_cooldown(Duration::from_millis(100))
        .build()
        .unwrap();
    source.refresh().await.unwrap();
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let hits = server.hits(JWKS);
    assert!(hits >= 2, "timed refresh without lookups: {hits} requests");
    drop(source);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after_drop = server.hits(JWKS);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(
        server.hits(JWKS),
        after_drop,
        "the refresher ended with the last handle"
    );
}
