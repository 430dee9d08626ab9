//! # keyward-claims
//!
//! The typed claims of an access or ID token and the [`Session`] a request
//! handler works with — built entirely from verified claims, so "who is
//! this" and "is this user a member of org X" are answered synchronously,
//! without calling the authorization server.
//!
//! - [`AccessTokenClaims`]: RFC 7519 registered claims, RFC 9068 access-token
//!   claims (`client_id`, `scope`, `azp`, `auth_time`, `acr`, `amr`), OIDC
//!   profile claims, and every other claim in [`AccessTokenClaims::extra`].
//! - [`ClaimMapping`]: where to find the email, name, organisations and
//!   projects (namespaced claims such as `https://example.com/email` first,
//!   then the standard names).
//! - [`Session`]: the answers.
//!
//! ## Your own claims
//!
//! Every claim the model does not name is kept in
//! [`AccessTokenClaims::extra`]; read one typed with [`Session::claim`]. To
//! decode a whole token into your own type instead, flatten the standard
//! model into it and verify with `keyward_core::Verifier::verify::<Mine>`:
//!
//! ```
//! use keyward_claims::AccessTokenClaims;
//! #[derive(serde::Deserialize)]
//! struct Mine {
//!     #[serde(flatten)]
//!     standard: AccessTokenClaims,
//!     tenant: String,
//! }
//! let mine: Mine = serde_json::from_str(r#"{"sub":"u1","tenant":"t9","scope":"a b"}"#).unwrap();
//! assert_eq!(mine.tenant, "t9");
//! assert!(mine.standard.scope.contains("b"));
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

mod claims;
mod mapping;
mod session;

pub use claims::{AccessTokenClaims, Organization, Project, Scopes};
pub use mapping::ClaimMapping;
pub use session::{Principal, Session, SessionError};
