//! What the controller knows about the cluster: compact records built from watched objects. The
//! cache stores them; the mirror planner is a pure function over them. Strings that repeat across
//! thousands of records (namespace names, label keys) are `Arc<str>` so the cache can intern them.

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::keys;
use crate::util::compact::{Flag, ShortStr, Uid};

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

/// Which source a mirror says it belongs to (its source-* annotations), and the content hash it
/// says it was written with: the same for all the mirrors of a source once they are in sync, so
/// one shared copy serves them all and each cached mirror holds one pointer for both.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SourceRef {
    pub namespace: Str,
    pub name: Str,
    pub uid: Option<Str>,
    pub content_hash: Option<Str>,
}

/// Labels or annotations: sorted by key, immutable, one boxed slice (a map per record would cost
/// a tree node per entry). Keys and values are shared strings, so the cache interns the ones that
/// repeat across records. Only string values are kept (the API server accepts nothing else).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pairs(Box<[(Str, Str)]>);

impl Pairs {
    pub fn from_json(map: Option<&Value>) -> Pairs {
        let mut v: Vec<(Str, Str)> = map
            .and_then(Value::as_object)
            .map(|m| m.iter().filter_map(|(k, v)| Some((Str::from(k.as_str()), Str::from(v.as_str()?)))).collect())
            .unwrap_or_default();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        Pairs(v.into_boxed_slice())
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.binary_search_by(|(k, _)| (**k).cmp(key)).ok().map(|i| &*self.0[i].1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// From pairs in any order (a later duplicate key wins, as in a map).
    #[cfg(test)]
    pub fn from_pairs(pairs: impl IntoIterator<Item = (Str, Str)>) -> Pairs {
        let map: std::collections::BTreeMap<Str, Str> = pairs.into_iter().collect();
        Pairs(map.into_iter().collect())
    }

    /// The same pairs without the keys `drop` names (shares the strings; no copy when none match).
    pub fn without(self, drop: impl Fn(&str) -> bool) -> Pairs {
        if !self.0.iter().any(|(k, _)| drop(k)) {
            return self;
        }
        Pairs(self.0.iter().filter(|(k, _)| !drop(k)).cloned().collect())
    }

    /// As a JSON object (templates and rebuilt objects read them so).
    pub fn to_json(&self) -> Map<String, Value> {
        self.iter().map(|(k, v)| (k.to_string(), Value::String(v.to_string()))).collect()
    }

    /// Replaces keys (and values, if `values`) by their interned copies.
    pub fn intern(&mut self, values: bool, mut intern: impl FnMut(&Str) -> Str) {
        for (k, v) in self.0.iter_mut() {
            *k = intern(k);
            if values {
                *v = intern(v);
            }
        }
    }
}

/// A source object as the planner and the mirror builder need it, kept compact: the metadata they
/// read (identity, labels, annotations, finalizers) as fields, and the content every mirror is
/// built from (every top-level field but `apiVersion`, `kind`, `metadata` and `status`) as compact
/// JSON text, parsed only when a mirror is built. A `serde_json::Value` tree costs several times its
/// JSON in memory; the text costs its length. Other metadata (managedFields, ownerReferences,
/// timestamps, the last-applied annotation) and `status` are dropped at ingest: no mirror carries
/// them. Shared, never mutated. `Debug` never prints the content: a stray `{:?}` in a log line must
/// not leak Secret data.
#[derive(Clone)]
pub struct SourceObject {
    pub key: ObjectKey,
    pub uid: Str,
    pub resource_version: Str,
    pub generation: i64,
    pub deleting: bool,
    /// `apiVersion` and `kind` (shared by every source of a type once interned).
    pub api_version: Str,
    pub kind: Str,
    labels: Pairs,
    annotations: Pairs,
    finalizers: Box<[Str]>,
    content: Box<str>,
}

impl fmt::Debug for SourceObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceObject")
            .field("key", &self.key)
            .field("uid", &self.uid)
            .field("resource_version", &self.resource_version)
            .field("generation", &self.generation)
            .field("deleting", &self.deleting)
            .field("content", &format_args!("<{} bytes redacted>", self.content.len()))
            .finish()
    }
}

