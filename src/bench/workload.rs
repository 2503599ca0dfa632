//! The benchmark's cluster contents, generated deterministically from the configuration and its
//! seed: target namespaces, opted-in sources of a chosen size range (Secrets, ConfigMaps and, when
//! asked, a custom resource), some with transformation rules, and unrelated objects. Every
//! function here is pure, so the expected mirrors can be computed without the server.

use serde_json::{Map, Value, json};

use crate::keys;
use crate::util::base64;
use crate::util::rand::Rng;

/// Where the sources live; never a target.
pub const SOURCE_NAMESPACE: &str = "bench-src";
/// The source whose content changes in the change phase (a Secret without rules).
pub const CHANGED_SOURCE: &str = "src-0000";
/// Every [`NEW_NAMESPACE_EVERY`]th source also targets this glob, which matches no namespace until
/// the new-namespace phase creates [`NEW_NAMESPACE`].
pub const NEW_NAMESPACE_GLOB: &str = "bench-new-*";
pub const NEW_NAMESPACE: &str = "bench-new-0001";
pub const NEW_NAMESPACE_EVERY: usize = 10;

/// The custom resource of the mixed scenarios (the in-memory server serves it once its CRD exists).
pub const CRD_GROUP: &str = "bench.kubemirror.io";
pub const CRD_KIND: &str = "Widget";
pub const CRD_PLURAL: &str = "widgets";

/// A mirrored kind of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Secret,
    ConfigMap,
    Widget,
}

impl Kind {
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Secret | Kind::ConfigMap => "v1",
            Kind::Widget => "bench.kubemirror.io/v1",
        }
    }

    pub fn kind(self) -> &'static str {
        match self {
            Kind::Secret => "Secret",
            Kind::ConfigMap => "ConfigMap",
            Kind::Widget => CRD_KIND,
        }
    }

    /// The controller's `--resource-types` name.
    pub fn type_name(self) -> &'static str {
        match self {
            Kind::Secret => "Secret.v1",
            Kind::ConfigMap => "ConfigMap.v1",
            Kind::Widget => "Widget.v1.bench.kubemirror.io",
        }
    }

    /// Where the payload lives, and where rules write.
    fn payload_field(self) -> &'static str {
        match self {
            Kind::Secret | Kind::ConfigMap => "data",
            Kind::Widget => "spec",
        }
    }
}

/// What the seeded cluster holds; see [`crate::bench::Config`] for the meaning of each field.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    pub sources: usize,
    pub namespaces: usize,
    /// None: the `all` keyword.
    pub targets_per_source: Option<usize>,
    pub source_bytes: (usize, usize),
    pub objects_other: usize,
    pub other_bytes: usize,
    pub crd: bool,
    pub transform_share: f64,
    pub seed: u64,
}

pub fn namespace_name(i: usize) -> String {
    format!("bench-{i:04}")
}

pub fn source_name(i: usize) -> String {
    format!("src-{i:04}")
}

impl Shape {
    /// Kinds rotate: Secret, ConfigMap (and the custom resource). Source 0 is always a Secret.
    pub fn kind_of(&self, i: usize) -> Kind {
        let kinds: &[Kind] =
            if self.crd { &[Kind::Secret, Kind::ConfigMap, Kind::Widget] } else { &[Kind::Secret, Kind::ConfigMap] };
        kinds[i % kinds.len()]
    }

    pub fn kinds(&self) -> Vec<Kind> {
        let mut k: Vec<Kind> = (0..self.sources.min(3)).map(|i| self.kind_of(i)).collect();
        k.sort();
        k.dedup();
        k
    }

    /// Rules on every 1/share-th source (never on source 0, whose change is timed); `Some(true)`:
    /// rules that depend on the target namespace (a template), `Some(false)`: the same for every
    /// target (a constant), alternately.
    pub fn transform_of(&self, i: usize) -> Option<bool> {
        let s = self.transform_share.clamp(0.0, 1.0);
        let (a, b) = (((i + 1) as f64 * s).floor(), (i as f64 * s).floor());
        (i > 0 && a > b).then_some((b as u64) % 2 == 0)
    }

