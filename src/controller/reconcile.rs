//! One pass for one queued source: read the caches, plan, execute, decide what the queue does
//! next. Runs only on the leader, only once the caches it reads are complete.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::cache::Cache;
use crate::controller::executor::{Executor, Report, Settings};
use crate::controller::state::{self, TypeState, Types, WorkKey};
use crate::controller::writer::{MirrorApi, WriteError, Writer};
use crate::informers::{SyncState, Watches};
use crate::metrics::Metrics;
use crate::mirror::plan::{self, Plan, SourceState};
use crate::mirror::targets::TargetProblem;
use crate::model::{MirrorRecord, NamespaceRecord, ObjectKey, SourceObject};
use crate::queue::Action;

/// While the caches are still listing, a pass would plan on half a world (and could delete
/// mirrors of namespaces not listed yet): look again shortly.
const NOT_SYNCED_RETRY: Duration = Duration::from_millis(250);
/// While a type's (or the namespaces') watch fails, its passes wait: the cache can no longer be
/// refreshed, so nothing is written or deleted from it (see [`crate::informers`]). A change seen
/// after the watch recovers queues the source at once; this is the longest wait otherwise.
const PAUSED_RETRY: Duration = Duration::from_secs(10);

/// `A`: where the pass's requests go ([`Writer`] in production, a script in tests).
pub struct Reconciler<A: MirrorApi = Writer> {
    pub cache: Cache,
    pub types: Types,
    pub api: A,
    pub settings: Settings,
    pub metrics: Option<Metrics>,
    pub watches: Watches,
}

/// Why a pass is retried with backoff.
#[derive(Debug)]
pub struct RetryError(pub String);

impl std::fmt::Display for RetryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<A: MirrorApi> Reconciler<A> {
    /// Mirrors naming this source plus any record of the same name in another namespace (another
    /// source's mirror in the way), so the planner can tell conflicts without a request.
    fn mirrors(&self, ts: &TypeState, key: &ObjectKey, namespaces: &[Arc<NamespaceRecord>]) -> Vec<Arc<MirrorRecord>> {
        let Some(stores) = self.cache.get_type(&ts.name) else { return Vec::new() };
        let mut out = stores.mirrors.mirrors_of(key);
        for ns in namespaces {
            let k = ObjectKey { namespace: ns.name.clone(), name: key.name.clone() };
            if let Some(m) = stores.mirrors.get(&k)
                && !out.iter().any(|o| o.key == m.key)
            {
                out.push(m);
            }
        }
        out
    }

    fn plan(&self, ts: &TypeState, state: SourceState<'_>) -> Plan {
        let namespaces = self.cache.namespaces.list();
        // The ledger before the mirrors, so that no entry is settled in between (see
        // `TypeState::settle`).
        let mut ledger = ts.ledger();
        let mirrors = self.mirrors(ts, state.key(), &namespaces);
        let plan = plan::plan(
            &self.settings.context(),
            state,
            namespaces.iter().map(|n| &**n),
            mirrors.iter().map(|m| &**m),
            &ledger,
        );
        // Writes the records already show: the routing of an echo and the executor's record
        // settle them as they happen, but a relisted record reaches the store without an echo.
        if let Some(stores) = self.cache.get_type(&ts.name) {
            state::settle(&mut ledger, &stores.mirrors, mirrors.iter().map(|m| &m.key));
        }
        plan
    }

    /// How long to postpone a pass whose caches are not fit to plan from: still listing, or fed by
    /// a watch that is refused or has failed for a while (its last view is kept but not acted on;
    /// see [`SyncState::pauses_passes`]).
    fn not_plannable(&self, key: &WorkKey) -> Option<Duration> {
        let namespaces = self.watches.namespaces();
        let this = self.watches.state(&key.kind);
        for (what, state) in [("namespaces", Some(namespaces)), (&*key.kind, this)] {
            match state {
                Some(SyncState::Syncing) => return Some(NOT_SYNCED_RETRY),
                Some(s @ SyncState::Failing { .. }) if s.pauses_passes() => {
                    if let SyncState::Failing { failure, .. } = &s {
                        log::debug!("{key}: pass postponed, the {what} watch fails ({})", failure.reason.as_str());
                    }
                    return Some(PAUSED_RETRY);
                }
                _ => {}
            }
        }
        None
    }

