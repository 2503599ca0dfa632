//! The controller end to end on the in-memory API server: the real run loop in-process, and the
//! real binary for signals and exit codes, driven only through the API. Waits poll a condition with a deadline.
#![cfg(feature = "testkit")]

#[path = "common/cluster.rs"]
mod cluster;
#[path = "common/controller.rs"]
mod harness;
#[path = "common/wait.rs"]
mod wait;

use std::time::{Duration, Instant};

use cluster::{ANN_STATUS, ANN_TARGETS, EXAMPLE_MIRRORS, mirrored_in, secret, source, user, wait_mirrors};
use harness::{Running, bind_admin, http_get, options, start, start_bound};
use kubemirror::controller::Exit;
use kubemirror::options::Options;
use kubemirror::testkit::{ApiServer, ServerOptions, User};
use serde_json::{Value, json};
use wait::{eventually, eventually_async};

const FINALIZER: &str = "kubemirror.raczylo.com/finalizer";

const NAMESPACES: [&str; 9] =
    ["default", "kube-system", "kube-public", "kube-node-lease", "app1", "app2", "app-a", "app-b", "other"];

async fn server() -> ApiServer {
    server_with(vec![User::admin()]).await
}

async fn server_with(users: Vec<User>) -> ApiServer {
    cluster::server(21, &NAMESPACES, users).await
}

async fn start_secrets(s: &ApiServer) -> Running {
    start(s, "admin", options(Some("Secret.v1,ConfigMap.v1"), false)).await
}

fn get(s: &ApiServer, kind: &str, ns: &str, name: &str) -> Option<Value> {
    s.get_object("v1", kind, Some(ns), name)
}