    /// The namespaces source `i` names: K consecutive from `i mod M`, wrapping, so every namespace
    /// receives about the same number of mirrors.
    pub fn targets_of(&self, i: usize) -> Vec<String> {
        let k = self.targets_per_source.unwrap_or(self.namespaces).min(self.namespaces);
        (0..k).map(|j| namespace_name((i + j) % self.namespaces)).collect()
    }

    /// Whether source `i` also names [`NEW_NAMESPACE_GLOB`] (with `all`, every source selects it).
    pub fn targets_new_namespace(&self, i: usize) -> bool {
        self.targets_per_source.is_none() || i % NEW_NAMESPACE_EVERY == 0
    }

    fn annotation(&self, i: usize) -> String {
        let mut list = match self.targets_per_source {
            None => keys::KEYWORD_ALL.to_string(),
            Some(_) => self.targets_of(i).join(","),
        };
        if self.targets_per_source.is_some() && self.targets_new_namespace(i) {
            list.push(',');
            list.push_str(NEW_NAMESPACE_GLOB);
        }
        list
    }

    /// The byte size source `i` is padded to, uniform in the configured range.
    pub fn size_of(&self, i: usize) -> usize {
        let (lo, hi) = self.source_bytes;
        let mut rng = Rng::seeded(self.seed.wrapping_mul(0x9E37_79B9).wrapping_add(i as u64 + 1));
        rng.range(lo as u64, hi.max(lo) as u64) as usize
    }

    /// Source `i` at content `version` (the change phase bumps it).
    pub fn source(&self, i: usize, version: u32) -> Value {
        let kind = self.kind_of(i);
        let mut ann = Map::new();
        ann.insert(keys::ANN_SYNC.into(), json!("true"));
        ann.insert(keys::ANN_TARGET_NAMESPACES.into(), json!(self.annotation(i)));
        if let Some(per_target) = self.transform_of(i) {
            ann.insert(keys::ANN_TRANSFORM.into(), json!(rules(kind, per_target)));
        }
        let mut o = json!({"apiVersion": kind.api_version(), "kind": kind.kind(), "metadata": {
            "name": source_name(i), "namespace": SOURCE_NAMESPACE,
            "labels": {keys::LABEL_ENABLED: "true", "app.kubernetes.io/name": "bench"},
            "annotations": ann}});
        let seed = self.seed ^ ((i as u64) << 20) ^ u64::from(version);
        o[kind.payload_field()] = payload(kind, self.size_of(i), seed, &o);
        o
    }

    /// Not a source: no opt-in label (every other one still carries the annotations, which alone
    /// do not opt in), `other_bytes` in size.
    pub fn other_object(&self, i: usize) -> Value {
        let kind = if i % 2 == 0 { Kind::Secret } else { Kind::ConfigMap };
        let mut o = json!({"apiVersion": "v1", "kind": kind.kind(), "metadata": {
            "name": format!("other-{i:05}"), "namespace": namespace_name(i % self.namespaces)}});
        if i % 4 < 2 {
            o["metadata"]["annotations"] =
                json!({keys::ANN_SYNC: "true", keys::ANN_TARGET_NAMESPACES: keys::KEYWORD_ALL});
        }
        o["data"] = payload(kind, self.other_bytes, self.seed ^ (0xABCD << 32) ^ i as u64, &o);
        o
    }

    /// The CRD that serves [`CRD_KIND`].
    pub fn crd() -> Value {
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{CRD_PLURAL}.{CRD_GROUP}")},
            "spec": {"group": CRD_GROUP, "scope": "Namespaced",
                "names": {"kind": CRD_KIND, "listKind": "WidgetList", "plural": CRD_PLURAL, "singular": "widget"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}})
    }
}

