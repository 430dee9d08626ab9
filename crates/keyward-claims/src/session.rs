//! The session a request handler works with.

use crate::claims::{AccessTokenClaims, NumericDate, Organization, Project, Scopes};
use crate::mapping::ClaimMapping;
use keyward_core::{Error, ErrorKind};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::fmt;
use std::sync::Arc;

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
pub enum SessionError {
    /// The subject is not a member of this organisation.
    NotAMember {
        /// The id or slug asked for.
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
        /// The id or slug asked for.
        project: String,
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
        }
    }
}

impl std::error::Error for SessionError {}

#[derive(Clone)]
struct Data {
    user_id: Option<String>,
    email: Option<String>,
    name: Option<String>,
    organizations: Vec<Organization>,
    projects: Vec<Project>,
    principal: Principal,
    claims: AccessTokenClaims,
    user_info_error: Option<Error>,
}

/// An authenticated caller, built from verified claims. Cheap to clone.
///
/// ```
/// use keyward_claims::{AccessTokenClaims, ClaimMapping, Principal, Session, SessionError};
/// let claims: AccessTokenClaims = serde_json::from_str(r#"{
///     "sub": "user-1", "client_id": "web", "scope": "read write",
///     "email": "ada@example.com",
///     "orgs": [{"id": "o1", "slug": "acme", "name": "Acme", "role": "admin"},
///              {"id": "o2", "slug": "globex", "name": "Globex", "role": "member"}]
/// }"#).unwrap();
/// let session = Session::from_claims(claims, &ClaimMapping::default()).unwrap();
/// assert_eq!(session.principal(), Principal::User);
/// assert!(session.is_member("acme") && session.has_scope("write"));
/// assert_eq!(session.organization("globex").unwrap().role.as_deref(), Some("member"));
/// assert!(matches!(session.sole_organization(), Err(SessionError::OrganizationChoiceRequired { .. })));
/// ```
#[derive(Clone)]
pub struct Session {
    data: Arc<Data>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("user_id", &self.data.user_id)
            .field("principal", &self.data.principal)
            .field("client_id", &self.client_id())
            .field("organizations", &self.data.organizations.len())
            .field("scopes", &self.scopes().len())
            .finish_non_exhaustive()
    }
}

/// The first claim in `names` that is a non-empty string. A claim present
/// with another type is an error, never "absent".
fn first_string(claims: &AccessTokenClaims, names: &[String]) -> Result<Option<String>, Error> {
    for name in names {
        match claims.get(name) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) if s.trim().is_empty() => continue,
            Some(Value::String(s)) => return Ok(Some(s)),
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

impl Session {
    /// Builds the session from verified claims.
    ///
    /// Fails with `invalid_claim` when a mapped claim has the wrong type
    /// (say, `orgs` that is not an array of objects with an `id`).
    pub fn from_claims(
        claims: AccessTokenClaims,
        mapping: &ClaimMapping,
    ) -> Result<Session, Error> {
        let email = first_string(&claims, mapping.email_claims())?;
        let name = first_string(&claims, mapping.name_claims())?;
        let organizations: Vec<Organization> = first_list(&claims, mapping.organization_claims())?;
        let projects: Vec<Project> = first_list(&claims, mapping.project_claims())?;
        let registered = &claims.registered;
        let client = registered
            .client_id
            .as_deref()
            .or(registered.azp.as_deref());
        let principal = match (registered.sub.as_deref(), client) {
            (None, _) => Principal::Client,
            (Some(sub), Some(client)) if sub == client => Principal::Client,
            _ => Principal::User,
        };
        Ok(Session {
            data: Arc::new(Data {
                user_id: registered.sub.clone(),
                email,
                name,
                organizations,
                projects,
                principal,
                claims,
                user_info_error: None,
            }),
        })
    }

    /// Fills profile fields the claims lacked from a userinfo response (the
    /// caller has checked that it is about the same subject).
    pub fn with_profile(mut self, email: Option<String>, name: Option<String>) -> Session {
        let data = Arc::make_mut(&mut self.data);
        if data.email.is_none() {
            data.email = email.filter(|e| !e.trim().is_empty());
        }
        if data.name.is_none() {
            data.name = name.filter(|n| !n.trim().is_empty());
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
        self.data.user_id.as_deref()
    }

    /// The email, from the mapped claims (or user info).
    pub fn email(&self) -> Option<&str> {
        self.data.email.as_deref()
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
        let r = &self.data.claims.registered;
        r.client_id.as_deref().or(r.azp.as_deref())
    }

    /// The granted scopes.
    pub fn scopes(&self) -> &Scopes {
        &self.data.claims.scope
    }

    /// Whether `scope` is granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.data.claims.scope.contains(scope)
    }

    /// When the token expires.
    pub fn expires_at(&self) -> Option<NumericDate> {
        self.data.claims.registered.exp
    }

    /// The organisations of the subject.
    pub fn organizations(&self) -> &[Organization] {
        &self.data.organizations
    }

    /// Whether the subject belongs to the organisation with this id or slug.
    pub fn is_member(&self, organization: &str) -> bool {
        self.data.organizations.iter().any(|o| o.is(organization))
    }

    /// The organisation with this id or slug, if the subject is a member.
    pub fn organization(&self, organization: &str) -> Result<&Organization, SessionError> {
        self.data
            .organizations
            .iter()
            .find(|o| o.is(organization))
            .ok_or_else(|| SessionError::NotAMember {
                organization: organization.to_owned(),
            })
    }

    /// The subject's only organisation; an error that says a choice is
    /// needed when there are several.
    pub fn sole_organization(&self) -> Result<&Organization, SessionError> {
        match self.data.organizations.as_slice() {
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

    /// The project with this id or slug, if the subject can access it.
    pub fn project(&self, project: &str) -> Result<&Project, SessionError> {
        self.data
            .projects
            .iter()
            .find(|p| p.is(project))
            .ok_or_else(|| SessionError::NoSuchProject {
                project: project.to_owned(),
            })
    }

    /// All claims, typed.
    pub fn claims(&self) -> &AccessTokenClaims {
        &self.data.claims
    }

    /// A custom claim decoded as `T`: `Ok(None)` when absent, an
    /// `invalid_claim` error when it does not fit `T`.
    pub fn claim<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, Error> {
        match self.data.claims.get(name) {
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
        let s = session(
            r#"{"sub":"u","https://example.com/email":"","email":"plain@example.com"}"#,
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
        assert!(s.is_member("o1") && s.is_member("acme") && !s.is_member("globex"));
        assert_eq!(
            s.organization("globex").unwrap_err(),
            SessionError::NotAMember {
                organization: "globex".into()
            }
        );
        assert_eq!(s.project("site").unwrap().org.as_deref(), Some("o1"));
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
            .with_profile(Some("u@x".into()), Some(String::new()));
        assert_eq!((filled.email(), filled.name()), (Some("u@x"), None));
        assert_eq!(s.email(), None, "the original session is unchanged");
    }
}
