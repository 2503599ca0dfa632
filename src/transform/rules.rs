//! The rule document: YAML (or JSON) under the `transform` annotation, its limits and validation
//! (BEHAVIOR.md §I.2–§I.3), compiled once per source into a [`RuleSet`].
//!
//! Document: a mapping whose `rules` key holds a list of rules (other root keys are ignored;
//! `rules` absent, `null` or `[]` means no rules; an empty annotation too). A rule has `path` and
//! exactly one of `value`, `template`, `merge`, `delete: true`; optionally `namespacePattern` and
//! `type`. Differences from the Go original, all of them errors it let through silently:
//! an unknown field in a rule (a typo such as `namespacepattern`) is rejected; a template that does
//! not parse is a document error (Go found it per target, at apply time); paths the controller
//! owns are rejected (see [`check_path`]); YAML aliases are refused.

use serde_json::{Map, Value};

use super::path::{self, Path, Seg};
use super::template::{self, Template};
use super::{Error, ErrorKind};
use crate::keys;
use crate::util::yaml::{self, Node};

/// Document limits. The defaults are the Go original's fixed ones; `--transform-max-bytes` and
/// `--transform-max-rules` change them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_bytes: usize,
    pub max_rules: usize,
    pub template: template::Limits,
}

impl Limits {
    pub const DEFAULT_MAX_BYTES: usize = 10_240;
    pub const DEFAULT_MAX_RULES: usize = 50;
    /// Rule documents are shallow (root → rules → rule → merge map → values); anything deeper
    /// than this is rejected while parsing, before any recursion.
    pub const MAX_YAML_DEPTH: usize = 32;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: Limits::DEFAULT_MAX_BYTES,
            max_rules: Limits::DEFAULT_MAX_RULES,
            template: template::Limits::default(),
        }
    }
}

/// How a `value`/`template` result is written (W-19). Without `type`, the Go behaviour — always a
/// string — is kept except where the field already holds a number or a boolean and the text
/// parses as one: then it stays typed (Go wrote a string there, which the API server rejects).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    String,
    Int,
    Number,
    Bool,
    /// The text parsed as JSON (any value: object, list, number, …).
    Json,
}

