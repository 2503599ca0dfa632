//! Just enough OpenAPI v3 for kubectl: the root index and, per group/version, a PATCH operation per
//! resource that advertises the `fieldValidation` query parameter. kubectl then leaves validation to
//! the server (which accepts the parameter and does not check fields against schemas) instead of
//! downloading full schemas. /openapi/v2 answers 404, as on a server without it; kubectl falls back
//! to its compiled-in types for strategic merge patches.

use serde_json::{Map, Value, json};

use super::discovery::Registry;

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

/// FNV-1a, so the hash in serverRelativeURL changes when a group/version's resources change
/// (kubectl caches documents by it).
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

fn gv_doc_raw(reg: &Registry, group: &str, version: &str) -> Value {
    let mut paths = Map::new();
    for r in reg.resources_in(group, version) {
        let base = format!("/{}", gv_path(group, version));
        let path = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{base}/{}/{{name}}", r.plural)
        };
        paths.insert(
            path,
            json!({"patch": {
                "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": r.kind},
                "parameters": [
                    {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                    {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                    {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}}
                ],
                "responses": {"200": {"description": "OK"}}
            }}),
        );
    }
    json!({"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.31.0"}, "paths": paths})
}

pub fn root(reg: &Registry) -> Value {
    let mut paths = Map::new();
    for (g, v) in reg.group_versions() {
        let p = gv_path(&g, &v);
        let hash = fnv(&gv_doc_raw(reg, &g, &v).to_string());
        paths.insert(p.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={hash:016X}")}));
    }
    json!({"paths": paths})
}

/// The document for `/openapi/v3/<rest>`, if it names a served group/version.
pub fn gv_doc(reg: &Registry, rest: &str) -> Option<Value> {
    let (g, v) = reg.group_versions().into_iter().find(|(g, v)| gv_path(g, v) == rest)?;
    Some(gv_doc_raw(reg, &g, &v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_lists_core_and_groups() {
        let reg = Registry::builtin().unwrap();
        let r = root(&reg);
        assert!(r["paths"]["api/v1"]["serverRelativeURL"].as_str().unwrap().starts_with("/openapi/v3/api/v1?hash="));
        let doc = gv_doc(&reg, "apis/apps/v1").unwrap();
        let p = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(p["x-kubernetes-group-version-kind"]["kind"], "Deployment");
    }
}
