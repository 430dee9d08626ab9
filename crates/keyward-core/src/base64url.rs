//! Strict base64url (RFC 4648 §5, no padding) as JWS requires (RFC 7515 §2).
//!
//! Threat addressed: malleability. A lenient decoder accepts several
//! encodings of the same bytes (padding, `+`/`/`, whitespace, non-zero
//! trailing bits), so a token could be altered without changing what
//! verifies, defeating token-keyed caches and replay detection. This decoder
//! accepts exactly one encoding of any byte string: the URL-safe alphabet
//! only, no padding, no other characters, a length that is not 1 modulo 4,
//! and zero trailing bits.
//!
//! Why not `base64ct`: its decoder is constant-time, which matters for
//! secrets and costs ~24 instructions per byte; everything decoded on the
//! verification path (header, payload, signature) is public, and base64
//! was a fifth of the verification overhead. `base64ct` is kept as the test
//! oracle: the property tests check that both accept and reject the same
//! inputs and decode them to the same bytes.

use crate::error::Error;

/// Marks a byte that is not in the alphabet.
const INVALID: u8 = 0xFF;

/// Sextet value of each URL-safe alphabet character, `INVALID` otherwise.
// Indexing in this const initialiser is evaluated at compile time: an
// out-of-range index fails the build, it cannot panic at run time.
#[allow(clippy::indexing_slicing)]
const DECODE: [u8; 256] = {
    let mut table = [INVALID; 256];
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut i = 0;
    while i < 64 {
        table[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    table
};

fn sextet(byte: u8) -> u32 {
    // every u8 is in range of the 256-entry table
    u32::from(DECODE.get(usize::from(byte)).copied().unwrap_or(INVALID))
}

/// Length of the decoded bytes, or `None` when the length is impossible.
fn decoded_len(encoded: usize) -> Option<usize> {
    match encoded % 4 {
        1 => None,
        0 => Some(encoded / 4 * 3),
        rest => Some(encoded / 4 * 3 + rest - 1),
    }
}

/// Decodes `input` into `out` (exactly `decoded_len` bytes long).
fn decode_exact(input: &[u8], out: &mut [u8]) -> Option<()> {
    // 8 characters -> 6 bytes per step while both sides have room.
    let wide = (input.len() / 8).min(out.len() / 6);
    let (input_wide, input_rest) = input.split_at(wide * 8);
    let (out_wide, out_rest) = out.split_at_mut(wide * 6);
    for (chunk, dest) in input_wide.chunks_exact(8).zip(out_wide.chunks_exact_mut(6)) {
        let chunk: [u8; 8] = chunk.try_into().ok()?;
        let mut n: u64 = 0;
        let mut invalid = 0u32;
        for byte in chunk {
            let v = sextet(byte);
            invalid |= v;
            n = (n << 6) | u64::from(v & 63);
        }
        // any INVALID (0xFF) sets bits above the sextet range
        if invalid > 63 {
            return None;
        }
        let bytes = n.to_be_bytes();
        dest.copy_from_slice(bytes.get(2..8)?);
    }
    let mut chunks = input_rest.chunks_exact(4);
    let mut outs = out_rest.chunks_exact_mut(3);
    for (chunk, dest) in (&mut chunks).zip(&mut outs) {
        let chunk: [u8; 4] = chunk.try_into().ok()?;
        let [a, b, c, d] = chunk.map(sextet);
        if (a | b | c | d) > 63 {
            return None;
        }
        let n = (a << 18) | (b << 12) | (c << 6) | d;
        dest.copy_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8]);
    }
    let tail_in = chunks.remainder();
    let tail_out = outs.into_remainder();
    match (tail_in, tail_out) {
        ([], []) => Some(()),
        ([a, b], [x]) => {
            let (a, b) = (sextet(*a), sextet(*b));
            // the 4 low bits of b carry nothing and must be zero
            if (a | b) > 63 || b & 0x0F != 0 {
                return None;
            }
            *x = ((a << 2) | (b >> 4)) as u8;
            Some(())
        }
        ([a, b, c], [x, y]) => {
            let (a, b, c) = (sextet(*a), sextet(*b), sextet(*c));
            // the 2 low bits of c carry nothing and must be zero
            if (a | b | c) > 63 || c & 0x03 != 0 {
                return None;
            }
            let n = (a << 10) | (b << 4) | (c >> 2);
            *x = (n >> 8) as u8;
            *y = n as u8;
            Some(())
        }
        _ => None,
    }
}

/// Decodes `input` into a new vector, or a `malformed` error naming `what`.
pub(crate) fn decode_vec(input: &str, what: &str) -> Result<Vec<u8>, Error> {
    let len = decoded_len(input.len()).ok_or_else(|| not_base64url(what))?;
    let mut out = vec![0u8; len];
    decode_exact(input.as_bytes(), &mut out).ok_or_else(|| not_base64url(what))?;
    Ok(out)
}

/// Decodes `input` into `buf`, returning the decoded prefix; a `malformed`
/// error when it does not fit or is not strict base64url.
pub(crate) fn decode_into<'b>(
    input: &str,
    buf: &'b mut [u8],
    what: &str,
) -> Result<&'b [u8], Error> {
    let len = decoded_len(input.len()).ok_or_else(|| not_base64url(what))?;
    let out = buf.get_mut(..len).ok_or_else(|| not_base64url(what))?;
    decode_exact(input.as_bytes(), out).ok_or_else(|| not_base64url(what))?;
    Ok(out)
}

/// Encodes bytes as unpadded base64url (tests build JWKs with it).
#[cfg(test)]
pub(crate) fn encode(bytes: &[u8]) -> String {
    use base64ct::{Base64UrlUnpadded, Encoding};
    Base64UrlUnpadded::encode_string(bytes)
}

fn not_base64url(what: &str) -> Error {
    Error::malformed(format!("the {what} is not strict base64url"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64ct::{Base64UrlUnpadded, Encoding};
    use proptest::prelude::*;

    #[test]
    fn canonical_input_decodes() {
        assert_eq!(decode_vec("aGk", "x").unwrap(), b"hi");
        assert_eq!(decode_vec("", "x").unwrap(), b"");
        assert_eq!(decode_vec("-_8", "x").unwrap(), [0xfb, 0xff]);
        assert_eq!(decode_vec("aGVsbG8gd29ybGQ", "x").unwrap(), b"hello world");
    }

    #[test]
    fn lenient_forms_are_rejected() {
        // padding, standard alphabet, whitespace, impossible length
        for bad in [
            "aGk=", "+/8", "aG k", "aGk\n", "a", "aGk==", " aGk", "aGVsbG8=", "aGVs\0G8",
        ] {
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

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// base64ct (strict, constant-time) as the oracle: round trips agree.
        #[test]
        fn round_trips_like_base64ct(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let encoded = Base64UrlUnpadded::encode_string(&bytes);
            prop_assert_eq!(decode_vec(&encoded, "x").unwrap(), bytes);
        }

        /// ...and both accept and reject exactly the same strings.
        #[test]
        fn accepts_exactly_what_base64ct_accepts(input in "[A-Za-z0-9_+/= -]{0,40}") {
            let ours = decode_vec(&input, "x").ok();
            let oracle = Base64UrlUnpadded::decode_vec(&input).ok();
            prop_assert_eq!(ours, oracle, "{:?}", input);
        }
    }
}
