//! Reliability and security of the whole controller on the in-memory API server (issue 9): kinds
//! that run pods need the target namespace's consent; one type that cannot be watched (forbidden,
//! deleted, broken) never stops the others, readiness or liveness. The real run loop in-process,
//! driven only through the API; every wait polls a condition with a deadline.
#![cfg(feature = "testkit")]

#[path = "common/cluster.rs"]
mod cluster;
#[path = "common/controller.rs"]
mod harness;
#[path = "common/wait.rs"]
mod wait;

use std::time::Duration;

use cluster::{ANN_STATUS, ANN_TARGETS, mirrored_in, wait_mirrors, widget_crd};
use harness::{Running, bind_admin, http_get, start_bound};
use kubemirror::controller::Exit;
use kubemirror::options::Options;
use kubemirror::testkit::{ApiServer, Rule, User};
use serde_json::{Value, json};
use wait::{eventually, eventually_async};

async fn server(users: Vec<User>) -> ApiServer {
    let namespaces = ["default", "kube-system", "kube-public", "kube-node-lease", "app1", "app2", "app3", "other"];
    cluster::server(31, &namespaces, users).await
}

/// Admin endpoints on free ports; no leader election (and, when a test turns it on, the default
/// lease timings).
fn options(types: Option<&str>) -> Options {
    bind_admin(Options { resource_types: types.map(String::from), leader_elect: false, ..Options::default() })
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
    let c = start_bound(&s, "admin", options(Some("Deployment.v1.apps,Secret.v1"))).await;
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
    let metrics = c.metrics();
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
    let c = start_bound(&s, "admin", opts).await;
    wait_mirrors(&s, "apps/v1", "Deployment", "tool", &["app1", "app2", "app3", "other"]).await;
    assert_eq!(c.stop().await, Exit::Clean);
}

// ---- isolation: each type syncs and fails on its own ----

