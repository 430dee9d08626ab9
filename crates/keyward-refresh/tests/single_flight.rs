//! RefreshClient against a counting token endpoint on 127.0.0.1 that
//! rotates refresh tokens and revokes the family on reuse.

use keyward_core::ErrorKind;
use keyward_refresh::{ClientAuth, GrantOutcome, RefreshClient};
use keyward_testkit::{Mode, Route, TestServer, TokenEndpoint};
use std::sync::Arc;
use std::time::Duration;

async fn setup(delay: Duration) -> (TestServer, TokenEndpoint, RefreshClient) {
    let server = TestServer::start().await;
    let endpoint = TokenEndpoint::new();
    let route = endpoint.route().delay(delay);
    server.set("/token", route);
    let client = RefreshClient::builder()
        .token_endpoint(&server.url("/token"))
        .unwrap()
        .client_auth(ClientAuth::ClientSecretBasic {
            client_id: "web app".into(),
            client_secret: "s3cr&t".into(),
        })
        .build()
        .unwrap();
    (server, endpoint, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_refreshes_make_one_request() {
    let (_server, endpoint, client) = setup(Duration::from_millis(200)).await;
    let old = Arc::new(endpoint.new_family());
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let (client, old) = (client.clone(), old.clone());
            tokio::spawn(async move { client.refresh(&old).await })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap().unwrap());
    }
    assert_eq!(endpoint.grants(), 1, "one request to the token endpoint");
    assert!(
        results.iter().all(|r| *r == results[0]),
        "all 64 callers get the same TokenSet"
    );
    assert!(results[0].rotated);
    let stats = client.stats();
    eprintln!(
        "64 concurrent refreshes: {} grant request(s); {stats:?}",
        endpoint.grants()
    );
    assert_eq!(stats.grants, 1);
    assert_eq!(stats.coordinator.joined + stats.coordinator.memo_hits, 63);

    // a late arrival with the old cookie: same tokens, no request
    let late = client.refresh(&old).await.unwrap();
    assert_eq!(late, results[0]);
    assert_eq!(endpoint.grants(), 1);
    assert_eq!(
        endpoint.reuse_detected(),
        0,
        "the consumed token was never replayed"
    );

    // the family is alive: the next refresh with the new token works
    let next = client
        .refresh(results[0].refresh_token.expose())
        .await
        .unwrap();
    assert_ne!(next.refresh_token, results[0].refresh_token);
    assert_eq!(endpoint.grants(), 2);
    assert!(endpoint.family_alive(next.refresh_token.expose()));
}

/// `n` concurrent `refresh_outcome` calls with the same token.
async fn concurrent_outcomes(client: &RefreshClient, old: &str, n: usize) -> Vec<GrantOutcome> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (client, old) = (client.clone(), old.to_owned());
            tokio::spawn(async move { client.refresh_outcome(&old).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap().unwrap());
    }
    outcomes
}

/// A 500 came after the request was written: the provider may have processed
/// the grant (rotated the token) before failing. The token is in doubt: one
/// request for all 32 waiters, and no later call sends it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_is_one_request_and_the_token_is_not_sent_again() {
    let (_server, endpoint, client) = setup(Duration::from_millis(200)).await;
    endpoint.set_mode(Mode::Fail);
    let old = endpoint.new_family();
    for outcome in concurrent_outcomes(&client, &old, 32).await {
        assert!(matches!(outcome, GrantOutcome::InDoubt(_)), "{outcome:?}");
        let err = outcome.into_result().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::RefreshFailed);
        assert!(err.message().contains("quarantined"), "{err}");
    }
    assert_eq!(
        endpoint.grants(),
        1,
        "the failure is shared, not retried by each waiter"
    );
    // in doubt is remembered: even once the provider is healthy again, the
    // token is not re-sent (it may have been consumed)
    endpoint.set_mode(Mode::Normal);
    let later = client.refresh(&old).await.unwrap_err();
    assert_eq!(later.kind(), ErrorKind::RefreshFailed);
    assert_eq!(endpoint.grants(), 1, "the quarantined token was not sent");
    let s = client.stats();
    assert_eq!(s.in_doubt, 1);
    assert_eq!(s.coordinator.quarantine_hits, 1);
    assert_eq!(endpoint.reuse_detected(), 0);
}

