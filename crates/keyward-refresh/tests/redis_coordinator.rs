//! RedisCoordinator against a real Redis on loopback (found or started by
//! `keyward_testkit::shared_redis_url`; the kill tests start a private one)
//! and a counting token endpoint that rotates refresh tokens and revokes the
//! family on reuse. "Replicas" here are separate `RefreshClient`s, each with
//! its own coordinator, so they share nothing but Redis; the test with
//! separate OS processes is `multi_replica.rs`.

use hkdf::Hkdf;
use keyward_core::ErrorKind;
use keyward_refresh::{
    ClientAuth, RedisCoordinator, RedisCoordinatorBuilder, RefreshClient, TokenSet,
    WhenRedisUnavailable,
};
use keyward_testkit::{shared_redis_url, Mode, RedisServer, TestServer, TokenEndpoint};
use redis::AsyncCommands;
use sha2::Sha256;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A key prefix no other test (or earlier run) uses.
fn fresh_prefix() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "keyward-test:{}-{nanos}-{}:",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

async fn token_endpoint(delay: Duration) -> (TestServer, TokenEndpoint) {
    let server = TestServer::start().await;
    let endpoint = TokenEndpoint::new();
    server.set("/token", endpoint.route().delay(delay));
    (server, endpoint)
}

fn replica(
    server: &TestServer,
    redis_url: &str,
    prefix: &str,
    configure: impl FnOnce(RedisCoordinatorBuilder) -> RedisCoordinatorBuilder,
) -> RefreshClient {
    let coordinator = configure(RedisCoordinator::builder(redis_url).key_prefix(prefix))
        .build()
        .unwrap();
    RefreshClient::builder()
        .token_endpoint(&server.url("/token"))
        .unwrap()
        .client_auth(ClientAuth::ClientSecretPost {
            client_id: "web".into(),
            client_secret: "secret".into(),
        })
        .coordinator(coordinator)
        .build()
        .unwrap()
}

/// The documented key names (docs/refresh.md), computed independently.
fn key_name(prefix: &str, refresh_token: &str, suffix: &str) -> String {
    let hk = Hkdf::<Sha256>::new(
        Some(b"keyward-refresh-coordination/v1"),
        refresh_token.as_bytes(),
    );
    let mut id = [0u8; 32];
    hk.expand(b"redis key name", &mut id).unwrap();
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{{{hex}}}:{suffix}")
}