/// Longer than `wait::eventually` for waits that include a watcher's backoff after a refusal
/// (it grows to minutes by design) plus a postponed pass.
async fn eventually_within(what: &str, within: Duration, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !cond().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What deploy/rbac.yaml grants: Secrets and ConfigMaps, namespaces read-only, events, and Leases
/// in the controller's own namespace (`default` here). `configmaps: false` takes ConfigMaps away.
fn least_privilege(configmaps: bool) -> Vec<Rule> {
    let all = ["get", "list", "watch", "create", "update", "patch", "delete"];
    let data: &[&str] = if configmaps { &["secrets", "configmaps"] } else { &["secrets"] };
    vec![
        Rule::new(&all, &[""], data),
        Rule::new(&["get", "list", "watch"], &[""], &["namespaces"]),
        Rule::new(&["create", "patch"], &["", "events.k8s.io"], &["events"]),
        Rule::new(&all, &["coordination.k8s.io"], &["leases"]).in_namespaces(&["default"]),
    ]
}

fn controller_user(rules: Vec<Rule>) -> User {
    User { name: "ctl".into(), token: "ctl-token".into(), rules }
}

async fn readyz(c: &Running) -> String {
    http_get(c.health(), "/readyz").await
}

fn metric_line<'a>(metrics: &'a str, name: &str, labels: &[&str]) -> Option<&'a str> {
    metrics.lines().find(|l| l.starts_with(&format!("{name}{{")) && labels.iter().all(|x| l.contains(x)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_privilege_rbac_with_auto_discovery_mirrors_what_it_may_and_reports_the_rest() {
    let s = server(vec![User::admin(), controller_user(least_privilege(true))]).await;
    s.create_object(secret("db", "all")).unwrap();
    let mut cm = opted_in("v1", "ConfigMap", "cfg", "app1,app2");
    cm["data"] = json!({"k": "v"});
    s.create_object(cm).unwrap();
    // A Deployment source the controller may not even read: nothing happens to it, nothing breaks.
    s.create_object(deployment("tool", "all")).unwrap();
    let opts = Options { leader_elect: true, leader_election_namespace: Some("default".into()), ..options(None) };
    let started = std::time::Instant::now();
    let c = start_bound(&s, "ctl", opts).await;

    wait_mirrors(&s, "v1", "Secret", "db", &["app1", "app2", "app3", "other"]).await;
    wait_mirrors(&s, "v1", "ConfigMap", "cfg", &["app1", "app2"]).await;
    let health = c.health();
    eventually_async("/readyz 200, listing the forbidden types", || async move {
        let r = http_get(health, "/readyz").await;
        r.starts_with("HTTP/1.1 200")
            && r.contains("[!]caches-synced: Deployment.v1.apps: cannot sync: sources watch Forbidden")
            && r.contains("[!]caches-synced: StatefulSet.v1.apps: cannot sync:")
    })
    .await;
    let ready = readyz(&c).await;
    assert!(!ready.contains("Secret.v1") && !ready.contains("ConfigMap.v1"), "{ready}");
    assert!(http_get(c.health(), "/healthz").await.starts_with("HTTP/1.1 200"));
    let metrics = c.metrics();
    eventually_async("the failing watches in the metrics", || async move {
        let m = http_get(metrics, "/metrics").await;
        metric_line(
            &m,
            "kubemirror_watch_failures_total",
            &["resource=\"Deployment.v1.apps sources\"", "reason=\"Forbidden\""],
        )
        .is_some()
            && metric_line(
                &m,
                "kubemirror_watch_failures_total",
                &["resource=\"Service.v1 mirrors\"", "reason=\"Forbidden\""],
            )
            .is_some()
            && metric_line(&m, "kubemirror_watch_failures_total", &["Secret.v1"]).is_none()
    })
    .await;
    assert_eq!(status(&s, "v1", "Secret", "db"), "synced:4,failed:0,conflicts:0,skipped:0");
    assert!(s.list_objects("apps/v1", "Deployment", None).iter().all(|d| d["metadata"]["namespace"] == "default"));

    // Retried with backoff, not in a hot loop: at most one list per watcher per doubling interval.
    let elapsed = started.elapsed().as_secs_f64();
    let per_watcher = 2.0 + (elapsed / 0.8 + 1.0).log2();
    let lists = s.stats().count("list", "deployments");
    assert!(lists >= 2 && (lists as f64) <= 2.0 * per_watcher, "{lists} lists in {elapsed:.1}s");
    assert_eq!(c.stop().await, Exit::Clean);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_that_becomes_forbidden_is_paused_and_reported_while_the_others_carry_on() {
    let s = server(vec![User::admin(), controller_user(least_privilege(true))]).await;
    s.create_object(secret("db", "all")).unwrap();
    let mut cm = opted_in("v1", "ConfigMap", "cfg", "all");
    cm["data"] = json!({"k": "v"});
    s.create_object(cm).unwrap();
    let c = start_bound(&s, "ctl", options(Some("Secret.v1,ConfigMap.v1"))).await;
    wait_mirrors(&s, "v1", "ConfigMap", "cfg", &["app1", "app2", "app3", "other"]).await;
    wait_mirrors(&s, "v1", "Secret", "db", &["app1", "app2", "app3", "other"]).await;
    let health = c.health();
    eventually_async("ready", || async move { http_get(health, "/readyz").await.starts_with("HTTP/1.1 200") }).await;

    // RBAC loses ConfigMaps; the open watches end (as at their timeout) and cannot come back.
    s.set_rules("ctl", least_privilege(false)).unwrap();
    s.close_watches();
    eventually_async("ConfigMaps reported as failing, still ready", || async move {
        let r = http_get(health, "/readyz").await;
        r.starts_with("HTTP/1.1 200") && r.contains("ConfigMap.v1: failing, passes paused") && r.contains("Forbidden")
    })
    .await;
    assert!(http_get(c.health(), "/healthz").await.starts_with("HTTP/1.1 200"));

    // A new namespace: the Secret goes there; the ConfigMap's pass is postponed, not tried on a
    // view that cannot be refreshed.
    let creates_before = s.stats().count("create", "configmaps");
    s.create_object(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "late"}})).unwrap();
    wait_mirrors(&s, "v1", "Secret", "db", &["app1", "app2", "app3", "late", "other"]).await;
    s.create_object(secret("new", "app1")).unwrap();
    wait_mirrors(&s, "v1", "Secret", "new", &["app1"]).await;
    assert_eq!(s.stats().count("create", "configmaps"), creates_before, "no ConfigMap write while paused");
    assert!(s.get_object("v1", "ConfigMap", Some("late"), "cfg").is_none());
    // Nothing of the ConfigMaps was deleted on the strength of the stale view either.
    assert_eq!(mirrored_in(&s, "v1", "ConfigMap", "cfg"), ["app1", "app2", "app3", "other"]);

    // Access restored: the watch comes back and the postponed pass runs on a fresh view.
    s.set_rules("ctl", least_privilege(true)).unwrap();
    eventually_within("the ConfigMap mirrored into the new namespace", Duration::from_secs(120), async || {
        mirrored_in(&s, "v1", "ConfigMap", "cfg") == ["app1", "app2", "app3", "late", "other"]
    })
    .await;
    eventually_async("no longer listed", || async move {
        let r = http_get(health, "/readyz").await;
        r.starts_with("HTTP/1.1 200") && !r.contains("ConfigMap.v1")
    })
    .await;
    assert_eq!(c.stop().await, Exit::Clean);
}

