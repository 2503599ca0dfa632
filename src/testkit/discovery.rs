//! The resource registry and the discovery documents (/version, /api, /api/v1, /apis, /apis/G,
//! /apis/G/V). Built-in groups come from the real documents vendored in vendor-schemas/ (Kubernetes
//! 1.31, see its README); CRDs add and remove their own group/versions at runtime.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

/// Built-in group/versions served, with their real APIResourceList documents.
const BUILTIN: &[(&str, &str, &str)] = &[
    ("", "v1", include_str!("../../vendor-schemas/api__v1.json")),
    ("apps", "v1", include_str!("../../vendor-schemas/apis__apps__v1.json")),
    ("events.k8s.io", "v1", include_str!("../../vendor-schemas/apis__events.k8s.io__v1.json")),
    ("authentication.k8s.io", "v1", include_str!("../../vendor-schemas/apis__authentication.k8s.io__v1.json")),
    ("authorization.k8s.io", "v1", include_str!("../../vendor-schemas/apis__authorization.k8s.io__v1.json")),
    ("batch", "v1", include_str!("../../vendor-schemas/apis__batch__v1.json")),
    ("networking.k8s.io", "v1", include_str!("../../vendor-schemas/apis__networking.k8s.io__v1.json")),
    ("policy", "v1", include_str!("../../vendor-schemas/apis__policy__v1.json")),
    ("rbac.authorization.k8s.io", "v1", include_str!("../../vendor-schemas/apis__rbac.authorization.k8s.io__v1.json")),
    ("apiextensions.k8s.io", "v1", include_str!("../../vendor-schemas/apis__apiextensions.k8s.io__v1.json")),
    ("coordination.k8s.io", "v1", include_str!("../../vendor-schemas/apis__coordination.k8s.io__v1.json")),
    ("discovery.k8s.io", "v1", include_str!("../../vendor-schemas/apis__discovery.k8s.io__v1.json")),
];

