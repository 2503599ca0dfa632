//! End to end against a REAL Kubernetes API server: the controller binary with the RBAC of deploy/,
//! the examples under server-side validation, leader election, watch-list and metadata-only
//! watches, as a cluster answers them rather than as our in-memory server (src/testkit) believes.
//!
//! Opt-in twice, because it changes the cluster: `KUBEMIRROR_E2E=1` and `KUBECONFIG` (a cluster
//! admin); without both every test prints why and passes. `tests/real-apiserver/run` starts etcd,
//! kube-apiserver and kube-controller-manager on loopback and runs this file against them; any
//! disposable cluster works too (`KUBEMIRROR_E2E=1 KUBECONFIG=~/.kube/kind cargo test --features
//! testkit --test e2e_cluster -- --nocapture`). kubectl (`$KUBECTL`, else on PATH) applies the
//! manifests, as a user would; when it is missing the tests fail rather than skip.
//!
//! The controller runs as the real binary, with the arguments of deploy/deployment.yaml and a token of
//! the ServiceAccount from deploy/rbac.yaml (TokenRequest API), so a request its RBAC does not allow
//! fails the test: its log must show no RBAC denial (`forbidden: User ...`), and where
//! `KUBEMIRROR_E2E_AUDIT_LOG` names the API server's audit log, no request of that ServiceAccount may
//! have been denied.
//!
//! One test sends the same requests to the real server and to the in-memory one and compares the
//! answers: where they differ, the testkit is wrong.
//!
//! Left on the cluster: the `kubemirror-system` namespace with that RBAC. Removed, also when a test
//! fails: namespaces `kubemirror-e2e-<random>-*`, the examples' namespaces and objects, the CRDs and
//! deploy/rbac-autodiscovery.yaml. The tests share the cluster (one Lease, one ServiceAccount,
//! cluster-wide watches), so they take a lock and run one at a time.

#[path = "common/wait.rs"]
mod wait;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kubemirror::cache::{Cache, Store};
use kubemirror::client::{
    ApiResource, Client, ClientOptions, DeleteParams, ListParams, LoadOptions, Patch, PatchParams, PostParams,
};
use kubemirror::model::{ObjectKey, SourceObject};
use kubemirror::util::rand::Rng;
use kubemirror::watcher::{ClientListWatch, WatchConfig, WatchHealth, Watcher, watch_list_by_default};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{MutexGuard, oneshot};

const ENABLED: &str = "kubemirror.raczylo.com/enabled";
const ANN_SYNC: &str = "kubemirror.raczylo.com/sync";
const ANN_TARGETS: &str = "kubemirror.raczylo.com/target-namespaces";
const ANN_STATUS: &str = "kubemirror.raczylo.com/sync-status";
const ANN_SOURCE_UID: &str = "kubemirror.raczylo.com/source-uid";
const FINALIZER: &str = "kubemirror.raczylo.com/finalizer";
const SYSTEM: &str = "kubemirror-system";
const SERVICE_ACCOUNT: &str = "kubemirror-controller";
const LEASE: &str = "kubemirror-controller-leader";

/// A real cluster sets the pace of some steps (namespace termination by kube-controller-manager), and
/// CI is a loaded 2-core machine: generous, while a healthy run waits a second or two.
const DEADLINE: Duration = Duration::from_secs(90);
/// Each poll is a request to the real server.
const POLL: Duration = Duration::from_millis(100);

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

async fn eventually(what: &str, cond: impl AsyncFnMut() -> bool) {
    wait::eventually_async_within(what, DEADLINE, POLL, cond).await
}

fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    l.local_addr().expect("its address")
}

fn meta_str<'a>(o: &'a Value, field: &str, key: &str) -> Option<&'a str> {
    o.get("metadata")?.get(field)?.get(key)?.as_str()
}

fn has_finalizer(o: &Value) -> bool {
    o.pointer("/metadata/finalizers").and_then(Value::as_array).is_some_and(|f| f.iter().any(|v| v == FINALIZER))
}

fn source(kind: &str, ns: &str, name: &str, targets: &str) -> Value {
    json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": ns,
        "labels": {ENABLED: "true"}, "annotations": {ANN_SYNC: "true", ANN_TARGETS: targets}}})
}

fn resource(kind: &str) -> ApiResource {
    match kind {
        "Secret" => ApiResource::secrets(),
        "ConfigMap" => ApiResource::configmaps(),
        other => panic!("no resource for {other}"),
    }
}

/// The cluster, an admin client and kubectl; what a test created, removed when it ends, even by a panic.
struct Env {
    admin: Client,
    kubeconfig: PathBuf,
    kubectl: PathBuf,
    dir: PathBuf,
    run: String,
    created: Mutex<Created>,
    _serial: MutexGuard<'static, ()>,
}

#[derive(Default)]
struct Created {
    /// kubectl names (`secret/db -n ns`) whose finalizers to clear, in case no controller did.
    finalized: Vec<(String, String)>,
    /// kubectl names of cluster-scoped objects and namespaces, deleted in reverse order.
    objects: Vec<String>,
}

