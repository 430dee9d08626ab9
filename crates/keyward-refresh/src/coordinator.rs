//! Who sends a refresh grant, and how everyone else gets its result.
//!
//! A rotating provider accepts each refresh token once. Every coordinator
//! guarantees, within its scope, that concurrent refreshes of one token send
//! **one** grant, that all callers receive that grant's
//! [`GrantOutcome`], and that a token whose grant ended
//! [in doubt](GrantOutcome::InDoubt) is not sent again during the
//! quarantine:
//!
//! - [`InProcessCoordinator`] (the default): one process;
//! - `RedisCoordinator` (feature `redis`): every replica that shares a Redis.

use crate::memo::Memo;
use crate::outcome::{GrantFuture, GrantOutcome, Retention};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Decides which caller exchanges a refresh token and shares the outcome.
///
/// One method, like tower's `Service`: given the refresh token and the grant
/// that would exchange it, produce the outcome — by running `grant` (at most
/// once per token and coordination scope) or by obtaining the outcome of the
/// caller that did. Coordinators compose: `RedisCoordinator` runs its
/// cross-replica protocol inside an [`InProcessCoordinator`], so concurrent
/// callers in one process cost one Redis round of the protocol, not one each.
///
/// The contract every implementation keeps:
///
/// - the grant runs to completion even when every caller waiting for it is
///   dropped (the returned future only *waits*; dropping it never cancels a
///   grant that may have reached the provider);
/// - a token is never sent while an earlier grant with it may still complete
///   at the provider, nor after a grant with it ended
///   [in doubt](GrantOutcome::InDoubt) until the quarantine is over:
///   replaying a consumed refresh token makes a rotating provider revoke the
///   whole token family;
/// - a [granted](GrantOutcome::Granted) rotation is kept for the late-arrival
///   window, so a caller that still holds the old token gets the new tokens.
pub trait RefreshCoordinator: Send + Sync + fmt::Debug {
    /// The outcome of refreshing `refresh_token`, running `grant` only if no
    /// other caller is exchanging it and no remembered outcome answers it.
    fn coordinate(&self, refresh_token: &str, grant: GrantFuture) -> GrantFuture;

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
    /// Callers answered from this process's quarantine (their token's grant
    /// ended in doubt; nothing was sent).
    pub quarantine_hits: u64,
    /// Live entries dropped from the late-arrival memo or the quarantine to
    /// stay within capacity (the oldest first).
    pub memo_evictions: u64,
    /// Grants that ended in doubt (timeout, reset, 5xx or an unusable 2xx
    /// after the request was written; a panicked grant; with Redis, a lease
    /// holder that stopped before recording its outcome).
    pub in_doubt: u64,
    /// Cross-replica: leases this process won (and sent the grant).
    pub lease_wins: u64,
    /// Cross-replica: times this process waited for another replica's grant.
    pub lease_waits: u64,
    /// Cross-replica: waits or lookups answered with another replica's stored
    /// outcome.
    pub waits_satisfied: u64,
    /// Cross-replica: lease renewals during slow grants.
    pub lease_renewals: u64,
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

/// The current time on Tokio's clock (paused in tests that pause it).
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// `now + d`, saturating far in the future instead of overflowing.
pub(crate) fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}

type Landed = Option<Arc<GrantOutcome>>;

/// Where a token stands in this process: the state the lock protects.
struct State {
    /// Refreshes in flight, by token hash. A caller with a key here joins.
    flights: HashMap<TokenKey, watch::Receiver<Landed>>,
    /// Granted rotations and rejections, for the late-arrival window.
    late: Memo<Arc<GrantOutcome>>,
    /// In-doubt outcomes, for the quarantine: these tokens are not sent.
    quarantine: Memo<Arc<GrantOutcome>>,
    /// Rate limit of the eviction warning.
    eviction_logged: Option<Instant>,
    joined: u64,
    memo_hits: u64,
    quarantine_hits: u64,
    in_doubt: u64,
}

struct InProcessInner {
    state: Mutex<State>,
    window: Duration,
    quarantine: Duration,
}

