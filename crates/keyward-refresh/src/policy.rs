//! When to refresh.

use http::{Method, Version};
use std::time::Duration;

/// What to do with a request's access token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The access token is valid and not close to expiry.
    UseAsIs,
    /// The access token has expired (or is absent): refresh before serving;
    /// if the refresh fails, the request cannot be served.
    RefreshFirst,
    /// The access token expires within the skew: try to refresh, and if that
    /// fails, serve the request with the still-valid access token.
    RefreshBestEffort,
    /// Never refresh on this request (a WebSocket upgrade: its response
    /// cannot carry `Set-Cookie`); `access_token_valid` says whether the
    /// current access token can still be used.
    DoNotRefresh {
        /// Whether the current access token has not expired.
        access_token_valid: bool,
    },
}

/// When a request's access token was issued and when it expires (Unix
/// seconds), for a token the verifier *accepted* (within its leeway).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccessTokenTimes {
    /// `iat`, if the token has one: with it the skew is relative to the
    /// token's lifetime.
    pub issued_at: Option<u64>,
    /// `exp`.
    pub expires_at: u64,
}

/// Decides per request whether to refresh.
///
/// The skew — how long before expiry a refresh starts — is `min(skew,
/// lifetime / 4)` when the token says when it was issued (`iat`), so a
/// short-lived token (say 20 s) is used for three quarters of its life
/// instead of being refreshed on every request; default skew 30 s. A token
/// the verifier accepted is never "refresh first": one past its `exp` but
/// within the verifier's leeway still serves if the refresh fails. All time
/// arithmetic saturates.
///
/// ```
/// use keyward_refresh::{AccessTokenTimes, Decision, RefreshPolicy};
/// let policy = RefreshPolicy::default();
/// let request = http::Request::get("/").body(()).unwrap();
/// let (parts, _) = request.into_parts();
/// let token = |issued_at, expires_at| Some(AccessTokenTimes { issued_at, expires_at });
/// assert_eq!(policy.decide(1000, token(None, 2000), &parts), Decision::UseAsIs);
/// assert_eq!(policy.decide(1000, token(None, 1010), &parts), Decision::RefreshBestEffort);
/// // a 20 s token issued at 995: skew 5 s, not 30 s
/// assert_eq!(policy.decide(1000, token(Some(995), 1015), &parts), Decision::UseAsIs);
/// assert_eq!(policy.decide(1000, None, &parts), Decision::RefreshFirst);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefreshPolicy {
    skew: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        RefreshPolicy {
            skew: Duration::from_secs(30),
        }
    }
}

impl RefreshPolicy {
    /// A policy that refreshes at most `skew` before expiry (a quarter of
    /// the token's lifetime when that is shorter).
    pub fn with_skew(skew: Duration) -> Self {
        RefreshPolicy { skew }
    }

    /// The skew for `token`: `min(skew, lifetime / 4)` when its lifetime is
    /// known.
    pub fn skew_for(&self, token: &AccessTokenTimes) -> u64 {
        let skew = self.skew.as_secs();
        match token.issued_at {
            Some(iat) => skew.min(token.expires_at.saturating_sub(iat) / 4),
            None => skew,
        }
    }

    /// The decision for a request at `now` (Unix seconds) whose access
    /// token the verifier accepted with these times (`None`: no usable
    /// access token — absent, expired past the leeway, or refused).
    pub fn decide(
        &self,
        now: u64,
        access_token: Option<AccessTokenTimes>,
        request: &http::request::Parts,
    ) -> Decision {
        if is_upgrade(request) {
            return Decision::DoNotRefresh {
                access_token_valid: access_token.is_some(),
            };
        }
        match access_token {
            None => Decision::RefreshFirst,
            Some(token) if now.saturating_add(self.skew_for(&token)) >= token.expires_at => {
                Decision::RefreshBestEffort
            }
            Some(_) => Decision::UseAsIs,
        }
    }
}

