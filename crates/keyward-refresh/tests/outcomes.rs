//! The grant outcome model under failure, through the public API: a token
//! endpoint on 127.0.0.1 that rotates with reuse detection and then
//! misbehaves (answers late, resets, 5xx, odd bodies), a caller that gives
//! up, a memo at capacity, a panicking grant, a provider that is down at the
//! first request. Each test counts grants at the provider and reuse
//! detections (revoked families), and ends with the family alive or with
//! exactly one grant at the provider.

use keyward_core::ErrorKind;
use keyward_refresh::{
    GrantOutcome, InProcessCoordinator, RefreshClient, RefreshClientBuilder, RefreshCoordinator,
};
use keyward_testkit::{Mode, TestServer, TokenEndpoint};
use std::sync::Arc;
use std::time::Duration;

async fn provider() -> (TestServer, TokenEndpoint) {
    let server = TestServer::start().await;
    let endpoint = TokenEndpoint::new();
    server.set("/token", endpoint.route());
    (server, endpoint)
}

fn builder(server: &TestServer) -> RefreshClientBuilder {
    RefreshClient::builder()
        .token_endpoint(&server.url("/token"))
        .unwrap()
}

/// Polls `done` every 10 ms, at most 500 times.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

fn in_doubt(outcome: &GrantOutcome) -> bool {
    matches!(outcome, GrantOutcome::InDoubt(_))
}

/// Problem 1: the provider rotates, then answers after the client's grant
/// timeout. The token is in doubt and is not sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_after_the_grant_was_sent_is_in_doubt_and_never_replayed() {
    let (server, endpoint) = provider().await;
    endpoint.set_mode(Mode::RotateThenDelay(Duration::from_millis(800)));
    let client = builder(&server)
        .timeout(Duration::from_millis(300))
        .wait_budget(Duration::from_secs(2))
        .build()
        .unwrap();
    let old = endpoint.new_family();
    let first = client.refresh_outcome(&old).await.unwrap();
    assert!(in_doubt(&first), "{first:?}");
    assert!(!first.may_resend());
    assert_eq!(endpoint.grants(), 1);

    // The endpoint is healthy again; the in-doubt token is still not sent.
    endpoint.set_mode(Mode::Normal);
    for _ in 0..3 {
        let again = client.refresh(&old).await.unwrap_err();
        assert_eq!(again.kind(), ErrorKind::RefreshFailed);
        assert!(again.message().contains("quarantined"), "{again}");
    }
    assert_eq!(endpoint.grants(), 1, "the consumed token was not re-sent");
    assert_eq!(endpoint.reuse_detected(), 0);
    assert!(endpoint.family_alive(&old), "the family was not revoked");
    let stats = client.stats();
    assert_eq!((stats.in_doubt, stats.coordinator.quarantine_hits), (1, 3));
}

/// Wait budget < grant time: the caller gives up, the grant goes on and its
/// tokens answer the next call — nothing is lost, nothing is re-sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_slower_than_the_wait_budget_lands_for_the_next_call() {
    let (server, endpoint) = provider().await;
    endpoint.set_mode(Mode::RotateThenDelay(Duration::from_millis(600)));
    let client = builder(&server)
        .wait_budget(Duration::from_millis(150))
        .build()
        .unwrap();
    let old = endpoint.new_family();
    let gave_up = client.refresh(&old).await.unwrap_err();
    assert_eq!(gave_up.kind(), ErrorKind::RefreshFailed);
    assert!(gave_up.message().contains("wait budget"), "{gave_up}");
    eventually("the grant lands", || client.stats().granted == 1).await;

    endpoint.set_mode(Mode::Normal);
    let tokens = client.refresh(&old).await.expect("answered from the memo");
    assert!(tokens.rotated);
    assert_eq!(endpoint.grants(), 1);
    let stats = client.stats();
    assert_eq!(
        (stats.wait_budget_exceeded, stats.coordinator.memo_hits),
        (1, 1)
    );
    let next = client.refresh(tokens.refresh_token.expose()).await.unwrap();
    assert_eq!(endpoint.grants(), 2);
    assert_eq!(endpoint.reuse_detected(), 0);
    assert!(endpoint.family_alive(next.refresh_token.expose()));
}

/// The caller is cancelled mid-grant (a browser aborts the request): the
/// grant completes on its own task and is remembered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_caller_does_not_lose_the_grant() {
    let (server, endpoint) = provider().await;
    endpoint.set_mode(Mode::RotateThenDelay(Duration::from_millis(300)));
    let client = builder(&server).build().unwrap();
    let old = endpoint.new_family();
    let cancelled = tokio::time::timeout(Duration::from_millis(50), client.refresh(&old)).await;
    assert!(cancelled.is_err(), "the caller was cancelled mid-way");
    eventually("the grant lands", || client.stats().granted == 1).await;
    let tokens = client.refresh(&old).await.unwrap();
    assert_eq!(endpoint.grants(), 1);
    client.refresh(tokens.refresh_token.expose()).await.unwrap();
    assert_eq!(endpoint.reuse_detected(), 0);
}

