//! End to end against the real OpenID provider (npm `oidc-provider`) on
//! loopback: discovery, its RS256 / ES256 / EdDSA access tokens (RFC 9068
//! `at+jwt`), then key rotation at the provider without restarting the
//! client.

use keyward_core::{ErrorKind, RegisteredClaims, Validation, Verifier};
use keyward_keys::RemoteKeySource;
use keyward_testkit::OidcProvider;
use std::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_verify_and_survive_rotation() {
    let mut provider = OidcProvider::start().await;
    let source = RemoteKeySource::from_issuer(&provider.issuer).unwrap();
    let verifier = Verifier::new(
        source.clone(),
        Validation::new()
            .issuer(provider.issuer.clone())
            .audience("https://api.example")
            .typ("at+jwt")
            .require_sub(true)
            .client_id("keyward-test"),
    );
    let mut old_tokens = Vec::new();
    for (alg, kid) in ["RS256", "ES256", "EdDSA"]
        .iter()
        .zip(provider.kids.clone())
    {
        let token = provider.access_token(alg).await;
        let t = Instant::now();
        let verified = verifier.verify::<RegisteredClaims>(&token).await.unwrap();
        eprintln!("{alg}: first verification {:?}", t.elapsed());
        assert_eq!(verified.header().alg().as_str(), *alg);
        assert_eq!(verified.header().kid(), Some(kid.as_str()));
        assert_eq!(verified.claims().client_id.as_deref(), Some("keyward-test"));
        old_tokens.push(token);
    }
    let stats = source.stats();
    assert_eq!(
        (stats.discovery_fetches, stats.fetches),
        (1, 1),
        "{stats:?}"
    );

    // The provider rotates every key; the client keeps running.
    let new_kids = provider.rotate().await;
    for (alg, kid) in ["RS256", "ES256", "EdDSA"].iter().zip(&new_kids) {
        let token = provider.access_token(alg).await;
        let verified = verifier.verify::<RegisteredClaims>(&token).await.unwrap();
        assert_eq!(verified.header().kid(), Some(kid.as_str()));
    }
    let stats = source.stats();
    eprintln!("after rotation: {stats:?}");
    assert_eq!(stats.fetches, 2, "one refetch for the new kids: {stats:?}");
    assert_eq!(stats.unknown_kid_refetches, 1);
    // tokens signed by the removed keys no longer verify
    for token in &old_tokens {
        let err = verifier
            .verify::<RegisteredClaims>(token)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnknownKey);
    }
}
