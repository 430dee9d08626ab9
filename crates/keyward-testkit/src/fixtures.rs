//! The oracle fixtures minted by `crates/keyward-core/tests/fixtures/generate.py`.

/// The time (Unix seconds) at which the fixture tokens are valid.
pub const NOW: u64 = 1_700_000_000;
/// The fixture tokens' issuer.
pub const ISSUER: &str = "https://issuer.example";
/// The fixture tokens' audience.
pub const AUDIENCE: &str = "https://api.example";

fn dir() -> String {
    format!(
        "{}/../keyward-core/tests/fixtures",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The path of a fixture file.
pub fn path(name: &str) -> String {
    format!("{}/{name}", dir())
}

/// The fixture JWKS (9 usable keys and 3 that must be skipped).
pub fn jwks() -> String {
    std::fs::read_to_string(path("jwks.json")).unwrap()
}

/// The fixture JWKS with only the keys whose kid is in `kids`.
pub fn jwks_with(kids: &[&str]) -> String {
    let mut doc: serde_json::Value = serde_json::from_str(&jwks()).unwrap();
    let keys = doc["keys"].as_array_mut().unwrap();
    keys.retain(|k| k["kid"].as_str().is_some_and(|kid| kids.contains(&kid)));
    doc.to_string()
}

/// A valid token for `alg` (e.g. `"ES256"`), signed by the fixture key
/// whose kid `valid_kid(alg)` returns.
pub fn token(alg: &str) -> String {
    std::fs::read_to_string(path(&format!("valid/{alg}.jwt")))
        .unwrap()
        .trim()
        .to_owned()
}

/// The kid that signed `token(alg)`.
pub fn valid_kid(alg: &str) -> &'static str {
    match alg {
        "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" => "rsa-1",
        "ES256" => "ec-p256",
        "ES384" => "ec-p384",
        "ES512" => "ec-p521",
        "EdDSA" => "ed-1",
        _ => "hmac-1",
    }
}

/// An unsigned token whose header names `kid` (for key-lookup tests: it
/// can never verify).
pub fn token_with_kid(kid: &str) -> String {
    let header = format!(r#"{{"alg":"ES256","kid":"{kid}","typ":"at+jwt"}}"#);
    format!("{}.e30.{}", b64(header.as_bytes()), "A".repeat(86))
}

/// Unpadded base64url.
pub fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, &x| (acc << 8) | u32::from(x)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}
