//! Parsers of what servers send: token-endpoint responses, Cache-Control
//! values, discovery documents.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = keyward_refresh::TokenSet::from_response(data, "old-refresh-token", 1_700_000_000);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = keyward_keys::parse_max_age(text);
    }
    let _ = keyward_keys::discovery::parse_metadata(data, "https://issuer.example", false);
});
