//! Where profile fields, organisations and projects are found.

/// The claim names the [`crate::Session`] reads, in lookup order.
///
/// The first claim that is present and not empty wins (a present-but-empty
/// string counts as absent). Defaults: email from `email`, name from `name`,
/// organisations from `orgs` then `organizations`, projects from `projects`.
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
}

impl Default for ClaimMapping {
    fn default() -> Self {
        ClaimMapping {
            email: vec!["email".into()],
            name: vec!["name".into()],
            organizations: vec!["orgs".into(), "organizations".into()],
            projects: vec!["projects".into()],
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
