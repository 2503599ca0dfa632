//! The explanation itself, pure: from a source, the cluster's namespaces and the objects of the
//! source's name, what the controller would do and why, computed by the controller's own planner
//! ([`plan::plan`], [`targets::step_for`], [`drift::verify`]) so the answer is the controller's.
//!
//! Targets come first (each with its action), then every other namespace with the first step of the
//! precedence that excludes it, then notes; a source that is not mirrored at all says why before
//! anything else, since that is the most asked question.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::controller::executor::Settings;
use crate::keys;
use crate::mirror::build::{self, LiveFacts};
use crate::mirror::drift::{self, Ledger, VerifyAction};
use crate::mirror::plan::{self, MirrorOp, Outcome, Plan, SourceState, TargetState};
use crate::mirror::targets::{self, Step, TargetProblem, TargetSpec};
use crate::mirror::transform::SourceTransform;
use crate::model::{MirrorRecord, NamespaceRecord, ObjectKey, SourceObject};
use crate::options::Options;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Update,
    Recreate,
    Nothing,
    Delete,
    Skip,
    /// Not a target and nothing of ours there.
    None,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Recreate => "recreate",
            Action::Nothing => "nothing",
            Action::Delete => "delete",
            Action::Skip => "skip",
            Action::None => "-",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub namespace: String,
    pub action: Action,
    pub why: String,
}

/// Everything `explain` prints for one source, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub title: String,
    /// Why nothing is mirrored, when nothing is.
    pub not_mirrored: Vec<String>,
    pub facts: Vec<(&'static str, String)>,
    pub targets: Vec<Row>,
    pub others: Vec<Row>,
    pub notes: Vec<String>,
    pub status: Option<String>,
}

/// What [`explain`] looks at.
pub struct Input<'a> {
    /// `Kind.version[.group]`.
    pub kind: &'a str,
    /// Where the source comes from, for the title (`None`: the cluster).
    pub file: Option<&'a str>,
    pub source: &'a SourceObject,
    /// Whether the source exists in the cluster (a file's may not yet).
    pub live: bool,
    /// `Err(why)` when the controller does not watch this type.
    pub watched: Result<(), String>,
    pub namespaces: &'a [NamespaceRecord],
    /// The objects of this kind with the source's name, in any namespace, whole.
    pub same_named: &'a [Value],
    pub settings: &'a Settings,
    pub options: &'a Options,
}

fn quoted(v: &str) -> String {
    format!("{v:?}")
}

/// Why the controller ignores or refuses the source, if it does.
fn not_mirrored(input: &Input<'_>, plan: &Plan) -> Vec<String> {
    let src = input.source;
    let mut why = Vec::new();
    if let Err(e) = &input.watched {
        why.push(format!("the controller does not watch {}: {e}", input.kind));
    }
    if src.label(keys::LABEL_ENABLED) != Some("true") {
        why.push(format!(
            "the label {}: \"true\" is missing: the controller's watch only sees objects carrying it",
            keys::LABEL_ENABLED
        ));
    }
    if src.annotation(keys::ANN_SYNC) != Some("true") {
        why.push(format!("the annotation {}: \"true\" is missing", keys::ANN_SYNC));
    }
    if src.label(keys::LABEL_MIRROR) == Some("true") {
        why.push(format!("it is a mirror itself (label {}=true); mirrors are never sources", keys::LABEL_MIRROR));
    }
    if src.deleting {
        why.push("it is being deleted: its mirrors are deleted, then the finalizer is released".into());
    }
    if let Some(e) = &plan.refused {
        why.push(format!("refused: {e}"));
    }
    why
}

fn targets_fact(src: &SourceObject) -> String {
    let list = src.annotation(keys::ANN_TARGET_NAMESPACES).map(str::trim).filter(|s| !s.is_empty());
    let sel = src.annotation(keys::ANN_TARGET_NAMESPACE_SELECTOR).map(str::trim).filter(|s| !s.is_empty());
    match (list, sel) {
        (Some(l), Some(s)) => format!("target-namespaces {} or target-namespace-selector {}", quoted(l), quoted(s)),
        (Some(l), None) => format!("target-namespaces {}", quoted(l)),
        (None, Some(s)) => format!("target-namespace-selector {}", quoted(s)),
        (None, None) => "none: neither target-namespaces nor target-namespace-selector is set".into(),
    }
}

