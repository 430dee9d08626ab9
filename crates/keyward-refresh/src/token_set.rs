//! What a successful refresh returns.

use crate::secret::Secret;
use keyward_core::{Error, ErrorKind};
use serde::Deserialize;

/// The tokens a refresh produced. `Debug` never shows the tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenSet {
    /// The new access token.
    pub access_token: Secret,
    /// When the access token expires (Unix seconds): the earlier of
    /// `expires_in` and the token's own `exp`, when either is known.
    pub expires_at: Option<u64>,
    /// The refresh token to use next: the rotated one, or the old one kept
    /// when the provider did not rotate.
    pub refresh_token: Secret,
    /// Whether the provider issued a new refresh token.
    pub rotated: bool,
    /// When the refresh token expires (Unix seconds), if the provider said
    /// (`refresh_expires_in`, Keycloak; `refresh_token_expires_in`, Azure AD
    /// and others).
    pub refresh_expires_at: Option<u64>,
    /// The ID token, if the provider sent one. **Not verified**: keyward does
    /// not use it; verify it (signature, and `iss`/`sub` equal to the
    /// session's, OIDC Core §12.2) before relying on anything in it.
    pub id_token: Option<Secret>,
    /// The granted scope, if the provider said.
    pub scope: Option<String>,
}

#[derive(Deserialize)]
struct Response {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<Seconds>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default, alias = "refresh_token_expires_in")]
    refresh_expires_in: Option<Seconds>,
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

/// A lifetime in seconds as providers actually send it: an integer, a
/// float, or a numeric string (`"expires_in": "600"`).
#[derive(Deserialize)]
#[serde(untagged)]
enum Seconds {
    Number(serde_json::Number),
    Text(String),
}

impl Seconds {
    /// Whole seconds, rounded down; `None` if negative or not a number.
    fn whole(&self) -> Option<u64> {
        let value = match self {
            Seconds::Number(n) => n
                .as_u64()
                .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
            Seconds::Text(t) => {
                let t = t.trim();
                t.parse::<u64>().ok().or_else(|| {
                    t.parse::<f64>()
                        .ok()
                        .filter(|f| f.is_finite() && *f >= 0.0)
                        .map(|f| f as u64)
                })
            }
        };
        value
    }
}

fn malformed(message: &str) -> Error {
    Error::new(
        ErrorKind::RefreshFailed,
        format!("the token endpoint's response is malformed: {message}"),
    )
}

/// The `exp` of a JWT access token, read without verification (only to
/// schedule the next refresh; the token is verified when it is used).
fn jwt_exp(token: &str) -> Option<u64> {
    let (_, payload) = keyward_core::decode_unverified(token).ok()?;
    let claims: serde_json::Value = serde_json::from_str(&payload).ok()?;
    claims.get("exp")?.as_f64().map(|e| e.max(0.0) as u64)
}

