//! Kubernetes label selectors (`env=prod,team in (a,b),!legacy`) and field selectors
//! (`metadata.name=x,metadata.namespace!=y`): parsing with clear errors, and matching.
//! Used by the in-memory API server to filter lists and watches, and by the mirror logic for the
//! `target-namespace-selector` annotation.
//!
//! Grammar and validation follow apimachinery's `labels.Parse` (k8s.io/apimachinery/pkg/labels/selector.go):
//! `key`, `!key`, `key=v`, `key==v`, `key!=v`, `key in (v1,v2)`, `key notin (v1,v2)`, `key>n`, `key<n`.

use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Exists,
    NotExists,
    Equals(String),
    NotEquals(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    GreaterThan(i64),
    LessThan(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub op: Op,
}

/// A conjunction of requirements; the empty selector matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    pub requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectorError {
    pub selector: String,
    pub message: String,
}

impl fmt::Display for SelectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unable to parse requirement: {} (in selector {:?})", self.message, self.selector)
    }
}

impl std::error::Error for SelectorError {}

/// Label keys: optional DNS-1123 subdomain prefix (≤ 253) and `/`, then a name of ≤ 63 characters
/// of `[A-Za-z0-9._-]` starting and ending alphanumeric.
pub fn validate_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if p.is_empty() || p.len() > 253 {
            return Err(format!("prefix part of {key:?} must be a non-empty DNS subdomain of at most 253 characters"));
        }
        let ok = p.split('.').all(|part| {
            !part.is_empty()
                && part.len() <= 63
                && part.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        });
        if !ok {
            return Err(format!("prefix part of {key:?} must be a lowercase DNS subdomain"));
        }
    }
    if name.is_empty() || name.len() > 63 {
        return Err(format!("name part of {key:?} must be 1 to 63 characters"));
    }
    validate_label_chars(name).map_err(|m| format!("name part of {key:?} {m}"))
}

/// Label values: empty, or ≤ 63 characters of `[A-Za-z0-9._-]` starting and ending alphanumeric.
pub fn validate_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > 63 {
        return Err(format!("value {value:?} must be no more than 63 characters"));
    }
    validate_label_chars(value).map_err(|m| format!("value {value:?} {m}"))
}

fn validate_label_chars(s: &str) -> Result<(), &'static str> {
    let b = s.as_bytes();
    let inner_ok = b.iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
    if !inner_ok || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return Err(
            "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
        );
    }
    Ok(())
}

struct Lexer<'a> {
    s: &'a str,
    pos: usize,
}

#[derive(Debug, PartialEq)]
enum Tok<'a> {
    Ident(&'a str),
    Bang,
    Eq,
    DoubleEq,
    NotEq,
    Gt,
    Lt,
    Comma,
    Open,
    Close,
    End,
}

impl<'a> Lexer<'a> {
    fn skip_ws(&mut self) {
        while self.pos < self.s.len() && self.s.as_bytes()[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn next(&mut self) -> Tok<'a> {
        self.skip_ws();
        let b = self.s.as_bytes();
        if self.pos >= b.len() {
            return Tok::End;
        }
        let two = |l: &Self, c: u8| l.pos + 1 < b.len() && b[l.pos + 1] == c;
        let (tok, len) = match b[self.pos] {
            b'!' if two(self, b'=') => (Tok::NotEq, 2),
            b'!' => (Tok::Bang, 1),
            b'=' if two(self, b'=') => (Tok::DoubleEq, 2),
            b'=' => (Tok::Eq, 1),
            b'>' => (Tok::Gt, 1),
            b'<' => (Tok::Lt, 1),
            b',' => (Tok::Comma, 1),
            b'(' => (Tok::Open, 1),
            b')' => (Tok::Close, 1),
            _ => {
                let start = self.pos;
                let mut end = start;
                while end < b.len() && !b[end].is_ascii_whitespace() && !b"!=><,()".contains(&b[end]) {
                    end += 1;
                }
                self.pos = end;
                return Tok::Ident(&self.s[start..end]);
            }
        };
        self.pos += len;
        tok
    }

    fn peek(&mut self) -> Tok<'a> {
        let save = self.pos;
        let t = self.next();
        self.pos = save;
        t
    }
}