/// Annotations never worth keeping on a source: the previous apply of the whole object.
const DROPPED_ANNOTATIONS: [&str; 1] = ["kubectl.kubernetes.io/last-applied-configuration"];

impl SourceObject {
    pub fn from_object(mut obj: Value) -> Result<Self, ModelError> {
        let key = ObjectKey::new(required(&obj, "namespace", "source")?, required(&obj, "name", "source")?);
        let uid: Str = required(&obj, "uid", "source")?.into();
        let resource_version: Str = meta_str(&obj, "resourceVersion").unwrap_or("").into();
        let (generation, deleting) = (generation(&obj), deleting(&obj));
        let top = obj.as_object_mut().ok_or_else(|| ModelError(format!("source {key}: not a JSON object")))?;
        let meta = top.remove("metadata").unwrap_or(Value::Null);
        top.remove("status");
        let mut text = |f: &str| match top.remove(f) {
            Some(Value::String(s)) => Str::from(s),
            _ => Str::from(""),
        };
        let (api_version, kind) = (text("apiVersion"), text("kind"));
        let annotations = Pairs::from_json(meta.get("annotations")).without(|k| DROPPED_ANNOTATIONS.contains(&k));
        let finalizers = meta
            .get("finalizers")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(Str::from).collect())
            .unwrap_or_default();
        Ok(SourceObject {
            key,
            uid,
            resource_version,
            generation,
            deleting,
            api_version,
            kind,
            labels: Pairs::from_json(meta.get("labels")),
            annotations,
            finalizers,
            content: obj.to_string().into_boxed_str(),
        })
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key)
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key)
    }

    pub fn labels(&self) -> &Pairs {
        &self.labels
    }

    pub fn annotations(&self) -> &Pairs {
        &self.annotations
    }

    pub fn finalizers(&self) -> impl Iterator<Item = &str> {
        self.finalizers.iter().map(|f| &**f)
    }

    pub fn has_finalizer(&self, finalizer: &str) -> bool {
        self.finalizers().any(|f| f == finalizer)
    }

    /// Both halves of the opt-in, and not itself a mirror (BEHAVIOR.md §B).
    pub fn is_enabled(&self) -> bool {
        self.label(keys::LABEL_ENABLED) == Some("true")
            && self.annotation(keys::ANN_SYNC) == Some("true")
            && self.label(keys::LABEL_MIRROR) != Some("true")
    }

    /// Bytes of content kept (the compact JSON text).
    #[cfg(test)]
    pub fn content_len(&self) -> usize {
        self.content.len()
    }

    /// The content's top-level `type` (a Secret's type), read without building the rest.
    pub fn content_type(&self) -> Option<String> {
        #[derive(serde::Deserialize)]
        struct TypeOnly {
            #[serde(rename = "type")]
            ty: Option<String>,
        }
        serde_json::from_str::<TypeOnly>(&self.content).ok().and_then(|t| t.ty)
    }

    /// The content: every top-level field but `apiVersion`, `kind`, `metadata` and `status`.
    pub fn content(&self) -> Map<String, Value> {
        // Written by `from_object` from a JSON object, so it parses back; stay total anyway.
        match serde_json::from_str(&self.content) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        }
    }

    /// The object as the cache knows it: the content with `apiVersion`, `kind` and the kept
    /// metadata put back (what was dropped at ingest stays dropped). Tests compare through it.
    #[cfg(test)]
    pub fn object(&self) -> Value {
        let mut top = self.content();
        if !self.api_version.is_empty() {
            top.insert("apiVersion".into(), Value::String(self.api_version.to_string()));
        }
        if !self.kind.is_empty() {
            top.insert("kind".into(), Value::String(self.kind.to_string()));
        }
        let mut meta = Map::new();
        meta.insert("name".into(), Value::String(self.key.name.to_string()));
        meta.insert("namespace".into(), Value::String(self.key.namespace.to_string()));
        meta.insert("uid".into(), Value::String(self.uid.to_string()));
        if !self.resource_version.is_empty() {
            meta.insert("resourceVersion".into(), Value::String(self.resource_version.to_string()));
        }
        if self.generation != 0 {
            meta.insert("generation".into(), self.generation.into());
        }
        for (field, pairs) in [("labels", &self.labels), ("annotations", &self.annotations)] {
            if !pairs.is_empty() {
                meta.insert(field.into(), Value::Object(pairs.to_json()));
            }
        }
        if !self.finalizers.is_empty() {
            meta.insert("finalizers".into(), self.finalizers().map(|f| Value::String(f.into())).collect());
        }
        if self.deleting {
            // The cache keeps only that it is being deleted, not since when.
            meta.insert("deletionTimestamp".into(), Value::String("1970-01-01T00:00:00Z".into()));
        }
        top.insert("metadata".into(), Value::Object(meta));
        Value::Object(top)
    }

    /// Whether anything a mirror or a plan depends on differs from `old` (see
    /// [`crate::mirror::plan::source_changed`]): identity, deletion, generation, type, labels,
    /// annotations other than `skip_annotation`, and content. Not the resourceVersion, the
    /// finalizers or the status.
    pub fn differs_from(&self, old: &SourceObject, skip_annotation: &str) -> bool {
        let kept = |(k, _): &&(Str, Str)| &**k != skip_annotation;
        self.key != old.key
            || self.uid != old.uid
            || self.deleting != old.deleting
            || self.generation != old.generation
            || self.api_version != old.api_version
            || self.kind != old.kind
            || self.labels != old.labels
            || self.content != old.content
            || !self.annotations.0.iter().filter(kept).eq(old.annotations.0.iter().filter(kept))
    }

    /// Interns what repeats across sources: the namespace, the type, label and annotation keys,
    /// label values.
    pub fn intern_with(&mut self, mut intern: impl FnMut(&Str) -> Str) {
        self.key.namespace = intern(&self.key.namespace);
        self.api_version = intern(&self.api_version);
        self.kind = intern(&self.kind);
        self.labels.intern(true, &mut intern);
        self.annotations.intern(false, &mut intern);
        for f in self.finalizers.iter_mut() {
            *f = intern(f);
        }
    }
}