impl InProcessInner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Single-flight within one process, with a late-arrival memo and an
/// in-doubt quarantine.
///
/// - concurrent callers with the same token share one grant and its outcome
///   (whatever it is: a failing provider sees one request, not one per
///   caller);
/// - a granted rotation or an `invalid_grant` answers callers with the same
///   token for the late-arrival window (default 60 s), so a request sent with
///   the old cookie before the browser saw the new one gets the new tokens
///   instead of replaying the consumed token;
/// - an [in-doubt](GrantOutcome::InDoubt) outcome answers them for the
///   quarantine (default 24 h): the token is not sent again;
/// - both maps are bounded (default 10 000 and 100 000 entries) and drop
///   their *oldest* entry when full, never the newest (see
///   [`CoordinatorStats::memo_evictions`]);
/// - the grant runs on its own task: when every caller is cancelled, it still
///   completes and its outcome is remembered; if it panics (or its runtime
///   shuts down) it is in doubt, and the flight is removed.
///
/// It needs a Tokio runtime (the grant is spawned).
#[derive(Clone)]
pub struct InProcessCoordinator {
    inner: Arc<InProcessInner>,
}

impl fmt::Debug for InProcessCoordinator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InProcessCoordinator")
            .field("late_arrival_window", &self.inner.window)
            .field("quarantine", &self.inner.quarantine)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Default for InProcessCoordinator {
    fn default() -> Self {
        InProcessCoordinator::new(Duration::from_secs(60), 10_000)
    }
}

/// Default quarantine of an in-doubt token.
pub(crate) const DEFAULT_QUARANTINE: Duration = Duration::from_secs(24 * 3600);
/// Default capacity of the quarantine.
pub(crate) const DEFAULT_QUARANTINE_CAPACITY: usize = 100_000;

impl InProcessCoordinator {
    /// A coordinator whose memo answers late arrivals for `window`, keeping
    /// at most `capacity` outcomes, with the default quarantine (24 h,
    /// 100 000 tokens).
    pub fn new(window: Duration, capacity: u64) -> Self {
        Self::with_quarantine(
            window,
            capacity,
            DEFAULT_QUARANTINE,
            DEFAULT_QUARANTINE_CAPACITY,
        )
    }

    /// A coordinator with the late-arrival `window` and `capacity`, and an
    /// in-doubt `quarantine` of at most `quarantine_capacity` tokens.
    ///
    /// The quarantine is how long a token whose grant ended in doubt is not
    /// sent again. The default, 24 h, outlives most refresh tokens: the
    /// session continues on its access token and then signs in again. For a
    /// provider with a reuse grace period (Keycloak, Okta, Cognito: the old
    /// token is accepted again for a short time after a rotation), a
    /// quarantine shorter than that grace lets the next request retry an
    /// in-doubt token safely.
    pub fn with_quarantine(
        window: Duration,
        capacity: u64,
        quarantine: Duration,
        quarantine_capacity: usize,
    ) -> Self {
        InProcessCoordinator {
            inner: Arc::new(InProcessInner {
                state: Mutex::new(State {
                    flights: HashMap::new(),
                    late: Memo::new(usize::try_from(capacity).unwrap_or(usize::MAX)),
                    quarantine: Memo::new(quarantine_capacity),
                    eviction_logged: None,
                    joined: 0,
                    memo_hits: 0,
                    quarantine_hits: 0,
                    in_doubt: 0,
                }),
                window,
                quarantine,
            }),
        }
    }

