//! keyward end to end, on one machine, in a few seconds:
//!
//! 1. an embedded issuer on 127.0.0.1 (keys, discovery, JWKS, minted tokens),
//!    which counts every request made to it;
//! 2. an axum API protected by keyward with a rotating key source: the JWKS
//!    baked at "deploy" time first, the issuer's discovered JWKS for keys it
//!    does not know;
//! 3. requests (valid, expired, forged, wrong audience, a multi-org user
//!    choosing an organisation, a token signed with a newly rotated key),
//!    and a report of what happened and what it cost.
//!
//! `cargo run --release --example demo`

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use keyward::axum::{AuthLayer, Authenticated};
use keyward::{AuthenticateOptions, Authenticator, SessionError};
use keyward_testkit::{Route, TestIssuer, TestServer};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const AUDIENCE: &str = "https://api.example";

/// `GET /me`: who is calling, from the claims alone.
async fn me(Authenticated(session): Authenticated) -> Json<Value> {
    Json(json!({
        "user": session.user_id(),
        "email": session.email(),
        "orgs": session.organizations().iter().map(|o| o.slug.clone()).collect::<Vec<_>>(),
    }))
}

/// `GET /orgs/{slug}/projects`: membership checked synchronously. The slug
/// from the URL is looked up explicitly (refused if two of the caller's
/// organisations share it); the projects are then matched by the org's id.
async fn projects(
    Authenticated(session): Authenticated,
    Path(slug): Path<String>,
) -> (StatusCode, Json<Value>) {
    match session.organization_by_slug(&slug) {
        Ok(org) => {
            let projects: Vec<_> = session
                .projects()
                .iter()
                .filter(|p| p.org.as_deref() == Some(org.id.as_str()))
                .map(|p| p.name.clone())
                .collect();
            (
                StatusCode::OK,
                Json(json!({ "org": org.name, "projects": projects })),
            )
        }
        Err(e) => (
            StatusCode::FORBIDDEN,
            Json(json!({ "error": e.to_string() })),
        ),
    }
}

/// `GET /org`: the caller's only organisation, or "choose one".
async fn sole_org(Authenticated(session): Authenticated) -> (StatusCode, Json<Value>) {
    match session.sole_organization() {
        Ok(org) => (StatusCode::OK, Json(json!({ "org": org.name }))),
        Err(e @ SessionError::OrganizationChoiceRequired { .. }) => (
            StatusCode::CONFLICT,
            Json(json!({ "error": e.to_string() })),
        ),
        Err(e) => (
            StatusCode::FORBIDDEN,
            Json(json!({ "error": e.to_string() })),
        ),
    }
}

