//! Review: attempts to break the promises of `docs/key-rotation.md` through
//! the public API only, against the loopback fault-injecting server.
//!
//! Written by an adversarial review; the findings it exposed are fixed and
//! these tests keep them fixed (a runtime that ended with the refresher, a
//! removal outliving the stale limit, zero settings, a key replaced under
//! its kid), next to the attacks that held. Every test counts requests /
//! outcomes; the few durations used are generous upper bounds.

use keyward_core::{ErrorKind, KeySource, Validation, Verifier};
use keyward_keys::{RemoteKeySource, RotatingKeySource, SourceState, StaticKeySource};
use keyward_testkit::fixtures::b64;
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

fn live_route(issuer: &Arc<TestIssuer>, cache_control: &'static str) -> Route {
    let live = Arc::clone(issuer);
    Route::dynamic(move |_| Route::json(live.jwks()).header("Cache-Control", cache_control))
}

async fn live_server(issuer: &Arc<TestIssuer>, cache_control: &'static str) -> TestServer {
    let server = TestServer::start().await;
    server.set(JWKS, live_route(issuer, cache_control));
    server
}

fn token(issuer: &TestIssuer, kid: &str) -> String {
    issuer.mint(kid, &issuer.claims("user-1", AUD))
}

/// A well-formed ES256 token naming `kid` (its signature is junk: the key
/// lookup happens before any signature check).
fn junk_token(kid: &str) -> String {
    let header = serde_json::json!({"alg": "ES256", "kid": kid, "typ": "at+jwt"}).to_string();
    let claims = serde_json::json!({"iss": ISS, "aud": AUD, "sub": "x", "exp": 4_000_000_000u64})
        .to_string();
    format!(
        "{}.{}.{}",
        b64(header.as_bytes()),
        b64(claims.as_bytes()),
        b64(&[7u8; 64])
    )
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------
// FINDING candidates
// ---------------------------------------------------------------------------

/// A source created and first used in one runtime (e.g. a start-up
/// `refresh()` in a temporary runtime), then used in another. Docs: "A timer
/// refreshes the set ... with or without traffic"; "Remote source alone: [a
/// removed key stops verifying] at the next timed refresh (within one
/// freshness lifetime, with or without traffic)".
#[test]
fn timed_refresh_survives_the_runtime_that_started_it() {
    let server_rt = multi_thread(); // keeps the server alive throughout
    let issuer = Arc::new(TestIssuer::new(ISS)); // key-1
    issuer.add_key("key-2", "ES256");
    let server = server_rt.block_on(live_server(&issuer, "max-age=0"));
    let source = RemoteKeySource::builder_for_jwks_url(&server.url(JWKS))
        .unwrap()
        .min_ttl(Duration::from_millis(200))
        .unknown_kid_cooldown(Duration::from_millis(100))
        .build()
        .unwrap();
    let old = token(&issuer, "key-1");

    let start_up = multi_thread();
    start_up.block_on(source.refresh()).unwrap();
    drop(start_up); // the refresher task ends with its runtime
    assert_eq!(server.hits(JWKS), 1);

    issuer.remove_key("key-1"); // removed at the issuer

    let serving = multi_thread();
    let (ok, err) = serving.block_on(async {
        let verifier = verifier_for(source.clone());
        let (mut ok, mut err) = (0, 0);
        let started = Instant::now();
        // traffic on a known kid for 1.5 s: ~7 lifetimes of 200 ms
        while started.elapsed() < Duration::from_millis(1500) {
            match verifier.verify::<Value>(&old).await {
                Ok(_) => ok += 1,
                Err(_) => err += 1,
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (ok, err)
    });
    let hits = server.hits(JWKS);
    eprintln!(
        "after the start-up runtime ended: {hits} JWKS requests in 1.5 s (200 ms lifetime); \
         removed key-1 accepted {ok} times, refused {err} times; state {:?}; {:?}",
        source.state(),
        source.stats()
    );
    assert!(
        hits >= 3,
        "no timed refresh after the start-up runtime ended ({hits} requests)"
    );
    assert!(err > 0, "the removed key kept verifying ({ok} times)");
    drop(serving);
    drop(server);
}

/// Docs: "A removal learnt from a successful fetch stays in force while that
/// set is served stale during an outage: an outage never brings a removed key
/// back." Once the outage outlasts `stale_if_error`, `disowns` is false again
/// and the baked copy of the removed key verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_past_stale_if_error_does_not_bring_a_removed_key_back() {
    let issuer = Arc::new(TestIssuer::new(ISS)); // key-1
    issuer.add_key("key-2", "ES256");
    let baked = StaticKeySource::from_jwks(&issuer.jwks()).unwrap();
    let old = token(&issuer, "key-1");
    issuer.remove_key("key-1");
    let server = live_server(&issuer, "max-age=0").await;
    let remote = RemoteKeySource::builder_for_jwks_url(&server.url(JWKS))
        .unwrap()
        .min_ttl(Duration::from_millis(100))
        .stale_if_error(Duration::from_millis(100))
        .unknown_kid_cooldown(Duration::from_millis(100))
        .max_backoff(Duration::from_millis(100))
        .build()
        .unwrap();
    remote.refresh().await.unwrap();
    let verifier = verifier_for(RotatingKeySource::new().then(baked).then(remote.clone()));
    let err = verifier.verify::<Value>(&old).await.unwrap_err();
    assert!(err.message().contains("removed"), "{err}");

    server.set(JWKS, Route::status_only(503)); // the outage
    eventually("the stale limit to pass", || {
        remote.state() == SourceState::Failing
    })
    .await;
    let result = verifier.verify::<Value>(&old).await;
    eprintln!(
        "removed key-1 during an outage past stale_if_error: {:?}; disowns(key-1) = {}",
        result
            .as_ref()
            .map(|_| "ACCEPTED")
            .map_err(|e| e.to_string()),
        remote.disowns("key-1")
    );
    assert!(result.is_err(), "the outage brought the removed key back");
}

/// worker.rs MIN_INTERVAL: "The shortest interval between two attempts
/// whatever the settings (a zero cooldown ... must not become a busy loop)".
/// A storm of random kids with `unknown_kid_cooldown(0)`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_cooldown_random_kid_storm_is_not_a_busy_loop() {
    let issuer = Arc::new(TestIssuer::new(ISS));
    let server = live_server(&issuer, "max-age=3600").await;
    let source = RemoteKeySource::builder_for_jwks_url(&server.url(JWKS))
        .unwrap()
        .unknown_kid_cooldown(Duration::ZERO)
        .build()
        .unwrap();
    source.refresh().await.unwrap();
    let verifier = Arc::new(verifier_for(source.clone()));
    let started = Instant::now();
    let lookups = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (verifier, lookups) = (verifier.clone(), lookups.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while started.elapsed() < Duration::from_secs(1) {
                let _ = verifier
                    .verify::<Value>(&junk_token(&format!("r-{t}-{i}")))
                    .await;
                lookups.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    let hits = server.hits(JWKS);
    let bound = 1 + 1 + (elapsed.as_millis() / 100) as usize; // MIN_INTERVAL = 100 ms
    eprintln!(
        "zero cooldown: {} random-kid lookups in {elapsed:?} → {hits} JWKS requests (bound {bound}); {:?}",
        lookups.load(Ordering::Relaxed),
        source.stats()
    );
    assert!(hits <= bound, "{hits} requests, bound {bound}");
}

/// `min_ttl(0)` + `stale_if_error(0)` (a user who never wants stale keys):
/// a fetched set is unusable the moment it lands, and every lookup starts a
/// new attempt at once (worker.rs: a lookup without a usable set starts an
/// attempt without looking at `last_attempt_at`). Docs: "Every attempt ...
/// sets the earliest start of the next"; MIN_INTERVAL "whatever the
/// settings".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_min_ttl_and_zero_stale_if_error_do_not_busy_loop() {
    let issuer = Arc::new(TestIssuer::new(ISS));
    let server = live_server(&issuer, "max-age=0").await;
    let source = RemoteKeySource::builder_for_jwks_url(&server.url(JWKS))
        .unwrap()
        .min_ttl(Duration::ZERO)
        .stale_if_error(Duration::ZERO)
        .unknown_kid_cooldown(Duration::from_millis(100))
        .build()
        .unwrap();
    let verifier = Arc::new(verifier_for(source.clone()));
    let token = Arc::new(token(&issuer, "key-1"));
    let started = Instant::now();
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (verifier, token, ok, failed) =
            (verifier.clone(), token.clone(), ok.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            while started.elapsed() < Duration::from_secs(1) {
                match verifier.verify::<Value>(&token).await {
                    Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    let hits = server.hits(JWKS);
    let bound = 2 + (elapsed.as_millis() / 100) as usize;
    eprintln!(
        "min_ttl 0 + stale_if_error 0, healthy endpoint: {hits} JWKS requests in {elapsed:?} \
         (bound {bound}); verifications ok {} / failed {}; {:?}",
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        source.stats()
    );
    assert!(hits <= bound, "{hits} requests, bound {bound}");
}

/// An issuer that replaces key material under an unchanged `kid` (some use a
/// fixed kid). Baked {key-1: A}, remote {key-1: B}. For kid-less tokens the
/// chain compares material; for tokens with a kid only the kid: the old
/// material A still verifies and tokens signed with the new B are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_replaced_under_the_same_kid_through_the_chain() {
    let issuer = Arc::new(TestIssuer::new(ISS)); // key-1 = A
    let baked = StaticKeySource::from_jwks(&issuer.jwks()).unwrap();
    let by_a = token(&issuer, "key-1");
    issuer.remove_key("key-1");
    issuer.add_key("key-1", "ES256"); // key-1 = B
    let by_b = token(&issuer, "key-1");
    let server = live_server(&issuer, "max-age=3600").await;
    let remote = RemoteKeySource::from_jwks_url(&server.url(JWKS)).unwrap();
    remote.refresh().await.unwrap();
    let verifier = verifier_for(RotatingKeySource::new().then(baked).then(remote.clone()));
    let a = verifier.verify::<Value>(&by_a).await;
    let b = verifier.verify::<Value>(&by_b).await;
    eprintln!(
        "kid reused: old material A {:?}, new material B {:?}",
        a.as_ref().map(|_| "ACCEPTED").map_err(|e| e.to_string()),
        b.as_ref().map(|_| "accepted").map_err(|e| e.to_string()),
    );
    assert!(a.is_err(), "the replaced key A still verifies");
    b.unwrap();
}

// ---------------------------------------------------------------------------
// Attacks that should hold
// ---------------------------------------------------------------------------

/// refresh() during the backoff returns the stored failure without a
/// request, whatever the number of calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_refresh_during_backoff_sends_nothing() {
    let server = TestServer::start().await;
    server.set(JWKS, Route::status_only(503));
    let source = RemoteKeySource::builder_for_jwks_url(&server.url(JWKS))
        .unwrap()
        .unknown_kid_cooldown(Duration::from_secs(10))
        .build()
        .unwrap();
    assert!(source.refresh().await.is_err());
    for _ in 0..200 {
        assert!(source.refresh().await.is_err());
    }
    let verifier = verifier_for(source.clone());
    for i in 0..200 {
        let e = verifier
            .verify::<Value>(&junk_token(&format!("k{i}")))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::KeyUnavailable);
    }
    assert_eq!(server.hits(JWKS), 1);
    assert_eq!(source.state(), SourceState::Failing);
}

/// A clone outlives the original: the refresher keeps running (timed
/// refresh without traffic); dropping the last clone stops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_clone_survives_the_original() {
    let issuer = Arc::new(TestIssuer::new(ISS));
    let server = live_server(&issuer, "max-age=0").await;
    let original = RemoteKeySource::builder_for_jwks_url(&server.url(JWKS))
        .unwrap()
        .min_ttl(Duration::from_millis(100))
        .unknown_kid_cooldown(Duration::from_millis(100))
        .build()
        .unwrap();
    original.refresh().await.unwrap();
    let clone = original.clone();
    drop(original);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let during = server.hits(JWKS);
    assert!(
        during >= 3,
        "timed refresh ran with the clone only: {during}"
    );
    assert_eq!(clone.state(), SourceState::Fresh);
    drop(clone);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let after_drop = server.hits(JWKS);
    tokio::time::sleep(Duration::from_millis(500)).await;
    eprintln!(
        "clone: {during} requests in 600 ms; {after_drop} at drop, {} later",
        server.hits(JWKS)
    );
    assert_eq!(server.hits(JWKS), after_drop, "the refresher stopped");
}

/// A refresh() future dropped while its attempt is in flight: the attempt
/// completes; a second refresh() joins or follows rather than duplicating.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_cancelled_refresh_and_lookups_at_every_point() {
    let issuer = Arc::new(TestIssuer::new(ISS));
    let server = TestServer::start().await;
    let live = Arc::clone(&issuer);
    server.set(
        JWKS,
        Route::dynamic(move |_| {
            Route::json(live.jwks())
                .header("Cache-Control", "max-age=3600")
                .delay(Duration::from_millis(300))
        }),
    );
    let source = RemoteKeySource::builder_for_jwks_url(&server.url(JWKS))
        .unwrap()
        .unknown_kid_cooldown(Duration::from_secs(30))
        .build()
        .unwrap();
    let verifier = Arc::new(verifier_for(source.clone()));
    let token = Arc::new(token(&issuer, "key-1"));
    // cancel callers at 0, 1, 5, 50, 150 ms, repeatedly, mixing refresh()
    let started = Instant::now();
    for round in 0..40u64 {
        let ms = [0, 1, 5, 50, 150][(round % 5) as usize];
        let (v, t, s) = (verifier.clone(), token.clone(), source.clone());
        let _ = tokio::time::timeout(Duration::from_millis(ms), async move {
            if round % 2 == 0 {
                let _ = s.refresh().await;
            } else {
                let _ = v.verify::<Value>(&t).await;
            }
        })
        .await;
    }
    let elapsed = started.elapsed();
    eventually("the fetch to land", || source.state() == SourceState::Fresh).await;
    verifier.verify_cached::<Value>(&token).unwrap();
    let hits = server.hits(JWKS);
    // single flight: attempts are sequential (300 ms each); the cancelled
    // refresh() calls each ask for "an attempt that starts after the call",
    // so at most one attempt per 300 ms of the loop, plus one follow-up
    let bound = 2 + (elapsed.as_millis() / 300) as usize;
    eprintln!("40 cancelled callers in {elapsed:?} (refresh and lookups) → {hits} requests (bound {bound})");
    assert!(hits <= bound, "{hits} requests");
}