    /// Starts the flight for `key`, joins the one in progress, or answers
    /// from memory.
    fn flight(
        &self,
        key: TokenKey,
        grant: GrantFuture,
    ) -> Result<watch::Receiver<Landed>, Arc<GrantOutcome>> {
        let mut state = self.inner.lock();
        let now = now();
        // Checked under the lock: a flight lands (memoises) and leaves the map
        // in one critical section, so a caller finds one or the other.
        if let Some(outcome) = state.quarantine.get(&key, now) {
            state.quarantine_hits += 1;
            tracing::debug!(token = %label(&key), "refresh answered from the quarantine: not sending an in-doubt token");
            return Err(outcome);
        }
        if let Some(outcome) = state.late.get(&key, now) {
            state.memo_hits += 1;
            tracing::debug!(token = %label(&key), "refresh answered from the late-arrival memo");
            return Err(outcome);
        }
        if let Some(flight) = state.flights.get(&key).cloned() {
            state.joined += 1;
            return Ok(flight);
        }
        let (tx, rx) = watch::channel(None);
        state.flights.insert(key, rx.clone());
        drop(state);
        let landing = Landing {
            inner: self.inner.clone(),
            key,
            tx: Some(tx),
        };
        tokio::spawn(async move {
            let outcome = grant.await;
            landing.land(outcome);
        });
        Ok(rx)
    }
}

/// The spawned grant's way home. Landing records the outcome and removes the
/// flight in one critical section; if the grant never lands (it panicked, or
/// its task was dropped at runtime shutdown), `Drop` lands it as in doubt —
/// the request may have been written — so no flight is left behind and the
/// token is not sent again.
struct Landing {
    inner: Arc<InProcessInner>,
    key: TokenKey,
    tx: Option<watch::Sender<Landed>>,
}

impl Landing {
    fn land(mut self, outcome: GrantOutcome) {
        self.record(outcome);
    }

    fn record(&mut self, outcome: GrantOutcome) {
        let Some(tx) = self.tx.take() else {
            return;
        };
        let outcome = Arc::new(outcome);
        let inner = &self.inner;
        let now = now();
        let mut state = inner.lock();
        let evicted = match outcome.retention() {
            Retention::Forget => 0,
            Retention::LateArrivalWindow => {
                state
                    .late
                    .insert(self.key, later(now, inner.window), outcome.clone(), now)
            }
            Retention::Quarantine => {
                state.in_doubt += 1;
                state.quarantine.insert(
                    self.key,
                    later(now, inner.quarantine),
                    outcome.clone(),
                    now,
                )
            }
        };
        if evicted > 0
            && state
                .eviction_logged
                .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10))
        {
            state.eviction_logged = Some(now);
            tracing::warn!(
                late_arrival_entries = state.late.len(),
                quarantined = state.quarantine.len(),
                evicted_total = state.late.evicted() + state.quarantine.evicted(),
                "refresh memo at capacity: dropped the oldest outcomes (raise late_arrival_capacity)"
            );
        }
        state.flights.remove(&self.key);
        drop(state);
        // Every waiter may be gone (all cancelled): nothing to do then.
        let _ = tx.send(Some(outcome));
    }
}

impl Drop for Landing {
    fn drop(&mut self) {
        if self.tx.is_some() {
            tracing::warn!(token = %label(&self.key), "a refresh grant ended without an outcome (panicked, or its runtime shut down); treating its token as in doubt");
            self.record(GrantOutcome::in_doubt(
                "the refresh grant ended without an outcome (it panicked, or the runtime shut down)",
            ));
        }
    }
}

impl RefreshCoordinator for InProcessCoordinator {
    fn coordinate(&self, refresh_token: &str, grant: GrantFuture) -> GrantFuture {
        let flight = self.flight(key_of(refresh_token), grant);
        Box::pin(async move {
            let mut flight = match flight {
                Ok(flight) => flight,
                Err(remembered) => return (*remembered).clone(),
            };
            let landed = match flight.wait_for(Option::is_some).await {
                Ok(landed) => landed.clone(),
                Err(_) => None,
            };
            match landed {
                Some(outcome) => (*outcome).clone(),
                // Unreachable by construction (a Landing always sends); kept
                // as in doubt, the conservative answer.
                None => GrantOutcome::in_doubt("the refresh in flight ended without an outcome"),
            }
        })
    }

    fn stats(&self) -> CoordinatorStats {
        let state = self.inner.lock();
        CoordinatorStats {
            joined: state.joined,
            memo_hits: state.memo_hits,
            quarantine_hits: state.quarantine_hits,
            memo_evictions: state.late.evicted() + state.quarantine.evicted(),
            in_doubt: state.in_doubt,
            ..CoordinatorStats::default()
        }
    }
}
