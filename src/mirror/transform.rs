//! The transformation rules wired into mirroring: per source and per pass, the `transform`
//! annotation is compiled once ([`Transforms::for_source`]); the result is applied to each
//! target's mirror by the builder ([`crate::mirror::build::build_mirror`]). A source without the
//! annotation (or with an empty one) gets [`SourceTransform::None`] and costs nothing more.
//!
//! What happens on errors (decided for operators, see README "Transformation rules"):
//! - the document does not compile (size, YAML, rule count, an invalid rule or template): every
//!   target of the source fails, strict or not. Nothing is created or updated, mirrors that exist
//!   stay as they are (deleting them would break workloads, updating them would publish what the
//!   broken rules were meant to change — e.g. a password they were meant to delete). Reported once
//!   for the source. The Go original mirrored an untransformed copy in non-strict mode.
//! - a rule fails while being applied to one target: strict (`transform-strict: "true"` or `"1"`)
//!   fails that target only; otherwise the rule is skipped for that target, the others apply, and
//!   the skip is reported (status, Event, metric, log).

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::keys;
use crate::mirror::build::{NoTransform, Transform, TransformContext};
use crate::model::SourceObject;
use crate::transform::{self, Data, RuleSet};

/// Makes the transform of one source; called once per source per pass.
pub trait Transforms {
    fn for_source(&self, source: &SourceObject) -> SourceTransform;
}

/// Ignores the annotation (tests and tools that do not mirror).
impl Transforms for NoTransform {
    fn for_source(&self, _: &SourceObject) -> SourceTransform {
        SourceTransform::None
    }
}

/// The real rules, within the controller's limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleTransforms {
    pub limits: transform::Limits,
}

impl Transforms for RuleTransforms {
    fn for_source(&self, source: &SourceObject) -> SourceTransform {
        let Some(text) = source.annotation(keys::ANN_TRANSFORM).filter(|t| !t.trim().is_empty()) else {
            return SourceTransform::None;
        };
        match transform::compile(text, &self.limits) {
            Ok(rules) if rules.is_empty() => SourceTransform::None,
            Ok(rules) => SourceTransform::Rules(Arc::new(Compiled {
                rules,
                strict: is_strict(source),
                labels: source.labels().to_json(),
                annotations: source.annotations().to_json(),
            })),
            Err(e) => SourceTransform::Invalid(e),
        }
    }
}

/// BEHAVIOR.md §A.2: exactly `"true"` or `"1"`.
pub fn is_strict(source: &SourceObject) -> bool {
    matches!(source.annotation(keys::ANN_TRANSFORM_STRICT), Some("true" | "1"))
}

/// A compiled rule document, the source's strictness, and the source's labels and annotations as
/// templates read them (`.Labels`, `.Annotations`), made once with the rules.
#[derive(Debug, PartialEq)]
pub struct Compiled {
    pub rules: RuleSet,
    pub strict: bool,
    pub labels: Map<String, Value>,
    pub annotations: Map<String, Value>,
}

impl Transform for Compiled {
    fn apply(&self, mirror: &mut Value, ctx: &TransformContext<'_>) -> Result<Vec<transform::Error>, transform::Error> {
        let src = ctx.source;
        let data = Data {
            target_namespace: ctx.target_namespace,
            source_namespace: &src.key.namespace,
            source_name: &src.key.name,
            target_name: &src.key.name,
            labels: Some(&self.labels).filter(|m| !m.is_empty()),
            annotations: Some(&self.annotations).filter(|m| !m.is_empty()),
        };
        self.rules.apply(mirror, &data, self.strict)
    }
}

/// One source's transform for one pass.
#[derive(Clone, Default)]
pub enum SourceTransform {
    #[default]
    None,
    Rules(Arc<Compiled>),
    /// The document did not compile: no target may be built.
    Invalid(transform::Error),
}

impl SourceTransform {
    /// What the builder applies (nothing for `None`; `Invalid` is never built).
    pub fn transform(&self) -> &dyn Transform {
        match self {
            SourceTransform::Rules(c) => &**c,
            SourceTransform::None | SourceTransform::Invalid(_) => &NoTransform,
        }
    }

    /// Whether the rules can make one target's mirror differ from another's (a `namespacePattern`,
    /// or a template reading `.TargetNamespace`). When not, a pass builds and hashes the mirror
    /// once for all its targets.
    pub fn depends_on_target(&self) -> bool {
        match self {
            SourceTransform::Rules(c) => c.rules.depends_on_target(),
            SourceTransform::None | SourceTransform::Invalid(_) => false,
        }
    }