impl LabelSelector {
    pub fn everything() -> Self {
        LabelSelector::default()
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn parse(input: &str) -> Result<Self, SelectorError> {
        let err = |message: String| SelectorError { selector: input.to_string(), message };
        let mut lx = Lexer { s: input, pos: 0 };
        let mut requirements = Vec::new();
        if lx.peek() == Tok::End {
            return Ok(LabelSelector { requirements });
        }
        loop {
            let negated = if lx.peek() == Tok::Bang {
                lx.next();
                true
            } else {
                false
            };
            let key = match lx.next() {
                Tok::Ident(k) => k.to_string(),
                t => return Err(err(format!("expected a label key, found {t:?}"))),
            };
            validate_label_key(&key).map_err(err)?;
            let op = if negated {
                Op::NotExists
            } else {
                match lx.peek() {
                    Tok::Comma | Tok::End => Op::Exists,
                    Tok::Eq | Tok::DoubleEq | Tok::NotEq => {
                        let t = lx.next();
                        let value = match lx.peek() {
                            Tok::Ident(v) => {
                                lx.next();
                                v.to_string()
                            }
                            Tok::Comma | Tok::End => String::new(),
                            t => return Err(err(format!("expected a value after the operator, found {t:?}"))),
                        };
                        validate_label_value(&value).map_err(err)?;
                        if t == Tok::NotEq { Op::NotEquals(value) } else { Op::Equals(value) }
                    }
                    Tok::Gt | Tok::Lt => {
                        let t = lx.next();
                        let n = match lx.next() {
                            Tok::Ident(v) => v.parse::<i64>().map_err(|_| err(format!("{v:?} is not an integer")))?,
                            t => return Err(err(format!("expected an integer, found {t:?}"))),
                        };
                        if t == Tok::Gt { Op::GreaterThan(n) } else { Op::LessThan(n) }
                    }
                    Tok::Ident(word @ ("in" | "notin")) => {
                        lx.next();
                        if lx.next() != Tok::Open {
                            return Err(err(format!("expected '(' after {word}")));
                        }
                        let mut values = Vec::new();
                        loop {
                            match lx.next() {
                                Tok::Ident(v) => {
                                    validate_label_value(v).map_err(err)?;
                                    values.push(v.to_string());
                                    match lx.next() {
                                        Tok::Comma => continue,
                                        Tok::Close => break,
                                        t => return Err(err(format!("expected ',' or ')', found {t:?}"))),
                                    }
                                }
                                Tok::Close if values.is_empty() => {
                                    return Err(err(format!("{word} requires at least one value")));
                                }
                                t => return Err(err(format!("expected a value, found {t:?}"))),
                            }
                        }
                        if word == "in" { Op::In(values) } else { Op::NotIn(values) }
                    }
                    t => return Err(err(format!("expected an operator after {key:?}, found {t:?}"))),
                }
            };
            requirements.push(Requirement { key, op });
            match lx.next() {
                Tok::End => break,
                Tok::Comma => continue,
                t => return Err(err(format!("expected ',' between requirements, found {t:?}"))),
            }
        }
        Ok(LabelSelector { requirements })
    }

    /// `labels` looks a key up; works over any map representation.
    pub fn matches_with<'v>(&self, labels: impl Fn(&str) -> Option<&'v str>) -> bool {
        self.requirements.iter().all(|r| {
            let v = labels(&r.key);
            match &r.op {
                Op::Exists => v.is_some(),
                Op::NotExists => v.is_none(),
                Op::Equals(x) => v == Some(x.as_str()),
                Op::NotEquals(x) => v != Some(x.as_str()),
                Op::In(xs) => v.is_some_and(|v| xs.iter().any(|x| x == v)),
                Op::NotIn(xs) => v.is_none_or(|v| !xs.iter().any(|x| x == v)),
                Op::GreaterThan(n) => v.and_then(|v| v.parse::<i64>().ok()).is_some_and(|v| v > *n),
                Op::LessThan(n) => v.and_then(|v| v.parse::<i64>().ok()).is_some_and(|v| v < *n),
            }
        })
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_with(|k| labels.get(k).map(String::as_str))
    }

    /// Matches a JSON object's `metadata.labels`.
    pub fn matches_object(&self, obj: &serde_json::Value) -> bool {
        let labels = obj.pointer("/metadata/labels").and_then(|l| l.as_object());
        self.matches_with(|k| labels.and_then(|l| l.get(k)).and_then(|v| v.as_str()))
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let k = &r.key;
            match &r.op {
                Op::Exists => write!(f, "{k}")?,
                Op::NotExists => write!(f, "!{k}")?,
                Op::Equals(v) => write!(f, "{k}={v}")?,
                Op::NotEquals(v) => write!(f, "{k}!={v}")?,
                Op::In(vs) => write!(f, "{k} in ({})", vs.join(","))?,
                Op::NotIn(vs) => write!(f, "{k} notin ({})", vs.join(","))?,
                Op::GreaterThan(n) => write!(f, "{k}>{n}")?,
                Op::LessThan(n) => write!(f, "{k}<{n}")?,
            }
        }
        Ok(())
    }
}

