//! Rule paths (BEHAVIOR.md §I.4), plus quoted keys.
//!
//! `spec.template.spec.containers[0].env[1].value` — dots separate keys, `[N]` indexes a list.
//! Empty segments are dropped (`a..b` = `a.b`). A key containing dots, slashes or brackets is
//! written quoted inside brackets: `metadata.labels["app.kubernetes.io/name"]` (or with single
//! quotes; `\"`, `\'` and `\\` escape inside). Everything else follows the Go original byte for
//! byte: `[` outside quotes starts a bracket segment that `]` closes; an unmatched `]` is an
//! ordinary character; an unclosed `[` leaves a plain key (`a[0` → `a`, `[0`); `[]` is the key
//! `[]`. An index is read like Go's `Sscanf("%d")`: optional sign, digits, anything after them
//! ignored (`[1a]` = 1); no digits is an error here, at validation, instead of at apply time.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    /// A list index as written; negative ones fail when applied ("out of bounds").
    Index(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    pub segs: Vec<Seg>,
    /// As written in the rule (used in messages).
    pub text: String,
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Why a path cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// A bracket segment that is neither a number nor a quoted key (`[x]`).
    InvalidIndex(String),
    /// `["…` without its closing quote and bracket.
    UnterminatedQuote,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathError::InvalidIndex(seg) => write!(f, "invalid array index {seg:?}"),
            PathError::UnterminatedQuote => f.write_str("unterminated quoted key in path"),
        }
    }
}

/// Go's `Sscanf("%d")` on the inside of `[...]`.
fn index_of(inner: &str) -> Option<i64> {
    let b = inner.as_bytes();
    let mut i = 0;
    let neg = match b.first() {
        Some(b'-') => {
            i = 1;
            true
        }
        Some(b'+') => {
            i = 1;
            false
        }
        _ => false,
    };
    let start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    if i == start {
        return None;
    }
    let digits = &inner[start..i];
    let v: i64 = digits.parse().unwrap_or(i64::MAX);
    Some(if neg { -v } else { v })
}

/// Parses a path; `Err` only for a bracket segment that is neither a number nor a quoted key.
pub fn parse(text: &str) -> Result<Path, PathError> {
    let b = text.as_bytes();
    let mut raw: Vec<(String, bool)> = Vec::new(); // (segment, quoted key)
    let mut cur: Vec<u8> = Vec::new();
    let mut in_bracket = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'[' && matches!(b.get(i + 1), Some(b'"' | b'\'')) {
            // A quoted key: up to the matching quote, which must be followed by `]`.
            let quote = b[i + 1];
            let mut key = Vec::new();
            let mut j = i + 2;
            let mut closed = false;
            while j < b.len() {
                match b[j] {
                    b'\\' if matches!(b.get(j + 1), Some(&q) if q == quote || q == b'\\') => {
                        key.push(b[j + 1]);
                        j += 2;
                    }
                    q if q == quote => {
                        closed = true;
                        break;
                    }
                    other => {
                        key.push(other);
                        j += 1;
                    }
                }
            }
            if !closed || b.get(j + 1) != Some(&b']') {
                return Err(PathError::UnterminatedQuote);
            }
            if in_bracket || !cur.is_empty() {
                raw.push((String::from_utf8_lossy(&cur).into_owned(), false));
                cur.clear();
            }
            in_bracket = false;
            raw.push((String::from_utf8_lossy(&key).into_owned(), true));
            i = j + 2;
            continue;
        }
        match c {
            b'.' if !in_bracket => {
                if !cur.is_empty() {
                    raw.push((String::from_utf8_lossy(&cur).into_owned(), false));
                    cur.clear();
                }
            }
            b'[' => {
                if !cur.is_empty() {
                    raw.push((String::from_utf8_lossy(&cur).into_owned(), false));
                    cur.clear();
                }
                cur.push(b'[');
                in_bracket = true;
            }
            b']' if in_bracket => {
                cur.push(b']');
                raw.push((String::from_utf8_lossy(&cur).into_owned(), false));
                cur.clear();
                in_bracket = false;
            }
            _ => cur.push(c),
        }
        i += 1;
    }
    if !cur.is_empty() {
        raw.push((String::from_utf8_lossy(&cur).into_owned(), false));
    }
    let mut segs = Vec::with_capacity(raw.len());
    for (s, quoted) in raw {
        if !quoted && s.len() > 2 && s.starts_with('[') && s.ends_with(']') {
            let inner = &s[1..s.len() - 1];
            let n = index_of(inner).ok_or_else(|| PathError::InvalidIndex(s.clone()))?;
            segs.push(Seg::Index(n));
        } else {
            segs.push(Seg::Key(s));
        }
    }
    Ok(Path { segs, text: text.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(p: &str) -> Vec<String> {
        parse(p)
            .unwrap()
            .segs
            .into_iter()
            .map(|s| match s {
                Seg::Key(k) => k,
                Seg::Index(i) => format!("#{i}"),
            })
            .collect()
    }

    #[test]
    fn go_examples() {
        let cases: &[(&str, &[&str])] = &[
            (
                "spec.template.spec.containers[0].env[2].value",
                &["spec", "template", "spec", "containers", "#0", "env", "#2", "value"],
            ),
            ("a[0][1]", &["a", "#0", "#1"]),
            ("a[0]b", &["a", "#0", "b"]),
            ("[0]", &["#0"]),
            ("[]", &["[]"]),
            ("a..b", &["a", "b"]),
            (".a", &["a"]),
            ("a.", &["a"]),
            ("a]b", &["a]b"]),
            ("a[0", &["a", "[0"]),
            ("a[1a]", &["a", "#1"]),
            ("a[-1]", &["a", "#-1"]),
            ("a[+2]", &["a", "#2"]),
            ("data.LOG_LEVEL", &["data", "LOG_LEVEL"]),
        ];
        for (p, want) in cases {
            assert_eq!(segs(p), *want, "{p}");
        }
    }

    #[test]
    fn quoted_keys() {
        let cases: &[(&str, &[&str])] = &[
            (r#"metadata.labels["app.kubernetes.io/name"]"#, &["metadata", "labels", "app.kubernetes.io/name"]),
            ("metadata.annotations['a.b/c']", &["metadata", "annotations", "a.b/c"]),
            (r#"a["x]y"].b"#, &["a", "x]y", "b"]),
            (r#"a["q\"uote"]"#, &["a", "q\"uote"]),
            (r#"a["back\\slash"]"#, &["a", "back\\slash"]),
            (r#"a["0"]"#, &["a", "0"]),
            (r#"["k"]"#, &["k"]),
            (r#"a["k"]["j"][0]"#, &["a", "k", "j", "#0"]),
        ];
        for (p, want) in cases {
            assert_eq!(segs(p), *want, "{p}");
        }
    }

    #[test]
    fn errors() {
        assert_eq!(parse("a[x]").unwrap_err(), PathError::InvalidIndex("[x]".into()));
        assert_eq!(parse("a[-]").unwrap_err().to_string(), "invalid array index \"[-]\"");
        assert_eq!(parse(r#"a["open]"#).unwrap_err(), PathError::UnterminatedQuote);
        assert_eq!(parse(r#"a["k"x]"#).unwrap_err(), PathError::UnterminatedQuote);
    }
}
