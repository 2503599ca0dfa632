//! Bad input from users (annotations malformed every way, huge objects, names at the limit,
//! sources in terminating namespaces, hostile transforms) and from the API server (truncated JSON,
//! lists whose items are not objects, wrong kinds, a line of many megabytes in a watch). Each
//! gets a clear report (status, Event, log), bounded memory and no panic; the controller keeps
//! mirroring everything else and writes nothing it does not own.
#![cfg(feature = "testkit")]

#[path = "common/cluster.rs"]
mod cluster;
#[path = "common/fleet.rs"]
mod fleet;
#[path = "common/controller.rs"]
mod harness;
#[path = "common/wait.rs"]
mod wait;

use std::time::Duration;

use kubemirror::controller::Exit;
use kubemirror::testkit::{ApiServer, Matcher, ServerOptions};
use serde_json::{Value, json};
use wait::eventually;

const TARGETS: &str = fleet::TARGETS;
const SELECTOR: &str = "kubemirror.raczylo.com/target-namespace-selector";
const TRANSFORM: &str = "kubemirror.raczylo.com/transform";

async fn server() -> ApiServer {
    let _ = env_logger::builder().is_test(true).try_init();
    ApiServer::start(ServerOptions {
        seed: Some(41),
        namespaces: ["default", "kube-system", "app1", "app2", "app3"].map(String::from).to_vec(),
        bookmark_interval: Duration::from_millis(200),
        ..Default::default()
    })
    .await
    .unwrap()
}

fn secret(ns: &str, name: &str, annotations: Value) -> Value {
    let mut ann = json!({fleet::SYNC: "true"});
    for (k, v) in annotations.as_object().unwrap() {
        ann[k] = v.clone();
    }
    json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": name, "namespace": ns, "labels": {fleet::ENABLED: "true"}, "annotations": ann},
        "data": {"k": "dmFsdWU="}})
}

