//! # keyward-keys
//!
//! Where keyward's verifying keys come from. Every source implements
//! [`keyward_core::KeySource`]:
//!
//! - [`StaticKeySource`]: a JWKS baked into configuration (string, file or
//!   environment variable). Zero network.
//! - [`RemoteKeySource`] (feature `remote`, on by default): a JWKS fetched
//!   from a URL or discovered from an issuer, cached, refreshed in the
//!   background, rate-limited for unknown kids, served stale when the
//!   endpoint fails, with strict limits on what it fetches.
//! - [`RotatingKeySource`]: a chain — typically static, then remote — so
//!   that a cold start needs no network and a key rotated in at the issuer
//!   needs no redeploy.
//!
//! ```no_run
//! # async fn example() -> Result<(), keyward_core::Error> {
//! use keyward_core::{Validation, Verifier, RegisteredClaims};
//! use keyward_keys::{RemoteKeySource, RotatingKeySource, StaticKeySource};
//!
//! let keys = RotatingKeySource::new()
//!     .then(StaticKeySource::from_env("KEYWARD_JWKS")?)
//!     .then(RemoteKeySource::from_issuer("https://issuer.example")?);
//! let verifier = Verifier::new(keys, Validation::new()
//!     .issuer("https://issuer.example")
//!     .audience("https://api.example"));
//! let token = "eyJ...";
//! let verified = verifier.verify::<RegisteredClaims>(token).await?;
//! # Ok(()) }
//! ```

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

#[cfg(feature = "remote")]
pub mod discovery;
mod jwks_document;
#[cfg(feature = "remote")]
mod remote;
mod rotating;
mod static_source;

pub use jwks_document::public_jwks;
#[cfg(feature = "remote")]
pub use remote::{
    fetch_jwks, http::parse_max_age, FetchedJwks, RemoteKeySource, RemoteKeySourceBuilder,
    RemoteStats, SourceState,
};
pub use rotating::RotatingKeySource;
pub use static_source::StaticKeySource;
