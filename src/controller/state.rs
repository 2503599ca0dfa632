//! Per watched type: the executor's write ledger and the targets blocked by a foreign object.
//! One [`TypeState`] per type because an [`ObjectKey`] carries no kind.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::time::Instant;

use serde_json::Value;

use crate::cache::Store;
use crate::client::ApiResource;
use crate::mirror::drift::Ledger;
use crate::mirror::status::SyncStatus;
use crate::model::{MirrorRecord, ObjectKey, SourceObject, Str};

/// A queued unit of work: one source of one watched type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WorkKey {
    /// The type's `Kind.version[.group]` name.
    pub kind: Str,
    pub source: ObjectKey,
}

impl fmt::Display for WorkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.source)
    }
}

/// First wait before a blocked target is tried again; doubles per repeat, capped.
const BLOCK_BASE: Duration = Duration::from_secs(5);
const BLOCK_MAX: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy)]
struct Block {
    until: Instant,
    repeats: u32,
    active: bool,
}

/// The last `sync-status` we wrote per source, so a pass that runs before the source watch shows our
/// own patch does not send the same text again (the benchmark caught exactly that: one extra patch
/// per source at start-up).
#[derive(Default)]
pub struct StatusMemo(Mutex<HashMap<ObjectKey, (Str, String, String)>>);

impl StatusMemo {
    /// The merge patch for `status`, unless the source already shows it, or we wrote this very text
    /// and the cached source is older than that write. resourceVersions are compared as numbers
    /// only when both parse (they are etcd revisions in practice, opaque by contract); otherwise
    /// the patch is sent, which at worst repeats one write.
    pub fn patch_for(&self, status: &SyncStatus, src: &SourceObject) -> Option<Value> {
        let patch = status.patch_for(src)?;
        let memo = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let text = status.to_string();
        let cache_behind = memo.get(&src.key).is_some_and(|(uid, written, rv)| {
            *uid == src.uid
                && *written == text
                && matches!((src.resource_version.parse::<u64>(), rv.parse::<u64>()), (Ok(seen), Ok(ours)) if seen < ours)
        });
        (!cache_behind).then_some(patch)
    }

    pub fn written(&self, src: &SourceObject, status: &SyncStatus, resource_version: &str) {
        let mut memo = self.0.lock().unwrap_or_else(|p| p.into_inner());
        memo.insert(src.key.clone(), (src.uid.clone(), status.to_string(), resource_version.to_string()));
    }

    pub fn forget(&self, key: &ObjectKey) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

/// Hands the ledger entries of `keys` whose writes the mirror watch already shows over to the
/// cache (the record is marked `confirmed`, the entry dropped), so that the ledger holds only
/// writes in flight. The caller holds the ledger, which the planner also holds while it reads
/// mirrors: it sees either the entry or the confirmed record, never neither. (Should the store
/// replace the record meanwhile, the mark lands on the old version and the new one is unknown to
/// both: verified once, as it would be anyway.)
pub fn settle<'k>(ledger: &mut Ledger, mirrors: &Store<MirrorRecord>, keys: impl IntoIterator<Item = &'k ObjectKey>) {
    if ledger.is_empty() {
        return;
    }
    for key in keys {
        let Some(lw) = ledger.last_write(key) else { continue };
        if let Some(m) = mirrors.get(key).filter(|m| lw.settled_by(m)) {
            m.confirmed.set();
            ledger.forget(key);
        }
    }
}

pub struct TypeState {
    pub name: Str,
    pub resource: Arc<ApiResource>,
    pub ledger: Mutex<Ledger>,
    blocks: Mutex<HashMap<ObjectKey, Block>>,
    /// Sources that left the label-filtered watch still carrying our finalizer and not being
    /// deleted: possibly only unlabelled, so their next pass reads them once even when they have
    /// no mirror (the planner's re-check covers only sources with mirrors to delete).
    departed: Mutex<HashSet<ObjectKey>>,
    pub statuses: StatusMemo,
}

impl TypeState {
    pub fn new(name: Str, resource: Arc<ApiResource>) -> Self {
        TypeState {
            name,
            resource,
            ledger: Mutex::default(),
            blocks: Mutex::default(),
            departed: Mutex::default(),
            statuses: StatusMemo::default(),
        }
    }

