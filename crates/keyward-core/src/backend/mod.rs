//! Crypto backends: the only place that touches signature primitives.
//!
//! Two interchangeable implementations, selected by cargo feature, with the
//! same behaviour (the same test suite runs against each, and a fuzz target
//! cross-checks them):
//!
//! - `rust-crypto` (default): `rsa`, `p256`, `p384`, `p521`,
//!   `ed25519-dalek`, `hmac` + `sha2`. Pure Rust.
//! - `aws-lc`: `aws-lc-rs`. Several times faster RSA and ECDSA.
//!
//! Both are handed key material that [`crate::jwk`] has already checked for
//! the rules that do not depend on the backend (sizes, encodings, weak
//! keys), and both parse it once into native verifying keys; nothing is
//! re-parsed per token. Signature lengths are checked before either backend
//! sees a signature, so both reject the same inputs for the same reason.

use crate::algorithm::{Algorithm, KeyFamily};
use crate::error::Error;
use std::fmt;
use std::sync::OnceLock;

#[cfg(feature = "aws-lc")]
mod aws_lc;
#[cfg(feature = "rust-crypto")]
mod rust_crypto;

#[cfg(not(any(feature = "rust-crypto", feature = "aws-lc")))]
compile_error!("keyward-core needs a crypto backend: enable feature `rust-crypto` or `aws-lc`");

/// Which crypto implementation verifies signatures.
///
/// [`Backend::default`] is `AwsLc` when that feature is enabled, otherwise
/// `RustCrypto`. Choosing explicitly is only needed to compare backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// The RustCrypto crates (feature `rust-crypto`).
    #[cfg(feature = "rust-crypto")]
    RustCrypto,
    /// aws-lc-rs (feature `aws-lc`).
    #[cfg(feature = "aws-lc")]
    AwsLc,
}

impl Default for Backend {
    fn default() -> Self {
        #[cfg(feature = "aws-lc")]
        return Backend::AwsLc;
        #[cfg(not(feature = "aws-lc"))]
        return Backend::RustCrypto;
    }
}

impl Backend {
    /// Every backend compiled into this build.
    pub fn available() -> &'static [Backend] {
        &[
            #[cfg(feature = "rust-crypto")]
            Backend::RustCrypto,
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc,
        ]
    }

    /// A short name: `"rust-crypto"` or `"aws-lc"`.
    pub fn name(self) -> &'static str {
        match self {
            #[cfg(feature = "rust-crypto")]
            Backend::RustCrypto => "rust-crypto",
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => "aws-lc",
        }
    }

    /// Parses checked key material into a native verifying key. `alg`, when
    /// the JWK names one, limits the key to that algorithm.
    pub(crate) fn load(
        self,
        material: &KeyMaterial<'_>,
        alg: Option<Algorithm>,
    ) -> Result<NativeKey, Error> {
        match self {
            #[cfg(feature = "rust-crypto")]
            Backend::RustCrypto => rust_crypto::Key::load(material, alg).map(NativeKey::RustCrypto),
            #[cfg(feature = "aws-lc")]
            Backend::AwsLc => aws_lc::Key::load(material, alg).map(NativeKey::AwsLc),
        }
    }
}

/// Public key material, decoded from a JWK and checked by [`crate::jwk`].
pub(crate) enum KeyMaterial<'a> {
    /// Modulus and exponent, big-endian, minimal (no leading zero).
    Rsa { n: &'a [u8], e: &'a [u8] },
    /// An uncompressed point: `0x04 || x || y`, coordinates full length.
    Ec { family: KeyFamily, sec1: &'a [u8] },
    /// A 32-byte Ed25519 public key.
    Ed25519 { x: &'a [u8] },
    /// An HMAC secret of at least 32 bytes.
    Hmac { k: &'a [u8] },
}

/// A verifying key in the form its backend uses.
pub(crate) enum NativeKey {
    #[cfg(feature = "rust-crypto")]
    RustCrypto(rust_crypto::Key),
    #[cfg(feature = "aws-lc")]
    AwsLc(aws_lc::Key),
}

impl NativeKey {
    /// Whether `signature` is valid for `message` under `alg`. The caller
    /// has checked that `alg` belongs to the key's family, is allowed for it
    /// and that the signature has the algorithm's exact length.
    ///
    /// Checks that do not depend on the backend run first, so both answer
    /// the same for every input: an Ed25519 signature must be canonical and
    /// its `R` must not be a small-order point ([`ed25519_signature_is_strict`]).
    pub(crate) fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        if alg == Algorithm::EdDSA && !ed25519_signature_is_strict(signature) {
            return false;
        }
        match self {
            #[cfg(feature = "rust-crypto")]
            NativeKey::RustCrypto(key) => key.verify(alg, message, signature),
            #[cfg(feature = "aws-lc")]
            NativeKey::AwsLc(key) => key.verify(alg, message, signature),
        }
    }
}

/// The canonical encodings of the eight points of small order (the
/// 8-torsion subgroup), with the sign bit cleared (so P and -P, which share
/// their y-coordinate, give the same entry: five distinct values).
fn small_order_encodings() -> &'static [[u8; 32]; 8] {
    static ENCODINGS: OnceLock<[[u8; 32]; 8]> = OnceLock::new();
    ENCODINGS.get_or_init(|| {
        curve25519_dalek::constants::EIGHT_TORSION.map(|point| {
            let mut enc = point.compress().to_bytes();
            if let Some(last) = enc.last_mut() {
                *last &= 0x7f;
            }
            enc
        })
    })
}

