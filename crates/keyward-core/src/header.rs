//! The JOSE header of a compact JWS (RFC 7515 §4).
//!
//! Threats addressed:
//! - Key injection: `jwk`, `jku`, `x5u` and `x5c` let a token name or carry
//!   its own key. keyward never reads them: they are skipped like any other
//!   unknown member, so they can neither select nor supply a key, and nothing
//!   is ever fetched from them.
//! - Ignored critical semantics: a `crit` extension changes how a token must
//!   be processed; a verifier that does not implement it must reject
//!   (RFC 7515 §4.1.11). keyward implements none, so any `crit` entry rejects,
//!   except `b64` with the value `true` (which changes nothing, RFC 7797).
//!   `b64: false` (unencoded payload) is refused outright.
//!
//! Why not `jose-jws`'s header type: verification needs one borrowing pass
//! that rejects duplicate members, never materialises key-carrying members,
//! and maps each failure to a stable error kind (`unsupported_algorithm` for
//! an unknown `alg`, not a generic parse error). That is the visitor below.

use crate::algorithm::Algorithm;
use crate::error::{Error, ErrorKind};
use crate::json::{self, own_error, NoDuplicates, SeenNames, Str};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// The decoded, checked header of a token.
///
/// Only the members keyward acts on are kept as fields; the whole header is
/// available as JSON through [`Header::json`].
#[derive(Clone, PartialEq, Eq)]
pub struct Header {
    alg: Algorithm,
    kid: Option<Member>,
    typ: Option<Member>,
    cty: Option<Member>,
    json: String,
}

/// A string member: a span of the header JSON when it has no escapes (no
/// allocation), else its unescaped value.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Member {
    Span(usize, usize),
    Owned(Box<str>),
}

impl Member {
    fn new(text: &str, value: Str<'_>) -> Member {
        match value.0 {
            std::borrow::Cow::Borrowed(borrowed) => {
                // `borrowed` points into `text`: turn it into offsets.
                let start = (borrowed.as_ptr() as usize).wrapping_sub(text.as_ptr() as usize);
                let end = start.wrapping_add(borrowed.len());
                match text.get(start..end) {
                    Some(slice) if std::ptr::eq(slice, borrowed) => Member::Span(start, end),
                    _ => Member::Owned(borrowed.into()),
                }
            }
            std::borrow::Cow::Owned(owned) => Member::Owned(owned.into_boxed_str()),
        }
    }

    fn get<'h>(&'h self, text: &'h str) -> Option<&'h str> {
        match self {
            Member::Span(start, end) => text.get(*start..*end),
            Member::Owned(owned) => Some(owned),
        }
    }
}

impl Header {
    /// The signature algorithm (`alg`).
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The key id (`kid`), if present.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_ref().and_then(|m| m.get(&self.json))
    }

    /// The media type of the token (`typ`), if present.
    pub fn typ(&self) -> Option<&str> {
        self.typ.as_ref().and_then(|m| m.get(&self.json))
    }

    /// The content type of the payload (`cty`), if present.
    pub fn cty(&self) -> Option<&str> {
        self.cty.as_ref().and_then(|m| m.get(&self.json))
    }

    /// The header exactly as it was signed (decoded JSON text).
    pub fn json(&self) -> &str {
        &self.json
    }

    /// Parses and checks a decoded header; no object in it may have more
    /// than `max_members` members.
    pub(crate) fn parse(json_text: String, max_members: usize) -> Result<Header, Error> {
        let raw = json::parse_with(&json_text, RawHeaderSeed { max_members }).map_err(|e| {
            Error::malformed(json::sanitize(&e, "header", "it must be a JSON object"))
        })?;
        let alg_text = raw
            .alg
            .ok_or_else(|| Error::malformed("the header has no \"alg\" member"))?;
        let alg = Algorithm::parse(&alg_text.0)?;
        check_critical(raw.crit.as_deref(), raw.b64)?;
        let kid = raw.kid.map(|s| Member::new(&json_text, s));
        let typ = raw.typ.map(|s| Member::new(&json_text, s));
        let cty = raw.cty.map(|s| Member::new(&json_text, s));
        Ok(Header {
            alg,
            kid,
            typ,
            cty,
            json: json_text,
        })
    }
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Header")
            .field("alg", &self.alg)
            .field("kid", &self.kid())
            .field("typ", &self.typ())
            .field("cty", &self.cty())
            .finish_non_exhaustive()
    }
}

/// Header parameter names registered by RFC 7515 §4.1 and RFC 7516 §4.1
/// (JWS and JWE): a producer must not list them in `crit`.
const REGISTERED_HEADER_NAMES: [&str; 20] = [
    "alg", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "typ", "cty", "crit", "enc",
    "zip", "epk", "apu", "apv", "iv", "tag", "p2s", "p2c",
];

