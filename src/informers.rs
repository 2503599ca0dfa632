//! The running watchers: per watched type one source watcher (opt-in label) and one mirror watcher
//! (mirror label, metadata only), plus the namespace watcher (metadata only), each feeding its
//! cache store. Types are added and removed as rediscovery reports them, without touching the
//! others. Watchers run on every replica, leader or not, so a standby's cache is warm at failover.
//!
//! # Isolation
//! Each type syncs and fails on its own. A type whose list or watch the server refuses (403: RBAC
//! grants only some of the discovered types), does not serve (404: its CRD was deleted) or cannot
//! answer (5xx: a conversion webhook or an aggregated API down) is retried by its watchers with
//! backoff, for ever, and reported ([`Watches`]: the readiness report, logs, metrics); every other
//! type mirrors normally. Readiness means "the namespaces and every type that *can* sync have
//! synced": a type whose requests fail does not hold it back, it is listed. Liveness never fails
//! for it (see [`WatchHealth::is_stuck`]).
//!
//! A type that fails *after* its first sync keeps its cache, but no pass of that type runs while its
//! watch is refused (403/401/404) or any other failure has lasted [`LASTING_FAILURE`] (the
//! reconciler requeues them; a shorter blip is planned through, as every watch-based controller
//! does): its sources, mirrors and their deletions could have changed unseen, and deciding to
//! delete or overwrite from a view that cannot be refreshed is how a controller destroys what it
//! should protect. When the watch comes back it resumes (or relists
//! and reports what changed meanwhile) and the postponed passes run on a fresh view. The cache is
//! kept rather than dropped so that recovery is a resume, not a relist of everything, and so a
//! type that is gone for good (a deleted CRD) is released by rediscovery, not guessed at.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use tokio::task::JoinHandle;

use crate::cache::{Cache, Reflected};
use crate::client::{ApiResource, Client};
use crate::discovery::{Changes, TypeRef};
use crate::keys;
use crate::model::{MirrorRecord, NamespaceRecord, SourceObject};
use crate::util::rand::Rng;
use crate::watcher::{ClientListWatch, DEFAULT_PAGE_SIZE, Failure, WatchConfig, WatchHealth, WatchState, Watcher};

/// What changed in the cache, for the reconcilers to queue work.
#[derive(Debug)]
pub enum Update {
    Sources(Arc<ApiResource>, Reflected<SourceObject>),
    Mirrors(Arc<ApiResource>, Reflected<MirrorRecord>),
    Namespaces(Reflected<NamespaceRecord>),
}

/// Called on the watcher's task for every change; keep it short (queue keys, do not call the API).
pub type OnUpdate = Arc<dyn Fn(Update) + Send + Sync>;

#[derive(Debug, Clone)]
pub struct InformerOptions {
    pub page_size: u32,
    /// Try watch-list (sendInitialEvents) first.
    pub watch_list: bool,
}

impl Default for InformerOptions {
    fn default() -> Self {
        InformerOptions { page_size: DEFAULT_PAGE_SIZE, watch_list: false }
    }
}

/// Where one watched type (or the namespace watcher) stands: its watchers' states combined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncState {
    /// A first listing is in progress.
    Syncing,
    Synced,
    /// A watcher's requests fail (retried with backoff). `synced`: every watcher of it had
    /// completed a listing before, so its cache holds the last state seen.
    Failing {
        watcher: String,
        failure: Failure,
        synced: bool,
    },
}

/// A failure that is not a refusal pauses a synced type's passes only once it lasts this long: a
/// view a few seconds old is what every watch-based controller plans from (write preconditions
/// catch what changed meanwhile), so a blip must not stall mirroring.
pub const LASTING_FAILURE: std::time::Duration = std::time::Duration::from_secs(30);

