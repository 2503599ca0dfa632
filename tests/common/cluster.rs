//! The in-memory cluster the controller's integration tests run against: the server (a fixed seed,
//! the test's namespaces, fast bookmarks), a client as one of its users, the objects the tests
//! create (opted-in sources, a CRD, the manifests under examples/) and what the tests read back:
//! which namespaces hold a mirror. One copy, so every suite means the same by "a source" and by
//! "mirrored in". Included with `#[path = "common/cluster.rs"] mod cluster;` (needs
//! `common/wait.rs` as `wait`).

// Each test crate compiles its own copy and uses only what it needs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use kubemirror::client::{Client, ClientOptions, LoadOptions};
use kubemirror::testkit::{ApiServer, Rule, ServerOptions, User};
use serde_json::{Value, json};

pub const ANN_SYNC: &str = "kubemirror.raczylo.com/sync";
pub const ANN_TARGETS: &str = "kubemirror.raczylo.com/target-namespaces";
pub const ANN_STATUS: &str = "kubemirror.raczylo.com/sync-status";
pub const LABEL_ENABLED: &str = "kubemirror.raczylo.com/enabled";

/// A server with `seed` (reproducible uids), exactly `namespaces`, `users`, and a bookmark every
/// 200 ms: the quiet-window checks count bookmark rounds, so a round must be short.
pub async fn server(seed: u64, namespaces: &[&str], users: Vec<User>) -> ApiServer {
    ApiServer::start(ServerOptions {
        seed: Some(seed),
        users,
        namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
        bookmark_interval: Duration::from_millis(200),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// A user allowed everything, with a kubeconfig of its own (a second controller instance).
pub fn user(name: &str) -> User {
    User { name: name.into(), token: format!("{name}-token"), rules: vec![Rule::all()] }
}

/// Our client as `user`, unthrottled: the tests measure the controller's requests, not a limiter.
pub async fn client(s: &ApiServer, user: &str) -> Client {
    client_from(s.kubeconfig_path(user)).await
}

/// The same from a kubeconfig path, for a task that outlives the borrow of the server.
pub async fn client_from(kubeconfig: PathBuf) -> Client {
    let load = LoadOptions { kubeconfig: Some(kubeconfig), context: None };
    Client::from_options(&load, ClientOptions { qps: 0.0, ..Default::default() }).await.unwrap()
}

/// A v1 source of `kind` in `ns`, opted in and sent to `targets`, with `data`.
pub fn source(kind: &str, ns: &str, name: &str, targets: &str, data: Value) -> Value {
    let mut o = json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": ns,
        "labels": {LABEL_ENABLED: "true"},
        "annotations": {ANN_SYNC: "true", ANN_TARGETS: targets}}});
    o["data"] = data;
    o
}

/// A Secret source with one password.
pub fn secret(ns: &str, name: &str, targets: &str) -> Value {
    source("Secret", ns, name, targets, json!({"password": "czNjcjN0"}))
}

/// The CRD of `Widget.v1.example.com`, a namespaced custom type with any content.
pub fn widget_crd() -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}})
}

/// The namespaces holding a mirror (our `mirror=true` label) named `name`, sorted.
pub fn mirrored_in(s: &ApiServer, api_version: &str, kind: &str, name: &str) -> Vec<String> {
    let mut out: Vec<String> = s
        .list_objects(api_version, kind, None)
        .into_iter()
        .filter(|o| {
            o.pointer("/metadata/labels/kubemirror.raczylo.com~1mirror").and_then(Value::as_str) == Some("true")
        })
        .filter(|o| o.pointer("/metadata/name").and_then(Value::as_str) == Some(name))
        .filter_map(|o| o.pointer("/metadata/namespace").and_then(Value::as_str).map(String::from))
        .collect();
    out.sort();
    out
}

/// Waits until `name` is mirrored in exactly `want` (sorted), no more, no fewer.
pub async fn wait_mirrors(s: &ApiServer, api_version: &str, kind: &str, name: &str, want: &[&str]) {
    crate::wait::eventually(&format!("{kind} {name} mirrored exactly in {want:?}"), || {
        mirrored_in(s, api_version, kind, name) == want
    })
    .await;
}

// ---- examples/ ----

pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// Every examples/*.yaml, in file-name order, as one YAML stream.
pub fn all_examples() -> String {
    let mut files: Vec<_> = std::fs::read_dir(examples_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files.iter().map(|f| std::fs::read_to_string(f).unwrap() + "\n---\n").collect()
}

/// The named examples, in this order, as one YAML stream.
pub fn examples(names: &[&str]) -> String {
    names.iter().map(|f| std::fs::read_to_string(examples_dir().join(f)).unwrap() + "\n---\n").collect()
}

/// The namespaces examples/namespaces.yaml creates (where `target-namespaces: all` lands).
pub const EXAMPLE_NAMESPACES: [&str; 10] = [
    "app-frontend",
    "app1",
    "app2",
    "app3",
    "dev-web",
    "eu-staging",
    "external-secrets",
    "preprod-web",
    "prod-api",
    "prod-web",
];

/// Where each example source is mirrored once the controller, watching every type, has converged
/// on [`all_examples`]: (apiVersion, kind, name, namespaces).
pub const EXAMPLE_MIRRORS: [(&str, &str, &str, &[&str]); 10] = [
    ("v1", "ConfigMap", "cluster-ca-bundle", &EXAMPLE_NAMESPACES),
    ("v1", "ConfigMap", "shared-config", &["app-frontend", "prod-api", "prod-web"]),
    ("v1", "Secret", "database-credentials", &["app1", "app2", "app3"]),
    ("v1", "Secret", "wildcard-tls", &["app-frontend", "prod-api"]),
    (
        "v1",
        "Secret",
        "multi-registry-secret",
        &[
            "app-frontend",
            "app1",
            "app2",
            "app3",
            "default",
            "dev-web",
            "eu-staging",
            "preprod-web",
            "prod-api",
            "prod-web",
        ],
    ),
    ("traefik.io/v1alpha1", "Middleware", "compression", &["app-frontend"]),
    // The transform examples (their exact output is checked in tests/transform.rs).
    ("v1", "ConfigMap", "app-config", &["dev-web", "prod-api", "prod-web"]),
    ("v1", "ConfigMap", "graphql-config", &["dev-web", "eu-staging", "preprod-web", "prod-web"]),
    ("v1", "Secret", "app-credentials", &["app1", "app2", "app3"]),
    ("apps/v1", "Deployment", "web", &["app-frontend", "prod-api"]),
];

/// Read-modify-write of one object as a user's `kubectl edit` would do it: the controller patches
/// sources (finalizer, sync-status) concurrently, so a 409 means "read again and re-apply `f`",
/// never a failed test. Any other error fails.
pub fn edit(s: &ApiServer, api_version: &str, kind: &str, ns: Option<&str>, name: &str, f: impl Fn(&mut Value)) {
    for _ in 0..100 {
        let Some(mut o) = s.get_object(api_version, kind, ns, name) else { panic!("{kind} {name} not found") };
        f(&mut o);
        match s.update_object(o) {
            Ok(_) => return,
            Err(e) if e.code == 409 => continue,
            Err(e) => panic!("updating {kind} {name}: {e:?}"),
        }
    }
    panic!("{kind} {name}: 100 conflicts in a row");
}
