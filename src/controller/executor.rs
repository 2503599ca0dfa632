//! Performs one [`Plan`] through the API, step by step as the executor contract in
//! [`crate::mirror`] says: finalizer first, then one outcome per operation (each mirror built just
//! before it is sent), the finalizer release, the status patch when its text changed, Events. Nothing
//! is retried in place: a Stale or Failed outcome makes the caller requeue the source with backoff.

use std::sync::Mutex;

use serde_json::{Value, json};

use crate::cache::Store;
use crate::client::{self, ApiResource, ObjectExt};
use crate::controller::state::{self, StatusMemo};
use crate::controller::writer::{MirrorApi, WriteError, WriteResult};
use crate::events::{EventType, InvolvedObject};
use crate::mirror::build::{self, BuildConfig, Desired};
use crate::mirror::drift::{self, LastWrite, Ledger, VerifyAction};
use crate::mirror::plan::{MirrorOp, Outcome, Plan, PlanContext};
use crate::mirror::targets::TargetConfig;
use crate::mirror::transform::RuleTransforms;
use crate::model::{MirrorRecord, ObjectKey, SourceObject};

/// Settings fixed for the life of the controller; a [`PlanContext`] is made from them per use
/// (it borrows a transform that is not `Send`, so it never lives across an await).
#[derive(Debug, Clone)]
pub struct Settings {
    pub targets: TargetConfig,
    pub build: BuildConfig,
    /// The transformation rules language, with the `--transform-max-*` limits.
    pub transform: RuleTransforms,
    pub verify_unknown: bool,
    /// `--verify-source-freshness`: GET the source before a pass writes its mirrors.
    pub verify_source_freshness: bool,
}

impl Settings {
    pub fn context(&self) -> PlanContext<'_> {
        PlanContext {
            targets: &self.targets,
            build: &self.build,
            transform: &self.transform,
            now: std::time::SystemTime::now(),
            verify_unknown: self.verify_unknown,
        }
    }
}

/// A server error as the sync-status shows it: stable from one attempt to the next (no resource
/// versions, uids or timings), so a persistent failure does not rewrite the annotation every try,
/// and never a server's message verbatim (it may echo the object: see [`client::redact`]).
pub fn error_text(e: &client::Error) -> String {
    match e {
        client::Error::Api(s) => match s.reason {
            client::Reason::Forbidden | client::Reason::Invalid | client::Reason::BadRequest => {
                let summary = client::redact::summary(s);
                // "403 Forbidden: <what>" reads "Forbidden: <what>" in the status.
                let shown = summary.split_once(' ').map(|(_, rest)| rest).unwrap_or(&summary);
                shown.chars().take(160).collect()
            }
            _ => format!("{} (HTTP {})", client::redact::reason(&s.reason), s.code),
        },
        client::Error::Transport(_) => "API server unreachable".into(),
        client::Error::Timeout(_) => "API request timed out".into(),
        client::Error::Decode(_) => "unreadable API response".into(),
    }
}

/// The metric label for a failed write: one of [`crate::metrics::ERROR_REASONS`], never a text
/// from the server (which would let it create series).
pub fn error_reason(e: &client::Error) -> String {
    use client::Reason;
    let reason = match e {
        client::Error::Api(s) => match &s.reason {
            Reason::Conflict => "Conflict",
            Reason::NotFound => "NotFound",
            Reason::AlreadyExists => "AlreadyExists",
            Reason::Forbidden => "Forbidden",
            Reason::Unauthorized => "Unauthorized",
            Reason::Invalid => "Invalid",
            Reason::TooManyRequests => "TooManyRequests",
            Reason::InternalError | Reason::ServiceUnavailable | Reason::ServerTimeout | Reason::Timeout => {
                "ServerError"
            }
            _ if s.code >= 500 => "ServerError",
            _ => "Other",
        },
        client::Error::Transport(_) | client::Error::Timeout(_) => "Transport",
        client::Error::Decode(_) => "Other",
    };
    reason.to_string()
}

fn outcome_of(e: &client::Error) -> Outcome {
    if e.is_conflict() {
        Outcome::Stale
    } else if e.is_not_found() {
        Outcome::NotFound
    } else {
        Outcome::Failed(error_text(e))
    }
}

