//! The controller process: discovery, the watches feeding the cache, routing into the work queue,
//! leader election gating the workers, rediscovery, the admin endpoints and a graceful stop.
//!
//! Every replica watches (standbys keep warm caches); only the leader runs workers, and only once
//! the caches are complete. On gaining the lease every cached source is queued once; on losing it
//! the queue stops at once (writes are fenced anyway) and the process exits to restart clean.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::admin::{self, Check, Checks};
use crate::cache::Cache;
use crate::client::{ApiResource, Client};
use crate::controller::executor::Settings;
use crate::controller::reconcile::Reconciler;
use crate::controller::routing::{self, Router};
use crate::controller::state::{Types, WorkKey};
use crate::controller::writer::Writer;
use crate::discovery::{self, DenyList, TypeRef};
use crate::events::EventRecorder;
use crate::informers::{InformerOptions, Informers};
use crate::leader::{self, ClientLeases, LeaderConfig, LeaderElector, LeaderError, Leadership};
use crate::metrics::Metrics;
use crate::mirror::build::{BuildConfig, StripList};
use crate::mirror::targets::{NamespaceFilter, TargetConfig};
use crate::mirror::transform::RuleTransforms;
use crate::model::Str;
use crate::options::Options;
use crate::queue::{QueueConfig, WorkQueue};
use crate::transform;
use crate::util::rand::Rng;
use crate::watcher;
use crate::watcher::WatchHealth;

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

fn settings(opts: &Options) -> Result<Settings, String> {
    let filter = NamespaceFilter::new(&opts.included_namespaces, &opts.excluded_namespaces)?;
    let strip = opts.strip_metadata.as_deref().map(StripList::parse).unwrap_or_default();
    Ok(Settings {
        targets: TargetConfig { filter, require_consent: opts.require_target_consent, max_targets: opts.max_targets },
        build: BuildConfig { strip },
        transform: RuleTransforms {
            limits: transform::Limits {
                max_bytes: opts.transform_max_bytes,
                max_rules: opts.transform_max_rules,
                ..transform::Limits::default()
            },
        },
        verify_unknown: true,
    })
}

async fn resources(client: &Client, opts: &Options, deny: &DenyList) -> Result<Vec<ApiResource>, String> {
    match &opts.resource_types {
        Some(list) => {
            let types = discovery::parse_type_list(list).map_err(|e| format!("--resource-types: {e}"))?;
            discovery::resolve(client, &types, deny).await
        }
        None => {
            let found =
                discovery::discover(client, deny).await.map_err(|e| format!("discovering the API resources: {e}"))?;
            Ok(found.resources)
        }
    }
}

type HealthList = Arc<Mutex<Vec<(String, Arc<WatchHealth>)>>>;

fn checks(cache: &Cache, health: &HealthList) -> Checks {
    let (cache, health) = (cache.clone(), health.clone());
    let live: Check = Arc::new(move || {
        let list = health.lock().unwrap_or_else(|p| p.into_inner());
        match list.iter().find(|(_, h)| h.is_stuck()) {
            Some((name, h)) => Err(format!("watch {name}: no event or bookmark for {}s", h.age().as_secs())),
            None => Ok(()),
        }
    });
    let ready: Check =
        Arc::new(move || if cache.is_synced() { Ok(()) } else { Err("caches are still listing".into()) });
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
        bound.metrics = Some(a);
    }
    if let Some(addr) = opts.health_probe_bind_address {
        let a = admin::serve(addr, checks, None, stop.clone())
            .await
            .map_err(|e| format!("--health-probe-bind-address {addr}: {e}"))?;
        bound.health = Some(a);
    }
    Ok(bound)
}

/// Waits for the namespaces and every currently watched type to complete a first listing.
async fn wait_synced(cache: &Cache) {
    cache.namespaces.wait_synced().await;
    for name in cache.type_names() {
        if let Some(stores) = cache.get_type(&name) {
            stores.sources.wait_synced().await;
            stores.mirrors.wait_synced().await;
        }
    }
}

