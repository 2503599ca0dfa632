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

use serde_json::Value;

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
            Ok(rules) => SourceTransform::Rules(Arc::new(Compiled { rules, strict: is_strict(source) })),
            Err(e) => SourceTransform::Invalid(e),
        }
    }
}

/// BEHAVIOR.md §A.2: exactly `"true"` or `"1"`.
pub fn is_strict(source: &SourceObject) -> bool {
    matches!(source.annotation(keys::ANN_TRANSFORM_STRICT), Some("true" | "1"))
}

/// A compiled rule document and the source's strictness.
#[derive(Debug, PartialEq)]
pub struct Compiled {
    pub rules: RuleSet,
    pub strict: bool,
}

fn labels<'a>(source: &'a SourceObject, field: &str) -> Option<&'a serde_json::Map<String, Value>> {
    source.object.get("metadata").and_then(|m| m.get(field)).and_then(Value::as_object).filter(|m| !m.is_empty())
}

impl Transform for Compiled {
    fn apply(&self, mirror: &mut Value, ctx: &TransformContext<'_>) -> Result<Vec<transform::Error>, transform::Error> {
        let src = ctx.source;
        let data = Data {
            target_namespace: ctx.target_namespace,
            source_namespace: &src.key.namespace,
            source_name: &src.key.name,
            target_name: &src.key.name,
            labels: labels(src, "labels"),
            annotations: labels(src, "annotations"),
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