impl SyncState {
    /// Whether passes of this type must wait (see the module docs): it never synced, or its watch is
    /// refused (403/401/404), or another failure has lasted [`LASTING_FAILURE`].
    pub fn pauses_passes(&self) -> bool {
        match self {
            SyncState::Syncing => true,
            SyncState::Synced => false,
            SyncState::Failing { failure, synced, .. } => {
                !synced || failure.reason.is_refusal() || failure.since.elapsed() >= LASTING_FAILURE
            }
        }
    }

    fn of(watchers: &[(String, Arc<WatchHealth>)]) -> SyncState {
        SyncState::combine(watchers.iter().map(|(n, h)| (n, h.state())).collect())
    }

    /// Failing if any watcher fails (the first one is reported), else Syncing until all have listed.
    fn combine(states: Vec<(&String, WatchState)>) -> SyncState {
        let synced =
            states.iter().all(|(_, s)| !matches!(s, WatchState::Syncing | WatchState::Failing { synced: false, .. }));
        if let Some((name, WatchState::Failing { failure, .. })) =
            states.iter().find(|(_, s)| matches!(s, WatchState::Failing { .. }))
        {
            return SyncState::Failing { watcher: (*name).clone(), failure: failure.clone(), synced };
        }
        if synced { SyncState::Synced } else { SyncState::Syncing }
    }

    /// One line for the readiness report.
    fn describe(&self, name: &str) -> String {
        match self {
            SyncState::Syncing => format!("{name}: listing"),
            SyncState::Synced => format!("{name}: synced"),
            SyncState::Failing { watcher, failure, synced } => {
                let which = watcher.strip_prefix(name).unwrap_or(watcher).trim();
                let what = match (synced, self.pauses_passes()) {
                    (false, _) => "cannot sync",
                    (true, true) => "failing, passes paused",
                    (true, false) => "failing",
                };
                format!(
                    "{name}: {what}: {which}{}watch {} ({} failed request(s) over {}s, retrying with backoff): {}",
                    if which.is_empty() { "" } else { " " },
                    failure.reason.as_str(),
                    failure.attempts,
                    failure.since.elapsed().as_secs(),
                    failure.detail,
                )
            }
        }
    }
}

/// Readiness over the namespace watcher's and every type's state: `Ok(notes)` when the namespaces
/// and every type that can sync have synced (the notes list the types that cannot, one line
/// each), else `Err` saying what is still missing.
pub fn readiness(namespaces: &SyncState, types: &[(String, SyncState)]) -> Result<Vec<String>, String> {
    let notes: Vec<String> =
        types.iter().filter(|(_, s)| matches!(s, SyncState::Failing { .. })).map(|(n, s)| s.describe(n)).collect();
    let listing: Vec<&str> = types.iter().filter(|(_, s)| *s == SyncState::Syncing).map(|(n, _)| n.as_str()).collect();
    let mut missing = Vec::new();
    match namespaces {
        SyncState::Synced | SyncState::Failing { synced: true, .. } => {}
        other => missing.push(other.describe(NAMESPACES)),
    }
    if !listing.is_empty() {
        missing.push(format!("still listing: {}", listing.join(", ")));
    }
    if missing.is_empty() {
        Ok(notes)
    } else {
        missing.extend(notes);
        Err(missing.join("; "))
    }
}

/// Every watcher's health by type, shared (cheap clones) with the admin endpoints, the metrics and
/// the reconcilers; follows rediscovery.
#[derive(Clone, Default)]
pub struct Watches(Arc<RwLock<BTreeMap<String, Named>>>);

/// A type's watchers by watcher name (`Kind.version[.group] sources`, `... mirrors`).
type Named = Vec<(String, Arc<WatchHealth>)>;

impl Watches {
    pub(crate) fn set(&self, name: &str, health: Named) {
        self.0.write().unwrap_or_else(|p| p.into_inner()).insert(name.to_string(), health);
    }

    pub(crate) fn remove(&self, name: &str) {
        self.0.write().unwrap_or_else(|p| p.into_inner()).remove(name);
    }