/// The text for a namespace stopped at `step` (`None`: it passed steps 1-5, so the limit cut it).
fn step_text(step: Option<&Step>, ns: &NamespaceRecord, spec: &TargetSpec, src: &SourceObject, o: &Options) -> String {
    match step {
        Some(Step::NotSelected) => {
            if spec.uses_all() && ns.label(keys::LABEL_ALLOW_MIRRORS) == Some("false") {
                format!("not selected: opted out of \"all\" (label {}=false)", keys::LABEL_ALLOW_MIRRORS)
            } else if spec.is_empty() {
                "not selected: the source names no target".into()
            } else {
                format!("not selected by {}", targets_fact(src))
            }
        }
        Some(Step::SourceNamespace) => "source namespace: a source is never mirrored into its own namespace".into(),
        Some(Step::AlwaysExcluded) => {
            "excluded: kube-system, kube-public and kube-node-lease never receive mirrors".into()
        }
        Some(Step::ExcludedByFlag(g)) => format!("excluded by flag: matches --excluded-namespaces {}", quoted(g)),
        Some(Step::NotIncluded) => {
            format!("not included: does not match --included-namespaces {}", quoted(&o.included_namespaces))
        }
        Some(Step::Terminating) => "terminating: the namespace is being deleted (skipped, not a failure)".into(),
        Some(Step::NotConsenting) => {
            if ns.label(keys::LABEL_ALLOW_MIRRORS) == Some("false") {
                format!("not consenting: its label {}=false refuses mirrors", keys::LABEL_ALLOW_MIRRORS)
            } else {
                format!(
                    "not consenting (--require-target-consent): no label {}=true, and its annotation {} does not name {}",
                    keys::LABEL_ALLOW_MIRRORS,
                    keys::ANN_ALLOW_MIRRORS_FROM,
                    src.key.namespace
                )
            }
        }
        Some(Step::RunsCodeWithoutConsent(kind)) => format!(
            "not consenting: a {kind} runs code in the namespace, so it needs the label {}=true or its annotation {} naming {} (--consent-required-kinds)",
            keys::LABEL_ALLOW_MIRRORS,
            keys::ANN_ALLOW_MIRRORS_FROM,
            src.key.namespace
        ),
        None => format!(
            "max-targets: over --max-targets={} (the first {} selected namespaces by name are mirrored)",
            o.max_targets, o.max_targets
        ),
    }
}

/// The action and reason for a target, from its planned state and, for ops that depend on the live
/// mirror, the object itself.
fn target_row(input: &Input<'_>, plan: &Plan, ns: &str, state: &TargetState) -> (Action, String) {
    let key = ObjectKey::new(ns, &input.source.key.name);
    let op = plan.ops.iter().find(|op| *op.key() == key);
    let live = input.same_named.iter().find(|o| {
        o.pointer("/metadata/namespace").and_then(Value::as_str) == Some(ns)
            && o.pointer("/metadata/name").and_then(Value::as_str) == Some(&*key.name)
    });
    match (state, op) {
        (TargetState::InSync, _) => (Action::Nothing, "the mirror is up to date".into()),
        (TargetState::AwaitingEvent, _) => {
            (Action::Nothing, "the mirror there is being deleted; it is created again once it is gone".into())
        }
        (TargetState::Conflict { owner: Some(o) }, _) => {
            (Action::Skip, format!("another source's mirror is there (of {o}); it is never overwritten"))
        }
        (TargetState::Conflict { owner: None }, _) => (
            Action::Skip,
            format!(
                "a foreign object of the same name is there (no {}={} label); it is never overwritten",
                keys::LABEL_MANAGED_BY,
                keys::MANAGED_BY_VALUE
            ),
        ),
        (TargetState::Failed(e), _) => (Action::Skip, format!("the mirror cannot be built: {e}")),
        (TargetState::Planned, Some(op @ (MirrorOp::Verify { .. } | MirrorOp::Update { .. }))) => {
            let ctx = input.settings.context();
            let desired = plan::materialize(&ctx, input.source, op).and_then(Result::ok);
            match (desired, live) {
                (Some(d), Some(live)) => live_verdict(input, op, d, live),
                _ => (Action::Update, "the source changed since the mirror was written".into()),
            }
        }
        (TargetState::Planned, Some(MirrorOp::Recreate { reason, .. })) => {
            (Action::Recreate, format!("deleted and created again: {reason}"))
        }
        (TargetState::Planned, _) => (Action::Create, "no mirror there yet".into()),
    }
}

