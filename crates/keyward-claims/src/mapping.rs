//! Where profile fields, organisations and projects are found.

/// The claim names the [`crate::Session`] reads, in lookup order.
///
/// The first claim that is present and not empty wins (a present-but-empty
/// string counts as absent). Defaults: email from `email`, name from `name`,
/// organisations from `orgs` then `organizations`, projects from `projects`,
/// scopes from `scope` and `scp` (every listed claim that is present adds its
/// scopes).
///
/// **Email trust.** The standard OIDC `email` claim is returned by
/// [`crate::Session::email`] only when `email_verified` is `true` — an
/// unverified address is whatever the user typed, and treating it as an
/// identity lets anyone claim someone else's address. Call
/// [`ClaimMapping::accept_unverified_email`] to get it anyway. Any other
/// email claim name you configure (a namespaced `https://example.com/email`,
/// an IdP template such as `myapp:email`) is trusted **as configured**: you
/// are saying your issuer only puts addresses it vouches for there.
///
/// ```
/// use keyward_claims::ClaimMapping;
/// // Look in `https://example.com/email` (and `.../name`, ...) first.
/// let mapping = ClaimMapping::default().with_namespace("https://example.com/");
/// assert_eq!(mapping.email_claims()[0], "https://example.com/email");
/// assert_eq!(mapping.email_claims()[1], "email");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimMapping {
    email: Vec<String>,
    name: Vec<String>,
    organizations: Vec<String>,
    projects: Vec<String>,
    scopes: Vec<String>,
    accept_unverified_email: bool,
}

impl Default for ClaimMapping {
    fn default() -> Self {
        ClaimMapping {
            email: vec!["email".into()],
            name: vec!["name".into()],
            organizations: vec!["orgs".into(), "organizations".into()],
            projects: vec!["projects".into()],
            scopes: vec!["scope".into(), "scp".into()],
            accept_unverified_email: false,
        }
    }
}

fn names(list: impl IntoIterator<Item = impl Into<String>>) -> Vec<String> {
    list.into_iter().map(Into::into).collect()
}

impl ClaimMapping {
    /// Puts `<namespace>email`, `<namespace>name`, `<namespace>orgs` and
    /// `<namespace>projects` before the current names, for providers that
    /// namespace custom claims (`https://example.com/email`, `myapp:email`).
    pub fn with_namespace(mut self, namespace: &str) -> Self {
        for (list, field) in [
            (&mut self.email, "email"),
            (&mut self.name, "name"),
            (&mut self.organizations, "orgs"),
            (&mut self.projects, "projects"),
        ] {
            list.insert(0, format!("{namespace}{field}"));
        }
        self
    }

    /// Replaces the email lookup order.
    pub fn email(mut self, claims: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.email = names(claims);
        self
    }

    /// Replaces the name lookup order.
    pub fn name(mut self, claims: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.name = names(claims);
        self
    }

    /// Replaces the organisations lookup order.
    pub fn organizations(mut self, claims: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.organizations = names(claims);
        self
    }

    /// Replaces the projects lookup order.
    pub fn projects(mut self, claims: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.projects = names(claims);
        self
    }

    /// Replaces the scope claims (default `scope`, then `scp`). Each claim
    /// may be a space-delimited string or an array of strings; the scopes of
    /// every listed claim that is present are granted together.
    pub fn scopes(mut self, claims: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.scopes = names(claims);
        self
    }

    /// Whether the standard `email` claim is used even when the token (or
    /// userinfo) does not say `email_verified: true` (default `false`).
    pub fn accept_unverified_email(mut self, accept: bool) -> Self {
        self.accept_unverified_email = accept;
        self
    }

    /// The scope claims.
    pub fn scope_claims(&self) -> &[String] {
        &self.scopes
    }

    /// Whether an unverified standard `email` is used.
    pub fn accepts_unverified_email(&self) -> bool {
        self.accept_unverified_email
    }

    /// The email lookup order.
    pub fn email_claims(&self) -> &[String] {
        &self.email
    }

    /// The name lookup order.
    pub fn name_claims(&self) -> &[String] {
        &self.name
    }

    /// The organisations lookup order.
    pub fn organization_claims(&self) -> &[String] {
        &self.organizations
    }

    /// The projects lookup order.
    pub fn project_claims(&self) -> &[String] {
        &self.projects
    }
}
