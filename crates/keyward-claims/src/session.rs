//! The session a request handler works with.

use crate::claims::{AccessTokenClaims, NumericDate, Organization, Project, Scopes};
use crate::mapping::ClaimMapping;
use keyward_core::{Error, ErrorKind, RegisteredClaims};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use std::fmt;
use std::sync::{Arc, OnceLock};

/// Who the token speaks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Principal {
    /// A user (the token's `sub` is not its client).
    User,
    /// A client acting for itself (client-credentials tokens: no `sub`, or
    /// `sub` equal to the `client_id`, as RFC 9068 §2.2 prescribes).
    Client,
}

/// A synchronous authorisation question that has a negative answer.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionError {
    /// The subject is not a member of this organisation.
    NotAMember {
        /// The id (or, for [`Session::organization_by_slug`], the slug)
        /// asked for.
        organization: String,
    },
    /// The subject belongs to no organisation.
    NoOrganization,
    /// The subject belongs to several organisations: the request must say
    /// which one.
    OrganizationChoiceRequired {
        /// Slugs (or ids) of the candidates.
        candidates: Vec<String>,
    },
    /// The subject has no access to this project.
    NoSuchProject {
        /// The id (or, for [`Session::project_by_slug`], the slug) asked for.
        project: String,
    },
    /// Two or more organisations (or projects) in the claims share the slug
    /// asked for, so the slug does not say which one is meant. Nothing is
    /// chosen: picking the first would let whoever controls one of them
    /// shadow the other.
    AmbiguousSlug {
        /// The slug asked for.
        slug: String,
    },
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::NotAMember { organization } => {
                write!(
                    f,
                    "not a member of organization {}",
                    Error::quote(organization)
                )
            }
            SessionError::NoOrganization => f.write_str("the user belongs to no organization"),
            SessionError::OrganizationChoiceRequired { candidates } => write!(
                f,
                "the user belongs to {} organizations ({}); the request must choose one",
                candidates.len(),
                candidates.join(", ")
            ),
            SessionError::NoSuchProject { project } => {
                write!(f, "no access to project {}", Error::quote(project))
            }
            SessionError::AmbiguousSlug { slug } => write!(
                f,
                "the slug {} names more than one entry in the claims; use the id",
                Error::quote(slug)
            ),
        }
    }
}

impl std::error::Error for SessionError {}

/// The email and what is known about it.
#[derive(Clone)]
struct Email {
    address: Box<str>,
    /// `email_verified`, from the token or userinfo.
    verified: Option<bool>,
    /// Read from a claim the mapping names explicitly (not the standard
    /// `email`): trusted as configured.
    configured: bool,
}

/// Where [`Session::claims`] comes from.
#[derive(Clone)]
enum ClaimsStore {
    /// Parsed and kept (sessions built with [`Session::from_claims`]).
    Parsed(Arc<AccessTokenClaims>),
    /// Only the verified payload JSON is kept; the claims are parsed again
    /// on first use, per `Session` value. Sessions kept in a cache use this:
    /// a parsed `serde_json::Value` tree costs several times its text.
    Payload(Box<str>),
}

#[derive(Clone)]
struct Data {
    registered: RegisteredClaims,
    email: Option<Email>,
    name: Option<Box<str>>,
    scopes: Scopes,
    organizations: Box<[Organization]>,
    projects: Box<[Project]>,
    principal: Principal,
    accept_unverified_email: bool,
    claims: ClaimsStore,
    user_info_error: Option<Error>,
}