    /// A watched type's state (`Kind.version[.group]`); `None` if it is not watched.
    pub fn state(&self, type_name: &str) -> Option<SyncState> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).get(type_name).map(|w| SyncState::of(w))
    }

    /// The namespace watcher's state (Syncing before it is started).
    pub fn namespaces(&self) -> SyncState {
        self.state(NAMESPACES).unwrap_or(SyncState::Syncing)
    }

    /// Every watched type's state, by name (not the namespace watcher).
    pub fn types(&self) -> Vec<(String, SyncState)> {
        let map = self.0.read().unwrap_or_else(|p| p.into_inner());
        map.iter().filter(|(k, _)| *k != NAMESPACES).map(|(k, w)| (k.clone(), SyncState::of(w))).collect()
    }

    /// See [`readiness`].
    pub fn readiness(&self) -> Result<Vec<String>, String> {
        readiness(&self.namespaces(), &self.types())
    }

    /// Every watcher's health, by watcher name, for liveness and metrics.
    pub fn all(&self) -> Vec<(String, Arc<WatchHealth>)> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).values().flat_map(|w| w.iter().cloned()).collect()
    }
}

struct Running {
    resource: Arc<ApiResource>,
    tasks: Vec<JoinHandle<()>>,
}

pub struct Informers {
    client: Client,
    cache: Cache,
    on_update: OnUpdate,
    opts: InformerOptions,
    /// By type name (`Kind.version[.group]`); the namespace watcher under "namespaces".
    running: BTreeMap<String, Running>,
    watches: Watches,
}

const NAMESPACES: &str = "namespaces";

impl Informers {
    pub fn new(client: Client, cache: Cache, opts: InformerOptions, on_update: OnUpdate) -> Self {
        Informers { client, cache, on_update, opts, running: BTreeMap::new(), watches: Watches::default() }
    }

    /// The watchers' health, live: follows every later `add`, `remove` and `apply`.
    pub fn watches(&self) -> Watches {
        self.watches.clone()
    }

    fn config(&self, name: String, label_selector: Option<String>, metadata_only: bool) -> WatchConfig {
        WatchConfig {
            label_selector,
            metadata_only,
            page_size: self.opts.page_size,
            watch_list: self.opts.watch_list,
            ..WatchConfig::new(&name)
        }
    }

    fn spawn(
        &self,
        resource: ApiResource,
        cfg: WatchConfig,
        sink: impl FnMut(crate::watcher::Event) + Send + 'static,
    ) -> (JoinHandle<()>, (String, Arc<WatchHealth>)) {
        let name = cfg.name.clone();
        let api = ClientListWatch { client: self.client.clone(), resource, namespace: None };
        let watcher = Watcher::new(api, cfg, Rng::from_os());
        let health = watcher.health();
        // Stopped by aborting the task: a watcher holds nothing that needs a clean shutdown.
        (tokio::spawn(watcher.run(sink, std::future::pending())), (name, health))
    }

    /// Starts the namespace watcher (once).
    pub fn start_namespaces(&mut self) {
        if self.running.contains_key(NAMESPACES) {
            return;
        }
        let (store, on_update) = (self.cache.namespaces.clone(), self.on_update.clone());
        let cfg = self.config(NAMESPACES.to_string(), None, true);
        let (task, health) = self.spawn(ApiResource::namespaces(), cfg, move |ev| {
            let r = store.apply_watcher_event(ev);
            if !matches!(r, Reflected::Nothing) {
                on_update(Update::Namespaces(r));
            }
        });
        let resource = Arc::new(ApiResource::namespaces());
        self.watches.set(NAMESPACES, vec![health]);
        self.running.insert(NAMESPACES.to_string(), Running { resource, tasks: vec![task] });
    }