fn live_verdict(input: &Input<'_>, op: &MirrorOp, desired: build::Desired, live: &Value) -> (Action, String) {
    if let MirrorOp::Update { .. } = op {
        return match build::recreate_reason(&desired.object, &LiveFacts::of(live), true) {
            Some(reason) => (Action::Recreate, format!("deleted and created again: {reason}")),
            None => (Action::Update, "the source changed since the mirror was written".into()),
        };
    }
    match drift::verify(live, desired, &input.source.key, &input.source.uid) {
        VerifyAction::InSync(_) => (Action::Nothing, "the mirror is up to date".into()),
        VerifyAction::Update { .. } => (Action::Update, "the mirror was edited (drift); it is put back".into()),
        VerifyAction::Recreate { reason, .. } => (Action::Recreate, format!("deleted and created again: {reason}")),
        VerifyAction::NotOurs => (Action::Skip, "the object there is not this source's mirror".into()),
    }
}

/// The source's transformation rules as the pass compiled them (`None`: no annotation).
fn transform_fact(t: &SourceTransform) -> Option<String> {
    match t {
        SourceTransform::None => None,
        SourceTransform::Rules(c) => {
            let n = c.rules.rules.len();
            let mode = if c.strict { "strict: a failing rule fails its target" } else { "a failing rule is skipped" };
            Some(format!("{n} rule{} ({mode})", if n == 1 { "" } else { "s" }))
        }
        SourceTransform::Invalid(e) => Some(format!("does not compile, so no target is written: {e}")),
    }
}

