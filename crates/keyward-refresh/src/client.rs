//! The single-flight refresh client.

use crate::coordinator::{
    key_of, label, CoordinatorStats, InProcessCoordinator, RefreshCoordinator, DEFAULT_QUARANTINE,
    DEFAULT_QUARANTINE_CAPACITY,
};
use crate::outcome::{GrantFuture, GrantOutcome};
use crate::secret::Secret;
use crate::token_set::TokenSet;
use keyward_core::{Error, ErrorKind};
use reqwest::Url;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::OnceCell;

/// How the client authenticates to the token endpoint (RFC 6749 §2.3).
#[derive(Clone, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic with the form-urlencoded id and secret.
    ClientSecretBasic {
        /// The client id.
        client_id: String,
        /// The client secret.
        client_secret: String,
    },
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost {
        /// The client id.
        client_id: String,
        /// The client secret.
        client_secret: String,
    },
    /// A public client: only `client_id` in the form body.
    None {
        /// The client id.
        client_id: String,
    },
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientAuth::ClientSecretBasic { client_id, .. } => {
                write!(f, "ClientSecretBasic({client_id})")
            }
            ClientAuth::ClientSecretPost { client_id, .. } => {
                write!(f, "ClientSecretPost({client_id})")
            }
            ClientAuth::None { client_id } => write!(f, "None({client_id})"),
        }
    }
}

/// Counters of a [`RefreshClient`] (a snapshot).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RefreshStats {
    /// Grant attempts this client started (each ends in exactly one of the
    /// four outcomes counted below).
    pub grants: u64,
    /// Attempts that ended [granted](GrantOutcome::Granted).
    pub granted: u64,
    /// Attempts that ended [rejected](GrantOutcome::Rejected)
    /// (`invalid_grant`).
    pub invalid_grant: u64,
    /// Attempts that ended [not sent](GrantOutcome::NotSent) (safe to retry).
    pub not_sent: u64,
    /// Attempts that ended [in doubt](GrantOutcome::InDoubt) (the token is
    /// quarantined).
    pub in_doubt: u64,
    /// Calls that stopped waiting at the wait budget while their grant was
    /// still running (the grant went on; its outcome answers later calls).
    pub wait_budget_exceeded: u64,
    /// What the coordinator did: callers joined, memo and quarantine hits,
    /// evictions, and with Redis the leases won, waits, renewals and
    /// fallbacks.
    pub coordinator: CoordinatorStats,
}

#[derive(Default)]
struct Counters {
    grants: AtomicU64,
    granted: AtomicU64,
    invalid_grant: AtomicU64,
    not_sent: AtomicU64,
    in_doubt: AtomicU64,
    wait_budget_exceeded: AtomicU64,
}

enum Endpoint {
    Url(Url),
    Discover(String),
}

struct Inner {
    endpoint: Endpoint,
    resolved: OnceCell<Url>,
    auth: ClientAuth,
    extra: Vec<(String, String)>,
    http: reqwest::Client,
    /// How long one caller waits for a grant's outcome.
    wait_budget: Duration,
    /// Largest token-endpoint response body read.
    max_response_bytes: usize,
    /// Decides who sends a grant and shares its outcome.
    coordinator: Arc<dyn RefreshCoordinator>,
    counters: Counters,
}

