//! YAML documents (kubeconfigs, manifests, transform rules) read with yaml-rust2's event parser and
//! bridged into `serde_json::Value`, so the rest of the code deals with one data model.
//!
//! yaml-rust2 implements YAML 1.2's core schema: `yes`/`no`/`on` stay strings, unlike kubectl's
//! YAML 1.1 reader. Kubernetes manifests quote such values in practice, so the difference is noted,
//! not emulated.
//!
//! # Bounded loading
//! yaml-rust2's own `YamlLoader` expands every alias by cloning the anchored node (ten nested
//! aliases of ten items each — "billion laughs" — build 10^9 nodes) and the resulting tree is
//! converted and dropped recursively (a few hundred thousand `[` overflow the stack). So documents
//! are built here from the parser's events, with an explicit stack and [`Limits`]:
//! - nesting deeper than `max_depth` is rejected when the too-deep collection *starts*, before
//!   anything recursive runs;
//! - an alias counts the whole subtree it stands for against `max_alias_nodes`, so expansion is
//!   refused before it is built; `allow_aliases: false` refuses aliases outright. (Nodes written
//!   out in the text need no budget: the input's size bounds them.)
//!
//! The event parser itself is iterative (its state stack is on the heap), so input size bounds its
//! memory and time.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, ScanError, TScalarStyle};
use yaml_rust2::{Yaml, YamlEmitter};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError(pub String);

impl std::fmt::Display for YamlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for YamlError {}

/// What a document may cost to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Collections nested deeper than this are rejected.
    pub max_depth: usize,
    /// Nodes that aliases may add, over all documents together.
    pub max_alias_nodes: usize,
    pub allow_aliases: bool,
}

impl Limits {
    /// For manifests and kubeconfigs: deep enough for any CRD schema, small enough that recursive
    /// code over the result cannot overflow a stack; aliases allowed but their expansion bounded.
    pub const DEFAULT: Limits = Limits { max_depth: 128, max_alias_nodes: 100_000, allow_aliases: true };
}

/// One YAML node, scalars kept as written (so `1.50` can stay `"1.50"` where a text is wanted).
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Scalar { text: String, plain: bool, tag: Option<String> },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The literal text of a scalar (`None` for collections).
    pub fn scalar_text(&self) -> Option<&str> {
        match self {
            Node::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// Whether this is the YAML null (`null`, `~`, empty plain scalar, `!!null`).
    pub fn is_null(&self) -> bool {
        matches!(self.resolve(), Ok(Value::Null)) && matches!(self, Node::Scalar { .. })
    }

    /// The entry `key` of a mapping node (the last one, as a repeated key overwrites).
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(entries) => {
                entries.iter().rev().find(|(k, _)| k.key_text().as_deref() == Ok(key)).map(|(_, v)| v)
            }
            _ => None,
        }
    }

    fn key_text(&self) -> Result<String, YamlError> {
        match self {
            Node::Scalar { .. } => Ok(match self.resolve()? {
                Value::Null => "null".to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Number(n) if n.is_i64() => n.to_string(),
                _ => self.scalar_text().unwrap_or_default().to_string(),
            }),
            _ => Err(YamlError("mapping keys must be scalars".to_string())),
        }
    }

    /// The scalar's value under YAML 1.2's core schema (what yaml-rust2's loader does).
    fn resolve(&self) -> Result<Value, YamlError> {
        let Node::Scalar { text, plain, tag } = self else { return Err(YamlError("not a scalar".into())) };
        let bad = || YamlError("invalid YAML value".to_string());
        if !plain {
            return Ok(Value::String(text.clone()));
        }
        let yaml = match tag.as_deref() {
            Some("bool") => match text.as_str() {
                "true" | "True" | "TRUE" => Yaml::Boolean(true),
                "false" | "False" | "FALSE" => Yaml::Boolean(false),
                _ => return Err(bad()),
            },
            Some("int") => Yaml::Integer(text.parse().map_err(|_| bad())?),
            Some("float") => Yaml::Real(text.clone()),
            Some("null") if text == "~" || text == "null" => Yaml::Null,
            Some("null") => return Err(bad()),
            Some(_) => Yaml::String(text.clone()),
            None => Yaml::from_str(text),
        };
        Ok(match yaml {
            Yaml::Null => Value::Null,
            Yaml::Boolean(b) => Value::Bool(b),
            Yaml::Integer(i) => Value::Number(i.into()),
            Yaml::Real(ref s) => {
                let f = yaml.as_f64().ok_or_else(|| YamlError(format!("invalid number {s:?}")))?;
                Number::from_f64(f).map(Value::Number).unwrap_or_else(|| Value::String(s.clone()))
            }
            Yaml::String(s) => Value::String(s),
            _ => return Err(bad()),
        })
    }

    /// As JSON. Recursion is bounded by the depth limit the node was loaded with.
    pub fn to_json(&self) -> Result<Value, YamlError> {
        Ok(match self {
            Node::Scalar { .. } => self.resolve()?,
            Node::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect::<Result<_, _>>()?),
            Node::Map(entries) => {
                let mut m = Map::new();
                for (k, v) in entries {
                    m.insert(k.key_text()?, v.to_json()?);
                }
                Value::Object(m)
            }
        })
    }

    /// Nodes in this tree (itself included).
    fn size(&self) -> usize {
        match self {
            Node::Scalar { .. } => 1,
            Node::Seq(items) => 1 + items.iter().map(Node::size).sum::<usize>(),
            Node::Map(entries) => 1 + entries.iter().map(|(k, v)| k.size() + v.size()).sum::<usize>(),
        }
    }
}