/// An authenticated caller, built from verified claims. Cheap to clone.
///
/// Authorisation questions compare **ids**: [`Session::is_member`] and
/// [`Session::organization`] take an organisation id, [`Session::project`]
/// a project id. Slugs (URL-friendly names, often user-chosen) are looked up
/// with the separate [`Session::organization_by_slug`] and
/// [`Session::project_by_slug`], which refuse a slug two entries share.
///
/// ```
/// use keyward_claims::{AccessTokenClaims, ClaimMapping, Principal, Session, SessionError};
/// let claims: AccessTokenClaims = serde_json::from_str(r#"{
///     "sub": "user-1", "client_id": "web", "scope": "read write",
///     "email": "ada@example.com", "email_verified": true,
///     "orgs": [{"id": "o1", "slug": "acme", "name": "Acme", "role": "admin"},
///              {"id": "o2", "slug": "globex", "name": "Globex", "role": "member"}]
/// }"#).unwrap();
/// let session = Session::from_claims(claims, &ClaimMapping::default()).unwrap();
/// assert_eq!(session.principal(), Principal::User);
/// assert!(session.is_member("o1") && session.has_scope("write"));
/// assert!(!session.is_member("acme"), "membership is by id, never by slug");
/// assert_eq!(session.organization_by_slug("globex").unwrap().role.as_deref(), Some("member"));
/// assert_eq!(session.email(), Some("ada@example.com"));
/// assert!(matches!(session.sole_organization(), Err(SessionError::OrganizationChoiceRequired { .. })));
/// ```
#[derive(Clone)]
pub struct Session {
    data: Arc<Data>,
    /// The claims parsed from [`ClaimsStore::Payload`], once asked for.
    parsed: OnceLock<Arc<AccessTokenClaims>>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("user_id", &self.data.registered.sub)
            .field("principal", &self.data.principal)
            .field("client_id", &self.client_id())
            .field("organizations", &self.data.organizations.len())
            .field("scopes", &self.scopes().len())
            .finish_non_exhaustive()
    }
}

/// The first claim in `names` that is a non-empty string, with its name. A
/// claim present with another type is an error, never "absent".
fn first_string<'n>(
    claims: &AccessTokenClaims,
    names: &'n [String],
) -> Result<Option<(&'n str, String)>, Error> {
    for name in names {
        match claims.get(name) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) if s.trim().is_empty() => continue,
            Some(Value::String(s)) => return Ok(Some((name, s))),
            Some(_) => {
                return Err(Error::new(
                    ErrorKind::InvalidClaim,
                    format!("claim {} must be a string", Error::quote(name)),
                ))
            }
        }
    }
    Ok(None)
}

/// The first claim in `names` that is present, decoded as a list of `T`.
fn first_list<T: DeserializeOwned>(
    claims: &AccessTokenClaims,
    names: &[String],
) -> Result<Vec<T>, Error> {
    for name in names {
        match claims.get(name) {
            None | Some(Value::Null) => continue,
            Some(value) => {
                return serde_json::from_value(value).map_err(|e| {
                    Error::new(
                        ErrorKind::InvalidClaim,
                        format!(
                            "claim {} does not have the expected shape (an array of objects with an \"id\"): {}",
                            Error::quote(name),
                            e.classify_message()
                        ),
                    )
                })
            }
        }
    }
    Ok(Vec::new())
}

/// The scopes of every claim in `names` that is present (`scope` and `scp`
/// by default), each a space-delimited string or an array of strings.
fn all_scopes(claims: &AccessTokenClaims, names: &[String]) -> Result<Scopes, Error> {
    let mut scopes = Scopes::default();
    for name in names {
        if name == "scope" {
            scopes.extend(claims.scope.clone());
            continue;
        }
        match claims.extra.get(name.as_str()) {
            None | Some(Value::Null) => {}
            Some(value) => scopes.extend(Scopes::deserialize(value).map_err(|_| {
                Error::new(
                    ErrorKind::InvalidClaim,
                    format!(
                        "claim {} must be a space-delimited string or an array of strings",
                        Error::quote(name)
                    ),
                )
            })?),
        }
    }
    Ok(scopes)
}

trait ClassifyMessage {
    fn classify_message(&self) -> &'static str;
}

impl ClassifyMessage for serde_json::Error {
    /// serde's messages quote values; say only what kind of problem it is.
    fn classify_message(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Data => "wrong type or missing member",
            _ => "not valid JSON",
        }
    }
}

/// What an allocation of `len` bytes holds, allocator bookkeeping included
/// (glibc: a 16-byte-aligned chunk with an 8-byte header, at least 32 bytes).
pub(crate) fn alloc_bytes(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        (len + 8).div_ceil(16).max(2) * 16
    }
}

/// Heap bytes of one string.
pub(crate) fn heap_bytes(s: &str) -> usize {
    alloc_bytes(s.len())
}

fn opt_bytes(s: &Option<String>) -> usize {
    s.as_deref().map_or(0, heap_bytes)
}

