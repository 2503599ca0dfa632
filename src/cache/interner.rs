//! One table of the strings that repeat across cached records (namespace names, source
//! references, label keys and values), so each is held once however many records name it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::model::{SourceRef, Str};

/// One shared table of repeated strings. Entries nobody else references are dropped by
/// [`gc`](Interner::gc), which the stores trigger as the table grows.
#[derive(Debug, Default)]
pub struct Interner {
    strings: HashSet<Str>,
    /// Source references: every mirror of a source names the same one.
    sources: HashSet<Arc<SourceRef>>,
    size_after_gc: usize,
}

impl Interner {
    pub fn intern(&mut self, s: &Str) -> Str {
        if let Some(existing) = self.strings.get(&**s) {
            return existing.clone();
        }
        self.strings.insert(s.clone());
        if self.strings.len() > 2 * self.size_after_gc + 1024 {
            self.gc();
        }
        s.clone()
    }

    /// The shared copy of a source reference, its strings interned.
    pub fn intern_source(&mut self, r: &Arc<SourceRef>) -> Arc<SourceRef> {
        if let Some(existing) = self.sources.get(&**r) {
            return existing.clone();
        }
        let uid = r.uid.as_ref().map(|u| self.intern(u));
        let content_hash = r.content_hash.as_ref().map(|h| self.intern(h));
        let shared =
            Arc::new(SourceRef { namespace: self.intern(&r.namespace), name: self.intern(&r.name), uid, content_hash });
        self.sources.insert(shared.clone());
        if self.sources.len() > 2 * self.size_after_gc + 1024 {
            self.gc();
        }
        shared
    }

    /// Drops strings and source references only the tables still hold (references first: they
    /// hold strings).
    pub fn gc(&mut self) {
        self.sources.retain(|s| Arc::strong_count(s) > 1);
        self.strings.retain(|s| Arc::strong_count(s) > 1);
        self.size_after_gc = self.strings.len() + self.sources.len();
    }

    pub fn len(&self) -> usize {
        self.strings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }
}

pub type SharedInterner = Arc<Mutex<Interner>>;
