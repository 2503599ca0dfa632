//! The running watchers: per watched type one source watcher (opt-in label) and one mirror watcher
//! (mirror label, metadata only), plus the namespace watcher (metadata only), each feeding its
//! cache store. Types are added and removed as rediscovery reports them, without touching the
//! others. Watchers run on every replica, leader or not, so a standby's cache is warm at failover.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::cache::{Cache, Reflected};
use crate::client::{ApiResource, Client};
use crate::discovery::{Changes, TypeRef};
use crate::keys;
use crate::model::{MirrorRecord, NamespaceRecord, SourceObject};
use crate::util::rand::Rng;
use crate::watcher::{ClientListWatch, DEFAULT_PAGE_SIZE, WatchConfig, WatchHealth, Watcher};

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

struct Running {
    resource: Arc<ApiResource>,
    tasks: Vec<JoinHandle<()>>,
    health: Vec<(String, Arc<WatchHealth>)>,
}

pub struct Informers {
    client: Client,
    cache: Cache,
    on_update: OnUpdate,
    opts: InformerOptions,
    /// By type name (`Kind.version[.group]`); the namespace watcher under "namespaces".
    running: BTreeMap<String, Running>,
}

const NAMESPACES: &str = "namespaces";

impl Informers {
    pub fn new(client: Client, cache: Cache, opts: InformerOptions, on_update: OnUpdate) -> Self {
        Informers { client, cache, on_update, opts, running: BTreeMap::new() }
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
        self.running.insert(NAMESPACES.to_string(), Running { resource, tasks: vec![task], health: vec![health] });
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
        self.running.insert(
            name,
            Running { resource: shared, tasks: vec![sources.0, mirrors.0], health: vec![sources.1, mirrors.1] },
        );
    }

    /// Stops watching a type and drops its cached records.
    pub fn remove(&mut self, resource: &ApiResource) {
        let name = TypeRef::of(resource).to_string();
        if let Some(running) = self.running.remove(&name) {
            running.tasks.iter().for_each(JoinHandle::abort);
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
        self.running.values().flat_map(|r| r.health.iter().cloned()).collect()
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
