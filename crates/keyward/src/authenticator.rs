//! `Authenticator`: the one call services make on every request.

use crate::credentials::{self, RequestHeaders};
use crate::token_cache::{Entry, Lookup, TokenCache, DEFAULT_TOKEN_CACHE_BYTES};
use crate::user_info::{Endpoint, ProfileField, UserInfo, UserInfoFailure};
use keyward_claims::{AccessTokenClaims, ClaimMapping, Session};
use keyward_core::{Clock, Error, ErrorKind, KeySource, SystemClock, Validation, Verifier};
use keyward_keys::{RemoteKeySource, RemoteKeySourceBuilder, RotatingKeySource, StaticKeySource};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Per-call options of [`Authenticator::authenticate`].
///
/// `Default` is `include_user_info: false`: the session comes from the
/// verified token alone and no request is made to the authorization server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuthenticateOptions {
    /// Complete the profile from the OIDC userinfo endpoint when the claims
    /// lack a needed field (see [`AuthenticatorBuilder::profile_fields`]).
    pub include_user_info: bool,
}

/// Authenticates requests from locally verified tokens. Cheap to clone.
///
/// ```no_run
/// # async fn example(request: http::Request<()>) -> Result<(), keyward::Error> {
/// use keyward::{AuthenticateOptions, Authenticator};
/// let auth = Authenticator::builder()
///     .issuer("https://issuer.example")
///     .audience("https://api.example")
///     .baked_then_discovered(&std::env::var("KEYWARD_JWKS").unwrap_or_default())
///     .build()?;
/// let session = auth.authenticate(&request, AuthenticateOptions { include_user_info: false }).await?;
/// println!("{:?} in {:?}", session.user_id(), session.organizations());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    verifier: Verifier,
    keys: Arc<dyn KeySource>,
    remote: Option<RemoteKeySource>,
    clock: Arc<dyn Clock>,
    mapping: ClaimMapping,
    bearer: bool,
    cookie: Option<String>,
    cache: Option<TokenCache>,
    user_info: Option<UserInfo>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("validation", self.inner.verifier.validation())
            .field("cookie", &self.inner.cookie)
            .field("token_cache", &self.inner.cache.is_some())
            .field("user_info", &self.inner.user_info.is_some())
            .finish_non_exhaustive()
    }
}

/// Which keys to use, decided at [`AuthenticatorBuilder::build`].
enum Keys {
    Source(Arc<dyn KeySource>),
    Baked(String),
    Discovered,
    BakedThenDiscovered(String),
    Url(String),
    Remote(RemoteKeySource),
    BakedThenRemote(String, RemoteKeySource),
}

/// Adjusts the builder of the remote source that `remote_jwks`,
/// `discovered_jwks` and `baked_then_discovered` create.
type RemoteConfig = Box<dyn FnOnce(RemoteKeySourceBuilder) -> RemoteKeySourceBuilder + Send>;

/// Builds an [`Authenticator`]; see [`Authenticator::builder`].
pub struct AuthenticatorBuilder {
    issuers: Vec<String>,
    audiences: Vec<String>,
    keys: Option<Keys>,
    remote_config: Option<RemoteConfig>,
    validation: Validation,
    mapping: ClaimMapping,
    bearer: bool,
    cookie: Option<String>,
    cache_bytes: Option<u64>,
    user_info: Option<Endpoint>,
    user_info_failure: UserInfoFailure,
    user_info_timeout: Duration,
    profile_fields: Vec<ProfileField>,
    clock: Arc<dyn Clock>,
}

impl Authenticator {
    /// Starts building. Defaults: Bearer tokens, no cookie, RFC 9068 access
    /// tokens not required (see [`AuthenticatorBuilder::validation`]),
    /// verified-token cache of 64 MiB ([`AuthenticatorBuilder::token_cache_bytes`]),
    /// no userinfo endpoint.
    pub fn builder() -> AuthenticatorBuilder {
        AuthenticatorBuilder {
            issuers: Vec::new(),
            audiences: Vec::new(),
            keys: None,
            remote_config: None,
            validation: Validation::new(),
            mapping: ClaimMapping::default(),
            bearer: true,
            cookie: None,
            cache_bytes: Some(DEFAULT_TOKEN_CACHE_BYTES),
            user_info: None,
            user_info_failure: UserInfoFailure::Fail,
            user_info_timeout: Duration::from_secs(5),
            profile_fields: vec![ProfileField::Email],
            clock: Arc::new(SystemClock),
        }
    }