    pub fn error(&self) -> Option<&transform::Error> {
        match self {
            SourceTransform::Invalid(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Debug for SourceTransform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceTransform::None => f.write_str("None"),
            SourceTransform::Rules(c) => write!(f, "Rules({} rules, strict: {})", c.rules.rules.len(), c.strict),
            SourceTransform::Invalid(e) => write!(f, "Invalid({e})"),
        }
    }
}

impl PartialEq for SourceTransform {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (SourceTransform::None, SourceTransform::None) => true,
            (SourceTransform::Rules(a), SourceTransform::Rules(b)) => Arc::ptr_eq(a, b) || a == b,
            (SourceTransform::Invalid(a), SourceTransform::Invalid(b)) => a == b,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::build::{BuildConfig, build_mirror};
    use crate::mirror::drift::Ledger;
    use crate::mirror::plan::{self, PlanContext, SourceState, TargetState};
    use crate::mirror::status::{REASON_FAILED, REASON_RULE_SKIPPED, REASON_TRANSFORM_INVALID};
    use crate::mirror::targets::TargetConfig;
    use crate::mirror::testutil::{now, source_with};
    use crate::model::NamespaceRecord;
    use serde_json::json;

    fn with_rules(rules: &str, strict: Option<&str>) -> SourceObject {
        source_with(Some("app1,app2"), |o| {
            o["metadata"]["labels"]["app"] = json!("db");
            o["metadata"]["annotations"][keys::ANN_TRANSFORM] = json!(rules);
            if let Some(s) = strict {
                o["metadata"]["annotations"][keys::ANN_TRANSFORM_STRICT] = json!(s);
            }
        })
    }

    #[test]
    fn rules_that_can_make_targets_differ_are_known() {
        let depends = |rules: &str| RuleTransforms::default().for_source(&with_rules(rules, None)).depends_on_target();
        assert!(!depends(
            "rules: [{path: data.a, value: x}, {path: data.b, template: '{{ .SourceName }}-{{ .Labels.app }}'}]"
        ));
        assert!(depends("rules: [{path: data.a, template: '{{ .TargetNamespace }}'}]"));
        assert!(depends("rules: [{path: data.a, template: '{{ $.TargetNamespace | upper }}'}]"));
        assert!(depends("rules: [{path: data.a, value: x, namespacePattern: 'app*'}]"));
        assert!(!RuleTransforms::default().for_source(&source_with(Some("app1"), |_| {})).depends_on_target());
    }

    #[test]
    fn one_build_per_pass_gives_what_one_build_per_target_gives() {
        for rules in [
            "rules: [{path: data.env, value: prod}]",
            "rules: [{path: data.env, template: 'x-{{ .TargetNamespace }}'}]",
        ] {
            let src = with_rules(rules, None);
            let p = plan_for(&src);
            let t = RuleTransforms::default().for_source(&src);
            for op in &p.ops {
                let ns = &op.key().namespace;
                let d = build_mirror(&src, ns, &BuildConfig::default(), t.transform(), now()).unwrap();
                assert_eq!(op.hash(), Some(&*d.hash), "{rules} in {ns}");
            }
            let hashes: std::collections::BTreeSet<_> = p.ops.iter().filter_map(|o| o.hash()).collect();
            assert_eq!(hashes.len(), if t.depends_on_target() { 2 } else { 1 }, "{rules}");
        }
    }

    #[test]
    fn no_annotation_costs_nothing_and_strictness_is_exact() {
        let plain = source_with(Some("app1"), |_| {});
        assert_eq!(RuleTransforms::default().for_source(&plain), SourceTransform::None);
        let empty = with_rules("  \n", None);
        assert_eq!(RuleTransforms::default().for_source(&empty), SourceTransform::None);
        for (value, strict) in
            [(Some("true"), true), (Some("1"), true), (Some("True"), false), (Some("yes"), false), (None, false)]
        {
            assert_eq!(is_strict(&with_rules("rules: []", value)), strict, "{value:?}");
        }
    }