/// A mirror as seen through a metadata-only watch: enough to know whose it is and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorRecord {
    pub key: ObjectKey,
    pub uid: Uid,
    pub resource_version: ShortStr,
    /// Carries `managed-by=kubemirror`.
    pub managed: bool,
    /// Shared by every mirror of one source (with the same content hash) once the cache has
    /// interned it. A hash annotation without a source reference is not kept: such a mirror is
    /// not ours, and its hash is never read.
    pub source: Option<Arc<SourceRef>>,
    /// `source-generation` annotation: the source generation this mirror was last written from
    /// (0 when absent or unreadable; sources without a generation are not compared). Its low 32
    /// bits only (see [`generation_tag`]): 4 bytes per cached mirror instead of 8.
    pub source_generation: u32,
    pub deleting: bool,
    /// This very version is our own write, echoed by the watch: the record stands in for the
    /// write ledger's entry, which is then dropped ([`crate::mirror::drift::LastWrite::settled_by`]).
    /// Never read from the object: only the cache sets it (in place: it is a fact about this
    /// version, true for every holder of the record), and a new version starts without it.
    pub confirmed: Flag,
}

impl MirrorRecord {
    pub fn from_object(obj: &Value) -> Result<Self, ModelError> {
        let key = ObjectKey::new(required(obj, "namespace", "mirror")?, required(obj, "name", "mirror")?);
        let ann = |k: &str| map_str(obj, "annotations", k);
        let source = match (ann(keys::ANN_SOURCE_NAMESPACE), ann(keys::ANN_SOURCE_NAME)) {
            (Some(ns), Some(name)) => Some(Arc::new(SourceRef {
                namespace: ns.into(),
                name: name.into(),
                uid: ann(keys::ANN_SOURCE_UID).map(Str::from),
                content_hash: ann(keys::ANN_SOURCE_CONTENT_HASH).map(Str::from),
            })),
            _ => None,
        };
        Ok(MirrorRecord {
            key,
            uid: Uid::from(required(obj, "uid", "mirror")?),
            resource_version: meta_str(obj, "resourceVersion").unwrap_or("").into(),
            managed: map_str(obj, "labels", keys::LABEL_MANAGED_BY) == Some(keys::MANAGED_BY_VALUE),
            source,
            source_generation: ann(keys::ANN_SOURCE_GENERATION).and_then(|g| g.parse().ok()).map_or(0, generation_tag),
            deleting: deleting(obj),
            confirmed: Flag::default(),
        })
    }

