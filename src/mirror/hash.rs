//! The content hash stored on every mirror (`source-content-hash`), so an unchanged source costs no
//! write (BEHAVIOR.md §E.2).
//!
//! What is hashed: the *carried content* of the built mirror (after transforms, after per-kind
//! stripping), see [`carried_content`]:
//! - every top-level field except `apiVersion`, `kind`, `metadata` and `status`;
//! - plus `"metadata": {"labels": .., "annotations": ..}` holding the labels/annotations the mirror
//!   carries for the user (every `kubemirror.raczylo.com/*` key excluded, empty maps omitted).
//!
//! Why this shape: for a Secret/ConfigMap whose only labels/annotations are ours, this is byte for byte
//! the Go original's input (`{"data":..,"type":..}`), so mirrors written by the Go controller are
//! recognised as up to date after a migration (no churn). Where Go covered less, we cover more, on
//! purpose: objects with `spec` also hash their other top-level fields (Go ignored them), label and
//! annotation changes propagate (Go never propagated them, W-7), and transforms are covered through
//! their *output* rather than the rule text, so a whitespace edit of the rules costs no write while a
//! rule that changes one namespace's copy changes exactly that mirror's hash. Such mirrors are
//! updated once after migration, which also repairs their stale metadata.
//!
//! Serialisation is Go `encoding/json` (sorted keys, HTML-safe escaping, Go float format), so equal
//! content gives equal hashes across the Go and Rust implementations.

use serde_json::{Map, Value};

use crate::keys;

