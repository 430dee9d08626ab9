//! The tower layer and axum extractor, served over real HTTP on loopback.
#![cfg(feature = "axum")]

use axum::routing::get;
use axum::Router;
use keyward::axum::{AuthLayer, Authenticated};
use keyward::Authenticator;
use keyward_testkit::{Route, TestIssuer, TestServer};
use serde_json::json;

const AUD: &str = "https://api.example";

async fn me(Authenticated(session): Authenticated) -> String {
    format!(
        "{}|{}",
        session.user_id().unwrap_or("-"),
        session.organizations().len()
    )
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_codes_headers_and_bodies() {
    let issuer = TestIssuer::new("https://issuer.example");
    let auth = Authenticator::builder()
        .issuer("https://issuer.example")
        .audience(AUD)
        .baked_jwks(&issuer.jwks())
        .cookie("kw_at")
        .build()
        .unwrap();
    let app = Router::new()
        .route("/me", get(me))
        .route(
            "/admin",
            get(me).layer(AuthLayer::new(auth.clone()).require_scope("admin")),
        )
        .route(
            "/acme",
            get(me).layer(AuthLayer::new(auth.clone()).require_membership("o1")),
        )
        .layer(AuthLayer::new(auth));
    let base = serve(app).await;
    let client = reqwest::Client::new();

    let mut claims = issuer.claims("user-1", AUD);
    claims["orgs"] = json!([{"id": "o1", "slug": "acme"}]);
    let token = issuer.mint("key-1", &claims);

    // valid: bearer and cookie
    let r = client
        .get(format!("{base}/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "user-1|1");
    let r = client
        .get(format!("{base}/me"))
        .header("cookie", format!("kw_at={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "user-1|1");

    // missing: 401, challenge without error code (RFC 6750 §3.1)
    let r = client.get(format!("{base}/me")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_eq!(r.text().await.unwrap(), r#"{"error":"no_credentials"}"#);

    // invalid: 401 invalid_token, only the kind in the body
    let mut forged = token.clone();
    forged.replace_range(forged.len() - 4.., "AAAA");
    let r = client
        .get(format!("{base}/me"))
        .bearer_auth(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    assert_eq!(r.text().await.unwrap(), r#"{"error":"invalid_signature"}"#);
    let mut expired = issuer.claims("user-1", AUD);
    expired["exp"] = json!(1);
    let r = client
        .get(format!("{base}/me"))
        .bearer_auth(issuer.mint("key-1", &expired))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.text().await.unwrap(), r#"{"error":"expired"}"#);

    // authenticated but lacking what the route requires: 403
    let r = client
        .get(format!("{base}/admin"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer error=\"insufficient_scope\""
    );
    assert_eq!(r.text().await.unwrap(), r#"{"error":"insufficient_scope"}"#);
    let r = client
        .get(format!("{base}/acme"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let outsider = issuer.mint("key-1", &issuer.claims("user-2", AUD));
    let r = client
        .get(format!("{base}/acme"))
        .bearer_auth(&outsider)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.text().await.unwrap(), r#"{"error":"not_a_member"}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_keys_are_503_and_missing_layer_is_500() {
    let jwks_server = TestServer::start().await;
    jwks_server.set("/jwks", Route::status_only(500));
    let issuer = TestIssuer::new("https://issuer.example");
    let auth = Authenticator::builder()
        .issuer("https://issuer.example")
        .audience(AUD)
        .remote_jwks(&jwks_server.url("/jwks"))
        .build()
        .unwrap();
    let app = Router::new()
        .route("/me", get(me))
        .layer(AuthLayer::new(auth))
        .route("/open", get(me));
    let base = serve(app).await;
    let client = reqwest::Client::new();
    let token = issuer.mint("key-1", &issuer.claims("user-1", AUD));
    let r = client
        .get(format!("{base}/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503, "the token is not at fault");
    assert_eq!(r.text().await.unwrap(), r#"{"error":"key_unavailable"}"#);
    let r = client
        .get(format!("{base}/open"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
}

/// Hardening issue, items 5 and 6 through the layer: a `cnf` token on
/// `Authorization: Bearer` is 401 `invalid_token` with a description (and
/// never reaches the handler); membership is by id, so an organisation whose
/// *slug* is the required id does not pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bound_tokens_and_slug_shaped_ids_are_refused() {
    let issuer = TestIssuer::new("https://issuer.example");
    let auth = Authenticator::builder()
        .issuer("https://issuer.example")
        .audience(AUD)
        .baked_jwks(&issuer.jwks())
        .build()
        .unwrap();
    let app = Router::new()
        .route("/me", get(me))
        .route(
            "/o-victim",
            get(me).layer(AuthLayer::new(auth.clone()).require_membership("o-victim")),
        )
        .layer(AuthLayer::new(auth));
    let base = serve(app).await;
    let client = reqwest::Client::new();

    let mut bound = issuer.claims("user-1", AUD);
    bound["cnf"] = json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"});
    let bound = issuer.mint("key-1", &bound);
    for _ in 0..2 {
        // twice: a refused token is never cached
        let r = client
            .get(format!("{base}/me"))
            .bearer_auth(&bound)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(
            challenge.starts_with("Bearer error=\"invalid_token\", error_description=\"")
                && challenge.contains("proof of possession"),
            "{challenge}"
        );
        assert_eq!(
            r.text().await.unwrap(),
            r#"{"error":"sender_constrained_token"}"#
        );
    }

    let mut shadow = issuer.claims("user-1", AUD);
    shadow["orgs"] = json!([{"id": "o-mine", "slug": "o-victim"}]);
    let shadow = issuer.mint("key-1", &shadow);
    let r = client
        .get(format!("{base}/o-victim"))
        .bearer_auth(&shadow)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a slug must not satisfy an id requirement");
    let mut member = issuer.claims("user-2", AUD);
    member["orgs"] = json!([{"id": "o-victim", "slug": "victim"}]);
    let r = client
        .get(format!("{base}/o-victim"))
        .bearer_auth(issuer.mint("key-1", &member))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
