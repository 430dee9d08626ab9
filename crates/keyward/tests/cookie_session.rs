//! Cookie sessions that survive refresh-token rotation: the axum layer over
//! a real token endpoint on 127.0.0.1 that rotates refresh tokens and
//! revokes the family on reuse.
#![cfg(feature = "axum")]

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use http::{Method, Request, Version};
use http_body_util::BodyExt;
use keyward::axum::{Authenticated, CookieConfig, CookieSessionLayer, RefreshSession};
use keyward::{Authenticator, RefreshClient};
use keyward_testkit::{unix_now, Mode, TestIssuer, TestServer, TokenEndpoint};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

const AUD: &str = "https://api.example";

struct Setup {
    _server: TestServer,
    issuer: Arc<TestIssuer>,
    endpoint: TokenEndpoint,
    app: Router,
}

async fn who(Authenticated(session): Authenticated) -> String {
    session.user_id().unwrap_or("-").to_owned()
}

async fn mutate(Authenticated(_session): Authenticated) -> Response {
    let mut response = "created".into_response();
    response.extensions_mut().insert(RefreshSession);
    response
}

async fn setup() -> Setup {
    let server = TestServer::start().await;
    let issuer = Arc::new(TestIssuer::new("https://issuer.example"));
    let endpoint = TokenEndpoint::new().with_issuer(issuer.clone(), AUD, 600);
    server.set("/token", endpoint.route().delay(Duration::from_millis(150)));
    let auth = Authenticator::builder()
        .issuer("https://issuer.example")
        .audience(AUD)
        .baked_jwks(&issuer.jwks())
        .build()
        .unwrap();
    let refresh = RefreshClient::builder()
        .token_endpoint(&server.url("/token"))
        .unwrap()
        .build()
        .unwrap();
    let app = Router::new()
        .route("/", any(who))
        .route("/mutate", any(mutate))
        .layer(CookieSessionLayer::new(auth, refresh).cookies(CookieConfig::default()));
    Setup {
        _server: server,
        issuer,
        endpoint,
        app,
    }
}

impl Setup {
    /// An access token for `user-1` expiring `seconds` from now.
    fn access(&self, seconds: i64) -> String {
        let mut claims = self.issuer.claims("user-1", AUD);
        claims["exp"] = json!(unix_now() as i64 + seconds);
        claims["nbf"] = json!(unix_now() - 3600);
        self.issuer.mint("key-1", &claims)
    }

    async fn call(&self, request: Request<Body>) -> (u16, Vec<String>, String) {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let cookies = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        let body = String::from_utf8(
            response
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
        )
        .unwrap();
        (status, cookies, body)
    }
}

fn request(path: &str, access: &str, refresh: &str) -> http::request::Builder {
    Request::builder().uri(path).header(
        "cookie",
        format!("kw_access={access}; kw_refresh={refresh}"),
    )
}