impl TokenSet {
    /// Parses a successful token-endpoint response (RFC 6749 §5.1) for a
    /// refresh with `old_refresh_token`, at time `now`.
    pub fn from_response(
        body: &[u8],
        old_refresh_token: &str,
        now: u64,
    ) -> Result<TokenSet, Error> {
        let r: Response = serde_json::from_slice(body)
            .map_err(|_| malformed("not a JSON object with a string \"access_token\""))?;
        if r.access_token.is_empty() {
            return Err(malformed("empty access_token"));
        }
        if let Some(t) = &r.token_type {
            if t.eq_ignore_ascii_case("dpop") {
                // Used as a bearer token it would be refused by every
                // resource server that checks the binding; keyward does not
                // make DPoP proofs (yet).
                return Err(malformed(
                    "token_type is DPoP: the access token is bound to a DPoP key, and keyward does not support DPoP",
                ));
            }
            if !t.eq_ignore_ascii_case("bearer") {
                return Err(malformed("token_type is not Bearer"));
            }
        }
        let lifetime = |s: Option<Seconds>, name: &str| -> Result<Option<u64>, Error> {
            match s {
                None => Ok(None),
                Some(s) => s
                    .whole()
                    .map(|secs| Some(now.saturating_add(secs)))
                    .ok_or_else(|| {
                        malformed(&format!("{name} is not a non-negative number of seconds"))
                    }),
            }
        };
        let from_expires_in = lifetime(r.expires_in, "expires_in")?;
        let refresh_expires_at = lifetime(r.refresh_expires_in, "refresh_expires_in")?;
        let expires_at = match (from_expires_in, jwt_exp(&r.access_token)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let (refresh_token, rotated) = match r.refresh_token.filter(|t| !t.is_empty()) {
            Some(new) => (Secret::new(new), true),
            None => (Secret::new(old_refresh_token.to_owned()), false),
        };
        Ok(TokenSet {
            access_token: Secret::new(r.access_token),
            expires_at,
            refresh_token,
            rotated,
            refresh_expires_at,
            id_token: r.id_token.map(Secret::new),
            scope: r.scope,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_keeps_old_refresh_token_when_not_rotated() {
        let ts = TokenSet::from_response(
            br#"{"access_token":"at","token_type":"bearer","expires_in":300}"#,
            "old",
            1000,
        )
        .unwrap();
        assert_eq!(ts.access_token.expose(), "at");
        assert_eq!(ts.expires_at, Some(1300));
        assert_eq!(ts.refresh_token.expose(), "old");
        assert!(!ts.rotated);
        let ts = TokenSet::from_response(
            br#"{"access_token":"at","refresh_token":"new","scope":"a b","id_token":"idt"}"#,
            "old",
            0,
        )
        .unwrap();
        assert!(ts.rotated);
        assert_eq!(ts.refresh_token.expose(), "new");
        assert_eq!(ts.scope.as_deref(), Some("a b"));
        assert_eq!(ts.expires_at, None);
    }

    #[test]
    fn jwt_exp_caps_expires_in() {
        // header {"alg":"ES256"}, payload {"exp":1200}
        let jwt = "eyJhbGciOiJFUzI1NiJ9.eyJleHAiOjEyMDB9.sig";
        let body = format!(r#"{{"access_token":"{jwt}","expires_in":3600}}"#);
        assert_eq!(
            TokenSet::from_response(body.as_bytes(), "old", 1000)
                .unwrap()
                .expires_at,
            Some(1200)
        );
    }

    #[test]
    fn lifetimes_as_providers_send_them() {
        for (body, expires, refresh) in [
            (
                &br#"{"access_token":"a","expires_in":600}"#[..],
                Some(1600),
                None,
            ),
            (
                br#"{"access_token":"a","expires_in":"600"}"#,
                Some(1600),
                None,
            ),
            (
                br#"{"access_token":"a","expires_in":" 600 "}"#,
                Some(1600),
                None,
            ),
            (
                br#"{"access_token":"a","expires_in":599.9}"#,
                Some(1599),
                None,
            ),
            (
                br#"{"access_token":"a","expires_in":"599.9"}"#,
                Some(1599),
                None,
            ),
            (
                br#"{"access_token":"a","expires_in":1e30}"#,
                Some(u64::MAX),
                None,
            ),
            (
                br#"{"access_token":"a","token_type":"BEARER","refresh_expires_in":1800}"#,
                None,
                Some(2800),
            ),
            (
                br#"{"access_token":"a","refresh_token_expires_in":"90"}"#,
                None,
                Some(1090),
            ),
        ] {
            let ts = TokenSet::from_response(body, "old", 1000).unwrap();
            assert_eq!(
                (ts.expires_at, ts.refresh_expires_at),
                (expires, refresh),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn malformed_responses_are_refused() {
        for body in [
            &b"not json"[..],
            br#"{"token_type":"Bearer"}"#,
            br#"{"access_token":""}"#,
            br#"{"access_token":"a","token_type":"mac"}"#,
            br#"{"access_token":"a","token_type":"DPoP"}"#,
            br#"{"access_token":"a","expires_in":-5}"#,
            br#"{"access_token":"a","expires_in":"soon"}"#,
            br#"{"access_token":"a","expires_in":"-1"}"#,
        ] {
            let err = TokenSet::from_response(body, "old", 0).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::RefreshFailed);
        }
    }

    #[test]
    fn debug_hides_tokens() {
        let ts = TokenSet::from_response(
            br#"{"access_token":"at-SECRET","refresh_token":"rt-SECRET"}"#,
            "old",
            0,
        )
        .unwrap();
        let debug = format!("{ts:?}");
        assert!(!debug.contains("SECRET"), "{debug}");
    }
}
