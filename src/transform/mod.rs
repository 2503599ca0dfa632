//! The transformation rules language (BEHAVIOR.md §I, with its "do better" items): a rule
//! document is compiled once per source ([`compile`]) and applied to each target's mirror
//! ([`RuleSet::apply`]). Pure: no I/O, no clock, no environment.
//!
//! - [`rules`]: the YAML document, its validation and limits;
//! - [`path`]: rule paths with `[N]` indexes and `["quoted.keys"]`;
//! - [`pattern`]: the `namespacePattern` matcher;
//! - [`apply`]: what `value`, `template`, `merge` and `delete` do to the mirror;
//! - [`template`]: the sandboxed Go-template subset.
//!
//! Errors never contain a value taken from the object being transformed: they name rules, paths,
//! keys written in the rule, types, and template syntax.

mod apply;
pub mod path;
pub mod pattern;
pub mod rules;
pub mod template;

use std::fmt;

pub use rules::{Limits, RuleSet, compile};
pub use template::Data;

/// Why a document or a rule failed. [`ErrorKind::reason`] is the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The text is longer than the byte limit.
    TooLarge,
    /// Not YAML, not the document shape, or too deep / aliased.
    Yaml,
    TooManyRules,
    /// A rule that can never work: no or several actions, a forbidden or malformed path, a bad
    /// `type`, an unknown field.
    InvalidRule,
    /// A template that does not parse (or uses something unsupported).
    TemplateParse,
    /// Applying: the path does not fit the object (wrong type on the way, index out of bounds).
    Path,
    /// Applying: the template failed on this target's data.
    Template,
    /// Applying: the template exceeded its step budget or output cap.
    Limit,
    /// Applying: a typed value (`type:` or the existing field's type) does not parse.
    Type,
}

impl ErrorKind {
    pub fn reason(self) -> &'static str {
        match self {
            ErrorKind::TooLarge => "too_large",
            ErrorKind::Yaml => "parse",
            ErrorKind::TooManyRules => "too_many_rules",
            ErrorKind::InvalidRule => "invalid_rule",
            ErrorKind::TemplateParse => "template_parse",
            ErrorKind::Path => "path",
            ErrorKind::Template => "template",
            ErrorKind::Limit => "limit",
            ErrorKind::Type => "type",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    /// 1-based rule number and its path, when a rule is to blame.
    pub rule: Option<(usize, String)>,
    pub detail: String,
}

impl Error {
    fn doc(kind: ErrorKind, detail: impl Into<String>) -> Error {
        Error { kind, rule: None, detail: detail.into() }
    }

    fn rule(kind: ErrorKind, n: usize, path: &str, detail: impl Into<String>) -> Error {
        Error { kind, rule: Some((n, path.to_string())), detail: detail.into() }
    }

    fn rule_ref(&self) -> String {
        match &self.rule {
            Some((n, p)) if p.is_empty() => format!("rule {n}"),
            Some((n, p)) => format!("rule {n} ({p})"),
            None => String::new(),
        }
    }

    /// How a rule skipped in non-strict mode is reported: `rule 2 (data.x) skipped: …`.
    pub fn skip_message(&self) -> String {
        format!("{} skipped: {}", self.rule_ref(), self.detail)
    }
}

/// The Go original's wording: `failed to parse transformation rules: …`,
/// `invalid transformation rules: …`, `failed to apply rule <k> (<path>): …`.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ErrorKind::TooLarge | ErrorKind::Yaml => write!(f, "failed to parse transformation rules: {}", self.detail),
            ErrorKind::TooManyRules | ErrorKind::InvalidRule | ErrorKind::TemplateParse => match &self.rule {
                Some(_) => write!(f, "invalid transformation rules: {}: {}", self.rule_ref(), self.detail),
                None => write!(f, "invalid transformation rules: {}", self.detail),
            },
            ErrorKind::Path | ErrorKind::Template | ErrorKind::Limit | ErrorKind::Type => {
                let (n, p) = self.rule.clone().unwrap_or_default();
                write!(f, "failed to apply rule {n} ({p}): {}", self.detail)
            }
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests;
