//! The real reconciler pass (planner, source re-check, executor, ledger, status memo) over a
//! simulated cluster, pass after pass: each pass refreshes the caches from the cluster as the
//! watches would and must make exactly the calls listed. The counts are the product's promises
//! (N writes per source change, none in steady state, one GET per mirror after a restart).

use std::sync::Arc;

use serde_json::{Value, json};

use crate::cache::Cache;
use crate::client::{ApiResource, Reason};
use crate::controller::executor::Settings;
use crate::controller::fakes::{Cluster, api_error};
use crate::controller::reconcile::Reconciler;
use crate::controller::state::Types;
use crate::informers::Watches;
use crate::keys;
use crate::mirror::build::BuildConfig;
use crate::mirror::targets::TargetConfig;
use crate::model::{MirrorRecord, NamespaceRecord, ObjectKey, SourceObject};

const KIND: &str = "Secret.v1";

struct Sim {
    reconciler: Reconciler<Cluster>,
    namespaces: Vec<String>,
    source: ObjectKey,
}

impl Sim {
    fn new(namespaces: &[&str], source: Value) -> Self {
        let cluster = Cluster::new(100);
        cluster.put(source);
        let reconciler = Reconciler {
            cache: Cache::new(),
            types: Types::default(),
            api: cluster,
            settings: Settings {
                targets: TargetConfig::default(),
                build: BuildConfig::default(),
                verify_unknown: true,
                verify_source_freshness: false,
                transform: Default::default(),
            },
            metrics: None,
            watches: Watches::default(),
        };
        let mut sim = Sim {
            reconciler,
            namespaces: namespaces.iter().map(ToString::to_string).collect(),
            source: key("default"),
        };
        sim.restart();
        sim
    }

    fn cluster(&self) -> &Cluster {
        &self.reconciler.api
    }

    /// A new process: empty ledger, status memo and caches.
    fn restart(&mut self) {
        self.reconciler.cache = Cache::new();
        self.reconciler.types = Types::default();
        self.reconciler.types.insert(KIND.into(), Arc::new(ApiResource::secrets()));
    }

    /// What the watches show: label-selected sources, metadata of managed mirrors, namespaces.
    fn refresh_caches(&self) {
        let cache = &self.reconciler.cache;
        let stores = cache.add_type(KIND);
        let label = |o: &Value, k: &str| o.pointer(&format!("/metadata/labels/{}", k.replace('/', "~1"))).cloned();
        let objects = self.cluster().objects();
        stores.sources.init();
        for o in objects.iter().filter(|o| label(o, keys::LABEL_ENABLED) == Some(json!("true"))) {
            stores.sources.init_apply(SourceObject::from_object(o.clone()).unwrap());
        }
        stores.sources.init_done();
        stores.mirrors.init();
        for o in objects.iter().filter(|o| label(o, keys::LABEL_MANAGED_BY) == Some(json!("kubemirror"))) {
            stores.mirrors.init_apply(MirrorRecord::from_object(o).unwrap());
        }
        stores.mirrors.init_done();
        cache.namespaces.init();
        for n in &self.namespaces {
            cache.namespaces.init_apply(NamespaceRecord::from_object(&json!({"metadata": {"name": n}})).unwrap());
        }
        cache.namespaces.init_done();
    }

    /// One pass for the source; the calls it made.
    async fn pass(&self) -> Vec<String> {
        self.refresh_caches();
        self.cluster().take_calls();
        let ts = self.reconciler.types.get(KIND).unwrap();
        let cached = self.reconciler.cache.get_type(KIND).unwrap().sources.get(&self.source);
        self.reconciler.pass(&ts, &self.source, cached.as_deref()).await.unwrap();
        self.cluster().take_calls()
    }

    fn ledger_is_empty(&self) -> bool {
        self.reconciler.types.get(KIND).unwrap().ledger().is_empty()
    }

    fn source(&self) -> Option<Value> {
        self.cluster().get_object(&self.source)
    }

    fn edit_source(&self, f: impl FnOnce(&mut Value)) {
        self.cluster().edit(&self.source, f);
    }

    fn status(&self) -> Option<String> {
        self.source()?.pointer("/metadata/annotations/kubemirror.raczylo.com~1sync-status")?.as_str().map(String::from)
    }

