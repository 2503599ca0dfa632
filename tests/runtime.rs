//! The controller runtime (watcher + cache, leader election) over our client against the in-memory
//! API server: request budgets, resumption, relists and leases as a real cluster would see them.
#![cfg(feature = "testkit")]

#[path = "common/cluster.rs"]
mod cluster;
#[path = "common/wait.rs"]
mod wait;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster::widget_crd;
use kubemirror::cache::{Reflected, Store};
use kubemirror::client::{ApiResource, Client, ClientOptions, LoadOptions, RetryPolicy};
use kubemirror::leader::{ClientLeases, LeaderConfig, LeaderElector, Leadership};
use kubemirror::model::{ObjectKey, SourceObject};
use kubemirror::testkit::{ApiServer, Matcher, ServerOptions};
use kubemirror::util::rand::Rng;
use kubemirror::watcher::{ClientListWatch, WatchConfig, WatchHealth, Watcher};
use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};
use wait::eventually;

const ENABLED: &str = "kubemirror.raczylo.com/enabled=true";

async fn server(opts: ServerOptions) -> ApiServer {
    ApiServer::start(ServerOptions { seed: Some(11), ..opts }).await.unwrap()
}

async fn client(s: &ApiServer) -> Client {
    let load = LoadOptions { kubeconfig: Some(s.kubeconfig_path("admin")), context: None };
    Client::from_options(&load, ClientOptions { qps: 0.0, ..Default::default() }).await.unwrap()
}

fn secret(ns: &str, name: &str, enabled: bool) -> Value {
    let labels = if enabled { json!({"kubemirror.raczylo.com/enabled": "true"}) } else { json!({}) };
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns, "labels": labels,
           "annotations": {"kubemirror.raczylo.com/sync": "true"}}, "data": {"k": "dg=="}})
}

/// A source watcher feeding a store; everything it reported, in order.
struct Running {
    store: Store<SourceObject>,
    health: Arc<WatchHealth>,
    reports: Arc<Mutex<Vec<String>>>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.unwrap();
    }

    fn reports(&self) -> Vec<String> {
        self.reports.lock().unwrap().clone()
    }
}