fn scan_error(e: &ScanError) -> YamlError {
    let m = e.marker();
    YamlError(format!("line {} column {}: {}", m.line(), m.col() + 1, e.info()))
}

fn at(m: &Marker, msg: impl std::fmt::Display) -> YamlError {
    YamlError(format!("line {} column {}: {msg}", m.line(), m.col() + 1))
}

enum Frame {
    Seq(Vec<Node>, usize),
    /// Entries, the key waiting for its value, anchor.
    Map(Vec<(Node, Node)>, Option<Node>, usize),
}

/// Every document of a (possibly multi-document) YAML text; an empty document is a null scalar.
pub fn load_nodes(text: &str, limits: Limits) -> Result<Vec<Node>, YamlError> {
    let mut parser = Parser::new_from_str(text);
    let mut docs = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    // Anchored nodes with their sizes.
    let mut anchors: HashMap<usize, (Node, usize)> = HashMap::new();
    let mut root: Option<Node> = None;
    let mut alias_nodes = 0usize;
    loop {
        let (event, mark) = parser.next_token().map_err(|e| scan_error(&e))?;
        let done: Option<(Node, usize)> = match event {
            Event::StreamEnd => break,
            Event::StreamStart | Event::Nothing | Event::DocumentStart => None,
            Event::DocumentEnd => {
                docs.push(root.take().unwrap_or(Node::Scalar { text: String::new(), plain: true, tag: None }));
                None
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if stack.len() >= limits.max_depth {
                    return Err(at(&mark, format!("nesting deeper than {} levels", limits.max_depth)));
                }
                stack.push(match event {
                    Event::SequenceStart(..) => Frame::Seq(Vec::new(), anchor),
                    _ => Frame::Map(Vec::new(), None, anchor),
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Seq(items, anchor)) => Some((Node::Seq(items), anchor)),
                Some(Frame::Map(entries, _, anchor)) => Some((Node::Map(entries), anchor)),
                None => return Err(at(&mark, "unbalanced collection end")),
            },
            Event::Scalar(text, style, anchor, tag) => {
                let tag = tag.filter(|t| t.handle == "tag:yaml.org,2002:").map(|t| t.suffix);
                Some((Node::Scalar { text, plain: style == TScalarStyle::Plain, tag }, anchor))
            }
            Event::Alias(id) => {
                if !limits.allow_aliases {
                    return Err(at(&mark, "YAML aliases are not accepted here"));
                }
                let (node, size) = anchors.get(&id).ok_or_else(|| at(&mark, "alias to an unknown anchor"))?;
                alias_nodes = alias_nodes.saturating_add(*size);
                if alias_nodes > limits.max_alias_nodes {
                    return Err(at(
                        &mark,
                        format!("document too large: aliases expand to more than {} nodes", limits.max_alias_nodes),
                    ));
                }
                Some((node.clone(), 0))
            }
        };
        let Some((node, anchor)) = done else { continue };
        if anchor > 0 && limits.allow_aliases {
            let size = node.size();
            anchors.insert(anchor, (node.clone(), size));
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq(items, _)) => items.push(node),
            Some(Frame::Map(entries, key, _)) => match key.take() {
                None => *key = Some(node),
                Some(k) => entries.push((k, node)),
            },
        }
    }
    Ok(docs)
}

/// Every non-empty document of a YAML text as JSON values.
pub fn load_all(text: &str) -> Result<Vec<Value>, YamlError> {
    load_nodes(text, Limits::DEFAULT)?.iter().map(Node::to_json).filter(|v| !matches!(v, Ok(Value::Null))).collect()
}

/// Exactly one document (an empty text is `null`).
pub fn load_one(text: &str) -> Result<Value, YamlError> {
    let docs = load_nodes(text, Limits::DEFAULT)?;
    match docs.len() {
        0 => Ok(Value::Null),
        1 => docs[0].to_json(),
        n => Err(YamlError(format!("expected one YAML document, found {n}"))),
    }
}

fn from_json(v: &Value) -> Yaml {
    match v {
        Value::Null => Yaml::Null,
        Value::Bool(b) => Yaml::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Yaml::Integer(i),
            None => Yaml::Real(n.to_string()),
        },
        Value::String(s) => Yaml::String(s.clone()),
        Value::Array(items) => Yaml::Array(items.iter().map(from_json).collect()),
        Value::Object(m) => {
            let mut h = yaml_rust2::yaml::Hash::new();
            for (k, v) in m {
                h.insert(Yaml::String(k.clone()), from_json(v));
            }
            Yaml::Hash(h)
        }
    }
}