impl Env {
    async fn new() -> Option<Env> {
        let kubeconfig = std::env::var("KUBECONFIG").ok().filter(|k| !k.is_empty());
        let Some(kubeconfig) = kubeconfig.filter(|_| std::env::var("KUBEMIRROR_E2E").as_deref() == Ok("1")) else {
            eprintln!("e2e_cluster: skipped (set KUBEMIRROR_E2E=1 and KUBECONFIG, or use tests/real-apiserver/run)");
            return None;
        };
        let kubectl = PathBuf::from(std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into()));
        let found = std::process::Command::new(&kubectl).args(["version", "--client"]).output();
        assert!(
            found.as_ref().is_ok_and(|o| o.status.success()),
            "e2e_cluster needs kubectl ({}; set KUBECTL or put it on PATH): {found:?}",
            kubectl.display()
        );
        let serial = SERIAL.lock().await;
        let load = LoadOptions { kubeconfig: Some(kubeconfig.clone().into()), context: None };
        let admin = Client::from_options(&load, ClientOptions { qps: 0.0, ..Default::default() })
            .await
            .expect("the admin kubeconfig loads");
        let run = format!("kubemirror-e2e-{}", Rng::from_os().suffix(5));
        let dir = std::env::temp_dir().join(&run);
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let env =
            Env { admin, kubeconfig: kubeconfig.into(), kubectl, dir, run, created: Mutex::default(), _serial: serial };
        // The controller's own namespace, ServiceAccount and RBAC, exactly as deploy/ has them.
        let deploy = repo().join("deploy");
        let (ns, rbac) = (deploy.join("namespace.yaml"), deploy.join("rbac.yaml"));
        env.kubectl_ok(&["apply", "-f", &ns.to_string_lossy(), "-f", &rbac.to_string_lossy()]).await;
        Some(env)
    }

    fn kubectl_cmd(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.kubectl);
        c.arg("--kubeconfig").arg(&self.kubeconfig).args(args).env("HOME", &self.dir).kill_on_drop(true);
        c
    }

    async fn kubectl(&self, args: &[&str]) -> Result<String, String> {
        let out = tokio::time::timeout(Duration::from_secs(120), self.kubectl_cmd(args).output())
            .await
            .map_err(|_| format!("kubectl {args:?} timed out"))?
            .map_err(|e| format!("kubectl {args:?}: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(stdout)
        } else {
            Err(format!("kubectl {args:?} failed:\n{stdout}{}", String::from_utf8_lossy(&out.stderr)))
        }
    }

    async fn kubectl_ok(&self, args: &[&str]) -> String {
        self.kubectl(args).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// `kubemirror-e2e-<random>-<suffix>` for each suffix, created now, deleted at the end.
    async fn namespaces<const N: usize>(&self, suffixes: [&str; N]) -> [String; N] {
        let names = suffixes.map(|s| format!("{}-{s}", self.run));
        for ns in &names {
            self.create_namespace(ns, json!({})).await;
        }
        names
    }

    async fn create_namespace(&self, name: &str, labels: Value) {
        self.created.lock().unwrap().objects.push(format!("namespace/{name}"));
        let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}});
        self.admin.create(&ApiResource::namespaces(), None, &obj, &PostParams::default()).await.expect("namespace");
    }

    /// Creates a namespaced core object; its finalizers are cleared at the end if still there.
    async fn create(&self, obj: Value) -> Value {
        let kind = obj["kind"].as_str().expect("kind").to_string();
        let (ns, name) = (meta(&obj, "namespace"), meta(&obj, "name"));
        self.created.lock().unwrap().finalized.push((format!("{}/{name}", kind.to_lowercase()), ns.clone()));
        self.admin
            .create(&resource(&kind), Some(&ns), &obj, &PostParams::default())
            .await
            .unwrap_or_else(|e| panic!("create {kind} {ns}/{name}: {e}"))
    }

    async fn get(&self, kind: &str, ns: &str, name: &str) -> Option<Value> {
        match self.admin.get(&resource(kind), Some(ns), name).await {
            Ok(o) => Some(o),
            Err(e) if e.is_not_found() => None,
            Err(e) => panic!("get {kind} {ns}/{name}: {e}"),
        }
    }

    async fn patch(&self, kind: &str, ns: &str, name: &str, patch: Value) -> Value {
        self.admin
            .patch(&resource(kind), Some(ns), name, &Patch::Merge(patch), &PatchParams::default())
            .await
            .unwrap_or_else(|e| panic!("patch {kind} {ns}/{name}: {e}"))
    }

    async fn delete(&self, kind: &str, ns: &str, name: &str) {
        self.admin
            .delete(&resource(kind), Some(ns), name, &DeleteParams::default())
            .await
            .unwrap_or_else(|e| panic!("delete {kind} {ns}/{name}: {e}"));
    }

    async fn delete_namespace(&self, name: &str) {
        self.admin
            .delete(&ApiResource::namespaces(), None, name, &DeleteParams::default())
            .await
            .unwrap_or_else(|e| panic!("delete namespace {name}: {e}"));
    }

    async fn namespace_gone(&self, name: &str) -> bool {
        self.admin.get(&ApiResource::namespaces(), None, name).await.is_err_and(|e| e.is_not_found())
    }

    /// The namespaces among `candidates` holding a mirror `kind/name` made by KubeMirror.
    async fn mirrored_in(&self, kind: &str, name: &str, candidates: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        for ns in candidates {
            if let Some(o) = self.get(kind, ns, name).await
                && meta_str(&o, "labels", "kubemirror.raczylo.com/mirror") == Some("true")
            {
                out.push(ns.to_string());
            }
        }
        out
    }

    async fn wait_mirrors(&self, kind: &str, name: &str, candidates: &[&str], want: &[&str]) {
        let what = format!("{kind} {name} mirrored in exactly {want:?} of {candidates:?}");
        eventually(&what, async || self.mirrored_in(kind, name, candidates).await == want).await;
    }

    async fn status(&self, kind: &str, ns: &str, name: &str) -> String {
        let o = self.get(kind, ns, name).await;
        o.as_ref().and_then(|o| meta_str(o, "annotations", ANN_STATUS)).unwrap_or_default().to_string()
    }

    /// A kubeconfig for the controller: the cluster of the admin's, a token of its ServiceAccount.
    async fn controller_kubeconfig(&self) -> PathBuf {
        let token = self.kubectl_ok(&["create", "token", SERVICE_ACCOUNT, "-n", SYSTEM, "--duration=2h"]).await;
        let view: Value = serde_json::from_str(
            &self.kubectl_ok(&["config", "view", "--raw", "--minify", "--flatten", "-o", "json"]).await,
        )
        .expect("kubectl config view prints JSON");
        let cluster = view["clusters"][0]["cluster"].clone();
        let config = json!({"apiVersion": "v1", "kind": "Config", "current-context": "kubemirror",
            "clusters": [{"name": "e2e", "cluster": cluster}],
            "users": [{"name": SERVICE_ACCOUNT, "user": {"token": token.trim()}}],
            "contexts": [{"name": "kubemirror", "context": {"cluster": "e2e", "user": SERVICE_ACCOUNT}}]});
        let path = self.dir.join("controller.kubeconfig");
        std::fs::write(&path, config.to_string()).expect("write the controller's kubeconfig");
        path
    }

    /// Requests of the controller's ServiceAccount that authorization denied, from the audit log of
    /// tests/real-apiserver/run (none to check on other clusters).
    fn denied_in_audit_log(&self) -> Vec<String> {
        let Ok(path) = std::env::var("KUBEMIRROR_E2E_AUDIT_LOG") else { return Vec::new() };
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("audit log {path}: {e}"));
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| e["annotations"]["authorization.k8s.io/decision"] == "forbid")
            .map(|e| {
                format!("{} {} -> {}", e["verb"], e["requestURI"], e["annotations"]["authorization.k8s.io/reason"])
            })
            .collect()
    }

    /// What the cluster's RBAC refused the controller, by the audit log and by its log, where RBAC's
    /// 403 reads `<resource> is forbidden: User "<name>" cannot <verb> ...` (a create in a terminating
    /// namespace is a 403 too, and a disabled feature a `Forbidden` field error: neither is RBAC's).
    fn assert_nothing_forbidden(&self, controllers: &[&Controller]) {
        let mut denied = self.denied_in_audit_log();
        for c in controllers {
            denied
                .extend(c.log().lines().filter(|l| l.contains("forbidden: User")).map(|l| format!("{}: {l}", c.name)));
        }
        assert!(denied.is_empty(), "requests of the controller were forbidden:\n{}", denied.join("\n"));
    }

    /// deploy/deployment.yaml's container arguments, with the admin endpoints on free loopback ports.
    fn deployment_args(&self) -> Vec<String> {
        let text = std::fs::read_to_string(repo().join("deploy/deployment.yaml")).expect("deploy/deployment.yaml");
        let doc = kubemirror::util::yaml::load_one(&text).expect("deployment.yaml parses");
        let args = doc.pointer("/spec/template/spec/containers/0/args").and_then(Value::as_array).expect("args");
        args.iter()
            .filter_map(Value::as_str)
            .filter(|a| !a.starts_with("--metrics-bind-address") && !a.starts_with("--health-probe-bind-address"))
            .map(String::from)
            .collect()
    }
}