/// Exchanges refresh tokens at a token endpoint, single-flight per token.
///
/// The single flight is the [`RefreshCoordinator`]'s job: by default one
/// process ([`InProcessCoordinator`]); with the `redis` feature, every replica
/// sharing a Redis (`RedisCoordinator`, see
/// [`RefreshClientBuilder::coordinator`]).
///
/// Each grant runs detached from the callers that wait for it, with its own
/// timeout ([`timeout`](RefreshClientBuilder::timeout), default 30 s); a
/// caller waits at most the [wait
/// budget](RefreshClientBuilder::wait_budget) (default 5 s) and then gets
/// `refresh_failed` while the grant goes on — its outcome answers the next
/// call. Each attempt ends in one [`GrantOutcome`]; see `docs/refresh.md`.
///
/// ```no_run
/// # async fn example() -> Result<(), keyward_core::Error> {
/// use keyward_refresh::{ClientAuth, RefreshClient};
/// let client = RefreshClient::builder()
///     .token_endpoint("https://issuer.example/token")?
///     .client_auth(ClientAuth::ClientSecretBasic {
///         client_id: "web".into(),
///         client_secret: std::env::var("CLIENT_SECRET").unwrap_or_default(),
///     })
///     .build()?;
/// let tokens = client.refresh("the-refresh-token-from-the-cookie").await?;
/// println!("access token valid until {:?}", tokens.expires_at);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RefreshClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for RefreshClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshClient")
            .field("auth", &self.inner.auth)
            .field("wait_budget", &self.inner.wait_budget)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Builds a [`RefreshClient`].
pub struct RefreshClientBuilder {
    endpoint: Option<Endpoint>,
    auth: ClientAuth,
    extra: Vec<(String, String)>,
    timeout: Duration,
    wait_budget: Duration,
    memo_ttl: Duration,
    memo_entries: u64,
    quarantine: Duration,
    quarantine_entries: usize,
    max_response_bytes: usize,
    allow_http: bool,
    coordinator: Option<Arc<dyn RefreshCoordinator>>,
}

/// Default cap of a token-endpoint response body.
const DEFAULT_MAX_RESPONSE_BYTES: usize = 64 * 1024;

impl RefreshClient {
    /// Starts building. Defaults: public client `""` (set
    /// [`client_auth`](RefreshClientBuilder::client_auth)), grant timeout
    /// 30 s, wait budget 5 s, 60 s late-arrival memo of at most 10 000
    /// entries, 24 h in-doubt quarantine of at most 100 000 tokens, 64 KiB
    /// response cap.
    pub fn builder() -> RefreshClientBuilder {
        RefreshClientBuilder {
            endpoint: None,
            auth: ClientAuth::None {
                client_id: String::new(),
            },
            extra: Vec::new(),
            timeout: Duration::from_secs(30),
            wait_budget: Duration::from_secs(5),
            memo_ttl: Duration::from_secs(60),
            memo_entries: 10_000,
            quarantine: DEFAULT_QUARANTINE,
            quarantine_entries: DEFAULT_QUARANTINE_CAPACITY,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            allow_http: false,
            coordinator: None,
        }
    }

    /// What the client has done so far.
    pub fn stats(&self) -> RefreshStats {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RefreshStats {
            grants: get(&c.grants),
            granted: get(&c.granted),
            invalid_grant: get(&c.invalid_grant),
            not_sent: get(&c.not_sent),
            in_doubt: get(&c.in_doubt),
            wait_budget_exceeded: get(&c.wait_budget_exceeded),
            coordinator: self.inner.coordinator.stats(),
        }
    }

