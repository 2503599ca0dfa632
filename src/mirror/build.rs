//! The desired mirror of a source for one target namespace (BEHAVIOR.md §D with the W-4, W-5, W-6,
//! W-7 and W-8 fixes), and the facts that decide update versus delete-and-recreate.
//!
//! A mirror is always rebuilt whole from the source (never merged into the live object), so removed
//! keys, labels and annotations disappear from mirrors too. The source itself is shared (`Arc`) and
//! only ever read: every mirror starts from a deep copy.

use std::fmt;
use std::time::SystemTime;

use serde_json::{Map, Value};

use crate::keys;
use crate::mirror::hash;
use crate::model::{Pairs, SourceObject, Str};
use crate::transform;
use crate::util::time;

/// Secret types that must never leave their namespace: credentials bound to a service account, node
/// bootstrap tokens, and Helm's release records (copying one makes Helm believe a release exists).
pub const REFUSED_SECRET_TYPES: [&str; 3] =
    ["kubernetes.io/service-account-token", "bootstrap.kubernetes.io/token", "helm.sh/release.v1"];

/// Annotations that describe the source object's own history and are wrong on any copy.
const ALWAYS_STRIPPED: [&str; 2] =
    ["kubectl.kubernetes.io/last-applied-configuration", "deployment.kubernetes.io/revision"];

/// Label/annotation keys never copied to mirrors because GitOps tools would adopt or prune a copy
/// that carries them. Applies to labels and annotations alike. Configurable (`--strip-metadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripList {
    keys: Vec<String>,
    prefixes: Vec<String>,
}

impl Default for StripList {
    fn default() -> Self {
        StripList::parse(
            "argocd.argoproj.io/*,app.kubernetes.io/instance,helm.sh/*,meta.helm.sh/*,\
             kustomize.toolkit.fluxcd.io/*,helm.toolkit.fluxcd.io/*",
        )
    }
}

impl StripList {
    /// Comma list; an entry ending in `*` is a prefix, anything else an exact key.
    pub fn parse(list: &str) -> Self {
        let mut s = StripList { keys: Vec::new(), prefixes: Vec::new() };
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            match entry.strip_suffix('*') {
                Some(prefix) => s.prefixes.push(prefix.to_string()),
                None => s.keys.push(entry.to_string()),
            }
        }
        s
    }

    pub fn matches(&self, key: &str) -> bool {
        self.keys.iter().any(|k| k == key) || self.prefixes.iter().any(|p| key.starts_with(p.as_str()))
    }
}

#[derive(Debug, Clone, Default)]
pub struct BuildConfig {
    pub strip: StripList,
}

/// What a transformation sees besides the mirror it edits.
pub struct TransformContext<'a> {
    pub source: &'a SourceObject,
    pub target_namespace: &'a str,
}

/// The seam for the transformation language ([`crate::mirror::transform`]). It edits the built
/// mirror in place; afterwards the builder re-asserts identity and its own keys, so no rule can
/// rename, move or disown a mirror. Strict/non-strict handling belongs to the implementation: `Ok`
/// carries the rules it skipped (reported, the mirror is still written), an `Err` fails this
/// target only.
pub trait Transform {
    fn apply(&self, mirror: &mut Value, ctx: &TransformContext<'_>) -> Result<Vec<transform::Error>, transform::Error>;
}

/// No rules: the mirror is the source's content.
pub struct NoTransform;

impl Transform for NoTransform {
    fn apply(&self, _: &mut Value, _: &TransformContext<'_>) -> Result<Vec<transform::Error>, transform::Error> {
        Ok(Vec::new())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildError {
    RefusedSecretType(String),
    Transform(transform::Error),
    NotAnObject,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::RefusedSecretType(t) => write!(f, "Secrets of type {t} are never mirrored"),
            BuildError::Transform(e) => write!(f, "{e}"),
            BuildError::NotAnObject => f.write_str("source is not a JSON object"),
        }
    }
}

impl std::error::Error for BuildError {}

/// A mirror ready to be written, with the hash it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub object: Value,
    /// The content hash (shared: every mirror written with it points at one copy).
    pub hash: Str,
    /// Transformation rules skipped for this target (non-strict mode), to report.
    pub skipped: Vec<transform::Error>,
}

fn is_core(obj: &Value, kind: &str) -> bool {
    obj.get("apiVersion").and_then(Value::as_str) == Some("v1") && obj.get("kind").and_then(Value::as_str) == Some(kind)
}

