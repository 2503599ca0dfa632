//! Our client against the in-memory API server: the wire behaviours the controller relies on, each
//! checked through the real client (tests/apiserver.rs checks the same server with raw HTTPS).

#[path = "common/wait.rs"]
mod wait;

use std::time::Duration;

use kubemirror::client::{
    ApiResource, Client, ClientOptions, DeleteParams, ListParams, LoadOptions, Patch, PatchParams, PostParams,
    RetryPolicy, WatchEvent, WatchParams, WatchStream,
};
use kubemirror::testkit::{ApiServer, Matcher, Rule, ServerOptions, User};
use serde_json::{Value, json};
use wait::eventually_async;

async fn server(opts: ServerOptions) -> ApiServer {
    ApiServer::start(opts).await.unwrap()
}

async fn client_for(server: &ApiServer, user: &str, opts: ClientOptions) -> Client {
    let load = LoadOptions { kubeconfig: Some(server.kubeconfig_path(user)), context: None };
    Client::from_options(&load, opts).await.unwrap()
}

async fn setup() -> (ApiServer, Client) {
    let s = server(ServerOptions { seed: Some(7), ..Default::default() }).await;
    let c = client_for(&s, "admin", ClientOptions::default()).await;
    (s, c)
}

fn cm(ns: &str, name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": data})
}

async fn mk_ns(c: &Client, name: &str) {
    let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    c.create(&ApiResource::namespaces(), None, &obj, &PostParams::default()).await.unwrap();
}

fn rv(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap()
}

fn name(v: &Value) -> &str {
    v["metadata"]["name"].as_str().unwrap()
}

async fn next_event(w: &mut WatchStream) -> WatchEvent {
    tokio::time::timeout(Duration::from_secs(10), w.next()).await.expect("an event within 10 s").expect("open").unwrap()
}