fn meta(o: &Value, field: &str) -> String {
    o["metadata"][field].as_str().unwrap_or_else(|| panic!("metadata.{field} in {o}")).to_string()
}

impl Drop for Env {
    /// Synchronous kubectl, so it also runs while a failed test unwinds.
    fn drop(&mut self) {
        let created = std::mem::take(&mut *self.created.lock().unwrap_or_else(|p| p.into_inner()));
        let kubectl = |args: &[&str]| {
            let _ = std::process::Command::new(&self.kubectl)
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .args(args)
                .env("HOME", &self.dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        };
        let release = r#"{"metadata":{"finalizers":null}}"#;
        for (name, ns) in &created.finalized {
            kubectl(&["patch", name, "-n", ns, "--type=merge", "-p", release]);
            kubectl(&["delete", name, "-n", ns, "--ignore-not-found", "--wait=false"]);
        }
        for name in created.objects.iter().rev() {
            kubectl(&["delete", name, "--ignore-not-found", "--wait=false"]);
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The controller binary as a Deployment would run it: POD_NAME/POD_NAMESPACE set, RUST_LOG=info,
/// its output in a file. Killed if the test ends without stopping it.
struct Controller {
    name: String,
    child: tokio::process::Child,
    log: PathBuf,
    metrics: SocketAddr,
    health: SocketAddr,
}

impl Controller {
    async fn start(env: &Env, kubeconfig: &Path, name: &str, args: &[String]) -> Controller {
        let (metrics, health) = (free_addr(), free_addr());
        let log = env.dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubemirror"))
            .args(args)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg(format!("--metrics-bind-address={metrics}"))
            .arg(format!("--health-probe-bind-address={health}"))
            .env("POD_NAME", name)
            .env("POD_NAMESPACE", SYSTEM)
            .env("RUST_LOG", "info")
            .env_remove("KUBECONFIG")
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .expect("the kubemirror binary starts");
        let c = Controller { name: name.into(), child, log, metrics, health };
        let what = format!("{name}: /readyz (caches filled)");
        eventually(&what, async || {
            c.http_get(c.health, "/readyz").await.is_some_and(|b| b.starts_with("HTTP/1.1 200"))
        })
        .await;
        c
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn http_get(&self, addr: SocketAddr, path: &str) -> Option<String> {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes()).await.ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).await.ok()?;
        Some(out)
    }

    /// The value of one Prometheus sample, e.g. `kubemirror_leader`, summed over matching label sets.
    async fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        let text = self.http_get(self.metrics, "/metrics").await.unwrap_or_default();
        text.lines()
            .filter(|l| l.split(['{', ' ']).next() == Some(name) && labels.iter().all(|want| l.contains(want)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    async fn is_leader(&self) -> bool {
        self.metric("kubemirror_leader", &[]).await == 1.0
    }

    /// Writes sent (create, update, patch, delete), whatever their answer.
    async fn writes(&self) -> f64 {
        let mut n = 0.0;
        for verb in ["create", "update", "patch", "delete"] {
            n += self.metric("kubemirror_api_requests_total", &[&format!("verb=\"{verb}\"")]).await;
        }
        n
    }

    /// SIGTERM, as the kubelet stops a pod; the exit code. The log stays readable.
    async fn stop(&mut self) -> Option<i32> {
        let pid = self.child.id().expect("still running").to_string();
        let kill = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        assert!(kill.success());
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("{} did not stop within 30 s of SIGTERM:\n{}", self.name, self.log()))
            .expect("wait");
        status.code()
    }
}

async fn lease_holder(env: &Env) -> String {
    let lease = env.admin.get(&ApiResource::leases(), Some(SYSTEM), LEASE).await.expect("the Lease");
    lease.pointer("/spec/holderIdentity").and_then(Value::as_str).unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_rbac_from_deploy_changes_propagate_drift_is_undone_and_namespaces_terminate() {
    let Some(env) = Env::new().await else { return };
    let [src, a, b, c] = env.namespaces(["src", "a", "b", "c"]).await;
    let all = [src.as_str(), a.as_str(), b.as_str(), c.as_str()];
    // An object of the same name that KubeMirror does not own, there before the source.
    env.create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": c},
        "data": {"mine": "eA=="}}))
        .await;
    let mut db = source("Secret", &src, "db", &format!("{a}, {b}, {c}"));
    db["data"] = json!({"password": "djE="});
    env.create(db).await;
    let mut settings = source("ConfigMap", &src, "settings", &format!("{}-*", env.run));
    settings["data"] = json!({"level": "info"});
    env.create(settings).await;

    let kubeconfig = env.controller_kubeconfig().await;
    let args = env.deployment_args();
    let mut one = Controller::start(&env, &kubeconfig, "one", &args).await;
    env.wait_mirrors("Secret", "db", &all, &[&a, &b]).await;
    env.wait_mirrors("ConfigMap", "settings", &all, &[&a, &b, &c]).await;
    eventually("the lease held by `one`", async || lease_holder(&env).await.starts_with("one")).await;

    // The mirror: the source's content, our labels and source annotations, no finalizer.
    let source_obj = env.get("Secret", &src, "db").await.expect("source");
    assert!(has_finalizer(&source_obj), "{source_obj}");
    let mirror = env.get("Secret", &a, "db").await.expect("mirror");
    assert_eq!(mirror["data"], json!({"password": "djE="}));
    assert_eq!(mirror["type"], "Opaque");
    assert_eq!(meta_str(&mirror, "labels", "kubemirror.raczylo.com/managed-by"), Some("kubemirror"));
    assert_eq!(meta_str(&mirror, "annotations", ANN_SOURCE_UID), source_obj["metadata"]["uid"].as_str());
    assert!(mirror["metadata"].get("finalizers").is_none(), "{mirror}");

    // The foreign object is reported, on the source and in a Warning Event, and left alone.
    eventually("conflicts:1 on the source", async || env.status("Secret", &src, "db").await.contains("conflicts:1"))
        .await;
    eventually("a MirrorConflict Event", async || {
        let list = env.admin.list(&ApiResource::events(), Some(&src), &ListParams::default()).await;
        list.is_ok_and(|l| {
            let events: Vec<Value> = l.items.iter().map(|e| e.to_value()).collect();
            events.iter().any(|e| e["reason"] == "MirrorConflict" && e["type"] == "Warning")
                && events.iter().all(|e| e["involvedObject"]["namespace"] == src.as_str())
        })
    })
    .await;
    let foreign = env.get("Secret", &c, "db").await.expect("foreign object");
    assert_eq!(foreign["data"], json!({"mine": "eA=="}));
    assert!(foreign["metadata"].get("labels").is_none(), "{foreign}");

    // An update propagates; drift (an edited or deleted mirror) is put back.
    env.patch("Secret", &src, "db", json!({"data": {"password": "djI="}})).await;
    let data_in =
        async |ns: &str, want: &str| env.get("Secret", ns, "db").await.is_some_and(|m| m["data"]["password"] == want);
    eventually("the update in both mirrors", async || data_in(&a, "djI=").await && data_in(&b, "djI=").await).await;
    env.patch("Secret", &a, "db", json!({"data": {"password": "aGFja2Vk"}})).await;
    eventually("the edited mirror put back", async || data_in(&a, "djI=").await).await;
    env.delete("Secret", &b, "db").await;
    eventually("the deleted mirror recreated", async || data_in(&b, "djI=").await).await;

    // A target namespace terminates: kube-controller-manager empties and removes it, mirror included.
    env.delete_namespace(&c).await;
    eventually("namespace c removed by the namespace controller", async || env.namespace_gone(&c).await).await;
    let left = [src.as_str(), a.as_str(), b.as_str()];
    env.wait_mirrors("ConfigMap", "settings", &left, &[&a, &b]).await;

    // A deleted source: our finalizer holds it until its mirrors are gone.
    env.delete("ConfigMap", &src, "settings").await;
    env.wait_mirrors("ConfigMap", "settings", &left, &[]).await;
    eventually("the ConfigMap source gone", async || env.get("ConfigMap", &src, "settings").await.is_none()).await;

    // A source owned by another object (as ExternalSecrets owns its Secrets): the garbage collector
    // deletes it with its owner, and the finalizer flow removes its mirrors.
    let owner = env
        .create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner", "namespace": src}}))
        .await;
    let mut owned = source("Secret", &src, "owned", &a);
    owned["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
        "uid": owner["metadata"]["uid"], "blockOwnerDeletion": true}]);
    env.create(owned).await;
    env.wait_mirrors("Secret", "owned", &left, &[&a]).await;
    let mirror = env.get("Secret", &a, "owned").await.expect("mirror");
    assert!(mirror["metadata"].get("ownerReferences").is_none(), "{mirror}");
    env.delete("ConfigMap", &src, "owner").await;
    env.wait_mirrors("Secret", "owned", &left, &[]).await;
    eventually("the owned source collected", async || env.get("Secret", &src, "owned").await.is_none()).await;