/// `Err` for a Secret whose type must not travel; checked before any target is planned.
pub fn check_source(source: &SourceObject) -> Result<(), BuildError> {
    if &*source.api_version != "v1" || &*source.kind != "Secret" {
        return Ok(());
    }
    match source.content_type() {
        Some(t) if REFUSED_SECRET_TYPES.contains(&t.as_str()) => Err(BuildError::RefusedSecretType(t)),
        _ => Ok(()),
    }
}

fn filtered(map: Option<&Value>, keep: impl Fn(&str) -> bool) -> Map<String, Value> {
    map.and_then(Value::as_object)
        .map(|m| m.iter().filter(|(k, _)| keep(k)).map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

fn filtered_pairs(pairs: &Pairs, keep: impl Fn(&str) -> bool) -> Map<String, Value> {
    pairs.iter().filter(|(k, _)| keep(k)).map(|(k, v)| (k.to_string(), Value::String(v.to_string()))).collect()
}

/// What every target's mirror of a source starts from: the source's content, kind and the
/// labels/annotations it carries, parsed once. [`Base::build`] adds the target namespace, runs the
/// rules and puts our keys on.
pub struct Base<'a> {
    source: &'a SourceObject,
    obj: Map<String, Value>,
}

impl<'a> Base<'a> {
    pub fn new(source: &'a SourceObject, config: &BuildConfig) -> Result<Base<'a>, BuildError> {
        check_source(source)?;
        let mut obj = source.content();
        for (field, v) in [("apiVersion", &source.api_version), ("kind", &source.kind)] {
            if !v.is_empty() {
                obj.insert(field.into(), Value::String(v.to_string()));
            }
        }
        let labels = filtered_pairs(source.labels(), |k| !k.starts_with(keys::PREFIX) && !config.strip.matches(k));
        let annotations = filtered_pairs(source.annotations(), |k| {
            !k.starts_with(keys::PREFIX) && !ALWAYS_STRIPPED.contains(&k) && !config.strip.matches(k)
        });
        obj.insert("metadata".into(), metadata(&source.key.name, None, labels, annotations));
        Ok(Base { source, obj })
    }

    /// The mirror for `target_ns`. See the module docs for what is carried.
    pub fn build(&self, target_ns: &str, transform: &dyn Transform, now: SystemTime) -> Result<Desired, BuildError> {
        let source = self.source;
        let mut obj = Value::Object(self.obj.clone());
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("namespace".into(), target_ns.into());
        }

        let skipped = transform
            .apply(&mut obj, &TransformContext { source, target_namespace: target_ns })
            .map_err(BuildError::Transform)?;

        // Re-assert after the transform: identity, an allow-listed metadata (nothing server-owned
        // or ownership-related survives) and no stray kubemirror keys before ours go on.
        let top = obj.as_object_mut().ok_or(BuildError::NotAnObject)?;
        top.remove("status");
        let meta = top.get("metadata");
        let labels = filtered(meta.and_then(|m| m.get("labels")), |k| !k.starts_with(keys::PREFIX));
        let annotations = filtered(meta.and_then(|m| m.get("annotations")), |k| !k.starts_with(keys::PREFIX));
        top.insert("metadata".into(), metadata(&source.key.name, Some(target_ns), labels, annotations));
        finish(obj, source, skipped, now)
    }
}

/// Builds the mirror of `source` for `target_ns` (a [`Base`] for one target).
pub fn build_mirror(
    source: &SourceObject,
    target_ns: &str,
    config: &BuildConfig,
    transform: &dyn Transform,
    now: SystemTime,
) -> Result<Desired, BuildError> {
    Base::new(source, config)?.build(target_ns, transform, now)
}

/// Hash the carried content, then put our labels and annotations on.
fn finish(
    mut obj: Value,
    source: &SourceObject,
    skipped: Vec<transform::Error>,
    now: SystemTime,
) -> Result<Desired, BuildError> {
    strip_server_assigned(&mut obj);

    let hash: Str = hash::content_hash(&obj).into();
    let mut labels = Map::new();
    labels.insert(keys::LABEL_MANAGED_BY.into(), keys::MANAGED_BY_VALUE.into());
    labels.insert(keys::LABEL_MIRROR.into(), "true".into());
    let mut ann = Map::new();
    ann.insert(keys::ANN_SOURCE_NAMESPACE.into(), (*source.key.namespace).into());
    ann.insert(keys::ANN_SOURCE_NAME.into(), (*source.key.name).into());
    ann.insert(keys::ANN_SOURCE_UID.into(), (*source.uid).into());
    ann.insert(keys::ANN_SOURCE_CONTENT_HASH.into(), (*hash).into());
    if source.generation > 0 {
        ann.insert(keys::ANN_SOURCE_GENERATION.into(), source.generation.to_string().into());
    }
    if !source.resource_version.is_empty() {
        ann.insert(keys::ANN_SOURCE_RESOURCE_VERSION.into(), (*source.resource_version).into());
    }
    ann.insert(keys::ANN_LAST_SYNC_TIME.into(), time::format_rfc3339(now).into());
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for (field, ours) in [("labels", labels), ("annotations", ann)] {
            if let Some(map) = meta.entry(field).or_insert_with(|| Value::Object(Map::new())).as_object_mut() {
                map.extend(ours);
            }
        }
    }
    Ok(Desired { object: obj, hash, skipped })
}

