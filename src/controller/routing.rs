//! From cache changes to queued sources. Runs on the watcher tasks, so it only reads the caches
//! and queues keys; every request happens in the workers.
//!
//! - source events: the source itself, unless only our own status/finalizer patch changed it;
//! - mirror events: the source named by the mirror, per [`drift::mirror_verdict`] (our own
//!   writes echoing back are skipped); a deleted mirror is also forgotten by the ledger;
//! - namespace events: every source whose targeting can select the namespace (before or after
//!   the change), plus every source owning a mirror there.

use std::sync::Arc;

use crate::cache::{Cache, Reflected};
use crate::controller::state::{Types, WorkKey};
use crate::discovery::TypeRef;
use crate::informers::Update;
use crate::mirror::drift;
use crate::mirror::plan::source_changed;
use crate::mirror::targets::TargetSpec;
use crate::model::{MirrorRecord, NamespaceRecord, ObjectKey, Str};

pub struct Router {
    pub cache: Cache,
    pub types: Types,
}

impl Router {
    /// Keys to queue for one cache change.
    pub fn route(&self, update: Update) -> Vec<WorkKey> {
        match update {
            Update::Sources(r, reflected) => {
                let kind: Str = TypeRef::of(&r).to_string().into();
                let key = |k: &ObjectKey| WorkKey { kind: kind.clone(), source: k.clone() };
                match reflected {
                    Reflected::Nothing => Vec::new(),
                    Reflected::Applied(u) => match &u.old {
                        Some(old) if !source_changed(&old.object, &u.new.object) => Vec::new(),
                        _ => vec![key(&u.new.key)],
                    },
                    Reflected::Deleted(old) => vec![key(&old.key)],
                    Reflected::Reset(reset) => {
                        let changed = reset.changed.iter().filter(|u| match &u.old {
                            Some(old) => source_changed(&old.object, &u.new.object),
                            None => true,
                        });
                        changed.map(|u| key(&u.new.key)).chain(reset.removed.iter().map(|o| key(&o.key))).collect()
                    }
                }
            }
            Update::Mirrors(r, reflected) => {
                let kind: Str = TypeRef::of(&r).to_string().into();
                let mut out = Vec::new();
                match reflected {
                    Reflected::Nothing => {}
                    Reflected::Applied(u) => self.mirror_changed(&kind, &u.new, &mut out),
                    Reflected::Deleted(old) => self.mirror_deleted(&kind, &old, &mut out),
                    Reflected::Reset(reset) => {
                        reset.changed.iter().for_each(|u| self.mirror_changed(&kind, &u.new, &mut out));
                        reset.removed.iter().for_each(|m| self.mirror_deleted(&kind, m, &mut out));
                    }
                }
                out
            }
            Update::Namespaces(reflected) => match reflected {
                Reflected::Nothing => Vec::new(),
                Reflected::Applied(u) => self.namespace_changed(u.old.as_deref(), Some(&u.new)),
                Reflected::Deleted(old) => self.namespace_changed(Some(&old), None),
                // A relisting: whatever changed while we were away, look at everything once.
                Reflected::Reset(reset) if reset.changed.is_empty() && reset.removed.is_empty() => Vec::new(),
                Reflected::Reset(_) => self.all_sources(),
            },
        }
    }

    fn mirror_changed(&self, kind: &Str, m: &MirrorRecord, out: &mut Vec<WorkKey>) {
        let (Some(ts), Some(stores)) = (self.types.get(kind), self.cache.get_type(kind)) else { return };
        let source = drift::source_of(m).and_then(|k| stores.sources.get(&k));
        let verdict = {
            let ledger = ts.ledger();
            drift::mirror_verdict(m, source.as_deref(), ledger.last_write(&m.key))
        };
        if let drift::MirrorVerdict::EnqueueSource(k) = verdict {
            out.push(WorkKey { kind: kind.clone(), source: k });
        }
    }

    fn mirror_deleted(&self, kind: &Str, m: &MirrorRecord, out: &mut Vec<WorkKey>) {
        if let Some(ts) = self.types.get(kind) {
            ts.ledger().forget(&m.key);
        }
        if let Some(k) = drift::source_of(m) {
            out.push(WorkKey { kind: kind.clone(), source: k });
        }
    }

    fn namespace_changed(&self, old: Option<&NamespaceRecord>, new: Option<&NamespaceRecord>) -> Vec<WorkKey> {
        let Some(name) = new.or(old).map(|n| n.name.clone()) else { return Vec::new() };
        let mut out = Vec::new();
        for kind in self.cache.type_names() {
            let Some(stores) = self.cache.get_type(&kind) else { continue };
            for src in stores.sources.list() {
                let spec = TargetSpec::from_source(&src);
                if old.is_some_and(|n| spec.selects(n)) || new.is_some_and(|n| spec.selects(n)) {
                    out.push(WorkKey { kind: kind.clone(), source: src.key.clone() });
                }
            }
            for m in stores.mirrors.list().iter().filter(|m| m.key.namespace == name) {
                if let Some(k) = drift::source_of(m) {
                    out.push(WorkKey { kind: kind.clone(), source: k });
                }
            }
        }
        out
    }

    /// Every cached source of every type (leadership gained, namespaces relisted).
    pub fn all_sources(&self) -> Vec<WorkKey> {
        let mut out = Vec::new();
        for kind in self.cache.type_names() {
            if let Some(stores) = self.cache.get_type(&kind) {
                out.extend(stores.sources.keys().into_iter().map(|k| WorkKey { kind: kind.clone(), source: k }));
            }
        }
        out
    }
}

/// The informers' callback: route and queue.
pub fn on_update(router: Arc<Router>, queue: crate::queue::WorkQueue<WorkKey>) -> crate::informers::OnUpdate {
    Arc::new(move |update| {
        for key in router.route(update) {
            queue.add(key);
        }
    })
}