/// One YAML document (starting with `---`) for a JSON value: how objects are printed for people.
pub fn dump(v: &Value) -> Result<String, YamlError> {
    let mut out = String::new();
    let mut emitter = YamlEmitter::new(&mut out);
    emitter.multiline_strings(true);
    emitter.dump(&from_json(v)).map_err(|e| YamlError(format!("cannot write YAML: {e}")))?;
    out.push('\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::{Duration, Instant};

    #[test]
    fn bridges_scalars_and_nesting() {
        let v =
            load_one("a: 1\nb: 1.5\nc: true\nd: ~\ne: [x, 2]\nf: {g: h}\nyes_is: yes\nq: '3'\nt: !!str 4\n").unwrap();
        assert_eq!(
            v,
            json!({"a": 1, "b": 1.5, "c": true, "d": null, "e": ["x", 2], "f": {"g": "h"}, "yes_is": "yes", "q": "3", "t": "4"})
        );
    }

    #[test]
    fn multi_document_skips_empty() {
        let docs = load_all("---\na: 1\n---\n---\nb: 2\n").unwrap();
        assert_eq!(docs, vec![json!({"a": 1}), json!({"b": 2})]);
    }

    #[test]
    fn errors_carry_position() {
        let e = load_one("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.0.contains("line"), "{e}");
        assert!(load_one("a: 1\n---\nb: 2").is_err());
    }

    #[test]
    fn literal_scalar_text_is_kept() {
        let docs = load_nodes("v: 1.50", Limits::DEFAULT).unwrap();
        assert_eq!(docs[0].get("v").and_then(Node::scalar_text), Some("1.50"));
        assert!(load_nodes("v: ~", Limits::DEFAULT).unwrap()[0].get("v").unwrap().is_null());
        assert!(!load_nodes("v: '~'", Limits::DEFAULT).unwrap()[0].get("v").unwrap().is_null());
    }

    #[test]
    fn aliases_resolve_within_bounds() {
        let v = load_one("a: &x {k: v}\nb: *x\n").unwrap();
        assert_eq!(v, json!({"a": {"k": "v"}, "b": {"k": "v"}}));
        let no = Limits { allow_aliases: false, ..Limits::DEFAULT };
        let e = load_nodes("a: &x 1\nb: *x\n", no).unwrap_err();
        assert!(e.0.contains("aliases are not accepted"), "{e}");
    }

    fn billion_laughs() -> String {
        let mut s =
            String::from("a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
        for i in 1..10 {
            let p = format!("*a{}", i - 1);
            s.push_str(&format!("a{i}: &a{i} [{}]\n", vec![p; 10].join(",")));
        }
        s
    }

    #[test]
    fn billion_laughs_is_refused_fast() {
        let started = Instant::now();
        let e = load_one(&billion_laughs()).unwrap_err();
        assert!(e.0.contains("document too large"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    }

    #[test]
    fn deep_nesting_is_refused_before_recursion() {
        for text in ["[".repeat(200_000), "{a: ".repeat(100_000), "- ".repeat(50_000) + "x"] {
            let started = Instant::now();
            let e = load_one(&text).unwrap_err();
            // Ours, or yaml-rust2's scanner's own flow-level limit (it scans ahead of the events).
            assert!(e.0.contains("nesting deeper than 128 levels") || e.0.contains("recursion limit exceeded"), "{e}");
            assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        }
        let ok = "[".repeat(128) + &"]".repeat(128);
        assert!(load_one(&ok).is_ok());
    }
    #[test]
    fn dump_reads_back_the_same_value() {
        let v = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "true"}},
            "data": {"n": "123", "f": "1.50", "yes": "yes", "empty": "", "multi": "a\nb\n", "colon": "a: b"},
            "list": [1, 2.5, null, false]});
        let text = dump(&v).unwrap();
        assert!(text.starts_with("---"), "{text}");
        assert_eq!(load_one(&text).unwrap(), v, "{text}");
    }

    #[test]
    fn alias_bombs_and_deep_nesting_are_refused_before_building() {
        // Nine levels of nine aliases: 9^9 (387 million) nodes from a few hundred bytes.
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 9].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        assert!(load_one(&text).is_err());
        // A few aliases are fine.
        let v = load_one("base: &b {k: v}\nuse: *b\n").unwrap();
        assert_eq!(v, json!({"base": {"k": "v"}, "use": {"k": "v"}}));
        let deep = format!("{}1{}", "[".repeat(300), "]".repeat(300));
        assert!(load_one(&deep).is_err());
        let deep_block: String = (0..300).map(|i| format!("{}k:\n", " ".repeat(i))).collect();
        assert!(load_one(&deep_block).is_err());
    }
}
