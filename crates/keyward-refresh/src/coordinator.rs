//! Who sends a refresh grant, and how everyone else gets its result.
//!
//! A rotating provider accepts each refresh token once. Every coordinator
//! guarantees, within its scope, that concurrent refreshes of one token send
//! **one** grant and that all callers receive that grant's outcome:
//!
//! - [`InProcessCoordinator`] (the default): one process;
//! - `RedisCoordinator` (feature `redis`): every replica that shares a Redis.

use crate::token_set::TokenSet;
use keyward_core::{Error, ErrorKind};
use moka::sync::Cache;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// The outcome of one refresh: new tokens, or a classified error
/// (`invalid_grant` or `refresh_failed`).
pub type Outcome = Result<TokenSet, Error>;

/// A boxed, owned future producing an [`Outcome`]. The grant a
/// [`RefreshClient`](crate::RefreshClient) hands to its coordinator is one;
/// it is `'static` so that a coordinator can run it to completion on its own
/// task even when the caller that started it goes away (a request the browser
/// aborted must not cancel a grant the provider may already have received).
pub type OutcomeFuture = Pin<Box<dyn Future<Output = Outcome> + Send + 'static>>;

/// Decides which caller exchanges a refresh token and shares the outcome.
///
/// One method, like tower's `Service`: given the refresh token and the grant
/// that would exchange it, produce the outcome — by running `grant` (at most
/// once per token and coordination scope) or by obtaining the outcome of the
/// caller that did. Coordinators compose: `RedisCoordinator` runs its
/// cross-replica protocol inside an [`InProcessCoordinator`], so concurrent
/// callers in one process cost one Redis round of the protocol, not one each.
///
/// Implementations must never send the grant for a token whose earlier grant
/// may have reached the provider without its outcome being known: replaying
/// a consumed refresh token makes a rotating provider revoke the whole token
/// family.
pub trait RefreshCoordinator: Send + Sync + fmt::Debug {
    /// The outcome of refreshing `refresh_token`, running `grant` only if no
    /// other caller is or was (within the late-arrival window) exchanging it.
    fn coordinate(&self, refresh_token: &str, grant: OutcomeFuture) -> OutcomeFuture;

    /// The coordinator's counters (a snapshot).
    fn stats(&self) -> CoordinatorStats;
}

/// Counters of a coordinator (a snapshot). Fields a coordinator does not use
/// stay zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CoordinatorStats {
    /// Callers that joined a refresh already in flight in this process.
    pub joined: u64,
    /// Callers answered from this process's late-arrival memo.
    pub memo_hits: u64,
    /// Cross-replica: leases this process won (and sent the grant).
    pub lease_wins: u64,
    /// Cross-replica: times this process waited for another replica's grant.
    pub lease_waits: u64,
    /// Cross-replica: waits or lookups answered with another replica's stored
    /// outcome.
    pub waits_satisfied: u64,
    /// Cross-replica: lease renewals during slow grants.
    pub lease_renewals: u64,
    /// Cross-replica: refreshes ended because the replica that held the
    /// lease stopped before recording an outcome (its grant may have reached
    /// the provider, so the token is in doubt and is not replayed).
    pub in_doubt: u64,
    /// Cross-replica: refreshes done with in-process coordination only,
    /// because Redis was unavailable.
    pub fallbacks: u64,
    /// Cross-replica: Redis commands that failed or timed out.
    pub redis_errors: u64,
}

/// A refresh token's identity inside one process: SHA-256 of it. Never the
/// token itself.
pub(crate) type TokenKey = [u8; 32];

pub(crate) fn key_of(refresh_token: &str) -> TokenKey {
    Sha256::digest(refresh_token.as_bytes()).into()
}