impl ValueType {
    fn parse(s: &str) -> Option<ValueType> {
        Some(match s {
            "string" => ValueType::String,
            "int" | "integer" => ValueType::Int,
            "number" | "float" => ValueType::Number,
            "bool" | "boolean" => ValueType::Bool,
            "json" => ValueType::Json,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// The scalar's literal text (`3` → `"3"`, `1.50` → `"1.50"`).
    Value(String),
    Template(Template),
    Merge(Map<String, Value>),
    Delete,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// 1-based position in the document.
    pub n: usize,
    pub path: Path,
    pub action: Action,
    /// Empty = every namespace.
    pub namespace_pattern: String,
    pub value_type: Option<ValueType>,
}

/// A compiled document.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    pub template_limits: template::Limits,
}

impl RuleSet {
    /// Whether applying the rules can give different results for different target namespaces: a
    /// rule limited by `namespacePattern`, or a template that reads `.TargetNamespace`.
    pub fn depends_on_target(&self) -> bool {
        self.rules.iter().any(|r| {
            !r.namespace_pattern.is_empty() || matches!(&r.action, Action::Template(t) if t.reads_target_namespace())
        })
    }
}

fn yaml_err(detail: impl Into<String>) -> Error {
    Error::doc(ErrorKind::Yaml, detail)
}

/// Scalar text, `None` for YAML null; `Err` for a collection.
fn scalar(node: &Node) -> Result<Option<String>, ()> {
    match node {
        Node::Scalar { .. } if node.is_null() => Ok(None),
        Node::Scalar { text, .. } => Ok(Some(text.clone())),
        _ => Err(()),
    }
}

/// Parses and validates a document. An empty (or all-whitespace) text is an empty rule set.
pub fn compile(text: &str, limits: &Limits) -> Result<RuleSet, Error> {
    if text.len() > limits.max_bytes {
        return Err(Error::doc(
            ErrorKind::TooLarge,
            format!("transformation rules exceed maximum size of {} bytes (got {})", limits.max_bytes, text.len()),
        ));
    }
    let empty = RuleSet { rules: Vec::new(), template_limits: limits.template };
    if text.trim().is_empty() {
        return Ok(empty);
    }
    let yaml_limits = yaml::Limits { max_depth: Limits::MAX_YAML_DEPTH, max_alias_nodes: 0, allow_aliases: false };
    let docs = yaml::load_nodes(text, yaml_limits).map_err(|e| yaml_err(e.0))?;
    let mut docs = docs.into_iter().filter(|d| !d.is_null());
    let Some(root) = docs.next() else { return Ok(empty) };
    if docs.next().is_some() {
        return Err(yaml_err("expected one YAML document, found several"));
    }
    let Node::Map(_) = root else {
        return Err(yaml_err("the document must be a mapping with a \"rules\" list"));
    };
    let items = match root.get("rules") {
        None => return Ok(empty),
        Some(n) if n.is_null() => return Ok(empty),
        Some(Node::Seq(items)) => items,
        Some(_) => return Err(yaml_err("\"rules\" must be a list")),
    };
    if items.len() > limits.max_rules {
        return Err(Error::doc(
            ErrorKind::TooManyRules,
            format!("too many rules: {} (maximum {})", items.len(), limits.max_rules),
        ));
    }
    let rules = items.iter().enumerate().map(|(i, item)| rule(i + 1, item)).collect::<Result<_, _>>()?;
    Ok(RuleSet { rules, template_limits: limits.template })
}

fn rule(n: usize, node: &Node) -> Result<Rule, Error> {
    let Node::Map(entries) = node else { return Err(yaml_err(format!("rule {n}: must be a mapping"))) };
    let (mut path, mut value, mut template, mut merge, mut delete, mut pattern, mut ty) =
        (None::<String>, None, None::<String>, None, false, String::new(), None);
    let mut seen: Vec<String> = Vec::new();
    for (k, v) in entries {
        let key = k.scalar_text().unwrap_or_default().to_string();
        if seen.contains(&key) {
            return Err(yaml_err(format!("rule {n}: field \"{key}\" given twice")));
        }
        seen.push(key.clone());
        let text = |what: &str| scalar(v).map_err(|()| yaml_err(format!("rule {n}: {key} must be {what}")));
        match key.as_str() {
            "path" => path = text("a string")?,
            "value" => value = text("a scalar (use merge for maps and lists)")?,
            "template" => template = text("a string")?.filter(|t| !t.is_empty()),
            "merge" => {
                merge = match v {
                    _ if v.is_null() => None,
                    Node::Map(_) => match v.to_json().map_err(|e| yaml_err(format!("rule {n}: merge: {e}")))? {
                        Value::Object(m) => Some(m),
                        _ => None,
                    },
                    _ => return Err(yaml_err(format!("rule {n}: merge must be a mapping"))),
                }
            }
            "delete" => {
                delete = match v.to_json() {
                    Ok(Value::Bool(b)) => b,
                    Ok(Value::Null) => false,
                    _ => return Err(yaml_err(format!("rule {n}: delete must be true or false"))),
                }
            }
            "namespacePattern" => pattern = text("a string")?.unwrap_or_default(),
            "type" => {
                let t = text("a string")?.unwrap_or_default();
                ty = Some(ValueType::parse(&t).ok_or_else(|| {
                    Error::rule(
                        ErrorKind::InvalidRule,
                        n,
                        "",
                        format!("unknown type {t:?} (string, int, number, bool or json)"),
                    )
                })?);
            }
            other => {
                return Err(Error::rule(
                    ErrorKind::InvalidRule,
                    n,
                    "",
                    format!(
                        "unknown field {other:?} (a rule has path, value, template, merge, delete, namespacePattern, type)"
                    ),
                ));
            }
        }
    }
    let path_text = path.unwrap_or_default();
    let invalid = |detail: String| Error::rule(ErrorKind::InvalidRule, n, &path_text, detail);
    if path_text.is_empty() {
        return Err(Error::rule(ErrorKind::InvalidRule, n, "", "rule path cannot be empty"));
    }
    let mut actions = Vec::new();
    if value.is_some() {
        actions.push("value");
    }
    if template.is_some() {
        actions.push("template");
    }
    if merge.is_some() {
        actions.push("merge");
    }
    if delete {
        actions.push("delete");
    }
    match actions.len() {
        0 => return Err(invalid("must specify one of: value, template, merge or delete".into())),
        1 => {}
        _ => return Err(invalid(format!("cannot specify multiple actions ({})", actions.join(", ")))),
    }
    if ty.is_some() && value.is_none() && template.is_none() {
        return Err(invalid("type applies only to value and template rules".into()));
    }
    let parsed = path::parse(&path_text).map_err(|e| invalid(e.to_string()))?;
    if parsed.segs.is_empty() {
        return Err(Error::rule(ErrorKind::InvalidRule, n, "", "rule path cannot be empty"));
    }
    check_path(&parsed, merge.as_ref()).map_err(&invalid)?;
    let action = if let Some(v) = value {
        Action::Value(v)
    } else if let Some(t) = template {
        Action::Template(
            Template::parse(&t).map_err(|e| Error::rule(ErrorKind::TemplateParse, n, &path_text, e.to_string()))?,
        )
    } else if let Some(m) = merge {
        Action::Merge(m)
    } else {
        Action::Delete
    };
    Ok(Rule { n, path: parsed, action, namespace_pattern: pattern, value_type: ty })
}

/// Rules may not rename or move a mirror, change its type, or touch what makes it a mirror:
/// `apiVersion`, `kind`, `status` and any `metadata` field other than `labels`/`annotations` are
/// refused, and so are keys under `kubemirror.raczylo.com/` in those two maps. (The builder
/// re-asserts all of this after the rules anyway; refusing here tells the user instead of
/// silently undoing their rule.)
fn check_path(path: &Path, merge: Option<&Map<String, Value>>) -> Result<(), String> {
    let key = |i: usize| match path.segs.get(i) {
        Some(Seg::Key(k)) => Some(k.as_str()),
        _ => None,
    };
    match key(0) {
        Some(f @ ("apiVersion" | "kind")) => {
            return Err(format!("{f} cannot be transformed: a mirror has its source's type"));
        }
        Some("status") => return Err("status is never mirrored".into()),
        Some("metadata") => {}
        _ => return Ok(()),
    }
    match key(1) {
        Some("labels" | "annotations") => {}
        Some(f @ ("name" | "namespace")) => {
            return Err(format!(
                "metadata.{f} cannot be transformed: a mirror keeps its source's name and its target namespace"
            ));
        }
        Some(f) => {
            return Err(format!(
                "metadata.{f} cannot be transformed: only metadata.labels and metadata.annotations can"
            ));
        }
        None => {
            return Err(
                "metadata cannot be transformed as a whole: only metadata.labels and metadata.annotations can".into()
            );
        }
    }
    let ours = |k: &str| k.starts_with(keys::PREFIX);
    if let Some(k) = key(2).filter(|k| ours(k)) {
        return Err(format!("{k} belongs to the controller and cannot be transformed"));
    }
    if path.segs.len() == 2
        && let Some(k) = merge.and_then(|m| m.keys().find(|k| ours(k)))
    {
        return Err(format!("{k} belongs to the controller and cannot be transformed"));
    }
    Ok(())
}
