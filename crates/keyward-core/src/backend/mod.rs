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
    pub(crate) fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        match self {
            #[cfg(feature = "rust-crypto")]
            NativeKey::RustCrypto(key) => key.verify(alg, message, signature),
            #[cfg(feature = "aws-lc")]
            NativeKey::AwsLc(key) => key.verify(alg, message, signature),
        }
    }
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
