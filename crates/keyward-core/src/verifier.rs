//! Verification of compact JWS/JWT tokens: the order of the checks.
//!
//! 1. Size limit, before any decoding (`token_too_large`).
//! 2. Exactly three segments; the header is strict base64url of a JSON
//!    object without duplicate members; `alg` is known; `crit` is empty of
//!    anything keyward does not implement.
//! 3. Header policy: algorithm allowlist (HMAC only when listed), `typ`.
//! 4. Key selection from the key source: exact `kid` match (never a key
//!    without a kid), or without `kid` a bounded number of keys compatible
//!    with the algorithm; the key's family and the JWK's `alg` must admit
//!    the token's `alg` — the algorithm comes from the key, not the token.
//! 5. Signature: exact length for the algorithm and key, then the backend.
//! 6. Only then is the payload decoded: JSON object, no duplicates, time and
//!    identity claims validated, then deserialised into the caller's type.

use crate::base64url;
use crate::claims;
use crate::error::{Error, ErrorKind};
use crate::header::Header;
use crate::json;
use crate::jwk::{Jwk, KeySet};
use crate::key_source::{KeyQuery, KeySource};
use crate::validation::{Clock, SystemClock, Validation};
use crate::Algorithm;
use serde::de::DeserializeOwned;
use std::fmt;
use std::sync::Arc;

/// Longest signature keyward can verify: RSA-8192, 1024 bytes.
const MAX_SIGNATURE_BYTES: usize = 1024;

/// A token whose signature and claims have been verified.
pub struct VerifiedToken<C> {
    header: Header,
    claims: C,
    claims_json: String,
    key_set: KeySet,
    key_index: usize,
}

impl<C> VerifiedToken<C> {
    /// The token's header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The typed claims.
    pub fn claims(&self) -> &C {
        &self.claims
    }

    /// Takes the typed claims.
    pub fn into_claims(self) -> C {
        self.claims
    }

    /// The payload exactly as signed (JSON text), for claims the typed
    /// model does not cover.
    pub fn claims_json(&self) -> &str {
        &self.claims_json
    }

    /// The key whose signature check succeeded. For a token without `kid`
    /// this tells which key of the set verified it (caches of verified
    /// tokens use it to notice when that key is withdrawn).
    pub fn key(&self) -> Option<&Jwk> {
        self.key_set.keys().get(self.key_index)
    }

    /// The key set the verifying key came from (a cheap, shared handle:
    /// compare with [`KeySet::ptr_eq`] to tell whether a source still
    /// offers the very same keys).
    pub fn key_set(&self) -> &KeySet {
        &self.key_set
    }

    /// Splits into header, typed claims and payload JSON.
    pub fn into_parts(self) -> (Header, C, String) {
        (self.header, self.claims, self.claims_json)
    }
}

impl<C: fmt::Debug> fmt::Debug for VerifiedToken<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedToken")
            .field("header", &self.header)
            .field("claims", &self.claims)
            .finish_non_exhaustive()
    }
}

/// Verifies tokens against a [`KeySource`] and a [`Validation`].
///
/// ```
/// use keyward_core::{FixedClock, KeySet, RegisteredClaims, Validation, Verifier};
///
/// let jwks = include_str!("../tests/fixtures/jwks.json");
/// let token = include_str!("../tests/fixtures/valid/EdDSA.jwt").trim();
/// let verifier = Verifier::new(KeySet::from_jwks(jwks).unwrap(),
///                              Validation::new().issuer("https://issuer.example")
///                                               .audience("https://api.example"))
///     .with_clock(FixedClock(1_700_000_000));
/// let verified = verifier.verify_cached::<RegisteredClaims>(token).unwrap();
/// assert_eq!(verified.claims().sub.as_deref(), Some("user-123"));
/// ```
#[derive(Clone)]
pub struct Verifier {
    keys: Arc<dyn KeySource>,
    validation: Validation,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("validation", &self.validation)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier using the system clock.
    pub fn new(keys: impl KeySource + 'static, validation: Validation) -> Self {
        Verifier {
            keys: Arc::new(keys),
            validation,
            clock: Arc::new(SystemClock),
        }
    }

