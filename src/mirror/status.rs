//! What a source is told about its mirrors: the `sync-status` annotation (BEHAVIOR.md §O, done
//! honestly) and Kubernetes Events. Pure formatting; the executor rate-limits Events by
//! [`EventSpec::dedup_key`] and patches the annotation only when its text changes.
//!
//! Annotation format, one line, stable for equal states so an unchanged source causes no write:
//! `synced:<S>,failed:<F>,conflicts:<C>,skipped:<K>[,truncated:<T>][,rules-skipped:<R>][; last-error: <text>]`
//! - synced: targets whose mirror is up to date (or was just written);
//! - failed: targets whose write or build failed (retried with backoff);
//! - conflicts: targets holding an object of the same name that is not this source's mirror;
//! - skipped: named or matched namespaces that cannot receive a mirror (missing, terminating,
//!   excluded, no consent — including the consent every kind that runs pods needs) — not failures;
//! - truncated: namespaces left out by `--max-targets`;
//! - rules-skipped: (target, rule) pairs where a transformation rule failed and was skipped
//!   (non-strict mode; the mirror was written without that rule's effect);
//! - last-error: the first failure, conflict or targeting problem — or, when there is none, the
//!   first skipped rule — capped at [`MAX_ERROR_LEN`] bytes. Transformation messages name rules,
//!   paths and types, never a value, so the text is stable from pass to pass.
//!
//! The Go original wrote `reconciled:<R>,errors:<E>` and counted conflicts as reconciled; the
//! names differ on purpose so nobody reads the new counts with the old meaning.

use std::fmt;

use serde_json::{Value, json};

use crate::keys;
use crate::mirror::targets::TargetProblem;
use crate::model::{ObjectKey, SourceObject, Str};
use crate::transform;

pub const MAX_ERROR_LEN: usize = 256;

/// How one target namespace ended up after a pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetResult {
    Synced(Str),
    Failed {
        namespace: Str,
        error: String,
    },
    /// `owner`: the source the occupying mirror belongs to, when known.
    Conflict {
        namespace: Str,
        owner: Option<String>,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncStatus {
    pub synced: usize,
    pub failed: usize,
    pub conflicts: usize,
    pub skipped: usize,
    pub truncated: usize,
    pub rule_skips: usize,
    pub last_error: Option<String>,
}

impl SyncStatus {
    /// `source_error`: a failure of the whole source (refused Secret type), reported first.
    pub fn summarize(results: &[TargetResult], problems: &[TargetProblem], source_error: Option<String>) -> Self {
        let mut s = SyncStatus { last_error: source_error, ..SyncStatus::default() };
        let mut first_problem = None;
        for r in results {
            let msg = match r {
                TargetResult::Synced(_) => {
                    s.synced += 1;
                    None
                }
                TargetResult::Failed { namespace, error } => {
                    s.failed += 1;
                    Some(format!("{namespace}: {error}"))
                }
                TargetResult::Conflict { namespace, owner } => {
                    s.conflicts += 1;
                    Some(conflict_message(namespace, owner.as_deref()))
                }
            };
            if s.last_error.is_none() {
                s.last_error = msg;
            }
        }
        for p in problems {
            match p {
                TargetProblem::Truncated { matched, kept } => s.truncated += matched.saturating_sub(*kept),
                TargetProblem::InvalidEntry { .. } | TargetProblem::InvalidSelector { .. } => {}
                _ => s.skipped += 1,
            }
            if first_problem.is_none() {
                first_problem = Some(p.to_string());
            }
        }
        if s.last_error.is_none() {
            s.last_error = first_problem;
        }
        s
    }

    /// Adds the transformation rules skipped in this pass.
    pub fn with_rule_skips(mut self, skips: &[(Str, transform::Error)]) -> Self {
        self.rule_skips = skips.len();
        if self.last_error.is_none()
            && let Some((ns, e)) = skips.first()
        {
            self.last_error = Some(format!("{ns}: {}", e.skip_message()));
        }
        self
    }

    /// Merge patch setting the annotation, or `None` when the source already says exactly this.
    pub fn patch_for(&self, source: &SourceObject) -> Option<Value> {
        let text = self.to_string();
        (source.annotation(keys::ANN_SYNC_STATUS) != Some(text.as_str()))
            .then(|| json!({"metadata": {"annotations": {keys::ANN_SYNC_STATUS: text}}}))
    }
}

impl fmt::Display for SyncStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "synced:{},failed:{},conflicts:{},skipped:{}",
            self.synced, self.failed, self.conflicts, self.skipped
        )?;
        if self.truncated > 0 {
            write!(f, ",truncated:{}", self.truncated)?;
        }
        if self.rule_skips > 0 {
            write!(f, ",rules-skipped:{}", self.rule_skips)?;
        }
        if let Some(e) = &self.last_error {
            write!(f, "; last-error: {}", cap(e, MAX_ERROR_LEN))?;
        }
        Ok(())
    }
}

