//! The controller's view of the cluster: one [`Store`] per watched stream (sources and mirrors per
//! watched type, plus namespaces), fed by the watcher, read by the reconcilers.
//!
//! Semantics are kube-rs's reflector store:
//! - `apply` / `delete` for watch events;
//! - a relist (`init`, `init_apply`…, `init_done`) fills a side buffer and swaps it in at the end,
//!   so readers never see a half-listed world; the swap reports what vanished while we were not
//!   watching, so deletions missed during an outage still reach the reconcilers;
//! - `synced` turns true after the first complete listing and stays true.
//!
//! Records are the compact model types (no second copy of any object: the watcher hands each
//! decoded object to the model constructor, which keeps only what the logic needs). Strings that
//! repeat across records are interned in one [`Interner`] shared by all stores: namespace names,
//! and for mirrors also the source's name/uid and content hash (all N mirrors of a source share
//! them), and namespace label keys and values.
//!
//! Reads take a read lock for a hash lookup and return the record's `Arc` (one refcount bump).
//! The table holds one pointer per record, hashed by the record's key (no key copy beside it).
//! Mirrors are indexed by the source they name (the index holds the same `Arc`s), so source ->
//! mirrors is O(1) (plus the number of mirrors), and mirror -> source is the record's own
//! `source` field.
//!
//! Memory, measured by `tests::memory_per_1000_records` (64-bit, net heap bytes counted by a test
//! allocator, so including table overhead; `cargo test --features testkit --lib cache::tests::memory
//! -- --nocapture` prints it, and the test fails if a figure grows past its budget):
//! - 1,000 mirrors (metadata-only, 50 sources into 20 namespaces, uids of the API server's UUID
//!   form): about 145 KB: a record is 88 bytes (one 104-byte allocation with its `Arc` counts:
//!   resourceVersion inline, the uid as a 16-byte UUID ([`crate::util::compact`]), the source reference
//!   and content hash one shared pointer), plus its table slot and index entry;
//! - 1,000 namespaces with 3 labels each: about 0.2 MB (labels as one sorted slice per record,
//!   the API server's `kubernetes.io/metadata.name` label answered from the name);
//! - 1,000 sources (a Secret with 3 small data keys): about 0.56 MB: the content is kept as
//!   compact JSON text and parsed when a mirror is built, the metadata the planner reads as fields.
//!
//! The executor's write ledger ([`crate::mirror::drift::Ledger`]) adds nothing per mirror in the
//! steady state: once the watch shows a write, the record's `confirmed` mark stands for it.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::sync::watch;

use serde_json::Value;

use crate::model::{MirrorRecord, ModelError, NamespaceRecord, ObjectKey, SourceObject, Str};
use crate::watcher::Event;

mod interner;
mod table;

pub use interner::{Interner, SharedInterner};
use table::{Slot, Table, lookup};

/// What a store needs from a record.
pub trait Record: Clone + Send + Sync + 'static {
    type Key: Clone + Eq + Hash + Send + Sync + std::fmt::Debug + 'static;
    fn key(&self) -> &Self::Key;
    fn resource_version(&self) -> &str;
    /// Nothing the controller looks at differs from `old` (a re-delivered event, or a relisted
    /// object that did not change while we were not watching).
    fn unchanged_from(&self, old: &Self) -> bool {
        !self.resource_version().is_empty() && self.resource_version() == old.resource_version()
    }
    /// The secondary key this record is indexed under (a mirror's source).
    fn index_key(&self) -> Option<ObjectKey> {
        None
    }
    /// Replace repeated strings by their interned copies.
    fn intern(&mut self, interner: &mut Interner);
    /// The record for a watched object; a malformed object is an error, never a panic.
    fn from_value(obj: Value) -> Result<Self, ModelError>;
    /// The key of a watched object: enough for a deletion.
    fn key_of(obj: &Value) -> Option<Self::Key>;
}

fn meta<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str().filter(|s| !s.is_empty())
}

fn object_key(obj: &Value) -> Option<ObjectKey> {
    Some(ObjectKey::new(meta(obj, "namespace")?, meta(obj, "name")?))
}

impl Record for SourceObject {
    type Key = ObjectKey;
    fn key(&self) -> &ObjectKey {
        &self.key
    }
    fn resource_version(&self) -> &str {
        &self.resource_version
    }
    fn intern(&mut self, i: &mut Interner) {
        self.intern_with(|s| i.intern(s));
    }
    fn from_value(obj: Value) -> Result<Self, ModelError> {
        SourceObject::from_object(obj)
    }
    fn key_of(obj: &Value) -> Option<ObjectKey> {
        object_key(obj)
    }
}