fn widget(name: &str) -> Value {
    let mut o = opted_in("example.com/v1", "Widget", name, "app1");
    o["spec"] = json!({"size": 3});
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crd_deleted_while_watched_fails_alone_and_comes_back_with_its_crd() {
    let s = server(vec![User::admin()]).await;
    s.create_object(widget_crd()).unwrap();
    s.create_object(widget("w1")).unwrap();
    s.create_object(secret("db", "app1")).unwrap();
    // Explicit types: nothing rediscovers the CRD away, so its watchers meet the 404s.
    let c = start_bound(&s, "admin", options(Some("Secret.v1,Widget.v1.example.com"))).await;
    wait_mirrors(&s, "example.com/v1", "Widget", "w1", &["app1"]).await;
    wait_mirrors(&s, "v1", "Secret", "db", &["app1"]).await;

    s.delete_object("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, "widgets.example.com").unwrap();
    s.close_watches();
    let health = c.health();
    eventually_async("the deleted type reported, still ready", || async move {
        let r = http_get(health, "/readyz").await;
        r.starts_with("HTTP/1.1 200")
            && r.contains("Widget.v1.example.com: failing, passes paused")
            && r.contains("NotFound")
    })
    .await;
    assert!(http_get(c.health(), "/healthz").await.starts_with("HTTP/1.1 200"));
    s.create_object(secret("late", "app2")).unwrap();
    wait_mirrors(&s, "v1", "Secret", "late", &["app2"]).await;
    let metrics = c.metrics();
    eventually_async("NotFound in the metrics", || async move {
        let m = http_get(metrics, "/metrics").await;
        metric_line(&m, "kubemirror_watch_failures_total", &["Widget.v1.example.com", "reason=\"NotFound\""]).is_some()
    })
    .await;

    // The CRD is back: the watchers recover on their own and new sources are mirrored.
    s.create_object(widget_crd()).unwrap();
    s.create_object(widget("w2")).unwrap();
    eventually_within("the recreated type mirrored again", Duration::from_secs(120), async || {
        mirrored_in(&s, "example.com/v1", "Widget", "w2") == ["app1"]
    })
    .await;
    eventually_async("no longer listed", || async move {
        !http_get(health, "/readyz").await.contains("Widget.v1.example.com")
    })
    .await;
    assert_eq!(c.stop().await, Exit::Clean);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_target_or_source_never_blocks_the_others() {
    // The controller may read Secrets everywhere but write them only in some namespaces: app2
    // (a target) and `locked` (a source's own namespace) refuse every write.
    let all = ["create", "update", "patch", "delete"];
    let rules = vec![
        Rule::new(&["get", "list", "watch"], &[""], &["secrets", "namespaces"]),
        Rule::new(&all, &[""], &["secrets"]).in_namespaces(&["default", "app1", "app3", "other"]),
        Rule::new(&["create", "patch"], &["", "events.k8s.io"], &["events"]),
    ];
    let s = server(vec![User::admin(), controller_user(rules)]).await;
    s.create_object(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "locked"}})).unwrap();
    let mut stuck = secret("stuck", "app1");
    stuck["metadata"]["namespace"] = json!("locked");
    s.create_object(stuck).unwrap();
    s.create_object(secret("spread", "app1,app2,app3")).unwrap();
    s.create_object(secret("plain", "other")).unwrap();
    let c = start_bound(&s, "ctl", options(Some("Secret.v1"))).await;

    wait_mirrors(&s, "v1", "Secret", "spread", &["app1", "app3"]).await;
    wait_mirrors(&s, "v1", "Secret", "plain", &["other"]).await;
    eventually("the refused target reported on its source", || {
        let st = status(&s, "v1", "Secret", "spread");
        st.starts_with("synced:2,failed:1,conflicts:0,skipped:0; last-error: app2: Forbidden:")
    })
    .await;
    // The source whose own namespace refuses the finalizer gets nothing, and holds nobody up:
    // a later source is mirrored while it keeps failing with backoff.
    s.create_object(secret("later", "app3")).unwrap();
    wait_mirrors(&s, "v1", "Secret", "later", &["app3"]).await;
    assert!(mirrored_in(&s, "v1", "Secret", "stuck").is_empty());
    let metrics = c.metrics();
    eventually_async("the refused writes in the metrics", || async move {
        let m = http_get(metrics, "/metrics").await;
        metric_line(&m, "kubemirror_sync_errors_total", &["kind=\"Secret.v1\"", "reason=\"Forbidden\""]).is_some()
    })
    .await;
    assert_eq!(c.stop().await, Exit::Clean);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_whose_api_keeps_failing_is_reported_and_holds_nothing_up() {
    let s = server(vec![User::admin()]).await;
    s.create_object(widget_crd()).unwrap();
    s.create_object(widget("w1")).unwrap();
    s.create_object(secret("db", "app1")).unwrap();
    // Like a CRD whose conversion webhook is down: every list of it answers 503.
    s.fail_next(kubemirror::testkit::Matcher::new(Some("list"), Some("widgets")), 1_000_000, 503, None);
    let c = start_bound(&s, "admin", options(Some("Secret.v1,Widget.v1.example.com"))).await;
    wait_mirrors(&s, "v1", "Secret", "db", &["app1"]).await;
    let health = c.health();
    eventually_async("ready, the broken type listed", || async move {
        let r = http_get(health, "/readyz").await;
        r.starts_with("HTTP/1.1 200") && r.contains("Widget.v1.example.com: cannot sync") && r.contains("ServerError")
    })
    .await;
    assert!(http_get(c.health(), "/healthz").await.starts_with("HTTP/1.1 200"));
    assert!(mirrored_in(&s, "example.com/v1", "Widget", "w1").is_empty());
    assert_eq!(c.stop().await, Exit::Clean);
}
