//! The lifecycle of one remote key set, as data.
//!
//! The refresher task ([`super::worker`]) is the only writer: after every
//! attempt (and when it starts one) it publishes a new immutable
//! [`Snapshot`] through an atomic pointer. Lookups only read snapshots and
//! decide with [`Snapshot::answer`] — the single place that says what a
//! lookup gets in each phase:
//!
//! | phase | meaning | kid in the set | kid not in the set | next attempt |
//! |---|---|---|---|---|
//! | `Empty` | nothing fetched, no attempt failed | — | wait for the first attempt | on first use |
//! | `Fresh` | the last attempt succeeded | answered from memory | refetch if a claim is open; else join an attempt in flight, or `unknown_key` at once | at 80% of the lifetime |
//! | `Stale` | the last attempt failed, the last good set is within `stale_if_error` | answered from memory | `key_unavailable` at once during the backoff, then a claim | at `retry_at` (backoff) |
//! | `Failing` | the last attempt failed, no usable set | — | `key_unavailable` at once | at `retry_at` (backoff) |
//!
//! Time alone never makes a lookup wait: a set past its freshness but not
//! past its stale limit is still served (the refresher is already on it).

use keyward_core::{Error, ErrorKind, KeySet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A duration added to an instant without overflow: settings such as
/// `Duration::MAX` mean "practically never", not a panic.
pub(crate) fn later(at: Instant, by: Duration) -> Instant {
    /// Far enough to never happen, near enough to be representable.
    const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    at.checked_add(by)
        .or_else(|| at.checked_add(FAR))
        .unwrap_or(at)
}

/// A key set from a successful fetch, and its freshness.
#[derive(Debug)]
pub(crate) struct FetchedSet {
    pub(crate) keys: KeySet,
    pub(crate) etag: Option<String>,
    /// The freshness lifetime given to this set (after clamping); a `304`
    /// without caching headers keeps it.
    pub(crate) lifetime: Duration,
    /// When the request that produced (or revalidated) the set was sent.
    pub(crate) fetched_at: Instant,
    /// Until when the set is fresh.
    pub(crate) fresh_until: Instant,
    /// The last moment the set may be served at all (fresh, or stale while
    /// the endpoint fails).
    pub(crate) stale_limit: Instant,
}

/// Where the source stands after its last attempt.
#[derive(Clone, Debug)]
pub(crate) enum Phase {
    /// Nothing fetched yet and no attempt has failed.
    Empty,
    /// The last attempt succeeded.
    Fresh,
    /// The last attempt failed; the last good set is still served.
    Stale { retry_at: Instant, error: Error },
    /// The last attempt failed and no set may be served.
    Failing { retry_at: Instant, error: Error },
}

/// What a [`RemoteKeySource`](super::RemoteKeySource) is doing, for
/// operators (see [`RemoteKeySource::state`](super::RemoteKeySource::state)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SourceState {
    /// No key set yet, and no attempt has failed (nothing used the source
    /// yet, or its first fetch is in flight).
    Empty,
    /// The last fetch succeeded.
    Fresh,
    /// The last fetch failed; the last good set is served until its stale
    /// limit while the endpoint is retried with backoff.
    Stale,
    /// Fetches fail and no key set may be served: every lookup is
    /// `key_unavailable` until a retry succeeds.
    Failing,
}

/// One published state of the source. Immutable; replaced as a whole.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) phase: Phase,
    /// The newest successfully fetched set (absent in `Empty` and
    /// `Failing`).
    pub(crate) set: Option<Arc<FetchedSet>>,
    /// The keys of the newest successful fetch, kept after `set` may no
    /// longer be served: what the source disowns.
    pub(crate) authority: Option<KeySet>,
    /// From when a lookup for a kid the set lacks may claim a refetch.
    pub(crate) claims_open_at: Instant,
    /// Whether an attempt is in flight.
    pub(crate) in_flight: bool,
}

