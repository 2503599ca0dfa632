//! A fleet of sources mirrored into many namespaces, for the chaos and bad-input suites: seeding
//! (sources, target namespaces, foreign objects that must never be written), the exact set of
//! mirrors the cluster should hold, computed from the server's current state independently of the
//! controller's code, and the check that it holds exactly that: none missing, stale, orphaned or
//! duplicated, every foreign object byte for byte as seeded. Also the controller in-process and the
//! request-rate window that tells a hot loop from a quiet controller.
//! Included with `#[path = "common/fleet.rs"] mod fleet;` (needs `common/wait.rs` as `wait`,
//! `common/cluster.rs` as `cluster` and `common/controller.rs` as `harness`).

// Each test crate compiles its own copy and uses only what it needs.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kubemirror::options::Options;
use kubemirror::testkit::{ApiServer, StatsSnapshot};
use kubemirror::util::base64;
use kubemirror::util::rand::Rng;
use serde_json::{Value, json};

pub const ENABLED: &str = "kubemirror.raczylo.com/enabled";
pub const SYNC: &str = "kubemirror.raczylo.com/sync";
pub const TARGETS: &str = "kubemirror.raczylo.com/target-namespaces";
pub const STATUS: &str = "kubemirror.raczylo.com/sync-status";
pub const MANAGED_BY: &str = "kubemirror.raczylo.com/managed-by";
pub const PREFIX: &str = "kubemirror.raczylo.com/";
pub const SOURCE_NS: &str = "src";

/// The kinds the fleet uses, with their plural (the server's stats key).
pub const KINDS: [(&str, &str); 2] = [("Secret", "secrets"), ("ConfigMap", "configmaps")];

/// `sources` sources (Secrets and ConfigMaps alternately) in namespace `src`, each targeting every
/// `t*` namespace (odd ones by glob, even ones by an explicit list naming every other one plus a
/// namespace that does not exist), `namespaces` target namespaces, and foreign objects: `conflicts`
/// same-name objects without our label sitting in a target, and `unrelated` objects of other names.
#[derive(Debug, Clone, Copy)]
pub struct Fleet {
    pub sources: usize,
    pub namespaces: usize,
    pub conflicts: usize,
    pub unrelated: usize,
    pub seed: u64,
}

impl Default for Fleet {
    fn default() -> Self {
        Fleet { sources: 16, namespaces: 24, conflicts: 4, unrelated: 8, seed: 1 }
    }
}

pub fn ns_name(i: usize) -> String {
    format!("t{i:02}")
}

pub fn source_name(i: usize) -> String {
    format!("s{i:02}")
}

pub fn kind_of(i: usize) -> &'static str {
    KINDS[i % KINDS.len()].0
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

/// A source object of `kind` with `data` (Secret values base64-encoded here).
pub fn source(kind: &str, ns: &str, name: &str, targets: &str, data: &BTreeMap<String, String>) -> Value {
    let mut o = json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": ns,
        "labels": {ENABLED: "true", "team": "chaos"},
        "annotations": {SYNC: "true", TARGETS: targets, "note": "carried to mirrors"}}});
    o["data"] = if kind == "Secret" {
        data.iter().map(|(k, v)| (k.clone(), json!(base64::encode(v.as_bytes())))).collect()
    } else {
        data.iter().map(|(k, v)| (k.clone(), json!(v))).collect()
    };
    if kind == "Secret" {
        o["type"] = json!("Opaque");
    }
    o
}

/// The fleet as seeded: what the foreign objects looked like, to compare byte for byte.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub fleet: Fleet,
    /// Every foreign object, as the server stored it.
    pub foreign: Vec<Value>,
}

impl Fleet {
    pub fn mirrors(&self) -> usize {
        self.sources * self.namespaces - self.conflicts
    }

    fn targets_of(&self, i: usize) -> String {
        if i % 2 == 1 {
            "t*".to_string()
        } else {
            let mut names: Vec<String> = (0..self.namespaces).map(ns_name).collect();
            names.push("t99-missing".into());
            names.join(", ")
        }
    }

    pub fn data_of(&self, i: usize, rng: &mut Rng) -> BTreeMap<String, String> {
        let mut d = BTreeMap::new();
        d.insert("value".to_string(), format!("v{i}-{}", rng.suffix(12)));
        d.insert("index".to_string(), i.to_string());
        d
    }