fn conflict_message(namespace: &str, owner: Option<&str>) -> String {
    match owner {
        Some(o) => format!("{namespace}: an object of the same name is the mirror of {o}"),
        None => format!("{namespace}: an object of the same name exists and is not managed by kubemirror"),
    }
}

/// Cuts on a character boundary; annotation values are UTF-8.
fn cap(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A Kubernetes Event to emit on the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSpec {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
    /// Same key = same underlying condition: the executor emits it once per rate-limit window
    /// (or bumps the existing Event's count) instead of flooding the API server.
    pub dedup_key: String,
}

pub const REASON_CONFLICT: &str = "MirrorConflict";
pub const REASON_FAILED: &str = "MirrorFailed";
pub const REASON_INVALID_TARGETS: &str = "InvalidTargets";
pub const REASON_TRUNCATED: &str = "TargetsTruncated";
pub const REASON_REFUSED: &str = "SourceRefused";
pub const REASON_SKIPPED: &str = "TargetSkipped";
pub const REASON_TRANSFORM_INVALID: &str = "TransformInvalid";
pub const REASON_RULE_SKIPPED: &str = "TransformRuleSkipped";

/// Stable across passes: source, reason and subject (target namespace or entry), never the
/// message, whose details (resource versions, server wording) may change from try to try.
pub fn dedup_key(source: &ObjectKey, reason: &str, subject: &str) -> String {
    format!("{source}/{reason}/{subject}")
}

/// Events for one pass: a Warning per failure, conflict, invalid entry, truncation and
/// source-wide error (`source_error`: its reason and text; targets failing with exactly that text
/// are not reported again one by one); a
/// Normal event per literally named namespace that cannot receive a mirror (missing, excluded), and
/// one Normal event listing the terminating / non-consenting ones (with `all` in consent mode those
/// can be most of the cluster: one event, not hundreds).
pub fn events(
    source: &ObjectKey,
    results: &[TargetResult],
    problems: &[TargetProblem],
    source_error: Option<(&'static str, &str)>,
) -> Vec<EventSpec> {
    let ev = |warning, reason, subject: &str, message: String| EventSpec {
        warning,
        reason,
        message: cap(&message, 1024).to_string(),
        dedup_key: dedup_key(source, reason, subject),
    };
    let mut out = Vec::new();
    if let Some((reason, e)) = source_error {
        out.push(ev(true, reason, "", e.to_string()));
    }
    for r in results {
        match r {
            TargetResult::Synced(_) => {}
            TargetResult::Failed { error, .. } if source_error.is_some_and(|(_, e)| e == error) => {}
            TargetResult::Failed { namespace, error } => {
                out.push(ev(true, REASON_FAILED, namespace, format!("mirror in {namespace}: {error}")))
            }
            TargetResult::Conflict { namespace, owner } => {
                out.push(ev(true, REASON_CONFLICT, namespace, conflict_message(namespace, owner.as_deref())))
            }
        }
    }
    let (mut terminating, mut refused, mut runs_code) = (Vec::new(), Vec::new(), Vec::new());
    let mut code_kind = "";
    for p in problems {
        match p {
            TargetProblem::InvalidEntry { entry, .. } => {
                out.push(ev(true, REASON_INVALID_TARGETS, entry, p.to_string()))
            }
            TargetProblem::InvalidSelector { selector, .. } => {
                out.push(ev(true, REASON_INVALID_TARGETS, selector, p.to_string()))
            }
            TargetProblem::Truncated { .. } => out.push(ev(true, REASON_TRUNCATED, "", p.to_string())),
            TargetProblem::Missing(ns) | TargetProblem::Excluded(ns) => {
                out.push(ev(false, REASON_SKIPPED, ns, p.to_string()))
            }
            TargetProblem::Terminating(ns) => terminating.push(&**ns),
            TargetProblem::ConsentRefused(ns) => refused.push(&**ns),
            TargetProblem::RunsCodeWithoutConsent { namespace, kind } => {
                code_kind = kind;
                runs_code.push(&**namespace);
            }
        }
    }
    let mut skipped = Vec::new();
    if !terminating.is_empty() {
        skipped.push(format!("terminating: {}", terminating.join(", ")));
    }
    if !refused.is_empty() {
        skipped.push(format!("not accepting mirrors from this namespace: {}", refused.join(", ")));
    }
    if !runs_code.is_empty() {
        skipped.push(format!(
            "not consenting to {code_kind} mirrors, which run pods (needs allow-mirrors=true or allow-mirrors-from): {}",
            runs_code.join(", ")
        ));
    }
    if !skipped.is_empty() {
        out.push(ev(false, REASON_SKIPPED, "", format!("namespaces skipped ({})", skipped.join("; "))));
    }
    out
}

/// One Warning per skipped rule (not per target): `rule 2 (data.x) skipped in app1, app2: …`.
/// Deduplicated by rule number, so a skip that persists is not re-emitted every pass.
pub fn rule_skip_events(source: &ObjectKey, skips: &[(Str, transform::Error)]) -> Vec<EventSpec> {
    let mut by_rule: Vec<(usize, Vec<&str>, &transform::Error)> = Vec::new();
    for (ns, e) in skips {
        let n = e.rule.as_ref().map_or(0, |(n, _)| *n);
        match by_rule.iter_mut().find(|(r, ..)| *r == n) {
            Some((_, namespaces, _)) => namespaces.push(ns),
            None => by_rule.push((n, vec![ns], e)),
        }
    }
    by_rule
        .into_iter()
        .map(|(n, namespaces, e)| {
            const SHOWN: usize = 10;
            let mut list = namespaces.iter().take(SHOWN).copied().collect::<Vec<_>>().join(", ");
            if namespaces.len() > SHOWN {
                list.push_str(&format!(" and {} more", namespaces.len() - SHOWN));
            }
            let message = format!("{} (in {list})", e.skip_message());
            EventSpec {
                warning: true,
                reason: REASON_RULE_SKIPPED,
                message: cap(&message, 1024).to_string(),
                dedup_key: dedup_key(source, REASON_RULE_SKIPPED, &format!("rule {n}")),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(ns: &str, e: &str) -> TargetResult {
        TargetResult::Failed { namespace: ns.into(), error: e.into() }
    }

    #[test]
    fn status_text_table() {
        let synced = |ns: &str| TargetResult::Synced(ns.into());
        let cases = [
            (
                "all good",
                vec![synced("a"), synced("b"), synced("c")],
                vec![],
                None,
                "synced:3,failed:0,conflicts:0,skipped:0",
            ),
            ("nothing targeted", vec![], vec![], None, "synced:0,failed:0,conflicts:0,skipped:0"),
            (
                "failure first, then conflict",
                vec![
                    synced("a"),
                    failed("b", "forbidden"),
                    TargetResult::Conflict { namespace: "c".into(), owner: Some("other/db".into()) },
                ],
                vec![TargetProblem::Missing("d".into())],
                None,
                "synced:1,failed:1,conflicts:1,skipped:1; last-error: b: forbidden",
            ),
            (
                "foreign conflict",
                vec![TargetResult::Conflict { namespace: "c".into(), owner: None }],
                vec![],
                None,
                "synced:0,failed:0,conflicts:1,skipped:0; last-error: c: an object of the same name exists and is not managed by kubemirror",
            ),
            (
                "problems only, truncation counted",
                vec![synced("a")],
                vec![TargetProblem::Terminating("t".into()), TargetProblem::Truncated { matched: 120, kept: 100 }],
                None,
                "synced:1,failed:0,conflicts:0,skipped:1,truncated:20; last-error: target namespace t is terminating",
            ),
            (
                "invalid entry is an error text, not a skip",
                vec![],
                vec![TargetProblem::InvalidEntry { entry: "A".into(), reason: "bad".into() }],
                None,
                "synced:0,failed:0,conflicts:0,skipped:0; last-error: invalid target entry \"A\": bad",
            ),
            (
                "source refusal wins",
                vec![],
                vec![TargetProblem::Missing("x".into())],
                Some("Secrets of type helm.sh/release.v1 are never mirrored".to_string()),
                "synced:0,failed:0,conflicts:0,skipped:1; last-error: Secrets of type helm.sh/release.v1 are never mirrored",
            ),
        ];
        for (name, results, problems, source_error, want) in cases {
            assert_eq!(SyncStatus::summarize(&results, &problems, source_error).to_string(), want, "{name}");
        }
    }

    #[test]
    fn long_errors_are_capped_on_char_boundary() {
        let s = SyncStatus::summarize(&[failed("a", &"ż".repeat(400))], &[], None).to_string();
        let err = s.split("; last-error: ").nth(1).unwrap();
        assert!(err.len() <= MAX_ERROR_LEN && err.len() >= MAX_ERROR_LEN - 1, "{}", err.len());
    }

    #[test]
    fn patch_only_when_changed() {
        let src = |status: &str| {
            SourceObject::from_object(json!({"metadata": {"name": "db", "namespace": "default", "uid": "u",
                "annotations": {"kubemirror.raczylo.com/sync-status": status}}}))
            .unwrap()
        };
        let st = SyncStatus { synced: 2, ..SyncStatus::default() };
        assert_eq!(st.patch_for(&src("synced:2,failed:0,conflicts:0,skipped:0")), None);
        assert_eq!(
            st.patch_for(&src("reconciled:2,errors:0")),
            Some(
                json!({"metadata": {"annotations": {"kubemirror.raczylo.com/sync-status": "synced:2,failed:0,conflicts:0,skipped:0"}}})
            )
        );
    }

    #[test]
    fn events_and_dedup_keys() {
        let src = ObjectKey::new("default", "db");
        let evs = events(
            &src,
            &[
                TargetResult::Synced("a".into()),
                failed("b", "rv 12 conflict"),
                TargetResult::Conflict { namespace: "c".into(), owner: None },
            ],
            &[
                TargetProblem::Missing("d".into()),
                TargetProblem::Terminating("t1".into()),
                TargetProblem::ConsentRefused("r1".into()),
                TargetProblem::ConsentRefused("r2".into()),
                TargetProblem::RunsCodeWithoutConsent { namespace: "p1".into(), kind: "Deployment".into() },
                TargetProblem::RunsCodeWithoutConsent { namespace: "p2".into(), kind: "Deployment".into() },
                TargetProblem::Truncated { matched: 3, kept: 2 },
            ],
            None,
        );
        let got: Vec<_> = evs.iter().map(|e| (e.warning, e.reason, e.dedup_key.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (true, REASON_FAILED, "default/db/MirrorFailed/b"),
                (true, REASON_CONFLICT, "default/db/MirrorConflict/c"),
                (false, REASON_SKIPPED, "default/db/TargetSkipped/d"),
                (true, REASON_TRUNCATED, "default/db/TargetsTruncated/"),
                (false, REASON_SKIPPED, "default/db/TargetSkipped/"),
            ]
        );
        assert_eq!(
            evs[4].message,
            "namespaces skipped (terminating: t1; not accepting mirrors from this namespace: r1, r2; not consenting \
             to Deployment mirrors, which run pods (needs allow-mirrors=true or allow-mirrors-from): p1, p2)"
        );
        // The message may vary between attempts; the key must not.
        let again = events(&src, &[failed("b", "rv 13 conflict")], &[], None);
        assert_eq!(again[0].dedup_key, evs[0].dedup_key);
        assert_ne!(again[0].message, evs[0].message);
    }
}