    /// Authenticates a request (`http::Request`, `http::request::Parts` or
    /// a `HeaderMap`): the token from `Authorization: Bearer` or the session
    /// cookie. A request with neither fails with `no_credentials`.
    pub async fn authenticate<R: RequestHeaders + ?Sized>(
        &self,
        request: &R,
        options: AuthenticateOptions,
    ) -> Result<Session, Error> {
        let token = credentials::token(
            request.headers(),
            self.inner.bearer,
            self.inner.cookie.as_deref(),
        );
        match token {
            Ok(token) => self.authenticate_token(token, options).await,
            Err(e) => {
                tracing::debug!(outcome = e.kind().as_str(), "authenticate");
                Err(e)
            }
        }
    }

    /// Authenticates a token.
    pub async fn authenticate_token(
        &self,
        token: &str,
        options: AuthenticateOptions,
    ) -> Result<Session, Error> {
        let started = Instant::now();
        let span = tracing::debug_span!(
            "authenticate",
            outcome = tracing::field::Empty,
            kid = tracing::field::Empty,
            cache = tracing::field::Empty,
            micros = tracing::field::Empty,
        );
        let result = self.authenticate_in_span(token, options, &span).await;
        span.record(
            "outcome",
            result.as_ref().map_or_else(|e| e.kind().as_str(), |_| "ok"),
        );
        span.record("micros", started.elapsed().as_micros() as u64);
        result
    }

    async fn authenticate_in_span(
        &self,
        token: &str,
        options: AuthenticateOptions,
        span: &tracing::Span,
    ) -> Result<Session, Error> {
        let inner = &self.inner;
        let validation = inner.verifier.validation();
        // An oversized token is refused by the verifier before anything is
        // decoded; it must not cost a hash of its bytes first.
        let cache = inner
            .cache
            .as_ref()
            .filter(|_| token.len() <= validation.max_token_bytes());
        let cached =
            cache.map(|cache| cache.get(token, validation, inner.keys.as_ref(), inner.clock.now()));
        let session = match cached {
            Some(Lookup::Hit(session)) => {
                span.record("cache", "hit");
                session
            }
            _ => {
                span.record("cache", if inner.cache.is_some() { "miss" } else { "off" });
                let verified = inner.verifier.verify::<AccessTokenClaims>(token).await?;
                if let Some(kid) = verified.header().kid() {
                    span.record("kid", Error::quote(kid).as_str());
                }
                let alg = verified.header().alg();
                // the verifying key's kid, also when the token named none
                let kid = verified
                    .header()
                    .kid()
                    .or_else(|| verified.key().and_then(|key| key.kid()))
                    .map(str::to_owned);
                match cache {
                    Some(cache) => {
                        let key_set = verified.key_set().clone();
                        let (_, claims, payload) = verified.into_parts();
                        let session =
                            Session::from_verified_payload(claims, payload, &inner.mapping)?;
                        let entry = Entry::new(
                            token,
                            session.clone(),
                            kid.as_deref(),
                            alg,
                            key_set,
                            validation,
                        );
                        cache.insert(entry);
                        session
                    }
                    None => Session::from_claims(verified.into_claims(), &inner.mapping)?,
                }
            }
        };
        match (&inner.user_info, options.include_user_info) {
            (Some(user_info), true) => user_info.complete(token, session).await,
            (None, true) => Err(Error::new(
                ErrorKind::UserInfoUnavailable,
                "include_user_info was asked for but no userinfo endpoint is configured",
            )),
            _ => Ok(session),
        }
    }

    /// The key source in use.
    pub fn key_source(&self) -> &Arc<dyn KeySource> {
        &self.inner.keys
    }

    /// The remote key source in use, when the keys come (partly) from the
    /// network: for its [`stats`](RemoteKeySource::stats),
    /// [`state`](RemoteKeySource::state) and
    /// [`refresh`](RemoteKeySource::refresh) (for example to fail fast at
    /// start-up). `None` for baked keys and for [`AuthenticatorBuilder::keys`].
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), keyward::Error> {
    /// let auth = keyward::Authenticator::builder()
    ///     .issuer("https://issuer.example")
    ///     .audience("https://api.example")
    ///     .discovered_jwks()
    ///     .build()?;
    /// if let Some(remote) = auth.remote_key_source() {
    ///     remote.refresh().await?; // the issuer is reachable
    /// }
    /// # Ok(()) }
    /// ```
    pub fn remote_key_source(&self) -> Option<&RemoteKeySource> {
        self.inner.remote.as_ref()
    }
}

impl AuthenticatorBuilder {
    /// Accepts tokens from this issuer (repeatable). The first one is also
    /// where keys and userinfo are discovered, when asked to.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// Accepts tokens for this audience (repeatable).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Uses any key source.
    pub fn keys(mut self, source: impl KeySource + 'static) -> Self {
        self.keys = Some(Keys::Source(Arc::new(source)));
        self
    }