fn metadata(name: &str, namespace: Option<&str>, labels: Map<String, Value>, annotations: Map<String, Value>) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), name.into());
    if let Some(ns) = namespace {
        m.insert("namespace".into(), ns.into());
    }
    if !labels.is_empty() {
        m.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        m.insert("annotations".into(), Value::Object(annotations));
    }
    Value::Object(m)
}

/// Service fields the API server allocates per object: copying them makes the create fail (IP or
/// port already allocated). Headless Services keep `clusterIP: None`, which is the user's choice.
const SERVICE_ALLOCATED: [&str; 5] = ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy", "healthCheckNodePort"];

fn is_headless(obj: &Value) -> bool {
    obj.pointer("/spec/clusterIP").and_then(Value::as_str) == Some("None")
}

/// Removes the per-kind server-assigned fields (today: Service). Used on desired mirrors, and on
/// live ones before comparing them.
pub fn strip_server_assigned(obj: &mut Value) {
    if !is_core(obj, "Service") {
        return;
    }
    let headless = is_headless(obj);
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else { return };
    if !headless {
        for f in SERVICE_ALLOCATED {
            spec.remove(f);
        }
    }
    // Node ports are allocated per Service in every mode (a headless Service has none anyway).
    spec.remove("healthCheckNodePort");
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            p.remove("nodePort");
        }
    }
}

/// Copies the server-assigned fields of the live mirror into the desired one, so a full PUT keeps
/// the mirror's allocated IPs and node ports. A PUT that omits them keeps them anyway on a real API
/// server (`patchAllocatedValues` in kubernetes pkg/registry/core/service/storage copies clusterIP(s),
/// node ports by port name and healthCheckNodePort from the old object), so the planner's plain
/// Update needs no read; when the live object is at hand anyway (after a Verify) this makes the
/// request exact instead of relying on that server behaviour. Node ports are matched by port name,
/// or by port number and protocol for unnamed ports.
pub fn preserve_server_assigned(desired: &mut Value, live: &Value) {
    if !is_core(desired, "Service") || is_headless(desired) != is_headless(live) {
        return;
    }
    let (Some(spec), Some(live_spec)) =
        (desired.get_mut("spec").and_then(Value::as_object_mut), live.get("spec").and_then(Value::as_object))
    else {
        return;
    };
    for f in SERVICE_ALLOCATED {
        if let (false, Some(v)) = (spec.contains_key(f), live_spec.get(f)) {
            spec.insert(f.into(), v.clone());
        }
    }
    let live_ports = live_spec.get("ports").and_then(Value::as_array).cloned().unwrap_or_default();
    let same_port = |a: &Value, b: &Value| match (a.get("name"), b.get("name")) {
        (Some(x), Some(y)) if x != "" => x == y,
        _ => a.get("port") == b.get("port") && a.get("protocol") == b.get("protocol"),
    };
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut() {
            let node_port = live_ports.iter().find(|l| same_port(p, l)).and_then(|l| l.get("nodePort")).cloned();
            if let (Some(np), Some(p)) = (node_port, p.as_object_mut()) {
                p.entry("nodePort").or_insert(np);
            }
        }
    }
}

