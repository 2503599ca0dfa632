//! Generic object storage for every resource, modelled on etcd behind the apiserver's registry:
//! one global, monotonically increasing revision used as resourceVersion; a bounded event history
//! for watch resumption (older requests get 410, as after an etcd compaction); objects kept as their
//! serialized JSON plus the few parsed fields that lists and watches filter on, so a list or a watch
//! event never re-serializes objects and 50k objects stay cheap.
//!
//! All methods run under the server's store mutex and never await.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use hyper::body::Bytes;
use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast};

use super::discovery::{Registry, ResourceInfo};
use super::errors::{ApiError, FieldError};
use super::services::Allocations;
use crate::selector::{FieldSelector, LabelSelector};
use crate::util::{base64, rand::Rng, time};

pub use super::writes::{DeleteOpts, DeleteOutcome, WriteOpts};

/// A stored object: its serialization and what filtering needs.
#[derive(Debug)]
pub struct Obj {
    pub bytes: Bytes,
    pub namespace: String,
    pub name: String,
    pub rv: u64,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    pub deleting: bool,
    /// The apiVersion it was written with; CRD versions share storage (conversion strategy None).
    pub api_version: String,
}

impl Obj {
    fn from_value(v: &Value, rv: u64) -> Result<Obj, ApiError> {
        let meta = &v["metadata"];
        let s = |k: &str| meta[k].as_str().unwrap_or("").to_string();
        let labels = meta["labels"]
            .as_object()
            .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string()))).collect())
            .unwrap_or_default();
        let bytes = serde_json::to_vec(v).map_err(|e| ApiError::internal(&format!("encoding object: {e}")))?;
        Ok(Obj {
            bytes: Bytes::from(bytes),
            namespace: s("namespace"),
            name: s("name"),
            rv,
            uid: s("uid"),
            labels,
            deleting: meta.get("deletionTimestamp").is_some_and(|d| !d.is_null()),
            api_version: v["apiVersion"].as_str().unwrap_or("").to_string(),
        })
    }

    pub fn value(&self) -> Value {
        // Only ever parses bytes this module serialized itself.
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }

    /// The object as served through `api_version`: only apiVersion differs between a CRD's versions.
    pub fn value_as(&self, api_version: &str) -> Value {
        let mut v = self.value();
        if self.api_version != api_version {
            v["apiVersion"] = json!(api_version);
        }
        v
    }

    /// Serialized as served through `api_version`; the stored bytes when nothing changes.
    pub fn bytes_as(&self, api_version: &str) -> Bytes {
        if self.api_version == api_version {
            return self.bytes.clone();
        }
        Bytes::from(self.value_as(api_version).to_string())
    }

    pub fn matches(&self, labels: &LabelSelector, fields: &FieldSelector) -> bool {
        if !labels.matches(&self.labels) {
            return false;
        }
        if fields.requirements.is_empty() {
            return true;
        }
        let parsed = if fields.fields().any(|f| f != "metadata.name" && f != "metadata.namespace") {
            self.value()
        } else {
            Value::Null
        };
        fields.matches_with(|f| match f {
            "metadata.name" => Some(self.name.clone()),
            "metadata.namespace" => Some(self.namespace.clone()),
            other => {
                let v = &parsed;
                let ptr = format!("/{}", other.replace('.', "/"));
                v.pointer(&ptr).map(|x| x.as_str().map(String::from).unwrap_or_else(|| x.to_string()))
            }
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed change. `line` is the watch frame for the full object, serialized once and shared.
#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub etype: EventType,
    pub key: (String, String),
    pub obj: Arc<Obj>,
    pub prev: Option<Arc<Obj>>,
    pub line: Bytes,
    /// The PartialObjectMetadata frame, built by the first metadata-only watcher that needs it.
    pub meta_line: OnceLock<Bytes>,
}

pub fn event_line(etype: &str, object: &[u8]) -> Bytes {
    let mut v = Vec::with_capacity(object.len() + 32);
    v.extend_from_slice(b"{\"type\":\"");
    v.extend_from_slice(etype.as_bytes());
    v.extend_from_slice(b"\",\"object\":");
    v.extend_from_slice(object);
    v.extend_from_slice(b"}\n");
    Bytes::from(v)
}

pub type EventReceiver = broadcast::Receiver<Arc<Event>>;

pub(super) type Table = BTreeMap<String, BTreeMap<String, Arc<Obj>>>;

pub struct ListParams<'a> {
    pub labels: &'a LabelSelector,
    pub fields: &'a FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<&'a str>,
    pub resource_version: Option<&'a str>,
    pub rv_match: Option<&'a str>,
}

#[derive(Debug)]
pub struct ListResult {
    pub rv: u64,
    pub items: Vec<Arc<Obj>>,
    pub continue_token: Option<String>,
    pub remaining: Option<i64>,
}

const INCONSISTENT_CONTINUE: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

pub struct Store {
    pub registry: Registry,
    rv: u64,
    pub(super) tables: HashMap<(String, String), Table>,
    /// Recent events per group/resource, like the apiserver's per-type watch caches.
    history: HashMap<(String, String), VecDeque<Arc<Event>>>,
    history_cap: usize,
    /// Per resource: every event above this revision is still in its history.
    floors: HashMap<(String, String), u64>,
    /// Every event with a revision above this is still in `history`.
    compacted: u64,
    tx: broadcast::Sender<Arc<Event>>,
    /// Woken on every commit (the namespace lifecycle task waits on it).
    pub changed: Arc<Notify>,
    pub(super) rng: Rng,
    pub(super) allocations: Allocations,
    /// Namespaces being deleted, and namespaces created since the controller last looked: the
    /// namespace controller works from these instead of scanning every namespace on each change.
    pub(super) terminating: BTreeSet<String>,
    pub(super) new_namespaces: BTreeSet<String>,
}

pub(super) fn now_string() -> String {
    time::format_rfc3339(SystemTime::now())
}

pub(super) fn ns_key(info: &ResourceInfo, ns: &str) -> String {
    if info.namespaced { ns.to_string() } else { String::new() }
}

impl Store {
    pub fn new(registry: Registry, history_cap: usize, seed: Option<u64>) -> Self {
        let (tx, _) = broadcast::channel(history_cap.max(16_384));
        Store {
            registry,
            rv: 1,
            tables: HashMap::new(),
            history: HashMap::new(),
            history_cap: history_cap.max(1),
            floors: HashMap::new(),
            compacted: 1,
            tx,
            changed: Arc::new(Notify::new()),
            rng: seed.map(Rng::seeded).unwrap_or_else(Rng::from_os),
            allocations: Allocations::default(),
            terminating: BTreeSet::new(),
            new_namespaces: BTreeSet::new(),
        }
    }

    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    /// The oldest revision a watch or consistent list of this resource can start from.
    pub fn floor(&self, info: &ResourceInfo) -> u64 {
        self.floors.get(&info.key()).copied().unwrap_or(0).max(self.compacted)
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    /// Drops the whole history: resuming from any earlier revision now gets 410.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
    }

    pub fn object_count(&self) -> usize {
        self.tables.values().flat_map(|t| t.values()).map(BTreeMap::len).sum()
    }

    pub(super) fn uid(&mut self) -> String {
        let a = self.rng.next_u64();
        let b = self.rng.next_u64();
        let hex = format!("{a:016x}{b:016x}");
        // Version 4, variant 1, like the apiserver's uuid.NewUUID.
        format!("{}-{}-4{}-a{}-{}", &hex[0..8], &hex[8..12], &hex[13..16], &hex[17..20], &hex[20..32])
    }

    pub(super) fn lookup(&self, info: &ResourceInfo, ns: &str, name: &str) -> Option<&Arc<Obj>> {
        self.tables.get(&info.key())?.get(&ns_key(info, ns))?.get(name)
    }

    pub fn get(&self, info: &ResourceInfo, ns: &str, name: &str) -> Result<Arc<Obj>, ApiError> {
        self.lookup(info, ns, name).cloned().ok_or_else(|| ApiError::not_found(&info.group, &info.plural, name))
    }

    /// Writes `v` (resourceVersion assigned here) and records the event.
    pub(super) fn commit(&mut self, info: &ResourceInfo, etype: EventType, mut v: Value) -> Result<Arc<Obj>, ApiError> {
        let rv = self.rv + 1;
        v["metadata"]["resourceVersion"] = json!(rv.to_string());
        let obj = Arc::new(Obj::from_value(&v, rv)?);
        self.rv = rv;
        let table = self.tables.entry(info.key()).or_default();
        let ns = ns_key(info, &obj.namespace);
        let prev = if etype == EventType::Deleted {
            let slot = table.get_mut(&ns);
            let prev = slot.and_then(|m| m.remove(&obj.name));
            if table.get(&ns).is_some_and(BTreeMap::is_empty) {
                table.remove(&ns);
            }
            prev
        } else {
            table.entry(ns).or_default().insert(obj.name.clone(), obj.clone())
        };
        if info.group.is_empty() && info.plural == "namespaces" {
            match (etype, obj.deleting) {
                (EventType::Deleted, _) => {
                    self.terminating.remove(&obj.name);
                    self.new_namespaces.remove(&obj.name);
                }
                (_, true) => {
                    self.terminating.insert(obj.name.clone());
                }
                (EventType::Added, false) => {
                    self.new_namespaces.insert(obj.name.clone());
                }
                _ => {}
            }
        }
        let event = Arc::new(Event {
            rv,
            etype,
            key: info.key(),
            obj: obj.clone(),
            prev,
            line: event_line(etype.as_str(), &obj.bytes),
            meta_line: OnceLock::new(),
        });
        let history = self.history.entry(info.key()).or_default();
        history.push_back(event.clone());
        while history.len() > self.history_cap {
            if let Some(old) = history.pop_front() {
                self.floors.insert(info.key(), old.rv);
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(event);
        self.changed.notify_waiters();
        Ok(obj)
    }

    pub fn namespaces_info(&self) -> ResourceInfo {
        self.registry.lookup("", "v1", "namespaces").map(|i| (*i).clone()).unwrap_or(ResourceInfo {
            group: String::new(),
            version: "v1".into(),
            plural: "namespaces".into(),
            singular: "namespace".into(),
            kind: "Namespace".into(),
            namespaced: false,
            short_names: vec![],
            has_status: true,
            generation: false,
            custom: false,
        })
    }

    pub fn list(&self, info: &ResourceInfo, ns: Option<&str>, p: &ListParams) -> Result<ListResult, ApiError> {
        validate_list_options(p)?;
        let (at, start) = match p.continue_token {
            Some(tok) if !tok.is_empty() => {
                let (rv, start) = decode_continue(tok)?;
                // As etcd: a token older than the last compaction cannot be served consistently.
                if rv < self.floor(info) {
                    return Err(ApiError::expired(INCONSISTENT_CONTINUE));
                }
                (rv, Some(start))
            }
            _ => (self.list_rv(info, p)?, None),
        };
        let snapshot = self.snapshot(info, ns, at)?;
        let after = start.as_deref().map(|s| s.split_once('/').unwrap_or(("", s)));
        let mut items = Vec::new();
        let mut last_key: Option<String> = None;
        let mut more = false;
        let mut remaining: i64 = 0;
        let limit = p.limit.filter(|l| *l > 0);
        for o in snapshot.iter_from(after) {
            if !o.matches(p.labels, p.fields) {
                continue;
            }
            if limit.is_some_and(|l| items.len() >= l) {
                more = true;
                remaining += 1;
                continue;
            }
            last_key = Some(format!("{}/{}", o.namespace, o.name));
            items.push(o.clone());
        }
        let continue_token = if more { last_key.map(|k| encode_continue(at, &k)) } else { None };
        let exact_count = p.labels.is_empty() && p.fields.requirements.is_empty();
        Ok(ListResult {
            rv: at,
            items,
            remaining: if more && exact_count { Some(remaining) } else { None },
            continue_token,
        })
    }

    /// The revision a list is served at, per its resourceVersion/resourceVersionMatch.
    fn list_rv(&self, info: &ResourceInfo, p: &ListParams) -> Result<u64, ApiError> {
        let rv = match p.resource_version.filter(|r| !r.is_empty()) {
            None => return Ok(self.rv),
            Some(r) => r,
        };
        let n: u64 = rv.parse().map_err(|_| {
            ApiError::invalid(
                "",
                "ListOptions",
                "",
                &[FieldError::invalid("resourceVersion", rv, "must be a valid resource version")],
            )
        })?;
        match p.rv_match {
            Some("Exact") => {
                if n > self.rv {
                    Err(ApiError::too_large_rv(n, self.rv))
                } else if n < self.floor(info) {
                    Err(ApiError::expired("The resourceVersion for the provided list is too old."))
                } else {
                    Ok(n)
                }
            }
            _ if n == 0 => Ok(self.rv),
            _ if n > self.rv => Err(ApiError::too_large_rv(n, self.rv)),
            _ => Ok(self.rv),
        }
    }

    fn touched_since(&self, info: &ResourceInfo, rv: u64) -> bool {
        let newest = self.history.get(&info.key()).and_then(|h| h.back()).map_or(0, |e| e.rv);
        self.rv > rv && (rv < self.floor(info) || newest > rv)
    }

    /// The resource's objects as they were at revision `at`, undoing newer history.
    fn snapshot(&self, info: &ResourceInfo, ns: Option<&str>, at: u64) -> Result<Snapshot<'_>, ApiError> {
        let table = self.tables.get(&info.key());
        let ns = ns.map(|n| ns_key(info, n));
        if !self.touched_since(info, at) {
            return Ok(Snapshot::Live(table, ns));
        }
        if at < self.floor(info) {
            return Err(ApiError::expired("The resourceVersion for the provided list is too old."));
        }
        let mut map: BTreeMap<(String, String), Arc<Obj>> = BTreeMap::new();
        if let Some(t) = table {
            for (n, objs) in t {
                if ns.as_ref().is_some_and(|want| want != n) {
                    continue;
                }
                for o in objs.values() {
                    map.insert((n.clone(), o.name.clone()), o.clone());
                }
            }
        }
        let history = self.history.get(&info.key()).into_iter().flatten();
        for e in history.rev().take_while(|e| e.rv > at) {
            if ns.as_ref().is_some_and(|want| *want != ns_key(info, &e.obj.namespace)) {
                continue;
            }
            let k = (ns_key(info, &e.obj.namespace), e.obj.name.clone());
            match (&e.etype, &e.prev) {
                (EventType::Added, _) => {
                    map.remove(&k);
                }
                (_, Some(prev)) => {
                    map.insert(k, prev.clone());
                }
                (_, None) => {}
            }
        }
        Ok(Snapshot::Rebuilt(map))
    }

    /// For a watch starting at `rv`: the history to replay and a receiver for what follows, taken
    /// under the same lock so nothing falls between them.
    pub fn watch_from(&self, info: &ResourceInfo, rv: u64) -> Result<(Vec<Arc<Event>>, EventReceiver), ApiError> {
        let floor = self.floor(info);
        if rv < floor {
            return Err(ApiError::expired(format!("too old resource version: {rv} ({floor})")));
        }
        let history = self.history.get(&info.key()).into_iter().flatten();
        let replay = history.filter(|e| e.rv > rv).cloned().collect();
        Ok((replay, self.tx.subscribe()))
    }

    /// Current objects for a watch's initial events, plus the receiver for what follows.
    pub fn watch_initial(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
    ) -> (Vec<Arc<Obj>>, broadcast::Receiver<Arc<Event>>) {
        let ns = ns.map(|n| ns_key(info, n));
        let items = Snapshot::Live(self.tables.get(&info.key()), ns).iter_from(None).cloned().collect();
        (items, self.tx.subscribe())
    }
}

/// ListOptions validation (apimachinery's internalversion validation) and the etcd3 store's
/// refusal of a resourceVersion together with a continue token.
fn validate_list_options(p: &ListParams) -> Result<(), ApiError> {
    let rv = p.resource_version.unwrap_or("");
    let has_continue = p.continue_token.is_some_and(|c| !c.is_empty());
    let mut errs = Vec::new();
    match p.rv_match.unwrap_or("") {
        "" => {}
        m @ ("NotOlderThan" | "Exact") => {
            if has_continue {
                errs.push(FieldError::forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden when continue is provided",
                ));
            } else if rv.is_empty() {
                errs.push(FieldError::forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                ));
            } else if m == "Exact" && rv == "0" {
                errs.push(FieldError::forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                ));
            }
        }
        other => errs.push(FieldError {
            field: "resourceVersionMatch".into(),
            reason: "FieldValueNotSupported",
            detail: format!("Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\", \"\""),
        }),
    }
    if !errs.is_empty() {
        return Err(ApiError::invalid("meta.k8s.io", "ListOptions", "", &errs));
    }
    if has_continue && !rv.is_empty() && rv != "0" {
        return Err(ApiError::bad_request("specifying resource version is not allowed when using continue"));
    }
    Ok(())
}

