//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`) decoded to JSON. kubectl 1.32 and
//! later send them from their typed clients (`kubectl create configmap|secret|namespace`, `kubectl auth
//! can-i`), and a real API server accepts protobuf for every built-in kind. The testkit knows the field
//! numbers of those kinds only (README lists this); any other kind is answered 415, as for an unknown
//! format. Responses stay JSON: kubectl's Accept header allows it.
//!
//! Wire format: the magic `k8s\0`, then a `runtime.Unknown` message (field 1 the TypeMeta, field 2 the
//! object's own bytes); the object is a proto2 message of the generated k8s.io types.

use serde_json::{Map, Value, json};

use crate::util::base64;

/// The four bytes before every Kubernetes protobuf body.
pub const MAGIC: &[u8] = b"k8s\0";

#[derive(Clone, Copy)]
enum Ty {
    Str,
    Bool,
    Int,
    /// `metav1.Time`: seconds and nanos, rendered RFC 3339.
    Time,
    Msg(&'static [Field]),
    MapStr,
    /// `map<string, bytes>`: values base64 in JSON.
    MapBytes,
    RepStr,
    RepMsg(&'static [Field]),
}

struct Field(u32, &'static str, Ty);

const OWNER_REFERENCE: &[Field] = &[
    Field(1, "kind", Ty::Str),
    Field(3, "name", Ty::Str),
    Field(4, "uid", Ty::Str),
    Field(5, "apiVersion", Ty::Str),
    Field(6, "controller", Ty::Bool),
    Field(7, "blockOwnerDeletion", Ty::Bool),
];

const OBJECT_META: &[Field] = &[
    Field(1, "name", Ty::Str),
    Field(2, "generateName", Ty::Str),
    Field(3, "namespace", Ty::Str),
    Field(5, "uid", Ty::Str),
    Field(6, "resourceVersion", Ty::Str),
    Field(7, "generation", Ty::Int),
    Field(8, "creationTimestamp", Ty::Time),
    Field(11, "labels", Ty::MapStr),
    Field(12, "annotations", Ty::MapStr),
    Field(13, "ownerReferences", Ty::RepMsg(OWNER_REFERENCE)),
    Field(14, "finalizers", Ty::RepStr),
];

const CONFIG_MAP: &[Field] = &[
    Field(1, "metadata", Ty::Msg(OBJECT_META)),
    Field(2, "data", Ty::MapStr),
    Field(3, "binaryData", Ty::MapBytes),
    Field(4, "immutable", Ty::Bool),
];

const SECRET: &[Field] = &[
    Field(1, "metadata", Ty::Msg(OBJECT_META)),
    Field(2, "data", Ty::MapBytes),
    Field(3, "type", Ty::Str),
    Field(4, "stringData", Ty::MapStr),
    Field(5, "immutable", Ty::Bool),
];

const NAMESPACE_SPEC: &[Field] = &[Field(1, "finalizers", Ty::RepStr)];
const NAMESPACE: &[Field] = &[Field(1, "metadata", Ty::Msg(OBJECT_META)), Field(2, "spec", Ty::Msg(NAMESPACE_SPEC))];

const RESOURCE_ATTRIBUTES: &[Field] = &[
    Field(1, "namespace", Ty::Str),
    Field(2, "verb", Ty::Str),
    Field(3, "group", Ty::Str),
    Field(4, "version", Ty::Str),
    Field(5, "resource", Ty::Str),
    Field(6, "subresource", Ty::Str),
    Field(7, "name", Ty::Str),
];
const NON_RESOURCE_ATTRIBUTES: &[Field] = &[Field(1, "path", Ty::Str), Field(2, "verb", Ty::Str)];
const SELF_REVIEW_SPEC: &[Field] = &[
    Field(1, "resourceAttributes", Ty::Msg(RESOURCE_ATTRIBUTES)),
    Field(2, "nonResourceAttributes", Ty::Msg(NON_RESOURCE_ATTRIBUTES)),
];
const SELF_REVIEW: &[Field] =
    &[Field(1, "metadata", Ty::Msg(OBJECT_META)), Field(2, "spec", Ty::Msg(SELF_REVIEW_SPEC))];

/// The kinds decoded, by apiVersion and kind.
fn schema(api_version: &str, kind: &str) -> Option<&'static [Field]> {
    match (api_version, kind) {
        ("v1", "ConfigMap") => Some(CONFIG_MAP),
        ("v1", "Secret") => Some(SECRET),
        ("v1", "Namespace") => Some(NAMESPACE),
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => Some(SELF_REVIEW),
        _ => None,
    }
}

/// Why a body was not decoded: not protobuf at all, or a kind outside the table (both 415 upstream of
/// here), or broken bytes (400).
#[derive(Debug, PartialEq)]
pub enum Error {
    UnknownKind(String),
    Malformed(String),
}

/// The JSON object a protobuf body carries, `apiVersion` and `kind` included.
pub fn decode(body: &[u8]) -> Result<Value, Error> {
    let rest = body.strip_prefix(MAGIC).ok_or_else(|| Error::Malformed("no k8s protobuf magic".into()))?;
    let (mut type_meta, mut raw) = (Map::new(), None);
    for (num, v) in fields(rest)? {
        match (num, v) {
            (1, Wire::Len(b)) => type_meta = message(b, &[Field(1, "apiVersion", Ty::Str), Field(2, "kind", Ty::Str)])?,
            (2, Wire::Len(b)) => raw = Some(b),
            _ => {}
        }
    }
    let text = |k: &str| type_meta.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    let table = schema(&api_version, &kind).ok_or_else(|| Error::UnknownKind(format!("{api_version} {kind}")))?;
    let mut obj = message(raw.unwrap_or(&[]), table)?;
    obj.insert("apiVersion".into(), json!(api_version));
    obj.insert("kind".into(), json!(kind));
    Ok(Value::Object(obj))
}

enum Wire<'a> {
    Varint(u64),
    Len(&'a [u8]),
    Fixed,
}

fn varint(b: &[u8], pos: &mut usize) -> Result<u64, Error> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos).ok_or_else(|| Error::Malformed("truncated varint".into()))?;
        *pos += 1;
        out |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(out);
        }
    }
    Err(Error::Malformed("varint longer than 10 bytes".into()))
}

