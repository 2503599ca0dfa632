//! The planner: from what the caches know about one source, the writes that bring its mirrors to the
//! desired state, plus what to report. Pure; the executor performs the operations, feeds the
//! [`Outcome`]s back through [`Plan::results`], and records its own writes in the [`Ledger`].
//!
//! # Rules
//! - Opt-in = enabled label AND sync annotation AND not a mirror ([`SourceObject::is_enabled`]).
//! - Active source: add the finalizer first (merge patch with a resourceVersion precondition, so a
//!   concurrent writer's finalizers are never lost), then create/update the mirror of every target.
//! - Disabled or deleting source: delete every mirror it owns; the finalizer is released (together
//!   with the stale sync-status) once none remains — in the same pass if all deletes succeed.
//! - Gone source (not in the cache): delete the mirrors that name it, whatever (non-empty) source uid
//!   they carry.
//! - Ownership: managed-by label AND source namespace/name match AND source uid match
//!   ([`MirrorRecord::is_owned_by`]); every mirror we write carries the uid, so a managed object
//!   without one is someone's copy of our labels, not ours. A managed mirror naming this source with
//!   an older uid belongs to a previous incarnation: deleted, or recreated when still targeted.
//!   Anything else in the way — another source's mirror, an unmanaged object, a mirror without a
//!   source uid — is a conflict: never written, never deleted, reported. The source object itself is
//!   never an operation's subject.
//! - Orphans (owned mirrors outside the target set, including an empty one) are deleted on every
//!   pass, so shrinking the list, removing the annotation or relabelling a namespace converges. The
//!   one exception: while the targeting annotations contain an invalid entry or selector, orphans are
//!   kept (and the problem reported), so a half-typed edit cannot wipe mirrors in use.
//! - Every write carries a precondition: updates the mirror's resourceVersion, deletes its uid.
//!
//! # Foreign objects
//! The mirror watch only sees objects labelled managed-by=kubemirror, so an unmanaged object of the
//! same name is discovered when a create answers 409 AlreadyExists. The executor then calls
//! [`Ledger::block`]; the planner reports that target as a conflict and plans no create for it until
//! the runtime unblocks it (after its backoff), so a blocker costs one request per backoff period,
//! not a hot loop.
//!
//! How drift is noticed without reading mirrors: see [`crate::mirror::drift`].
//!
//! # Writes: PUT with a resourceVersion precondition, not server-side apply
//! A mirror is exactly its source (plus our keys), so a full PUT of the rebuilt object is the
//! simplest correct write: keys removed from the source disappear, nothing is merged. The
//! precondition turns "our cached view is stale" into a 409, which goes back through the queue to a
//! fresh plan instead of overwriting a change we have not seen. Server-side apply would keep other
//! managers' fields, but it stores managedFields on every mirror (size in etcd and on every watch
//! event), needs `force` to take back fields someone else touched, and its merge rules differ by
//! type and version — more behaviour to trust for no fewer requests: both are one write per
//! changed mirror.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use serde_json::{Value, json};

use crate::keys;
use crate::mirror::build::{self, BuildConfig, BuildError, Desired, LiveFacts, RecreateReason};
use crate::mirror::drift::{LastWrite, Ledger};
use crate::mirror::ops;
pub use crate::mirror::ops::{DeleteReason, MirrorOp, materialize};
use crate::mirror::status::{self, EventSpec, SyncStatus, TargetResult};
use crate::mirror::targets::{self, TargetConfig, TargetProblem, TargetSpec};
use crate::mirror::transform::{SourceTransform, Transforms};
use crate::model::{MirrorRecord, NamespaceRecord, ObjectKey, SourceObject, Str};
use crate::transform;

/// What the runtime knows about the source this pass is for.
#[derive(Debug, Clone, Copy)]
pub enum SourceState<'a> {
    /// Not in the source cache: deleted, gone while we were down, or no longer labelled (see
    /// [`Plan::recheck_source`]).
    Gone(&'a ObjectKey),
    /// In the cache — or the last state of an object that left the label-filtered watch (its
    /// enabled label was removed), which plans like any disabled source and so releases the finalizer.
    Seen(&'a SourceObject),
}

impl SourceState<'_> {
    pub fn key(&self) -> &ObjectKey {
        match self {
            SourceState::Gone(k) => k,
            SourceState::Seen(s) => &s.key,
        }
    }
}

/// Whether a source watch event is worth a pass. Our own status and finalizer patches bump the
/// source's resourceVersion and come back as events; planning on them would retry a failing target
/// at once instead of after its backoff, and a status text that differs from try to try would keep
/// that going for ever. A status subresource is never mirrored either (the cache does not even
/// keep it). Everything else the cache keeps — content, labels, other annotations, deletion,
/// identity — counts.
pub fn source_changed(old: &SourceObject, new: &SourceObject) -> bool {
    new.differs_from(old, keys::ANN_SYNC_STATUS)
}

/// Where each target stands before execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetState {
    InSync,
    /// An operation in [`Plan::ops`] is for this target.
    Planned,
    /// Our write is not in the cache yet, or the mirror is being deleted; its event re-plans.
    AwaitingEvent,
    Conflict {
        owner: Option<String>,
    },
    Failed(String),
}

/// What the executor reports per operation, in [`Plan::ops`] order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Create answered 409 AlreadyExists. The executor GETs the object and runs [`verify`](crate::mirror::drift::verify) on it:
    /// `NotOurs` means a foreign object (report this outcome and [`Ledger::block`] the key); anything
    /// else is our own mirror the cache had not shown yet, handled like a Verify.
    AlreadyExists,
    /// 409 Conflict / precondition failed: someone wrote in between; requeue.
    Stale,
    /// 404: the mirror (delete: fine) or the namespace (create: it is going away) vanished.
    NotFound,
    Failed(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub source: ObjectKey,
    /// Merge patch for the source; apply before any op, and abandon the pass if it fails, so no
    /// mirror can exist without the finalizer that guarantees its cleanup.
    pub add_finalizer: Option<Value>,
    pub ops: Vec<MirrorOp>,
    /// Merge patch for the source; apply only when every Delete in `ops` ended Done or NotFound.
    pub remove_finalizer: Option<Value>,
    /// Every target namespace, sorted.
    pub targets: Vec<(Str, TargetState)>,
    pub problems: Vec<TargetProblem>,
    pub refused: Option<BuildError>,
    /// Whether the sync-status annotation and Events are maintained for this source (active ones).
    pub report: bool,
    /// Set on a Gone plan that would delete mirrors: GET the source first. 404 → execute this
    /// plan. Found → it only left the label-filtered watch (enabled label removed, possibly while
    /// we were down, or the cache is behind): discard this plan and plan again with
    /// `SourceState::Seen(&found)`, which deletes only what that object owns and releases its
    /// finalizer. One read per source disappearance, never in steady state.
    pub recheck_source: bool,
    /// The source's compiled transformation rules, made once for this pass and used again when
    /// the executor builds each request body.
    pub transform: SourceTransform,
    /// Rules skipped for a target in non-strict mode (the mirror was still built).
    pub rule_skips: Vec<(Str, transform::Error)>,
    /// Rules that failed a target in strict mode.
    pub rule_failures: Vec<(Str, transform::Error)>,
}

