//! A JWKS fetched over HTTP(S) and cached, with one explicit lifecycle.
//!
//! A refresher task owned by the source ([`worker`]) performs every fetch,
//! discovery included. Lookups never do I/O in their own future: they read
//! the current [`Snapshot`](lifecycle::Snapshot) through an atomic pointer
//! (no lock), or, when it cannot answer, await the shared result of the
//! attempt the refresher runs. Dropping a caller never cancels, restarts or
//! duplicates an attempt. The phases and what a lookup gets in each are in
//! [`lifecycle`] (and `docs/key-rotation.md`):
//!
//! - **single flight**: one attempt at a time; every waiter gets its result;
//! - **a bounded request rate**: every attempt sets the earliest start of
//!   the next one (the timed refresh at 80% of the lifetime, or a backoff
//!   after a failure), and an unknown `kid` claims at most one refetch per
//!   cooldown (default 30 s) — including before the first success;
//! - **cached keys never wait**: a lookup whose key is in the set (fresh, or
//!   stale while the endpoint fails) is answered from memory;
//! - **stale-if-error**: when a refresh fails, the last good set keeps being
//!   served for a bounded time (default 24 h past its expiry), with a
//!   warning and a counter, then `key_unavailable`; a fetch with no usable
//!   key is a failed fetch;
//! - **freshness** per RFC 9111 (`max-age` minus `Age`, else `Expires`
//!   minus `Date`), clamped (default 1 min to 24 h, 10 min when absent), with
//!   `ETag` revalidation.

pub(crate) mod http;
pub(crate) mod lifecycle;
mod worker;

use crate::discovery::{self, ProviderMetadata};
use arc_swap::ArcSwap;
use async_trait::async_trait;
use keyward_core::{Backend, Error, ErrorKind, Jwk, KeyQuery, KeySet, KeySource};
pub use lifecycle::SourceState;
use lifecycle::{later, Answer, FetchedSet, Phase, Snapshot};
use reqwest::Url;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use worker::{Request, RequestKind, Worker};

/// Counters of what a [`RemoteKeySource`] has done (a snapshot).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RemoteStats {
    /// JWKS HTTP requests sent (including revalidations).
    pub fetches: u64,
    /// Revalidations answered `304 Not Modified`.
    pub not_modified: u64,
    /// Fetches that failed (network, status, body, parse).
    pub failures: u64,
    /// Key lookups answered from the last good set after a failed refresh.
    pub stale_serves: u64,
    /// Refetches triggered by an unknown `kid`.
    pub unknown_kid_refetches: u64,
    /// Unknown `kid`s refused during the cooldown without a fetch.
    pub cooldown_rejections: u64,
    /// Lookups that waited for an attempt of the refresher (they had no
    /// usable key in memory).
    pub waits: u64,
    /// Discovery documents fetched.
    pub discovery_fetches: u64,
}

#[derive(Default)]
struct Counters {
    fetches: AtomicU64,
    not_modified: AtomicU64,
    failures: AtomicU64,
    stale_serves: AtomicU64,
    unknown_kid_refetches: AtomicU64,
    cooldown_rejections: AtomicU64,
    waits: AtomicU64,
    discovery_fetches: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Where the JWKS is.
#[derive(Clone, Debug)]
enum Location {
    Jwks(Url),
    Issuer(String),
}

/// Limits and timings of a [`RemoteKeySource`]; see the builder methods.
#[derive(Clone, Debug)]
struct Options {
    min_ttl: Duration,
    max_ttl: Duration,
    default_ttl: Duration,
    unknown_kid_cooldown: Duration,
    stale_if_error: Duration,
    max_backoff: Duration,
    discovery_ttl: Duration,
    timeout: Duration,
    max_body_bytes: usize,
    max_keys: usize,
    allow_redirects: bool,
    allow_http: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(24 * 3600),
            default_ttl: Duration::from_secs(600),
            unknown_kid_cooldown: Duration::from_secs(30),
            stale_if_error: Duration::from_secs(24 * 3600),
            max_backoff: Duration::from_secs(300),
            discovery_ttl: Duration::from_secs(24 * 3600),
            timeout: Duration::from_secs(5),
            max_body_bytes: 1024 * 1024,
            max_keys: 100,
            allow_redirects: false,
            allow_http: false,
        }
    }
}

/// Builds a [`RemoteKeySource`].
#[derive(Clone, Debug)]
pub struct RemoteKeySourceBuilder {
    location: Location,
    options: Options,
    client: Option<reqwest::Client>,
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident: $ty:ty) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.options.$name = value;
            self
        }
    };
}

