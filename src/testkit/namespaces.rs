//! The namespace lifecycle: a deleted namespace is Terminating until the namespace controller has
//! removed its content; objects with finalizers hold it until they go, as in a cluster.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, Weak};

use serde_json::json;
use tokio::sync::Notify;

use super::Shared;
use super::discovery::ResourceInfo;
use super::errors::ApiError;
use super::store::{EventType, Obj, Store};
use super::writes::{DeleteOpts, set_in};

impl Store {
    /// The namespace controller's pass: empties terminating namespaces and removes the empty ones.
    /// Returns true when something changed.
    pub fn sweep_namespaces(&mut self) -> Result<bool, ApiError> {
        let nsinfo = self.namespaces_info();
        let terminating: Vec<String> = self
            .tables
            .get(&nsinfo.key())
            .map(|t| t.values().flat_map(|m| m.values()).filter(|o| o.deleting).map(|o| o.name.clone()).collect())
            .unwrap_or_default();
        let mut changed = false;
        for ns in terminating {
            let mut content: Vec<(Arc<ResourceInfo>, Arc<Obj>)> = Vec::new();
            for (key, table) in &self.tables {
                let Some(objs) = table.get(&ns) else { continue };
                let Some(info) = self.registry.lookup_any(&key.0, &key.1).filter(|i| i.namespaced) else { continue };
                content.extend(objs.values().map(|o| (info.clone(), o.clone())));
            }
            let mut remaining = 0;
            for (info, o) in content {
                remaining += 1;
                if !o.deleting {
                    self.delete(&info, &ns, &o.name, &DeleteOpts::default())?;
                    changed = true;
                }
            }
            // Recount: objects without finalizers are gone now.
            remaining = remaining.min(self.count_in_namespace(&ns));
            if remaining == 0 {
                let Some(cur) = self.lookup(&nsinfo, "", &ns).cloned() else { continue };
                let mut v = cur.value();
                set_in(&mut v, &["spec", "finalizers"], json!([]));
                let meta_finalizers = v["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty());
                let etype = if meta_finalizers { EventType::Modified } else { EventType::Deleted };
                self.commit(&nsinfo, etype, v)?;
                changed = true;
            }
        }
        Ok(changed)
    }

    fn count_in_namespace(&self, ns: &str) -> usize {
        self.tables
            .iter()
            .filter(|(k, _)| !(k.0.is_empty() && k.1 == "namespaces"))
            .filter_map(|(_, t)| t.get(ns))
            .map(BTreeMap::len)
            .sum()
    }
}

/// The namespace controller: finishes the deletion of terminating namespaces after each change.
pub(super) async fn controller(shared: Weak<Shared>, changed: Arc<Notify>) {
    loop {
        let notified = changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let Some(s) = shared.upgrade() else { return };
            let mut st = s.store.lock().unwrap_or_else(PoisonError::into_inner);
            if let Err(e) = st.sweep_namespaces() {
                log::warn!("testkit namespace controller: {}", e.message());
            }
        }
        notified.await;
    }
}
