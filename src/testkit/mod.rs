//! The in-memory Kubernetes API server: what every integration test, the sandbox and the benchmarks
//! run against. It speaks the real wire protocol (HTTPS, HTTP/1.1 and HTTP/2 by ALPN, discovery,
//! list/watch, patches, server-side apply, Status errors) closely enough for the real `kubectl`, and
//! adds test hooks: fault injection, accounting, direct seeding and a restart that keeps the data.
//!
//! ```no_run
//! # async fn demo() -> Result<(), String> {
//! use kubemirror::testkit::{ApiServer, ServerOptions};
//! let server = ApiServer::start(ServerOptions::default()).await?;
//! println!("{} {}", server.url(), server.kubeconfig_path("admin").display());
//! # Ok(()) }
//! ```

pub mod apply;
pub mod auth;
pub mod certs;
pub mod discovery;
pub mod errors;
pub mod faults;
pub mod handlers;
pub mod http;
pub mod namespaces;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod render;
pub mod services;
pub mod stats;
pub mod store;
pub mod tls;
pub mod validate;
pub mod watch;
pub mod writes;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch as tokio_watch;
use tokio::task::JoinHandle;

pub use auth::{Rule, User};
pub use errors::ApiError;
pub use faults::Matcher;
pub use stats::StatsSnapshot;

use certs::Certs;
use discovery::{Registry, ResourceInfo};
use faults::Faults;
use stats::Stats;
use store::{DeleteOpts, DeleteOutcome, Store, WriteOpts};

#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Users and their allow-lists; each gets a kubeconfig. Default: `admin` allowed everything.
    pub users: Vec<User>,
    /// How often watches with allowWatchBookmarks get a BOOKMARK (a real server: about a minute).
    pub bookmark_interval: Duration,
    /// Watch events kept per resource for resumption (the watch cache's window); resuming from an
    /// older resourceVersion gets 410.
    pub watch_history: usize,
    /// Watch length when the client sends no timeoutSeconds (a real server: 30-60 minutes).
    pub default_watch_timeout: Duration,
    /// Namespaces that exist from the start, as in a fresh cluster.
    pub namespaces: Vec<String>,
    /// Seed for uids and generated names; None: from the OS.
    pub seed: Option<u64>,
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// The Kubernetes minor version `/version` reports (major is 1). The discovery documents are
    /// 1.31's whatever this says; it exists so clients' version-dependent choices can be tested.
    pub minor_version: u32,
    /// The API server's WatchList feature gate (watch with `sendInitialEvents`). None: its default
    /// for `minor_version`, on in 1.32 and from 1.34, off before and in 1.33; off, such a watch is a
    /// 422, as a real server answers.
    pub watch_list: Option<bool>,
    /// Emulate kube-controller-manager's per-namespace objects (`kube-root-ca.crt` ConfigMap,
    /// `default` ServiceAccount). Off by default so tests see only what they create.
    pub cluster_defaults: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            users: vec![User::admin()],
            bookmark_interval: Duration::from_secs(60),
            watch_history: 10_000,
            default_watch_timeout: Duration::from_secs(1800),
            namespaces: ["default", "kube-system", "kube-public", "kube-node-lease"].map(String::from).to_vec(),
            seed: None,
            port: 0,
            minor_version: 31,
            watch_list: None,
            cluster_defaults: false,
        }
    }
}

impl ServerOptions {
    /// Whether watch-list is on: the explicit gate, else the default of `minor_version`.
    pub fn watch_list_enabled(&self) -> bool {
        self.watch_list.unwrap_or(self.minor_version == 32 || self.minor_version >= 34)
    }
}

/// State shared by the accept loop, connections, watchers and the handle.
pub struct Shared {
    pub(crate) store: Mutex<Store>,
    pub(crate) stats: Arc<Stats>,
    pub(crate) faults: Arc<Faults>,
    /// Mutable so tests can rotate tokens.
    pub(crate) users: Mutex<Vec<User>>,
    pub(crate) opts: ServerOptions,
    pub(crate) addr: SocketAddr,
    /// Bumped to end every open watch.
    pub(crate) close_watches: tokio_watch::Sender<u64>,
    /// Bumped to drop every connection (restart).
    pub(crate) connections: tokio_watch::Sender<u64>,
    /// One client certificate per user, for kubeconfigs that authenticate with certificates.
    pub(crate) client_certs: Vec<certs::ClientCert>,
}