/// A refusal before processing (`invalid_client`: the provider did not look
/// at the token) is *not sent*: shared by the waiters, then retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_before_processing_is_shared_then_retried() {
    let (_server, endpoint, client) = setup(Duration::from_millis(200)).await;
    endpoint.set_mode(Mode::InvalidClient);
    let old = endpoint.new_family();
    for outcome in concurrent_outcomes(&client, &old, 8).await {
        assert!(matches!(outcome, GrantOutcome::NotSent(_)), "{outcome:?}");
        assert!(outcome.may_resend());
    }
    assert_eq!(endpoint.grants(), 1);
    endpoint.set_mode(Mode::Normal);
    let tokens = client.refresh(&old).await.unwrap();
    assert_eq!(endpoint.grants(), 2);
    assert!(endpoint.family_alive(tokens.refresh_token.expose()));
    assert_eq!(client.stats().not_sent, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_grant_is_classified_and_memoised() {
    let (_server, endpoint, client) = setup(Duration::ZERO).await;
    let err = client.refresh("never-issued").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidGrant);
    assert!(!err.to_string().contains("never-issued"), "{err}");
    client.refresh("never-issued").await.unwrap_err();
    assert_eq!(
        endpoint.grants(),
        1,
        "the answer for a dead token is remembered too"
    );
    assert_eq!(client.stats().invalid_grant, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_memo_a_late_arrival_kills_the_family() {
    // What the memo prevents: with a zero window, a late arrival replays the
    // consumed token, and the provider revokes the whole family.
    let server = TestServer::start().await;
    let endpoint = TokenEndpoint::new();
    server.set("/token", endpoint.route());
    let client = RefreshClient::builder()
        .token_endpoint(&server.url("/token"))
        .unwrap()
        .late_arrival_window(Duration::ZERO)
        .build()
        .unwrap();
    let old = endpoint.new_family();
    let fresh = client.refresh(&old).await.unwrap();
    let err = client.refresh(&old).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidGrant);
    assert_eq!(endpoint.reuse_detected(), 1);
    assert!(
        !endpoint.family_alive(fresh.refresh_token.expose()),
        "the family is revoked"
    );
}

#[tokio::test]
async fn client_authentication_methods_and_extra_parameters() {
    let server = TestServer::start().await;
    let endpoint = TokenEndpoint::new();
    server.set("/token", endpoint.route());
    let build = |auth| {
        RefreshClient::builder()
            .token_endpoint(&server.url("/token"))
            .unwrap()
            .client_auth(auth)
            .extra_param("resource", "https://api.example")
            .build()
            .unwrap()
    };
    let form = |e: &TokenEndpoint| e.last_request().unwrap().form();

    build(ClientAuth::ClientSecretBasic {
        client_id: "web app".into(),
        client_secret: "s3cr&t".into(),
    })
    .refresh(&endpoint.new_family())
    .await
    .unwrap();
    let last = endpoint.last_request().unwrap();
    // RFC 6749 §2.3.1: form-urlencode id and secret, then Basic
    assert_eq!(
        last.header("authorization"),
        Some("Basic d2ViK2FwcDpzM2NyJTI2dA==")
    );
    assert!(form(&endpoint).contains(&("resource".into(), "https://api.example".into())));
    assert!(!form(&endpoint).iter().any(|(k, _)| k == "client_secret"));

    build(ClientAuth::ClientSecretPost {
        client_id: "web".into(),
        client_secret: "s".into(),
    })
    .refresh(&endpoint.new_family())
    .await
    .unwrap();
    assert_eq!(
        endpoint.last_request().unwrap().header("authorization"),
        None
    );
    assert!(form(&endpoint).contains(&("client_secret".into(), "s".into())));

    build(ClientAuth::None {
        client_id: "spa".into(),
    })
    .refresh(&endpoint.new_family())
    .await
    .unwrap();
    assert!(form(&endpoint).contains(&("client_id".into(), "spa".into())));
    assert!(!form(&endpoint).iter().any(|(k, _)| k == "client_secret"));
    assert_eq!(
        form(&endpoint)[0],
        ("grant_type".into(), "refresh_token".into())
    );
}

#[tokio::test]
async fn timeouts_and_unreachable_endpoints_are_transient() {
    let server = TestServer::start().await;
    server.set("/slow", Route::json("{}").delay(Duration::from_secs(3)));
    let client = RefreshClient::builder()
        .token_endpoint(&server.url("/slow"))
        .unwrap()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    assert_eq!(
        client.refresh("rt").await.unwrap_err().kind(),
        ErrorKind::RefreshFailed
    );
    let client = RefreshClient::builder()
        .token_endpoint("http://127.0.0.1:9/token")
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(
        client.refresh("rt").await.unwrap_err().kind(),
        ErrorKind::RefreshFailed
    );
    assert!(RefreshClient::builder()
        .token_endpoint("http://issuer.example/token")
        .unwrap()
        .build()
        .is_err());
    let debug = format!("{client:?}");
    assert!(!debug.contains("rt\""), "{debug}");
}

/// A browser that aborts the request which started a refresh must not cancel
/// the grant: the provider may already have consumed the token, and the other
/// callers would otherwise send it again (and revoke the family).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_the_caller_that_started_a_refresh_does_not_cancel_it() {
    let (_server, endpoint, client) = setup(Duration::from_millis(300)).await;
    let old = Arc::new(endpoint.new_family());
    let first = {
        let (client, old) = (client.clone(), old.clone());
        tokio::spawn(async move { client.refresh(&old).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = {
        let (client, old) = (client.clone(), old.clone());
        tokio::spawn(async move { client.refresh(&old).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    let tokens = second
        .await
        .unwrap()
        .expect("the joined caller gets the grant's tokens");
    assert_eq!(
        endpoint.grants(),
        1,
        "the grant was neither cancelled nor repeated"
    );
    assert_eq!(endpoint.reuse_detected(), 0);
    assert!(endpoint.family_alive(tokens.refresh_token.expose()));
    assert_eq!(client.stats().coordinator.joined, 1);
}
