//! The verified-token cache: a token already verified is answered from
//! memory.
//!
//! Threats addressed:
//! - Confusion between tokens: entries are found by a keyed 64-bit hash of
//!   the token (SipHash with a per-process random key, so collisions cannot
//!   be aimed), and every entry stores its **full token**, compared in full
//!   on every hit: a collision is a miss, never someone else's session; a
//!   token differing in one byte is verified from scratch. (The index is a
//!   hash rather than the token itself because moka keeps the keys of
//!   recently removed entries for a while: with 32 KiB tokens as keys, that
//!   was 14 MiB beyond the budget.)
//! - Serving what is no longer valid: every hit re-checks `exp`, `nbf` and,
//!   with a maximum age, `iat` with the same function verification uses
//!   ([`Validation::check_time_claims`]); an entry lives until the earliest
//!   of `exp` and `iat` + maximum age (plus the leeway), and at most
//!   [`UNBOUNDED_LIFETIME`] when neither bounds the token; a hit whose key is
//!   no longer in the key source (rotated out, or disowned by the issuer's
//!   current set) is dropped and verified again. The key is the one that
//!   verified the token, named by its `kid` even when the token had none, so
//!   dropping a `kid` header does not dodge a key's removal; and a hit
//!   requires the source to offer the very key set that verified the token
//!   ([`KeySet::ptr_eq`]), so a key replaced under the same `kid`, or a
//!   kid-less key replaced by another, sends the token back to full
//!   verification.
//! - Memory exhaustion: the cache is bounded in **bytes**, not entries
//!   (tokens of a few KiB with large `groups` claims would otherwise grow the
//!   process by gigabytes). Each entry is weighed as the token, the compact
//!   [`Session`] ([`Session::retained_bytes`]) and a fixed overhead for the
//!   cache's own bookkeeping; the session keeps the payload text, not a
//!   parsed tree.
//! - Work before the size limit: the token's size is checked before it is
//!   hashed for a lookup (see the authenticator).

use keyward_claims::Session;
use keyward_core::{Algorithm, KeyQuery, KeySet, KeySource, Validation};
use moka::sync::Cache;
use moka::Expiry;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// The token itself, compared in full on every hit.
    token: Box<str>,
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
    /// The key set that verified the token (a shared handle). A hit requires
    /// the source to offer this very set: a key replaced under the same
    /// `kid`, or a kid-less key replaced by another, makes a new set, and
    /// the token is verified again.
    keys: KeySet,
}

impl Entry {
    pub(crate) fn new(
        token: &str,
        session: Session,
        kid: Option<&str>,
        alg: Algorithm,
        keys: KeySet,
        validation: &Validation,
    ) -> Self {
        let registered = session.registered_claims();
        let exp = registered.exp.map(|d| d.0);
        let iat = registered.iat.map(|d| d.0);
        Entry {
            token: token.into(),
            exp,
            nbf: registered.nbf.map(|d| d.0),
            iat,
            valid_until: validation.valid_until(exp, iat),
            kid: kid.map(Into::into),
            alg,
            keys,
            session,
        }
    }

    /// The bytes this entry holds.
    fn weight(&self) -> u32 {
        let bytes = self.token.len()
            + ENTRY_OVERHEAD
            + self.kid.as_deref().map_or(0, str::len)
            + self.session.retained_bytes();
        u32::try_from(bytes).unwrap_or(u32::MAX)
    }
}

/// Expire entries when their token can no longer pass the time checks.
struct ExpireWithToken;

impl Expiry<u64, Arc<Entry>> for ExpireWithToken {
    fn expire_after_create(
        &self,
        _key: &u64,
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
///
/// moka applies inserts (and so evictions) in batches, on its own schedule:
/// left alone, up to a few hundred entries can sit above the budget before
/// the next batch — 16 MiB of 32 KiB tokens over a 16 MiB budget. So the
/// bytes inserted since the last batch are counted here, and once they
/// reach a sixteenth of the budget the batch is run at once: the cache never
/// holds more than the budget plus that sixteenth (plus one entry).
pub(crate) struct TokenCache {
    cache: Cache<u64, Arc<Entry>>,
    /// The keyed hash that indexes entries.
    index: RandomState,
    /// Weight inserted since moka last applied pending inserts.
    unapplied: AtomicU64,
    /// When `unapplied` reaches this, pending inserts are applied now.
    apply_at: u64,
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
                .weigher(|_: &u64, entry: &Arc<Entry>| entry.weight())
                .expire_after(ExpireWithToken)
                .build(),
            index: RandomState::new(),
            unapplied: AtomicU64::new(0),
            apply_at: (max_bytes / 16).max(1),
        }
    }

