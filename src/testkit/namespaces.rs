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
use super::writes::{DeleteOpts, WriteOpts, set_in};

impl Store {
    /// The namespace controller's pass: empties terminating namespaces and removes the empty ones.
    /// Returns true when something changed.
    pub fn sweep_namespaces(&mut self) -> Result<bool, ApiError> {
        let nsinfo = self.namespaces_info();
        let terminating: Vec<String> = self.terminating.iter().cloned().collect();
        let mut changed = false;
        for ns in terminating {
            let mut content: Vec<(Arc<ResourceInfo>, Arc<Obj>)> = Vec::new();
            for (key, table) in &self.tables {
                let Some(objs) = table.get(&ns) else { continue };
                let Some(info) = self.registry.lookup_any(&key.0, &key.1).filter(|i| i.namespaced) else { continue };
                content.extend(objs.values().map(|o| (info.clone(), o.clone())));
            }
            for (info, o) in content {
                if !o.deleting {
                    self.delete(&info, &ns, &o.name, &DeleteOpts::default())?;
                    changed = true;
                }
            }
            // Objects with finalizers remain until they are removed; then the namespace finalizes.
            if self.count_in_namespace(&ns) > 0 {
                continue;
            }
            let Some(cur) = self.lookup(&nsinfo, "", &ns).cloned() else { continue };
            let mut v = cur.value();
            let spec_finalizers =
                v.pointer("/spec/finalizers").and_then(|f| f.as_array()).is_some_and(|f| !f.is_empty());
            let meta_finalizers = v["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty());
            if !spec_finalizers && meta_finalizers {
                // Finalized already; waiting for whoever owns metadata.finalizers.
                continue;
            }
            set_in(&mut v, &["spec", "finalizers"], json!([]));
            let etype = if meta_finalizers { EventType::Modified } else { EventType::Deleted };
            self.commit(&nsinfo, etype, v)?;
            changed = true;
        }
        Ok(changed)
    }

    /// What kube-controller-manager puts in every active namespace: the `kube-root-ca.crt` ConfigMap
    /// and the `default` ServiceAccount (only with `ServerOptions::cluster_defaults`).
    pub fn seed_namespace_defaults(&mut self, ca_pem: &str) -> Result<(), ApiError> {
        let nsinfo = self.namespaces_info();
        let fresh = std::mem::take(&mut self.new_namespaces);
        let active: Vec<String> =
            fresh.into_iter().filter(|ns| self.lookup(&nsinfo, "", ns).is_some_and(|o| !o.deleting)).collect();
        let (Some(cms), Some(sas)) =
            (self.registry.lookup("", "v1", "configmaps"), self.registry.lookup("", "v1", "serviceaccounts"))
        else {
            return Ok(());
        };
        let opts = WriteOpts { dry_run: false, manager: "kube-controller-manager".into() };
        for ns in active {
            if self.lookup(&cms, &ns, "kube-root-ca.crt").is_none() {
                let cm = json!({"metadata": {"name": "kube-root-ca.crt", "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}}, "data": {"ca.crt": ca_pem}});
                self.create(&cms, &ns, cm, &opts)?;
            }
            if self.lookup(&sas, &ns, "default").is_none() {
                self.create(&sas, &ns, json!({"metadata": {"name": "default"}}), &opts)?;
            }
        }
        Ok(())
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

/// The namespace controller: finishes the deletion of terminating namespaces after each change and,
/// when `defaults_ca` is given, seeds new namespaces like kube-controller-manager does.
pub(super) async fn controller(shared: Weak<Shared>, changed: Arc<Notify>, defaults_ca: Option<String>) {
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
            if let Some(ca) = &defaults_ca {
                if let Err(e) = st.seed_namespace_defaults(ca) {
                    log::warn!("testkit namespace defaults: {}", e.message());
                }
            }
        }
        notified.await;
    }
}
