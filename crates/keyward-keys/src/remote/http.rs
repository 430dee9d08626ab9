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
use reqwest::header::{CACHE_CONTROL, ETAG, IF_NONE_MATCH};
use reqwest::{StatusCode, Url};
use std::net::IpAddr;

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
/// and `no-store` mean 0 (the caller clamps to its minimum). Unknown
/// directives are ignored; a malformed `max-age` counts as absent.
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
            match arg {
                Some(a) if !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()) => {
                    // delta-seconds larger than u64 saturate (RFC 9111 §1.2.2)
                    max_age = Some(a.parse::<u64>().unwrap_or(u64::MAX));
                }
                _ => return None,
            }
        }
    }
    max_age
}

/// A successful response (200, or 304 when revalidating).
pub(crate) enum Fetched {
    Body {
        body: Vec<u8>,
        max_age: Option<u64>,
        etag: Option<String>,
    },
    NotModified {
        max_age: Option<u64>,
        etag: Option<String>,
    },
}

fn unavailable(url: &Url, what: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::KeyUnavailable, format!("fetching {url}: {what}"))
}

fn header_max_age(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    let values: Vec<&str> = headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if values.is_empty() {
        None
    } else {
        parse_max_age(&values.join(","))
    }
}

/// GETs `url`, sending `If-None-Match` when an ETag is known, reading at
/// most `max_body` bytes.
pub(crate) async fn get(
    client: &reqwest::Client,
    url: &Url,
    etag: Option<&str>,
    max_body: usize,
) -> Result<Fetched, Error> {
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
    let max_age = header_max_age(response.headers());
    let new_etag = response
        .headers()
        .get(ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match response.status() {
        StatusCode::OK => {}
        StatusCode::NOT_MODIFIED if etag.is_some() => {
            return Ok(Fetched::NotModified {
                max_age,
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
            return Err(unavailable(
                url,
                format!("HTTP status {status}, expected 200"),
            ))
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
        if body.len() + chunk.len() > max_body {
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
        max_age,
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
        assert_eq!(parse_max_age("max-age=-1"), None);
        assert_eq!(parse_max_age("max-age="), None);
        assert_eq!(parse_max_age("max-age=1e3"), None);
        assert_eq!(
            parse_max_age("max-age=99999999999999999999999"),
            Some(u64::MAX)
        );
        assert_eq!(parse_max_age(""), None);
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