/// Groups whose objects carry no `metadata.generation` in a real cluster (their registry strategies
/// never set it). Everything else with a spec (apps, batch, networking, CRDs, custom resources) does.
const NO_GENERATION_GROUPS: &[&str] = &[
    "",
    "coordination.k8s.io",
    "events.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "rbac.authorization.k8s.io",
    "discovery.k8s.io",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceInfo {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    /// A `status` subresource exists: the main resource ignores status changes and vice versa.
    pub has_status: bool,
    pub generation: bool,
    /// A custom resource (served from a CRD): updates must carry a resourceVersion.
    pub custom: bool,
}

impl ResourceInfo {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// Storage key: objects of one group/resource are shared by all of its served versions.
    pub fn key(&self) -> (String, String) {
        (self.group.clone(), self.plural.clone())
    }
}

/// One served group/version and its discovery document.
#[derive(Debug, Clone)]
struct GroupVersion {
    group: String,
    version: String,
    doc: Value,
    /// The CRD that serves it (None for built-ins).
    crd: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Registry {
    gvs: Vec<GroupVersion>,
    resources: BTreeMap<(String, String, String), Arc<ResourceInfo>>,
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default()
}

impl Registry {
    pub fn builtin() -> Result<Self, String> {
        let mut reg = Registry { gvs: Vec::new(), resources: BTreeMap::new() };
        for (group, version, text) in BUILTIN {
            let doc: Value =
                serde_json::from_str(text).map_err(|e| format!("vendored discovery {group}/{version}: {e}"))?;
            reg.add_gv(group, version, doc, None);
        }
        Ok(reg)
    }

    fn add_gv(&mut self, group: &str, version: &str, doc: Value, crd: Option<String>) {
        let list = doc["resources"].as_array().cloned().unwrap_or_default();
        for r in &list {
            let Some(name) = r["name"].as_str() else { continue };
            if name.contains('/') {
                continue;
            }
            let has_status = list.iter().any(|s| s["name"].as_str() == Some(&format!("{name}/status")));
            let info = ResourceInfo {
                group: group.to_string(),
                version: version.to_string(),
                plural: name.to_string(),
                singular: r["singularName"].as_str().unwrap_or("").to_string(),
                kind: r["kind"].as_str().unwrap_or("").to_string(),
                namespaced: r["namespaced"].as_bool().unwrap_or(false),
                short_names: strs(&r["shortNames"]),
                has_status,
                generation: crd.is_some() || !NO_GENERATION_GROUPS.contains(&group) || name == "replicationcontrollers",
                custom: crd.is_some(),
            };
            self.resources.insert((group.into(), version.into(), name.into()), Arc::new(info));
        }
        self.gvs.push(GroupVersion { group: group.into(), version: version.into(), doc, crd });
    }

    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        self.resources.get(&(group.to_string(), version.to_string(), plural.to_string())).cloned()
    }

    /// Any served version of a group/resource (for direct, non-HTTP access from tests).
    pub fn lookup_any(&self, group: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        self.resources.values().find(|r| r.group == group && r.plural == plural).cloned()
    }

    /// The resource serving an apiVersion + kind.
    pub fn lookup_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceInfo>> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        self.resources.values().find(|r| r.group == group && r.version == version && r.kind == kind).cloned()
    }

    pub fn has_group_version(&self, group: &str, version: &str) -> bool {
        self.gvs.iter().any(|g| g.group == group && g.version == version)
    }

    /// Registers a CRD's served versions; replaces what the same CRD served before.
    pub fn install_crd(&mut self, crd: &Value) -> Result<(), String> {
        let name = crd.pointer("/metadata/name").and_then(Value::as_str).ok_or("CRD without a name")?.to_string();
        self.remove_crd(&name);
        let spec = &crd["spec"];
        let group = spec["group"].as_str().ok_or("CRD without spec.group")?;
        let names = &spec["names"];
        let plural = names["plural"].as_str().ok_or("CRD without spec.names.plural")?;
        let kind = names["kind"].as_str().ok_or("CRD without spec.names.kind")?;
        let singular = names["singular"].as_str().map(String::from).unwrap_or_else(|| kind.to_lowercase());
        let namespaced = spec["scope"].as_str() != Some("Cluster");
        for v in spec["versions"].as_array().into_iter().flatten() {
            if v["served"].as_bool() == Some(false) {
                continue;
            }
            let Some(version) = v["name"].as_str() else { continue };
            let mut resources = vec![json!({
                "name": plural,
                "singularName": singular,
                "namespaced": namespaced,
                "kind": kind,
                "verbs": ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"],
            })];
            if let Some(short) = names.get("shortNames").filter(|s| s.is_array()) {
                resources[0]["shortNames"] = short.clone();
            }
            if let Some(cats) = names.get("categories").filter(|s| s.is_array()) {
                resources[0]["categories"] = cats.clone();
            }
            if v.pointer("/subresources/status").is_some() {
                resources.push(json!({
                    "name": format!("{plural}/status"), "singularName": "", "namespaced": namespaced,
                    "kind": kind, "verbs": ["get", "patch", "update"],
                }));
            }
            let doc = json!({
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": format!("{group}/{version}"),
                "resources": resources,
            });
            self.add_gv(group, version, doc, Some(name.clone()));
        }
        Ok(())
    }

    pub fn remove_crd(&mut self, crd_name: &str) {
        let gone: Vec<(String, String)> = self
            .gvs
            .iter()
            .filter(|g| g.crd.as_deref() == Some(crd_name))
            .map(|g| (g.group.clone(), g.version.clone()))
            .collect();
        self.gvs.retain(|g| g.crd.as_deref() != Some(crd_name));
        for (g, v) in gone {
            self.resources.retain(|(rg, rv, _), r| !(rg == &g && rv == &v && r.custom));
        }
    }

    // ---- documents ----

    pub fn version_doc(minor: u32) -> Value {
        json!({
            "major": "1",
            "minor": minor.to_string(),
            "gitVersion": format!("v1.{minor}.0"),
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2024-08-13T00:00:00Z",
            "goVersion": "go1.22.5",
            "compiler": "gc",
            "platform": "linux/amd64"
        })
    }

    pub fn api_versions(server_address: &str) -> Value {
        json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
        })
    }

    fn group_doc(&self, group: &str) -> Option<Value> {
        let versions: Vec<Value> = self
            .group_versions()
            .into_iter()
            .filter(|(g, _)| g == group)
            .map(|(_, v)| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
            .collect();
        let preferred = versions.first()?.clone();
        Some(json!({"name": group, "versions": versions, "preferredVersion": preferred}))
    }

    pub fn api_group_list(&self) -> Value {
        let mut seen: Vec<&str> = Vec::new();
        for g in &self.gvs {
            if !g.group.is_empty() && !seen.contains(&g.group.as_str()) {
                seen.push(&g.group);
            }
        }
        let groups: Vec<Value> = seen.iter().filter_map(|g| self.group_doc(g)).collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }

    pub fn api_group(&self, group: &str) -> Option<Value> {
        let mut doc = self.group_doc(group)?;
        doc["kind"] = json!("APIGroup");
        doc["apiVersion"] = json!("v1");
        Some(doc)
    }

    /// Served group/versions as OpenAPI v3 paths (`api/v1`, `apis/apps/v1`).
    pub fn group_versions(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for g in &self.gvs {
            if !out.iter().any(|(og, ov)| *og == g.group && *ov == g.version) {
                out.push((g.group.clone(), g.version.clone()));
            }
        }
        out
    }

    pub fn resources_in(&self, group: &str, version: &str) -> Vec<Arc<ResourceInfo>> {
        self.resources.values().filter(|r| r.group == group && r.version == version).cloned().collect()
    }

    /// The APIResourceList of a group/version; several CRDs may share one, their resources merge.
    pub fn resource_list(&self, group: &str, version: &str) -> Option<Value> {
        let mut docs = self.gvs.iter().filter(|g| g.group == group && g.version == version);
        let mut doc = docs.next()?.doc.clone();
        for more in docs {
            if let (Some(all), Some(extra)) = (doc["resources"].as_array_mut(), more.doc["resources"].as_array()) {
                all.extend(extra.iter().cloned());
            }
        }
        Some(doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_have_expected_shapes() {
        let r = Registry::builtin().unwrap();
        let secrets = r.lookup("", "v1", "secrets").unwrap();
        assert!(secrets.namespaced && !secrets.has_status && !secrets.generation);
        let ns = r.lookup("", "v1", "namespaces").unwrap();
        assert!(!ns.namespaced && ns.has_status);
        assert!(r.lookup("apps", "v1", "deployments").unwrap().generation);
        assert!(r.lookup("coordination.k8s.io", "v1", "leases").is_some());
        let groups = r.api_group_list();
        assert!(groups["groups"].as_array().unwrap().iter().any(|g| g["name"] == "apps"));
    }

    #[test]
    fn crd_install_and_remove() {
        let mut r = Registry::builtin().unwrap();
        let crd = json!({
            "metadata": {"name": "middlewares.traefik.io"},
            "spec": {"group": "traefik.io", "scope": "Namespaced",
                     "names": {"plural": "middlewares", "kind": "Middleware", "singular": "middleware"},
                     "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                                   "subresources": {"status": {}}}]}
        });
        r.install_crd(&crd).unwrap();
        let m = r.lookup("traefik.io", "v1alpha1", "middlewares").unwrap();
        assert!(m.custom && m.has_status && m.generation && m.namespaced);
        assert_eq!(r.api_group("traefik.io").unwrap()["preferredVersion"]["version"], "v1alpha1");
        r.remove_crd("middlewares.traefik.io");
        assert!(r.lookup("traefik.io", "v1alpha1", "middlewares").is_none());
        assert!(r.api_group("traefik.io").is_none());
    }
}
