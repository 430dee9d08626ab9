//! # keyward-refresh
//!
//! Refreshing access tokens without racing yourself into a revoked session.
//!
//! Providers that rotate refresh tokens revoke the whole token family when a
//! refresh token is presented a second time (reuse detection). A browser
//! page fires several requests at once with the same cookie; if each of them
//! refreshes, the first wins and the others look like theft. So:
//!
//! - [`RefreshClient::refresh`] is **single-flight** per refresh token: N
//!   concurrent callers cause one request to the token endpoint and all get
//!   the same [`TokenSet`] (or the same error);
//! - a **late-arrival memo** (default 60 s) maps a consumed refresh token to
//!   its result, so a request that was sent with the old cookie before the
//!   browser saw the new one gets the same new tokens instead of replaying
//!   the consumed one;
//! - every grant attempt ends in one [`GrantOutcome`]: *not sent* (safe to
//!   retry), *granted*, *rejected* (`invalid_grant`: the session is over) or
//!   *in doubt* (the request was written, no usable answer came: the token is
//!   quarantined, never replayed);
//! - grants run detached from the requests waiting for them, with their own
//!   timeout; a caller waits at most a shorter wait budget, and a grant that
//!   completes later is remembered, not lost;
//! - [`RefreshPolicy`] decides per request whether to refresh at all (never
//!   on a WebSocket upgrade, whose response cannot carry `Set-Cookie`).
//!
//! Refresh tokens are identified by a SHA-256 hash internally; the raw token
//! never appears in logs, errors or `Debug` output, and the memo's secrets are
//! zeroized when dropped. See `docs/refresh.md`.

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

mod client;
mod coordinator;
mod memo;
mod outcome;
mod policy;
#[cfg(feature = "redis")]
mod redis_coordinator;
mod secret;
mod token_set;

pub use client::{ClientAuth, RefreshClient, RefreshClientBuilder, RefreshStats};
pub use coordinator::{CoordinatorStats, InProcessCoordinator, RefreshCoordinator};
pub use outcome::{GrantFuture, GrantOutcome};
pub use policy::{is_upgrade, AccessTokenTimes, Decision, RefreshPolicy};
#[cfg(feature = "redis")]
pub use redis_coordinator::{RedisCoordinator, RedisCoordinatorBuilder, WhenRedisUnavailable};
pub use secret::Secret;
pub use token_set::TokenSet;