/// The (field number, value) pairs of one message, in wire order.
fn fields(b: &[u8]) -> Result<Vec<(u32, Wire<'_>)>, Error> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < b.len() {
        let tag = varint(b, &mut pos)?;
        let num = u32::try_from(tag >> 3).map_err(|_| Error::Malformed("field number out of range".into()))?;
        let v = match tag & 7 {
            0 => Wire::Varint(varint(b, &mut pos)?),
            2 => {
                let len = usize::try_from(varint(b, &mut pos)?).unwrap_or(usize::MAX);
                let end = pos.checked_add(len).filter(|e| *e <= b.len());
                let end = end.ok_or_else(|| Error::Malformed("length past the end of the body".into()))?;
                let v = Wire::Len(&b[pos..end]);
                pos = end;
                v
            }
            1 => skip(b, &mut pos, 8)?,
            5 => skip(b, &mut pos, 4)?,
            t => return Err(Error::Malformed(format!("wire type {t} not supported"))),
        };
        out.push((num, v));
    }
    Ok(out)
}

fn skip<'a>(b: &[u8], pos: &mut usize, n: usize) -> Result<Wire<'a>, Error> {
    *pos = pos.checked_add(n).filter(|e| *e <= b.len()).ok_or_else(|| Error::Malformed("truncated field".into()))?;
    Ok(Wire::Fixed)
}

fn utf8(b: &[u8]) -> Result<String, Error> {
    String::from_utf8(b.to_vec()).map_err(|_| Error::Malformed("string field is not UTF-8".into()))
}

/// A message by its table; fields at their zero value are left out, as JSON's omitempty does.
fn message(b: &[u8], table: &[Field]) -> Result<Map<String, Value>, Error> {
    let mut out = Map::new();
    for (num, v) in fields(b)? {
        let Some(Field(_, name, ty)) = table.iter().find(|f| f.0 == num) else { continue };
        let name = (*name).to_string();
        match (*ty, v) {
            (Ty::Str, Wire::Len(b)) if !b.is_empty() => {
                out.insert(name, json!(utf8(b)?));
            }
            (Ty::Bool, Wire::Varint(n)) if n != 0 => {
                out.insert(name, json!(true));
            }
            // int64 fields: two's complement in the varint.
            (Ty::Int, Wire::Varint(n)) if n != 0 => {
                out.insert(name, json!(n as i64));
            }
            // The zero time (what a new object carries) is null in JSON: left out.
            (Ty::Time, Wire::Len(b)) => {
                let secs = fields(b)?.iter().find_map(|f| match f {
                    (1, Wire::Varint(s)) if *s != 0 => Some(*s),
                    _ => None,
                });
                if let Some(secs) = secs {
                    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
                    out.insert(name, json!(crate::util::time::format_rfc3339(t)));
                }
            }
            (Ty::Msg(t), Wire::Len(b)) => {
                out.insert(name, Value::Object(message(b, t)?));
            }
            (Ty::MapStr | Ty::MapBytes, Wire::Len(entry)) => {
                let (mut key, mut value) = (String::new(), Value::String(String::new()));
                for (n, v) in fields(entry)? {
                    match (n, v, ty) {
                        (1, Wire::Len(k), _) => key = utf8(k)?,
                        (2, Wire::Len(x), Ty::MapBytes) => value = json!(base64::encode(x)),
                        (2, Wire::Len(x), _) => value = json!(utf8(x)?),
                        _ => {}
                    }
                }
                let map = out.entry(name).or_insert_with(|| json!({}));
                if let Some(m) = map.as_object_mut() {
                    m.insert(key, value);
                }
            }
            (Ty::RepStr, Wire::Len(b)) => push(&mut out, name, json!(utf8(b)?)),
            (Ty::RepMsg(t), Wire::Len(b)) => push(&mut out, name, Value::Object(message(b, t)?)),
            _ => {}
        }
    }
    Ok(out)
}