    pub fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn blocks(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectKey, Block>> {
        self.blocks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lifts the blocks whose backoff has passed, so the planner tries those creates once more.
    pub fn unblock_due(&self, now: Instant) {
        let mut blocks = self.blocks();
        let mut ledger = None;
        for (key, b) in blocks.iter_mut().filter(|(_, b)| b.active && b.until <= now) {
            b.active = false;
            ledger.get_or_insert_with(|| self.ledger()).unblock(key);
        }
    }

    /// Records that `key` (already blocked in the ledger) holds a foreign object.
    pub fn blocked(&self, key: &ObjectKey, now: Instant) {
        let mut blocks = self.blocks();
        let b = blocks.entry(key.clone()).or_insert(Block { until: now, repeats: 0, active: false });
        let wait = BLOCK_BASE.saturating_mul(2u32.saturating_pow(b.repeats.min(16))).min(BLOCK_MAX);
        *b = Block { until: now + wait, repeats: b.repeats.saturating_add(1), active: true };
    }

    /// The earliest moment a blocked target of the source named `name` is due for another try.
    pub fn next_unblock(&self, name: &str) -> Option<Instant> {
        self.blocks().iter().filter(|(k, b)| b.active && &*k.name == name).map(|(_, b)| b.until).min()
    }

    pub fn departed(&self, key: ObjectKey) {
        self.departed.lock().unwrap_or_else(|p| p.into_inner()).insert(key);
    }

    /// Whether the source left the watch with our finalizer (and forgets it: one read per departure).
    pub fn take_departed(&self, key: &ObjectKey) -> bool {
        self.departed.lock().unwrap_or_else(|p| p.into_inner()).remove(key)
    }

    /// The target no longer holds a foreign object (our mirror was written there).
    pub fn clear_block(&self, key: &ObjectKey) {
        self.blocks().remove(key);
    }
}

/// The watched types' states by name; types come and go with rediscovery.
#[derive(Clone, Default)]
pub struct Types(Arc<RwLock<HashMap<Str, Arc<TypeState>>>>);

impl Types {
    pub fn insert(&self, name: Str, resource: Arc<ApiResource>) {
        let mut map = self.0.write().unwrap_or_else(|p| p.into_inner());
        map.entry(name.clone()).or_insert_with(|| Arc::new(TypeState::new(name, resource)));
    }

    pub fn remove(&self, name: &str) {
        self.0.write().unwrap_or_else(|p| p.into_inner()).remove(name);
    }

    pub fn get(&self, name: &str) -> Option<Arc<TypeState>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    pub fn all(&self) -> Vec<Arc<TypeState>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    fn source(rv: &str, status: Option<&str>) -> SourceObject {
        let mut ann = serde_json::Map::new();
        if let Some(t) = status {
            ann.insert(crate::keys::ANN_SYNC_STATUS.into(), t.into());
        }
        SourceObject::from_object(serde_json::json!({"metadata": {"name": "db", "namespace": "default",
            "uid": "u1", "resourceVersion": rv, "annotations": ann}}))
        .unwrap()
    }

    #[test]
    fn status_memo_skips_only_a_repeat_the_cache_has_not_caught_up_with() {
        let memo = StatusMemo::default();
        let st = SyncStatus { synced: 2, ..SyncStatus::default() };
        assert!(memo.patch_for(&st, &source("10", None)).is_some());
        memo.written(&source("10", None), &st, "12");
        // The cache still shows resourceVersion 11 (our finalizer patch), not our status write.
        assert!(memo.patch_for(&st, &source("11", None)).is_none());
        // Someone removed the annotation after our write: write it again.
        assert!(memo.patch_for(&st, &source("13", None)).is_some());
        // A different text is always written.
        let other = SyncStatus { synced: 1, failed: 1, ..SyncStatus::default() };
        assert!(memo.patch_for(&other, &source("11", None)).is_some());
        // Versions that are not numbers: no ordering is assumed, the patch is sent.
        memo.written(&source("a", None), &st, "b");
        assert!(memo.patch_for(&st, &source("a", None)).is_some());
        // Already showing it: nothing to write.
        assert!(memo.patch_for(&st, &source("20", Some(&st.to_string()))).is_none());
    }

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn blocks_back_off_and_lift() {
        let ts = TypeState::new("Secret.v1".into(), Arc::new(ApiResource::secrets()));
        let key = ObjectKey::new("app1", "db");
        let t0 = Instant::now();
        ts.ledger().block(key.clone());
        ts.blocked(&key, t0);
        assert_eq!(ts.next_unblock("db"), Some(t0 + BLOCK_BASE));
        assert_eq!(ts.next_unblock("other"), None);
        ts.unblock_due(t0 + Duration::from_secs(1));
        assert!(ts.ledger().is_blocked(&key), "too early");
        ts.unblock_due(t0 + BLOCK_BASE);
        assert!(!ts.ledger().is_blocked(&key));
        assert_eq!(ts.next_unblock("db"), None);
        // Still in the way on the next try: the wait doubles.
        let t1 = t0 + BLOCK_BASE;
        ts.ledger().block(key.clone());
        ts.blocked(&key, t1);
        assert_eq!(ts.next_unblock("db"), Some(t1 + BLOCK_BASE * 2));
    }
}
