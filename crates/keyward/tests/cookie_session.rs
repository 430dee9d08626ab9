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
use keyward::axum::SameSite;
use keyward::axum::{Authenticated, CookieConfig, CookieSessionLayer, RefreshSession};
use keyward::{Authenticator, ErrorKind, RefreshClient, RefreshClientBuilder, TokenSet};
use keyward_testkit::{unix_now, Mode, TestIssuer, TestServer, TokenEndpoint};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

const AUD: &str = "https://api.example";
/// Seconds from now of an access token the verifier no longer accepts (its
/// leeway is 60 s).
const EXPIRED: i64 = -120;

struct Setup {
    _server: TestServer,
    issuer: Arc<TestIssuer>,
    endpoint: TokenEndpoint,
    refresh: RefreshClient,
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
    setup_with(|b| b).await
}

async fn setup_with(client: impl FnOnce(RefreshClientBuilder) -> RefreshClientBuilder) -> Setup {
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
    let refresh = client(
        RefreshClient::builder()
            .token_endpoint(&server.url("/token"))
            .unwrap(),
    )
    .build()
    .unwrap();
    let app = Router::new()
        .route("/", any(who))
        .route("/mutate", any(mutate))
        .layer(
            CookieSessionLayer::new(auth, refresh.clone())
                .cookies(CookieConfig::default())
                .unwrap(),
        );
    Setup {
        _server: server,
        issuer,
        endpoint,
        refresh,
        app,
    }
}