    #[test]
    fn hostile_rules_cannot_break_identity_and_the_source_is_untouched() {
        // Everything that passes validation and still aims at what makes a mirror a mirror.
        let src = with_rules(
            r#"rules:
  - {path: metadata.labels, delete: true}
  - {path: metadata.annotations, value: "not a map"}
  - {path: metadata.labels, merge: {managed-by: someone, mirror: "false"}}
  - {path: data, delete: true}
  - {path: data.new, value: x}"#,
            None,
        );
        let before = src.object();
        let rules = RuleTransforms::default().for_source(&src);
        let d = build_mirror(&src, "app1", &BuildConfig::default(), rules.transform(), now()).unwrap();
        assert_eq!(src.object(), before, "the source is never modified");
        assert!(d.skipped.is_empty(), "{:?}", d.skipped);
        let o = &d.object;
        assert_eq!(o.pointer("/metadata/name"), Some(&json!("db")));
        assert_eq!(o.pointer("/metadata/namespace"), Some(&json!("app1")));
        assert_eq!(o.pointer("/metadata/labels/kubemirror.raczylo.com~1managed-by"), Some(&json!("kubemirror")));
        assert_eq!(o.pointer("/metadata/labels/kubemirror.raczylo.com~1mirror"), Some(&json!("true")));
        assert_eq!(o.pointer("/metadata/labels/managed-by"), Some(&json!("someone")));
        assert_eq!(o.pointer("/metadata/annotations/kubemirror.raczylo.com~1source-uid"), Some(&json!("src-uid")));
        assert_eq!(o["data"], json!({"new": "eA=="}));
        // And the paths that would rename, move or disown it do not compile at all.
        for path in ["metadata.name", "metadata.namespace", "metadata.ownerReferences", "kind"] {
            let bad = with_rules(&format!("rules: [{{path: {path}, value: x}}]"), None);
            assert!(RuleTransforms::default().for_source(&bad).error().is_some(), "{path}");
        }
    }

    fn plan_for(src: &SourceObject) -> plan::Plan {
        let (tc, bc) = (TargetConfig::default(), BuildConfig::default());
        let transforms = RuleTransforms::default();
        let ctx = PlanContext { targets: &tc, build: &bc, transform: &transforms, now: now(), verify_unknown: true };
        let ns: Vec<NamespaceRecord> = ["default", "app1", "app2"]
            .iter()
            .map(|n| NamespaceRecord::from_object(&json!({"metadata": {"name": n}})).unwrap())
            .collect();
        plan::plan(&ctx, SourceState::Seen(src), ns.iter(), std::iter::empty(), &Ledger::default())
    }

    #[test]
    fn an_invalid_document_plans_no_write_and_is_reported_once() {
        let p = plan_for(&with_rules("rules: [{path: data.password}]", None));
        assert!(p.ops.is_empty(), "{:?}", p.ops);
        assert!(p.targets.iter().all(|(_, s)| matches!(s, TargetState::Failed(_))));
        let status = p.status(&[]).unwrap().to_string();
        assert_eq!(
            status,
            "synced:0,failed:2,conflicts:0,skipped:0; last-error: invalid transformation rules: rule 1 (data.password): \
             must specify one of: value, template, merge or delete"
        );
        let reasons: Vec<_> = p.events(&[]).iter().map(|e| e.reason).collect();
        assert_eq!(reasons, vec![REASON_TRANSFORM_INVALID]);
    }

    #[test]
    fn skips_and_strict_failures_are_planned_and_reported() {
        let rules = "rules: [{path: data.password.x, value: v}, {path: data.ok, value: y}]";
        let p = plan_for(&with_rules(rules, None));
        assert_eq!(p.ops.len(), 2, "both targets are written without the skipped rule");
        assert_eq!(p.rule_skips.len(), 2);
        let d = p.materialize(
            &PlanContext {
                targets: &TargetConfig::default(),
                build: &BuildConfig::default(),
                transform: &NoTransform,
                now: now(),
                verify_unknown: true,
            },
            &with_rules(rules, None),
            &p.ops[0],
        );
        assert_eq!(d.unwrap().unwrap().object["data"]["ok"], json!("eQ=="), "materialize uses the plan's rules");
        let status = p.status(&[plan::Outcome::Done, plan::Outcome::Done]).unwrap().to_string();
        assert_eq!(
            status,
            "synced:2,failed:0,conflicts:0,skipped:0,rules-skipped:2; last-error: app1: rule 1 (data.password.x) skipped: \
             cannot set key x on non-map"
        );
        let evs = p.events(&[plan::Outcome::Done, plan::Outcome::Done]);
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].reason, REASON_RULE_SKIPPED);
        assert_eq!(evs[0].message, "rule 1 (data.password.x) skipped: cannot set key x on non-map (in app1, app2)");
        let p = plan_for(&with_rules(rules, Some("true")));
        assert!(p.ops.is_empty());
        assert_eq!(p.rule_failures.len(), 2);
        let evs = p.events(&[]);
        assert!(evs.iter().all(|e| e.reason == REASON_FAILED), "{evs:?}");
        assert_eq!(
            evs[0].message,
            "mirror in app1: failed to apply rule 1 (data.password.x): cannot set key x on non-map"
        );
    }
}
