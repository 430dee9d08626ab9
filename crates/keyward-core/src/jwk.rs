//! JSON Web Keys (RFC 7517, RFC 7518 §6, RFC 8037) and key sets.
//!
//! Every usable key is parsed once, when the set is loaded, into a native
//! verifying key bound to one [`KeyFamily`] and, when the JWK names an
//! `alg`, to that one algorithm.
//!
//! Why not `jose-jwk`: a key set here must tolerate keys it cannot use (one
//! RSA-OAEP or X25519 key must not make the signing keys unusable) and say
//! per key why it was skipped; it applies rules beyond RFC 7517's shape
//! (minimal Base64urlUInt, full-length EC coordinates, canonical Ed25519
//! encodings, weak-key limits, `use`/`key_ops` semantics) and rejects
//! duplicate members. Parsing each key from a borrowed JSON slice with a
//! small serde struct keeps all of that in one readable place.
//!
//! Threats addressed:
//! - Weak keys: RSA moduli under 2048 bits and HMAC secrets shorter than
//!   32 bytes are refused (`weak_key`); a secret shorter than the hash of
//!   the token's HS algorithm is refused at verification.
//! - Key misuse: a JWK with `use` other than `sig`, or `key_ops` without
//!   `verify`, is not used; a JWK whose `alg` disagrees with its key type is
//!   not used; a key with `alg` verifies only that algorithm.
//! - Small-order Ed25519 keys (for which signatures can be forged), points
//!   off the curve and non-canonical encodings are refused, as are even RSA
//!   moduli — here, not in a backend, so every backend refuses the same keys.

use crate::algorithm::{Algorithm, KeyFamily};
use crate::backend::{is_non_canonical_ed25519, Backend, KeyMaterial, NativeKey};
use crate::base64url;
use crate::error::{Error, ErrorKind};
use crate::json;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// Smallest RSA modulus accepted, in bits.
pub const RSA_MIN_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits (bounds verification cost).
pub const RSA_MAX_BITS: usize = 8192;
/// Smallest HMAC secret accepted, in bytes (RFC 7518 §3.2 for HS256).
pub const HMAC_MIN_BYTES: usize = 32;

/// A verifying key from a JWK, parsed for its backend.
///
/// Cheap to clone: the parsed key is shared.
#[derive(Clone)]
pub struct Jwk {
    kid: Option<String>,
    alg: Option<Algorithm>,
    family: KeyFamily,
    /// RSA modulus or HMAC secret length in bytes.
    key_len: usize,
    /// The key's defining bytes (RSA `n` then `e`, the EC point, the
    /// Ed25519 point, the HMAC secret), to tell whether two JWKs hold the
    /// same key ([`Jwk::same_key`]). Never printed.
    material: Arc<[u8]>,
    native: Arc<NativeKey>,
}

impl Jwk {
    /// Parses one JWK (a JSON object) with the default backend.
    ///
    /// ```
    /// use keyward_core::{Jwk, Algorithm};
    /// let jwk = Jwk::parse(r#"{"kty":"OKP","crv":"Ed25519","kid":"k1",
    ///     "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#).unwrap();
    /// assert_eq!(jwk.kid(), Some("k1"));
    /// assert!(jwk.supports(Algorithm::EdDSA));
    /// ```
    pub fn parse(json: &str) -> Result<Jwk, Error> {
        Jwk::parse_with(json, Backend::default())
    }

    /// Parses one JWK with the given backend.
    pub fn parse_with(json_text: &str, backend: Backend) -> Result<Jwk, Error> {
        json::check_no_duplicates(json_text, json::DEFAULT_MAX_OBJECT_MEMBERS)
            .map_err(|e| Error::malformed(json::sanitize(&e, "JWK", "it must be a JSON object")))?;
        let raw: RawJwk<'_> = serde_json::from_str(json_text)
            .map_err(|e| Error::malformed(describe_member_error(&e)))?;
        raw.load(backend)
    }

    /// The key id, if the JWK has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The algorithm the JWK is bound to by its `alg` member, if any.
    pub fn alg(&self) -> Option<Algorithm> {
        self.alg
    }

    /// The key's family, which decides the algorithms it can verify.
    pub fn family(&self) -> KeyFamily {
        self.family
    }

    /// Whether this key may verify `alg` under the default rules: same
    /// family, and the JWK's `alg` (if any) is `alg`; an RSA key without
    /// `alg` verifies RS256 only (see [`Jwk::admits`]).
    pub fn supports(&self, alg: Algorithm) -> bool {
        self.admits(alg, None)
    }

