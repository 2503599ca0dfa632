//! Bearer-token authentication and a small RBAC-like allow-list, enough to exercise 401 and 403 paths.
//! Messages follow the apiserver's authorization filter (`forbiddenMessage` in
//! k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/errors.go).

use super::errors::ApiError;

/// One allow rule: every listed verb on every listed resource of every listed group; `*` matches all.
/// `namespaces: None` allows cluster-wide, `Some(list)` only inside those namespaces.
#[derive(Debug, Clone)]
pub struct Rule {
    pub verbs: Vec<String>,
    pub groups: Vec<String>,
    pub resources: Vec<String>,
    pub namespaces: Option<Vec<String>>,
}

impl Rule {
    pub fn new(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Self {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect();
        Rule { verbs: v(verbs), groups: v(groups), resources: v(resources), namespaces: None }
    }

    pub fn in_namespaces(mut self, namespaces: &[&str]) -> Self {
        self.namespaces = Some(namespaces.iter().map(|s| s.to_string()).collect());
        self
    }

    pub fn all() -> Self {
        Rule::new(&["*"], &["*"], &["*"])
    }

    fn allows(&self, a: &Attributes) -> bool {
        let hit = |list: &[String], x: &str| list.iter().any(|l| l == "*" || l == x);
        let resource =
            if a.subresource.is_empty() { a.resource.clone() } else { format!("{}/{}", a.resource, a.subresource) };
        let ns_ok = match &self.namespaces {
            None => true,
            Some(list) => !a.namespace.is_empty() && hit(list, &a.namespace),
        };
        hit(&self.verbs, &a.verb) && hit(&self.groups, &a.group) && hit(&self.resources, &resource) && ns_ok
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub token: String,
    pub rules: Vec<Rule>,
}

impl User {
    pub fn admin() -> Self {
        User { name: "admin".into(), token: "admin-token".into(), rules: vec![Rule::all()] }
    }
}

/// What is being asked, in authorizer terms.
#[derive(Debug, Clone, Default)]
pub struct Attributes {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
}

/// A bearer token wins; otherwise the user of a verified client certificate; otherwise 401.
/// A token that matches no user is 401 even with a certificate, as with the real authenticator chain
/// (a presented but invalid token fails the request).
pub fn authenticate<'u>(
    users: &'u [User],
    authorization: Option<&str>,
    cert_user: Option<&str>,
) -> Result<&'u User, ApiError> {
    let token = authorization.and_then(|h| h.strip_prefix("Bearer ")).map(str::trim).unwrap_or("");
    if token.is_empty() {
        return cert_user.and_then(|name| users.iter().find(|u| u.name == name)).ok_or_else(ApiError::unauthorized);
    }
    users.iter().find(|u| u.token == token).ok_or_else(ApiError::unauthorized)
}

pub fn authorize(user: &User, a: &Attributes) -> Result<(), ApiError> {
    if user.rules.iter().any(|r| r.allows(a)) {
        return Ok(());
    }
    let resource =
        if a.subresource.is_empty() { a.resource.clone() } else { format!("{}/{}", a.resource, a.subresource) };
    let why = if a.namespace.is_empty() {
        format!(
            "User {:?} cannot {} resource {:?} in API group {:?} at the cluster scope",
            user.name, a.verb, resource, a.group
        )
    } else {
        format!(
            "User {:?} cannot {} resource {:?} in API group {:?} in the namespace {:?}",
            user.name, a.verb, resource, a.group, a.namespace
        )
    };
    Err(ApiError::forbidden(&a.group, &a.resource, &a.name, &why))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(verb: &str, ns: &str, name: &str) -> Attributes {
        Attributes {
            verb: verb.into(),
            resource: "secrets".into(),
            namespace: ns.into(),
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn forbidden_message_is_the_apiservers() {
        let bob = User {
            name: "bob".into(),
            token: "t".into(),
            rules: vec![Rule::new(&["get"], &[""], &["secrets"]).in_namespaces(&["a"])],
        };
        assert!(authorize(&bob, &attrs("get", "a", "x")).is_ok());
        let e = authorize(&bob, &attrs("list", "b", "")).unwrap_err();
        assert_eq!(
            e.message(),
            r#"secrets is forbidden: User "bob" cannot list resource "secrets" in API group "" in the namespace "b""#
        );
        let e = authorize(&bob, &attrs("get", "", "x")).unwrap_err();
        assert_eq!(
            e.message(),
            r#"secrets "x" is forbidden: User "bob" cannot get resource "secrets" in API group "" at the cluster scope"#
        );
    }

    #[test]
    fn tokens() {
        let users = vec![User::admin()];
        assert_eq!(authenticate(&users, None, None).unwrap_err().code, 401);
        assert_eq!(authenticate(&users, Some("Bearer nope"), None).unwrap_err().code, 401);
        assert_eq!(authenticate(&users, Some("Bearer nope"), Some("admin")).unwrap_err().code, 401);
        assert_eq!(authenticate(&users, Some("Bearer admin-token"), None).unwrap().name, "admin");
        assert_eq!(authenticate(&users, None, Some("admin")).unwrap().name, "admin");
        assert_eq!(authenticate(&users, None, Some("ghost")).unwrap_err().code, 401);
    }
}