/// Whether a live mirror differs from the desired one in anything we manage. Labels and
/// annotations added by others are tolerated (fighting every annotating controller would loop),
/// everything else must be equal. Server-assigned fields are ignored.
pub fn drifted(live: &Value, desired: &Desired) -> bool {
    let mut live = live.clone();
    strip_server_assigned(&mut live);
    let (live_c, want_c) = (hash::carried_content(&live), hash::carried_content(&desired.object));
    let without_meta = |mut c: Value| {
        if let Some(m) = c.as_object_mut() {
            m.remove("metadata");
        }
        c
    };
    if without_meta(live_c) != without_meta(want_c) {
        return true;
    }
    ["labels", "annotations"].iter().any(|field| {
        let want = desired.object.pointer(&format!("/metadata/{field}")).and_then(Value::as_object);
        let have = live.pointer(&format!("/metadata/{field}")).and_then(Value::as_object);
        want.is_some_and(|w| {
            w.iter()
                .filter(|(k, _)| {
                    !k.starts_with(keys::PREFIX) || *k == keys::LABEL_MANAGED_BY || *k == keys::LABEL_MIRROR
                })
                .any(|(k, v)| have.and_then(|h| h.get(k)) != Some(v))
        })
    })
}

/// A Secret's type, kept small in the write ledger (one per mirror): the common types by index,
/// any other by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretType {
    Known(u8),
    Other(Box<Box<str>>),
}

const KNOWN_SECRET_TYPES: [&str; 7] = [
    "Opaque",
    "kubernetes.io/tls",
    "kubernetes.io/dockerconfigjson",
    "kubernetes.io/dockercfg",
    "kubernetes.io/basic-auth",
    "kubernetes.io/ssh-auth",
    "kubernetes.io/service-account-token",
];

impl From<&str> for SecretType {
    fn from(t: &str) -> Self {
        match KNOWN_SECRET_TYPES.iter().position(|k| *k == t) {
            Some(i) => SecretType::Known(i as u8),
            None => SecretType::Other(Box::new(t.into())),
        }
    }
}

impl SecretType {
    pub fn as_str(&self) -> &str {
        match self {
            SecretType::Known(i) => KNOWN_SECRET_TYPES.get(usize::from(*i)).copied().unwrap_or(""),
            SecretType::Other(t) => t,
        }
    }
}

/// What is known about a live mirror's immutable parts: from the object itself, or recorded by the
/// executor from the object it last wrote (the mirror watch is metadata-only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveFacts {
    pub immutable: bool,
    pub secret_type: Option<SecretType>,
    pub headless: Option<bool>,
    /// A core Secret or ConfigMap, the kinds whose `immutable: true` freezes the content.
    pub immutable_kind: bool,
}

impl LiveFacts {
    pub fn of(obj: &Value) -> Self {
        LiveFacts {
            immutable: obj.get("immutable").and_then(Value::as_bool) == Some(true),
            secret_type: if is_core(obj, "Secret") {
                Some(obj.get("type").and_then(Value::as_str).unwrap_or("Opaque").into())
            } else {
                None
            },
            headless: is_core(obj, "Service").then(|| is_headless(obj)),
            immutable_kind: is_core(obj, "Secret") || is_core(obj, "ConfigMap"),
        }
    }

    /// Facts that a mirror of the same kind as `want` has when nothing about it is special: not
    /// immutable, an `Opaque` Secret, not a Service. Only such writes are remembered by the cache's
    /// `confirmed` flag alone (see [`crate::mirror::drift::LastWrite::settled_by`]), so these are the
    /// facts a confirmed record stands for.
    pub fn plain_like(want: &LiveFacts) -> Self {
        LiveFacts {
            immutable: false,
            secret_type: want.secret_type.as_ref().map(|_| SecretType::Known(0)),
            headless: None,
            immutable_kind: want.immutable_kind,
        }
    }

    /// Whether these are facts [`plain_like`](Self::plain_like) reconstructs.
    pub fn is_plain(&self) -> bool {
        !self.immutable
            && self.headless.is_none()
            && self.secret_type.as_ref().is_none_or(|t| *t == SecretType::Known(0))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecreateReason {
    /// `immutable: true` Secret/ConfigMap whose content changed.
    ImmutableChanged,
    SecretTypeChanged,
    /// A Service switching between headless and not (clusterIP is immutable).
    ClusterIpChanged,
    /// The mirror belongs to an earlier object of the same source name (different uid).
    SourceReplaced,
}

impl fmt::Display for RecreateReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RecreateReason::ImmutableChanged => "immutable mirror content changed",
            RecreateReason::SecretTypeChanged => "Secret type changed",
            RecreateReason::ClusterIpChanged => "Service clusterIP mode changed",
            RecreateReason::SourceReplaced => "source was recreated",
        })
    }
}

