//! The planner, ledger and verification driven together against a simulated cluster, following the
//! executor contract of the module docs: the counts of requests per pass are the product's
//! promises (N writes per source change, none in steady state, one GET per mirror after a restart).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::keys;
use crate::mirror::build::{BuildConfig, NoTransform};
use crate::mirror::drift::{self, LastWrite, Ledger, VerifyAction};
use crate::mirror::plan::{self, MirrorOp, Outcome, PlanContext, SourceState};
use crate::mirror::targets::TargetConfig;
use crate::mirror::testutil::now;
use crate::model::{MirrorRecord, NamespaceRecord, ObjectKey, SourceObject};

/// RFC 7386 merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

#[derive(Default)]
struct Cluster {
    source: Value,
    /// A source that exists but is outside the label-filtered source watch.
    hidden_source: Option<Value>,
    namespaces: Vec<NamespaceRecord>,
    objects: BTreeMap<ObjectKey, Value>,
    rv: u64,
    requests: Vec<String>,
}

fn key_of(obj: &Value) -> ObjectKey {
    ObjectKey::new(
        obj.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or(""),
        obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or(""),
    )
}

impl Cluster {
    fn new(namespaces: &[&str], source: Value) -> Self {
        let namespaces = namespaces
            .iter()
            .map(|n| NamespaceRecord::from_object(&json!({"metadata": {"name": n}})).unwrap())
            .collect();
        Cluster { source, namespaces, rv: 100, ..Cluster::default() }
    }

    fn bump(&mut self) -> String {
        self.rv += 1;
        self.rv.to_string()
    }

    fn source(&self) -> SourceObject {
        match &self.source {
            Value::Null => {
                SourceObject::from_object(json!({"metadata": {"name": "db", "namespace": "default", "uid": "gone"}}))
            }
            s => SourceObject::from_object(s.clone()),
        }
        .unwrap()
    }

    fn patch_source(&mut self, patch: &Value) -> Outcome {
        self.requests.push("PATCH source".into());
        let expected = patch.pointer("/metadata/resourceVersion").and_then(Value::as_str);
        if expected
            .is_some_and(|rv| Some(rv) != self.source.pointer("/metadata/resourceVersion").and_then(Value::as_str))
        {
            return Outcome::Stale;
        }
        merge(&mut self.source, patch);
        self.source["metadata"]["resourceVersion"] = json!(self.bump());
        Outcome::Done
    }

    /// What the metadata-only, label-selected mirror watch holds.
    fn records(&self) -> Vec<MirrorRecord> {
        self.objects
            .values()
            .filter(|o| o.pointer("/metadata/labels/kubemirror.raczylo.com~1managed-by") == Some(&json!("kubemirror")))
            .map(|o| MirrorRecord::from_object(o).unwrap())
            .collect()
    }

    fn create(&mut self, mut body: Value) -> Result<String, Outcome> {
        self.requests.push(format!("POST {}", key_of(&body)));
        let key = key_of(&body);
        if self.objects.contains_key(&key) {
            return Err(Outcome::AlreadyExists);
        }
        let rv = self.bump();
        body["metadata"]["resourceVersion"] = json!(rv);
        body["metadata"]["uid"] = json!(format!("uid-{rv}"));
        self.objects.insert(key, body);
        Ok(rv)
    }

    fn update(&mut self, mut body: Value) -> Result<String, Outcome> {
        let key = key_of(&body);
        self.requests.push(format!("PUT {key}"));
        let Some(live) = self.objects.get(&key) else { return Err(Outcome::NotFound) };
        if live.pointer("/metadata/resourceVersion") != body.pointer("/metadata/resourceVersion") {
            return Err(Outcome::Stale);
        }
        if live.get("immutable") == Some(&json!(true)) && live.get("data") != body.get("data") {
            return Err(Outcome::Failed("field is immutable".into()));
        }
        body["metadata"]["uid"] = live["metadata"]["uid"].clone();
        let rv = self.bump();
        body["metadata"]["resourceVersion"] = json!(rv);
        self.objects.insert(key, body);
        Ok(rv)
    }

    fn delete(&mut self, key: &ObjectKey, uid: &str) -> Outcome {
        self.requests.push(format!("DELETE {key}"));
        match self.objects.get(key) {
            None => Outcome::NotFound,
            Some(o) if o.pointer("/metadata/uid") != Some(&json!(uid)) => Outcome::Stale,
            Some(_) => {
                self.objects.remove(key);
                Outcome::Done
            }
        }
    }

    fn get(&mut self, key: &ObjectKey) -> Option<Value> {
        self.requests.push(format!("GET {key}"));
        self.objects.get(key).cloned()
    }

