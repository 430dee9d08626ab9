//! A JWKS fetched over HTTP(S) and cached.
//!
//! The request path never waits for the network while the cached set is
//! fresh: [`RemoteKeySource::resolve_cached`] reads the current set through
//! an atomic pointer (no lock), and a refresh starts in the background
//! before the set expires. The network is awaited only on a cold start, after
//! expiry, or for a `kid` the set does not know — and that last case is
//! rate-limited so a storm of made-up kids cannot turn into a storm of
//! fetches:
//!
//! - **single flight**: concurrent fetches collapse into one HTTP request;
//!   every waiter gets its result;
//! - **unknown kid**: at most one refetch per cooldown (default 30 s);
//!   during the cooldown an unknown kid fails fast with `unknown_key` (it
//!   joins a refetch already in flight, never a queue);
//! - **stale-if-error**: when a refresh fails, the last good set keeps being
//!   served for a bounded time (default 24 h past its expiry), with a warning
//!   and a counter, then `key_unavailable`;
//! - **freshness** from `Cache-Control: max-age`, clamped (default 1 min to
//!   24 h, 10 min when absent), with `ETag` revalidation.

pub(crate) mod http;

use crate::discovery::{self, ProviderMetadata};
use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use keyward_core::{Error, ErrorKind, KeyQuery, KeySet, KeySource};
use reqwest::Url;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
        /// Follow up to 5 redirects (default: none are followed).
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

    /// Builds the source. No request is made until keys are needed (or
    /// [`RemoteKeySource::refresh`] is called).
    pub fn build(self) -> Result<RemoteKeySource, Error> {
        if let Location::Jwks(url) = &self.location {
            http::check_url(url, self.options.allow_http)?;
        }
        let client = match self.client {
            Some(client) => client,
            None => reqwest::Client::builder()
                .connect_timeout(self.options.timeout)
                .timeout(self.options.timeout)
                .redirect(if self.options.allow_redirects {
                    reqwest::redirect::Policy::limited(5)
                } else {
                    reqwest::redirect::Policy::none()
                })
                .user_agent(concat!("keyward/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| {
                    Error::new(
                        ErrorKind::KeyUnavailable,
                        format!("cannot build HTTP client: {e}"),
                    )
                })?,
        };
        Ok(RemoteKeySource {
            inner: Arc::new(Inner {
                client,
                location: self.location,
                options: self.options,
                jwks_url: Mutex::new(None),
                metadata: Mutex::new(None),
                cache: ArcSwapOption::empty(),
                flight: tokio::sync::Mutex::new(None),
                completed: AtomicU64::new(0),
                kid_refetch: Mutex::new(None),
                refreshing: AtomicBool::new(false),
                counters: Counters::default(),
            }),
        })
    }
}

/// The cached key set and what is known about its freshness.
struct Cached {
    keys: KeySet,
    etag: Option<String>,
    /// Until when the set may be used without asking the network.
    fresh_until: Instant,
    /// When a background refresh starts.
    refresh_at: Instant,
    /// After a failed refresh: the last moment the set may still be served.
    stale_limit: Instant,
    /// Whether this is the last good set served after a failure.
    stale: bool,
}

struct Inner {
    client: reqwest::Client,
    location: Location,
    options: Options,
    jwks_url: Mutex<Option<Url>>,
    metadata: Mutex<Option<ProviderMetadata>>,
    cache: ArcSwapOption<Cached>,
    /// Held while a fetch is in flight; holds the last fetch's result.
    flight: tokio::sync::Mutex<Option<Result<KeySet, Error>>>,
    /// Number of fetches completed (to tell whether one finished while a
    /// caller waited for `flight`).
    completed: AtomicU64,
    /// The last unknown-kid refetch: when it was claimed, and the value of
    /// `completed` at that moment.
    kid_refetch: Mutex<Option<(Instant, u64)>>,
    refreshing: AtomicBool,
    counters: Counters,
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
    inner: Arc<Inner>,
}

