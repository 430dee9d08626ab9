//! Turning a fetched JWKS into one fit for baking into configuration.

use keyward_core::{Error, ErrorKind};
use serde_json::{Map, Value};

/// Members a public JWK may carry (RFC 7517 §4, RFC 7518 §6.2.1, §6.3.1,
/// RFC 8037 §2). Everything else — private members (`d`, `p`, `q`, `dp`,
/// `dq`, `qi`, `oth`) and symmetric secrets (`k`) — is dropped.
const PUBLIC_MEMBERS: [&str; 14] = [
    "kty", "use", "key_ops", "alg", "kid", "x5u", "x5c", "x5t", "x5t#S256", "crv", "x", "y", "n",
    "e",
];

/// Returns the JWKS `document` with public key members only, as pretty
/// JSON: what `keyward jwks fetch` prints for baking into configuration.
/// Symmetric (`oct`) keys are dropped entirely.
///
/// ```
/// let private = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"a",
///   "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"secret"},
///   {"kty":"oct","k":"c2VjcmV0"}]}"#;
/// let public = keyward_keys::public_jwks(private).unwrap();
/// assert!(!public.contains("secret") && !public.contains("c2VjcmV0"));
/// assert!(public.contains("11qYAYKx"));
/// ```
pub fn public_jwks(document: &str) -> Result<String, Error> {
    let doc: Value = serde_json::from_str(document)
        .map_err(|e| Error::new(ErrorKind::Malformed, format!("the JWKS is not JSON: {e}")))?;
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::new(ErrorKind::Malformed, "the JWKS has no \"keys\" array"))?;
    let public: Vec<Value> = keys
        .iter()
        .filter_map(Value::as_object)
        .filter(|key| key.get("kty").and_then(Value::as_str) != Some("oct"))
        .map(|key| {
            let kept: Map<String, Value> = key
                .iter()
                .filter(|(name, _)| PUBLIC_MEMBERS.contains(&name.as_str()))
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect();
            Value::Object(kept)
        })
        .collect();
    serde_json::to_string_pretty(&serde_json::json!({ "keys": public })).map_err(|e| {
        Error::new(
            ErrorKind::Malformed,
            format!("cannot serialise the JWKS: {e}"),
        )
    })
}