    /// Uses a JWKS baked into configuration only (no network).
    pub fn baked_jwks(mut self, jwks: &str) -> Self {
        self.keys = Some(Keys::Baked(jwks.to_owned()));
        self
    }

    /// Fetches the JWKS from this URL (cached).
    pub fn remote_jwks(mut self, url: &str) -> Self {
        self.keys = Some(Keys::Url(url.to_owned()));
        self
    }

    /// Discovers the JWKS from the first issuer (cached).
    pub fn discovered_jwks(mut self) -> Self {
        self.keys = Some(Keys::Discovered);
        self
    }

    /// The recommended set-up: the baked JWKS first, then the first issuer's
    /// discovered JWKS for keys it does not know (rotation without redeploy).
    pub fn baked_then_discovered(mut self, jwks: &str) -> Self {
        self.keys = Some(Keys::BakedThenDiscovered(jwks.to_owned()));
        self
    }

    /// Uses this configured remote source alone (tuned cooldown, TTLs,
    /// timeout, client; see [`RemoteKeySource::builder_for_issuer`]).
    pub fn remote_key_source(mut self, source: RemoteKeySource) -> Self {
        self.keys = Some(Keys::Remote(source));
        self
    }

    /// The recommended chain with a configured remote source: the baked
    /// JWKS first, then `source`.
    pub fn baked_then_remote(mut self, jwks: &str, source: RemoteKeySource) -> Self {
        self.keys = Some(Keys::BakedThenRemote(jwks.to_owned(), source));
        self
    }

    /// Adjusts the remote source that [`remote_jwks`](Self::remote_jwks),
    /// [`discovered_jwks`](Self::discovered_jwks) and
    /// [`baked_then_discovered`](Self::baked_then_discovered) create.
    ///
    /// ```
    /// use std::time::Duration;
    /// let auth = keyward::Authenticator::builder()
    ///     .issuer("https://issuer.example")
    ///     .audience("https://api.example")
    ///     .discovered_jwks()
    ///     .configure_remote(|remote| remote.unknown_kid_cooldown(Duration::from_secs(60)))
    ///     .build()
    ///     .unwrap();
    /// assert!(auth.remote_key_source().is_some());
    /// ```
    pub fn configure_remote(
        mut self,
        configure: impl FnOnce(RemoteKeySourceBuilder) -> RemoteKeySourceBuilder + Send + 'static,
    ) -> Self {
        self.remote_config = Some(Box::new(configure));
        self
    }

    /// Adjusts the validation rules (issuers and audiences set on this
    /// builder are added to them), e.g. `|v| v.typ("at+jwt")`.
    pub fn validation(mut self, adjust: impl FnOnce(Validation) -> Validation) -> Self {
        self.validation = adjust(self.validation);
        self
    }

    /// Where profile fields, organisations and projects are found.
    pub fn claim_mapping(mut self, mapping: ClaimMapping) -> Self {
        self.mapping = mapping;
        self
    }

    /// Also reads the token from this cookie (after the Bearer header).
    pub fn cookie(mut self, name: impl Into<String>) -> Self {
        self.cookie = Some(name.into());
        self
    }

    /// Whether the `Authorization: Bearer` header is read (default `true`).
    pub fn bearer(mut self, enabled: bool) -> Self {
        self.bearer = enabled;
        self
    }

    /// Memory budget of the verified-token cache, in bytes (default
    /// 64 MiB). Each entry is weighed as its token, its compact session
    /// (about the size of the token's payload plus its parsed organisations,
    /// projects and scopes) and a few hundred bytes of bookkeeping: at the
    /// default, about 16 000 entries of 1 KiB tokens or 1 000 of 32 KiB
    /// ones. When the budget is full, moka's TinyLFU policy decides which
    /// tokens stay (frequently used ones win over a stream of new ones).
    pub fn token_cache_bytes(mut self, max_bytes: u64) -> Self {
        self.cache_bytes = Some(max_bytes);
        self
    }

    /// Verifies every token from scratch.
    pub fn no_token_cache(mut self) -> Self {
        self.cache_bytes = None;
        self
    }

    /// The userinfo endpoint for `include_user_info: true`.
    pub fn user_info_endpoint(mut self, url: &str) -> Result<Self, Error> {
        let url = reqwest::Url::parse(url).map_err(|e| {
            Error::new(
                ErrorKind::UserInfoUnavailable,
                format!("userinfo endpoint: {e}"),
            )
        })?;
        self.user_info = Some(Endpoint::Url(url));
        Ok(self)
    }

    /// Discovers the userinfo endpoint from the first issuer (on first use).
    pub fn user_info_from_discovery(mut self) -> Self {
        self.user_info = Some(Endpoint::Discover(String::new()));
        self
    }