#[tokio::test]
async fn crud_with_optimistic_concurrency_and_monotonic_versions() {
    let (_s, c) = setup().await;
    let cms = ApiResource::configmaps();
    mk_ns(&c, "a").await;
    let created = c.create(&cms, Some("a"), &cm("a", "x", json!({"k": "1"})), &PostParams::default()).await.unwrap();
    assert!(created["metadata"]["uid"].is_string() && created["metadata"]["creationTimestamp"].is_string());
    let e = c.create(&cms, Some("a"), &cm("a", "x", json!({})), &PostParams::default()).await.unwrap_err();
    assert!(e.is_already_exists(), "{e}");

    let mut upd = created.clone();
    upd["data"]["k"] = json!("2");
    let updated = c.update(&cms, Some("a"), "x", &upd, &PostParams::default()).await.unwrap();
    assert!(rv(&updated) > rv(&created));
    let e = c.update(&cms, Some("a"), "x", &upd, &PostParams::default()).await.unwrap_err();
    assert!(e.is_conflict(), "stale resourceVersion must be a 409: {e}");

    let merged = c
        .patch(&cms, Some("a"), "x", &Patch::Merge(json!({"data": {"j": "3"}})), &PatchParams::default())
        .await
        .unwrap();
    assert_eq!(merged["data"], json!({"k": "2", "j": "3"}));
    let jp = json!([{"op": "remove", "path": "/data/k"}, {"op": "add", "path": "/data/z", "value": "9"}]);
    let patched = c.patch(&cms, Some("a"), "x", &Patch::Json(jp), &PatchParams::default()).await.unwrap();
    assert_eq!(patched["data"], json!({"j": "3", "z": "9"}));
    assert!(rv(&patched) > rv(&merged));

    assert!(c.get(&cms, Some("a"), "missing").await.unwrap_err().is_not_found());
    assert_eq!(c.delete(&cms, Some("a"), "x", &DeleteParams::default()).await.unwrap(), None);
    assert!(c.get(&cms, Some("a"), "x").await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn dry_run_generate_name_and_invalid_names() {
    let (_s, c) = setup().await;
    let cms = ApiResource::configmaps();
    mk_ns(&c, "a").await;
    let dry = PostParams { dry_run: true, ..Default::default() };
    c.create(&cms, Some("a"), &cm("a", "dry", json!({})), &dry).await.unwrap();
    assert!(c.get(&cms, Some("a"), "dry").await.unwrap_err().is_not_found(), "dryRun must store nothing");

    let generated =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-", "namespace": "a"}});
    let made = c.create(&cms, Some("a"), &generated, &PostParams::default()).await.unwrap();
    assert!(name(&made).starts_with("gen-") && name(&made).len() > 4);

    let e = c.create(&cms, Some("a"), &cm("a", "Not_Valid", json!({})), &PostParams::default()).await.unwrap_err();
    assert!(e.is_invalid(), "{e}");
    assert_eq!(e.code(), Some(422));
}

#[tokio::test]
async fn finalizers_hold_deletion_and_preconditions_protect_it() {
    let (_s, c) = setup().await;
    let cms = ApiResource::configmaps();
    mk_ns(&c, "a").await;
    let mut obj = cm("a", "f", json!({}));
    obj["metadata"]["finalizers"] = json!(["example.com/hold"]);
    let created = c.create(&cms, Some("a"), &obj, &PostParams::default()).await.unwrap();

    let wrong = DeleteParams { precondition_uid: Some("nope".into()), ..Default::default() };
    assert!(c.delete(&cms, Some("a"), "f", &wrong).await.unwrap_err().is_conflict());
    let stale = DeleteParams { precondition_resource_version: Some("1".into()), ..Default::default() };
    assert!(c.delete(&cms, Some("a"), "f", &stale).await.unwrap_err().is_conflict());

    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    let right = DeleteParams { precondition_uid: Some(uid), ..Default::default() };
    let held = c.delete(&cms, Some("a"), "f", &right).await.unwrap().expect("held by its finalizer");
    assert!(held["metadata"]["deletionTimestamp"].is_string());
    assert!(c.get(&cms, Some("a"), "f").await.is_ok(), "still there while the finalizer is set");
    let release = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    c.patch(&cms, Some("a"), "f", &release, &PatchParams::default()).await.unwrap();
    assert!(c.get(&cms, Some("a"), "f").await.unwrap_err().is_not_found());
}

#[tokio::test]
async fn selectors_pagination_and_metadata_only() {
    let (s, c) = setup().await;
    let cms = ApiResource::configmaps();
    mk_ns(&c, "a").await;
    mk_ns(&c, "b").await;
    for i in 0..25 {
        let mut o = cm("a", &format!("cm-{i:02}"), json!({"big": "x".repeat(100)}));
        let tier = if i % 5 == 0 { "gold" } else { "plain" };
        o["metadata"]["labels"] = json!({"parity": if i % 2 == 0 { "even" } else { "odd" }, "tier": tier});
        c.create(&cms, Some("a"), &o, &PostParams::default()).await.unwrap();
    }
    c.create(&cms, Some("b"), &cm("b", "cm-00", json!({})), &PostParams::default()).await.unwrap();
    let count = async |sel: &str| {
        let p = ListParams { label_selector: Some(sel.into()), ..Default::default() };
        c.list(&cms, Some("a"), &p).await.unwrap().items.len()
    };
    assert_eq!(count("parity=even").await, 13);
    assert_eq!(count("parity==odd").await, 12);
    assert_eq!(count("parity!=odd").await, 13);
    assert_eq!(count("tier in (gold,silver)").await, 5);
    assert_eq!(count("tier notin (gold)").await, 20);
    assert_eq!(count("tier").await, 25);
    assert_eq!(count("!tier").await, 0);
    assert!(
        c.list(&cms, None, &ListParams { label_selector: Some("a in (".into()), ..Default::default() }).await.is_err()
    );

    let by_field = ListParams { field_selector: Some("metadata.name=cm-00".into()), ..Default::default() };
    assert_eq!(c.list(&cms, None, &by_field).await.unwrap().items.len(), 2);
    let ns_field = ListParams { field_selector: Some("metadata.namespace=b".into()), ..Default::default() };
    assert_eq!(c.list(&cms, None, &ns_field).await.unwrap().items.len(), 1);

    // Pages of 5 over the selected 13, each page carrying a continue token but the last.
    let mut names = Vec::new();
    let mut p = ListParams { label_selector: Some("parity=even".into()), limit: Some(5), ..Default::default() };
    let mut pages = 0;
    loop {
        let page = c.list(&cms, Some("a"), &p).await.unwrap();
        pages += 1;
        names.extend(page.items.iter().map(|o| name(&o.to_value()).to_string()));
        match page.continue_token {
            Some(t) => p.continue_token = Some(t),
            None => break,
        }
    }
    assert_eq!((names.len(), pages), (13, 3));

    // A continue token whose snapshot was compacted away is 410 Expired.
    let first = c.list(&cms, Some("a"), &ListParams { limit: Some(5), ..Default::default() }).await.unwrap();
    c.create(&cms, Some("a"), &cm("a", "later", json!({})), &PostParams::default()).await.unwrap();
    s.compact();
    let resume = ListParams { limit: Some(5), continue_token: first.continue_token, ..Default::default() };
    assert!(c.list(&cms, Some("a"), &resume).await.unwrap_err().is_gone());

    let meta = c.list(&cms, Some("a"), &ListParams { metadata_only: true, ..Default::default() }).await.unwrap();
    assert_eq!(meta.items.len(), 26);
    let meta: Vec<Value> = meta.items.iter().map(|o| o.to_value()).collect();
    assert!(meta.iter().all(|o| o.get("data").is_none()));
    assert!(meta.iter().filter(|o| name(o).starts_with("cm-")).all(|o| o["metadata"]["labels"].is_object()));
    let one = c.get_metadata(&cms, Some("a"), "cm-01").await.unwrap();
    assert_eq!(one["kind"], "PartialObjectMetadata");
    assert!(one.get("data").is_none());
}

#[tokio::test]
async fn watch_resume_bookmarks_selectors_and_410() {
    let s = server(ServerOptions { bookmark_interval: Duration::from_millis(200), ..Default::default() }).await;
    let c = client_for(&s, "admin", ClientOptions::default()).await;
    let cms = ApiResource::configmaps();
    mk_ns(&c, "a").await;
    let list = c.list(&cms, Some("a"), &ListParams::default()).await.unwrap();
    c.create(&cms, Some("a"), &cm("a", "one", json!({})), &PostParams::default()).await.unwrap();

    // Resuming from the list's resourceVersion replays what happened since.
    let wp = WatchParams {
        resource_version: Some(list.resource_version.clone()),
        label_selector: Some("pick=yes".into()),
        allow_bookmarks: true,
        ..Default::default()
    };
    let mut w = c.watch(&cms, Some("a"), &wp).await.unwrap();
    let picked = async |v: &str| {
        let p = Patch::Merge(json!({"metadata": {"labels": {"pick": v}}}));
        c.patch(&cms, Some("a"), "one", &p, &PatchParams::default()).await.unwrap();
    };
    picked("yes").await;
    // Entering the selector is ADDED, leaving it is DELETED, as the real watch cache reports them.
    let mut seen = Vec::new();
    let mut bookmark_rv = None;
    while seen.len() < 2 || bookmark_rv.is_none() {
        match next_event(&mut w).await {
            WatchEvent::Added(o) => {
                seen.push(("ADDED", name(&o).to_string()));
                picked("no").await;
            }
            WatchEvent::Deleted(o) => seen.push(("DELETED", name(&o).to_string())),
            WatchEvent::Bookmark { resource_version, .. } => bookmark_rv = Some(resource_version),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, vec![("ADDED", "one".to_string()), ("DELETED", "one".to_string())]);
    assert!(bookmark_rv.unwrap().parse::<u64>().unwrap() >= list.resource_version.parse::<u64>().unwrap());

    // Once the history is compacted the same resume point is gone: an ERROR event with a 410.
    s.compact();
    let mut w = c
        .watch(&cms, Some("a"), &WatchParams { resource_version: Some(list.resource_version), ..Default::default() })
        .await
        .unwrap();
    match next_event(&mut w).await {
        WatchEvent::Error(st) => assert_eq!(st.code, 410),
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }

    // timeoutSeconds is honoured: the server ends the stream, which is a normal end (None).
    let mut w =
        c.watch(&cms, Some("a"), &WatchParams { timeout_seconds: Some(1), ..Default::default() }).await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(ev) = w.next().await {
            ev.unwrap();
        }
    })
    .await;
    assert!(ended.is_ok(), "the server must close a watch after timeoutSeconds");
}

#[tokio::test]
async fn watch_list_streams_state_then_the_initial_events_end_bookmark() {
    let s = server(ServerOptions { seed: Some(7), minor_version: 34, ..Default::default() }).await;
    let c = client_for(&s, "admin", ClientOptions::default()).await;
    let cms = ApiResource::configmaps();
    mk_ns(&c, "a").await;
    for n in ["p", "q"] {
        c.create(&cms, Some("a"), &cm("a", n, json!({})), &PostParams::default()).await.unwrap();
    }
    let wp =
        WatchParams { send_initial_events: true, allow_bookmarks: true, metadata_only: true, ..Default::default() };
    let mut w = c.watch(&cms, Some("a"), &wp).await.unwrap();
    let mut names = Vec::new();
    loop {
        match next_event(&mut w).await {
            WatchEvent::Added(o) => {
                assert_eq!(o["kind"], "PartialObjectMetadata");
                names.push(name(&o).to_string());
            }
            WatchEvent::Bookmark { initial_events_end: true, .. } => break,
            WatchEvent::Bookmark { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    names.sort();
    assert_eq!(names, ["p", "q"]);
}

#[tokio::test]
async fn server_side_apply_conflicts_and_force() {
    let (_s, c) = setup().await;
    let cms = ApiResource::configmaps();
    mk_ns(&c, "a").await;
    let apply = |v: &str| Patch::Apply(cm("a", "ssa", json!({"k": v})));
    let by = |m: &str, force: bool| PatchParams { field_manager: Some(m.into()), force, ..Default::default() };
    c.patch(&cms, Some("a"), "ssa", &apply("1"), &by("alice", false)).await.unwrap();
    let e = c.patch(&cms, Some("a"), "ssa", &apply("2"), &by("bob", false)).await.unwrap_err();
    assert!(e.is_conflict(), "another manager's field is a 409: {e}");
    let won = c.patch(&cms, Some("a"), "ssa", &apply("2"), &by("bob", true)).await.unwrap();
    assert_eq!(won["data"]["k"], "2");
}

#[tokio::test]
async fn namespace_termination_and_missing_namespaces() {
    let (s, c) = setup().await;
    let cms = ApiResource::configmaps();
    mk_ns(&c, "doomed").await;
    let mut held = cm("doomed", "held", json!({}));
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    c.create(&cms, Some("doomed"), &held, &PostParams::default()).await.unwrap();
    c.delete(&ApiResource::namespaces(), None, "doomed", &DeleteParams::default()).await.unwrap();

    let ns = c.get(&ApiResource::namespaces(), None, "doomed").await.unwrap();
    assert_eq!(ns["status"]["phase"], "Terminating");
    let e = c.create(&cms, Some("doomed"), &cm("doomed", "new", json!({})), &PostParams::default()).await.unwrap_err();
    assert!(e.is_forbidden() && e.to_string().contains("being terminated"), "{e}");

    let release = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    c.patch(&cms, Some("doomed"), "held", &release, &PatchParams::default()).await.unwrap();
    eventually_async("the namespace to disappear", async || {
        c.get(&ApiResource::namespaces(), None, "doomed").await.is_err_and(|e| e.is_not_found())
    })
    .await;
    let e = c.create(&cms, Some("nowhere"), &cm("nowhere", "x", json!({})), &PostParams::default()).await.unwrap_err();
    assert!(e.is_not_found() && e.to_string().contains("namespaces \"nowhere\" not found"), "{e}");
    assert!(s.get_object("v1", "Namespace", None, "doomed").is_none());
}

#[tokio::test]
async fn authentication_and_authorization_errors_are_typed() {
    let viewer = User {
        name: "viewer".into(),
        token: "viewer-token".into(),
        rules: vec![Rule::new(&["get", "list"], &[""], &["configmaps"]).in_namespaces(&["a"])],
    };
    let s = server(ServerOptions { users: vec![User::admin(), viewer], ..Default::default() }).await;
    let admin = client_for(&s, "admin", ClientOptions::default()).await;
    mk_ns(&admin, "a").await;
    let c = client_for(&s, "viewer", ClientOptions::default()).await;
    c.list(&ApiResource::configmaps(), Some("a"), &ListParams::default()).await.unwrap();
    let e = c.list(&ApiResource::secrets(), Some("a"), &ListParams::default()).await.unwrap_err();
    assert!(e.is_forbidden() && e.to_string().contains("viewer"), "{e}");
    let e = c.list(&ApiResource::configmaps(), Some("b"), &ListParams::default()).await.unwrap_err();
    assert!(e.is_forbidden(), "{e}");

    // A revoked token is a typed 401 (the token file is re-read once, then the error surfaces).
    s.set_token("viewer", "rotated-elsewhere").unwrap();
    std::fs::write(s.token_path("viewer"), "stale").unwrap();
    let stale = Client::new(
        {
            let mut cfg = kubemirror::client::Config::load(&LoadOptions {
                kubeconfig: Some(s.kubeconfig_path("admin")),
                context: None,
            })
            .unwrap();
            cfg.auth = kubemirror::client::Auth::Token("wrong".into());
            cfg
        },
        ClientOptions::default(),
    )
    .unwrap();
    let e = stale.list(&ApiResource::configmaps(), Some("a"), &ListParams::default()).await.unwrap_err();
    assert!(e.is_unauthorized(), "{e}");
}

#[tokio::test]
async fn injected_faults_retries_and_accounting() {
    let (s, c) = setup().await;
    let cms = ApiResource::configmaps();
    mk_ns(&c, "a").await;
    s.reset_stats();

    // 429 with Retry-After is retried for reads and writes alike: the server did not process it.
    s.fail_next(Matcher::new(Some("list"), Some("configmaps")), 1, 429, Some(1));
    c.list(&cms, Some("a"), &ListParams::default()).await.unwrap();
    s.fail_next(Matcher::new(Some("create"), Some("configmaps")), 1, 429, Some(1));
    c.create(&cms, Some("a"), &cm("a", "after-429", json!({})), &PostParams::default()).await.unwrap();

    // A 500 on a read is retried; on a write it is not (it may have been applied).
    s.fail_next(Matcher::new(Some("get"), Some("configmaps")), 1, 500, None);
    c.get(&cms, Some("a"), "after-429").await.unwrap();
    s.fail_next(Matcher::new(Some("create"), Some("configmaps")), 1, 500, None);
    let e = c.create(&cms, Some("a"), &cm("a", "after-500", json!({})), &PostParams::default()).await.unwrap_err();
    assert_eq!(e.code(), Some(500));

    let stats = s.stats();
    assert_eq!(stats.count("list", "configmaps"), 2);
    assert_eq!(stats.count("create", "configmaps"), 3);
    assert_eq!(stats.count("get", "configmaps"), 2);
    // The client's own count also includes the namespace it created.
    assert_eq!(c.request_counts().get("create"), Some(&4));
    s.reset_stats();
    assert_eq!(s.stats().total(), 0);
}

#[tokio::test]
async fn partitions_time_out_and_restarts_are_survived() {
    let s = server(ServerOptions::default()).await;
    let opts = ClientOptions {
        request_timeout: Duration::from_millis(300),
        retry: RetryPolicy { max_retries: 0, ..Default::default() },
        ..Default::default()
    };
    let c = client_for(&s, "admin", opts).await;
    let cms = ApiResource::configmaps();
    s.hang(Matcher::new(Some("list"), Some("configmaps")));
    let e = c.list(&cms, None, &ListParams::default()).await.unwrap_err();
    assert!(e.is_retryable(), "a hung request is a retryable timeout: {e}");
    s.release();
    c.list(&cms, None, &ListParams::default()).await.unwrap();

    // A watch open across a restart ends (with an error or a normal close); the data survives.
    mk_ns(&c, "a").await;
    let mut w = c.watch(&cms, Some("a"), &WatchParams::default()).await.unwrap();
    s.restart();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match w.next().await {
                None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "a restart must end open watches");
    eventually_async("the client to reconnect", async || c.get(&ApiResource::namespaces(), None, "a").await.is_ok())
        .await;
}

#[tokio::test]
async fn crds_become_servable_and_discoverable() {
    let (_s, c) = setup().await;
    mk_ns(&c, "a").await;
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "middlewares.traefik.io"},
        "spec": {"group": "traefik.io", "scope": "Namespaced",
            "names": {"plural": "middlewares", "singular": "middleware", "kind": "Middleware", "listKind": "MiddlewareList"},
            "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    });
    c.create(&ApiResource::crds(), None, &crd, &PostParams::default()).await.unwrap();
    let doc = c.get_path("/apis/traefik.io/v1alpha1").await.unwrap();
    assert_eq!(doc["resources"][0]["kind"], "Middleware");
    let mw = ApiResource::new("traefik.io", "v1alpha1", "Middleware", "middlewares", true);
    let obj = json!({"apiVersion": "traefik.io/v1alpha1", "kind": "Middleware",
        "metadata": {"name": "compress", "namespace": "a"}, "spec": {"compress": {}}});
    let made = c.create(&mw, Some("a"), &obj, &PostParams::default()).await.unwrap();
    assert_eq!(made["metadata"]["generation"], 1);
    let mut changed = made.clone();
    changed["spec"]["compress"] = json!({"minResponseBodyBytes": 1024});
    let updated = c.update(&mw, Some("a"), "compress", &changed, &PostParams::default()).await.unwrap();
    assert_eq!(updated["metadata"]["generation"], 2, "spec changes bump generation on custom resources");

    c.delete(&ApiResource::crds(), None, "middlewares.traefik.io", &DeleteParams::default()).await.unwrap();
    eventually_async("the CRD to leave discovery", async || c.get_path("/apis/traefik.io/v1alpha1").await.is_err())
        .await;
}

#[tokio::test]
async fn leases_keep_micro_time_and_events_are_plain_objects() {
    let (_s, c) = setup().await;
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "leader", "namespace": "default"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15,
                 "renewTime": "2026-11-24T10:00:00.123456Z", "leaseTransitions": 0}});
    let made = c.create(&ApiResource::leases(), Some("default"), &lease, &PostParams::default()).await.unwrap();
    assert_eq!(made["spec"]["renewTime"], "2026-11-24T10:00:00.123456Z");
    let ev = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1", "namespace": "default"},
        "involvedObject": {"kind": "Lease", "name": "leader", "namespace": "default"}, "reason": "Test", "message": "m"});
    c.create(&ApiResource::events(), Some("default"), &ev, &PostParams::default()).await.unwrap();
    let p = Patch::Merge(json!({"count": 2}));
    assert_eq!(
        c.patch(&ApiResource::events(), Some("default"), "e1", &p, &PatchParams::default()).await.unwrap()["count"],
        2
    );
}
