//! OpenID Connect discovery (OpenID Connect Discovery 1.0 §4).
//!
//! Threat addressed: issuer mix-up. The document at
//! `<issuer>/.well-known/openid-configuration` must name exactly the issuer
//! it was fetched for; otherwise one provider could point clients at keys of
//! another. Endpoint URLs obey the same https/loopback policy as key fetches.

use crate::remote::http;
use keyward_core::{Error, ErrorKind};
use reqwest::Url;
use serde::Deserialize;

/// The parts of an OpenID provider's metadata keyward uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderMetadata {
    /// The issuer identifier (equal to the configured issuer).
    pub issuer: String,
    /// Where the provider publishes its JWKS.
    pub jwks_uri: Url,
    /// The token endpoint, if published.
    pub token_endpoint: Option<Url>,
    /// The userinfo endpoint, if published.
    pub userinfo_endpoint: Option<Url>,
}

#[derive(Deserialize)]
struct RawMetadata {
    issuer: String,
    jwks_uri: String,
    #[serde(default)]
    token_endpoint: Option<String>,
    #[serde(default)]
    userinfo_endpoint: Option<String>,
}

/// The discovery document URL for `issuer`.
pub fn discovery_url(issuer: &str) -> Result<Url, Error> {
    let base = issuer.trim_end_matches('/');
    Url::parse(&format!("{base}/.well-known/openid-configuration")).map_err(|e| {
        Error::new(
            ErrorKind::KeyUnavailable,
            format!("issuer {} is not a URL: {e}", Error::quote(issuer)),
        )
    })
}

fn endpoint(value: &str, name: &str, allow_http: bool) -> Result<Url, Error> {
    let url = Url::parse(value).map_err(|e| {
        Error::new(
            ErrorKind::KeyUnavailable,
            format!("discovery document: {name} is not a URL: {e}"),
        )
    })?;
    http::check_url(&url, allow_http)?;
    Ok(url)
}

/// Fetches and checks the provider metadata of `issuer` with the default
/// limits (https except loopback, 5 s timeout, 1 MiB).
pub async fn fetch_provider_metadata(issuer: &str) -> Result<ProviderMetadata, Error> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| {
            Error::new(
                ErrorKind::KeyUnavailable,
                format!("cannot build HTTP client: {e}"),
            )
        })?;
    discover(&client, issuer, false, 1024 * 1024).await
}

/// Fetches and checks the provider metadata of `issuer`.
pub(crate) async fn discover(
    client: &reqwest::Client,
    issuer: &str,
    allow_http: bool,
    max_body: usize,
) -> Result<ProviderMetadata, Error> {
    let url = discovery_url(issuer)?;
    http::check_url(&url, allow_http)?;
    let body = match http::get(client, &url, None, max_body)
        .await
        .map_err(|f| f.error)?
    {
        http::Fetched::Body { body, .. } => body,
        http::Fetched::NotModified { .. } => {
            return Err(Error::new(
                ErrorKind::KeyUnavailable,
                "unexpected 304 for discovery",
            ))
        }
    };
    parse_metadata(&body, issuer, allow_http)
}

/// Parses and checks a discovery document fetched for `issuer`.
pub fn parse_metadata(
    body: &[u8],
    issuer: &str,
    allow_http: bool,
) -> Result<ProviderMetadata, Error> {
    let raw: RawMetadata = serde_json::from_slice(body).map_err(|e| {
        Error::new(
            ErrorKind::KeyUnavailable,
            format!(
                "the discovery document of {} is not valid provider metadata (line {}, column {}): \
                 it needs string members \"issuer\" and \"jwks_uri\"",
                Error::quote(issuer),
                e.line(),
                e.column()
            ),
        )
    })?;
    if raw.issuer != issuer {
        return Err(Error::new(
            ErrorKind::KeyUnavailable,
            format!(
                "the discovery document names issuer {}, not the configured {}",
                Error::quote(&raw.issuer),
                Error::quote(issuer)
            ),
        ));
    }
    Ok(ProviderMetadata {
        jwks_uri: endpoint(&raw.jwks_uri, "jwks_uri", allow_http)?,
        token_endpoint: raw
            .token_endpoint
            .map(|u| endpoint(&u, "token_endpoint", allow_http))
            .transpose()?,
        userinfo_endpoint: raw
            .userinfo_endpoint
            .map(|u| endpoint(&u, "userinfo_endpoint", allow_http))
            .transpose()?,
        issuer: raw.issuer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_must_match_exactly() {
        let doc = br#"{"issuer":"https://a.example","jwks_uri":"https://a.example/jwks"}"#;
        assert!(parse_metadata(doc, "https://a.example", false).is_ok());
        assert!(parse_metadata(doc, "https://a.example/", false).is_err());
        assert!(parse_metadata(doc, "https://b.example", false).is_err());
    }

    #[test]
    fn endpoints_follow_url_policy() {
        let doc = br#"{"issuer":"https://a.example","jwks_uri":"http://evil.example/jwks"}"#;
        assert!(parse_metadata(doc, "https://a.example", false).is_err());
        let doc = br#"{"issuer":"https://a.example","jwks_uri":5}"#;
        assert!(parse_metadata(doc, "https://a.example", false).is_err());
        let doc = br#"{"issuer":"https://a.example"}"#;
        assert!(parse_metadata(doc, "https://a.example", false).is_err());
    }

    #[test]
    fn discovery_url_appends_well_known() {
        assert_eq!(
            discovery_url("https://a.example/tenant/").unwrap().as_str(),
            "https://a.example/tenant/.well-known/openid-configuration"
        );
    }
}