impl Record for MirrorRecord {
    type Key = ObjectKey;
    fn key(&self) -> &ObjectKey {
        &self.key
    }
    fn resource_version(&self) -> &str {
        &self.resource_version
    }
    fn index_key(&self) -> Option<ObjectKey> {
        self.source.as_ref().map(|s| ObjectKey { namespace: s.namespace.clone(), name: s.name.clone() })
    }
    fn intern(&mut self, i: &mut Interner) {
        self.key.namespace = i.intern(&self.key.namespace);
        // A mirror is usually named like its source, so the name repeats in every target namespace.
        self.key.name = i.intern(&self.key.name);
        if let Some(source) = &mut self.source {
            *source = i.intern_source(source);
        }
    }
    fn from_value(obj: Value) -> Result<Self, ModelError> {
        MirrorRecord::from_object(&obj)
    }
    fn key_of(obj: &Value) -> Option<ObjectKey> {
        object_key(obj)
    }
}

impl Record for NamespaceRecord {
    type Key = Str;
    fn key(&self) -> &Str {
        &self.name
    }
    fn resource_version(&self) -> &str {
        ""
    }
    /// Namespace records carry no resourceVersion; compare what targeting reads instead, so a
    /// relist or a status-only update does not re-evaluate every source.
    fn unchanged_from(&self, old: &Self) -> bool {
        self == old
    }
    fn intern(&mut self, i: &mut Interner) {
        self.name = i.intern(&self.name);
        self.labels.intern(true, |s| i.intern(s));
    }
    fn from_value(obj: Value) -> Result<Self, ModelError> {
        NamespaceRecord::from_object(&obj)
    }
    fn key_of(obj: &Value) -> Option<Str> {
        meta(obj, "name").map(Str::from)
    }
}

/// How an applied record relates to what the store had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Updated,
    /// Nothing the controller reads changed (a re-delivered event): nothing to reconcile.
    Unchanged,
}

/// A record that is new or changed, with what the store held before (so consumers can tell our
/// own writes or status-only updates from changes that matter).
#[derive(Debug)]
pub struct Update<R> {
    pub old: Option<Arc<R>>,
    pub new: Arc<R>,
}

/// Result of swapping in a complete listing.
#[derive(Debug)]
pub struct Reset<R: Record> {
    /// Records that are new or changed (see [`Record::unchanged_from`]) since the previous view.
    pub changed: Vec<Update<R>>,
    /// Records that were cached but are no longer in the cluster (deleted while not watching).
    pub removed: Vec<Arc<R>>,
}

/// What a watcher event did to a store, i.e. what the reconcilers must look at.
#[derive(Debug)]
pub enum Reflected<R: Record> {
    /// Nothing to reconcile: part of a listing still buffered, a re-delivered version, or an
    /// object that could not be read (logged).
    Nothing,
    /// Added or changed; the previous record comes along (e.g. to skip our own writes).
    Applied(Update<R>),
    /// Removed; the last known record (a mirror's tells which source to look at).
    Deleted(Arc<R>),
    /// A listing was swapped in.
    Reset(Reset<R>),
}

struct Inner<R: Record> {
    /// Records behind an `Arc`: a read is one refcount bump, and the hash table stays small
    /// (its buckets are sized in powers of two, so up to half of them are empty).
    live: Table<R>,
    /// Secondary index: index key -> the records under it (a `Vec`: few entries per key, and
    /// leaner than a set; the same `Arc`s as in `live`).
    index: HashMap<ObjectKey, Vec<Arc<R>>>,
    /// Set while a relist is in progress.
    buffer: Option<Table<R>>,
}

impl<R: Record> Inner<R> {
    fn get(&self, key: &R::Key) -> Option<&Arc<R>> {
        self.live.get(lookup(key)).map(|s| &s.0)
    }

    fn unindex(&mut self, rec: &R) {
        if let Some(ik) = rec.index_key()
            && let Some(recs) = self.index.get_mut(&ik)
        {
            recs.retain(|r| r.key() != rec.key());
            if recs.is_empty() {
                self.index.remove(&ik);
            }
        }
    }

    fn reindex(&mut self, rec: &Arc<R>) {
        if let Some(ik) = rec.index_key() {
            self.index.entry(ik).or_default().push(rec.clone());
        }
    }

    /// Stores `new` in place of whatever had its key; returns that.
    fn put(&mut self, new: Arc<R>) -> Option<Arc<R>> {
        let old = self.live.replace(Slot(new.clone())).map(|s| s.0);
        if let Some(old) = &old {
            self.unindex(old);
        }
        self.reindex(&new);
        old
    }
}

