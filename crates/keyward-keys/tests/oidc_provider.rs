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

/// The documented chain (baked set, then the discovered remote source)
/// through two rotations at the provider: each rotation's kids are unknown
/// to both sets, so each costs one refetch; the baked kids removed at the
/// provider are refused as removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chain_survives_two_rotations() {
    use keyward_keys::{fetch_jwks, RotatingKeySource, StaticKeySource};
    use std::time::Duration;
    let mut provider = OidcProvider::start().await;
    let baked = fetch_jwks(&provider.issuer).await.unwrap().document;
    let remote = RemoteKeySource::builder_for_issuer(&provider.issuer)
        .unknown_kid_cooldown(Duration::from_millis(100))
        .build()
        .unwrap();
    let chain = RotatingKeySource::new()
        .then(StaticKeySource::from_jwks(&baked).unwrap())
        .then(remote.clone());
    let verifier = Verifier::new(
        chain,
        Validation::new()
            .issuer(provider.issuer.clone())
            .audience("https://api.example")
            .typ("at+jwt"),
    );
    let baked_token = provider.access_token("ES256").await;
    verifier
        .verify::<RegisteredClaims>(&baked_token)
        .await
        .unwrap();
    for rotation in 1..=2 {
        tokio::time::sleep(Duration::from_millis(150)).await; // past the claim cooldown
        let before = remote.stats().fetches;
        let new_kids = provider.rotate().await;
        for (alg, kid) in ["RS256", "ES256", "EdDSA"].iter().zip(&new_kids) {
            let token = provider.access_token(alg).await;
            let verified = verifier
                .verify::<RegisteredClaims>(&token)
                .await
                .unwrap_or_else(|e| panic!("rotation {rotation}, {alg}: {e}"));
            assert_eq!(verified.header().kid(), Some(kid.as_str()));
        }
        assert_eq!(
            remote.stats().fetches,
            before + 1,
            "rotation {rotation}: one refetch for its three new kids"
        );
    }
    let err = verifier
        .verify::<RegisteredClaims>(&baked_token)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownKey);
    assert!(err.message().contains("removed"), "{err}");
}
