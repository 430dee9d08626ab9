//! What cross-replica coordination adds to a refresh: the same refresh
//! against a loopback token endpoint, coordinated in-process only and through
//! a loopback Redis (`RedisCoordinator`), plus a late arrival answered by
//! another replica's sealed outcome in Redis versus by the in-process memo.
//!
//! `cargo bench -p keyward-benches --bench refresh_coordination`
//! (Redis: `$REDIS_URL`, else 127.0.0.1:6379, else a private redis-server).

use criterion::{criterion_group, criterion_main, Criterion};
use keyward::{ClientAuth, RedisCoordinator, RefreshClient};
use keyward_testkit::{shared_redis_url, TestServer, TokenEndpoint};
use std::time::{Duration, Instant};

fn client(server: &TestServer, redis_prefix: Option<&str>) -> RefreshClient {
    let mut builder = RefreshClient::builder()
        .token_endpoint(&server.url("/token"))
        .unwrap()
        .client_auth(ClientAuth::ClientSecretPost {
            client_id: "web".into(),
            client_secret: "secret".into(),
        });
    if let Some(prefix) = redis_prefix {
        builder = builder.coordinator(
            RedisCoordinator::builder(shared_redis_url())
                .key_prefix(prefix)
                .build()
                .unwrap(),
        );
    }
    builder.build().unwrap()
}

fn refresh_coordination(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (server, endpoint) = rt.block_on(async {
        let server = TestServer::start().await;
        let endpoint = TokenEndpoint::new();
        server.set("/token", endpoint.route());
        (server, endpoint)
    });
    let prefix = format!("keyward-bench:{}:", std::process::id());
    let _guard = rt.enter();
    let in_process = client(&server, None);
    let redis = client(&server, Some(&prefix));
    let other_replica = client(&server, Some(&prefix));

    let mut group = c.benchmark_group("refresh (loopback token endpoint)");
    for (name, client) in [
        ("in-process single-flight", &in_process),
        ("Redis-coordinated", &redis),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let token = endpoint.new_family();
                    let start = Instant::now();
                    rt.block_on(client.refresh(&token)).unwrap();
                    total += start.elapsed();
                }
                total
            })
        });
    }
    group.finish();

    // Refresh a new token on `first` (untimed), then time `second` asking
    // for the same token: a late arrival.
    let late_arrival = |first: &RefreshClient, second: &RefreshClient, iters: u64| {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let token = endpoint.new_family();
            rt.block_on(first.refresh(&token)).unwrap();
            let start = Instant::now();
            rt.block_on(second.refresh(&token)).unwrap();
            total += start.elapsed();
        }
        total
    };
    let mut group = c.benchmark_group("late arrival (token refreshed already)");
    group.bench_function("in-process memo hit", |b| {
        b.iter_custom(|iters| late_arrival(&in_process, &in_process, iters))
    });
    group.bench_function("other replica's outcome from Redis", |b| {
        b.iter_custom(|iters| late_arrival(&redis, &other_replica, iters))
    });
    group.finish();
    // the late arrivals measured above really were answered from Redis
    let s = other_replica.stats();
    assert_eq!(
        s.grants, 0,
        "the other replica never reached the token endpoint"
    );
    assert!(s.coordinator.waits_satisfied > 0);
}

criterion_group!(benches, refresh_coordination);
criterion_main!(benches);
