//! The chaos suite: faults injected into the in-memory API server while the real controller
//! converges a fleet of a few hundred mirrors (16 sources x 24 namespaces, foreign objects among
//! them). After each fault heals: exactly the desired mirrors (none missing, stale, orphaned or
//! duplicated, compared by content), every foreign object untouched byte for byte, and a quiet
//! request log (no hot loop). Seeds are fixed; faults are timed by conditions (so many mirrors
//! written), never by sleeps, except the partition's deliberate length.
#![cfg(feature = "testkit")]

#[path = "common/cluster.rs"]
mod cluster;
#[path = "common/fleet.rs"]
mod fleet;
#[path = "common/controller.rs"]
mod harness;
#[path = "common/wait.rs"]
mod wait;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use fleet::{Fleet, Seeded};
use kubemirror::controller::Exit;
use kubemirror::options::Options;
use kubemirror::testkit::{ApiServer, Matcher, Rule, ServerOptions, User};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use wait::eventually;

/// How long convergence may take after a fault heals on a loaded 2-core machine.
const CONVERGE: Duration = Duration::from_secs(40);

fn user(name: &str) -> User {
    User { name: name.into(), token: format!("{name}-token"), rules: vec![Rule::all()] }
}

async fn server(seed: u64) -> ApiServer {
    // RUST_LOG=kubemirror=info shows the controller's side of a failing test.
    let _ = env_logger::builder().is_test(true).try_init();
    ApiServer::start(ServerOptions {
        seed: Some(seed),
        users: vec![User::admin(), user("a"), user("b")],
        bookmark_interval: Duration::from_millis(200),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// Seeds the default fleet and slows creates a little, so faults land mid-convergence.
async fn fleet_server(seed: u64) -> (ApiServer, Seeded) {
    let s = server(seed).await;
    let seeded = Fleet { seed, ..Fleet::default() }.seed(&s);
    s.set_latency(Matcher::new(Some("create"), None), Some(Duration::from_millis(15)));
    (s, seeded)
}

/// Waits until at least `fraction` of the fleet's mirrors exist: the moment to strike.
async fn mid_convergence(s: &ApiServer, seeded: &Seeded, fraction: f64) {
    let want = (seeded.fleet.mirrors() as f64 * fraction) as usize;
    eventually(&format!("{want} mirrors written"), || fleet::mirror_count(s) >= want).await;
}

/// Checks the end state and the quiet window after a heal.
async fn assert_healed(s: &ApiServer, seeded: &Seeded) {
    s.set_latency(Matcher::any(), None);
    fleet::converged(s, seeded, CONVERGE).await;
    let st = fleet::quiet_window(s, 3).await;
    fleet::assert_quiet(&st, seeded.fleet.conflicts as u64);
}

/// The controller restarted whenever it exits, as the kubelet would: after a lost lease (exit 2) or
/// a start-up failure (exit 1).
struct Supervised {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Exit>,
    restarts: Arc<AtomicU32>,
}

fn supervise(s: &ApiServer, user: &str, opts: Options) -> Supervised {
    let kubeconfig = s.kubeconfig_path(user);
    let restarts = Arc::new(AtomicU32::new(0));
    let (stop, mut stopped) = oneshot::channel::<()>();
    let counter = restarts.clone();
    let task = tokio::spawn(async move {
        loop {
            let load = kubemirror::client::LoadOptions { kubeconfig: Some(kubeconfig.clone()), context: None };
            let opts_c = kubemirror::client::ClientOptions { qps: 0.0, ..Default::default() };
            let client = kubemirror::client::Client::from_options(&load, opts_c).await.unwrap();
            let (inner_stop, inner_stopped) = oneshot::channel::<()>();
            let mut run = tokio::spawn(kubemirror::controller::run(
                opts.clone(),
                client,
                None,
                async move {
                    let _ = inner_stopped.await;
                },
                |_| {},
            ));
            let ended = tokio::select! {
                r = &mut run => r,
                _ = &mut stopped => {
                    let _ = inner_stop.send(());
                    return run.await.unwrap().unwrap_or(Exit::Clean);
                }
            };
            match ended.unwrap() {
                Ok(Exit::Clean) => return Exit::Clean,
                Ok(Exit::LostLeadership(_)) | Err(_) => {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    });
    Supervised { stop: Some(stop), task, restarts }
}

impl Supervised {
    async fn stop(mut self) -> (Exit, u32) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let exit = self.task.await.unwrap();
        (exit, self.restarts.load(Ordering::SeqCst))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_watch_dropped_repeatedly_resumes_without_relisting() {
    let (s, seeded) = fleet_server(101).await;
    let c = harness::start(&s, "admin", fleet::options(true)).await;
    mid_convergence(&s, &seeded, 0.2).await;
    let lists_before = fleet::work(&s.stats(), "list");
    for round in 0..12 {
        let opened = s.stats().verb("watch");
        s.close_watches();
        // Strike again once every watcher has come back (five: sources and mirrors of two types,
        // namespaces) and had a bookmark round: a watch dropped before it delivered anything counts
        // as a failure and is retried with backoff, by design.
        eventually(&format!("the watches back after drop {round}"), || {
            s.stats().verb("watch") >= opened + 5 && s.open_watches() >= 5
        })
        .await;
        let events = s.stats().watch_events;
        eventually("a bookmark round", || s.stats().watch_events >= events + 5).await;
    }
    assert_healed(&s, &seeded).await;
    // A dropped watch resumes from its resourceVersion: no list after the first ones (namespaces
    // and two types, sources and mirrors: five listings of one page each).
    assert_eq!(lists_before, 5, "initial listings");
    assert_eq!(c.stop().await, Exit::Clean);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_compacted_mid_stream_relists_and_converges() {
    let (s, seeded) = fleet_server(102).await;
    let c = harness::start(&s, "admin", fleet::options(true)).await;
    mid_convergence(&s, &seeded, 0.2).await;
    for round in 0..3 {
        let lists = s.stats().verb("list");
        // Watches stall, the world moves on, the history is compacted: every resume gets 410.
        s.hang(Matcher::new(Some("watch"), None));
        s.close_watches();
        eventually("the watches closed", || s.open_watches() == 0).await;
        s.update_object({
            let mut o = s.get_object("v1", "Secret", Some(fleet::SOURCE_NS), "s00").unwrap();
            o["data"]["value"] = json!(kubemirror::util::base64::encode(format!("round {round}").as_bytes()));
            o
        })
        .unwrap();
        s.compact();
        s.release();
        eventually(&format!("a relist of every watcher after compaction {round}"), || {
            s.stats().verb("list") >= lists + 5
        })
        .await;
    }
    assert_healed(&s, &seeded).await;
    assert_eq!(c.stop().await, Exit::Clean);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_with_retry_after_is_waited_out_not_hammered() {
    let (s, seeded) = fleet_server(103).await;
    let c = harness::start(&s, "admin", fleet::options(true)).await;
    mid_convergence(&s, &seeded, 0.2).await;
    // Every request on the fleet's kinds is throttled for a while (the Lease is not: a throttled
    // renewal is another test).
    s.reset_stats();
    for r in ["secrets", "configmaps", "events"] {
        s.fail_next(Matcher::new(None, Some(r)), 1_000_000, 429, Some(1));
    }
    let started = tokio::time::Instant::now();
    eventually("throttled requests", || s.stats().verb("create") + s.stats().verb("get") >= 10).await;
    // The storm lasts three seconds of requests being refused.
    let storm_end = started + Duration::from_secs(3);
    eventually("the storm to run its course", || tokio::time::Instant::now() >= storm_end).await;
    let during = s.stats();
    s.clear_failures();
    // With Retry-After: 1 honoured, each of the five workers and five watchers retries about once
    // a second: tens of requests, where a hot loop would send thousands.
    let total = during.total() - during.count("update", "leases") - during.count("get", "leases");
    let secs = started.elapsed().as_secs_f64();
    assert!(total as f64 <= 20.0 * secs + 20.0, "{total} requests in {secs:.1}s of 429s: {:?}", during.requests);
    assert_healed(&s, &seeded).await;
    assert_eq!(c.stop().await, Exit::Clean);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_of_500_and_503_are_retried_until_converged() {
    let (s, seeded) = fleet_server(104).await;
    let c = harness::start(&s, "admin", fleet::options(true)).await;
    for (i, fraction) in [0.1, 0.3, 0.5].into_iter().enumerate() {
        mid_convergence(&s, &seeded, fraction).await;
        let code = if i % 2 == 0 { 500 } else { 503 };
        for r in ["secrets", "configmaps", "events"] {
            s.fail_next(Matcher::new(None, Some(r)), 1_000_000, code, None);
        }
        // A burst is a stretch of time, not a number of requests: a controller backing off would
        // otherwise stretch it forever. Its length is the fault, not a wait for something.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        s.clear_failures();
    }
    assert_healed(&s, &seeded).await;
    assert_eq!(c.stop().await, Exit::Clean);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_restarts_drop_everything_and_are_survived() {
    let (s, seeded) = fleet_server(105).await;
    let c = harness::start(&s, "admin", fleet::options(true)).await;
    for fraction in [0.15, 0.4, 0.65] {
        mid_convergence(&s, &seeded, fraction).await;
        s.restart();
    }
    assert_healed(&s, &seeded).await;
    assert_eq!(c.stop().await, Exit::Clean);
}

/// Every request hangs for `length`, then the network heals. The leader cannot renew its Lease, so
/// it stops writing and exits (code 2 in the binary); the supervisor restarts it, as the kubelet
/// would, and the restarted controller converges.
async fn partition(length: Duration, seed: u64) {
    let (s, seeded) = fleet_server(seed).await;
    let c = supervise(&s, "admin", fleet::options(true));
    mid_convergence(&s, &seeded, 0.2).await;
    s.hang(Matcher::any());
    let healed_at = tokio::time::Instant::now() + length;
    // The partition's length is the fault itself, not a wait for something to happen.
    tokio::time::sleep_until(healed_at).await;
    // While partitioned the world changed: a source edited, a namespace created.
    s.update_object({
        let mut o = s.get_object("v1", "ConfigMap", Some(fleet::SOURCE_NS), "s01").unwrap();
        o["data"]["value"] = json!("changed during the partition");
        o
    })
    .unwrap();
    s.create_object(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "t-late"}})).unwrap();
    s.release();
    assert_healed(&s, &seeded).await;
    assert_eq!(
        fleet::mirrors(&s).keys().filter(|(_, ns, _)| ns == "t-late").count(),
        seeded.fleet.sources / 2,
        "the glob sources reach the namespace created during the partition"
    );
    let (exit, restarts) = c.stop().await;
    assert_eq!(exit, Exit::Clean);
    assert!(restarts <= 3, "{restarts} restarts for one partition");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_30_second_partition_heals_and_converges() {
    partition(Duration::from_secs(30), 106).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_check_sees_missing_stale_orphaned_and_foreign_changes() {
    // The suite's assertions must be able to fail: each kind of damage is noticed.
    let (s, seeded) = fleet_server(112).await;
    let c = harness::start(&s, "admin", fleet::options(false)).await;
    assert_healed(&s, &seeded).await;
    assert_eq!(c.stop().await, Exit::Clean);
    type Damage = Box<dyn Fn(&ApiServer)>;
    let damage: [(&str, Damage); 5] = [
        ("missing", Box::new(|s| drop(s.delete_object("v1", "Secret", Some("t03"), "s00").unwrap()))),
        (
            "stale data",
            Box::new(|s| {
                let mut m = s.get_object("v1", "ConfigMap", Some("t04"), "s01").unwrap();
                m["data"]["value"] = json!("edited");
                s.update_object(m).unwrap();
            }),
        ),
        (
            "orphaned",
            Box::new(|s| {
                let mut m = s.get_object("v1", "Secret", Some("t03"), "s02").unwrap();
                m["metadata"] = json!({"name": "s02", "namespace": fleet::SOURCE_NS,
                    "labels": m["metadata"]["labels"].clone(), "annotations": m["metadata"]["annotations"].clone()});
                m["metadata"]["name"] = json!("gone-source");
                s.create_object(m).unwrap();
            }),
        ),
        (
            "foreign",
            Box::new(|s| {
                let f = s.get_object("v1", "Secret", Some("t00"), "unrelated-0").unwrap();
                let mut f2 = f.clone();
                f2["data"]["k"] = json!("eA==");
                s.update_object(f2).unwrap();
            }),
        ),
        (
            "status",
            Box::new(|s| {
                let mut o = s.get_object("v1", "Secret", Some(fleet::SOURCE_NS), "s04").unwrap();
                o["metadata"]["annotations"][fleet::STATUS] = json!("synced:0,failed:1,conflicts:0,skipped:0");
                s.update_object(o).unwrap();
            }),
        ),
    ];
    let mut seen = 0;
    for (what, hurt) in damage {
        hurt(&s);
        let diff = fleet::differences(&s, &seeded, 100);
        assert!(diff.len() > seen, "{what} not noticed: {diff:?}");
        seen = diff.len();
    }
    let mut hot = kubemirror::testkit::StatsSnapshot::default();
    hot.requests.insert(("get".into(), "secrets".into(), "admin".into()), 50);
    assert!(std::panic::catch_unwind(|| fleet::assert_quiet(&hot, 4)).is_err(), "a hot loop is noticed");
}

// ---- the real binary: SIGKILL and SIGTERM ----

fn binary(s: &ApiServer, user: &str, stderr: Stdio) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kubemirror"))
        .arg("--kubeconfig")
        .arg(s.kubeconfig_path(user))
        .args(["--resource-types", "Secret.v1,ConfigMap.v1", "--leader-election-namespace", "default"])
        .args(["--lease-duration", "3s", "--renew-deadline", "2s", "--retry-period", "500ms"])
        .args(["--metrics-bind-address", "0", "--health-probe-bind-address", "0", "--rate-limit-qps", "0"])
        .env("RUST_LOG", "info")
        .stderr(stderr)
        .spawn()
        .unwrap()
}

fn writes_by(s: &ApiServer, who: &str) -> u64 {
    let st = s.stats();
    st.requests
        .iter()
        .filter(|((v, r, u), _)| {
            u == who && matches!(v.as_str(), "create" | "update" | "patch" | "delete") && !r.starts_with("leases")
        })
        .map(|(_, n)| n)
        .sum()
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap();
    assert!(ok.success());
}

fn lease(s: &ApiServer) -> Option<Value> {
    s.get_object("coordination.k8s.io/v1", "Lease", Some("default"), "kubemirror-controller-leader")
}

/// Waits for a child to exit, with a deadline.
async fn exited(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if tokio::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the controller did not exit within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_killed_without_releasing_its_lease_is_replaced() {
    let (s, seeded) = fleet_server(107).await;
    let mut a = binary(&s, "a", Stdio::null());
    let mut b = binary(&s, "b", Stdio::null());
    mid_convergence(&s, &seeded, 0.25).await;
    let (wa, wb) = (writes_by(&s, "a"), writes_by(&s, "b"));
    assert!((wa == 0) != (wb == 0), "exactly one instance writes: a={wa} b={wb}");
    let (leader, standby, leader_user, standby_user) =
        if wa > 0 { (&mut a, &mut b, "a", "b") } else { (&mut b, &mut a, "b", "a") };
    let holder = lease(&s).and_then(|l| l.pointer("/spec/holderIdentity").cloned());
    signal(leader, "-KILL");
    let status = exited(leader, Duration::from_secs(10)).await;
    assert_eq!(status.code(), None, "killed by the signal");
    let held = lease(&s).and_then(|l| l.pointer("/spec/holderIdentity").cloned());
    assert_eq!(held, holder, "a killed leader leaves its Lease held");
    let killed_writes = writes_by(&s, leader_user);
    // The standby takes over once the Lease expires (3 s) and finishes the job.
    fleet::converged(&s, &seeded, CONVERGE).await;
    assert!(writes_by(&s, standby_user) > 0, "the standby took over");
    assert_eq!(writes_by(&s, leader_user), killed_writes);
    let st = fleet::quiet_window(&s, 3).await;
    fleet::assert_quiet(&st, seeded.fleet.conflicts as u64);
    signal(standby, "-TERM");
    assert_eq!(exited(standby, Duration::from_secs(15)).await.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_write_storm_stops_cleanly_and_a_successor_converges() {
    let (s, seeded) = fleet_server(108).await;
    // Slower writes: the storm is still raging when the signal comes.
    s.set_latency(Matcher::new(Some("create"), None), Some(Duration::from_millis(40)));
    let mut a = binary(&s, "a", Stdio::piped());
    mid_convergence(&s, &seeded, 0.3).await;
    assert!(fleet::mirror_count(&s) < seeded.fleet.mirrors(), "the storm is still going");
    signal(&a, "-TERM");
    let status = exited(&mut a, Duration::from_secs(15)).await;
    let mut stderr = String::new();
    std::io::Read::read_to_string(a.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let holder = lease(&s).and_then(|l| l.pointer("/spec/holderIdentity").and_then(Value::as_str).map(String::from));
    assert!(holder.as_deref().is_none_or(str::is_empty), "the Lease was released: {holder:?}");
    let after_exit = writes_by(&s, "a");
    let c = harness::start(&s, "b", fleet::options(true)).await;
    s.set_latency(Matcher::any(), None);
    fleet::converged(&s, &seeded, CONVERGE).await;
    assert_eq!(writes_by(&s, "a"), after_exit, "nothing written after the exit");
    let st = fleet::quiet_window(&s, 3).await;
    fleet::assert_quiet(&st, seeded.fleet.conflicts as u64);
    assert_eq!(c.stop().await, Exit::Clean);
}

// ---- types that fail while watched (per-type isolation) ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_forbidden_from_the_start_does_not_stop_the_others() {
    let (s, seeded) = fleet_server(111).await;
    let others = Rule::new(&["*"], &["*"], &["secrets", "events", "leases", "namespaces"]);
    s.set_rules("a", vec![others]).unwrap();
    let c = harness::start(&s, "a", fleet::options(true)).await;
    let secrets_only = || {
        let (want, _) = fleet::expected(&s);
        let have = fleet::mirrors(&s);
        want.keys().filter(|k| k.0 == "Secret").eq(have.keys().filter(|k| k.0 == "Secret"))
    };
    eventually("the Secrets converged while ConfigMaps are forbidden", secrets_only).await;
    s.set_rules("a", vec![Rule::all()]).unwrap();
    assert_healed(&s, &seeded).await;
    assert_eq!(c.stop().await, Exit::Clean);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_type_that_becomes_forbidden_does_not_stop_the_others() {
    let (s, seeded) = fleet_server(109).await;
    let c = harness::start(&s, "a", fleet::options(true)).await;
    mid_convergence(&s, &seeded, 0.2).await;
    // ConfigMaps become forbidden for the controller, everything else stays allowed.
    let others = Rule::new(&["*"], &["*"], &["secrets", "events", "leases", "namespaces"]);
    s.set_rules("a", vec![others]).unwrap();
    s.close_watches();
    // Secrets converge exactly while ConfigMaps are forbidden.
    let secrets_only = || {
        let (want, _) = fleet::expected(&s);
        let have = fleet::mirrors(&s);
        let w: Vec<_> = want.keys().filter(|k| k.0 == "Secret").collect();
        let h: Vec<_> = have.keys().filter(|k| k.0 == "Secret").collect();
        w == h
    };
    eventually("the Secrets converged while ConfigMaps are forbidden", secrets_only).await;
    let st = fleet::quiet_window(&s, 3).await;
    assert!(st.count("list", "configmaps") <= 3, "a forbidden type is retried with backoff: {:?}", st.requests);
    let watches = s.stats().count("watch", "configmaps");
    s.set_rules("a", vec![Rule::all()]).unwrap();
    // The ConfigMap watchers retry with backoff; until they are back their view is stale.
    eventually("the ConfigMap watchers back", || {
        s.stats().count("watch", "configmaps") >= watches + 2 && s.open_watches() >= 5
    })
    .await;
    assert_healed(&s, &seeded).await;
    assert_eq!(c.stop().await, Exit::Clean);
}

fn widget_crd() -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.chaos.test"},
        "spec": {"group": "chaos.test", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crd_deleted_while_watched_is_released_and_the_rest_converges() {
    let (s, seeded) = fleet_server(110).await;
    s.create_object(widget_crd()).unwrap();
    for i in 0..4 {
        s.create_object(json!({"apiVersion": "chaos.test/v1", "kind": "Widget",
            "metadata": {"name": format!("w{i}"), "namespace": fleet::SOURCE_NS,
                "labels": {fleet::ENABLED: "true"}, "annotations": {fleet::SYNC: "true", fleet::TARGETS: "t*"}},
            "spec": {"size": i}}))
            .unwrap();
    }
    let opts = Options { resource_types: None, discovery_interval: Duration::from_secs(1), ..fleet::options(true) };
    let c = harness::start(&s, "admin", opts).await;
    eventually("the widgets mirrored", || {
        s.list_objects("chaos.test/v1", "Widget", None).len() >= 4 * (seeded.fleet.namespaces + 1)
    })
    .await;
    s.delete_object("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, "widgets.chaos.test").unwrap();
    assert_healed(&s, &seeded).await;
    let st = fleet::quiet_window(&s, 3).await;
    assert_eq!(st.count("list", "widgets.chaos.test"), 0, "the deleted type is no longer listed: {:?}", st.requests);
    assert_eq!(c.stop().await, Exit::Clean);
}
