//! Knowing, without reading, whether a mirror is still what we wrote — and what to do when it may
//! not be.
//!
//! # Drift
//! The mirror watch is metadata-only (cheap, and it never holds secret data), so a content edit is
//! visible only as a new resourceVersion on the record. The executor remembers, per mirror, the
//! resourceVersion its last write returned and the one it replaced ([`LastWrite`]). Then:
//! - record rv == our last write's rv, hash and generation as desired: steady state, no request
//!   (once the watch has shown the write, the record itself is marked `confirmed` and the ledger
//!   entry dropped: per mirror, the steady state costs the cache record only);
//! - record rv == the rv our write replaced: the cache has not seen our write yet; wait for the
//!   event instead of writing again (which would only earn a 409);
//! - desired hash differs from the record's: update (a full PUT of the rebuilt mirror, which also
//!   repairs any drift, so no read is needed first);
//! - hash as desired but the rv is unknown (someone else wrote, or the controller restarted and
//!   the ledger is empty): [`MirrorOp::Verify`](crate::mirror::plan::MirrorOp::Verify) — one GET, [`verify`] compares the managed content,
//!   and only a real difference costs a write. A tampered hash annotation shows up as a hash
//!   difference and is simply rewritten.
//!
//! Reading on unknown versions rather than blindly rewriting keeps writes for real changes only
//! (another controller adding an annotation to every Secret would otherwise start a write fight)
//! and makes "edited while the controller was down" converge after a restart at the cost of one GET
//! per mirror, once.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::mirror::build::{self, Desired, LiveFacts, RecreateReason};
use crate::model::{MirrorRecord, ObjectKey, SourceObject, Str};
use crate::util::compact::ShortStr;

/// The executor's memory of its last write (or verification) of one mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastWrite {
    /// resourceVersion the API server returned for our write (or that we verified).
    pub resource_version: ShortStr,
    /// resourceVersion our write replaced (for a verification: the one verified). `None` only for a
    /// create, whose record the planner then waits for instead of creating again.
    pub replaced: Option<ShortStr>,
    pub hash: Str,
    pub facts: LiveFacts,
}

impl LastWrite {
    /// What to record after writing `desired`: `resource_version` from the response, `replaced` the
    /// precondition the write carried (`None` for a create).
    pub fn of_write(desired: &Desired, resource_version: &str, replaced: Option<&str>) -> Self {
        LastWrite {
            resource_version: resource_version.into(),
            replaced: replaced.map(ShortStr::from),
            hash: desired.hash.clone(),
            facts: LiveFacts::of(&desired.object),
        }
    }

    /// Whether the mirror watch's record `m` shows this very write and the write's facts are plain
    /// ([`LiveFacts::is_plain`]): then the record, marked `confirmed` by the cache, says all this
    /// entry says, and the entry can go. The ledger thus holds only writes not yet seen (and the
    /// few mirrors with special facts), not one entry per mirror.
    pub fn settled_by(&self, m: &MirrorRecord) -> bool {
        self.shown_by(m) && self.facts.is_plain()
    }

    /// Whether the mirror watch's record `m` is this very write (its version, with our hash).
    pub fn shown_by(&self, m: &MirrorRecord) -> bool {
        self.resource_version == m.resource_version && m.content_hash() == Some(&self.hash)
    }
}

/// Per watched type: our writes not yet confirmed by the mirror watch, and the targets known to
/// hold a foreign object. Once the watch shows a write ([`LastWrite::settled_by`]), the runtime
/// marks the cached record `confirmed` and forgets the entry, so the ledger stays as small as the
/// writes in flight. The runtime must also [`Ledger::forget`] a key when the mirror watch reports it
/// deleted, and unblock blocked keys after a backoff.
#[derive(Debug, Default)]
pub struct Ledger {
    writes: HashMap<ObjectKey, LastWrite>,
    blocked: HashSet<ObjectKey>,
}

impl Ledger {
    pub fn last_write(&self, key: &ObjectKey) -> Option<&LastWrite> {
        self.writes.get(key)
    }

    pub fn record(&mut self, key: ObjectKey, write: LastWrite) {
        self.blocked.remove(&key);
        self.writes.insert(key, write);
    }

    pub fn forget(&mut self, key: &ObjectKey) {
        self.writes.remove(key);
        // After a burst of writes (a cold start) the table would keep its peak size for ever.
        if self.writes.capacity() > 64 && self.writes.len() < self.writes.capacity() / 8 {
            self.writes.shrink_to(self.writes.len() * 2);
        }
    }

    pub fn block(&mut self, key: ObjectKey) {
        self.blocked.insert(key);
    }