/// One watched stream's records. Cheap to clone; clones share the store.
pub struct Store<R: Record> {
    inner: Arc<RwLock<Inner<R>>>,
    interner: SharedInterner,
    synced: Arc<watch::Sender<bool>>,
}

impl<R: Record> Clone for Store<R> {
    fn clone(&self) -> Self {
        Store { inner: self.inner.clone(), interner: self.interner.clone(), synced: self.synced.clone() }
    }
}

impl<R: Record> Store<R> {
    pub fn new(interner: SharedInterner) -> Self {
        Store {
            inner: Arc::new(RwLock::new(Inner { live: HashSet::new(), index: HashMap::new(), buffer: None })),
            interner,
            synced: Arc::new(watch::Sender::new(false)),
        }
    }

    // Lock poisoning only follows a panic inside our own short critical sections, which hold no
    // invariants across statements; keep serving.
    fn read(&self) -> RwLockReadGuard<'_, Inner<R>> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner<R>> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    fn interned(&self, mut rec: R) -> R {
        rec.intern(&mut self.interner.lock().unwrap_or_else(|p| p.into_inner()));
        rec
    }

    /// A watch event added or modified the record.
    pub fn apply(&self, rec: R) -> Change {
        match self.upsert(rec) {
            None => Change::Unchanged,
            Some(Update { old: None, .. }) => Change::Added,
            Some(Update { old: Some(_), .. }) => Change::Updated,
        }
    }

    /// Like [`apply`](Self::apply), returning the previous and the stored record; `None` when
    /// nothing changed.
    pub fn upsert(&self, rec: R) -> Option<Update<R>> {
        let rec = self.interned(rec);
        let mut inner = self.write();
        if inner.get(rec.key()).is_some_and(|old| rec.unchanged_from(old)) {
            return None;
        }
        let new = Arc::new(rec);
        let old = inner.put(new.clone());
        Some(Update { old, new })
    }

    /// A watch event deleted the record; returns what was cached.
    pub fn delete(&self, key: &R::Key) -> Option<Arc<R>> {
        let mut inner = self.write();
        let old = inner.live.take(lookup(key))?.0;
        inner.unindex(&old);
        Some(old)
    }

    /// A (re)list starts: collect into a fresh buffer; the live view stays as it was.
    pub fn init(&self) {
        self.write().buffer = Some(HashSet::new());
    }

    /// One listed object. Without a preceding `init` it is applied directly (defensive: the
    /// watcher always starts a listing with `init`).
    pub fn init_apply(&self, rec: R) {
        let rec = self.interned(rec);
        let mut inner = self.write();
        match &mut inner.buffer {
            Some(buf) => {
                buf.replace(Slot(Arc::new(rec)));
            }
            None => {
                drop(inner);
                self.apply(rec);
            }
        }
    }

    /// The listing is complete: swap it in, rebuild the index, report changes, mark synced.
    pub fn init_done(&self) -> Reset<R> {
        let mut inner = self.write();
        let Some(new) = inner.buffer.take() else {
            // No listing in progress (a driver bug). Swapping in "nothing" would report every
            // object as deleted, so keep the live view.
            log::error!("cache: listing completed without a start; keeping the current view");
            drop(inner);
            self.synced.send_replace(true);
            return Reset { changed: Vec::new(), removed: Vec::new() };
        };
        let old = std::mem::take(&mut inner.live);
        let mut changed = Vec::new();
        let mut live = Table::with_capacity(new.len());
        let mut index: HashMap<ObjectKey, Vec<Arc<R>>> = HashMap::new();
        for Slot(rec) in new {
            // An unchanged record keeps the copy we had (with anything the cache learnt about it,
            // such as a mirror's `confirmed`); the listed one is dropped.
            let rec = match old.get(lookup(rec.key())) {
                Some(Slot(prev)) if rec.unchanged_from(prev) => prev.clone(),
                prev => {
                    changed.push(Update { old: prev.map(|s| s.0.clone()), new: rec.clone() });
                    rec
                }
            };
            if let Some(ik) = rec.index_key() {
                index.entry(ik).or_default().push(rec.clone());
            }
            live.insert(Slot(rec));
        }
        let removed: Vec<Arc<R>> = old.into_iter().filter(|s| !live.contains(lookup(s.0.key()))).map(|s| s.0).collect();
        index.values_mut().for_each(Vec::shrink_to_fit);
        inner.live = live;
        inner.index = index;
        drop(inner);
        self.synced.send_replace(true);
        // A relist is when many records are replaced at once: a good moment to drop dead strings.
        self.interner.lock().unwrap_or_else(|p| p.into_inner()).gc();
        Reset { changed, removed }
    }

    /// Applies one watcher event (kube-rs `Writer::apply_watcher_event`). The object is consumed:
    /// the record keeps what it needs, the rest is dropped here.
    pub fn apply_watcher_event(&self, event: Event) -> Reflected<R> {
        let convert = |obj: Value| {
            let what = format!(
                "{} {}/{}",
                obj.get("kind").and_then(Value::as_str).unwrap_or("object"),
                meta(&obj, "namespace").unwrap_or(""),
                meta(&obj, "name").unwrap_or("<unnamed>")
            );
            R::from_value(obj).map_err(|e| log::warn!("ignoring unreadable object {what}: {e}")).ok()
        };
        match event {
            Event::Init => {
                self.init();
                Reflected::Nothing
            }
            Event::InitApply(item) => {
                if let Some(rec) = convert(item.to_value()) {
                    self.init_apply(rec);
                }
                Reflected::Nothing
            }
            Event::InitDone => Reflected::Reset(self.init_done()),
            Event::Apply(obj) => match convert(obj).and_then(|rec| self.upsert(rec)) {
                Some(update) => Reflected::Applied(update),
                None => Reflected::Nothing,
            },
            Event::Delete(obj) => match R::key_of(&obj).and_then(|k| self.delete(&k)) {
                Some(old) => Reflected::Deleted(old),
                None => Reflected::Nothing,
            },
        }
    }

    pub fn get(&self, key: &R::Key) -> Option<Arc<R>> {
        self.read().get(key).cloned()
    }

    pub fn contains(&self, key: &R::Key) -> bool {
        self.read().live.contains(lookup(key))
    }

    pub fn len(&self) -> usize {
        self.read().live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.read().live.is_empty()
    }

    pub fn keys(&self) -> Vec<R::Key> {
        self.read().live.iter().map(|s| s.0.key().clone()).collect()
    }

    pub fn list(&self) -> Vec<Arc<R>> {
        self.read().live.iter().map(|s| s.0.clone()).collect()
    }

    /// The records matching `pred`, without copying the others out of the store.
    pub fn filter(&self, pred: impl Fn(&R) -> bool) -> Vec<Arc<R>> {
        self.read().live.iter().filter(|s| pred(&s.0)).map(|s| s.0.clone()).collect()
    }

    /// Records indexed under `key` (for mirrors: those naming this source).
    pub fn by_index(&self, key: &ObjectKey) -> Vec<Arc<R>> {
        self.read().index.get(key).cloned().unwrap_or_default()
    }

    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    pub fn synced(&self) -> watch::Receiver<bool> {
        self.synced.subscribe()
    }

    pub async fn wait_synced(&self) {
        let mut rx = self.synced.subscribe();
        // The sender lives in `self`, so it cannot close while we wait.
        let _ = rx.wait_for(|s| *s).await;
    }
}