    /// Exchanges `refresh_token` for new tokens.
    ///
    /// Single-flight: concurrent calls with the same token share one grant
    /// and its outcome. A call with a token whose rotation was granted within
    /// the late-arrival window (default 60 s) gets that grant's tokens
    /// without a request; a call with a token whose grant ended in doubt gets
    /// `refresh_failed` without a request for the quarantine (default 24 h).
    ///
    /// Errors: `invalid_grant` (the session is over), `refresh_failed`
    /// (anything else: not sent, in doubt, or the wait budget ran out while
    /// the grant goes on). Use [`refresh_outcome`](Self::refresh_outcome) to
    /// tell these apart.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenSet, Error> {
        self.refresh_outcome(refresh_token).await?.into_result()
    }

    /// Like [`refresh`](Self::refresh), but says which [`GrantOutcome`] the
    /// grant ended in. `Err` (kind `refresh_failed`) means this call has no
    /// outcome yet: the wait budget ran out while the grant is still running
    /// (it goes on, and its outcome answers the next call).
    ///
    /// Cancelling this call never cancels the grant.
    pub async fn refresh_outcome(&self, refresh_token: &str) -> Result<GrantOutcome, Error> {
        let client = self.clone();
        let token = Secret::new(refresh_token.to_owned());
        let grant: GrantFuture = Box::pin(async move { client.grant(token.expose()).await });
        let waiting = self.inner.coordinator.coordinate(refresh_token, grant);
        match tokio::time::timeout(self.inner.wait_budget, waiting).await {
            Ok(outcome) => Ok(outcome),
            Err(_) => {
                self.inner
                    .counters
                    .wait_budget_exceeded
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(token = %label(&key_of(refresh_token)), budget = ?self.inner.wait_budget, "stopped waiting for a refresh grant; it goes on and its outcome answers the next call");
                Err(refresh_failed(format!(
                    "the refresh grant is still running after the wait budget ({:?}); it goes on, and its outcome answers the next call",
                    self.inner.wait_budget
                )))
            }
        }
    }

    async fn endpoint(&self) -> Result<&Url, Error> {
        let inner = &self.inner;
        inner
            .resolved
            .get_or_try_init(|| async {
                match &inner.endpoint {
                    Endpoint::Url(url) => Ok(url.clone()),
                    Endpoint::Discover(issuer) => {
                        keyward_keys::discovery::fetch_provider_metadata(issuer)
                            .await
                            .map_err(|e| refresh_failed(format!("discovery: {}", e.message())))?
                            .token_endpoint
                            .ok_or_else(|| {
                                refresh_failed(
                                    "the provider publishes no token_endpoint".to_owned(),
                                )
                            })
                    }
                }
            })
            .await
    }

    /// One grant attempt, classified. Runs on the coordinator's task.
    async fn grant(&self, refresh_token: &str) -> GrantOutcome {
        let inner = &self.inner;
        let key = &key_of(refresh_token);
        inner.counters.grants.fetch_add(1, Ordering::Relaxed);
        let outcome = match self.endpoint().await {
            Ok(url) => {
                tracing::debug!(token = %label(key), "refreshing at the token endpoint");
                self.exchange(self.request(url, refresh_token), refresh_token)
                    .await
            }
            Err(e) => GrantOutcome::NotSent(e),
        };
        let counter = match &outcome {
            GrantOutcome::Granted(_) => {
                tracing::debug!(token = %label(key), "refreshed");
                &inner.counters.granted
            }
            GrantOutcome::Rejected(_) => {
                tracing::info!(token = %label(key), "refresh token rejected (invalid_grant): the session is over");
                &inner.counters.invalid_grant
            }
            GrantOutcome::NotSent(e) => {
                tracing::warn!(token = %label(key), error = %e, "refresh not sent (safe to retry)");
                &inner.counters.not_sent
            }
            GrantOutcome::InDoubt(e) => {
                tracing::warn!(token = %label(key), error = %e, "refresh in doubt: quarantining the token");
                &inner.counters.in_doubt
            }
        };
        counter.fetch_add(1, Ordering::Relaxed);
        outcome
    }

    fn request(&self, url: &Url, refresh_token: &str) -> reqwest::RequestBuilder {
        let inner = &self.inner;
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        let mut request = inner.http.post(url.clone());
        match &inner.auth {
            ClientAuth::ClientSecretBasic {
                client_id,
                client_secret,
            } => {
                let encode = |s: &str| {
                    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                };
                request = request.basic_auth(encode(client_id), Some(encode(client_secret)));
            }
            ClientAuth::ClientSecretPost {
                client_id,
                client_secret,
            } => {
                form.push(("client_id", client_id));
                form.push(("client_secret", client_secret));
            }
            ClientAuth::None { client_id } => form.push(("client_id", client_id)),
        }
        for (name, value) in &inner.extra {
            form.push((name, value));
        }
        request.form(&form)
    }

    /// Sends the grant and classifies what came back (the table in
    /// `docs/refresh.md`).
    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
        refresh_token: &str,
    ) -> GrantOutcome {
        let mut response = match request.send().await {
            Ok(response) => response,
            // No connection was made: not a byte of the request was written.
            Err(e) if e.is_connect() => {
                return GrantOutcome::not_sent(format!(
                    "the token endpoint could not be reached: {}",
                    e.without_url()
                ))
            }
            Err(e) if e.is_timeout() => {
                return GrantOutcome::in_doubt(
                    "the token endpoint did not answer within the grant timeout",
                )
            }
            Err(e) => {
                return GrantOutcome::in_doubt(format!(
                    "the exchange with the token endpoint failed after the request was sent: {}",
                    e.without_url()
                ))
            }
        };
        let status = response.status();
        let body = read_capped(&mut response, self.inner.max_response_bytes).await;
        if status.is_success() {
            // The provider processed the grant: from here on, anything but
            // usable tokens is in doubt (the rotated token may be lost).
            let body = match body {
                Ok(body) => body,
                Err(why) => {
                    return GrantOutcome::in_doubt(format!(
                        "the token endpoint answered {status} but {why}"
                    ))
                }
            };
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            return match TokenSet::from_response(&body, refresh_token, now) {
                Ok(tokens) => GrantOutcome::Granted(tokens),
                Err(e) => GrantOutcome::in_doubt(format!(
                    "the token endpoint answered {status}, {}",
                    e.message()
                )),
            };
        }
        if status.is_server_error() {
            // A gateway's 502/504 may come after the provider processed it.
            return GrantOutcome::in_doubt(format!("the token endpoint answered {status}"));
        }
        let code = body.ok().and_then(|body| {
            serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        });
        match (status.as_u16(), code.as_deref()) {
            (400 | 401, Some("invalid_grant")) => GrantOutcome::Rejected(Error::new(
                ErrorKind::InvalidGrant,
                "the provider rejected the refresh token (invalid_grant): the session is over",
            )),
            // A 4xx (or 1xx/3xx: redirects are not followed) is a refusal to
            // process the grant: nothing was consumed.
            (_, Some(code)) => GrantOutcome::not_sent(format!(
                "the token endpoint refused the grant: {status} with error {}",
                Error::quote(code)
            )),
            _ => GrantOutcome::not_sent(format!("the token endpoint refused the grant: {status}")),
        }
    }
}