/// What a lookup gets from a snapshot.
pub(crate) enum Answer {
    /// A final answer: the set has the kid, or the source is sure it does
    /// not (the verifier then says `unknown_key`).
    Keys(KeySet),
    /// A final `key_unavailable`, without waiting.
    Unavailable(Error),
    /// Only the refresher can answer: ask it and wait for its attempt.
    Ask,
}

impl Snapshot {
    /// The state before the first attempt.
    pub(crate) fn empty(now: Instant) -> Snapshot {
        Snapshot {
            phase: Phase::Empty,
            set: None,
            authority: None,
            claims_open_at: now,
            in_flight: false,
        }
    }

    /// The set, if it may be served at `now`.
    pub(crate) fn usable(&self, now: Instant) -> Option<&FetchedSet> {
        self.set.as_deref().filter(|set| now < set.stale_limit)
    }

    /// Whether a set is served although it is not fresh (a failed refresh,
    /// or a refresh not done by its expiry).
    pub(crate) fn serving_stale(&self, now: Instant) -> bool {
        matches!(self.phase, Phase::Stale { .. })
            || self.usable(now).is_some_and(|set| now >= set.fresh_until)
    }

    pub(crate) fn state(&self) -> SourceState {
        match self.phase {
            Phase::Empty => SourceState::Empty,
            Phase::Fresh => SourceState::Fresh,
            Phase::Stale { .. } => SourceState::Stale,
            Phase::Failing { .. } => SourceState::Failing,
        }
    }

    /// The answer to a lookup for `kid` (`None`: a token without `kid`,
    /// which any set can answer) at `now`, before asking the refresher.
    pub(crate) fn answer(&self, kid: Option<&str>, now: Instant) -> Answer {
        let backing_off = match &self.phase {
            Phase::Stale { retry_at, error } | Phase::Failing { retry_at, error }
                if now < *retry_at && !self.in_flight =>
            {
                Some(error)
            }
            _ => None,
        };
        match self.usable(now) {
            Some(set) if kid.is_none_or(|kid| set.keys.contains_kid(kid)) => {
                Answer::Keys(set.keys.clone())
            }
            // the set lacks the kid
            Some(set) => match backing_off {
                Some(error) => Answer::Unavailable(outage(kid, error)),
                None if matches!(self.phase, Phase::Fresh)
                    && !self.in_flight
                    && now < self.claims_open_at =>
                {
                    Answer::Keys(set.keys.clone())
                }
                None => Answer::Ask,
            },
            None => match backing_off {
                Some(error) => Answer::Unavailable(error.clone()),
                None => Answer::Ask,
            },
        }
    }

    /// The answer after the refresher replied with this snapshot: like
    /// [`answer`](Self::answer), but final.
    pub(crate) fn settle(&self, kid: Option<&str>, now: Instant) -> Result<KeySet, Error> {
        match (self.usable(now), &self.phase) {
            (Some(set), _) if kid.is_none_or(|kid| set.keys.contains_kid(kid)) => {
                Ok(set.keys.clone())
            }
            (Some(_), Phase::Stale { error, .. } | Phase::Failing { error, .. }) => {
                Err(outage(kid, error))
            }
            (Some(set), Phase::Fresh | Phase::Empty) => Ok(set.keys.clone()),
            (None, Phase::Stale { error, .. } | Phase::Failing { error, .. }) => Err(error.clone()),
            (None, Phase::Fresh | Phase::Empty) => Err(Error::new(
                ErrorKind::KeyUnavailable,
                "the JWKS has not been fetched yet",
            )),
        }
    }
}

/// `key_unavailable` for a kid missing from a set served during an outage:
/// the issuer may have published it, the source cannot tell.
fn outage(kid: Option<&str>, error: &Error) -> Error {
    Error::new(
        ErrorKind::KeyUnavailable,
        format!(
            "key {} is not in the last good key set and the JWKS endpoint is failing ({})",
            kid.map_or_else(|| "(no kid)".to_owned(), Error::quote),
            error.message()
        ),
    )
}