/// The `crit` rules (RFC 7515 §4.1.11, RFC 7797 §6).
///
/// The only extension keyward understands is `b64`, and only with the value
/// `true` (which changes nothing). Everything else a `crit` list can say is
/// refused:
/// - `b64: false` (an unencoded payload) → `unsupported_critical_header`;
/// - an empty list, a name listed twice, a registered header name (which a
///   producer must not list) or `b64` listed without a `b64` member →
///   `malformed`: a producer that writes these is broken or probing for a
///   lenient verifier;
/// - any other name → `unsupported_critical_header`.
fn check_critical(crit: Option<&[Str<'_>]>, b64: Option<bool>) -> Result<(), Error> {
    if b64 == Some(false) {
        return Err(Error::new(
            ErrorKind::UnsupportedCriticalHeader,
            "unencoded payloads (\"b64\": false, RFC 7797) are not supported",
        ));
    }
    let Some(crit) = crit else { return Ok(()) };
    if crit.is_empty() {
        return Err(Error::malformed("the header's \"crit\" list is empty"));
    }
    for (i, name) in crit.iter().enumerate() {
        let name = &*name.0;
        if crit.iter().take(i).any(|earlier| earlier.0 == name) {
            return Err(Error::malformed(format!(
                "the header's \"crit\" list names {} twice",
                Error::quote(name)
            )));
        }
        if REGISTERED_HEADER_NAMES.contains(&name) {
            return Err(Error::malformed(format!(
                "the header's \"crit\" list names {}, a registered header parameter \
                 that must not be listed there",
                Error::quote(name)
            )));
        }
        if name == "b64" {
            if b64.is_none() {
                return Err(Error::malformed(
                    "the header's \"crit\" list names \"b64\" but the header has no \"b64\" member",
                ));
            }
            continue;
        }
        return Err(Error::new(
            ErrorKind::UnsupportedCriticalHeader,
            format!(
                "the header marks extension {} as critical, which keyward does not implement",
                Error::quote(name)
            ),
        ));
    }
    Ok(())
}

#[derive(Default)]
struct RawHeader<'a> {
    alg: Option<Str<'a>>,
    kid: Option<Str<'a>>,
    typ: Option<Str<'a>>,
    cty: Option<Str<'a>>,
    crit: Option<Vec<Str<'a>>>,
    b64: Option<bool>,
}

struct RawHeaderSeed {
    max_members: usize,
}

impl<'de> DeserializeSeed<'de> for RawHeaderSeed {
    type Value = RawHeader<'de>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

fn expect_string<'de, A: MapAccess<'de>>(map: &mut A, name: &str) -> Result<Str<'de>, A::Error> {
    map.next_value::<Str<'de>>()
        .map_err(|_| own_error(format_args!("header member \"{name}\" must be a string")))
}

impl<'de> Visitor<'de> for RawHeaderSeed {
    type Value = RawHeader<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen = SeenNames::new(self.max_members);
        let mut header = RawHeader::default();
        let others = NoDuplicates {
            max_members: self.max_members,
        };
        while let Some(Str(name)) = map.next_key::<Str<'de>>()? {
            match &*name {
                "alg" => header.alg = Some(expect_string(&mut map, "alg")?),
                "kid" => header.kid = Some(expect_string(&mut map, "kid")?),
                "typ" => header.typ = Some(expect_string(&mut map, "typ")?),
                "cty" => header.cty = Some(expect_string(&mut map, "cty")?),
                "crit" => {
                    header.crit = Some(map.next_value_seed(StringList).map_err(|_| {
                        own_error::<A::Error>("header member \"crit\" must be an array of strings")
                    })?)
                }
                "b64" => {
                    header.b64 = Some(map.next_value::<bool>().map_err(|_| {
                        own_error::<A::Error>("header member \"b64\" must be a boolean")
                    })?)
                }
                // Everything else, including jwk/jku/x5u/x5c, is only checked
                // for well-formedness and otherwise ignored.
                _ => map.next_value_seed(others)?,
            }
            seen.insert(name)?;
        }
        Ok(header)
    }
}

/// An array of strings (the `crit` member).
struct StringList;