    /// Starts watching a type's sources and mirrors (no-op if already watched).
    pub fn add(&mut self, resource: &ApiResource) {
        let name = TypeRef::of(resource).to_string();
        if self.running.contains_key(&name) {
            return;
        }
        let stores = self.cache.add_type(&name);
        let shared = Arc::new(resource.clone());
        let sources = {
            let (store, on_update, r) = (stores.sources, self.on_update.clone(), shared.clone());
            let cfg = self.config(format!("{name} sources"), Some(keys::source_label_selector()), false);
            self.spawn(resource.clone(), cfg, move |ev| {
                let out = store.apply_watcher_event(ev);
                if !matches!(out, Reflected::Nothing) {
                    on_update(Update::Sources(r.clone(), out));
                }
            })
        };
        let mirrors = {
            let (store, on_update, r) = (stores.mirrors, self.on_update.clone(), shared.clone());
            let cfg = self.config(format!("{name} mirrors"), Some(keys::mirror_label_selector()), true);
            self.spawn(resource.clone(), cfg, move |ev| {
                let out = store.apply_watcher_event(ev);
                if !matches!(out, Reflected::Nothing) {
                    on_update(Update::Mirrors(r.clone(), out));
                }
            })
        };
        log::info!("watching {name}");
        self.watches.set(&name, vec![sources.1, mirrors.1]);
        self.running.insert(name, Running { resource: shared, tasks: vec![sources.0, mirrors.0] });
    }

    /// Stops watching a type and drops its cached records.
    pub fn remove(&mut self, resource: &ApiResource) {
        let name = TypeRef::of(resource).to_string();
        if let Some(running) = self.running.remove(&name) {
            running.tasks.iter().for_each(JoinHandle::abort);
            self.watches.remove(&name);
            self.cache.remove_type(&name);
            log::info!("stopped watching {name}");
        }
    }

    /// Applies a rediscovery result.
    pub fn apply(&mut self, changes: &Changes) {
        changes.removed.iter().for_each(|r| self.remove(r));
        changes.added.iter().for_each(|r| self.add(r));
    }

    /// The watched types (not the namespace watcher).
    pub fn watched(&self) -> Vec<ApiResource> {
        self.running.iter().filter(|(k, _)| *k != NAMESPACES).map(|(_, r)| (*r.resource).clone()).collect()
    }

    /// Every watcher's health, by watcher name, for liveness and metrics.
    pub fn health(&self) -> Vec<(String, Arc<WatchHealth>)> {
        self.watches.all()
    }