impl RemoteKeySourceBuilder {
    setter!(
        /// Shortest time a fetched set is considered fresh (default 1 min),
        /// whatever `Cache-Control` says.
        min_ttl: Duration
    );
    setter!(
        /// Longest time a fetched set is considered fresh (default 24 h).
        max_ttl: Duration
    );
    setter!(
        /// Freshness when the response has no `max-age` (default 10 min).
        default_ttl: Duration
    );
    setter!(
        /// At most one refetch for unknown kids per this period (default 30 s).
        unknown_kid_cooldown: Duration
    );
    setter!(
        /// How long past its expiry the last good set is served while the
        /// endpoint fails (default 24 h).
        stale_if_error: Duration
    );
    setter!(
        /// Longest wait between two attempts while the endpoint keeps
        /// failing (default 5 min; never below the cooldown). The first
        /// retry comes one cooldown after a failure, then the wait doubles.
        max_backoff: Duration
    );
    setter!(
        /// How long a discovered `jwks_uri` is used before the discovery
        /// document is read again (default 24 h). It is also read again
        /// when the JWKS URL answers `404`/`410` or fails three times in a
        /// row.
        discovery_ttl: Duration
    );
    setter!(
        /// Connect and total timeout of one request (default 5 s).
        timeout: Duration
    );
    setter!(
        /// Largest accepted response body (default 1 MiB), enforced while
        /// reading.
        max_body_bytes: usize
    );
    setter!(
        /// Largest accepted number of keys in the JWKS (default 100).
        max_keys: usize
    );
    setter!(
        /// Follow up to 5 redirects, each hop checked against the
        /// https/loopback rule (default: none are followed).
        allow_redirects: bool
    );
    setter!(
        /// Allow plain `http` to non-loopback hosts (default: `https` only,
        /// except loopback).
        allow_http: bool
    );

    /// Uses this HTTP client instead of building one (its own timeouts and
    /// redirect policy then apply).
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Builds the source. No request is made until the source is first
    /// used (or [`RemoteKeySource::refresh`] is called); then its refresher
    /// task starts on the current Tokio runtime.
    ///
    /// A URL that is not `https` (or loopback `http`, or any `http` with
    /// [`allow_http`](Self::allow_http)) fails here with
    /// `invalid_configuration`, for a JWKS URL and for an issuer alike.
    pub fn build(self) -> Result<RemoteKeySource, Error> {
        let configuration =
            |e: Error| Error::new(ErrorKind::InvalidConfiguration, e.message().to_owned());
        match &self.location {
            Location::Jwks(url) => {
                http::check_url(url, self.options.allow_http).map_err(configuration)?
            }
            Location::Issuer(issuer) => {
                let url = discovery::discovery_url(issuer).map_err(configuration)?;
                http::check_url(&url, self.options.allow_http).map_err(configuration)?;
            }
        }
        let client = match self.client {
            Some(client) => client,
            None => reqwest::Client::builder()
                .connect_timeout(self.options.timeout)
                .timeout(self.options.timeout)
                .redirect(http::redirect_policy(
                    self.options.allow_redirects,
                    self.options.allow_http,
                ))
                .user_agent(concat!("keyward/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| {
                    Error::new(
                        ErrorKind::InvalidConfiguration,
                        format!("cannot build HTTP client: {e}"),
                    )
                })?,
        };
        Ok(RemoteKeySource {
            shared: Arc::new(Shared {
                client,
                location: self.location,
                options: self.options,
                metadata: Mutex::new(None),
                state: ArcSwap::from_pointee(Snapshot::empty(Instant::now())),
                counters: Counters::default(),
                refresher_running: AtomicBool::new(false),
            }),
            refresher: Arc::new(Refresher::default()),
        })
    }
}

/// What the source and its refresher task share. Only the refresher writes
/// `state` and `metadata`.
struct Shared {
    client: reqwest::Client,
    location: Location,
    options: Options,
    metadata: Mutex<Option<ProviderMetadata>>,
    state: ArcSwap<Snapshot>,
    counters: Counters,
    /// Whether a refresher task is running (cleared by the task when it
    /// ends, for example with the runtime that ran it).
    refresher_running: AtomicBool,
}

/// The handle's side of the refresher task: the sender of its requests.
/// Held only by handles, so the task ends when the last handle is dropped.
#[derive(Default)]
struct Refresher {
    requests: Mutex<Option<mpsc::UnboundedSender<Request>>>,
}

