//! Against the real oidc-provider with refresh-token rotation and reuse
//! detection: the single-flight client keeps the family alive; the control
//! test, without it, shows the provider revoking the family — so the main
//! test is able to fail.

use keyward_core::ErrorKind;
use keyward_refresh::{ClientAuth, RefreshClient};
use keyward_testkit::oidc::{WEB_CLIENT_ID, WEB_CLIENT_SECRET};
use keyward_testkit::OidcProvider;
use std::sync::Arc;

fn client(issuer: &str) -> RefreshClient {
    RefreshClient::builder()
        .discover(issuer)
        .client_auth(ClientAuth::ClientSecretBasic {
            client_id: WEB_CLIENT_ID.into(),
            client_secret: WEB_CLIENT_SECRET.into(),
        })
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_concurrent_refreshes_keep_the_family_alive() {
    let mut provider = OidcProvider::start().await;
    let refresh_token = Arc::new(provider.refresh_token().await);
    let client = client(&provider.issuer);
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (client, rt) = (client.clone(), refresh_token.clone());
            tokio::spawn(async move { client.refresh(&rt).await })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(
            task.await
                .unwrap()
                .expect("every concurrent refresh succeeds"),
        );
    }
    assert!(
        results.iter().all(|r| *r == results[0]),
        "same new tokens for all 32"
    );
    assert!(results[0].rotated && results[0].id_token.is_some() && results[0].expires_at.is_some());
    eprintln!(
        "32 concurrent refreshes against oidc-provider: {:?}",
        client.stats()
    );
    assert_eq!(client.stats().grants, 1);
    // the family is alive: the rotated token refreshes again
    let next = client
        .refresh(results[0].refresh_token.expose())
        .await
        .expect("family alive");
    assert!(next.rotated);
    assert_eq!(client.stats().grants, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_without_single_flight_the_provider_revokes_the_family() {
    let mut provider = OidcProvider::start().await;
    let refresh_token = Arc::new(provider.refresh_token().await);
    let http = reqwest::Client::new();
    let url = format!("{}/token", provider.issuer);
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (http, url, rt) = (http.clone(), url.clone(), refresh_token.clone());
            tokio::spawn(async move {
                let response = http
                    .post(url)
                    .basic_auth(WEB_CLIENT_ID, Some(WEB_CLIENT_SECRET))
                    .form(&[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", rt.as_str()),
                    ])
                    .send()
                    .await
                    .unwrap();
                let ok = response.status().is_success();
                let body: serde_json::Value =
                    serde_json::from_str(&response.text().await.unwrap()).unwrap();
                (ok, body)
            })
        })
        .collect();
    let mut new_tokens = Vec::new();
    let mut rejected = 0;
    for task in tasks {
        let (ok, body) = task.await.unwrap();
        if ok {
            new_tokens.push(body["refresh_token"].as_str().unwrap().to_owned());
        } else {
            assert_eq!(body["error"], "invalid_grant");
            rejected += 1;
        }
    }
    eprintln!(
        "control: {} of 32 raw refreshes succeeded, {rejected} rejected",
        new_tokens.len()
    );
    assert!(rejected > 0, "the provider must detect the reuse");
    // every token that was handed out belongs to a revoked family now
    let client = client(&provider.issuer);
    for token in &new_tokens {
        let err = client.refresh(token).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidGrant);
    }
}
