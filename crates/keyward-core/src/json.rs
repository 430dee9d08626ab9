//! Strict JSON for headers, payloads and JWKs.
//!
//! Threat addressed: parser differentials. With duplicate member names
//! (`{"sub":"alice","sub":"admin"}`) two parsers can disagree on what a
//! signed document says; RFC 7519 §4 allows rejecting them and keyward does,
//! at every depth. `serde_json` keeps the last duplicate silently, so this
//! module walks every object with [`NoDuplicates`] and remembers the member
//! names it has seen (borrowed from the input when they have no escapes),
//! in linear time ([`SeenNames`]), with a cap on the members of one object.
//!
//! Depth is bounded by `serde_json`'s recursion limit (128), which applies to
//! these visitors too: deeply nested input is an error, never a stack
//! overflow.

use crate::error::Error;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

/// Marker at the start of the messages this module produces itself, so that
/// [`sanitize`] can tell them from serde's (which may quote input values).
const OWN_MESSAGE: &str = "keyward: ";

/// Builds a custom deserialisation error whose text survives [`sanitize`].
pub(crate) fn own_error<E: de::Error>(message: impl fmt::Display) -> E {
    E::custom(format_args!("{OWN_MESSAGE}{message}"))
}

/// Turns a `serde_json` error into a `malformed` error about `what` without
/// echoing input: syntax errors carry only a position; data errors from
/// serde (which quote values) are replaced by `data_message`.
pub(crate) fn sanitize(err: &serde_json::Error, what: &str, data_message: &str) -> String {
    let text = err.to_string();
    if let Some(own) = text.strip_prefix(OWN_MESSAGE) {
        return format!("the {what} is invalid: {own}");
    }
    match err.classify() {
        serde_json::error::Category::Data => format!("the {what} is invalid: {data_message}"),
        _ => format!("the {what} is not valid JSON: {text}"),
    }
}

/// A JSON string borrowed from the input when it has no escape sequences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Str<'a>(pub(crate) Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(V)
    }
}

/// How many member names of one object are compared linearly, without
/// allocating; past that the names move into a hash set.
pub(crate) const INLINE_NAMES: usize = 16;

/// Default cap on the members of one JSON object (header, payload, nested
/// claim objects, JWKs): see [`crate::Validation::max_object_members`].
pub const DEFAULT_MAX_OBJECT_MEMBERS: usize = 512;

/// Remembers the member names of one object and rejects a repeat, in
/// linear time whatever the input.
///
/// Threat addressed: hash-free duplicate detection is quadratic: a 32 KiB
/// header of ~3,500 two-character members costs ~6 M string comparisons
/// before any key is looked up, which lets anonymous clients burn the CPU.
/// Here the first [`INLINE_NAMES`] names borrowed from the input are kept in
/// a fixed array (typical objects: no allocation, at most 16 comparisons per
/// name); past that, or for an escaped name, every name moves into a
/// `HashSet` with std's randomly keyed SipHash (no attacker-chosen
/// collisions), so each insert costs O(1) expected. An object with more than
/// `max_members` members is an error, so the set's size is bounded too.
pub(crate) struct SeenNames<'a> {
    names: Names<'a>,
    count: usize,
    max_members: usize,
}