    // Stopped as a pod is: exit 0 and the Lease released for a successor.
    assert_eq!(one.stop().await, Some(0), "exit code of `one`");
    assert_eq!(lease_holder(&env).await, "", "the Lease is released");

    // Meanwhile the source is replaced by one of another type (the type of a Secret is immutable: the
    // mirrors must be deleted and created again), then the controller comes back.
    env.patch("Secret", &src, "db", json!({"metadata": {"finalizers": null}})).await;
    env.delete("Secret", &src, "db").await;
    let mut tls = source("Secret", &src, "db", &format!("{a},{b}"));
    tls["type"] = json!("kubernetes.io/tls");
    tls["data"] = json!({"tls.crt": "Y2VydA==", "tls.key": "a2V5"});
    let tls = env.create(tls).await;
    let mut two = Controller::start(&env, &kubeconfig, "two", &args).await;
    let replaced = async |ns: &str| {
        env.get("Secret", ns, "db").await.is_some_and(|m| {
            m["type"] == "kubernetes.io/tls"
                && meta_str(&m, "annotations", ANN_SOURCE_UID) == tls["metadata"]["uid"].as_str()
        })
    };
    eventually("mirrors of the new type", async || replaced(&a).await && replaced(&b).await).await;

    // The source's namespace terminates: the namespace controller deletes the source, we delete its
    // mirrors and release the finalizer, and only then can the namespace go.
    env.delete_namespace(&src).await;
    env.wait_mirrors("Secret", "db", &[&a, &b], &[]).await;
    eventually("the source's namespace removed", async || env.namespace_gone(&src).await).await;
    assert_eq!(two.stop().await, Some(0), "exit code of `two`");
    env.assert_nothing_forbidden(&[&one, &two]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_elect_one_leader_that_alone_writes_and_hands_over_when_stopped() {
    let Some(env) = Env::new().await else { return };
    let [src, a] = env.namespaces(["src", "a"]).await;
    let both = [src.as_str(), a.as_str()];
    let secret = |name: &str| {
        let mut s = source("Secret", &src, name, &a);
        s["data"] = json!({"k": "dg=="});
        s
    };
    env.create(secret("first")).await;
    let kubeconfig = env.controller_kubeconfig().await;
    let args = env.deployment_args();
    let r1 = Controller::start(&env, &kubeconfig, "replica-1", &args).await;
    let r2 = Controller::start(&env, &kubeconfig, "replica-2", &args).await;
    env.wait_mirrors("Secret", "first", &both, &[&a]).await;
    eventually("exactly one leader", async || r1.is_leader().await != r2.is_leader().await).await;
    let (mut leader, mut standby) = if r1.is_leader().await { (r1, r2) } else { (r2, r1) };
    assert!(lease_holder(&env).await.starts_with(&leader.name), "the Lease names {}", leader.name);

    let standby_writes = standby.writes().await;
    env.create(secret("second")).await;
    env.wait_mirrors("Secret", "second", &both, &[&a]).await;
    assert_eq!(standby.writes().await, standby_writes, "the standby wrote:\n{}", standby.log());

    assert_eq!(leader.stop().await, Some(0), "exit code of the leader");
    eventually("the standby leads", async || standby.is_leader().await).await;
    assert!(lease_holder(&env).await.starts_with(&standby.name));
    env.create(secret("third")).await;
    env.wait_mirrors("Secret", "third", &both, &[&a]).await;
    assert!(standby.writes().await > standby_writes, "the new leader wrote the mirror");
    assert_eq!(standby.stop().await, Some(0), "exit code of the new leader");
    env.assert_nothing_forbidden(&[&leader, &standby]);
}

/// `kubernetes_feature_enabled{name="<gate>",...} 0|1` from the API server's /metrics.
fn feature_enabled(metrics: &str, gate: &str) -> Option<bool> {
    let needle = format!("kubernetes_feature_enabled{{name=\"{gate}\"");
    let line = metrics.lines().find(|l| l.starts_with(&needle))?;
    Some(line.rsplit(' ').next()?.trim() == "1")
}

/// A watcher over one namespace's Secrets into `apply`, stopped by the returned sender.
fn watch_secrets(
    client: &Client,
    ns: &str,
    cfg: WatchConfig,
    apply: impl FnMut(kubemirror::watcher::Event) + Send + 'static,
) -> (Arc<WatchHealth>, oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let api = ClientListWatch { client: client.clone(), resource: ApiResource::secrets(), namespace: Some(ns.into()) };
    let watcher = Watcher::new(api, cfg, Rng::from_os());
    let health = watcher.health();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(watcher.run(apply, async move {
        let _ = stopped.await;
    }));
    (health, stop, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_list_follows_the_servers_feature_gate_and_metadata_only_watches_carry_no_data() {
    let Some(env) = Env::new().await else { return };
    let [ns] = env.namespaces(["watch"]).await;
    let version = env.admin.get_path("/version").await.expect("/version");
    let gate = feature_enabled(&env.kubectl_ok(&["get", "--raw", "/metrics"]).await, "WatchList")
        .expect("the WatchList gate in the API server's kubernetes_feature_enabled metric");
    let watch_list = watch_list_by_default(&version);
    eprintln!("server {}: WatchList gate {gate}, the controller uses watch-list: {watch_list}", version["gitVersion"]);
    if std::env::var_os("KUBEMIRROR_E2E_FEATURE_GATES").is_none() {
        assert_eq!(watch_list, gate, "the controller's rule for the WatchList default disagrees with {version}");
    }
    for i in 0..3 {
        let mut s = source("Secret", &ns, &format!("s{i}"), "nowhere");
        s["data"] = json!({"k": "dg=="});
        env.create(s).await;
    }
    env.create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "plain", "namespace": ns}})).await;

