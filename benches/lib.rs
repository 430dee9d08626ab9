//! The benchmark workload shared by keyward's benchmarks: one key per
//! algorithm (generated with aws-lc-rs at start-up), a realistic access
//! token for each, the JWKS, and the keys in every peer's form.
//!
//! Run the benchmarks with `cargo bench -p keyward-benches` (see
//! `docs/benchmarks.md`).
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use keyward_testkit::fixtures::b64;
use serde::Deserialize;
use serde_json::{json, Value};
use std::task::{Context, Poll, Waker};
use std::time::{SystemTime, UNIX_EPOCH};

pub const ISSUER: &str = "https://issuer.example";
pub const AUDIENCE: &str = "https://api.example";
pub const ALGS: [&str; 5] = ["RS256", "PS256", "ES256", "EdDSA", "HS256"];

/// The typed claims every library decodes into.
#[derive(Debug, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub iat: u64,
    pub nbf: u64,
    pub scope: String,
    pub email: String,
    pub orgs: Vec<Org>,
}

/// The claims jwt-simple leaves to the caller (it parses the registered ones).
#[derive(Debug, Deserialize, serde::Serialize)]
pub struct CustomClaims {
    pub scope: String,
    pub email: String,
    pub orgs: Vec<Org>,
}

#[derive(Debug, Deserialize, serde::Serialize)]
pub struct Org {
    pub id: String,
    pub slug: String,
    pub name: String,
}

/// Public key material in raw form.
pub enum Material {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    Ec { point: Vec<u8> },
    Ed { x: Vec<u8> },
    Hmac { k: Vec<u8> },
}

pub struct Case {
    pub alg: &'static str,
    pub kid: String,
    pub token: String,
    pub signing_input: Vec<u8>,
    pub signature: Vec<u8>,
    pub material: Material,
}

pub struct Workload {
    pub cases: Vec<Case>,
    pub jwks: String,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn payload() -> Value {
    let now = now();
    json!({
        "iss": ISSUER, "sub": "user-4f1c9a2e", "aud": AUDIENCE,
        "exp": now + 3600, "iat": now, "nbf": now,
        "scope": "openid profile email read:projects write:projects",
        "email": "ada.lovelace@example.com",
        "orgs": [
            {"id": "org_7Hk2", "slug": "analytical-engines", "name": "Analytical Engines Ltd"},
            {"id": "org_9Qx1", "slug": "difference", "name": "Difference Engine Society"},
            {"id": "org_3Zr8", "slug": "royal-society", "name": "The Royal Society"}
        ]
    })
}

fn sign(alg: &'static str) -> Case {
    let kid = format!("{}-bench", alg.to_lowercase());
    let header = json!({"alg": alg, "typ": "at+jwt", "kid": kid}).to_string();
    let input = format!(
        "{}.{}",
        b64(header.as_bytes()),
        b64(payload().to_string().as_bytes())
    );
    let rng = SystemRandom::new();
    let (signature, material) = match alg {
        "RS256" | "PS256" => {
            let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
            let mut sig = vec![0; pair.public_modulus_len()];
            let padding: &'static dyn signature::RsaEncoding = if alg == "RS256" {
                &signature::RSA_PKCS1_SHA256
            } else {
                &signature::RSA_PSS_SHA256
            };
            pair.sign(padding, &rng, input.as_bytes(), &mut sig)
                .unwrap();
            let public = pair.public_key();
            let n = public.modulus().big_endian_without_leading_zero().to_vec();
            let e = public.exponent().big_endian_without_leading_zero().to_vec();
            (sig, Material::Rsa { n, e })
        }
        "ES256" => {
            let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
            let sig = pair.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec();
            (
                sig,
                Material::Ec {
                    point: pair.public_key().as_ref().to_vec(),
                },
            )
        }
        "EdDSA" => {
            let pair = Ed25519KeyPair::generate().unwrap();
            let sig = pair.sign(input.as_bytes()).as_ref().to_vec();
            (
                sig,
                Material::Ed {
                    x: pair.public_key().as_ref().to_vec(),
                },
            )
        }
        _ => {
            let k: Vec<u8> = (0..32u8)
                .map(|i| i.wrapping_mul(37).wrapping_add(11))
                .collect();
            let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &k);
            let sig = aws_lc_rs::hmac::sign(&key, input.as_bytes())
                .as_ref()
                .to_vec();
            (sig, Material::Hmac { k })
        }
    };
    Case {
        alg,
        token: format!("{input}.{}", b64(&signature)),
        signing_input: input.into_bytes(),
        kid,
        signature,
        material,
    }
}

