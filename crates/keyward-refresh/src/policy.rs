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

/// Decides per request whether to refresh (default skew 30 s).
///
/// ```
/// use keyward_refresh::{Decision, RefreshPolicy};
/// let policy = RefreshPolicy::default();
/// let request = http::Request::get("/").body(()).unwrap();
/// let (parts, _) = request.into_parts();
/// assert_eq!(policy.decide(1000, Some(2000), &parts), Decision::UseAsIs);
/// assert_eq!(policy.decide(1000, Some(1010), &parts), Decision::RefreshBestEffort);
/// assert_eq!(policy.decide(1000, Some(1000), &parts), Decision::RefreshFirst);
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
    /// A policy that refreshes `skew` before expiry.
    pub fn with_skew(skew: Duration) -> Self {
        RefreshPolicy { skew }
    }

    /// The decision for a request at `now` (Unix seconds) whose access token
    /// expires at `access_token_expiry` (`None`: no usable access token).
    pub fn decide(
        &self,
        now: u64,
        access_token_expiry: Option<u64>,
        request: &http::request::Parts,
    ) -> Decision {
        let valid = access_token_expiry.is_some_and(|exp| now < exp);
        if is_upgrade(request) {
            return Decision::DoNotRefresh {
                access_token_valid: valid,
            };
        }
        match access_token_expiry {
            Some(exp) if now >= exp => Decision::RefreshFirst,
            None => Decision::RefreshFirst,
            Some(exp) if now + self.skew.as_secs() >= exp => Decision::RefreshBestEffort,
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
            // (request, now, expiry, decision)
            (&get, 1000, Some(2000), Decision::UseAsIs),
            (&get, 1000, Some(1031), Decision::UseAsIs),
            (&get, 1000, Some(1030), Decision::RefreshBestEffort),
            (&get, 1000, Some(1001), Decision::RefreshBestEffort),
            (&get, 1000, Some(1000), Decision::RefreshFirst),
            (&get, 1000, Some(10), Decision::RefreshFirst),
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
                Some(900),
                Decision::DoNotRefresh {
                    access_token_valid: false,
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
                Some(1000),
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
        for (request, now, exp, expected) in table {
            assert_eq!(
                p.decide(now, exp, request),
                expected,
                "{:?} {} {now} {exp:?}",
                request.method,
                request.headers.len()
            );
        }
        let wide = RefreshPolicy::with_skew(Duration::from_secs(300));
        assert_eq!(
            wide.decide(1000, Some(1200), &get),
            Decision::RefreshBestEffort
        );
        // an HTTP/1.1 CONNECT is a proxy tunnel, not a page request either way
        assert!(!is_upgrade(&parts(Method::CONNECT, Version::HTTP_11, &[])));
    }
}