impl fmt::Debug for RemoteKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteKeySource")
            .field("location", &self.inner.location)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn parse_url(url: &str) -> Result<Url, Error> {
    Url::parse(url).map_err(|e| {
        Error::new(
            ErrorKind::KeyUnavailable,
            format!("{} is not a URL: {e}", Error::quote(url)),
        )
    })
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

    /// A builder for the JWKS at `jwks_url`.
    pub fn builder_for_jwks_url(jwks_url: &str) -> Result<RemoteKeySourceBuilder, Error> {
        Ok(RemoteKeySourceBuilder {
            location: Location::Jwks(parse_url(jwks_url)?),
            options: Options::default(),
            client: None,
        })
    }

    /// A builder for the JWKS discovered from `issuer`.
    pub fn builder_for_issuer(issuer: &str) -> RemoteKeySourceBuilder {
        RemoteKeySourceBuilder {
            location: Location::Issuer(issuer.to_owned()),
            options: Options::default(),
            client: None,
        }
    }

    /// What the source has done so far.
    pub fn stats(&self) -> RemoteStats {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RemoteStats {
            fetches: get(&c.fetches),
            not_modified: get(&c.not_modified),
            failures: get(&c.failures),
            stale_serves: get(&c.stale_serves),
            unknown_kid_refetches: get(&c.unknown_kid_refetches),
            cooldown_rejections: get(&c.cooldown_rejections),
            discovery_fetches: get(&c.discovery_fetches),
        }
    }

    /// The provider metadata, once discovered (issuer sources only).
    pub fn provider_metadata(&self) -> Option<ProviderMetadata> {
        self.inner.metadata.lock().ok().and_then(|m| m.clone())
    }

    /// Fetches the key set now (joining a fetch already in flight), for
    /// example to fail fast at start-up or to warm the cache.
    pub async fn refresh(&self) -> Result<KeySet, Error> {
        let observed = self.inner.completed.load(Ordering::Acquire);
        self.inner.fetch_shared(observed).await
    }

    /// The key set currently cached, if any (fresh or stale).
    pub fn cached_key_set(&self) -> Option<KeySet> {
        self.inner.cache.load().as_ref().map(|c| c.keys.clone())
    }
}

impl Inner {
    fn ttl(&self, max_age: Option<u64>) -> Duration {
        let o = &self.options;
        max_age
            .map(Duration::from_secs)
            .unwrap_or(o.default_ttl)
            .clamp(o.min_ttl, o.max_ttl.max(o.min_ttl))
    }

    async fn jwks_url(&self) -> Result<Url, Error> {
        let issuer = match &self.location {
            Location::Jwks(url) => return Ok(url.clone()),
            Location::Issuer(issuer) => issuer,
        };
        if let Some(url) = self.jwks_url.lock().ok().and_then(|u| u.clone()) {
            return Ok(url);
        }
        bump(&self.counters.discovery_fetches);
        let metadata = discovery::discover(
            &self.client,
            issuer,
            self.options.allow_http,
            self.options.max_body_bytes,
        )
        .await?;
        tracing::debug!(issuer = %issuer, jwks_uri = %metadata.jwks_uri, "discovered JWKS location");
        let url = metadata.jwks_uri.clone();
        if let Ok(mut slot) = self.jwks_url.lock() {
            *slot = Some(url.clone());
        }
        if let Ok(mut slot) = self.metadata.lock() {
            *slot = Some(metadata);
        }
        Ok(url)
    }

    /// One fetch, or the result of one that completed while we waited.
    async fn fetch_shared(self: &Arc<Self>, observed: u64) -> Result<KeySet, Error> {
        let mut last = self.flight.lock().await;
        if self.completed.load(Ordering::Acquire) != observed {
            if let Some(result) = last.as_ref() {
                return result.clone();
            }
        }
        let result = self.fetch_and_store().await;
        *last = Some(result.clone());
        self.completed.fetch_add(1, Ordering::AcqRel);
        result
    }