/// A JWKS fetched from a URL (or discovered from an issuer) and cached.
///
/// ```no_run
/// # async fn example() -> Result<(), keyward_core::Error> {
/// use keyward_keys::RemoteKeySource;
/// use std::time::Duration;
/// let keys = RemoteKeySource::builder_for_issuer("https://issuer.example")
///     .unknown_kid_cooldown(Duration::from_secs(60))
///     .build()?;
/// keys.refresh().await?; // optional: fail fast at start-up
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RemoteKeySource {
    shared: Arc<Shared>,
    refresher: Arc<Refresher>,
}

impl fmt::Debug for RemoteKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteKeySource")
            .field("location", &self.shared.location)
            .field("state", &self.state())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn parse_url(url: &str) -> Result<Url, Error> {
    Url::parse(url).map_err(|e| {
        Error::new(
            ErrorKind::InvalidConfiguration,
            format!("{} is not a URL: {e}", Error::quote(url)),
        )
    })
}

fn refresher_gone() -> Error {
    Error::new(
        ErrorKind::KeyUnavailable,
        "the key source's refresher task is not running (no Tokio runtime?)",
    )
}

impl RemoteKeySource {
    /// A source for the JWKS at `jwks_url`, with default options.
    pub fn from_jwks_url(jwks_url: &str) -> Result<Self, Error> {
        Self::builder_for_jwks_url(jwks_url)?.build()
    }

    /// A source that discovers the JWKS of `issuer` from
    /// `<issuer>/.well-known/openid-configuration` (whose `issuer` must equal
    /// `issuer` exactly), with default options.
    pub fn from_issuer(issuer: &str) -> Result<Self, Error> {
        Self::builder_for_issuer(issuer).build()
    }

    /// A builder for the JWKS at `jwks_url` (`invalid_configuration` when
    /// it is not a URL).
    pub fn builder_for_jwks_url(jwks_url: &str) -> Result<RemoteKeySourceBuilder, Error> {
        Ok(RemoteKeySourceBuilder {
            location: Location::Jwks(parse_url(jwks_url)?),
            options: Options::default(),
            client: None,
        })
    }

    /// A builder for the JWKS discovered from `issuer` (checked at
    /// [`build`](RemoteKeySourceBuilder::build)).
    pub fn builder_for_issuer(issuer: &str) -> RemoteKeySourceBuilder {
        RemoteKeySourceBuilder {
            location: Location::Issuer(issuer.to_owned()),
            options: Options::default(),
            client: None,
        }
    }

    /// What the source has done so far.
    pub fn stats(&self) -> RemoteStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RemoteStats {
            fetches: get(&c.fetches),
            not_modified: get(&c.not_modified),
            failures: get(&c.failures),
            stale_serves: get(&c.stale_serves),
            unknown_kid_refetches: get(&c.unknown_kid_refetches),
            cooldown_rejections: get(&c.cooldown_rejections),
            waits: get(&c.waits),
            discovery_fetches: get(&c.discovery_fetches),
        }
    }

    /// Where the source stands in its lifecycle (see [`SourceState`]).
    pub fn state(&self) -> SourceState {
        self.shared.state.load().state()
    }

    /// The provider metadata, once discovered (issuer sources only).
    pub fn provider_metadata(&self) -> Option<ProviderMetadata> {
        self.shared.metadata.lock().ok().and_then(|m| m.clone())
    }

    /// Fetches the key set with an attempt that starts after this call
    /// (joining one that started since, or following the one in flight), for
    /// example to fail fast at start-up. The rate limit holds: while the
    /// source backs off after a failure, this returns that failure without
    /// a request. Dropping the future does not cancel the attempt.
    pub async fn refresh(&self) -> Result<KeySet, Error> {
        let snapshot = self.ask(RequestKind::Refresh, Instant::now()).await?;
        match (&snapshot.phase, &snapshot.set) {
            (Phase::Fresh, Some(set)) => Ok(set.keys.clone()),
            (Phase::Stale { error, .. } | Phase::Failing { error, .. }, _) => Err(error.clone()),
            _ => Err(Error::new(
                ErrorKind::KeyUnavailable,
                "the JWKS has not been fetched yet",
            )),
        }
    }

    /// The key set currently served, if any (fresh or stale).
    pub fn cached_key_set(&self) -> Option<KeySet> {
        self.shared
            .state
            .load()
            .usable(Instant::now())
            .map(|set| set.keys.clone())
    }

    /// Starts the refresher on first use (it then fetches in the
    /// background), and again when the runtime that ran it has ended. One
    /// atomic load while it runs.
    fn ensure_started(&self) {
        if !self.shared.refresher_running.load(Ordering::Acquire) {
            let _ = self.requests();
        }
    }

    /// The refresher's request queue, starting the task on the current
    /// runtime when it is not running (first use, or its runtime ended).
    fn requests(&self) -> Option<mpsc::UnboundedSender<Request>> {
        let mut slot = self.refresher.requests.lock().ok()?;
        if let Some(requests) = slot
            .as_ref()
            .filter(|r| !r.is_closed() && self.shared.refresher_running.load(Ordering::Acquire))
        {
            return Some(requests.clone());
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (requests, queue) = mpsc::unbounded_channel();
        self.shared.refresher_running.store(true, Ordering::Release);
        runtime.spawn(Worker::new(Arc::clone(&self.shared), queue).run());
        let _ = requests.send(Request {
            kind: RequestKind::Warm,
            at: Instant::now(),
            reply: None,
        });
        *slot = Some(requests.clone());
        Some(requests)
    }

    /// Sends a request to the refresher and waits for its snapshot.
    async fn ask(&self, kind: RequestKind, at: Instant) -> Result<Arc<Snapshot>, Error> {
        let requests = self.requests().ok_or_else(refresher_gone)?;
        let (reply, answer) = oneshot::channel();
        requests
            .send(Request {
                kind,
                at,
                reply: Some(reply),
            })
            .map_err(|_| refresher_gone())?;
        answer.await.map_err(|_| refresher_gone())
    }

    fn count_fast_answer(
        &self,
        snapshot: &Snapshot,
        keys: &KeySet,
        query: &KeyQuery<'_>,
        now: Instant,
    ) {
        let counters = &self.shared.counters;
        if query.kid.is_some_and(|kid| !keys.contains_kid(kid)) {
            bump(&counters.cooldown_rejections);
        } else if snapshot.serving_stale(now) {
            bump(&counters.stale_serves);
        }
    }
}