/// Two small rules: a label everywhere, plus a payload key that is either the same everywhere or
/// names the target namespace (so each target's mirror differs).
fn rules(kind: Kind, per_target: bool) -> String {
    let field = kind.payload_field();
    let env = if per_target { r#"template: "{{ .TargetNamespace }}""# } else { r#"value: "shared""# };
    format!(
        "rules:\n  - path: metadata.labels.bench-transformed\n    value: \"yes\"\n  - path: {field}.env\n    {env}\n"
    )
}

/// Payload of about `size` bytes once `around` (the object without it) is counted: keys of up to
/// 512 bytes of pseudo-random text (base64 for Secrets).
fn payload(kind: Kind, size: usize, seed: u64, around: &Value) -> Value {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.";
    let mut rng = Rng::seeded(seed.max(1));
    let mut left = size.saturating_sub(around.to_string().len() + 12);
    let mut out = Map::new();
    let mut n = 0;
    while left > 0 || out.is_empty() {
        let key = format!("key-{n:02}");
        // Each entry costs its key, quotes, colon and comma besides the value.
        let room = left.saturating_sub(key.len() + 6).clamp(1, 512);
        let value = match kind {
            Kind::Secret => {
                let raw: Vec<u8> = (0..(room * 3 / 4).max(1))
                    .map(|_| ALPHABET[(rng.next_u64() % ALPHABET.len() as u64) as usize])
                    .collect();
                base64::encode(&raw)
            }
            Kind::ConfigMap | Kind::Widget => {
                (0..room).map(|_| ALPHABET[(rng.next_u64() % ALPHABET.len() as u64) as usize] as char).collect()
            }
        };
        left = left.saturating_sub(key.len() + value.len() + 6);
        out.insert(key, Value::String(value));
        n += 1;
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> Shape {
        Shape {
            sources: 30,
            namespaces: 50,
            targets_per_source: Some(5),
            source_bytes: (1024, 4096),
            objects_other: 10,
            other_bytes: 2048,
            crd: true,
            transform_share: 0.25,
            seed: 1,
        }
    }

    #[test]
    fn sizes_are_in_range_and_deterministic() {
        let s = shape();
        for i in 0..s.sources {
            let o = s.source(i, 1);
            let len = o.to_string().len();
            let want = s.size_of(i);
            assert!((1024..=4096).contains(&want));
            assert!(len.abs_diff(want) < 80, "source {i}: {len} bytes for {want}");
            assert_eq!(o, s.source(i, 1), "deterministic");
        }
        assert_ne!(s.source(0, 1)["data"], s.source(0, 2)["data"], "a new version changes the content");
        let other = s.other_object(3).to_string().len();
        assert!(other.abs_diff(2048) < 80, "{other}");
        assert!(s.other_object(0)["metadata"].get("labels").is_none(), "unrelated objects never opt in");
    }

    #[test]
    fn kinds_rules_and_targets() {
        let s = shape();
        assert_eq!((s.kind_of(0), s.kind_of(1), s.kind_of(2)), (Kind::Secret, Kind::ConfigMap, Kind::Widget));
        assert_eq!(s.kinds(), vec![Kind::Secret, Kind::ConfigMap, Kind::Widget]);
        let ruled: Vec<(usize, bool)> = (0..12).filter_map(|i| s.transform_of(i).map(|t| (i, t))).collect();
        assert_eq!(ruled, vec![(3, true), (7, false), (11, true)], "a quarter, alternating");
        assert!(s.source(3, 1)["metadata"]["annotations"][keys::ANN_TRANSFORM].as_str().unwrap().contains("Target"));
        assert!(s.source(0, 1)["metadata"]["annotations"].get(keys::ANN_TRANSFORM).is_none());
        assert_eq!(s.targets_of(48), vec!["bench-0048", "bench-0049", "bench-0000", "bench-0001", "bench-0002"]);
        let ann = |i| s.source(i, 1)["metadata"]["annotations"][keys::ANN_TARGET_NAMESPACES].clone();
        assert_eq!(ann(10), json!("bench-0010,bench-0011,bench-0012,bench-0013,bench-0014,bench-new-*"));
        assert!(!ann(11).as_str().unwrap().contains("new"));
        let all = Shape { targets_per_source: None, ..shape() };
        assert_eq!(all.source(1, 1)["metadata"]["annotations"][keys::ANN_TARGET_NAMESPACES], json!("all"));
        assert!(all.targets_new_namespace(1));
        assert_eq!(Shape { crd: false, ..shape() }.kinds(), vec![Kind::Secret, Kind::ConfigMap]);
    }
}