    /// A hand edit by someone else: new content, new resourceVersion.
    fn edit(&mut self, key: &ObjectKey, f: impl FnOnce(&mut Value)) {
        let rv = self.bump();
        let o = self.objects.get_mut(key).unwrap();
        f(o);
        o["metadata"]["resourceVersion"] = json!(rv);
    }
}

/// One executor pass per the contract in `mirror/mod.rs`; returns the requests it made.
fn pass(c: &mut Cluster, ledger: &mut Ledger) -> Vec<String> {
    c.requests.clear();
    let (tc, bc) = (TargetConfig::default(), BuildConfig::default());
    let ctx = PlanContext { targets: &tc, build: &bc, transform: &NoTransform, now: now(), verify_unknown: true };
    let src = c.source();
    let records = c.records();
    // A null source stands for one the source cache no longer has.
    let state = if c.source.is_null() { SourceState::Gone(&src.key) } else { SourceState::Seen(&src) };
    let mut p = plan::plan(&ctx, state, &c.namespaces, &records, ledger);
    if p.recheck_source {
        c.requests.push("GET source".into());
        if let Some(found) = c.hidden_source.take() {
            let found = SourceObject::from_object(found).unwrap();
            p = plan::plan(&ctx, SourceState::Seen(&found), &c.namespaces, &records, ledger);
            c.source = (*found.object).clone();
        }
    }
    if let Some(patch) = &p.add_finalizer {
        if c.patch_source(patch) != Outcome::Done {
            return c.requests.clone();
        }
    }
    let mut outcomes = Vec::new();
    for op in &p.ops {
        let key = op.key().clone();
        // Built one at a time, right before sending.
        let desired = plan::materialize(&ctx, &src, op).map(|d| d.unwrap());
        let outcome = match (op, desired) {
            (MirrorOp::Create { .. }, Some(desired)) => match c.create(op.body(&desired).unwrap()) {
                Ok(rv) => {
                    ledger.record(key, LastWrite::of_write(&desired, &rv, None));
                    Outcome::Done
                }
                Err(Outcome::AlreadyExists) => {
                    let live = c.get(&key).unwrap_or(Value::Null);
                    match drift::verify(&live, desired.clone(), &src.key, &src.uid) {
                        VerifyAction::NotOurs => {
                            ledger.block(key);
                            Outcome::AlreadyExists
                        }
                        other => apply_verify(c, ledger, key, other),
                    }
                }
                Err(o) => o,
            },
            (MirrorOp::Update { resource_version, .. }, Some(desired)) => match c.update(op.body(&desired).unwrap()) {
                Ok(rv) => {
                    ledger.record(key, LastWrite::of_write(&desired, &rv, Some(resource_version)));
                    Outcome::Done
                }
                Err(o) => o,
            },
            (MirrorOp::Verify { .. }, Some(desired)) => match c.get(&key) {
                None => Outcome::NotFound,
                Some(live) => {
                    let action = drift::verify(&live, desired.clone(), &src.key, &src.uid);
                    apply_verify(c, ledger, key, action)
                }
            },
            (MirrorOp::Recreate { uid, .. }, Some(desired)) => {
                c.delete(&key, uid);
                ledger.forget(&key);
                match c.create(desired.object.clone()) {
                    Ok(rv) => {
                        ledger.record(key, LastWrite::of_write(&desired, &rv, None));
                        Outcome::Done
                    }
                    Err(o) => o,
                }
            }
            (MirrorOp::Delete { uid, .. }, _) => {
                ledger.forget(&key);
                c.delete(&key, uid)
            }
            (op, None) => panic!("no body for {op:?}"),
        };
        outcomes.push(outcome);
    }
    if p.may_release_finalizer(&outcomes) {
        if let Some(patch) = &p.remove_finalizer {
            c.patch_source(patch);
        }
    }
    if let Some(patch) = p.status(&outcomes).and_then(|s| s.patch_for(&c.source())) {
        c.patch_source(&patch);
    }
    if c.source.pointer("/metadata/deletionTimestamp").is_some()
        && c.source.pointer("/metadata/finalizers").is_none_or(|f| f.as_array().is_some_and(Vec::is_empty))
    {
        c.source = Value::Null;
    }
    c.requests.clone()
}

fn apply_verify(c: &mut Cluster, ledger: &mut Ledger, key: ObjectKey, action: VerifyAction) -> Outcome {
    match action {
        VerifyAction::InSync(lw) => {
            ledger.record(key, lw);
            Outcome::Done
        }
        VerifyAction::Update { desired, resource_version } => {
            let mut body = desired.object.clone();
            body["metadata"]["resourceVersion"] = json!(&*resource_version);
            match c.update(body) {
                Ok(rv) => {
                    ledger.record(key, LastWrite::of_write(&desired, &rv, Some(&resource_version)));
                    Outcome::Done
                }
                Err(o) => o,
            }
        }
        VerifyAction::Recreate { desired, uid, .. } => {
            c.delete(&key, &uid);
            match c.create(desired.object.clone()) {
                Ok(rv) => {
                    ledger.record(key, LastWrite::of_write(&desired, &rv, None));
                    Outcome::Done
                }
                Err(o) => o,
            }
        }
        VerifyAction::NotOurs => Outcome::AlreadyExists,
    }
}

