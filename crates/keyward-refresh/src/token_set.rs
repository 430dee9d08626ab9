//! What a successful refresh returns.

use crate::secret::Secret;
use keyward_core::{Error, ErrorKind};
use serde::Deserialize;

/// The tokens a refresh produced. `Debug` never shows the tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// The ID token, if the provider sent one.
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
    expires_in: Option<serde_json::Number>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    scope: Option<String>,
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
            if !t.eq_ignore_ascii_case("bearer") && !t.eq_ignore_ascii_case("dpop") {
                return Err(malformed("token_type is not Bearer"));
            }
        }
        let from_expires_in = match r.expires_in {
            None => None,
            Some(n) => Some(
                now.saturating_add(
                    n.as_u64()
                        .ok_or_else(|| malformed("expires_in is not a whole number of seconds"))?,
                ),
            ),
        };
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
    fn malformed_responses_are_transient_failures() {
        for body in [
            &b"not json"[..],
            br#"{"token_type":"Bearer"}"#,
            br#"{"access_token":""}"#,
            br#"{"access_token":"a","token_type":"mac"}"#,
            br#"{"access_token":"a","expires_in":-5}"#,
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