    pub fn seed(&self, s: &ApiServer) -> Seeded {
        let mut rng = Rng::seeded(self.seed);
        for name in std::iter::once(SOURCE_NS.to_string()).chain((0..self.namespaces).map(ns_name)) {
            s.create_object(namespace(&name)).unwrap();
        }
        for i in 0..self.sources {
            let data = self.data_of(i, &mut rng);
            s.create_object(source(kind_of(i), SOURCE_NS, &source_name(i), &self.targets_of(i), &data)).unwrap();
        }
        let mut foreign = Vec::new();
        for c in 0..self.conflicts {
            // Spread over sources and namespaces: source c, namespace c*5 (mod).
            let (i, n) = (c % self.sources, (c * 5) % self.namespaces);
            let o = json!({"apiVersion": "v1", "kind": kind_of(i), "metadata": {"name": source_name(i),
                "namespace": ns_name(n), "labels": {"owner": "someone-else"}}, "data": {"mine": "bm90IHlvdXJz"}});
            foreign.push(s.create_object(o).unwrap());
        }
        for u in 0..self.unrelated {
            let (kind, _) = KINDS[u % KINDS.len()];
            let mut o = json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": format!("unrelated-{u}"),
                "namespace": ns_name(u % self.namespaces),
                // Looks like one of ours to a careless eye: the same team label, our sync annotation.
                "labels": {"team": "chaos"}, "annotations": {SYNC: "true"}}, "data": {"k": "dg=="}});
            if u % 3 == 0 {
                o["metadata"]["annotations"][TARGETS] = json!("t*");
            }
            foreign.push(s.create_object(o).unwrap());
        }
        Seeded { fleet: *self, foreign }
    }
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr).and_then(Value::as_str)
}

fn labels(v: &Value) -> BTreeMap<String, String> {
    v.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string()))).collect())
        .unwrap_or_default()
}

fn annotation<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.pointer("/metadata/annotations").and_then(|a| a.get(key)).and_then(Value::as_str)
}

fn is_ours(v: &Value) -> bool {
    labels(v).get(MANAGED_BY).map(String::as_str) == Some("kubemirror")
}

/// (kind, namespace, name)
pub type Key = (String, String, String);

/// What one mirror must be: the source's content and its identity.
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    pub source_uid: String,
    pub data: Value,
    pub type_: Value,
    /// The source's labels without ours.
    pub labels: BTreeMap<String, String>,
}

/// Per source: how many targets synced, conflicted and were skipped (what its status must say).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub synced: usize,
    pub conflicts: usize,
    pub skipped: usize,
}