/// Settings fixed for the life of the controller.
pub struct PlanContext<'a> {
    pub targets: &'a TargetConfig,
    pub build: &'a BuildConfig,
    /// Compiles a source's transformation rules (once per source per pass).
    pub transform: &'a dyn Transforms,
    pub now: SystemTime,
    /// Verify mirrors whose resourceVersion the ledger does not know (see module docs). Off only
    /// for callers that accept undetected drift in exchange for no reads at all.
    pub verify_unknown: bool,
}

enum Class<'a> {
    Owned(&'a MirrorRecord),
    /// Ours, for this source name, but an earlier uid.
    Previous(&'a MirrorRecord),
    Foreign(Option<String>),
}

fn classify<'a>(m: &'a MirrorRecord, source: &ObjectKey, uid: Option<&str>) -> Option<Class<'a>> {
    if m.key == *source || m.key.name != source.name {
        return None;
    }
    // Only a mirror carrying a source uid can be ours (see `MirrorRecord::is_owned_by`).
    let names_source = m.verified_source().is_some_and(|s| s.namespace == source.namespace && s.name == source.name);
    Some(match uid {
        Some(uid) if m.is_owned_by(source, uid) => Class::Owned(m),
        // Gone: the uid cannot be checked, and every incarnation of the name is gone.
        None if names_source => Class::Owned(m),
        Some(_) if names_source => Class::Previous(m),
        _ => Class::Foreign(m.source.as_ref().filter(|_| m.managed).map(|s| {
            let unverified = if m.verified_source().is_none() { " (no source-uid: not treated as ours)" } else { "" };
            format!("{}/{}{unverified}", s.namespace, s.name)
        })),
    })
}

/// Plans one pass for one source. `mirrors`: the mirror records indexed for this source (and, if
/// the runtime has them, other records with the same name); `namespaces`: all namespace records.
pub fn plan<'a>(
    ctx: &PlanContext<'_>,
    source: SourceState<'_>,
    namespaces: impl IntoIterator<Item = &'a NamespaceRecord>,
    mirrors: impl IntoIterator<Item = &'a MirrorRecord>,
    ledger: &Ledger,
) -> Plan {
    let key = source.key();
    let uid = match source {
        SourceState::Seen(s) => Some(&*s.uid),
        SourceState::Gone(_) => None,
    };
    let mut by_ns: BTreeMap<Str, Class<'a>> = BTreeMap::new();
    for m in mirrors {
        if let Some(class) = classify(m, key, uid) {
            by_ns.insert(m.key.namespace.clone(), class);
        }
    }
    let mut plan = Plan {
        source: key.clone(),
        add_finalizer: None,
        ops: Vec::new(),
        remove_finalizer: None,
        targets: Vec::new(),
        problems: Vec::new(),
        refused: None,
        report: false,
        recheck_source: false,
        transform: SourceTransform::None,
        rule_skips: Vec::new(),
        rule_failures: Vec::new(),
    };
    let src = match source {
        SourceState::Gone(_) => {
            delete_all(&mut plan, &by_ns, DeleteReason::SourceGone);
            plan.recheck_source = !plan.ops.is_empty();
            return plan;
        }
        SourceState::Seen(src) => src,
    };
    if !src.is_enabled() || src.deleting {
        let reason = if src.deleting { DeleteReason::SourceDeleting } else { DeleteReason::SourceDisabled };
        delete_all(&mut plan, &by_ns, reason);
        if src.has_finalizer(keys::FINALIZER) {
            plan.remove_finalizer = Some(remove_finalizer_patch(src, true));
        }
        return plan;
    }
    plan.report = true;
    if let Err(e) = build::check_source(src) {
        // Never mirrored, so no finalizer is needed: remove ours once its former mirrors are gone.
        plan.refused = Some(e);
        delete_all(&mut plan, &by_ns, DeleteReason::SourceRefused);
        if src.has_finalizer(keys::FINALIZER) {
            plan.remove_finalizer = Some(remove_finalizer_patch(src, false));
        }
        return plan;
    }
    if !src.has_finalizer(keys::FINALIZER) {
        plan.add_finalizer = Some(add_finalizer_patch(src));
    }
    plan.transform = ctx.transform.for_source(src);
    let consent = ctx.targets.consent_rule_for(src);
    let resolved = targets::resolve(&TargetSpec::from_source(src), &key.namespace, namespaces, ctx.targets, &consent);
    plan.problems = resolved.problems;
    // A terminating namespace takes its mirrors with it; deleting them first would only add requests.
    let terminating = |ns: &Str| plan.problems.iter().any(|p| matches!(p, TargetProblem::Terminating(t) if t == ns));
    // A typo in the annotation must not wipe the mirrors workloads depend on: while an entry or the
    // selector is invalid, nothing is deleted for not being targeted (the problem is reported).
    let hold = plan
        .problems
        .iter()
        .any(|p| matches!(p, TargetProblem::InvalidEntry { .. } | TargetProblem::InvalidSelector { .. }));
    for (ns, class) in by_ns.iter().filter(|_| !hold) {
        let deletable = match class {
            Class::Owned(m) | Class::Previous(m) => Some(*m),
            Class::Foreign(_) => None,
        };
        if let Some(m) = deletable.filter(|m| !m.deleting && !resolved.namespaces.contains(ns) && !terminating(ns)) {
            plan.ops.push(MirrorOp::Delete {
                key: m.key.clone(),
                uid: Str::from(&m.uid),
                reason: DeleteReason::NotTargeted,
            });
        }
    }
    // The mirror differs between targets only by its namespace unless the rules say otherwise, so
    // its hash, recreate facts and skipped rules are made once for the whole pass.
    let base = build::Base::new(src, ctx.build);
    let per_target = plan.transform.depends_on_target();
    let mut shared: Option<Result<Summary, BuildError>> = None;
    for ns in resolved.namespaces {
        let summary = match (&base, per_target) {
            (Err(e), _) => Err(e.clone()),
            (Ok(base), true) => Summary::of(base, &ns, ctx, &plan.transform),
            (Ok(base), false) => shared.get_or_insert_with(|| Summary::of(base, &ns, ctx, &plan.transform)).clone(),
        };
        let state = plan_target(ctx, src, &ns, by_ns.get(&ns), ledger, summary, &mut plan);
        plan.targets.push((ns, state));
    }
    plan
}

/// What the planner needs of one target's mirror; the object itself is built again only when a
/// request carries it ([`Plan::materialize`]).
#[derive(Clone)]
struct Summary {
    hash: Str,
    facts: LiveFacts,
    skipped: Vec<transform::Error>,
}