enum Snapshot<'a> {
    Live(Option<&'a Table>, Option<String>),
    Rebuilt(BTreeMap<(String, String), Arc<Obj>>),
}

impl Snapshot<'_> {
    /// Objects in (namespace, name) order, strictly after `after`.
    fn iter_from<'s>(&'s self, after: Option<(&str, &str)>) -> Box<dyn Iterator<Item = &'s Arc<Obj>> + 's> {
        match self {
            Snapshot::Live(None, _) => Box::new(std::iter::empty()),
            Snapshot::Live(Some(t), Some(ns)) => {
                let Some(objs) = t.get(ns) else { return Box::new(std::iter::empty()) };
                match after {
                    Some((a_ns, a_name)) if a_ns == ns.as_str() => {
                        Box::new(objs.range::<str, _>((Bound::Excluded(a_name), Bound::Unbounded)).map(|(_, o)| o))
                    }
                    Some((a_ns, _)) if a_ns > ns.as_str() => Box::new(std::iter::empty()),
                    _ => Box::new(objs.values()),
                }
            }
            Snapshot::Live(Some(t), None) => match after {
                None => Box::new(t.values().flat_map(|m| m.values())),
                Some((a_ns, a_name)) => {
                    let a_ns = a_ns.to_string();
                    let a_name = a_name.to_string();
                    let first = t.get(&a_ns).into_iter().flat_map(move |m| {
                        m.range::<str, _>((Bound::Excluded(a_name.as_str()), Bound::Unbounded))
                            .map(|(_, o)| o)
                            .collect::<Vec<_>>()
                    });
                    let rest = t
                        .range::<str, _>((Bound::Excluded(a_ns.as_str()), Bound::Unbounded))
                        .flat_map(|(_, m)| m.values());
                    Box::new(first.chain(rest))
                }
            },
            Snapshot::Rebuilt(map) => match after {
                None => Box::new(map.values()),
                Some((a_ns, a_name)) => {
                    let k = (a_ns.to_string(), a_name.to_string());
                    Box::new(map.range((Bound::Excluded(k), Bound::Unbounded)).map(|(_, o)| o))
                }
            },
        }
    }
}