    // Sources, opened as the controller opens them on this server.
    let store: Store<SourceObject> = Store::new(Default::default());
    let cfg =
        WatchConfig { label_selector: Some(format!("{ENABLED}=true")), watch_list, ..WatchConfig::new("sources") };
    let sink = store.clone();
    let (health, stop, task) = watch_secrets(&env.admin, &ns, cfg, move |ev| {
        sink.apply_watcher_event(ev);
    });
    tokio::time::timeout(DEADLINE, store.wait_synced()).await.expect("the source watcher synced");
    assert_eq!(store.len(), 3);
    if watch_list && gate {
        assert_eq!((health.lists(), health.watches()), (0, 1), "synced by a single watch-list request");
    } else {
        assert!(health.lists() >= 1, "listed (no watch-list, or fell back from it)");
    }
    let mut late = source("Secret", &ns, "late", "nowhere");
    late["data"] = json!({"k": "dg=="});
    env.create(late).await;
    env.patch("Secret", &ns, "s0", json!({"metadata": {"labels": {ENABLED: null}}})).await;
    let key = |n: &str| ObjectKey::new(&ns, n);
    eventually("the new source in, the disabled one out", async || {
        store.contains(&key("late")) && !store.contains(&key("s0"))
    })
    .await;
    let _ = stop.send(());
    task.await.expect("source watcher");

