//! Cookie sessions that survive refresh-token rotation (feature `axum`).
//!
//! [`CookieSessionLayer`] authenticates from the access-token cookie,
//! decides with a [`RefreshPolicy`] whether to refresh, refreshes through the
//! single-flight [`RefreshClient`] (so concurrent requests with one cookie
//! cause one grant and all receive the same new cookies), and:
//!
//! - tolerates a failed refresh while the access token is still valid (the
//!   request is served, no cookie is set);
//! - answers `401` and clears both cookies on `invalid_grant` (the session is
//!   over);
//! - answers `503` when the access token has expired and the provider cannot
//!   be reached (the session may well be fine: retry later);
//! - never refreshes on a WebSocket upgrade (its response cannot carry
//!   `Set-Cookie`): it is served while the access token is valid, `401` after;
//! - refreshes after the handler when the handler asks for it by putting
//!   [`RefreshSession`] into the response extensions (claims go stale after a
//!   mutation such as creating a project or changing memberships).
//!
//! Cookies are `HttpOnly; Secure; SameSite=Lax; Path=/` by default (names and
//! paths configurable, `Secure` can be dropped for local http development).
//! The access cookie lives until the access token expires; the refresh
//! cookie is a session cookie unless a max age is set.

use crate::axum::{json_error, reject, take_ready, ResponseFuture};
use crate::credentials::cookies_named;
use crate::{AuthenticateOptions, Authenticator};
use axum::response::Response;
use http::header::SET_COOKIE;
use http::{HeaderValue, Request, StatusCode};
use keyward_claims::Session;
use keyward_core::{Clock, Error, ErrorKind, SystemClock};
use keyward_refresh::{
    AccessTokenTimes, Decision, GrantOutcome, RefreshClient, RefreshPolicy, TokenSet,
};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// Put this into a response's extensions to have the layer refresh the
/// session (and set new cookies) on that response.
///
/// ```
/// # use axum::response::{IntoResponse, Response};
/// async fn create_project() -> Response {
///     // ... create it; the user's `projects` claim is now stale ...
///     let mut response = "created".into_response();
///     response.extensions_mut().insert(keyward::axum::RefreshSession);
///     response
/// }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct RefreshSession;

/// The `SameSite` attribute of the session cookies (RFC 6265bis §5.4.7).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SameSite {
    /// Sent only with same-site requests: the strongest CSRF defence, but a
    /// link from another site arrives without the session.
    Strict,
    /// Sent with same-site requests and top-level navigations (the default).
    #[default]
    Lax,
    /// Sent with cross-site requests too (an API called from another site);
    /// browsers require `Secure` with it, and so does
    /// [`CookieConfig::validate`].
    None,
}

