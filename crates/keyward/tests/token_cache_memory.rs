//! The verified-token cache is bounded in bytes (hardening issue, item 10).
//!
//! Memory is read from the allocator: this test binary counts every byte
//! allocated and freed. 200,000 distinct valid tokens of 4 KiB and then of
//! 32 KiB go through `authenticate_token`; what stays allocated must fit the
//! cache's byte budget plus a small margin — and must be at least half of it,
//! so that a cache which weighs entries far too heavily (and so holds almost
//! nothing) fails too. Before the byte budget, 10,000 entries of 32 KiB tokens
//! held about 4 GB.
//!
//! Tokens are HS256 (cheap to mint and check) with a large `groups` claim,
//! the shape that makes real tokens big.

use keyward::{AuthenticateOptions, Authenticator};
use keyward_core::Algorithm;
use keyward_testkit::{hs256_jwks, mint_hs256, unix_now};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;
use std::sync::Arc;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Live heap bytes (requested sizes), from the counting allocator.
fn live() -> isize {
    let stats = GLOBAL.stats();
    // stats_alloc counts a realloc's growth in bytes_allocated and its
    // shrinking in bytes_deallocated
    stats.bytes_allocated as isize - stats.bytes_deallocated as isize
}

const SECRET: &[u8] = b"a-32-byte-secret-for-the-hs256-k";
const BUDGET: u64 = 16 * 1024 * 1024;

fn authenticator(budget: u64) -> Authenticator {
    Authenticator::builder()
        .issuer("https://issuer.example")
        .audience("https://api.example")
        .baked_jwks(&hs256_jwks(SECRET))
        .validation(|v| v.algorithms([Algorithm::HS256]))
        .token_cache_bytes(budget)
        .build()
        .unwrap()
}

/// The claims of token `i`, padded with groups to about `token_bytes`.
fn claims(i: usize, token_bytes: usize, now: u64) -> String {
    let payload_bytes = token_bytes * 3 / 4 - 80;
    let mut groups = String::new();
    let mut g = 0;
    while groups.len() < payload_bytes.saturating_sub(260) {
        groups.push_str(&format!("\"group-{g:05}\","));
        g += 1;
    }
    groups.pop();
    format!(
        r#"{{"iss":"https://issuer.example","aud":"https://api.example","sub":"user-{i}","jti":"t-{i}","iat":{now},"exp":{},"scope":"read write","orgs":[{{"id":"o1","slug":"acme"}}],"groups":[{groups}]}}"#,
        now + 3600
    )
}

/// Authenticates `count` distinct tokens of about `token_bytes` and returns
/// the bytes left allocated afterwards (with the authenticator alive).
async fn retained_after(count: usize, token_bytes: usize, budget: u64) -> (isize, usize) {
    let now = unix_now();
    let auth = authenticator(budget);
    let first = mint_hs256(SECRET, &claims(0, token_bytes, now));
    auth.authenticate_token(&first, AuthenticateOptions::default())
        .await
        .unwrap();
    let before = live();
    let template = Arc::new(claims(0, token_bytes, now));
    // two tasks (the machine has two cores), each its own half of the ids
    let workers: Vec<_> = (0..2)
        .map(|worker| {
            let (auth, template) = (auth.clone(), template.clone());
            tokio::spawn(async move {
                for i in (1..count).filter(|i| i % 2 == worker) {
                    // the same shape, a distinct subject and jti
                    let json = template
                        .replacen("\"user-0\"", &format!("\"user-{i}\""), 1)
                        .replacen("\"t-0\"", &format!("\"t-{i}\""), 1);
                    let token = mint_hs256(SECRET, &json);
                    auth.authenticate_token(&token, AuthenticateOptions::default())
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    drop(template);
    let retained = live() - before;
    drop(auth);
    (retained, first.len())
}

/// One test function: the allocator counts the whole process, so nothing
/// else may run beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_is_bounded_in_bytes_and_entries_are_compact() {
    an_entry_costs_about_twice_its_token().await;
    the_cache_stays_within_its_byte_budget().await;
}

async fn the_cache_stays_within_its_byte_budget() {
    let count: usize = std::env::var("KEYWARD_CACHE_MEMORY_TOKENS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    for token_bytes in [4 * 1024, 32 * 1024] {
        let (retained, token_len) = retained_after(count, token_bytes, BUDGET).await;
        let mib = |b: isize| b as f64 / (1024.0 * 1024.0);
        eprintln!(
            "{count} distinct {token_len}-byte tokens: {:.1} MiB retained, budget {:.1} MiB",
            mib(retained),
            mib(BUDGET as isize)
        );
        let margin = (BUDGET / 10) as isize + 2 * 1024 * 1024;
        assert!(
            retained <= BUDGET as isize + margin,
            "{token_len}-byte tokens: {:.1} MiB retained for a {:.1} MiB budget",
            mib(retained),
            mib(BUDGET as isize)
        );
        assert!(
            retained >= BUDGET as isize / 2,
            "{token_len}-byte tokens: only {:.1} MiB retained for a {:.1} MiB budget: \
             entries are weighed far above what they hold",
            mib(retained),
            mib(BUDGET as isize)
        );
    }
}

/// An entry costs about twice its token plus a fixed overhead: the token
/// (the key) and the payload text, not a parsed tree of every claim.
async fn an_entry_costs_about_twice_its_token() {
    for token_bytes in [4 * 1024, 32 * 1024] {
        let count = 200;
        let (retained, token_len) = retained_after(count + 1, token_bytes, u64::MAX / 2).await;
        let per_entry = retained as usize / count;
        eprintln!("{token_len}-byte token: {per_entry} bytes per cache entry");
        assert!(
            per_entry <= 2 * token_len + 2048,
            "{token_len}-byte token: {per_entry} bytes per entry"
        );
    }
}