fn status_value(s: &client::Status) -> Value {
    json!({"code": s.code, "reason": s.reason.as_str(), "message": s.message, "details": s.details})
}

/// What one execution produced, for the caller's requeue decision, metrics and logs.
#[derive(Debug, Default)]
pub struct Report {
    pub outcomes: Vec<Outcome>,
    /// The finalizer could not be added (nothing else was attempted) or removed.
    pub finalizer_error: Option<String>,
    pub status_error: Option<String>,
    /// Targets found holding a foreign object in this pass.
    pub blocked: Vec<ObjectKey>,
    /// Failed writes by metric reason.
    pub error_reasons: Vec<String>,
    pub writes: usize,
}

impl Report {
    /// Requeue with backoff: something was stale or failed.
    pub fn needs_retry(&self) -> bool {
        self.finalizer_error.is_some()
            || self.status_error.is_some()
            || self.outcomes.iter().any(|o| matches!(o, Outcome::Stale | Outcome::Failed(_)))
    }
}

pub struct Executor<'a, A: MirrorApi> {
    /// Every request goes through here ([`crate::controller::writer::Writer`] in production).
    pub api: &'a A,
    pub resource: &'a ApiResource,
    pub settings: &'a Settings,
    pub ledger: &'a Mutex<Ledger>,
    /// The type's cached mirrors: a write whose echo the watch delivered before the response is
    /// settled as soon as it is recorded ([`state::settle`]).
    pub mirrors: Option<&'a Store<MirrorRecord>>,
    pub statuses: &'a StatusMemo,
}

