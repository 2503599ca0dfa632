//! Reliability and security of the whole controller on the in-memory API server (issue 9): kinds
//! that run pods need the target namespace's consent; one type that cannot be watched (forbidden,
//! deleted, broken) never stops the others, readiness or liveness. The real run loop in-process,
//! driven only through the API; every wait polls a condition with a deadline.
#![cfg(feature = "testkit")]

#[path = "common/wait.rs"]
mod wait;

use std::net::SocketAddr;
use std::time::Duration;

use kubemirror::client::{Client, ClientOptions, LoadOptions};
use kubemirror::controller::{self, Bound, Exit};
use kubemirror::options::Options;
use kubemirror::testkit::{ApiServer, ServerOptions, User};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wait::{eventually, eventually_async};

const ANN_TARGETS: &str = "kubemirror.raczylo.com/target-namespaces";
const ANN_STATUS: &str = "kubemirror.raczylo.com/sync-status";

async fn server(users: Vec<User>) -> ApiServer {
    ApiServer::start(ServerOptions {
        seed: Some(31),
        users,
        namespaces: ["default", "kube-system", "kube-public", "kube-node-lease", "app1", "app2", "app3", "other"]
            .map(String::from)
            .to_vec(),
        bookmark_interval: Duration::from_millis(200),
        ..Default::default()
    })
    .await
    .unwrap()
}

fn options(types: Option<&str>) -> Options {
    let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
    Options {
        resource_types: types.map(String::from),
        leader_elect: false,
        metrics_bind_address: Some(local),
        health_probe_bind_address: Some(local),
        ..Options::default()
    }
}

struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<Exit, String>>,
    health: SocketAddr,
    metrics: SocketAddr,
}

impl Running {
    async fn stop(mut self) -> Exit {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.await.unwrap().unwrap()
    }
}

async fn start(s: &ApiServer, user: &str, opts: Options) -> Running {
    let load = LoadOptions { kubeconfig: Some(s.kubeconfig_path(user)), context: None };
    let c = Client::from_options(&load, ClientOptions { qps: 0.0, ..Default::default() }).await.unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let (tx, rx) = oneshot::channel::<Bound>();
    let task = tokio::spawn(controller::run(
        opts,
        c,
        None,
        async move {
            let _ = stopped.await;
        },
        move |b| {
            let _ = tx.send(b);
        },
    ));
    let bound = rx.await.expect("the controller failed before binding its admin endpoints");
    Running { stop: Some(stop), task, health: bound.health.unwrap(), metrics: bound.metrics.unwrap() }
}

async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

fn opted_in(api_version: &str, kind: &str, name: &str, targets: &str) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": "default",
        "labels": {"kubemirror.raczylo.com/enabled": "true"},
        "annotations": {"kubemirror.raczylo.com/sync": "true", ANN_TARGETS: targets}}})
}

fn secret(name: &str, targets: &str) -> Value {
    let mut o = opted_in("v1", "Secret", name, targets);
    o["data"] = json!({"password": "czNjcjN0"});
    o
}

fn deployment(name: &str, targets: &str) -> Value {
    let mut o = opted_in("apps/v1", "Deployment", name, targets);
    o["spec"] = json!({"selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": "c", "image": "registry.example/tool:1"}]}}});
    o
}

/// The namespaces holding a mirror of `name`.
fn mirrored_in(s: &ApiServer, api_version: &str, kind: &str, name: &str) -> Vec<String> {
    let mut out: Vec<String> = s
        .list_objects(api_version, kind, None)
        .into_iter()
        .filter(|o| o.pointer("/metadata/labels/kubemirror.raczylo.com~1mirror") == Some(&json!("true")))
        .filter(|o| o.pointer("/metadata/name") == Some(&json!(name)))
        .filter_map(|o| o.pointer("/metadata/namespace").and_then(Value::as_str).map(String::from))
        .collect();
    out.sort();
    out
}

async fn wait_mirrors(s: &ApiServer, api_version: &str, kind: &str, name: &str, want: &[&str]) {
    eventually(&format!("{kind} {name} mirrored exactly in {want:?}"), || {
        mirrored_in(s, api_version, kind, name) == want
    })
    .await;
}

fn status(s: &ApiServer, api_version: &str, kind: &str, name: &str) -> String {
    s.get_object(api_version, kind, Some("default"), name)
        .and_then(|o| o.pointer(&format!("/metadata/annotations/{}", ANN_STATUS.replace('/', "~1"))).cloned())
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

fn label_namespace(s: &ApiServer, ns: &str, labels: Value, annotations: Value) {
    let mut o = s.get_object("v1", "Namespace", None, ns).unwrap();
    o["metadata"]["labels"] = labels;
    o["metadata"]["annotations"] = annotations;
    s.update_object(o).unwrap();
}

// ---- security: kinds that run pods need consent ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_sent_to_all_runs_only_where_the_namespace_consents() {
    let s = server(vec![User::admin()]).await;
    label_namespace(&s, "app1", json!({"kubemirror.raczylo.com/allow-mirrors": "true"}), json!({}));
    label_namespace(&s, "app2", json!({}), json!({"kubemirror.raczylo.com/allow-mirrors-from": "default, ops-*"}));
    label_namespace(&s, "app3", json!({}), json!({"kubemirror.raczylo.com/allow-mirrors-from": "elsewhere"}));
    s.create_object(deployment("tool", "all")).unwrap();
    s.create_object(secret("db", "all")).unwrap();
    // --require-target-consent is off: only the kind asks for consent.
    let c = start(&s, "admin", options(Some("Deployment.v1.apps,Secret.v1"))).await;
    wait_mirrors(&s, "apps/v1", "Deployment", "tool", &["app1", "app2"]).await;
    wait_mirrors(&s, "v1", "Secret", "db", &["app1", "app2", "app3", "other"]).await;
    eventually("the refusal on the source's status", || {
        status(&s, "apps/v1", "Deployment", "tool").starts_with("synced:2,failed:0,conflicts:0,skipped:2;")
    })
    .await;
    let st = status(&s, "apps/v1", "Deployment", "tool");
    assert!(st.contains("app3 has not consented to Deployment mirrors"), "{st}");
    eventually("a TargetSkipped Event naming the refused namespaces", || {
        s.list_objects("v1", "Event", Some("default")).iter().any(|e| {
            e["reason"] == "TargetSkipped"
                && e["involvedObject"]["name"] == "tool"
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("not consenting to Deployment mirrors") && m.contains("app3, other"))
        })
    })
    .await;
    let metrics = c.metrics;
    eventually_async("the skip metric", || async move {
        http_get(metrics, "/metrics")
            .await
            .contains("kubemirror_targets_skipped_total{kind=\"Deployment.v1.apps\",reason=\"runs_code_no_consent\"} 2")
    })
    .await;

    // Consent withdrawn: the mirror goes. Consent given: it comes.
    label_namespace(&s, "app1", json!({}), json!({}));
    label_namespace(&s, "other", json!({"kubemirror.raczylo.com/allow-mirrors": "true"}), json!({}));
    wait_mirrors(&s, "apps/v1", "Deployment", "tool", &["app2", "other"]).await;
    assert_eq!(c.stop().await, Exit::Clean);

    // An operator who empties the list knowingly gets the old behaviour.
    let opts = Options { consent_required_kinds: String::new(), ..options(Some("Deployment.v1.apps,Secret.v1")) };
    let c = start(&s, "admin", opts).await;
    wait_mirrors(&s, "apps/v1", "Deployment", "tool", &["app1", "app2", "app3", "other"]).await;
    assert_eq!(c.stop().await, Exit::Clean);
}