fn source(targets: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "db", "namespace": "default", "uid": "src-uid", "resourceVersion": "1",
            "labels": {"kubemirror.raczylo.com/enabled": "true"},
            "annotations": {"kubemirror.raczylo.com/sync": "true", "kubemirror.raczylo.com/target-namespaces": targets}},
        "data": {"password": "cw=="}})
}

fn status(c: &Cluster) -> Option<&str> {
    c.source.pointer("/metadata/annotations/kubemirror.raczylo.com~1sync-status").and_then(Value::as_str)
}

#[test]
fn lifecycle_request_counts() {
    let mut c = Cluster::new(&["default", "app1", "app2", "app3", "app4"], source("app1,app2,app3"));
    let mut ledger = Ledger::default();

    let reqs = pass(&mut c, &mut ledger);
    assert_eq!(reqs, ["PATCH source", "POST app1/db", "POST app2/db", "POST app3/db", "PATCH source"]);
    assert_eq!(status(&c), Some("synced:3,failed:0,conflicts:0,skipped:0"));
    assert!(c.source().has_finalizer(keys::FINALIZER));

    assert!(pass(&mut c, &mut ledger).is_empty(), "steady state: no request at all");

    // Restart: the ledger is empty, each mirror is read once, then silence.
    let mut ledger = Ledger::default();
    assert_eq!(pass(&mut c, &mut ledger), ["GET app1/db", "GET app2/db", "GET app3/db"]);
    assert!(pass(&mut c, &mut ledger).is_empty());

    // Hand edit of one mirror's data: read it, put it back.
    c.edit(&ObjectKey::new("app2", "db"), |o| o["data"]["password"] = json!("aGFja2Vk"));
    assert_eq!(pass(&mut c, &mut ledger), ["GET app2/db", "PUT app2/db"]);
    assert_eq!(c.objects[&ObjectKey::new("app2", "db")]["data"]["password"], json!("cw=="));
    // Someone annotating a mirror is not drift: one read, no write.
    c.edit(&ObjectKey::new("app1", "db"), |o| o["metadata"]["annotations"]["reloader"] = json!("x"));
    assert_eq!(pass(&mut c, &mut ledger), ["GET app1/db"]);
    assert!(pass(&mut c, &mut ledger).is_empty());

    // A source change costs exactly one write per target, no reads.
    c.source["data"]["password"] = json!("bmV3");
    assert_eq!(pass(&mut c, &mut ledger), ["PUT app1/db", "PUT app2/db", "PUT app3/db"]);
    assert!(pass(&mut c, &mut ledger).is_empty());

    // A mirror deleted by hand is put back (the DELETED event made the runtime forget it).
    let k3 = ObjectKey::new("app3", "db");
    c.objects.remove(&k3);
    ledger.forget(&k3);
    assert_eq!(pass(&mut c, &mut ledger), ["POST app3/db"]);

    // A foreign object in a new target: one attempt, reported, then left alone.
    c.objects.insert(
        ObjectKey::new("app4", "db"),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "app4", "uid": "f", "resourceVersion": "1"}}),
    );
    c.source["metadata"]["annotations"]["kubemirror.raczylo.com/target-namespaces"] = json!("app1,app2,app3,app4");
    assert_eq!(pass(&mut c, &mut ledger), ["POST app4/db", "GET app4/db", "PATCH source"]);
    assert_eq!(
        status(&c),
        Some(
            "synced:3,failed:0,conflicts:1,skipped:0; last-error: app4: an object of the same name exists and is not managed by kubemirror"
        )
    );
    assert!(pass(&mut c, &mut ledger).is_empty(), "no retry loop against the foreign object");
    assert_eq!(c.objects[&ObjectKey::new("app4", "db")]["metadata"]["uid"], json!("f"));

    // Target list shrinks: the orphan goes, the foreign object stays.
    c.source["metadata"]["annotations"]["kubemirror.raczylo.com/target-namespaces"] = json!("app1,app2,app4");
    assert_eq!(pass(&mut c, &mut ledger), ["DELETE app3/db", "PATCH source"]);

    // Mirroring turned off: owned mirrors deleted, finalizer and status released in the same pass.
    c.source["metadata"]["annotations"]["kubemirror.raczylo.com/sync"] = json!("false");
    assert_eq!(pass(&mut c, &mut ledger), ["DELETE app1/db", "DELETE app2/db", "PATCH source"]);
    assert!(!c.source().has_finalizer(keys::FINALIZER));
    assert_eq!(status(&c), None);
    assert_eq!(c.objects.keys().map(ToString::to_string).collect::<Vec<_>>(), ["app4/db"]);
    assert!(pass(&mut c, &mut ledger).is_empty());
}