/// Problem 2: odd-but-valid 2xx bodies are granted; a 2xx without an access
/// token is in doubt and remembered, never retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_but_valid_bodies_are_granted_and_unusable_ones_are_in_doubt() {
    let (server, endpoint) = provider().await;
    let client = builder(&server).build().unwrap();

    endpoint.set_mode(Mode::RotateThenBody(
        r#"{"access_token":"{access}","token_type":"bearer","expires_in":"600","refresh_token":"{refresh}","refresh_expires_in":1800.0}"#,
    ));
    let old = endpoint.new_family();
    let tokens = client.refresh(&old).await.expect("string expires_in");
    assert!(tokens.expires_at.is_some() && tokens.refresh_expires_at.is_some());
    endpoint.set_mode(Mode::RotateThenBody(
        r#"{"access_token":"{access}","token_type":"BEARER","expires_in":599.5,"refresh_token":"{refresh}"}"#,
    ));
    let tokens = client
        .refresh(tokens.refresh_token.expose())
        .await
        .expect("float expires_in, upper-case token_type");
    assert_eq!(endpoint.grants(), 2);

    endpoint.set_mode(Mode::RotateThenBody(
        r#"{"token_type":"Bearer","refresh_token":"{refresh}"}"#,
    ));
    let held = tokens.refresh_token.expose().to_owned();
    let outcome = client.refresh_outcome(&held).await.unwrap();
    assert!(in_doubt(&outcome), "{outcome:?}");
    endpoint.set_mode(Mode::Normal);
    assert!(client.refresh(&held).await.is_err());
    assert_eq!(endpoint.grants(), 3, "the in-doubt token was not re-sent");
    assert_eq!(endpoint.reuse_detected(), 0);
    assert!(endpoint.family_alive(&held));
}

/// A reset after the provider rotated, and a 5xx after it rotated: in doubt,
/// no replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_or_a_5xx_after_rotation_is_in_doubt() {
    let (server, endpoint) = provider().await;
    let client = builder(&server).build().unwrap();
    for mode in [Mode::RotateThenReset, Mode::RotateThenStatus(502)] {
        endpoint.set_mode(mode);
        let old = endpoint.new_family();
        let before = endpoint.grants();
        let outcome = client.refresh_outcome(&old).await.unwrap();
        assert!(in_doubt(&outcome), "{mode:?}: {outcome:?}");
        endpoint.set_mode(Mode::Normal);
        assert!(client.refresh(&old).await.is_err());
        assert_eq!(endpoint.grants(), before + 1, "{mode:?}: not re-sent");
        assert!(endpoint.family_alive(&old), "{mode:?}");
    }
    assert_eq!(endpoint.reuse_detected(), 0);
}

/// The body cap: a body of exactly the cap is read; one byte past is in
/// doubt (the provider processed the grant).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_response_body_cap_at_and_past_the_limit() {
    let (server, endpoint) = provider().await;
    let cap = 1024;
    let client = builder(&server).max_response_bytes(cap).build().unwrap();
    // The minted tokens' lengths are fixed for a family's next grant, so
    // measure one body first and pad the next to exactly the cap.
    let template = r#"{"access_token":"{access}","refresh_token":"{refresh}","pad":"PAD"}"#;
    endpoint.set_mode(Mode::RotateThenBody(template));
    let old = endpoint.new_family();
    let first = client.refresh(&old).await.unwrap();
    let base = template.len() - "{access}".len() - "{refresh}".len() - "PAD".len()
        + first.access_token.expose().len()
        + first.refresh_token.expose().len();

    let padded = |extra: usize| -> &'static str {
        Box::leak(
            template
                .replace("PAD", &"x".repeat(cap - base + extra))
                .into_boxed_str(),
        )
    };
    endpoint.set_mode(Mode::RotateThenBody(padded(0)));
    let at_limit = client
        .refresh_outcome(first.refresh_token.expose())
        .await
        .unwrap();
    let GrantOutcome::Granted(second) = at_limit else {
        panic!("a body of exactly {cap} bytes is read: {at_limit:?}")
    };
    endpoint.set_mode(Mode::RotateThenBody(padded(1)));
    let past = client
        .refresh_outcome(second.refresh_token.expose())
        .await
        .unwrap();
    assert!(in_doubt(&past), "{past:?}");
    assert_eq!(endpoint.grants(), 3);
    assert_eq!(endpoint.reuse_detected(), 0);
}