/// Whether the encoded y-coordinate is not below p = 2^255 - 19 (one of the
/// 19 non-canonical encodings of a field element, sign bit ignored).
pub(crate) fn is_non_canonical_ed25519(enc: &[u8; 32]) -> bool {
    let (first, rest) = enc.split_at(1);
    let (middle, last) = rest.split_at(30);
    first.first().is_some_and(|&b| b >= 0xed)
        && middle.iter().all(|&b| b == 0xff)
        && last.first().is_some_and(|&b| b & 0x7f == 0x7f)
}

/// Strict Ed25519 signature rules, applied before either backend.
///
/// Threat addressed: backend differentials. RFC 8032 leaves room: aws-lc
/// accepts a signature whose `R` is a small-order point (the identity, for
/// instance), ed25519-dalek's `verify_strict` refuses it. Only the key
/// holder can make such a signature, but a verifier must answer the same
/// whatever backend it is built with. So: `S` must be a canonical scalar
/// (below the group order), `R` a canonical encoding (y below p), and `R`
/// not one of the eight small-order points (compared with the sign bit
/// cleared, which also catches the "negative zero" encodings of the
/// identity and of the point of order 2). Cost: a few 32-byte compares and
/// one scalar range check, no point decompression.
pub(crate) fn ed25519_signature_is_strict(signature: &[u8]) -> bool {
    let Ok(sig) = <&[u8; 64]>::try_from(signature) else {
        return false;
    };
    let (r_bytes, s_bytes) = sig.split_at(32);
    let (Ok(r), Ok(s)) = (<[u8; 32]>::try_from(r_bytes), <[u8; 32]>::try_from(s_bytes)) else {
        return false;
    };
    if bool::from(curve25519_dalek::Scalar::from_canonical_bytes(s).is_none()) {
        return false;
    }
    if is_non_canonical_ed25519(&r) {
        return false;
    }
    let mut masked = r;
    if let Some(last) = masked.last_mut() {
        *last &= 0x7f;
    }
    !small_order_encodings().contains(&masked)
}

impl fmt::Debug for NativeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key bytes: an HMAC key is a secret.
        match self {
            #[cfg(feature = "rust-crypto")]
            NativeKey::RustCrypto(_) => f.write_str("NativeKey(rust-crypto)"),
            #[cfg(feature = "aws-lc")]
            NativeKey::AwsLc(_) => f.write_str("NativeKey(aws-lc)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_order_points_have_five_sign_free_encodings() {
        // P and -P share y: identity, the point of order 2, the two points
        // of order 4 (one y), the four of order 8 (two y values).
        let encodings = small_order_encodings();
        let distinct: std::collections::BTreeSet<_> = encodings.iter().collect();
        assert_eq!(distinct.len(), 5);
        // the identity (y = 1) and the point of order 2 (y = -1) are there
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(encodings.contains(&identity));
    }

    #[test]
    fn strict_signature_rules() {
        let mut sig = [0u8; 64];
        sig[0] = 1; // R = identity, S = 0
        assert!(!ed25519_signature_is_strict(&sig));
        sig[31] = 0x80; // the identity with the sign bit set ("negative zero")
        assert!(!ed25519_signature_is_strict(&sig));
        // R = the base point (canonical, large order), S = 0: passes the
        // pre-check (the backend then decides)
        let base = curve25519_dalek::constants::ED25519_BASEPOINT_POINT
            .compress()
            .to_bytes();
        sig[..32].copy_from_slice(&base);
        assert!(ed25519_signature_is_strict(&sig));
        // S = L (the group order) is not canonical
        let order: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut below = order;
        below[0] -= 1; // L - 1 is canonical
        sig[32..].copy_from_slice(&below);
        assert!(ed25519_signature_is_strict(&sig));
        sig[32..].copy_from_slice(&order);
        assert!(!ed25519_signature_is_strict(&sig));
        // R with y = p (non-canonical)
        let mut r = [0xffu8; 32];
        r[0] = 0xed;
        r[31] = 0x7f;
        sig[..32].copy_from_slice(&r);
        sig[32..].fill(0);
        assert!(!ed25519_signature_is_strict(&sig));
        assert!(!ed25519_signature_is_strict(&sig[..63]));
    }
}