    /// Stops every watcher and waits for them to end.
    pub async fn shutdown(self) {
        for running in self.running.into_values() {
            for task in running.tasks {
                task.abort();
                let _ = task.await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watcher::FailureReason;
    use tokio::time::Instant;

    fn failing(reason: FailureReason, synced: bool) -> SyncState {
        SyncState::Failing {
            watcher: "Deployment.v1.apps sources".into(),
            failure: Failure {
                reason,
                detail: "API error 403 Forbidden: no".into(),
                since: Instant::now(),
                attempts: 3,
            },
            synced,
        }
    }

    #[test]
    fn a_type_is_as_good_as_its_worst_watcher() {
        let (src, mir) = ("Deployment.v1.apps sources".to_string(), "Deployment.v1.apps mirrors".to_string());
        let f = match failing(FailureReason::Forbidden, false) {
            SyncState::Failing { failure, .. } => failure,
            _ => unreachable!(),
        };
        let fail = |synced| WatchState::Failing { failure: f.clone(), synced };
        let combine = |a: WatchState, b: WatchState| SyncState::combine(vec![(&src, a), (&mir, b)]);
        assert_eq!(combine(WatchState::Synced, WatchState::Synced), SyncState::Synced);
        assert_eq!(combine(WatchState::Synced, WatchState::Syncing), SyncState::Syncing);
        let failing_mirrors = |synced| SyncState::Failing { watcher: mir.clone(), failure: f.clone(), synced };
        assert_eq!(combine(WatchState::Synced, fail(true)), failing_mirrors(true));
        assert_eq!(combine(WatchState::Synced, fail(false)), failing_mirrors(false));
        assert_eq!(combine(WatchState::Syncing, fail(true)), failing_mirrors(false), "not every watcher listed");
    }

    #[test]
    fn only_refusals_lasting_failures_and_unsynced_types_pause_passes() {
        let with = |reason, synced, age: u64| SyncState::Failing {
            watcher: "x".into(),
            failure: Failure {
                reason,
                detail: String::new(),
                since: Instant::now().checked_sub(std::time::Duration::from_secs(age)).unwrap_or_else(Instant::now),
                attempts: 1,
            },
            synced,
        };
        assert!(SyncState::Syncing.pauses_passes() && !SyncState::Synced.pauses_passes());
        assert!(with(FailureReason::Forbidden, true, 0).pauses_passes());
        assert!(with(FailureReason::NotFound, true, 0).pauses_passes());
        assert!(!with(FailureReason::ServerError, true, 1).pauses_passes(), "a blip is planned through");
        assert!(!with(FailureReason::Transport, true, 1).pauses_passes());
        assert!(with(FailureReason::ServerError, true, LASTING_FAILURE.as_secs() + 1).pauses_passes());
        assert!(with(FailureReason::ServerError, false, 0).pauses_passes(), "never synced");
    }

    #[test]
    fn readiness_waits_only_for_what_can_sync_and_lists_what_cannot() {
        let t = |name: &str, s: SyncState| (name.to_string(), s);
        let forbidden = failing(FailureReason::Forbidden, false);
        #[rustfmt::skip]
        type Case<'a> = (&'a str, SyncState, Vec<(String, SyncState)>, Result<usize, &'a str>);
        let cases: Vec<Case> = vec![
            ("all synced", SyncState::Synced, vec![t("Secret.v1", SyncState::Synced)], Ok(0)),
            ("nothing watched yet but namespaces", SyncState::Synced, vec![], Ok(0)),
            (
                "a forbidden type does not hold readiness back, it is listed",
                SyncState::Synced,
                vec![t("Secret.v1", SyncState::Synced), t("Deployment.v1.apps", forbidden.clone())],
                Ok(1),
            ),
            (
                "a type failing after its sync is listed too",
                SyncState::Synced,
                vec![t("Deployment.v1.apps", failing(FailureReason::NotFound, true))],
                Ok(1),
            ),
            (
                "a type still listing holds it back",
                SyncState::Synced,
                vec![t("Secret.v1", SyncState::Syncing), t("Deployment.v1.apps", forbidden.clone())],
                Err("still listing: Secret.v1"),
            ),
            (
                "namespaces still listing",
                SyncState::Syncing,
                vec![t("Secret.v1", SyncState::Synced)],
                Err("namespaces: listing"),
            ),
            (
                "namespaces never synced: nothing can be mirrored",
                failing(FailureReason::Forbidden, false),
                vec![t("Secret.v1", SyncState::Synced)],
                Err("namespaces: cannot sync"),
            ),
            (
                "namespaces failing after their sync: the last view stands",
                failing(FailureReason::ServerError, true),
                vec![t("Secret.v1", SyncState::Synced)],
                Ok(0),
            ),
        ];
        for (name, ns, types, want) in cases {
            match (readiness(&ns, &types), want) {
                (Ok(notes), Ok(n)) => assert_eq!(notes.len(), n, "{name}: {notes:?}"),
                (Err(e), Err(needle)) => assert!(e.contains(needle), "{name}: {e}"),
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
        let notes = readiness(&SyncState::Synced, &[t("Deployment.v1.apps", forbidden.clone())]).unwrap();
        assert_eq!(
            notes[0],
            "Deployment.v1.apps: cannot sync: sources watch Forbidden (3 failed request(s) over 0s, retrying with \
             backoff): API error 403 Forbidden: no"
        );
    }
}
