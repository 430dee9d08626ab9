//! A minimal axum service protected by keyward.
//!
//! ```sh
//! KEYWARD_ISSUER=https://issuer.example KEYWARD_AUDIENCE=https://api.example \
//! KEYWARD_JWKS="$(keyward jwks fetch https://issuer.example)" \
//!   cargo run --example axum_service
//! curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:3000/me
//! ```
//!
//! Keys: the baked `KEYWARD_JWKS` first (no network on a cold start), the
//! issuer's discovered JWKS for keys it does not know. `/admin` requires the
//! `admin` scope.

use axum::routing::get;
use axum::{Json, Router};
use keyward::axum::{AuthLayer, Authenticated};
use keyward::Authenticator;
use serde_json::{json, Value};

async fn me(Authenticated(session): Authenticated) -> Json<Value> {
    Json(json!({
        "user": session.user_id(),
        "email": session.email(),
        "principal": format!("{:?}", session.principal()),
        "organizations": session.organizations(),
        "scopes": session.scopes().iter().collect::<Vec<_>>(),
    }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let issuer = std::env::var("KEYWARD_ISSUER").map_err(|_| "set KEYWARD_ISSUER")?;
    let audience = std::env::var("KEYWARD_AUDIENCE").map_err(|_| "set KEYWARD_AUDIENCE")?;
    let builder = Authenticator::builder()
        .issuer(issuer)
        .audience(audience)
        .cookie("access_token");
    let auth = match std::env::var("KEYWARD_JWKS") {
        Ok(jwks) => builder.baked_then_discovered(&jwks),
        Err(_) => builder.discovered_jwks(),
    }
    .build()?;
    let app = Router::new()
        .route("/me", get(me))
        .route(
            "/admin",
            get(me).layer(AuthLayer::new(auth.clone()).require_scope("admin")),
        )
        .layer(AuthLayer::new(auth));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
