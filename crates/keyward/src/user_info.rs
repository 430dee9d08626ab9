//! OIDC userinfo (OpenID Connect Core §5.3), only when the claims lack the
//! profile fields the caller needs.
//!
//! Threat addressed: a userinfo response about someone else (a confused or
//! compromised endpoint, a token for another subject). The response's `sub`
//! must equal the token's `sub`, or there is no session at all
//! (`user_id_mismatch`), whatever the failure policy says.

use keyward_claims::Session;
use keyward_core::{Error, ErrorKind};
use moka::future::Cache;
use moka::Expiry;
use reqwest::Url;
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::OnceCell;

/// What to do when the userinfo endpoint fails (network, timeout, non-200,
/// unreadable answer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum UserInfoFailure {
    /// Fail the authentication with `user_info_unavailable` (default).
    #[default]
    Fail,
    /// Return the session built from the claims alone, with
    /// [`Session::user_info_error`] set and a `tracing` warning.
    UseClaims,
}

/// Profile fields that, when missing from the claims, make
/// `include_user_info: true` call the userinfo endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProfileField {
    /// The email address.
    Email,
    /// The display name.
    Name,
}

/// Where the endpoint is.
#[derive(Clone, Debug)]
pub(crate) enum Endpoint {
    Url(Url),
    Discover(String),
}

fn lenient_bool<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Bool(b) => Some(b),
        serde_json::Value::String(s) if s == "true" => Some(true),
        serde_json::Value::String(s) if s == "false" => Some(false),
        _ => None,
    })
}

#[derive(Clone, Debug, Deserialize)]
struct Profile {
    sub: String,
    #[serde(default)]
    email: Option<String>,
    /// OIDC Core §5.1: a boolean. Some providers (AWS Cognito) send the
    /// strings `"true"`/`"false"`; those are read as the boolean. Anything
    /// else counts as absent: the email is then unverified (never an error
    /// that would fail the whole authentication).
    #[serde(default, deserialize_with = "lenient_bool")]
    email_verified: Option<bool>,
    #[serde(default)]
    name: Option<String>,
    /// The token's expiry, for the cache (not from the response).
    #[serde(skip)]
    token_exp: Option<f64>,
}

struct ExpireWithToken;

impl Expiry<String, Arc<Profile>> for ExpireWithToken {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<Profile>,
        _created_at: Instant,
    ) -> Option<Duration> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        Some(Duration::from_secs_f64((value.token_exp? - now).max(0.0)))
    }
}

pub(crate) struct UserInfo {
    endpoint: Endpoint,
    resolved: OnceCell<Url>,
    client: reqwest::Client,
    cache: Cache<String, Arc<Profile>>,
    failure: UserInfoFailure,
    fields: Vec<ProfileField>,
}

fn unavailable(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::UserInfoUnavailable, message.into())
}

impl UserInfo {
    pub(crate) fn new(
        endpoint: Endpoint,
        failure: UserInfoFailure,
        fields: Vec<ProfileField>,
        timeout: Duration,
    ) -> Result<Self, Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| unavailable(format!("cannot build HTTP client: {e}")))?;
        Ok(UserInfo {
            endpoint,
            resolved: OnceCell::new(),
            client,
            cache: Cache::builder()
                .max_capacity(10_000)
                .expire_after(ExpireWithToken)
                .build(),
            failure,
            fields,
        })
    }

    fn lacks_fields(&self, session: &Session) -> bool {
        self.fields.iter().any(|f| match f {
            ProfileField::Email => session.email().is_none(),
            ProfileField::Name => session.name().is_none(),
        })
    }

    async fn url(&self) -> Result<&Url, Error> {
        self.resolved
            .get_or_try_init(|| async {
                match &self.endpoint {
                    Endpoint::Url(url) => Ok(url.clone()),
                    Endpoint::Discover(issuer) => {
                        keyward_keys::discovery::fetch_provider_metadata(issuer)
                            .await
                            .map_err(|e| unavailable(format!("discovery: {}", e.message())))?
                            .userinfo_endpoint
                            .ok_or_else(|| {
                                unavailable("the provider publishes no userinfo_endpoint")
                            })
                    }
                }
            })
            .await
    }

    async fn fetch(&self, token: &str, token_exp: Option<f64>) -> Result<Arc<Profile>, Error> {
        let url = self.url().await?;
        let response = self
            .client
            .get(url.clone())
            .bearer_auth(token)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                unavailable(if e.is_timeout() {
                    "the userinfo endpoint timed out".to_owned()
                } else {
                    format!(
                        "the userinfo endpoint could not be reached: {}",
                        e.without_url()
                    )
                })
            })?;
        let status = response.status();
        if !status.is_success() {
            return Err(unavailable(format!(
                "the userinfo endpoint answered {status}"
            )));
        }
        let body = response.bytes().await.map_err(|e| {
            unavailable(format!(
                "reading the userinfo response: {}",
                e.without_url()
            ))
        })?;
        let mut profile: Profile = serde_json::from_slice(&body).map_err(|_| {
            unavailable("the userinfo response is not a JSON object with a string \"sub\" (and string \"email\"/\"name\" when present)")
        })?;
        profile.token_exp = token_exp;
        Ok(Arc::new(profile))
    }

    /// Completes `session` from userinfo if it lacks a needed field.
    pub(crate) async fn complete(&self, token: &str, session: Session) -> Result<Session, Error> {
        if !self.lacks_fields(&session) {
            return Ok(session);
        }
        let token_exp = session.expires_at().map(|d| d.0);
        // One request per token, however many callers ask at once; the
        // result is cached until the token expires (errors are not cached).
        let profile = self
            .cache
            .try_get_with(token.to_owned(), self.fetch(token, token_exp))
            .await
            .map_err(|e: Arc<Error>| (*e).clone());
        match profile {
            Ok(profile) => {
                if Some(profile.sub.as_str()) != session.user_id() {
                    self.cache.invalidate(token).await;
                    return Err(Error::new(
                        ErrorKind::UserIdMismatch,
                        "the userinfo response is about another subject than the token",
                    ));
                }
                Ok(session.with_profile(
                    profile.email.clone(),
                    profile.email_verified,
                    profile.name.clone(),
                ))
            }
            Err(error) => match self.failure {
                UserInfoFailure::Fail => Err(error),
                UserInfoFailure::UseClaims => {
                    tracing::warn!(error = %error, "userinfo unavailable; using the claims alone");
                    Ok(session.with_user_info_error(error))
                }
            },
        }
    }
}
