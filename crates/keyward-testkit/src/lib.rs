//! Test support shared by keyward's crates (a dev-dependency only).
//!
//! - [`TestServer`]: a real HTTP/1.1 server on 127.0.0.1 (port 0) that
//!   serves programmable routes, injects faults (status codes, delays, slow
//!   trickled bodies, huge bodies, ETag revalidation) and counts requests.
//! - [`OidcProvider`]: the real `oidc-provider` (npm) from `tests/oidc`,
//!   started on loopback with fresh keys.
//! - [`fixtures`]: the oracle tokens and JWKS of `keyward-core`.
//! - [`TestIssuer`]: generates keys, publishes a JWKS, mints tokens.

pub mod fixtures;
mod issuer;
pub mod oidc;
pub mod redis;
mod server;
mod token_endpoint;

pub use issuer::{hs256_jwks, mint_hs256, unix_now, TestIssuer};
pub use oidc::OidcProvider;
pub use redis::{shared_redis_url, RedisServer};
pub use server::{Handler, Received, Route, TestServer};
pub use token_endpoint::{Mode, TokenEndpoint};