/// A short, non-secret label for logs: the first 8 hex digits of the hash.
pub(crate) fn label(key: &TokenKey) -> String {
    key.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// Whether an outcome is final for its token (and so may answer late
/// arrivals): new tokens, or `invalid_grant`. A transient failure is not.
pub(crate) fn is_final(outcome: &Outcome) -> bool {
    match outcome {
        Ok(_) => true,
        Err(e) => e.kind() == ErrorKind::InvalidGrant,
    }
}

type Flight = watch::Receiver<Option<Arc<Outcome>>>;

struct InProcessInner {
    /// Refreshes in flight, by token hash.
    flights: Mutex<HashMap<TokenKey, Flight>>,
    /// Final outcomes, by old-token hash, for the late-arrival window.
    memo: Cache<TokenKey, Arc<Outcome>>,
    joined: AtomicU64,
    memo_hits: AtomicU64,
}

/// Single-flight within one process, with a late-arrival memo.
///
/// - concurrent callers with the same token share one grant and its outcome
///   (transient failures included: they are not retried by every caller);
/// - a final outcome (new tokens or `invalid_grant`) answers callers with
///   the same token for the late-arrival window (default 60 s), so a request
///   sent with the old cookie before the browser saw the new one gets the
///   new tokens instead of replaying the consumed token;
/// - the grant runs on its own task: when the caller that started it is
///   cancelled, the grant still completes and the others still get it.
///
/// It needs a Tokio runtime (the grant is spawned).
#[derive(Clone)]
pub struct InProcessCoordinator {
    inner: Arc<InProcessInner>,
}

impl fmt::Debug for InProcessCoordinator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InProcessCoordinator")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Default for InProcessCoordinator {
    fn default() -> Self {
        InProcessCoordinator::new(Duration::from_secs(60), 10_000)
    }
}

impl InProcessCoordinator {
    /// A coordinator whose memo answers late arrivals for `window`, keeping
    /// at most `capacity` outcomes.
    pub fn new(window: Duration, capacity: u64) -> Self {
        InProcessCoordinator {
            inner: Arc::new(InProcessInner {
                flights: Mutex::new(HashMap::new()),
                memo: Cache::builder()
                    .max_capacity(capacity)
                    .time_to_live(window)
                    .build(),
                joined: AtomicU64::new(0),
                memo_hits: AtomicU64::new(0),
            }),
        }
    }

    /// Starts the flight for `key` or joins the one in progress.
    fn flight(&self, key: TokenKey, grant: OutcomeFuture) -> Result<Flight, Arc<Outcome>> {
        let inner = &self.inner;
        let mut flights = inner.flights.lock().unwrap_or_else(|p| p.into_inner());
        // Checked under the lock: the flight memoises before it leaves the
        // map, so a caller finds one or the other, never neither.
        if let Some(outcome) = inner.memo.get(&key) {
            inner.memo_hits.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(token = %label(&key), "refresh answered from the late-arrival memo");
            return Err(outcome);
        }
        if let Some(flight) = flights.get(&key) {
            inner.joined.fetch_add(1, Ordering::Relaxed);
            return Ok(flight.clone());
        }
        let (tx, rx) = watch::channel(None);
        flights.insert(key, rx.clone());
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let outcome = Arc::new(grant.await);
            let mut flights = inner.flights.lock().unwrap_or_else(|p| p.into_inner());
            if is_final(&outcome) {
                inner.memo.insert(key, outcome.clone());
            }
            flights.remove(&key);
            drop(flights);
            // Receivers may all be gone (every caller cancelled): nothing to do.
            let _ = tx.send(Some(outcome));
        });
        Ok(rx)
    }
}

impl RefreshCoordinator for InProcessCoordinator {
    fn coordinate(&self, refresh_token: &str, grant: OutcomeFuture) -> OutcomeFuture {
        let flight = self.flight(key_of(refresh_token), grant);
        Box::pin(async move {
            let mut flight = match flight {
                Ok(flight) => flight,
                Err(memoised) => return (*memoised).clone(),
            };
            let done = match flight.wait_for(Option::is_some).await {
                Ok(done) => done.clone(),
                Err(_) => None,
            };
            match done {
                Some(outcome) => (*outcome).clone(),
                None => Err(lost_flight()),
            }
        })
    }

    fn stats(&self) -> CoordinatorStats {
        CoordinatorStats {
            joined: self.inner.joined.load(Ordering::Relaxed),
            memo_hits: self.inner.memo_hits.load(Ordering::Relaxed),
            ..CoordinatorStats::default()
        }
    }
}

/// The grant's task ended without an outcome (it panicked, or the runtime is
/// shutting down).
fn lost_flight() -> Error {
    Error::new(
        ErrorKind::RefreshFailed,
        "the refresh in flight ended without an outcome (runtime shutting down?)",
    )
}
