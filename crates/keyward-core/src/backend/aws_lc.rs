//! The aws-lc-rs backend: AWS-LC's assembly-optimised RSA and ECDSA.

use super::KeyMaterial;
use crate::algorithm::{Algorithm, KeyFamily};
use crate::error::{Error, ErrorKind};
use aws_lc_rs::hmac;
use aws_lc_rs::signature::{self, ParsedPublicKey, RsaParameters, RsaPublicKeyComponents};

pub(crate) enum Key {
    /// One parsed key per RSA algorithm the key may be used with (a
    /// `ParsedPublicKey` is bound to its padding and hash). Indexed by
    /// [`rsa_slot`]; `None` where the JWK's `alg` excludes the algorithm.
    Rsa(Box<[Option<ParsedPublicKey>; 6]>),
    /// ECDSA (fixed-length r||s) or Ed25519: one algorithm per key.
    Single(ParsedPublicKey),
    /// HMAC keys; `None` where the secret is too short for that hash.
    Hmac(Box<[Option<hmac::Key>; 3]>),
}

const RSA_ALGORITHMS: [(Algorithm, &RsaParameters); 6] = [
    (Algorithm::RS256, &signature::RSA_PKCS1_2048_8192_SHA256),
    (Algorithm::RS384, &signature::RSA_PKCS1_2048_8192_SHA384),
    (Algorithm::RS512, &signature::RSA_PKCS1_2048_8192_SHA512),
    (Algorithm::PS256, &signature::RSA_PSS_2048_8192_SHA256),
    (Algorithm::PS384, &signature::RSA_PSS_2048_8192_SHA384),
    (Algorithm::PS512, &signature::RSA_PSS_2048_8192_SHA512),
];

fn rsa_slot(alg: Algorithm) -> Option<usize> {
    RSA_ALGORITHMS.iter().position(|(a, _)| *a == alg)
}

fn hmac_slot(alg: Algorithm) -> Option<usize> {
    match alg {
        Algorithm::HS256 => Some(0),
        Algorithm::HS384 => Some(1),
        Algorithm::HS512 => Some(2),
        _ => None,
    }
}

fn rejected(what: &str) -> Error {
    Error::new(
        ErrorKind::Malformed,
        format!("the {what} is not a valid public key"),
    )
}

impl Key {
    pub(crate) fn load(material: &KeyMaterial<'_>, alg: Option<Algorithm>) -> Result<Key, Error> {
        Ok(match *material {
            KeyMaterial::Rsa { n, e } => {
                let components = RsaPublicKeyComponents { n, e };
                let mut parsed: [Option<ParsedPublicKey>; 6] = Default::default();
                for (slot, (rsa_alg, params)) in parsed.iter_mut().zip(RSA_ALGORITHMS) {
                    if alg.is_none_or(|a| a == rsa_alg) {
                        *slot = Some(
                            components
                                .to_parsed_public_key(params)
                                .map_err(|_| rejected("RSA key"))?,
                        );
                    }
                }
                Key::Rsa(Box::new(parsed))
            }
            KeyMaterial::Ec { family, sec1 } => {
                let algorithm: &'static signature::EcdsaVerificationAlgorithm = match family {
                    KeyFamily::EcP256 => &signature::ECDSA_P256_SHA256_FIXED,
                    KeyFamily::EcP384 => &signature::ECDSA_P384_SHA384_FIXED,
                    KeyFamily::EcP521 => &signature::ECDSA_P521_SHA512_FIXED,
                    _ => return Err(rejected("EC key")),
                };
                Key::Single(
                    ParsedPublicKey::new(algorithm, sec1).map_err(|_| rejected("EC point"))?,
                )
            }
            KeyMaterial::Ed25519 { x } => Key::Single(
                ParsedPublicKey::new(&signature::ED25519, x)
                    .map_err(|_| rejected("Ed25519 key"))?,
            ),
            KeyMaterial::Hmac { k } => {
                let keyed = |hmac_alg: hmac::Algorithm, jws: Algorithm| {
                    (k.len() >= jws.hash_len()).then(|| hmac::Key::new(hmac_alg, k))
                };
                Key::Hmac(Box::new([
                    keyed(hmac::HMAC_SHA256, Algorithm::HS256),
                    keyed(hmac::HMAC_SHA384, Algorithm::HS384),
                    keyed(hmac::HMAC_SHA512, Algorithm::HS512),
                ]))
            }
        })
    }

    pub(crate) fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Key::Rsa(parsed) => rsa_slot(alg)
                .and_then(|slot| parsed.get(slot))
                .and_then(Option::as_ref)
                .is_some_and(|key| key.verify_sig(message, signature).is_ok()),
            // The key was parsed for exactly one algorithm; the caller has
            // matched `alg` to the key's family, which names that algorithm.
            Key::Single(key) => key.verify_sig(message, signature).is_ok(),
            Key::Hmac(keys) => hmac_slot(alg)
                .and_then(|slot| keys.get(slot))
                .and_then(Option::as_ref)
                .is_some_and(|key| hmac::verify(key, message, signature).is_ok()),
        }
    }
}