/// Reads a response body of at most `cap` bytes.
async fn read_capped(response: &mut reqwest::Response, cap: usize) -> Result<Vec<u8>, String> {
    if response
        .content_length()
        .is_some_and(|n| n > u64::try_from(cap).unwrap_or(u64::MAX))
    {
        return Err(format!("its body is larger than the {cap}-byte cap"));
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len().saturating_add(chunk.len()) > cap {
                    return Err(format!("its body is larger than the {cap}-byte cap"));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) if e.is_timeout() => {
                return Err("its body did not arrive within the grant timeout".to_owned())
            }
            Err(e) => return Err(format!("reading its body failed: {}", e.without_url())),
        }
    }
}

fn refresh_failed(message: String) -> Error {
    Error::new(ErrorKind::RefreshFailed, message)
}

impl RefreshClientBuilder {
    /// The token endpoint URL.
    pub fn token_endpoint(mut self, url: &str) -> Result<Self, Error> {
        let url = Url::parse(url).map_err(|e| refresh_failed(format!("token endpoint: {e}")))?;
        self.endpoint = Some(Endpoint::Url(url));
        Ok(self)
    }

    /// Discovers the token endpoint from `issuer` (on first use).
    pub fn discover(mut self, issuer: &str) -> Self {
        self.endpoint = Some(Endpoint::Discover(issuer.to_owned()));
        self
    }

