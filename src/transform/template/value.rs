//! The values a template computes with, and how Go's `fmt` prints them.

use std::borrow::Cow;

use serde_json::{Map, Value};

/// What the template's `.` is: Go's `TemplateData`.
#[derive(Debug, Clone, Copy)]
pub struct Data<'a> {
    pub target_namespace: &'a str,
    pub source_namespace: &'a str,
    pub source_name: &'a str,
    pub target_name: &'a str,
    /// The source's labels; `None` when it has none (Go's nil map).
    pub labels: Option<&'a Map<String, Value>>,
    pub annotations: Option<&'a Map<String, Value>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Val<'a> {
    /// Go's invalid `reflect.Value`: a missing map key. Prints as `<no value>`.
    Missing,
    /// The `nil` literal (and `default`'s untyped nil).
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    /// `map[string]string`; `None` is a nil map.
    Map(Option<&'a Map<String, Value>>),
    /// The data itself (`.`).
    Data,
}

impl<'a> Val<'a> {
    pub fn type_name(&self) -> &'static str {
        match self {
            Val::Missing | Val::Nil => "<nil>",
            Val::Bool(_) => "bool",
            Val::Int(_) => "int",
            Val::Float(_) => "float64",
            Val::Str(_) => "string",
            Val::Map(_) => "map[string]string",
            Val::Data => "TemplateData",
        }
    }

    pub fn is_nil(&self) -> bool {
        matches!(self, Val::Missing | Val::Nil | Val::Map(None))
    }

    /// Go's `truth`: the zero value of its type and empty collections are false.
    pub fn truth(&self) -> bool {
        match self {
            Val::Missing | Val::Nil => false,
            Val::Bool(b) => *b,
            Val::Int(i) => *i != 0,
            Val::Float(f) => *f != 0.0,
            Val::Str(s) => !s.is_empty(),
            Val::Map(m) => m.is_some_and(|m| !m.is_empty()),
            Val::Data => true,
        }
    }

    pub fn str(s: &'a str) -> Val<'a> {
        Val::Str(Cow::Borrowed(s))
    }

    pub fn string(s: String) -> Val<'a> {
        Val::Str(Cow::Owned(s))
    }
}

/// A map value as a string (labels and annotations are strings; anything else is shown as JSON).
pub fn map_str(v: &Value) -> Cow<'_, str> {
    match v {
        Value::String(s) => Cow::Borrowed(s),
        other => Cow::Owned(other.to_string()),
    }
}

/// Shortest round-trip decimal digits of a finite, non-negative float and its decimal exponent
/// such that value = 0.d1d2d3… × 10^dp.
fn shortest_digits(f: f64) -> (String, i32) {
    let s = format!("{f:e}");
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits = digits.trim_end_matches('0');
    if digits.is_empty() { ("0".into(), 1) } else { (digits.to_string(), exp + 1) }
}

fn e_form(neg: bool, digits: &str, dp: i32, prec: usize, upper: bool) -> String {
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    let mut d = digits.to_string();
    while d.len() < prec + 1 {
        d.push('0');
    }
    out.push_str(&d[..1]);
    if prec > 0 {
        out.push('.');
        out.push_str(&d[1..prec + 1]);
    }
    let exp = if digits == "0" { 0 } else { dp - 1 };
    out.push(if upper { 'E' } else { 'e' });
    out.push(if exp < 0 { '-' } else { '+' });
    out.push_str(&format!("{:02}", exp.abs()));
    out
}

/// `%e` with a precision (Go: at least two exponent digits, explicit sign).
pub fn fmt_e(f: f64, prec: usize, upper: bool) -> String {
    if !f.is_finite() {
        return special(f);
    }
    let s = format!("{:.*e}", prec, f.abs());
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if f.is_sign_negative() && f != 0.0 { "-" } else { "" };
    let e = if upper { 'E' } else { 'e' };
    format!("{sign}{mant}{e}{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
}

pub fn fmt_f(f: f64, prec: usize) -> String {
    if !f.is_finite() {
        return special(f);
    }
    format!("{f:.prec$}")
}

fn special(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f > 0.0 {
        "+Inf".into()
    } else {
        "-Inf".into()
    }
}

/// `%g` / `%v`: shortest digits (or `prec` significant ones), exponent form when the exponent is
/// below -4 or at least the precision (6 when shortest) — Go's strconv rule.
pub fn fmt_g(f: f64, prec: Option<usize>, upper: bool) -> String {
    if !f.is_finite() {
        return special(f);
    }
    let neg = f.is_sign_negative() && f != 0.0;
    let (digits, dp, eprec) = match prec {
        None => {
            let (d, dp) = shortest_digits(f.abs());
            (d, dp, 6)
        }
        Some(p) => {
            let p = p.max(1);
            let s = format!("{:.*e}", p - 1, f.abs());
            let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
            let d: String = mant.chars().filter(char::is_ascii_digit).collect();
            let d = d.trim_end_matches('0');
            let d = if d.is_empty() { "0".to_string() } else { d.to_string() };
            let dp = exp.parse::<i32>().unwrap_or(0) + 1;
            let nd = d.len() as i32;
            let mut eprec = p as i32;
            if eprec > nd && nd >= dp {
                eprec = nd;
            }
            (d, dp, eprec)
        }
    };
    let exp = if digits == "0" { 0 } else { dp - 1 };
    let nd = digits.len();
    if exp < -4 || exp >= eprec {
        return e_form(neg, &digits, dp, nd - 1, upper);
    }
    // Fixed notation with exactly the significant digits.
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if digits == "0" {
        out.push('0');
    } else if dp <= 0 {
        out.push_str("0.");
        out.push_str(&"0".repeat((-dp) as usize));
        out.push_str(&digits);
    } else if dp as usize >= nd {
        out.push_str(&digits);
        out.push_str(&"0".repeat(dp as usize - nd));
    } else {
        out.push_str(&digits[..dp as usize]);
        out.push('.');
        out.push_str(&digits[dp as usize..]);
    }
    out
}

/// Go's `%v` for a value inside `fmt` (a missing value is an untyped nil there).
pub fn fmt_v(v: &Val<'_>) -> String {
    match v {
        Val::Missing | Val::Nil => "<nil>".into(),
        Val::Bool(b) => b.to_string(),
        Val::Int(i) => i.to_string(),
        Val::Float(f) => fmt_g(*f, None, false),
        Val::Str(s) => s.to_string(),
        Val::Map(m) => fmt_map(*m, &mut |s| s.to_string()),
        Val::Data => "{TemplateData}".into(),
    }
}

/// `map[k1:v1 k2:v2]`, keys sorted (serde_json's map is ordered by key, as Go's fmt sorts).
pub fn fmt_map(m: Option<&Map<String, Value>>, each: &mut dyn FnMut(&str) -> String) -> String {
    let mut out = String::from("map[");
    for (i, (k, v)) in m.into_iter().flatten().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&each(k));
        out.push(':');
        out.push_str(&each(&map_str(v)));
    }
    out.push(']');
    out
}

/// What an action prints (Go's `printValue`).
pub fn display(v: &Val<'_>) -> Cow<'static, str> {
    match v {
        Val::Missing => Cow::Borrowed("<no value>"),
        other => Cow::Owned(fmt_v(other)),
    }
}

/// Go's `strconv.Quote`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32))
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32))
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