fn start_watcher(client: &Client, page_size: u32, watch_list: bool) -> Running {
    let api = ClientListWatch { client: client.clone(), resource: ApiResource::secrets(), namespace: None };
    let cfg = WatchConfig {
        label_selector: Some(ENABLED.into()),
        page_size,
        watch_list,
        ..WatchConfig::new("Secret.v1 sources")
    };
    let watcher = Watcher::new(api, cfg, Rng::seeded(5));
    let health = watcher.health();
    let store: Store<SourceObject> = Store::new(Default::default());
    let reports: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = {
        let (store, reports) = (store.clone(), reports.clone());
        move |ev| {
            let line = match store.apply_watcher_event(ev) {
                Reflected::Nothing => return,
                Reflected::Applied(u) => format!("{} {}", if u.old.is_some() { "Updated" } else { "Added" }, u.new.key),
                Reflected::Deleted(r) => format!("Deleted {}", r.key),
                Reflected::Reset(r) => {
                    let mut gone: Vec<String> = r.removed.iter().map(|r| r.key.to_string()).collect();
                    gone.sort();
                    format!("Reset changed={} removed={gone:?}", r.changed.len())
                }
            };
            reports.lock().unwrap().push(line);
        }
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(watcher.run(sink, async move {
        let _ = stopped.await;
    }));
    Running { store, health, reports, stop: Some(stop), task }
}

fn counts(s: &ApiServer) -> (u64, u64) {
    let st = s.stats();
    (st.count("list", "secrets"), st.count("watch", "secrets"))
}

#[tokio::test]
async fn startup_is_one_page_chain_and_one_watch_and_only_opted_in_objects_are_cached() {
    let s = server(ServerOptions::default()).await;
    for i in 0..1100 {
        s.create_object(secret("default", &format!("s{i}"), true)).unwrap();
    }
    for i in 0..50 {
        s.create_object(secret("default", &format!("other{i}"), false)).unwrap();
    }
    let c = client(&s).await;
    s.reset_stats();
    let w = start_watcher(&c, 500, false);
    w.store.wait_synced().await;
    assert_eq!(w.store.len(), 1100);
    eventually("the watch to open", || s.open_watches() == 1).await;
    // 1,100 objects at 500 per page: three list requests, then one watch. Nothing else.
    assert_eq!(counts(&s), (3, 1));
    assert_eq!(s.stats().total(), 4, "{:?}", s.stats().requests);
    // Events flow into the cache.
    s.create_object(secret("default", "late", true)).unwrap();
    eventually("the new source", || w.store.contains(&ObjectKey::new("default", "late"))).await;
    assert!(w.reports().contains(&"Added default/late".to_string()));
    w.stop().await;
}

#[tokio::test]
async fn a_dropped_watch_resumes_without_a_list() {
    let s = server(ServerOptions::default()).await;
    s.create_object(secret("default", "a", true)).unwrap();
    let c = client(&s).await;
    let w = start_watcher(&c, 500, false);
    w.store.wait_synced().await;
    eventually("the watch to open", || s.open_watches() == 1).await;
    for round in 0..3 {
        s.close_watches();
        s.create_object(secret("default", &format!("b{round}"), true)).unwrap();
        let key = ObjectKey::new("default", &format!("b{round}"));
        eventually("the event after the resume", || w.store.contains(&key)).await;
    }
    let (lists, watches) = counts(&s);
    assert_eq!(lists, 1, "no relist after dropped watches");
    assert_eq!(watches, 4);
    assert_eq!(w.health.relists(), 0);
    w.stop().await;
}

#[tokio::test]
async fn a_compacted_history_relists_once_and_reports_deletions_missed_meanwhile() {
    let s = server(ServerOptions::default()).await;
    for name in ["keep", "gone"] {
        s.create_object(secret("default", name, true)).unwrap();
    }
    let c = client(&s).await;
    let w = start_watcher(&c, 500, false);
    w.store.wait_synced().await;
    eventually("the watch to open", || s.open_watches() == 1).await;
    // Partition the watcher, change the world, compact the history, heal.
    s.hang(Matcher::new(Some("watch"), Some("secrets")));
    s.close_watches();
    eventually("the watch to close", || s.open_watches() == 0).await;
    s.delete_object("v1", "Secret", Some("default"), "gone").unwrap();
    s.create_object(secret("default", "new", true)).unwrap();
    s.compact();
    s.release();
    eventually("the relist", || w.health.relists() == 1).await;
    eventually("the watch to reopen", || s.open_watches() == 1).await;
    assert!(!w.store.contains(&ObjectKey::new("default", "gone")));
    assert!(w.store.contains(&ObjectKey::new("default", "new")));
    let reports = w.reports();
    assert_eq!(reports.last().unwrap(), "Reset changed=1 removed=[\"default/gone\"]", "{reports:?}");
    assert_eq!(counts(&s).0, 2, "exactly one relist");
    w.stop().await;
}

#[tokio::test]
async fn bookmarks_move_the_resume_point_past_a_compaction() {
    let s = server(ServerOptions { bookmark_interval: Duration::from_millis(50), ..Default::default() }).await;
    s.create_object(secret("default", "a", true)).unwrap();
    let c = client(&s).await;
    let w = start_watcher(&c, 500, false);
    w.store.wait_synced().await;
    eventually("the watch to open", || s.open_watches() == 1).await;
    // Writes the watcher does not see (not opted in) move the server's resourceVersion on; only a
    // bookmark tells the watcher about it.
    for i in 0..5 {
        s.create_object(secret("default", &format!("quiet{i}"), false)).unwrap();
    }
    let rv_after = s.resource_version();
    // The quiet writes are filtered out, so anything the watcher processes from now on is a bookmark
    // carrying a resourceVersion at least `rv_after`.
    let written = Instant::now();
    eventually("a bookmark after the quiet writes", || w.health.age() < written.elapsed()).await;
    s.compact();
    s.close_watches();
    s.create_object(secret("default", "after", true)).unwrap();
    eventually("the event after the resume", || w.store.contains(&ObjectKey::new("default", "after"))).await;
    assert_eq!(counts(&s).0, 1, "resumed from the bookmark (rv {rv_after}) without a relist");
    assert_eq!(w.health.relists(), 0);
    w.stop().await;
}

#[tokio::test]
async fn watch_list_syncs_with_a_single_request() {
    let s = server(ServerOptions { minor_version: 34, ..Default::default() }).await;
    for i in 0..20 {
        s.create_object(secret("default", &format!("s{i}"), true)).unwrap();
    }
    let c = client(&s).await;
    s.reset_stats();
    let w = start_watcher(&c, 500, true);
    w.store.wait_synced().await;
    assert_eq!(w.store.len(), 20);
    assert_eq!(counts(&s), (0, 1));
    s.create_object(secret("default", "late", true)).unwrap();
    eventually("the new source", || w.store.contains(&ObjectKey::new("default", "late"))).await;
    w.stop().await;
}

#[tokio::test]
async fn transient_errors_back_off_and_recover() {
    let s = server(ServerOptions::default()).await;
    s.create_object(secret("default", "a", true)).unwrap();
    let c = client(&s).await;
    // The client retries 5xx itself; a 403 (RBAC not there yet) reaches the watcher, which backs off.
    s.fail_next(Matcher::new(Some("list"), Some("secrets")), 1, 403, None);
    let w = start_watcher(&c, 500, false);
    w.store.wait_synced().await;
    assert_eq!(w.health.errors(), 1);
    assert_eq!(counts(&s).0, 2);
    assert_eq!(w.store.len(), 1);
    w.stop().await;
}

// ---- leader election ----
//
// Timing claims are checked against lease durations several times longer than the scheduling a
// loaded 2-core machine may add: "at once" means well inside the lease duration, "before anyone
// could take over" means well before the lease expires, and a take-over after a crash must not
// come before the lease expired as the standby measured it.

fn lease_cfg(id: &str, lease: Duration, renew: Duration) -> LeaderConfig {
    LeaderConfig {
        lease_duration: lease,
        renew_deadline: renew,
        retry_period: Duration::from_millis(200),
        ..LeaderConfig::new("kubemirror", "kube-system", id)
    }
}

struct Candidate {
    rx: watch::Receiver<Leadership>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), kubemirror::leader::LeaderError>>,
}

