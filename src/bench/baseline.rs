//! The watch-all baseline (`--baseline watch-all`): what a client-go-style controller reads and
//! keeps. It lists and watches every object of every mirrored type in every namespace, plus the
//! namespaces, unfiltered and whole, and caches each decoded object (client-go informers keep
//! decoded objects too), as KubeMirror did before label-filtered, metadata-only watches.
//!
//! It runs as its own process (`kubemirror-bench-baseline`, built only with the `testkit`
//! feature, never shipped) on the same in-memory API server and data as the controller, under its
//! own user, so the server's per-user accounting and `/proc` give its requests, received bytes,
//! CPU time and memory apart from the controller's, in the same run. It reads only: it writes
//! nothing, so its figures are the read side of a watch-all controller (the writes would be the
//! same for both: one per mirror that changes).
//!
//! It uses this crate's list/watch machinery ([`crate::watcher`]) and client, so the comparison is
//! about what is watched and kept, not about the client implementation.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::bench::workload::{CRD_GROUP, CRD_PLURAL, Kind};
use crate::client::{ApiResource, Client, ClientOptions, LoadOptions};
use crate::util::rand::Rng;
use crate::watcher::{ClientListWatch, Event, WatchConfig, Watcher};

/// The user the baseline authenticates as (the controller is `admin`).
pub const USER: &str = "baseline";

/// The resource a benchmark kind is served as.
pub fn resource(kind: Kind) -> ApiResource {
    match kind {
        Kind::Secret => ApiResource::secrets(),
        Kind::ConfigMap => ApiResource::configmaps(),
        Kind::Widget => ApiResource::new(CRD_GROUP, "v1", "Widget", CRD_PLURAL, true),
    }
}

/// One informer's cache: every object, whole, by namespace/name; a relist swaps in a new map.
#[derive(Default)]
struct Reflector {
    live: HashMap<String, Value>,
    listing: Option<HashMap<String, Value>>,
}

fn key_of(obj: &Value) -> String {
    let field = |f: &str| obj.pointer(&format!("/metadata/{f}")).and_then(Value::as_str).unwrap_or("");
    format!("{}/{}", field("namespace"), field("name"))
}

impl Reflector {
    fn apply(&mut self, ev: Event) {
        match ev {
            Event::Init => self.listing = Some(HashMap::new()),
            Event::InitApply(item) => {
                let o = item.to_value();
                let map = self.listing.as_mut().unwrap_or(&mut self.live);
                map.insert(key_of(&o), o);
            }
            Event::InitDone => {
                if let Some(new) = self.listing.take() {
                    self.live = new;
                }
            }
            Event::Apply(o) => {
                self.live.insert(key_of(&o), o);
            }
            Event::Delete(o) => {
                self.live.remove(&key_of(&o));
            }
        }
    }
}

/// Runs the baseline until the process is killed: one unfiltered informer per kind, plus
/// namespaces. Objects live in the caches; the count is logged once a minute.
pub async fn run(kubeconfig: &Path, kinds: &[Kind]) -> Result<(), String> {
    let load = LoadOptions { kubeconfig: Some(kubeconfig.to_path_buf()), context: None };
    let options = ClientOptions { qps: 0.0, ..ClientOptions::default() };
    let client = Client::from_options(&load, options).await.map_err(|e| e.to_string())?;
    let mut resources: Vec<ApiResource> = kinds.iter().map(|k| resource(*k)).collect();
    resources.push(ApiResource::namespaces());
    let mut caches = Vec::new();
    for (i, resource) in resources.into_iter().enumerate() {
        let cache = Arc::new(Mutex::new(Reflector::default()));
        let sink = {
            let cache = cache.clone();
            move |ev| cache.lock().unwrap_or_else(|p| p.into_inner()).apply(ev)
        };
        let cfg = WatchConfig::new(&format!("baseline {}", resource.plural));
        let api = ClientListWatch { client: client.clone(), resource, namespace: None };
        tokio::spawn(Watcher::new(api, cfg, Rng::seeded(i as u64 + 1)).run(sink, std::future::pending()));
        caches.push(cache);
    }
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        let objects: usize = caches.iter().map(|c| c.lock().unwrap_or_else(|p| p.into_inner()).live.len()).sum();
        log::info!("baseline: {objects} objects cached");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::RawItem;
    use serde_json::json;

    #[test]
    fn the_reflector_keeps_whole_objects_and_swaps_listings() {
        let mut r = Reflector::default();
        let obj = |ns: &str, name: &str| json!({"metadata": {"namespace": ns, "name": name}, "data": {"k": "v"}});
        r.apply(Event::Init);
        r.apply(Event::InitApply(RawItem::from_value(&obj("a", "x"))));
        assert!(r.live.is_empty(), "invisible until the listing is complete");
        r.apply(Event::InitDone);
        assert_eq!(r.live["a/x"]["data"]["k"], "v");
        r.apply(Event::Apply(obj("b", "y")));
        r.apply(Event::Delete(obj("a", "x")));
        assert_eq!(r.live.keys().collect::<Vec<_>>(), vec!["b/y"]);
        r.apply(Event::Init);
        r.apply(Event::InitDone);
        assert!(r.live.is_empty(), "a relist replaces everything");
    }
}
