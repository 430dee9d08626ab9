//! Registered claims (RFC 7519 §4.1, RFC 9068 §2.2) and the scan of a
//! payload that validation works from.
//!
//! Threat addressed: claim type confusion. A validator that reads `exp` as
//! "absent" when it is a string (`"exp":"never"`) or `null` lets a token
//! never expire. Here a registered claim of the wrong type is an
//! `invalid_claim` error, never treated as absent. Time claims are JSON
//! numbers (fractions allowed, RFC 7519 §2 NumericDate).

use crate::json::{NoDuplicates, SeenNames, Str};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;

/// Seconds since the Unix epoch, as in a JWT time claim (may be fractional).
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NumericDate(pub f64);

impl NumericDate {
    /// Whole seconds, rounded down (saturating at the `i64` range).
    pub fn as_secs(self) -> i64 {
        // `as` saturates for floats; JSON cannot hold NaN.
        self.0.floor() as i64
    }
}

/// The `aud` claim: one audience or several.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// `"aud": "api"`
    One(String),
    /// `"aud": ["api", "other"]`
    Many(Vec<String>),
}

impl Audience {
    /// Iterates over the audiences.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let (one, many) = match self {
            Audience::One(a) => (Some(a.as_str()), &[][..]),
            Audience::Many(v) => (None, v.as_slice()),
        };
        one.into_iter().chain(many.iter().map(String::as_str))
    }

    /// Whether `aud` is one of the audiences.
    pub fn contains(&self, aud: &str) -> bool {
        self.iter().any(|a| a == aud)
    }
}

/// The registered claims of RFC 7519 and the client claims of RFC 9068.
///
/// Use it as the claims type when nothing else is needed, or flatten it
/// into your own type:
///
/// ```
/// use keyward_core::RegisteredClaims;
/// #[derive(serde::Deserialize)]
/// struct MyClaims {
///     #[serde(flatten)]
///     registered: RegisteredClaims,
///     email: Option<String>,
/// }
/// let c: MyClaims = serde_json::from_str(r#"{"sub":"u1","exp":2000000000,"email":"a@b.c"}"#).unwrap();
/// assert_eq!(c.registered.sub.as_deref(), Some("u1"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RegisteredClaims {
    /// Issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Audience(s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    /// Expiration time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<NumericDate>,
    /// Not before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<NumericDate>,
    /// Issued at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<NumericDate>,
    /// JWT id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Client the token was issued to (RFC 9068).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Authorised party (OIDC Core).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
}

/// A registered claim as found in the payload, before validation.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) enum Found<'a> {
    #[default]
    Absent,
    Str(Cow<'a, str>),
    Number(f64),
    StrList(Vec<Cow<'a, str>>),
    /// Present with another type (including `null`).
    Other,
}

impl Found<'_> {
    pub(crate) fn is_absent(&self) -> bool {
        matches!(self, Found::Absent)
    }
}

/// The payload members validation needs, found in one pass that also
/// rejects duplicate member names at every depth.
#[derive(Debug)]
pub(crate) struct Scanned<'a> {
    pub(crate) iss: Found<'a>,
    pub(crate) sub: Found<'a>,
    pub(crate) aud: Found<'a>,
    pub(crate) exp: Found<'a>,
    pub(crate) nbf: Found<'a>,
    pub(crate) iat: Found<'a>,
    pub(crate) azp: Found<'a>,
    pub(crate) client_id: Found<'a>,
    /// Whether the payload has a non-null `cnf` (confirmation, RFC 7800)
    /// member: the token is bound to a key (RFC 9449 DPoP `jkt`, RFC 8705
    /// `x5t#S256`) and is not a bearer token.
    pub(crate) cnf: bool,
    /// Top-level member names whose value is not `null`.
    pub(crate) present: SeenNames<'a>,
    /// Top-level member names whose value is `null` (rare; kept apart so
    /// that each name is recorded once).
    pub(crate) null: SeenNames<'a>,
}

pub(crate) struct ScanSeed {
    pub(crate) max_members: usize,
}

impl<'de> DeserializeSeed<'de> for ScanSeed {
    type Value = Scanned<'de>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ScanSeed {
    type Value = Scanned<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let max_members = self.max_members;
        let nested = NoDuplicates { max_members };
        let mut scan = Scanned {
            iss: Found::Absent,
            sub: Found::Absent,
            aud: Found::Absent,
            exp: Found::Absent,
            nbf: Found::Absent,
            iat: Found::Absent,
            azp: Found::Absent,
            client_id: Found::Absent,
            cnf: false,
            present: SeenNames::new(max_members),
            null: SeenNames::new(max_members),
        };
        while let Some(Str(name)) = map.next_key::<Str<'de>>()? {
            if scan.present.len_total() + scan.null.len_total() >= max_members {
                return Err(crate::json::own_error(format_args!(
                    "an object has more than {max_members} members"
                )));
            }
            let slot = match &*name {
                "iss" => Some(&mut scan.iss),
                "sub" => Some(&mut scan.sub),
                "aud" => Some(&mut scan.aud),
                "exp" => Some(&mut scan.exp),
                "nbf" => Some(&mut scan.nbf),
                "iat" => Some(&mut scan.iat),
                "azp" => Some(&mut scan.azp),
                "client_id" => Some(&mut scan.client_id),
                _ => None,
            };
            let not_null = match slot {
                Some(slot) => {
                    *slot = map.next_value_seed(FoundSeed(nested))?;
                    true // a registered claim that is null is Found::Other
                }
                None => map.next_value_seed(NullOrOther(nested))?,
            };
            if not_null && name == "cnf" {
                scan.cnf = true;
            }
            if not_null {
                if scan.null.contains(&name) {
                    return Err(duplicate(&name));
                }
                scan.present.insert::<A::Error>(name)?;
            } else {
                if scan.present.contains(&name) {
                    return Err(duplicate(&name));
                }
                scan.null.insert::<A::Error>(name)?;
            }
        }
        Ok(scan)
    }
}