    pub async fn reconcile(&self, key: WorkKey) -> Result<Action, RetryError> {
        let Some(ts) = self.types.get(&key.kind) else { return Ok(Action::Done) };
        let Some(stores) = self.cache.get_type(&key.kind) else { return Ok(Action::Done) };
        if let Some(wait) = self.not_plannable(&key) {
            return Ok(Action::RequeueAfter(wait));
        }
        if !self.cache.namespaces.is_synced() || !stores.is_synced() {
            return Ok(Action::RequeueAfter(NOT_SYNCED_RETRY));
        }
        let started = std::time::Instant::now();
        ts.unblock_due(Instant::now());
        let cached = stores.sources.get(&key.source);
        let result = self.pass(&ts, &key.source, cached.as_deref()).await;
        let kind = &*key.kind;
        let outcome = match result {
            Ok((plan, report)) => {
                self.observe(kind, &plan, &report);
                if report.needs_retry() {
                    Err(RetryError(format!("{kind} {}: retrying failed or stale writes", key.source)))
                } else {
                    let next = ts.next_unblock(&key.source.name);
                    Ok(next.map_or(Action::Done, |at| {
                        Action::RequeueAfter(
                            at.saturating_duration_since(Instant::now()).max(Duration::from_millis(10)),
                        )
                    }))
                }
            }
            Err(e) => Err(e),
        };
        if let Some(m) = &self.metrics {
            let label = match &outcome {
                Ok(Action::Done) => "success",
                Ok(Action::RequeueAfter(_)) => "requeue",
                Err(_) => "error",
            };
            m.reconcile_total.with_label_values(&[kind, label]).inc();
            m.reconcile_duration.with_label_values(&[kind]).observe(started.elapsed().as_secs_f64());
        }
        outcome
    }

    /// The pass itself, once the caches are fit to plan from: plan, re-check a departed source,
    /// execute, remember blocked targets.
    pub(crate) async fn pass(
        &self,
        ts: &TypeState,
        key: &ObjectKey,
        cached: Option<&SourceObject>,
    ) -> Result<(Plan, Report), RetryError> {
        let kind = &ts.name;
        let mut fetched: Option<SourceObject> = None;
        let mut plan = match cached {
            Some(src) => self.plan(ts, SourceState::Seen(src)),
            None => self.plan(ts, SourceState::Gone(key)),
        };
        // Also for a source that left the watch with our finalizer but has no mirror to delete.
        let departed = ts.take_departed(key);
        if plan.recheck_source || (cached.is_none() && departed) {
            // The source left the label-filtered watch: gone for real, or only unlabelled.
            match self.api.get(&ts.resource, &key.namespace, &key.name).await {
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(RetryError(format!("{kind} {key}: reading the source failed: {e}"))),
                Ok(obj) => {
                    let src = SourceObject::from_object(obj)
                        .map_err(|e| RetryError(format!("{kind} {key}: unreadable source: {e}")))?;
                    plan = self.plan(ts, SourceState::Seen(&src));
                    fetched = Some(src);
                }
            }
        }
        let mut gone = false;
        if let Some(cached) = cached.filter(|_| self.settings.verify_source_freshness && !plan.ops.is_empty()) {
            // --verify-source-freshness: the one read of the source a writing pass makes.
            match self.api.get(&ts.resource, &key.namespace, &key.name).await {
                Err(e) if e.is_not_found() => {
                    log::info!("{kind} {key}: source deleted before its mirrors were written");
                    plan = self.plan(ts, SourceState::Gone(key));
                    gone = true;
                }
                Err(e) => return Err(RetryError(format!("{kind} {key}: reading the source failed: {e}"))),
                Ok(obj) => {
                    let live = SourceObject::from_object(obj)
                        .map_err(|e| RetryError(format!("{kind} {key}: unreadable source: {e}")))?;
                    if live.resource_version != cached.resource_version {
                        log::debug!("{kind} {key}: the cache is behind the source, planning with the live object");
                        plan = self.plan(ts, SourceState::Seen(&live));
                        fetched = Some(live);
                    }
                }
            }
        }
        let src = if gone { None } else { fetched.as_ref().or(cached) };
        if src.is_none() {
            // Gone for good: nothing of ours to remember about it (bounds the memo by live sources).
            ts.statuses.forget(key);
        }
        if plan.is_noop() && plan.status(&[]).and_then(|s| src.and_then(|src| ts.statuses.patch_for(&s, src))).is_none()
        {
            return Ok((plan, Report::default()));
        }
        let stores = self.cache.get_type(kind);
        let exec = Executor {
            api: &self.api,
            resource: &ts.resource,
            settings: &self.settings,
            ledger: &ts.ledger,
            mirrors: stores.as_ref().map(|s| &s.mirrors),
            statuses: &ts.statuses,
        };
        let report = match exec.execute(&plan, src).await {
            Ok(r) => r,
            Err(WriteError::NotLeader) => {
                return Err(RetryError(format!("{kind} {key}: leadership lost, writes stopped")));
            }
            Err(e) => return Err(RetryError(format!("{kind} {key}: {e}"))),
        };
        let now = Instant::now();
        for b in &report.blocked {
            ts.blocked(b, now);
        }
        for (op, outcome) in plan.ops.iter().zip(&report.outcomes) {
            if matches!(outcome, plan::Outcome::Done) {
                ts.clear_block(op.key());
            }
        }
        Ok((plan, report))
    }

