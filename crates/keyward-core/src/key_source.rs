//! Where verifying keys come from.
//!
//! [`KeySource`] is deliberately tiny, like tower's `Service`: resolve the
//! key set that can answer a token's `(kid, alg)`. Implementations in
//! `keyward-keys` load static sets, fetch and cache remote ones, or chain
//! several; a [`KeySet`] is itself a key source. Sources compose by
//! wrapping (`Arc<S>`, `Box<S>` and `&S` are sources too).

use crate::algorithm::Algorithm;
use crate::error::Error;
use crate::jwk::{Jwk, KeySet};
use async_trait::async_trait;
use std::sync::Arc;

/// What a token asks for: its `kid` (if any) and its `alg`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyQuery<'a> {
    /// The token's `kid` header, if present.
    pub kid: Option<&'a str>,
    /// The token's `alg` header.
    pub alg: Algorithm,
}

/// A source of verifying keys.
///
/// The verifier first asks [`resolve_cached`](KeySource::resolve_cached), a
/// plain function call, so a verification whose keys are in memory never
/// allocates a boxed future; only when that returns `None` does it await
/// [`resolve`](KeySource::resolve).
///
/// The answer is a key set; the verifier picks the key in it (exact `kid`
/// match, algorithm family, the JWK's `alg`). A source that cannot find a
/// key for the `kid` returns `unknown_key`; one that could not obtain keys
/// at all returns `key_unavailable`.
///
/// ```
/// use keyward_core::{async_trait, Error, KeyQuery, KeySet, KeySource};
///
/// /// A source that always answers from one set (what `KeySet` itself does).
/// struct Fixed(KeySet);
///
/// #[async_trait]
/// impl KeySource for Fixed {
///     async fn resolve(&self, _query: &KeyQuery<'_>) -> Result<KeySet, Error> {
///         Ok(self.0.clone())
///     }
///     fn resolve_cached(&self, _query: &KeyQuery<'_>) -> Option<KeySet> {
///         Some(self.0.clone())
///     }
/// }
/// ```
#[async_trait]
pub trait KeySource: Send + Sync {
    /// Resolves the key set for `query`, doing I/O if needed.
    async fn resolve(&self, query: &KeyQuery<'_>) -> Result<KeySet, Error>;

    /// The key set for `query` if it can be answered from memory, without
    /// I/O; `None` means "call [`resolve`](KeySource::resolve)". A `Some`
    /// answer is final: if its set has no key for the `kid`, the token is
    /// rejected with `unknown_key`.
    fn resolve_cached(&self, query: &KeyQuery<'_>) -> Option<KeySet> {
        let _ = query;
        None
    }

    /// Whether this source holds a current key set from its authority that
    /// does **not** contain `kid` — i.e. the issuer no longer publishes it.
    /// A chain of sources uses this to stop accepting a removed key that an
    /// earlier (static) source still has. Sources without such knowledge
    /// answer `false` (the default).
    fn disowns(&self, kid: &str) -> bool {
        let _ = kid;
        false
    }

    /// Whether this source disowns `key`: by its `kid` when it has one
    /// ([`disowns`](KeySource::disowns)); a source that can recognise keys
    /// by their material (a fetched JWKS) also disowns a key without `kid`
    /// that its current set does not hold. A chain drops disowned keys from
    /// an earlier source's answer for tokens without `kid`, so removing a
    /// `kid` header never brings a removed key back.
    fn disowns_key(&self, key: &Jwk) -> bool {
        key.kid().is_some_and(|kid| self.disowns(kid))
    }
}

#[async_trait]
impl KeySource for KeySet {
    async fn resolve(&self, _query: &KeyQuery<'_>) -> Result<KeySet, Error> {
        Ok(self.clone())
    }
    fn resolve_cached(&self, _query: &KeyQuery<'_>) -> Option<KeySet> {
        Some(self.clone())
    }
}

macro_rules! forward_key_source {
    ($($wrapper:ty),*) => {$(
        #[async_trait]
        impl<S: KeySource + ?Sized> KeySource for $wrapper {
            async fn resolve(&self, query: &KeyQuery<'_>) -> Result<KeySet, Error> {
                (**self).resolve(query).await
            }
            fn resolve_cached(&self, query: &KeyQuery<'_>) -> Option<KeySet> {
                (**self).resolve_cached(query)
            }
            fn disowns(&self, kid: &str) -> bool {
                (**self).disowns(kid)
            }
            fn disowns_key(&self, key: &Jwk) -> bool {
                (**self).disowns_key(key)
            }
        }
    )*};
}

forward_key_source!(Arc<S>, Box<S>, &S);
