//! From cache changes to queued sources. Runs on the watcher tasks, so it only reads the caches
//! and queues keys; every request happens in the workers.
//!
//! - source events: the source itself, unless only our own status/finalizer patch changed it;
//! - mirror events: the source named by the mirror, per [`drift::mirror_verdict`] (our own
//!   writes echoing back are skipped); a deleted mirror is also forgotten by the ledger;
//! - namespace events: every source whose targeting can select the namespace (before or after
//!   the change: the name in its list, or a pattern kept parsed in a [`TargetIndex`] up to date
//!   with the source events), plus every source owning a mirror there.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::cache::{Cache, Reflected};
use crate::controller::state::{self, Types, WorkKey};
use crate::discovery::TypeRef;
use crate::informers::Update;
use crate::keys;
use crate::mirror::drift;
use crate::mirror::plan::source_changed;
use crate::mirror::target_index::{self, TargetIndex};
use crate::mirror::targets::TargetSpec;
use crate::model::{MirrorRecord, NamespaceRecord, ObjectKey, SourceObject, Str};

pub struct Router {
    pub cache: Cache,
    pub types: Types,
    /// The parsed targeting of the cached sources that use patterns, re-parsed only when a
    /// source's targeting annotations change.
    targets: Mutex<TargetIndex<WorkKey>>,
}

impl Router {
    pub fn new(cache: Cache, types: Types) -> Self {
        Router { cache, types, targets: Mutex::default() }
    }

    fn targets(&self) -> std::sync::MutexGuard<'_, TargetIndex<WorkKey>> {
        self.targets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Re-parses a source's targeting when it is new or its targeting annotations changed.
    fn index_source(&self, kind: &Str, old: Option<&SourceObject>, new: &SourceObject) {
        fn targeting(s: &SourceObject) -> (Option<&str>, Option<&str>) {
            (s.annotation(keys::ANN_TARGET_NAMESPACES), s.annotation(keys::ANN_TARGET_NAMESPACE_SELECTOR))
        }
        if old.is_some_and(|o| targeting(o) == targeting(new)) {
            return;
        }
        let key = WorkKey { kind: kind.clone(), source: new.key.clone() };
        self.targets().set(key, TargetSpec::from_source(new));
    }

    fn unindex_source(&self, kind: &Str, old: &SourceObject) {
        self.targets().remove(&WorkKey { kind: kind.clone(), source: old.key.clone() });
    }

