//! Group/version/resource and the REST paths built from it.

use super::params::encode_component;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ApiResource {
    /// "" for the core group.
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
}

impl ApiResource {
    pub fn new(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Self {
        ApiResource {
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
            plural: plural.to_string(),
            namespaced,
        }
    }

    /// "v1" for the core group, "apps/v1" otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// "/api/v1" or "/apis/apps/v1".
    pub fn group_version_path(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }

    /// The collection path. A namespaced resource with `ns == None` gives the all-namespaces path;
    /// a cluster-scoped resource ignores `ns`.
    pub fn collection_path(&self, ns: Option<&str>) -> String {
        let base = self.group_version_path();
        match ns {
            Some(ns) if self.namespaced => {
                format!("{base}/namespaces/{}/{}", encode_component(ns), self.plural)
            }
            _ => format!("{base}/{}", self.plural),
        }
    }

    pub fn object_path(&self, ns: Option<&str>, name: &str) -> String {
        format!("{}/{}", self.collection_path(ns), encode_component(name))
    }

    pub fn secrets() -> Self {
        ApiResource::new("", "v1", "Secret", "secrets", true)
    }

    pub fn configmaps() -> Self {
        ApiResource::new("", "v1", "ConfigMap", "configmaps", true)
    }

    pub fn services() -> Self {
        ApiResource::new("", "v1", "Service", "services", true)
    }

    pub fn namespaces() -> Self {
        ApiResource::new("", "v1", "Namespace", "namespaces", false)
    }

    pub fn leases() -> Self {
        ApiResource::new("coordination.k8s.io", "v1", "Lease", "leases", true)
    }

    /// Core v1 Events, the form `kubectl describe` shows.
    pub fn events() -> Self {
        ApiResource::new("", "v1", "Event", "events", true)
    }

    pub fn crds() -> Self {
        ApiResource::new("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_and_named_group_paths() {
        let s = ApiResource::secrets();
        assert_eq!(s.api_version(), "v1");
        assert_eq!(s.collection_path(Some("ns1")), "/api/v1/namespaces/ns1/secrets");
        assert_eq!(s.collection_path(None), "/api/v1/secrets");
        assert_eq!(s.object_path(Some("ns1"), "a"), "/api/v1/namespaces/ns1/secrets/a");
        let l = ApiResource::leases();
        assert_eq!(l.api_version(), "coordination.k8s.io/v1");
        assert_eq!(
            l.object_path(Some("kube-system"), "x"),
            "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/x"
        );
    }

    #[test]
    fn cluster_scoped_ignores_namespace() {
        let n = ApiResource::namespaces();
        assert_eq!(n.object_path(Some("ignored"), "team-a"), "/api/v1/namespaces/team-a");
        assert_eq!(
            ApiResource::crds().collection_path(None),
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        );
    }

    #[test]
    fn odd_names_are_escaped() {
        assert_eq!(
            ApiResource::configmaps().object_path(Some("a"), "x y/z"),
            "/api/v1/namespaces/a/configmaps/x%20y%2Fz"
        );
    }
}
