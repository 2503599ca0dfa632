//! Server-side apply and `metadata.managedFields`, simplified.
//!
//! Simplifications (documented in README): field ownership is tracked at a coarse granularity —
//! each key of a top-level object field (`data.k`, `spec.replicas`, `spec.template` as a whole), each
//! label and annotation key, and whole top-level scalars/lists (`type`, `metadata.finalizers`). Lists
//! are atomic (no merge keys). Conflicts are reported exactly as the real server does (409, reason
//! Conflict, one `FieldManagerConflict` cause per field, the same message format), and `force`
//! transfers ownership. Non-apply writes (create/update/patch) take ownership of what they changed,
//! without conflicts, as in the real server.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::errors::ApiError;

pub type Path = Vec<String>;

/// Which part of the object a write manages: the main resource or its status subresource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Main,
    Status,
}

impl Scope {
    fn subresource(self) -> Option<String> {
        match self {
            Scope::Main => None,
            Scope::Status => Some("status".into()),
        }
    }

    fn contains(self, p: &Path) -> bool {
        (p.first().map(String::as_str) == Some("status")) == (self == Scope::Status)
    }

    pub fn paths(self, v: &Value) -> BTreeSet<Path> {
        match self {
            Scope::Main => leaf_paths(v),
            Scope::Status => match v.get("status").and_then(Value::as_object) {
                Some(m) if !m.is_empty() => m.keys().map(|k| vec!["status".to_string(), k.clone()]).collect(),
                _ if v.get("status").is_some_and(|s| !s.is_null()) => BTreeSet::from([vec!["status".to_string()]]),
                _ => BTreeSet::new(),
            },
        }
    }
}

/// Fields owned at our granularity. `status` belongs to the status subresource and is left out.
pub fn leaf_paths(v: &Value) -> BTreeSet<Path> {
    let mut out = BTreeSet::new();
    let Some(obj) = v.as_object() else { return out };
    for (k, val) in obj {
        match k.as_str() {
            "apiVersion" | "kind" | "status" => {}
            "metadata" => {
                for sub in ["labels", "annotations"] {
                    if let Some(m) = val[sub].as_object() {
                        for key in m.keys() {
                            out.insert(vec!["metadata".into(), sub.into(), key.clone()]);
                        }
                    }
                }
                for sub in ["finalizers", "ownerReferences"] {
                    if val.get(sub).is_some() {
                        out.insert(vec!["metadata".into(), sub.into()]);
                    }
                }
            }
            _ => match val.as_object() {
                Some(m) if !m.is_empty() => {
                    for key in m.keys() {
                        out.insert(vec![k.clone(), key.clone()]);
                    }
                }
                _ => {
                    out.insert(vec![k.clone()]);
                }
            },
        }
    }
    out
}

pub fn get_path<'v>(v: &'v Value, p: &Path) -> Option<&'v Value> {
    p.iter().try_fold(v, |cur, seg| cur.get(seg))
}

fn set_path(v: &mut Value, p: &Path, val: Value) {
    let Some((last, parents)) = p.split_last() else { return };
    let mut cur = v;
    for seg in parents {
        if !cur.get(seg).is_some_and(Value::is_object) {
            if !cur.is_object() {
                *cur = json!({});
            }
            cur[seg.as_str()] = json!({});
        }
        cur = &mut cur[seg.as_str()];
    }
    if !cur.is_object() {
        *cur = json!({});
    }
    cur[last.as_str()] = val;
}

fn remove_path(v: &mut Value, p: &Path) {
    let Some((last, parents)) = p.split_last() else { return };
    let mut cur = v;
    for seg in parents {
        match cur.get_mut(seg) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last);
    }
}

pub fn path_string(p: &Path) -> String {
    p.iter().map(|s| format!(".{s}")).collect()
}

/// One managedFields entry, decoded.
#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    subresource: Option<String>,
    fields: BTreeSet<Path>,
}

fn decode_fields(v: &Value, prefix: &mut Path, out: &mut BTreeSet<Path>) {
    let Some(m) = v.as_object() else { return };
    let mut leaf = true;
    for (k, child) in m {
        if let Some(name) = k.strip_prefix("f:") {
            leaf = false;
            prefix.push(name.to_string());
            decode_fields(child, prefix, out);
            prefix.pop();
        }
    }
    // Keys we do not model (`k:`, `v:`, `.`) make the enclosing field the owned unit.
    if leaf && !prefix.is_empty() {
        out.insert(prefix.clone());
    }
}

fn encode_fields(fields: &BTreeSet<Path>) -> Value {
    let mut root = json!({});
    for p in fields {
        let mut cur = &mut root;
        for seg in p {
            let key = format!("f:{seg}");
            if !cur.get(&key).is_some_and(Value::is_object) {
                cur[key.as_str()] = json!({});
            }
            cur = &mut cur[key.as_str()];
        }
    }
    root
}

