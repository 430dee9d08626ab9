//! An ordered chain of key sources: typically the baked static set first
//! and the issuer's remote set second.
//!
//! - A cold start needs no network while the baked keys are current: the
//!   static source answers from memory.
//! - A key rotated in at the issuer is found through the remote source (an
//!   unknown kid triggers its rate-limited refetch): no redeploy.
//! - A key removed at the issuer: the static set cannot know. By default a
//!   later source that holds a current key set without that kid *disowns*
//!   it, and the chain then refuses the kid even though an earlier source
//!   still has it (`unknown_key`). This takes effect as soon as the remote
//!   set has been fetched after the removal — see `docs/key-rotation.md`.
//!   [`RotatingKeySource::honor_removals`] turns this off.
//! - "Nobody knows this kid" is `unknown_key`; "a source could not be
//!   reached and nobody else knew it" is `key_unavailable`.

use async_trait::async_trait;
use keyward_core::{Error, ErrorKind, KeyQuery, KeySet, KeySource};
use std::fmt;
use std::sync::Arc;

/// The first source that knows the token's `kid` answers.
///
/// ```
/// use keyward_keys::{RotatingKeySource, StaticKeySource};
/// let baked = StaticKeySource::from_jwks(r#"{"keys":[{"kty":"OKP","crv":"Ed25519",
///     "kid":"k1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#).unwrap();
/// let chain = RotatingKeySource::new().then(baked);
/// // .then(RemoteKeySource::from_issuer("https://issuer.example")?)
/// # let _ = chain;
/// ```
#[derive(Clone, Default)]
pub struct RotatingKeySource {
    sources: Vec<Arc<dyn KeySource>>,
    ignore_removals: bool,
}

impl fmt::Debug for RotatingKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RotatingKeySource")
            .field("sources", &self.sources.len())
            .field("honor_removals", &!self.ignore_removals)
            .finish()
    }
}

/// Whether `keys` can answer `query`: the exact kid, or (without kid) a key
/// for the algorithm.
fn knows(keys: &KeySet, query: &KeyQuery<'_>) -> bool {
    match query.kid {
        Some(kid) => keys.contains_kid(kid),
        None => keys.keys().iter().any(|k| k.supports(query.alg)),
    }
}

impl RotatingKeySource {
    /// An empty chain; add sources with [`then`](Self::then).
    pub fn new() -> Self {
        RotatingKeySource::default()
    }

    /// Appends a source; earlier sources are asked first.
    pub fn then(mut self, source: impl KeySource + 'static) -> Self {
        self.sources.push(Arc::new(source));
        self
    }

    /// Whether a kid disowned by one source (removed at its issuer) is
    /// refused even when another source still has it (default `true`).
    pub fn honor_removals(mut self, honor: bool) -> Self {
        self.ignore_removals = !honor;
        self
    }

    fn disowned(&self, query: &KeyQuery<'_>) -> bool {
        !self.ignore_removals
            && query
                .kid
                .is_some_and(|kid| self.sources.iter().any(|s| s.disowns(kid)))
    }

    fn removed_error(kid: &str) -> Error {
        Error::new(
            ErrorKind::UnknownKey,
            format!("key {} has been removed by its issuer", Error::quote(kid)),
        )
    }
}

#[async_trait]
impl KeySource for RotatingKeySource {
    fn resolve_cached(&self, query: &KeyQuery<'_>) -> Option<KeySet> {
        let mut last = None;
        for source in &self.sources {
            // A source that needs I/O to answer sends us down the async path.
            let keys = source.resolve_cached(query)?;
            if knows(&keys, query) {
                if self.disowned(query) {
                    return None; // `resolve` reports the removal
                }
                return Some(keys);
            }
            last = Some(keys);
        }
        // every source answered from memory and none knows the kid
        last
    }

    async fn resolve(&self, query: &KeyQuery<'_>) -> Result<KeySet, Error> {
        if self.disowned(query) {
            if let Some(kid) = query.kid {
                return Err(Self::removed_error(kid));
            }
        }
        let mut unavailable: Option<Error> = None;
        let mut last = None;
        for source in &self.sources {
            let keys = match source.resolve_cached(query) {
                Some(keys) => keys,
                None => match source.resolve(query).await {
                    Ok(keys) => keys,
                    Err(e) if e.kind() == ErrorKind::KeyUnavailable => {
                        unavailable.get_or_insert(e);
                        continue;
                    }
                    Err(e) if e.kind() == ErrorKind::UnknownKey => continue,
                    Err(e) => return Err(e),
                },
            };
            if knows(&keys, query) {
                // The fetch above may just have learnt of a removal.
                if self.disowned(query) {
                    if let Some(kid) = query.kid {
                        return Err(Self::removed_error(kid));
                    }
                }
                return Ok(keys);
            }
            last = Some(keys);
        }
        match (unavailable, last) {
            (Some(e), _) => Err(e),
            (None, Some(keys)) => Ok(keys), // the verifier says unknown_key
            (None, None) => Err(Error::new(
                ErrorKind::UnknownKey,
                "no key source knows this key",
            )),
        }
    }

    fn disowns(&self, kid: &str) -> bool {
        self.sources.iter().any(|s| s.disowns(kid))
    }
}