fn candidate(c: &Client, cfg: LeaderConfig, seed: u64) -> Candidate {
    let (el, rx) = LeaderElector::new(ClientLeases::new(c.clone(), &cfg), cfg, Rng::seeded(seed)).unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(el.run(async move {
        let _ = stopped.await;
    }));
    Candidate { rx, stop: Some(stop), task }
}

fn lease(s: &ApiServer) -> Value {
    s.get_object("coordination.k8s.io/v1", "Lease", Some("kube-system"), "kubemirror").unwrap()
}

/// GETs of the Lease since the last `reset_stats`: a renewing leader only PUTs, so these are the
/// standby's observations.
fn lease_reads(s: &ApiServer) -> u64 {
    s.stats().count("get", "leases")
}

#[tokio::test]
async fn one_leader_graceful_handover_and_a_client_go_compatible_lease() {
    let s = server(ServerOptions::default()).await;
    let c = client(&s).await;
    let (lease_duration, renew) = (Duration::from_secs(10), Duration::from_secs(2));
    let a = candidate(&c, lease_cfg("pod-a_x1", lease_duration, renew), 1);
    eventually("a to lead", || a.rx.borrow().is_leader()).await;
    s.reset_stats();
    let mut b = candidate(&c, lease_cfg("pod-b_x2", lease_duration, renew), 2);
    // b sees a held, renewed lease several times and leaves it alone.
    eventually("b to observe the held lease five times", || lease_reads(&s) >= 5).await;
    assert!(!b.rx.borrow().is_leader());
    let l = lease(&s);
    assert_eq!(l["spec"]["holderIdentity"], "pod-a_x1");
    assert_eq!(l["spec"]["leaseDurationSeconds"], 10);
    assert_eq!(l["spec"]["leaseTransitions"], 0);
    let renew_time = l["spec"]["renewTime"].as_str().unwrap();
    assert_eq!(renew_time.len(), "2025-01-01T00:00:00.000000Z".len(), "MicroTime with 6 digits: {renew_time}");

    // Graceful stop of the leader: released at once, so b takes over after about a retry period,
    // far sooner than the 10 s a crashed leader's lease takes to expire.
    let mut a = a;
    a.stop.take().unwrap().send(()).unwrap();
    assert!(a.task.await.unwrap().is_ok());
    let t0 = Instant::now();
    eventually("b to lead", || b.rx.borrow().is_leader()).await;
    assert!(t0.elapsed() < lease_duration / 2, "{:?}", t0.elapsed());
    let l = lease(&s);
    assert_eq!(l["spec"]["holderIdentity"], "pod-b_x2");
    assert_eq!(l["spec"]["leaseTransitions"], 1);

    // A leader whose renewals fail stops writing once its renew deadline (2 s) passes, and exits
    // with an error: well before its lease (10 s) could expire for anyone else.
    s.fail_next(Matcher::new(None, Some("leases")), 1000, 500, None);
    let t0 = Instant::now();
    eventually("b to step down", || !b.rx.borrow().is_leader()).await;
    assert!(t0.elapsed() < lease_duration - renew, "{:?}", t0.elapsed());
    let res = b.task.await.unwrap();
    assert!(res.is_err(), "{res:?}");
    b.stop.take();
}

