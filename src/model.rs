//! What the controller knows about the cluster: compact records built from watched objects. The
//! cache stores them; the mirror planner is a pure function over them. Strings that repeat across
//! thousands of records (namespace names, label keys) are `Arc<str>` so the cache can intern them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::keys;

pub type Str = Arc<str>;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub namespace: Str,
    pub name: Str,
}

impl ObjectKey {
    pub fn new(namespace: &str, name: &str) -> Self {
        ObjectKey { namespace: namespace.into(), name: name.into() }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelError(pub String);

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ModelError {}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

fn map_str<'a>(obj: &'a Value, map: &str, key: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(map)?.get(key)?.as_str()
}

fn required<'a>(obj: &'a Value, field: &str, what: &str) -> Result<&'a str, ModelError> {
    meta_str(obj, field).filter(|s| !s.is_empty()).ok_or_else(|| {
        let name = meta_str(obj, "name").unwrap_or("<unnamed>");
        ModelError(format!("{what} {name}: metadata.{field} missing"))
    })
}

fn generation(obj: &Value) -> i64 {
    obj.get("metadata").and_then(|m| m.get("generation")).and_then(Value::as_i64).unwrap_or(0)
}

fn deleting(obj: &Value) -> bool {
    obj.get("metadata").and_then(|m| m.get("deletionTimestamp")).is_some_and(|t| !t.is_null())
}

/// Which source a mirror says it belongs to (its source-* annotations).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SourceRef {
    pub namespace: Str,
    pub name: Str,
    pub uid: Option<Str>,
}

/// A source object, kept whole (minus managedFields and the last-applied annotation, stripped at
/// ingest) because mirrors are built from it. Shared, never mutated: every mirror is built from a copy.
/// `Debug` never prints the object: a stray `{:?}` in a log line must not leak Secret data.
#[derive(Clone)]
pub struct SourceObject {
    pub key: ObjectKey,
    pub uid: Str,
    pub resource_version: Str,
    pub generation: i64,
    pub deleting: bool,
    pub object: Arc<Value>,
}

impl fmt::Debug for SourceObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceObject")
            .field("key", &self.key)
            .field("uid", &self.uid)
            .field("resource_version", &self.resource_version)
            .field("generation", &self.generation)
            .field("deleting", &self.deleting)
            .field("object", &format_args!("<{} bytes redacted>", self.object.to_string().len()))
            .finish()
    }
}

impl SourceObject {
    pub fn from_object(mut obj: Value) -> Result<Self, ModelError> {
        let key = ObjectKey::new(required(&obj, "namespace", "source")?, required(&obj, "name", "source")?);
        let uid: Str = required(&obj, "uid", "source")?.into();
        let resource_version: Str = meta_str(&obj, "resourceVersion").unwrap_or("").into();
        let (generation, deleting) = (generation(&obj), deleting(&obj));
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("managedFields");
            if let Some(ann) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
                ann.remove("kubectl.kubernetes.io/last-applied-configuration");
            }
        }
        Ok(SourceObject { key, uid, resource_version, generation, deleting, object: Arc::new(obj) })
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        map_str(&self.object, "labels", key)
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        map_str(&self.object, "annotations", key)
    }

    pub fn has_finalizer(&self, finalizer: &str) -> bool {
        self.object
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| f.iter().any(|v| v.as_str() == Some(finalizer)))
    }

    /// Both halves of the opt-in, and not itself a mirror (BEHAVIOR.md §B).
    pub fn is_enabled(&self) -> bool {
        self.label(keys::LABEL_ENABLED) == Some("true")
            && self.annotation(keys::ANN_SYNC) == Some("true")
            && self.label(keys::LABEL_MIRROR) != Some("true")
    }
}