    /// The `source-content-hash` annotation.
    pub fn content_hash(&self) -> Option<&Str> {
        self.source.as_ref()?.content_hash.as_ref()
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
        self.source.as_deref().filter(|s| self.managed && s.uid.as_deref().is_some_and(|u| !u.is_empty()))
    }
}

/// What a mirror record keeps of a generation: its low 32 bits. Generations go up by one per
/// change of a spec, so two that a pass compares never differ by a multiple of 2^32.
pub fn generation_tag(generation: i64) -> u32 {
    generation as u32
}

/// The label the API server puts on every namespace (1.21+), its value the namespace's own name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A namespace as targeting needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamespaceRecord {
    pub name: Str,
    /// Every label but [`NAMESPACE_NAME_LABEL`] when it equals the name (then `name_label` is set
    /// and [`NamespaceRecord::label`] answers it from the name: one entry less per namespace).
    pub labels: Pairs,
    pub name_label: bool,
    pub terminating: bool,
    /// `allow-mirrors-from` annotation, for `--require-target-consent`.
    pub allow_from: Option<Str>,
}

impl NamespaceRecord {
    pub fn from_object(obj: &Value) -> Result<Self, ModelError> {
        let name: Str = required(obj, "name", "namespace")?.into();
        let labels = Pairs::from_json(obj.pointer("/metadata/labels"));
        let name_label = labels.get(NAMESPACE_NAME_LABEL) == Some(&*name);
        let labels = if name_label { labels.without(|k| k == NAMESPACE_NAME_LABEL) } else { labels };
        let terminating = deleting(obj) || obj.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating");
        let allow_from = map_str(obj, "annotations", keys::ANN_ALLOW_MIRRORS_FROM).map(Str::from);
        Ok(NamespaceRecord { name, labels, name_label, terminating, allow_from })
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        if self.name_label && key == NAMESPACE_NAME_LABEL {
            return Some(&self.name);
        }
        self.labels.get(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_mirror_record_fits_a_112_byte_allocation() {
        // 16 bytes of `Arc` counts + the record, plus malloc's 8-byte header, rounded up to 16:
        // at 88 bytes each cached mirror costs 112; at 104, 128.
        assert!(std::mem::size_of::<MirrorRecord>() <= 88, "{}", std::mem::size_of::<MirrorRecord>());
    }

    #[test]
    fn generation_tags_tell_neighbouring_generations_apart() {
        assert_eq!(generation_tag(7), 7);
        assert_ne!(generation_tag(1 << 32), generation_tag((1 << 32) + 1));
        assert_eq!(generation_tag(0), 0);
    }

    #[test]
    fn the_namespace_name_label_is_answered_from_the_name() {
        let ns = |labels: Value| {
            NamespaceRecord::from_object(&json!({"metadata": {"name": "team-a", "labels": labels}})).unwrap()
        };
        let usual = ns(json!({NAMESPACE_NAME_LABEL: "team-a", "env": "prod"}));
        assert!(usual.name_label);
        assert_eq!(usual.labels.len(), 1, "not stored");
        assert_eq!((usual.label(NAMESPACE_NAME_LABEL), usual.label("env")), (Some("team-a"), Some("prod")));
        // Without the label (servers before 1.21) or with another value, it is what the object says.
        let bare = ns(json!({"env": "prod"}));
        assert_eq!((bare.name_label, bare.label(NAMESPACE_NAME_LABEL)), (false, None));
        let odd = ns(json!({NAMESPACE_NAME_LABEL: "other"}));
        assert_eq!((odd.name_label, odd.label(NAMESPACE_NAME_LABEL)), (false, Some("other")));
    }

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
        assert!(s.object().pointer("/metadata/managedFields").is_none());
        assert!(s.annotation("kubectl.kubernetes.io/last-applied-configuration").is_none());
        assert_eq!(s.key.to_string(), "default/db");
        assert_eq!(s.annotation(keys::ANN_SYNC), Some("true"));
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
                source: Some(Arc::new(SourceRef {
                    namespace: "default".into(),
                    name: "db".into(),
                    uid: uid.map(Str::from),
                    content_hash: None,
                })),
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
    fn a_source_keeps_content_as_text_and_gives_the_object_back() {
        let obj = json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": "db", "namespace": "default", "uid": "u1", "resourceVersion": "7",
                "creationTimestamp": "2025-01-01T00:00:00Z", "ownerReferences": [{"uid": "o"}],
                "labels": {"b": "2", "a": "1"}, "annotations": {"z": "26", "kubemirror.raczylo.com/sync": "true"},
                "finalizers": ["x/y", "kubemirror.raczylo.com/finalizer"]},
            "data": {"tls.crt": "Y2VydA=="}, "status": {"big": "dropped"}});
        let s = SourceObject::from_object(obj).unwrap();
        assert_eq!(s.content_len(), r#"{"data":{"tls.crt":"Y2VydA=="},"type":"kubernetes.io/tls"}"#.len());
        assert_eq!(s.content_type().as_deref(), Some("kubernetes.io/tls"));
        assert_eq!((&*s.api_version, &*s.kind), ("v1", "Secret"));
        assert_eq!(s.labels().iter().collect::<Vec<_>>(), vec![("a", "1"), ("b", "2")], "sorted");
        assert_eq!((s.label("b"), s.label("c"), s.annotation("z")), (Some("2"), None, Some("26")));
        assert_eq!(s.finalizers().collect::<Vec<_>>(), vec!["x/y", "kubemirror.raczylo.com/finalizer"]);
        let back = s.object();
        assert_eq!(back["data"], json!({"tls.crt": "Y2VydA=="}));
        assert_eq!(back["metadata"]["labels"], json!({"a": "1", "b": "2"}));
        assert_eq!(back["metadata"]["resourceVersion"], "7");
        assert!(back.get("status").is_none() && back["metadata"].get("ownerReferences").is_none());
        let again = SourceObject::from_object(back).unwrap();
        assert!(!again.differs_from(&s, "") && again.content_len() == s.content_len());
    }