#[test]
fn fifty_namespaces_converge_in_one_pass() {
    let mut names: Vec<String> = (0..50).map(|i| format!("team-{i:02}")).collect();
    names.push("default".into());
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut c = Cluster::new(&refs, source("team-*"));
    let mut ledger = Ledger::default();
    let reqs = pass(&mut c, &mut ledger);
    assert_eq!(reqs.iter().filter(|r| r.starts_with("POST")).count(), 50);
    assert_eq!(reqs.len(), 52, "finalizer + 50 creates + status");
    assert!(pass(&mut c, &mut ledger).is_empty());
    c.source["data"]["extra"] = json!("eA==");
    let reqs = pass(&mut c, &mut ledger);
    assert_eq!((reqs.len(), reqs.iter().all(|r| r.starts_with("PUT"))), (50, true));
}

#[test]
fn deletion_recreation_and_immutable_flows() {
    let mut c = Cluster::new(&["default", "app1", "app2"], source("app1,app2"));
    let mut ledger = Ledger::default();
    pass(&mut c, &mut ledger);
    let (k1, k2) = (ObjectKey::new("app1", "db"), ObjectKey::new("app2", "db"));

    // Immutable source: the change that the API server would refuse becomes delete + create.
    c.source["immutable"] = json!(true);
    assert_eq!(pass(&mut c, &mut ledger), ["PUT app1/db", "PUT app2/db"], "mutable -> immutable is an update");
    c.source["data"]["password"] = json!("bmV3");
    assert_eq!(pass(&mut c, &mut ledger), ["DELETE app1/db", "POST app1/db", "DELETE app2/db", "POST app2/db"]);
    assert_eq!(c.objects[&k1]["data"]["password"], json!("bmV3"));

    // The source is recreated under the same name (new uid): mirrors follow the new one.
    c.source["metadata"]["uid"] = json!("src-uid-2");
    assert_eq!(pass(&mut c, &mut ledger), ["DELETE app1/db", "POST app1/db", "DELETE app2/db", "POST app2/db"]);
    assert_eq!(c.objects[&k2]["metadata"]["annotations"]["kubemirror.raczylo.com/source-uid"], json!("src-uid-2"));
    assert!(pass(&mut c, &mut ledger).is_empty());

    // Deleted: mirrors first, then the finalizer, and the object is gone.
    c.source["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z");
    assert_eq!(pass(&mut c, &mut ledger), ["DELETE app1/db", "DELETE app2/db", "PATCH source"]);
    assert!(c.source.is_null() && c.objects.is_empty());
    assert!(pass(&mut c, &mut ledger).is_empty());
}

#[test]
fn source_deleted_while_controller_was_down() {
    let mut c = Cluster::new(&["default", "app1", "app2"], source("app1,app2"));
    let mut ledger = Ledger::default();
    pass(&mut c, &mut ledger);
    // Finalizer removed by hand and the source deleted while we were not running; a foreign
    // object with the same name sits in another namespace.
    c.source = Value::Null;
    c.objects.insert(
        ObjectKey::new("default", "db"),
        json!({"metadata": {"name": "db", "namespace": "default", "uid": "x", "resourceVersion": "1"}}),
    );
    let mut ledger = Ledger::default();
    assert_eq!(pass(&mut c, &mut ledger), ["GET source", "DELETE app1/db", "DELETE app2/db"]);
    assert_eq!(c.objects.keys().map(ToString::to_string).collect::<Vec<_>>(), ["default/db"]);
    assert!(pass(&mut c, &mut ledger).is_empty(), "nothing left: not even the re-check");
}

#[test]
fn enabled_label_removed_while_controller_was_down() {
    let mut c = Cluster::new(&["default", "app1", "app2"], source("app1,app2"));
    let mut ledger = Ledger::default();
    pass(&mut c, &mut ledger);
    // The label is gone, so the source watch no longer shows the object; it still has our finalizer.
    let mut hidden = c.source.clone();
    hidden["metadata"]["labels"].as_object_mut().unwrap().clear();
    c.hidden_source = Some(hidden);
    c.source = Value::Null;
    let mut ledger = Ledger::default();
    assert_eq!(pass(&mut c, &mut ledger), ["GET source", "DELETE app1/db", "DELETE app2/db", "PATCH source"]);
    assert!(!c.source().has_finalizer(keys::FINALIZER), "finalizer released, a later delete will not hang");
    assert!(c.objects.is_empty());
}
