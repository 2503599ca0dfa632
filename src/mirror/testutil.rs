//! Fixtures shared by the mirror tests: a Secret source in `default`, and mirror records as the
//! metadata-only watch would hold them for mirrors this controller built.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::mirror::build::{self, BuildConfig, LiveFacts, NoTransform};
use crate::mirror::drift::LastWrite;
use crate::model::{MirrorRecord, SourceObject, Str};
use crate::util::compact::ShortStr;

pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_735_787_045)
}

/// A source in `default` with the opt-in, our finalizer, and the given annotations/data merged in.
pub fn source_with(targets: Option<&str>, edit: impl FnOnce(&mut Value)) -> SourceObject {
    let mut obj = json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "db", "namespace": "default", "uid": "src-uid", "resourceVersion": "100",
            "labels": {"kubemirror.raczylo.com/enabled": "true"},
            "annotations": {"kubemirror.raczylo.com/sync": "true"},
            "finalizers": ["kubemirror.raczylo.com/finalizer"]},
        "data": {"password": "cw=="}});
    if let Some(t) = targets {
        obj["metadata"]["annotations"]["kubemirror.raczylo.com/target-namespaces"] = json!(t);
    }
    edit(&mut obj);
    SourceObject::from_object(obj).unwrap()
}

pub fn source(targets: &str) -> SourceObject {
    source_with(Some(targets), |_| {})
}

/// The record the mirror watch would hold for a mirror we built from `src` into `ns`.
pub fn mirror_of(src: &SourceObject, ns: &str, rv: &str) -> MirrorRecord {
    let d = build::build_mirror(src, ns, &BuildConfig::default(), &NoTransform, now()).unwrap();
    let mut obj = d.object;
    obj["metadata"]["uid"] = json!(format!("m-{ns}"));
    obj["metadata"]["resourceVersion"] = json!(rv);
    MirrorRecord::from_object(&obj).unwrap()
}

pub fn desired_hash(src: &SourceObject, ns: &str) -> Str {
    build::build_mirror(src, ns, &BuildConfig::default(), &NoTransform, now()).unwrap().hash
}

pub fn written(src: &SourceObject, ns: &str, rv: &str, replaced: Option<&str>) -> LastWrite {
    LastWrite {
        resource_version: rv.into(),
        replaced: replaced.map(ShortStr::from),
        hash: desired_hash(src, ns),
        facts: LiveFacts::default(),
    }
}