    /// Whether this key may verify `alg` when the caller's algorithm
    /// allowlist is `explicit` (`None`: the default allowlist).
    ///
    /// One key, one algorithm (RFC 8725 §3.1). A JWK with `alg` verifies
    /// that algorithm only. EC and OKP keys are bound to one algorithm by
    /// their curve. An RSA key without `alg` could verify six (RS256/384/512,
    /// PS256/384/512); it verifies **RS256 only**, the algorithm every
    /// OpenID provider must support (OIDC Core §15.1) and what IdPs whose
    /// JWKS omit `alg` (Azure AD / Entra ID, Google's older sets) sign with,
    /// unless the caller names the others in `Validation::algorithms`.
    /// Threat addressed: a signature made with one algorithm is never
    /// checked under another scheme with the same key.
    pub fn admits(&self, alg: Algorithm, explicit: Option<&[Algorithm]>) -> bool {
        if alg.family() != self.family {
            return false;
        }
        match self.alg {
            Some(bound) => bound == alg,
            None if self.family == KeyFamily::Rsa => {
                alg == Algorithm::RS256 || explicit.is_some_and(|list| list.contains(&alg))
            }
            None => true,
        }
    }

    /// The exact signature length `alg` produces with this key.
    pub(crate) fn signature_len(&self, alg: Algorithm) -> usize {
        match self.family {
            KeyFamily::Rsa => self.key_len,
            KeyFamily::EcP256 => 64,
            KeyFamily::EcP384 => 96,
            KeyFamily::EcP521 => 132,
            KeyFamily::Ed25519 => 64,
            KeyFamily::Hmac => alg.hash_len(),
        }
    }

    /// HMAC secret length in bytes (0 for other keys).
    pub(crate) fn secret_len(&self) -> usize {
        if self.family == KeyFamily::Hmac {
            self.key_len
        } else {
            0
        }
    }

    pub(crate) fn native(&self) -> &NativeKey {
        &self.native
    }

    /// Whether `other` holds the same key: same family and the same key
    /// material (`kid` and `alg` are not compared).
    ///
    /// A key source uses this to recognise a key without `kid` in another
    /// source's set, for example to tell that a baked kid-less key is no
    /// longer published by the issuer.
    ///
    /// ```
    /// use keyward_core::Jwk;
    /// let a = Jwk::parse(r#"{"kty":"OKP","crv":"Ed25519","kid":"a",
    ///     "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#).unwrap();
    /// let b = Jwk::parse(r#"{"kty":"OKP","crv":"Ed25519",
    ///     "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#).unwrap();
    /// assert!(a.same_key(&b));
    /// ```
    pub fn same_key(&self, other: &Jwk) -> bool {
        self.family == other.family && self.material == other.material
    }
}

impl fmt::Debug for Jwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwk")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("family", &self.family)
            .finish_non_exhaustive()
    }
}

/// A key from a JWKS that was not loaded, and why.
#[derive(Debug)]
pub struct SkippedKey {
    /// Position of the key in the document's `keys` array.
    pub index: usize,
    /// Its `kid`, when it had a readable one.
    pub kid: Option<String>,
    /// Why it was skipped (`weak_key`, `unsupported_algorithm`, `malformed`).
    pub reason: Error,
}

/// A set of verifying keys, typically loaded from a JWKS document.
///
/// Cheap to clone (the keys are shared). Keys are looked up by `kid` with a
/// hash map. A key that is unsupported or malformed is skipped and reported
/// ([`KeySet::skipped`] and a `tracing` warning) without making the rest of
/// the set unusable; a document that is not JSON, or has no `keys` array, is
/// an error.
///
/// ```
/// use keyward_core::KeySet;
/// let set = KeySet::from_jwks(r#"{"keys":[
///   {"kty":"OKP","crv":"Ed25519","kid":"a","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
///   {"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"}
/// ]}"#).unwrap();
/// assert_eq!(set.len(), 1);
/// assert_eq!(set.skipped().len(), 1);
/// assert!(set.contains_kid("a"));
/// ```
#[derive(Clone)]
pub struct KeySet {
    inner: Arc<Inner>,
}

struct Inner {
    keys: Vec<Jwk>,
    by_kid: HashMap<String, Vec<usize>>,
    skipped: Vec<SkippedKey>,
}