/// The mirrors the cluster must hold now, from the server's sources and namespaces, and each
/// source's expected counts. Independent of the controller's code: the fleet uses only
/// `prefix*` globs and literal names.
pub fn expected(s: &ApiServer) -> (BTreeMap<Key, Expected>, BTreeMap<Key, Counts>) {
    let namespaces: Vec<Value> = s.list_objects("v1", "Namespace", None);
    let live_ns: BTreeSet<String> = namespaces
        .iter()
        .filter(|n| {
            n.pointer("/metadata/deletionTimestamp").is_none() && str_at(n, "/status/phase") != Some("Terminating")
        })
        .filter_map(|n| str_at(n, "/metadata/name").map(String::from))
        .collect();
    let all_ns: BTreeSet<String> =
        namespaces.iter().filter_map(|n| str_at(n, "/metadata/name").map(String::from)).collect();
    let mut want = BTreeMap::new();
    let mut counts = BTreeMap::new();
    for (kind, _) in KINDS {
        let objects = s.list_objects("v1", kind, None);
        let at = |ns: &str, name: &str| {
            objects
                .iter()
                .find(|o| str_at(o, "/metadata/namespace") == Some(ns) && str_at(o, "/metadata/name") == Some(name))
        };
        for src in &objects {
            let l = labels(src);
            let enabled = l.get(ENABLED).map(String::as_str) == Some("true")
                && annotation(src, SYNC) == Some("true")
                && !l.contains_key("kubemirror.raczylo.com/mirror")
                && src.pointer("/metadata/deletionTimestamp").is_none();
            if !enabled {
                continue;
            }
            let (src_ns, name) = (str_at(src, "/metadata/namespace").unwrap(), str_at(src, "/metadata/name").unwrap());
            let mut c = Counts::default();
            let mut targets = BTreeSet::new();
            for entry in annotation(src, TARGETS).unwrap_or("").split(',').map(str::trim).filter(|e| !e.is_empty()) {
                match entry.strip_suffix('*') {
                    Some(prefix) => targets.extend(all_ns.iter().filter(|n| n.starts_with(prefix)).cloned()),
                    None if all_ns.contains(entry) => {
                        targets.insert(entry.to_string());
                    }
                    None => c.skipped += 1,
                }
            }
            for ns in targets {
                if ns == src_ns {
                    continue;
                }
                if !live_ns.contains(&ns) {
                    c.skipped += 1;
                    continue;
                }
                if at(&ns, name).is_some_and(|o| !is_ours(o)) {
                    c.conflicts += 1;
                    continue;
                }
                c.synced += 1;
                let user_labels =
                    l.iter().filter(|(k, _)| !k.starts_with(PREFIX)).map(|(k, v)| (k.clone(), v.clone())).collect();
                want.insert(
                    (kind.to_string(), ns.clone(), name.to_string()),
                    Expected {
                        source_uid: str_at(src, "/metadata/uid").unwrap_or_default().to_string(),
                        data: src.get("data").cloned().unwrap_or(Value::Null),
                        type_: src.get("type").cloned().unwrap_or(Value::Null),
                        labels: user_labels,
                    },
                );
            }
            counts.insert((kind.to_string(), src_ns.to_string(), name.to_string()), c);
        }
    }
    (want, counts)
}

/// Every object carrying our managed-by label, by key.
pub fn mirrors(s: &ApiServer) -> BTreeMap<Key, Value> {
    let mut out = BTreeMap::new();
    for (kind, _) in KINDS {
        for o in s.list_objects("v1", kind, None).into_iter().filter(is_ours) {
            let key = (
                kind.to_string(),
                str_at(&o, "/metadata/namespace").unwrap_or_default().to_string(),
                str_at(&o, "/metadata/name").unwrap_or_default().to_string(),
            );
            out.insert(key, o);
        }
    }
    out
}

/// Differences between the cluster and the desired state, at most `limit` of them described.
pub fn differences(s: &ApiServer, seeded: &Seeded, limit: usize) -> Vec<String> {
    let (want, counts) = expected(s);
    let have = mirrors(s);
    let mut out = Vec::new();
    for (key, w) in &want {
        match have.get(key) {
            None => out.push(format!("missing {key:?}")),
            Some(m) => {
                let ann = |k: &str| annotation(m, &format!("{PREFIX}{k}")).unwrap_or_default().to_string();
                let src_ns_name = (ann("source-namespace"), ann("source-name"));
                if src_ns_name != (SOURCE_NS.to_string(), key.2.clone()) || ann("source-uid") != w.source_uid {
                    out.push(format!("{key:?} names source {src_ns_name:?} uid {}", ann("source-uid")));
                }
                if m.get("data").cloned().unwrap_or(Value::Null) != w.data {
                    out.push(format!("stale data in {key:?}"));
                }
                if m.get("type").cloned().unwrap_or(Value::Null) != w.type_ {
                    out.push(format!("wrong type in {key:?}"));
                }
                let got: BTreeMap<String, String> =
                    labels(m).into_iter().filter(|(k, _)| !k.starts_with(PREFIX)).collect();
                if got != w.labels {
                    out.push(format!("labels of {key:?}: {got:?}, want {:?}", w.labels));
                }
                if ann("source-content-hash").is_empty() {
                    out.push(format!("{key:?} carries no content hash"));
                }
            }
        }
    }
    for key in have.keys().filter(|k| !want.contains_key(*k)) {
        out.push(format!("orphaned or unwanted mirror {key:?}"));
    }
    for f in &seeded.foreign {
        let (kind, ns, name) = (
            str_at(f, "/kind").unwrap_or_default(),
            str_at(f, "/metadata/namespace"),
            str_at(f, "/metadata/name").unwrap_or_default(),
        );
        let now = s.get_object("v1", kind, ns, name);
        if now.as_ref() != Some(f) {
            out.push(format!("foreign {kind} {ns:?}/{name} was written or deleted: {now:?}"));
        }
    }
    for ((kind, ns, name), c) in &counts {
        let st = s
            .get_object("v1", kind, Some(ns), name)
            .and_then(|o| annotation(&o, STATUS).map(String::from))
            .unwrap_or_default();
        let prefix = format!("synced:{},failed:0,conflicts:{},skipped:{}", c.synced, c.conflicts, c.skipped);
        if !st.starts_with(&prefix) {
            out.push(format!("status of {kind} {ns}/{name} is {st:?}, want {prefix}"));
        }
    }
    out.truncate(limit);
    out
}

