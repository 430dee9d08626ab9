//! Finding the token in a request: `Authorization: Bearer` (RFC 6750 §2.1)
//! and/or a session cookie.

use http::header::{AUTHORIZATION, COOKIE};
use http::HeaderMap;
use keyward_core::{Error, ErrorKind};

/// Anything that carries request headers: `http::Request<B>`,
/// `http::request::Parts`, or a `HeaderMap` itself.
pub trait RequestHeaders {
    /// The request's headers.
    fn headers(&self) -> &HeaderMap;
}

impl<B> RequestHeaders for http::Request<B> {
    fn headers(&self) -> &HeaderMap {
        http::Request::headers(self)
    }
}

impl RequestHeaders for http::request::Parts {
    fn headers(&self) -> &HeaderMap {
        &self.headers
    }
}

impl RequestHeaders for HeaderMap {
    fn headers(&self) -> &HeaderMap {
        self
    }
}

fn malformed(message: &'static str) -> Error {
    Error::new(ErrorKind::Malformed, message)
}

/// The bearer token of the `Authorization` header, if it uses the Bearer
/// scheme. Several `Authorization` headers are refused (ambiguous).
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, Error> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(malformed(
            "the request has more than one Authorization header",
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| malformed("the Authorization header is not visible ASCII"))?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None); // another scheme: not our credentials
    }
    let token = rest.trim_start_matches(' ');
    if token.is_empty() {
        return Err(malformed(
            "the Authorization header has the Bearer scheme but no token",
        ));
    }
    Ok(Some(token))
}

/// The value of cookie `name`, if present (quotes around it removed): the
/// first of that name.
pub(crate) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    cookies_named(headers, name).next()
}

/// Every non-empty value of cookie `name`, in the order the request sends
/// them (browsers: longest path first, RFC 6265 §5.4).
pub(crate) fn cookies_named<'h, 'n>(
    headers: &'h HeaderMap,
    name: &'n str,
) -> impl Iterator<Item = &'h str> + use<'h, 'n> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(move |(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
        .filter(|v| !v.is_empty())
}

/// The token of a request: the Bearer header first, then the cookie. A
/// request with neither is `no_credentials`.
pub(crate) fn token<'h>(
    headers: &'h HeaderMap,
    bearer_enabled: bool,
    cookie_name: Option<&str>,
) -> Result<&'h str, Error> {
    if bearer_enabled {
        if let Some(token) = bearer(headers)? {
            return Ok(token);
        }
    }
    if let Some(name) = cookie_name {
        if let Some(token) = cookie(headers, name) {
            return Ok(token);
        }
    }
    Err(Error::new(
        ErrorKind::NoCredentials,
        match (bearer_enabled, cookie_name) {
            (true, Some(_)) => "the request has neither a Bearer token nor the session cookie",
            (true, None) => "the request has no Authorization: Bearer token",
            _ => "the request has no session cookie",
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn bearer_and_cookie() {
        assert_eq!(
            token(
                &headers(&[("authorization", "Bearer abc.def.ghi")]),
                true,
                None
            )
            .unwrap(),
            "abc.def.ghi"
        );
        assert_eq!(
            token(&headers(&[("authorization", "bearer   abc")]), true, None).unwrap(),
            "abc"
        );
        let h = headers(&[("cookie", "a=1; kw_at=tok.en.x; b=2")]);
        assert_eq!(token(&h, true, Some("kw_at")).unwrap(), "tok.en.x");
        // the header wins over the cookie
        let h = headers(&[("authorization", "Bearer hdr"), ("cookie", "kw_at=cookie")]);
        assert_eq!(token(&h, true, Some("kw_at")).unwrap(), "hdr");
        // cookie-only mode ignores the header
        assert_eq!(token(&h, false, Some("kw_at")).unwrap(), "cookie");
    }

    #[test]
    fn no_credentials_is_distinct_from_malformed() {
        let kind = |h: HeaderMap| token(&h, true, Some("kw_at")).unwrap_err().kind();
        assert_eq!(kind(headers(&[])), ErrorKind::NoCredentials);
        assert_eq!(
            kind(headers(&[("authorization", "Basic dXNlcjpwYXNz")])),
            ErrorKind::NoCredentials
        );
        assert_eq!(
            kind(headers(&[("cookie", "other=1")])),
            ErrorKind::NoCredentials
        );
        assert_eq!(
            kind(headers(&[("cookie", "kw_at=")])),
            ErrorKind::NoCredentials
        );
        assert_eq!(
            kind(headers(&[("authorization", "Bearer")])),
            ErrorKind::Malformed
        );
        assert_eq!(
            kind(headers(&[
                ("authorization", "Bearer a"),
                ("authorization", "Bearer b")
            ])),
            ErrorKind::Malformed
        );
    }
}