/// The `keys` array of a JWKS document, each key left unparsed, read with a
/// cap on its length: the count is checked while the array is read, before
/// any key is parsed or stored (threat: a 1 MiB array of tiny junk entries
/// costing one parse, one allocation and one warning each).
struct RawJwks<'a> {
    keys: Vec<&'a RawValue>,
}

struct RawJwksSeed {
    max_keys: usize,
}

impl<'de> serde::de::DeserializeSeed<'de> for RawJwksSeed {
    type Value = RawJwks<'de>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for RawJwksSeed {
    type Value = RawJwks<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object with a \"keys\" array")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        use serde::de::Error as _;
        let mut keys = None;
        while let Some(name) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if name == "keys" {
                if keys.is_some() {
                    return Err(A::Error::duplicate_field("keys"));
                }
                keys = Some(map.next_value_seed(KeysArraySeed {
                    max_keys: self.max_keys,
                })?);
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        keys.map(|keys| RawJwks { keys })
            .ok_or_else(|| A::Error::missing_field("keys"))
    }
}

struct KeysArraySeed {
    max_keys: usize,
}

impl<'de> serde::de::DeserializeSeed<'de> for KeysArraySeed {
    type Value = Vec<&'de RawValue>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for KeysArraySeed {
    type Value = Vec<&'de RawValue>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of JWK objects")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut keys = Vec::new();
        while let Some(key) = seq.next_element::<&'de RawValue>()? {
            if keys.len() == self.max_keys {
                return Err(json::own_error(format_args!(
                    "more than {} keys (the limit)",
                    self.max_keys
                )));
            }
            keys.push(key);
        }
        Ok(keys)
    }
}

/// How many skipped keys a load's warning names (the rest are counted).
const SKIPPED_NAMED_IN_WARNING: usize = 3;

impl KeySet {
    /// Parses a JWKS document with the default backend.
    pub fn from_jwks(json: &str) -> Result<KeySet, Error> {
        KeySet::from_jwks_with(json, Backend::default())
    }

    /// Parses a JWKS document with the given backend.
    pub fn from_jwks_with(json_text: &str, backend: Backend) -> Result<KeySet, Error> {
        KeySet::from_jwks_limited(json_text, backend, usize::MAX)
    }

    /// Parses a JWKS document whose `keys` array may hold at most
    /// `max_keys` entries (usable or not). The count is checked while the
    /// array is read, before any key is parsed: a longer array is
    /// `malformed`, whatever its entries.
    ///
    /// Keys that cannot be used are skipped ([`KeySet::skipped`]) and
    /// reported in **one** `tracing` warning per document, naming the first
    /// few and counting the rest.
    ///
    /// ```
    /// use keyward_core::{Backend, KeySet};
    /// let doc = r#"{"keys":[{"kty":"oct"},{"kty":"oct"},{"kty":"oct"}]}"#;
    /// assert!(KeySet::from_jwks_limited(doc, Backend::default(), 2).is_err());
    /// let set = KeySet::from_jwks_limited(doc, Backend::default(), 3).unwrap();
    /// assert_eq!(set.skipped().len(), 3);
    /// ```
    pub fn from_jwks_limited(
        json_text: &str,
        backend: Backend,
        max_keys: usize,
    ) -> Result<KeySet, Error> {
        use serde::de::DeserializeSeed;
        let mut de = serde_json::Deserializer::from_str(json_text);
        let raw = RawJwksSeed { max_keys }
            .deserialize(&mut de)
            .and_then(|raw| de.end().map(|()| raw))
            .map_err(|e| {
                Error::malformed(json::sanitize(
                    &e,
                    "JWKS",
                    "it must be a JSON object with a \"keys\" array of objects",
                ))
            })?;
        let mut keys = Vec::with_capacity(raw.keys.len());
        let mut skipped = Vec::new();
        for (index, key_json) in raw.keys.iter().enumerate() {
            match Jwk::parse_with(key_json.get(), backend) {
                Ok(jwk) => keys.push(jwk),
                Err(reason) => {
                    let kid = serde_json::from_str::<KidOnly>(key_json.get())
                        .ok()
                        .and_then(|k| k.kid);
                    skipped.push(SkippedKey { index, kid, reason });
                }
            }
        }
        if !skipped.is_empty() {
            let named: Vec<String> = skipped
                .iter()
                .take(SKIPPED_NAMED_IN_WARNING)
                .map(|s| {
                    format!(
                        "#{} {}({}: {})",
                        s.index,
                        s.kid
                            .as_deref()
                            .map(|k| format!("{} ", Error::quote(k)))
                            .unwrap_or_default(),
                        s.reason.kind().as_str(),
                        s.reason.message()
                    )
                })
                .collect();
            tracing::warn!(
                skipped = skipped.len(),
                loaded = keys.len(),
                first = %named.join("; "),
                "JWKS keys skipped"
            );
        }
        Ok(KeySet::from_keys_and_skipped(keys, skipped))
    }