// The inline variant is the point: an ordinary object's names live on the
// stack of the one visitor checking it, with no allocation; boxing it would
// allocate for every object.
#[allow(clippy::large_enum_variant)]
enum Names<'a> {
    Inline {
        names: [&'a str; INLINE_NAMES],
        len: usize,
    },
    Hashed(HashSet<Cow<'a, str>>),
}

impl fmt::Debug for SeenNames<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeenNames")
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl<'a> SeenNames<'a> {
    /// An empty set for one object of at most `max_members` members.
    pub(crate) fn new(max_members: usize) -> Self {
        SeenNames {
            names: Names::Inline {
                names: [""; INLINE_NAMES],
                len: 0,
            },
            count: 0,
            max_members,
        }
    }

    /// Records `name`; a duplicate, or one member too many, is a
    /// deserialisation error.
    pub(crate) fn insert<E: de::Error>(&mut self, name: Cow<'a, str>) -> Result<(), E> {
        if self.count >= self.max_members {
            return Err(own_error(format_args!(
                "an object has more than {} members",
                self.max_members
            )));
        }
        if self.contains(&name) {
            return Err(own_error(format_args!(
                "duplicate member name {}",
                Error::quote(&name)
            )));
        }
        self.count += 1;
        match (&mut self.names, name) {
            (Names::Inline { names, len }, Cow::Borrowed(borrowed)) if *len < INLINE_NAMES => {
                if let Some(slot) = names.get_mut(*len) {
                    *slot = borrowed;
                    *len += 1;
                }
            }
            (Names::Hashed(set), name) => {
                set.insert(name);
            }
            (Names::Inline { names, len }, name) => {
                let mut set: HashSet<Cow<'a, str>> =
                    names.iter().take(*len).map(|n| Cow::Borrowed(*n)).collect();
                set.insert(name);
                self.names = Names::Hashed(set);
            }
        }
        Ok(())
    }

    /// Whether `name` was seen.
    pub(crate) fn contains(&self, name: &str) -> bool {
        #[cfg(any(test, fuzzing))]
        work::count(match &self.names {
            Names::Inline { len, .. } => *len as u64,
            Names::Hashed(_) => 1,
        });
        match &self.names {
            Names::Inline { names, len } => names.iter().take(*len).any(|seen| *seen == name),
            Names::Hashed(set) => set.contains(name),
        }
    }

    /// How many names were recorded.
    pub(crate) fn len_total(&self) -> usize {
        self.count
    }
}

/// Work counting for the tests and the fuzz targets: name comparisons and
/// hash lookups made by [`SeenNames::contains`] on this thread. Each call
/// costs at most [`INLINE_NAMES`], and there is one call per member, so the
/// work is linear in the input whatever its shape.
#[cfg(any(test, fuzzing))]
pub(crate) mod work {
    use std::cell::Cell;
    thread_local! {
        static DONE: Cell<u64> = const { Cell::new(0) };
    }
    pub(crate) fn count(n: u64) {
        DONE.with(|done| done.set(done.get() + n));
    }
    /// The work `f` does.
    pub(crate) fn of<T>(f: impl FnOnce() -> T) -> (T, u64) {
        let before = DONE.with(Cell::get);
        let out = f();
        (out, DONE.with(Cell::get) - before)
    }
}

/// A seed that accepts any JSON value and rejects duplicate member names in
/// every object it contains, and objects of more than `max_members`
/// members.
#[derive(Clone, Copy)]
pub(crate) struct NoDuplicates {
    pub(crate) max_members: usize,
}

impl<'de> DeserializeSeed<'de> for NoDuplicates {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NoDuplicates {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = SeenNames::new(self.max_members);
        while let Some(Str(name)) = map.next_key::<Str<'de>>()? {
            seen.insert(name)?;
            map.next_value_seed(self)?;
        }
        Ok(())
    }
}

/// Runs `seed` over the whole of `input`, requiring nothing but white space
/// after the value.
pub(crate) fn parse_with<'de, S: DeserializeSeed<'de>>(
    input: &'de str,
    seed: S,
) -> Result<S::Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(input);
    let value = seed.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// Checks that `input` is one JSON value with no duplicate member names
