//! Compact token parsing: segments, strict base64url, header JSON, payload.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        // decode_unverified runs the size limit, the split, base64url and the
        // header checks; the payload must then be UTF-8.
        let _ = keyward_core::decode_unverified(token);
    }
});
