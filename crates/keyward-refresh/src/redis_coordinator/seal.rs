//! What a refresh leaves in Redis, and why reading Redis is not enough to
//! use it.
//!
//! Threat: anyone who can read Redis (an operator, a backup, a compromised
//! neighbour service on a shared instance) would otherwise find fresh access
//! and refresh tokens there. So the outcome is sealed with AES-256-GCM under
//! a key derived with HKDF-SHA256 from the *old* refresh token, which Redis
//! never sees: only a caller that already holds that token can open it. The
//! Redis key names come from the same HKDF under a different label, so they
//! identify the token without revealing it or the sealing key.

use crate::outcome::GrantOutcome;
use crate::secret::Secret;
use crate::token_set::TokenSet;
use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use keyward_core::{Error, ErrorKind};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

/// HKDF salt: versions the derivation (a change makes old records unreadable,
/// which is the intent).
const SALT: &[u8] = b"keyward-refresh-coordination/v1";
const ID_INFO: &[u8] = b"redis key name";
const SEAL_INFO: &[u8] = b"outcome sealing key (AES-256-GCM)";
/// First byte of a sealed record: the format version.
const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;

/// What the coordinator derives from one refresh token.
pub(crate) struct TokenSecrets {
    /// Hex name for the token's Redis keys (not secret, not the token).
    pub(crate) id: String,
    key: Zeroizing<[u8; 32]>,
}

impl TokenSecrets {
    pub(crate) fn derive(refresh_token: &str) -> TokenSecrets {
        let hk = Hkdf::<Sha256>::new(Some(SALT), refresh_token.as_bytes());
        let mut id = [0u8; 32];
        let mut key = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's 8160-byte limit: cannot fail.
        let _ = hk.expand(ID_INFO, &mut id);
        let _ = hk.expand(SEAL_INFO, key.as_mut());
        TokenSecrets {
            id: id.iter().map(|b| format!("{b:02x}")).collect(),
            key,
        }
    }

    /// Seals an outcome; the record is bound to this token's key name.
    pub(crate) fn seal(&self, outcome: &GrantOutcome) -> Vec<u8> {
        let message = |e: &Error| e.message().to_owned();
        let record = match outcome {
            GrantOutcome::Granted(t) => Record::Tokens {
                access_token: secret(&t.access_token),
                expires_at: t.expires_at,
                refresh_token: secret(&t.refresh_token),
                rotated: t.rotated,
                refresh_expires_at: t.refresh_expires_at,
                id_token: t.id_token.as_ref().map(secret),
                scope: t.scope.clone(),
            },
            GrantOutcome::Rejected(e) => Record::Rejected {
                message: message(e),
            },
            GrantOutcome::InDoubt(e) => Record::InDoubt {
                message: message(e),
            },
            GrantOutcome::NotSent(e) => Record::NotSent {
                message: message(e),
            },
        };
        let plaintext = Zeroizing::new(serde_json::to_vec(&record).unwrap_or_default());
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let cipher = Aes256Gcm::new(self.key.as_ref().into());
        let sealed = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &plaintext,
                    aad: self.id.as_bytes(),
                },
            )
            .unwrap_or_default();
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens a record sealed for this token. `None` if it was not (tampered,
    /// truncated, another version): never trusted, never guessed at.
    pub(crate) fn open(&self, record: &[u8]) -> Option<GrantOutcome> {
        let (&version, rest) = record.split_first()?;
        if version != VERSION || rest.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        let cipher = Aes256Gcm::new(self.key.as_ref().into());
        let plaintext = Zeroizing::new(
            cipher
                .decrypt(
                    &Nonce::from(nonce),
                    Payload {
                        msg: sealed,
                        aad: self.id.as_bytes(),
                    },
                )
                .ok()?,
        );
        Some(match serde_json::from_slice::<Record>(&plaintext).ok()? {
            Record::Tokens {
                mut access_token,
                expires_at,
                mut refresh_token,
                rotated,
                refresh_expires_at,
                id_token,
                scope,
            } => GrantOutcome::Granted(TokenSet {
                access_token: Secret::new(std::mem::take(&mut access_token)),
                expires_at,
                refresh_token: Secret::new(std::mem::take(&mut refresh_token)),
                rotated,
                refresh_expires_at,
                id_token: id_token.map(|mut t| Secret::new(std::mem::take(&mut t))),
                scope,
            }),
            Record::Rejected { message } => {
                GrantOutcome::Rejected(Error::new(ErrorKind::InvalidGrant, message))
            }
            Record::InDoubt { message } => {
                GrantOutcome::InDoubt(Error::new(ErrorKind::RefreshFailed, message))
            }
            Record::NotSent { message } => {
                GrantOutcome::NotSent(Error::new(ErrorKind::RefreshFailed, message))
            }
            // Written by 0.1 replicas during a rolling deploy: its
            // `invalid_grant` is a rejection, its transient failures were
            // kept for two seconds as "try again later".
            Record::Error { kind, message } => match kind.as_str() {
                "invalid_grant" => {
                    GrantOutcome::Rejected(Error::new(ErrorKind::InvalidGrant, message))
                }
                _ => GrantOutcome::NotSent(Error::new(ErrorKind::RefreshFailed, message)),
            },
        })
    }
}

