//! The single-flight refresh client.

use crate::coordinator::{
    key_of, label, CoordinatorStats, InProcessCoordinator, Outcome, OutcomeFuture,
    RefreshCoordinator,
};
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
pub struct RefreshStats {
    /// Requests this client sent to the token endpoint.
    pub grants: u64,
    /// Grants that ended in `invalid_grant`.
    pub invalid_grant: u64,
    /// Grants that failed transiently (`refresh_failed`).
    pub failed: u64,
    /// What the coordinator did: callers joined, memo hits, and with Redis
    /// the leases won, waits, renewals and fallbacks.
    pub coordinator: CoordinatorStats,
}

#[derive(Default)]
struct Counters {
    grants: AtomicU64,
    invalid_grant: AtomicU64,
    failed: AtomicU64,
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
    memo_ttl: Duration,
    memo_entries: u64,
    allow_http: bool,
    coordinator: Option<Arc<dyn RefreshCoordinator>>,
}

impl RefreshClient {
    /// Starts building. Defaults: public client `""` (set
    /// [`client_auth`](RefreshClientBuilder::client_auth)), 10 s timeout,
    /// 60 s late-arrival memo of at most 10 000 entries.
    pub fn builder() -> RefreshClientBuilder {
        RefreshClientBuilder {
            endpoint: None,
            auth: ClientAuth::None {
                client_id: String::new(),
            },
            extra: Vec::new(),
            timeout: Duration::from_secs(10),
            memo_ttl: Duration::from_secs(60),
            memo_entries: 10_000,
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
            invalid_grant: get(&c.invalid_grant),
            failed: get(&c.failed),
            coordinator: self.inner.coordinator.stats(),
        }
    }

    /// Exchanges `refresh_token` for new tokens.
    ///
    /// Single-flight: concurrent calls with the same token share one request
    /// and its result. A call with a token refreshed within the memo window
    /// (default 60 s) gets that refresh's result without a request. A
    /// transient failure is shared by the callers of that flight, not retried
    /// by each of them; a later call tries again.
    ///
    /// The request runs to completion even if this call is cancelled, so the
    /// other callers still get its outcome.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenSet, Error> {
        let client = self.clone();
        let token = Secret::new(refresh_token.to_owned());
        let grant: OutcomeFuture = Box::pin(async move { client.grant(token.expose()).await });
        self.inner
            .coordinator
            .coordinate(refresh_token, grant)
            .await
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

    async fn grant(&self, refresh_token: &str) -> Outcome {
        let inner = &self.inner;
        let key = &key_of(refresh_token);
        let url = self.endpoint().await?;
        inner.counters.grants.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(token = %label(key), "refreshing at the token endpoint");
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
        let outcome = self.exchange(request.form(&form), refresh_token).await;
        match &outcome {
            Ok(_) => tracing::debug!(token = %label(key), "refreshed"),
            Err(e) if e.kind() == ErrorKind::InvalidGrant => {
                inner.counters.invalid_grant.fetch_add(1, Ordering::Relaxed);
                tracing::info!(token = %label(key), "refresh token rejected (invalid_grant): the session is over");
            }
            Err(e) => {
                inner.counters.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(token = %label(key), error = %e, "refresh failed");
            }
        }
        outcome
    }

    async fn exchange(&self, request: reqwest::RequestBuilder, refresh_token: &str) -> Outcome {
        let response = request.send().await.map_err(|e| {
            refresh_failed(if e.is_timeout() {
                "the token endpoint timed out".to_owned()
            } else {
                format!(
                    "the token endpoint could not be reached: {}",
                    e.without_url()
                )
            })
        })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|e| {
            refresh_failed(format!("reading the token response: {}", e.without_url()))
        })?;
        if status.is_success() {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            return TokenSet::from_response(&body, refresh_token, now);
        }
        let code = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned));
        match (status.as_u16(), code.as_deref()) {
            (400 | 401, Some("invalid_grant")) => Err(Error::new(
                ErrorKind::InvalidGrant,
                "the provider rejected the refresh token (invalid_grant): the session is over",
            )),
            (_, Some(code)) => Err(refresh_failed(format!(
                "the token endpoint answered {status} with error {}",
                Error::quote(code)
            ))),
            _ => Err(refresh_failed(format!(
                "the token endpoint answered {status}"
            ))),
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

    /// Timeout of one request (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long a finished refresh answers late arrivals (default 60 s).
    /// Configures the default coordinator; a coordinator given to
    /// [`coordinator`](Self::coordinator) has its own window.
    pub fn late_arrival_window(mut self, window: Duration) -> Self {
        self.memo_ttl = window;
        self
    }

    /// Most memo entries kept (default 10 000), for the default coordinator.
    pub fn late_arrival_capacity(mut self, entries: u64) -> Self {
        self.memo_entries = entries;
        self
    }

    /// Who coordinates refreshes (default: an [`InProcessCoordinator`] with
    /// the late-arrival window and capacity set here). Give every
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
                coordinator: self.coordinator.unwrap_or_else(|| {
                    Arc::new(InProcessCoordinator::new(self.memo_ttl, self.memo_entries))
                }),
                counters: Counters::default(),
            }),
        })
    }
}
