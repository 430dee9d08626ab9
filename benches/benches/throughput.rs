//! Throughput with 1 and 2 threads sharing one verifier / authenticator
//! (no lock on the hot path means ~2x). Not a criterion benchmark: each
//! configuration runs for a fixed time and reports verifications/second.
//!
//! `cargo bench -p keyward-benches --bench throughput`
//! (`KEYWARD_BENCH_QUICK=1` for a short smoke run.)

use keyward::AuthenticateOptions;
use keyward_benches::{keyward_authenticator, keyward_verifier, run_ready, workload, Claims};
use keyward_core::Backend;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn per_second(threads: usize, duration: Duration, op: &(dyn Fn() + Sync)) -> f64 {
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    op();
                    n += 1;
                }
                done.fetch_add(n, Ordering::Relaxed);
            });
        }
        std::thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
    });
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let quick = std::env::var_os("KEYWARD_BENCH_QUICK").is_some();
    let duration = if quick {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(4)
    };
    let w = workload();
    let options = AuthenticateOptions {
        include_user_info: false,
    };
    let auth = keyward_authenticator(&w.jwks, true);
    println!(
        "{:<44} {:>14} {:>14} {:>7}",
        "operation", "1 thread/s", "2 threads/s", "ratio"
    );
    for (backend, name) in [
        (Backend::AwsLc, "aws-lc"),
        (Backend::RustCrypto, "rust-crypto"),
    ] {
        let verifier = keyward_verifier(&w.jwks, backend);
        for case in w
            .cases
            .iter()
            .filter(|c| c.alg == "ES256" || c.alg == "RS256")
        {
            let token = case.token.as_str();
            let op = || {
                verifier.verify_cached::<Claims>(token).unwrap();
            };
            let one = per_second(1, duration, &op);
            let two = per_second(2, duration, &op);
            println!(
                "{:<44} {one:>14.0} {two:>14.0} {:>7.2}",
                format!("verify {} [{name}]", case.alg),
                two / one
            );
        }
    }
    let token = w.cases[2].token.as_str();
    run_ready(auth.authenticate_token(token, options)).unwrap();
    let op = || {
        run_ready(auth.authenticate_token(token, options)).unwrap();
    };
    let one = per_second(1, duration, &op);
    let two = per_second(2, duration, &op);
    println!(
        "{:<44} {one:>14.0} {two:>14.0} {:>7.2}",
        "authenticate, verified-token cache hit",
        two / one
    );
}
