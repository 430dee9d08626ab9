//! The claims model.

pub use keyward_core::NumericDate;
use keyward_core::RegisteredClaims;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::fmt;

/// OAuth scopes: the space-delimited `scope` claim (RFC 9068 §2.2.3), or a
/// JSON array of strings as some providers send (`scp`-style).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct Scopes(BTreeSet<String>);

impl Scopes {
    /// Adds the scopes of another claim.
    pub(crate) fn extend(&mut self, other: Scopes) {
        self.0.extend(other.0);
    }

    /// Heap bytes held, approximately (for cache weighing).
    pub(crate) fn retained_bytes(&self) -> usize {
        // a B-tree node holds up to 11 elements; count a share of one per
        // element on top of the strings themselves
        self.0
            .iter()
            .map(|s| std::mem::size_of::<String>() + 8 + crate::session::heap_bytes(s))
            .sum()
    }

    /// Whether `scope` is granted.
    pub fn contains(&self, scope: &str) -> bool {
        self.0.contains(scope)
    }

    /// The scopes, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// Number of scopes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Scopes> for String {
    fn from(s: Scopes) -> String {
        s.0.into_iter().collect::<Vec<_>>().join(" ")
    }
}

impl<S: Into<String>> FromIterator<S> for Scopes {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        Scopes(iter.into_iter().map(Into::into).collect())
    }
}

impl<'de> Deserialize<'de> for Scopes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scopes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a space-delimited string or an array of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scopes, E> {
                Ok(v.split(' ').filter(|s| !s.is_empty()).collect())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scopes, A::Error> {
                let mut out = BTreeSet::new();
                while let Some(s) = seq.next_element::<String>()? {
                    // an empty element is no scope (as in the string form):
                    // `has_scope("")` from a blank setting must not pass
                    if !s.is_empty() {
                        out.insert(s);
                    }
                }
                Ok(Scopes(out))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// An organisation the subject belongs to, as carried in the token.
///
/// Authorisation compares [`Organization::id`] only: a slug is a display and
/// routing name, often chosen by users, and may look like another
/// organisation's id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organization {
    /// Stable identifier.
    #[serde(alias = "org_id")]
    pub id: String,
    /// URL-friendly name, if the provider sends one.
    #[serde(default)]
    pub slug: Option<String>,
    /// Display name.
    #[serde(default, alias = "display_name")]
    pub name: Option<String>,
    /// The subject's role in it.
    #[serde(default)]
    pub role: Option<String>,
}

/// A project the subject can access, with the organisation it belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    /// Stable identifier.
    #[serde(alias = "project_id")]
    pub id: String,
    /// URL-friendly name.
    #[serde(default)]
    pub slug: Option<String>,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Id of the organisation that owns it.
    #[serde(default, alias = "org_id", alias = "organization")]
    pub org: Option<String>,
}

/// The claims of an access token (RFC 9068) or ID token, typed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// `iss`, `sub`, `aud`, `exp`, `nbf`, `iat`, `jti`, `client_id`, `azp`.
    #[serde(flatten)]
    pub registered: RegisteredClaims,
    /// Granted scopes (the `scope` claim; [`crate::Session::scopes`] also
    /// reads `scp` and any names the [`crate::ClaimMapping`] lists).
    #[serde(default)]
    pub scope: Scopes,
    /// When the user authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<NumericDate>,
    /// Authentication context class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// Authentication methods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    /// Email (OIDC profile; see [`crate::ClaimMapping`] for namespaced ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Whether the email is verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    /// Full name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Given name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    /// Family name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    /// Preferred username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    /// Every other claim, by name.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl AccessTokenClaims {
    /// A claim by name, typed or in `extra` (as JSON).
    pub fn get(&self, name: &str) -> Option<Value> {
        match name {
            "email" => self.email.clone().map(Value::String),
            "name" => self.name.clone().map(Value::String),
            "given_name" => self.given_name.clone().map(Value::String),
            "family_name" => self.family_name.clone().map(Value::String),
            "preferred_username" => self.preferred_username.clone().map(Value::String),
            other => self.extra.get(other).cloned(),
        }
    }
}