    pub fn unblock(&mut self, key: &ObjectKey) {
        self.blocked.remove(key);
    }

    pub fn is_blocked(&self, key: &ObjectKey) -> bool {
        self.blocked.contains(key)
    }

    pub fn len(&self) -> usize {
        self.writes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }
}

/// What a [`MirrorOp::Verify`](crate::mirror::plan::MirrorOp::Verify) should lead to, given the live object the GET returned.
#[derive(Debug, Clone, PartialEq)]
pub enum VerifyAction {
    /// Matches: record this as known (`LastWrite`) and do nothing else.
    InSync(LastWrite),
    Update {
        desired: Desired,
        resource_version: ShortStr,
    },
    Recreate {
        desired: Desired,
        uid: Str,
        reason: RecreateReason,
    },
    /// No longer ours (label or source reference changed meanwhile): leave it alone.
    NotOurs,
}

pub fn verify(live: &Value, mut desired: Desired, source: &ObjectKey, source_uid: &str) -> VerifyAction {
    let owned = MirrorRecord::from_object(live).is_ok_and(|r| r.is_owned_by(source, source_uid));
    if !owned {
        return VerifyAction::NotOurs;
    }
    let rv: ShortStr = live.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or("").into();
    let facts = LiveFacts::of(live);
    if !build::drifted(live, &desired) {
        return VerifyAction::InSync(LastWrite {
            resource_version: rv.clone(),
            replaced: Some(rv),
            hash: desired.hash,
            facts,
        });
    }
    if let Some(reason) = build::recreate_reason(&desired.object, &facts, true) {
        let uid = live.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("").into();
        return VerifyAction::Recreate { desired, uid, reason };
    }
    build::preserve_server_assigned(&mut desired.object, live);
    VerifyAction::Update { desired, resource_version: rv }
}

/// Mirror-side reconcile (an event on a managed mirror), decided without the source planner.
///
/// There is deliberately no "delete the orphan here" verdict: a mirror whose source is missing
/// from the cache goes to the source's planner, whose Gone plan re-checks the source first
/// ([`Plan::recheck_source`](crate::mirror::plan::Plan::recheck_source)). Deleting here would skip
/// that check, and a source that merely lost its enabled label would keep our finalizer for ever
/// once its mirrors were gone — its later deletion would hang.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MirrorVerdict {
    /// Not ours to judge, or our own write echoing back: nothing to do.
    Keep,
    /// Let the source's planner look (drift, target membership, uid, deletion, orphan).
    EnqueueSource(ObjectKey),
}

/// The source a managed mirror record belongs to, if it has the shape our mirrors have (managed,
/// a source reference, named like that source, not the source itself). Anything else is never
/// acted on: no guessing about objects that merely carry our label.
pub fn source_of(m: &MirrorRecord) -> Option<ObjectKey> {
    let sref = m.source.as_ref().filter(|_| m.managed)?;
    let key = ObjectKey { namespace: sref.namespace.clone(), name: sref.name.clone() };
    (m.key.name == sref.name && m.key != key).then_some(key)
}