/// A claim racing with a timed refresh in flight: the claim is served by a
/// follow-up attempt that starts after it, so a key published during the
/// slow timed refresh verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_claim_racing_a_slow_timed_refresh() {
    let issuer = Arc::new(TestIssuer::new(ISS));
    let server = TestServer::start().await;
    let live = Arc::clone(&issuer);
    server.set(
        JWKS,
        Route::dynamic(move |_| {
            Route::json(live.jwks())
                .header("Cache-Control", "max-age=0")
                .delay(Duration::from_millis(300))
        }),
    );
    let source = RemoteKeySource::builder_for_jwks_url(&server.url(JWKS))
        .unwrap()
        .min_ttl(Duration::from_millis(250))
        .unknown_kid_cooldown(Duration::from_millis(100))
        .build()
        .unwrap();
    source.refresh().await.unwrap();
    eventually("the timed refresh to reach the server", || {
        server.hits(JWKS) == 2
    })
    .await;
    issuer.add_key("key-2", "ES256");
    verifier_for(source.clone())
        .verify::<Value>(&token(&issuer, "key-2"))
        .await
        .unwrap();
    assert!(server.hits(JWKS) >= 3);
}

/// A storm of random kids with a 200 ms cooldown stays within one claimed
/// refetch per cooldown (plus the first fetch).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_random_kid_storm_is_bounded_by_the_cooldown() {
    let issuer = Arc::new(TestIssuer::new(ISS));
    let server = live_server(&issuer, "max-age=3600").await;
    let cooldown = Duration::from_millis(200);
    let source = RemoteKeySource::builder_for_jwks_url(&server.url(JWKS))
        .unwrap()
        .unknown_kid_cooldown(cooldown)
        .build()
        .unwrap();
    let verifier = Arc::new(verifier_for(source.clone()));
    let started = Instant::now();
    let lookups = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (verifier, lookups) = (verifier.clone(), lookups.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while started.elapsed() < Duration::from_secs(1) {
                let _ = verifier
                    .verify::<Value>(&junk_token(&format!("r-{t}-{i}")))
                    .await;
                lookups.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let hits = server.hits(JWKS);
    let bound = 2 + (started.elapsed().as_millis() / cooldown.as_millis()) as usize;
    eprintln!(
        "{} random-kid lookups → {hits} requests (bound {bound}); {:?}",
        lookups.load(Ordering::Relaxed),
        source.stats()
    );
    assert!(hits <= bound);
}

/// A failing endpoint (cold start), many tasks, random kids and refresh()
/// calls: requests ≤ elapsed / cooldown + 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_failing_endpoint_bounded_with_mixed_traffic() {
    let server = TestServer::start().await;
    server.set(JWKS, Route::status_only(500));
    let cooldown = Duration::from_millis(150);
    let source = RemoteKeySource::builder_for_jwks_url(&server.url(JWKS))
        .unwrap()
        .unknown_kid_cooldown(cooldown)
        .max_backoff(cooldown)
        .build()
        .unwrap();
    let verifier = Arc::new(verifier_for(source.clone()));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..6 {
        let (verifier, source) = (verifier.clone(), source.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while started.elapsed() < Duration::from_secs(1) {
                if i % 3 == 0 {
                    let _ = source.refresh().await;
                } else {
                    let _ = verifier
                        .verify::<Value>(&junk_token(&format!("r-{t}-{i}")))
                        .await;
                }
                i += 1;
                tokio::task::yield_now().await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let hits = server.hits(JWKS);
    let bound = 1 + (started.elapsed().as_millis() / cooldown.as_millis()) as usize;
    eprintln!("failing endpoint, mixed traffic: {hits} requests (bound {bound})");
    assert!(hits <= bound, "{hits} > {bound}");
}

/// Kid-less token signed by a removed baked key during an outage (Stale):
/// still refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_kid_less_removed_key_during_stale_outage() {
    let issuer = Arc::new(TestIssuer::new(ISS));
    issuer.add_key("key-2", "ES256");
    let baked = StaticKeySource::from_jwks(&issuer.jwks()).unwrap();
    let old = issuer.mint_without_kid("key-1", &issuer.claims("u", AUD));
    issuer.remove_key("key-1");
    let server = live_server(&issuer, "max-age=3600").await;
    let remote = RemoteKeySource::builder_for_jwks_url(&server.url(JWKS))
        .unwrap()
        .unknown_kid_cooldown(Duration::from_millis(50))
        .build()
        .unwrap();
    remote.refresh().await.unwrap();
    server.set(JWKS, Route::status_only(503));
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert!(remote.refresh().await.is_err());
    assert_eq!(remote.state(), SourceState::Stale);
    let verifier = verifier_for(RotatingKeySource::new().then(baked).then(remote.clone()));
    assert!(verifier.verify::<Value>(&old).await.is_err());
    assert!(verifier.verify_cached::<Value>(&old).is_err());
}

/// Extreme settings on a healthy and a failing endpoint: no panic, no busy
/// loop (requests counted): timeout MAX / ZERO, cooldown MAX, zero min_ttl
/// with the default stale_if_error, discovery_ttl ZERO.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_extreme_settings_no_panic_no_busy_loop() {
    let issuer = Arc::new(TestIssuer::new(ISS));
    let server = live_server(&issuer, "max-age=0").await;
    // zero min_ttl, zero cooldown, default stale_if_error: timed refresh at
    // MIN_INTERVAL at most
    let source = RemoteKeySource::builder_for_jwks_url(&server.url(JWKS))
        .unwrap()
        .min_ttl(Duration::ZERO)
        .max_ttl(Duration::ZERO)
        .unknown_kid_cooldown(Duration::ZERO)
        .max_backoff(Duration::ZERO)
        .timeout(Duration::MAX)
        .build()
        .unwrap();
    source.refresh().await.unwrap();
    let verifier = verifier_for(source.clone());
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1000) {
        verifier
            .verify::<Value>(&token(&issuer, "key-1"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let hits = server.hits(JWKS);
    eprintln!("zero ttl/cooldown, known kid, 1 s: {hits} requests");
    assert!(hits <= 13, "{hits}");

    // timeout zero: every request fails, bounded
    let zero = RemoteKeySource::builder_for_jwks_url(&server.url(JWKS))
        .unwrap()
        .timeout(Duration::ZERO)
        .unknown_kid_cooldown(Duration::from_millis(200))
        .build()
        .unwrap();
    let v = verifier_for(zero.clone());
    let started = Instant::now();
    let before = zero.stats().fetches;
    while started.elapsed() < Duration::from_millis(600) {
        let _ = v.verify::<Value>(&token(&issuer, "key-1")).await;
    }
    eprintln!("timeout zero: {:?}, state {:?}", zero.stats(), zero.state());
    assert!(zero.stats().fetches - before <= 4);

    // discovery_ttl zero: every attempt re-reads discovery, still bounded
    let disc = TestServer::start().await;
    let base = disc.base();
    let jwks_url = disc.url(JWKS);
    disc.set(
        "/.well-known/openid-configuration",
        Route::json(serde_json::json!({"issuer": base, "jwks_uri": jwks_url}).to_string()),
    );
    disc.set(JWKS, live_route(&issuer, "max-age=0"));
    let source = RemoteKeySource::builder_for_issuer(&base)
        .discovery_ttl(Duration::ZERO)
        .min_ttl(Duration::ZERO)
        .unknown_kid_cooldown(Duration::ZERO)
        .build()
        .unwrap();
    source.refresh().await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let d = disc.hits("/.well-known/openid-configuration");
    let j = disc.hits(JWKS);
    eprintln!("discovery_ttl 0: {d} discovery + {j} JWKS requests in ~600 ms");
    assert!(d <= 9 && j <= 9, "{d} / {j}");
}

/// After the set was dropped (Failing past the stale limit) the next
/// attempt must not revalidate with the old ETag (a 304 would have nothing
/// to keep): it gets a full 200 and the source is Fresh again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_not_modified_after_the_set_was_dropped() {
    let issuer = Arc::new(TestIssuer::new(ISS));
    let server = TestServer::start().await;
    let good = Route::json(issuer.jwks())
        .header("Cache-Control", "max-age=0")
        .etag("\"v1\"");
    server.set(JWKS, good.clone());
    let source = RemoteKeySource::builder_for_jwks_url(&server.url(JWKS))
        .unwrap()
        .min_ttl(Duration::from_millis(100))
        .stale_if_error(Duration::ZERO)
        .unknown_kid_cooldown(Duration::from_millis(100))
        .max_backoff(Duration::from_millis(100))
        .build()
        .unwrap();
    source.refresh().await.unwrap();
    server.set(JWKS, Route::status_only(500));
    eventually("Failing", || source.state() == SourceState::Failing).await;
    server.set(JWKS, good);
    eventually("Fresh again", || source.state() == SourceState::Fresh).await;
    verifier_for(source.clone())
        .verify::<Value>(&token(&issuer, "key-1"))
        .await
        .unwrap();
    eprintln!(
        "after Failing: {} 304s, {:?}",
        server.not_modified(),
        source.stats()
    );
    assert_eq!(server.not_modified(), 0);
}

/// Redirects: a loopback hop, then a hop to plain http on a non-loopback
/// host (the second hop must be refused, not just the first URL checked);
/// and more than 5 hops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_redirects_checked_hop_by_hop() {
    let issuer = Arc::new(TestIssuer::new(ISS));
    let server = live_server(&issuer, "max-age=3600").await;
    server.set(
        "/a",
        Route::status_only(302).header("Location", &server.url("/b")),
    );
    server.set(
        "/b",
        Route::status_only(307).header("Location", "http://192.0.2.1/jwks"),
    );
    for i in 0..7 {
        server.set(
            &format!("/loop{i}"),
            Route::status_only(302).header("Location", &server.url(&format!("/loop{}", i + 1))),
        );
    }
    server.set("/loop7", live_route(&issuer, "max-age=3600"));
    let build = |path: &str| {
        RemoteKeySource::builder_for_jwks_url(&server.url(path))
            .unwrap()
            .allow_redirects(true)
            .build()
            .unwrap()
    };
    let err = build("/a").refresh().await.unwrap_err();
    assert!(err.message().contains("plain http"), "{err}");
    let err = build("/loop0").refresh().await.unwrap_err();
    eprintln!("too many redirects: {err}");
    assert_eq!(server.hits("/loop7"), 0);
    // discovery with a redirect to plain http (non-loopback) refused too
    server.set(
        "/.well-known/openid-configuration",
        Route::status_only(302).header(
            "Location",
            "http://192.0.2.1/.well-known/openid-configuration",
        ),
    );
    let err = RemoteKeySource::builder_for_issuer(&server.base())
        .allow_redirects(true)
        .build()
        .unwrap()
        .refresh()
        .await
        .unwrap_err();
    eprintln!("discovery redirect: {err}");
    assert_eq!(err.kind(), ErrorKind::KeyUnavailable);
}

/// Discovery failures then recovery; a discovered jwks_uri that is plain
/// http on a non-loopback host is refused without a request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_discovery_failures_and_policy() {
    let issuer = Arc::new(TestIssuer::new(ISS));
    let server = live_server(&issuer, "max-age=3600").await;
    let base = server.base();
    server.set(
        "/.well-known/openid-configuration",
        Route::json(
            serde_json::json!({"issuer": base, "jwks_uri": "http://192.0.2.1/jwks"}).to_string(),
        ),
    );
    let source = RemoteKeySource::builder_for_issuer(&base)
        .unknown_kid_cooldown(Duration::from_millis(100))
        .max_backoff(Duration::from_millis(100))
        .build()
        .unwrap();
    let err = source.refresh().await.unwrap_err();
    eprintln!("discovered plain-http jwks_uri: {err}");
    assert_eq!(err.kind(), ErrorKind::KeyUnavailable);
    // wrong issuer in the document
    server.set(
        "/.well-known/openid-configuration",
        Route::json(
            serde_json::json!({"issuer": "https://evil.test", "jwks_uri": server.url(JWKS)})
                .to_string(),
        ),
    );
    tokio::time::sleep(Duration::from_millis(110)).await;
    assert!(source.refresh().await.is_err());
    // fixed
    server.set(
        "/.well-known/openid-configuration",
        Route::json(serde_json::json!({"issuer": base, "jwks_uri": server.url(JWKS)}).to_string()),
    );
    eventually("recovery", || source.state() == SourceState::Fresh).await;
    assert_eq!(server.hits(JWKS), 1);
}