/// The one entry that `matches` among `items`: `Ok(None)` if none,
/// an ambiguity error if several.
fn unique_by_slug<'a, T>(
    items: &'a [T],
    slug: &str,
    slug_of: impl Fn(&T) -> Option<&str>,
) -> Result<Option<&'a T>, SessionError> {
    let mut found = items.iter().filter(|item| slug_of(item) == Some(slug));
    match (found.next(), found.next()) {
        (None, _) => Ok(None),
        (Some(one), None) => Ok(Some(one)),
        (Some(_), Some(_)) => Err(SessionError::AmbiguousSlug {
            slug: slug.to_owned(),
        }),
    }
}

impl Session {
    /// Builds the session from verified claims.
    ///
    /// Fails with `invalid_claim` when a mapped claim has the wrong type
    /// (say, `orgs` that is not an array of objects with an `id`, or `scp`
    /// that is a number).
    pub fn from_claims(
        claims: AccessTokenClaims,
        mapping: &ClaimMapping,
    ) -> Result<Session, Error> {
        // the store is set once the answers are taken from `claims`
        let data = Data::from_claims(&claims, mapping, ClaimsStore::Payload(Box::default()))?;
        Ok(Session::new(Data {
            claims: ClaimsStore::Parsed(Arc::new(claims)),
            ..data
        }))
    }

    /// Builds a compact session from verified claims and the payload JSON
    /// they were decoded from (`VerifiedToken::into_parts`): only the
    /// answers and the JSON text are kept, and [`Session::claims`] parses the
    /// text again when first asked. This is what the verified-token cache
    /// stores.
    ///
    /// `payload_json` must be the text `claims` was decoded from.
    pub fn from_verified_payload(
        claims: AccessTokenClaims,
        payload_json: String,
        mapping: &ClaimMapping,
    ) -> Result<Session, Error> {
        let data = Data::from_claims(
            &claims,
            mapping,
            ClaimsStore::Payload(payload_json.into_boxed_str()),
        )?;
        Ok(Session::new(data))
    }

    fn new(data: Data) -> Session {
        Session {
            data: Arc::new(data),
            parsed: OnceLock::new(),
        }
    }

    /// Fills profile fields the claims lacked from a userinfo response (the
    /// caller has checked that it is about the same subject).
    ///
    /// `email_verified` is userinfo's flag; the same trust rule as for the
    /// token applies: an unverified address is only used when the mapping
    /// accepts unverified email. An email the session already serves is
    /// kept.
    pub fn with_profile(
        mut self,
        email: Option<String>,
        email_verified: Option<bool>,
        name: Option<String>,
    ) -> Session {
        let has_email = self.email().is_some();
        let data = Arc::make_mut(&mut self.data);
        if !has_email {
            if let Some(address) = email.filter(|e| !e.trim().is_empty()) {
                data.email = Some(Email {
                    address: address.into_boxed_str(),
                    verified: email_verified,
                    configured: false,
                });
            }
        }
        if data.name.is_none() {
            data.name = name.filter(|n| !n.trim().is_empty()).map(Into::into);
        }
        self
    }

    /// Records that user info was asked for but could not be obtained, and
    /// the session is built from the claims alone.
    pub fn with_user_info_error(mut self, error: Error) -> Session {
        Arc::make_mut(&mut self.data).user_info_error = Some(error);
        self
    }

    /// The subject (`sub`): the user id, for a user.
    pub fn user_id(&self) -> Option<&str> {
        self.data.registered.sub.as_deref()
    }

    /// The email, from the mapped claims (or user info), if it can be
    /// trusted: from the standard `email` claim only when `email_verified`
    /// is `true` (unless [`ClaimMapping::accept_unverified_email`]); from a
    /// claim the mapping names explicitly, as configured.
    pub fn email(&self) -> Option<&str> {
        let email = self.data.email.as_ref()?;
        let trusted =
            email.configured || email.verified == Some(true) || self.data.accept_unverified_email;
        trusted.then_some(&*email.address)
    }

    /// `email_verified` of the email found in the standard `email` claim (or
    /// in user info, when the email came from there): `None` when not stated,
    /// and for an email from a configured claim (trusted as configured).
    pub fn email_verified(&self) -> Option<bool> {
        self.data.email.as_ref()?.verified
    }

    /// The display name, from the mapped claims (or user info).
    pub fn name(&self) -> Option<&str> {
        self.data.name.as_deref()
    }

    /// Whether this is a user or a client acting for itself.
    pub fn principal(&self) -> Principal {
        self.data.principal
    }

