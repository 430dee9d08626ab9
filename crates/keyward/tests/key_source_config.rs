//! The key-source issue through `Authenticator`: configuration mistakes fail
//! at `build()` with `invalid_configuration`; the remote source can be tuned
//! and is reachable for its stats and `refresh()`; a key removed at the
//! issuer stops verifying — with or without `kid`, cached or not.

use keyward::{AuthenticateOptions, Authenticator, ErrorKind, RemoteKeySource, SourceState};
use keyward_testkit::{Route, TestIssuer, TestServer};
use std::sync::Arc;
use std::time::Duration;

const AUD: &str = "https://api.example";
const NO_INFO: AuthenticateOptions = AuthenticateOptions {
    include_user_info: false,
};

fn bearer(token: &str) -> http::Request<()> {
    http::Request::builder()
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap()
}

#[test]
fn configuration_mistakes_fail_at_build() {
    let kind = |b: keyward::AuthenticatorBuilder| b.build().unwrap_err().kind();
    let base = || {
        Authenticator::builder()
            .issuer("https://issuer.example")
            .audience(AUD)
    };
    assert_eq!(
        kind(base()),
        ErrorKind::InvalidConfiguration,
        "no key source"
    );
    assert_eq!(
        kind(base().remote_jwks("not a url")),
        ErrorKind::InvalidConfiguration
    );
    assert_eq!(
        kind(base().remote_jwks("http://issuer.example/jwks")),
        ErrorKind::InvalidConfiguration,
        "plain http to a non-loopback host"
    );
    assert_eq!(
        kind(Authenticator::builder().audience(AUD).discovered_jwks()),
        ErrorKind::InvalidConfiguration,
        "discovery without an issuer"
    );
    assert_eq!(
        kind(
            Authenticator::builder()
                .issuer("http://issuer.example")
                .audience(AUD)
                .discovered_jwks()
        ),
        ErrorKind::InvalidConfiguration,
        "an issuer that breaks the https rule"
    );
    assert_eq!(
        kind(base().baked_jwks(r#"{"keys":[]}"#)),
        ErrorKind::InvalidConfiguration,
        "a baked set without a usable key"
    );
    assert_eq!(
        kind(
            base()
                .baked_jwks(&TestIssuer::new("x").jwks())
                .configure_remote(|r| r)
        ),
        ErrorKind::InvalidConfiguration,
        "configure_remote without a remote source"
    );
}

async fn live_server(issuer: &Arc<TestIssuer>) -> TestServer {
    let server = TestServer::start().await;
    let live = Arc::clone(issuer);
    server.set(
        "/jwks",
        Route::dynamic(move |_| Route::json(live.jwks()).header("Cache-Control", "max-age=3600")),
    );
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_remote_source_is_tunable_and_reachable() {
    let issuer = Arc::new(TestIssuer::new("https://issuer.example"));
    let server = live_server(&issuer).await;
    let auth = Authenticator::builder()
        .issuer("https://issuer.example")
        .audience(AUD)
        .remote_jwks(&server.url("/jwks"))
        .configure_remote(|r| r.unknown_kid_cooldown(Duration::from_secs(3600)))
        .build()
        .unwrap();
    let remote = auth.remote_key_source().expect("a remote source").clone();
    remote.refresh().await.unwrap();
    assert_eq!(remote.state(), SourceState::Fresh);
    let token = issuer.mint("key-1", &issuer.claims("u", AUD));
    auth.authenticate(&bearer(&token), NO_INFO).await.unwrap();
    // the tuned cooldown holds: one claim, then unknown kids fail fast
    issuer.add_key("key-2", "ES256");
    let t2 = issuer.mint("key-2", &issuer.claims("u", AUD));
    auth.authenticate(&bearer(&t2), NO_INFO).await.unwrap();
    issuer.add_key("key-3", "ES256");
    let t3 = issuer.mint("key-3", &issuer.claims("u", AUD));
    let err = auth.authenticate(&bearer(&t3), NO_INFO).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnknownKey, "{err}");
    assert_eq!(server.hits("/jwks"), 2);
    assert_eq!(remote.stats().cooldown_rejections, 1);

    // a configured source in the chain, the same handle
    let configured = RemoteKeySource::builder_for_jwks_url(&server.url("/jwks"))
        .unwrap()
        .unknown_kid_cooldown(Duration::from_millis(10))
        .build()
        .unwrap();
    let chained = Authenticator::builder()
        .issuer("https://issuer.example")
        .audience(AUD)
        .baked_then_remote(&issuer.jwks(), configured)
        .build()
        .unwrap();
    assert!(chained.remote_key_source().is_some());
    chained.authenticate(&bearer(&t3), NO_INFO).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_key_stops_verifying_with_and_without_kid_cached_or_not() {
    let issuer = Arc::new(TestIssuer::new("https://issuer.example")); // key-1
    issuer.add_key("key-2", "ES256");
    let baked = issuer.jwks();
    let claims = issuer.claims("u", AUD);
    let with_kid = issuer.mint("key-1", &claims);
    let without_kid = issuer.mint_without_kid("key-1", &claims);
    let server = live_server(&issuer).await;
    let remote = RemoteKeySource::builder_for_jwks_url(&server.url("/jwks"))
        .unwrap()
        .unknown_kid_cooldown(Duration::from_millis(10))
        .build()
        .unwrap();
    let auth = Authenticator::builder()
        .issuer("https://issuer.example")
        .audience(AUD)
        .baked_then_remote(&baked, remote.clone())
        .build()
        .unwrap();
    // both verify and are cached while the issuer publishes key-1
    remote.refresh().await.unwrap();
    auth.authenticate(&bearer(&with_kid), NO_INFO)
        .await
        .unwrap();
    auth.authenticate(&bearer(&without_kid), NO_INFO)
        .await
        .unwrap();
    auth.authenticate(&bearer(&without_kid), NO_INFO)
        .await
        .unwrap();
    // the issuer removes key-1; the remote source learns it
    issuer.remove_key("key-1");
    remote.refresh().await.unwrap();
    for token in [&with_kid, &without_kid] {
        let err = auth
            .authenticate(&bearer(token), NO_INFO)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err.kind(),
                ErrorKind::UnknownKey | ErrorKind::InvalidSignature
            ),
            "{err}"
        );
    }
    // key-2 still verifies from the baked set, without kid too
    let kid_less_2 = issuer.mint_without_kid("key-2", &issuer.claims("v", AUD));
    auth.authenticate(&bearer(&kid_less_2), NO_INFO)
        .await
        .unwrap();
}