impl Shared {
    fn ttl(&self, freshness: Option<Duration>) -> Duration {
        let o = &self.options;
        freshness
            .unwrap_or(o.default_ttl)
            .clamp(o.min_ttl, o.max_ttl.max(o.min_ttl))
    }

    /// One GET of the JWKS (a revalidation when the previous set has an
    /// ETag), parsed and checked. A document without a usable key is a
    /// failure: it must not replace a good set.
    async fn fetch(
        &self,
        url: &Url,
        previous: Option<&FetchedSet>,
    ) -> Result<FetchedSet, http::FetchError> {
        http::check_url(url, self.options.allow_http)?;
        bump(&self.counters.fetches);
        let sent_at = Instant::now();
        let etag = previous.and_then(|p| p.etag.as_deref());
        let fetched = http::get(&self.client, url, etag, self.options.max_body_bytes).await?;
        let (keys, lifetime, etag) = match (fetched, previous) {
            (
                http::Fetched::NotModified {
                    freshness,
                    etag: new,
                },
                Some(prev),
            ) => {
                bump(&self.counters.not_modified);
                // a 304 without caching headers keeps the previous lifetime
                let lifetime = freshness.map_or(prev.lifetime, |f| self.ttl(Some(f)));
                (
                    prev.keys.clone(),
                    lifetime,
                    new.or_else(|| prev.etag.clone()),
                )
            }
            (http::Fetched::NotModified { .. }, None) => {
                return Err(Error::new(
                    ErrorKind::KeyUnavailable,
                    format!("unexpected 304 from {url}"),
                )
                .into())
            }
            (
                http::Fetched::Body {
                    body,
                    freshness,
                    etag,
                },
                _,
            ) => (self.parse(url, &body)?, self.ttl(freshness), etag),
        };
        let fresh_until = later(sent_at, lifetime);
        Ok(FetchedSet {
            keys,
            etag,
            lifetime,
            fetched_at: sent_at,
            fresh_until,
            stale_limit: later(fresh_until, self.options.stale_if_error),
        })
    }

    fn parse(&self, url: &Url, body: &[u8]) -> Result<KeySet, Error> {
        let text = std::str::from_utf8(body).map_err(|_| {
            Error::new(
                ErrorKind::KeyUnavailable,
                format!("the JWKS at {url} is not UTF-8"),
            )
        })?;
        let keys = KeySet::from_jwks_limited(text, Backend::default(), self.options.max_keys)
            .map_err(|e| {
                Error::new(
                    ErrorKind::KeyUnavailable,
                    format!("the JWKS at {url}: {}", e.message()),
                )
            })?;
        if keys.is_empty() {
            let why = keys
                .skipped()
                .first()
                .map(|s| format!(" (first skipped key: {})", s.reason.message()))
                .unwrap_or_default();
            return Err(Error::new(
                ErrorKind::KeyUnavailable,
                format!(
                    "the JWKS at {url} has no usable key: {} skipped{why}",
                    keys.skipped().len()
                ),
            ));
        }
        Ok(keys)
    }
}