/// The etcd3 store's continue token (storage.EncodeContinue): unpadded URL-safe base64 of
/// {"v":"meta.k8s.io/v1","rv":N,"start":"key\u0000"}, safe in a query string without escaping.
fn encode_continue(rv: u64, last_key: &str) -> String {
    let body = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": format!("{last_key}\u{0}")});
    base64::encode(body.to_string().as_bytes())
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect()
}

fn decode_continue(tok: &str) -> Result<(u64, String), ApiError> {
    // The message kube-apiserver 1.37 gives (the detail after the last colon is Go's decoder's).
    let bad = |why: &str| ApiError::bad_request(format!("invalid continue token: continue key is not valid: {why}"));
    let std_alphabet: String = tok
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    let raw = base64::decode(std_alphabet.as_bytes()).map_err(|_| bad("illegal base64 data"))?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad("not a JSON continue token"))?;
    if v["v"] != "meta.k8s.io/v1" {
        return Err(bad("server does not recognize this encoded version"));
    }
    let rv = v["rv"].as_u64().ok_or_else(|| bad("incorrect encoded start resourceVersion (version meta.k8s.io/v1)"))?;
    let start = v["start"].as_str().ok_or_else(|| bad("encoded start key missing"))?;
    Ok((rv, start.trim_end_matches('\u{0}').to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Store {
        Store::new(Registry::builtin().unwrap(), 100, Some(1))
    }

    fn info(s: &Store, plural: &str) -> ResourceInfo {
        (*s.registry.lookup_any("", plural).unwrap()).clone()
    }

    fn opts() -> WriteOpts {
        WriteOpts { dry_run: false, manager: "test".into() }
    }

    fn mkns(s: &mut Store, name: &str) {
        let ns = info(s, "namespaces");
        s.create(&ns, "", json!({"metadata": {"name": name}}), &opts()).unwrap();
    }

    #[test]
    fn create_assigns_metadata_and_rv_grows() {
        let mut s = store();
        mkns(&mut s, "a");
        let cm = info(&s, "configmaps");
        let a = s.create(&cm, "a", json!({"metadata": {"name": "x"}, "data": {"k": "v"}}), &opts()).unwrap();
        let b = s.create(&cm, "a", json!({"metadata": {"generateName": "y-"}}), &opts()).unwrap();
        let rv = |v: &Value| v["metadata"]["resourceVersion"].as_str().unwrap().parse::<u64>().unwrap();
        assert!(rv(&b) > rv(&a));
        assert!(b["metadata"]["name"].as_str().unwrap().starts_with("y-"));
        assert!(a["metadata"].get("generation").is_none());
        let e = s.create(&cm, "a", json!({"metadata": {"name": "x"}}), &opts()).unwrap_err();
        assert_eq!(e.code, 409);
        let e = s.create(&cm, "missing", json!({"metadata": {"name": "x"}}), &opts()).unwrap_err();
        assert_eq!(e.message(), r#"namespaces "missing" not found"#);
    }

    #[test]
    fn continue_tokens_page_a_consistent_snapshot() {
        let mut s = store();
        mkns(&mut s, "a");
        let cm = info(&s, "configmaps");
        for i in 0..5 {
            s.create(&cm, "a", json!({"metadata": {"name": format!("c{i}")}}), &opts()).unwrap();
        }
        let everything = LabelSelector::everything();
        let nofields = FieldSelector::default();
        let p = |tok: Option<&'static str>| ListParams {
            labels: &everything,
            fields: &nofields,
            limit: Some(2),
            continue_token: tok,
            resource_version: None,
            rv_match: None,
        };
        let first = s.list(&cm, Some("a"), &p(None)).unwrap();
        assert_eq!(first.items.len(), 2);
        assert_eq!(first.remaining, Some(3));
        // A write after the first page is not visible in the next pages.
        s.create(&cm, "a", json!({"metadata": {"name": "c9"}}), &opts()).unwrap();
        let tok: &'static str = Box::leak(first.continue_token.unwrap().into_boxed_str());
        assert!(tok.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "{tok}");
        let second = s.list(&cm, Some("a"), &p(Some(tok))).unwrap();
        let names: Vec<&str> = second.items.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["c2", "c3"]);
        assert_eq!(second.rv, first.rv);
        s.compact();
        s.create(&cm, "a", json!({"metadata": {"name": "c8"}}), &opts()).unwrap();
        assert_eq!(s.list(&cm, Some("a"), &p(Some(tok))).unwrap_err().code, 410);
    }
}
