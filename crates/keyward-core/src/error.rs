//! The error type and its stable kinds.
//!
//! Every failure has a [`ErrorKind`] whose [`ErrorKind::as_str`] is a stable
//! snake_case name for code, logs and metrics, and a message for humans. A
//! message never contains the token, a signature or key material: only what
//! the caller needs to act (the claim name, the algorithm, a sanitised `kid`).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// What went wrong, as a stable, machine-readable category.
///
/// New kinds may be added in later versions; existing ones are never renamed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The token or a document is not well-formed (segments, base64url,
    /// JSON, member types in the header or a JWK).
    Malformed,
    /// The `alg` is not one keyward implements (this includes `none`).
    UnsupportedAlgorithm,
    /// The `alg` is implemented but not allowed here: not in the caller's
    /// allowlist, or not the algorithm the key is bound to.
    AlgorithmNotAllowed,
    /// No key in the key source matches the token's `kid` (or, without a
    /// `kid`, no key is compatible with its algorithm).
    UnknownKey,
    /// The signature does not verify.
    InvalidSignature,
    /// The token's `exp` has passed (allowing for leeway).
    Expired,
    /// The token's `nbf` (or `iat`, with a maximum age) is in the future.
    NotYetValid,
    /// The token was issued longer ago than the configured maximum age.
    TooOld,
    /// The `iss` claim is not one of the accepted issuers.
    InvalidIssuer,
    /// The `aud` claim names none of the accepted audiences.
    InvalidAudience,
    /// The `typ` header is not the expected media type.
    InvalidType,
    /// A required claim is absent.
    MissingClaim,
    /// A claim is present but has the wrong type or a rejected value.
    InvalidClaim,
    /// The header lists a critical extension (`crit`) keyward does not
    /// understand, or uses one it refuses (`b64: false`).
    UnsupportedCriticalHeader,
    /// The token is larger than the configured limit; nothing was decoded.
    TokenTooLarge,
    /// The key is too weak to be trusted (RSA under 2048 bits, a short HMAC
    /// secret).
    WeakKey,
    /// The key source could not produce keys (network, parse).
    KeyUnavailable,
    /// The OIDC userinfo endpoint could not be used.
    UserInfoUnavailable,
    /// The userinfo `sub` is not the token's `sub`.
    UserIdMismatch,
    /// A token refresh failed for a transient reason.
    RefreshFailed,
    /// The provider rejected the refresh token: the session is over.
    InvalidGrant,
    /// The request carries no token at all (no `Authorization: Bearer`, no
    /// session cookie) — distinct from a token that is invalid.
    NoCredentials,
    /// A builder was given settings that cannot work (a bad URL, no key
    /// source, an empty baked key set); reported at `build()`, never at the
    /// first token.
    InvalidConfiguration,
    /// The token is bound to a key by its `cnf` claim (RFC 9449 DPoP, RFC
    /// 8705 mutual TLS) and was presented as a plain bearer token, without
    /// the proof of possession that must accompany it.
    SenderConstrainedToken,
}

impl ErrorKind {
    /// Every kind, in declaration order.
    pub const ALL: [ErrorKind; 24] = [
        ErrorKind::Malformed,
        ErrorKind::UnsupportedAlgorithm,
        ErrorKind::AlgorithmNotAllowed,
        ErrorKind::UnknownKey,
        ErrorKind::InvalidSignature,
        ErrorKind::Expired,
        ErrorKind::NotYetValid,
        ErrorKind::TooOld,
        ErrorKind::InvalidIssuer,
        ErrorKind::InvalidAudience,
        ErrorKind::InvalidType,
        ErrorKind::MissingClaim,
        ErrorKind::InvalidClaim,
        ErrorKind::UnsupportedCriticalHeader,
        ErrorKind::TokenTooLarge,
        ErrorKind::WeakKey,
        ErrorKind::KeyUnavailable,
        ErrorKind::UserInfoUnavailable,
        ErrorKind::UserIdMismatch,
        ErrorKind::RefreshFailed,
        ErrorKind::InvalidGrant,
        ErrorKind::NoCredentials,
        ErrorKind::InvalidConfiguration,
        ErrorKind::SenderConstrainedToken,
    ];

