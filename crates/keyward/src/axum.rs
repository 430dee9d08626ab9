//! tower/axum integration (feature `axum`).
//!
//! [`AuthLayer`] authenticates each request and puts the [`Session`] in the
//! request extensions; handlers take it with the [`Authenticated`]
//! extractor. Rejections follow RFC 6750 §3 and say nothing beyond the error
//! kind:
//!
//! - no token: `401`, `WWW-Authenticate: Bearer` (no error code, §3.1);
//! - invalid token: `401`, `WWW-Authenticate: Bearer error="invalid_token"`;
//! - a sender-constrained token (`cnf`, RFC 9449 / RFC 8705) presented as a
//!   bearer token: `401`, `invalid_token` with an `error_description` saying
//!   it needs its proof of possession;
//! - a configuration error (`invalid_configuration`): `500`;
//! - keys, userinfo or the token endpoint unreachable (`key_unavailable`,
//!   `user_info_unavailable`, `refresh_failed`): `503` — the token is not at
//!   fault, so clients must not discard it;
//! - authenticated but lacking a scope or membership the layer requires:
//!   `403`, `WWW-Authenticate: Bearer error="insufficient_scope"`.
//!
//! The body is `{"error":"<kind>"}`.
//!
//! For browser sessions kept in cookies, with refresh-token rotation, use
//! [`CookieSessionLayer`] instead.

pub use crate::cookie_session::{
    CookieConfig, CookieSessionLayer, CookieSessionService, RefreshSession, SameSite,
};
use crate::{AuthenticateOptions, Authenticator};
use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, StatusCode};
use keyward_claims::Session;
use keyward_core::{Error, ErrorKind};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Authenticates every request passing through; see the module docs.
///
/// ```no_run
/// # fn example(auth: keyward::Authenticator) {
/// use axum::{routing::get, Router};
/// use keyward::axum::{AuthLayer, Authenticated};
///
/// async fn me(Authenticated(session): Authenticated) -> String {
///     format!("hello {}", session.user_id().unwrap_or("client"))
/// }
/// let app: Router = Router::new()
///     .route("/me", get(me))
///     .layer(AuthLayer::new(auth).require_scope("read"));
/// # }
/// ```
#[derive(Clone)]
pub struct AuthLayer {
    auth: Authenticator,
    options: AuthenticateOptions,
    requirements: Arc<Requirements>,
}

#[derive(Clone, Default)]
struct Requirements {
    scopes: Vec<String>,
    organizations: Vec<String>,
}

impl AuthLayer {
    /// Authenticates with `auth`, without user info.
    pub fn new(auth: Authenticator) -> Self {
        AuthLayer {
            auth,
            options: AuthenticateOptions::default(),
            requirements: Arc::new(Requirements::default()),
        }
    }

    /// Per-request options (e.g. `include_user_info: true`).
    pub fn options(mut self, options: AuthenticateOptions) -> Self {
        self.options = options;
        self
    }

    /// Requires this scope (`403` otherwise). Repeatable: all are required.
    pub fn require_scope(mut self, scope: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.requirements)
            .scopes
            .push(scope.into());
        self
    }

    /// Requires membership of the organisation with this **id** (`403`
    /// otherwise); slugs never match ([`Session::is_member`]). Repeatable:
    /// all are required.
    pub fn require_membership(mut self, organization: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.requirements)
            .organizations
            .push(organization.into());
        self
    }
}

impl<S> tower_layer::Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`AuthLayer`] wraps around yours.
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    layer: AuthLayer,
}

/// The boxed future both keyward services return.
pub(crate) type ResponseFuture<E> = Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>;

/// Takes the inner service for one call, leaving a clone in its place: the
/// instance that was polled ready is the one that gets called (tower's rule
/// for services that are `Clone`).
pub(crate) fn take_ready<S: Clone>(inner: &mut S) -> S {
    let clone = inner.clone();
    std::mem::replace(inner, clone)
}

impl<S, B> tower_service::Service<Request<B>> for AuthService<S>
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
        let layer = self.layer.clone();
        // Only the head is borrowed across the await (a body need not be Sync).
        let (mut parts, body) = request.into_parts();
        Box::pin(async move {
            let session = match layer.auth.authenticate(&parts, layer.options).await {
                Ok(session) => session,
                Err(error) => return Ok(reject(&error)),
            };
            if let Some(response) = forbidden(&session, &layer.requirements) {
                return Ok(response);
            }
            parts.extensions.insert(session);
            inner.call(Request::from_parts(parts, body)).await
        })
    }
}

pub(crate) fn json_error(
    status: StatusCode,
    kind: &str,
    www_authenticate: Option<&'static str>,
) -> Response {
    let mut response = Response::new(Body::from(format!("{{\"error\":\"{kind}\"}}")));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(value) = www_authenticate {
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static(value));
    }
    response
}

/// The response for a failed authentication.
pub fn reject(error: &Error) -> Response {
    match error.kind() {
        ErrorKind::NoCredentials => json_error(
            StatusCode::UNAUTHORIZED,
            error.kind().as_str(),
            Some("Bearer"),
        ),
        ErrorKind::KeyUnavailable | ErrorKind::UserInfoUnavailable | ErrorKind::RefreshFailed => {
            json_error(StatusCode::SERVICE_UNAVAILABLE, error.kind().as_str(), None)
        }
        // RFC 9449 §7.1 / RFC 8705: a bound token is not a bearer token; say
        // so, so that the client presents it with its proof instead of
        // discarding it
        ErrorKind::SenderConstrainedToken => json_error(
            StatusCode::UNAUTHORIZED,
            error.kind().as_str(),
            Some(
                "Bearer error=\"invalid_token\", error_description=\"the token is \
                 sender-constrained (cnf) and must be presented with its proof of possession\"",
            ),
        ),
        // the service is misconfigured: not the client's fault, and not
        // something a retry fixes
        ErrorKind::InvalidConfiguration => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            error.kind().as_str(),
            None,
        ),
        kind => json_error(
            StatusCode::UNAUTHORIZED,
            kind.as_str(),
            Some("Bearer error=\"invalid_token\""),
        ),
    }
}

fn forbidden(session: &Session, requirements: &Requirements) -> Option<Response> {
    let insufficient = Some("Bearer error=\"insufficient_scope\"");
    if requirements.scopes.iter().any(|s| !session.has_scope(s)) {
        return Some(json_error(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            insufficient,
        ));
    }
    if requirements
        .organizations
        .iter()
        .any(|o| !session.is_member(o))
    {
        return Some(json_error(
            StatusCode::FORBIDDEN,
            "not_a_member",
            insufficient,
        ));
    }
    None
}

/// The authenticated session of a request behind [`AuthLayer`].
///
/// Extracting it on a route without the layer is a server error (`500`):
/// the route was meant to be protected and is not.
#[derive(Clone, Debug)]
pub struct Authenticated(pub Session);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, Response> {
        match parts.extensions.get::<Session>() {
            Some(session) => Ok(Authenticated(session.clone())),
            None => {
                tracing::error!(
                    "the Authenticated extractor is used on a route without keyward's AuthLayer"
                );
                Err((
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "authentication is not configured",
                )
                    .into_response())
            }
        }
    }
}
