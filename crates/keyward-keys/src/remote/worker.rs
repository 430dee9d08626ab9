//! The refresher task: the only place a remote key source does I/O.
//!
//! Shaped like tower's `buffer::Worker`: the task owns the fetch. A lookup
//! that the published snapshot cannot answer sends a [`Request`] with a
//! oneshot and may vanish at any time — the worker skips requests whose
//! caller is gone and never cancels, restarts or duplicates an attempt
//! because a caller left. An attempt's outcome is published once, as a new
//! [`Snapshot`], and the same snapshot is given to every waiter.
//!
//! Ordering invariants:
//!
//! 1. At most one attempt is in flight.
//! 2. Every completed attempt sets the earliest start of the next one: a
//!    success the timed refresh (80% of the lifetime, never sooner than one
//!    cooldown after the previous start), a failure the backoff (one
//!    cooldown, doubling, capped, jittered, never below one cooldown). Only
//!    an accepted unknown-kid claim starts an attempt outside this schedule,
//!    and at most one claim is accepted per cooldown. The request rate is
//!    therefore bounded whatever the traffic, before the first success too.
//! 3. A claim is served by an attempt that started after it: a claim made
//!    while an attempt is in flight waits for the follow-up attempt, which
//!    starts as soon as the current one completes (unless it failed: then
//!    the backoff holds and the claim gets the failure).
//! 4. The task ends when the last handle to the source is dropped.

use super::lifecycle::{later, FetchedSet, Phase, Snapshot};
use super::{bump, Location, Shared};
use crate::discovery::{self, ProviderMetadata};
use keyward_core::{Error, KeySet};
use reqwest::Url;
use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// The shortest interval between two attempts whatever the settings (a
/// zero cooldown or a zero lifetime must not become a busy loop).
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// Consecutive failures after which an issuer's discovery document is
/// read again before the next JWKS attempt.
const REDISCOVER_AFTER_FAILURES: u32 = 3;
/// The longest the task sleeps before re-checking its schedule.
const MAX_SLEEP: Duration = Duration::from_secs(3600);

/// A message to the refresher.
pub(crate) struct Request {
    pub(crate) kind: RequestKind,
    /// When the caller looked at the snapshot it could not use.
    pub(crate) at: Instant,
    /// Where the answer goes; `None` for [`RequestKind::Warm`].
    pub(crate) reply: Option<oneshot::Sender<Arc<Snapshot>>>,
}

/// What a [`Request`] asks for.
pub(crate) enum RequestKind {
    /// The source was used for the first time: fetch, nobody waits.
    Warm,
    /// A lookup for this kid (`None`: any key) that the snapshot could not
    /// answer.
    Lookup(Option<Box<str>>),
    /// [`RemoteKeySource::refresh`](super::RemoteKeySource::refresh): an
    /// attempt that starts after the call.
    Refresh,
}

type Waiter = oneshot::Sender<Arc<Snapshot>>;

/// The result of one attempt (discovery if needed, then the JWKS).
struct Outcome {
    result: Result<FetchedSet, Error>,
    /// The provider metadata, when this attempt read it.
    discovered: Option<ProviderMetadata>,
    /// The JWKS URL answered `404`/`410`.
    jwks_gone: bool,
}

struct InFlight {
    started_at: Instant,
    waiters: Vec<Waiter>,
    outcome: Pin<Box<dyn Future<Output = Outcome> + Send>>,
}

/// The discovered JWKS location of an issuer source.
struct Discovered {
    jwks_uri: Url,
    at: Instant,
}

pub(crate) struct Worker {
    shared: Arc<Shared>,
    requests: mpsc::UnboundedReceiver<Request>,
    attempt: Option<InFlight>,
    /// Waiters for the attempt after the one in flight (a claim or a
    /// refresh made after it started); non-empty means a follow-up is due,
    /// whether or not its callers are still there.
    follow_up: Vec<Waiter>,
    /// Consecutive failed attempts.
    failures: u32,
    last_attempt_at: Option<Instant>,
    last_claim_at: Option<Instant>,
    discovered: Option<Discovered>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        // the task ended (its handles are gone, or its runtime shut down):
        // the next lookup starts a new one
        self.shared
            .refresher_running
            .store(false, std::sync::atomic::Ordering::Release);
    }
}