    /// Transformation problems of this pass: a log line each (never a value: the messages name
    /// rules, paths and types only) and the metric.
    fn transform_report(&self, kind: &str, plan: &Plan) {
        let key = &plan.source;
        let mut reasons = Vec::new();
        if let Some(e) = plan.transform.error() {
            log::warn!("{kind} {key}: not mirrored: {e}");
            reasons.push(e.kind.reason());
        }
        for (ns, e) in &plan.rule_failures {
            log::warn!("{kind} {key}: mirror in {ns} not written (strict mode): {e}");
            reasons.push(e.kind.reason());
        }
        let mut logged: Vec<usize> = Vec::new();
        for (ns, e) in &plan.rule_skips {
            reasons.push(e.kind.reason());
            let n = e.rule.as_ref().map_or(0, |(n, _)| *n);
            if !logged.contains(&n) {
                logged.push(n);
                let count = plan.rule_skips.iter().filter(|(_, o)| o.rule == e.rule).count();
                log::warn!("{kind} {key}: transformation {} (first in {ns}; {count} target(s))", e.skip_message());
            }
        }
        if let Some(m) = &self.metrics {
            for reason in reasons {
                m.transform_errors_total.with_label_values(&[kind, reason]).inc();
            }
        }
    }

    fn observe(&self, kind: &str, plan: &Plan, report: &Report) {
        self.transform_report(kind, plan);
        let Some(m) = &self.metrics else { return };
        for reason in &report.error_reasons {
            m.sync_errors_total.with_label_values(&[kind, reason]).inc();
        }
        let conflicts = report.outcomes.iter().filter(|o| matches!(o, plan::Outcome::AlreadyExists)).count();
        if conflicts > 0 {
            m.ownership_conflicts_total.with_label_values(&[kind]).inc_by(conflicts as u64);
        }
        if report.writes > 0 && plan.problems.iter().any(|p| matches!(p, TargetProblem::Truncated { .. })) {
            m.target_truncations_total.with_label_values(&[kind]).inc();
        }
        for reason in plan.problems.iter().filter(|_| report.writes > 0).filter_map(TargetProblem::skip_reason) {
            m.targets_skipped_total.with_label_values(&[kind, reason]).inc();
        }
    }
}