    /// How to authenticate the client.
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.auth = auth;
        self
    }

    /// An extra form parameter for every refresh (e.g. `resource`, `scope`).
    pub fn extra_param(mut self, name: &str, value: &str) -> Self {
        self.extra.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Timeout of one grant (connect, send, answer; default 30 s). The grant
    /// runs detached from the callers waiting for it, so this may be longer
    /// than any request's patience: a grant that completes late is not lost.
    /// A grant that times out after its request was written is in doubt.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Longest one caller waits for a grant's outcome (default 5 s). After
    /// it the call returns `refresh_failed` and the grant goes on; its
    /// outcome answers the next call. The cookie layer then serves the
    /// still-valid access token (best effort) or answers `503`.
    pub fn wait_budget(mut self, budget: Duration) -> Self {
        self.wait_budget = budget;
        self
    }

    /// How long a granted rotation (or an `invalid_grant`) answers late
    /// arrivals (default 60 s). Configures the default coordinator; a
    /// coordinator given to [`coordinator`](Self::coordinator) has its own.
    pub fn late_arrival_window(mut self, window: Duration) -> Self {
        self.memo_ttl = window;
        self
    }

    /// Most late-arrival entries kept (default 10 000), for the default
    /// coordinator. When full, the oldest entry goes, never the newest.
    pub fn late_arrival_capacity(mut self, entries: u64) -> Self {
        self.memo_entries = entries;
        self
    }

    /// How long a token whose grant ended in doubt is not sent again
    /// (default 24 h), and how many such tokens are kept (default 100 000),
    /// for the default coordinator. See
    /// [`InProcessCoordinator::with_quarantine`] for the trade-off and the
    /// opt-in for providers with a reuse grace period.
    pub fn in_doubt_quarantine(mut self, quarantine: Duration, capacity: usize) -> Self {
        self.quarantine = quarantine;
        self.quarantine_entries = capacity;
        self
    }

    /// Largest token-endpoint response body read (default 64 KiB). A larger
    /// 2xx answer is in doubt (the provider may have rotated).
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// Who coordinates refreshes (default: an [`InProcessCoordinator`] with
    /// the late-arrival window, capacity and quarantine set here). Give every
    /// `RefreshClient` of a replica set a `RedisCoordinator` on the same Redis
    /// to single-flight across replicas.
    pub fn coordinator(mut self, coordinator: impl RefreshCoordinator + 'static) -> Self {
        self.coordinator = Some(Arc::new(coordinator));
        self
    }

    /// Allow a plain-http token endpoint on a non-loopback host (default: no).
    pub fn allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<RefreshClient, Error> {
        let endpoint = self
            .endpoint
            .ok_or_else(|| refresh_failed("no token endpoint configured".to_owned()))?;
        if let Endpoint::Url(url) = &endpoint {
            let loopback = matches!(url.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback())
                || matches!(url.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback())
                || matches!(url.host(), Some(url::Host::Domain("localhost")));
            if url.scheme() != "https" && !(url.scheme() == "http" && (loopback || self.allow_http))
            {
                return Err(refresh_failed(format!(
                    "refusing a token endpoint over {}: {url}",
                    url.scheme()
                )));
            }
        }
        let http = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| refresh_failed(format!("cannot build HTTP client: {e}")))?;
        Ok(RefreshClient {
            inner: Arc::new(Inner {
                endpoint,
                resolved: OnceCell::new(),
                auth: self.auth,
                extra: self.extra,
                http,
                wait_budget: self.wait_budget,
                max_response_bytes: self.max_response_bytes,
                coordinator: self.coordinator.unwrap_or_else(|| {
                    Arc::new(InProcessCoordinator::with_quarantine(
                        self.memo_ttl,
                        self.memo_entries,
                        self.quarantine,
                        self.quarantine_entries,
                    ))
                }),
                counters: Counters::default(),
            }),
        })
    }
}