#[async_trait]
impl KeySource for RemoteKeySource {
    fn resolve_cached(&self, query: &KeyQuery<'_>) -> Option<KeySet> {
        self.ensure_started();
        let snapshot = self.shared.state.load();
        let now = Instant::now();
        match snapshot.answer(query.kid, now) {
            Answer::Keys(keys) => {
                self.count_fast_answer(&snapshot, &keys, query, now);
                Some(keys)
            }
            Answer::Unavailable(_) | Answer::Ask => None,
        }
    }

    async fn resolve(&self, query: &KeyQuery<'_>) -> Result<KeySet, Error> {
        let now = Instant::now();
        let snapshot = self.shared.state.load_full();
        match snapshot.answer(query.kid, now) {
            Answer::Keys(keys) => {
                self.count_fast_answer(&snapshot, &keys, query, now);
                return Ok(keys);
            }
            Answer::Unavailable(error) => return Err(error),
            Answer::Ask => {}
        }
        bump(&self.shared.counters.waits);
        let kid = query.kid.map(Box::from);
        let answer = self.ask(RequestKind::Lookup(kid), now).await?;
        answer.settle(query.kid, Instant::now())
    }

    /// `true` when the newest successful fetch lacks `kid` — also while
    /// that set is served stale or no longer served at all during an outage
    /// (an outage never brings a removed key back). Nothing fetched yet:
    /// `false`.
    fn disowns(&self, kid: &str) -> bool {
        self.ensure_started();
        self.shared
            .state
            .load()
            .authority
            .as_ref()
            .is_some_and(|keys| !keys.contains_kid(kid))
    }

    /// Like [`disowns`](KeySource::disowns), and a key without `kid` is
    /// recognised by its material.
    fn disowns_key(&self, key: &Jwk) -> bool {
        self.ensure_started();
        self.shared
            .state
            .load()
            .authority
            .as_ref()
            .is_some_and(|keys| !keys.offers(key))
    }
}

/// A JWKS document as fetched, for tools that print or store it.
#[derive(Clone, Debug)]
pub struct FetchedJwks {
    /// Where the document came from.
    pub url: Url,
    /// The document text, exactly as served (it may contain private members;
    /// see [`crate::public_jwks`]).
    pub document: String,
}

/// Fetches the JWKS at `location`, which is either a JWKS URL or an issuer
/// whose JWKS is discovered (tried in that order), with the default limits
/// (https except loopback, 5 s timeout, 1 MiB body, no redirects).
pub async fn fetch_jwks(location: &str) -> Result<FetchedJwks, Error> {
    let options = Options::default();
    let client = RemoteKeySource::builder_for_issuer(location)
        .build()?
        .shared
        .client
        .clone();
    let url = parse_url(location)?;
    http::check_url(&url, false)?;
    let as_jwks = fetch_document(&client, &url, &options).await;
    let jwks_error = match as_jwks {
        Ok(doc) if KeySet::from_jwks(&doc).is_ok() => {
            return Ok(FetchedJwks { url, document: doc })
        }
        Ok(_) => Error::new(ErrorKind::KeyUnavailable, format!("{url} is not a JWKS")),
        Err(e) => e,
    };
    match discovery::discover(&client, location, false, options.max_body_bytes).await {
        Ok(metadata) => {
            let document = fetch_document(&client, &metadata.jwks_uri, &options).await?;
            KeySet::from_jwks(&document).map_err(|e| {
                Error::new(
                    ErrorKind::KeyUnavailable,
                    format!("the JWKS at {}: {}", metadata.jwks_uri, e.message()),
                )
            })?;
            Ok(FetchedJwks {
                url: metadata.jwks_uri,
                document,
            })
        }
        Err(discovery_error) => Err(Error::new(
            ErrorKind::KeyUnavailable,
            format!(
                "{location} is neither a JWKS ({}) nor a discoverable issuer ({})",
                jwks_error.message(),
                discovery_error.message()
            ),
        )),
    }
}

async fn fetch_document(
    client: &reqwest::Client,
    url: &Url,
    options: &Options,
) -> Result<String, Error> {
    match http::get(client, url, None, options.max_body_bytes)
        .await
        .map_err(|f| f.error)?
    {
        http::Fetched::Body { body, .. } => String::from_utf8(body).map_err(|_| {
            Error::new(
                ErrorKind::KeyUnavailable,
                format!("the document at {url} is not UTF-8"),
            )
        }),
        http::Fetched::NotModified { .. } => {
            Err(Error::new(ErrorKind::KeyUnavailable, "unexpected 304"))
        }
    }
}
