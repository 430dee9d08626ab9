//! HTTP GET with the limits a key fetch needs, and the small parsers around
//! it (`Cache-Control`, URL policy).
//!
//! Threats addressed: a hostile or broken endpoint that never answers
//! (timeouts on connect and on the whole exchange), answers with a huge
//! body (the size cap is enforced while streaming, and a `Content-Length`
//! over the cap is refused before reading), redirects elsewhere (not
//! followed unless enabled), or is reached in clear text (`https` required
//! except on loopback unless explicitly allowed).

use keyward_core::{Error, ErrorKind};
use reqwest::header::{AGE, CACHE_CONTROL, DATE, ETAG, EXPIRES, IF_NONE_MATCH};
use reqwest::{StatusCode, Url};
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

/// Whether `url` may be fetched: `https`, or `http` to a loopback host
/// (127.0.0.0/8, ::1, `localhost`), or any `http` when `allow_http`.
pub(crate) fn check_url(url: &Url, allow_http: bool) -> Result<(), Error> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_http || is_loopback(url) => Ok(()),
        "http" => Err(Error::new(
            ErrorKind::KeyUnavailable,
            format!("refusing to fetch keys over plain http from {url} (https is required except on loopback)"),
        )),
        other => Err(Error::new(
            ErrorKind::KeyUnavailable,
            format!("unsupported URL scheme {other:?} in {url}"),
        )),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// The `max-age` of a `Cache-Control` header value, in seconds. `no-cache`
/// and `no-store` mean 0, and so does an invalid or repeated-and-conflicting
/// `max-age` (RFC 9111 §4.2.1: such a response is stale, never "without
/// freshness information"); the caller clamps to its minimum. Unknown
/// directives are ignored; `None` when there is no `max-age`.
pub fn parse_max_age(value: &str) -> Option<u64> {
    let mut max_age = None;
    for directive in value.split(',') {
        let directive = directive.trim();
        let (name, arg) = match directive.split_once('=') {
            Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
            None => (directive, None),
        };
        if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
            return Some(0);
        }
        if name.eq_ignore_ascii_case("max-age") {
            let seconds = match arg {
                // delta-seconds larger than u64 saturate (RFC 9111 §1.2.2)
                Some(a) if !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()) => {
                    a.parse::<u64>().unwrap_or(u64::MAX)
                }
                _ => return Some(0),
            };
            match max_age {
                Some(previous) if previous != seconds => return Some(0),
                _ => max_age = Some(seconds),
            }
        }
    }
    max_age
}

/// The remaining freshness of a response (RFC 9111 §4.2, as a private
/// cache that fetched the response itself): `max-age` minus `Age`; without
/// `max-age`, `Expires` minus `Date` (minus `Age`); `None` when the response
/// has no freshness information. An invalid `Expires` (such as `0`) means
/// already expired (§5.3); an invalid `Age` is ignored (§5.1).
pub(crate) fn freshness(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let age = headers
        .get(AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::ZERO, Duration::from_secs);
    let cache_control: Vec<&str> = headers
        .get_all(CACHE_CONTROL)
        .iter()
        .map(|v| v.to_str().unwrap_or("max-age=invalid"))
        .collect();
    if !cache_control.is_empty() {
        if let Some(max_age) = parse_max_age(&cache_control.join(",")) {
            return Some(Duration::from_secs(max_age).saturating_sub(age));
        }
    }
    let expires = headers.get(EXPIRES)?;
    let Some(expires) = expires
        .to_str()
        .ok()
        .and_then(|v| httpdate::parse_http_date(v.trim()).ok())
    else {
        return Some(Duration::ZERO);
    };
    let date = headers
        .get(DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v.trim()).ok())
        .unwrap_or_else(SystemTime::now);
    Some(
        expires
            .duration_since(date)
            .unwrap_or(Duration::ZERO)
            .saturating_sub(age),
    )
}

/// A successful response (200, or 304 when revalidating).
pub(crate) enum Fetched {
    Body {
        body: Vec<u8>,
        freshness: Option<Duration>,
        etag: Option<String>,
    },
    NotModified {
        freshness: Option<Duration>,
        etag: Option<String>,
    },
}

/// A failed GET: why, and whether the server said the resource is gone
/// (`404`/`410`: a discovered JWKS URL that moved).
pub(crate) struct FetchError {
    pub(crate) error: Error,
    pub(crate) gone: bool,
}

impl From<Error> for FetchError {
    fn from(error: Error) -> Self {
        FetchError { error, gone: false }
    }
}

fn unavailable(url: &Url, what: impl std::fmt::Display) -> FetchError {
    Error::new(ErrorKind::KeyUnavailable, format!("fetching {url}: {what}")).into()
}

/// The redirect policy: none, or up to 5 hops each checked against the
/// https/loopback rule (threat: an allowed https URL redirecting to plain
/// http, where the key set can be replaced in transit).
pub(crate) fn redirect_policy(
    allow_redirects: bool,
    allow_http: bool,
) -> reqwest::redirect::Policy {
    if !allow_redirects {
        return reqwest::redirect::Policy::none();
    }
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= MAX_REDIRECTS {
            attempt.error(Error::new(
                ErrorKind::KeyUnavailable,
                format!("more than {MAX_REDIRECTS} redirects"),
            ))
        } else if let Err(e) = check_url(attempt.url(), allow_http) {
            attempt.error(e)
        } else {
            attempt.follow()
        }
    })
}

/// Most redirects followed when redirects are allowed.
const MAX_REDIRECTS: usize = 5;