fn get(path: &str, access: &str, refresh: &str) -> Request<Body> {
    request(path, access, refresh).body(Body::empty()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_near_expiry_requests_refresh_once_and_all_get_the_same_cookies() {
    let s = Arc::new(setup().await);
    let (access, refresh) = (s.access(10), s.endpoint.new_family()); // 10 s < 30 s skew
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (s, access, refresh) = (s.clone(), access.clone(), refresh.clone());
            tokio::spawn(async move { s.call(get("/", &access, &refresh)).await })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.push(task.await.unwrap());
    }
    assert_eq!(
        s.endpoint.grants(),
        1,
        "one refresh for 16 concurrent requests"
    );
    assert_eq!(s.endpoint.reuse_detected(), 0);
    for (status, cookies, body) in &all {
        assert_eq!(*status, 200);
        assert_eq!(
            cookies, &all[0].1,
            "every response sets the same new cookies"
        );
        assert!(
            body.starts_with("user-"),
            "served with the refreshed session: {body}"
        );
    }
    let cookies = &all[0].1;
    assert_eq!(cookies.len(), 2);
    assert!(
        cookies[0].starts_with("kw_access=ey")
            && cookies[0].contains("HttpOnly; SameSite=Lax; Secure")
    );
    assert!(cookies[0].contains("Max-Age=") && cookies[0].contains("Path=/"));
    assert!(cookies[1].starts_with("kw_refresh=rt-"));
    eprintln!(
        "16 concurrent near-expiry requests: {} grant(s)",
        s.endpoint.grants()
    );

    // a late request with the old cookies gets the same new cookies, no grant
    let (status, late, _) = s.call(get("/", &access, &refresh)).await;
    assert_eq!((status, &late), (200, cookies));
    assert_eq!(s.endpoint.grants(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_never_refresh() {
    let s = setup().await;
    let (access, refresh) = (s.access(10), s.endpoint.new_family());
    let ws11 = request("/", &access, &refresh)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .body(Body::empty())
        .unwrap();
    let (status, cookies, _) = s.call(ws11).await;
    assert_eq!(status, 200);
    assert!(cookies.is_empty());
    let ws2 = request("/", &access, &refresh)
        .method(Method::CONNECT)
        .version(Version::HTTP_2)
        .body(Body::empty())
        .unwrap();
    let (status, cookies, _) = s.call(ws2).await;
    assert_eq!(status, 200);
    assert!(cookies.is_empty());
    assert_eq!(s.endpoint.grants(), 0);
    // with an expired access token an upgrade is refused, still no refresh
    let expired = s.access(-5);
    let ws = request("/", &expired, &refresh)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .body(Body::empty())
        .unwrap();
    let (status, cookies, _) = s.call(ws).await;
    assert_eq!((status, cookies.len()), (401, 0));
    assert_eq!(s.endpoint.grants(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_down_while_the_access_token_is_valid_still_serves() {
    let s = setup().await;
    s.endpoint.set_mode(Mode::Fail);
    let (status, cookies, body) = s
        .call(get("/", &s.access(10), &s.endpoint.new_family()))
        .await;
    assert_eq!((status, body.as_str()), (200, "user-1"));
    assert!(cookies.is_empty());
    assert_eq!(s.endpoint.grants(), 1);
    // once the access token has expired it cannot be served: 503, retry later
    let (status, cookies, body) = s
        .call(get("/", &s.access(-5), &s.endpoint.new_family()))
        .await;
    assert_eq!(
        (status, body.as_str()),
        (503, r#"{"error":"refresh_failed"}"#)
    );
    assert!(
        cookies.is_empty(),
        "the session may be fine: keep the cookies"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_grant_is_401_and_clears_the_cookies() {
    let s = setup().await;
    for access in [s.access(-5), s.access(10)] {
        let (status, cookies, body) = s.call(get("/", &access, "rt-never-issued")).await;
        assert_eq!(
            (status, body.as_str()),
            (401, r#"{"error":"invalid_grant"}"#)
        );
        assert_eq!(cookies.len(), 2);
        assert!(
            cookies.iter().all(|c| c.contains("=; Max-Age=0")),
            "{cookies:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_access_is_refreshed_first_and_valid_access_is_left_alone() {
    let s = setup().await;
    let (status, cookies, body) = s
        .call(get("/", &s.access(-5), &s.endpoint.new_family()))
        .await;
    assert_eq!(status, 200);
    assert_eq!(cookies.len(), 2);
    assert!(body.starts_with("user-"));
    let (status, cookies, body) = s
        .call(get("/", &s.access(3000), &s.endpoint.new_family()))
        .await;
    assert_eq!((status, cookies.len(), body.as_str()), (200, 0, "user-1"));
    assert_eq!(s.endpoint.grants(), 1);
    let no_cookies = Request::builder().uri("/").body(Body::empty()).unwrap();
    let (status, _, body) = s.call(no_cookies).await;
    assert_eq!(
        (status, body.as_str()),
        (401, r#"{"error":"no_credentials"}"#)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_can_ask_for_fresh_claims() {
    let s = setup().await;
    let (status, cookies, body) = s
        .call(get("/mutate", &s.access(3000), &s.endpoint.new_family()))
        .await;
    assert_eq!((status, body.as_str()), (200, "created"));
    assert_eq!(s.endpoint.grants(), 1, "refreshed on the handler's request");
    assert_eq!(cookies.len(), 2);
    assert!(cookies[0].starts_with("kw_access=ey"));
}
