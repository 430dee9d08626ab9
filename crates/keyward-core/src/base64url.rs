//! Strict base64url (RFC 4648 §5, no padding) as JWS requires (RFC 7515 §2).
//!
//! Threat addressed: malleability. A lenient decoder accepts several
//! encodings of the same bytes (padding, `+`/`/`, whitespace, non-zero
//! trailing bits), so a token could be altered without changing what
//! verifies, defeating token-keyed caches and replay detection. `base64ct`
//! rejects all of those, in constant time; this module only adds the
//! error mapping and a stack-buffer path for signatures.

use crate::error::Error;
use base64ct::{Base64UrlUnpadded, Encoding};

/// Decodes `input` into a new vector, or a `malformed` error naming `what`.
pub(crate) fn decode_vec(input: &str, what: &str) -> Result<Vec<u8>, Error> {
    Base64UrlUnpadded::decode_vec(input).map_err(|_| not_base64url(what))
}

/// Decodes `input` into `buf`, returning the decoded prefix; a `malformed`
/// error when it does not fit or is not strict base64url.
pub(crate) fn decode_into<'b>(
    input: &str,
    buf: &'b mut [u8],
    what: &str,
) -> Result<&'b [u8], Error> {
    Base64UrlUnpadded::decode(input, buf)
        .map(|decoded| -> &'b [u8] { decoded })
        .map_err(|_| not_base64url(what))
}

/// Encodes bytes as unpadded base64url.
#[cfg(test)]
pub(crate) fn encode(bytes: &[u8]) -> String {
    Base64UrlUnpadded::encode_string(bytes)
}

fn not_base64url(what: &str) -> Error {
    Error::malformed(format!("the {what} is not strict base64url"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_input_decodes() {
        assert_eq!(decode_vec("aGk", "x").unwrap(), b"hi");
        assert_eq!(decode_vec("", "x").unwrap(), b"");
        assert_eq!(decode_vec("-_8", "x").unwrap(), [0xfb, 0xff]);
    }

    #[test]
    fn lenient_forms_are_rejected() {
        // padding, standard alphabet, whitespace, impossible length
        for bad in ["aGk=", "+/8", "aG k", "aGk\n", "a", "aGk==", " aGk"] {
            assert!(decode_vec(bad, "x").is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn non_canonical_trailing_bits_are_rejected() {
        // "aGk" is canonical for "hi"; "aGl" has the same first 16 bits but
        // non-zero trailing bits.
        assert_eq!(decode_vec("aGk", "x").unwrap(), b"hi");
        assert!(decode_vec("aGl", "x").is_err());
        assert!(decode_vec("aB", "x").is_err()); // 'B' leaves trailing bits set
        assert_eq!(decode_vec("aA", "x").unwrap(), [0x68]);
    }

    #[test]
    fn decode_into_checks_capacity() {
        let mut buf = [0u8; 1];
        assert!(decode_into("aGk", &mut buf, "x").is_err());
        let mut buf = [0u8; 8];
        assert_eq!(decode_into("aGk", &mut buf, "x").unwrap(), b"hi");
    }
}