impl Case {
    pub fn jwk(&self) -> Value {
        let mut jwk = match &self.material {
            Material::Rsa { n, e } => json!({"kty": "RSA", "n": b64(n), "e": b64(e)}),
            Material::Ec { point } => {
                json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65])})
            }
            Material::Ed { x } => json!({"kty": "OKP", "crv": "Ed25519", "x": b64(x)}),
            Material::Hmac { k } => json!({"kty": "oct", "k": b64(k)}),
        };
        jwk["kid"] = json!(self.kid);
        jwk["alg"] = json!(self.alg);
        jwk
    }

    /// The base64url member values jsonwebtoken's constructors take.
    pub fn jwk_str(&self, member: &str) -> String {
        self.jwk()[member].as_str().unwrap().to_owned()
    }
}

pub fn workload() -> Workload {
    let cases: Vec<Case> = ALGS.iter().map(|alg| sign(alg)).collect();
    let jwks = json!({"keys": cases.iter().map(Case::jwk).collect::<Vec<_>>()}).to_string();
    Workload { cases, jwks }
}

/// Runs a future that never waits on I/O (keys in memory) to completion
/// without an async runtime, so its cost is measured, not a scheduler's.
pub fn run_ready<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
    }
}

/// Raw signature verification with a pre-parsed key: the floor no JWT
/// library can go below with the same primitive.
pub mod floor {
    use super::{Case, Material};
    use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};
    use hmac::Mac;
    use rsa::{Pkcs1v15Sign, Pss, RsaPublicKey};
    use sha2::{Digest, Sha256};

    pub enum AwsLc {
        Parsed(ParsedPublicKey),
        Hmac(Box<aws_lc_rs::hmac::Key>),
    }

    impl AwsLc {
        pub fn new(case: &Case) -> Self {
            match &case.material {
                Material::Rsa { n, e } => {
                    let params = if case.alg == "RS256" {
                        &signature::RSA_PKCS1_2048_8192_SHA256
                    } else {
                        &signature::RSA_PSS_2048_8192_SHA256
                    };
                    AwsLc::Parsed(
                        RsaPublicKeyComponents { n, e }
                            .to_parsed_public_key(params)
                            .unwrap(),
                    )
                }
                Material::Ec { point } => AwsLc::Parsed(
                    ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point).unwrap(),
                ),
                Material::Ed { x } => {
                    AwsLc::Parsed(ParsedPublicKey::new(&signature::ED25519, x).unwrap())
                }
                Material::Hmac { k } => AwsLc::Hmac(Box::new(aws_lc_rs::hmac::Key::new(
                    aws_lc_rs::hmac::HMAC_SHA256,
                    k,
                ))),
            }
        }

        pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
            match self {
                AwsLc::Parsed(key) => key.verify_sig(message, signature).is_ok(),
                AwsLc::Hmac(key) => aws_lc_rs::hmac::verify(key, message, signature).is_ok(),
            }
        }
    }

    pub enum RustCrypto {
        Rsa(RsaPublicKey, bool),
        P256(p256::ecdsa::VerifyingKey),
        Ed(ed25519_dalek::VerifyingKey),
        Hmac(hmac::Hmac<Sha256>),
    }

    impl RustCrypto {
        pub fn new(case: &Case) -> Self {
            match &case.material {
                Material::Rsa { n, e } => RustCrypto::Rsa(
                    RsaPublicKey::new(
                        rsa::BigUint::from_bytes_be(n),
                        rsa::BigUint::from_bytes_be(e),
                    )
                    .unwrap(),
                    case.alg == "PS256",
                ),
                Material::Ec { point } => {
                    RustCrypto::P256(p256::ecdsa::VerifyingKey::from_sec1_bytes(point).unwrap())
                }
                Material::Ed { x } => RustCrypto::Ed(
                    ed25519_dalek::VerifyingKey::from_bytes(x.as_slice().try_into().unwrap())
                        .unwrap(),
                ),
                Material::Hmac { k } => RustCrypto::Hmac(
                    <hmac::Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(k).unwrap(),
                ),
            }
        }

        pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
            use p256::ecdsa::signature::Verifier;
            match self {
                RustCrypto::Rsa(key, false) => key
                    .verify(
                        Pkcs1v15Sign::new::<Sha256>(),
                        &Sha256::digest(message),
                        signature,
                    )
                    .is_ok(),
                RustCrypto::Rsa(key, true) => key
                    .verify(Pss::new::<Sha256>(), &Sha256::digest(message), signature)
                    .is_ok(),
                RustCrypto::P256(key) => p256::ecdsa::Signature::from_slice(signature)
                    .is_ok_and(|s| key.verify(message, &s).is_ok()),
                RustCrypto::Ed(key) => key
                    .verify_strict(
                        message,
                        &ed25519_dalek::Signature::from_bytes(signature.try_into().unwrap()),
                    )
                    .is_ok(),
                RustCrypto::Hmac(state) => {
                    let mut mac = state.clone();
                    mac.update(message);
                    mac.verify_slice(signature).is_ok()
                }
            }
        }
    }
}

