//! Full verification + typed decode of a realistic access token, per
//! algorithm: keyward (both backends), jsonwebtoken 11 [aws_lc_rs],
//! jwt-simple (pure Rust), and the raw-signature floors; plus keyward's
//! `authenticate` cold and cached. jsonwebtoken [rust_crypto] runs in the
//! `verify_jsonwebtoken_rust_crypto` target (its provider is process-wide).

use criterion::{criterion_group, criterion_main, Criterion};
use keyward::AuthenticateOptions;
use keyward_benches::{
    floor, keyward_authenticator, keyward_verifier, peers, run_ready, workload, Claims,
};
use keyward_core::Backend;
use std::hint::black_box;

fn verify(c: &mut Criterion) {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    let w = workload();
    let kw_aws = keyward_verifier(&w.jwks, Backend::AwsLc);
    let kw_rc = keyward_verifier(&w.jwks, Backend::RustCrypto);
    for case in &w.cases {
        eprintln!("{}: token {} bytes", case.alg, case.token.len());
        let mut g = c.benchmark_group(format!("verify/{}", case.alg));
        let aws = floor::AwsLc::new(case);
        let rc = floor::RustCrypto::new(case);
        let (input, sig) = (&case.signing_input, &case.signature);
        g.bench_function("floor aws-lc-rs", |b| {
            b.iter(|| assert!(aws.verify(black_box(input), black_box(sig))))
        });
        g.bench_function("floor RustCrypto", |b| {
            b.iter(|| assert!(rc.verify(black_box(input), black_box(sig))))
        });
        let token = case.token.as_str();
        g.bench_function("keyward [aws-lc]", |b| {
            b.iter(|| kw_aws.verify_cached::<Claims>(black_box(token)).unwrap())
        });
        g.bench_function("keyward [rust-crypto]", |b| {
            b.iter(|| kw_rc.verify_cached::<Claims>(black_box(token)).unwrap())
        });
        let jwt = peers::JsonWebToken::new(case);
        g.bench_function("jsonwebtoken [aws_lc_rs]", |b| {
            b.iter(|| jwt.verify(black_box(token)))
        });
        let simple = peers::JwtSimple::new(case);
        g.bench_function("jwt-simple [pure-rust]", |b| {
            b.iter(|| simple.verify(black_box(token)))
        });
        g.finish();
    }

    // authenticate end to end (include_user_info: false), aws-lc backend
    let options = AuthenticateOptions {
        include_user_info: false,
    };
    let cold = keyward_authenticator(&w.jwks, false);
    let cached = keyward_authenticator(&w.jwks, true);
    let mut g = c.benchmark_group("authenticate");
    for case in w
        .cases
        .iter()
        .filter(|c| c.alg == "RS256" || c.alg == "ES256")
    {
        let token = case.token.as_str();
        g.bench_function(format!("{} cold (cache miss) [aws-lc]", case.alg), |b| {
            b.iter(|| run_ready(cold.authenticate_token(black_box(token), options)).unwrap())
        });
        run_ready(cached.authenticate_token(token, options)).unwrap();
        g.bench_function(format!("{} verified-token cache hit", case.alg), |b| {
            b.iter(|| run_ready(cached.authenticate_token(black_box(token), options)).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