impl Worker {
    pub(crate) fn new(shared: Arc<Shared>, requests: mpsc::UnboundedReceiver<Request>) -> Worker {
        // A worker replacing one whose runtime ended: nothing is in flight.
        let current = shared.state.load_full();
        if current.in_flight {
            shared.state.store(Arc::new(Snapshot {
                phase: current.phase.clone(),
                set: current.set.clone(),
                authority: current.authority.clone(),
                claims_open_at: current.claims_open_at,
                in_flight: false,
            }));
        }
        Worker {
            shared,
            requests,
            attempt: None,
            follow_up: Vec::new(),
            failures: 0,
            last_attempt_at: None,
            last_claim_at: None,
            discovered: None,
        }
    }

    pub(crate) async fn run(mut self) {
        loop {
            let now = Instant::now();
            let due = self.next_attempt_due();
            let wake = due.map_or(later(now, MAX_SLEEP), |due| due.min(later(now, MAX_SLEEP)));
            let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(wake));
            tokio::select! {
                biased;
                outcome = in_flight(&mut self.attempt) => self.complete(outcome),
                request = self.requests.recv() => match request {
                    Some(request) => self.handle(request),
                    None => return, // every handle is gone
                },
                () = sleep, if due.is_some() => {
                    if due.is_some_and(|due| Instant::now() >= due) {
                        self.start(Vec::new());
                    }
                }
            }
        }
    }

    /// When the schedule wants the next attempt (`None`: not before a
    /// request asks for one, or one is in flight).
    fn next_attempt_due(&self) -> Option<Instant> {
        if self.attempt.is_some() {
            return None;
        }
        let snapshot = self.shared.state.load();
        match &snapshot.phase {
            Phase::Empty => None,
            Phase::Fresh => snapshot.set.as_ref().map(|set| {
                let refresh_at = later(set.fetched_at, (set.lifetime / 5).saturating_mul(4));
                refresh_at.max(self.earliest_next_start())
            }),
            Phase::Stale { retry_at, .. } | Phase::Failing { retry_at, .. } => Some(*retry_at),
        }
    }

    /// The claim window: the cooldown, never below [`MIN_INTERVAL`].
    fn claim_cooldown(&self) -> Duration {
        self.shared.options.unknown_kid_cooldown.max(MIN_INTERVAL)
    }

    fn earliest_next_start(&self) -> Instant {
        let gap = self.shared.options.unknown_kid_cooldown.max(MIN_INTERVAL);
        self.last_attempt_at
            .map_or_else(Instant::now, |at| later(at, gap))
    }

    fn backing_off(snapshot: &Snapshot, now: Instant) -> bool {
        matches!(&snapshot.phase,
            Phase::Stale { retry_at, .. } | Phase::Failing { retry_at, .. } if now < *retry_at)
    }

    fn handle(&mut self, request: Request) {
        let Some(reply) = request.reply else {
            let empty = matches!(self.shared.state.load().phase, Phase::Empty);
            if empty && self.attempt.is_none() {
                self.start(Vec::new());
            }
            return;
        };
        if reply.is_closed() {
            return; // the caller is gone: nothing to do for it
        }
        let now = Instant::now();
        let snapshot = self.shared.state.load_full();
        match request.kind {
            RequestKind::Warm => {}
            RequestKind::Refresh => match &mut self.attempt {
                Some(attempt) if attempt.started_at >= request.at => attempt.waiters.push(reply),
                Some(_) => self.follow_up.push(reply),
                None if Self::backing_off(&snapshot, now) => send(reply, &snapshot),
                None => self.start(vec![reply]),
            },
            RequestKind::Lookup(kid) => {
                let Some(set) = snapshot.usable(now) else {
                    // No key at all: join the attempt in flight, or start one
                    // unless backing off or too soon after the last one.
                    let too_soon =
                        self.last_attempt_at.is_some() && now < self.earliest_next_start();
                    match &mut self.attempt {
                        Some(attempt) => attempt.waiters.push(reply),
                        None if too_soon || Self::backing_off(&snapshot, now) => {
                            send(reply, &snapshot)
                        }
                        None => self.start(vec![reply]),
                    }
                    return;
                };
                let Some(kid) = kid.filter(|kid| !set.keys.contains_kid(kid)) else {
                    send(reply, &snapshot); // answerable now (a fetch completed meanwhile)
                    return;
                };
                self.claim(&kid, request.at, now, reply, &snapshot);
            }
        }
    }

    /// A lookup for a kid the set lacks: a refetch claim.
    fn claim(
        &mut self,
        kid: &str,
        at: Instant,
        now: Instant,
        reply: Waiter,
        snapshot: &Arc<Snapshot>,
    ) {
        if Self::backing_off(snapshot, now) {
            send(reply, snapshot); // an outage: `key_unavailable` at once
            return;
        }
        let cooldown = self.claim_cooldown();
        let open = self
            .last_claim_at
            .is_none_or(|last| now >= later(last, cooldown));
        if !open {
            match &mut self.attempt {
                // joins the refetch in flight rather than fail
                Some(attempt) => attempt.waiters.push(reply),
                None => {
                    bump(&self.shared.counters.cooldown_rejections);
                    send(reply, snapshot);
                }
            }
            return;
        }
        self.last_claim_at = Some(now);
        bump(&self.shared.counters.unknown_kid_refetches);
        tracing::debug!(kid = %keyward_core::Error::quote(kid), "unknown kid: refetching JWKS");
        match &mut self.attempt {
            Some(attempt) if attempt.started_at >= at => attempt.waiters.push(reply),
            Some(_) => self.follow_up.push(reply),
            None => self.start(vec![reply]),
        }
        self.publish(self.shared.state.load_full().phase.clone(), None);
    }

    fn start(&mut self, waiters: Vec<Waiter>) {
        let now = Instant::now();
        self.last_attempt_at = Some(now);
        let jwks_url = match &self.shared.location {
            Location::Jwks(url) => Some(url.clone()),
            Location::Issuer(_) => self
                .discovered
                .as_ref()
                .filter(|d| now < later(d.at, self.shared.options.discovery_ttl))
                .map(|d| d.jwks_uri.clone()),
        };
        let previous = self.shared.state.load().set.clone();
        let outcome = Box::pin(attempt(Arc::clone(&self.shared), jwks_url, previous));
        self.attempt = Some(InFlight {
            started_at: now,
            waiters,
            outcome,
        });
        self.publish(self.shared.state.load_full().phase.clone(), None);
    }

    /// Publishes a snapshot with `phase` and, when given, a new set (else
    /// the current one), with the current claim window and flight flag.
    fn publish(&self, phase: Phase, set: Option<Option<Arc<FetchedSet>>>) -> Arc<Snapshot> {
        let now = Instant::now();
        let current = self.shared.state.load_full();
        let set = set.unwrap_or_else(|| current.set.clone());
        let authority = match (&phase, &set) {
            (Phase::Fresh, Some(set)) => Some(set.keys.clone()),
            _ => current.authority.clone(),
        };
        let snapshot = Arc::new(Snapshot {
            phase,
            set,
            authority,
            claims_open_at: self
                .last_claim_at
                .map_or(now, |at| later(at, self.claim_cooldown())),
            in_flight: self.attempt.is_some(),
        });
        self.shared.state.store(Arc::clone(&snapshot));
        snapshot
    }

    fn complete(&mut self, outcome: Outcome) {
        let Some(attempt) = self.attempt.take() else {
            return;
        };
        let now = Instant::now();
        if let Some(metadata) = outcome.discovered {
            self.discovered = Some(Discovered {
                jwks_uri: metadata.jwks_uri.clone(),
                at: attempt.started_at,
            });
            if let Ok(mut slot) = self.shared.metadata.lock() {
                *slot = Some(metadata);
            }
        }
        let current = self.shared.state.load_full();
        let (phase, set) = match outcome.result {
            Ok(fetched) => {
                self.failures = 0;
                if let Some(previous) = &current.set {
                    log_changes(&previous.keys, &fetched.keys);
                }
                tracing::debug!(
                    keys = fetched.keys.len(),
                    ttl_secs = fetched.lifetime.as_secs(),
                    "JWKS fetched"
                );
                (Phase::Fresh, Some(Arc::new(fetched)))
            }
            Err(error) => {
                bump(&self.shared.counters.failures);
                self.failures = self.failures.saturating_add(1);
                if outcome.jwks_gone || self.failures >= REDISCOVER_AFTER_FAILURES {
                    self.discovered = None; // read the discovery document again
                }
                let retry_in = self.backoff();
                let retry_at = later(now, retry_in);
                match current.set.clone().filter(|set| now < set.stale_limit) {
                    Some(set) => {
                        tracing::warn!(
                            error = %error,
                            stale_for_secs = now.saturating_duration_since(set.fresh_until).as_secs(),
                            retry_in_secs = retry_in.as_secs(),
                            "JWKS refresh failed; serving the last good key set"
                        );
                        (Phase::Stale { retry_at, error }, Some(set))
                    }
                    None => {
                        if current.set.is_some() {
                            tracing::error!(error = %error, "JWKS refresh failed and the last good key set is too old");
                        } else {
                            tracing::warn!(error = %error, retry_in_secs = retry_in.as_secs(), "JWKS fetch failed");
                        }
                        (Phase::Failing { retry_at, error }, None)
                    }
                }
            }
        };
        let snapshot = self.publish(phase, Some(set));
        for waiter in attempt.waiters {
            send(waiter, &snapshot);
        }
        let follow_up = std::mem::take(&mut self.follow_up);
        if !follow_up.is_empty() {
            if matches!(snapshot.phase, Phase::Fresh) {
                self.start(follow_up);
            } else {
                for waiter in follow_up {
                    send(waiter, &snapshot);
                }
            }
        }
    }

    /// The wait after the latest failure: one cooldown, doubling with each
    /// consecutive failure up to `max_backoff`, up to 20% shorter at random
    /// (replicas that failed together spread out), never below one cooldown.
    fn backoff(&self) -> Duration {
        let options = &self.shared.options;
        let floor = options.unknown_kid_cooldown.max(MIN_INTERVAL);
        let cap = options.max_backoff.max(floor);
        let doublings = self.failures.saturating_sub(1).min(30);
        let base = floor.saturating_mul(1 << doublings).min(cap);
        let permille = u32::try_from(random() % 200).unwrap_or(0);
        let jitter = (base / 1000).saturating_mul(permille);
        base.saturating_sub(jitter).max(floor)
    }
}

