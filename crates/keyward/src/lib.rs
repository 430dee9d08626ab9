//! # keyward
//!
//! Authenticate every request from a locally verified JWT — no call to the
//! authorization server on the request path, not even on a cold start when
//! the keys are baked into configuration.
//!
//! ```no_run
//! # async fn example(request: http::Request<()>) -> Result<(), keyward::Error> {
//! use keyward::{AuthenticateOptions, Authenticator};
//!
//! let auth = Authenticator::builder()
//!     .issuer("https://issuer.example")
//!     .audience("https://api.example")
//!     .baked_then_discovered(&std::env::var("KEYWARD_JWKS").unwrap_or_default())
//!     .validation(|v| v.typ("at+jwt"))
//!     .build()?;
//!
//! let session = auth
//!     .authenticate(&request, AuthenticateOptions { include_user_info: false })
//!     .await?;
//! if session.is_member("org_123") && session.has_scope("read:projects") {
//!     // ...
//! }
//! # Ok(()) }
//! ```
//!
//! The request path: token (Bearer header or cookie) → verified-token cache
//! → key source (in memory) → signature and claims (`keyward-core`) →
//! [`Session`] (`keyward-claims`) → optionally userinfo. See
//! `docs/architecture.md`.
//!
//! With feature `axum`: [`axum::AuthLayer`] (a tower `Layer`) and the
//! [`axum::Authenticated`] extractor.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod authenticator;
#[cfg(feature = "axum")]
pub mod axum;
#[cfg(feature = "axum")]
mod cookie_session;
mod credentials;
mod token_cache;
mod user_info;

pub use authenticator::{AuthenticateOptions, Authenticator, AuthenticatorBuilder};
pub use credentials::RequestHeaders;
pub use token_cache::{DEFAULT_TOKEN_CACHE_BYTES, UNBOUNDED_LIFETIME};
pub use user_info::{ProfileField, UserInfoFailure};

pub use keyward_claims::{
    AccessTokenClaims, ClaimMapping, Organization, Principal, Project, Scopes, Session,
    SessionError,
};
pub use keyward_core::{
    Algorithm, BoundTokens, Clock, Error, ErrorKind, FixedClock, KeySource, SystemClock, Validation,
};
pub use keyward_keys::{
    RemoteKeySource, RemoteKeySourceBuilder, RemoteStats, RotatingKeySource, SourceState,
    StaticKeySource,
};
pub use keyward_refresh::{
    ClientAuth, CoordinatorStats, Decision, GrantFuture, GrantOutcome, InProcessCoordinator,
    RefreshClient, RefreshClientBuilder, RefreshCoordinator, RefreshPolicy, RefreshStats, Secret,
    TokenSet,
};
#[cfg(feature = "redis")]
pub use keyward_refresh::{RedisCoordinator, RedisCoordinatorBuilder, WhenRedisUnavailable};