impl Store<MirrorRecord> {
    /// Mirrors that name `source` (whether or not they are really owned: callers check `is_owned_by`).
    pub fn mirrors_of(&self, source: &ObjectKey) -> Vec<Arc<MirrorRecord>> {
        self.by_index(source)
    }
}

/// The stores of one watched type: its opted-in sources and the mirrors we created.
#[derive(Clone)]
pub struct TypeStores {
    pub sources: Store<SourceObject>,
    pub mirrors: Store<MirrorRecord>,
}

impl TypeStores {
    pub fn is_synced(&self) -> bool {
        self.sources.is_synced() && self.mirrors.is_synced()
    }
}

/// Everything cached, for all watched types. Types come and go with rediscovery.
#[derive(Clone)]
pub struct Cache {
    interner: SharedInterner,
    pub namespaces: Store<NamespaceRecord>,
    types: Arc<RwLock<HashMap<Str, TypeStores>>>,
}

impl Default for Cache {
    fn default() -> Self {
        Cache::new()
    }
}

impl Cache {
    pub fn new() -> Self {
        let interner = SharedInterner::default();
        Cache { namespaces: Store::new(interner.clone()), interner, types: Arc::default() }
    }

    /// The stores for a type (by its display name, e.g. `Secret.v1`), created on first use.
    pub fn add_type(&self, name: &str) -> TypeStores {
        let mut types = self.types.write().unwrap_or_else(|p| p.into_inner());
        types
            .entry(Str::from(name))
            .or_insert_with(|| TypeStores {
                sources: Store::new(self.interner.clone()),
                mirrors: Store::new(self.interner.clone()),
            })
            .clone()
    }