fn issuer_requests(server: &TestServer) -> usize {
    server.hits("/.well-known/openid-configuration")
        + server.hits("/jwks")
        + server.hits("/userinfo")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. The issuer.
    let server = TestServer::start().await;
    let issuer = TestIssuer::new(&server.base());
    let publish = |server: &TestServer, issuer: &TestIssuer| {
        server.set(
            "/jwks",
            Route::json(issuer.jwks()).header("Cache-Control", "max-age=600"),
        );
    };
    server.set(
        "/.well-known/openid-configuration",
        Route::json(json!({"issuer": server.base(), "jwks_uri": server.url("/jwks")}).to_string()),
    );
    publish(&server, &issuer);
    let baked_jwks = issuer.jwks(); // what a deploy would bake into config

    // 2. The API.
    let auth = Authenticator::builder()
        .issuer(server.base())
        .audience(AUDIENCE)
        .baked_then_discovered(&baked_jwks)
        .validation(|v| v.typ("at+jwt"))
        .build()?;
    let app = Router::new()
        .route("/me", get(me))
        .route("/org", get(sole_org))
        .route("/orgs/{slug}/projects", get(projects))
        .layer(AuthLayer::new(auth.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let api = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    // 3. Tokens.
    let alice = {
        let mut c = issuer.claims("alice", AUDIENCE);
        c["email"] = json!("alice@example.com");
        c["email_verified"] = json!(true);
        c["orgs"] = json!([
            {"id": "o1", "slug": "acme", "name": "Acme Inc", "role": "admin"},
            {"id": "o2", "slug": "globex", "name": "Globex", "role": "member"}
        ]);
        c["projects"] = json!([
            {"id": "p1", "name": "Rocket", "org": "o1"},
            {"id": "p2", "name": "Hammock", "org": "o2"}
        ]);
        c
    };
    let valid = issuer.mint("key-1", &alice);
    let expired = issuer.mint("key-1", &{
        let mut c = alice.clone();
        c["exp"] = json!(c["iat"].as_u64().unwrap_or(0) - 3600);
        c
    });
    let forged = {
        let mut t = valid.clone();
        t.replace_range(t.len() - 6.., "AAAAAA");
        t
    };
    let wrong_audience = issuer.mint("key-1", &{
        let mut c = alice.clone();
        c["aud"] = json!("https://other-api.example");
        c
    });
    // The issuer rotates in a new key after the API was deployed.
    issuer.add_key("key-2", "EdDSA");
    publish(&server, &issuer);
    let rotated = issuer.mint("key-2", &alice);

    let client = reqwest::Client::new();
    let cases: [(&str, &str, Option<&String>); 10] = [
        ("valid token", "/me", Some(&valid)),
        ("valid token again", "/me", Some(&valid)),
        ("no token", "/me", None),
        ("expired token", "/me", Some(&expired)),
        ("forged signature", "/me", Some(&forged)),
        ("wrong audience", "/me", Some(&wrong_audience)),
        ("multi-org user, no org chosen", "/org", Some(&valid)),
        (
            "multi-org user chooses globex",
            "/orgs/globex/projects",
            Some(&valid),
        ),
        (
            "multi-org user, not a member",
            "/orgs/initech/projects",
            Some(&valid),
        ),
        ("token from a rotated-in key", "/me", Some(&rotated)),
    ];
    println!("keyward demo: issuer {} · API {api}\n", server.base());
    println!(
        "{:<34} {:>6}  {:<56} issuer calls",
        "request", "status", "response"
    );
    for (name, path, token) in cases {
        let before = issuer_requests(&server);
        let mut request = client.get(format!("{api}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let body = response.text().await?;
        let body = if body.chars().count() > 56 {
            format!("{}...", body.chars().take(53).collect::<String>())
        } else {
            body
        };
        println!(
            "{name:<34} {status:>6}  {body:<56} {}",
            issuer_requests(&server) - before
        );
    }
    println!(
        "\nJWKS fetches by the API: {} (the rotated-in key; baked keys needed none) · discovery: {}",
        server.hits("/jwks"),
        server.hits("/.well-known/openid-configuration")
    );

    // 4. What authentication costs here: cold (verify + claims + session,
    //    keys in memory) vs a verified-token cache hit.
    let options = AuthenticateOptions {
        include_user_info: false,
    };
    let rounds = 2000;
    let tokens: Vec<String> = (0..rounds)
        .map(|i| {
            let mut c = alice.clone();
            c["jti"] = json!(format!("t{i}"));
            issuer.mint("key-1", &c)
        })
        .collect();
    let started = Instant::now();
    for token in &tokens {
        auth.authenticate_token(token, options).await?;
    }
    let cold = started.elapsed() / rounds;
    let started = Instant::now();
    for token in &tokens {
        auth.authenticate_token(token, options).await?;
    }
    let cached = started.elapsed() / rounds;
    println!(
        "authenticate, ES256, {} backend: cold {:.1} µs · cached {:.2} µs ({} tokens each)",
        keyward_core_backend(),
        micros(cold),
        micros(cached),
        rounds
    );
    Ok(())
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn keyward_core_backend() -> &'static str {
    if cfg!(feature = "aws-lc") {
        "aws-lc"
    } else {
        "rust-crypto"
    }
}