/// A WebSocket (or other protocol) upgrade: HTTP/1.1 `Connection: upgrade`
/// with an `Upgrade` header (RFC 9110 §7.8, RFC 6455), or an HTTP/2 extended
/// CONNECT (RFC 8441) — every HTTP/2 CONNECT is treated as one, since none of
/// them can deliver a `Set-Cookie` to a page.
pub fn is_upgrade(request: &http::request::Parts) -> bool {
    if request.method == Method::CONNECT && request.version >= Version::HTTP_2 {
        return true;
    }
    let connection_upgrade = request
        .headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    connection_upgrade && request.headers.contains_key(http::header::UPGRADE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: Method, version: Version, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut builder = http::Request::builder()
            .method(method)
            .version(version)
            .uri("/ws");
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn every_branch() {
        let p = RefreshPolicy::default();
        let get = parts(Method::GET, Version::HTTP_11, &[]);
        let ws11 = parts(
            Method::GET,
            Version::HTTP_11,
            &[
                ("connection", "keep-alive, Upgrade"),
                ("upgrade", "websocket"),
            ],
        );
        let ws2 = parts(Method::CONNECT, Version::HTTP_2, &[]);
        let upgrade_without_connection =
            parts(Method::GET, Version::HTTP_11, &[("upgrade", "websocket")]);
        let table = [
            // (request, now, expiry of an accepted token, decision)
            (&get, 1000, Some(2000), Decision::UseAsIs),
            (&get, 1000, Some(1031), Decision::UseAsIs),
            (&get, 1000, Some(1030), Decision::RefreshBestEffort),
            (&get, 1000, Some(1001), Decision::RefreshBestEffort),
            // accepted within the verifier's leeway: still serves
            (&get, 1000, Some(1000), Decision::RefreshBestEffort),
            (&get, 1000, Some(990), Decision::RefreshBestEffort),
            (&get, 1000, None, Decision::RefreshFirst),
            (
                &ws11,
                1000,
                Some(1010),
                Decision::DoNotRefresh {
                    access_token_valid: true,
                },
            ),
            (
                &ws11,
                1000,
                None,
                Decision::DoNotRefresh {
                    access_token_valid: false,
                },
            ),
            (
                &ws2,
                1000,
                Some(1010),
                Decision::DoNotRefresh {
                    access_token_valid: true,
                },
            ),
            (
                &ws2,
                1000,
                None,
                Decision::DoNotRefresh {
                    access_token_valid: false,
                },
            ),
            (
                &upgrade_without_connection,
                1000,
                Some(1010),
                Decision::RefreshBestEffort,
            ),
        ];
        let times = |exp: Option<u64>| {
            exp.map(|expires_at| AccessTokenTimes {
                issued_at: None,
                expires_at,
            })
        };
        for (request, now, exp, expected) in table {
            assert_eq!(
                p.decide(now, times(exp), request),
                expected,
                "{:?} {} {now} {exp:?}",
                request.method,
                request.headers.len()
            );
        }
        let wide = RefreshPolicy::with_skew(Duration::from_secs(300));
        assert_eq!(
            wide.decide(1000, times(Some(1200)), &get),
            Decision::RefreshBestEffort
        );
        // relative skew: min(skew, lifetime / 4)
        let token = |iat, exp| {
            Some(AccessTokenTimes {
                issued_at: Some(iat),
                expires_at: exp,
            })
        };
        // a 20 s token: skew 5 s, used for 15 s
        assert_eq!(p.decide(1014, token(1000, 1020), &get), Decision::UseAsIs);
        assert_eq!(
            p.decide(1015, token(1000, 1020), &get),
            Decision::RefreshBestEffort
        );
        // a 1 h token: the absolute 30 s
        assert_eq!(p.decide(4569, token(1000, 4600), &get), Decision::UseAsIs);
        assert_eq!(
            p.decide(4570, token(1000, 4600), &get),
            Decision::RefreshBestEffort
        );
        // a token whose clock is ahead of ours by less than 3/4 of its
        // lifetime is not refreshed right after it was issued
        assert_eq!(p.decide(1010, token(1000, 1300), &get), Decision::UseAsIs);
        // iat after exp, exp and now at the ends of u64: no overflow
        assert_eq!(p.decide(1000, token(5000, 2000), &get), Decision::UseAsIs);
        assert_eq!(
            p.decide(u64::MAX, token(0, u64::MAX), &get),
            Decision::RefreshBestEffort
        );
        assert_eq!(
            RefreshPolicy::with_skew(Duration::MAX).decide(0, token(0, u64::MAX), &get),
            Decision::UseAsIs
        );
        assert_eq!(
            RefreshPolicy::with_skew(Duration::MAX).decide(0, times(Some(u64::MAX)), &get),
            Decision::RefreshBestEffort
        );
        // an HTTP/1.1 CONNECT is a proxy tunnel, not a page request either way
        assert!(!is_upgrade(&parts(Method::CONNECT, Version::HTTP_11, &[])));
    }
}