impl<A: MirrorApi> Executor<'_, A> {
    fn record(&self, key: &ObjectKey, write: LastWrite) {
        let mut ledger = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        ledger.record(key.clone(), write);
        if let Some(mirrors) = self.mirrors {
            state::settle(&mut ledger, mirrors, [key]);
        }
    }

    fn forget(&self, key: &ObjectKey) {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner()).forget(key);
    }

    fn rv(obj: &Value) -> &str {
        obj.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or("")
    }

    /// Runs the plan. `src` is the source the plan was made from (`None` for a Gone plan, which has
    /// only deletes). Only a lost leadership ends it early with an error.
    pub async fn execute(&self, plan: &Plan, src: Option<&SourceObject>) -> Result<Report, WriteError> {
        let mut report = Report::default();
        if let (Some(patch), Some(s)) = (&plan.add_finalizer, src) {
            match self.patch_source(s, patch.clone()).await {
                Ok(()) => report.writes += 1,
                Err(WriteError::NotLeader) => return Err(WriteError::NotLeader),
                Err(WriteError::Api(e)) => {
                    log::warn!("{} {}: adding the finalizer failed: {e}", self.resource.kind, s.key);
                    report.error_reasons.push(error_reason(&e));
                    report.finalizer_error = Some(error_text(&e));
                    return Ok(report);
                }
            }
        }
        // The mirror built for one op, copied for the next when no rule depends on the target.
        let mut template = None;
        for op in &plan.ops {
            let outcome = match self.op(plan, op, src, &mut report, &mut template).await {
                Ok(o) => o,
                Err(WriteError::NotLeader) => return Err(WriteError::NotLeader),
                Err(WriteError::Api(e)) => {
                    report.error_reasons.push(error_reason(&e));
                    outcome_of(&e)
                }
            };
            match &outcome {
                Outcome::Failed(e) => log::warn!("{} {}: mirror write failed: {e}", self.resource.kind, op.key()),
                Outcome::Stale => log::info!("{} {}: changed concurrently, will retry", self.resource.kind, op.key()),
                _ => {}
            }
            report.outcomes.push(outcome);
        }
        if let (Some(patch), Some(s)) = (&plan.remove_finalizer, src)
            && plan.may_release_finalizer(&report.outcomes)
        {
            match self.patch_source(s, patch.clone()).await {
                Ok(()) => {
                    report.writes += 1;
                    log::info!("{} {}: finalizer released", self.resource.kind, s.key);
                }
                Err(WriteError::NotLeader) => return Err(WriteError::NotLeader),
                // Already gone: nothing left to release.
                Err(WriteError::Api(e)) if e.is_not_found() => {}
                Err(WriteError::Api(e)) => {
                    report.error_reasons.push(error_reason(&e));
                    report.finalizer_error = Some(error_text(&e));
                }
            }
        }
        if let (Some(status), Some(s)) = (plan.status(&report.outcomes), src)
            && let Some(patch) = self.statuses.patch_for(&status, s)
        {
            let written = self.api.merge_patch(self.resource, &s.key.namespace, &s.key.name, patch).await;
            match written {
                Ok(obj) => {
                    report.writes += 1;
                    let rv = obj.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or_default();
                    self.statuses.written(s, &status, rv);
                }
                Err(WriteError::NotLeader) => return Err(WriteError::NotLeader),
                Err(WriteError::Api(e)) if e.is_not_found() => {}
                Err(WriteError::Api(e)) => {
                    log::warn!("{} {}: status update failed: {e}", self.resource.kind, s.key);
                    report.status_error = Some(error_text(&e));
                }
            }
        }
        if let Some(s) = src {
            self.emit_events(plan, s, &report.outcomes).await?;
        }
        Ok(report)
    }

    async fn emit_events(&self, plan: &Plan, s: &SourceObject, outcomes: &[Outcome]) -> Result<(), WriteError> {
        let specs = plan.events(outcomes);
        if specs.is_empty() {
            return Ok(());
        }
        let involved = InvolvedObject {
            api_version: self.resource.api_version(),
            kind: self.resource.kind.clone(),
            namespace: s.key.namespace.to_string(),
            name: s.key.name.to_string(),
            uid: s.uid.to_string(),
        };
        for ev in specs {
            let ty = if ev.warning { EventType::Warning } else { EventType::Normal };
            self.api.event(&involved, ty, ev.reason, &ev.message).await?;
        }
        Ok(())
    }

    async fn patch_source(&self, s: &SourceObject, patch: Value) -> WriteResult<()> {
        self.api.merge_patch(self.resource, &s.key.namespace, &s.key.name, patch).await.map(|_| ())
    }

    fn materialize(
        &self,
        plan: &Plan,
        src: Option<&SourceObject>,
        op: &MirrorOp,
        template: &mut Option<Desired>,
    ) -> Result<Desired, Outcome> {
        let Some(s) = src else { return Err(Outcome::Failed("source unknown".into())) };
        match plan.materialize_reusing(&self.settings.context(), s, op, template) {
            Some(Ok(d)) => Ok(d),
            Some(Err(e)) => Err(Outcome::Failed(e.to_string())),
            None => Err(Outcome::Failed("nothing to build".into())),
        }
    }

    async fn op(
        &self,
        plan: &Plan,
        op: &MirrorOp,
        src: Option<&SourceObject>,
        report: &mut Report,
        template: &mut Option<Desired>,
    ) -> WriteResult<Outcome> {
        let key = op.key();
        match op {
            MirrorOp::Delete { uid, reason, .. } => {
                self.api.delete(self.resource, &key.namespace, &key.name, uid).await?;
                report.writes += 1;
                self.forget(key);
                log::info!("{} {key}: mirror deleted ({reason})", self.resource.kind);
                Ok(Outcome::Done)
            }
            MirrorOp::Create { .. } => {
                let desired = match self.materialize(plan, src, op, template) {
                    Ok(d) => d,
                    Err(o) => return Ok(o),
                };
                let body = op.body(&desired).unwrap_or_else(|| desired.object.clone());
                match self.api.create(self.resource, &key.namespace, &body).await {
                    Ok(created) => {
                        report.writes += 1;
                        self.record(key, LastWrite::of_write(&desired, Self::rv(&created), None));
                        log::info!("{} {key}: mirror created", self.resource.kind);
                        Ok(Outcome::Done)
                    }
                    Err(WriteError::Api(e)) if e.is_already_exists() => {
                        self.already_exists(key, desired, src, report).await
                    }
                    Err(e) => Err(e),
                }
            }
            MirrorOp::Update { resource_version, .. } => {
                let desired = match self.materialize(plan, src, op, template) {
                    Ok(d) => d,
                    Err(o) => return Ok(o),
                };
                self.update(key, desired, resource_version, src, report).await
            }
            MirrorOp::Recreate { uid, reason, .. } => {
                let desired = match self.materialize(plan, src, op, template) {
                    Ok(d) => d,
                    Err(o) => return Ok(o),
                };
                log::info!("{} {key}: recreating the mirror ({reason:?})", self.resource.kind);
                self.recreate(key, desired, uid, report).await
            }
            MirrorOp::Verify { .. } => {
                let desired = match self.materialize(plan, src, op, template) {
                    Ok(d) => d,
                    Err(o) => return Ok(o),
                };
                let live = self.api.get(self.resource, &key.namespace, &key.name).await?;
                self.act_on_verify(key, live, desired, src, report, false).await
            }
        }
    }

    /// A Create met an existing object: ours the cache had not shown yet (verify it), or foreign
    /// (block the key; the planner reports the conflict until it is unblocked).
    async fn already_exists(
        &self,
        key: &ObjectKey,
        desired: Desired,
        src: Option<&SourceObject>,
        report: &mut Report,
    ) -> WriteResult<Outcome> {
        let live = match self.api.get(self.resource, &key.namespace, &key.name).await {
            Ok(v) => v,
            // Deleted in between: the next pass creates it.
            Err(e) if e.is_not_found() => return Ok(Outcome::Stale),
            Err(e) => return Err(e.into()),
        };
        self.act_on_verify(key, live, desired, src, report, true).await
    }

    async fn act_on_verify(
        &self,
        key: &ObjectKey,
        live: Value,
        desired: Desired,
        src: Option<&SourceObject>,
        report: &mut Report,
        from_create: bool,
    ) -> WriteResult<Outcome> {
        let Some(s) = src else { return Ok(Outcome::Failed("source unknown".into())) };
        match drift::verify(&live, desired, &s.key, &s.uid) {
            VerifyAction::InSync(lw) => {
                self.record(key, lw);
                Ok(Outcome::Done)
            }
            VerifyAction::Update { desired, resource_version } => {
                log::info!("{} {key}: mirror drifted, putting it back", self.resource.kind);
                self.update(key, desired, &resource_version, src, report).await
            }
            VerifyAction::Recreate { desired, uid, reason } => {
                log::info!("{} {key}: recreating the mirror ({reason:?})", self.resource.kind);
                self.recreate(key, desired, &uid, report).await
            }
            VerifyAction::NotOurs => {
                let owner = live.annotation(crate::keys::ANN_SOURCE_NAME).map(str::to_string);
                log::warn!(
                    "{} {key}: an object of the same name that is not this source's mirror is in the way{}",
                    self.resource.kind,
                    owner.map(|o| format!(" (names source {o})")).unwrap_or_default()
                );
                let managed = live.label(crate::keys::LABEL_MANAGED_BY) == Some(crate::keys::MANAGED_BY_VALUE);
                if from_create && managed {
                    // Another source's mirror: the mirror watch delivers it, and the next pass
                    // reports it by owner without this target being blocked.
                    return Ok(Outcome::Stale);
                }
                if from_create {
                    self.ledger.lock().unwrap_or_else(|p| p.into_inner()).block(key.clone());
                    report.blocked.push(key.clone());
                }
                Ok(Outcome::AlreadyExists)
            }
        }
    }

    async fn update(
        &self,
        key: &ObjectKey,
        desired: Desired,
        resource_version: &str,
        src: Option<&SourceObject>,
        report: &mut Report,
    ) -> WriteResult<Outcome> {
        let mut body = desired.object.clone();
        if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), Value::String(resource_version.to_string()));
        }
        match self.api.update(self.resource, &key.namespace, &key.name, &body).await {
            Ok(updated) => {
                report.writes += 1;
                self.record(key, LastWrite::of_write(&desired, Self::rv(&updated), Some(resource_version)));
                log::info!("{} {key}: mirror updated", self.resource.kind);
                Ok(Outcome::Done)
            }
            Err(WriteError::Api(e)) if e.status().is_some_and(|s| build::is_immutable_rejection(&status_value(s))) => {
                // The live uid is needed for the precondition: read it, then replace the object.
                let live = self.api.get(self.resource, &key.namespace, &key.name).await?;
                let ours = src.is_some_and(|s| {
                    crate::model::MirrorRecord::from_object(&live).is_ok_and(|r| r.is_owned_by(&s.key, &s.uid))
                });
                if !ours {
                    return Ok(Outcome::AlreadyExists);
                }
                let uid = live.uid().unwrap_or("").to_string();
                log::info!("{} {key}: immutable field changed, recreating the mirror", self.resource.kind);
                self.recreate(key, desired, &uid, report).await
            }
            Err(e) => Err(e),
        }
    }

    async fn recreate(
        &self,
        key: &ObjectKey,
        desired: Desired,
        uid: &str,
        report: &mut Report,
    ) -> WriteResult<Outcome> {
        match self.api.delete(self.resource, &key.namespace, &key.name, uid).await {
            Ok(()) => report.writes += 1,
            Err(WriteError::Api(e)) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        self.forget(key);
        let created = self.api.create(self.resource, &key.namespace, &desired.object).await?;
        report.writes += 1;
        self.record(key, LastWrite::of_write(&desired, Self::rv(&created), None));
        Ok(Outcome::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn api(code: u16, reason: client::Reason, message: &str) -> client::Error {
        client::Error::Api(Box::new(client::Status {
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after: None,
        }))
    }

    #[test]
    fn error_texts_are_stable_across_attempts() {
        let a = api(409, client::Reason::Conflict, "the object has been modified; resourceVersion 41");
        let b = api(409, client::Reason::Conflict, "the object has been modified; resourceVersion 57");
        assert_eq!(error_text(&a), error_text(&b));
        assert_eq!(error_text(&a), "Conflict (HTTP 409)");
        let denied = api(
            403,
            client::Reason::Forbidden,
            "secrets is forbidden: User \"x\" cannot create resource \"secrets\" in API group \"\" in the namespace \"a\"",
        );
        assert_eq!(
            error_text(&denied),
            "Forbidden: secrets is forbidden: User \"x\" cannot create resource \"secrets\" in API group \"\" in the namespace \"a\""
        );
        let message = "Secret \"s\" is invalid: data[k]: Invalid value: \"hunter2\"";
        let echo = api(422, client::Reason::Invalid, message);
        assert_eq!(error_text(&echo), format!("Invalid (message of {} bytes withheld)", message.len()));
        let odd = api(500, client::Reason::Other("hunter2".into()), "");
        assert_eq!((error_text(&odd), error_reason(&odd)), ("Other (HTTP 500)".to_string(), "ServerError".to_string()));
        let t1 = client::Error::Transport("connection reset by peer (10.0.0.1:443)".into());
        let t2 = client::Error::Timeout(Duration::from_millis(30_017));
        assert_eq!(error_text(&t1), "API server unreachable");
        assert_eq!(error_text(&t2), "API request timed out");
        assert_eq!(error_reason(&denied), "Forbidden");
        assert_eq!(error_reason(&t2), "Transport");
        assert_eq!(error_reason(&api(503, client::Reason::Other("Weird".into()), "")), "ServerError");
        assert_eq!(error_reason(&api(418, client::Reason::Other("Teapot".into()), "")), "Other");
        for e in [&a, &denied, &t1] {
            assert!(crate::metrics::ERROR_REASONS.contains(&error_reason(e).as_str()));
        }
    }

    #[test]
    fn outcomes_and_retry_decisions() {
        assert_eq!(outcome_of(&api(409, client::Reason::Conflict, "")), Outcome::Stale);
        assert_eq!(outcome_of(&api(404, client::Reason::NotFound, "")), Outcome::NotFound);
        assert!(matches!(outcome_of(&api(500, client::Reason::InternalError, "")), Outcome::Failed(_)));
        let mut r =
            Report { outcomes: vec![Outcome::Done, Outcome::NotFound, Outcome::AlreadyExists], ..Default::default() };
        assert!(!r.needs_retry(), "conflicts wait for their block backoff, not the queue's");
        r.outcomes.push(Outcome::Stale);
        assert!(r.needs_retry());
        let r = Report { status_error: Some("x".into()), ..Default::default() };
        assert!(r.needs_retry());
    }

    #[test]
    fn immutable_rejections_are_recognised_from_a_client_status() {
        let s = client::Status {
            code: 422,
            reason: client::Reason::Invalid,
            message: "ConfigMap \"cfg\" is invalid: data: Forbidden: field is immutable when `immutable` is set".into(),
            details: None,
            retry_after: None,
        };
        assert!(build::is_immutable_rejection(&status_value(&s)));
    }
}