/// Problem 3: the memo at capacity drops its oldest entries, never the
/// newest. 2000 refreshes into a memo of 1000: late arrivals with the newest
/// 500 tokens send nothing; a late arrival with the oldest one (evicted) is
/// replayed — the documented price of a memo that is too small.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memo_at_capacity_evicts_the_oldest_and_keeps_the_newest() {
    let (server, endpoint) = provider().await;
    let client = builder(&server)
        .late_arrival_capacity(1000)
        .build()
        .unwrap();
    let families: Vec<String> = (0..2000).map(|_| endpoint.new_family()).collect();
    for old in &families {
        client.refresh(old).await.unwrap();
    }
    assert_eq!(endpoint.grants(), 2000);
    assert_eq!(client.stats().coordinator.memo_evictions, 1000);
    for old in &families[1500..] {
        client.refresh(old).await.expect("answered from the memo");
    }
    assert_eq!(endpoint.grants(), 2000, "no late arrival was sent");
    assert_eq!(endpoint.reuse_detected(), 0);
    assert_eq!(client.stats().coordinator.memo_hits, 500);

    let evicted = client.refresh(&families[0]).await.unwrap_err();
    assert_eq!(evicted.kind(), ErrorKind::InvalidGrant);
    assert_eq!(endpoint.reuse_detected(), 1, "only the evicted one replays");
}

/// Problem 6: a non-rotating provider's answers are not memoised, so an
/// explicit refresh reaches the provider; concurrent callers still share one
/// grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_rotating_grants_are_shared_but_not_memoised() {
    let (server, endpoint) = provider().await;
    endpoint.set_mode(Mode::NonRotating);
    let client = builder(&server).build().unwrap();
    let token = endpoint.new_family();
    let a = client.refresh(&token).await.unwrap();
    let b = client.refresh(&token).await.unwrap();
    assert!(!a.rotated);
    assert_ne!(
        a.access_token, b.access_token,
        "the second reached the provider"
    );
    assert_eq!(endpoint.grants(), 2);

    let server_route = endpoint.route().delay(Duration::from_millis(200));
    server.set("/token", server_route);
    let token = Arc::new(token);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (client, token) = (client.clone(), token.clone());
            tokio::spawn(async move { client.refresh(&token).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(
        endpoint.grants(),
        3,
        "8 concurrent callers shared one grant"
    );
    assert!(endpoint.family_alive(&token));
}

/// Problem 10: a grant that panics leaves no flight behind; its token is in
/// doubt (the request may have been written) and the next caller's grant is
/// not run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_grant_is_in_doubt_and_leaves_no_flight() {
    let coordinator = InProcessCoordinator::default();
    let outcome = coordinator
        .coordinate("rt", Box::pin(async { panic!("grant panicked") }))
        .await;
    assert!(in_doubt(&outcome), "{outcome:?}");
    let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = ran.clone();
    let next = coordinator
        .coordinate(
            "rt",
            Box::pin(async move {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
                GrantOutcome::InDoubt(keyward_core::Error::new(ErrorKind::RefreshFailed, "x"))
            }),
        )
        .await;
    assert!(in_doubt(&next));
    assert!(
        !ran.load(std::sync::atomic::Ordering::SeqCst),
        "quarantined"
    );
    let stats = coordinator.stats();
    assert_eq!((stats.in_doubt, stats.quarantine_hits), (1, 1));

    // Another token is unaffected: no stuck flight, no `lost_flight`.
    let other = coordinator
        .coordinate(
            "other",
            Box::pin(async {
                GrantOutcome::NotSent(keyward_core::Error::new(ErrorKind::RefreshFailed, "x"))
            }),
        )
        .await;
    assert!(other.may_resend());
}

/// Cold start with the provider down: not sent, not remembered, so the next
/// request after the provider is back succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_down_at_cold_start_is_not_sent_and_retried() {
    let down = TestServer::start().await;
    let url = down.url("/token");
    drop(down);
    let client = RefreshClient::builder()
        .token_endpoint(&url)
        .unwrap()
        .build()
        .unwrap();
    for _ in 0..2 {
        let outcome = client.refresh_outcome("rt-1").await.unwrap();
        assert!(outcome.may_resend(), "{outcome:?}");
    }
    let stats = client.stats();
    assert_eq!((stats.grants, stats.not_sent, stats.in_doubt), (2, 2, 0));
    assert_eq!(stats.coordinator.quarantine_hits, 0);

    // With discovery of a provider that is down: not sent either.
    let client = RefreshClient::builder().discover(&url).build().unwrap();
    let outcome = client.refresh_outcome("rt-1").await.unwrap();
    assert!(outcome.may_resend(), "{outcome:?}");
}

/// Problem 9: a hanging provider costs each caller the wait budget, not the
/// grant timeout, and only one grant is sent for the token however many
/// callers come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_provider_costs_callers_only_the_wait_budget() {
    let (server, endpoint) = provider().await;
    endpoint.set_mode(Mode::RotateThenDelay(Duration::from_secs(20)));
    let client = builder(&server)
        .wait_budget(Duration::from_millis(200))
        .build()
        .unwrap();
    let old = endpoint.new_family();
    for _ in 0..10 {
        assert!(client.refresh(&old).await.is_err());
    }
    assert_eq!(endpoint.grants(), 1, "one grant for ten callers");
    let stats = client.stats();
    assert_eq!(stats.wait_budget_exceeded, 10);
    assert_eq!(stats.coordinator.joined, 9);
    assert!(endpoint.family_alive(&old));
}
