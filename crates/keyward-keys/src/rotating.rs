//! An ordered chain of key sources: typically the baked static set first
//! and the issuer's remote set second.
//!
//! - A cold start needs no network while the baked keys are current: the
//!   static source answers from memory.
//! - A key rotated in at the issuer is found through the remote source (an
//!   unknown kid triggers its rate-limited refetch): no redeploy, at the
//!   first rotation and every later one.
//! - A key removed at the issuer: the static set cannot know. A kid is
//!   **removed** when a source *earlier* in the chain offers it and a
//!   *later* source, from its newest successful fetch, does not (it
//!   *disowns* it): the chain then refuses the kid (`unknown_key`, "removed
//!   by its issuer"). A kid that no source has is **unknown**, not removed:
//!   it is asked of every source in turn, so the remote source refetches
//!   (rate-limited) before the token fails.
//! - Removal applies to tokens without `kid` too: an earlier source's keys
//!   that a later source disowns (by kid, or by key material for a kid-less
//!   key) are left out of the answer.
//! - [`RotatingKeySource::honor_removals`] turns removal off.
//! - "Nobody knows this kid" is `unknown_key`; "a source could not be
//!   reached and nobody else knew it" is `key_unavailable`.

use async_trait::async_trait;
use keyward_core::{Error, ErrorKind, Jwk, KeyQuery, KeySet, KeySource};
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

/// What one source's answer means for the chain.
enum Verdict {
    /// The source knows the key and no later source disowns it.
    Answer(KeySet),
    /// The source knows the kid but a later source disowns it.
    Removed,
    /// The source does not know the key: ask the next one.
    Next(KeySet),
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

    /// Whether a kid offered by one source and disowned by a later one
    /// (removed at its issuer) is refused (default `true`).
    pub fn honor_removals(mut self, honor: bool) -> Self {
        self.ignore_removals = !honor;
        self
    }

    /// Judges the answer of the source at `index`: for a token with `kid`,
    /// whether a later source disowns the kid; for one without, the answer
    /// without the keys later sources disown.
    fn judge(&self, index: usize, keys: KeySet, query: &KeyQuery<'_>) -> Verdict {
        let later = self.sources.get(index + 1..).unwrap_or_default();
        if self.ignore_removals || later.is_empty() {
            return if knows(&keys, query) {
                Verdict::Answer(keys)
            } else {
                Verdict::Next(keys)
            };
        }
        match query.kid {
            Some(kid) if keys.contains_kid(kid) => {
                if later.iter().any(|s| s.disowns(kid)) {
                    return Verdict::Removed;
                }
                // The kid is still published, but maybe with other key
                // material (a key replaced under its kid): leave the old
                // material out, so that the later source answers.
                let replaced =
                    |key: &Jwk| key.kid() == Some(kid) && later.iter().any(|s| s.disowns_key(key));
                if !keys.find(kid).any(replaced) {
                    return Verdict::Answer(keys);
                }
                let kept = keys.without(replaced);
                if kept.contains_kid(kid) {
                    Verdict::Answer(kept)
                } else {
                    Verdict::Next(kept)
                }
            }
            Some(_) => Verdict::Next(keys),
            None => {
                let kept = keys.without(|key| later.iter().any(|s| s.disowns_key(key)));
                if knows(&kept, query) {
                    Verdict::Answer(kept)
                } else {
                    Verdict::Next(kept)
                }
            }
        }
    }

    fn removed_error(kid: Option<&str>) -> Error {
        Error::new(
            ErrorKind::UnknownKey,
            format!(
                "key {} has been removed by its issuer",
                Error::quote(kid.unwrap_or("(no kid)"))
            ),
        )
    }
}

#[async_trait]
impl KeySource for RotatingKeySource {
    fn resolve_cached(&self, query: &KeyQuery<'_>) -> Option<KeySet> {
        let mut last = None;
        for (index, source) in self.sources.iter().enumerate() {
            // A source that needs I/O to answer sends us down the async path.
            let keys = source.resolve_cached(query)?;
            match self.judge(index, keys, query) {
                Verdict::Answer(keys) => return Some(keys),
                Verdict::Removed => return None, // `resolve` reports the removal
                Verdict::Next(keys) => last = Some(keys),
            }
        }
        // every source answered from memory and none knows the kid
        last
    }

    async fn resolve(&self, query: &KeyQuery<'_>) -> Result<KeySet, Error> {
        let mut unavailable: Option<Error> = None;
        let mut last = None;
        for (index, source) in self.sources.iter().enumerate() {
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
            match self.judge(index, keys, query) {
                Verdict::Answer(keys) => return Ok(keys),
                Verdict::Removed => return Err(Self::removed_error(query.kid)),
                Verdict::Next(keys) => last = Some(keys),
            }
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

    fn disowns_key(&self, key: &Jwk) -> bool {
        self.sources.iter().any(|s| s.disowns_key(key))
    }
}
