//! Static and rotating sources: cold start without network, rotation
//! without redeploy, removal, and unknown vs unavailable.

use keyward_core::{ErrorKind, FixedClock, KeySource, Validation, Verifier};
use keyward_keys::{RemoteKeySource, RotatingKeySource, StaticKeySource};
use keyward_testkit::fixtures::{self, token, token_with_kid, AUDIENCE, ISSUER, NOW};
use keyward_testkit::{Route, TestServer};
use serde_json::Value;
use std::time::Duration;

const JWKS: &str = "/jwks";

fn verifier_for(source: impl KeySource + 'static) -> Verifier {
    Verifier::new(
        source,
        Validation::new()
            .issuer(ISSUER)
            .audience(AUDIENCE)
            .typ("at+jwt"),
    )
    .with_clock(FixedClock(NOW))
}

async fn remote(server: &TestServer) -> RemoteKeySource {
    RemoteKeySource::builder_for_jwks_url(&server.url(JWKS))
        .unwrap()
        .unknown_kid_cooldown(Duration::from_millis(50))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_start_with_baked_keys_needs_no_network() {
    let server = TestServer::start().await;
    server.set(JWKS, Route::json(fixtures::jwks()));
    let baked = StaticKeySource::from_jwks(&fixtures::jwks_with(&["rsa-1", "ec-p256"])).unwrap();
    let remote = remote(&server).await;
    let chain = RotatingKeySource::new().then(baked).then(remote.clone());
    let verifier = verifier_for(chain);
    // the very first verification cannot await: it is answered from memory
    verifier.verify_cached::<Value>(&token("RS256")).unwrap();
    for _ in 0..1000 {
        verifier.verify::<Value>(&token("ES256")).await.unwrap();
    }
    verifier.verify_cached::<Value>(&token("RS256")).unwrap();
    assert_eq!(
        remote.stats().waits,
        0,
        "no verification waited for the network"
    );
    // first use started the remote source's refresher, which learns the
    // issuer's set in the background (so that removals are noticed): one
    // request, not one per verification
    assert!(server.hits(JWKS) <= 1, "{} requests", server.hits(JWKS));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_in_key_is_found_remotely_without_redeploy() {
    let server = TestServer::start().await;
    server.set(
        JWKS,
        Route::json(fixtures::jwks_with(&["rsa-1", "ec-p256", "ed-1"])),
    );
    let baked = StaticKeySource::from_jwks(&fixtures::jwks_with(&["rsa-1", "ec-p256"])).unwrap();
    let remote = remote(&server).await;
    let verifier = verifier_for(RotatingKeySource::new().then(baked).then(remote.clone()));
    verifier.verify::<Value>(&token("EdDSA")).await.unwrap();
    assert_eq!(server.hits(JWKS), 1);
    for _ in 0..100 {
        verifier.verify::<Value>(&token("EdDSA")).await.unwrap();
        verifier.verify::<Value>(&token("ES256")).await.unwrap();
    }
    assert_eq!(server.hits(JWKS), 1, "the remote set is cached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_removed_at_the_issuer_stops_verifying_once_the_remote_set_knows() {
    let server = TestServer::start().await;
    // the issuer has already dropped ec-p256, which is still baked
    server.set(JWKS, Route::json(fixtures::jwks_with(&["rsa-1", "ed-1"])));
    let baked = || StaticKeySource::from_jwks(&fixtures::jwks_with(&["rsa-1", "ec-p256"])).unwrap();
    let remote = remote(&server).await;
    let verifier = verifier_for(RotatingKeySource::new().then(baked()).then(remote.clone()));
    // before the remote set is fetched, the baked key still answers (from
    // memory: this call cannot await)
    verifier.verify_cached::<Value>(&token("ES256")).unwrap();
    // once fetched (the refresher started with that first lookup; here we
    // wait for an attempt of our own), its view wins
    remote.refresh().await.unwrap();
    let err = verifier.verify::<Value>(&token("ES256")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownKey);
    assert!(err.message().contains("removed"), "{err}");
    // keys the remote set still has keep verifying from the baked set
    verifier.verify_cached::<Value>(&token("RS256")).unwrap();
    // opting out keeps the baked key
    let lenient = verifier_for(
        RotatingKeySource::new()
            .then(baked())
            .then(remote)
            .honor_removals(false),
    );
    lenient.verify::<Value>(&token("ES256")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_key_versus_key_unavailable() {
    let server = TestServer::start().await;
    server.set(JWKS, Route::json(fixtures::jwks_with(&["rsa-1"])));
    let baked = StaticKeySource::from_jwks(&fixtures::jwks_with(&["ec-p256"])).unwrap();
    let chain = RotatingKeySource::new()
        .then(baked.clone())
        .then(remote(&server).await);
    let err = verifier_for(chain)
        .verify::<Value>(&token_with_kid("nobody"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownKey, "{err}");

    server.set(JWKS, Route::status_only(503));
    let chain = RotatingKeySource::new()
        .then(baked)
        .then(remote(&server).await);
    let verifier = verifier_for(chain);
    let err = verifier
        .verify::<Value>(&token_with_kid("nobody"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::KeyUnavailable, "{err}");
    // the baked key keeps working while the remote is down
    verifier.verify::<Value>(&token("ES256")).await.unwrap();
}

#[test]
fn static_source_from_string_file_and_env() {
    let dir = std::env::temp_dir().join(format!("keyward-static-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("jwks.json");
    std::fs::write(&file, fixtures::jwks()).unwrap();
    let from_file = StaticKeySource::from_file(&file).unwrap();
    assert_eq!(from_file.key_set().len(), 9);
    verifier_for(from_file)
        .verify_cached::<Value>(&token("RS256"))
        .unwrap();

    let var = format!("KEYWARD_TEST_JWKS_{}", std::process::id());
    std::env::set_var(&var, fixtures::jwks_with(&["ed-1"]));
    let from_env = StaticKeySource::from_env(&var).unwrap();
    verifier_for(from_env)
        .verify_cached::<Value>(&token("EdDSA"))
        .unwrap();
    std::env::remove_var(&var);
    let err = StaticKeySource::from_env(&var).unwrap_err();
    assert!(err.message().contains(&var), "{err}");

    // errors say what is wrong, and where
    let err = StaticKeySource::from_file(dir.join("missing.json")).unwrap_err();
    assert!(err.message().contains("missing.json"), "{err}");
    std::fs::write(&file, "{\"keys\": 5}").unwrap();
    let err = StaticKeySource::from_file(&file).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Malformed);
    assert!(err.message().contains("jwks.json"), "{err}");
    let err = StaticKeySource::from_jwks(r#"{"keys":[{"kty":"RSA","kid":"short","n":"AQAB","e":"AQAB"},{"kty":"EC","kid":"bad-ec","crv":"P-256","x":5}]}"#).unwrap_err();
    let message = err.message();
    assert!(
        message.contains("key #0") && message.contains("\"short\"") && message.contains("weak_key"),
        "{message}"
    );
    assert!(
        message.contains("key #1") && message.contains("\"bad-ec\""),
        "{message}"
    );
    let err = StaticKeySource::from_jwks(r#"{"keys":[]}"#).unwrap_err();
    assert!(err.message().contains("empty"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
