//! jsonwebtoken 11 with its rust_crypto provider (process-wide, so in its
//! own bench process), with the RustCrypto floor measured again alongside.

use criterion::{criterion_group, criterion_main, Criterion};
use keyward_benches::{floor, peers, workload};
use std::hint::black_box;

fn verify(c: &mut Criterion) {
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
    let w = workload();
    for case in &w.cases {
        let mut g = c.benchmark_group(format!("verify/{}", case.alg));
        let rc = floor::RustCrypto::new(case);
        let (input, sig) = (&case.signing_input, &case.signature);
        g.bench_function("floor RustCrypto (process 2)", |b| {
            b.iter(|| assert!(rc.verify(black_box(input), black_box(sig))))
        });
        let jwt = peers::JsonWebToken::new(case);
        let token = case.token.as_str();
        g.bench_function("jsonwebtoken [rust_crypto]", |b| {
            b.iter(|| jwt.verify(black_box(token)))
        });
        g.finish();
    }
}

criterion_group!(benches, verify);
criterion_main!(benches);