    /// What a failing userinfo endpoint means (default: fail).
    pub fn user_info_failure(mut self, policy: UserInfoFailure) -> Self {
        self.user_info_failure = policy;
        self
    }

    /// Timeout of a userinfo request (default 5 s).
    pub fn user_info_timeout(mut self, timeout: Duration) -> Self {
        self.user_info_timeout = timeout;
        self
    }

    /// The profile fields whose absence from the claims makes
    /// `include_user_info: true` call userinfo (default: email).
    pub fn profile_fields(mut self, fields: impl IntoIterator<Item = ProfileField>) -> Self {
        self.profile_fields = fields.into_iter().collect();
        self
    }

    /// The clock for time checks (default: the system clock).
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    fn first_issuer(&self, what: &str) -> Result<&str, Error> {
        self.issuers.first().map(String::as_str).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidConfiguration,
                format!("{what} needs an issuer"),
            )
        })
    }

    /// The remote source the shorthand variants create, configured.
    fn default_remote(
        &mut self,
        builder: RemoteKeySourceBuilder,
    ) -> Result<RemoteKeySource, Error> {
        match self.remote_config.take() {
            Some(configure) => configure(builder).build(),
            None => builder.build(),
        }
    }

    /// Builds the authenticator. Configuration mistakes — no key source, a
    /// bad JWKS or issuer URL, a baked JWKS without a usable key, discovery
    /// without an issuer — fail here with `invalid_configuration`.
    pub fn build(mut self) -> Result<Authenticator, Error> {
        fn baked(jwks: &str) -> Result<StaticKeySource, Error> {
            StaticKeySource::from_jwks(jwks).map_err(|e| {
                Error::new(
                    ErrorKind::InvalidConfiguration,
                    format!("the baked JWKS: {}", e.message()),
                )
            })
        }
        let (keys, remote): (Arc<dyn KeySource>, Option<RemoteKeySource>) = match self.keys.take() {
            None => {
                return Err(Error::new(
                    ErrorKind::InvalidConfiguration,
                    "no key source configured (keys, baked_jwks, remote_jwks, discovered_jwks, baked_then_discovered, remote_key_source or baked_then_remote)",
                ))
            }
            Some(Keys::Source(source)) => (source, None),
            Some(Keys::Baked(jwks)) => (Arc::new(baked(&jwks)?), None),
            Some(Keys::Url(url)) => {
                let remote = self.default_remote(RemoteKeySource::builder_for_jwks_url(&url)?)?;
                (Arc::new(remote.clone()), Some(remote))
            }
            Some(Keys::Discovered) => {
                let issuer = self.first_issuer("discovery")?.to_owned();
                let remote = self.default_remote(RemoteKeySource::builder_for_issuer(&issuer))?;
                (Arc::new(remote.clone()), Some(remote))
            }
            Some(Keys::BakedThenDiscovered(jwks)) => {
                let issuer = self.first_issuer("discovery")?.to_owned();
                let remote = self.default_remote(RemoteKeySource::builder_for_issuer(&issuer))?;
                let chain = RotatingKeySource::new().then(baked(&jwks)?).then(remote.clone());
                (Arc::new(chain), Some(remote))
            }
            Some(Keys::Remote(remote)) => (Arc::new(remote.clone()), Some(remote)),
            Some(Keys::BakedThenRemote(jwks, remote)) => {
                let chain = RotatingKeySource::new().then(baked(&jwks)?).then(remote.clone());
                (Arc::new(chain), Some(remote))
            }
        };
        if self.remote_config.is_some() {
            return Err(Error::new(
                ErrorKind::InvalidConfiguration,
                "configure_remote applies to remote_jwks, discovered_jwks or baked_then_discovered only",
            ));
        }
        let user_info = match &self.user_info {
            None => None,
            Some(endpoint) => {
                let endpoint = match endpoint {
                    Endpoint::Discover(_) => {
                        Endpoint::Discover(self.first_issuer("userinfo discovery")?.to_owned())
                    }
                    other => other.clone(),
                };
                Some(UserInfo::new(
                    endpoint,
                    self.user_info_failure,
                    self.profile_fields.clone(),
                    self.user_info_timeout,
                )?)
            }
        };
        let mut validation = self.validation;
        for issuer in &self.issuers {
            validation = validation.issuer(issuer.clone());
        }
        for audience in &self.audiences {
            validation = validation.audience(audience.clone());
        }
        let cache = self.cache_bytes.map(TokenCache::new);
        let verifier = Verifier::new(keys.clone(), validation).with_clock(self.clock.clone());
        Ok(Authenticator {
            inner: Arc::new(Inner {
                verifier,
                keys,
                remote,
                clock: self.clock,
                mapping: self.mapping,
                bearer: self.bearer,
                cookie: self.cookie,
                cache,
                user_info,
            }),
        })
    }
}