fn duplicate<E: serde::de::Error>(name: &str) -> E {
    crate::json::own_error(format_args!(
        "duplicate member name {}",
        crate::error::Error::quote(name)
    ))
}

/// Any value; answers whether it was non-null.
struct NullOrOther(NoDuplicates);

impl<'de> DeserializeSeed<'de> for NullOrOther {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NullOrOther {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(true)
    }
    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(true)
    }
    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(true)
    }
    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(true)
    }
    fn visit_str<E>(self, _: &str) -> Result<bool, E> {
        Ok(true)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<bool, A::Error> {
        self.0.visit_seq(seq).map(|()| true)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<bool, A::Error> {
        self.0.visit_map(map).map(|()| true)
    }
}

/// A registered claim's value, classified by type.
#[derive(Clone, Copy)]
struct FoundSeed(NoDuplicates);

impl<'de> DeserializeSeed<'de> for FoundSeed {
    type Value = Found<'de>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FoundSeed {
    type Value = Found<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Found::Other)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Found::Other)
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Found::Number(v as f64))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Found::Number(v as f64))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Found::Number(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Found::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Found::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut strings = Vec::new();
        let mut all_strings = true;
        while let Some(item) = seq.next_element_seed(self)? {
            match item {
                Found::Str(s) if all_strings => strings.push(s),
                _ => all_strings = false,
            }
        }
        Ok(if all_strings {
            Found::StrList(strings)
        } else {
            Found::Other
        })
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0.visit_map(map).map(|()| Found::Other)
    }
}

/// Scans a payload (JSON text); no object in it may have more than
/// `max_members` members. Errors are sanitised `serde_json` errors.
pub(crate) fn scan(payload: &str, max_members: usize) -> Result<Scanned<'_>, serde_json::Error> {
    crate::json::parse_with(payload, ScanSeed { max_members })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(payload: &str) -> Result<Scanned<'_>, serde_json::Error> {
        super::scan(payload, crate::json::DEFAULT_MAX_OBJECT_MEMBERS)
    }

    #[test]
    fn finds_registered_claims_by_type() {
        let s = scan(
            r#"{"iss":"i","aud":["a","b"],"exp":1.5,"nbf":null,"iat":"x","x":{"y":1},"n":null}"#,
        )
        .unwrap();
        assert_eq!(s.iss, Found::Str("i".into()));
        assert_eq!(s.aud, Found::StrList(vec!["a".into(), "b".into()]));
        assert_eq!(s.exp, Found::Number(1.5));
        assert_eq!(s.nbf, Found::Other);
        assert_eq!(s.iat, Found::Str("x".into()));
        assert!(s.sub.is_absent());
        for name in ["iss", "aud", "exp", "nbf", "iat", "x"] {
            assert!(s.present.contains(name), "{name}");
        }
        assert!(s.null.contains("n") && !s.present.contains("n") && !s.cnf);
        assert!(scan(r#"{"cnf":{"jkt":"x"}}"#).unwrap().cnf);
        assert!(!scan(r#"{"cnf":null}"#).unwrap().cnf);
    }

    #[test]
    fn mixed_audience_array_is_other() {
        assert_eq!(scan(r#"{"aud":["a",1]}"#).unwrap().aud, Found::Other);
        assert_eq!(scan(r#"{"aud":[]}"#).unwrap().aud, Found::StrList(vec![]));
    }

    #[test]
    fn duplicates_anywhere_reject() {
        assert!(scan(r#"{"exp":1,"exp":2}"#).is_err());
        assert!(scan(r#"{"x":null,"x":null}"#).is_err());
        assert!(scan(r#"{"x":1,"x":null}"#).is_err());
        assert!(scan(r#"{"x":null,"x":1}"#).is_err());
        assert!(scan(r#"{"exp":null,"exp":1}"#).is_err());
        assert!(scan(r#"{"aud":[{"a":1,"a":2}]}"#).is_err());
        assert!(scan(r#"{"orgs":[{"id":1,"id":2}]}"#).is_err());
    }

    #[test]
    fn payload_must_be_an_object() {
        for bad in ["[]", "1", "\"x\"", "null", "{", "{} {}"] {
            assert!(scan(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn audience_helpers() {
        let one = Audience::One("a".into());
        assert!(one.contains("a") && !one.contains("b"));
        let many = Audience::Many(vec!["a".into(), "b".into()]);
        assert_eq!(many.iter().collect::<Vec<_>>(), ["a", "b"]);
    }
}
