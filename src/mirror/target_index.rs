//! Which sources a namespace event concerns, without parsing every source's targeting again.
//!
//! A namespace that appears, changes its labels or goes away concerns the sources whose targeting
//! selects it. Parsing every source's annotations on every namespace event costs a parse (and
//! its allocations) per source per event; instead sources are told apart by the kind of their
//! entries when they change:
//! - literal names only (the common case): the event checks the annotation's text for the
//!   namespace's name ([`targets::lists_name`]): no parse, no allocation, nothing kept;
//! - anything else (a glob, the `all` / `all-labeled` keywords, a selector): the parsed spec is
//!   kept here, and the event evaluates it.
//!
//! Keeping every literal name in a map by name would answer without touching the literal sources
//! at all, but costs memory per name per source (20,000 entries in the S2 benchmark) for an event
//! that is rare and, as a text scan, cheap.
//!
//! Pure: the router feeds it from source events and asks it on namespace events.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use crate::mirror::targets::{self, TargetSpec};
use crate::model::{NamespaceRecord, SourceObject};

/// The parsed targeting of the sources that use patterns.
#[derive(Debug)]
pub struct TargetIndex<K> {
    patterns: HashMap<K, TargetSpec>,
}

impl<K> Default for TargetIndex<K> {
    fn default() -> Self {
        TargetIndex { patterns: HashMap::new() }
    }
}

impl<K: Clone + Eq + Hash> TargetIndex<K> {
    /// Index (or re-index) a source with its parsed targeting.
    pub fn set(&mut self, key: K, spec: TargetSpec) {
        if spec.has_patterns() {
            self.patterns.insert(key, spec.patterns_only());
        } else {
            self.patterns.remove(&key);
        }
    }

    pub fn remove(&mut self, key: &K) {
        self.patterns.remove(key);
    }

    /// Drops every source `keep` refuses (e.g. those of a type no longer watched).
    pub fn retain(&mut self, keep: impl Fn(&K) -> bool) {
        self.patterns.retain(|k, _| keep(k));
    }

    /// Adds to `out` the pattern sources whose targeting selects `ns` (step 1 of target resolution
    /// only, as [`TargetSpec::selects`]).
    pub fn selecting(&self, ns: &NamespaceRecord, out: &mut HashSet<K>) {
        for (key, spec) in &self.patterns {
            if spec.selects(ns) {
                out.insert(key.clone());
            }
        }
    }

    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

/// Whether a source's literal names include `ns` (the other half of [`TargetIndex::selecting`]).
pub fn names_literally(source: &SourceObject, ns: &str) -> bool {
    source.annotation(crate::keys::ANN_TARGET_NAMESPACES).is_some_and(|list| targets::lists_name(list, ns))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ns(name: &str, labels: serde_json::Value) -> NamespaceRecord {
        NamespaceRecord::from_object(&json!({"metadata": {"name": name, "labels": labels}})).unwrap()
    }

    fn source(list: Option<&str>, selector: Option<&str>) -> SourceObject {
        let mut ann = serde_json::Map::new();
        if let Some(l) = list {
            ann.insert("kubemirror.raczylo.com/target-namespaces".into(), json!(l));
        }
        if let Some(s) = selector {
            ann.insert("kubemirror.raczylo.com/target-namespace-selector".into(), json!(s));
        }
        SourceObject::from_object(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db",
            "namespace": "default", "uid": "u", "annotations": ann}}))
        .unwrap()
    }

    /// The index and the text check together answer exactly what parsing every source would.
    #[test]
    fn same_answers_as_asking_every_source() {
        let specs: Vec<(&'static str, Option<&str>, Option<&str>)> = vec![
            ("literal", Some("app1, app2"), None),
            ("glob", Some("app-*"), None),
            ("all", Some("all"), None),
            ("all-labeled", Some("all-labeled"), None),
            ("selector", None, Some("team=a")),
            ("mixed", Some("app1,web-?"), Some("env in (prod)")),
            ("long list and a glob", Some("app2,other,closed,db-*"), None),
            ("invalid", Some("App_1, Other"), None),
            ("nothing", None, None),
            ("spaces", Some(" other ,,"), None),
        ];
        let mut index = TargetIndex::default();
        for (k, list, sel) in &specs {
            index.set(*k, TargetSpec::parse(*list, *sel));
        }
        assert_eq!(index.len(), 6, "literal-only sources keep nothing");
        let namespaces = [
            ns("app1", json!({})),
            ns("app2", json!({"team": "a"})),
            ns("app-x", json!({})),
            ns("web-1", json!({"env": "prod"})),
            ns("other", json!({"kubemirror.raczylo.com/allow-mirrors": "true"})),
            ns("closed", json!({"kubemirror.raczylo.com/allow-mirrors": "false", "team": "a"})),
            ns("all", json!({})),
            ns("db-1", json!({})),
        ];
        for n in &namespaces {
            let mut want: Vec<&str> =
                specs.iter().filter(|(_, l, s)| TargetSpec::parse(*l, *s).selects(n)).map(|(k, _, _)| *k).collect();
            want.sort();
            let mut got = HashSet::new();
            index.selecting(n, &mut got);
            got.extend(specs.iter().filter(|(_, l, s)| names_literally(&source(*l, *s), &n.name)).map(|(k, _, _)| *k));
            let mut got: Vec<&str> = got.into_iter().collect();
            got.sort();
            assert_eq!(got, want, "{}", n.name);
        }
    }

    #[test]
    fn reindexing_and_removal_leave_nothing_behind() {
        let mut index = TargetIndex::default();
        index.set("a", TargetSpec::parse(Some("app-*"), None));
        index.set("b", TargetSpec::parse(None, Some("team=a")));
        index.set("a", TargetSpec::parse(Some("app1"), None));
        assert_eq!(index.len(), 1, "a literal list replaces the pattern");
        index.retain(|k| *k != "b");
        assert!(index.is_empty());
    }
}
