//! Transformation rules end to end: the real controller on the in-memory API server. Rule edits
//! re-sync exactly the affected mirrors, immutable mirrors are recreated, strict and non-strict
//! behave as documented, a failing target does not block the others, and every report (status,
//! Event, metric, log) names the problem without ever showing a Secret's value.
#![cfg(feature = "testkit")]

#[path = "common/cluster.rs"]
mod cluster;
#[path = "common/controller.rs"]
mod harness;
#[path = "common/wait.rs"]
mod wait;

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use harness::Running;
use kubemirror::controller::Exit;
use kubemirror::metrics::Metrics;
use kubemirror::testkit::{ApiServer, User};
use serde_json::{Value, json};
use wait::eventually;

use cluster::{ANN_STATUS, ANN_TARGETS};

const ANN_TRANSFORM: &str = "kubemirror.raczylo.com/transform";
const ANN_STRICT: &str = "kubemirror.raczylo.com/transform-strict";
/// base64 of "super-secret-password": must never be seen outside Secret data.
const SECRET_B64: &str = "c3VwZXItc2VjcmV0LXBhc3N3b3Jk";
const SECRET_PLAIN: &str = "super-secret-password";

/// Every log line of this test binary, to check that none shows a secret.
struct Capture;
static LINES: OnceLock<Mutex<Vec<String>>> = OnceLock::new();

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Info
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            LINES.get_or_init(Default::default).lock().unwrap().push(format!("{}", r.args()));
        }
    }
    fn flush(&self) {}
}

fn capture_logs() {
    if log::set_logger(&Capture).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}

fn logs() -> Vec<String> {
    LINES.get_or_init(Default::default).lock().unwrap().clone()
}

async fn server() -> ApiServer {
    cluster::server(33, &["default", "kube-system", "prod-eu", "prod-us", "dev", "app1"], vec![User::admin()]).await
}

async fn start(s: &ApiServer) -> Running {
    start_types(s, "Secret.v1,ConfigMap.v1").await
}

/// The controller in-process, its metrics in a registry the test reads, every log line captured.
async fn start_types(s: &ApiServer, types: &str) -> Running {
    capture_logs();
    harness::start_with_registry(s, "admin", harness::options(Some(types), false), Metrics::new().unwrap()).await
}

/// Stops it and checks that it stopped cleanly.
async fn stop(c: Running) {
    assert_eq!(c.stop().await, Exit::Clean);
}

fn source(kind: &str, name: &str, targets: &str, rules: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": "default",
        "labels": {"kubemirror.raczylo.com/enabled": "true", "app": "shop"},
        "annotations": {"kubemirror.raczylo.com/sync": "true", ANN_TARGETS: targets, ANN_TRANSFORM: rules}},
        "data": data})
}

fn get(s: &ApiServer, kind: &str, ns: &str, name: &str) -> Option<Value> {
    s.get_object("v1", kind, Some(ns), name)
}

fn data_of(s: &ApiServer, kind: &str, ns: &str, name: &str) -> Value {
    get(s, kind, ns, name).map(|o| o["data"].clone()).unwrap_or(Value::Null)
}