/// and no object of more than `max_members` members.
pub(crate) fn check_no_duplicates(
    input: &str,
    max_members: usize,
) -> Result<(), serde_json::Error> {
    parse_with(input, NoDuplicates { max_members })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_no_duplicates(input: &str) -> Result<(), serde_json::Error> {
        super::check_no_duplicates(input, DEFAULT_MAX_OBJECT_MEMBERS)
    }

    #[test]
    fn member_cap_is_exact() {
        let doc = |n: usize| {
            let names: Vec<String> = (0..n).map(|i| format!("\"k{i}\":0")).collect();
            format!("{{\"outer\":{{{}}}}}", names.join(","))
        };
        assert!(super::check_no_duplicates(&doc(40), 40).is_ok());
        let err = super::check_no_duplicates(&doc(41), 40).unwrap_err();
        assert!(err.to_string().contains("more than 40 members"), "{err}");
        // at the default cap, and one past it
        assert!(check_no_duplicates(&doc(DEFAULT_MAX_OBJECT_MEMBERS)).is_ok());
        assert!(check_no_duplicates(&doc(DEFAULT_MAX_OBJECT_MEMBERS + 1)).is_err());
    }

    #[test]
    fn many_names_are_hashed_and_still_compared_exactly() {
        let mut seen = SeenNames::new(10_000);
        let names: Vec<String> = (0..5_000).map(|i| format!("n{i}")).collect();
        for name in &names {
            seen.insert::<serde_json::Error>(Cow::Borrowed(name))
                .unwrap();
        }
        assert_eq!(seen.len_total(), 5_000);
        assert!(matches!(seen.names, Names::Hashed(_)));
        assert!(seen.contains("n0") && seen.contains("n4999") && !seen.contains("n5000"));
        assert!(seen
            .insert::<serde_json::Error>(Cow::Owned("n15".into()))
            .is_err());
        assert!(seen
            .insert::<serde_json::Error>(Cow::Borrowed("n4999"))
            .is_err());
    }

    /// Hardening issue, item 1: the member bomb. The old linear scan made
    /// ~n²/2 comparisons (6.1 M for 3,500 members); now the work per member
    /// is bounded, in the header, the payload and a JWK alike — with the cap
    /// raised far past the bomb's size, and at the default cap (where the
    /// bomb is refused after 513 members).
    #[test]
    fn member_bombs_cost_linear_work_in_header_payload_and_jwk() {
        let members = |n: usize| -> String {
            (0..n)
                .map(|i| format!("\"{i:x}\":0"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let bomb = members(3_500);
        let header = format!(r#"{{"alg":"ES256",{bomb}}}"#);
        let payload = format!(r#"{{"sub":"u",{bomb}}}"#);
        let jwk = format!(r#"{{"kty":"EC","crv":"P-256","x":"AA","y":"AA",{bomb}}}"#);
        let normal_header = r#"{"alg":"ES256","typ":"at+jwt","kid":"key-1"}"#;
        let normal_payload =
            r#"{"iss":"https://i","sub":"u","aud":"a","exp":1,"iat":1,"scope":"a b"}"#;
        let (_, normal) = work::of(|| {
            crate::header::Header::parse(normal_header.to_owned(), DEFAULT_MAX_OBJECT_MEMBERS)
        });
        assert!(normal > 0 && normal < 16, "{normal}");
        for cap in [10_000, DEFAULT_MAX_OBJECT_MEMBERS] {
            let (_, h) = work::of(|| crate::header::Header::parse(header.clone(), cap));
            let (_, p) = work::of(|| crate::claims::scan(&payload, cap).map(|_| ()));
            let (_, p_normal) = work::of(|| crate::claims::scan(normal_payload, cap).map(|_| ()));
            assert!(p_normal > 0);
            let limit = 3 * 3_500 + (INLINE_NAMES * INLINE_NAMES) as u64;
            assert!(h <= limit, "header bomb, cap {cap}: {h} comparisons");
            assert!(p <= limit, "payload bomb, cap {cap}: {p} comparisons");
        }
        // JWKs use the default cap
        let (result, j) = work::of(|| crate::jwk::Jwk::parse(&jwk));
        assert!(result.is_err());
        assert!(
            j <= 3 * 513 + (INLINE_NAMES * INLINE_NAMES) as u64,
            "JWK bomb: {j}"
        );
        // and with the cap raised, the hashed path is what keeps it linear
        let (result, j) = work::of(|| super::check_no_duplicates(&jwk, 10_000));
        assert!(result.is_ok());
        assert!(
            j <= 3 * 3_505 + (INLINE_NAMES * INLINE_NAMES) as u64,
            "JWK bomb: {j}"
        );
    }

    #[test]
    fn duplicates_rejected_at_every_depth() {
        assert!(check_no_duplicates(r#"{"a":1,"b":{"c":[{"d":1,"e":2}]}}"#).is_ok());
        assert!(check_no_duplicates(r#"{"a":1,"a":2}"#).is_err());
        assert!(check_no_duplicates(r#"{"a":{"b":1,"b":1}}"#).is_err());
        assert!(check_no_duplicates(r#"[{"x":1},{"y":[{"z":0,"z":0}]}]"#).is_err());
        // an escaped spelling of the same name is the same name
        assert!(check_no_duplicates(r#"{"sub":1,"s\u0075b":2}"#).is_err());
    }

    #[test]
    fn duplicates_found_beyond_the_inline_names() {
        let names: Vec<String> = (0..20).map(|i| format!("\"k{i}\":{i}")).collect();
        let distinct = format!("{{{}}}", names.join(","));
        assert!(check_no_duplicates(&distinct).is_ok());
        // the 20th repeats the 18th (both spilled) and the 2nd (inline)
        for dup in ["k17", "k1"] {
            let doc = format!("{{{},\"{dup}\":0}}", names.join(","));
            assert!(check_no_duplicates(&doc).is_err(), "{dup}");
        }
        // an escaped spelling (spilled, owned) of an inline name
        let doc = format!("{{{},\"\\u006b3\":0}}", names.join(","));
        assert!(check_no_duplicates(&doc).is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        let err = check_no_duplicates(&deep).unwrap_err();
        assert!(err.to_string().contains("recursion limit"), "{err}");
    }

    #[test]
    fn trailing_data_rejected() {
        assert!(check_no_duplicates("{} x").is_err());
        assert!(check_no_duplicates("{}  \n").is_ok());
    }

    #[test]
    fn sanitize_hides_values_but_keeps_own_messages() {
        let err = serde_json::from_str::<u8>(r#""secret-value""#).unwrap_err();
        let msg = sanitize(&err, "payload", "wrong type");
        assert!(!msg.contains("secret-value"), "{msg}");
        let err = check_no_duplicates(r#"{"k":1,"k":2}"#).unwrap_err();
        assert!(sanitize(&err, "payload", "x").contains("duplicate member name \"k\""));
    }
}
