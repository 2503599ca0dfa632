//! YAML documents (kubeconfigs, manifests, transform rules) read with yaml-rust2 and bridged into
//! `serde_json::Value`, so the rest of the code deals with one data model.
//!
//! yaml-rust2 implements YAML 1.2's core schema: `yes`/`no`/`on` stay strings, unlike kubectl's
//! YAML 1.1 reader. Kubernetes manifests quote such values in practice, so the difference is noted,
//! not emulated.

use serde_json::{Map, Number, Value};
use yaml_rust2::{Yaml, YamlEmitter, YamlLoader};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError(pub String);

impl std::fmt::Display for YamlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for YamlError {}

/// Every document of a (possibly multi-document) YAML text, raw.
pub fn load_raw(text: &str) -> Result<Vec<Yaml>, YamlError> {
    YamlLoader::load_from_str(text).map_err(|e| {
        let m = e.marker();
        YamlError(format!("line {} column {}: {}", m.line(), m.col() + 1, e.info()))
    })
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
    fn literal_scalar_text_is_kept() {
        let docs = load_raw("v: 1.50").unwrap();
        assert_eq!(scalar_text(&docs[0]["v"]).as_deref(), Some("1.50"));
    }
}