/// GETs `url`, sending `If-None-Match` when an ETag is known, reading at
/// most `max_body` bytes.
pub(crate) async fn get(
    client: &reqwest::Client,
    url: &Url,
    etag: Option<&str>,
    max_body: usize,
) -> Result<Fetched, FetchError> {
    let mut request = client
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "application/json");
    if let Some(etag) = etag {
        request = request.header(IF_NONE_MATCH, etag);
    }
    let mut response = request
        .send()
        .await
        .map_err(|e| unavailable(url, describe(&e)))?;
    let freshness = freshness(response.headers());
    let new_etag = response
        .headers()
        .get(ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match response.status() {
        StatusCode::OK => {}
        StatusCode::NOT_MODIFIED if etag.is_some() => {
            return Ok(Fetched::NotModified {
                freshness,
                etag: new_etag,
            })
        }
        status if status.is_redirection() => {
            return Err(unavailable(
                url,
                format!("redirected ({status}); redirects are not followed unless enabled"),
            ))
        }
        status => {
            let mut failure = unavailable(url, format!("HTTP status {status}, expected 200"));
            failure.gone = status == StatusCode::NOT_FOUND || status == StatusCode::GONE;
            return Err(failure);
        }
    }
    if response
        .content_length()
        .is_some_and(|len| len > max_body as u64)
    {
        return Err(unavailable(
            url,
            format!("the body is larger than the {max_body}-byte limit"),
        ));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| unavailable(url, describe(&e)))?
    {
        if body.len().saturating_add(chunk.len()) > max_body {
            // Dropping `response` here closes the connection: nothing more
            // is read.
            return Err(unavailable(
                url,
                format!("the body is larger than the {max_body}-byte limit"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched::Body {
        body,
        freshness,
        etag: new_etag,
    })
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        // reqwest's Display names the URL and the cause; no secrets here.
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_variants() {
        assert_eq!(parse_max_age("max-age=300"), Some(300));
        assert_eq!(
            parse_max_age("public, MAX-AGE=60, must-revalidate"),
            Some(60)
        );
        assert_eq!(parse_max_age("max-age=\"120\""), Some(120));
        assert_eq!(parse_max_age("s-maxage=5, max-age=10"), Some(10));
        assert_eq!(parse_max_age("no-store"), Some(0));
        assert_eq!(parse_max_age("max-age=10, no-cache"), Some(0));
        assert_eq!(parse_max_age("public"), None);
        // invalid means stale, never "absent"
        assert_eq!(parse_max_age("max-age=-1"), Some(0));
        assert_eq!(parse_max_age("max-age="), Some(0));
        assert_eq!(parse_max_age("max-age=1e3"), Some(0));
        assert_eq!(parse_max_age("max-age"), Some(0));
        assert_eq!(parse_max_age("max-age=10, max-age=10"), Some(10));
        assert_eq!(parse_max_age("max-age=10, max-age=20"), Some(0));
        assert_eq!(
            parse_max_age("max-age=99999999999999999999999"),
            Some(u64::MAX)
        );
        assert_eq!(parse_max_age(""), None);
    }

    fn headers(pairs: &[(&'static str, &str)]) -> reqwest::header::HeaderMap {
        let mut map = reqwest::header::HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn freshness_rules() {
        let secs = |pairs: &[(&'static str, &str)]| freshness(&headers(pairs)).map(|d| d.as_secs());
        assert_eq!(secs(&[]), None);
        assert_eq!(secs(&[("cache-control", "max-age=300")]), Some(300));
        assert_eq!(
            secs(&[("cache-control", "max-age=300"), ("age", "290")]),
            Some(10)
        );
        assert_eq!(
            secs(&[("cache-control", "max-age=300"), ("age", "900")]),
            Some(0)
        );
        assert_eq!(
            secs(&[("cache-control", "max-age=300"), ("age", "junk")]),
            Some(300)
        );
        assert_eq!(secs(&[("cache-control", "public")]), None);
        let date = "Fri, 04 Dec 2026 10:00:00 GMT";
        let expires = "Fri, 04 Dec 2026 10:05:00 GMT";
        assert_eq!(secs(&[("date", date), ("expires", expires)]), Some(300));
        assert_eq!(
            secs(&[("date", date), ("expires", expires), ("age", "60")]),
            Some(240)
        );
        // max-age wins over Expires
        assert_eq!(
            secs(&[
                ("date", date),
                ("expires", expires),
                ("cache-control", "max-age=7")
            ]),
            Some(7)
        );
        // invalid Expires (notably "0") is already expired
        assert_eq!(secs(&[("expires", "0")]), Some(0));
        assert_eq!(secs(&[("date", expires), ("expires", date)]), Some(0));
        assert_eq!(
            secs(&[("cache-control", "max-age=99999999999999999999")]),
            Some(u64::MAX)
        );
    }

    #[test]
    fn url_policy() {
        let ok = |u: &str, allow| check_url(&Url::parse(u).unwrap(), allow).is_ok();
        assert!(ok("https://issuer.example/jwks", false));
        assert!(ok("http://127.0.0.1:8080/jwks", false));
        assert!(ok("http://127.8.9.10/jwks", false));
        assert!(ok("http://[::1]:80/jwks", false));
        assert!(ok("http://localhost/jwks", false));
        assert!(!ok("http://issuer.example/jwks", false));
        assert!(!ok("http://10.0.0.1/jwks", false));
        assert!(ok("http://issuer.example/jwks", true));
        assert!(!ok("file:///etc/passwd", true));
        assert!(!ok("ftp://issuer.example/jwks", true));
    }
}