/// Waits (generously: a loaded 2-core machine) until the cluster holds exactly the desired state.
pub async fn converged(s: &ApiServer, seeded: &Seeded, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let diff = differences(s, seeded, 10);
        if diff.is_empty() {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "not converged after {within:?}:\n{}", diff.join("\n"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The requests of a quiet window: the stats are reset, then `rounds` bookmark rounds pass on every
/// open watch (the server's bookmark interval sets the length). A controller in a hot loop sends
/// many requests in that time; a quiet one sends none besides Lease renewals.
pub async fn quiet_window(s: &ApiServer, rounds: u64) -> StatsSnapshot {
    // Our own last writes' events must be back first.
    let (e0, w0) = (s.stats().watch_events, s.stats().open_watches.max(1) as u64);
    crate::wait::eventually("a bookmark round", || s.stats().watch_events >= e0 + w0).await;
    s.reset_stats();
    let (e1, w1) = (s.stats().watch_events, s.stats().open_watches.max(1) as u64);
    crate::wait::eventually("the quiet window's bookmark rounds", || s.stats().watch_events >= e1 + rounds * w1).await;
    s.stats()
}

/// Waits until the number of `what` (a count read from the server) stays the same over a bookmark
/// round on every watch: reports sent after the statuses (Events) have all landed.
pub async fn settled(s: &ApiServer, mut what: impl FnMut(&ApiServer) -> usize) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut last = what(s);
    loop {
        let (e0, w0) = (s.stats().watch_events, s.stats().open_watches.max(1) as u64);
        crate::wait::eventually("a bookmark round", || s.stats().watch_events >= e0 + w0).await;
        let now = what(s);
        if now == last {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "still changing: {last} -> {now}");
        last = now;
    }
}

/// Requests of `verb` on resources, outside the Lease: renewals are the leader's heartbeat and
/// discovery documents (resource "") are read every `--discovery-interval`, neither is work.
pub fn work(st: &StatsSnapshot, verb: &str) -> u64 {
    st.requests
        .iter()
        .filter(|((v, r, _), _)| v == verb && !r.is_empty() && !r.starts_with("leases"))
        .map(|(_, n)| n)
        .sum()
}

/// Asserts the window shows no hot loop: no list, no re-watch storm, and at most `writes` writes and
/// reads (blocked targets are retried with a growing backoff, which may fall in the window).
pub fn assert_quiet(st: &StatsSnapshot, writes: u64) {
    assert_eq!(work(st, "list"), 0, "lists in a quiet window: {:?}", st.requests);
    assert!(work(st, "watch") <= 4, "re-watches in a quiet window: {:?}", st.requests);
    for verb in ["get", "create", "update", "patch", "delete"] {
        assert!(work(st, verb) <= writes, "{verb} x{} in a quiet window: {:?}", work(st, verb), st.requests);
    }
}

/// Options for the fleet's kinds ([`crate::harness::options`]): leader election with test-length
/// timings when `leader_elect`. The controller runs through `common/controller.rs`.
pub fn options(leader_elect: bool) -> Options {
    crate::harness::options(Some("Secret.v1,ConfigMap.v1"), leader_elect)
}

/// Counts mirrors carrying our label (for "mid-convergence" fault timing).
pub fn mirror_count(s: &ApiServer) -> usize {
    KINDS.iter().map(|(k, _)| s.list_objects("v1", k, None).iter().filter(|o| is_ours(o)).count()).sum()
}