/// A token copied into the record: zeroized when the record is dropped.
fn secret(s: &Secret) -> Zeroizing<String> {
    Zeroizing::new(s.expose().to_owned())
}

/// The plaintext of a sealed outcome (JSON).
#[derive(Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
enum Record {
    Tokens {
        access_token: Zeroizing<String>,
        expires_at: Option<u64>,
        refresh_token: Zeroizing<String>,
        rotated: bool,
        #[serde(default)]
        refresh_expires_at: Option<u64>,
        id_token: Option<Zeroizing<String>>,
        scope: Option<String>,
    },
    Rejected {
        message: String,
    },
    InDoubt {
        message: String,
    },
    NotSent {
        message: String,
    },
    /// The 0.1 format of every failure (read, never written).
    Error {
        kind: String,
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> GrantOutcome {
        GrantOutcome::Granted(TokenSet {
            access_token: Secret::new("access-PLAINTEXT".into()),
            expires_at: Some(1_700_000_300),
            refresh_token: Secret::new("refresh-PLAINTEXT".into()),
            rotated: true,
            refresh_expires_at: Some(1_700_086_400),
            id_token: None,
            scope: Some("openid".into()),
        })
    }

    #[test]
    fn seals_and_opens_every_outcome() {
        let s = TokenSecrets::derive("old-refresh-token");
        let failure = |kind| Error::new(kind, "gone");
        for outcome in [
            tokens(),
            GrantOutcome::Rejected(failure(ErrorKind::InvalidGrant)),
            GrantOutcome::InDoubt(failure(ErrorKind::RefreshFailed)),
            GrantOutcome::NotSent(failure(ErrorKind::RefreshFailed)),
        ] {
            let opened = s.open(&s.seal(&outcome)).unwrap();
            assert_eq!(same(&opened), same(&outcome));
        }
    }

    /// What must survive sealing: the outcome, and its tokens or its error.
    fn same(o: &GrantOutcome) -> (String, Option<TokenSet>, Option<(ErrorKind, String)>) {
        let error = |e: &Error| Some((e.kind(), e.message().to_owned()));
        match o {
            GrantOutcome::Granted(t) => (o.as_str().into(), Some(t.clone()), None),
            GrantOutcome::NotSent(e) | GrantOutcome::Rejected(e) | GrantOutcome::InDoubt(e) => {
                (o.as_str().into(), None, error(e))
            }
        }
    }

    #[test]
    fn the_record_reveals_no_token_and_only_the_old_token_opens_it() {
        let s = TokenSecrets::derive("old-refresh-token");
        let sealed = s.seal(&tokens());
        let text = String::from_utf8_lossy(&sealed);
        assert!(!text.contains("PLAINTEXT"), "{text}");
        assert!(!s.id.contains("old-refresh-token"));
        let other = TokenSecrets::derive("another-refresh-token");
        assert_ne!(other.id, s.id);
        assert!(
            other.open(&sealed).is_none(),
            "another token's key cannot open it"
        );
        // same token, fresh nonce: two seals differ
        assert_ne!(s.seal(&tokens()), sealed);
    }

    #[test]
    fn tampered_or_truncated_records_are_refused() {
        let s = TokenSecrets::derive("t");
        let sealed = s.seal(&tokens());
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(s.open(&bad).is_none(), "flipped byte {i}");
        }
        for n in 0..sealed.len() {
            assert!(s.open(&sealed[..n]).is_none(), "truncated to {n}");
        }
    }
}