fn push(out: &mut Map<String, Value>, name: String, v: Value) {
    if let Some(list) = out.entry(name).or_insert_with(|| json!([])).as_array_mut() {
        list.push(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal encoder for the tests: length-delimited fields only, plus varints.
    fn len(num: u32, b: &[u8]) -> Vec<u8> {
        let mut out = vec![];
        put_varint(&mut out, u64::from(num) << 3 | 2);
        put_varint(&mut out, b.len() as u64);
        out.extend_from_slice(b);
        out
    }

    fn var(num: u32, v: u64) -> Vec<u8> {
        let mut out = vec![];
        put_varint(&mut out, u64::from(num) << 3);
        put_varint(&mut out, v);
        out
    }

    fn put_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn entry(num: u32, k: &str, v: &[u8]) -> Vec<u8> {
        len(num, &[len(1, k.as_bytes()), len(2, v)].concat())
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let tm = [len(1, api_version.as_bytes()), len(2, kind.as_bytes())].concat();
        [MAGIC.to_vec(), len(1, &tm), len(2, raw), len(3, b""), len(4, b"")].concat()
    }

    #[test]
    fn a_configmap_as_kubectl_create_configmap_sends_it() {
        // Empty strings and the zero time are on the wire (proto2 optional fields), not in the JSON.
        let meta = [
            len(1, b"late"),
            len(2, b""),
            len(3, b"kc"),
            len(6, b""),
            len(8, &[var(1, 0), var(2, 0)].concat()),
            entry(11, "app", b"x"),
            len(14, b"example.com/hold"),
        ]
        .concat();
        let raw = [len(1, &meta), entry(2, "a", b"1"), entry(3, "bin", &[0, 255]), var(4, 1)].concat();
        let got = decode(&envelope("v1", "ConfigMap", &raw)).unwrap();
        assert_eq!(
            got,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "late", "namespace": "kc", "labels": {"app": "x"},
                             "finalizers": ["example.com/hold"]},
                "data": {"a": "1"}, "binaryData": {"bin": "AP8="}, "immutable": true})
        );
    }

    #[test]
    fn secrets_carry_bytes_as_base64_and_reviews_their_attributes() {
        let raw = [len(1, &len(1, b"s")), entry(2, "k", b"v"), len(3, b"Opaque")].concat();
        let got = decode(&envelope("v1", "Secret", &raw)).unwrap();
        assert_eq!(got["data"], json!({"k": "dg=="}));
        assert_eq!(got["type"], "Opaque");
        let attrs = [len(2, b"list"), len(5, b"secrets")].concat();
        let raw = [len(1, b""), len(2, &len(1, &attrs))].concat();
        let got = decode(&envelope("authorization.k8s.io/v1", "SelfSubjectAccessReview", &raw)).unwrap();
        assert_eq!(got["spec"], json!({"resourceAttributes": {"verb": "list", "resource": "secrets"}}));
    }

    #[test]
    fn other_kinds_and_broken_bodies_are_refused() {
        assert_eq!(
            decode(&envelope("apps/v1", "Deployment", b"")),
            Err(Error::UnknownKind("apps/v1 Deployment".into()))
        );
        assert!(matches!(decode(b"{}"), Err(Error::Malformed(_))));
        let mut truncated = envelope("v1", "Secret", &len(1, b"abc"));
        truncated.truncate(truncated.len() - 6);
        assert!(matches!(decode(&truncated), Err(Error::Malformed(_))));
    }
}