fn read_entries(obj: &Value) -> Vec<Entry> {
    let mut out = Vec::new();
    for e in obj.pointer("/metadata/managedFields").and_then(Value::as_array).into_iter().flatten() {
        let mut fields = BTreeSet::new();
        decode_fields(&e["fieldsV1"], &mut Vec::new(), &mut fields);
        out.push(Entry {
            manager: e["manager"].as_str().unwrap_or("").to_string(),
            operation: e["operation"].as_str().unwrap_or("Update").to_string(),
            api_version: e["apiVersion"].as_str().unwrap_or("").to_string(),
            time: e["time"].as_str().unwrap_or("").to_string(),
            subresource: e["subresource"].as_str().map(String::from),
            fields,
        });
    }
    out
}

fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut m = Map::new();
            m.insert("manager".into(), json!(e.manager));
            m.insert("operation".into(), json!(e.operation));
            m.insert("apiVersion".into(), json!(e.api_version));
            m.insert("time".into(), json!(e.time));
            m.insert("fieldsType".into(), json!("FieldsV1"));
            m.insert("fieldsV1".into(), encode_fields(&e.fields));
            if let Some(s) = &e.subresource {
                m.insert("subresource".into(), json!(s));
            }
            Value::Object(m)
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

fn entry_mut<'e>(
    entries: &'e mut Vec<Entry>,
    manager: &str,
    operation: &str,
    api_version: &str,
    scope: Scope,
) -> &'e mut Entry {
    let sub = scope.subresource();
    let idx = entries.iter().position(|e| e.manager == manager && e.operation == operation && e.subresource == sub);
    let idx = match idx {
        Some(i) => i,
        None => {
            entries.push(Entry {
                manager: manager.to_string(),
                operation: operation.to_string(),
                api_version: api_version.to_string(),
                time: String::new(),
                subresource: sub,
                fields: BTreeSet::new(),
            });
            entries.len() - 1
        }
    };
    &mut entries[idx]
}

/// A non-apply write by `manager`: it owns what it changed; fields that disappeared are owned by nobody.
/// `new` carries over `old`'s managedFields on entry. Only fields of `scope` are considered.
pub fn record_update(old: Option<&Value>, new: &mut Value, manager: &str, api_version: &str, now: &str, scope: Scope) {
    let mut entries = read_entries(old.unwrap_or(&Value::Null));
    let new_paths = scope.paths(new);
    let changed: BTreeSet<Path> =
        new_paths.iter().filter(|p| old.and_then(|o| get_path(o, p)) != get_path(new, p)).cloned().collect();
    for e in entries.iter_mut() {
        e.fields.retain(|p| {
            !scope.contains(p) || (new_paths.contains(p) && !(changed.contains(p) && e.manager != manager))
        });
    }
    if !changed.is_empty() {
        let e = entry_mut(&mut entries, manager, "Update", api_version, scope);
        e.fields.extend(changed);
        e.time = now.to_string();
        e.api_version = api_version.to_string();
    }
    write_entries(new, &entries);
}

fn print_manager(e: &Entry) -> String {
    if e.operation == "Update" {
        format!("{:?} using {}", e.manager, e.api_version)
    } else {
        format!("{:?}", e.manager)
    }
}

/// Server-side apply of `config` by `manager` onto `current` (None: the object does not exist yet).
/// Returns the merged object with its managedFields, or the real 409 conflict.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    current: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
    api_version: &str,
    now: &str,
    scope: Scope,
) -> Result<Value, ApiError> {
    let mut entries = current.map(read_entries).unwrap_or_default();
    let applied = scope.paths(config);
    let sub = scope.subresource();
    let base = current.cloned().unwrap_or_else(|| json!({}));

    let mut conflicts: Vec<(String, Path)> = Vec::new();
    for p in &applied {
        if get_path(&base, p) == get_path(config, p) {
            continue;
        }
        for e in entries.iter().filter(|e| e.manager != manager && e.fields.contains(p)) {
            conflicts.push((print_manager(e), p.clone()));
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflict_error(&conflicts));
    }
    let changed: BTreeSet<&Path> = applied.iter().filter(|p| get_path(&base, p) != get_path(config, p)).collect();
    for e in entries.iter_mut().filter(|e| e.manager != manager) {
        e.fields.retain(|p| !changed.contains(p));
    }

    let mut out = base;
    // Fields this manager applied before but no longer does are removed unless someone else owns them.
    let previous: BTreeSet<Path> = entries
        .iter()
        .filter(|e| e.manager == manager && e.operation == "Apply" && e.subresource == sub)
        .flat_map(|e| e.fields.iter().cloned())
        .collect();
    for p in previous.difference(&applied) {
        let others = entries
            .iter()
            .any(|e| !(e.manager == manager && e.operation == "Apply" && e.subresource == sub) && e.fields.contains(p));
        if !others {
            remove_path(&mut out, p);
        }
    }
    for p in &applied {
        if let Some(v) = get_path(config, p) {
            set_path(&mut out, p, v.clone());
        }
    }
    for k in ["apiVersion", "kind"] {
        if let Some(v) = config.get(k) {
            out[k] = v.clone();
        }
    }
    if let Some(meta) = config.get("metadata") {
        for k in ["name", "namespace", "generateName"] {
            if let Some(v) = meta.get(k) {
                out["metadata"][k] = v.clone();
            }
        }
    }
    let e = entry_mut(&mut entries, manager, "Apply", api_version, scope);
    e.fields = applied;
    e.time = now.to_string();
    e.api_version = api_version.to_string();
    write_entries(&mut out, &entries);
    Ok(out)
}