impl SameSite {
    fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

/// Cookie names and attributes.
///
/// Defaults: names `__Host-kw_access` and `__Host-kw_refresh`; `Path=/`;
/// `HttpOnly; Secure; SameSite=Lax`; no `Domain`. The `__Host-` prefix makes
/// the browser refuse a cookie of that name unless it is `Secure`, has
/// `Path=/` and no `Domain` (RFC 6265bis §4.1.3.2): a sibling subdomain
/// cannot plant a session of its choosing ("cookie tossing"), and
/// [`validate`](Self::validate) refuses a configuration that breaks those
/// rules. The access cookie's `Max-Age` follows the access token; the
/// refresh cookie's is [`refresh_max_age`](Self::refresh_max_age), else the
/// provider's `refresh_expires_in`, else none (a session cookie).
///
/// Values: a token made only of cookie-value characters (RFC 6265 §4.1.1:
/// visible ASCII except `"` `,` `;` `\` — JWTs and most refresh tokens) is
/// written as is; any other token is written as `kw~` followed by its
/// percent-encoding, and read back the same way, never silently dropped.
/// Use [`set_cookie_headers`](Self::set_cookie_headers) in the handler that
/// completes the sign-in, so the first cookies follow the same rules.
///
/// When a request carries the same cookie name twice, the *first* one is
/// used: browsers send the cookie with the longest matching `Path` first
/// (RFC 6265 §5.4), which is the one the application set for this route.
/// A second value that differs is logged (a sign of a stale or planted
/// cookie; `__Host-` names prevent the planted kind).
#[derive(Clone, Debug)]
pub struct CookieConfig {
    access: String,
    refresh: String,
    access_path: String,
    refresh_path: String,
    secure: bool,
    same_site: SameSite,
    domain: Option<String>,
    refresh_max_age: Option<Duration>,
}

impl Default for CookieConfig {
    fn default() -> Self {
        CookieConfig {
            access: "__Host-kw_access".into(),
            refresh: "__Host-kw_refresh".into(),
            access_path: "/".into(),
            refresh_path: "/".into(),
            secure: true,
            same_site: SameSite::Lax,
            domain: None,
            refresh_max_age: None,
        }
    }
}

/// The prefix of an encoded cookie value.
const ENCODED: &str = "kw~";

/// RFC 6265 §4.1.1 `cookie-octet`.
fn is_cookie_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

/// RFC 9110 `tchar`: what a cookie name may contain.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The cookie value for `token`: as is when it is a valid cookie value,
/// else `kw~` and its percent-encoding.
fn encode_value(token: &str) -> String {
    if token.bytes().all(is_cookie_octet) && !token.starts_with(ENCODED) {
        return token.to_owned();
    }
    let mut out = String::with_capacity(ENCODED.len() + token.len() * 3);
    out.push_str(ENCODED);
    for b in token.bytes() {
        if is_cookie_octet(b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The token a cookie value holds (`None`: an encoded value that does not
/// decode).
fn decode_value(value: &str) -> Option<std::borrow::Cow<'_, str>> {
    let Some(encoded) = value.strip_prefix(ENCODED) else {
        return Some(std::borrow::Cow::Borrowed(value));
    };
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut rest = encoded.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let hex = tail.get(..2)?;
            let hex = std::str::from_utf8(hex).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = tail.get(2..)?;
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok().map(std::borrow::Cow::Owned)
}

fn invalid_config(message: String) -> Error {
    Error::new(ErrorKind::InvalidConfiguration, message)
}

impl CookieConfig {
    /// Names of the access and refresh cookies (default `__Host-kw_access`,
    /// `__Host-kw_refresh`).
    pub fn names(mut self, access: &str, refresh: &str) -> Self {
        self.access = access.into();
        self.refresh = refresh.into();
        self
    }

    /// Paths of the access and refresh cookies (default `/` for both;
    /// narrowing the refresh cookie's path to the routes behind this layer
    /// keeps it off other requests — not allowed with `__Host-` names).
    pub fn paths(mut self, access: &str, refresh: &str) -> Self {
        self.access_path = access.into();
        self.refresh_path = refresh.into();
        self
    }

    /// Whether cookies are `Secure` (default `true`; only turn off for local
    /// http development, with names without the `__Host-` prefix).
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// The `SameSite` attribute (default [`SameSite::Lax`]).
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }

    /// The `Domain` attribute (default none: the cookies go to this host
    /// only). Not allowed with `__Host-` names.
    pub fn domain(mut self, domain: &str) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// `Max-Age` of the refresh cookie (default: the provider's
    /// `refresh_expires_in` when it sends one, else none — a session
    /// cookie).
    pub fn refresh_max_age(mut self, max_age: Duration) -> Self {
        self.refresh_max_age = Some(max_age);
        self
    }

    /// Checks the configuration: names are RFC 9110 tokens and differ;
    /// `__Host-` names are `Secure` with `Path=/` and no `Domain`;
    /// `__Secure-` names and `SameSite=None` are `Secure`; paths start with
    /// `/`; paths and the domain hold no `;` or control characters.
    /// [`CookieSessionLayer::cookies`] calls it. Errors are
    /// `invalid_configuration`.
    pub fn validate(&self) -> Result<(), Error> {
        for name in [&self.access, &self.refresh] {
            if name.is_empty() || !name.bytes().all(is_tchar) {
                return Err(invalid_config(format!(
                    "the cookie name {} is not an RFC 9110 token",
                    Error::quote(name)
                )));
            }
        }
        if self.access == self.refresh {
            return Err(invalid_config(
                "the access and refresh cookies need different names".into(),
            ));
        }
        let attribute_ok =
            |v: &str| !v.is_empty() && v.bytes().all(|b| (0x20..0x7F).contains(&b) && b != b';');
        for path in [&self.access_path, &self.refresh_path] {
            if !path.starts_with('/') || !attribute_ok(path) {
                return Err(invalid_config(format!(
                    "the cookie path {} must start with / and hold no ; or control characters",
                    Error::quote(path)
                )));
            }
        }
        if let Some(domain) = &self.domain {
            if !attribute_ok(domain) || domain.contains(' ') {
                return Err(invalid_config(format!(
                    "the cookie domain {} is not a domain",
                    Error::quote(domain)
                )));
            }
        }
        for (name, path) in [
            (&self.access, &self.access_path),
            (&self.refresh, &self.refresh_path),
        ] {
            if name.starts_with("__Host-") && (!self.secure || path != "/" || self.domain.is_some())
            {
                return Err(invalid_config(format!(
                    "the cookie {} has the __Host- prefix, so it must be Secure with Path=/ and no Domain (browsers refuse it otherwise); rename it to drop the prefix",
                    Error::quote(name)
                )));
            }
            if name.starts_with("__Secure-") && !self.secure {
                return Err(invalid_config(format!(
                    "the cookie {} has the __Secure- prefix, so it must be Secure",
                    Error::quote(name)
                )));
            }
        }
        if self.same_site == SameSite::None && !self.secure {
            return Err(invalid_config(
                "SameSite=None cookies must be Secure (browsers refuse them otherwise)".into(),
            ));
        }
        Ok(())
    }

    /// The `Set-Cookie` values that store `tokens` (access cookie first),
    /// with the `Max-Age`s computed at `now` (Unix seconds). The layer sets
    /// these after each refresh; call it in the handler that completes the
    /// sign-in so the first cookies follow the same rules.
    ///
    /// ```
    /// use keyward::axum::CookieConfig;
    /// use keyward::TokenSet;
    /// let tokens = TokenSet::from_response(
    ///     br#"{"access_token":"eyJ.a.b","expires_in":600,"refresh_token":"r t;1"}"#,
    ///     "",
    ///     1000,
    /// )?;
    /// let [access, refresh] = CookieConfig::default().set_cookie_headers(&tokens, 1000)?;
    /// assert_eq!(
    ///     access.to_str().unwrap(),
    ///     "__Host-kw_access=eyJ.a.b; Max-Age=600; Path=/; HttpOnly; SameSite=Lax; Secure"
    /// );
    /// // not a valid cookie value: encoded, not dropped
    /// assert!(refresh.to_str().unwrap().starts_with("__Host-kw_refresh=kw~r%20t%3B1;"));
    /// # Ok::<(), keyward::Error>(())
    /// ```
    pub fn set_cookie_headers(
        &self,
        tokens: &TokenSet,
        now: u64,
    ) -> Result<[HeaderValue; 2], Error> {
        self.validate()?;
        let access_age = tokens.expires_at.map(|exp| exp.saturating_sub(now));
        let refresh_age = match self.refresh_max_age {
            Some(age) => Some(age.as_secs()),
            None => tokens.refresh_expires_at.map(|exp| exp.saturating_sub(now)),
        };
        let access = self.cookie(
            &self.access,
            &encode_value(tokens.access_token.expose()),
            access_age,
            &self.access_path,
        );
        let refresh = self.cookie(
            &self.refresh,
            &encode_value(tokens.refresh_token.expose()),
            refresh_age,
            &self.refresh_path,
        );
        Ok([header_value(access)?, header_value(refresh)?])
    }

    fn cookie(&self, name: &str, value: &str, max_age: Option<u64>, path: &str) -> String {
        let max_age = max_age
            .map(|age| format!("; Max-Age={age}"))
            .unwrap_or_default();
        let domain = self
            .domain
            .as_ref()
            .map(|d| format!("; Domain={d}"))
            .unwrap_or_default();
        let secure = if self.secure { "; Secure" } else { "" };
        format!(
            "{name}={value}{max_age}; Path={path}{domain}; HttpOnly; SameSite={}{secure}",
            self.same_site.as_str()
        )
    }

    fn clear(&self) -> Vec<HeaderValue> {
        [
            self.cookie(&self.access, "", Some(0), &self.access_path),
            self.cookie(&self.refresh, "", Some(0), &self.refresh_path),
        ]
        .into_iter()
        .filter_map(|c| HeaderValue::from_str(&c).ok())
        .collect()
    }

    /// The token in cookie `name` of a request (the first of that name; see
    /// the type's documentation).
    fn read<'h>(
        &self,
        headers: &'h http::HeaderMap,
        name: &str,
    ) -> Option<std::borrow::Cow<'h, str>> {
        let mut values = cookies_named(headers, name);
        let first = values.next()?;
        if values.any(|other| other != first) {
            tracing::warn!(cookie = name, "the request carries two different cookies of this name; using the first (the most specific path)");
        }
        let token = decode_value(first);
        if token.is_none() {
            tracing::debug!(
                cookie = name,
                "an encoded cookie value does not decode; ignoring it"
            );
        }
        token
    }
}

fn header_value(cookie: String) -> Result<HeaderValue, Error> {
    HeaderValue::from_str(&cookie)
        .map_err(|_| invalid_config("a cookie is not a valid header value".into()))
}

/// See the module documentation.
#[derive(Clone)]
pub struct CookieSessionLayer {
    shared: Arc<Shared>,
}

struct Shared {
    auth: Authenticator,
    refresh: RefreshClient,
    policy: RefreshPolicy,
    cookies: CookieConfig,
    clock: Arc<dyn Clock>,
}

impl CookieSessionLayer {
    /// A layer with the default policy (skew `min(30 s, lifetime / 4)`) and
    /// cookies ([`CookieConfig::default`]).
    pub fn new(auth: Authenticator, refresh: RefreshClient) -> Self {
        CookieSessionLayer {
            shared: Arc::new(Shared {
                auth,
                refresh,
                policy: RefreshPolicy::default(),
                cookies: CookieConfig::default(),
                clock: Arc::new(SystemClock),
            }),
        }
    }

