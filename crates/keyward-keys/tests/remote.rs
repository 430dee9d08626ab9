//! RemoteKeySource against a real HTTP server on 127.0.0.1 that counts
//! requests and injects faults.

use keyward_core::{ErrorKind, FixedClock, KeySource, Validation, Verifier};
use keyward_keys::RemoteKeySource;
use keyward_testkit::fixtures::{self, token, token_with_kid, AUDIENCE, ISSUER, NOW};
use keyward_testkit::{Route, TestServer};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const JWKS: &str = "/jwks";

fn verifier_for(source: impl KeySource + 'static) -> Verifier {
    Verifier::new(
        source,
        Validation::new()
            .issuer(ISSUER)
            .audience(AUDIENCE)
            .typ("at+jwt"),
    )
    .with_clock(FixedClock(NOW))
}

async fn server_with(jwks: String) -> TestServer {
    let server = TestServer::start().await;
    server.set(
        JWKS,
        Route::json(jwks).header("Cache-Control", "max-age=3600"),
    );
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetches_once_and_serves_from_memory() {
    let server = server_with(fixtures::jwks()).await;
    let source = RemoteKeySource::from_jwks_url(&server.url(JWKS)).unwrap();
    let verifier = verifier_for(source.clone());
    for alg in ["RS256", "ES256", "ES384", "ES512", "EdDSA"] {
        for _ in 0..20 {
            verifier.verify::<Value>(&token(alg)).await.unwrap();
        }
    }
    assert_eq!(server.hits(JWKS), 1);
    assert_eq!(source.stats().fetches, 1);
    // once warm, the synchronous path answers without awaiting
    verifier.verify_cached::<Value>(&token("ES384")).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_unknown_kid_verifications_cause_one_fetch() {
    let server = server_with(fixtures::jwks()).await;
    let source = RemoteKeySource::from_jwks_url(&server.url(JWKS)).unwrap();
    source.refresh().await.unwrap();
    assert_eq!(server.hits(JWKS), 1);
    // make the refetch slow so that all verifications overlap it
    server.set(
        JWKS,
        Route::json(fixtures::jwks()).delay(Duration::from_millis(200)),
    );
    let verifier = Arc::new(verifier_for(source.clone()));
    let started = Instant::now();
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let verifier = verifier.clone();
            tokio::spawn(async move {
                verifier
                    .verify::<Value>(&token_with_kid("rotated-in"))
                    .await
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(
            task.await.unwrap().unwrap_err().kind(),
            ErrorKind::UnknownKey
        );
    }
    eprintln!(
        "1000 unknown-kid verifications: {:?}, stats {:?}",
        started.elapsed(),
        source.stats()
    );
    assert_eq!(server.hits(JWKS), 2, "exactly one refetch");
    assert_eq!(source.stats().unknown_kid_refetches, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_kid_storm_is_rate_limited_and_valid_tokens_keep_verifying() {
    let cooldown = Duration::from_millis(300);
    let server = server_with(fixtures::jwks()).await;
    let source = RemoteKeySource::builder_for_jwks_url(&server.url(JWKS))
        .unwrap()
        .unknown_kid_cooldown(cooldown)
        .build()
        .unwrap();
    source.refresh().await.unwrap();
    let verifier = Arc::new(verifier_for(source.clone()));
    let deadline = Instant::now() + cooldown * 3;
    let storm = {
        let verifier = verifier.clone();
        tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                let kid = format!("random-{n}");
                let err = verifier
                    .verify::<Value>(&token_with_kid(&kid))
                    .await
                    .unwrap_err();
                assert_eq!(err.kind(), ErrorKind::UnknownKey);
                n += 1;
            }
            n
        })
    };
    let valid_ok = Arc::new(AtomicUsize::new(0));
    let mut valid_runs = 0;
    while Instant::now() < deadline {
        verifier.verify::<Value>(&token("ES256")).await.unwrap();
        valid_ok.fetch_add(1, Ordering::SeqCst);
        valid_runs += 1;
        tokio::task::yield_now().await;
    }
    let storm_count = storm.await.unwrap();
    let refetches = server.hits(JWKS) - 1;
    eprintln!(
        "storm: {storm_count} random kids over 3 cooldowns -> {refetches} refetches; {valid_runs} valid verifications alongside; {:?}",
        source.stats()
    );
    assert!(
        storm_count > 100,
        "the storm was too small to mean anything: {storm_count}"
    );
    assert!(refetches <= 4, "{refetches} refetches in 3 cooldowns");
    assert!(refetches >= 1);
    assert_eq!(valid_ok.load(Ordering::SeqCst), valid_runs);
    assert!(source.stats().cooldown_rejections > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_error_then_key_unavailable() {
    let server = server_with(fixtures::jwks()).await;
    let source = RemoteKeySource::builder_for_jwks_url(&server.url(JWKS))
        .unwrap()
        .min_ttl(Duration::from_millis(100))
        .max_ttl(Duration::from_millis(100))
        .unknown_kid_cooldown(Duration::from_millis(50))
        .stale_if_error(Duration::from_millis(800))
        .build()
        .unwrap();
    let verifier = verifier_for(source.clone());
    verifier.verify::<Value>(&token("EdDSA")).await.unwrap();
    server.set(JWKS, Route::status_only(500));
    tokio::time::sleep(Duration::from_millis(150)).await; // past freshness
    let until_stale_limit = Instant::now() + Duration::from_millis(500);
    let mut served = 0;
    while Instant::now() < until_stale_limit {
        verifier.verify::<Value>(&token("EdDSA")).await.unwrap();
        served += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = source.stats();
    eprintln!("endpoint down: {served} verifications served stale; {stats:?}");
    assert!(stats.failures >= 1);
    assert!(stats.stale_serves > 0);
    // The failing endpoint is retried at most once per cooldown (50 ms), not
    // once per verification.
    assert!(
        server.hits(JWKS) < 1 + 1 + 500 / 50 + 2,
        "{} requests",
        server.hits(JWKS)
    );
    tokio::time::sleep(Duration::from_millis(500)).await; // past the stale bound
    let err = verifier.verify::<Value>(&token("EdDSA")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::KeyUnavailable);
    // the endpoint comes back: so do the keys, at the next retry of the
    // backoff (no lookup forces an earlier request)
    server.set(JWKS, Route::json(fixtures::jwks()));
    let deadline = Instant::now() + Duration::from_secs(10);
    let hits_before = server.hits(JWKS);
    let mut refused = 0;
    while verifier.verify::<Value>(&token("EdDSA")).await.is_err() {
        refused += 1;
        assert!(Instant::now() < deadline, "the keys did not come back");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        server.hits(JWKS),
        hits_before + 1,
        "one retry, after {refused} refused lookups"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etag_revalidation_and_cache_control() {
    let server = TestServer::start().await;
    server.set(
        JWKS,
        Route::json(fixtures::jwks())
            .etag("\"v1\"")
            .header("Cache-Control", "max-age=0"),
    );
    let source = RemoteKeySource::builder_for_jwks_url(&server.url(JWKS))
        .unwrap()
        .min_ttl(Duration::from_millis(500))
        .unknown_kid_cooldown(Duration::from_millis(50))
        .build()
        .unwrap();
    let verifier = verifier_for(source.clone());
    verifier.verify::<Value>(&token("ES256")).await.unwrap();
    // the timed refresh (at 80% of 500 ms) revalidates; the next is at 800 ms
    tokio::time::sleep(Duration::from_millis(600)).await;
    verifier.verify::<Value>(&token("ES256")).await.unwrap();
    assert_eq!(server.hits(JWKS), 2);
    assert_eq!(server.not_modified(), 1);
    assert_eq!(source.stats().not_modified, 1);

    // max-age above the maximum is clamped to it
    let server = TestServer::start().await;
    server.set(
        JWKS,
        Route::json(fixtures::jwks()).header("Cache-Control", "public, max-age=86400000"),
    );
    let source = RemoteKeySource::builder_for_jwks_url(&server.url(JWKS))
        .unwrap()
        .min_ttl(Duration::from_millis(10))
        .max_ttl(Duration::from_millis(300))
        .unknown_kid_cooldown(Duration::from_millis(50))
        .build()
        .unwrap();
    let clamped = verifier_for(source);
    clamped.verify::<Value>(&token("ES256")).await.unwrap();
    clamped.verify::<Value>(&token("ES256")).await.unwrap();
    assert_eq!(server.hits(JWKS), 1, "fresh within max-age");
    // refreshed at 80% of the clamped 300 ms, next at 480 ms
    tokio::time::sleep(Duration::from_millis(350)).await;
    clamped.verify::<Value>(&token("ES256")).await.unwrap();
    assert_eq!(server.hits(JWKS), 2, "max-age clamped to max_ttl");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_refresh_before_expiry() {
    let server = server_with(fixtures::jwks()).await;
    server.set(
        JWKS,
        Route::json(fixtures::jwks()).header("Cache-Control", "max-age=1"),
    );
    let source = RemoteKeySource::builder_for_jwks_url(&server.url(JWKS))
        .unwrap()
        .min_ttl(Duration::from_millis(10))
        .max_ttl(Duration::from_millis(300))
        .unknown_kid_cooldown(Duration::from_millis(50))
        .build()
        .unwrap();
    let verifier = verifier_for(source.clone());
    verifier.verify::<Value>(&token("ES256")).await.unwrap();
    // at 80% of the 300 ms lifetime the refresher refreshes in the
    // background; lookups are answered from memory without waiting
    tokio::time::sleep(Duration::from_millis(250)).await;
    // verify_cached cannot await: it succeeding means no request waited
    verifier.verify_cached::<Value>(&token("ES256")).unwrap();
    // the background fetch lands shortly (bounded wait, for loaded machines)
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.hits(JWKS) < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.hits(JWKS), 2, "refreshed in the background");
    // and the refreshed set is fresh: no request waits
    verifier.verify_cached::<Value>(&token("ES256")).unwrap();
}

async fn fetch_error(
    route: Route,
    configure: impl FnOnce(keyward_keys::RemoteKeySourceBuilder) -> keyward_keys::RemoteKeySourceBuilder,
) -> (keyward_core::Error, TestServer, Duration) {
    let server = TestServer::start().await;
    server.set(JWKS, route);
    let source = configure(RemoteKeySource::builder_for_jwks_url(&server.url(JWKS)).unwrap())
        .build()
        .unwrap();
    let started = Instant::now();
    let err = verifier_for(source)
        .verify::<Value>(&token("ES256"))
        .await
        .unwrap_err();
    (err, server, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_are_key_unavailable() {
    let same = |b| b;
    for (name, route) in [
        ("500", Route::status_only(500)),
        ("404", Route::status_only(404)),
        ("garbage", Route::json(b"\x00\xff\xfegarbage".to_vec())),
        ("non-json", Route::json("<html>hello</html>")),
        ("no keys array", Route::json(r#"{"kids":[]}"#)),
        (
            "redirect",
            Route::status_only(302).header("Location", "/elsewhere"),
        ),
    ] {
        let (err, server, _) = fetch_error(route, same).await;
        assert_eq!(err.kind(), ErrorKind::KeyUnavailable, "{name}: {err}");
        assert_eq!(server.hits(JWKS), 1, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_bound_a_hanging_or_trickling_endpoint() {
    let (err, _, elapsed) = fetch_error(
        Route::json(fixtures::jwks()).delay(Duration::from_secs(5)),
        |b| b.timeout(Duration::from_millis(300)),
    )
    .await;
    assert_eq!(err.kind(), ErrorKind::KeyUnavailable);
    assert!(err.message().contains("timed out"), "{err}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");

    let (err, server, elapsed) = fetch_error(
        Route::json(fixtures::jwks()).trickle(Duration::from_millis(20)),
        |b| b.timeout(Duration::from_millis(400)),
    )
    .await;
    assert_eq!(err.kind(), ErrorKind::KeyUnavailable);
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    assert!(
        server.bytes_written() < 100,
        "{} bytes trickled",
        server.bytes_written()
    );
    eprintln!("timeout: hanging endpoint abandoned after {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_body_is_refused_while_streaming() {
    let huge = format!(r#"{{"keys":[],"pad":"{}"}}"#, "a".repeat(10 * 1024 * 1024));
    // Without Content-Length the size is unknown until read: the 1 MiB cap
    // must stop the reading midway and close the connection.
    let (err, server, _) =
        fetch_error(Route::json(huge.clone()).without_content_length(), |b| b).await;
    assert_eq!(err.kind(), ErrorKind::KeyUnavailable);
    assert!(err.message().contains("limit"), "{err}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.aborted_writes(), 1, "the client must stop reading");
    assert!(server.bytes_written() < 10 * 1024 * 1024);
    eprintln!(
        "10 MiB body without Content-Length: server wrote {} bytes (incl. socket buffers) before the client closed",
        server.bytes_written()
    );
    // With a Content-Length over the cap nothing is read at all.
    let (err, server, _) = fetch_error(Route::json(huge), |b| b).await;
    assert!(err.message().contains("limit"), "{err}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.aborted_writes(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_good_and_bad_keys_and_too_many_keys() {
    let mut doc: Value = serde_json::from_str(&fixtures::jwks()).unwrap();
    doc["keys"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"kty":"RSA","kid":"broken","n":"!!","e":"AQAB"}));
    let server = server_with(doc.to_string()).await;
    let source = RemoteKeySource::from_jwks_url(&server.url(JWKS)).unwrap();
    let verifier = verifier_for(source.clone());
    verifier.verify::<Value>(&token("RS256")).await.unwrap();
    assert_eq!(source.cached_key_set().unwrap().skipped().len(), 4);

    let (err, _, _) = fetch_error(Route::json(fixtures::jwks()), |b| b.max_keys(5)).await;
    assert_eq!(err.kind(), ErrorKind::KeyUnavailable);
    assert!(err.message().contains("more than 5 keys"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_added_and_key_removed_at_the_issuer() {
    let server = server_with(fixtures::jwks_with(&["rsa-1", "ec-p256"])).await;
    let source = RemoteKeySource::builder_for_jwks_url(&server.url(JWKS))
        .unwrap()
        .unknown_kid_cooldown(Duration::from_millis(100))
        .build()
        .unwrap();
    let verifier = verifier_for(source.clone());
    verifier.verify::<Value>(&token("ES256")).await.unwrap();
    let err = verifier.verify::<Value>(&token("EdDSA")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownKey);
    // the issuer adds ed-1 and drops ec-p256
    server.set(
        JWKS,
        Route::json(fixtures::jwks_with(&["rsa-1", "ed-1"]))
            .header("Cache-Control", "max-age=3600"),
    );
    tokio::time::sleep(Duration::from_millis(120)).await; // cooldown over
    verifier.verify::<Value>(&token("EdDSA")).await.unwrap();
    assert_eq!(source.stats().unknown_kid_refetches, 2);
    let err = verifier.verify::<Value>(&token("ES256")).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::UnknownKey,
        "removed key must stop verifying"
    );
    assert!(source.disowns("ec-p256"));
    assert!(!source.disowns("ed-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_checks_the_issuer() {
    let server = server_with(fixtures::jwks()).await;
    let issuer = server.base();
    let doc = |iss: &str| format!(r#"{{"issuer":"{iss}","jwks_uri":"{}"}}"#, server.url(JWKS));
    server.set(
        "/.well-known/openid-configuration",
        Route::json(doc(&issuer)),
    );
    let source = RemoteKeySource::from_issuer(&issuer).unwrap();
    verifier_for(source.clone())
        .verify::<Value>(&token("ES256"))
        .await
        .unwrap();
    assert_eq!(source.stats().discovery_fetches, 1);
    assert_eq!(
        source.provider_metadata().unwrap().jwks_uri.as_str(),
        server.url(JWKS)
    );

    server.set(
        "/.well-known/openid-configuration",
        Route::json(doc("https://evil.example")),
    );
    let source = RemoteKeySource::from_issuer(&issuer).unwrap();
    let err = verifier_for(source)
        .verify::<Value>(&token("ES256"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::KeyUnavailable);
    assert!(err.message().contains("evil.example"), "{err}");
}

#[tokio::test]
async fn plain_http_is_refused_except_on_loopback() {
    // a configuration mistake, reported at build time
    let err = RemoteKeySource::from_jwks_url("http://issuer.example/jwks").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfiguration);
    let err = RemoteKeySource::from_issuer("http://issuer.example").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfiguration);
    let err = RemoteKeySource::from_issuer("not a url").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfiguration);
    assert!(RemoteKeySource::from_jwks_url("https://issuer.example/jwks").is_ok());
    assert!(RemoteKeySource::from_jwks_url("http://127.0.0.1:1/jwks").is_ok());
    assert!(
        RemoteKeySource::builder_for_jwks_url("http://issuer.example/jwks")
            .unwrap()
            .allow_http(true)
            .build()
            .is_ok()
    );
}