    fn has_finalizer(&self) -> bool {
        self.source().is_some_and(|s| {
            s.pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|f| f.iter().any(|v| v == keys::FINALIZER))
        })
    }
}

fn key(ns: &str) -> ObjectKey {
    ObjectKey::new(ns, "db")
}

fn source(targets: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "db", "namespace": "default", "uid": "src-uid",
            "labels": {"kubemirror.raczylo.com/enabled": "true"},
            "annotations": {"kubemirror.raczylo.com/sync": "true", "kubemirror.raczylo.com/target-namespaces": targets}},
        "data": {"password": "cw=="}})
}

/// Call lines without their bodies, the way the scenarios below read best.
fn verbs(calls: Vec<String>) -> Vec<String> {
    calls
        .into_iter()
        .map(|c| {
            let mut parts = c.splitn(3, ' ');
            let (verb, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            if verb == "EVENT" {
                c.split(':').next().unwrap_or("").to_string()
            } else if target == "default/db" {
                format!("{verb} source")
            } else {
                format!("{verb} {target}")
            }
        })
        .collect()
}

#[tokio::test]
async fn lifecycle_request_counts() {
    let mut sim = Sim::new(&["default", "app1", "app2", "app3", "app4"], source("app1,app2,app3"));

    // The finalizer first, with the resourceVersion precondition; then one POST per target; then the status.
    let calls = sim.pass().await;
    assert_eq!(
        calls[0],
        r#"PATCH default/db {"metadata":{"finalizers":["kubemirror.raczylo.com/finalizer"],"resourceVersion":"101"}}"#
    );
    assert_eq!(verbs(calls), ["PATCH source", "POST app1/db", "POST app2/db", "POST app3/db", "PATCH source"]);
    assert_eq!(sim.status().as_deref(), Some("synced:3,failed:0,conflicts:0,skipped:0"));
    assert!(sim.has_finalizer());

    assert!(sim.pass().await.is_empty(), "steady state: no request at all");
    assert!(sim.ledger_is_empty(), "the watch showed every write: the records say it, the ledger forgot them");

    // Restart: the ledger is empty, each mirror is read once, then silence.
    sim.restart();
    assert_eq!(verbs(sim.pass().await), ["GET app1/db", "GET app2/db", "GET app3/db"]);
    assert!(sim.pass().await.is_empty());

    // Hand edit of one mirror's data: read it, put it back.
    sim.cluster().edit(&key("app2"), |o| o["data"]["password"] = json!("aGFja2Vk"));
    assert_eq!(verbs(sim.pass().await), ["GET app2/db", "PUT app2/db"]);
    assert_eq!(sim.cluster().get_object(&key("app2")).unwrap()["data"]["password"], json!("cw=="));
    // Someone annotating a mirror is not drift: one read, no write.
    sim.cluster().edit(&key("app1"), |o| o["metadata"]["annotations"]["reloader"] = json!("x"));
    assert_eq!(verbs(sim.pass().await), ["GET app1/db"]);
    assert!(sim.pass().await.is_empty());

    assert!(sim.ledger_is_empty(), "verified mirrors are settled too");

    // A source change costs exactly one write per target, no reads.
    sim.edit_source(|s| s["data"]["password"] = json!("bmV3"));
    assert_eq!(verbs(sim.pass().await), ["PUT app1/db", "PUT app2/db", "PUT app3/db"]);
    assert!(sim.pass().await.is_empty());
    assert!(sim.ledger_is_empty());

    // A mirror deleted by hand is put back.
    sim.cluster().remove(&key("app3"));
    assert_eq!(verbs(sim.pass().await), ["POST app3/db"]);

    // A foreign object in a new target: one attempt, reported, then left alone.
    sim.cluster().put(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "app4",
        "uid": "f"}}));
    sim.edit_source(|s| s["metadata"]["annotations"][keys::ANN_TARGET_NAMESPACES] = json!("app1,app2,app3,app4"));
    assert_eq!(
        verbs(sim.pass().await),
        ["POST app4/db", "GET app4/db", "PATCH source", "EVENT Warning MirrorConflict"]
    );
    assert_eq!(
        sim.status().as_deref(),
        Some(
            "synced:3,failed:0,conflicts:1,skipped:0; last-error: app4: an object of the same name exists and is not managed by kubemirror"
        )
    );
    assert!(sim.pass().await.is_empty(), "no retry loop against the foreign object");
    assert_eq!(sim.cluster().get_object(&key("app4")).unwrap()["metadata"]["uid"], json!("f"));

    // Target list shrinks: the orphan goes (uid precondition), the foreign object stays.
    sim.edit_source(|s| s["metadata"]["annotations"][keys::ANN_TARGET_NAMESPACES] = json!("app1,app2,app4"));
    let calls = sim.pass().await;
    assert!(calls[0].starts_with("DELETE app3/db uid=uid-"), "{calls:?}");
    assert_eq!(verbs(calls), ["DELETE app3/db", "PATCH source", "EVENT Warning MirrorConflict"]);

    // Mirroring turned off: owned mirrors deleted, finalizer and status released in the same pass.
    sim.edit_source(|s| s["metadata"]["annotations"][keys::ANN_SYNC] = json!("false"));
    assert_eq!(verbs(sim.pass().await), ["DELETE app1/db", "DELETE app2/db", "PATCH source"]);
    assert!(!sim.has_finalizer());
    assert_eq!(sim.status(), None);
    assert_eq!(sim.cluster().keys(), ["app4/db", "default/db"]);
    assert!(sim.pass().await.is_empty());
}