    // Mirrors, metadata-only: the cache gets labels and annotations, never the data.
    env.create(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "m", "namespace": ns,
        "labels": {"kubemirror.raczylo.com/mirror": "true", "kubemirror.raczylo.com/managed-by": "kubemirror"},
        "annotations": {"kubemirror.raczylo.com/source-namespace": "elsewhere",
                        "kubemirror.raczylo.com/source-name": "db",
                        "kubemirror.raczylo.com/source-content-hash": "h1"}},
        "data": {"password": "c2VjcmV0"}}))
        .await;
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let cache = Cache::new();
    let t = cache.add_type("Secret.v1");
    let cfg = WatchConfig {
        label_selector: Some("kubemirror.raczylo.com/mirror=true".into()),
        metadata_only: true,
        watch_list,
        ..WatchConfig::new("mirrors")
    };
    let (mirrors, log) = (t.mirrors.clone(), seen.clone());
    let (_, stop, task) = watch_secrets(&env.admin, &ns, cfg, move |ev| {
        match &ev {
            kubemirror::watcher::Event::Apply(o) => log.lock().unwrap().push(o.clone()),
            kubemirror::watcher::Event::InitApply(o) => log.lock().unwrap().push(o.to_value()),
            _ => {}
        }
        mirrors.apply_watcher_event(ev);
    });
    tokio::time::timeout(DEADLINE, t.mirrors.wait_synced()).await.expect("the mirror watcher synced");
    let of_source = t.mirrors.mirrors_of(&ObjectKey::new("elsewhere", "db"));
    assert_eq!(of_source.len(), 1);
    assert!(of_source[0].managed && of_source[0].content_hash().map(|h| &**h) == Some("h1"));
    env.patch(
        "Secret",
        &ns,
        "m",
        json!({"metadata": {"annotations": {"kubemirror.raczylo.com/source-content-hash": "h2"}}}),
    )
    .await;
    eventually("the metadata change through the watch", async || {
        t.mirrors
            .mirrors_of(&ObjectKey::new("elsewhere", "db"))
            .first()
            .and_then(|m| m.content_hash().cloned())
            .as_deref()
            == Some("h2")
    })
    .await;
    let _ = stop.send(());
    task.await.expect("mirror watcher");
    let seen = seen.lock().unwrap().clone();
    assert!(seen.len() >= 2, "{seen:?}");
    for o in &seen {
        assert_eq!(o["kind"], "PartialObjectMetadata", "{o}");
        assert_eq!(o["apiVersion"], "meta.k8s.io/v1", "{o}");
        assert!(o.get("data").is_none(), "{o}");
    }
    // The same by GET and LIST.
    let m = env.admin.get_metadata(&ApiResource::secrets(), Some(&ns), "m").await.expect("metadata GET");
    assert_eq!((m["kind"].as_str(), m.get("data")), (Some("PartialObjectMetadata"), None), "{m}");
    let params = ListParams { metadata_only: true, ..Default::default() };
    let list = env.admin.list(&ApiResource::secrets(), Some(&ns), &params).await.expect("metadata LIST");
    assert_eq!(list.items.len(), 6);
    assert!(
        list.items.iter().map(|o| o.to_value()).all(|o| o.get("data").is_none() && o["metadata"]["name"].is_string())
    );
}