/// Whether updating the live mirror into `desired` is impossible, so it must be deleted and created
/// again. `content_changed`: the desired hash differs from the one the mirror carries.
pub fn recreate_reason(desired: &Value, live: &LiveFacts, content_changed: bool) -> Option<RecreateReason> {
    recreate_reason_of(&LiveFacts::of(desired), live, content_changed)
}

/// [`recreate_reason`] from the desired mirror's facts (the planner keeps those, not the object).
pub fn recreate_reason_of(want: &LiveFacts, live: &LiveFacts, content_changed: bool) -> Option<RecreateReason> {
    if live.secret_type.is_some() && want.secret_type.is_some() && live.secret_type != want.secret_type {
        return Some(RecreateReason::SecretTypeChanged);
    }
    if live.headless.is_some() && want.headless.is_some() && live.headless != want.headless {
        return Some(RecreateReason::ClusterIpChanged);
    }
    (want.immutable_kind && live.immutable && content_changed).then_some(RecreateReason::ImmutableChanged)
}

/// Whether an API error (a `Status` body) rejected an update because a field is immutable; the
/// executor then recreates the (owned) mirror instead of retrying the same update for ever.
pub fn is_immutable_rejection(status: &Value) -> bool {
    let invalid = status.get("code").and_then(Value::as_i64) == Some(422)
        || status.get("reason").and_then(Value::as_str) == Some("Invalid");
    let mentions = |v: Option<&Value>| v.and_then(Value::as_str).is_some_and(|m| m.contains("immutable"));
    invalid
        && (mentions(status.get("message"))
            || status
                .pointer("/details/causes")
                .and_then(Value::as_array)
                .is_some_and(|c| c.iter().any(|c| mentions(c.get("message")))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::{Duration, UNIX_EPOCH};

    fn at() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_735_787_045) // 2025-01-02T03:04:05Z
    }

    fn source(obj: Value) -> SourceObject {
        SourceObject::from_object(obj).unwrap()
    }

    fn secret() -> SourceObject {
        source(json!({
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {
                "name": "db", "namespace": "default", "uid": "u1", "resourceVersion": "41", "generation": 0,
                "creationTimestamp": "2025-01-01T00:00:00Z", "selfLink": "/x", "deletionGracePeriodSeconds": 30,
                "finalizers": ["kubemirror.raczylo.com/finalizer", "other/f"],
                "ownerReferences": [{"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret", "name": "es", "uid": "o"}],
                "managedFields": [{"manager": "x"}],
                "labels": {"kubemirror.raczylo.com/enabled": "true", "app": "db", "app.kubernetes.io/instance": "argo-app",
                           "kustomize.toolkit.fluxcd.io/name": "k", "helm.sh/chart": "c-1"},
                "annotations": {"kubemirror.raczylo.com/sync": "true", "kubemirror.raczylo.com/target-namespaces": "all",
                                "kubemirror.raczylo.com/sync-status": "synced:1", "note": "kept",
                                "kubectl.kubernetes.io/last-applied-configuration": "{}",
                                "deployment.kubernetes.io/revision": "3", "argocd.argoproj.io/tracking-id": "t",
                                "meta.helm.sh/release-name": "r"}
            },
            "data": {"password": "cw=="},
            "status": {"x": 1}
        }))
    }

    #[test]
    fn secret_mirror_metadata_rules() {
        let src = secret();
        let before = src.object();
        let d = build_mirror(&src, "app1", &BuildConfig::default(), &NoTransform, at()).unwrap();
        assert_eq!(src.object(), before, "the source is never mutated");
        let want = json!({
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque", "data": {"password": "cw=="},
            "metadata": {
                "name": "db", "namespace": "app1",
                "labels": {"app": "db", "kubemirror.raczylo.com/managed-by": "kubemirror", "kubemirror.raczylo.com/mirror": "true"},
                "annotations": {"note": "kept",
                    "kubemirror.raczylo.com/source-namespace": "default", "kubemirror.raczylo.com/source-name": "db",
                    "kubemirror.raczylo.com/source-uid": "u1", "kubemirror.raczylo.com/source-content-hash": &*d.hash,
                    "kubemirror.raczylo.com/source-resource-version": "41",
                    "kubemirror.raczylo.com/last-sync-time": "2025-01-02T03:04:05Z"}
            }
        });
        assert_eq!(d.object, want);
        assert_eq!(*d.hash, hash::content_hash(&d.object));
    }

    #[test]
    fn go_hash_kept_for_plain_configmap() {
        let src = source(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "default", "uid": "u",
                "labels": {"kubemirror.raczylo.com/enabled": "true"}, "annotations": {"kubemirror.raczylo.com/sync": "true"}},
            "data": {"key": "value"}}));
        let d = build_mirror(&src, "t", &BuildConfig::default(), &NoTransform, at()).unwrap();
        assert_eq!(&*d.hash, "6d03299fbba4e28d5b65007acecd643423db710bfdde6c6750d8dbf28f80fc8c");
    }

    #[test]
    fn crd_mirror_keeps_spec_and_generation() {
        let src = source(json!({"apiVersion": "traefik.io/v1alpha1", "kind": "Middleware",
            "metadata": {"name": "compression", "namespace": "default", "uid": "u", "generation": 4},
            "spec": {"compress": {"excludedContentTypes": ["text/event-stream"]}}, "status": {"ok": true}}));
        let d = build_mirror(&src, "app-a", &BuildConfig::default(), &NoTransform, at()).unwrap();
        assert_eq!(d.object["spec"], src.object()["spec"]);
        assert!(d.object.get("status").is_none());
        assert_eq!(
            d.object.pointer("/metadata/annotations/kubemirror.raczylo.com~1source-generation"),
            Some(&json!("4"))
        );
    }

    #[test]
    fn refused_secret_types() {
        for t in REFUSED_SECRET_TYPES {
            let src = source(json!({"apiVersion": "v1", "kind": "Secret", "type": t,
                "metadata": {"name": "s", "namespace": "n", "uid": "u"}}));
            let err = build_mirror(&src, "t", &BuildConfig::default(), &NoTransform, at()).unwrap_err();
            assert_eq!(err, BuildError::RefusedSecretType(t.to_string()));
        }
        // Same type string on another kind is not a Secret.
        let cr = source(json!({"apiVersion": "x.io/v1", "kind": "Thing", "type": "helm.sh/release.v1",
            "metadata": {"name": "s", "namespace": "n", "uid": "u"}}));
        assert!(check_source(&cr).is_ok());
    }

    #[test]
    fn configurable_strip_list() {
        let cfg = BuildConfig { strip: StripList::parse("note, app*") };
        let d = build_mirror(&secret(), "app1", &cfg, &NoTransform, at()).unwrap();
        let labels = d.object.pointer("/metadata/labels").unwrap().as_object().unwrap();
        assert!(!labels.contains_key("app") && labels.contains_key("helm.sh/chart"));
        assert!(d.object.pointer("/metadata/annotations/note").is_none());
        assert!(d.object.pointer("/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration").is_none());
    }

    struct Hostile;
    impl Transform for Hostile {
        fn apply(&self, m: &mut Value, ctx: &TransformContext<'_>) -> Result<Vec<transform::Error>, transform::Error> {
            m["metadata"]["name"] = json!("renamed");
            m["metadata"]["namespace"] = json!("elsewhere");
            m["metadata"]["ownerReferences"] = json!([{"uid": "x"}]);
            m["metadata"]["labels"]["kubemirror.raczylo.com/managed-by"] = json!("someone");
            m["metadata"]["labels"]["env"] = json!(ctx.target_namespace);
            m["data"]["extra"] = json!("eA==");
            Ok(Vec::new())
        }
    }

    struct Failing;
    impl Transform for Failing {
        fn apply(&self, _: &mut Value, _: &TransformContext<'_>) -> Result<Vec<transform::Error>, transform::Error> {
            Err(transform::Error {
                kind: transform::ErrorKind::Path,
                rule: Some((1, "data.x".into())),
                detail: "boom".into(),
            })
        }
    }

    #[test]
    fn transform_seam_cannot_break_identity_and_is_hashed() {
        let src = secret();
        let d = build_mirror(&src, "app1", &BuildConfig::default(), &Hostile, at()).unwrap();
        assert_eq!(d.object.pointer("/metadata/name"), Some(&json!("db")));
        assert_eq!(d.object.pointer("/metadata/namespace"), Some(&json!("app1")));
        assert!(d.object.pointer("/metadata/ownerReferences").is_none());
        assert_eq!(d.object.pointer("/metadata/labels/kubemirror.raczylo.com~1managed-by"), Some(&json!("kubemirror")));
        assert_eq!(d.object.pointer("/metadata/labels/env"), Some(&json!("app1")));
        let plain = build_mirror(&src, "app1", &BuildConfig::default(), &NoTransform, at()).unwrap();
        assert_ne!(d.hash, plain.hash, "the hash covers the transformed output");
        let err = build_mirror(&src, "app1", &BuildConfig::default(), &Failing, at()).unwrap_err();
        assert_eq!(err.to_string(), "failed to apply rule 1 (data.x): boom");
    }

    fn service(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default", "uid": "u"},
            "spec": spec})
    }

    #[test]
    fn service_server_assigned_fields() {
        let cases = [
            (
                "NodePort drops allocations",
                json!({"type": "NodePort", "clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"], "ipFamilies": ["IPv4"],
                    "ipFamilyPolicy": "SingleStack", "selector": {"a": "b"},
                    "ports": [{"name": "http", "port": 80, "nodePort": 30080, "protocol": "TCP"}]}),
                json!({"type": "NodePort", "selector": {"a": "b"}, "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}),
            ),
            (
                "LoadBalancer drops health check port",
                json!({"type": "LoadBalancer", "clusterIP": "10.0.0.2", "healthCheckNodePort": 31000, "ports": []}),
                json!({"type": "LoadBalancer", "ports": []}),
            ),
            (
                "headless keeps clusterIP None",
                json!({"clusterIP": "None", "clusterIPs": ["None"], "ipFamilies": ["IPv4"], "ports": [{"port": 80}]}),
                json!({"clusterIP": "None", "clusterIPs": ["None"], "ipFamilies": ["IPv4"], "ports": [{"port": 80}]}),
            ),
        ];
        for (name, spec, want) in cases {
            let d = build_mirror(&source(service(spec)), "t", &BuildConfig::default(), &NoTransform, at()).unwrap();
            assert_eq!(d.object["spec"], want, "{name}");
        }
        // A CRD with the same field names is not touched.
        let cr = json!({"apiVersion": "x.io/v1", "kind": "Service", "metadata": {"name": "a", "namespace": "b", "uid": "u"},
            "spec": {"clusterIP": "1.2.3.4"}});
        let d = build_mirror(&source(cr), "t", &BuildConfig::default(), &NoTransform, at()).unwrap();
        assert_eq!(d.object.pointer("/spec/clusterIP"), Some(&json!("1.2.3.4")));
    }

    #[test]
    fn service_update_preserves_live_allocations() {
        let src = source(service(json!({"type": "NodePort", "clusterIP": "10.0.0.1",
            "ports": [{"name": "http", "port": 80, "nodePort": 30080, "protocol": "TCP"},
                      {"port": 443, "protocol": "TCP", "nodePort": 30443}]})));
        let mut d = build_mirror(&src, "t", &BuildConfig::default(), &NoTransform, at()).unwrap();
        let live = service(json!({"type": "NodePort", "clusterIP": "10.9.9.9", "clusterIPs": ["10.9.9.9"],
            "ports": [{"name": "http", "port": 80, "nodePort": 31111, "protocol": "TCP"},
                      {"port": 443, "protocol": "TCP", "nodePort": 32222}]}));
        preserve_server_assigned(&mut d.object, &live);
        assert_eq!(d.object.pointer("/spec/clusterIP"), Some(&json!("10.9.9.9")));
        assert_eq!(d.object.pointer("/spec/ports/0/nodePort"), Some(&json!(31111)));
        assert_eq!(d.object.pointer("/spec/ports/1/nodePort"), Some(&json!(32222)));
    }

    #[test]
    fn drift_detection() {
        let src = secret();
        let d = build_mirror(&src, "app1", &BuildConfig::default(), &NoTransform, at()).unwrap();
        let with = |f: &dyn Fn(&mut Value)| {
            let mut live = d.object.clone();
            live["metadata"]["resourceVersion"] = json!("77");
            live["metadata"]["uid"] = json!("m1");
            f(&mut live);
            live
        };
        type Edit<'a> = &'a dyn Fn(&mut Value);
        let cases: [(&str, Edit, bool); 8] = [
            ("identical apart from server metadata", &|_| {}, false),
            ("foreign annotation tolerated", &|l| l["metadata"]["annotations"]["reloader"] = json!("x"), false),
            ("foreign label tolerated", &|l| l["metadata"]["labels"]["team"] = json!("x"), false),
            ("data edited", &|l| l["data"]["password"] = json!("eA=="), true),
            ("data key added", &|l| l["data"]["new"] = json!("eA=="), true),
            ("carried annotation changed", &|l| l["metadata"]["annotations"]["note"] = json!("changed"), true),
            ("carried label removed", &|l| l["metadata"]["labels"].as_object_mut().unwrap().clear(), true),
            ("type changed", &|l| l["type"] = json!("kubernetes.io/tls"), true),
        ];
        for (name, edit, want) in cases {
            assert_eq!(drifted(&with(edit), &d), want, "{name}");
        }
        let svc = source(service(json!({"clusterIP": "10.0.0.1", "ports": [{"port": 80, "nodePort": 30000}]})));
        let d = build_mirror(&svc, "t", &BuildConfig::default(), &NoTransform, at()).unwrap();
        let mut live = d.object.clone();
        live["spec"]["clusterIP"] = json!("10.1.1.1");
        live["spec"]["ports"][0]["nodePort"] = json!(31000);
        assert!(!drifted(&live, &d), "allocations are not drift");
    }

    #[test]
    fn recreate_table() {
        let secret =
            |t: &str, immutable: bool| json!({"apiVersion": "v1", "kind": "Secret", "type": t, "immutable": immutable});
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "immutable": true});
        let svc = |ip: &str| json!({"apiVersion": "v1", "kind": "Service", "spec": {"clusterIP": ip}});
        let cases = [
            (
                "immutable secret changed",
                secret("Opaque", true),
                LiveFacts::of(&secret("Opaque", true)),
                true,
                Some(RecreateReason::ImmutableChanged),
            ),
            ("immutable secret unchanged", secret("Opaque", true), LiveFacts::of(&secret("Opaque", true)), false, None),
            (
                "live immutable, source no longer",
                secret("Opaque", false),
                LiveFacts::of(&secret("Opaque", true)),
                true,
                Some(RecreateReason::ImmutableChanged),
            ),
            (
                "mutable becomes immutable: plain update",
                secret("Opaque", true),
                LiveFacts::of(&secret("Opaque", false)),
                true,
                None,
            ),
            (
                "type changed",
                secret("kubernetes.io/tls", false),
                LiveFacts::of(&secret("Opaque", false)),
                true,
                Some(RecreateReason::SecretTypeChanged),
            ),
            (
                "immutable configmap changed",
                cm.clone(),
                LiveFacts::of(&cm),
                true,
                Some(RecreateReason::ImmutableChanged),
            ),
            ("service to headless", svc("None"), LiveFacts::of(&svc("")), true, Some(RecreateReason::ClusterIpChanged)),
            ("unknown live facts", secret("Opaque", true), LiveFacts::default(), true, None),
            (
                "crd with immutable field",
                json!({"apiVersion": "x/v1", "kind": "ConfigMap", "immutable": true}),
                LiveFacts { immutable: true, ..LiveFacts::default() },
                true,
                None,
            ),
        ];
        for (name, desired, live, changed, want) in cases {
            assert_eq!(recreate_reason(&desired, &live, changed), want, "{name}");
        }
    }

    #[test]
    fn immutable_rejections() {
        let cases = [
            (
                json!({"kind": "Status", "code": 422, "reason": "Invalid",
                "message": "Secret \"db\" is invalid: data: Forbidden: field is immutable when `immutable` is set"}),
                true,
            ),
            (
                json!({"code": 422, "reason": "Invalid", "message": "x",
                "details": {"causes": [{"message": "field is immutable"}]}}),
                true,
            ),
            (json!({"code": 422, "reason": "Invalid", "message": "spec.ports: Required value"}), false),
            (json!({"code": 409, "reason": "Conflict", "message": "immutable"}), false),
            (json!("garbage"), false),
        ];
        for (status, want) in cases {
            assert_eq!(is_immutable_rejection(&status), want, "{status}");
        }
    }
}