    /// Uses another clock for time-claim checks.
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// The validation rules.
    pub fn validation(&self) -> &Validation {
        &self.validation
    }

    /// The key source.
    pub fn key_source(&self) -> &Arc<dyn KeySource> {
        &self.keys
    }

    /// Verifies `token` and decodes its claims as `C`.
    ///
    /// Keys already in memory are used without allocating a future; the
    /// key source is awaited only when it needs I/O.
    pub async fn verify<C: DeserializeOwned>(
        &self,
        token: &str,
    ) -> Result<VerifiedToken<C>, Error> {
        let parsed = Parsed::new(token, &self.validation)?;
        self.validation.check_header(&parsed.header)?;
        let query = parsed.query();
        let keys = match self.keys.resolve_cached(&query) {
            Some(keys) => keys,
            None => self.keys.resolve(&query).await?,
        };
        parsed.finish(&keys, &self.validation, self.clock.now())
    }

    /// Verifies `token` with keys already in memory, without awaiting.
    /// If the key source would need I/O, fails with `key_unavailable`.
    pub fn verify_cached<C: DeserializeOwned>(
        &self,
        token: &str,
    ) -> Result<VerifiedToken<C>, Error> {
        let parsed = Parsed::new(token, &self.validation)?;
        self.validation.check_header(&parsed.header)?;
        let keys = self.keys.resolve_cached(&parsed.query()).ok_or_else(|| {
            Error::new(
                ErrorKind::KeyUnavailable,
                "the key source has no keys in memory for this token",
            )
        })?;
        parsed.finish(&keys, &self.validation, self.clock.now())
    }
}

/// Decodes the header and payload of a token **without verifying** it, for
/// inspection tools: only the encoding rules and the size limit apply, no
/// key, signature, algorithm policy or claim is checked. Never use the
/// result for a decision.
pub fn decode_unverified(token: &str) -> Result<(Header, String), Error> {
    let parsed = Parsed::new(token, &Validation::new())?;
    let payload = parsed.payload_json()?;
    Ok((parsed.header, payload))
}

/// A token split and its header checked; nothing about it is trusted yet.
struct Parsed<'t> {
    header: Header,
    signing_input: &'t str,
    payload: &'t str,
    signature: &'t str,
}

fn utf8(bytes: Vec<u8>, what: &str) -> Result<String, Error> {
    String::from_utf8(bytes).map_err(|_| Error::malformed(format!("the {what} is not UTF-8")))
}