/// A running server. Dropping it stops the server and removes its kubeconfig directory.
pub struct ApiServer {
    shared: Arc<Shared>,
    certs: Certs,
    dir: PathBuf,
    tasks: Vec<JoinHandle<()>>,
}

static INSTANCE: AtomicU64 = AtomicU64::new(0);

impl ApiServer {
    pub async fn start(opts: ServerOptions) -> Result<ApiServer, String> {
        let certs = Certs::generate()?;
        let tls = certs.server_config()?;
        let listener =
            TcpListener::bind(("127.0.0.1", opts.port)).await.map_err(|e| format!("binding 127.0.0.1: {e}"))?;
        let addr = listener.local_addr().map_err(|e| format!("reading the bound address: {e}"))?;
        let mut store = Store::new(Registry::builtin()?, opts.watch_history, opts.seed);
        let ns_info = store.namespaces_info();
        for ns in &opts.namespaces {
            let wo = WriteOpts { dry_run: false, manager: "kube-apiserver".into() };
            store.create(&ns_info, "", json!({"metadata": {"name": ns}}), &wo).map_err(|e| e.message().to_string())?;
        }
        let client_certs = opts.users.iter().map(|u| certs.issue_client(&u.name)).collect::<Result<Vec<_>, _>>()?;
        let changed = store.changed.clone();
        let defaults_ca = opts.cluster_defaults.then(|| certs.ca_pem.clone());
        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            stats: Arc::new(Stats::default()),
            faults: Arc::new(Faults::default()),
            users: Mutex::new(opts.users.clone()),
            opts,
            addr,
            close_watches: tokio_watch::channel(0).0,
            connections: tokio_watch::channel(0).0,
            client_certs,
        });
        let dir = std::env::temp_dir().join(format!(
            "kubemirror-testkit-{}-{}-{}",
            std::process::id(),
            INSTANCE.fetch_add(1, Ordering::SeqCst),
            addr.port()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let server = ApiServer {
            tasks: vec![
                tokio::spawn(accept_loop(listener, tls, Arc::downgrade(&shared))),
                tokio::spawn(namespaces::controller(Arc::downgrade(&shared), changed, defaults_ca)),
            ],
            shared,
            certs,
            dir,
        };
        server.write_kubeconfigs()?;
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.shared.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    pub fn ca_pem(&self) -> &str {
        &self.certs.ca_pem
    }

    pub fn ca_der(&self) -> &[u8] {
        &self.certs.ca_der
    }

    fn users(&self) -> Vec<User> {
        self.shared.users.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub fn token(&self, user: &str) -> Option<String> {
        self.users().into_iter().find(|u| u.name == user).map(|u| u.token)
    }

    /// Rotates `user`'s bearer token (as a bound service-account token rotates): the old one gets 401
    /// from now on. The user's token file (`token_path`) is rewritten; its kubeconfig is not.
    pub fn set_token(&self, user: &str, token: &str) -> Result<(), String> {
        {
            let mut users = self.shared.users.lock().unwrap_or_else(PoisonError::into_inner);
            let u = users.iter_mut().find(|u| u.name == user).ok_or_else(|| format!("no user {user}"))?;
            u.token = token.to_string();
        }
        let path = self.token_path(user);
        std::fs::write(&path, token).map_err(|e| format!("writing {}: {e}", path.display()))
    }

    /// Replaces `user`'s allow-list (RBAC changed while running): every request from now on is
    /// authorized against `rules`. Like the real server, watches already open are not re-checked;
    /// `close_watches()` makes clients re-watch under the new rules.
    pub fn set_rules(&self, user: &str, rules: Vec<Rule>) -> Result<(), String> {
        let mut users = self.shared.users.lock().unwrap_or_else(PoisonError::into_inner);
        let u = users.iter_mut().find(|u| u.name == user).ok_or_else(|| format!("no user {user}"))?;
        u.rules = rules;
        Ok(())
    }

    /// A file holding `user`'s current token (for kubeconfig `tokenFile` tests).
    pub fn token_path(&self, user: &str) -> PathBuf {
        self.dir.join(format!("token-{user}"))
    }

    /// The kubeconfig written for `user` (cluster CA embedded, bearer token, namespace default).
    pub fn kubeconfig_path(&self, user: &str) -> PathBuf {
        self.dir.join(format!("kubeconfig-{user}.yaml"))
    }

    /// A kubeconfig for `user` that authenticates with its client certificate instead of a token.
    pub fn kubeconfig_cert_path(&self, user: &str) -> PathBuf {
        self.dir.join(format!("kubeconfig-{user}-cert.yaml"))
    }

    /// The client certificate issued to `user` (PEM certificate, PKCS#8 PEM key).
    pub fn client_cert(&self, user: &str) -> Option<&certs::ClientCert> {
        self.shared.client_certs.iter().find(|c| c.user == user)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn write_kubeconfigs(&self) -> Result<(), String> {
        let ca = crate::util::base64::encode(self.certs.ca_pem.as_bytes());
        for u in &self.users() {
            let tp = self.token_path(&u.name);
            std::fs::write(&tp, &u.token).map_err(|e| format!("writing {}: {e}", tp.display()))?;
            let text = format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: testkit\n  cluster:\n    server: {url}\n    certificate-authority-data: {ca}\ncontexts:\n- name: {user}@testkit\n  context:\n    cluster: testkit\n    user: {user}\n    namespace: default\ncurrent-context: {user}@testkit\nusers:\n- name: {user}\n  user:\n    token: {token}\n",
                url = self.url(),
                user = u.name,
                token = u.token,
            );
            let path = self.kubeconfig_path(&u.name);
            std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
            if let Some(c) = self.client_cert(&u.name) {
                let b64 = |s: &str| crate::util::base64::encode(s.as_bytes());
                let text = format!(
                    "apiVersion: v1\nkind: Config\nclusters:\n- name: testkit\n  cluster:\n    server: {url}\n    certificate-authority-data: {ca}\ncontexts:\n- name: {user}@testkit\n  context:\n    cluster: testkit\n    user: {user}\n    namespace: default\ncurrent-context: {user}@testkit\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\n",
                    url = self.url(),
                    user = u.name,
                    cert = b64(&c.cert_pem),
                    key = b64(&c.key_pem),
                );
                let path = self.kubeconfig_cert_path(&u.name);
                std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
            }
        }
        std::fs::write(self.dir.join("ca.crt"), &self.certs.ca_pem).map_err(|e| format!("writing ca.crt: {e}"))
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.shared.store.lock().unwrap_or_else(PoisonError::into_inner)
    }

    // ---- direct access (no HTTP): seeding and reading for tests and benchmarks ----

    fn resource_for(&self, api_version: &str, kind: &str) -> Result<Arc<ResourceInfo>, ApiError> {
        self.store()
            .registry
            .lookup_kind(api_version, kind)
            .ok_or_else(|| ApiError::new(404, "NotFound", format!("no resource serves {kind} in {api_version}"), None))
    }

    fn namespace_of(info: &ResourceInfo, obj: &Value) -> String {
        if !info.namespaced {
            return String::new();
        }
        obj.pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
            .to_string()
    }

    /// Creates an object (apiVersion/kind pick the resource; namespace defaults to `default`).
    /// Watches see it like any other write.
    pub fn create_object(&self, obj: Value) -> Result<Value, ApiError> {
        let info = self.resource_for(obj["apiVersion"].as_str().unwrap_or(""), obj["kind"].as_str().unwrap_or(""))?;
        let ns = Self::namespace_of(&info, &obj);
        self.store().create(&info, &ns, obj, &WriteOpts { dry_run: false, manager: "testkit".into() })
    }

    /// Replaces an existing object (no resourceVersion check unless the object carries one).
    pub fn update_object(&self, mut obj: Value) -> Result<Value, ApiError> {
        let info = self.resource_for(obj["apiVersion"].as_str().unwrap_or(""), obj["kind"].as_str().unwrap_or(""))?;
        let ns = Self::namespace_of(&info, &obj);
        let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_string();
        let mut st = self.store();
        if obj.pointer("/metadata/resourceVersion").is_none() {
            let cur = st.get(&info, &ns, &name)?;
            obj["metadata"]["resourceVersion"] = json!(cur.rv.to_string());
        }
        st.update(&info, &ns, &name, obj, &WriteOpts { dry_run: false, manager: "testkit".into() }, false, true)
    }

    /// Creates the object, or replaces it when it exists (how the sandbox applies manifests).
    pub fn upsert_object(&self, obj: Value) -> Result<Value, ApiError> {
        match self.create_object(obj.clone()) {
            Err(e) if e.code == 409 && e.reason() == "AlreadyExists" => self.update_object(obj),
            other => other,
        }
    }

    pub fn get_object(&self, api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        let info = self.resource_for(api_version, kind).ok()?;
        self.store().get(&info, namespace.unwrap_or(""), name).ok().map(|o| o.value())
    }

    /// Every object of a kind, optionally in one namespace, in (namespace, name) order.
    pub fn list_objects(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        let Ok(info) = self.resource_for(api_version, kind) else { return Vec::new() };
        let everything = crate::selector::LabelSelector::everything();
        let fields = crate::selector::FieldSelector::default();
        let p = store::ListParams {
            labels: &everything,
            fields: &fields,
            limit: None,
            continue_token: None,
            resource_version: None,
            rv_match: None,
        };
        self.store().list(&info, namespace, &p).map(|r| r.items.iter().map(|o| o.value()).collect()).unwrap_or_default()
    }

    /// Deletes like a DELETE request: Ok(Some(obj)) while finalizers keep it, Ok(None) once gone.
    pub fn delete_object(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, ApiError> {
        let info = self.resource_for(api_version, kind)?;
        match self.store().delete(&info, namespace.unwrap_or(""), name, &DeleteOpts::default())? {
            DeleteOutcome::Gone(_) => Ok(None),
            DeleteOutcome::Pending(v) => Ok(Some(v)),
        }
    }

    /// Applies every document of a YAML text with [`ApiServer::upsert_object`]; CRDs first.
    pub fn apply_yaml(&self, text: &str) -> Result<Vec<Value>, String> {
        let mut docs = crate::util::yaml::load_all(text).map_err(|e| e.to_string())?;
        docs.sort_by_key(|d| match d["kind"].as_str() {
            Some("Namespace") => 0,
            Some("CustomResourceDefinition") => 1,
            _ => 2,
        });
        let mut out = Vec::new();
        for d in docs {
            let what = format!(
                "{} {}",
                d["kind"].as_str().unwrap_or("?"),
                d.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("?")
            );
            out.push(self.upsert_object(d).map_err(|e| format!("{what}: {}", e.message()))?);
        }
        Ok(out)
    }

    pub fn resource_version(&self) -> u64 {
        self.store().current_rv()
    }

    pub fn object_count(&self) -> usize {
        self.store().object_count()
    }

    // ---- fault injection ----

    /// Ends every open watch now (clients see the stream close normally).
    pub fn close_watches(&self) {
        self.shared.close_watches.send_modify(|g| *g += 1);
    }

    /// The next `count` requests matching fail with `code` (429/503 carry Retry-After when given).
    pub fn fail_next(&self, matcher: Matcher, count: u32, code: u16, retry_after: Option<u64>) {
        self.shared.faults.fail_next(matcher, count, code, retry_after);
    }

    /// Uses left of the `fail_next`/`respond_next` rules and watch injections (0: all were hit).
    pub fn pending_faults(&self) -> u64 {
        self.shared.faults.pending()
    }

    /// Drops every pending `fail_next` and `respond_next` rule (a storm that ends now).
    pub fn clear_failures(&self) {
        self.shared.faults.clear_failures();
    }

    /// The next `count` matching requests get exactly `code` and `body` (served as
    /// `application/json`): a Status whose message echoes the object, a webhook's denial, truncated
    /// JSON, a list whose items are not objects.
    pub fn respond_next(&self, matcher: Matcher, count: u32, code: u16, body: impl Into<hyper::body::Bytes>) {
        self.shared.faults.respond_next(matcher, count, code, body.into());
    }

    /// The next `count` watches matching `matcher` (open now or opened later) get `frames` written
    /// into their stream verbatim, before their next event: lines that are not JSON, wrong kinds,
    /// a line of many megabytes.
    pub fn inject_watch(&self, matcher: Matcher, count: u32, frames: Vec<hyper::body::Bytes>) {
        self.shared.faults.inject_watch(matcher, count, frames);
    }

    /// Delays matching requests (None: no latency).
    pub fn set_latency(&self, matcher: Matcher, latency: Option<Duration>) {
        self.shared.faults.set_latency(matcher, latency);
    }

    /// Matching requests hang until [`ApiServer::release`] (a network partition, seen from clients);
    /// open watches matching verb `watch` stop delivering events until then.
    pub fn hang(&self, matcher: Matcher) {
        self.shared.faults.hang(matcher);
    }

    pub fn release(&self) {
        self.shared.faults.release();
    }

    /// Drops the watch history: resuming from any earlier resourceVersion gets 410 Expired.
    pub fn compact(&self) {
        self.store().compact();
    }

    /// Drops every connection and watch, keeps the data, the address and the CA.
    pub fn restart(&self) {
        self.shared.connections.send_modify(|g| *g += 1);
        self.close_watches();
    }

    // ---- accounting ----

    pub fn stats(&self) -> StatsSnapshot {
        self.shared.stats.snapshot()
    }

    pub fn reset_stats(&self) {
        self.shared.stats.reset();
    }

    pub fn open_watches(&self) -> i64 {
        self.shared.stats.open_watches()
    }

    /// Requests waiting on a [`ApiServer::hang`] partition right now (not watches).
    pub fn hung_requests(&self) -> i64 {
        self.shared.stats.hung_requests()
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        self.shared.connections.send_modify(|g| *g += 1);
        self.close_watches();
        self.release();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn accept_loop(listener: TcpListener, tls: Arc<rustls::ServerConfig>, shared: Weak<Shared>) {
    loop {
        let Ok((tcp, _peer)) = listener.accept().await else { continue };
        let Some(s) = shared.upgrade() else { return };
        let tls = tls.clone();
        tokio::spawn(serve_connection(s, tcp, tls));
    }
}

async fn serve_connection(shared: Arc<Shared>, tcp: tokio::net::TcpStream, tls: Arc<rustls::ServerConfig>) {
    let _ = tcp.set_nodelay(true);
    let mut restart = shared.connections.subscribe();
    let Ok(tls::Accepted { io, h2, client_cert, pump }) = tls::accept(tcp, tls).await else { return };
    // The verifier checked the chain; the CommonName of certificates we issued names the user.
    let cert_user: Option<Arc<str>> = client_cert
        .and_then(|der| shared.client_certs.iter().find(|c| c.der == der).map(|c| Arc::from(c.user.as_str())));
    let svc_shared = shared.clone();
    let svc = service_fn(move |req| http::handle(svc_shared.clone(), req, cert_user.clone()));
    let io = TokioIo::new(io);
    let conn = async move {
        if h2 {
            // kube-apiserver's --http2-max-streams-per-connection default; hyper's own is 200.
            let _ =
                http2::Builder::new(TokioExecutor::new()).max_concurrent_streams(1000).serve_connection(io, svc).await;
        } else {
            let _ = http1::Builder::new().serve_connection(io, svc).await;
        }
    };
    drop(shared);
    tokio::select! {
        _ = async { tokio::join!(conn, pump) } => {}
        _ = restart.changed() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_can_be_shared_across_tasks() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<ApiServer>();
        send_sync::<StatsSnapshot>();
    }

    #[tokio::test]
    async fn start_writes_kubeconfigs_and_seeds_namespaces() {
        let s = ApiServer::start(ServerOptions { seed: Some(1), ..Default::default() }).await.unwrap();
        assert!(s.url().starts_with("https://127.0.0.1:"));
        assert!(s.kubeconfig_path("admin").exists() && s.kubeconfig_cert_path("admin").exists());
        assert_eq!(s.list_objects("v1", "Namespace", None).len(), 4);
        let dir = s.dir().to_path_buf();
        drop(s);
        assert!(!dir.exists(), "the kubeconfig directory goes with the server");
    }
}
