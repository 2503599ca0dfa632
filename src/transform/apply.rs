//! What rules do to a mirror (BEHAVIOR.md §I.6), in order, each seeing the previous ones' result.
//!
//! - `value` / `template` set the path, creating missing maps on the way (a missing key followed
//!   by an index becomes an empty list, which then fails "out of bounds", as in Go). A Secret's
//!   `data.<key>` receives the base64 of the text. The result is a string, or typed (see
//!   [`ValueType`]).
//! - `merge` adds its entries to the map at the path (rule wins per key, shallow), creating it and
//!   missing parents; values keep their JSON types and are written verbatim (not base64, not
//!   templated). Index segments step into list elements (Go could not merge below a list).
//! - `delete` removes the key (or, unlike Go, the list element) at the path; a missing path is not
//!   an error.

use serde_json::{Map, Value};

use super::path::Seg;
use super::pattern;
use super::rules::{Action, Rule, RuleSet, ValueType};
use super::template::{self, Data};
use super::{Error, ErrorKind};
use crate::util::base64;

impl RuleSet {
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Applies every rule whose `namespacePattern` matches the target. Strict: the first failing
    /// rule's error. Otherwise failing rules are skipped (their partial effects stay, as in Go)
    /// and returned.
    pub fn apply(&self, obj: &mut Value, data: &Data<'_>, strict: bool) -> Result<Vec<Error>, Error> {
        let mut skipped = Vec::new();
        for rule in &self.rules {
            if !pattern::matches(&rule.namespace_pattern, data.target_namespace) {
                continue;
            }
            match apply_rule(rule, obj, data, self.template_limits) {
                Ok(()) => {}
                Err(e) if strict => return Err(e),
                Err(e) => skipped.push(e),
            }
        }
        Ok(skipped)
    }
}

fn apply_rule(rule: &Rule, obj: &mut Value, data: &Data<'_>, limits: template::Limits) -> Result<(), Error> {
    let fail = |kind: ErrorKind, detail: String| Error::rule(kind, rule.n, &rule.path.text, detail);
    match &rule.action {
        Action::Value(text) => set(obj, rule, text.clone()).map_err(|(k, d)| fail(k, d)),
        Action::Template(t) => {
            let out = t.execute(data, limits).map_err(|e| {
                let kind = if e.kind == template::ErrorKind::Limit { ErrorKind::Limit } else { ErrorKind::Template };
                fail(kind, e.to_string())
            })?;
            set(obj, rule, out).map_err(|(k, d)| fail(k, d))
        }
        Action::Merge(entries) => merge(obj, &rule.path.segs, entries).map_err(|d| fail(ErrorKind::Path, d)),
        Action::Delete => {
            delete(obj, &rule.path.segs);
            Ok(())
        }
    }
}

fn is_secret(obj: &Value) -> bool {
    obj.get("kind").and_then(Value::as_str) == Some("Secret")
        && obj.get("apiVersion").and_then(Value::as_str) == Some("v1")
}

fn seg_text(seg: &Seg) -> String {
    match seg {
        Seg::Key(k) => k.clone(),
        Seg::Index(i) => format!("[{i}]"),
    }
}

fn element(arr: &mut [Value], i: i64) -> Result<&mut Value, String> {
    let len = arr.len();
    usize::try_from(i)
        .ok()
        .and_then(|i| arr.get_mut(i))
        .ok_or_else(|| format!("array index {i} out of bounds (length {len})"))
}

/// The value written by a value/template rule: the Secret rule, then the type rule.
fn typed(text: String, ty: Option<ValueType>, existing: Option<&Value>) -> Result<Value, String> {
    let int = |t: &str| t.trim().parse::<i64>().ok().map(Value::from);
    let number = |t: &str| {
        int(t).or_else(|| t.trim().parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Value::Number))
    };
    let boolean = |t: &str| match t.trim() {
        "true" => Some(Value::Bool(true)),
        "false" => Some(Value::Bool(false)),
        _ => None,
    };
    Ok(match ty {
        Some(ValueType::String) => Value::String(text),
        Some(ValueType::Int) => int(&text).ok_or("the value is not an integer (type: int)")?,
        Some(ValueType::Number) => number(&text).ok_or("the value is not a number (type: number)")?,
        Some(ValueType::Bool) => boolean(&text).ok_or("the value is not true or false (type: bool)")?,
        Some(ValueType::Json) => serde_json::from_str(&text).map_err(|_| "the value is not valid JSON (type: json)")?,
        None => match existing {
            Some(Value::Number(_)) => number(&text).unwrap_or(Value::String(text)),
            Some(Value::Bool(_)) => boolean(&text).unwrap_or(Value::String(text)),
            _ => Value::String(text),
        },
    })
}