    /// Builds a set from keys parsed individually.
    pub fn from_keys(keys: Vec<Jwk>) -> KeySet {
        KeySet::from_keys_and_skipped(keys, Vec::new())
    }

    fn from_keys_and_skipped(keys: Vec<Jwk>, skipped: Vec<SkippedKey>) -> KeySet {
        let mut by_kid: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, key) in keys.iter().enumerate() {
            if let Some(kid) = &key.kid {
                by_kid.entry(kid.clone()).or_default().push(i);
            }
        }
        KeySet {
            inner: Arc::new(Inner {
                keys,
                by_kid,
                skipped,
            }),
        }
    }

    /// The usable keys, in document order.
    pub fn keys(&self) -> &[Jwk] {
        &self.inner.keys
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.inner.keys.len()
    }

    /// Whether no key is usable.
    pub fn is_empty(&self) -> bool {
        self.inner.keys.is_empty()
    }

    /// The keys that were skipped when the document was loaded.
    pub fn skipped(&self) -> &[SkippedKey] {
        &self.inner.skipped
    }

    /// Whether some usable key has exactly this `kid`.
    pub fn contains_kid(&self, kid: &str) -> bool {
        self.inner.by_kid.contains_key(kid)
    }

    /// The usable keys with exactly this `kid` (usually one).
    pub fn find(&self, kid: &str) -> impl Iterator<Item = &Jwk> {
        self.inner
            .by_kid
            .get(kid)
            .into_iter()
            .flatten()
            .filter_map(|&i| self.inner.keys.get(i))
    }

    /// The usable keys with exactly this `kid`, with their index in
    /// [`KeySet::keys`].
    pub(crate) fn find_indexed(&self, kid: &str) -> impl Iterator<Item = (usize, &Jwk)> {
        self.inner
            .by_kid
            .get(kid)
            .into_iter()
            .flatten()
            .filter_map(|&i| self.inner.keys.get(i).map(|key| (i, key)))
    }

    /// Whether two handles share the same loaded keys.
    pub fn ptr_eq(&self, other: &KeySet) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Whether the set holds `key`: the same key material
    /// ([`Jwk::same_key`]) under the same `kid` when `key` has one, anywhere
    /// in the set when it has none. A key replaced under its `kid` is not
    /// offered.
    pub fn offers(&self, key: &Jwk) -> bool {
        match key.kid() {
            Some(kid) => self.find(kid).any(|k| k.same_key(key)),
            None => self.keys().iter().any(|k| k.same_key(key)),
        }
    }

    /// The set without the keys for which `drop` is true; `self` itself
    /// (the same shared set, see [`KeySet::ptr_eq`]) when none is dropped.
    pub fn without(&self, mut drop: impl FnMut(&Jwk) -> bool) -> KeySet {
        let mut keep = Vec::new();
        let mut dropped = false;
        for key in self.keys() {
            if drop(key) {
                dropped = true;
            } else {
                keep.push(key.clone());
            }
        }
        if dropped {
            KeySet::from_keys(keep)
        } else {
            self.clone()
        }
    }
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet")
            .field("keys", &self.inner.keys)
            .field("skipped", &self.inner.skipped.len())
            .finish()
    }
}

#[derive(Deserialize)]
struct KidOnly {
    kid: Option<String>,
}

/// The JWK members keyward reads. Unknown members (`x5c`, `x5t`, private
/// key members, ...) are ignored; strings are borrowed from the document.
#[derive(Deserialize)]
struct RawJwk<'a> {
    #[serde(borrow)]
    kty: std::borrow::Cow<'a, str>,
    #[serde(rename = "use", borrow, default)]
    use_: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    key_ops: Option<Vec<String>>,
    #[serde(borrow, default)]
    alg: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(borrow, default)]
    crv: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    n: Option<&'a str>,
    #[serde(borrow, default)]
    e: Option<&'a str>,
    #[serde(borrow, default)]
    x: Option<&'a str>,
    #[serde(borrow, default)]
    y: Option<&'a str>,
    #[serde(borrow, default)]
    k: Option<&'a str>,
}

