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

use crate::axum::{reject, take_ready, ResponseFuture};
use crate::credentials::cookie;
use crate::{AuthenticateOptions, Authenticator};
use axum::response::Response;
use http::header::SET_COOKIE;
use http::{HeaderValue, Request};
use keyward_claims::Session;
use keyward_core::{Clock, Error, ErrorKind, SystemClock};
use keyward_refresh::{Decision, RefreshClient, RefreshPolicy, TokenSet};
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

/// Cookie names and attributes.
#[derive(Clone, Debug)]
pub struct CookieConfig {
    access: String,
    refresh: String,
    access_path: String,
    refresh_path: String,
    secure: bool,
    refresh_max_age: Option<Duration>,
}

impl Default for CookieConfig {
    fn default() -> Self {
        CookieConfig {
            access: "kw_access".into(),
            refresh: "kw_refresh".into(),
            access_path: "/".into(),
            refresh_path: "/".into(),
            secure: true,
            refresh_max_age: None,
        }
    }
}

impl CookieConfig {
    /// Names of the access and refresh cookies (default `kw_access`,
    /// `kw_refresh`).
    pub fn names(mut self, access: &str, refresh: &str) -> Self {
        self.access = access.into();
        self.refresh = refresh.into();
        self
    }

    /// Paths of the access and refresh cookies (default `/` for both;
    /// narrowing the refresh cookie's path to the routes behind this layer
    /// keeps it off other requests).
    pub fn paths(mut self, access: &str, refresh: &str) -> Self {
        self.access_path = access.into();
        self.refresh_path = refresh.into();
        self
    }

    /// Whether cookies are `Secure` (default `true`; only turn off for local
    /// http development).
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// `Max-Age` of the refresh cookie (default: none, a session cookie).
    pub fn refresh_max_age(mut self, max_age: Duration) -> Self {
        self.refresh_max_age = Some(max_age);
        self
    }

    fn attributes(&self, path: &str) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("Path={path}; HttpOnly; SameSite=Lax{secure}")
    }

    fn set(&self, tokens: &TokenSet, now: u64) -> [String; 2] {
        let access_age = tokens.expires_at.map(|exp| exp.saturating_sub(now));
        let access = match access_age {
            Some(age) => format!(
                "{}={}; Max-Age={age}; {}",
                self.access,
                tokens.access_token.expose(),
                self.attributes(&self.access_path)
            ),
            None => format!(
                "{}={}; {}",
                self.access,
                tokens.access_token.expose(),
                self.attributes(&self.access_path)
            ),
        };
        let refresh = match self.refresh_max_age {
            Some(age) => format!(
                "{}={}; Max-Age={}; {}",
                self.refresh,
                tokens.refresh_token.expose(),
                age.as_secs(),
                self.attributes(&self.refresh_path)
            ),
            None => format!(
                "{}={}; {}",
                self.refresh,
                tokens.refresh_token.expose(),
                self.attributes(&self.refresh_path)
            ),
        };
        [access, refresh]
    }

    fn clear(&self) -> [String; 2] {
        [
            format!(
                "{}=; Max-Age=0; {}",
                self.access,
                self.attributes(&self.access_path)
            ),
            format!(
                "{}=; Max-Age=0; {}",
                self.refresh,
                self.attributes(&self.refresh_path)
            ),
        ]
    }
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
    /// A layer with the default policy (30 s skew) and cookies.
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

    /// Cookie names and attributes.
    pub fn cookies(self, cookies: CookieConfig) -> Self {
        self.update(|s| s.cookies = cookies)
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

fn add_cookies(response: &mut Response, cookies: [String; 2]) {
    for value in cookies {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().append(SET_COOKIE, value);
        }
    }
}

/// What the request phase decided.
enum Before {
    /// Serve with this session, and set these cookies on the response.
    Serve(Session, Option<TokenSet>),
    /// Answer with this response, without calling the handler.
    Respond(Response),
}

impl Shared {
    fn now(&self) -> u64 {
        self.clock.now()
    }