/// Gives `snapshot` to a waiter that is still there.
fn send(waiter: Waiter, snapshot: &Arc<Snapshot>) {
    if !waiter.is_closed() {
        let _ = waiter.send(Arc::clone(snapshot));
    }
}

async fn in_flight(attempt: &mut Option<InFlight>) -> Outcome {
    match attempt {
        Some(attempt) => attempt.outcome.as_mut().await,
        None => std::future::pending().await,
    }
}

/// A random number from the standard library's per-process hash keys (no
/// extra dependency; jitter needs no cryptographic quality).
fn random() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(0);
    hasher.finish()
}

/// One attempt: the discovery document when the JWKS location is not known
/// (or due again), then the JWKS.
async fn attempt(
    shared: Arc<Shared>,
    jwks_url: Option<Url>,
    previous: Option<Arc<FetchedSet>>,
) -> Outcome {
    let mut discovered = None;
    let url = match (jwks_url, &shared.location) {
        (Some(url), _) => url,
        (None, Location::Jwks(url)) => url.clone(),
        (None, Location::Issuer(issuer)) => {
            bump(&shared.counters.discovery_fetches);
            let options = &shared.options;
            match discovery::discover(
                &shared.client,
                issuer,
                options.allow_http,
                options.max_body_bytes,
            )
            .await
            {
                Ok(metadata) => {
                    tracing::debug!(issuer = %issuer, jwks_uri = %metadata.jwks_uri, "discovered JWKS location");
                    let url = metadata.jwks_uri.clone();
                    discovered = Some(metadata);
                    url
                }
                Err(error) => {
                    return Outcome {
                        result: Err(error),
                        discovered: None,
                        jwks_gone: false,
                    }
                }
            }
        }
    };
    match shared.fetch(&url, previous.as_deref()).await {
        Ok(set) => Outcome {
            result: Ok(set),
            discovered,
            jwks_gone: false,
        },
        Err(failure) => Outcome {
            result: Err(failure.error),
            discovered,
            jwks_gone: failure.gone,
        },
    }
}

fn log_changes(old: &KeySet, new: &KeySet) {
    for key in new.keys() {
        if let Some(kid) = key.kid() {
            if !old.contains_kid(kid) {
                tracing::info!(kid = %Error::quote(kid), "JWKS key added");
            }
        }
    }
    for key in old.keys() {
        if let Some(kid) = key.kid() {
            if !new.contains_kid(kid) {
                tracing::info!(kid = %Error::quote(kid), "JWKS key removed");
            }
        }
    }
}