impl Setup {
    /// An access token for `user-1` expiring `seconds` from now (`EXPIRED`:
    /// past the verifier's 60 s leeway).
    fn access(&self, seconds: i64) -> String {
        let mut claims = self.issuer.claims("user-1", AUD);
        claims["exp"] = json!(unix_now() as i64 + seconds);
        // issued an hour ago: the policy's skew is the full 30 s
        claims["iat"] = json!(unix_now() - 3600);
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
        format!("__Host-kw_access={access}; __Host-kw_refresh={refresh}"),
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
        cookies[0].starts_with("__Host-kw_access=ey")
            && cookies[0].contains("HttpOnly; SameSite=Lax; Secure")
    );
    assert!(cookies[0].contains("Max-Age=") && cookies[0].contains("Path=/"));
    assert!(cookies[1].starts_with("__Host-kw_refresh=rt-"));
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
    let expired = s.access(EXPIRED);
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
    // Down: nothing listens on the token endpoint's port (the grant is not
    // sent, so it is safe to retry).
    let s = setup_with(|b| b.token_endpoint("http://127.0.0.1:9/token").unwrap()).await;
    let rt = s.endpoint.new_family();
    let (status, cookies, body) = s.call(get("/", &s.access(10), &rt)).await;
    assert_eq!((status, body.as_str()), (200, "user-1"));
    assert!(cookies.is_empty());
    // once the access token has expired it cannot be served: 503, retry later
    for _ in 0..2 {
        let (status, cookies, body) = s.call(get("/", &s.access(EXPIRED), &rt)).await;
        assert_eq!(
            (status, body.as_str()),
            (503, r#"{"error":"refresh_failed"}"#)
        );
        assert!(
            cookies.is_empty(),
            "the session may be fine: keep the cookies"
        );
    }
    let stats = s.refresh.stats();
    assert_eq!((stats.grants, stats.not_sent), (3, 3), "each was tried");
}

/// A 500 from the provider may come after it processed the grant: in doubt.
/// While the access token is valid the request is served; the token is not
/// sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_provider_is_in_doubt_and_asked_once() {
    let s = setup().await;
    s.endpoint.set_mode(Mode::Fail);
    let rt = s.endpoint.new_family();
    for _ in 0..3 {
        let (status, cookies, body) = s.call(get("/", &s.access(10), &rt)).await;
        assert_eq!((status, body.as_str(), cookies.len()), (200, "user-1", 0));
    }
    assert_eq!(s.endpoint.grants(), 1);
    s.endpoint.set_mode(Mode::Normal);
    let (status, _, body) = s.call(get("/", &s.access(EXPIRED), &rt)).await;
    assert_eq!(
        (status, body.as_str()),
        (401, r#"{"error":"refresh_failed"}"#)
    );
    assert_eq!(
        s.endpoint.grants(),
        1,
        "exactly one grant reached the provider"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_grant_is_401_and_clears_the_cookies() {
    let s = setup().await;
    for access in [s.access(EXPIRED), s.access(10)] {
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
        .call(get("/", &s.access(EXPIRED), &s.endpoint.new_family()))
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
    assert!(cookies[0].starts_with("__Host-kw_access=ey"));
}

/// The value a `Set-Cookie` sets.
fn value_of(set_cookie: &str) -> &str {
    let pair = set_cookie.split(';').next().unwrap();
    pair.split_once('=').unwrap().1
}

/// Problem 4: a grant whose new access token the Authenticator cannot verify
/// yet (signed by a kid it does not know: a key rotation at the provider)
/// still hands the browser the new cookies — the old refresh token is
/// consumed — and the request is answered per policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_whose_new_access_token_does_not_authenticate_still_sets_the_cookies() {
    let s = setup().await;
    s.issuer.add_key("key-2", "ES256");
    s.endpoint.set_signing_kid("key-2");

    // Near expiry (best effort): served with the still-valid access token,
    // and the new cookies are set.
    let old = s.endpoint.new_family();
    let (status, cookies, body) = s.call(get("/", &s.access(10), &old)).await;
    assert_eq!((status, body.as_str()), (200, "user-1"));
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    let rotated = value_of(&cookies[1]).to_owned();
    assert_ne!(rotated, old);

    // Expired (refresh first): the new token does not authenticate → 401
    // unknown_key, and the new cookies are still set.
    let old = s.endpoint.new_family();
    let (status, cookies, body) = s.call(get("/", &s.access(EXPIRED), &old)).await;
    assert_eq!((status, body.as_str()), (401, r#"{"error":"unknown_key"}"#));
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    assert!(cookies[1].starts_with("__Host-kw_refresh=rt-"));
    let second = value_of(&cookies[1]).to_owned();
    assert_eq!(s.endpoint.grants(), 2);

    // The provider goes back to a key we know: both families are alive and
    // refresh with the cookies the browser got.
    s.endpoint.set_signing_kid("key-1");
    for rt in [&rotated, &second] {
        let (status, cookies, _) = s.call(get("/", &s.access(EXPIRED), rt)).await;
        assert_eq!((status, cookies.len()), (200, 2));
        assert!(s.endpoint.family_alive(value_of(&cookies[1])));
    }
    assert_eq!(s.endpoint.grants(), 4);
    assert_eq!(s.endpoint.reuse_detected(), 0);
}

/// Problem 7: an access cookie that fails for a reason other than expiry (a
/// kid the service does not know after an abrupt rotation, a bad signature,
/// a truncated cookie) triggers a refresh-first when a refresh cookie is
/// there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_failures_other_than_expiry_refresh_first() {
    let s = setup().await;
    s.issuer.add_key("key-3", "ES256");
    let mut claims = s.issuer.claims("user-1", AUD);
    claims["exp"] = json!(unix_now() + 3000);
    let unknown_kid = s.issuer.mint("key-3", &claims);
    let valid = s.access(3000);
    let truncated = valid[..valid.len() - 10].to_owned();
    let mut bad_signature = valid.clone();
    bad_signature.replace_range(valid.len() - 4.., "AAAA");
    for access in [&unknown_kid, &truncated, &bad_signature] {
        let (status, cookies, body) = s.call(get("/", access, &s.endpoint.new_family())).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(cookies.len(), 2);
        assert!(s.endpoint.family_alive(value_of(&cookies[1])));
    }
    assert_eq!(s.endpoint.grants(), 3);
    // without a refresh cookie it is the access cookie's failure
    let only_access = Request::builder()
        .uri("/")
        .header("cookie", format!("__Host-kw_access={truncated}"))
        .body(Body::empty())
        .unwrap();
    let (status, cookies, _) = s.call(only_access).await;
    assert_eq!((status, cookies.len()), (401, 0));
    assert_eq!(s.endpoint.grants(), 3);
}

/// Problem 8: with access tokens shorter than the 30 s skew, an absolute
/// skew refreshed on every request; the skew is min(30 s, lifetime / 4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_access_tokens_are_not_refreshed_on_every_request() {
    let s = setup().await;
    let now = unix_now();
    let mut claims = s.issuer.claims("user-1", AUD);
    claims["iat"] = json!(now);
    claims["nbf"] = json!(now - 1);
    claims["exp"] = json!(now + 20);
    let short = s.issuer.mint("key-1", &claims);
    let rt = s.endpoint.new_family();
    for _ in 0..10 {
        let (status, cookies, _) = s.call(get("/", &short, &rt)).await;
        assert_eq!((status, cookies.len()), (200, 0));
    }
    assert_eq!(s.endpoint.grants(), 0, "a fresh 20 s token is used as is");
    // in its last quarter it is refreshed (best effort)
    claims["iat"] = json!(now - 16);
    claims["exp"] = json!(now + 4);
    let late = s.issuer.mint("key-1", &claims);
    let (status, cookies, _) = s.call(get("/", &late, &rt)).await;
    assert_eq!((status, cookies.len()), (200, 2));
    assert_eq!(s.endpoint.grants(), 1);
}

/// Problems 1 and 9 through the layer: the provider rotates and answers
/// after the wait budget. Refresh first → 503 (retry later), cookies kept;
/// the grant lands on its own and the next request with the same (old)
/// cookies gets the new ones — the session survives, one grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_slower_than_the_wait_budget_keeps_the_session() {
    let s = setup_with(|b| b.wait_budget(Duration::from_millis(200))).await;
    s.endpoint
        .set_mode(Mode::RotateThenDelay(Duration::from_millis(700)));
    let old = s.endpoint.new_family();
    let expired = s.access(EXPIRED);
    let (status, cookies, body) = s.call(get("/", &expired, &old)).await;
    assert_eq!(
        (status, body.as_str()),
        (503, r#"{"error":"refresh_failed"}"#)
    );
    assert!(cookies.is_empty());
    // a near-expiry request meanwhile is served with its access token
    let (status, _, _) = s.call(get("/", &s.access(10), &old)).await;
    assert_eq!(status, 200);
    for _ in 0..300 {
        if s.refresh.stats().granted == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, cookies, _) = s.call(get("/", &expired, &old)).await;
    assert_eq!((status, cookies.len()), (200, 2));
    assert_eq!(s.endpoint.grants(), 1);
    assert_eq!(s.endpoint.reuse_detected(), 0);
    s.endpoint.set_mode(Mode::Normal);
    let (status, cookies, _) = s.call(get("/", &expired, value_of(&cookies[1]))).await;
    assert_eq!((status, cookies.len()), (200, 2));
    assert!(s.endpoint.family_alive(value_of(&cookies[1])));
}

/// A refresh-first whose grant ends in doubt (a 502 after the provider
/// rotated): 401 so the client signs in again, cookies kept, and the
/// quarantined token is never sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_doubt_refresh_first_is_401_and_never_replayed() {
    let s = setup().await;
    s.endpoint.set_mode(Mode::RotateThenStatus(502));
    let old = s.endpoint.new_family();
    let expired = s.access(EXPIRED);
    for _ in 0..3 {
        let (status, cookies, body) = s.call(get("/", &expired, &old)).await;
        assert_eq!(
            (status, body.as_str()),
            (401, r#"{"error":"refresh_failed"}"#)
        );
        assert!(
            cookies.is_empty(),
            "cookies are cleared only on invalid_grant"
        );
    }
    // near expiry: served with the access token, nothing sent
    let (status, _, _) = s.call(get("/", &s.access(10), &old)).await;
    assert_eq!(status, 200);
    assert_eq!(
        s.endpoint.grants(),
        1,
        "exactly one grant reached the provider"
    );
    assert_eq!(s.endpoint.reuse_detected(), 0);
}

/// The same cookie name twice: the first wins (browsers send the most
/// specific path first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_of_two_cookies_with_one_name_wins() {
    let s = setup().await;
    let good = s.endpoint.new_family();
    let expired = s.access(EXPIRED);
    let twice = |first: &str, second: &str| {
        Request::builder()
            .uri("/")
            .header(
                "cookie",
                format!(
                    "__Host-kw_access={expired}; __Host-kw_refresh={first}; __Host-kw_refresh={second}"
                ),
            )
            .body(Body::empty())
            .unwrap()
    };
    let (status, _, body) = s.call(twice("rt-not-issued", &good)).await;
    assert_eq!(
        (status, body.as_str()),
        (401, r#"{"error":"invalid_grant"}"#)
    );
    let (status, cookies, _) = s.call(twice(&good, "rt-not-issued")).await;
    assert_eq!((status, cookies.len()), (200, 2));
    assert_eq!(s.endpoint.grants(), 2);
}

/// The refresh cookie's Max-Age follows the provider's refresh lifetime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refresh_cookie_lives_as_long_as_the_provider_says() {
    let s = setup().await;
    s.endpoint.set_mode(Mode::RotateThenBody(
        r#"{"access_token":"{access}","token_type":"Bearer","expires_in":600,"refresh_token":"{refresh}","refresh_expires_in":1800}"#,
    ));
    let (status, cookies, _) = s
        .call(get("/", &s.access(EXPIRED), &s.endpoint.new_family()))
        .await;
    assert_eq!(status, 200);
    assert!(
        cookies[1].contains("Max-Age=1800;") || cookies[1].contains("Max-Age=1799;"),
        "{}",
        cookies[1]
    );
    assert!(cookies[0].contains("Max-Age=600;") || cookies[0].contains("Max-Age=599;"));
}

#[test]
fn cookie_configurations_browsers_refuse_are_refused_at_build() {
    let refused = [
        CookieConfig::default().secure(false),
        CookieConfig::default().paths("/", "/auth"),
        CookieConfig::default().domain("example.com"),
        CookieConfig::default().names("a b", "r"),
        CookieConfig::default().names("same", "same"),
        CookieConfig::default().names("", "r"),
        CookieConfig::default()
            .names("__Secure-a", "__Secure-r")
            .secure(false),
        CookieConfig::default()
            .names("a", "r")
            .same_site(SameSite::None)
            .secure(false),
        CookieConfig::default().names("a", "r").paths("auth", "/"),
        CookieConfig::default()
            .names("a", "r")
            .paths("/; Domain=x", "/"),
        CookieConfig::default()
            .names("a", "r")
            .domain("x.com; Secure"),
    ];
    for config in refused {
        let e = config.validate().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfiguration, "{config:?}");
    }
    let accepted = CookieConfig::default()
        .names("a", "r")
        .paths("/", "/auth")
        .domain("example.com")
        .same_site(SameSite::Strict);
    accepted.validate().unwrap();
    let tokens =
        TokenSet::from_response(br#"{"access_token":"at","refresh_token":"rt"}"#, "", 0).unwrap();
    let [access, refresh] = accepted.set_cookie_headers(&tokens, 0).unwrap();
    assert_eq!(
        access.to_str().unwrap(),
        "a=at; Path=/; Domain=example.com; HttpOnly; SameSite=Strict; Secure"
    );
    assert_eq!(
        refresh.to_str().unwrap(),
        "r=rt; Path=/auth; Domain=example.com; HttpOnly; SameSite=Strict; Secure"
    );
    CookieConfig::default()
        .names("a", "r")
        .secure(false)
        .validate()
        .unwrap();
}

/// Leeway-aware: a token past its `exp` but within the verifier's leeway is
/// still accepted, so it is refreshed best effort — served if the provider
/// is down — not refresh-first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_within_the_leeway_is_refreshed_best_effort() {
    let s = setup().await;
    s.endpoint.set_mode(Mode::InvalidClient);
    let (status, cookies, body) = s
        .call(get("/", &s.access(-5), &s.endpoint.new_family()))
        .await;
    assert_eq!((status, body.as_str(), cookies.len()), (200, "user-1", 0));
    assert_eq!(s.endpoint.grants(), 1, "a refresh was tried");
    s.endpoint.set_mode(Mode::Normal);
    let (status, cookies, _) = s
        .call(get("/", &s.access(-5), &s.endpoint.new_family()))
        .await;
    assert_eq!((status, cookies.len()), (200, 2));
}