    /// The stable snake_case name of this kind, e.g. `"invalid_signature"`.
    ///
    /// ```
    /// use keyward_core::ErrorKind;
    /// assert_eq!(ErrorKind::UnknownKey.as_str(), "unknown_key");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Malformed => "malformed",
            ErrorKind::UnsupportedAlgorithm => "unsupported_algorithm",
            ErrorKind::AlgorithmNotAllowed => "algorithm_not_allowed",
            ErrorKind::UnknownKey => "unknown_key",
            ErrorKind::InvalidSignature => "invalid_signature",
            ErrorKind::Expired => "expired",
            ErrorKind::NotYetValid => "not_yet_valid",
            ErrorKind::TooOld => "too_old",
            ErrorKind::InvalidIssuer => "invalid_issuer",
            ErrorKind::InvalidAudience => "invalid_audience",
            ErrorKind::InvalidType => "invalid_type",
            ErrorKind::MissingClaim => "missing_claim",
            ErrorKind::InvalidClaim => "invalid_claim",
            ErrorKind::UnsupportedCriticalHeader => "unsupported_critical_header",
            ErrorKind::TokenTooLarge => "token_too_large",
            ErrorKind::WeakKey => "weak_key",
            ErrorKind::KeyUnavailable => "key_unavailable",
            ErrorKind::UserInfoUnavailable => "user_info_unavailable",
            ErrorKind::UserIdMismatch => "user_id_mismatch",
            ErrorKind::RefreshFailed => "refresh_failed",
            ErrorKind::InvalidGrant => "invalid_grant",
            ErrorKind::NoCredentials => "no_credentials",
            ErrorKind::InvalidConfiguration => "invalid_configuration",
            ErrorKind::SenderConstrainedToken => "sender_constrained_token",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A keyward error: a stable [`ErrorKind`] and a human-readable message.
///
/// The message never contains a token, signature, secret or key material.
/// Values that came from the token and help debugging (a `kid`, a claim
/// name) are shown escaped and truncated, see [`Error::quote`].
///
/// `Clone` so that one failure (say, a JWKS fetch shared by many waiters)
/// can be handed to every caller.
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    message: Cow<'static, str>,
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// Creates an error of `kind` with a message.
    ///
    /// The message must not contain secrets; callers in other keyward crates
    /// use this for their own kinds (`key_unavailable`, `refresh_failed`, ...).
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attaches an underlying cause (for example an I/O error). The cause's
    /// own `Display` must not contain secrets either.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// The stable category of this error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The human-readable message (without the kind).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Quotes an attacker-controlled string for a message: escaped (no
    /// control characters reach a log line) and truncated to 64 characters.
    pub fn quote(value: &str) -> String {
        const MAX: usize = 64;
        let mut out = String::with_capacity(value.len().min(MAX) + 8);
        out.push('"');
        for (i, c) in value.chars().enumerate() {
            if i == MAX {
                out.push_str("...");
                break;
            }
            out.extend(c.escape_debug());
        }
        out.push('"');
        out
    }

    pub(crate) fn malformed(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::Malformed, message)
    }

    pub(crate) fn invalid_claim(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::InvalidClaim, message)
    }

    pub(crate) fn missing_claim(claim: &str) -> Self {
        Error::new(
            ErrorKind::MissingClaim,
            format!(
                "the token has no {} claim, which is required",
                Error::quote(claim)
            ),
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind.as_str())
            .field("message", &self.message)
            .field("source", &self.source.as_ref().map(|s| s.to_string()))
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_are_the_stable_design_names() {
        let names: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "malformed",
                "unsupported_algorithm",
                "algorithm_not_allowed",
                "unknown_key",
                "invalid_signature",
                "expired",
                "not_yet_valid",
                "too_old",
                "invalid_issuer",
                "invalid_audience",
                "invalid_type",
                "missing_claim",
                "invalid_claim",
                "unsupported_critical_header",
                "token_too_large",
                "weak_key",
                "key_unavailable",
                "user_info_unavailable",
                "user_id_mismatch",
                "refresh_failed",
                "invalid_grant",
                "no_credentials",
                "invalid_configuration",
                "sender_constrained_token",
            ]
        );
    }

    #[test]
    fn quote_escapes_and_truncates() {
        assert_eq!(Error::quote("a\nb\"c"), "\"a\\nb\\\"c\"");
        let long = "x".repeat(100);
        let q = Error::quote(&long);
        assert!(q.len() < 75, "{q}");
        assert!(q.ends_with("...\""));
    }

    #[test]
    fn display_has_kind_and_message() {
        let e = Error::new(ErrorKind::Expired, "the token expired 5 s ago");
        assert_eq!(e.to_string(), "expired: the token expired 5 s ago");
        assert_eq!(e.kind(), ErrorKind::Expired);
    }
}
