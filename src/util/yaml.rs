//! YAML documents (kubeconfigs, manifests, transform rules) read with yaml-rust2 and bridged into
//! `serde_json::Value`, so the rest of the code deals with one data model.
//!
//! yaml-rust2 implements YAML 1.2's core schema: `yes`/`no`/`on` stay strings, unlike kubectl's
//! YAML 1.1 reader. Kubernetes manifests quote such values in practice, so the difference is noted,
//! not emulated.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;
use yaml_rust2::{Event, ScanError, Yaml, YamlEmitter, YamlLoader};

/// Most nodes a text may expand to once aliases are resolved. yaml-rust2 copies an anchored node
/// at every alias, so ten lines of `&a [*b, *b, ...]` ("billion laughs") would otherwise expand to
/// gigabytes; kubeconfigs and manifests hold thousands of nodes, not millions.
pub const MAX_NODES: u64 = 1_000_000;
/// Deepest nesting accepted: converting and dropping a tree recurse once per level.
pub const MAX_DEPTH: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError(pub String);

impl std::fmt::Display for YamlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for YamlError {}

fn scan_error(e: &ScanError) -> YamlError {
    let m = e.marker();
    YamlError(format!("line {} column {}: {}", m.line(), m.col() + 1, e.info()))
}

/// Counts the nodes a text expands to (aliases included) and its depth, without building it.
#[derive(Default)]
struct Budget {
    /// Open collections: (anchor id, nodes so far).
    open: Vec<(usize, u64)>,
    /// Expanded size of each anchored node.
    anchors: HashMap<usize, u64>,
    total: u64,
    too_deep: bool,
}

impl Budget {
    fn add(&mut self, n: u64) {
        match self.open.last_mut() {
            Some((_, size)) => *size = size.saturating_add(n),
            None => self.total = self.total.saturating_add(n),
        }
    }

    fn over(&self) -> bool {
        self.total > MAX_NODES || self.open.iter().any(|(_, n)| *n > MAX_NODES)
    }
}

impl MarkedEventReceiver for Budget {
    fn on_event(&mut self, ev: Event, _: Marker) {
        if self.too_deep || self.over() {
            return;
        }
        match ev {
            Event::Scalar(_, _, anchor, _) => {
                if anchor > 0 {
                    self.anchors.insert(anchor, 1);
                }
                self.add(1);
            }
            Event::Alias(anchor) => {
                let n = self.anchors.get(&anchor).copied().unwrap_or(1);
                self.add(n);
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                self.open.push((anchor, 1));
                self.too_deep = self.open.len() > MAX_DEPTH;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((anchor, n)) = self.open.pop() {
                    if anchor > 0 {
                        self.anchors.insert(anchor, n);
                    }
                    self.add(n);
                }
            }
            _ => {}
        }
    }
}

/// Every document of a (possibly multi-document) YAML text, raw. A text that would expand past
/// [`MAX_NODES`] or nest deeper than [`MAX_DEPTH`] is refused before anything is built.
pub fn load_raw(text: &str) -> Result<Vec<Yaml>, YamlError> {
    let mut budget = Budget::default();
    Parser::new_from_str(text).load(&mut budget, true).map_err(|e| scan_error(&e))?;
    if budget.too_deep {
        return Err(YamlError(format!("nested deeper than {MAX_DEPTH} levels")));
    }
    if budget.over() {
        return Err(YamlError(format!("expands to more than {MAX_NODES} nodes (aliases included)")));
    }
    YamlLoader::load_from_str(text).map_err(|e| scan_error(&e))
}

/// Every non-empty document of a YAML text as JSON values.
pub fn load_all(text: &str) -> Result<Vec<Value>, YamlError> {
    load_raw(text)?.iter().filter(|d| !matches!(d, Yaml::Null)).map(to_json).collect()
}

/// Exactly one document (an empty text is `null`).
pub fn load_one(text: &str) -> Result<Value, YamlError> {
    let mut docs = load_raw(text)?;
    match docs.len() {
        0 => Ok(Value::Null),
        1 => to_json(&docs.remove(0)),
        n => Err(YamlError(format!("expected one YAML document, found {n}"))),
    }
}