    /// Fetches, parses and caches; on failure serves the last good set while
    /// within its stale bound.
    async fn fetch_and_store(&self) -> Result<KeySet, Error> {
        let previous = self.cache.load_full();
        let etag = previous.as_ref().and_then(|c| c.etag.clone());
        match self.fetch(etag.as_deref(), previous.as_deref()).await {
            Ok(cached) => {
                let keys = cached.keys.clone();
                self.cache.store(Some(Arc::new(cached)));
                Ok(keys)
            }
            Err(error) => {
                bump(&self.counters.failures);
                let now = Instant::now();
                match previous {
                    Some(prev) if now < prev.stale_limit => {
                        tracing::warn!(
                            error = %error,
                            stale_for_secs = now.saturating_duration_since(prev.fresh_until).as_secs(),
                            "JWKS refresh failed; serving the last good key set"
                        );
                        // Retry no sooner than the cooldown, and never past
                        // the stale limit.
                        let retry = (now + self.options.unknown_kid_cooldown).min(prev.stale_limit);
                        let keys = prev.keys.clone();
                        self.cache.store(Some(Arc::new(Cached {
                            keys: prev.keys.clone(),
                            etag: prev.etag.clone(),
                            fresh_until: retry,
                            refresh_at: retry,
                            stale_limit: prev.stale_limit,
                            stale: true,
                        })));
                        Ok(keys)
                    }
                    Some(_) => {
                        tracing::error!(error = %error, "JWKS refresh failed and the last good key set is too old");
                        self.cache.store(None);
                        Err(error)
                    }
                    None => {
                        tracing::warn!(error = %error, "JWKS fetch failed");
                        Err(error)
                    }
                }
            }
        }
    }

    async fn fetch(&self, etag: Option<&str>, previous: Option<&Cached>) -> Result<Cached, Error> {
        let url = self.jwks_url().await?;
        http::check_url(&url, self.options.allow_http)?;
        bump(&self.counters.fetches);
        let fetched = http::get(&self.client, &url, etag, self.options.max_body_bytes).await?;
        let now = Instant::now();
        let (keys, max_age, etag) = match (fetched, previous) {
            (http::Fetched::NotModified { max_age, etag: new }, Some(prev)) => {
                bump(&self.counters.not_modified);
                (
                    prev.keys.clone(),
                    max_age,
                    new.or_else(|| prev.etag.clone()),
                )
            }
            (http::Fetched::NotModified { .. }, None) => {
                return Err(Error::new(
                    ErrorKind::KeyUnavailable,
                    format!("unexpected 304 from {url}"),
                ))
            }
            (
                http::Fetched::Body {
                    body,
                    max_age,
                    etag,
                },
                _,
            ) => {
                let text = std::str::from_utf8(&body).map_err(|_| {
                    Error::new(
                        ErrorKind::KeyUnavailable,
                        format!("the JWKS at {url} is not UTF-8"),
                    )
                })?;
                let keys = KeySet::from_jwks(text).map_err(|e| {
                    Error::new(
                        ErrorKind::KeyUnavailable,
                        format!("the JWKS at {url}: {}", e.message()),
                    )
                })?;
                let total = keys.len() + keys.skipped().len();
                if total > self.options.max_keys {
                    return Err(Error::new(
                        ErrorKind::KeyUnavailable,
                        format!(
                            "the JWKS at {url} has {total} keys, over the limit of {}",
                            self.options.max_keys
                        ),
                    ));
                }
                if let Some(prev) = previous {
                    log_changes(&prev.keys, &keys);
                }
                (keys, max_age, etag)
            }
        };
        let ttl = self.ttl(max_age);
        let fresh_until = now + ttl;
        tracing::debug!(keys = keys.len(), ttl_secs = ttl.as_secs(), "JWKS fetched");
        Ok(Cached {
            keys,
            etag,
            fresh_until,
            // refresh in the background once 80% of the lifetime has passed
            refresh_at: now + ttl.mul_f64(0.8),
            stale_limit: fresh_until + self.options.stale_if_error,
            stale: false,
        })
    }