#[tokio::test]
async fn a_killed_leader_is_replaced_once_its_lease_expires() {
    let s = server(ServerOptions::default()).await;
    let c = client(&s).await;
    let (lease_duration, renew) = (Duration::from_secs(3), Duration::from_secs(2));
    let a = candidate(&c, lease_cfg("pod-a_y1", lease_duration, renew), 1);
    eventually("a to lead", || a.rx.borrow().is_leader()).await;
    s.reset_stats();
    let b = candidate(&c, lease_cfg("pod-b_y2", lease_duration, renew), 2);
    eventually("b to observe the lease", || lease_reads(&s) >= 1).await;
    // Killed without releasing: only the lease's expiry lets b in.
    a.task.abort();
    let t0 = Instant::now();
    let seen = lease_reads(&s);
    eventually("b to lead", || b.rx.borrow().is_leader()).await;
    // Never before the lease expired as b measured it: at least the lease duration after a's last
    // renewal, which was at most a retry period before the kill.
    assert!(t0.elapsed() >= lease_duration - Duration::from_millis(400), "{:?}", t0.elapsed());
    assert!(lease_reads(&s) > seen, "b kept watching the lease meanwhile");
    assert_eq!(lease(&s)["spec"]["leaseTransitions"], 1);
}

/// Runs one watcher into `apply` until the returned sender fires.
fn run_into(
    client: &Client,
    resource: ApiResource,
    cfg: WatchConfig,
    apply: impl FnMut(kubemirror::watcher::Event) + Send + 'static,
) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let api = ClientListWatch { client: client.clone(), resource, namespace: None };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(Watcher::new(api, cfg, Rng::seeded(9)).run(apply, async move {
        let _ = stopped.await;
    }));
    (stop, task)
}