/// A field selector: `=`, `==` and `!=` requirements on dotted field paths.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    pub requirements: Vec<(String, bool, String)>,
}

impl FieldSelector {
    pub fn parse(input: &str) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for part in input.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, negated, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, false, v)
            } else {
                return Err(SelectorError {
                    selector: input.to_string(),
                    message: format!(
                        "invalid field selector requirement {part:?}: expected field=value or field!=value"
                    ),
                });
            };
            requirements.push((field.trim().to_string(), negated, value.trim().to_string()));
        }
        Ok(FieldSelector { requirements })
    }

    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.requirements.iter().map(|(f, _, _)| f.as_str())
    }

    /// `field` resolves a dotted path (e.g. `metadata.name`) to its string value.
    pub fn matches_with(&self, field: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements.iter().all(|(f, negated, v)| {
            let actual = field(f).unwrap_or_default();
            (actual == *v) != *negated
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn parses_every_operator() {
        let s = LabelSelector::parse("a, !b, c=1, d==2, e!=3, f in (x, y), g notin (z), h>4, i<5").unwrap();
        let ops: Vec<&Op> = s.requirements.iter().map(|r| &r.op).collect();
        assert_eq!(
            ops,
            vec![
                &Op::Exists,
                &Op::NotExists,
                &Op::Equals("1".into()),
                &Op::Equals("2".into()),
                &Op::NotEquals("3".into()),
                &Op::In(vec!["x".into(), "y".into()]),
                &Op::NotIn(vec!["z".into()]),
                &Op::GreaterThan(4),
                &Op::LessThan(5),
            ]
        );
        assert_eq!(s.to_string(), "a,!b,c=1,d=2,e!=3,f in (x,y),g notin (z),h>4,i<5");
        assert_eq!(LabelSelector::parse(&s.to_string()).unwrap(), s);
    }

    #[test]
    fn matching_table() {
        let l = labels(&[("env", "prod"), ("team", "a"), ("kubemirror.raczylo.com/enabled", "true"), ("n", "7")]);
        let cases = [
            ("", true),
            ("env=prod", true),
            ("env==prod", true),
            ("env=dev", false),
            ("env!=dev", true),
            ("missing!=x", true),
            ("team in (a,b)", true),
            ("team in (b)", false),
            ("team notin (b)", true),
            ("missing notin (b)", true),
            ("missing in (b)", false),
            ("env", true),
            ("!env", false),
            ("!missing", true),
            ("kubemirror.raczylo.com/enabled=true", true),
            ("env=prod,team in (a,b)", true),
            ("env=prod,team=c", false),
            ("n>6", true),
            ("n<7", false),
            ("env>1", false),
            ("env=", false),
            ("missing=", false),
        ];
        for (sel, want) in cases {
            assert_eq!(LabelSelector::parse(sel).unwrap().matches(&l), want, "{sel}");
        }
    }

    #[test]
    fn rejects_malformed_with_context() {
        for bad in [
            "env=prod,",
            "team in a",
            "team in ()",
            "team in (a",
            "=x",
            "a b",
            "env=pr od",
            "-bad=1",
            "Bad.Prefix/x=1",
            "k=-v",
            "n>x",
            "team notin (a,,b)",
        ] {
            let e = LabelSelector::parse(bad).unwrap_err();
            assert_eq!(e.selector, bad);
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn matches_json_objects() {
        let obj = serde_json::json!({"metadata": {"labels": {"a": "1"}}});
        assert!(LabelSelector::parse("a=1").unwrap().matches_object(&obj));
        assert!(!LabelSelector::parse("a=2").unwrap().matches_object(&obj));
        assert!(LabelSelector::parse("!b").unwrap().matches_object(&serde_json::json!({})));
    }

    #[test]
    fn field_selectors() {
        let f = FieldSelector::parse("metadata.name=x, metadata.namespace!=kube-system").unwrap();
        let get = |ns: &'static str| {
            move |p: &str| match p {
                "metadata.name" => Some("x".to_string()),
                "metadata.namespace" => Some(ns.to_string()),
                _ => None,
            }
        };
        assert!(f.matches_with(get("default")));
        assert!(!f.matches_with(get("kube-system")));
        assert_eq!(f.fields().collect::<Vec<_>>(), vec!["metadata.name", "metadata.namespace"]);
        assert!(FieldSelector::parse("metadata.name").is_err());
        assert!(FieldSelector::parse("").unwrap().matches_with(|_| None));
    }
}