    /// Forget a type no longer watched; its records are freed once the last reader drops them.
    pub fn remove_type(&self, name: &str) -> Option<TypeStores> {
        self.types.write().unwrap_or_else(|p| p.into_inner()).remove(name)
    }

    pub fn get_type(&self, name: &str) -> Option<TypeStores> {
        self.types.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    pub fn type_names(&self) -> Vec<Str> {
        self.types.read().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect()
    }

    /// Namespaces and every registered type have completed a first listing.
    pub fn is_synced(&self) -> bool {
        self.namespaces.is_synced()
            && self.types.read().unwrap_or_else(|p| p.into_inner()).values().all(TypeStores::is_synced)
    }

    /// Interned strings currently held (a metric; should track distinct namespaces/sources).
    pub fn interned_strings(&self) -> usize {
        self.interner.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::RawItem;
    use serde_json::json;

    fn mirror(ns: &str, name: &str, rv: &str, src: Option<(&str, &str)>) -> MirrorRecord {
        let mut ann = serde_json::Map::new();
        if let Some((sns, sname)) = src {
            ann.insert("kubemirror.raczylo.com/source-namespace".into(), json!(sns));
            ann.insert("kubemirror.raczylo.com/source-name".into(), json!(sname));
            ann.insert("kubemirror.raczylo.com/source-uid".into(), json!(format!("uid-{sns}-{sname}")));
            ann.insert("kubemirror.raczylo.com/source-content-hash".into(), json!(format!("hash-{sname}")));
        }
        // A uid of the API server's form (a lowercase UUID), distinct per namespace/name.
        let n = ns
            .bytes()
            .chain(name.bytes())
            .fold(0xcbf29ce484222325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3));
        let uid = format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            n >> 32,
            n >> 16 & 0xffff,
            n & 0xfff,
            n >> 52,
            n & 0xffff_ffff_ffff
        );
        MirrorRecord::from_object(&json!({"metadata": {"name": name, "namespace": ns, "uid": uid,
            "resourceVersion": rv, "labels": {"kubemirror.raczylo.com/managed-by": "kubemirror"},
            "annotations": ann}}))
        .unwrap()
    }

    fn ns(name: &str, labels: Value) -> NamespaceRecord {
        NamespaceRecord::from_object(&json!({"metadata": {"name": name, "labels": labels}})).unwrap()
    }

    fn store() -> Store<MirrorRecord> {
        Store::new(SharedInterner::default())
    }

    fn key(ns: &str, name: &str) -> ObjectKey {
        ObjectKey::new(ns, name)
    }

    #[test]
    fn apply_reports_changes_and_skips_redelivered_versions() {
        let s = store();
        assert_eq!(s.apply(mirror("a", "x", "1", None)), Change::Added);
        assert_eq!(s.apply(mirror("a", "x", "1", None)), Change::Unchanged);
        assert_eq!(s.apply(mirror("a", "x", "2", None)), Change::Updated);
        assert_eq!(s.get(&key("a", "x")).unwrap().resource_version.as_ref(), "2");
        assert_eq!(s.delete(&key("a", "x")).unwrap().resource_version.as_ref(), "2");
        assert!(s.delete(&key("a", "x")).is_none());
        assert!(s.is_empty());
    }

    #[test]
    fn index_follows_applies_updates_and_deletes() {
        let s = store();
        s.apply(mirror("a", "db", "1", Some(("src", "db"))));
        s.apply(mirror("b", "db", "1", Some(("src", "db"))));
        s.apply(mirror("c", "other", "1", Some(("src", "other"))));
        s.apply(mirror("d", "loose", "1", None));
        let names = |v: Vec<Arc<MirrorRecord>>| {
            let mut n: Vec<String> = v.iter().map(|m| m.key.to_string()).collect();
            n.sort();
            n
        };
        assert_eq!(names(s.mirrors_of(&key("src", "db"))), vec!["a/db", "b/db"]);
        // Re-pointed to another source: moves in the index.
        s.apply(mirror("b", "db", "2", Some(("src", "other"))));
        assert_eq!(names(s.mirrors_of(&key("src", "db"))), vec!["a/db"]);
        assert_eq!(names(s.mirrors_of(&key("src", "other"))), vec!["b/db", "c/other"]);
        s.delete(&key("a", "db"));
        assert!(s.mirrors_of(&key("src", "db")).is_empty());
        assert!(!s.read().index.contains_key(&key("src", "db")), "empty index entries are dropped");
        // mirror -> source is the record itself.
        let m = s.get(&key("c", "other")).unwrap();
        assert_eq!(m.source.as_ref().unwrap().name.as_ref(), "other");
    }

