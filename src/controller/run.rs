//! The controller process: discovery, the watches feeding the cache, routing into the work queue,
//! leader election gating the workers, rediscovery, the admin endpoints and a graceful stop.
//!
//! Every replica watches (standbys keep warm caches); only the leader runs workers, once the
//! namespaces and every type that can sync have synced (a type the server refuses or does not
//! serve is reported and retried on its own: see [`crate::informers`]). On gaining the lease every
//! cached source is queued once; on losing it the queue stops at once (writes are fenced anyway)
//! and the process exits to restart clean.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::admin::{self, Check, Checks};
use crate::cache::Cache;
use crate::client::Client;
use crate::controller::executor::Settings;
use crate::controller::reconcile::Reconciler;
use crate::controller::rediscovery;
use crate::controller::routing::{self, Router};
use crate::controller::state::{Types, WorkKey};
use crate::controller::writer::Writer;
use crate::discovery::{self, DenyList, TypeRef};
use crate::informers::{InformerOptions, Informers, Watches};
use crate::kinds::KindList;
use crate::leader::{self, ClientLeases, LeaderConfig, LeaderElector, LeaderError, Leadership};
use crate::metrics::{Metrics, QUEUE};
use crate::mirror::build::{BuildConfig, StripList};
use crate::mirror::targets::{NamespaceFilter, TargetConfig};
use crate::mirror::transform::RuleTransforms;
use crate::model::Str;
use crate::options::Options;
use crate::queue::{QueueConfig, QueueObserver, WorkQueue};
use crate::transform;
use crate::util::rand::Rng;
use crate::watcher;

/// How long a graceful stop waits for in-flight passes: well inside the chart's 10 s termination
/// grace period, so the lease is still released before the kubelet kills the pod.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
const METRICS_PERIOD: Duration = Duration::from_secs(5);

/// How the controller ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// Stopped on request; the lease (if held) was released.
    Clean,
    /// Leadership was lost: writes stopped, the process must exit non-zero and restart.
    LostLeadership(String),
}

/// Addresses the admin endpoints bound (port 0 picks one; tests read it here).
#[derive(Debug, Clone, Default)]
pub struct Bound {
    pub metrics: Option<SocketAddr>,
    pub health: Option<SocketAddr>,
}

/// The controller's fixed settings from its options (also what `explain` plans with).
pub fn settings(opts: &Options) -> Result<Settings, String> {
    let filter = NamespaceFilter::new(&opts.included_namespaces, &opts.excluded_namespaces)?;
    let strip = opts.strip_metadata.as_deref().map(StripList::parse).unwrap_or_default();
    let consent_kinds =
        KindList::parse(&opts.consent_required_kinds).map_err(|e| format!("--consent-required-kinds: {e}"))?;
    if consent_kinds.is_empty() {
        log::warn!(
            "--consent-required-kinds is empty: kinds that run pods are mirrored into namespaces that did not consent"
        );
    }
    Ok(Settings {
        targets: TargetConfig {
            filter,
            require_consent: opts.require_target_consent,
            consent_kinds,
            max_targets: opts.max_targets,
        },
        build: BuildConfig { strip },
        transform: RuleTransforms {
            limits: transform::Limits {
                max_bytes: opts.transform_max_bytes,
                max_rules: opts.transform_max_rules,
                ..transform::Limits::default()
            },
        },
        verify_unknown: true,
        verify_source_freshness: opts.verify_source_freshness,
    })
}

/// Liveness: no watcher is stuck (a failing one is not: it is reported by readiness). Readiness:
/// the namespaces and every type that can sync have synced; the others are listed.
fn checks(watches: &Watches) -> Checks {
    let (live_w, ready_w) = (watches.clone(), watches.clone());
    let live: Check = Arc::new(move || match live_w.all().into_iter().find(|(_, h)| h.is_stuck()) {
        Some((name, h)) => Err(format!("watch {name}: nothing happened for {}s", h.idle().as_secs())),
        None => Ok(Vec::new()),
    });
    let ready: Check = Arc::new(move || ready_w.readiness());
    Checks { liveness: vec![("watches".into(), live)], readiness: vec![("caches-synced".into(), ready)] }
}

async fn start_admin(
    opts: &Options,
    checks: Checks,
    metrics: &Metrics,
    stop: &watch::Receiver<bool>,
) -> Result<Bound, String> {
    let mut bound = Bound::default();
    if let Some(addr) = opts.metrics_bind_address {
        let a = admin::serve(addr, Checks::default(), Some(metrics.clone()), stop.clone())
            .await
            .map_err(|e| format!("--metrics-bind-address {addr}: {e}"))?;
        log::info!("serving metrics on http://{a}/metrics");
        bound.metrics = Some(a);
    }
    if let Some(addr) = opts.health_probe_bind_address {
        let a = admin::serve(addr, checks, None, stop.clone())
            .await
            .map_err(|e| format!("--health-probe-bind-address {addr}: {e}"))?;
        log::info!("serving health probes on http://{a}/healthz and /readyz");
        bound.health = Some(a);
    }
    Ok(bound)
}