#[tokio::test]
async fn metadata_only_mirrors_and_namespaces_fill_the_cache_and_its_index() {
    let s = server(ServerOptions::default()).await;
    for ns in ["team-a", "team-b"] {
        s.create_object(json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": ns, "labels": {"env": "prod"}}}))
            .unwrap();
        s.create_object(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": ns,
                "labels": {"kubemirror.raczylo.com/mirror": "true",
                           "kubemirror.raczylo.com/managed-by": "kubemirror"},
                "annotations": {"kubemirror.raczylo.com/source-namespace": "default",
                                "kubemirror.raczylo.com/source-name": "db",
                                "kubemirror.raczylo.com/source-content-hash": "h1"}},
            "data": {"password": "c2VjcmV0"}}))
            .unwrap();
    }
    let c = client(&s).await;
    let cache = kubemirror::cache::Cache::new();
    let t = cache.add_type("Secret.v1");
    let mirrors_cfg = WatchConfig {
        label_selector: Some("kubemirror.raczylo.com/mirror=true".into()),
        metadata_only: true,
        ..WatchConfig::new("Secret.v1 mirrors")
    };
    let ns_cfg = WatchConfig { metadata_only: true, ..WatchConfig::new("namespaces") };
    let mirrors = t.mirrors.clone();
    let (stop_m, task_m) = run_into(&c, ApiResource::secrets(), mirrors_cfg, move |ev| {
        mirrors.apply_watcher_event(ev);
    });
    let namespaces = cache.namespaces.clone();
    let (stop_n, task_n) = run_into(&c, ApiResource::namespaces(), ns_cfg, move |ev| {
        namespaces.apply_watcher_event(ev);
    });
    t.mirrors.wait_synced().await;
    cache.namespaces.wait_synced().await;
    let of_source = t.mirrors.mirrors_of(&ObjectKey::new("default", "db"));
    assert_eq!(of_source.len(), 2);
    assert!(of_source.iter().all(|m| m.managed && m.content_hash().map(|h| &**h) == Some("h1")));
    assert_eq!(cache.namespaces.get(&"team-a".into()).unwrap().label("env"), Some("prod"));
    // One list per stream, nothing else.
    assert_eq!(s.stats().count("list", "secrets"), 1);
    assert_eq!(s.stats().count("list", "namespaces"), 1);
    let _ = (stop_m.send(()), stop_n.send(()));
    task_m.await.unwrap();
    task_n.await.unwrap();
}

// ---- discovery ----

#[tokio::test]
async fn discovery_finds_the_mirrorable_built_ins_and_follows_crds() {
    use kubemirror::discovery::{DenyList, TypeRef, discover, parse_type_list, resolve};
    let s = server(ServerOptions::default()).await;
    let c = client(&s).await;
    let deny = DenyList::builtin();
    let first = discover(&c, &deny).await.unwrap();
    let names: Vec<String> = first.resources.iter().map(|r| TypeRef::of(r).to_string()).collect();
    // The built-in GA types of a default server minus the deny list: BEHAVIOR.md §J's 15 types less
    // Role and RoleBinding, which would carry RBAC grants across namespaces.
    assert_eq!(
        names,
        vec![
            "ConfigMap.v1",
            "DaemonSet.v1.apps",
            "Deployment.v1.apps",
            "Ingress.v1.networking.k8s.io",
            "LimitRange.v1",
            "NetworkPolicy.v1.networking.k8s.io",
            "PodDisruptionBudget.v1.policy",
            "PodTemplate.v1",
            "ResourceQuota.v1",
            "Secret.v1",
            "Service.v1",
            "ServiceAccount.v1",
            "StatefulSet.v1.apps",
        ]
    );
    assert!(first.failed.is_empty());

    s.create_object(widget_crd()).unwrap();
    let second = discover(&c, &deny).await.unwrap();
    let changes = second.changes_from(&first.resources);
    assert_eq!(changes.added.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>(), vec!["Widget"]);
    assert!(changes.removed.is_empty());
    assert_eq!(
        resolve(&c, &parse_type_list("Widget.v1.example.com").unwrap(), &deny).await.unwrap()[0].plural,
        "widgets"
    );

    s.delete_object("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, "widgets.example.com").unwrap();
    let third = discover(&c, &deny).await.unwrap();
    let changes = third.changes_from(&second.resources);
    assert!(changes.added.is_empty());
    assert_eq!(changes.removed.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>(), vec!["Widget"]);
    let err = resolve(&c, &parse_type_list("Widget.v1.example.com").unwrap(), &deny).await.unwrap_err();
    assert!(err.contains("Widget.v1.example.com"), "{err}");
}

#[tokio::test]
async fn a_failing_aggregated_api_does_not_stop_discovery_of_the_others() {
    use kubemirror::discovery::{DenyList, TypeRef, discover};
    let s = server(ServerOptions::default()).await;
    // No client retries: the test is about discovery's handling of the failure, not the backoff.
    let load = LoadOptions { kubeconfig: Some(s.kubeconfig_path("admin")), context: None };
    let no_retry =
        ClientOptions { qps: 0.0, retry: RetryPolicy { max_retries: 0, ..Default::default() }, ..Default::default() };
    let c = Client::from_options(&load, no_retry).await.unwrap();
    s.create_object(widget_crd()).unwrap();
    // Like metrics-server having a bad day: its group is listed, its document answers 503.
    s.fail_next(Matcher::new(Some("get"), Some("/apis/example.com/v1")), 100, 503, None);
    let found = discover(&c, &DenyList::builtin()).await.unwrap();
    assert_eq!(found.failed, vec!["example.com/v1"]);
    let names: Vec<String> = found.resources.iter().map(|r| TypeRef::of(r).to_string()).collect();
    assert!(names.contains(&"Secret.v1".to_string()) && names.contains(&"Deployment.v1.apps".to_string()), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("Widget")));
}