/// Turns the runtime's own counters (queue, watchers) into Prometheus counters and gauges; a local
/// tick, no request.
#[derive(Default)]
struct Gauges {
    last: HashMap<String, u64>,
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
        health: &HealthList,
        leading: bool,
    ) {
        let stats = queue.stats();
        metrics.queue_depth.set(stats.depth as i64);
        metrics.queue_adds_total.with_label_values(&["sources"]).inc_by(self.delta("adds".into(), stats.adds));
        metrics.queue_retries_total.with_label_values(&["sources"]).inc_by(self.delta("retries".into(), stats.retries));
        metrics.leader.set(if leading { 1.0 } else { 0.0 });
        for (name, h) in health.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            metrics.watch_last_event_age.with_label_values(&[name]).set(h.age().as_secs_f64());
            let restarts = self.delta(format!("watches {name}"), h.watches().saturating_sub(1));
            metrics.watch_restarts_total.with_label_values(&[name]).inc_by(restarts);
            metrics.relists_total.with_label_values(&[name]).inc_by(self.delta(format!("relists {name}"), h.relists()));
        }
        // Rebuilt each time so namespaces and types that went away do not linger.
        metrics.mirror_resources.reset();
        for kind in cache.type_names() {
            let Some(stores) = cache.get_type(&kind) else { continue };
            let mut per_ns: HashMap<Str, i64> = HashMap::new();
            for m in stores.mirrors.list().iter().filter(|m| m.managed) {
                *per_ns.entry(m.key.namespace.clone()).or_default() += 1;
            }
            for (ns, n) in per_ns {
                metrics.mirror_resources.with_label_values(&[&kind, &ns]).set(n);
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
    let initial = resources(&client, &opts, &deny).await?;
    if initial.is_empty() {
        log::warn!("no mirrorable resource types found; waiting for rediscovery");
    }

    // One GET per process, not per type: it decides whether every watch starts with watch-list.
    let watch_list = match client.get_path("/version").await {
        Ok(v) => watcher::watch_list_by_default(&v),
        Err(e) => {
            log::warn!("GET /version failed ({e}); using list + watch");
            false
        }
    };
    let cache = Cache::new();
    let types = Types::default();
    let queue: WorkQueue<WorkKey> = WorkQueue::new(QueueConfig::default());
    let router = Arc::new(Router { cache: cache.clone(), types: types.clone() });
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
    let health: HealthList = Arc::new(Mutex::new(informers.health()));

    let (admin_stop, admin_rx) = watch::channel(false);
    let bound = match start_admin(&opts, checks(&cache, &health), &metrics, &admin_rx).await {
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
        writer: Writer::new(client.clone(), leadership.clone()),
        settings,
        events: EventRecorder::new(client.clone(), &identity),
        metrics: Some(metrics.clone()),
    });
    let start_workers = || -> JoinHandle<()> {
        let (cache, queue, router, reconciler) = (cache.clone(), queue.clone(), router.clone(), reconciler.clone());
        let workers = opts.worker_threads;
        tokio::spawn(async move {
            wait_synced(&cache).await;
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
    let mut rediscover = tokio::time::interval(opts.discovery_interval);
    rediscover.reset();
    let mut gauges = tokio::time::interval(METRICS_PERIOD);
    let mut gauge_state = Gauges::default();
    tokio::pin!(shutdown);

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
            _ = rediscover.tick(), if opts.resource_types.is_none() => {
                match discovery::discover(&client, &deny).await {
                    Ok(found) => {
                        let changes = found.changes_from(&informers.watched());
                        for r in &changes.removed {
                            types.remove(&TypeRef::of(r).to_string());
                        }
                        for r in &changes.added {
                            types.insert(TypeRef::of(r).to_string().into(), Arc::new(r.clone()));
                        }
                        informers.apply(&changes);
                        *health.lock().unwrap_or_else(|p| p.into_inner()) = informers.health();
                    }
                    Err(e) => log::warn!("rediscovery failed, keeping the watched types: {e}"),
                }
            }
            _ = gauges.tick() => {
                let lead = leading && lead_rx.borrow().is_leader();
                gauge_state.update(&metrics, &queue, &cache, &health, lead);
            }
        }
    };

    // Stop taking work; let in-flight passes finish (after a lost lease their writes are fenced).
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