    /// Keys to queue for one cache change.
    pub fn route(&self, update: Update) -> Vec<WorkKey> {
        match update {
            Update::Sources(r, reflected) => {
                let kind: Str = TypeRef::of(&r).to_string().into();
                let key = |k: &ObjectKey| WorkKey { kind: kind.clone(), source: k.clone() };
                match reflected {
                    Reflected::Nothing => Vec::new(),
                    Reflected::Applied(u) => {
                        self.index_source(&kind, u.old.as_deref(), &u.new);
                        match &u.old {
                            Some(old) if !source_changed(old, &u.new) => Vec::new(),
                            _ => vec![key(&u.new.key)],
                        }
                    }
                    Reflected::Deleted(old) => {
                        self.unindex_source(&kind, &old);
                        self.note_departure(&kind, &old);
                        vec![key(&old.key)]
                    }
                    Reflected::Reset(reset) => {
                        reset.changed.iter().for_each(|u| self.index_source(&kind, u.old.as_deref(), &u.new));
                        reset.removed.iter().for_each(|o| self.unindex_source(&kind, o));
                        reset.removed.iter().for_each(|o| self.note_departure(&kind, o));
                        let changed = reset.changed.iter().filter(|u| match &u.old {
                            Some(old) => source_changed(old, &u.new),
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

    fn note_departure(&self, kind: &Str, old: &SourceObject) {
        if old.has_finalizer(keys::FINALIZER)
            && !old.deleting
            && let Some(ts) = self.types.get(kind)
        {
            ts.departed(old.key.clone());
        }
    }

    fn mirror_changed(&self, kind: &Str, m: &MirrorRecord, out: &mut Vec<WorkKey>) {
        let (Some(ts), Some(stores)) = (self.types.get(kind), self.cache.get_type(kind)) else { return };
        let source = drift::source_of(m).and_then(|k| stores.sources.get(&k));
        let mut ledger = ts.ledger();
        match drift::mirror_verdict(m, source.as_deref(), ledger.last_write(&m.key)) {
            drift::MirrorVerdict::EnqueueSource(k) => out.push(WorkKey { kind: kind.clone(), source: k }),
            // If this is our own write echoing back, from now on the record alone says so.
            drift::MirrorVerdict::Keep => state::settle(&mut ledger, &stores.mirrors, [&m.key]),
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
        let kinds: HashSet<Str> = self.cache.type_names().into_iter().collect();
        let mut out = HashSet::new();
        {
            let mut targets = self.targets();
            // Sources of a type no longer watched are not asked about (nor kept).
            targets.retain(|k| kinds.contains(&k.kind));
            old.into_iter().chain(new).for_each(|n| targets.selecting(n, &mut out));
        }
        for kind in &kinds {
            let Some(stores) = self.cache.get_type(kind) else { continue };
            for src in stores.sources.filter(|s| target_index::names_literally(s, &name)) {
                out.insert(WorkKey { kind: kind.clone(), source: src.key.clone() });
            }
            for m in stores.mirrors.filter(|m| m.key.namespace == name) {
                if let Some(k) = drift::source_of(&m) {
                    out.insert(WorkKey { kind: kind.clone(), source: k });
                }
            }
        }
        out.into_iter().collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Update as Change;
    use crate::client::ApiResource;
    use crate::mirror::build::{self, BuildConfig, NoTransform};
    use crate::mirror::drift::LastWrite;
    use serde_json::{Value, json};

    fn src(annotations: Value) -> SourceObject {
        SourceObject::from_object(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "default", "uid": "u1", "resourceVersion": "5",
                "labels": {"kubemirror.raczylo.com/enabled": "true"}, "annotations": annotations},
            "data": {"k": "dg=="}}))
        .unwrap()
    }

    fn setup() -> (Router, Arc<ApiResource>, SourceObject) {
        let cache = Cache::new();
        let types = Types::default();
        let r = Arc::new(ApiResource::secrets());
        let stores = cache.add_type("Secret.v1");
        types.insert("Secret.v1".into(), r.clone());
        let s =
            src(json!({"kubemirror.raczylo.com/sync": "true", "kubemirror.raczylo.com/target-namespaces": "app-*"}));
        let router = Router::new(cache, types);
        // As the watcher does: the store first, then the routing (which indexes the targeting).
        router.route(Update::Sources(r.clone(), Reflected::Applied(stores.sources.upsert(s.clone()).unwrap())));
        (router, r, s)
    }

    fn mirror(ns: &str, rv: &str, hash: &str) -> MirrorRecord {
        MirrorRecord::from_object(
            &json!({"metadata": {"name": "db", "namespace": ns, "uid": "m1", "resourceVersion": rv,
            "labels": {"kubemirror.raczylo.com/managed-by": "kubemirror"},
            "annotations": {"kubemirror.raczylo.com/source-namespace": "default",
                "kubemirror.raczylo.com/source-name": "db", "kubemirror.raczylo.com/source-uid": "u1",
                "kubemirror.raczylo.com/source-content-hash": hash}}}),
        )
        .unwrap()
    }

    fn names(keys: Vec<WorkKey>) -> Vec<String> {
        keys.into_iter().map(|k| k.to_string()).collect()
    }

    #[test]
    fn our_own_source_patches_queue_nothing() {
        let (router, r, s) = setup();
        let mut patched = s.object();
        patched["metadata"]["annotations"]["kubemirror.raczylo.com/sync-status"] = json!("synced:1");
        patched["metadata"]["finalizers"] = json!(["kubemirror.raczylo.com/finalizer"]);
        patched["metadata"]["resourceVersion"] = json!("6");
        let new = Arc::new(SourceObject::from_object(patched.clone()).unwrap());
        let u = Change { old: Some(Arc::new(s.clone())), new: new.clone() };
        assert!(router.route(Update::Sources(r.clone(), Reflected::Applied(u))).is_empty());
        patched["data"]["k"] = json!("bmV3");
        let changed = Arc::new(SourceObject::from_object(patched).unwrap());
        let u = Change { old: Some(new), new: changed };
        assert_eq!(names(router.route(Update::Sources(r, Reflected::Applied(u)))), ["Secret.v1 default/db"]);
    }

    #[test]
    fn mirror_echoes_are_skipped_other_changes_and_deletions_queue_the_source() {
        let (router, r, s) = setup();
        let desired =
            build::build_mirror(&s, "app-a", &BuildConfig::default(), &NoTransform, std::time::SystemTime::now())
                .unwrap();
        let ts = router.types.get("Secret.v1").unwrap();
        let key = ObjectKey::new("app-a", "db");
        ts.ledger().record(key.clone(), LastWrite::of_write(&desired, "10", None));
        let mirrors = router.cache.get_type("Secret.v1").unwrap().mirrors;
        // As the watcher does: the store first, then the routing of what it reflected.
        let applied = |m: MirrorRecord| Reflected::Applied(mirrors.upsert(m).unwrap());
        let echo = mirror("app-a", "10", &desired.hash);
        assert!(router.route(Update::Mirrors(r.clone(), applied(echo.clone()))).is_empty());
        // The echo settled the write: the record says "ours", the ledger forgot it.
        assert!(mirrors.get(&key).unwrap().confirmed.get());
        assert!(ts.ledger().is_empty());
        let edited = mirror("app-a", "11", &desired.hash);
        assert_eq!(names(router.route(Update::Mirrors(r.clone(), applied(edited)))), ["Secret.v1 default/db"]);
        assert!(!mirrors.get(&key).unwrap().confirmed.get(), "someone else's version is not ours");
        let deleted = router.route(Update::Mirrors(r, Reflected::Deleted(Arc::new(echo))));
        assert_eq!(names(deleted), ["Secret.v1 default/db"]);
        assert!(ts.ledger().last_write(&key).is_none(), "a deleted mirror is forgotten");
    }

    #[test]
    fn namespaces_queue_the_sources_that_select_them_or_have_mirrors_there() {
        let (router, _, _) = setup();
        let ns = |name: &str| Arc::new(NamespaceRecord::from_object(&json!({"metadata": {"name": name}})).unwrap());
        let added = |n| Update::Namespaces(Reflected::Applied(Change { old: None, new: n }));
        assert_eq!(names(router.route(added(ns("app-new")))), ["Secret.v1 default/db"]);
        assert!(router.route(added(ns("unrelated"))).is_empty());
        router.cache.get_type("Secret.v1").unwrap().mirrors.upsert(mirror("unrelated", "3", "h"));
        assert_eq!(
            names(router.route(Update::Namespaces(Reflected::Deleted(ns("unrelated"))))),
            ["Secret.v1 default/db"]
        );
    }

    #[test]
    fn namespace_events_follow_the_sources_targeting_as_it_changes() {
        let (router, r, s) = setup();
        let sources = router.cache.get_type("Secret.v1").unwrap().sources;
        let ns = |name: &str| Arc::new(NamespaceRecord::from_object(&json!({"metadata": {"name": name}})).unwrap());
        let added = |n| Update::Namespaces(Reflected::Applied(Change { old: None, new: n }));
        // Retargeted to one literal name: the glob no longer matches, the name does.
        let mut retargeted = s.object();
        retargeted["metadata"]["annotations"]["kubemirror.raczylo.com/target-namespaces"] = json!("web");
        retargeted["metadata"]["resourceVersion"] = json!("6");
        let u = sources.upsert(SourceObject::from_object(retargeted).unwrap()).unwrap();
        router.route(Update::Sources(r.clone(), Reflected::Applied(u)));
        assert!(router.route(added(ns("app-new"))).is_empty());
        assert_eq!(names(router.route(added(ns("web")))), ["Secret.v1 default/db"]);
        // A deleted source is asked about nothing; nor are the sources of a type no longer watched.
        let gone = sources.delete(&s.key).unwrap();
        router.route(Update::Sources(r.clone(), Reflected::Deleted(gone)));
        assert!(router.route(added(ns("web"))).is_empty());
        let again = sources.upsert(s.clone()).unwrap();
        router.route(Update::Sources(r, Reflected::Applied(again)));
        assert_eq!(names(router.route(added(ns("app-b")))), ["Secret.v1 default/db"]);
        router.cache.remove_type("Secret.v1");
        assert!(router.route(added(ns("app-c"))).is_empty());
        assert!(router.targets().is_empty());
    }
}