    /// The client the token was issued to (`client_id`, else `azp`).
    pub fn client_id(&self) -> Option<&str> {
        let r = &self.data.registered;
        r.client_id.as_deref().or(r.azp.as_deref())
    }

    /// The granted scopes: `scope` and `scp` together (or the claims the
    /// mapping names).
    pub fn scopes(&self) -> &Scopes {
        &self.data.scopes
    }

    /// Whether `scope` is granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.data.scopes.contains(scope)
    }

    /// When the token expires.
    pub fn expires_at(&self) -> Option<NumericDate> {
        self.data.registered.exp
    }

    /// The registered claims (`iss`, `sub`, `aud`, `exp`, ...).
    pub fn registered_claims(&self) -> &RegisteredClaims {
        &self.data.registered
    }

    /// The organisations of the subject.
    pub fn organizations(&self) -> &[Organization] {
        &self.data.organizations
    }

    /// Whether the subject belongs to the organisation with this **id**.
    /// Slugs never match: see [`Session::organization_by_slug`].
    pub fn is_member(&self, organization_id: &str) -> bool {
        self.data
            .organizations
            .iter()
            .any(|o| o.id == organization_id)
    }

    /// The organisation with this **id**, if the subject is a member.
    pub fn organization(&self, organization_id: &str) -> Result<&Organization, SessionError> {
        self.data
            .organizations
            .iter()
            .find(|o| o.id == organization_id)
            .ok_or_else(|| SessionError::NotAMember {
                organization: organization_id.to_owned(),
            })
    }

    /// The organisation with this slug (for routes such as `/org/{slug}`),
    /// if the subject is a member; [`SessionError::AmbiguousSlug`] when two
    /// organisations in the claims share it. Authorise with the returned
    /// organisation's id.
    pub fn organization_by_slug(&self, slug: &str) -> Result<&Organization, SessionError> {
        unique_by_slug(&self.data.organizations, slug, |o| o.slug.as_deref())?.ok_or_else(|| {
            SessionError::NotAMember {
                organization: slug.to_owned(),
            }
        })
    }

    /// The subject's only organisation; an error that says a choice is
    /// needed when there are several.
    pub fn sole_organization(&self) -> Result<&Organization, SessionError> {
        match &*self.data.organizations {
            [] => Err(SessionError::NoOrganization),
            [only] => Ok(only),
            several => Err(SessionError::OrganizationChoiceRequired {
                candidates: several
                    .iter()
                    .map(|o| o.slug.clone().unwrap_or_else(|| o.id.clone()))
                    .collect(),
            }),
        }
    }

    /// The projects the subject can access.
    pub fn projects(&self) -> &[Project] {
        &self.data.projects
    }

    /// The project with this **id**, if the subject can access it.
    pub fn project(&self, project_id: &str) -> Result<&Project, SessionError> {
        self.data
            .projects
            .iter()
            .find(|p| p.id == project_id)
            .ok_or_else(|| SessionError::NoSuchProject {
                project: project_id.to_owned(),
            })
    }

    /// The project with this slug, if the subject can access it;
    /// [`SessionError::AmbiguousSlug`] when two projects share it.
    pub fn project_by_slug(&self, slug: &str) -> Result<&Project, SessionError> {
        unique_by_slug(&self.data.projects, slug, |p| p.slug.as_deref())?.ok_or_else(|| {
            SessionError::NoSuchProject {
                project: slug.to_owned(),
            }
        })
    }

    /// All claims, typed. A session from the verified-token cache keeps only
    /// the payload text and parses it here on first use (per `Session`
    /// value; clones made afterwards share the result).
    pub fn claims(&self) -> &AccessTokenClaims {
        match &self.data.claims {
            ClaimsStore::Parsed(claims) => claims,
            ClaimsStore::Payload(json) => self.parsed.get_or_init(|| {
                // The same text was decoded into the same type when the
                // token was verified, so this cannot fail; if it ever did,
                // an empty set of claims answers no question wrongly (the
                // authorisation answers above were taken at verification).
                Arc::new(serde_json::from_str(json).unwrap_or_default())
            }),
        }
    }

    /// A custom claim decoded as `T`: `Ok(None)` when absent, an
    /// `invalid_claim` error when it does not fit `T`.
    pub fn claim<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, Error> {
        match self.claims().get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => serde_json::from_value(value).map(Some).map_err(|e| {
                Error::new(
                    ErrorKind::InvalidClaim,
                    format!("claim {}: {}", Error::quote(name), e.classify_message()),
                )
            }),
        }
    }

    /// Whether `other` is this very session object (for example the same
    /// entry of the verified-token cache), not merely equal.
    pub fn same_as(&self, other: &Session) -> bool {
        Arc::ptr_eq(&self.data, &other.data)
    }

    /// Why user info was asked for and not used (the session then comes from
    /// the claims alone), if that happened.
    pub fn user_info_error(&self) -> Option<&Error> {
        self.data.user_info_error.as_ref()
    }

    /// Approximately how many bytes of memory this session holds (heap and
    /// inline, allocator bookkeeping included; not counting claims parsed
    /// lazily by [`Session::claims`]). Caches weigh entries with it.
    pub fn retained_bytes(&self) -> usize {
        self.data.retained_bytes()
    }
}

