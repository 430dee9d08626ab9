//! The verified-token cache: a token already verified is answered from
//! memory.
//!
//! Threats addressed:
//! - Confusion between tokens: entries are keyed by the **full token
//!   bytes**, stored and compared in full (a hash collision can never return
//!   someone else's session); a token differing in one byte is verified from
//!   scratch.
//! - Serving what is no longer valid: `exp`/`nbf` are checked on every hit
//!   with the same rule as verification; entries expire with their token; a
//!   hit whose key is no longer in the key source (rotated out, or disowned
//!   by the issuer's current set) is dropped and verified again.

use keyward_claims::Session;
use keyward_core::{Algorithm, KeyQuery, KeySource, Validation};
use moka::sync::Cache;
use moka::Expiry;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What a hit needs to re-check cheaply.
pub(crate) struct Entry {
    pub(crate) session: Session,
    exp: Option<f64>,
    nbf: Option<f64>,
    kid: Option<Box<str>>,
    alg: Algorithm,
}

impl Entry {
    pub(crate) fn new(session: Session, kid: Option<&str>, alg: Algorithm) -> Self {
        let registered = &session.claims().registered;
        Entry {
            exp: registered.exp.map(|d| d.0),
            nbf: registered.nbf.map(|d| d.0),
            kid: kid.map(Into::into),
            alg,
            session,
        }
    }
}

/// Expire entries when their token does (plus the leeway during which the
/// token is still accepted).
struct ExpireWithToken {
    leeway: Duration,
}

impl Expiry<String, Arc<Entry>> for ExpireWithToken {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Arc<Entry>,
        _created_at: Instant,
    ) -> Option<Duration> {
        let exp = value.exp?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        Some(Duration::from_secs_f64((exp - now).max(0.0)) + self.leeway)
    }
}

/// A bounded cache of verified tokens.
pub(crate) struct TokenCache {
    cache: Cache<String, Arc<Entry>>,
}

/// The outcome of a lookup.
pub(crate) enum Lookup {
    Hit(Session),
    /// Not cached, or cached but no longer servable (the caller verifies
    /// from scratch, which reports the precise error).
    Miss,
}

impl TokenCache {
    pub(crate) fn new(max_entries: u64, leeway: Duration) -> Self {
        TokenCache {
            cache: Cache::builder()
                .max_capacity(max_entries)
                .expire_after(ExpireWithToken { leeway })
                .build(),
        }
    }

    pub(crate) fn get(
        &self,
        token: &str,
        validation: &Validation,
        keys: &dyn KeySource,
        now: u64,
    ) -> Lookup {
        let Some(entry) = self.cache.get(token) else {
            return Lookup::Miss;
        };
        if validation
            .check_time_window(entry.exp, entry.nbf, now)
            .is_err()
            || !key_still_present(&entry, keys)
        {
            self.cache.invalidate(token);
            return Lookup::Miss;
        }
        Lookup::Hit(entry.session.clone())
    }

    pub(crate) fn insert(&self, token: &str, entry: Entry) {
        self.cache.insert(token.to_owned(), Arc::new(entry));
    }
}

/// Whether the key that verified the token is still offered by the source,
/// answered from memory. If the source would need I/O to answer, the entry
/// is not served (a full verification will ask it).
fn key_still_present(entry: &Entry, keys: &dyn KeySource) -> bool {
    let query = KeyQuery {
        kid: entry.kid.as_deref(),
        alg: entry.alg,
    };
    match (keys.resolve_cached(&query), entry.kid.as_deref()) {
        (None, _) => false,
        (Some(set), Some(kid)) => set.contains_kid(kid) && !keys.disowns(kid),
        (Some(set), None) => set.keys().iter().any(|k| k.supports(entry.alg)),
    }
}