/// serde's messages name the member ("invalid type: ..., expected a string
/// at line 1 column 12", "missing field `kty`"); keep the member name but not
/// the value.
fn describe_member_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    if let Some(rest) = text.strip_prefix("missing field ") {
        return format!("the JWK has no {rest} member");
    }
    match e.classify() {
        serde_json::error::Category::Data => format!(
            "a JWK member has the wrong type (line {}, column {}); kty, use, alg, kid, crv, n, e, x, y, k \
             must be strings and key_ops an array of strings",
            e.line(),
            e.column()
        ),
        _ => format!("the JWK is not valid JSON: {text}"),
    }
}

fn unsupported(message: String) -> Error {
    Error::new(ErrorKind::UnsupportedAlgorithm, message)
}

fn member<'a>(value: Option<&'a str>, name: &str, kty: &str) -> Result<&'a str, Error> {
    value.ok_or_else(|| Error::malformed(format!("the {kty} JWK has no \"{name}\" member")))
}

fn decode_member(value: &str, name: &str) -> Result<Vec<u8>, Error> {
    base64url::decode_vec(value, &format!("JWK member \"{name}\""))
}

/// A Base64urlUInt (RFC 7518 §2): non-empty and without leading zero octets.
fn decode_uint(value: &str, name: &str) -> Result<Vec<u8>, Error> {
    let bytes = decode_member(value, name)?;
    match bytes.first() {
        None => Err(Error::malformed(format!("JWK member \"{name}\" is empty"))),
        Some(0) => Err(Error::malformed(format!(
            "JWK member \"{name}\" has a leading zero octet (not a minimal Base64urlUInt)"
        ))),
        Some(_) => Ok(bytes),
    }
}

fn bit_length(be: &[u8]) -> usize {
    match be.iter().position(|&b| b != 0) {
        Some(i) => (be.len() - i) * 8 - be.get(i).map_or(0, |b| b.leading_zeros() as usize),
        None => 0,
    }
}