/// How often the start of the workers looks whether the caches are ready.
const READY_POLL: Duration = Duration::from_millis(100);

/// Waits for the namespaces and every watched type that can sync to complete a first listing (a
/// type whose requests fail is not waited for: its sources are planned once it syncs).
async fn wait_ready(watches: &Watches) {
    let mut logged = false;
    loop {
        match watches.readiness() {
            Ok(notes) => {
                for note in notes {
                    log::warn!("not mirrored for now: {note}");
                }
                return;
            }
            Err(why) if !logged => {
                log::info!("waiting for the caches: {why}");
                logged = true;
            }
            Err(_) => {}
        }
        tokio::time::sleep(READY_POLL).await;
    }
}

/// Turns the runtime's own counters (queue, watchers) into Prometheus counters and gauges; a local
/// tick, no request.
#[derive(Default)]
struct Gauges {
    last: HashMap<String, u64>,
    /// Kinds and watches with series, so those that go away lose theirs.
    kinds: HashSet<Str>,
    watches: HashSet<String>,
}

impl Gauges {
    fn delta(&mut self, key: String, now: u64) -> u64 {
        let prev = self.last.insert(key, now).unwrap_or(0);
        now.saturating_sub(prev)
    }

    fn update(
        &mut self,
        metrics: &Metrics,
        queue: &WorkQueue<WorkKey>,
        cache: &Cache,
        watches: &Watches,
        leading: bool,
    ) {
        let stats = queue.stats();
        let q = &[QUEUE];
        metrics.queue_depth.with_label_values(q).set(stats.depth as i64);
        metrics.queue_adds_total.with_label_values(q).inc_by(self.delta("adds".into(), stats.adds));
        metrics.queue_retries_total.with_label_values(q).inc_by(self.delta("retries".into(), stats.retries));
        metrics.unfinished_work.with_label_values(q).set(stats.unfinished_work.as_secs_f64());
        metrics.longest_running_processor.with_label_values(q).set(stats.longest_running.as_secs_f64());
        metrics.leader.set(if leading { 1.0 } else { 0.0 });
        let kinds: HashSet<Str> = cache.type_names().into_iter().collect();
        for gone in self.kinds.difference(&kinds) {
            metrics.kind_unwatched(gone);
        }
        for new in kinds.difference(&self.kinds) {
            metrics.kind_watched(new);
        }
        self.kinds = kinds;
        let all = watches.all();
        let names: HashSet<String> = all.iter().map(|(name, _)| name.clone()).collect();
        for gone in self.watches.difference(&names) {
            metrics.watch_stopped(gone);
            let stale = |k: &String| {
                *k == format!("watches {gone}")
                    || *k == format!("relists {gone}")
                    || k.starts_with(&format!("failures {gone} "))
            };
            self.last.retain(|k, _| !stale(k));
        }
        self.watches = names;
        for (name, h) in all {
            let name = name.as_str();
            metrics.watch_last_event_age.with_label_values(&[name]).set(h.age().as_secs_f64());
            let restarts = self.delta(format!("watches {name}"), h.watches().saturating_sub(1));
            metrics.watch_restarts_total.with_label_values(&[name]).inc_by(restarts);
            metrics.relists_total.with_label_values(&[name]).inc_by(self.delta(format!("relists {name}"), h.relists()));
            for (reason, n) in h.failures() {
                let new = self.delta(format!("failures {name} {}", reason.as_str()), n);
                metrics.watch_failures_total.with_label_values(&[name, reason.as_str()]).inc_by(new);
            }
        }
    }
}