    #[test]
    fn relist_is_invisible_until_done_then_reports_vanished_and_changed() {
        let s = store();
        assert!(!s.is_synced());
        s.init();
        s.init_apply(mirror("a", "keep", "1", Some(("src", "keep"))));
        s.init_apply(mirror("a", "gone", "1", Some(("src", "gone"))));
        let first = s.init_done();
        assert_eq!(first.changed.len(), 2);
        assert!(first.removed.is_empty());
        assert!(s.is_synced());

        // Disconnected: "gone" deleted, "keep" updated, "new" created. Relist.
        s.init();
        s.init_apply(mirror("a", "keep", "5", Some(("src", "keep"))));
        s.init_apply(mirror("a", "new", "6", None));
        // Readers still see the old world mid-relist.
        assert!(s.contains(&key("a", "gone")));
        assert!(!s.contains(&key("a", "new")));
        assert_eq!(s.get(&key("a", "keep")).unwrap().resource_version.as_ref(), "1");
        let reset = s.init_done();
        let mut changed: Vec<(String, Option<String>)> = reset
            .changed
            .iter()
            .map(|u| (u.new.key.to_string(), u.old.as_ref().map(|o| o.resource_version.to_string())))
            .collect();
        changed.sort();
        assert_eq!(changed, vec![("a/keep".into(), Some("1".into())), ("a/new".into(), None)]);
        assert_eq!(reset.removed.len(), 1);
        assert_eq!(reset.removed[0].key, key("a", "gone"));
        assert!(!s.contains(&key("a", "gone")));
        assert!(s.mirrors_of(&key("src", "gone")).is_empty(), "index rebuilt after the swap");
        assert_eq!(s.mirrors_of(&key("src", "keep")).len(), 1);

        // An unchanged relist reports nothing.
        s.init();
        for m in s.list() {
            s.init_apply((*m).clone());
        }
        let quiet = s.init_done();
        assert!(quiet.changed.is_empty() && quiet.removed.is_empty());
    }

    #[test]
    fn a_confirmed_mark_stays_with_its_version_and_survives_an_unchanged_relist() {
        let s = store();
        let k = key("a", "db");
        s.apply(mirror("a", "db", "1", Some(("src", "db"))));
        assert!(!s.get(&k).unwrap().confirmed.get());
        s.get(&k).unwrap().confirmed.set();
        assert!(s.get(&k).unwrap().confirmed.get());
        assert!(s.mirrors_of(&key("src", "db"))[0].confirmed.get(), "the index holds the same record");
        // A re-delivered version keeps the mark; so does a relist in which it did not change.
        s.apply(mirror("a", "db", "1", Some(("src", "db"))));
        s.init();
        s.init_apply(mirror("a", "db", "1", Some(("src", "db"))));
        assert!(s.init_done().changed.is_empty());
        assert!(s.get(&k).unwrap().confirmed.get());
        // A new version is someone's write until shown otherwise.
        s.apply(mirror("a", "db", "2", Some(("src", "db"))));
        assert!(!s.get(&k).unwrap().confirmed.get());
        assert!(!s.mirrors_of(&key("src", "db"))[0].confirmed.get());
    }

    #[test]
    fn a_stray_listing_end_never_empties_the_store() {
        let s = store();
        s.apply(mirror("a", "x", "1", None));
        let r = s.init_done();
        assert!(r.removed.is_empty() && r.changed.is_empty());
        assert!(s.contains(&key("a", "x")));
    }

    #[tokio::test]
    async fn synced_signal_fires_once_the_first_listing_completes() {
        let s = store();
        let mut rx = s.synced();
        assert!(!*rx.borrow_and_update());
        let waiter = tokio::spawn({
            let s = s.clone();
            async move { s.wait_synced().await }
        });
        s.init();
        s.init_apply(mirror("a", "x", "1", None));
        assert!(!s.is_synced());
        s.init_done();
        waiter.await.unwrap();
        assert!(rx.has_changed().unwrap());
        // A later relist does not un-sync.
        s.init();
        assert!(s.is_synced());
    }

    #[test]
    fn strings_are_interned_across_records_and_stores() {
        let cache = Cache::new();
        let t = cache.add_type("Secret.v1");
        t.mirrors.apply(mirror("app", "db", "1", Some(("src", "db"))));
        t.mirrors.apply(mirror("web", "db", "1", Some(("src", "db"))));
        cache.namespaces.apply(ns("app", json!({"team": "a"})));
        let a = t.mirrors.get(&key("app", "db")).unwrap();
        let b = t.mirrors.get(&key("web", "db")).unwrap();
        assert!(Arc::ptr_eq(&a.key.name, &b.key.name));
        let (sa, sb) = (a.source.as_ref().unwrap(), b.source.as_ref().unwrap());
        assert!(Arc::ptr_eq(sa, sb), "one source reference for every mirror of a source");
        assert!(Arc::ptr_eq(&sa.name, &a.key.name), "its strings interned too");
        assert!(Arc::ptr_eq(a.content_hash().unwrap(), b.content_hash().unwrap()));
        let n = cache.namespaces.get(&Str::from("app")).unwrap();
        assert!(Arc::ptr_eq(&n.name, &a.key.namespace), "namespace names shared across stores");
        assert_eq!(n.label("team"), Some("a"));
    }