impl<'de> DeserializeSeed<'de> for StringList {
    type Value = Vec<Str<'de>>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for StringList {
    type Value = Vec<Str<'de>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of strings")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(item) = seq.next_element::<Str<'de>>()? {
            out.push(item);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Header, Error> {
        Header::parse(json.to_owned(), json::DEFAULT_MAX_OBJECT_MEMBERS)
    }

    #[test]
    fn minimal_header() {
        let h = parse(r#"{"alg":"ES256","kid":"k1","typ":"at+jwt"}"#).unwrap();
        assert_eq!(h.alg(), Algorithm::ES256);
        assert_eq!(h.kid(), Some("k1"));
        assert_eq!(h.typ(), Some("at+jwt"));
    }

    #[test]
    fn missing_or_wrongly_typed_members_are_malformed() {
        for bad in [
            r#"{}"#,
            r#"{"alg":256}"#,
            r#"{"alg":"RS256","kid":7}"#,
            r#"{"alg":"RS256","typ":null}"#,
            r#"{"alg":"RS256","crit":"b64"}"#,
            r#"{"alg":"RS256","crit":[]}"#,
            r#"{"alg":"RS256","b64":"false"}"#,
            r#"["alg","RS256"]"#,
            r#""RS256""#,
        ] {
            assert_eq!(
                parse(bad).unwrap_err().kind(),
                ErrorKind::Malformed,
                "{bad}"
            );
        }
    }

    #[test]
    fn duplicate_members_reject() {
        let err = parse(r#"{"alg":"RS256","alg":"HS256"}"#).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Malformed);
        assert!(err.message().contains("duplicate"), "{err}");
        assert!(parse(r#"{"alg":"RS256","x":1,"x":1}"#).is_err());
    }

    #[test]
    fn escaped_and_plain_members_read_back() {
        let h = parse(r#"{"alg":"ES256","kid":"k\u0031","typ":"at+jwt","cty":"JWT"}"#).unwrap();
        assert_eq!(
            (h.kid(), h.typ(), h.cty()),
            (Some("k1"), Some("at+jwt"), Some("JWT"))
        );
        let clone = h.clone();
        assert_eq!(clone.kid(), Some("k1"));
        assert_eq!(
            format!("{h:?}"),
            r#"Header { alg: ES256, kid: Some("k1"), typ: Some("at+jwt"), cty: Some("JWT"), .. }"#
        );
    }

    #[test]
    fn none_is_unsupported() {
        let err = parse(r#"{"alg":"none"}"#).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnsupportedAlgorithm);
    }

    #[test]
    fn crit_rules() {
        let err = parse(r#"{"alg":"RS256","crit":["exp"],"exp":1}"#).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnsupportedCriticalHeader);
        let err = parse(r#"{"alg":"RS256","crit":["b64"],"b64":false}"#).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnsupportedCriticalHeader);
        let err = parse(r#"{"alg":"RS256","b64":false}"#).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnsupportedCriticalHeader);
        assert!(parse(r#"{"alg":"RS256","crit":["b64"],"b64":true}"#).is_ok());
    }

    #[test]
    fn crit_edge_cases_reject() {
        for (bad, kind) in [
            (r#"{"alg":"RS256","crit":[]}"#, ErrorKind::Malformed),
            (r#"{"alg":"RS256","crit":["b64"]}"#, ErrorKind::Malformed),
            (
                r#"{"alg":"RS256","crit":["b64","b64"],"b64":true}"#,
                ErrorKind::Malformed,
            ),
            (r#"{"alg":"RS256","crit":["alg"]}"#, ErrorKind::Malformed),
            (
                r#"{"alg":"RS256","crit":["kid"],"kid":"k"}"#,
                ErrorKind::Malformed,
            ),
            (
                r#"{"alg":"RS256","crit":["x5t#S256"]}"#,
                ErrorKind::Malformed,
            ),
            (r#"{"alg":"RS256","crit":["crit"]}"#, ErrorKind::Malformed),
            (
                r#"{"alg":"RS256","crit":["b64","exp"],"b64":true,"exp":1}"#,
                ErrorKind::UnsupportedCriticalHeader,
            ),
            (
                r#"{"alg":"RS256","crit":["http://x/y"],"http://x/y":1}"#,
                ErrorKind::UnsupportedCriticalHeader,
            ),
        ] {
            assert_eq!(parse(bad).unwrap_err().kind(), kind, "{bad}");
        }
    }

    #[test]
    fn member_cap_applies_to_the_header() {
        let members: Vec<String> = (0..600).map(|i| format!("\"m{i}\":0")).collect();
        let bomb = format!("{{\"alg\":\"ES256\",{}}}", members.join(","));
        let err = parse(&bomb).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Malformed);
        assert!(err.message().contains("more than 512 members"), "{err}");
        let nested = format!("{{\"alg\":\"ES256\",\"x\":{{{}}}}}", members.join(","));
        assert!(parse(&nested).is_err());
    }

    #[test]
    fn key_carrying_members_are_ignored() {
        let h = parse(
            r#"{"alg":"RS256","jwk":{"kty":"oct","k":"AAAA"},"jku":"https://evil","x5u":"https://evil","x5c":["MII"]}"#,
        )
        .unwrap();
        assert_eq!(h.kid(), None);
        assert!(!format!("{h:?}").contains("evil"));
    }
}