#[tokio::test]
async fn fifty_namespaces_converge_in_one_pass() {
    let mut names: Vec<String> = (0..50).map(|i| format!("team-{i:02}")).collect();
    names.push("default".into());
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let sim = Sim::new(&refs, source("team-*"));
    let calls = sim.pass().await;
    assert_eq!(calls.iter().filter(|r| r.starts_with("POST")).count(), 50);
    assert_eq!(calls.len(), 52, "finalizer + 50 creates + status");
    assert!(sim.pass().await.is_empty());
    sim.edit_source(|s| s["data"]["extra"] = json!("eA=="));
    let calls = sim.pass().await;
    assert_eq!((calls.len(), calls.iter().all(|r| r.starts_with("PUT"))), (50, true));
}

#[tokio::test]
async fn deletion_recreation_and_immutable_flows() {
    let sim = Sim::new(&["default", "app1", "app2"], source("app1,app2"));
    sim.pass().await;

    // Immutable source: the change that the API server would refuse becomes delete + create.
    sim.edit_source(|s| s["immutable"] = json!(true));
    assert_eq!(verbs(sim.pass().await), ["PUT app1/db", "PUT app2/db"], "mutable -> immutable is an update");
    sim.edit_source(|s| s["data"]["password"] = json!("bmV3"));
    assert_eq!(verbs(sim.pass().await), ["DELETE app1/db", "POST app1/db", "DELETE app2/db", "POST app2/db"]);
    assert_eq!(sim.cluster().get_object(&key("app1")).unwrap()["data"]["password"], json!("bmV3"));

    // The source is recreated under the same name (new uid): mirrors follow the new one.
    sim.edit_source(|s| s["metadata"]["uid"] = json!("src-uid-2"));
    assert_eq!(verbs(sim.pass().await), ["DELETE app1/db", "POST app1/db", "DELETE app2/db", "POST app2/db"]);
    let m = sim.cluster().get_object(&key("app2")).unwrap();
    assert_eq!(m["metadata"]["annotations"]["kubemirror.raczylo.com/source-uid"], json!("src-uid-2"));
    assert!(sim.pass().await.is_empty());

    // Deleted: mirrors first, then the finalizer, and the object is gone.
    sim.edit_source(|s| s["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z"));
    assert_eq!(verbs(sim.pass().await), ["DELETE app1/db", "DELETE app2/db", "PATCH source"]);
    assert!(sim.cluster().keys().is_empty());
    assert!(sim.pass().await.is_empty());
}

