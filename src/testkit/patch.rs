//! JSON merge patch (RFC 7386), JSON patch (RFC 6902) and a simplified strategic merge patch.
//!
//! Strategic merge patch simplifications (documented in README): it is a merge patch in which
//! - lists of objects that all carry a merge key (`name`, or `uid` for ownerReferences, `containerPort`,
//!   `port`, `ip`, `type` for conditions) are merged element-wise by that key;
//! - `metadata.finalizers` is merged as a set (its real patch strategy), as are primitive lists under
//!   `$setElementOrder`-free patches for `finalizers`;
//! - the directives `$patch: replace|delete` (on maps and list elements) and `$deleteFromPrimitiveList/`
//!   are honoured; `$setElementOrder/` and `$retainKeys` are accepted and ignored.
//!
//! Other lists are replaced, as a merge patch would.

use serde_json::{Map, Value};

pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Some(p) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Some(t) = target.as_object_mut() else { return };
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn split_pointer(path: &str) -> Result<Vec<String>, String> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let rest = path.strip_prefix('/').ok_or_else(|| format!("invalid JSON pointer {path:?}"))?;
    Ok(rest.split('/').map(unescape).collect())
}

fn parent_mut<'v>(root: &'v mut Value, tokens: &[String], path: &str) -> Result<&'v mut Value, String> {
    let mut cur = root;
    for t in tokens {
        cur = match cur {
            Value::Object(m) => m.get_mut(t).ok_or_else(|| format!("missing path: {path}"))?,
            Value::Array(a) => {
                let i: usize = t.parse().map_err(|_| format!("invalid index {t:?} in {path}"))?;
                a.get_mut(i).ok_or_else(|| format!("index out of range in {path}"))?
            }
            _ => return Err(format!("missing path: {path}")),
        };
    }
    Ok(cur)
}

fn add(root: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let tokens = split_pointer(path)?;
    let Some((last, parents)) = tokens.split_last() else {
        *root = value;
        return Ok(());
    };
    match parent_mut(root, parents, path)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(value);
            } else {
                let i: usize = last.parse().map_err(|_| format!("invalid index {last:?} in {path}"))?;
                if i > a.len() {
                    return Err(format!("index out of range in {path}"));
                }
                a.insert(i, value);
            }
        }
        _ => return Err(format!("missing path: {path}")),
    }
    Ok(())
}

fn remove(root: &mut Value, path: &str) -> Result<Value, String> {
    let tokens = split_pointer(path)?;
    let (last, parents) = tokens.split_last().ok_or("cannot remove the document root")?;
    match parent_mut(root, parents, path)? {
        Value::Object(m) => {
            m.remove(last).ok_or_else(|| format!("unable to remove nonexistent key: {last}: missing value"))
        }
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| format!("invalid index {last:?} in {path}"))?;
            if i >= a.len() {
                return Err(format!("index out of range in {path}"));
            }
            Ok(a.remove(i))
        }
        _ => Err(format!("missing path: {path}")),
    }
}

fn get<'v>(root: &'v Value, path: &str) -> Result<&'v Value, String> {
    let tokens = split_pointer(path)?;
    let mut cur = root;
    for t in &tokens {
        cur = match cur {
            Value::Object(m) => m.get(t),
            Value::Array(a) => t.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        }
        .ok_or_else(|| format!("missing path: {path}"))?;
    }
    Ok(cur)
}

/// RFC 6902. Errors carry the reason the apiserver would put in its 422/500 message.
pub fn json_patch(target: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops.as_array().ok_or("json patch must be an array of operations")?;
    for op in ops {
        let kind = op["op"].as_str().ok_or("operation without \"op\"")?;
        let path = op["path"].as_str().ok_or("operation without \"path\"")?;
        match kind {
            "add" => add(target, path, op.get("value").cloned().ok_or("add operation without value")?)?,
            "remove" => {
                remove(target, path)?;
            }
            "replace" => {
                remove(target, path)?;
                add(target, path, op.get("value").cloned().ok_or("replace operation without value")?)?;
            }
            "move" => {
                let from = op["from"].as_str().ok_or("move operation without from")?;
                let v = remove(target, from)?;
                add(target, path, v)?;
            }
            "copy" => {
                let from = op["from"].as_str().ok_or("copy operation without from")?;
                let v = get(target, from)?.clone();
                add(target, path, v)?;
            }
            "test" => {
                let want = op.get("value").ok_or("test operation without value")?;
                if get(target, path)? != want {
                    return Err(format!("testing value {path} failed"));
                }
            }
            other => return Err(format!("Unexpected kind: {other}")),
        }
    }
    Ok(())
}