    #[test]
    fn interner_drops_strings_nobody_uses() {
        let cache = Cache::new();
        let t = cache.add_type("ConfigMap.v1");
        t.mirrors.apply(mirror("app", "db", "1", Some(("src", "db"))));
        assert!(cache.interned_strings() > 0);
        t.mirrors.init();
        let reset = t.mirrors.init_done();
        // The removed record is handed to the caller, so its strings survive this relist...
        assert_eq!(reset.removed.len(), 1);
        drop(reset);
        // ...and are reclaimed at the next collection.
        t.mirrors.init();
        t.mirrors.init_done();
        assert_eq!(cache.interned_strings(), 0);
    }

    #[test]
    fn watcher_events_drive_the_store() {
        let s: Store<MirrorRecord> = store();
        let raw = |name: &str, rv: &str| {
            json!({"metadata": {"name": name, "namespace": "app", "uid": format!("u-{name}"), "resourceVersion": rv,
                "annotations": {"kubemirror.raczylo.com/source-namespace": "src",
                                "kubemirror.raczylo.com/source-name": "db"}}})
        };
        assert!(matches!(s.apply_watcher_event(Event::Init), Reflected::Nothing));
        assert!(matches!(
            s.apply_watcher_event(Event::InitApply(RawItem::from_value(&raw("a", "1")))),
            Reflected::Nothing
        ));
        // A malformed object is skipped, not a panic, and does not poison the listing.
        assert!(matches!(
            s.apply_watcher_event(Event::InitApply(RawItem::from_value(&json!({"metadata": {"name": "x"}})))),
            Reflected::Nothing
        ));
        let Reflected::Reset(r) = s.apply_watcher_event(Event::InitDone) else { panic!() };
        assert_eq!(r.changed.len(), 1);
        assert_eq!(r.changed[0].new.key, key("app", "a"));
        let Reflected::Applied(u) = s.apply_watcher_event(Event::Apply(raw("b", "2"))) else { panic!() };
        assert!(u.old.is_none());
        assert_eq!(u.new.key, key("app", "b"));
        assert!(matches!(s.apply_watcher_event(Event::Apply(raw("b", "2"))), Reflected::Nothing));
        let Reflected::Applied(u) = s.apply_watcher_event(Event::Apply(raw("b", "3"))) else { panic!() };
        assert_eq!(u.old.unwrap().resource_version.as_ref(), "2", "the previous record comes along");
        let Reflected::Deleted(old) = s.apply_watcher_event(Event::Delete(raw("b", "4"))) else { panic!() };
        assert_eq!(old.source.as_ref().unwrap().name.as_ref(), "db");
        assert!(matches!(s.apply_watcher_event(Event::Delete(raw("b", "4"))), Reflected::Nothing));
        assert!(matches!(s.apply_watcher_event(Event::Delete(json!({}))), Reflected::Nothing));
        assert_eq!(s.mirrors_of(&key("src", "db")).len(), 1);

        let n: Store<NamespaceRecord> = Store::new(SharedInterner::default());
        n.apply_watcher_event(Event::Apply(json!({"metadata": {"name": "team"}})));
        // Same labels/annotations/phase: nothing to re-evaluate; a label change is.
        let same = n.apply_watcher_event(Event::Apply(json!({"metadata": {"name": "team", "resourceVersion": "9"}})));
        assert!(matches!(same, Reflected::Nothing));
        let relabeled = json!({"metadata": {"name": "team", "labels": {"env": "prod"}}});
        assert!(matches!(
            n.apply_watcher_event(Event::Apply(relabeled)),
            Reflected::Applied(Update { old: Some(_), .. })
        ));
        assert!(matches!(
            n.apply_watcher_event(Event::Delete(json!({"metadata": {"name": "team"}}))),
            Reflected::Deleted(_)
        ));
    }