fn status(s: &ApiServer, kind: &str, ns: &str, name: &str) -> String {
    get(s, kind, ns, name)
        .and_then(|o| o.pointer(&format!("/metadata/annotations/{}", ANN_STATUS.replace('/', "~1"))).cloned())
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

fn has_finalizer(o: &Value) -> bool {
    o.pointer("/metadata/finalizers").and_then(Value::as_array).is_some_and(|f| f.iter().any(|v| v == FINALIZER))
}

fn edit(s: &ApiServer, kind: &str, ns: &str, name: &str, f: impl Fn(&mut Value)) {
    cluster::edit(s, "v1", kind, Some(ns), name, f);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_converges_updates_propagate_and_deletion_cleans_up() {
    let s = server().await;
    s.create_object(secret("default", "db", "app1, app2 ,app1,")).unwrap();
    let c = start_secrets(&s).await;
    wait_mirrors(&s, "v1", "Secret", "db", &["app1", "app2"]).await;
    let src = get(&s, "Secret", "default", "db").unwrap();
    assert!(has_finalizer(&src), "{src}");
    let m = get(&s, "Secret", "app1", "db").unwrap();
    assert_eq!(m["data"]["password"], "czNjcjN0");
    let ann = &m["metadata"]["annotations"];
    assert_eq!(ann["kubemirror.raczylo.com/source-namespace"], "default");
    assert_eq!(ann["kubemirror.raczylo.com/source-uid"], src["metadata"]["uid"]);
    assert!(m["metadata"].get("finalizers").is_none() && m["metadata"].get("ownerReferences").is_none());
    eventually("status synced:2", || status(&s, "Secret", "default", "db").starts_with("synced:2,failed:0")).await;

    edit(&s, "Secret", "default", "db", |o| o["data"]["password"] = json!("bmV3"));
    eventually("update propagated", || {
        ["app1", "app2"].iter().all(|ns| get(&s, "Secret", ns, "db").is_some_and(|m| m["data"]["password"] == "bmV3"))
    })
    .await;

    s.delete_object("v1", "Secret", Some("default"), "db").unwrap();
    eventually("source and mirrors gone", || {
        get(&s, "Secret", "default", "db").is_none() && mirrored_in(&s, "v1", "Secret", "db").is_empty()
    })
    .await;
    assert_eq!(c.stop().await, Exit::Clean);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_watch_list_on_by_default_is_synced_without_any_list() {
    let s = ApiServer::start(ServerOptions {
        seed: Some(22),
        namespaces: NAMESPACES.map(String::from).to_vec(),
        bookmark_interval: Duration::from_millis(200),
        minor_version: 34,
        ..Default::default()
    })
    .await
    .unwrap();
    s.create_object(secret("default", "db", "app1,app2")).unwrap();
    let c = start_secrets(&s).await;
    wait_mirrors(&s, "v1", "Secret", "db", &["app1", "app2"]).await;
    let st = s.stats();
    assert_eq!(st.verb("list"), 0, "watch-list replaces every initial LIST: {:?}", st.requests);
    assert!(st.verb("watch") >= 3, "sources, mirrors and namespaces are watched: {:?}", st.requests);
    assert_eq!(c.stop().await, Exit::Clean);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_state_costs_no_request_but_watches() {
    let s = server().await;
    s.create_object(secret("default", "db", "app1,app2,app-a")).unwrap();
    s.create_object(source("ConfigMap", "default", "cfg", "all", json!({"k": "v"}))).unwrap();
    let c = start_secrets(&s).await;
    wait_mirrors(&s, "v1", "Secret", "db", &["app-a", "app1", "app2"]).await;
    wait_mirrors(&s, "v1", "ConfigMap", "cfg", &["app-a", "app-b", "app1", "app2", "other"]).await;
    eventually("statuses written", || {
        status(&s, "Secret", "default", "db").starts_with("synced:3,")
            && status(&s, "ConfigMap", "default", "cfg").starts_with("synced:5,")
    })
    .await;
    harness::assert_steady_state_is_quiet(&s).await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targeting_rows_patterns_all_all_labeled_and_late_namespaces() {
    let s = server().await;
    edit(&s, "Namespace", "", "app2", |o| {
        o["metadata"]["labels"] = json!({"kubemirror.raczylo.com/allow-mirrors": "true"})
    });
    s.create_object(secret("default", "pattern", "app-*")).unwrap();
    s.create_object(secret("default", "everywhere", "all")).unwrap();
    s.create_object(secret("default", "labeled", "all-labeled")).unwrap();
    let c = start_secrets(&s).await;
    wait_mirrors(&s, "v1", "Secret", "pattern", &["app-a", "app-b"]).await;
    wait_mirrors(&s, "v1", "Secret", "everywhere", &["app-a", "app-b", "app1", "app2", "other"]).await;
    wait_mirrors(&s, "v1", "Secret", "labeled", &["app2"]).await;

    // A namespace created later, and one opting out of `all` / into `all-labeled`.
    s.create_object(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app-late"}})).unwrap();
    edit(&s, "Namespace", "", "other", |o| {
        o["metadata"]["labels"] = json!({"kubemirror.raczylo.com/allow-mirrors": "false"})
    });
    edit(&s, "Namespace", "", "app1", |o| {
        o["metadata"]["labels"] = json!({"kubemirror.raczylo.com/allow-mirrors": "true"})
    });
    wait_mirrors(&s, "v1", "Secret", "pattern", &["app-a", "app-b", "app-late"]).await;
    wait_mirrors(&s, "v1", "Secret", "everywhere", &["app-a", "app-b", "app-late", "app1", "app2"]).await;
    wait_mirrors(&s, "v1", "Secret", "labeled", &["app1", "app2"]).await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turning_off_and_shrinking_targets_clean_up() {
    let s = server().await;
    s.create_object(secret("default", "db", "app1,app2,other")).unwrap();
    s.create_object(secret("default", "off", "app1")).unwrap();
    let c = start_secrets(&s).await;
    wait_mirrors(&s, "v1", "Secret", "db", &["app1", "app2", "other"]).await;
    wait_mirrors(&s, "v1", "Secret", "off", &["app1"]).await;

    edit(&s, "Secret", "default", "db", |o| o["metadata"]["annotations"][ANN_TARGETS] = json!("app2"));
    wait_mirrors(&s, "v1", "Secret", "db", &["app2"]).await;

    // Removing the opt-in label: the object leaves the watch; mirrors and finalizer go.
    edit(&s, "Secret", "default", "off", |o| {
        o["metadata"]["labels"].as_object_mut().unwrap().remove("kubemirror.raczylo.com/enabled");
    });
    wait_mirrors(&s, "v1", "Secret", "off", &[]).await;
    eventually("finalizer released", || get(&s, "Secret", "default", "off").is_some_and(|o| !has_finalizer(&o))).await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_put_back_and_foreign_objects_are_left_alone() {
    let s = server().await;
    s.create_object(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db", "namespace": "app2"}, "data": {"mine": "eA=="}}))
        .unwrap();
    s.create_object(secret("default", "db", "app1,app2")).unwrap();
    let c = start_secrets(&s).await;
    wait_mirrors(&s, "v1", "Secret", "db", &["app1"]).await;
    eventually("conflict reported", || status(&s, "Secret", "default", "db").contains("conflicts:1")).await;
    eventually("a MirrorConflict Event on the source", || {
        s.list_objects("v1", "Event", Some("default"))
            .iter()
            .any(|e| e["reason"] == "MirrorConflict" && e["involvedObject"]["name"] == "db" && e["type"] == "Warning")
    })
    .await;
    let foreign = get(&s, "Secret", "app2", "db").unwrap();
    assert_eq!(foreign["data"], json!({"mine": "eA=="}));
    assert!(foreign["metadata"].get("labels").is_none(), "{foreign}");

    edit(&s, "Secret", "app1", "db", |o| o["data"]["password"] = json!("aGFja2Vk"));
    eventually("edit reverted", || {
        get(&s, "Secret", "app1", "db").is_some_and(|m| m["data"]["password"] == "czNjcjN0")
    })
    .await;
    s.delete_object("v1", "Secret", Some("app1"), "db").unwrap();
    eventually("deleted mirror recreated", || get(&s, "Secret", "app1", "db").is_some()).await;
    assert_eq!(get(&s, "Secret", "app2", "db").unwrap()["data"], json!({"mine": "eA=="}));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_secrets_flow_and_a_crd_type_with_auto_discovery() {
    let s = server().await;
    let text = cluster::examples(&["traefik-middleware.yaml", "externalsecret-dockerconfig.yaml"]);
    s.create_object(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "external-secrets"}}))
        .unwrap();
    s.apply_yaml(&text).unwrap();
    let c = start(&s, "admin", options(None, false)).await;
    eventually("middleware mirrored to app-*", || {
        let mut got: Vec<String> = ["app-a", "app-b", "app1"]
            .iter()
            .filter(|ns| s.get_object("traefik.io/v1alpha1", "Middleware", Some(ns), "compression").is_some())
            .map(|ns| ns.to_string())
            .collect();
        got.sort();
        got == ["app-a", "app-b"]
    })
    .await;
    let m = s.get_object("traefik.io/v1alpha1", "Middleware", Some("app-a"), "compression").unwrap();
    assert_eq!(m["spec"]["compress"]["excludedContentTypes"], json!(["text/event-stream"]));
    wait_mirrors(&s, "v1", "Secret", "multi-registry-secret", &["app-a", "app-b", "app1", "app2", "default", "other"])
        .await;
    let mirror = get(&s, "Secret", "app1", "multi-registry-secret").unwrap();
    assert!(mirror["metadata"].get("ownerReferences").is_none(), "{mirror}");
    assert_eq!(mirror["type"], "kubernetes.io/dockerconfigjson");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_exactly_one_writes_and_a_graceful_stop_hands_over() {
    let s = server_with(vec![User::admin(), user("a"), user("b")]).await;
    s.create_object(secret("default", "db", "app1")).unwrap();
    let a = start(&s, "a", options(Some("Secret.v1"), true)).await;
    let b = start(&s, "b", options(Some("Secret.v1"), true)).await;
    wait_mirrors(&s, "v1", "Secret", "db", &["app1"]).await;
    s.create_object(secret("default", "db2", "app1,app2")).unwrap();
    wait_mirrors(&s, "v1", "Secret", "db2", &["app1", "app2"]).await;
    let writes = |who: &str| {
        let st = s.stats();
        ["create", "update", "delete"]
            .iter()
            .map(|v| st.requests.get(&(v.to_string(), "secrets".to_string(), who.to_string())).copied().unwrap_or(0))
            .sum::<u64>()
    };
    let (wa, wb) = (writes("a"), writes("b"));
    assert!((wa == 0) != (wb == 0), "exactly one instance writes mirrors: a={wa} b={wb}");
    let (leader, standby, standby_user) = if wa > 0 { (a, b, "b") } else { (b, a, "a") };
    assert_eq!(leader.stop().await, Exit::Clean);
    s.create_object(secret("default", "db3", "app2")).unwrap();
    wait_mirrors(&s, "v1", "Secret", "db3", &["app2"]).await;
    eventually_async("the standby took over", || async { writes(standby_user) > 0 }).await;
    assert_eq!(standby.stop().await, Exit::Clean);
}

#[test]
fn the_binary_runs_the_controller_and_stops_cleanly_on_sigterm() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let s = rt.block_on(server());
    s.create_object(secret("default", "db", "app1")).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_kubemirror"))
        .arg("--kubeconfig")
        .arg(s.kubeconfig_path("admin"))
        .args(["--resource-types", "Secret.v1", "--leader-election-namespace", "default"])
        .args(["--metrics-bind-address", "0", "--health-probe-bind-address", "0"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    rt.block_on(wait_mirrors(&s, "v1", "Secret", "db", &["app1"]));
    let kill = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // The lease was released for a standby.
    let lease = rt.block_on(async {
        s.get_object("coordination.k8s.io/v1", "Lease", Some("default"), "kubemirror-controller-leader")
    });
    let holder = lease.as_ref().and_then(|l| l.pointer("/spec/holderIdentity")).and_then(Value::as_str);
    assert!(holder.is_none_or(str::is_empty), "{lease:?}");
}

#[test]
fn the_binary_reports_a_bad_resource_type_in_one_line_and_exits_1() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let s = rt.block_on(server());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubemirror"))
        .arg("--kubeconfig")
        .arg(s.kubeconfig_path("admin"))
        .args(["--resource-types", "Bogus.v1", "--metrics-bind-address", "0", "--health-probe-bind-address", "0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Bogus.v1"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_while_the_controller_was_down_converge_after_a_restart() {
    let s = server().await;
    s.create_object(secret("default", "gone", "app1")).unwrap();
    s.create_object(secret("default", "kept", "app-*")).unwrap();
    let c = start_secrets(&s).await;
    wait_mirrors(&s, "v1", "Secret", "gone", &["app1"]).await;
    wait_mirrors(&s, "v1", "Secret", "kept", &["app-a", "app-b"]).await;
    assert_eq!(c.stop().await, Exit::Clean);

    // While down: a source deleted (its finalizer holds it), a namespace created, a mirror edited.
    s.delete_object("v1", "Secret", Some("default"), "gone").unwrap();
    assert!(get(&s, "Secret", "default", "gone").is_some(), "the finalizer keeps the source");
    s.create_object(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app-new"}})).unwrap();
    edit(&s, "Secret", "app-a", "kept", |o| o["data"]["password"] = json!("aGFja2Vk"));

    let c = start_secrets(&s).await;
    wait_mirrors(&s, "v1", "Secret", "kept", &["app-a", "app-b", "app-new"]).await;
    eventually("deleted source cleaned up", || {
        get(&s, "Secret", "default", "gone").is_none() && mirrored_in(&s, "v1", "Secret", "gone").is_empty()
    })
    .await;
    eventually("edit made while down reverted", || {
        get(&s, "Secret", "app-a", "kept").is_some_and(|m| m["data"]["password"] == "czNjcjN0")
    })
    .await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crd_created_later_is_picked_up_by_rediscovery() {
    let s = server().await;
    let c = start(&s, "admin", Options { discovery_interval: Duration::from_secs(1), ..options(None, false) }).await;
    let middleware = cluster::examples_dir().join("traefik-middleware.yaml");
    s.apply_yaml(&std::fs::read_to_string(middleware).unwrap()).unwrap();
    eventually("middleware mirrored after rediscovery", || {
        ["app-a", "app-b"]
            .iter()
            .all(|ns| s.get_object("traefik.io/v1alpha1", "Middleware", Some(ns), "compression").is_some())
    })
    .await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_renewals_fail_stops_and_reports_lost_leadership() {
    let s = server().await;
    s.create_object(secret("default", "db", "app1")).unwrap();
    let c = start(&s, "admin", options(Some("Secret.v1"), true)).await;
    wait_mirrors(&s, "v1", "Secret", "db", &["app1"]).await;
    s.fail_next(kubemirror::testkit::Matcher::new(None, Some("leases")), 10_000, 500, None);
    let exit = tokio::time::timeout(Duration::from_secs(10), c.task).await.unwrap().unwrap().unwrap();
    assert!(matches!(exit, Exit::LostLeadership(_)), "{exit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_report_readiness_liveness_and_metrics() {
    let s = server().await;
    s.create_object(secret("default", "db", "app1")).unwrap();
    let c = start_bound(&s, "admin", bind_admin(options(Some("Secret.v1"), false))).await;
    let (health, metrics) = (c.health(), c.metrics());
    wait_mirrors(&s, "v1", "Secret", "db", &["app1"]).await;
    eventually_async("ready", || async move { http_get(health, "/readyz").await.starts_with("HTTP/1.1 200") }).await;
    assert!(http_get(health, "/healthz").await.starts_with("HTTP/1.1 200"));
    eventually_async("reconcile metrics", || async move {
        let m = http_get(metrics, "/metrics").await;
        m.contains("kubemirror_reconcile_total{kind=\"Secret.v1\",result=\"success\"}")
            && m.contains("kubemirror_watch_last_event_age_seconds{resource=\"Secret.v1 sources\"}")
            && m.contains("kubemirror_leader 1")
    })
    .await;
    assert_eq!(c.stop().await, Exit::Clean);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_get_their_own_cluster_ip_and_immutable_mirrors_are_recreated() {
    let s = server().await;
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api", "namespace": "default",
        "labels": {"kubemirror.raczylo.com/enabled": "true"},
        "annotations": {"kubemirror.raczylo.com/sync": "true", ANN_TARGETS: "app1"}},
        "spec": {"type": "NodePort", "selector": {"app": "api"}, "ports": [{"port": 80, "targetPort": 8080}]}});
    s.create_object(svc).unwrap();
    s.create_object(source("ConfigMap", "default", "cfg", "app1", json!({"k": "v1"}))).unwrap();
    let c = start(&s, "admin", options(Some("Service.v1,ConfigMap.v1"), false)).await;
    wait_mirrors(&s, "v1", "Service", "api", &["app1"]).await;
    let src = get(&s, "Service", "default", "api").unwrap();
    let m = get(&s, "Service", "app1", "api").unwrap();
    assert!(m["spec"]["clusterIP"].is_string(), "{m}");
    assert_ne!(m["spec"]["clusterIP"], src["spec"]["clusterIP"], "the mirror has its own clusterIP");
    assert_ne!(m["spec"]["ports"][0]["nodePort"], src["spec"]["ports"][0]["nodePort"]);

    // A source change reaches the Service mirror without fighting over the allocated fields.
    edit(&s, "Service", "default", "api", |o| o["spec"]["ports"][0]["targetPort"] = json!(9090));
    eventually("service port updated", || {
        get(&s, "Service", "app1", "api").is_some_and(|m| m["spec"]["ports"][0]["targetPort"] == 9090)
    })
    .await;

    // Someone made the ConfigMap mirror immutable: a content change needs delete + create.
    wait_mirrors(&s, "v1", "ConfigMap", "cfg", &["app1"]).await;
    let uid_before = get(&s, "ConfigMap", "app1", "cfg").unwrap()["metadata"]["uid"].clone();
    edit(&s, "ConfigMap", "app1", "cfg", |o| o["immutable"] = json!(true));
    edit(&s, "ConfigMap", "default", "cfg", |o| o["data"]["k"] = json!("v2"));
    eventually("immutable mirror recreated with the new content", || {
        get(&s, "ConfigMap", "app1", "cfg")
            .is_some_and(|m| m["data"]["k"] == "v2" && m["metadata"]["uid"] != uid_before)
    })
    .await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selector_truncation_consent_and_refused_types() {
    let s = server().await;
    for (ns, labels) in [
        ("app1", json!({"team": "a"})),
        ("app2", json!({"team": "a", "kubemirror.raczylo.com/allow-mirrors": "true"})),
        ("app-a", json!({"team": "b"})),
    ] {
        edit(&s, "Namespace", "", ns, |o| o["metadata"]["labels"] = labels.clone());
    }
    let mut sel = secret("default", "sel", "");
    sel["metadata"]["annotations"]["kubemirror.raczylo.com/target-namespace-selector"] = json!("team in (a)");
    s.create_object(sel).unwrap();
    s.create_object(secret("default", "many", "all")).unwrap();
    let mut token = secret("default", "token", "app1");
    token["type"] = json!("bootstrap.kubernetes.io/token");
    s.create_object(token).unwrap();
    let opts = Options { max_targets: 2, require_target_consent: false, ..options(Some("Secret.v1"), false) };
    let c = start(&s, "admin", opts).await;
    wait_mirrors(&s, "v1", "Secret", "sel", &["app1", "app2"]).await;
    wait_mirrors(&s, "v1", "Secret", "many", &["app-a", "app-b"]).await;
    eventually("truncation reported", || status(&s, "Secret", "default", "many").contains("truncated:")).await;
    eventually("refusal reported", || status(&s, "Secret", "default", "token").contains("never mirrored")).await;
    assert!(mirrored_in(&s, "v1", "Secret", "token").is_empty());
    assert_eq!(c.stop().await, Exit::Clean);

    // Consent mode: only namespaces that allow pushes receive mirrors; the others' go.
    let opts = Options { require_target_consent: true, ..options(Some("Secret.v1"), false) };
    let c = start(&s, "admin", opts).await;
    wait_mirrors(&s, "v1", "Secret", "sel", &["app2"]).await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_change_with_n_targets_costs_exactly_n_writes_and_no_reads() {
    let s = server().await;
    let targets = ["app1", "app2", "app-a", "app-b", "other"];
    s.create_object(secret("default", "db", &targets.join(","))).unwrap();
    let c = start_secrets(&s).await;
    wait_mirrors(&s, "v1", "Secret", "db", &["app-a", "app-b", "app1", "app2", "other"]).await;
    eventually("status written", || status(&s, "Secret", "default", "db").starts_with("synced:5,")).await;
    let (events0, watches) = (s.stats().watch_events, s.stats().open_watches as u64);
    eventually("a bookmark round", || s.stats().watch_events >= events0 + 2 * watches).await;
    s.reset_stats();
    s.update_object({
        let mut o = get(&s, "Secret", "default", "db").unwrap();
        o["data"]["password"] = json!("Y2hhbmdlZA==");
        o
    })
    .unwrap();
    eventually("all mirrors updated", || {
        targets.iter().all(|ns| get(&s, "Secret", ns, "db").is_some_and(|m| m["data"]["password"] == "Y2hhbmdlZA=="))
    })
    .await;
    let events1 = s.stats().watch_events;
    eventually("a bookmark round after the writes", || s.stats().watch_events >= events1 + 2 * watches).await;
    let st = s.stats();
    assert_eq!(st.count("update", "secrets"), targets.len() as u64, "{:?}", st.requests);
    for verb in ["get", "list", "create", "patch", "delete"] {
        assert_eq!(st.verb(verb), 0, "{verb}: {:?}", st.requests);
    }
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_sources_into_fifty_namespaces_converge() {
    let s = server().await;
    for i in 0..50 {
        s.create_object(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("t{i:02}")}}))
            .unwrap();
    }
    for i in 0..100 {
        s.create_object(secret("default", &format!("s{i:03}"), "t*")).unwrap();
    }
    let c = start(&s, "admin", Options { worker_threads: 5, ..options(Some("Secret.v1"), false) }).await;
    let mirrors = || {
        s.list_objects("v1", "Secret", None)
            .iter()
            .filter(|o| o.pointer("/metadata/labels/kubemirror.raczylo.com~1mirror").is_some())
            .count()
    };
    // Generous: a loaded 2-core machine took 65-80 s here, before and after issue 9; the request
    // counts below are the real check, BENCHMARKS.md tracks the speed.
    let deadline = Instant::now() + Duration::from_secs(240);
    while mirrors() < 5000 {
        assert!(Instant::now() < deadline, "only {} of 5000 mirrors", mirrors());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(s.stats().count("create", "secrets"), 5000);
    eventually("every status synced:50", || {
        (0..100).all(|i| status(&s, "Secret", "default", &format!("s{i:03}")).starts_with("synced:50,"))
    })
    .await;
    // Our own patches' events must be back before counting: wait for a bookmark round on every watch.
    let (events, watches) = (s.stats().watch_events, s.stats().open_watches as u64);
    eventually("a bookmark round", || s.stats().watch_events >= events + 2 * watches).await;
    // Exactly two writes to each source: the finalizer and one sync-status (no repeat of a status the
    // cache had not shown yet).
    assert_eq!(s.stats().count("patch", "secrets"), 200, "{:?}", s.stats().requests);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_without_mirrors_that_loses_its_label_gets_its_finalizer_back() {
    let s = server().await;
    s.create_object(secret("default", "lonely", "missing-namespace")).unwrap();
    let c = start_secrets(&s).await;
    eventually("finalizer added", || get(&s, "Secret", "default", "lonely").is_some_and(|o| has_finalizer(&o))).await;
    edit(&s, "Secret", "default", "lonely", |o| {
        o["metadata"]["labels"].as_object_mut().unwrap().remove("kubemirror.raczylo.com/enabled");
    });
    eventually("finalizer released", || get(&s, "Secret", "default", "lonely").is_some_and(|o| !has_finalizer(&o)))
        .await;
    s.delete_object("v1", "Secret", Some("default"), "lonely").unwrap();
    assert!(get(&s, "Secret", "default", "lonely").is_none(), "deletion no longer hangs");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_deleted_or_replaced_behind_our_back_converge_after_a_restart() {
    let s = server().await;
    s.create_object(secret("default", "deleted", "app1,app2")).unwrap();
    s.create_object(secret("default", "replaced", "app1")).unwrap();
    let c = start_secrets(&s).await;
    wait_mirrors(&s, "v1", "Secret", "deleted", &["app1", "app2"]).await;
    wait_mirrors(&s, "v1", "Secret", "replaced", &["app1"]).await;
    let old_uid = get(&s, "Secret", "app1", "replaced").unwrap()["metadata"]["uid"].clone();
    c.stop().await;

    // While down, finalizers removed by hand: one source deleted, one deleted and created anew.
    for name in ["deleted", "replaced"] {
        edit(&s, "Secret", "default", name, |o| o["metadata"]["finalizers"] = json!([]));
        s.delete_object("v1", "Secret", Some("default"), name).unwrap();
    }
    let mut fresh = secret("default", "replaced", "app1");
    fresh["data"]["password"] = json!("bmV3");
    s.create_object(fresh).unwrap();

    let c = start_secrets(&s).await;
    wait_mirrors(&s, "v1", "Secret", "deleted", &[]).await;
    eventually("mirror recreated for the new source", || {
        get(&s, "Secret", "app1", "replaced")
            .is_some_and(|m| m["data"]["password"] == "bmV3" && m["metadata"]["uid"] != old_uid)
    })
    .await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_reads_each_mirror_once_and_writes_nothing() {
    let s = server().await;
    s.create_object(secret("default", "db", "app1,app2,other")).unwrap();
    let c = start_secrets(&s).await;
    wait_mirrors(&s, "v1", "Secret", "db", &["app1", "app2", "other"]).await;
    eventually("status written", || status(&s, "Secret", "default", "db").starts_with("synced:3,")).await;
    c.stop().await;
    s.reset_stats();
    let c = start_secrets(&s).await;
    eventually("the three mirrors verified", || s.stats().count("get", "secrets") >= 3).await;
    let (events0, watches) = (s.stats().watch_events, s.stats().open_watches as u64);
    eventually("a bookmark round", || s.stats().watch_events >= events0 + 2 * watches).await;
    let st = s.stats();
    assert_eq!(st.count("get", "secrets"), 3, "{:?}", st.requests);
    for verb in ["create", "update", "patch", "delete"] {
        assert_eq!(st.verb(verb), 0, "{verb}: {:?}", st.requests);
    }
    c.stop().await;
}

#[test]
fn the_binary_exits_1_when_it_loses_the_lease() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let s = rt.block_on(server());
    s.create_object(secret("default", "db", "app1")).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kubemirror"))
        .arg("--kubeconfig")
        .arg(s.kubeconfig_path("admin"))
        .args(["--resource-types", "Secret.v1", "--leader-election-namespace", "default"])
        .args(["--lease-duration", "3s", "--renew-deadline", "2s", "--retry-period", "500ms"])
        .args(["--metrics-bind-address", "0", "--health-probe-bind-address", "0"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    rt.block_on(wait_mirrors(&s, "v1", "Secret", "db", &["app1"]));
    s.fail_next(kubemirror::testkit::Matcher::new(None, Some("leases")), 10_000, 500, None);
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the controller kept running without its lease");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_converges_as_its_comments_say() {
    let s = ApiServer::start(ServerOptions { seed: Some(3), ..Default::default() }).await.unwrap();
    s.apply_yaml(&cluster::all_examples()).unwrap();
    let c = start(&s, "admin", options(None, false)).await;
    // Every v1 mirror exactly where its example says.
    for (api_version, kind, name, want) in EXAMPLE_MIRRORS.iter().filter(|(api_version, ..)| *api_version == "v1") {
        wait_mirrors(&s, api_version, kind, name, want).await;
    }
    eventually("the Middleware in app-frontend", || {
        s.get_object("traefik.io/v1alpha1", "Middleware", Some("app-frontend"), "compression").is_some()
    })
    .await;
    // The transformed Deployments (their exact output is checked in tests/transform.rs).
    eventually("the transformed Deployments", || {
        ["app-frontend", "prod-api"].iter().all(|ns| s.get_object("apps/v1", "Deployment", Some(ns), "web").is_some())
    })
    .await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_never_overwrites_another_sources_mirror() {
    let s = server().await;
    s.create_object(secret("default", "db", "app1")).unwrap();
    let mut rival = secret("other", "db", "app1");
    rival["data"]["password"] = json!("cml2YWw=");
    s.create_object(rival).unwrap();
    let c = start_secrets(&s).await;
    wait_mirrors(&s, "v1", "Secret", "db", &["app1"]).await;
    let winner =
        get(&s, "Secret", "app1", "db").unwrap()["metadata"]["annotations"]["kubemirror.raczylo.com/source-namespace"]
            .as_str()
            .unwrap()
            .to_string();
    let loser = if winner == "default" { "other" } else { "default" };
    eventually("the loser reports the conflict", || {
        let st = status(&s, "Secret", loser, "db");
        st.contains("conflicts:1") && st.contains(&format!("mirror of {winner}/db"))
    })
    .await;
    let data = get(&s, "Secret", "app1", "db").unwrap()["data"]["password"].clone();
    let winner_data = get(&s, "Secret", &winner, "db").unwrap()["data"]["password"].clone();
    assert_eq!(data, winner_data);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_writes_are_retried_through_the_queue_until_they_succeed() {
    let s = server().await;
    s.create_object(secret("default", "db", "app1,app2")).unwrap();
    s.fail_next(kubemirror::testkit::Matcher::new(Some("create"), Some("secrets")), 3, 403, None);
    let c = start_secrets(&s).await;
    wait_mirrors(&s, "v1", "Secret", "db", &["app1", "app2"]).await;
    eventually("status clean", || status(&s, "Secret", "default", "db") == "synced:2,failed:0,conflicts:0,skipped:0")
        .await;
    assert_eq!(s.stats().count("create", "secrets"), 5, "two creates plus the three refused ones");
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_source_freshness_costs_one_get_per_writing_pass_and_none_when_off() {
    for on in [false, true] {
        let s = server().await;
        s.create_object(secret("default", "db", "app1,app2")).unwrap();
        let opts = Options { verify_source_freshness: on, ..options(Some("Secret.v1"), false) };
        let c = start(&s, "admin", opts).await;
        wait_mirrors(&s, "v1", "Secret", "db", &["app1", "app2"]).await;
        eventually("status synced:2", || status(&s, "Secret", "default", "db").starts_with("synced:2,")).await;
        // Two passes wrote: the first (finalizer, two creates, status), and this edit's (two updates).
        edit(&s, "Secret", "default", "db", |o| o["data"]["password"] = json!("bmV3"));
        eventually("update propagated", || {
            ["app1", "app2"]
                .iter()
                .all(|ns| get(&s, "Secret", ns, "db").is_some_and(|m| m["data"]["password"] == "bmV3"))
        })
        .await;
        let st = s.stats();
        let gets = st.count("get", "secrets");
        // A create whose answer is lost (seen on an overloaded machine) is planned again, meets 409
        // and is verified with one GET of the mirror: the count is exact when no answer was lost.
        let lost = st.count("create", "secrets").saturating_sub(2);
        if lost == 0 {
            assert_eq!(gets, if on { 2 } else { 0 }, "on: {on}: {:?}", st.requests);
        } else if !on {
            assert_eq!(gets, lost, "{:?}", st.requests);
        }
        assert_eq!(c.stop().await, Exit::Clean);
    }
}

/// Without the flag this pass would write the cached (old) content: the test fails when it is off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_source_freshness_writes_the_live_source_when_the_cache_is_behind() {
    let s = server().await;
    s.create_object(secret("default", "db", "app-*")).unwrap();
    let c = start(&s, "admin", Options { verify_source_freshness: true, ..options(Some("Secret.v1"), false) }).await;
    wait_mirrors(&s, "v1", "Secret", "db", &["app-a", "app-b"]).await;
    // The Secret watches stall: the cache keeps the source as it was.
    s.hang(kubemirror::testkit::Matcher::new(Some("watch"), Some("secrets")));
    edit(&s, "Secret", "default", "db", |o| o["data"]["password"] = json!("ZnJlc2g="));
    // A new namespace (its watch flows) makes a pass that writes: it reads the source first.
    s.create_object(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app-c"}})).unwrap();
    eventually("every mirror carries the live content", || {
        ["app-a", "app-b", "app-c"]
            .iter()
            .all(|ns| get(&s, "Secret", ns, "db").is_some_and(|m| m["data"]["password"] == "ZnJlc2g="))
    })
    .await;
    s.release();
    c.stop().await;
}