    fn unauthorized_and_clear(&self, error: &Error) -> Response {
        let mut response = reject(error);
        add_cookies(&mut response, self.cookies.clear());
        response
    }

    /// Refreshes and authenticates the new access token.
    async fn refresh(&self, refresh_token: &str) -> Result<(Session, TokenSet), Error> {
        let tokens = self.refresh.refresh(refresh_token).await?;
        let session = self
            .auth
            .authenticate_token(tokens.access_token.expose(), AuthenticateOptions::default())
            .await?;
        Ok((session, tokens))
    }

    async fn before(&self, parts: &http::request::Parts) -> Before {
        let access = cookie(&parts.headers, &self.cookies.access);
        let refresh_token = cookie(&parts.headers, &self.cookies.refresh);
        let authenticated = match access {
            Some(token) => Some(
                self.auth
                    .authenticate_token(token, AuthenticateOptions::default())
                    .await,
            ),
            None => None,
        };
        let session = match authenticated {
            Some(Ok(session)) => Some(session),
            // A token that is expired (or absent) may be refreshed; any
            // other failure is an invalid credential.
            Some(Err(e)) if e.kind() != ErrorKind::Expired => return Before::Respond(reject(&e)),
            _ => None,
        };
        let expiry = session
            .as_ref()
            .and_then(|s| s.expires_at())
            .map(|exp| exp.as_secs().max(0) as u64);
        let decision = self.policy.decide(self.now(), expiry, parts);
        let no_credentials = || Error::new(ErrorKind::NoCredentials, "no valid session cookie");
        match (decision, session, refresh_token) {
            (Decision::UseAsIs, Some(session), _) => Before::Serve(session, None),
            (
                Decision::DoNotRefresh {
                    access_token_valid: true,
                },
                Some(session),
                _,
            ) => Before::Serve(session, None),
            (Decision::DoNotRefresh { .. }, _, _) => Before::Respond(reject(&Error::new(
                ErrorKind::Expired,
                "the access token has expired",
            ))),
            (Decision::RefreshBestEffort, Some(session), Some(rt)) => {
                match self.refresh(rt).await {
                    Ok((fresh, tokens)) => Before::Serve(fresh, Some(tokens)),
                    Err(e) if e.kind() == ErrorKind::InvalidGrant => {
                        Before::Respond(self.unauthorized_and_clear(&e))
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "refresh failed; the access token is still valid, serving with it");
                        Before::Serve(session, None)
                    }
                }
            }
            (Decision::RefreshBestEffort, Some(session), None) => Before::Serve(session, None),
            (_, _, Some(rt)) => match self.refresh(rt).await {
                Ok((fresh, tokens)) => Before::Serve(fresh, Some(tokens)),
                Err(e) if e.kind() == ErrorKind::InvalidGrant => {
                    Before::Respond(self.unauthorized_and_clear(&e))
                }
                Err(e) => Before::Respond(reject(&e)),
            },
            (_, _, None) => Before::Respond(reject(&no_credentials())),
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
            let refresh_token = new_tokens
                .as_ref()
                .map(|t| t.refresh_token.expose().to_owned())
                .or_else(|| cookie(&parts.headers, &shared.cookies.refresh).map(str::to_owned));
            parts.extensions.insert(session);
            let mut response = inner.call(Request::from_parts(parts, body)).await?;
            if response
                .extensions_mut()
                .remove::<RefreshSession>()
                .is_some()
                && !upgrade
            {
                if let Some(rt) = refresh_token {
                    match shared.refresh(&rt).await {
                        Ok((_, tokens)) => new_tokens = Some(tokens),
                        Err(e) if e.kind() == ErrorKind::InvalidGrant => {
                            add_cookies(&mut response, shared.cookies.clear());
                            return Ok(response);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "refresh asked for by the handler failed")
                        }
                    }
                }
            }
            if let Some(tokens) = new_tokens {
                add_cookies(&mut response, shared.cookies.set(&tokens, shared.now()));
            }
            Ok(response)
        })
    }
}