impl<'t> Parsed<'t> {
    fn new(token: &'t str, validation: &Validation) -> Result<Self, Error> {
        let max = validation.max_token_bytes();
        if token.len() > max {
            return Err(Error::new(
                ErrorKind::TokenTooLarge,
                format!(
                    "the token is {} bytes, over the {max}-byte limit",
                    token.len()
                ),
            ));
        }
        let mut segments = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(Error::malformed(
                "a compact JWS has exactly three dot-separated segments",
            ));
        };
        let signing_input = token
            .get(..header.len() + 1 + payload.len())
            .ok_or_else(|| Error::malformed("the token is not a compact JWS"))?;
        let header = Header::parse(
            utf8(base64url::decode_vec(header, "header")?, "header")?,
            validation.object_members(),
        )?;
        Ok(Parsed {
            header,
            signing_input,
            payload,
            signature,
        })
    }

    fn query(&self) -> KeyQuery<'_> {
        KeyQuery {
            kid: self.header.kid(),
            alg: self.header.alg(),
        }
    }

    fn payload_json(&self) -> Result<String, Error> {
        utf8(base64url::decode_vec(self.payload, "payload")?, "payload")
    }

    fn finish<C: DeserializeOwned>(
        self,
        keys: &KeySet,
        validation: &Validation,
        now: u64,
    ) -> Result<VerifiedToken<C>, Error> {
        let key_index = verify_signature(
            keys,
            &self.header,
            self.signing_input,
            self.signature,
            validation,
        )?;
        let claims_json = self.payload_json()?;
        let scanned = claims::scan(&claims_json, validation.object_members()).map_err(|e| {
            Error::malformed(json::sanitize(&e, "payload", "it must be a JSON object"))
        })?;
        validation.check_claims(&scanned, now)?;
        drop(scanned);
        let claims = serde_json::from_str::<C>(&claims_json).map_err(|e| {
            Error::invalid_claim(format!(
                "the claims do not fit the expected type (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        Ok(VerifiedToken {
            header: self.header,
            claims,
            claims_json,
            key_set: keys.clone(),
            key_index,
        })
    }
}

/// Why one candidate key could not be used, if it could not. The message
/// is only built on failure.
fn usable(key: &Jwk, alg: Algorithm, validation: &Validation) -> Result<(), Error> {
    let admitted = key.admits(alg, validation.explicit_algorithms());
    let strong = !alg.is_symmetric() || key.secret_len() >= alg.hash_len();
    if admitted && strong {
        return Ok(());
    }
    let kid = key
        .kid()
        .map_or_else(|| "(no kid)".to_owned(), Error::quote);
    if alg.family() != key.family() {
        return Err(Error::new(
            ErrorKind::AlgorithmNotAllowed,
            format!(
                "key {kid} is a {} key and cannot verify {alg}",
                key.family().name()
            ),
        ));
    }
    if let Some(bound) = key.alg() {
        if bound != alg {
            return Err(Error::new(
                ErrorKind::AlgorithmNotAllowed,
                format!("key {kid} is bound to {bound} and cannot verify {alg}"),
            ));
        }
    }
    if !admitted {
        return Err(Error::new(
            ErrorKind::AlgorithmNotAllowed,
            format!(
                "key {kid} has no \"alg\"; an RSA key without \"alg\" verifies RS256 only, \
                 unless Validation::algorithms lists {alg}"
            ),
        ));
    }
    Err(Error::new(
        ErrorKind::WeakKey,
        format!(
            "key {kid} is too short for {alg} (needs {} bytes)",
            alg.hash_len()
        ),
    ))
}

/// Checks the signature with the candidate keys; answers the index (in
/// `keys`) of the key that verified it.
fn verify_signature(
    keys: &KeySet,
    header: &Header,
    signing_input: &str,
    signature_b64: &str,
    validation: &Validation,
) -> Result<usize, Error> {
    let alg = header.alg();
    let mut buf = [0u8; MAX_SIGNATURE_BYTES];
    if signature_b64.len() > MAX_SIGNATURE_BYTES * 4 / 3 + 1 {
        return Err(Error::new(
            ErrorKind::InvalidSignature,
            "the signature is too long",
        ));
    }
    let signature = base64url::decode_into(signature_b64, &mut buf, "signature")?;

    let mut unusable: Option<Error> = None;
    let mut tried = false;
    let mut attempt = |&(_, key): &(usize, &Jwk)| -> bool {
        if let Err(reason) = usable(key, alg, validation) {
            unusable.get_or_insert(reason);
            return false;
        }
        tried = true;
        // Both current backends also refuse a signature of the wrong length
        // (mutation-tested); checking here keeps that uniform for any backend.
        signature.len() == key.signature_len(alg)
            && key
                .native()
                .verify(alg, signing_input.as_bytes(), signature)
    };
    let explicit = validation.explicit_algorithms();
    let verified = match header.kid() {
        Some(kid) => {
            let mut candidates = keys.find_indexed(kid).peekable();
            if candidates.peek().is_none() {
                return Err(Error::new(
                    ErrorKind::UnknownKey,
                    format!("no key has kid {}", Error::quote(kid)),
                ));
            }
            candidates.find(&mut attempt)
        }
        None => keys
            .keys()
            .iter()
            .enumerate()
            .filter(|(_, key)| key.admits(alg, explicit))
            .take(validation.kidless_candidates())
            .find(&mut attempt),
    };
    if let Some((index, _)) = verified {
        return Ok(index);
    }
    if tried {
        return Err(Error::new(
            ErrorKind::InvalidSignature,
            "the signature does not verify",
        ));
    }
    Err(unusable.unwrap_or_else(|| {
        Error::new(
            ErrorKind::UnknownKey,
            format!("the token has no kid and no key can verify {alg}"),
        )
    }))
}
