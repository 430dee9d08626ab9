//! What a key source adds to a verification: verifying through
//! `StaticKeySource`, a warm `RemoteKeySource` and a `RotatingKeySource`
//! against verifying with the key set directly (same token, same backend).
//!
//! `cargo bench -p keyward-benches --bench key_sources` (add
//! `--no-default-features --features aws-lc` for the aws-lc backend).

use criterion::{criterion_group, criterion_main, Criterion};
use keyward_core::{Backend, FixedClock, KeyQuery, KeySet, KeySource, Validation, Verifier};
use keyward_keys::{RemoteKeySource, RotatingKeySource, StaticKeySource};
use keyward_testkit::fixtures::{self, token, AUDIENCE, ISSUER, NOW};
use keyward_testkit::{Route, TestServer};
use serde_json::Value;
use std::hint::black_box;

fn verifier(source: impl KeySource + 'static) -> Verifier {
    Verifier::new(
        source,
        Validation::new()
            .issuer(ISSUER)
            .audience(AUDIENCE)
            .typ("at+jwt"),
    )
    .with_clock(FixedClock(NOW))
}

fn key_sources(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(TestServer::start());
    server.set(
        "/jwks",
        Route::json(fixtures::jwks()).header("Cache-Control", "max-age=86400"),
    );
    let remote = {
        let _guard = rt.enter();
        RemoteKeySource::from_jwks_url(&server.url("/jwks")).unwrap()
    };
    rt.block_on(remote.refresh()).unwrap();
    let direct = KeySet::from_jwks(&fixtures::jwks()).unwrap();
    let baked = StaticKeySource::from_jwks(&fixtures::jwks()).unwrap();
    let rotating = RotatingKeySource::new()
        .then(StaticKeySource::from_jwks(&fixtures::jwks_with(&["rsa-1"])).unwrap())
        .then(remote.clone());
    let backend = Backend::default().name();

    let candidates: [(&str, Verifier); 4] = [
        ("direct", verifier(direct.clone())),
        ("static", verifier(baked.clone())),
        ("remote-warm", verifier(remote.clone())),
        (
            "rotating(static miss, remote hit)",
            verifier(rotating.clone()),
        ),
    ];
    for alg in ["ES256", "EdDSA"] {
        let token = token(alg);
        let mut group = c.benchmark_group(format!("verify {alg} [{backend}]"));
        for (name, verifier) in &candidates {
            group.bench_function(*name, |b| {
                let _guard = rt.enter();
                b.iter(|| verifier.verify_cached::<Value>(black_box(&token)).unwrap())
            });
        }
        group.finish();
    }

    let query = KeyQuery {
        kid: Some("ec-p256"),
        alg: keyward_core::Algorithm::ES256,
    };
    let mut group = c.benchmark_group("key lookup only (resolve_cached)");
    group.bench_function("static", |b| {
        b.iter(|| baked.resolve_cached(black_box(&query)).unwrap())
    });
    group.bench_function("remote-warm", |b| {
        let _guard = rt.enter();
        b.iter(|| remote.resolve_cached(black_box(&query)).unwrap())
    });
    group.bench_function("rotating", |b| {
        let _guard = rt.enter();
        b.iter(|| rotating.resolve_cached(black_box(&query)).unwrap())
    });
    group.finish();
    drop(server);
}

criterion_group!(benches, key_sources);
criterion_main!(benches);