/// A mirror as seen through a metadata-only watch: enough to know whose it is and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorRecord {
    pub key: ObjectKey,
    pub uid: Str,
    pub resource_version: Str,
    pub generation: i64,
    /// Carries `managed-by=kubemirror`.
    pub managed: bool,
    pub source: Option<SourceRef>,
    pub content_hash: Option<Str>,
    /// `source-generation` annotation: the source generation this mirror was last written from.
    pub source_generation: Option<i64>,
    pub deleting: bool,
}

impl MirrorRecord {
    pub fn from_object(obj: &Value) -> Result<Self, ModelError> {
        let key = ObjectKey::new(required(obj, "namespace", "mirror")?, required(obj, "name", "mirror")?);
        let ann = |k: &str| map_str(obj, "annotations", k);
        let source = match (ann(keys::ANN_SOURCE_NAMESPACE), ann(keys::ANN_SOURCE_NAME)) {
            (Some(ns), Some(name)) => Some(SourceRef {
                namespace: ns.into(),
                name: name.into(),
                uid: ann(keys::ANN_SOURCE_UID).map(Str::from),
            }),
            _ => None,
        };
        Ok(MirrorRecord {
            key,
            uid: required(obj, "uid", "mirror")?.into(),
            resource_version: meta_str(obj, "resourceVersion").unwrap_or("").into(),
            generation: generation(obj),
            managed: map_str(obj, "labels", keys::LABEL_MANAGED_BY) == Some(keys::MANAGED_BY_VALUE),
            source,
            content_hash: ann(keys::ANN_SOURCE_CONTENT_HASH).map(Str::from),
            source_generation: ann(keys::ANN_SOURCE_GENERATION).and_then(|g| g.parse().ok()),
            deleting: deleting(obj),
        })
    }

    /// Ours and this source's: managed AND the source reference matches, uid included. Every mirror
    /// we write carries the source's uid, so a managed object without one (or with an empty one) was
    /// not written by us — someone copied our labels — and is never updated or deleted by us.
    pub fn is_owned_by(&self, source: &ObjectKey, source_uid: &str) -> bool {
        self.managed
            && self.verified_source().is_some_and(|s| {
                s.namespace == source.namespace && s.name == source.name && s.uid.as_deref() == Some(source_uid)
            })
    }

    /// The source reference, if the mirror is managed and carries a non-empty source uid (the
    /// shape every mirror we write has).
    pub fn verified_source(&self) -> Option<&SourceRef> {
        self.source.as_ref().filter(|s| self.managed && s.uid.as_deref().is_some_and(|u| !u.is_empty()))
    }
}

/// A namespace as targeting needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespaceRecord {
    pub name: Str,
    pub labels: BTreeMap<Str, Str>,
    pub terminating: bool,
    /// `allow-mirrors-from` annotation, for `--require-target-consent`.
    pub allow_from: Option<Str>,
}