// ---- informers ----

#[tokio::test]
async fn informers_fill_the_cache_and_follow_rediscovery_without_disturbing_other_types() {
    use kubemirror::discovery::{Changes, DenyList, discover};
    use kubemirror::informers::{InformerOptions, Informers, Update};
    let s = server(ServerOptions::default()).await;
    s.create_object(secret("default", "db", true)).unwrap();
    let c = client(&s).await;
    let cache = kubemirror::cache::Cache::new();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let on_update = {
        let seen = seen.clone();
        Arc::new(move |u: Update| {
            let line = match u {
                Update::Sources(r, Reflected::Reset(reset)) => {
                    format!("{} sources reset {}", r.kind, reset.changed.len())
                }
                Update::Mirrors(r, Reflected::Reset(_)) => format!("{} mirrors reset", r.kind),
                Update::Namespaces(Reflected::Reset(_)) => "namespaces reset".to_string(),
                Update::Sources(r, _) => format!("{} source", r.kind),
                Update::Mirrors(r, _) => format!("{} mirror", r.kind),
                Update::Namespaces(_) => "namespace".to_string(),
            };
            seen.lock().unwrap().push(line);
        })
    };
    let mut informers = Informers::new(c.clone(), cache.clone(), InformerOptions::default(), on_update);
    informers.start_namespaces();
    informers.add(&ApiResource::secrets());
    eventually("the first sync", || cache.is_synced()).await;
    let has = |line: &str| seen.lock().unwrap().iter().any(|l| l == line);
    assert!(has("Secret sources reset 1") && has("Secret mirrors reset") && has("namespaces reset"));
    assert_eq!(informers.health().len(), 3);
    eventually("three watches", || s.open_watches() == 3).await;

    // A CRD appears: rediscovery adds its watchers; Secret's watchers are left alone.
    s.create_object(widget_crd()).unwrap();
    let found = discover(&c, &DenyList::builtin()).await.unwrap();
    let widget = found.resources.iter().find(|r| r.kind == "Widget").unwrap().clone();
    informers.apply(&Changes { added: vec![widget.clone()], removed: vec![] });
    eventually("the widget sync", || cache.is_synced() && cache.type_names().len() == 2).await;
    eventually("five watches", || s.open_watches() == 5).await;
    assert_eq!(s.stats().count("list", "secrets"), 2, "one list for sources and one for mirrors, still");

    // The CRD goes: its watchers stop and its records are dropped.
    informers.apply(&Changes { added: vec![], removed: vec![widget] });
    assert_eq!(informers.watched(), vec![ApiResource::secrets()]);
    assert_eq!(cache.type_names().len(), 1);
    eventually("three watches again", || s.open_watches() == 3).await;
    s.create_object(secret("default", "late", true)).unwrap();
    eventually("the late source", || has("Secret source")).await;
    informers.shutdown().await;
}