impl Data {
    fn from_claims(
        claims: &AccessTokenClaims,
        mapping: &ClaimMapping,
        store: ClaimsStore,
    ) -> Result<Data, Error> {
        let email = first_string(claims, mapping.email_claims())?.map(|(name, address)| Email {
            address: address.into_boxed_str(),
            // a configured claim's flag is not known (it is trusted as
            // configured)
            verified: if name == "email" {
                claims.email_verified
            } else {
                None
            },
            configured: name != "email",
        });
        let name = first_string(claims, mapping.name_claims())?.map(|(_, n)| n.into_boxed_str());
        let organizations: Vec<Organization> = first_list(claims, mapping.organization_claims())?;
        let projects: Vec<Project> = first_list(claims, mapping.project_claims())?;
        let scopes = all_scopes(claims, mapping.scope_claims())?;
        let registered = claims.registered.clone();
        let client = registered
            .client_id
            .as_deref()
            .or(registered.azp.as_deref());
        let principal = match (registered.sub.as_deref(), client) {
            (None, _) => Principal::Client,
            (Some(sub), Some(client)) if sub == client => Principal::Client,
            _ => Principal::User,
        };
        Ok(Data {
            registered,
            email,
            name,
            scopes,
            organizations: organizations.into_boxed_slice(),
            projects: projects.into_boxed_slice(),
            principal,
            accept_unverified_email: mapping.accepts_unverified_email(),
            claims: store,
            user_info_error: None,
        })
    }