impl NamespaceRecord {
    pub fn from_object(obj: &Value) -> Result<Self, ModelError> {
        let name: Str = required(obj, "name", "namespace")?.into();
        let labels = obj
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .map(|m| m.iter().filter_map(|(k, v)| Some((Str::from(k.as_str()), Str::from(v.as_str()?)))).collect())
            .unwrap_or_default();
        let terminating = deleting(obj) || obj.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating");
        let allow_from = map_str(obj, "annotations", keys::ANN_ALLOW_MIRRORS_FROM).map(Str::from);
        Ok(NamespaceRecord { name, labels, terminating, allow_from })
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(|v| &**v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn source_strips_cache_noise_and_reads_opt_in() {
        let s = SourceObject::from_object(json!({
            "metadata": {"name": "db", "namespace": "default", "uid": "u1", "resourceVersion": "7",
                "labels": {"kubemirror.raczylo.com/enabled": "true"},
                "annotations": {"kubemirror.raczylo.com/sync": "true",
                                "kubectl.kubernetes.io/last-applied-configuration": "{}"},
                "managedFields": [{}], "finalizers": ["kubemirror.raczylo.com/finalizer"]}
        }))
        .unwrap();
        assert!(s.is_enabled());
        assert!(s.has_finalizer(keys::FINALIZER));
        assert!(s.object.pointer("/metadata/managedFields").is_none());
        assert!(s.annotation("kubectl.kubernetes.io/last-applied-configuration").is_none());
        assert_eq!(s.key.to_string(), "default/db");
    }

    #[test]
    fn debug_output_never_contains_the_data() {
        let s = SourceObject::from_object(json!({"metadata": {"name": "db", "namespace": "default", "uid": "u1"},
            "data": {"password": "c2VjcmV0"}}))
        .unwrap();
        let text = format!("{s:?}");
        assert!(text.contains("default/db") || text.contains("\"db\""), "{text}");
        assert!(!text.contains("c2VjcmV0") && !text.contains("password"), "{text}");
    }

    #[test]
    fn opt_in_needs_both_halves_and_not_a_mirror() {
        let mk = |labels: Value, ann: Value| {
            SourceObject::from_object(
                json!({"metadata": {"name": "a", "namespace": "b", "uid": "u", "labels": labels, "annotations": ann}}),
            )
            .unwrap()
            .is_enabled()
        };
        let on = json!({"kubemirror.raczylo.com/enabled": "true"});
        let sync = json!({"kubemirror.raczylo.com/sync": "true"});
        assert!(mk(on.clone(), sync.clone()));
        assert!(!mk(json!({}), sync.clone()));
        assert!(!mk(on.clone(), json!({})));
        assert!(!mk(json!({"kubemirror.raczylo.com/enabled": "True"}), sync.clone()));
        assert!(!mk(json!({"kubemirror.raczylo.com/enabled": "true", "kubemirror.raczylo.com/mirror": "true"}), sync));
    }

    #[test]
    fn mirror_ownership() {
        let m = MirrorRecord::from_object(&json!({"metadata": {"name": "db", "namespace": "app1", "uid": "m1",
            "labels": {"kubemirror.raczylo.com/managed-by": "kubemirror"},
            "annotations": {"kubemirror.raczylo.com/source-namespace": "default",
                            "kubemirror.raczylo.com/source-name": "db",
                            "kubemirror.raczylo.com/source-uid": "u1"}}}))
        .unwrap();
        let src = ObjectKey::new("default", "db");
        assert!(m.is_owned_by(&src, "u1"));
        assert!(!m.is_owned_by(&src, "u2"));
        assert!(!m.is_owned_by(&ObjectKey::new("other", "db"), "u1"));
        let foreign = MirrorRecord { managed: false, ..m.clone() };
        assert!(!foreign.is_owned_by(&src, "u1"));
        // A managed object without a (non-empty) source uid was not written by us.
        for uid in [None, Some("")] {
            let unverified = MirrorRecord {
                source: Some(SourceRef { namespace: "default".into(), name: "db".into(), uid: uid.map(Str::from) }),
                ..m.clone()
            };
            assert!(!unverified.is_owned_by(&src, "u1"), "{uid:?}");
            assert!(!unverified.is_owned_by(&src, ""), "{uid:?}");
            assert!(unverified.verified_source().is_none());
        }
        assert!(m.verified_source().is_some());
    }

    #[test]
    fn missing_identity_is_an_error_not_a_panic() {
        let e = MirrorRecord::from_object(&json!({"metadata": {"name": "x"}})).unwrap_err();
        assert!(e.0.contains("metadata.namespace"), "{e}");
        assert!(NamespaceRecord::from_object(&json!({})).is_err());
        assert!(SourceObject::from_object(json!("not an object")).is_err());
    }

    #[test]
    fn namespace_terminating_and_labels() {
        let n = NamespaceRecord::from_object(&json!({"metadata": {"name": "a", "labels": {"x": "1"}},
            "status": {"phase": "Terminating"}}))
        .unwrap();
        assert!(n.terminating);
        assert_eq!(n.label("x"), Some("1"));
    }
}