/// The controller with its options until `shutdown` completes (`Ok(Exit::Clean)`) or leadership
/// is lost. `Err`: a startup or configuration error, in one line. `metrics`: the registry the
/// client already reports into, if any (else a new one). `on_bound` receives the admin addresses
/// once listening.
pub async fn run(
    opts: Options,
    client: Client,
    metrics: Option<Metrics>,
    shutdown: impl Future<Output = ()>,
    on_bound: impl FnOnce(Bound),
) -> Result<Exit, String> {
    let settings = settings(&opts)?;
    let mut deny = DenyList::builtin();
    deny.extend(&opts.deny_resource_types).map_err(|e| format!("--deny-resource-types: {e}"))?;
    let metrics = match metrics {
        Some(m) => m,
        None => Metrics::new().map_err(|e| format!("metrics registry: {e}"))?,
    };
    let identity = leader::identity_from_env();
    tokio::pin!(shutdown);
    // Start-up requests can hang (an aggregated API, a partition): a stop request still wins.
    let initial = tokio::select! {
        found = discovery::selected(&client, opts.resource_types.as_deref(), &deny) => found?,
        _ = &mut shutdown => return Ok(Exit::Clean),
    };
    metrics.discovery_failed(false, initial.failed.len());
    let initial = initial.resources;
    if initial.is_empty() {
        log::warn!("no mirrorable resource types found; waiting for rediscovery");
    }

    // One GET per process, not per type: it decides whether every watch starts with watch-list.
    let version = tokio::select! {
        v = client.get_path("/version") => v,
        _ = &mut shutdown => return Ok(Exit::Clean),
    };
    let watch_list = match version {
        Ok(v) => watcher::watch_list_by_default(&v),
        Err(e) => {
            log::warn!("GET /version failed ({e}); using list + watch");
            false
        }
    };
    let cache = Cache::new();
    metrics.mirror_resources.count(&cache);
    let types = Types::default();
    let observer: Arc<dyn QueueObserver> = Arc::new(metrics.clone());
    let queue: WorkQueue<WorkKey> = WorkQueue::observed(QueueConfig::default(), Some(observer));
    let router = Arc::new(Router::new(cache.clone(), types.clone()));
    let mut informers = Informers::new(
        client.clone(),
        cache.clone(),
        InformerOptions { watch_list, ..InformerOptions::default() },
        routing::on_update(router.clone(), queue.clone()),
    );
    informers.start_namespaces();
    for r in &initial {
        types.insert(TypeRef::of(r).to_string().into(), Arc::new(r.clone()));
        informers.add(r);
    }
    let watches = informers.watches();
    // Every series is there from the first scrape, before the first tick.
    let mut gauge_state = Gauges::default();
    gauge_state.update(&metrics, &queue, &cache, &watches, false);

    let (admin_stop, admin_rx) = watch::channel(false);
    let bound = match start_admin(&opts, checks(&watches), &metrics, &admin_rx).await {
        Ok(b) => b,
        Err(e) => {
            informers.shutdown().await;
            return Err(e);
        }
    };
    on_bound(bound);

    // Leader election, or a channel that always says "lead".
    let (leadership, mut elector, release) = if opts.leader_elect {
        let namespace = opts
            .leader_election_namespace
            .clone()
            .unwrap_or_else(|| leader::namespace_from_env(client.default_namespace()));
        let cfg = LeaderConfig {
            lease_duration: opts.lease_duration,
            renew_deadline: opts.renew_deadline,
            retry_period: opts.retry_period,
            ..LeaderConfig::new(&opts.leader_election_id, &namespace, &identity)
        };
        let api = ClientLeases::new(client.clone(), &cfg);
        let (elector, rx) = match LeaderElector::new(api, cfg, Rng::from_os()) {
            Ok(e) => e,
            Err(e) => {
                informers.shutdown().await;
                let _ = admin_stop.send(true);
                return Err(e.to_string());
            }
        };
        let (release, released) = oneshot::channel::<()>();
        let task: JoinHandle<Result<(), LeaderError>> = tokio::spawn(elector.run(async move {
            let _ = released.await;
        }));
        log::info!("leader election on lease {namespace}/{} as {identity}", opts.leader_election_id);
        (rx, Some(task), Some(release))
    } else {
        (Leadership::standalone(), None, None)
    };

    let reconciler = Arc::new(Reconciler {
        cache: cache.clone(),
        types: types.clone(),
        api: Writer::new(client.clone(), leadership.clone(), &identity),
        settings,
        metrics: Some(metrics.clone()),
        watches: watches.clone(),
    });
    let start_workers = || -> JoinHandle<()> {
        let (watches, queue, router, reconciler) = (watches.clone(), queue.clone(), router.clone(), reconciler.clone());
        let workers = opts.worker_threads;
        tokio::spawn(async move {
            wait_ready(&watches).await;
            let keys = router.all_sources();
            log::info!("leading: caches synced, reconciling {} sources with {workers} workers", keys.len());
            keys.into_iter().for_each(|k| queue.add(k));
            queue
                .run(workers, move |key: WorkKey| {
                    let r = reconciler.clone();
                    async move { r.reconcile(key).await }
                })
                .await;
        })
    };

    let mut lead_rx = leadership.clone();
    let mut leading = lead_rx.borrow().is_leader();
    let mut workers: Option<JoinHandle<()>> = leading.then(start_workers);
    let mut lead_open = true;
    let mut rediscover = opts
        .resource_types
        .is_none()
        .then(|| rediscovery::spawn(client.clone(), deny.clone(), opts.discovery_interval, metrics.clone()));
    let mut gauges = tokio::time::interval(METRICS_PERIOD);

    let exit = loop {
        tokio::select! {
            _ = &mut shutdown => break Exit::Clean,
            ended = async {
                match elector.as_mut() {
                    Some(task) => task.await,
                    None => std::future::pending().await,
                }
            }, if elector.is_some() => {
                elector = None;
                break match ended {
                    Ok(Ok(())) => Exit::Clean,
                    Ok(Err(e)) => Exit::LostLeadership(e.to_string()),
                    Err(e) => Exit::LostLeadership(format!("leader election task failed: {e}")),
                };
            }
            changed = lead_rx.changed(), if lead_open => {
                if changed.is_err() {
                    lead_open = false;
                    continue;
                }
                let now = lead_rx.borrow_and_update().is_leader();
                if leading && !now {
                    break Exit::LostLeadership("the lease is no longer ours".into());
                }
                if !leading && now {
                    leading = true;
                    workers = Some(start_workers());
                }
                metrics.leader.set(if leading { 1.0 } else { 0.0 });
            }
            Some(found) = async {
                match rediscover.as_mut() {
                    Some(r) => r.results.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                let changes = found.changes_from(&informers.watched());
                for r in &changes.removed {
                    types.remove(&TypeRef::of(r).to_string());
                }
                for r in &changes.added {
                    types.insert(TypeRef::of(r).to_string().into(), Arc::new(r.clone()));
                }
                informers.apply(&changes);
            }
            _ = gauges.tick() => {
                let lead = leading && lead_rx.borrow().is_leader();
                gauge_state.update(&metrics, &queue, &cache, &watches, lead);
            }
        }
    };

    // Stop taking work; let in-flight passes finish (after a lost lease their writes are fenced).
    drop(rediscover.take());
    queue.shutdown();
    if let Some(w) = workers {
        let abort = w.abort_handle();
        if tokio::time::timeout(DRAIN_TIMEOUT, w).await.is_err() {
            log::warn!("in-flight reconciles did not finish within {DRAIN_TIMEOUT:?}; abandoning them");
            abort.abort();
        }
    }
    if let Some(release) = release {
        let _ = release.send(());
    }
    if let Some(task) = elector {
        match task.await {
            Ok(Err(e)) if exit == Exit::Clean => log::warn!("leader election ended with: {e}"),
            _ => {}
        }
    }
    informers.shutdown().await;
    let _ = admin_stop.send(true);
    metrics.leader.set(0.0);
    Ok(exit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_series_of_types_and_watches_that_go_away_are_removed() {
        let metrics = Metrics::new().unwrap();
        let queue: WorkQueue<WorkKey> = WorkQueue::new(QueueConfig::default());
        let cache = Cache::new();
        metrics.mirror_resources.count(&cache);
        let mirror = |ns: &str, name: &str, managed: &str| {
            crate::model::MirrorRecord::from_object(&serde_json::json!({"metadata": {"name": name, "namespace": ns,
                "uid": "u", "labels": {"kubemirror.raczylo.com/managed-by": managed}}}))
            .unwrap()
        };
        let stores = cache.add_type("Secret.v1");
        for (ns, name, managed) in
            [("app1", "a", "kubemirror"), ("app1", "b", "kubemirror"), ("app2", "a", "kubemirror"), ("app3", "a", "x")]
        {
            stores.mirrors.apply(mirror(ns, name, managed));
        }
        let watches = Watches::default();
        let health = Arc::new(crate::watch_health::WatchHealth::new());
        watches.set("Secret.v1", vec![("Secret.v1 sources".to_string(), health)]);
        let mut gauges = Gauges::default();
        gauges.update(&metrics, &queue, &cache, &watches, true);
        let text = metrics.render();
        assert!(text.contains("kubemirror_reconcile_total{kind=\"Secret.v1\",result=\"success\"} 0"), "{text}");
        assert!(text.contains("kubemirror_watch_last_event_age_seconds{resource=\"Secret.v1 sources\"}"), "{text}");
        assert!(text.contains("kubemirror_leader 1"), "{text}");
        assert!(text.contains("kubemirror_mirror_resources_total{kind=\"Secret.v1\",namespace=\"app1\"} 2"), "{text}");
        assert!(text.contains("kubemirror_mirror_resources_total{kind=\"Secret.v1\",namespace=\"app2\"} 1"), "{text}");
        assert!(!text.contains("namespace=\"app3\""), "not ours: not counted\n{text}");
        cache.remove_type("Secret.v1");
        watches.remove("Secret.v1");
        gauges.update(&metrics, &queue, &cache, &watches, false);
        let text = metrics.render();
        assert!(!text.contains("Secret.v1"), "{text}");
        assert!(text.contains("# TYPE kubemirror_reconcile_total counter"), "{text}");
    }
}