fn set(obj: &mut Value, rule: &Rule, text: String) -> Result<(), (ErrorKind, String)> {
    let segs = &rule.path.segs;
    let path_err = |d: String| (ErrorKind::Path, d);
    let secret_data = is_secret(obj)
        && matches!(segs.first(), Some(Seg::Key(k)) if k == "data")
        && matches!(segs.last(), Some(Seg::Key(_)));
    let Some((last, parents)) = segs.split_last() else { return Err(path_err("empty path".into())) };
    let mut cur = obj;
    for (i, seg) in parents.iter().enumerate() {
        cur = match seg {
            Seg::Index(n) => match cur {
                Value::Array(arr) => element(arr, *n).map_err(path_err)?,
                _ => return Err(path_err(format!("path segment [{n}] requires an array"))),
            },
            Seg::Key(k) => match cur {
                Value::Object(m) => m.entry(k.clone()).or_insert_with(|| match segs.get(i + 1) {
                    Some(Seg::Index(_)) => Value::Array(Vec::new()),
                    _ => Value::Object(Map::new()),
                }),
                _ => return Err(path_err(format!("path segment {k} requires a map"))),
            },
        };
    }
    let slot: &mut Value = match last {
        Seg::Index(n) => match cur {
            Value::Array(arr) => element(arr, *n).map_err(path_err)?,
            _ => return Err(path_err(format!("path segment [{n}] requires an array"))),
        },
        Seg::Key(k) => match cur {
            Value::Object(m) => m.entry(k.clone()).or_insert(Value::Null),
            _ => return Err(path_err(format!("cannot set key {k} on non-map"))),
        },
    };
    let value = if secret_data {
        match rule.value_type {
            None | Some(ValueType::String) => Value::String(base64::encode(text.as_bytes())),
            Some(_) => return Err((ErrorKind::Type, "a Secret's data holds base64 text; type cannot be used".into())),
        }
    } else {
        let existing = (!slot.is_null()).then_some(&*slot);
        typed(text, rule.value_type, existing).map_err(|d| (ErrorKind::Type, d))?
    };
    *slot = value;
    Ok(())
}

fn merge(obj: &mut Value, segs: &[Seg], entries: &Map<String, Value>) -> Result<(), String> {
    let mut cur = obj;
    for (i, seg) in segs.iter().enumerate() {
        let so_far = || segs[..=i].iter().map(seg_text).collect::<Vec<_>>().join(".");
        cur = match seg {
            Seg::Index(n) => match cur {
                Value::Array(arr) => element(arr, *n)?,
                _ => return Err(format!("path segment [{n}] requires an array")),
            },
            Seg::Key(k) => match cur {
                Value::Object(m) => m.entry(k.clone()).or_insert_with(|| Value::Object(Map::new())),
                _ => {
                    let parent = segs[..i].iter().map(seg_text).collect::<Vec<_>>().join(".");
                    return Err(format!("value cannot be set because {parent} is not a map"));
                }
            },
        };
        if i + 1 == segs.len() {
            let Value::Object(target) = cur else {
                return Err(format!("value cannot be merged because {} is not a map", so_far()));
            };
            for (k, v) in entries {
                target.insert(k.clone(), v.clone());
            }
            return Ok(());
        }
    }
    Ok(())
}

fn delete(obj: &mut Value, segs: &[Seg]) {
    let Some((last, parents)) = segs.split_last() else { return };
    let mut cur = obj;
    for seg in parents {
        let next = match (seg, cur) {
            (Seg::Key(k), Value::Object(m)) => m.get_mut(k),
            (Seg::Index(n), Value::Array(a)) => usize::try_from(*n).ok().and_then(|n| a.get_mut(n)),
            _ => None,
        };
        match next {
            Some(v) => cur = v,
            None => return,
        }
    }
    match (last, cur) {
        (Seg::Key(k), Value::Object(m)) => {
            m.remove(k);
        }
        (Seg::Index(n), Value::Array(a)) => {
            if let Ok(n) = usize::try_from(*n)
                && n < a.len()
            {
                a.remove(n);
            }
        }
        _ => {}
    }
}