    fn update(mut self, f: impl FnOnce(&mut Shared)) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            f(shared);
        } else {
            let old = &self.shared;
            let mut shared = Shared {
                auth: old.auth.clone(),
                refresh: old.refresh.clone(),
                policy: old.policy,
                cookies: old.cookies.clone(),
                clock: old.clock.clone(),
            };
            f(&mut shared);
            self.shared = Arc::new(shared);
        }
        self
    }

    /// The refresh policy.
    pub fn policy(self, policy: RefreshPolicy) -> Self {
        self.update(|s| s.policy = policy)
    }

    /// Cookie names and attributes, checked with [`CookieConfig::validate`]
    /// (`invalid_configuration` if a browser would refuse or misuse them).
    pub fn cookies(self, cookies: CookieConfig) -> Result<Self, Error> {
        cookies.validate()?;
        Ok(self.update(|s| s.cookies = cookies))
    }

    /// The clock for expiry decisions (default: the system clock).
    pub fn clock(self, clock: impl Clock + 'static) -> Self {
        self.update(|s| s.clock = Arc::new(clock))
    }
}

impl<S> tower_layer::Layer<S> for CookieSessionLayer {
    type Service = CookieSessionService<S>;
    fn layer(&self, inner: S) -> CookieSessionService<S> {
        CookieSessionService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service [`CookieSessionLayer`] wraps around yours.
#[derive(Clone)]
pub struct CookieSessionService<S> {
    inner: S,
    shared: Arc<Shared>,
}

fn add_cookies(response: &mut Response, cookies: impl IntoIterator<Item = HeaderValue>) {
    for value in cookies {
        response.headers_mut().append(SET_COOKIE, value);
    }
}

/// What a refresh attempt means for the session.
enum Refreshed {
    /// New tokens: they are set as cookies whatever happens next. With what
    /// authenticating the new access token said, when it was asked.
    Granted(TokenSet, Option<Result<Session, Error>>),
    /// `invalid_grant`: the session is over; the cookies are cleared.
    Rejected(Error),
    /// The grant may have been processed without an answer: the refresh
    /// token is quarantined, so this session cannot be refreshed.
    InDoubt(Error),
    /// Not sent, or still running after the wait budget: retry later.
    Unavailable(Error),
}

/// What the request phase decided.
enum Before {
    /// Serve with this session, and set these cookies on the response.
    Serve(Session, Option<TokenSet>),
    /// Answer with this response, without calling the handler.
    Respond(Response),
}

/// Access-token failures that a refresh cannot cure: the service cannot
/// verify *any* token right now, and refreshing would rotate the refresh
/// token on every request of the outage.
fn refresh_cannot_help(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::KeyUnavailable
            | ErrorKind::UserInfoUnavailable
            | ErrorKind::InvalidConfiguration
    )
}

fn times_of(session: &Session) -> Option<AccessTokenTimes> {
    let secs = |d: keyward_core::NumericDate| u64::try_from(d.as_secs()).unwrap_or(0);
    Some(AccessTokenTimes {
        issued_at: session.registered_claims().iat.map(secs),
        expires_at: session.expires_at().map(secs)?,
    })
}

impl Shared {
    fn now(&self) -> u64 {
        self.clock.now()
    }

