//! The RustCrypto backend: pure Rust, no C toolchain.

use super::KeyMaterial;
use crate::algorithm::{Algorithm, KeyFamily};
use crate::error::{Error, ErrorKind};
use hmac::{Hmac, Mac};
use rsa::{BigUint, Pkcs1v15Sign, Pss, RsaPublicKey};
use sha2::{Digest, Sha256, Sha384, Sha512};

/// Largest RSA modulus accepted, in bits (the same bound as aws-lc's
/// `*_2048_8192_*` algorithms, so both backends accept the same keys).
const RSA_MAX_BITS: usize = 8192;

pub(crate) enum Key {
    Rsa(RsaPublicKey),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    P521(p521::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
    /// Keyed HMAC states, computed once (the key schedule is not repeated
    /// per token); `None` where the secret is too short for that hash.
    Hmac(Box<HmacStates>),
}

pub(crate) struct HmacStates {
    hs256: Option<Hmac<Sha256>>,
    hs384: Option<Hmac<Sha384>>,
    hs512: Option<Hmac<Sha512>>,
}

fn rejected(what: &str) -> Error {
    Error::new(
        ErrorKind::Malformed,
        format!("the {what} is not a valid public key"),
    )
}

impl Key {
    pub(crate) fn load(material: &KeyMaterial<'_>, _alg: Option<Algorithm>) -> Result<Key, Error> {
        Ok(match *material {
            KeyMaterial::Rsa { n, e } => {
                let key = RsaPublicKey::new_with_max_size(
                    BigUint::from_bytes_be(n),
                    BigUint::from_bytes_be(e),
                    RSA_MAX_BITS,
                )
                .map_err(|_| rejected("RSA key"))?;
                Key::Rsa(key)
            }
            KeyMaterial::Ec { family, sec1 } => match family {
                KeyFamily::EcP256 => Key::P256(
                    p256::ecdsa::VerifyingKey::from_sec1_bytes(sec1)
                        .map_err(|_| rejected("P-256 point"))?,
                ),
                KeyFamily::EcP384 => Key::P384(
                    p384::ecdsa::VerifyingKey::from_sec1_bytes(sec1)
                        .map_err(|_| rejected("P-384 point"))?,
                ),
                KeyFamily::EcP521 => Key::P521(
                    p521::ecdsa::VerifyingKey::from_sec1_bytes(sec1)
                        .map_err(|_| rejected("P-521 point"))?,
                ),
                _ => return Err(rejected("EC key")),
            },
            KeyMaterial::Ed25519 { x } => {
                let bytes: &[u8; 32] = x.try_into().map_err(|_| rejected("Ed25519 key"))?;
                Key::Ed25519(
                    ed25519_dalek::VerifyingKey::from_bytes(bytes)
                        .map_err(|_| rejected("Ed25519 key"))?,
                )
            }
            KeyMaterial::Hmac { k } => Key::Hmac(Box::new(HmacStates {
                hs256: keyed(k, Algorithm::HS256),
                hs384: keyed(k, Algorithm::HS384),
                hs512: keyed(k, Algorithm::HS512),
            })),
        })
    }

    pub(crate) fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        use p256::ecdsa::signature::Verifier;
        match (self, alg) {
            (Key::Rsa(key), Algorithm::RS256) => key
                .verify(
                    Pkcs1v15Sign::new::<Sha256>(),
                    &Sha256::digest(message),
                    signature,
                )
                .is_ok(),
            (Key::Rsa(key), Algorithm::RS384) => key
                .verify(
                    Pkcs1v15Sign::new::<Sha384>(),
                    &Sha384::digest(message),
                    signature,
                )
                .is_ok(),
            (Key::Rsa(key), Algorithm::RS512) => key
                .verify(
                    Pkcs1v15Sign::new::<Sha512>(),
                    &Sha512::digest(message),
                    signature,
                )
                .is_ok(),
            // Pss::new sets the salt length to the hash length, as RFC 7518
            // §3.5 requires, and verification enforces it.
            (Key::Rsa(key), Algorithm::PS256) => key
                .verify(Pss::new::<Sha256>(), &Sha256::digest(message), signature)
                .is_ok(),
            (Key::Rsa(key), Algorithm::PS384) => key
                .verify(Pss::new::<Sha384>(), &Sha384::digest(message), signature)
                .is_ok(),
            (Key::Rsa(key), Algorithm::PS512) => key
                .verify(Pss::new::<Sha512>(), &Sha512::digest(message), signature)
                .is_ok(),
            // `Signature::from_slice` takes raw r||s of exact length and
            // rejects r or s that are zero or not below the group order.
            (Key::P256(key), Algorithm::ES256) => p256::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|sig| key.verify(message, &sig).is_ok()),
            (Key::P384(key), Algorithm::ES384) => p384::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|sig| key.verify(message, &sig).is_ok()),
            (Key::P521(key), Algorithm::ES512) => p521::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|sig| key.verify(message, &sig).is_ok()),
            // verify_strict: rejects non-canonical s and small-order R.
            (Key::Ed25519(key), Algorithm::EdDSA) => match <&[u8; 64]>::try_from(signature) {
                Ok(bytes) => key
                    .verify_strict(message, &ed25519_dalek::Signature::from_bytes(bytes))
                    .is_ok(),
                Err(_) => false,
            },
            (Key::Hmac(states), Algorithm::HS256) => mac_ok(&states.hs256, message, signature),
            (Key::Hmac(states), Algorithm::HS384) => mac_ok(&states.hs384, message, signature),
            (Key::Hmac(states), Algorithm::HS512) => mac_ok(&states.hs512, message, signature),
            _ => false,
        }
    }
}

fn keyed<M: Mac + hmac::digest::KeyInit>(k: &[u8], alg: Algorithm) -> Option<M> {
    if k.len() < alg.hash_len() {
        return None;
    }
    <M as hmac::digest::KeyInit>::new_from_slice(k).ok()
}

/// Constant-time tag comparison (`verify_slice`).
fn mac_ok<M: Mac + Clone>(state: &Option<M>, message: &[u8], tag: &[u8]) -> bool {
    match state {
        Some(state) => {
            let mut mac = state.clone();
            mac.update(message);
            mac.verify_slice(tag).is_ok()
        }
        None => false,
    }
}