    pub(crate) fn get(
        &self,
        token: &str,
        validation: &Validation,
        keys: &dyn KeySource,
        now: u64,
    ) -> Lookup {
        let key = self.index.hash_one(token);
        let Some(entry) = self.cache.get(&key) else {
            return Lookup::Miss;
        };
        if *entry.token != *token {
            // another token with the same 64-bit hash: not this one's entry
            return Lookup::Miss;
        }
        if validation
            .check_time_claims(entry.exp, entry.nbf, entry.iat, now)
            .is_err()
            || !key_still_present(&entry, keys)
        {
            self.cache.invalidate(&key);
            return Lookup::Miss;
        }
        Lookup::Hit(entry.session.clone())
    }

    pub(crate) fn insert(&self, entry: Entry) {
        let weight = u64::from(entry.weight());
        let key = self.index.hash_one(&*entry.token);
        self.cache.insert(key, Arc::new(entry));
        let unapplied = self.unapplied.fetch_add(weight, Ordering::Relaxed) + weight;
        if unapplied >= self.apply_at {
            // whoever crosses the mark resets it and runs the batch; a
            // concurrent insert may run one too, which is only extra work
            self.unapplied.store(0, Ordering::Relaxed);
            self.cache.run_pending_tasks();
        }
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
        (Some(set), Some(kid)) => set.ptr_eq(&entry.keys) && !keys.disowns(kid),
        (Some(set), None) => set.ptr_eq(&entry.keys),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_claims::{AccessTokenClaims, ClaimMapping};

    fn entry(json: &str, validation: &Validation) -> Arc<Entry> {
        let claims: AccessTokenClaims = serde_json::from_str(json).unwrap();
        let session = Session::from_claims(claims, &ClaimMapping::default()).unwrap();
        Arc::new(Entry::new(
            "t",
            session,
            Some("k"),
            Algorithm::ES256,
            KeySet::from_keys(Vec::new()),
            validation,
        ))
    }

    fn lifetime(json: &str, validation: &Validation) -> Option<Duration> {
        ExpireWithToken.expire_after_create(&0, &entry(json, validation), Instant::now())
    }

    /// Item 8: with `require_exp(false)` entries never expired; now nothing
    /// lives longer than the unbounded lifetime, and a maximum age bounds
    /// an entry before its `exp` does.
    #[test]
    fn entry_lifetimes_are_bounded() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let lax = Validation::new().require_exp(false);
        assert_eq!(lifetime(r#"{"sub":"u"}"#, &lax), Some(UNBOUNDED_LIFETIME));
        // a far-future exp (any finite number) neither panics nor lives long
        for exp in ["1e300", "18446744073709551615", "99999999999"] {
            let json = format!(r#"{{"sub":"u","exp":{exp}}}"#);
            assert_eq!(lifetime(&json, &lax), Some(UNBOUNDED_LIFETIME), "{exp}");
        }
        // exp in 100 s, leeway 60 s
        let json = format!(r#"{{"sub":"u","exp":{}}}"#, now + 100);
        let left = lifetime(&json, &Validation::new()).unwrap();
        assert!(
            left > Duration::from_secs(155) && left <= Duration::from_secs(160),
            "{left:?}"
        );
        // issued 50 s ago, max age 60 s, leeway 60 s: 70 s left, before exp
        let aged = Validation::new().max_age(Duration::from_secs(60));
        let json = format!(r#"{{"sub":"u","iat":{},"exp":{}}}"#, now - 50, now + 3000);
        let left = lifetime(&json, &aged).unwrap();
        assert!(
            left > Duration::from_secs(65) && left <= Duration::from_secs(70),
            "{left:?}"
        );
        // already past: zero
        let json = format!(r#"{{"sub":"u","exp":{}}}"#, now - 1000);
        assert_eq!(lifetime(&json, &Validation::new()), Some(Duration::ZERO));
    }

    #[test]
    fn a_hash_collision_is_a_miss_not_another_session() {
        let cache = TokenCache::new(1 << 20);
        let validation = Validation::new().require_exp(false);
        let keys =
            keyward_core::KeySet::from_jwks(&keyward_testkit::TestIssuer::new("https://i").jwks())
                .unwrap();
        let session = || {
            let claims: AccessTokenClaims = serde_json::from_str(r#"{"sub":"u"}"#).unwrap();
            Session::from_claims(claims, &ClaimMapping::default()).unwrap()
        };
        let entry = |token| {
            Entry::new(
                token,
                session(),
                Some("key-1"),
                Algorithm::ES256,
                keys.clone(),
                &validation,
            )
        };
        // control: an entry under its own index is served
        cache.insert(entry("a"));
        assert!(matches!(
            cache.get("a", &validation, &keys, 0),
            Lookup::Hit(_)
        ));
        // an entry for token "a" planted under the index of token "b"
        cache
            .cache
            .insert(cache.index.hash_one("b"), Arc::new(entry("a")));
        assert!(matches!(
            cache.get("b", &validation, &keys, 0),
            Lookup::Miss
        ));
    }
}
