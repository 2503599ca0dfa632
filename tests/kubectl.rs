//! The real `kubectl` against the in-memory API server: the check that it behaves like a cluster.
//! kubectl is `$KUBECTL`, else the one on PATH (`.ci/run` installs 1.32 with tests/tools/install).
//! Where it is missing the tests skip with a message, except under `CI=true`, where they fail: a
//! missing tool must never turn into a green run.
#![cfg(feature = "testkit")]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use kubemirror::testkit::{ApiServer, ServerOptions};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn kubectl_path() -> PathBuf {
    PathBuf::from(std::env::var_os("KUBECTL").unwrap_or_else(|| "kubectl".into()))
}

fn kubectl_available() -> bool {
    let ok = std::process::Command::new(kubectl_path())
        .args(["version", "--client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(
        ok || !ci,
        "kubectl ({}) is missing and CI=true: install it (tests/tools/install)",
        kubectl_path().display()
    );
    if !ok {
        eprintln!("SKIPPED: kubectl is not installed on this machine; the kubectl compatibility tests did not run");
    }
    ok
}

struct Kubectl {
    kubeconfig: PathBuf,
    home: PathBuf,
}

impl Kubectl {
    fn new(server: &ApiServer) -> Self {
        // A private HOME keeps kubectl's discovery cache per test server.
        let home = server.dir().join("home");
        std::fs::create_dir_all(&home).unwrap();
        Kubectl { kubeconfig: server.kubeconfig_path("admin"), home }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(kubectl_path());
        c.arg("--kubeconfig").arg(&self.kubeconfig).args(args).env("HOME", &self.home).kill_on_drop(true);
        c
    }

    /// Runs kubectl; panics with its output unless it succeeds. Returns stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let out = tokio::time::timeout(Duration::from_secs(60), self.cmd(args).output()).await.unwrap().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "kubectl {args:?} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        stdout
    }

    /// Runs kubectl expecting failure; returns stderr.
    async fn fails(&self, args: &[&str]) -> String {
        let out = tokio::time::timeout(Duration::from_secs(60), self.cmd(args).output()).await.unwrap().unwrap();
        assert!(!out.status.success(), "kubectl {args:?} unexpectedly succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\n  namespace: kc\ndata:\n  a: \"1\"\n";

async fn setup() -> Option<(ApiServer, Kubectl)> {
    if !kubectl_available() {
        return None;
    }
    let s = ApiServer::start(ServerOptions { seed: Some(3), ..Default::default() }).await.unwrap();
    s.create_object(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kc"}})).unwrap();
    let k = Kubectl::new(&s);
    Some((s, k))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_resources_and_discovery() {
    let Some((s, k)) = setup().await else { return };
    let out = k.ok(&["api-resources"]).await;
    for needle in ["secrets", "configmaps", "namespaces", "leases", "customresourcedefinitions", "deployments"] {
        assert!(out.contains(needle), "{needle} missing from:\n{out}");
    }
    assert_eq!(k.ok(&["auth", "can-i", "list", "secrets"]).await.trim(), "yes");
    // The client-certificate kubeconfig works as well.
    let by_cert = Kubectl { kubeconfig: s.kubeconfig_cert_path("admin"), home: k.home.clone() };
    assert!(by_cert.ok(&["get", "namespaces", "-o", "name"]).await.contains("namespace/kc"));
    let v = k.ok(&["version", "-o", "json"]).await;
    assert!(v.contains("\"gitVersion\": \"v1.31.0\""), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_apply_and_server_side_apply() {
    let Some((s, k)) = setup().await else { return };
    let f = write(s.dir(), "cm.yaml", CM);
    assert!(k.ok(&["create", "-f", &f]).await.contains("configmap/app created"));
    assert!(k.fails(&["create", "-f", &f]).await.contains("AlreadyExists"));
    let f2 = write(s.dir(), "cm2.yaml", &CM.replace("\"1\"", "\"2\""));
    assert!(k.ok(&["apply", "-f", &f2]).await.contains("configmap/app configured"));
    let got = s.get_object("v1", "ConfigMap", Some("kc"), "app").unwrap();
    assert_eq!(got["data"]["a"], "2");
    assert!(got["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"].is_string());
    // Server-side apply: a conflict with the client-side applier, then forced.
    let f3 = write(s.dir(), "cm3.yaml", &CM.replace("\"1\"", "\"3\""));
    let err = k.fails(&["apply", "--server-side", "-f", &f3]).await;
    assert!(
        err.contains("Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using v1: .data.a"),
        "{err}"
    );
    assert!(k.ok(&["apply", "--server-side", "--force-conflicts", "-f", &f3]).await.contains("serverside-applied"));
    assert_eq!(s.get_object("v1", "ConfigMap", Some("kc"), "app").unwrap()["data"]["a"], "3");
    // Creating a CRD and one of its objects with apply.
    let crd = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: middlewares.traefik.io\nspec:\n  group: traefik.io\n  scope: Namespaced\n  names:\n    kind: Middleware\n    plural: middlewares\n    singular: middleware\n  versions:\n  - name: v1alpha1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        x-kubernetes-preserve-unknown-fields: true\n";
    k.ok(&["apply", "-f", &write(s.dir(), "crd.yaml", crd)]).await;
    let mw = "apiVersion: traefik.io/v1alpha1\nkind: Middleware\nmetadata:\n  name: compress\n  namespace: kc\nspec:\n  compress: {}\n";
    k.ok(&["apply", "--server-side", "-f", &write(s.dir(), "mw.yaml", mw)]).await;
    assert!(k.ok(&["get", "middlewares", "-n", "kc"]).await.contains("compress"));
    // Client-side apply of a custom resource goes through a JSON merge patch.
    let mw2 =
        mw.replace("name: compress", "name: strip").replace("compress: {}", "stripPrefix:\n    prefixes: [\"/a\"]");
    let f = write(s.dir(), "mw2.yaml", &mw2);
    k.ok(&["apply", "-f", &f]).await;
    let f = write(s.dir(), "mw2.yaml", &mw2.replace("/a", "/b"));
    assert!(k.ok(&["apply", "-f", &f]).await.contains("configured"));
    let got = s.get_object("traefik.io/v1alpha1", "Middleware", Some("kc"), "strip").unwrap();
    assert_eq!(got["spec"]["stripPrefix"]["prefixes"], json!(["/b"]));
    assert_eq!(got["metadata"]["generation"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_in_chunks_label_annotate_delete() {
    let Some((s, k)) = setup().await else { return };
    for i in 0..7 {
        s.create_object(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("c{i}"), "namespace": "kc"}}),
        )
        .unwrap();
    }
    s.reset_stats();
    let out = k.ok(&["get", "configmaps", "-n", "kc", "--chunk-size=2", "-o", "name"]).await;
    let names: Vec<&str> = out.lines().collect();
    assert_eq!(names.len(), 7, "{out}");
    assert!(s.stats().count("list", "configmaps") >= 4, "chunked into pages: {:?}", s.stats());
    k.ok(&["label", "configmap", "c1", "-n", "kc", "team=blue"]).await;
    k.ok(&["annotate", "configmap", "c1", "-n", "kc", "note=hello"]).await;
    let c1 = s.get_object("v1", "ConfigMap", Some("kc"), "c1").unwrap();
    assert_eq!(c1["metadata"]["labels"]["team"], "blue");
    assert_eq!(c1["metadata"]["annotations"]["note"], "hello");
    let sel = k.ok(&["get", "configmaps", "-A", "-l", "team=blue", "-o", "name"]).await;
    assert_eq!(sel.trim(), "configmap/c1");
    assert!(k.ok(&["delete", "configmap", "c1", "-n", "kc"]).await.contains("deleted"));
    assert!(s.get_object("v1", "ConfigMap", Some("kc"), "c1").is_none());
    assert!(k.fails(&["get", "configmap", "c1", "-n", "kc"]).await.contains("configmaps \"c1\" not found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_streams_changes() {
    let Some((s, k)) = setup().await else { return };
    s.create_object(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "first", "namespace": "kc"}}))
        .unwrap();
    let mut child =
        k.cmd(&["get", "configmaps", "-n", "kc", "-w"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let mut created = false;
    while !seen.iter().any(|l: &String| l.starts_with("second")) {
        let left = deadline.saturating_duration_since(Instant::now());
        let line =
            tokio::time::timeout(left, lines.next_line()).await.expect("kubectl get -w printed nothing new").unwrap();
        let Some(line) = line else { break };
        if line.starts_with("first") && !created {
            // The initial listing is out; now a change must stream in.
            s.create_object(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "second", "namespace": "kc"}}),
            )
            .unwrap();
            created = true;
        }
        seen.push(line);
    }
    child.kill().await.unwrap();
    assert!(seen[0].starts_with("NAME"), "{seen:?}");
    assert!(seen.iter().any(|l| l.starts_with("second")), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_deletion_goes_through_terminating() {
    let Some((s, k)) = setup().await else { return };
    s.create_object(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "held", "namespace": "kc", "finalizers": ["example.com/hold"]}}))
        .unwrap();
    k.ok(&["delete", "namespace", "kc", "--wait=false"]).await;
    let phase = k.ok(&["get", "namespace", "kc", "-o", "jsonpath={.status.phase}"]).await;
    assert_eq!(phase, "Terminating");
    let err = k.fails(&["create", "configmap", "late", "-n", "kc"]).await;
    assert!(err.contains("unable to create new content in namespace kc because it is being terminated"), "{err}");
    k.ok(&["patch", "configmap", "held", "-n", "kc", "--type=merge", "-p", r#"{"metadata":{"finalizers":null}}"#])
        .await;
    k.ok(&["wait", "--for=delete", "namespace/kc", "--timeout=20s"]).await;
    assert!(s.get_object("v1", "Namespace", None, "kc").is_none());
}