    fn set_cookies(&self, response: &mut Response, tokens: &TokenSet) {
        match self.cookies.set_cookie_headers(tokens, self.now()) {
            Ok(cookies) => add_cookies(response, cookies),
            // Unreachable: the configuration was validated when it was set.
            Err(e) => {
                tracing::error!(error = %e, "could not write the refreshed session's cookies")
            }
        }
    }

    fn unauthorized_and_clear(&self, error: &Error) -> Response {
        let mut response = reject(error);
        add_cookies(&mut response, self.cookies.clear());
        response
    }

    /// A refresh-first whose token is in doubt: `401` so that the client
    /// signs in again (the quarantined token is not sent again, and the
    /// access token has expired), cookies kept (the session was not
    /// rejected; a new sign-in replaces them).
    fn in_doubt_response(error: &Error) -> Response {
        tracing::warn!(error = %error, "the session's refresh is in doubt and its access token has expired: asking the client to sign in again");
        json_error(
            StatusCode::UNAUTHORIZED,
            ErrorKind::RefreshFailed.as_str(),
            Some("Bearer error=\"invalid_token\""),
        )
    }

    /// Refreshes; with `authenticate`, also authenticates the new access
    /// token.
    async fn refresh(&self, refresh_token: &str, authenticate: bool) -> Refreshed {
        let outcome = match self.refresh.refresh_outcome(refresh_token).await {
            Ok(outcome) => outcome,
            Err(still_running) => return Refreshed::Unavailable(still_running),
        };
        match outcome {
            GrantOutcome::Granted(tokens) => {
                let session = if authenticate {
                    let verdict = self
                        .auth
                        .authenticate_token(
                            tokens.access_token.expose(),
                            AuthenticateOptions::default(),
                        )
                        .await;
                    if let Err(e) = &verdict {
                        tracing::warn!(error = %e, "the refreshed access token does not authenticate; its cookies are set anyway (the grant consumed the old refresh token)");
                    }
                    Some(verdict)
                } else {
                    None
                };
                Refreshed::Granted(tokens, session)
            }
            GrantOutcome::Rejected(e) => Refreshed::Rejected(e),
            GrantOutcome::InDoubt(e) => Refreshed::InDoubt(e),
            GrantOutcome::NotSent(e) => Refreshed::Unavailable(e),
            other => Refreshed::Unavailable(Error::new(
                ErrorKind::RefreshFailed,
                format!("unexpected refresh outcome {}", other.as_str()),
            )),
        }
    }