/// Explains one source.
pub fn explain(input: &Input<'_>) -> Explanation {
    let src = input.source;
    let ctx = input.settings.context();
    let records: Vec<MirrorRecord> =
        input.same_named.iter().filter_map(|o| MirrorRecord::from_object(o).ok()).collect();
    let plan = plan::plan(&ctx, SourceState::Seen(src), input.namespaces, records.iter(), &Ledger::default());
    let spec = TargetSpec::from_source(src);
    let consent = input.settings.targets.consent_rule_for(src);
    let resolved = targets::resolve(&spec, &src.key.namespace, input.namespaces, &input.settings.targets, &consent);
    let not_mirrored = not_mirrored(input, &plan);

    let mut facts = vec![("targets", targets_fact(src))];
    facts.push((
        "type",
        match &input.watched {
            Ok(()) => format!("{} (watched)", input.kind),
            Err(e) => format!("{} (NOT watched: {e})", input.kind),
        },
    ));
    if input.file.is_some() {
        facts.push(("in cluster", if input.live { "yes".into() } else { "not yet".into() }));
    }
    if let Some(text) = transform_fact(&plan.transform) {
        facts.push(("transform", text));
    }
    if plan.add_finalizer.is_some() {
        facts.push(("finalizer", format!("{} is added to the source first", keys::FINALIZER)));
    } else if plan.remove_finalizer.is_some() {
        facts.push(("finalizer", format!("{} is removed once its mirrors are gone", keys::FINALIZER)));
    }

    let mut targets = Vec::new();
    if plan.report && plan.refused.is_none() {
        for (ns, state) in &plan.targets {
            let (action, why) = target_row(input, &plan, ns, state);
            targets.push(Row { namespace: ns.to_string(), action, why });
        }
    } else {
        let why = if plan.refused.is_some() { "refused (see above)" } else { "a target once the source is enabled" };
        for ns in &resolved.namespaces {
            targets.push(Row { namespace: ns.to_string(), action: Action::Skip, why: why.into() });
        }
    }

    let deletes: BTreeMap<&str, String> = plan
        .ops
        .iter()
        .filter_map(|op| match op {
            MirrorOp::Delete { key, reason, .. } => Some((&*key.namespace, reason.to_string())),
            _ => None,
        })
        .collect();
    let is_target = |ns: &str| targets.iter().any(|r| r.namespace == ns);
    let mut namespaces: Vec<&NamespaceRecord> = input.namespaces.iter().filter(|n| !is_target(&n.name)).collect();
    namespaces.sort_by(|a, b| a.name.cmp(&b.name));
    let mut others = Vec::new();
    for ns in namespaces {
        let step = targets::step_for(&spec, &src.key.namespace, ns, &input.settings.targets, &consent);
        let mut why = step_text(step.as_ref(), ns, &spec, src, input.options);
        let action = match deletes.get(&*ns.name) {
            Some(reason) => {
                why.push_str(&format!("; its mirror there is deleted ({reason})"));
                Action::Delete
            }
            None => {
                let ours = records.iter().any(|m| *m.key.namespace == *ns.name && m.is_owned_by(&src.key, &src.uid));
                let held = plan
                    .problems
                    .iter()
                    .any(|p| matches!(p, TargetProblem::InvalidEntry { .. } | TargetProblem::InvalidSelector { .. }));
                if ours && held {
                    why.push_str("; its mirror there is kept while the targeting annotations are invalid");
                }
                Action::None
            }
        };
        others.push(Row { namespace: ns.name.to_string(), action, why });
    }

    let problems = if plan.report { &plan.problems } else { &resolved.problems };
    let notes = problems
        .iter()
        .filter(|p| {
            matches!(
                p,
                TargetProblem::InvalidEntry { .. }
                    | TargetProblem::InvalidSelector { .. }
                    | TargetProblem::Missing(_)
                    | TargetProblem::Truncated { .. }
            )
        })
        .map(|p| match p {
            TargetProblem::Missing(_) => format!("{p} (it is mirrored once it is created)"),
            p => p.to_string(),
        })
        .collect();
    let done = vec![Outcome::Done; plan.ops.len()];
    let status = plan.status(&done).filter(|_| not_mirrored.is_empty()).map(|s| s.to_string());
    Explanation { title: format!("{} {}", input.kind, src.key), not_mirrored, facts, targets, others, notes, status }
}

fn table(out: &mut String, rows: &[Row]) {
    let w = rows.iter().map(|r| r.namespace.len()).max().unwrap_or(0).max("NAMESPACE".len());
    let a = rows.iter().map(|r| r.action.to_string().len()).max().unwrap_or(0).max("ACTION".len());
    out.push_str(&format!("  {:w$}  {:a$}  WHY\n", "NAMESPACE", "ACTION"));
    for r in rows {
        out.push_str(&format!("  {:w$}  {:a$}  {}\n", r.namespace, r.action.to_string(), r.why));
    }
}

impl Explanation {
    /// The text `explain` prints.
    pub fn render(&self, file: Option<&str>) -> String {
        let mut out = self.title.clone();
        if let Some(f) = file {
            out.push_str(&format!("  (from {f})"));
        }
        out.push('\n');
        for why in &self.not_mirrored {
            out.push_str(&format!("  NOT MIRRORED: {why}\n"));
        }
        for (k, v) in &self.facts {
            out.push_str(&format!("  {:12}{v}\n", format!("{k}:")));
        }
        let changes = self.targets.iter().filter(|r| !matches!(r.action, Action::Nothing | Action::Skip)).count();
        out.push_str(&format!(
            "\nTARGETS: {} ({} to write)\n",
            self.targets.len(),
            changes + self.others.iter().filter(|r| r.action == Action::Delete).count()
        ));
        if !self.targets.is_empty() {
            table(&mut out, &self.targets);
        }
        out.push_str(&format!("\nNOT TARGETS: {}\n", self.others.len()));
        if !self.others.is_empty() {
            table(&mut out, &self.others);
        }
        if !self.notes.is_empty() {
            out.push_str("\nNOTES\n");
            for n in &self.notes {
                out.push_str(&format!("  - {n}\n"));
            }
        }
        if let Some(s) = &self.status {
            out.push_str(&format!("\nsync-status after this pass: {s}\n"));
        }
        out
    }
}