impl Summary {
    fn of(
        base: &build::Base<'_>,
        ns: &str,
        ctx: &PlanContext<'_>,
        rules: &SourceTransform,
    ) -> Result<Summary, BuildError> {
        let d = base.build(ns, rules.transform(), ctx.now)?;
        Ok(Summary { hash: d.hash, facts: LiveFacts::of(&d.object), skipped: d.skipped })
    }
}

fn delete_all(plan: &mut Plan, by_ns: &BTreeMap<Str, Class<'_>>, reason: DeleteReason) {
    for class in by_ns.values() {
        if let Class::Owned(m) | Class::Previous(m) = class {
            if !m.deleting {
                plan.ops.push(MirrorOp::Delete { key: m.key.clone(), uid: Str::from(&m.uid), reason });
            }
        }
    }
}

fn plan_target(
    ctx: &PlanContext<'_>,
    src: &SourceObject,
    ns: &Str,
    existing: Option<&Class<'_>>,
    ledger: &Ledger,
    summary: Result<Summary, BuildError>,
    plan: &mut Plan,
) -> TargetState {
    let key = ObjectKey { namespace: ns.clone(), name: src.key.name.clone() };
    match existing {
        Some(Class::Foreign(owner)) => return TargetState::Conflict { owner: owner.clone() },
        Some(Class::Owned(m) | Class::Previous(m)) if m.deleting => return TargetState::AwaitingEvent,
        None if ledger.is_blocked(&key) => return TargetState::Conflict { owner: None },
        _ => {}
    }
    // Rules that do not compile: nothing is built, the mirror (if any) is left as it is.
    if let Some(e) = plan.transform.error() {
        return TargetState::Failed(e.to_string());
    }
    let desired = match summary {
        Ok(d) => d,
        Err(e) => {
            if let BuildError::Transform(t) = &e {
                plan.rule_failures.push((ns.clone(), t.clone()));
            }
            return TargetState::Failed(e.to_string());
        }
    };
    plan.rule_skips.extend(desired.skipped.iter().map(|e| (ns.clone(), e.clone())));
    let ops = &mut plan.ops;
    let last = ledger.last_write(&key);
    let hash = desired.hash.clone();
    let op = match existing {
        Some(Class::Previous(m)) => {
            MirrorOp::Recreate { key, hash, uid: Str::from(&m.uid), reason: RecreateReason::SourceReplaced }
        }
        Some(Class::Owned(m)) => match plan_owned(ctx, src, m, key, &desired, last) {
            Ok(op) => op,
            Err(state) => return state,
        },
        _ => match last {
            Some(lw) if lw.replaced.is_none() && lw.hash == hash => return TargetState::AwaitingEvent,
            _ => MirrorOp::Create { key, hash },
        },
    };
    ops.push(op);
    TargetState::Planned
}

fn plan_owned(
    ctx: &PlanContext<'_>,
    src: &SourceObject,
    m: &MirrorRecord,
    key: ObjectKey,
    desired: &Summary,
    last: Option<&LastWrite>,
) -> Result<MirrorOp, TargetState> {
    let hash = desired.hash.clone();
    let generation_ok = src.generation <= 0 || m.source_generation == crate::model::generation_tag(src.generation);
    let hash_ok = m.content_hash().map(|h| &**h) == Some(&*desired.hash);
    let ours_seen = m.confirmed.get() || last.is_some_and(|lw| lw.resource_version == m.resource_version);
    let ours_in_flight = last.is_some_and(|lw| lw.replaced.as_deref() == Some(&*m.resource_version));
    if hash_ok && generation_ok {
        if ours_seen || ours_in_flight || !ctx.verify_unknown {
            return Err(TargetState::InSync);
        }
        return Ok(MirrorOp::Verify { key, hash, resource_version: m.resource_version.clone() });
    }
    if ours_in_flight && last.is_some_and(|lw| lw.hash == hash) {
        return Err(TargetState::AwaitingEvent);
    }
    let facts = match last {
        Some(lw) => lw.facts.clone(),
        None if m.confirmed.get() => LiveFacts::plain_like(&desired.facts),
        None => LiveFacts::default(),
    };
    Ok(match build::recreate_reason_of(&desired.facts, &facts, !hash_ok) {
        Some(reason) => MirrorOp::Recreate { key, hash, uid: Str::from(&m.uid), reason },
        None => MirrorOp::Update { key, hash, resource_version: m.resource_version.clone() },
    })
}

/// Add our finalizer, keeping everyone else's; the resourceVersion makes it a compare-and-swap.
pub fn add_finalizer_patch(src: &SourceObject) -> Value {
    let mut list = finalizers(src);
    list.push(keys::FINALIZER.to_string());
    json!({"metadata": {"finalizers": list, "resourceVersion": &*src.resource_version}})
}

/// Remove our finalizer, keeping everyone else's; `clear_status` also drops our sync-status, which
/// means nothing on a source that is no longer mirrored.
pub fn remove_finalizer_patch(src: &SourceObject, clear_status: bool) -> Value {
    let rest: Vec<String> = finalizers(src).into_iter().filter(|f| f != keys::FINALIZER).collect();
    let mut meta = json!({"finalizers": if rest.is_empty() { Value::Null } else { json!(rest) },
        "resourceVersion": &*src.resource_version});
    if clear_status && src.annotation(keys::ANN_SYNC_STATUS).is_some() {
        meta["annotations"] = json!({keys::ANN_SYNC_STATUS: null});
    }
    json!({"metadata": meta})
}

fn finalizers(src: &SourceObject) -> Vec<String> {
    src.finalizers().map(str::to_string).collect()
}

impl Plan {
    /// [`materialize`] with the rules this plan compiled.
    pub fn materialize(
        &self,
        ctx: &PlanContext<'_>,
        src: &SourceObject,
        op: &MirrorOp,
    ) -> Option<Result<Desired, BuildError>> {
        ops::materialize_with(ctx, &self.transform, src, op)
    }