/// The hashed view of a mirror object (see module docs). Works on a desired or on a live mirror.
pub fn carried_content(obj: &Value) -> Value {
    let mut out = Map::new();
    if let Some(top) = obj.as_object() {
        for (k, v) in top {
            if !matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status") {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    let mut meta = Map::new();
    for field in ["labels", "annotations"] {
        let carried: Map<String, Value> = obj
            .pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_object)
            .map(|m| {
                m.iter().filter(|(k, _)| !k.starts_with(keys::PREFIX)).map(|(k, v)| (k.clone(), v.clone())).collect()
            })
            .unwrap_or_default();
        if !carried.is_empty() {
            meta.insert(field.to_string(), Value::Object(carried));
        }
    }
    if !meta.is_empty() {
        out.insert("metadata".to_string(), Value::Object(meta));
    }
    Value::Object(out)
}

/// SHA-256 (lowercase hex) of the Go-encoded [`carried_content`] of `obj`.
pub fn content_hash(obj: &Value) -> String {
    sha256_hex(go_json(&carried_content(obj)).as_bytes())
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut s = String::with_capacity(64);
    for b in digest.as_ref() {
        s.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        s.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0'));
    }
    s
}

/// `json.Marshal` of the value as Go would write it.
pub fn go_json(v: &Value) -> String {
    let mut out = String::new();
    write_value(v, &mut out);
    out
}

fn write_value(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else if let Some(f) = n.as_f64() {
                out.push_str(&go_float(f));
            }
        }
        Value::String(s) => write_string(s, out),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            // serde_json's Map is a BTreeMap unless `preserve_order` is on; sort anyway so the hash
            // cannot change if a dependency ever enables that feature.
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (k, x)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(k, out);
                out.push(':');
                write_value(x, out);
            }
            out.push('}');
        }
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Go's `strconv.FormatFloat(f, 'f' or 'e', -1, 64)` as `encoding/json` picks it: plain decimal,
/// exponent form below 1e-6 or from 1e21 on, with an explicit exponent sign and no zero padding
/// (`1e-7`, `1e+21`).
fn go_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Rust's `{:e}` is shortest round-trip like Go's; only the exponent sign differs.
        let s = format!("{f:e}");
        match s.split_once('e') {
            Some((mant, exp)) if !exp.starts_with('-') => format!("{mant}e+{exp}"),
            _ => s,
        }
    } else {
        // Shortest round-trip digits in plain notation; integral values print without ".0" in Go.
        format!("{f}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_compatible_vector() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "n", "labels": {"kubemirror.raczylo.com/mirror": "true"}},
            "data": {"key": "value"}});
        assert_eq!(go_json(&carried_content(&cm)), r#"{"data":{"key":"value"}}"#);
        assert_eq!(content_hash(&cm), "6d03299fbba4e28d5b65007acecd643423db710bfdde6c6750d8dbf28f80fc8c");
    }

    #[test]
    fn go_string_escaping() {
        let cases = [
            ("a\"b\\c", r#""a\"b\\c""#),
            ("<a>&", r#""\u003ca\u003e\u0026""#),
            ("\u{8}\u{c}\n\r\t\u{1}", r#""\u0008\u000c\n\r\t\u0001""#),
            ("\u{2028}\u{2029}", r#""\u2028\u2029""#),
            ("zażółć €", "\"zażółć €\""),
            ("\u{7f}", "\"\u{7f}\""),
        ];
        for (input, want) in cases {
            assert_eq!(go_json(&json!(input)), want, "{input:?}");
        }
    }

    #[test]
    fn go_number_format() {
        let cases: [(Value, &str); 10] = [
            (json!(1), "1"),
            (json!(-42), "-42"),
            (json!(u64::MAX), "18446744073709551615"),
            (json!(1.5), "1.5"),
            (json!(3.0), "3"),
            (json!(0.000001), "0.000001"),
            (json!(0.0000001), "1e-7"),
            (json!(1e21), "1e+21"),
            (json!(1.5e300), "1.5e+300"),
            (json!(123456789012345680000.0), "123456789012345680000"),
        ];
        for (input, want) in cases {
            assert_eq!(go_json(&input), want, "{input}");
        }
    }

    #[test]
    fn keys_sorted_bytewise_and_compact() {
        let v = json!({"b": [1, {"z": null, "a": true}], "B": "x", "a": {}});
        assert_eq!(go_json(&v), r#"{"B":"x","a":{},"b":[1,{"a":true,"z":null}]}"#);
    }

    #[test]
    fn carried_content_cases() {
        let cases = [
            // Secret: data, type, immutable; our keys and status are not content.
            (
                json!({"kind": "Secret", "type": "Opaque", "immutable": true, "data": {"a": "Yg=="}, "status": {}}),
                r#"{"data":{"a":"Yg=="},"immutable":true,"type":"Opaque"}"#,
            ),
            // spec objects: other top-level fields count too (Go ignored them).
            (json!({"spec": {"x": 1}, "extra": "y"}), r#"{"extra":"y","spec":{"x":1}}"#),
            // user labels/annotations are carried, ours are not
            (
                json!({"metadata": {"labels": {"app": "a", "kubemirror.raczylo.com/mirror": "true"},
                    "annotations": {"kubemirror.raczylo.com/source-content-hash": "x"}, "uid": "u"}, "data": {}}),
                r#"{"data":{},"metadata":{"labels":{"app":"a"}}}"#,
            ),
            (json!("not an object"), "{}"),
        ];
        for (obj, want) in cases {
            assert_eq!(go_json(&carried_content(&obj)), want);
        }
    }

    #[test]
    fn hash_ignores_identity_and_our_keys_but_not_content() {
        let a = json!({"metadata": {"name": "x", "namespace": "a", "resourceVersion": "1"}, "data": {"k": "v"}});
        let b = json!({"metadata": {"name": "x", "namespace": "b", "resourceVersion": "9",
            "annotations": {"kubemirror.raczylo.com/last-sync-time": "t"}}, "data": {"k": "v"}});
        let c = json!({"metadata": {"name": "x"}, "data": {"k": "w"}});
        assert_eq!(content_hash(&a), content_hash(&b));
        assert_ne!(content_hash(&a), content_hash(&c));
        assert_eq!(content_hash(&a).len(), 64);
    }
}