/// fieldmanager's NewConflictError: one cause per field; the message groups fields by manager.
fn conflict_error(conflicts: &[(String, Path)]) -> ApiError {
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(m, p)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with {m}"), "field": path_string(p)}))
        .collect();
    let msg = if conflicts.len() == 1 {
        format!("Apply failed with 1 conflict: conflict with {}: {}", conflicts[0].0, path_string(&conflicts[0].1))
    } else {
        let mut by_manager: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (m, p) in conflicts {
            by_manager.entry(m).or_default().push(path_string(p));
        }
        let mut lines = Vec::new();
        for (m, paths) in by_manager {
            lines.push(format!("conflicts with {m}:"));
            lines.extend(paths.into_iter().map(|p| format!("- {p}")));
        }
        format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
    };
    ApiError::new(409, "Conflict", msg, Some(json!({"causes": causes})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_conflicts_and_force() {
        let mut created =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
        record_update(None, &mut created, "kubectl-create", "v1", "t0", Scope::Main);
        let cfg =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "2", "b": "x"}});
        let err = apply(Some(&created), &cfg, "mgr", false, "v1", "t1", Scope::Main).unwrap_err();
        assert_eq!(err.code, 409);
        assert_eq!(err.message(), r#"Apply failed with 1 conflict: conflict with "kubectl-create" using v1: .data.a"#);
        assert_eq!(err.body["details"]["causes"][0]["field"], ".data.a");
        let merged = apply(Some(&created), &cfg, "mgr", true, "v1", "t1", Scope::Main).unwrap();
        assert_eq!(merged["data"], json!({"a": "2", "b": "x"}));
        // Same value: shared ownership, no conflict.
        let same = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
        assert!(apply(Some(&created), &same, "other", false, "v1", "t1", Scope::Main).is_ok());
    }

    #[test]
    fn fields_dropped_from_config_are_removed() {
        let cfg1 = json!({"metadata": {"name": "c", "labels": {"x": "1"}}, "data": {"a": "1", "b": "2"}});
        let first = apply(None, &cfg1, "m", false, "v1", "t", Scope::Main).unwrap();
        let cfg2 = json!({"metadata": {"name": "c"}, "data": {"a": "1"}});
        let second = apply(Some(&first), &cfg2, "m", false, "v1", "t", Scope::Main).unwrap();
        assert_eq!(second["data"], json!({"a": "1"}));
        assert!(second["metadata"]["labels"].get("x").is_none());
        assert_eq!(second["metadata"]["managedFields"][0]["fieldsV1"], json!({"f:data": {"f:a": {}}}));
    }

    #[test]
    fn status_is_managed_separately() {
        let obj =
            apply(None, &json!({"metadata": {"name": "c"}, "spec": {"a": 1}}), "m", false, "v1", "t", Scope::Main)
                .unwrap();
        let with_status = apply(
            Some(&obj),
            &json!({"metadata": {"name": "c"}, "status": {"ready": true}}),
            "s",
            false,
            "v1",
            "t",
            Scope::Status,
        )
        .unwrap();
        assert_eq!(with_status["status"]["ready"], true);
        assert_eq!(with_status["spec"]["a"], 1);
        let entries = with_status["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(entries[1]["subresource"], "status");
        // A main-resource update does not drop status ownership.
        let mut next = with_status.clone();
        next["spec"]["a"] = json!(2);
        record_update(Some(&with_status), &mut next, "u", "v1", "t", Scope::Main);
        let mf = next["metadata"]["managedFields"].as_array().unwrap();
        assert!(
            mf.iter().any(|e| e["subresource"] == "status" && e["fieldsV1"] == json!({"f:status": {"f:ready": {}}}))
        );
    }
}