/// The stale limit passes while the source is Stale and backing off for a
/// long time: lookups get `key_unavailable` at once, without requests and
/// without waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_stale_limit_passing_during_a_long_backoff() {
    let issuer = Arc::new(TestIssuer::new(ISS));
    let server = live_server(&issuer, "max-age=0").await;
    let source = RemoteKeySource::builder_for_jwks_url(&server.url(JWKS))
        .unwrap()
        .min_ttl(Duration::from_millis(100))
        .stale_if_error(Duration::from_millis(200))
        .unknown_kid_cooldown(Duration::from_secs(10)) // backoff floor: 10 s
        .build()
        .unwrap();
    source.refresh().await.unwrap();
    server.set(JWKS, Route::status_only(500));
    // the claim window is open (no claim yet): one unknown kid triggers the
    // refetch that fails → Stale, retry in ≥ 10 s
    let verifier = verifier_for(source.clone());
    let _ = verifier.verify::<Value>(&junk_token("x")).await;
    assert_eq!(source.state(), SourceState::Stale);
    tokio::time::sleep(Duration::from_millis(350)).await; // past the stale limit
    let hits = server.hits(JWKS);
    let mut slow = 0;
    for _ in 0..50 {
        match tokio::time::timeout(
            Duration::from_millis(200),
            verifier.verify::<Value>(&token(&issuer, "key-1")),
        )
        .await
        {
            Ok(r) => assert_eq!(r.unwrap_err().kind(), ErrorKind::KeyUnavailable),
            Err(_) => slow += 1,
        }
    }
    eprintln!(
        "past the stale limit in Stale: {slow}/50 slow, {} new requests",
        server.hits(JWKS) - hits
    );
    assert_eq!(slow, 0);
    assert_eq!(server.hits(JWKS), hits);
}