async fn redis_conn(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// `n` concurrent refreshes of `token` on each replica; every result.
async fn storm(
    replicas: &[RefreshClient],
    token: &str,
    n: usize,
) -> Vec<Result<TokenSet, keyward_core::Error>> {
    let token = Arc::new(token.to_owned());
    let tasks: Vec<_> = replicas
        .iter()
        .flat_map(|r| std::iter::repeat_n(r.clone(), n))
        .map(|client| {
            let token = token.clone();
            tokio::spawn(async move { client.refresh(&token).await })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

fn all_identical_ok(results: &[Result<TokenSet, keyward_core::Error>]) -> TokenSet {
    let first = results[0].clone().expect("every refresh succeeds");
    for r in results {
        assert_eq!(r.as_ref().expect("every refresh succeeds"), &first);
    }
    first
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_one_grant_and_late_arrivals_get_its_tokens() {
    let url = shared_redis_url();
    let prefix = fresh_prefix();
    let (server, endpoint) = token_endpoint(Duration::from_millis(200)).await;
    let replicas: Vec<_> = (0..3)
        .map(|_| replica(&server, url, &prefix, |b| b))
        .collect();
    let old = endpoint.new_family();
    let results = storm(&replicas, &old, 8).await;
    let tokens = all_identical_ok(&results);
    assert!(tokens.rotated);
    assert_eq!(endpoint.grants(), 1, "24 callers on 3 replicas: one grant");
    let stats: Vec<_> = replicas.iter().map(|r| r.stats()).collect();
    eprintln!("3 replicas x 8: {stats:#?}");
    assert_eq!(stats.iter().map(|s| s.grants).sum::<u64>(), 1);
    assert_eq!(
        stats.iter().map(|s| s.coordinator.joined).sum::<u64>(),
        21,
        "within each replica, 7 of 8 callers joined the local flight"
    );
    let winners = stats.iter().filter(|s| s.grants == 1).count();
    assert_eq!(winners, 1);
    for s in stats.iter().filter(|s| s.grants == 0) {
        assert_eq!(s.coordinator.waits_satisfied, 1, "{s:?}");
    }

    // a late arrival on a fresh replica: the stored outcome, no request
    let late = replica(&server, url, &prefix, |b| b);
    assert_eq!(late.refresh(&old).await.unwrap(), tokens);
    assert_eq!(endpoint.grants(), 1);
    assert_eq!(endpoint.reuse_detected(), 0);
    assert_eq!(late.stats().coordinator.waits_satisfied, 1);
    // and the family lives on
    assert!(endpoint.family_alive(tokens.refresh_token.expose()));
    let next = late.refresh(tokens.refresh_token.expose()).await.unwrap();
    assert!(next.rotated && next != tokens);
}

/// The lease lives 150 ms; the grant takes 1.2 s. Renewal must keep the lease,
/// or a waiter would take it, find the grant in doubt and end the session
/// (`invalid_grant`) — so this test fails without renewal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_endpoint_slower_than_the_lease_still_gets_one_grant() {
    let url = shared_redis_url();
    let prefix = fresh_prefix();
    let (server, endpoint) = token_endpoint(Duration::from_millis(1200)).await;
    let short_lease = |b: RedisCoordinatorBuilder| {
        b.lease_ttl(Duration::from_millis(150))
            .poll_interval(Duration::from_millis(20))
    };
    let replicas: Vec<_> = (0..2)
        .map(|_| replica(&server, url, &prefix, short_lease))
        .collect();
    let old = endpoint.new_family();
    let results = storm(&replicas, &old, 4).await;
    all_identical_ok(&results);
    assert_eq!(endpoint.grants(), 1);
    assert_eq!(endpoint.reuse_detected(), 0);
    let renewals: u64 = replicas
        .iter()
        .map(|r| r.stats().coordinator.lease_renewals)
        .sum();
    eprintln!("1.2 s grant under a 150 ms lease: {renewals} renewals");
    assert!(
        renewals >= 5,
        "renewed every 50 ms over 1.2 s: {renewals} renewals"
    );
    assert_eq!(
        replicas
            .iter()
            .map(|r| r.stats().coordinator.in_doubt)
            .sum::<u64>(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_holds_only_a_sealed_outcome_that_needs_the_old_token() {
    let url = shared_redis_url();
    let prefix = fresh_prefix();
    let (server, endpoint) = token_endpoint(Duration::ZERO).await;
    let a = replica(&server, url, &prefix, |b| b);
    let old = endpoint.new_family();
    let tokens = a.refresh(&old).await.unwrap();

    let mut conn = redis_conn(url).await;
    let names: Vec<String> = conn.keys(format!("{prefix}*")).await.unwrap();
    let result_key = key_name(&prefix, &old, "result");
    assert_eq!(
        names,
        vec![result_key.clone()],
        "after a refresh only the outcome remains (lease released, in-doubt marker cleared)"
    );
    let stored: Vec<u8> = conn.get(&result_key).await.unwrap();
    assert!(stored.len() > 28, "version, nonce, ciphertext and tag");
    let secrets = [
        old.as_str(),
        tokens.access_token.expose(),
        tokens.refresh_token.expose(),
    ];
    for secret in secrets {
        let needle = secret.as_bytes();
        assert!(
            !stored.windows(needle.len()).any(|w| w == needle),
            "a token appears in Redis in plaintext"
        );
        assert!(!result_key.contains(secret));
    }
    let ttl: i64 = conn.pttl(&result_key).await.unwrap();
    assert!(
        (50_000..=60_000).contains(&ttl),
        "kept for the 60 s window: {ttl}"
    );

    // a record that does not open (tampered) is never trusted, and the token
    // is not sent again either
    let mut tampered = stored.clone();
    *tampered.last_mut().unwrap() ^= 1;
    let _: () = conn.set(&result_key, tampered).await.unwrap();
    let b = replica(&server, url, &prefix, |b| b);
    let err = b.refresh(&old).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RefreshFailed);
    assert!(err.message().contains("cannot be opened"), "{err}");
    assert_eq!(endpoint.grants(), 1);
    assert_eq!(endpoint.reuse_detected(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_is_shared_then_retried() {
    let url = shared_redis_url();
    let prefix = fresh_prefix();
    let (server, endpoint) = token_endpoint(Duration::from_millis(200)).await;
    // refused before processing (the token is not consumed): not sent
    endpoint.set_mode(Mode::InvalidClient);
    let short = |b: RedisCoordinatorBuilder| b.failure_ttl(Duration::from_millis(300));
    let replicas: Vec<_> = (0..2)
        .map(|_| replica(&server, url, &prefix, short))
        .collect();
    let old = endpoint.new_family();
    let results = storm(&replicas, &old, 4).await;
    assert!(results
        .iter()
        .all(|r| r.as_ref().unwrap_err().kind() == ErrorKind::RefreshFailed));
    assert_eq!(
        endpoint.grants(),
        1,
        "the failure is shared, not retried by each"
    );
    // not memoised for the late-arrival window: after the failure TTL a new
    // call tries again, and succeeds
    endpoint.set_mode(Mode::Normal);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let tokens = replicas[1].refresh(&old).await.unwrap();
    assert!(tokens.rotated);
    assert_eq!(endpoint.grants(), 2);
}

/// A winner that stops with its grant on the wire: the token may be consumed.
/// The others must not replay it: it is in doubt (`refresh_failed`), for the
/// quarantine, not just for the late-arrival window.
/// (Without the sent marker, B would take the lapsed lease and replay the
/// token, and the provider would revoke the family: this test fails then.)
#[test]
fn a_replica_that_dies_after_sending_leaves_the_token_in_doubt_and_it_is_not_replayed() {
    let url = shared_redis_url();
    let prefix = fresh_prefix();
    let main = tokio::runtime::Runtime::new().unwrap();
    let (server, endpoint) = main.block_on(token_endpoint(Duration::from_millis(1500)));
    let old = endpoint.new_family();
    let window = Duration::from_millis(400);
    let lease = move |b: RedisCoordinatorBuilder| {
        b.lease_ttl(Duration::from_millis(200))
            .poll_interval(Duration::from_millis(20))
            .late_arrival_window(window)
    };

    // Replica A runs on its own runtime; shutting that runtime down is its death.
    let doomed = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let a = {
        let _enter = doomed.enter();
        replica(&server, url, &prefix, lease)
    };
    let old_a = old.clone();
    doomed.spawn(async move { a.refresh(&old_a).await });
    let started = Instant::now();
    while server.hits("/token") == 0 {
        assert!(started.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(5));
    }
    doomed.shutdown_background(); // A dies with its grant on the wire

    main.block_on(async {
        let b = replica(&server, url, &prefix, lease);
        let err = b.refresh(&old).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::RefreshFailed, "{err}");
        assert!(err.message().contains("stopped before recording"), "{err}");
        assert!(err.message().contains("quarantined"), "{err}");
        let s = b.stats();
        eprintln!("winner died after sending: {s:?}");
        assert_eq!(s.coordinator.in_doubt, 1);
        assert_eq!(s.grants, 0, "B did not send the token");
        // everyone else gets the same answer from Redis
        let c = replica(&server, url, &prefix, lease);
        assert_eq!(
            c.refresh(&old).await.unwrap_err().kind(),
            ErrorKind::RefreshFailed
        );
        assert_eq!(c.stats().grants, 0);
        // the provider saw one presentation of the token, no reuse
        tokio::time::sleep(Duration::from_millis(1700)).await;
        assert_eq!(endpoint.grants(), 1);
        assert_eq!(endpoint.reuse_detected(), 0);
        // well past 1.5× the late-arrival window (and A's 1.5 s grant), a new
        // replica still finds the token in doubt: the marker and the outcome
        // live for the quarantine, not the window
        assert!(started.elapsed() > window * 3 / 2);
        let d = replica(&server, url, &prefix, lease);
        let err = d.refresh(&old).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::RefreshFailed, "{err}");
        assert_eq!(d.stats().grants, 0);
        assert_eq!(endpoint.grants(), 1);
        assert_eq!(endpoint.reuse_detected(), 0);
        assert!(endpoint.family_alive(&old), "the family was never revoked");
    });
}

/// Redis dies while replica A's grant is in flight and replica B waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_refresh_falls_back_by_default() {
    let mut redis = RedisServer::start();
    let prefix = fresh_prefix();
    let (server, endpoint) = token_endpoint(Duration::from_millis(800)).await;
    let config = |b: RedisCoordinatorBuilder| {
        b.command_timeout(Duration::from_millis(300))
            .wait_timeout(Duration::from_secs(3))
            .poll_interval(Duration::from_millis(20))
    };
    let a = replica(&server, &redis.url, &prefix, config);
    let b = replica(&server, &redis.url, &prefix, config);
    let old = Arc::new(endpoint.new_family());
    let in_flight = {
        let (a, old) = (a.clone(), old.clone());
        tokio::spawn(async move { a.refresh(&old).await })
    };
    while server.hits("/token") == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let waiting = {
        let (b, old) = (b.clone(), old.clone());
        tokio::spawn(async move { b.refresh(&old).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let killed_at = Instant::now();
    redis.kill();

    // A's grant completes; it cannot store the outcome, and says so in logs
    let tokens = in_flight
        .await
        .unwrap()
        .expect("the winner keeps its tokens");
    // B was waiting on another replica's grant: it never sends the token
    let err = waiting.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RefreshFailed, "{err}");
    assert!(killed_at.elapsed() < Duration::from_secs(10), "no hang");
    assert_eq!(endpoint.grants(), 1);
    assert_eq!(endpoint.reuse_detected(), 0);

    // a new refresh while Redis is down: in-process single-flight, a warning
    let before = Instant::now();
    let next = storm(std::slice::from_ref(&b), tokens.refresh_token.expose(), 8).await;
    all_identical_ok(&next);
    assert!(before.elapsed() < Duration::from_secs(10), "no hang");
    let s = b.stats();
    eprintln!("Redis killed, default policy: {s:?}");
    assert_eq!(
        s.coordinator.fallbacks, 1,
        "8 local callers, one fallback grant"
    );
    assert!(s.coordinator.redis_errors >= 2);
    assert_eq!(endpoint.grants(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_with_the_fail_policy_fails_the_refresh_until_it_is_back() {
    let mut redis = RedisServer::start();
    let prefix = fresh_prefix();
    let (server, endpoint) = token_endpoint(Duration::ZERO).await;
    let a = replica(&server, &redis.url, &prefix, |b| {
        b.command_timeout(Duration::from_millis(300))
            .when_unavailable(WhenRedisUnavailable::Fail)
    });
    let first = a.refresh(&endpoint.new_family()).await.unwrap();
    redis.kill();
    let before = Instant::now();
    let err = a.refresh(first.refresh_token.expose()).await.unwrap_err();
    assert!(before.elapsed() < Duration::from_secs(10), "no hang");
    assert_eq!(err.kind(), ErrorKind::RefreshFailed);
    assert!(err.message().contains("Redis is unavailable"), "{err}");
    assert_eq!(endpoint.grants(), 1, "nothing sent without coordination");
    assert_eq!(a.stats().coordinator.fallbacks, 0);

    // Redis comes back (empty): the same coordinator reconnects by itself
    redis.restart();
    let again = a.refresh(first.refresh_token.expose()).await.unwrap();
    assert!(again.rotated);
    assert_eq!(a.stats().coordinator.lease_wins, 2, "coordinated again");
    assert_eq!(endpoint.grants(), 2);
}

/// `build()` outside any Tokio runtime (a `main` that builds its clients
/// before it starts the runtime): no panic, the connection is made on first
/// use, and coordination works — 8 concurrent callers on each of two such
/// replicas, 1 grant.
#[test]
fn a_coordinator_built_outside_a_runtime_connects_on_first_use() {
    let url = shared_redis_url();
    let prefix = fresh_prefix();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (server, endpoint) = runtime.block_on(token_endpoint(Duration::from_millis(300)));
    // Built here, on a thread with no runtime.
    let replicas = [
        replica(&server, url, &prefix, |b| b),
        replica(&server, url, &prefix, |b| b),
    ];
    let old = Arc::new(endpoint.new_family());
    let results: Vec<TokenSet> = runtime.block_on(async {
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let (client, old) = (replicas[i % 2].clone(), old.clone());
                tokio::spawn(async move { client.refresh(&old).await })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap().unwrap());
        }
        results
    });
    assert_eq!(endpoint.grants(), 1);
    assert!(results.iter().all(|r| *r == results[0]));
    assert_eq!(endpoint.reuse_detected(), 0);
    assert!(endpoint.family_alive(results[0].refresh_token.expose()));
}