/// The literal text of a scalar, for places where `1.50` must stay `"1.50"`.
pub fn scalar_text(y: &Yaml) -> Option<String> {
    match y {
        Yaml::Real(s) | Yaml::String(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

pub fn to_json(y: &Yaml) -> Result<Value, YamlError> {
    Ok(match y {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Integer(i) => Value::Number((*i).into()),
        Yaml::Real(s) => {
            let f = y.as_f64().ok_or_else(|| YamlError(format!("invalid number {s:?}")))?;
            Number::from_f64(f).map(Value::Number).unwrap_or_else(|| Value::String(s.clone()))
        }
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Array(items) => Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        Yaml::Hash(h) => {
            let mut m = Map::new();
            for (k, v) in h {
                let key = match k {
                    Yaml::Null => "null".to_string(),
                    other => scalar_text(other).ok_or_else(|| YamlError("mapping keys must be scalars".to_string()))?,
                };
                m.insert(key, to_json(v)?);
            }
            Value::Object(m)
        }
        Yaml::Alias(_) => return Err(YamlError("unresolved YAML alias".to_string())),
        Yaml::BadValue => return Err(YamlError("invalid YAML value".to_string())),
    })
}

fn from_json(v: &Value) -> Yaml {
    match v {
        Value::Null => Yaml::Null,
        Value::Bool(b) => Yaml::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Yaml::Integer(i),
            None => Yaml::Real(n.to_string()),
        },
        Value::String(s) => Yaml::String(s.clone()),
        Value::Array(items) => Yaml::Array(items.iter().map(from_json).collect()),
        Value::Object(m) => {
            let mut h = yaml_rust2::yaml::Hash::new();
            for (k, v) in m {
                h.insert(Yaml::String(k.clone()), from_json(v));
            }
            Yaml::Hash(h)
        }
    }
}

/// One YAML document (starting with `---`) for a JSON value: how objects are printed for people.
pub fn dump(v: &Value) -> Result<String, YamlError> {
    let mut out = String::new();
    let mut emitter = YamlEmitter::new(&mut out);
    emitter.multiline_strings(true);
    emitter.dump(&from_json(v)).map_err(|e| YamlError(format!("cannot write YAML: {e}")))?;
    out.push('\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bridges_scalars_and_nesting() {
        let v = load_one("a: 1\nb: 1.5\nc: true\nd: ~\ne: [x, 2]\nf: {g: h}\nyes_is: yes\n").unwrap();
        assert_eq!(v, json!({"a": 1, "b": 1.5, "c": true, "d": null, "e": ["x", 2], "f": {"g": "h"}, "yes_is": "yes"}));
    }

    #[test]
    fn multi_document_skips_empty() {
        let docs = load_all("---\na: 1\n---\n---\nb: 2\n").unwrap();
        assert_eq!(docs, vec![json!({"a": 1}), json!({"b": 2})]);
    }

    #[test]
    fn errors_carry_position() {
        let e = load_one("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.0.contains("line"), "{e}");
        assert!(load_one("a: 1\n---\nb: 2").is_err());
    }

    #[test]
    fn dump_reads_back_the_same_value() {
        let v = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "true"}},
            "data": {"n": "123", "f": "1.50", "yes": "yes", "empty": "", "multi": "a\nb\n", "colon": "a: b"},
            "list": [1, 2.5, null, false]});
        let text = dump(&v).unwrap();
        assert!(text.starts_with("---"), "{text}");
        assert_eq!(load_one(&text).unwrap(), v, "{text}");
    }

    #[test]
    fn alias_bombs_and_deep_nesting_are_refused_before_building() {
        // Nine levels of nine aliases: 9^9 (387 million) nodes from a few hundred bytes.
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 9].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let e = load_one(&text).unwrap_err();
        assert!(e.0.contains("expands to more than"), "{e}");
        // A few aliases are fine.
        let v = load_one("base: &b {k: v}\nuse: *b\n").unwrap();
        assert_eq!(v, json!({"base": {"k": "v"}, "use": {"k": "v"}}));
        let deep = format!("{}1{}", "[".repeat(300), "]".repeat(300));
        assert!(load_one(&deep).is_err());
        let deep_block: String = (0..300).map(|i| format!("{}k:\n", " ".repeat(i))).collect();
        let e = load_one(&deep_block).unwrap_err();
        assert!(e.0.contains("nested deeper"), "{e}");
    }

    #[test]
    fn literal_scalar_text_is_kept() {
        let docs = load_raw("v: 1.50").unwrap();
        assert_eq!(scalar_text(&docs[0]["v"]).as_deref(), Some("1.50"));
    }
}