    #[test]
    fn cache_registry_tracks_types_and_sync() {
        let cache = Cache::new();
        let t = cache.add_type("Secret.v1");
        assert!(!cache.is_synced());
        cache.namespaces.init();
        cache.namespaces.init_done();
        t.sources.init();
        t.sources.init_done();
        assert!(!cache.is_synced(), "mirrors not listed yet");
        t.mirrors.init();
        t.mirrors.init_done();
        assert!(cache.is_synced());
        // The same stores are returned for the same type.
        assert!(cache.get_type("Secret.v1").unwrap().is_synced());
        assert_eq!(cache.type_names(), vec![Str::from("Secret.v1")]);
        cache.add_type("Ingress.v1.networking.k8s.io");
        assert!(!cache.is_synced());
        assert!(cache.remove_type("Ingress.v1.networking.k8s.io").is_some());
        assert!(cache.is_synced());
    }

    /// Net heap bytes allocated by this thread, so parallel tests do not disturb the measurement.
    mod counting {
        use std::alloc::{GlobalAlloc, Layout, System};
        use std::cell::Cell;

        thread_local! {
            static NET: Cell<isize> = const { Cell::new(0) };
        }

        pub struct Counting;

        unsafe impl GlobalAlloc for Counting {
            unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
                let _ = NET.try_with(|n| n.set(n.get() + layout.size() as isize));
                unsafe { System.alloc(layout) }
            }
            unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
                let _ = NET.try_with(|n| n.set(n.get() - layout.size() as isize));
                unsafe { System.dealloc(ptr, layout) }
            }
            unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
                let _ = NET.try_with(|n| n.set(n.get() + new_size as isize - layout.size() as isize));
                unsafe { System.realloc(ptr, layout, new_size) }
            }
        }

        #[global_allocator]
        static ALLOC: Counting = Counting;

        pub fn net() -> isize {
            NET.with(Cell::get)
        }
    }

    /// Heap bytes retained by `fill` (inputs built and dropped inside it are not counted).
    fn retained_bytes(fill: impl FnOnce()) -> isize {
        let before = counting::net();
        fill();
        counting::net() - before
    }

    #[test]
    fn memory_per_1000_records() {
        let cache = Cache::new();
        let t = cache.add_type("Secret.v1");
        let mirrors = retained_bytes(|| {
            t.mirrors.init();
            for i in 0..1000 {
                let (src, target) = (i % 50, i / 50);
                t.mirrors.init_apply(mirror(
                    &format!("team-{target}"),
                    &format!("secret-{src}"),
                    &(1000 + i).to_string(),
                    Some(("platform", &format!("secret-{src}"))),
                ));
            }
            t.mirrors.init_done();
        });
        let namespaces = retained_bytes(|| {
            cache.namespaces.init();
            for i in 0..1000 {
                cache.namespaces.init_apply(ns(
                    &format!("team-{i}"),
                    json!({"kubernetes.io/metadata.name": format!("team-{i}"), "env": "prod",
                           "kubemirror.raczylo.com/allow-mirrors": "true"}),
                ));
            }
            cache.namespaces.init_done();
        });
        let sources = retained_bytes(|| {
            t.sources.init();
            for i in 0..1000 {
                let obj = json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                    "metadata": {"name": format!("secret-{i}"), "namespace": "platform", "uid": format!("uid-{i}"),
                        "resourceVersion": (5000 + i).to_string(), "creationTimestamp": "2025-01-02T03:04:05Z",
                        "labels": {"kubemirror.raczylo.com/enabled": "true"},
                        "annotations": {"kubemirror.raczylo.com/sync": "true",
                                        "kubemirror.raczylo.com/target-namespaces": "all"}},
                    "data": {"username": "YWRtaW4=", "password": "c2VjcmV0LXBhc3N3b3JkLTEyMzQ=",
                             "url": "cG9zdGdyZXM6Ly9kYi5leGFtcGxlOjU0MzIvYXBw"}});
                t.sources.init_apply(SourceObject::from_object(obj).unwrap());
            }
            t.sources.init_done();
        });
        eprintln!(
            "cache memory per 1,000 records: mirrors {} KiB, namespaces {} KiB, sources {} KiB",
            mirrors / 1024,
            namespaces / 1024,
            sources / 1024
        );
        assert_eq!((t.mirrors.len(), cache.namespaces.len(), t.sources.len()), (1000, 1000, 1000));
        // Budgets from the module docs, with headroom; a regression past them should be noticed.
        // Budgets a little above today's figures (145, 203, 560 KiB): growth is a regression.
        assert!(mirrors < 160 * 1024, "mirrors: {mirrors} bytes");
        assert!(namespaces < 225 * 1024, "namespaces: {namespaces} bytes");
        assert!(sources < 620 * 1024, "sources: {sources} bytes");
    }
}