#[tokio::test]
async fn an_immutable_mirror_the_ledger_does_not_know_is_replaced_when_the_put_is_refused() {
    let mut sim = Sim::new(&["default", "app1"], source("app1"));
    sim.edit_source(|s| s["immutable"] = json!(true));
    sim.pass().await;
    // After a restart the ledger does not know the mirror is immutable: the PUT is refused (422),
    // the mirror is read for its uid and replaced.
    sim.restart();
    sim.edit_source(|s| s["data"]["password"] = json!("bmV3"));
    assert_eq!(verbs(sim.pass().await), ["PUT app1/db", "GET app1/db", "DELETE app1/db", "POST app1/db"]);
    assert_eq!(sim.cluster().get_object(&key("app1")).unwrap()["data"]["password"], json!("bmV3"));
    assert!(sim.pass().await.is_empty());
}

#[tokio::test]
async fn source_deleted_while_controller_was_down() {
    let mut sim = Sim::new(&["default", "app1", "app2"], source("app1,app2"));
    sim.pass().await;
    // Finalizer removed by hand and the source deleted while we were not running; an unrelated
    // object of the same name sits in the source's namespace.
    sim.cluster().remove(&sim.source.clone());
    sim.cluster().put(json!({"metadata": {"name": "db", "namespace": "other", "uid": "x"}}));
    sim.restart();
    assert_eq!(verbs(sim.pass().await), ["GET source", "DELETE app1/db", "DELETE app2/db"]);
    assert_eq!(sim.cluster().keys(), ["other/db"]);
    assert!(sim.pass().await.is_empty(), "nothing left: not even the re-check");
}

#[tokio::test]
async fn enabled_label_removed_while_controller_was_down() {
    let mut sim = Sim::new(&["default", "app1", "app2"], source("app1,app2"));
    sim.pass().await;
    // The label is gone, so the source watch no longer shows the object; it still has our finalizer.
    sim.edit_source(|s| s["metadata"]["labels"].as_object_mut().unwrap().clear());
    sim.restart();
    assert_eq!(verbs(sim.pass().await), ["GET source", "DELETE app1/db", "DELETE app2/db", "PATCH source"]);
    assert!(!sim.has_finalizer(), "finalizer released, a later delete will not hang");
    assert_eq!(sim.cluster().keys(), ["default/db"]);
}

#[tokio::test]
async fn a_failing_target_never_blocks_the_others_and_is_retried_until_it_succeeds() {
    let sim = Sim::new(&["default", "app1", "app2", "app3"], source("app1,app2,app3"));
    sim.cluster().fail_next("POST app2/db", api_error(500, Reason::InternalError, "etcd is having a moment"));
    assert_eq!(
        verbs(sim.pass().await),
        ["PATCH source", "POST app1/db", "POST app2/db", "POST app3/db", "PATCH source", "EVENT Warning MirrorFailed"]
    );
    assert_eq!(
        sim.status().as_deref(),
        Some("synced:2,failed:1,conflicts:0,skipped:0; last-error: app2: InternalError (HTTP 500)")
    );
    // The retry (the queue's backoff) writes only what is missing.
    assert_eq!(verbs(sim.pass().await), ["POST app2/db", "PATCH source"]);
    assert_eq!(sim.status().as_deref(), Some("synced:3,failed:0,conflicts:0,skipped:0"));
}

#[tokio::test]
async fn a_mirror_that_lost_its_source_uid_is_left_alone_and_reported() {
    let sim = Sim::new(&["default", "app1", "app2"], source("app1,app2"));
    sim.pass().await;
    sim.cluster().edit(&key("app1"), |o| {
        o["metadata"]["annotations"].as_object_mut().unwrap().remove("kubemirror.raczylo.com/source-uid");
        o["data"]["password"] = json!("dGhlaXJz");
    });
    assert_eq!(verbs(sim.pass().await), ["PATCH source", "EVENT Warning MirrorConflict"]);
    let st = sim.status().unwrap();
    assert!(st.starts_with("synced:1,failed:0,conflicts:1,") && st.contains("no source-uid"), "{st}");
    assert_eq!(sim.cluster().get_object(&key("app1")).unwrap()["data"]["password"], json!("dGhlaXJz"));
    // Not deleted either when the source goes.
    sim.edit_source(|s| s["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z"));
    assert_eq!(verbs(sim.pass().await), ["DELETE app2/db", "PATCH source"]);
    assert_eq!(sim.cluster().keys(), ["app1/db"]);
}