    #[test]
    fn what_makes_a_source_differ() {
        let base = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "b",
            "uid": "u", "resourceVersion": "1", "annotations": {"skip": "1", "keep": "1"}}, "data": {"k": "v"}});
        let with = |f: &dyn Fn(&mut Value)| {
            let mut v = base.clone();
            f(&mut v);
            SourceObject::from_object(v).unwrap()
        };
        let s = with(&|_| {});
        assert!(!with(&|v| v["metadata"]["resourceVersion"] = json!("2")).differs_from(&s, "skip"));
        assert!(!with(&|v| v["metadata"]["annotations"]["skip"] = json!("2")).differs_from(&s, "skip"));
        assert!(!with(&|v| v["metadata"]["finalizers"] = json!(["f"])).differs_from(&s, "skip"));
        assert!(!with(&|v| v["status"] = json!({"x": 1})).differs_from(&s, "skip"));
        assert!(with(&|v| v["metadata"]["annotations"]["keep"] = json!("2")).differs_from(&s, "skip"));
        assert!(with(&|v| v["data"]["k"] = json!("w")).differs_from(&s, "skip"));
        assert!(with(&|v| v["metadata"]["uid"] = json!("u2")).differs_from(&s, "skip"));
        assert!(with(&|v| v["metadata"]["labels"] = json!({"l": "1"})).differs_from(&s, "skip"));
        assert!(with(&|v| v["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z")).differs_from(&s, "skip"));
    }

    #[test]
    fn interning_shares_what_repeats() {
        let mk = || {
            SourceObject::from_object(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a",
                "namespace": "b", "uid": "u", "labels": {"kubemirror.raczylo.com/enabled": "true"}}}))
            .unwrap()
        };
        let mut table: Vec<Str> = Vec::new();
        let mut intern = |s: &Str| match table.iter().find(|t| **t == *s) {
            Some(t) => t.clone(),
            None => {
                table.push(s.clone());
                s.clone()
            }
        };
        let (mut a, mut b) = (mk(), mk());
        a.intern_with(&mut intern);
        b.intern_with(&mut intern);
        assert!(Arc::ptr_eq(&a.kind, &b.kind) && Arc::ptr_eq(&a.key.namespace, &b.key.namespace));
        assert!(
            Arc::ptr_eq(&a.labels().0[0].0, &b.labels().0[0].0) && Arc::ptr_eq(&a.labels().0[0].1, &b.labels().0[0].1)
        );
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
