//! Keys baked into configuration at deploy time: zero network, ever.

use async_trait::async_trait;
use keyward_core::{Error, ErrorKind, KeyQuery, KeySet, KeySource};
use std::path::Path;

/// A fixed key set from a JWKS string, file or environment variable.
///
/// This is the "JWKS baked into config" source: a cold start verifies
/// tokens with no network at all. Keys that cannot be used are skipped with
/// a warning (see [`KeySet::skipped`]); a document with no usable key at
/// all is an error, because a baked key set that verifies nothing is a
/// deployment mistake.
///
/// ```
/// use keyward_keys::StaticKeySource;
/// let keys = StaticKeySource::from_jwks(r#"{"keys":[{"kty":"OKP","crv":"Ed25519",
///     "kid":"k1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#).unwrap();
/// assert!(keys.key_set().contains_kid("k1"));
/// ```
#[derive(Clone, Debug)]
pub struct StaticKeySource {
    keys: KeySet,
}

impl StaticKeySource {
    /// Parses a JWKS document.
    pub fn from_jwks(jwks: &str) -> Result<Self, Error> {
        Self::from_key_set(KeySet::from_jwks(jwks)?, "the JWKS")
    }

    /// Reads and parses a JWKS file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::new(
                ErrorKind::KeyUnavailable,
                format!("cannot read JWKS file {}: {e}", path.display()),
            )
        })?;
        let keys = KeySet::from_jwks(&text).map_err(|e| {
            Error::new(
                e.kind(),
                format!("JWKS file {}: {}", path.display(), e.message()),
            )
        })?;
        Self::from_key_set(keys, &format!("JWKS file {}", path.display()))
    }

    /// Parses the JWKS held in an environment variable.
    pub fn from_env(variable: &str) -> Result<Self, Error> {
        let text = std::env::var(variable).map_err(|e| {
            Error::new(
                ErrorKind::KeyUnavailable,
                format!("environment variable {variable}: {e}"),
            )
        })?;
        let keys = KeySet::from_jwks(&text)
            .map_err(|e| Error::new(e.kind(), format!("JWKS in ${variable}: {}", e.message())))?;
        Self::from_key_set(keys, &format!("JWKS in ${variable}"))
    }

    /// Wraps an already parsed key set (an empty set is an error).
    pub fn from_key_set(keys: KeySet, origin: &str) -> Result<Self, Error> {
        if keys.is_empty() {
            let reasons: Vec<String> = keys
                .skipped()
                .iter()
                .map(|s| {
                    let kid = s
                        .kid
                        .as_deref()
                        .map(Error::quote)
                        .unwrap_or_else(|| "without kid".into());
                    format!("key #{} ({kid}): {}", s.index, s.reason)
                })
                .collect();
            let detail = if reasons.is_empty() {
                "its \"keys\" array is empty".to_owned()
            } else {
                reasons.join("; ")
            };
            return Err(Error::new(
                ErrorKind::Malformed,
                format!("{origin} has no usable key: {detail}"),
            ));
        }
        Ok(StaticKeySource { keys })
    }

    /// The key set.
    pub fn key_set(&self) -> &KeySet {
        &self.keys
    }
}

#[async_trait]
impl KeySource for StaticKeySource {
    async fn resolve(&self, _query: &KeyQuery<'_>) -> Result<KeySet, Error> {
        Ok(self.keys.clone())
    }

    fn resolve_cached(&self, _query: &KeyQuery<'_>) -> Option<KeySet> {
        Some(self.keys.clone())
    }
}
