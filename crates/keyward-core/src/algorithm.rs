//! JWS algorithms (RFC 7518 §3, RFC 8037) and the key families they belong to.
//!
//! Threat addressed: algorithm confusion. A key is bound to exactly one
//! [`KeyFamily`]; an algorithm verifies only with a key of its own family, so
//! a token cannot turn an RSA public key into an HMAC secret (`RS256` →
//! `HS256`) or pick an algorithm the key was not made for. `none` is not an
//! algorithm here at all: it parses as [`ErrorKind::UnsupportedAlgorithm`].

use crate::error::{Error, ErrorKind};
use std::fmt;

/// A JWS signature algorithm that keyward verifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256, MGF1 with SHA-256, 32-byte salt.
    PS256,
    /// RSASSA-PSS with SHA-384, MGF1 with SHA-384, 48-byte salt.
    PS384,
    /// RSASSA-PSS with SHA-512, MGF1 with SHA-512, 64-byte salt.
    PS512,
    /// ECDSA on P-256 with SHA-256 (raw 64-byte `r||s`).
    ES256,
    /// ECDSA on P-384 with SHA-384 (raw 96-byte `r||s`).
    ES384,
    /// ECDSA on P-521 with SHA-512 (raw 132-byte `r||s`).
    ES512,
    /// EdDSA with Ed25519 (RFC 8037).
    EdDSA,
    /// HMAC with SHA-256.
    HS256,
    /// HMAC with SHA-384.
    HS384,
    /// HMAC with SHA-512.
    HS512,
}

/// The family of keys an algorithm needs. A key belongs to exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyFamily {
    /// RSA public keys (`kty: RSA`): RS* and PS*.
    Rsa,
    /// P-256 public keys (`kty: EC`, `crv: P-256`): ES256.
    EcP256,
    /// P-384 public keys: ES384.
    EcP384,
    /// P-521 public keys: ES512.
    EcP521,
    /// Ed25519 public keys (`kty: OKP`, `crv: Ed25519`): EdDSA.
    Ed25519,
    /// Symmetric secrets (`kty: oct`): HS*.
    Hmac,
}

impl Algorithm {
    /// Every algorithm, asymmetric ones first.
    pub const ALL: [Algorithm; 13] = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::ES512,
        Algorithm::EdDSA,
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
    ];

    /// Parses a JWS `alg` value. Case-sensitive, as RFC 7515 requires.
    ///
    /// ```
    /// use keyward_core::{Algorithm, ErrorKind};
    /// assert_eq!(Algorithm::parse("ES256").unwrap(), Algorithm::ES256);
    /// assert_eq!(Algorithm::parse("none").unwrap_err().kind(), ErrorKind::UnsupportedAlgorithm);
    /// assert!(Algorithm::parse("es256").is_err());
    /// ```
    pub fn parse(alg: &str) -> Result<Algorithm, Error> {
        Ok(match alg {
            "RS256" => Algorithm::RS256,
            "RS384" => Algorithm::RS384,
            "RS512" => Algorithm::RS512,
            "PS256" => Algorithm::PS256,
            "PS384" => Algorithm::PS384,
            "PS512" => Algorithm::PS512,
            "ES256" => Algorithm::ES256,
            "ES384" => Algorithm::ES384,
            "ES512" => Algorithm::ES512,
            "EdDSA" => Algorithm::EdDSA,
            "HS256" => Algorithm::HS256,
            "HS384" => Algorithm::HS384,
            "HS512" => Algorithm::HS512,
            other => {
                return Err(Error::new(
                    ErrorKind::UnsupportedAlgorithm,
                    format!("algorithm {} is not supported", Error::quote(other)),
                ))
            }
        })
    }

    /// The registered `alg` name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::ES512 => "ES512",
            Algorithm::EdDSA => "EdDSA",
            Algorithm::HS256 => "HS256",
            Algorithm::HS384 => "HS384",
            Algorithm::HS512 => "HS512",
        }
    }

    /// The key family this algorithm verifies with.
    pub const fn family(self) -> KeyFamily {
        match self {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => KeyFamily::Rsa,
            Algorithm::ES256 => KeyFamily::EcP256,
            Algorithm::ES384 => KeyFamily::EcP384,
            Algorithm::ES512 => KeyFamily::EcP521,
            Algorithm::EdDSA => KeyFamily::Ed25519,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => KeyFamily::Hmac,
        }
    }

    /// Whether this is an HMAC (symmetric) algorithm. Symmetric algorithms
    /// are never allowed by default.
    pub const fn is_symmetric(self) -> bool {
        matches!(self.family(), KeyFamily::Hmac)
    }

    /// Output length of the algorithm's hash in bytes; also the minimum
    /// HMAC secret length (RFC 7518 §3.2).
    pub const fn hash_len(self) -> usize {
        match self {
            Algorithm::RS256 | Algorithm::PS256 | Algorithm::ES256 | Algorithm::HS256 => 32,
            Algorithm::RS384 | Algorithm::PS384 | Algorithm::ES384 | Algorithm::HS384 => 48,
            Algorithm::RS512 | Algorithm::PS512 | Algorithm::ES512 | Algorithm::HS512 => 64,
            // Ed25519 hashes with SHA-512 internally.
            Algorithm::EdDSA => 64,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Algorithm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Algorithm::parse(s)
    }
}

impl KeyFamily {
    /// The algorithms a key of this family can verify.
    pub fn algorithms(self) -> impl Iterator<Item = Algorithm> {
        Algorithm::ALL
            .into_iter()
            .filter(move |a| a.family() == self)
    }

    /// A short human name, for messages.
    pub const fn name(self) -> &'static str {
        match self {
            KeyFamily::Rsa => "RSA",
            KeyFamily::EcP256 => "EC P-256",
            KeyFamily::EcP384 => "EC P-384",
            KeyFamily::EcP521 => "EC P-521",
            KeyFamily::Ed25519 => "Ed25519",
            KeyFamily::Hmac => "HMAC (oct)",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::parse(alg.as_str()).unwrap(), alg);
        }
    }

    #[test]
    fn none_and_lookalikes_are_unsupported() {
        for bad in [
            "none", "None", "NONE", "", "rs256", "HS256 ", "ES256K", "Ed25519",
        ] {
            let err = Algorithm::parse(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::UnsupportedAlgorithm, "{bad}");
        }
    }

    #[test]
    fn every_family_has_its_algorithms() {
        assert_eq!(KeyFamily::Rsa.algorithms().count(), 6);
        assert_eq!(KeyFamily::Hmac.algorithms().count(), 3);
        assert_eq!(
            KeyFamily::EcP256.algorithms().collect::<Vec<_>>(),
            [Algorithm::ES256]
        );
    }
}