fn status(s: &ApiServer, ns: &str, name: &str) -> String {
    s.get_object("v1", "Secret", Some(ns), name)
        .and_then(|o| o.pointer("/metadata/annotations").and_then(|a| a.get(fleet::STATUS)).cloned())
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

fn mirrored_in(s: &ApiServer, name: &str) -> Vec<String> {
    let mut out: Vec<String> =
        fleet::mirrors(s).into_keys().filter(|(k, _, n)| k == "Secret" && n == name).map(|(_, ns, _)| ns).collect();
    out.sort();
    out
}

/// A well-formed source next to the bad ones: it must converge whatever they do.
fn canary_source() -> Value {
    secret("default", "healthy", json!({TARGETS: "app1,app2"}))
}

async fn healthy_converges(s: &ApiServer) {
    eventually("the healthy source mirrored", || mirrored_in(s, "healthy") == ["app1", "app2"]).await;
    eventually("the healthy source's status", || status(s, "default", "healthy").starts_with("synced:2,failed:0"))
        .await;
}

fn events_for(s: &ApiServer, name: &str) -> Vec<Value> {
    s.list_objects("v1", "Event", Some("default"))
        .into_iter()
        .filter(|e| e.pointer("/involvedObject/name").and_then(Value::as_str) == Some(name))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_annotations_are_reported_and_nothing_else_stops() {
    let s = server().await;
    s.create_object(canary_source()).unwrap();
    let ten_thousand_missing: String = (0..10_000).map(|i| format!("ns-{i}")).collect::<Vec<_>>().join(",");
    let ten_thousand_invalid: String = (0..10_000).map(|i| format!("Bad_{i}")).collect::<Vec<_>>().join(",");
    let ten_thousand_same = vec!["app1"; 10_000].join(",");
    let cases: Vec<(&str, Value, &str)> = vec![
        // name, annotations, what the status must say (a prefix)
        ("control", json!({TARGETS: "app1,\u{0}\u{1b}[31mred\u{7},\r\napp2\t"}), "synced:2,failed:0"),
        ("unicode", json!({TARGETS: "アプリ,app1,ｅｍｏｊｉ😀,app\u{301}2"}), "synced:1,failed:0"),
        ("long-entry", json!({TARGETS: format!("{},app1", "a".repeat(300))}), "synced:1,failed:0"),
        ("long-glob", json!({TARGETS: format!("{}app*,{}", "*".repeat(300), "[a-z]".repeat(60))}), "synced:3,failed:0"),
        ("many-missing", json!({TARGETS: ten_thousand_missing}), "synced:0,failed:0,conflicts:0,skipped:10000"),
        ("many-invalid", json!({TARGETS: ten_thousand_invalid}), "synced:0,failed:0"),
        ("many-same", json!({TARGETS: ten_thousand_same}), "synced:1,failed:0"),
        ("bad-selector", json!({SELECTOR: "env in (", TARGETS: "app3"}), "synced:1,failed:0"),
        ("selector-garbage", json!({SELECTOR: "a=b=c,!,x notin,\u{0}=1"}), "synced:0,failed:0"),
        ("selector-huge", json!({SELECTOR: format!("k in ({})", vec!["v"; 10_000].join(","))}), "synced:0,failed:0"),
        ("not-a-list", json!({TARGETS: ",,, , ,"}), "synced:0,failed:0"),
        (
            "hostile-transform",
            json!({TARGETS: "app1", TRANSFORM: format!("\u{0}{{{{{{ &a [*a] {}", "x".repeat(100_000))}),
            // Rules that do not compile fail every target (never an untransformed copy).
            "synced:0,failed:1",
        ),
        (
            "alias-bomb-transform",
            json!({TARGETS: "app2", TRANSFORM: "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"}),
            "synced:0,failed:1",
        ),
    ];
    for (name, ann, _) in &cases {
        s.create_object(secret("default", name, ann.clone())).unwrap();
    }
    let c = harness::start(&s, "admin", fleet::options(false)).await;
    healthy_converges(&s).await;
    for (name, _, want) in &cases {
        eventually(&format!("{name}: status {want}"), || status(&s, "default", name).starts_with(want)).await;
        let st = status(&s, "default", name);
        assert!(st.len() <= 400, "{name}: the status is bounded: {} bytes", st.len());
        assert!(!st.chars().any(|c| c.is_control()), "{name}: no control characters in the status: {st:?}");
    }
    // Problems are reported (an Event), and bounded: 10,000 missing namespaces are not 10,000 Events.
    for name in ["control", "unicode", "long-entry", "many-invalid", "bad-selector"] {
        eventually(&format!("{name}: a Warning Event"), || {
            events_for(&s, name).iter().any(|e| e["type"] == "Warning" && e["reason"] == "InvalidTargets")
        })
        .await;
    }
    for name in ["hostile-transform", "alias-bomb-transform"] {
        eventually(&format!("{name}: a TransformInvalid Event"), || {
            events_for(&s, name).iter().any(|e| e["type"] == "Warning" && e["reason"] == "TransformInvalid")
        })
        .await;
    }
    // Events go out after the status patch: let the bursts land before judging them.
    fleet::settled(&s, |s| s.list_objects("v1", "Event", Some("default")).len()).await;
    assert!(events_for(&s, "many-missing").len() <= 10, "Events are rate limited per source");
    assert!(events_for(&s, "many-invalid").len() <= 10, "Events are rate limited per source");
    for e in s.list_objects("v1", "Event", Some("default")) {
        let m = e["message"].as_str().unwrap_or_default();
        assert!(m.len() <= 1024 && !m.chars().any(|c| c.is_control()), "Event message {m:?}");
    }
    let st = fleet::quiet_window(&s, 3).await;
    fleet::assert_quiet(&st, 0);
    assert_eq!(c.stop().await, Exit::Clean);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_objects_and_names_at_the_limit_are_mirrored() {
    let s = server().await;
    // 253 characters: the longest name a Secret may have (segments of at most 63).
    let long_name = format!("{}.{}.{}.{}", "a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(61));
    assert_eq!(long_name.len(), 253);
    s.create_object(secret("default", &long_name, json!({TARGETS: "app1,app2,missing-ns"}))).unwrap();
    // Just under the 1 MiB Secret limit once decoded.
    let big = kubemirror::util::base64::encode(&vec![b'x'; 1024 * 1024 - 4096]);
    let mut huge = secret("default", "huge", json!({TARGETS: "app1,app2,app3"}));
    huge["data"] = json!({"blob": big});
    s.create_object(huge).unwrap();
    let c = harness::start(&s, "admin", fleet::options(false)).await;
    eventually("the 253-character source mirrored", || mirrored_in(&s, &long_name) == ["app1", "app2"]).await;
    eventually("the 1 MiB source mirrored", || mirrored_in(&s, "huge") == ["app1", "app2", "app3"]).await;
    assert_eq!(s.get_object("v1", "Secret", Some("app3"), "huge").unwrap()["data"]["blob"], json!(big));
    eventually("the long name's status", || status(&s, "default", &long_name).starts_with("synced:2,failed:0")).await;
    // Its Event (the missing namespace) has a valid name despite the source's 253 characters.
    eventually("an Event about the 253-character source", || !events_for(&s, &long_name).is_empty()).await;
    assert_eq!(c.stop().await, Exit::Clean);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_in_a_terminating_namespace_cleans_up_and_lets_it_go() {
    let s = server().await;
    s.create_object(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}})).unwrap();
    s.create_object(secret("doomed", "db", json!({TARGETS: "app1,app2,doomed"}))).unwrap();
    s.create_object(canary_source()).unwrap();
    let c = harness::start(&s, "admin", fleet::options(false)).await;
    eventually("mirrored", || mirrored_in(&s, "db") == ["app1", "app2"]).await;
    healthy_converges(&s).await;
    s.delete_object("v1", "Namespace", None, "doomed").unwrap();
    eventually("the mirrors removed and the namespace gone", || {
        mirrored_in(&s, "db").is_empty() && s.get_object("v1", "Namespace", None, "doomed").is_none()
    })
    .await;
    // A namespace that terminates while targeted: skipped, reported, not a failure.
    s.create_object(secret("default", "into-dying", json!({TARGETS: "app3"}))).unwrap();
    eventually("mirrored into app3", || mirrored_in(&s, "into-dying") == ["app3"]).await;
    let mut blocker = secret("app3", "held", json!({}));
    blocker["metadata"]["labels"] = json!({});
    blocker["metadata"]["finalizers"] = json!(["example.com/hold"]);
    s.create_object(blocker).unwrap();
    s.delete_object("v1", "Namespace", None, "app3").unwrap();
    eventually("the terminating target reported as skipped", || {
        status(&s, "default", "into-dying").starts_with("synced:0,failed:0,conflicts:0,skipped:1")
    })
    .await;
    healthy_converges(&s).await;
    assert_eq!(c.stop().await, Exit::Clean);
}

/// Forces every watcher to list again: watches stall, the history is compacted, then released.
async fn force_relist(s: &ApiServer) {
    s.hang(Matcher::new(Some("watch"), None));
    s.close_watches();
    eventually("the watches closed", || s.open_watches() == 0).await;
    s.compact();
    s.release();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_lists_from_the_server_never_look_like_deletions() {
    let s = server().await;
    for name in ["a", "b", "c"] {
        s.create_object(secret("default", name, json!({TARGETS: "app1,app2,app3"}))).unwrap();
    }
    let c = harness::start(&s, "admin", fleet::options(false)).await;
    for name in ["a", "b", "c"] {
        eventually("mirrored", || mirrored_in(&s, name) == ["app1", "app2", "app3"]).await;
    }
    eventually("statuses", || status(&s, "default", "c").starts_with("synced:3,")).await;
    let rv = s.resource_version().to_string();
    // No list kind: the sources' (SecretList) and mirrors' (PartialObjectMetadataList) watchers
    // both read the items.
    let list =
        |items: Value| json!({"apiVersion": "v1", "metadata": {"resourceVersion": rv}, "items": items}).to_string();
    let bodies = [
        // Truncated JSON.
        format!("{{\"apiVersion\":\"v1\",\"metadata\":{{\"resourceVersion\":\"{rv}\"}},\"items\":[{{\"metadata\":"),
        // Items that are not objects, or objects without readable metadata (more shapes in
        // ObjectList's unit tests: each garbage page costs every watcher a growing backoff).
        list(json!([1, "x", null, {"metadata": "not an object"}])),
        // Objects of another kind, and a list of another kind.
        list(json!([{"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "intruder", "namespace": "default",
            "uid": "u-intruder", "labels": {fleet::ENABLED: "true"}, "annotations": {fleet::SYNC: "true", TARGETS: "app1"}}}])),
        json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": rv}, "items": []}).to_string(),
    ];
    for body in &bodies {
        // The Secret watchers (sources and mirrors) list again and get the garbage, one page each.
        s.respond_next(Matcher::new(Some("list"), Some("secrets")), 1, 200, body.clone());
    }
    s.reset_stats();
    force_relist(&s).await;
    eventually("the garbage served", || s.pending_faults() == 0).await;
    // The watchers recover by listing again; nothing the garbage left out was taken as deleted.
    eventually("every watcher watching again after a good listing", || s.open_watches() >= 5).await;
    let st = fleet::quiet_window(&s, 3).await;
    fleet::assert_quiet(&st, 0);
    for name in ["a", "b", "c"] {
        assert_eq!(mirrored_in(&s, name), ["app1", "app2", "app3"], "{name}");
        assert!(status(&s, "default", name).starts_with("synced:3,failed:0"), "{name}");
    }
    assert!(s.get_object("v1", "Secret", Some("app1"), "intruder").is_none(), "nothing built from a foreign kind");
    assert_eq!(c.stop().await, Exit::Clean);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_watch_lines_and_huge_lines_are_survived() {
    let s = server().await;
    s.create_object(canary_source()).unwrap();
    let c = harness::start(&s, "admin", fleet::options(false)).await;
    healthy_converges(&s).await;
    let intruder = json!({"type": "ADDED", "object": {"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "intruder",
        "namespace": "default", "uid": "u-intruder", "resourceVersion": "999999",
        "labels": {fleet::ENABLED: "true"}, "annotations": {fleet::SYNC: "true", TARGETS: "app3"}}}});
    let mut huge = vec![b'{'; kubemirror::client::MAX_LINE + 1024];
    huge.push(b'\n');
    let rounds: Vec<Vec<hyper::body::Bytes>> = vec![
        vec![format!("{intruder}\n").into()],
        vec!["{\"type\":\"MODIFIED\",\"object\":{\"metadata\":[1,2]}}\n{\"type\":\"ADDED\"}\n".into()],
        vec![huge.into()],
        vec!["\u{0}\u{ff}\n".into(), "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":500}}\n".into()],
    ];
    for frames in rounds {
        s.inject_watch(Matcher::new(Some("watch"), Some("secrets")), 2, frames);
        s.close_watches();
        eventually("the garbage delivered", || s.pending_faults() == 0).await;
    }
    // Still working: a new source is mirrored, the intruder never was.
    s.create_object(secret("default", "late", json!({TARGETS: "app3"}))).unwrap();
    eventually("a source created after the garbage mirrored", || mirrored_in(&s, "late") == ["app3"]).await;
    assert!(s.get_object("v1", "Secret", Some("app3"), "intruder").is_none(), "nothing built from a foreign kind");
    healthy_converges(&s).await;
    assert_eq!(c.stop().await, Exit::Clean);
}