    /// [`materialize`](Self::materialize) for the ops of one execution in turn: when no rule
    /// makes the mirror depend on its target, the mirror built for an earlier op (kept in
    /// `template`) is copied with its namespace set, instead of parsing the source's content and
    /// hashing it again for every target. Only a mirror of the op's very hash is reused.
    pub fn materialize_reusing(
        &self,
        ctx: &PlanContext<'_>,
        src: &SourceObject,
        op: &MirrorOp,
        template: &mut Option<Desired>,
    ) -> Option<Result<Desired, BuildError>> {
        if self.transform.depends_on_target() {
            return self.materialize(ctx, src, op);
        }
        if let Some(t) = template.as_ref().filter(|t| Some(&*t.hash) == op.hash()) {
            let mut d = t.clone();
            if let Some(meta) = d.object.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert("namespace".into(), Value::String(op.key().namespace.to_string()));
            }
            return Some(Ok(d));
        }
        let built = self.materialize(ctx, src, op)?;
        if let Ok(d) = &built {
            *template = Some(d.clone());
        }
        Some(built)
    }

    /// A failure of the whole source, reported once: a refused Secret type, or rules that do not
    /// compile.
    fn source_error(&self) -> Option<(&'static str, String)> {
        self.refused
            .as_ref()
            .map(|e| (status::REASON_REFUSED, e.to_string()))
            .or_else(|| self.transform.error().map(|e| (status::REASON_TRANSFORM_INVALID, e.to_string())))
    }

    /// Nothing to do and nothing to patch: the steady state.
    pub fn is_noop(&self) -> bool {
        self.ops.is_empty() && self.add_finalizer.is_none() && self.remove_finalizer.is_none()
    }

    /// Per-target results once `outcomes` (one per op, in order; missing = not executed) are known.
    pub fn results(&self, outcomes: &[Outcome]) -> Vec<TargetResult> {
        let by_key: HashMap<&ObjectKey, &Outcome> = self.ops.iter().map(MirrorOp::key).zip(outcomes).collect();
        let name = self.source.name.clone();
        let mut out = Vec::new();
        for (ns, state) in &self.targets {
            let namespace = ns.clone();
            out.push(match state {
                TargetState::InSync | TargetState::AwaitingEvent => TargetResult::Synced(namespace),
                TargetState::Conflict { owner } => TargetResult::Conflict { namespace, owner: owner.clone() },
                TargetState::Failed(error) => TargetResult::Failed { namespace, error: error.clone() },
                TargetState::Planned => {
                    let key = ObjectKey { namespace: ns.clone(), name: name.clone() };
                    match by_key.get(&key) {
                        Some(Outcome::Done) => TargetResult::Synced(namespace),
                        Some(Outcome::AlreadyExists) => TargetResult::Conflict { namespace, owner: None },
                        Some(Outcome::Stale) => {
                            TargetResult::Failed { namespace, error: "changed concurrently, retrying".into() }
                        }
                        Some(Outcome::NotFound) => {
                            TargetResult::Failed { namespace, error: "not found, retrying".into() }
                        }
                        Some(Outcome::Failed(e)) => TargetResult::Failed { namespace, error: e.clone() },
                        None => TargetResult::Failed { namespace, error: "not attempted".into() },
                    }
                }
            });
        }
        out
    }

    /// Whether `remove_finalizer` may be applied after these outcomes.
    pub fn may_release_finalizer(&self, outcomes: &[Outcome]) -> bool {
        self.remove_finalizer.is_some()
            && self.ops.iter().enumerate().all(|(i, op)| {
                !matches!(op, MirrorOp::Delete { .. })
                    || matches!(outcomes.get(i), Some(Outcome::Done | Outcome::NotFound))
            })
    }

    /// The sync-status for these outcomes; `None` for sources we do not report on.
    pub fn status(&self, outcomes: &[Outcome]) -> Option<SyncStatus> {
        self.report.then(|| {
            let source_error = self.source_error().map(|(_, e)| e);
            SyncStatus::summarize(&self.results(outcomes), &self.problems, source_error)
                .with_rule_skips(&self.rule_skips)
        })
    }

    pub fn events(&self, outcomes: &[Outcome]) -> Vec<EventSpec> {
        if !self.report {
            return Vec::new();
        }
        let source_error = self.source_error();
        let mut events = status::events(
            &self.source,
            &self.results(outcomes),
            &self.problems,
            source_error.as_ref().map(|(reason, e)| (*reason, e.as_str())),
        );
        events.extend(status::rule_skip_events(&self.source, &self.rule_skips));
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::build::{LiveFacts, NoTransform};
    use crate::mirror::testutil::*;
    use crate::model::SourceRef;

    fn ctx<'a>(targets: &'a TargetConfig, build: &'a BuildConfig, verify_unknown: bool) -> PlanContext<'a> {
        PlanContext { targets, build, transform: &NoTransform, now: now(), verify_unknown }
    }

    fn cluster() -> Vec<NamespaceRecord> {
        ["default", "app1", "app2", "app-a", "app-b", "other", "kube-system"]
            .iter()
            .map(|n| NamespaceRecord::from_object(&json!({"metadata": {"name": n}})).unwrap())
            .chain([
                NamespaceRecord::from_object(
                    &json!({"metadata": {"name": "labeled", "labels": {"kubemirror.raczylo.com/allow-mirrors": "true"}}}),
                )
                .unwrap(),
                NamespaceRecord::from_object(&json!({"metadata": {"name": "dying"}, "status": {"phase": "Terminating"}}))
                    .unwrap(),
            ])
            .collect()
    }

    fn record(ns: &str, rv: &str, labels: Value, annotations: Value) -> MirrorRecord {
        MirrorRecord::from_object(&json!({"metadata": {"name": "db", "namespace": ns, "uid": format!("m-{ns}"),
            "resourceVersion": rv, "labels": labels, "annotations": annotations}}))
        .unwrap()
    }

    fn describe(plan: &Plan) -> Vec<String> {
        let mut out: Vec<String> = plan
            .ops
            .iter()
            .map(|op| match op {
                MirrorOp::Create { key, .. } => format!("create {}", key.namespace),
                MirrorOp::Update { key, resource_version, .. } => {
                    format!("update {}@{resource_version}", key.namespace)
                }
                MirrorOp::Recreate { key, uid, reason, .. } => format!("recreate {} {uid} ({reason:?})", key.namespace),
                MirrorOp::Verify { key, resource_version, .. } => {
                    format!("verify {}@{resource_version}", key.namespace)
                }
                MirrorOp::Delete { key, uid, reason } => format!("delete {} {uid} ({reason:?})", key.namespace),
            })
            .collect();
        if plan.add_finalizer.is_some() {
            out.insert(0, "add-finalizer".into());
        }
        if plan.recheck_source {
            out.insert(0, "recheck-source".into());
        }
        if plan.remove_finalizer.is_some() {
            out.push("remove-finalizer".into());
        }
        out
    }

    struct Case {
        name: &'static str,
        source: SourceObject,
        gone: bool,
        mirrors: Vec<MirrorRecord>,
        ledger: Ledger,
        want: Vec<&'static str>,
    }

    fn case(name: &'static str, source: SourceObject, mirrors: Vec<MirrorRecord>, want: Vec<&'static str>) -> Case {
        Case { name, source, gone: false, mirrors, ledger: Ledger::default(), want }
    }

    /// A record the cache marked as our write echoed by the watch.
    fn confirmed(m: MirrorRecord) -> MirrorRecord {
        MirrorRecord { confirmed: true.into(), ..m }
    }

    fn ledger(entries: Vec<(&str, LastWrite)>) -> Ledger {
        let mut l = Ledger::default();
        for (ns, w) in entries {
            l.record(ObjectKey::new(ns, "db"), w);
        }
        l
    }

    fn operations_table() -> Vec<Case> {
        let s = source("app1,app2");
        let managed = json!({"kubemirror.raczylo.com/managed-by": "kubemirror"});
        let refs = |ns: &str, uid: &str| {
            json!({"kubemirror.raczylo.com/source-namespace": ns, "kubemirror.raczylo.com/source-name": "db",
                "kubemirror.raczylo.com/source-uid": uid})
        };
        // A mirror's source reference with an empty or (`absent`) no source uid.
        let no_uid = |uid: &str| {
            let mut refs = refs("default", uid);
            if uid == "absent" {
                refs.as_object_mut().unwrap().remove("kubemirror.raczylo.com/source-uid");
            }
            refs
        };
        let both_known =
            || ledger(vec![("app1", written(&s, "app1", "5", None)), ("app2", written(&s, "app2", "6", None))]);
        let mut blocked = Ledger::default();
        blocked.block(ObjectKey::new("app2", "db"));
        let changed = source_with(Some("app1,app2"), |o| o["data"]["password"] = json!("bmV3"));
        let relabelled = source_with(Some("app1,app2"), |o| o["metadata"]["labels"]["team"] = json!("x"));
        let immutable = source_with(Some("app1"), |o| o["immutable"] = json!(true));
        let immutable_changed = source_with(Some("app1"), |o| {
            o["immutable"] = json!(true);
            o["data"]["password"] = json!("bmV3");
        });
        let crd = |generation: i64| {
            source_with(Some("app1"), |o| {
                *o = json!({"apiVersion": "traefik.io/v1alpha1", "kind": "Middleware",
                    "metadata": {"name": "db", "namespace": "default", "uid": "src-uid", "resourceVersion": "100",
                        "generation": generation, "finalizers": ["kubemirror.raczylo.com/finalizer"],
                        "labels": {"kubemirror.raczylo.com/enabled": "true"},
                        "annotations": {"kubemirror.raczylo.com/sync": "true",
                                        "kubemirror.raczylo.com/target-namespaces": "app-*"}},
                    "spec": {"compress": {"excludedContentTypes": ["text/event-stream"]}}});
            })
        };
        let crd_v1 = crd(1);
        let disabled = source_with(Some("app1,app2"), |o| {
            o["metadata"]["annotations"]["kubemirror.raczylo.com/sync"] = json!("false")
        });
        let unlabelled = source_with(Some("app1"), |o| {
            o["metadata"]["labels"].as_object_mut().unwrap().clear();
        });
        let deleting =
            source_with(Some("app1,app2"), |o| o["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z"));
        let no_finalizer = source_with(Some("app1"), |o| o["metadata"]["finalizers"] = json!([]));
        let sa_token = source_with(Some("app1,app2"), |o| o["type"] = json!("kubernetes.io/service-account-token"));
        vec![
            Case {
                name: "README specific namespaces, first pass: finalizer then creates",
                source: source_with(Some("app1,app2,app3"), |o| o["metadata"]["finalizers"] = json!(null)),
                ..case("", s.clone(), vec![], vec!["add-finalizer", "create app1", "create app2"])
            },
            case("README patterns", source("app-*"), vec![], vec!["create app-a", "create app-b"]),
            case(
                "README all",
                source("all"),
                vec![],
                vec!["create app-a", "create app-b", "create app1", "create app2", "create labeled", "create other"],
            ),
            case("README all-labeled", source("all-labeled"), vec![], vec!["create labeled"]),
            case("README CRD", crd_v1.clone(), vec![], vec!["create app-a", "create app-b"]),
            Case {
                name: "steady state: no requests at all",
                ledger: both_known(),
                ..case("", s.clone(), vec![mirror_of(&s, "app1", "5"), mirror_of(&s, "app2", "6")], vec![])
            },
            case(
                "steady state after the watch confirmed our writes: no ledger entry, no request",
                s.clone(),
                vec![confirmed(mirror_of(&s, "app1", "5")), confirmed(mirror_of(&s, "app2", "6"))],
                vec![],
            ),
            case(
                "confirmed mirrors, source content changed -> update (no verify, no recreate)",
                changed.clone(),
                vec![confirmed(mirror_of(&s, "app1", "5")), confirmed(mirror_of(&s, "app2", "6"))],
                vec!["update app1@5", "update app2@6"],
            ),
            Case {
                name: "confirmed, then our next update in flight -> wait",
                ledger: ledger(vec![("app1", written(&changed, "app1", "7", Some("5")))]),
                ..case(
                    "",
                    changed.clone(),
                    vec![confirmed(mirror_of(&s, "app1", "5")), mirror_of(&changed, "app2", "8")],
                    vec!["verify app2@8"],
                )
            },
            case(
                "restart: hash matches but versions unknown -> verify once",
                s.clone(),
                vec![mirror_of(&s, "app1", "5"), mirror_of(&s, "app2", "6")],
                vec!["verify app1@5", "verify app2@6"],
            ),
            Case {
                name: "foreign write (unknown rv) with matching hash -> verify",
                ledger: both_known(),
                ..case(
                    "",
                    s.clone(),
                    vec![mirror_of(&s, "app1", "9"), mirror_of(&s, "app2", "6")],
                    vec!["verify app1@9"],
                )
            },
            Case {
                name: "source content changed -> update with rv precondition",
                ledger: both_known(),
                ..case(
                    "",
                    changed.clone(),
                    vec![mirror_of(&s, "app1", "5"), mirror_of(&s, "app2", "6")],
                    vec!["update app1@5", "update app2@6"],
                )
            },
            Case {
                name: "source label change propagates",
                ledger: both_known(),
                ..case(
                    "",
                    relabelled,
                    vec![mirror_of(&s, "app1", "5"), mirror_of(&s, "app2", "6")],
                    vec!["update app1@5", "update app2@6"],
                )
            },
            Case {
                name: "our update not in the cache yet -> wait, no second write",
                ledger: ledger(vec![
                    ("app1", written(&changed, "app1", "7", Some("5"))),
                    ("app2", written(&changed, "app2", "8", Some("6"))),
                ]),
                ..case("", changed.clone(), vec![mirror_of(&s, "app1", "5"), mirror_of(&changed, "app2", "8")], vec![])
            },
            Case {
                name: "our create not in the cache yet -> wait",
                ledger: ledger(vec![("app1", written(&s, "app1", "5", None))]),
                ..case("", s.clone(), vec![], vec!["create app2"])
            },
            Case {
                name: "hash annotation tampered -> rewrite",
                ledger: both_known(),
                ..case(
                    "",
                    s.clone(),
                    vec![
                        {
                            let mut m = mirror_of(&s, "app1", "5");
                            let tampered = SourceRef {
                                content_hash: Some("tampered".into()),
                                ..(**m.source.as_ref().unwrap()).clone()
                            };
                            m.source = Some(std::sync::Arc::new(tampered));
                            m
                        },
                        mirror_of(&s, "app2", "6"),
                    ],
                    vec!["update app1@5"],
                )
            },
            Case {
                name: "immutable mirror with changed content -> recreate",
                ledger: ledger(vec![(
                    "app1",
                    LastWrite {
                        facts: LiveFacts { immutable: true, ..LiveFacts::default() },
                        ..written(&immutable, "app1", "5", None)
                    },
                )]),
                ..case(
                    "",
                    immutable_changed,
                    vec![mirror_of(&immutable, "app1", "5")],
                    vec!["recreate app1 m-app1 (ImmutableChanged)"],
                )
            },
            Case {
                name: "CRD generation bumped while content hash is equal -> update (generation is a change signal)",
                ledger: ledger(vec![
                    ("app-a", written(&crd_v1, "app-a", "5", None)),
                    ("app-b", written(&crd_v1, "app-b", "6", None)),
                ]),
                ..case(
                    "",
                    crd(2),
                    vec![mirror_of(&crd_v1, "app-a", "5"), mirror_of(&crd_v1, "app-b", "6")],
                    vec!["update app-a@5", "update app-b@6"],
                )
            },
            case(
                "target dropped -> orphan deleted with uid precondition",
                source("app1"),
                vec![mirror_of(&s, "app2", "6")],
                vec!["delete app2 m-app2 (NotTargeted)", "create app1"],
            ),
            case(
                "invalid entry: valid targets served, nothing deleted until it is fixed",
                source("app2,App-1"),
                vec![mirror_of(&s, "app1", "5")],
                vec!["create app2"],
            ),
            case(
                "annotation removed -> every owned mirror swept (W-9)",
                source_with(None, |_| {}),
                vec![mirror_of(&s, "app1", "5"), mirror_of(&s, "app2", "6")],
                vec!["delete app1 m-app1 (NotTargeted)", "delete app2 m-app2 (NotTargeted)"],
            ),
            case(
                "mirror of an earlier source uid, still targeted -> recreate",
                s.clone(),
                vec![record("app1", "5", managed.clone(), refs("default", "old-uid"))],
                vec!["recreate app1 m-app1 (SourceReplaced)", "create app2"],
            ),
            case(
                "mirror of an earlier source uid, not targeted -> delete",
                source("app2"),
                vec![record("app1", "5", managed.clone(), refs("default", "old-uid"))],
                vec!["delete app1 m-app1 (NotTargeted)", "create app2"],
            ),
            case(
                "another source's mirror in the way -> conflict, untouched",
                s.clone(),
                vec![record("app1", "5", managed.clone(), refs("elsewhere", "x"))],
                vec!["create app2"],
            ),
            case(
                "managed object naming this source without a source uid -> conflict, untouched",
                s.clone(),
                vec![
                    record("app1", "5", managed.clone(), no_uid("")),
                    record("app2", "5", managed.clone(), no_uid("absent")),
                ],
                vec![],
            ),
            case(
                "... and not deleted for not being targeted",
                source("app-a"),
                vec![record("app1", "5", managed.clone(), no_uid(""))],
                vec!["create app-a"],
            ),
            case(
                "... nor when the source is turned off",
                disabled.clone(),
                vec![record("app1", "5", managed.clone(), no_uid("absent"))],
                vec!["remove-finalizer"],
            ),
            Case {
                name: "... nor when the source is gone",
                gone: true,
                ..case("", s.clone(), vec![record("app1", "5", managed.clone(), no_uid(""))], vec![])
            },
            case(
                "unmanaged object in the cache -> conflict, untouched",
                s.clone(),
                vec![record("app1", "5", json!({}), refs("default", "src-uid"))],
                vec!["create app2"],
            ),
            Case {
                name: "foreign object found by an earlier 409 -> no create retry",
                ledger: blocked,
                ..case("", s.clone(), vec![], vec!["create app1"])
            },
            case(
                "mirror being deleted -> wait for its event",
                s.clone(),
                vec![{
                    let mut m = mirror_of(&s, "app1", "5");
                    m.deleting = true;
                    m
                }],
                vec!["create app2"],
            ),
            case(
                "look-alikes are never deleted, even when nothing is targeted",
                source_with(None, |_| {}),
                vec![
                    record("app1", "5", managed.clone(), refs("elsewhere", "x")),
                    record("app2", "5", json!({}), refs("default", "src-uid")),
                    record("other", "5", managed.clone(), json!({})),
                    record("default", "5", managed.clone(), refs("default", "src-uid")),
                    MirrorRecord { key: ObjectKey::new("app-a", "not-db"), ..mirror_of(&s, "app-a", "5") },
                ],
                vec![],
            ),
            case(
                "disabled source with finalizer: delete owned, then release",
                disabled.clone(),
                vec![mirror_of(&s, "app1", "5"), record("app2", "5", json!({}), json!({}))],
                vec!["delete app1 m-app1 (SourceDisabled)", "remove-finalizer"],
            ),
            case(
                "enabled label removed (last state from the watch) behaves the same",
                unlabelled,
                vec![mirror_of(&s, "app1", "5")],
                vec!["delete app1 m-app1 (SourceDisabled)", "remove-finalizer"],
            ),
            case("disabled source, nothing left: just release", disabled, vec![], vec!["remove-finalizer"]),
            case(
                "disabled source without finalizer still cleans up (W-14)",
                source_with(Some("app1"), |o| {
                    o["metadata"]["finalizers"] = json!(null);
                    o["metadata"]["annotations"]["kubemirror.raczylo.com/sync"] = json!("no");
                }),
                vec![mirror_of(&s, "app1", "5")],
                vec!["delete app1 m-app1 (SourceDisabled)"],
            ),
            case(
                "deleting source: delete owned only, then release",
                deleting,
                vec![mirror_of(&s, "app1", "5"), record("app2", "5", managed.clone(), refs("elsewhere", "x"))],
                vec!["delete app1 m-app1 (SourceDeleting)", "remove-finalizer"],
            ),
            Case {
                name: "source gone while down: delete every mirror naming it, any uid",
                gone: true,
                ..case(
                    "",
                    s.clone(),
                    vec![
                        mirror_of(&s, "app1", "5"),
                        record("app2", "5", managed.clone(), refs("default", "old")),
                        record("other", "5", managed.clone(), refs("elsewhere", "x")),
                        record("app-a", "5", json!({}), refs("default", "src-uid")),
                    ],
                    vec!["recheck-source", "delete app1 m-app1 (SourceGone)", "delete app2 m-app2 (SourceGone)"],
                )
            },
            case(
                "refused secret type: no mirrors, existing ones removed",
                sa_token,
                vec![mirror_of(&s, "app1", "5")],
                vec!["delete app1 m-app1 (SourceRefused)", "remove-finalizer"],
            ),
            case(
                "enabled source without finalizer gets it before anything else",
                no_finalizer,
                vec![],
                vec!["add-finalizer", "create app1"],
            ),
        ]
    }

    #[test]
    fn plan_operations_table() {
        let (tc, bc) = (TargetConfig::default(), BuildConfig::default());
        let ns = cluster();
        for c in operations_table() {
            let state = if c.gone { SourceState::Gone(&c.source.key) } else { SourceState::Seen(&c.source) };
            let plan = plan(&ctx(&tc, &bc, true), state, &ns, &c.mirrors, &c.ledger);
            assert_eq!(describe(&plan), c.want, "{}", c.name);
        }
    }

    #[test]
    fn request_bodies_and_ledger_entries() {
        let (tc, bc) = (TargetConfig::default(), BuildConfig::default());
        let s = source("app1,app2");
        let changed = source_with(Some("app1,app2"), |o| o["data"]["password"] = json!("bmV3"));
        let mirrors = [mirror_of(&s, "app1", "5")];
        let p = plan(&ctx(&tc, &bc, true), SourceState::Seen(&changed), &cluster(), &mirrors, &Ledger::default());
        assert_eq!(describe(&p), ["update app1@5", "create app2"]);
        let c = ctx(&tc, &bc, true);
        let desired: Vec<Desired> = p.ops.iter().map(|op| materialize(&c, &changed, op).unwrap().unwrap()).collect();
        assert_eq!(
            p.ops.iter().map(MirrorOp::hash).collect::<Vec<_>>(),
            desired.iter().map(|d| Some(&*d.hash)).collect::<Vec<_>>()
        );
        assert_eq!(desired[1].object.pointer("/metadata/namespace"), Some(&json!("app2")));
        // The executor's way, one built mirror copied for the next target: the same bodies.
        let mut template = None;
        for (op, want) in p.ops.iter().zip(&desired) {
            assert_eq!(&p.materialize_reusing(&c, &changed, op, &mut template).unwrap().unwrap(), want);
        }
        assert!(template.is_some());
        let update = p.ops[0].body(&desired[0]).unwrap();
        assert_eq!(update.pointer("/metadata/resourceVersion"), Some(&json!("5")));
        assert_eq!(update.pointer("/data/password"), Some(&json!("bmV3")));
        assert!(p.ops[1].body(&desired[1]).unwrap().pointer("/metadata/resourceVersion").is_none());
        let delete =
            MirrorOp::Delete { key: ObjectKey::new("a", "db"), uid: "u".into(), reason: DeleteReason::SourceGone };
        assert_eq!(delete.body(&desired[0]), None);
        assert!(materialize(&c, &changed, &delete).is_none());

        // After executing, the ledger makes the next pass a no-op until something changes.
        let mut ledger = Ledger::default();
        for ((op, rv), d) in p.ops.iter().zip(["7", "8"]).zip(&desired) {
            let replaced =
                if let MirrorOp::Update { resource_version, .. } = op { Some(&**resource_version) } else { None };
            ledger.record(op.key().clone(), LastWrite::of_write(d, rv, replaced));
        }
        let stale_cache = [mirror_of(&s, "app1", "5")];
        let p2 = plan(&ctx(&tc, &bc, true), SourceState::Seen(&changed), &cluster(), &stale_cache, &ledger);
        assert!(p2.is_noop(), "writes in flight are not repeated: {:?}", describe(&p2));
        let caught_up = [mirror_of(&changed, "app1", "7"), mirror_of(&changed, "app2", "8")];
        let p3 = plan(&ctx(&tc, &bc, true), SourceState::Seen(&changed), &cluster(), &caught_up, &ledger);
        assert!(p3.is_noop(), "{:?}", describe(&p3));
        assert_eq!(p3.status(&[]).unwrap().to_string(), "synced:2,failed:0,conflicts:0,skipped:0");
        assert_eq!(ledger.len(), 2);
        ledger.forget(&ObjectKey::new("app2", "db"));
        let p4 = plan(&ctx(&tc, &bc, true), SourceState::Seen(&changed), &cluster(), &caught_up[..1], &ledger);
        assert_eq!(describe(&p4), ["create app2"], "a deleted mirror is put back");
    }

    #[test]
    fn refused_source_is_reported_and_gets_no_finalizer() {
        let (tc, bc) = (TargetConfig::default(), BuildConfig::default());
        let s = source_with(Some("app1"), |o| {
            o["type"] = json!("helm.sh/release.v1");
            o["metadata"]["finalizers"] = json!(null);
        });
        let p = plan(&ctx(&tc, &bc, true), SourceState::Seen(&s), &cluster(), &[], &Ledger::default());
        assert!(p.is_noop(), "{:?}", describe(&p));
        assert_eq!(
            p.status(&[]).unwrap().to_string(),
            "synced:0,failed:0,conflicts:0,skipped:0; last-error: Secrets of type helm.sh/release.v1 are never mirrored"
        );
        assert_eq!(p.events(&[])[0].reason, status::REASON_REFUSED);
    }

    #[test]
    fn source_change_filter() {
        let base = source("app1").object();
        let with = |f: &dyn Fn(&mut Value)| {
            let mut v = base.clone();
            f(&mut v);
            v
        };
        type Edit<'a> = &'a dyn Fn(&mut Value);
        let cases: [(&str, Edit, bool); 8] = [
            (
                "our status patch",
                &|v| v["metadata"]["annotations"]["kubemirror.raczylo.com/sync-status"] = json!("x"),
                false,
            ),
            ("our finalizer patch", &|v| v["metadata"]["finalizers"] = json!([]), false),
            ("resourceVersion only", &|v| v["metadata"]["resourceVersion"] = json!("101"), false),
            ("data", &|v| v["data"]["k"] = json!("dg=="), true),
            ("label", &|v| v["metadata"]["labels"]["team"] = json!("a"), true),
            (
                "targets",
                &|v| v["metadata"]["annotations"]["kubemirror.raczylo.com/target-namespaces"] = json!("x"),
                true,
            ),
            ("deletion", &|v| v["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:00:00Z"), true),
            ("status subresource of a CRD", &|v| v["status"] = json!({"ready": true}), false),
        ];
        let src = |v: Value| SourceObject::from_object(v).unwrap();
        for (name, edit, want) in cases {
            assert_eq!(source_changed(&src(base.clone()), &src(with(edit))), want, "{name}");
        }
    }

    #[test]
    fn verified_mirror_deleted_unnoticed_is_recreated() {
        // Even if the runtime missed the DELETED event (ledger not told), a verified entry never
        // blocks a create: only our own create is waited for.
        let (tc, bc) = (TargetConfig::default(), BuildConfig::default());
        let s = source("app1");
        let hash = desired_hash(&s, "app1");
        let verified = LastWrite {
            resource_version: "5".into(),
            replaced: Some("5".into()),
            hash: hash.clone(),
            facts: LiveFacts::default(),
        };
        let created = LastWrite { replaced: None, ..verified.clone() };
        for (lw, want) in [(verified, vec!["create app1"]), (created, vec![])] {
            let p = plan(&ctx(&tc, &bc, true), SourceState::Seen(&s), &cluster(), &[], &ledger(vec![("app1", lw)]));
            assert_eq!(describe(&p), want);
        }
    }

    #[test]
    fn verify_can_be_turned_off() {
        let (tc, bc) = (TargetConfig::default(), BuildConfig::default());
        let s = source("app1");
        let p = plan(
            &ctx(&tc, &bc, false),
            SourceState::Seen(&s),
            &cluster(),
            &[mirror_of(&s, "app1", "5")],
            &Ledger::default(),
        );
        assert!(p.is_noop(), "{:?}", describe(&p));
        assert_eq!(p.targets, vec![(Str::from("app1"), TargetState::InSync)]);
    }

    #[test]
    fn external_secrets_source_keeps_other_finalizers_and_owner() {
        let (tc, bc) = (TargetConfig::default(), BuildConfig::default());
        let s = source_with(Some("all"), |o| {
            o["type"] = json!("kubernetes.io/dockerconfigjson");
            o["data"] = json!({".dockerconfigjson": "e30="});
            o["metadata"]["finalizers"] = json!(["external-secrets.io/finalizer"]);
            o["metadata"]["ownerReferences"] = json!([{"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
                "name": "1p-docker-config", "uid": "es-uid", "controller": true}]);
        });
        let p = plan(&ctx(&tc, &bc, true), SourceState::Seen(&s), &cluster(), &[], &Ledger::default());
        assert_eq!(
            p.add_finalizer,
            Some(
                json!({"metadata": {"finalizers": ["external-secrets.io/finalizer", "kubemirror.raczylo.com/finalizer"],
                "resourceVersion": "100"}})
            )
        );
        assert_eq!(p.ops.len(), 6);
        for op in &p.ops {
            assert!(matches!(op, MirrorOp::Create { .. }), "{op:?}");
            let desired = materialize(&ctx(&tc, &bc, true), &s, op).unwrap().unwrap();
            assert!(desired.object.pointer("/metadata/ownerReferences").is_none());
            assert!(desired.object.pointer("/metadata/finalizers").is_none());
            assert_eq!(desired.object["type"], json!("kubernetes.io/dockerconfigjson"));
        }
        let disabled = source_with(Some("all"), |o| {
            o["metadata"]["finalizers"] = json!(["external-secrets.io/finalizer", "kubemirror.raczylo.com/finalizer"]);
            o["metadata"]["annotations"]["kubemirror.raczylo.com/sync-status"] = json!("synced:6");
            o["metadata"]["annotations"]["kubemirror.raczylo.com/sync"] = json!("false");
        });
        assert_eq!(
            remove_finalizer_patch(&disabled, true),
            json!({"metadata": {"finalizers": ["external-secrets.io/finalizer"], "resourceVersion": "100",
                "annotations": {"kubemirror.raczylo.com/sync-status": null}}})
        );
        assert_eq!(
            remove_finalizer_patch(&source("x"), true),
            json!({"metadata": {"finalizers": null, "resourceVersion": "100"}})
        );
    }

    #[test]
    fn a_deployment_goes_only_where_it_is_welcome_and_the_rest_is_reported() {
        let (tc, bc) = (TargetConfig::default(), BuildConfig::default());
        let dep = source_with(Some("all"), |o| {
            o["apiVersion"] = json!("apps/v1");
            o["kind"] = json!("Deployment");
            o.as_object_mut().unwrap().remove("data");
            o.as_object_mut().unwrap().remove("type");
            o["spec"] = json!({"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}});
        });
        // An existing mirror in a namespace that never consented (made before the rule existed) goes.
        let old = mirror_of(&dep, "app1", "5");
        let p = plan(&ctx(&tc, &bc, true), SourceState::Seen(&dep), &cluster(), &[old], &Ledger::default());
        assert_eq!(describe(&p), ["delete app1 m-app1 (NotTargeted)", "create labeled"]);
        let st = p.status(&[Outcome::Done, Outcome::Done]).unwrap().to_string();
        // app-a, app-b, app1, app2, other refused; dying terminating (reported first).
        assert_eq!(st, "synced:1,failed:0,conflicts:0,skipped:6; last-error: target namespace dying is terminating");
        assert_eq!(
            p.problems.iter().filter(|p| matches!(p, TargetProblem::RunsCodeWithoutConsent { .. })).count(),
            5,
            "{:?}",
            p.problems
        );
        let skipped = p.events(&[Outcome::Done, Outcome::Done]);
        assert!(
            skipped.iter().any(|e| !e.warning && e.message.contains("not consenting to Deployment mirrors")),
            "{skipped:?}"
        );
        // The same source as a Secret-like kind goes everywhere.
        let nobody = TargetConfig { consent_kinds: crate::kinds::KindList::empty(), ..TargetConfig::default() };
        let p = plan(&ctx(&nobody, &bc, true), SourceState::Seen(&dep), &cluster(), &[], &Ledger::default());
        assert_eq!(p.ops.len(), 6, "{:?}", describe(&p));
    }

    #[test]
    fn a_mirror_without_source_uid_is_reported_as_a_conflict() {
        let (tc, bc) = (TargetConfig::default(), BuildConfig::default());
        let s = source("app1");
        let m = record(
            "app1",
            "5",
            json!({"kubemirror.raczylo.com/managed-by": "kubemirror"}),
            json!({"kubemirror.raczylo.com/source-namespace": "default", "kubemirror.raczylo.com/source-name": "db"}),
        );
        let p = plan(&ctx(&tc, &bc, true), SourceState::Seen(&s), &cluster(), &[m], &Ledger::default());
        assert!(p.ops.is_empty());
        assert_eq!(
            p.status(&[]).unwrap().to_string(),
            "synced:0,failed:0,conflicts:1,skipped:0; last-error: app1: an object of the same name is the mirror of \
             default/db (no source-uid: not treated as ours)"
        );
    }

    #[test]
    fn results_status_and_finalizer_release() {
        let (tc, bc) = (TargetConfig::default(), BuildConfig::default());
        let s = source("app1,app2,app-a,missing");
        let mirrors = [record("app-a", "1", json!({}), json!({}))];
        let p = plan(&ctx(&tc, &bc, true), SourceState::Seen(&s), &cluster(), &mirrors, &Ledger::default());
        assert_eq!(describe(&p), ["create app1", "create app2"]);
        let outcomes = [Outcome::Done, Outcome::Failed("forbidden".into())];
        let st = p.status(&outcomes).unwrap();
        assert_eq!(
            st.to_string(),
            "synced:1,failed:1,conflicts:1,skipped:1; last-error: app-a: an object of the same name exists and is not managed by kubemirror"
        );
        assert!(st.patch_for(&s).is_some());
        let evs = p.events(&outcomes);
        assert_eq!(evs.iter().filter(|e| e.warning).count(), 2);
        // A 409 on create turns into a conflict.
        let st = p.status(&[Outcome::AlreadyExists, Outcome::Done]).unwrap();
        assert_eq!((st.synced, st.conflicts), (1, 2));

        let disabled = source_with(Some("app1,app2"), |o| {
            o["metadata"]["annotations"]["kubemirror.raczylo.com/sync"] = json!("x")
        });
        let mirrors = [mirror_of(&s, "app1", "1"), mirror_of(&s, "app2", "2")];
        let p = plan(&ctx(&tc, &bc, true), SourceState::Seen(&disabled), &cluster(), &mirrors, &Ledger::default());
        assert!(p.status(&[]).is_none() && p.events(&[]).is_empty(), "no status on a disabled source");
        assert!(p.may_release_finalizer(&[Outcome::Done, Outcome::NotFound]));
        assert!(!p.may_release_finalizer(&[Outcome::Done, Outcome::Failed("x".into())]));
        assert!(!p.may_release_finalizer(&[Outcome::Done]));
    }
}