const MERGE_KEYS: &[&str] = &["name", "uid", "containerPort", "port", "ip", "type", "mountPath", "devicePath"];

fn merge_key(items: &[Value]) -> Option<&'static str> {
    MERGE_KEYS.iter().copied().find(|k| !items.is_empty() && items.iter().all(|i| i.get(*k).is_some()))
}

pub fn strategic_merge_patch(target: &mut Value, patch: &Value) {
    smp(target, patch)
}

fn smp(target: &mut Value, patch: &Value) {
    let Some(p) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    match p.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut clean = p.clone();
            clean.remove("$patch");
            *target = Value::Object(clean);
            return;
        }
        Some("delete") => {
            *target = Value::Null;
            return;
        }
        _ => {}
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Some(t) = target.as_object_mut() else { return };
    for (k, v) in p {
        if k.starts_with("$setElementOrder/") || k == "$retainKeys" || k == "$patch" {
            continue;
        }
        if let Some(list_field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(cur)), Some(del)) = (t.get_mut(list_field), v.as_array()) {
                cur.retain(|x| !del.contains(x));
            }
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        let slot = t.entry(k.clone()).or_insert(Value::Null);
        match (slot.as_array_mut(), v.as_array()) {
            (Some(cur), Some(new)) => merge_list(cur, new, k),
            _ if v.is_object() => {
                smp(slot, v);
                if slot.is_null() {
                    t.remove(k);
                }
            }
            _ => *slot = v.clone(),
        }
    }
}

fn merge_list(cur: &mut Vec<Value>, new: &[Value], field: &str) {
    if field == "finalizers" {
        for v in new {
            if !cur.contains(v) {
                cur.push(v.clone());
            }
        }
        return;
    }
    let Some(key) = merge_key(new).filter(|k| cur.iter().all(|i| i.get(*k).is_some())) else {
        *cur = new.iter().filter(|v| v.get("$patch").is_none()).cloned().collect();
        return;
    };
    for item in new {
        let id = &item[key];
        let pos = cur.iter().position(|c| &c[key] == id);
        match (pos, item.get("$patch").and_then(Value::as_str)) {
            (Some(i), Some("delete")) => {
                cur.remove(i);
            }
            (None, Some("delete")) => {}
            (Some(i), _) => smp(&mut cur[i], item),
            (None, _) => cur.push(item.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rfc7386_examples() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}}));
    }

    #[test]
    fn rfc6902_ops() {
        let mut t = json!({"a": [1, 2], "b": {"c": 1}});
        json_patch(
            &mut t,
            &json!([
                {"op": "add", "path": "/a/-", "value": 3},
                {"op": "replace", "path": "/b/c", "value": 2},
                {"op": "copy", "from": "/b", "path": "/d"},
                {"op": "move", "from": "/d/c", "path": "/e"},
                {"op": "remove", "path": "/a/0"},
                {"op": "test", "path": "/e", "value": 2},
                {"op": "add", "path": "/metadata~1x", "value": true}
            ]),
        )
        .unwrap();
        assert_eq!(t, json!({"a": [2, 3], "b": {"c": 2}, "d": {}, "e": 2, "metadata/x": true}));
        assert!(json_patch(&mut t, &json!([{"op": "test", "path": "/e", "value": 3}])).is_err());
        assert!(json_patch(&mut t, &json!([{"op": "remove", "path": "/nope"}])).is_err());
    }

    #[test]
    fn strategic_merges_named_lists_and_finalizers() {
        let mut t = json!({"metadata": {"finalizers": ["a"]},
            "spec": {"containers": [{"name": "x", "image": "1"}, {"name": "y", "image": "1"}]}});
        strategic_merge_patch(
            &mut t,
            &json!({"metadata": {"finalizers": ["b"]},
                "spec": {"containers": [{"name": "y", "image": "2"}, {"name": "x", "$patch": "delete"}]}}),
        );
        assert_eq!(t["metadata"]["finalizers"], json!(["a", "b"]));
        assert_eq!(t["spec"]["containers"], json!([{"name": "y", "image": "2"}]));
        strategic_merge_patch(&mut t, &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}));
        assert_eq!(t["metadata"]["finalizers"], json!(["b"]));
    }
}
