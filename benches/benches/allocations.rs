//! Heap allocations per verification (a counting global allocator), keyward
//! against the peers, per algorithm. Not a timing benchmark.
//!
//! `cargo bench -p keyward-benches --bench allocations`

use keyward_benches::{
    keyward_authenticator, keyward_verifier, peers, run_ready, workload, Claims,
};
use keyward_core::Backend;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Allocations and bytes of one call (after a warm-up call).
fn count<T>(mut f: impl FnMut() -> T) -> (usize, usize) {
    drop(f());
    let region = Region::new(GLOBAL);
    let out = f();
    let stats = region.change();
    drop(out);
    (
        stats.allocations + stats.reallocations,
        stats.bytes_allocated,
    )
}

fn main() {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    let w = workload();
    let kw_aws = keyward_verifier(&w.jwks, Backend::AwsLc);
    let kw_rc = keyward_verifier(&w.jwks, Backend::RustCrypto);
    println!("allocations per verification + typed decode (bytes in parentheses)\n");
    println!(
        "{:<6} {:>20} {:>22} {:>26} {:>22}",
        "alg",
        "keyward [aws-lc]",
        "keyward [rust-crypto]",
        "jsonwebtoken [aws_lc_rs]",
        "jwt-simple"
    );
    for case in &w.cases {
        let token = case.token.as_str();
        let jwt = peers::JsonWebToken::new(case);
        let simple = peers::JwtSimple::new(case);
        let a = count(|| kw_aws.verify_cached::<Claims>(token).unwrap());
        let r = count(|| kw_rc.verify_cached::<Claims>(token).unwrap());
        let j = count(|| jwt.verify(token));
        let s = count(|| simple.verify(token));
        let cell = |(n, b): (usize, usize)| format!("{n} ({b} B)");
        println!(
            "{:<6} {:>20} {:>22} {:>26} {:>22}",
            case.alg,
            cell(a),
            cell(r),
            cell(j),
            cell(s)
        );
    }
    let auth = keyward_authenticator(&w.jwks, true);
    let options = keyward::AuthenticateOptions {
        include_user_info: false,
    };
    let token = w.cases[2].token.as_str();
    let hit = count(|| run_ready(auth.authenticate_token(token, options)).unwrap());
    println!(
        "\nkeyward authenticate, verified-token cache hit (ES256): {} allocations ({} B)",
        hit.0, hit.1
    );
}