/// For ADDED/MODIFIED events of the mirror watch. `source`: the source cache's entry for
/// [`source_of`]. A DELETED event needs no verdict: [`Ledger::forget`] the key and enqueue [`source_of`] the
/// record, whose planner recreates the mirror if it is still wanted.
pub fn mirror_verdict(m: &MirrorRecord, source: Option<&SourceObject>, last: Option<&LastWrite>) -> MirrorVerdict {
    let Some(source_key) = source_of(m).filter(|_| !m.deleting) else { return MirrorVerdict::Keep };
    let echo = last.is_some_and(|lw| lw.shown_by(m));
    if source.is_some() && echo { MirrorVerdict::Keep } else { MirrorVerdict::EnqueueSource(source_key) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::build::{BuildConfig, NoTransform};
    use crate::mirror::testutil::*;
    use serde_json::json;

    #[test]
    fn verify_table() {
        let s = source("app1");
        let desired = || build::build_mirror(&s, "app1", &BuildConfig::default(), &NoTransform, now()).unwrap();
        let live = |edit: &dyn Fn(&mut Value)| {
            let mut o = desired().object;
            o["metadata"]["uid"] = json!("m1");
            o["metadata"]["resourceVersion"] = json!("9");
            edit(&mut o);
            o
        };
        let hash: Str = desired().hash;
        let in_sync = verify(&live(&|o| o["metadata"]["annotations"]["x"] = json!("y")), desired(), &s.key, "src-uid");
        assert_eq!(
            in_sync,
            VerifyAction::InSync(LastWrite {
                resource_version: "9".into(),
                replaced: Some("9".into()),
                hash,
                facts: LiveFacts { secret_type: Some("Opaque".into()), immutable_kind: true, ..LiveFacts::default() }
            })
        );
        let edited = verify(&live(&|o| o["data"]["password"] = json!("eA==")), desired(), &s.key, "src-uid");
        assert!(
            matches!(edited, VerifyAction::Update { ref resource_version, .. } if &**resource_version == "9"),
            "{edited:?}"
        );
        let immutable = verify(
            &live(&|o| {
                o["data"]["password"] = json!("eA==");
                o["immutable"] = json!(true);
            }),
            desired(),
            &s.key,
            "src-uid",
        );
        assert!(
            matches!(immutable, VerifyAction::Recreate { reason: RecreateReason::ImmutableChanged, .. }),
            "{immutable:?}"
        );
        let disowned = live(&|o| o["metadata"]["labels"].as_object_mut().unwrap().clear());
        assert_eq!(verify(&disowned, desired(), &s.key, "src-uid"), VerifyAction::NotOurs);
        assert_eq!(verify(&live(&|_| {}), desired(), &s.key, "other-uid"), VerifyAction::NotOurs);
        assert_eq!(verify(&json!("garbage"), desired(), &s.key, "src-uid"), VerifyAction::NotOurs);
        // Managed and naming this source, but without a source uid: a copy of our labels, not ours.
        let ann = "kubemirror.raczylo.com/source-uid";
        let no_uid = live(&|o| drop(o["metadata"]["annotations"].as_object_mut().unwrap().remove(ann)));
        assert_eq!(verify(&no_uid, desired(), &s.key, "src-uid"), VerifyAction::NotOurs);
        let empty_uid = live(&|o| o["metadata"]["annotations"][ann] = json!(""));
        assert_eq!(verify(&empty_uid, desired(), &s.key, "src-uid"), VerifyAction::NotOurs);
    }

    #[test]
    fn only_this_very_write_with_plain_facts_is_settled_by_a_record() {
        let s = source("app1");
        let ours = written(&s, "app1", "5", None);
        assert!(ours.settled_by(&mirror_of(&s, "app1", "5")));
        assert!(!ours.settled_by(&mirror_of(&s, "app1", "6")), "another version");
        let other = source_with(Some("app1"), |o| o["data"]["password"] = json!("bmV3"));
        assert!(!ours.settled_by(&mirror_of(&other, "app1", "5")), "another content");
        let immutable = LastWrite { facts: LiveFacts { immutable: true, ..LiveFacts::default() }, ..ours.clone() };
        assert!(immutable.shown_by(&mirror_of(&s, "app1", "5")));
        assert!(!immutable.settled_by(&mirror_of(&s, "app1", "5")), "special facts stay in the ledger");
    }

    #[test]
    fn mirror_verdict_table() {
        let s = source("app1");
        let m = mirror_of(&s, "app1", "5");
        let ours = written(&s, "app1", "5", None);
        let cases = [
            (
                "source gone -> its planner sweeps, after re-checking",
                m.clone(),
                None,
                Some(&ours),
                MirrorVerdict::EnqueueSource(s.key.clone()),
            ),
            ("our own write echoing back", m.clone(), Some(&s), Some(&ours), MirrorVerdict::Keep),
            ("someone else's write", m.clone(), Some(&s), None, MirrorVerdict::EnqueueSource(s.key.clone())),
            ("unmanaged", MirrorRecord { managed: false, ..m.clone() }, None, None, MirrorVerdict::Keep),
            ("no source reference", MirrorRecord { source: None, ..m.clone() }, None, None, MirrorVerdict::Keep),
            ("already deleting", MirrorRecord { deleting: true, ..m.clone() }, None, None, MirrorVerdict::Keep),
            (
                "name differs from its source's",
                MirrorRecord { key: ObjectKey::new("app1", "x"), ..m.clone() },
                None,
                None,
                MirrorVerdict::Keep,
            ),
            (
                "claims to be its own source",
                MirrorRecord { key: ObjectKey::new("default", "db"), ..m.clone() },
                None,
                None,
                MirrorVerdict::Keep,
            ),
        ];
        for (name, m, src, last, want) in cases {
            assert_eq!(mirror_verdict(&m, src, last), want, "{name}");
        }
        assert_eq!(source_of(&mirror_of(&s, "app1", "5")), Some(s.key.clone()));
        assert_eq!(source_of(&MirrorRecord { managed: false, ..mirror_of(&s, "app1", "5") }), None);
    }
}
