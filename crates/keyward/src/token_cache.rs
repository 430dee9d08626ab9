//! The verified-token cache: a token already verified is answered from
//! memory.
//!
//! Threats addressed:
//! - Confusion between tokens: entries are keyed by the **full token
//!   bytes**, stored and compared in full (a hash collision can never return
//!   someone else's session); a token differing in one byte is verified from
//!   scratch.
//! - Serving what is no longer valid: every hit re-checks `exp`, `nbf` and,
//!   with a maximum age, `iat` with the same function verification uses
//!   ([`Validation::check_time_claims`]); an entry lives until the earliest
//!   of `exp` and `iat` + maximum age (plus the leeway), and at most
//!   [`UNBOUNDED_LIFETIME`] when neither bounds the token; a hit whose key is
//!   no longer in the key source (rotated out, or disowned by the issuer's
//!   current set) is dropped and verified again. The key is the one that
//!   verified the token, named by its `kid` even when the token had none, so
//!   dropping a `kid` header does not dodge a key's removal.
//! - Memory exhaustion: the cache is bounded in **bytes**, not entries
//!   (tokens of a few KiB with large `groups` claims would otherwise grow the
//!   process by gigabytes). Each entry is weighed as the token, the compact
//!   [`Session`] ([`Session::retained_bytes`]) and a fixed overhead for the
//!   cache's own bookkeeping; the session keeps the payload text, not a
//!   parsed tree.
//! - Work before the size limit: the token's size is checked before it is
//!   hashed for a lookup (see the authenticator).

use keyward_claims::Session;
use keyward_core::{Algorithm, KeyQuery, KeySource, Validation};
use moka::sync::Cache;
use moka::Expiry;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The cache's default budget: 64 MiB.
pub const DEFAULT_TOKEN_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// How long an entry lives when nothing in the token bounds it (no `exp` —
/// only possible with `require_exp(false)` — and no maximum age); also the
/// longest any entry lives, so a far-future `exp` is re-verified now and
/// then.
pub const UNBOUNDED_LIFETIME: Duration = Duration::from_secs(300);

/// What one entry costs besides its token and session: the key's and the
/// entry's allocations, and moka's per-entry bookkeeping (its node, the
/// access-order and timer-wheel links, the hash-table slot). Measured by the
/// `token_cache_memory` test, which fails if the estimate is too low.
const ENTRY_OVERHEAD: usize = 384;

/// What a hit needs to re-check cheaply.
pub(crate) struct Entry {
    pub(crate) session: Session,
    exp: Option<f64>,
    nbf: Option<f64>,
    iat: Option<f64>,
    /// Until when (seconds since the epoch) the token can pass the time
    /// checks, if anything bounds it.
    valid_until: Option<f64>,
    /// The verifying key's `kid` (the token's, or the key's own when the
    /// token named none).
    kid: Option<Box<str>>,
    alg: Algorithm,
}

impl Entry {
    pub(crate) fn new(
        session: Session,
        kid: Option<&str>,
        alg: Algorithm,
        validation: &Validation,
    ) -> Self {
        let registered = session.registered_claims();
        let exp = registered.exp.map(|d| d.0);
        let iat = registered.iat.map(|d| d.0);
        Entry {
            exp,
            nbf: registered.nbf.map(|d| d.0),
            iat,
            valid_until: validation.valid_until(exp, iat),
            kid: kid.map(Into::into),
            alg,
            session,
        }
    }

    /// The bytes this entry holds, with its key of `token_len` bytes.
    fn weight(&self, token_len: usize) -> u32 {
        let bytes = token_len
            + ENTRY_OVERHEAD
            + self.kid.as_deref().map_or(0, str::len)
            + self.session.retained_bytes();
        u32::try_from(bytes).unwrap_or(u32::MAX)
    }
}

/// Expire entries when their token can no longer pass the time checks.
struct ExpireWithToken;

impl Expiry<Box<str>, Arc<Entry>> for ExpireWithToken {
    fn expire_after_create(
        &self,
        _key: &Box<str>,
        value: &Arc<Entry>,
        _created_at: Instant,
    ) -> Option<Duration> {
        let Some(until) = value.valid_until else {
            return Some(UNBOUNDED_LIFETIME);
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        // try_from: `exp` may be any finite number; never panic on it
        let left = Duration::try_from_secs_f64((until - now).max(0.0)).unwrap_or(Duration::MAX);
        Some(left.min(UNBOUNDED_LIFETIME))
    }
}

/// A cache of verified tokens bounded in bytes.
pub(crate) struct TokenCache {
    cache: Cache<Box<str>, Arc<Entry>>,
}

/// The outcome of a lookup.
pub(crate) enum Lookup {
    Hit(Session),
    /// Not cached, or cached but no longer servable (the caller verifies
    /// from scratch, which reports the precise error).
    Miss,
}

impl TokenCache {
    pub(crate) fn new(max_bytes: u64) -> Self {
        TokenCache {
            cache: Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|token: &Box<str>, entry: &Arc<Entry>| entry.weight(token.len()))
                .expire_after(ExpireWithToken)
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
            .check_time_claims(entry.exp, entry.nbf, entry.iat, now)
            .is_err()
            || !key_still_present(&entry, keys)
        {
            self.cache.invalidate(token);
            return Lookup::Miss;
        }
        Lookup::Hit(entry.session.clone())
    }

    pub(crate) fn insert(&self, token: &str, entry: Entry) {
        self.cache.insert(token.into(), Arc::new(entry));
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