/// examples/*.yaml as JSON lists, in the order a cluster accepts them: namespaces, CRDs, the rest
/// (a custom resource needs its CRD established first).
fn example_lists() -> [Vec<Value>; 3] {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("examples"))
        .expect("examples/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut out: [Vec<Value>; 3] = Default::default();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("example");
        for doc in kubemirror::util::yaml::load_all(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display())) {
            let slot = match doc["kind"].as_str() {
                Some("Namespace") => 0,
                Some("CustomResourceDefinition") => 1,
                _ => 2,
            };
            out[slot].push(doc);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_pass_server_side_validation_and_converge_with_a_crd_created_while_running() {
    let Some(env) = Env::new().await else { return };
    let deploy = repo().join("deploy");
    // deploy/ as a whole, Deployment and Service included, passes the server's strict validation.
    env.kubectl_ok(&["apply", "--dry-run=server", "--validate=strict", "-k", &deploy.to_string_lossy()]).await;
    // Auto-discovery (no --resource-types) with the opt-in RBAC, as deploy/kustomization.yaml says.
    {
        let mut created = env.created.lock().unwrap();
        created.objects.push("clusterrole/kubemirror-controller-autodiscovery".into());
        created.objects.push("clusterrolebinding/kubemirror-controller-autodiscovery".into());
    }
    env.kubectl_ok(&["apply", "-f", &deploy.join("rbac-autodiscovery.yaml").to_string_lossy()]).await;
    let kubeconfig = env.controller_kubeconfig().await;
    let mut args: Vec<String> =
        env.deployment_args().into_iter().filter(|a| !a.starts_with("--resource-types")).collect();
    args.push("--discovery-interval=2s".into());
    let mut ctl = Controller::start(&env, &kubeconfig, "auto", &args).await;

    let [namespaces, crds, objects] = example_lists();
    {
        let mut created = env.created.lock().unwrap();
        for o in &objects {
            let kind = o["kind"].as_str().unwrap_or_default().to_lowercase();
            let group = o["apiVersion"].as_str().and_then(|v| v.split_once('/')).map(|(g, _)| format!(".{g}"));
            created
                .finalized
                .push((format!("{kind}{}/{}", group.unwrap_or_default(), meta(o, "name")), meta(o, "namespace")));
        }
        created.objects.extend(namespaces.iter().map(|n| format!("namespace/{}", meta(n, "name"))));
        created.objects.extend(crds.iter().map(|c| format!("customresourcedefinition/{}", meta(c, "name"))));
    }
    for (name, items) in [("namespaces", &namespaces), ("crds", &crds), ("objects", &objects)] {
        let path = env.dir.join(format!("{name}.json"));
        let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
        std::fs::write(&path, list.to_string()).expect("write the list");
        let file = path.to_string_lossy();
        env.kubectl_ok(&["apply", "--dry-run=server", "--validate=strict", "-f", &file]).await;
        env.kubectl_ok(&["apply", "--validate=strict", "-f", &file]).await;
        if name == "crds" {
            for c in &crds {
                let crd = format!("customresourcedefinition/{}", meta(c, "name"));
                env.kubectl_ok(&["wait", "--for=condition=Established", "--timeout=60s", &crd]).await;
            }
        }
    }

    let candidates =
        ["app-frontend", "app1", "app2", "app3", "default", "external-secrets", "legacy", "prod-api", "kube-system"];
    let everywhere = ["app-frontend", "app1", "app2", "app3", "external-secrets", "prod-api"];
    env.wait_mirrors("ConfigMap", "cluster-ca-bundle", &candidates, &everywhere).await;
    env.wait_mirrors("ConfigMap", "shared-config", &candidates, &["app-frontend", "prod-api"]).await;
    env.wait_mirrors("Secret", "database-credentials", &candidates, &["app1", "app2", "app3"]).await;
    env.wait_mirrors("Secret", "wildcard-tls", &candidates, &["app-frontend", "prod-api"]).await;
    let all_but_source = ["app-frontend", "app1", "app2", "app3", "default", "prod-api"];
    env.wait_mirrors("Secret", "multi-registry-secret", &candidates, &all_but_source).await;
    let middleware = ApiResource::new("traefik.io", "v1alpha1", "Middleware", "middlewares", true);
    eventually("the Middleware (a CRD created while running) in app-frontend", async || {
        env.admin.get(&middleware, Some("app-frontend"), "compression").await.is_ok()
    })
    .await;
    let mirror = env.get("Secret", "app1", "multi-registry-secret").await.expect("mirror");
    assert!(mirror["metadata"].get("ownerReferences").is_none(), "{mirror}");
    assert_eq!(mirror["type"], "kubernetes.io/dockerconfigjson");

    // Deleting the examples' sources removes every mirror through the finalizers.
    let file = env.dir.join("objects.json");
    env.kubectl_ok(&["delete", "-f", &file.to_string_lossy(), "--wait=true", "--timeout=60s"]).await;
    env.wait_mirrors("ConfigMap", "cluster-ca-bundle", &candidates, &[]).await;
    env.wait_mirrors("Secret", "multi-registry-secret", &candidates, &[]).await;
    eventually("the Middleware mirrors gone", async || {
        env.admin.get(&middleware, Some("app-frontend"), "compression").await.is_err_and(|e| e.is_not_found())
    })
    .await;
    assert_eq!(ctl.stop().await, Some(0), "exit code");
    env.assert_nothing_forbidden(&[&ctl]);
}

/// An answer comparable across servers: code, reason and message of an error, with the `uids` the
/// steps made masked (each server makes its own), or `ok` and the fields named.
fn outcome(r: Result<Value, kubemirror::client::Error>, uids: &[String], fields: &[&str]) -> Value {
    match r {
        Ok(v) => {
            let picked: serde_json::Map<String, Value> =
                fields.iter().map(|f| (f.to_string(), v.pointer(f).cloned().unwrap_or(Value::Null))).collect();
            json!({"ok": picked})
        }
        Err(e) => {
            let Some(s) = e.status() else { return json!({"error": e.to_string()}) };
            let message = uids.iter().fold(s.message.clone(), |m, u| m.replace(u.as_str(), "<uid>"));
            json!({"code": s.code, "reason": s.reason.as_str(), "message": message})
        }
    }
}

/// The requests whose answers the testkit imitates, each answer labelled.
async fn diff_steps(c: &Client, ns: &str) -> Vec<(&'static str, Value)> {
    let (secrets, cms) = (ApiResource::secrets(), ApiResource::configmaps());
    let post = PostParams::default();
    let mut uids = Vec::new();
    let mut out = Vec::new();
    let secret = |name: &str, ty: &str, data: Value| json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns}, "type": ty, "data": data});
    let r = c.create(&secrets, Some(ns), &secret("t", "kubernetes.io/tls", json!({"tls.crt": "eA=="})), &post).await;
    out.push(("tls Secret without tls.key", outcome(r, &uids, &[])));
    let created = c.create(&secrets, Some(ns), &secret("o", "Opaque", json!({})), &post).await;
    if let Ok(o) = &created {
        uids.push(meta(o, "uid"));
    }
    out.push(("create", outcome(created.clone(), &uids, &["/type", "/metadata/name"])));
    let mut retyped = created.unwrap_or_default();
    retyped["type"] = json!("kubernetes.io/tls");
    let r = c.update(&secrets, Some(ns), "o", &retyped, &post).await;
    out.push(("Secret type changed", outcome(r, &uids, &[])));
    let mut stale = retyped.clone();
    stale["type"] = json!("Opaque");
    stale["metadata"]["resourceVersion"] = json!("1");
    let r = c.update(&secrets, Some(ns), "o", &stale, &post).await;
    out.push(("stale resourceVersion", outcome(r, &uids, &[])));
    let r = c.create(&secrets, Some(ns), &secret("o", "Opaque", json!({})), &post).await;
    out.push(("already exists", outcome(r, &uids, &[])));
    let r = c.get(&secrets, Some(ns), "missing").await;
    out.push(("not found", outcome(r, &uids, &[])));
    let uid_mismatch = DeleteParams { precondition_uid: Some("nope".into()), ..Default::default() };
    let r = c.delete(&secrets, Some(ns), "o", &uid_mismatch).await.map(Option::unwrap_or_default);
    out.push(("delete with a uid precondition that fails", outcome(r, &uids, &[])));
    c.create(&secrets, Some(ns), &secret("gone", "Opaque", json!({})), &post).await.ok();
    let r = c.delete(&secrets, Some(ns), "gone", &DeleteParams::default()).await;
    let fields = ["/kind", "/status", "/details"];
    out.push(("delete", outcome(r.map(|v| v.unwrap_or_default()), &uids, &fields)));
    let mut other_uid = stale.clone();
    other_uid["metadata"]["resourceVersion"] = json!(null);
    other_uid["metadata"]["uid"] = json!("00000000-0000-4000-a000-000000000000");
    let r = c.update(&secrets, Some(ns), "o", &other_uid, &post).await;
    out.push(("update with another uid", outcome(r, &uids, &[])));
    let with_rv = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "rv", "namespace": ns, "resourceVersion": "5"}});
    out.push((
        "create with a resourceVersion",
        outcome(c.create(&secrets, Some(ns), &with_rv, &post).await, &uids, &[]),
    ));
    let bad_base64 = Patch::Merge(json!({"data": {"k": "not base64!"}}));
    let r = c.patch(&secrets, Some(ns), "o", &bad_base64, &PatchParams::default()).await;
    // The message quotes the whole patched object, managedFields and timestamps included: compared
    // without it.
    let mut bad = outcome(r, &uids, &[]);
    if let Some((head, tail)) =
        bad["message"].as_str().and_then(|m| Some((m.split_once("Invalid value: ")?.0, m.rsplit_once("\": ")?.1)))
    {
        bad["message"] = json!(format!("{head}Invalid value: <object>: {tail}"));
    }
    out.push(("merge patch with bad base64", bad));
    let r = c.get_metadata(&secrets, Some(ns), "o").await;
    out.push(("metadata-only GET", outcome(r, &uids, &["/kind", "/apiVersion", "/metadata/name", "/type", "/data"])));
    let dry = PostParams { dry_run: true, ..Default::default() };
    let r = c.create(&secrets, Some(ns), &secret("dry", "Opaque", json!({})), &dry).await;
    let fields = ["/metadata/name", "/metadata/resourceVersion", "/metadata/generation", "/type"];
    out.push(("dry-run create", outcome(r, &uids, &fields)));
    let bad_selector = ListParams { label_selector: Some("a in (b".into()), ..Default::default() };
    let r = c.list(&secrets, Some(ns), &bad_selector).await.map(|_| Value::Null);
    // The parser's wording differs (README: the testkit's selector errors are its own words).
    let mut bad = outcome(r, &uids, &[]);
    if let Some(m) = bad.as_object_mut() {
        m.remove("message");
    }
    out.push(("bad label selector", bad));
    let failed_test = Patch::Json(json!([{"op": "test", "path": "/type", "value": "kubernetes.io/tls"}]));
    let r = c.patch(&secrets, Some(ns), "o", &failed_test, &PatchParams::default()).await;
    out.push(("JSON patch whose test fails", outcome(r, &uids, &[])));
    let bad_ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "Not_A_Label"}});
    out.push((
        "invalid namespace name",
        outcome(c.create(&ApiResource::namespaces(), None, &bad_ns, &post).await, &uids, &[]),
    ));
    let bad_label = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "l", "namespace": ns, "labels": {"a": "not valid"}}});
    out.push(("invalid label value", outcome(c.create(&cms, Some(ns), &bad_label, &post).await, &uids, &[])));
    let cms_ref = &cms;
    let apply = |manager: &str, v: &str| {
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"x": v}});
        let p = PatchParams { field_manager: Some(manager.into()), ..Default::default() };
        async move { c.patch(cms_ref, Some(ns), "ssa", &Patch::Apply(body), &p).await }
    };
    out.push(("apply", outcome(apply("a", "1").await, &uids, &["/data"])));
    out.push(("apply conflict", outcome(apply("b", "2").await, &uids, &[])));
    let bad_token = ListParams { limit: Some(1), continue_token: Some("garbage".into()), ..Default::default() };
    let r = c.list(&cms, Some(ns), &bad_token).await.map(|_| Value::Null);
    // The end of this message is Go's JSON decoder's own words.
    let mut bad = outcome(r, &uids, &[]);
    if let Some(m) = bad["message"].as_str().and_then(|m| m.split_once("not valid: ")).map(|(head, _)| head.to_string())
    {
        bad["message"] = json!(m);
    }
    out.push(("garbage continue token", bad));
    // A terminating namespace: held by a finalizer, it refuses new content.
    let held = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "held", "namespace": ns, "finalizers": ["example.com/hold"]}});
    out.push(("held", outcome(c.create(&cms, Some(ns), &held, &post).await, &uids, &["/metadata/finalizers"])));
    let r =
        c.delete(&ApiResource::namespaces(), None, ns, &DeleteParams::default()).await.map(Option::unwrap_or_default);
    out.push(("namespace deleted", outcome(r, &uids, &["/status/phase", "/metadata/deletionGracePeriodSeconds"])));
    let late = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late", "namespace": ns}});
    out.push(("create in a terminating namespace", outcome(c.create(&cms, Some(ns), &late, &post).await, &uids, &[])));
    let release = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    let r = c.patch(&cms, Some(ns), "held", &release, &PatchParams::default()).await;
    // (Not deletionGracePeriodSeconds: the testkit deletes a namespace's content at once, the namespace
    // controller a few seconds later, so whether "held" is being deleted yet differs by design.)
    out.push(("finalizer released", outcome(r, &uids, &["/metadata/finalizers"])));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_memory_server_answers_these_requests_as_the_real_one_does() {
    let Some(env) = Env::new().await else { return };
    let [ns] = env.namespaces(["diff"]).await;
    let mut namespaces = kubemirror::testkit::ServerOptions::default().namespaces;
    namespaces.push(ns.clone());
    let kit =
        kubemirror::testkit::ApiServer::start(kubemirror::testkit::ServerOptions { namespaces, ..Default::default() })
            .await
            .expect("the in-memory server");
    let load = LoadOptions { kubeconfig: Some(kit.kubeconfig_path("admin")), context: None };
    let kit_client =
        Client::from_options(&load, ClientOptions { qps: 0.0, ..Default::default() }).await.expect("client");
    let real = diff_steps(&env.admin, &ns).await;
    let imitated = diff_steps(&kit_client, &ns).await;
    let differences: Vec<String> = real
        .iter()
        .zip(&imitated)
        .filter(|(r, k)| r.1 != k.1)
        .map(|(r, k)| format!("{}:\n  real:    {}\n  testkit: {}", r.0, r.1, k.1))
        .collect();
    assert!(differences.is_empty(), "the testkit differs from the real server:\n{}", differences.join("\n"));
}