    fn retained_bytes(&self) -> usize {
        use std::mem::size_of;
        let r = &self.registered;
        let audience = r.aud.as_ref().map_or(0, |aud| match aud {
            keyward_core::Audience::One(one) => heap_bytes(one),
            keyward_core::Audience::Many(many) => {
                alloc_bytes(many.capacity() * size_of::<String>())
                    + many.iter().map(|a| heap_bytes(a)).sum::<usize>()
            }
        });
        let registered = opt_bytes(&r.iss)
            + opt_bytes(&r.sub)
            + opt_bytes(&r.jti)
            + opt_bytes(&r.client_id)
            + opt_bytes(&r.azp)
            + audience;
        let organizations = alloc_bytes(self.organizations.len() * size_of::<Organization>())
            + self
                .organizations
                .iter()
                .map(|o| {
                    heap_bytes(&o.id) + opt_bytes(&o.slug) + opt_bytes(&o.name) + opt_bytes(&o.role)
                })
                .sum::<usize>();
        let projects = alloc_bytes(self.projects.len() * size_of::<Project>())
            + self
                .projects
                .iter()
                .map(|p| {
                    heap_bytes(&p.id) + opt_bytes(&p.slug) + opt_bytes(&p.name) + opt_bytes(&p.org)
                })
                .sum::<usize>();
        let claims = match &self.claims {
            // a parsed tree is not weighed precisely: count its JSON size
            // several times over
            ClaimsStore::Parsed(claims) => {
                serde_json::to_string(&**claims).map_or(0, |json| json.len() * 8)
            }
            ClaimsStore::Payload(json) => heap_bytes(json),
        };
        // the Arc's allocation: two counters and the data
        alloc_bytes(2 * size_of::<usize>() + size_of::<Data>())
            + registered
            + self.email.as_ref().map_or(0, |e| heap_bytes(&e.address))
            + self.name.as_deref().map_or(0, heap_bytes)
            + self.scopes.retained_bytes()
            + organizations
            + projects
            + claims
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(json: &str, mapping: &ClaimMapping) -> Result<Session, Error> {
        Session::from_claims(serde_json::from_str(json).unwrap(), mapping)
    }

    #[test]
    fn namespaced_email_first_and_empty_counts_as_absent() {
        let mapping = ClaimMapping::default().with_namespace("https://example.com/");
        let s = session(
            r#"{"sub":"u","https://example.com/email":"ns@example.com","email":"plain@example.com"}"#,
            &mapping,
        )
        .unwrap();
        assert_eq!(s.email(), Some("ns@example.com"));
        assert_eq!(s.email_verified(), None);
        let s = session(
            r#"{"sub":"u","https://example.com/email":"","email":"plain@example.com","email_verified":true}"#,
            &mapping,
        )
        .unwrap();
        assert_eq!(s.email(), Some("plain@example.com"));
        let s = session(
            r#"{"sub":"u","https://example.com/email":"  ","email":""}"#,
            &mapping,
        )
        .unwrap();
        assert_eq!(s.email(), None);
        let mapping = ClaimMapping::default().email(["myapp:email"]);
        let s = session(
            r#"{"sub":"u","myapp:email":"x@y.z","email":"ignored@y.z"}"#,
            &mapping,
        )
        .unwrap();
        assert_eq!(s.email(), Some("x@y.z"));
    }

    #[test]
    fn wrongly_typed_mapped_claims_are_invalid() {
        let m = ClaimMapping::default();
        // typed members reject at decode time (the verifier reports that as
        // invalid_claim); mapped custom names are checked here
        assert!(serde_json::from_str::<AccessTokenClaims>(r#"{"sub":"u","email":5}"#).is_err());
        let custom = ClaimMapping::default().email(["myapp:email"]);
        assert_eq!(
            session(r#"{"sub":"u","myapp:email":5}"#, &custom)
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidClaim
        );
        assert_eq!(
            session(r#"{"sub":"u","orgs":"acme"}"#, &m)
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidClaim
        );
        assert_eq!(
            session(r#"{"sub":"u","orgs":[{"slug":"no-id"}]}"#, &m)
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidClaim
        );
        let err = session(r#"{"sub":"u","projects":[{"id":7}]}"#, &m).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidClaim);
    }

    #[test]
    fn organizations_projects_and_choices() {
        let m = ClaimMapping::default();
        let s = session(
            r#"{"sub":"u","organizations":[{"org_id":"o1","slug":"acme","display_name":"Acme"}],
                "projects":[{"id":"p1","slug":"site","org":"o1"}]}"#,
            &m,
        )
        .unwrap();
        assert_eq!(s.sole_organization().unwrap().name.as_deref(), Some("Acme"));
        assert!(s.is_member("o1") && !s.is_member("acme") && !s.is_member("globex"));
        assert_eq!(
            s.organization_by_slug("globex").unwrap_err(),
            SessionError::NotAMember {
                organization: "globex".into()
            }
        );
        assert_eq!(s.organization_by_slug("acme").unwrap().id, "o1");
        assert_eq!(
            s.project_by_slug("site").unwrap().org.as_deref(),
            Some("o1")
        );
        assert_eq!(s.project("p1").unwrap().slug.as_deref(), Some("site"));
        assert!(s.project("site").is_err(), "project() takes an id");
        assert!(s.project("p2").is_err());
        let none = session(r#"{"sub":"u"}"#, &m).unwrap();
        assert_eq!(
            none.sole_organization().unwrap_err(),
            SessionError::NoOrganization
        );
        let two = session(
            r#"{"sub":"u","orgs":[{"id":"a","slug":"acme"},{"id":"b"}]}"#,
            &m,
        )
        .unwrap();
        let err = two.sole_organization().unwrap_err();
        assert_eq!(
            err,
            SessionError::OrganizationChoiceRequired {
                candidates: vec!["acme".into(), "b".into()]
            }
        );
        assert!(err.to_string().contains("must choose"));
    }

    #[test]
    fn principal_kind() {
        let m = ClaimMapping::default();
        assert_eq!(
            session(r#"{"sub":"svc","client_id":"svc"}"#, &m)
                .unwrap()
                .principal(),
            Principal::Client
        );
        assert_eq!(
            session(r#"{"client_id":"svc"}"#, &m).unwrap().principal(),
            Principal::Client
        );
        assert_eq!(
            session(r#"{"sub":"u1","client_id":"web"}"#, &m)
                .unwrap()
                .principal(),
            Principal::User
        );
        assert_eq!(
            session(r#"{"sub":"u1","azp":"web"}"#, &m)
                .unwrap()
                .client_id(),
            Some("web")
        );
    }

    #[test]
    fn scopes_custom_claims_and_profile_fill() {
        let m = ClaimMapping::default();
        let s = session(
            r#"{"sub":"u","scope":"read  write","tenant":{"id":9},"exp":1700000000.5}"#,
            &m,
        )
        .unwrap();
        assert!(s.has_scope("read") && s.has_scope("write") && !s.has_scope(""));
        assert_eq!(s.scopes().len(), 2);
        #[derive(serde::Deserialize, PartialEq, Debug)]
        struct Tenant {
            id: u32,
        }
        assert_eq!(s.claim::<Tenant>("tenant").unwrap(), Some(Tenant { id: 9 }));
        assert_eq!(s.claim::<Tenant>("missing").unwrap(), None);
        assert_eq!(
            s.claim::<String>("tenant").unwrap_err().kind(),
            ErrorKind::InvalidClaim
        );
        assert_eq!(s.expires_at().unwrap().as_secs(), 1_700_000_000);
        let arr = session(r#"{"sub":"u","scope":["a","b"]}"#, &m).unwrap();
        assert!(arr.has_scope("b"));
        let filled = s
            .clone()
            .with_profile(Some("u@x".into()), Some(true), Some(String::new()));
        assert_eq!((filled.email(), filled.name()), (Some("u@x"), None));
        assert_eq!(filled.email_verified(), Some(true));
        assert_eq!(s.email(), None, "the original session is unchanged");
    }

    /// Item 6 of the hardening issue: with `orgs:[{"id":"o-mine","slug":
    /// "o-victim"}]` the user was a member of the organisation whose *id* is
    /// `o-victim`.
    #[test]
    fn a_slug_never_answers_an_id_question() {
        let m = ClaimMapping::default();
        let s = session(
            r#"{"sub":"u","orgs":[{"id":"o-mine","slug":"o-victim"}],
                "projects":[{"id":"p-mine","slug":"p-victim"}]}"#,
            &m,
        )
        .unwrap();
        assert!(!s.is_member("o-victim"));
        assert!(s.organization("o-victim").is_err());
        assert!(s.project("p-victim").is_err());
        assert!(s.is_member("o-mine"));
        // the slug lookup is explicit, and returns the org whose id to use
        assert_eq!(s.organization_by_slug("o-victim").unwrap().id, "o-mine");
        assert_eq!(s.project_by_slug("p-victim").unwrap().id, "p-mine");
    }

    #[test]
    fn a_slug_two_entries_share_is_refused() {
        let m = ClaimMapping::default();
        let s = session(
            r#"{"sub":"u","orgs":[{"id":"o1","slug":"acme"},{"id":"o2","slug":"acme"},{"id":"o3"}],
                "projects":[{"id":"p1","slug":"site"},{"id":"p2","slug":"site"}]}"#,
            &m,
        )
        .unwrap();
        let ambiguous = |slug: &str| SessionError::AmbiguousSlug { slug: slug.into() };
        assert_eq!(
            s.organization_by_slug("acme").unwrap_err(),
            ambiguous("acme")
        );
        assert_eq!(s.project_by_slug("site").unwrap_err(), ambiguous("site"));
        assert!(s
            .organization_by_slug("acme")
            .unwrap_err()
            .to_string()
            .contains("use the id"));
        assert!(s.is_member("o1") && s.is_member("o2"));
    }

    /// Item 7: an address the token marks unverified is not an identity.
    #[test]
    fn the_standard_email_is_served_only_when_verified() {
        let m = ClaimMapping::default();
        for (json, served, flag) in [
            (
                r#"{"sub":"u","email":"a@x","email_verified":true}"#,
                true,
                Some(true),
            ),
            (
                r#"{"sub":"u","email":"a@x","email_verified":false}"#,
                false,
                Some(false),
            ),
            (r#"{"sub":"u","email":"a@x"}"#, false, None),
        ] {
            let s = session(json, &m).unwrap();
            assert_eq!(s.email().is_some(), served, "{json}");
            assert_eq!(s.email_verified(), flag, "{json}");
            let lenient = session(json, &m.clone().accept_unverified_email(true)).unwrap();
            assert_eq!(lenient.email(), Some("a@x"), "{json}");
        }
        // a configured claim is trusted as configured, whatever the flag
        let custom = ClaimMapping::default().email(["myapp:email"]);
        let s = session(
            r#"{"sub":"u","myapp:email":"c@x","email_verified":false}"#,
            &custom,
        )
        .unwrap();
        assert_eq!(s.email(), Some("c@x"));
        // userinfo cannot launder an unverified address either
        let s = session(r#"{"sub":"u"}"#, &m).unwrap();
        assert_eq!(
            s.clone()
                .with_profile(Some("b@x".into()), Some(false), None)
                .email(),
            None
        );
        assert_eq!(
            s.clone()
                .with_profile(Some("b@x".into()), None, None)
                .email(),
            None
        );
        let verified = s.with_profile(Some("b@x".into()), Some(true), None);
        assert_eq!(
            (verified.email(), verified.email_verified()),
            (Some("b@x"), Some(true))
        );
        // an unverified token email is replaced by a verified userinfo one
        let s = session(r#"{"sub":"u","email":"a@x","email_verified":false}"#, &m).unwrap();
        let merged = s.with_profile(Some("b@x".into()), Some(true), None);
        assert_eq!(
            (merged.email(), merged.email_verified()),
            (Some("b@x"), Some(true))
        );
        // and a verified one is kept
        let s = session(r#"{"sub":"u","email":"a@x","email_verified":true}"#, &m).unwrap();
        let kept = s.with_profile(Some("b@x".into()), Some(true), None);
        assert_eq!(kept.email(), Some("a@x"));
    }

    /// Item 9: `scp` (Azure AD: a string; Okta: an array) feeds the scopes.
    #[test]
    fn scp_in_both_shapes_and_configured_names() {
        let m = ClaimMapping::default();
        let s = session(r#"{"sub":"u","scp":"User.Read Mail.Send"}"#, &m).unwrap();
        assert!(s.has_scope("User.Read") && s.has_scope("Mail.Send"));
        let s = session(r#"{"sub":"u","scp":["openid","groups"]}"#, &m).unwrap();
        assert!(s.has_scope("openid") && s.has_scope("groups"));
        let s = session(r#"{"sub":"u","scope":"a","scp":["b"]}"#, &m).unwrap();
        assert_eq!(s.scopes().iter().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(
            session(r#"{"sub":"u","scp":7}"#, &m).unwrap_err().kind(),
            ErrorKind::InvalidClaim
        );
        assert_eq!(
            session(r#"{"sub":"u","scp":["ok",7]}"#, &m)
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidClaim
        );
        let only_scope = ClaimMapping::default().scopes(["scope"]);
        let s = session(r#"{"sub":"u","scope":"a","scp":"b"}"#, &only_scope).unwrap();
        assert!(s.has_scope("a") && !s.has_scope("b"));
        let custom = ClaimMapping::default().scopes(["permissions"]);
        let s = session(
            r#"{"sub":"u","scope":"a","permissions":["read:x"]}"#,
            &custom,
        )
        .unwrap();
        assert!(s.has_scope("read:x") && !s.has_scope("a"));
    }

    #[test]
    fn a_compact_session_answers_like_a_parsed_one() {
        let m = ClaimMapping::default();
        let json = r#"{"sub":"u","client_id":"web","scope":"a b","email":"e@x","email_verified":true,
            "orgs":[{"id":"o1","slug":"acme"}],"tenant":{"id":9},"groups":["g1","g2"]}"#;
        let parsed = session(json, &m).unwrap();
        let compact = Session::from_verified_payload(
            serde_json::from_str(json).unwrap(),
            json.to_owned(),
            &m,
        )
        .unwrap();
        assert_eq!(compact.claims(), parsed.claims());
        assert_eq!(compact.email(), parsed.email());
        assert_eq!(compact.organizations(), parsed.organizations());
        assert_eq!(compact.scopes(), parsed.scopes());
        assert_eq!(
            compact.claim::<Vec<String>>("groups").unwrap().unwrap(),
            ["g1", "g2"]
        );
        assert!(compact.retained_bytes() < parsed.retained_bytes());
        assert!(compact.retained_bytes() >= json.len());
    }
}