    /// Claims the right to refetch for an unknown kid. `Ok` when claimed;
    /// otherwise the `completed` value at the time of the last claim.
    fn claim_kid_refetch(&self, now: Instant, observed: u64) -> Result<(), u64> {
        let Ok(mut last) = self.kid_refetch.lock() else {
            return Err(observed);
        };
        match *last {
            Some((at, generation))
                if now.saturating_duration_since(at) < self.options.unknown_kid_cooldown =>
            {
                Err(generation)
            }
            _ => {
                *last = Some((now, observed));
                Ok(())
            }
        }
    }

    fn spawn_refresh(self: &Arc<Self>) {
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            self.refreshing.store(false, Ordering::Release);
            return;
        };
        let this = Arc::clone(self);
        handle.spawn(async move {
            let observed = this.completed.load(Ordering::Acquire);
            let _ = this.fetch_shared(observed).await;
            this.refreshing.store(false, Ordering::Release);
        });
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

fn knows(keys: &KeySet, query: &KeyQuery<'_>) -> bool {
    match query.kid {
        Some(kid) => keys.contains_kid(kid),
        None => true,
    }
}

#[async_trait]
impl KeySource for RemoteKeySource {
    fn resolve_cached(&self, query: &KeyQuery<'_>) -> Option<KeySet> {
        let inner = &self.inner;
        let guard = inner.cache.load();
        let cached = guard.as_ref()?;
        let now = Instant::now();
        if now >= cached.fresh_until {
            return None;
        }
        if now >= cached.refresh_at && !cached.stale {
            inner.spawn_refresh();
        }
        if knows(&cached.keys, query) {
            if cached.stale {
                bump(&inner.counters.stale_serves);
            }
            return Some(cached.keys.clone());
        }
        // Unknown kid: answer "unknown" from memory during the cooldown
        // unless a refetch is still in flight (then `resolve` joins it).
        let in_cooldown =
            inner
                .kid_refetch
                .lock()
                .ok()
                .and_then(|l| *l)
                .is_some_and(|(at, generation)| {
                    now.saturating_duration_since(at) < inner.options.unknown_kid_cooldown
                        && inner.completed.load(Ordering::Acquire) != generation
                });
        if in_cooldown {
            bump(&inner.counters.cooldown_rejections);
            return Some(cached.keys.clone());
        }
        None
    }

    async fn resolve(&self, query: &KeyQuery<'_>) -> Result<KeySet, Error> {
        let inner = &self.inner;
        let observed = inner.completed.load(Ordering::Acquire);
        let now = Instant::now();
        let current = inner.cache.load_full();
        if let Some(cached) = current.as_ref().filter(|c| now < c.fresh_until) {
            if knows(&cached.keys, query) {
                return Ok(cached.keys.clone());
            }
            match inner.claim_kid_refetch(now, observed) {
                Ok(()) => {
                    bump(&inner.counters.unknown_kid_refetches);
                    tracing::debug!(kid = ?query.kid.map(Error::quote), "unknown kid: refetching JWKS");
                }
                // A refetch claimed in this cooldown has not completed yet:
                // join it rather than fail.
                Err(generation) if inner.completed.load(Ordering::Acquire) == generation => {
                    return inner.fetch_shared(generation).await;
                }
                Err(_) => {
                    bump(&inner.counters.cooldown_rejections);
                    return Ok(cached.keys.clone());
                }
            }
        }
        inner.fetch_shared(observed).await
    }

    /// `true` when the current (or last good) set lacks `kid`. A chain
    /// asks this on every lookup, so it also keeps the set current: past its
    /// refresh point a background refresh starts, even when an earlier
    /// (static) source answers every token.
    fn disowns(&self, kid: &str) -> bool {
        let guard = self.inner.cache.load();
        let Some(cached) = guard.as_ref() else {
            return false;
        };
        let now = Instant::now();
        if now >= cached.refresh_at {
            self.inner.spawn_refresh();
        }
        now < cached.stale_limit && !cached.keys.contains_kid(kid)
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
        .inner
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
    match http::get(client, url, None, options.max_body_bytes).await? {
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