    async fn before(&self, parts: &http::request::Parts) -> Before {
        let access = self.cookies.read(&parts.headers, &self.cookies.access);
        let refresh_token = self.cookies.read(&parts.headers, &self.cookies.refresh);
        let (session, access_failure) = match access {
            Some(token) => match self
                .auth
                .authenticate_token(&token, AuthenticateOptions::default())
                .await
            {
                Ok(session) => (Some(session), None),
                Err(e) => (None, Some(e)),
            },
            None => (None, None),
        };
        if let Some(e) = &access_failure {
            if refresh_cannot_help(e.kind()) {
                return Before::Respond(reject(e));
            }
        }
        let session = match session {
            // A token without `exp` (accepted with `require_exp(false)`)
            // never needs a refresh.
            Some(s) if s.expires_at().is_none() => return Before::Serve(s, None),
            other => other,
        };
        let times = session.as_ref().and_then(times_of);
        let failure = || {
            access_failure
                .clone()
                .unwrap_or_else(|| Error::new(ErrorKind::NoCredentials, "no valid session cookie"))
        };
        match (
            self.policy.decide(self.now(), times, parts),
            session,
            refresh_token,
        ) {
            (Decision::UseAsIs | Decision::DoNotRefresh { .. }, Some(session), _) => {
                Before::Serve(session, None)
            }
            (Decision::DoNotRefresh { .. }, None, _) => Before::Respond(reject(&failure())),
            (Decision::RefreshBestEffort, Some(session), Some(rt)) => {
                match self.refresh(&rt, true).await {
                    Refreshed::Granted(tokens, Some(Ok(fresh))) => {
                        Before::Serve(fresh, Some(tokens))
                    }
                    // The old access token is still valid: serve with it and
                    // hand the browser the new cookies.
                    Refreshed::Granted(tokens, _) => Before::Serve(session, Some(tokens)),
                    Refreshed::Rejected(e) => Before::Respond(self.unauthorized_and_clear(&e)),
                    Refreshed::InDoubt(e) | Refreshed::Unavailable(e) => {
                        tracing::warn!(error = %e, "refresh failed; the access token is still valid, serving with it");
                        Before::Serve(session, None)
                    }
                }
            }
            (Decision::RefreshBestEffort, Some(session), None) => Before::Serve(session, None),
            // Refresh first: no access token, an expired one, or one that
            // does not authenticate (a key rotation, a truncated cookie).
            (_, _, Some(rt)) => match self.refresh(&rt, true).await {
                Refreshed::Granted(tokens, Some(Ok(fresh))) => Before::Serve(fresh, Some(tokens)),
                Refreshed::Granted(tokens, verdict) => {
                    let e = match verdict {
                        Some(Err(e)) => e,
                        _ => Error::new(
                            ErrorKind::NoCredentials,
                            "the refreshed session was not authenticated",
                        ),
                    };
                    let mut response = reject(&e);
                    self.set_cookies(&mut response, &tokens);
                    Before::Respond(response)
                }
                Refreshed::Rejected(e) => Before::Respond(self.unauthorized_and_clear(&e)),
                Refreshed::InDoubt(e) => Before::Respond(Self::in_doubt_response(&e)),
                Refreshed::Unavailable(e) => Before::Respond(reject(&e)),
            },
            (_, _, None) => Before::Respond(reject(&failure())),
        }
    }
}

impl<S, B> tower_service::Service<Request<B>> for CookieSessionService<S>
where
    S: tower_service::Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let mut inner = take_ready(&mut self.inner);
        let shared = self.shared.clone();
        let (mut parts, body) = request.into_parts();
        Box::pin(async move {
            let (session, mut new_tokens) = match shared.before(&parts).await {
                Before::Serve(session, tokens) => (session, tokens),
                Before::Respond(response) => return Ok(response),
            };
            let upgrade = keyward_refresh::is_upgrade(&parts);
            let refresh_token = match &new_tokens {
                Some(tokens) => Some(tokens.refresh_token.expose().to_owned()),
                None => shared
                    .cookies
                    .read(&parts.headers, &shared.cookies.refresh)
                    .map(|t| t.into_owned()),
            };
            parts.extensions.insert(session);
            let mut response = inner.call(Request::from_parts(parts, body)).await?;
            if response
                .extensions_mut()
                .remove::<RefreshSession>()
                .is_some()
                && !upgrade
            {
                if let Some(rt) = refresh_token {
                    match shared.refresh(&rt, false).await {
                        Refreshed::Granted(tokens, _) => new_tokens = Some(tokens),
                        Refreshed::Rejected(_) => {
                            add_cookies(&mut response, shared.cookies.clear());
                            return Ok(response);
                        }
                        Refreshed::InDoubt(e) | Refreshed::Unavailable(e) => {
                            tracing::warn!(error = %e, "refresh asked for by the handler failed")
                        }
                    }
                }
            }
            if let Some(tokens) = new_tokens {
                shared.set_cookies(&mut response, &tokens);
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_valid_ones_are_written_as_is() {
        for token in [
            "eyJhbGciOi.eyJzdWIi.c2ln",
            "rt-1-0-7919",
            "a b",
            "semi;colon",
            "quote\"d",
            "comma,back\\slash",
            "100%",
            "kw~looks-encoded",
            "kw~%ZZ",
            "ünïcode",
            "",
        ] {
            let value = encode_value(token);
            assert!(value.bytes().all(is_cookie_octet), "{value}");
            assert_eq!(decode_value(&value).as_deref(), Some(token), "{value}");
            let as_is = token.bytes().all(is_cookie_octet) && !token.starts_with(ENCODED);
            assert_eq!(value == token, as_is, "{token}");
        }
        for broken in ["kw~%", "kw~%4", "kw~%G0", "kw~%FF"] {
            assert_eq!(decode_value(broken), None, "{broken}");
        }
    }
}