impl RawJwk<'_> {
    fn load(self, backend: Backend) -> Result<Jwk, Error> {
        if let Some(use_) = &self.use_ {
            if use_ != "sig" {
                return Err(unsupported(format!(
                    "the key's \"use\" is {}, not \"sig\"",
                    Error::quote(use_)
                )));
            }
        }
        if let Some(ops) = &self.key_ops {
            if !ops.iter().any(|op| op == "verify") {
                return Err(unsupported(
                    "the key's \"key_ops\" do not include \"verify\"".into(),
                ));
            }
        }
        let kty: &str = &self.kty;
        let crv = self.crv.as_deref();
        let key_len;
        // Decoded bytes must outlive the borrowed KeyMaterial.
        let (family, first, second);
        let material = match (kty, crv) {
            ("RSA", _) => {
                first = decode_uint(member(self.n, "n", kty)?, "n")?;
                second = decode_uint(member(self.e, "e", kty)?, "e")?;
                let bits = bit_length(&first);
                if bits < RSA_MIN_BITS {
                    return Err(Error::new(
                        ErrorKind::WeakKey,
                        format!("RSA key of {bits} bits is below the {RSA_MIN_BITS}-bit minimum"),
                    ));
                }
                if bits > RSA_MAX_BITS {
                    return Err(unsupported(format!(
                        "RSA key of {bits} bits is above the {RSA_MAX_BITS}-bit maximum"
                    )));
                }
                // An RSA modulus is odd (a product of odd primes). The rsa
                // crate refuses an even one and aws-lc accepts it, so it is
                // checked here for both (found by fuzzing).
                if first.last().is_none_or(|b| b & 1 == 0) {
                    return Err(Error::malformed("the RSA modulus is even"));
                }
                let e_bits = bit_length(&second);
                if e_bits > 33 || second.last().is_none_or(|b| b & 1 == 0) || second == [1] {
                    return Err(Error::malformed(
                        "RSA exponent must be odd, at least 3 and at most 33 bits",
                    ));
                }
                key_len = first.len();
                family = KeyFamily::Rsa;
                KeyMaterial::Rsa {
                    n: &first,
                    e: &second,
                }
            }
            ("EC", Some(curve @ ("P-256" | "P-384" | "P-521"))) => {
                let (fam, size) = match curve {
                    "P-256" => (KeyFamily::EcP256, 32),
                    "P-384" => (KeyFamily::EcP384, 48),
                    _ => (KeyFamily::EcP521, 66),
                };
                let x = decode_member(member(self.x, "x", kty)?, "x")?;
                let y = decode_member(member(self.y, "y", kty)?, "y")?;
                if x.len() != size || y.len() != size {
                    return Err(Error::malformed(format!(
                        "{curve} coordinates must be exactly {size} bytes"
                    )));
                }
                let mut sec1 = Vec::with_capacity(1 + 2 * size);
                sec1.push(0x04);
                sec1.extend_from_slice(&x);
                sec1.extend_from_slice(&y);
                first = sec1;
                second = Vec::new();
                key_len = 0;
                family = fam;
                KeyMaterial::Ec {
                    family,
                    sec1: &first,
                }
            }
            ("OKP", Some("Ed25519")) => {
                let x = decode_member(member(self.x, "x", kty)?, "x")?;
                let enc: [u8; 32] = x
                    .as_slice()
                    .try_into()
                    .map_err(|_| Error::malformed("an Ed25519 key must be exactly 32 bytes"))?;
                if is_non_canonical_ed25519(&enc) {
                    return Err(Error::malformed(
                        "the Ed25519 key is not canonically encoded",
                    ));
                }
                // Checked here, not in the backends: aws-lc accepts any 32
                // bytes at parse time, dalek refuses non-points; both must
                // refuse the same keys.
                let point = curve25519_dalek::edwards::CompressedEdwardsY(enc)
                    .decompress()
                    .ok_or_else(|| {
                        Error::malformed("the Ed25519 key is not a point on the curve")
                    })?;
                if point.is_small_order() {
                    return Err(Error::new(
                        ErrorKind::WeakKey,
                        "the Ed25519 key is a small-order point",
                    ));
                }
                first = x;
                second = Vec::new();
                key_len = 0;
                family = KeyFamily::Ed25519;
                KeyMaterial::Ed25519 { x: &first }
            }
            ("oct", _) => {
                first = decode_member(member(self.k, "k", kty)?, "k")?;
                if first.len() < HMAC_MIN_BYTES {
                    return Err(Error::new(
                        ErrorKind::WeakKey,
                        format!(
                            "HMAC secret of {} bytes is below the {HMAC_MIN_BYTES}-byte minimum",
                            first.len()
                        ),
                    ));
                }
                second = Vec::new();
                key_len = first.len();
                family = KeyFamily::Hmac;
                KeyMaterial::Hmac { k: &first }
            }
            ("EC" | "OKP", curve) => {
                return Err(unsupported(format!(
                    "{kty} curve {} is not supported",
                    Error::quote(curve.unwrap_or("(none)"))
                )))
            }
            (other, _) => {
                return Err(unsupported(format!(
                    "key type {} is not supported",
                    Error::quote(other)
                )))
            }
        };
        let alg = match self.alg.as_deref() {
            None => None,
            Some(text) => {
                let alg = Algorithm::parse(text)?;
                if alg.family() != family {
                    return Err(Error::malformed(format!(
                        "the JWK says \"alg\": \"{alg}\" but holds a {} key",
                        family.name()
                    )));
                }
                if family == KeyFamily::Hmac && first.len() < alg.hash_len() {
                    return Err(Error::new(
                        ErrorKind::WeakKey,
                        format!("{alg} needs a secret of at least {} bytes", alg.hash_len()),
                    ));
                }
                Some(alg)
            }
        };
        let native = backend.load(&material, alg)?;
        let mut identity = Vec::with_capacity(first.len() + second.len() + 4);
        if family == KeyFamily::Rsa {
            // length-prefixed so that no two (n, e) pairs share an encoding
            identity
                .extend_from_slice(&u32::try_from(first.len()).unwrap_or(u32::MAX).to_be_bytes());
        }
        identity.extend_from_slice(&first);
        identity.extend_from_slice(&second);
        Ok(Jwk {
            kid: self.kid,
            alg,
            family,
            key_len,
            material: identity.into(),
            native: Arc::new(native),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    fn kind(json: &str) -> ErrorKind {
        Jwk::parse(json).unwrap_err().kind()
    }

    #[test]
    fn bit_length_counts_significant_bits() {
        assert_eq!(bit_length(&[0x01]), 1);
        assert_eq!(bit_length(&[0x80, 0]), 16);
        assert_eq!(bit_length(&[0, 0x7f]), 7);
        assert_eq!(bit_length(&[]), 0);
    }

    #[test]
    fn use_and_key_ops_disqualify() {
        let base = format!(r#""kty":"OKP","crv":"Ed25519","x":"{ED_X}""#);
        assert!(Jwk::parse(&format!(r#"{{{base},"use":"sig"}}"#)).is_ok());
        assert_eq!(
            kind(&format!(r#"{{{base},"use":"enc"}}"#)),
            ErrorKind::UnsupportedAlgorithm
        );
        assert!(Jwk::parse(&format!(r#"{{{base},"key_ops":["verify"]}}"#)).is_ok());
        assert_eq!(
            kind(&format!(r#"{{{base},"key_ops":["sign","encrypt"]}}"#)),
            ErrorKind::UnsupportedAlgorithm
        );
    }

    #[test]
    fn alg_must_match_key_type() {
        let base = format!(r#""kty":"OKP","crv":"Ed25519","x":"{ED_X}""#);
        assert_eq!(
            kind(&format!(r#"{{{base},"alg":"RS256"}}"#)),
            ErrorKind::Malformed
        );
        assert_eq!(
            kind(&format!(r#"{{{base},"alg":"RSA-OAEP"}}"#)),
            ErrorKind::UnsupportedAlgorithm
        );
        let jwk = Jwk::parse(&format!(r#"{{{base},"alg":"EdDSA"}}"#)).unwrap();
        assert!(jwk.supports(Algorithm::EdDSA));
        assert!(!jwk.supports(Algorithm::ES256));
    }

    #[test]
    fn weak_and_malformed_keys() {
        // 31-byte HMAC secret
        let k31 = base64url::encode(&[7u8; 31]);
        assert_eq!(
            kind(&format!(r#"{{"kty":"oct","k":"{k31}"}}"#)),
            ErrorKind::WeakKey
        );
        let k32 = base64url::encode(&[7u8; 32]);
        let jwk = Jwk::parse(&format!(r#"{{"kty":"oct","k":"{k32}"}}"#)).unwrap();
        assert!(jwk.supports(Algorithm::HS512)); // length checked per token
        assert_eq!(
            kind(&format!(r#"{{"kty":"oct","k":"{k32}","alg":"HS384"}}"#)),
            ErrorKind::WeakKey
        );
        // 1024-bit RSA modulus
        let mut n = vec![0xc5u8; 128];
        n[127] |= 1;
        let n = base64url::encode(&n);
        assert_eq!(
            kind(&format!(r#"{{"kty":"RSA","n":"{n}","e":"AQAB"}}"#)),
            ErrorKind::WeakKey
        );
        // leading zero in n
        let mut n = vec![0u8];
        n.extend([0xc5u8; 256]);
        let n = base64url::encode(&n);
        assert_eq!(
            kind(&format!(r#"{{"kty":"RSA","n":"{n}","e":"AQAB"}}"#)),
            ErrorKind::Malformed
        );
        // short EC coordinate
        let short = base64url::encode(&[1u8; 31]);
        assert_eq!(
            kind(&format!(
                r#"{{"kty":"EC","crv":"P-256","x":"{short}","y":"{short}"}}"#
            )),
            ErrorKind::Malformed
        );
        // point not on the curve
        let c = base64url::encode(&[1u8; 32]);
        assert_eq!(
            kind(&format!(
                r#"{{"kty":"EC","crv":"P-256","x":"{c}","y":"{c}"}}"#
            )),
            ErrorKind::Malformed
        );
        // small-order Ed25519 key (the identity)
        let mut id = [0u8; 32];
        id[0] = 1;
        let id = base64url::encode(&id);
        assert_eq!(
            kind(&format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{id}"}}"#)),
            ErrorKind::WeakKey
        );
        // non-canonical Ed25519 encoding (y = p + 1)
        let mut nc = [0xffu8; 32];
        nc[0] = 0xee;
        nc[31] = 0x7f;
        let nc = base64url::encode(&nc);
        assert_eq!(
            kind(&format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{nc}"}}"#)),
            ErrorKind::Malformed
        );
        // unsupported types and curves
        assert_eq!(
            kind(r#"{"kty":"OKP","crv":"X25519","x":"AAAA"}"#),
            ErrorKind::UnsupportedAlgorithm
        );
        assert_eq!(
            kind(r#"{"kty":"EC","crv":"secp256k1","x":"AA","y":"AA"}"#),
            ErrorKind::UnsupportedAlgorithm
        );
        assert_eq!(kind(r#"{"kty":"XYZ"}"#), ErrorKind::UnsupportedAlgorithm);
        // members with the wrong type, duplicates, missing kty
        assert_eq!(kind(r#"{"kty":"oct","k":5}"#), ErrorKind::Malformed);
        assert_eq!(kind(r#"{"kty":"oct","kty":"oct"}"#), ErrorKind::Malformed);
        assert_eq!(kind(r#"{"k":"AAAA"}"#), ErrorKind::Malformed);
    }

    #[test]
    fn small_order_ed25519_keys_are_weak() {
        // y-coordinates (little endian) of the eight small-order points:
        // 1, p-1, 0 and the two order-8 values; each with both sign bits.
        let mut ys: Vec<[u8; 32]> = Vec::new();
        let mut one = [0u8; 32];
        one[0] = 1;
        let mut minus_one = [0xffu8; 32];
        minus_one[0] = 0xec;
        minus_one[31] = 0x7f;
        ys.extend([one, minus_one, [0u8; 32]]);
        for hex in [
            "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        ] {
            let bytes: Vec<u8> = (0..32)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            ys.push(bytes.try_into().unwrap());
        }
        let mut weak = 0;
        for y in ys {
            for sign in [0u8, 0x80] {
                let mut enc = y;
                enc[31] |= sign;
                let x = base64url::encode(&enc);
                match Jwk::parse(&format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}"}}"#)) {
                    Err(e) if e.kind() == ErrorKind::WeakKey => weak += 1,
                    // (x=0 with the sign bit set is not a valid encoding)
                    Err(e) => assert_eq!(e.kind(), ErrorKind::Malformed, "{enc:02x?}"),
                    Ok(_) => panic!("small-order key accepted: {enc:02x?}"),
                }
            }
        }
        assert!(
            weak >= 8,
            "all eight small-order points refused as weak ({weak})"
        );
    }

    #[test]
    fn member_errors_name_the_member_not_the_value() {
        let err = Jwk::parse(r#"{"kty":"oct","kid":12345678}"#).unwrap_err();
        assert!(!err.message().contains("12345678"), "{err}");
        let err = Jwk::parse(r#"{"n":"x"}"#).unwrap_err();
        assert!(err.message().contains("kty"), "{err}");
    }

    #[test]
    fn one_bad_key_does_not_spoil_the_set() {
        let set = KeySet::from_jwks(&format!(
            r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"good","x":"{ED_X}"}},
                {{"kty":"RSA","kid":"bad","n":"AQAB","e":"AQAB"}},
                {{"kty":"weird"}}, 17, {{"kty":"OKP","crv":"Ed25519","kid":"good2","x":"{ED_X}","x":"{ED_X}"}}]}}"#
        ))
        .unwrap();
        assert_eq!(set.len(), 1);
        assert!(set.contains_kid("good"));
        let skipped: Vec<_> = set
            .skipped()
            .iter()
            .map(|s| (s.index, s.kid.clone(), s.reason.kind()))
            .collect();
        assert_eq!(
            skipped,
            [
                (1, Some("bad".into()), ErrorKind::WeakKey),
                (2, None, ErrorKind::UnsupportedAlgorithm),
                (3, None, ErrorKind::Malformed),
                (4, Some("good2".into()), ErrorKind::Malformed),
            ]
        );
    }

    #[test]
    fn documents_without_keys_array_are_errors() {
        for bad in [
            "",
            "not json",
            "[]",
            "{}",
            r#"{"keys":{}}"#,
            r#"{"keys":[],"keys":[]}"#,
        ] {
            assert_eq!(
                KeySet::from_jwks(bad).unwrap_err().kind(),
                ErrorKind::Malformed,
                "{bad}"
            );
        }
        assert!(KeySet::from_jwks(r#"{"keys":[]}"#).unwrap().is_empty());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let secret = base64url::encode(b"0123456789abcdef0123456789abcdef");
        let set = KeySet::from_jwks(&format!(
            r#"{{"keys":[{{"kty":"oct","kid":"h","k":"{secret}"}}]}}"#
        ))
        .unwrap();
        let debug = format!("{set:?}");
        assert!(
            !debug.contains(&secret) && !debug.contains("0123456789"),
            "{debug}"
        );
    }
}
