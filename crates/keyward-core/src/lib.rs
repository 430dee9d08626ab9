//! # keyward-core
//!
//! Strict, fast verification of compact JWS/JWT tokens (RFC 7515, RFC 7519)
//! against keys from a pluggable [`KeySource`]. This crate does no I/O: key
//! sources that fetch live in `keyward-keys`.
//!
//! ```
//! use keyward_core::{FixedClock, KeySet, RegisteredClaims, Validation, Verifier};
//!
//! let keys = KeySet::from_jwks(include_str!("../tests/fixtures/jwks.json"))?;
//! let verifier = Verifier::new(keys, Validation::new()
//!         .issuer("https://issuer.example")
//!         .audience("https://api.example"))
//!     .with_clock(FixedClock(1_700_000_000));
//! let token = include_str!("../tests/fixtures/valid/ES256.jwt").trim();
//! let verified = verifier.verify_cached::<RegisteredClaims>(token)?;
//! assert_eq!(verified.claims().sub.as_deref(), Some("user-123"));
//! # Ok::<(), keyward_core::Error>(())
//! ```
//!
//! ## Security properties
//!
//! Each module documents the threat its checks address. In short:
//! the algorithm comes from the key, not the token ([`algorithm`]); `none`
//! never verifies; HMAC only when allowed explicitly with an `oct` key;
//! `jwk`/`jku`/`x5u`/`x5c` headers are ignored ([`header`]); unknown `crit`
//! rejects; strict base64url and JSON without duplicate members; a size
//! limit before decoding ([`verifier`]); ECDSA signatures are raw `r||s` of
//! exact length with scalars in range; weak keys are refused ([`jwk`]);
//! claims of the wrong type are errors, never "absent" ([`claims`]).
//!
//! ## Backends
//!
//! Feature `rust-crypto` (default) uses the RustCrypto crates; feature
//! `aws-lc` uses aws-lc-rs and is preferred when both are enabled. See
//! [`Backend`].

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

pub mod algorithm;
mod backend;
mod base64url;
pub mod claims;
mod error;
pub mod header;
mod json;
pub mod jwk;
mod key_source;
pub mod validation;
pub mod verifier;

pub use algorithm::{Algorithm, KeyFamily};
pub use async_trait::async_trait;
pub use backend::Backend;
pub use claims::{Audience, NumericDate, RegisteredClaims};
pub use error::{Error, ErrorKind};
pub use header::Header;
pub use json::DEFAULT_MAX_OBJECT_MEMBERS;
pub use jwk::{Jwk, KeySet, SkippedKey};
pub use key_source::{KeyQuery, KeySource};
pub use validation::{BoundTokens, Clock, FixedClock, SystemClock, Validation};
pub use verifier::{decode_unverified, VerifiedToken, Verifier};

/// Hooks for the fuzz targets (built only with `--cfg fuzzing`, as
/// cargo-fuzz builds): not part of the API.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    /// The most work one duplicate-name check may do: a member costs at most
    /// this many name comparisons (or one hash lookup).
    pub const MAX_WORK_PER_MEMBER: u64 = crate::json::INLINE_NAMES as u64;

    /// Runs `f` and returns what it returned with the number of name
    /// comparisons and hash lookups the duplicate-member checks made
    /// meanwhile, on this thread. A fuzz target asserts that this stays
    /// linear in its input: a quadratic check (a member bomb) fails the
    /// run however fast the machine is.
    pub fn duplicate_check_work<T>(f: impl FnOnce() -> T) -> (T, u64) {
        crate::json::work::of(f)
    }
}
