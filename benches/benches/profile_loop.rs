//! A loop for profilers (callgrind, perf): verifies one token many times.
//! Configured by environment (so that `cargo bench` arguments meant for
//! criterion do not reach it): `KEYWARD_PROFILE_ALG` (default HS256),
//! `KEYWARD_PROFILE_N` (default 1000), `KEYWARD_PROFILE_BACKEND`
//! (`aws-lc` or `rust-crypto`). For example:
//!
//! ```sh
//! cargo bench -p keyward-benches --bench profile_loop --no-run
//! KEYWARD_PROFILE_N=1000 valgrind --tool=callgrind --toggle-collect='*verify_once*' \
//!     target/release/deps/profile_loop-*[!.d]
//! ```
use keyward_benches::{keyward_verifier, workload, Claims};
use keyward_core::Backend;

fn main() {
    let env = |name: &str| std::env::var(name).ok();
    let alg = env("KEYWARD_PROFILE_ALG").unwrap_or_else(|| "HS256".into());
    let n: usize = env("KEYWARD_PROFILE_N")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let backend = match env("KEYWARD_PROFILE_BACKEND").as_deref() {
        Some("rust-crypto") => Backend::RustCrypto,
        _ => Backend::AwsLc,
    };
    let w = workload();
    let verifier = keyward_verifier(&w.jwks, backend);
    let case = w
        .cases
        .iter()
        .find(|c| c.alg == alg)
        .expect("KEYWARD_PROFILE_ALG: RS256, PS256, ES256, EdDSA or HS256");
    for _ in 0..n {
        verify_once(&verifier, &case.token);
    }
}

/// Not inlined, so profilers can collect exactly this (callgrind
/// `--toggle-collect='*verify_once*'`).
#[inline(never)]
fn verify_once(verifier: &keyward_core::Verifier, token: &str) {
    std::hint::black_box(
        verifier
            .verify_cached::<Claims>(std::hint::black_box(token))
            .unwrap(),
    );
}