fn status(s: &ApiServer, kind: &str, name: &str) -> String {
    get(s, kind, "default", name)
        .and_then(|o| o.pointer(&format!("/metadata/annotations/{}", ANN_STATUS.replace('/', "~1"))).cloned())
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

fn events(s: &ApiServer, name: &str) -> Vec<(String, String)> {
    s.list_objects("v1", "Event", Some("default"))
        .into_iter()
        .filter(|e| e.pointer("/involvedObject/name").and_then(Value::as_str) == Some(name))
        .map(|e| (e["reason"].as_str().unwrap_or("").to_string(), e["message"].as_str().unwrap_or("").to_string()))
        .collect()
}

fn edit(s: &ApiServer, kind: &str, name: &str, f: impl Fn(&mut Value)) {
    cluster::edit(s, "v1", kind, Some("default"), name, f);
}

fn b64(s: &str) -> String {
    kubemirror::util::base64::encode(s.as_bytes())
}

fn rv(o: &Option<Value>) -> String {
    o.as_ref().and_then(|o| o.pointer("/metadata/resourceVersion")).and_then(Value::as_str).unwrap_or("").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_edits_propagate_to_exactly_the_affected_mirrors() {
    let s = server().await;
    let rules = r#"
rules:
  - path: data.URL
    template: "https://{{ .TargetNamespace }}.api.example.com"
  - path: data.LOG_LEVEL
    value: error
    namespacePattern: "prod-*"
  - path: metadata.labels["app.kubernetes.io/part-of"]
    template: '{{ .Labels.app }}'
"#;
    s.create_object(source("ConfigMap", "cfg", "prod-eu,prod-us,dev", rules, json!({"LOG_LEVEL": "debug"}))).unwrap();
    let c = start(&s).await;
    eventually("mirrors transformed", || {
        data_of(&s, "ConfigMap", "prod-eu", "cfg")
            == json!({"LOG_LEVEL": "error", "URL": "https://prod-eu.api.example.com"})
            && data_of(&s, "ConfigMap", "dev", "cfg")
                == json!({"LOG_LEVEL": "debug", "URL": "https://dev.api.example.com"})
            && data_of(&s, "ConfigMap", "prod-us", "cfg")["LOG_LEVEL"] == "error"
    })
    .await;
    let dev = get(&s, "ConfigMap", "dev", "cfg");
    assert_eq!(dev.as_ref().unwrap().pointer("/metadata/labels/app.kubernetes.io~1part-of"), Some(&json!("shop")));
    assert_eq!(
        dev.as_ref().unwrap().pointer("/metadata/labels/kubemirror.raczylo.com~1managed-by"),
        Some(&json!("kubemirror"))
    );
    eventually("status", || status(&s, "ConfigMap", "cfg") == "synced:3,failed:0,conflicts:0,skipped:0").await;
    let source_before = get(&s, "ConfigMap", "default", "cfg").unwrap();
    assert_eq!(source_before["data"], json!({"LOG_LEVEL": "debug"}), "the source is never modified");
    // Change only the prod rule's value: the prod mirrors are rewritten, dev's is left alone
    // (its content, and so its hash, did not change).
    let (dev_rv, eu_rv) = (rv(&dev), rv(&get(&s, "ConfigMap", "prod-eu", "cfg")));
    edit(&s, "ConfigMap", "cfg", |o| {
        o["metadata"]["annotations"][ANN_TRANSFORM] = json!(rules.replace("value: error", "value: warn"));
    });
    eventually("prod mirrors updated", || {
        data_of(&s, "ConfigMap", "prod-eu", "cfg")["LOG_LEVEL"] == "warn"
            && data_of(&s, "ConfigMap", "prod-us", "cfg")["LOG_LEVEL"] == "warn"
    })
    .await;
    assert_ne!(rv(&get(&s, "ConfigMap", "prod-eu", "cfg")), eu_rv);
    assert_eq!(rv(&get(&s, "ConfigMap", "dev", "cfg")), dev_rv, "an unaffected mirror is not rewritten");
    // Removing the annotation makes plain copies again.
    edit(&s, "ConfigMap", "cfg", |o| {
        o["metadata"]["annotations"].as_object_mut().unwrap().remove(ANN_TRANSFORM);
    });
    eventually("untransformed copies", || {
        ["prod-eu", "prod-us", "dev"]
            .iter()
            .all(|ns| data_of(&s, "ConfigMap", ns, "cfg") == json!({"LOG_LEVEL": "debug"}))
    })
    .await;
    stop(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn immutable_mirrors_are_recreated_when_a_rule_changes_their_content() {
    let s = server().await;
    let mut src = source("Secret", "creds", "app1", "rules: [{path: data.ENV, value: one}]", json!({"k": "dg=="}));
    src["immutable"] = json!(true);
    src["type"] = json!("Opaque");
    s.create_object(src).unwrap();
    let c = start(&s).await;
    eventually("mirror", || data_of(&s, "Secret", "app1", "creds")["ENV"] == json!(b64("one"))).await;
    let uid = get(&s, "Secret", "app1", "creds").unwrap()["metadata"]["uid"].clone();
    edit(&s, "Secret", "creds", |o| {
        o["metadata"]["annotations"][ANN_TRANSFORM] = json!("rules: [{path: data.ENV, value: two}]")
    });
    eventually("recreated with the new content", || {
        get(&s, "Secret", "app1", "creds").is_some_and(|o| {
            o["data"]["ENV"] == json!(b64("two")) && o["metadata"]["uid"] != uid && o["immutable"] == true
        })
    })
    .await;
    stop(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_strict_skips_a_failing_rule_and_reports_it_without_the_value() {
    let s = server().await;
    // Rule 2 fails in every target (`missing` holds a string, not a map); rules 1 and 3 apply.
    let rules = r#"
rules:
  - path: data.PASSWORD
    delete: true
  - path: data.missing.deeper
    value: x
  - path: data.HOST
    template: "{{ .TargetNamespace }}.db"
"#;
    s.create_object(source(
        "Secret",
        "db",
        "prod-eu,dev",
        rules,
        json!({"PASSWORD": SECRET_B64, "missing": SECRET_B64}),
    ))
    .unwrap();
    let c = start(&s).await;
    eventually("mirrors written without the skipped rule", || {
        ["prod-eu", "dev"].iter().all(|ns| {
            let d = data_of(&s, "Secret", ns, "db");
            d.get("PASSWORD").is_none() && d["HOST"] == json!(b64(&format!("{ns}.db")))
        })
    })
    .await;
    let want = "synced:2,failed:0,conflicts:0,skipped:0,rules-skipped:2; last-error: dev: rule 2 (data.missing.deeper) skipped: cannot set key deeper on non-map";
    eventually("status reports the skip", || status(&s, "Secret", "db") == want).await;
    eventually("a Warning Event for the rule", || {
        events(&s, "db").iter().any(|(r, m)| {
            r == "TransformRuleSkipped"
                && m.starts_with(
                    "rule 2 (data.missing.deeper) skipped: cannot set key deeper on non-map (in dev, prod-eu)",
                )
        })
    })
    .await;
    eventually("the metric", || {
        c.registry().render().contains("kubemirror_transform_errors_total{kind=\"Secret.v1\",reason=\"path\"}")
    })
    .await;
    // Logged after the pass's requests (its status patch among them): wait for it too.
    eventually("the log line", || {
        logs().iter().any(|l| l.contains("Secret.v1 default/db: transformation rule 2 (data.missing.deeper) skipped"))
    })
    .await;
    // A persistent skip does not rewrite the status: touch the source, the text stays.
    let status_rv = rv(&get(&s, "Secret", "default", "db"));
    edit(&s, "Secret", "db", |o| o["metadata"]["labels"]["touch"] = json!("1"));
    let touched_rv = rv(&get(&s, "Secret", "default", "db"));
    assert_ne!(status_rv, touched_rv);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rv(&get(&s, "Secret", "default", "db")), touched_rv, "no status rewrite for an unchanged skip");
    no_secret_anywhere(&s, "db");
    stop(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_mode_fails_only_the_failing_target() {
    let s = server().await;
    // Rule 2 applies only to dev, and fails there (PASSWORD is a string, not a map).
    let rules = r#"
rules:
  - path: data.TIER
    value: prod
    namespacePattern: "prod-*"
  - path: data.PASSWORD.x
    value: y
    namespacePattern: "dev"
  - path: data.OK
    value: "yes"
"#;
    let mut src = source("ConfigMap", "app", "prod-eu,prod-us,dev", rules, json!({"PASSWORD": SECRET_PLAIN}));
    src["metadata"]["annotations"][ANN_STRICT] = json!("true");
    s.create_object(src).unwrap();
    let c = start(&s).await;
    eventually("prod mirrors written", || {
        ["prod-eu", "prod-us"].iter().all(|ns| data_of(&s, "ConfigMap", ns, "app")["OK"] == "yes")
    })
    .await;
    let want = "synced:2,failed:1,conflicts:0,skipped:0; last-error: dev: failed to apply rule 2 (data.PASSWORD.x): cannot set key x on non-map";
    eventually("status names the strict failure", || status(&s, "ConfigMap", "app") == want).await;
    assert!(get(&s, "ConfigMap", "dev", "app").is_none(), "the failing target gets no mirror");
    eventually("a MirrorFailed event for dev", || {
        events(&s, "app")
            .iter()
            .any(|(r, m)| r == "MirrorFailed" && m.contains("mirror in dev: failed to apply rule 2"))
    })
    .await;
    assert!(c.registry().render().contains("kubemirror_transform_errors_total{kind=\"ConfigMap.v1\",reason=\"path\"}"));
    // Turning strict off: the rule is skipped and dev gets its mirror.
    edit(&s, "ConfigMap", "app", |o| o["metadata"]["annotations"][ANN_STRICT] = json!("false"));
    eventually("dev mirrored once the rule is skipped", || data_of(&s, "ConfigMap", "dev", "app")["OK"] == "yes").await;
    stop(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_that_do_not_compile_publish_nothing_and_keep_existing_mirrors() {
    let s = server().await;
    let good = "rules: [{path: data.PASSWORD, delete: true}]";
    s.create_object(source("Secret", "api", "prod-eu,dev", good, json!({"PASSWORD": SECRET_B64, "USER": "dQ=="})))
        .unwrap();
    let c = start(&s).await;
    eventually("mirrors without the password", || {
        ["prod-eu", "dev"].iter().all(|ns| data_of(&s, "Secret", ns, "api") == json!({"USER": "dQ=="}))
    })
    .await;
    // A typo: the rule no longer says what to do. Non-strict, yet nothing is published: the
    // untransformed copy would leak the password the rule deletes.
    let broken = "rules: [{path: data.PASSWORD, delet: true}]";
    edit(&s, "Secret", "api", |o| {
        o["metadata"]["annotations"][ANN_TRANSFORM] = json!(broken);
        o["data"]["USER"] = json!("dXNlcjI=");
    });
    let want = "synced:0,failed:2,conflicts:0,skipped:0; last-error: invalid transformation rules: rule 1: unknown field \"delet\" (a rule has path, value, template, merge, delete, namespacePattern, type)";
    eventually("status reports the invalid rules", || status(&s, "Secret", "api") == want).await;
    eventually("one TransformInvalid event, no per-target failures", || {
        let ev = events(&s, "api");
        ev.iter().any(|(r, m)| r == "TransformInvalid" && m.contains("unknown field \"delet\""))
            && !ev.iter().any(|(r, _)| r == "MirrorFailed")
    })
    .await;
    for ns in ["prod-eu", "dev"] {
        assert_eq!(
            data_of(&s, "Secret", ns, "api"),
            json!({"USER": "dQ=="}),
            "{ns}: the existing mirror is left as it was"
        );
    }
    assert!(
        c.registry().render().contains("kubemirror_transform_errors_total{kind=\"Secret.v1\",reason=\"invalid_rule\"}")
    );
    // Fixed: the new content flows again.
    edit(&s, "Secret", "api", |o| o["metadata"]["annotations"][ANN_TRANSFORM] = json!(good));
    eventually("converged after the fix", || {
        ["prod-eu", "dev"].iter().all(|ns| data_of(&s, "Secret", ns, "api") == json!({"USER": "dXNlcjI="}))
            && status(&s, "Secret", "api").starts_with("synced:2,failed:0")
    })
    .await;
    no_secret_anywhere(&s, "api");
    stop(c).await;
}

/// Status, Events and logs never carry the secret, in base64 or plain.
fn no_secret_anywhere(s: &ApiServer, name: &str) {
    let st = status(s, "Secret", name);
    let ev = events(s, name);
    for text in std::iter::once(st).chain(ev.into_iter().map(|(_, m)| m)).chain(logs()) {
        assert!(!text.contains(SECRET_B64) && !text.contains(SECRET_PLAIN), "leaked: {text}");
    }
}

/// The transform examples under examples/ give exactly the output their comments document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transform_examples_produce_what_they_document() {
    let s = server().await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut text = String::new();
    for f in [
        "namespaces.yaml",
        "transform-configmap-environments.yaml",
        "transform-secret-hardening.yaml",
        "transform-namespace-patterns.yaml",
        "transform-deployment-array-indexes.yaml",
    ] {
        text.push_str(&std::fs::read_to_string(dir.join(f)).unwrap());
        text.push_str("\n---\n");
    }
    s.apply_yaml(&text).unwrap();
    let c = start_types(&s, "Secret.v1,ConfigMap.v1,Deployment.v1.apps").await;
    eventually("environments example", || {
        ["dev-web", "prod-web", "prod-api"].iter().all(|ns| {
            get(&s, "ConfigMap", ns, "app-config").is_some_and(|o| {
                o["data"] == json!({"LOG_LEVEL": "error", "API_URL": format!("https://{ns}.api.example.com")})
                    && o["metadata"]["labels"]["environment"] == "production"
            })
        })
    })
    .await;
    assert_eq!(
        data_of(&s, "ConfigMap", "default", "app-config"),
        json!({"LOG_LEVEL": "debug", "API_URL": "https://localhost:8080", "DEBUG_MODE": "true"})
    );
    eventually("secret hardening example", || {
        ["app1", "app2", "app3"].iter().all(|ns| {
            data_of(&s, "Secret", ns, "app-credentials")
                == json!({"APP_KEY": b64("app-key-12345"), "DB_HOST": b64(&format!("{ns}.postgres.svc.cluster.local"))})
        })
    })
    .await;
    let graphql = |ns: &str| data_of(&s, "ConfigMap", ns, "graphql-config");
    let want = |host: &str, level: &str| json!({"APP_NAME": "my-app", "GRAPHQL_HOST": host, "LOG_LEVEL": level});
    eventually("namespace pattern example", || {
        graphql("preprod-web") == want("https://preprod.example.com/v1/graphql", "info")
            && graphql("prod-web") == want("https://api.example.com/v1/graphql", "info")
            && graphql("eu-staging") == want("http://localhost:4000/graphql", "warn")
            && graphql("dev-web") == want("http://localhost:4000/graphql", "info")
    })
    .await;
    eventually("deployment example", || {
        ["app-frontend", "prod-api"].iter().all(|ns| {
            s.get_object("apps/v1", "Deployment", Some(ns), "web").is_some_and(|d| {
                let spec = &d["spec"]["template"]["spec"];
                d["spec"]["replicas"] == json!(1)
                    && spec["containers"][0]["image"] == format!("registry.{ns}.example.com/app:v1")
                    && spec["containers"][0]["env"][1]["value"] == format!("postgres://{ns}-db.svc:5432")
                    && spec["containers"][0]["env"][0]["value"] == "production"
                    && spec["volumes"][0]["configMap"]["name"] == format!("{ns}-config")
                    && d["metadata"]["labels"]["app.kubernetes.io/instance"] == format!("web-{ns}")
            })
        })
    })
    .await;
    stop(c).await;
}

/// A transformed source costs nothing in steady state: rules are compiled and applied only when a
/// pass runs, and a pass over unchanged objects plans no request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transformed_source_adds_no_steady_state_request() {
    let s = server().await;
    let rules = "rules: [{path: data.URL, template: 'https://{{ .TargetNamespace }}.example.com'}, {path: data.PASSWORD, delete: true}]";
    s.create_object(source(
        "Secret",
        "tls",
        "prod-eu,prod-us,dev",
        rules,
        json!({"PASSWORD": SECRET_B64, "k": "dg=="}),
    ))
    .unwrap();
    s.create_object(source("ConfigMap", "cfg", "prod-eu,dev", rules, json!({"k": "v"}))).unwrap();
    let c = start(&s).await;
    eventually("converged", || {
        status(&s, "Secret", "tls").starts_with("synced:3,") && status(&s, "ConfigMap", "cfg").starts_with("synced:2,")
    })
    .await;
    harness::assert_steady_state_is_quiet(&s).await;
    stop(c).await;
}