/// The peers, configured to check what keyward checks here (signature,
/// `exp`/`nbf`, issuer, audience) and decode the same typed claims.
pub mod peers {
    use super::{Case, Claims, CustomClaims, Material, AUDIENCE, ISSUER};
    use std::collections::HashSet;

    pub struct JsonWebToken {
        key: jsonwebtoken::DecodingKey,
        validation: jsonwebtoken::Validation,
    }

    impl JsonWebToken {
        pub fn new(case: &Case) -> Self {
            use jsonwebtoken::{Algorithm, DecodingKey, Validation};
            let key = match &case.material {
                Material::Rsa { .. } => {
                    DecodingKey::from_rsa_components(&case.jwk_str("n"), &case.jwk_str("e"))
                        .unwrap()
                }
                Material::Ec { .. } => {
                    DecodingKey::from_ec_components(&case.jwk_str("x"), &case.jwk_str("y")).unwrap()
                }
                Material::Ed { .. } => DecodingKey::from_ed_components(&case.jwk_str("x")).unwrap(),
                Material::Hmac { k } => DecodingKey::from_secret(k),
            };
            let alg = match case.alg {
                "RS256" => Algorithm::RS256,
                "PS256" => Algorithm::PS256,
                "ES256" => Algorithm::ES256,
                "EdDSA" => Algorithm::EdDSA,
                _ => Algorithm::HS256,
            };
            let mut validation = Validation::new(alg);
            validation.set_issuer(&[ISSUER]);
            validation.set_audience(&[AUDIENCE]);
            JsonWebToken { key, validation }
        }

        pub fn verify(&self, token: &str) -> Claims {
            jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
                .unwrap()
                .claims
        }
    }

    pub enum JwtSimple {
        Rs(jwt_simple::algorithms::RS256PublicKey),
        Ps(jwt_simple::algorithms::PS256PublicKey),
        Es(jwt_simple::algorithms::ES256PublicKey),
        Ed(jwt_simple::algorithms::Ed25519PublicKey),
        Hs(jwt_simple::algorithms::HS256Key),
    }

    fn options() -> jwt_simple::common::VerificationOptions {
        jwt_simple::common::VerificationOptions {
            allowed_issuers: Some(HashSet::from([ISSUER.to_owned()])),
            allowed_audiences: Some(HashSet::from([AUDIENCE.to_owned()])),
            ..Default::default()
        }
    }

    impl JwtSimple {
        pub fn new(case: &Case) -> Self {
            use jwt_simple::algorithms::*;
            match (&case.material, case.alg) {
                (Material::Rsa { n, e }, "RS256") => {
                    JwtSimple::Rs(RS256PublicKey::from_components(n, e).unwrap())
                }
                (Material::Rsa { n, e }, _) => {
                    JwtSimple::Ps(PS256PublicKey::from_components(n, e).unwrap())
                }
                (Material::Ec { point }, _) => {
                    JwtSimple::Es(ES256PublicKey::from_bytes(point).unwrap())
                }
                (Material::Ed { x }, _) => JwtSimple::Ed(Ed25519PublicKey::from_bytes(x).unwrap()),
                (Material::Hmac { k }, _) => JwtSimple::Hs(HS256Key::from_bytes(k)),
            }
        }

        pub fn verify(&self, token: &str) -> jwt_simple::claims::JWTClaims<CustomClaims> {
            use jwt_simple::prelude::*;
            let o = Some(options());
            match self {
                JwtSimple::Rs(k) => k.verify_token::<CustomClaims>(token, o),
                JwtSimple::Ps(k) => k.verify_token::<CustomClaims>(token, o),
                JwtSimple::Es(k) => k.verify_token::<CustomClaims>(token, o),
                JwtSimple::Ed(k) => k.verify_token::<CustomClaims>(token, o),
                JwtSimple::Hs(k) => k.verify_token::<CustomClaims>(token, o),
            }
            .unwrap()
        }
    }
}

/// keyward, configured like the peers (issuer, audience; every algorithm
/// allowed so that HS256 is too).
pub fn keyward_verifier(jwks: &str, backend: keyward_core::Backend) -> keyward_core::Verifier {
    use keyward_core::{Algorithm, KeySet, Validation, Verifier};
    Verifier::new(
        KeySet::from_jwks_with(jwks, backend).unwrap(),
        Validation::new()
            .issuer(ISSUER)
            .audience(AUDIENCE)
            .algorithms(Algorithm::ALL),
    )
}

/// The `Authenticator` the `authenticate` benches measure: baked keys, no
/// network; with or without its verified-token cache.
pub fn keyward_authenticator(jwks: &str, token_cache: bool) -> keyward::Authenticator {
    let builder = keyward::Authenticator::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .baked_jwks(jwks);
    let builder = if token_cache {
        builder
    } else {
        builder.no_token_cache()
    };
    builder.build().unwrap()
}
