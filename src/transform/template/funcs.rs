//! The functions a transformation template may call: the Go original's custom ones and Go's
//! built-ins that make sense without methods or function values. `call` and anything else is
//! "not defined" at parse time.

use std::borrow::Cow;

use super::printf::{sprint, sprintf, sprintln};
use super::value::{Val, map_str};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Upper,
    Lower,
    Replace,
    TrimPrefix,
    TrimSuffix,
    HasPrefix,
    HasSuffix,
    Default,
    And,
    Or,
    Not,
    Len,
    Index,
    Slice,
    Print,
    Printf,
    Println,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Html,
    Js,
    Urlquery,
}

const ALL: [(&str, Func); 26] = [
    ("upper", Func::Upper),
    ("lower", Func::Lower),
    ("replace", Func::Replace),
    ("trimPrefix", Func::TrimPrefix),
    ("trimSuffix", Func::TrimSuffix),
    ("hasPrefix", Func::HasPrefix),
    ("hasSuffix", Func::HasSuffix),
    ("default", Func::Default),
    ("and", Func::And),
    ("or", Func::Or),
    ("not", Func::Not),
    ("len", Func::Len),
    ("index", Func::Index),
    ("slice", Func::Slice),
    ("print", Func::Print),
    ("printf", Func::Printf),
    ("println", Func::Println),
    ("eq", Func::Eq),
    ("ne", Func::Ne),
    ("lt", Func::Lt),
    ("le", Func::Le),
    ("gt", Func::Gt),
    ("ge", Func::Ge),
    ("html", Func::Html),
    ("js", Func::Js),
    ("urlquery", Func::Urlquery),
];

/// Parameters: fixed count and whether more may follow.
fn params(f: Func) -> (usize, bool) {
    match f {
        Func::Upper | Func::Lower | Func::Not | Func::Len => (1, false),
        Func::TrimPrefix | Func::TrimSuffix | Func::HasPrefix | Func::HasSuffix | Func::Default => (2, false),
        Func::Ne | Func::Lt | Func::Le | Func::Gt | Func::Ge => (2, false),
        Func::Replace => (3, false),
        Func::And | Func::Or | Func::Eq | Func::Index | Func::Slice | Func::Printf => (1, true),
        Func::Print | Func::Println | Func::Html | Func::Js | Func::Urlquery => (0, true),
    }
}

impl Func {
    pub fn lookup(name: &str) -> Result<Func, String> {
        if name == "call" {
            return Err("function \"call\" is not supported in transformation templates".into());
        }
        ALL.iter().find(|(n, _)| *n == name).map(|(_, f)| *f).ok_or_else(|| format!("function \"{name}\" not defined"))
    }

    pub fn name(self) -> &'static str {
        ALL.iter().find(|(_, f)| *f == self).map_or("?", |(n, _)| n)
    }

    pub fn check_arity(self, given: usize) -> Result<(), String> {
        let (fixed, variadic) = params(self);
        if variadic && given < fixed {
            return Err(format!("wrong number of args for {}: want at least {fixed} got {given}", self.name()));
        }
        if !variadic && given != fixed {
            return Err(format!("wrong number of args for {}: want {fixed} got {given}", self.name()));
        }
        Ok(())
    }
}

/// An evaluated argument and how it was written (Go words type errors of literals differently).
pub struct Arg<'a> {
    pub val: Val<'a>,
    /// The literal's text when the argument was a literal (`3`, `true`, `nil`).
    pub literal: Option<String>,
}

/// A `string` parameter (Go's `validateType`/`evalString` messages).
pub fn want_str<'a>(a: &Arg<'a>) -> Result<Cow<'a, str>, String> {
    match (&a.val, &a.literal) {
        (Val::Str(s), _) => Ok(s.clone()),
        (Val::Nil, _) => Err("cannot assign nil to string".into()),
        (Val::Missing, _) => Err("invalid value; expected string".into()),
        (_, Some(lit)) => Err(format!("expected string; found {lit}")),
        (other, None) => Err(format!("wrong type for value; expected string; got {}", other.type_name())),
    }
}

/// Go's `ReplaceAll`, refusing results over `max` bytes before building them.
fn replace_all(s: &str, old: &str, new: &str, max: usize) -> Result<String, String> {
    let count = if old.is_empty() { s.chars().count() + 1 } else { s.matches(old).count() };
    let len = (s.len() as u128) + (count as u128) * (new.len() as u128);
    if len.saturating_sub((count as u128) * (old.len() as u128)) > max as u128 {
        return Err(format!("template output exceeds {max} bytes"));
    }
    if old.is_empty() {
        let mut out = String::with_capacity(len as usize);
        out.push_str(new);
        for c in s.chars() {
            out.push(c);
            out.push_str(new);
        }
        return Ok(out);
    }
    Ok(s.replace(old, new))
}

/// Unicode simple case mapping, one character to one (Go's `strings.ToUpper`/`ToLower`).
fn map_case(s: &str, upper: bool) -> String {
    s.chars()
        .map(|c| {
            let mut it: Box<dyn Iterator<Item = char>> =
                if upper { Box::new(c.to_uppercase()) } else { Box::new(c.to_lowercase()) };
            match (it.next(), it.next()) {
                (Some(m), None) => m,
                _ => c,
            }
        })
        .collect()
}

#[derive(PartialEq, PartialOrd)]
enum Kind {
    Invalid,
    Bool,
    Int,
    Float,
    Str,
}

fn kind(v: &Val<'_>) -> Kind {
    match v {
        Val::Bool(_) => Kind::Bool,
        Val::Int(_) => Kind::Int,
        Val::Float(_) => Kind::Float,
        Val::Str(_) => Kind::Str,
        _ => Kind::Invalid,
    }
}

/// Go's `eq` (1.18+): basic kinds compare by value, different kinds are an error unless one side
/// is nil/missing (then unequal); nil-able values compare by nil-ness.
fn eq1(a: &Val<'_>, b: &Val<'_>) -> Result<bool, String> {
    let (ka, kb) = (kind(a), kind(b));
    if ka != kb {
        let valid = |v: &Val<'_>| !matches!(v, Val::Missing | Val::Nil);
        if valid(a) && valid(b) {
            return Err(format!("incompatible types for comparison: {} and {}", a.type_name(), b.type_name()));
        }
        return Ok(false);
    }
    Ok(match (a, b) {
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Int(x), Val::Int(y)) => x == y,
        (Val::Float(x), Val::Float(y)) => x == y,
        (Val::Str(x), Val::Str(y)) => x == y,
        _ if a.is_nil() || b.is_nil() => {
            let same_kind = std::mem::discriminant(a) == std::mem::discriminant(b)
                || matches!(a, Val::Missing | Val::Nil)
                || matches!(b, Val::Missing | Val::Nil);
            if !same_kind {
                return Err(format!("non-comparable types {} and {}", a.type_name(), b.type_name()));
            }
            a.is_nil() == b.is_nil()
        }
        (Val::Data, Val::Data) => true,
        (Val::Map(_), Val::Map(_)) => return Err("non-comparable type map[string]string".into()),
        _ => return Err(format!("non-comparable types {} and {}", a.type_name(), b.type_name())),
    })
}

fn lt(a: &Val<'_>, b: &Val<'_>) -> Result<bool, String> {
    let (ka, kb) = (kind(a), kind(b));
    if ka == Kind::Invalid || kb == Kind::Invalid || ka == Kind::Bool || kb == Kind::Bool {
        return Err("invalid type for comparison".into());
    }
    if ka != kb {
        return Err("incompatible types for comparison".into());
    }
    Ok(match (a, b) {
        (Val::Int(x), Val::Int(y)) => x < y,
        (Val::Float(x), Val::Float(y)) => x < y,
        (Val::Str(x), Val::Str(y)) => x.as_bytes() < y.as_bytes(),
        _ => false,
    })
}

fn index_int(v: &Val<'_>, len: usize) -> Result<usize, String> {
    match v {
        Val::Int(i) if *i >= 0 && (*i as u64) <= len as u64 => Ok(*i as usize),
        Val::Int(_) => Err("index out of range".into()),
        Val::Missing | Val::Nil => Err("cannot index slice/array with nil".into()),
        other => Err(format!("cannot index slice/array with type {}", other.type_name())),
    }
}

fn index<'a>(item: Val<'a>, keys: &[Arg<'a>]) -> Result<Val<'a>, String> {
    let mut item = item;
    for k in keys {
        item = match item {
            Val::Map(m) => match &k.val {
                Val::Str(key) => match m.and_then(|m| m.get(key.as_ref())) {
                    Some(v) => Val::Str(map_str(v)),
                    None => Val::str(""),
                },
                Val::Missing | Val::Nil => return Err("value is nil; should be of type string".into()),
                other => return Err(format!("value has type {}; should be string", other.type_name())),
            },
            Val::Str(s) => {
                let i = index_int(&k.val, s.len())?;
                let b = *s.as_bytes().get(i).ok_or("index out of range")?;
                Val::Int(i64::from(b))
            }
            Val::Missing | Val::Nil => return Err("index of untyped nil".into()),
            other => return Err(format!("can't index item of type {}", other.type_name())),
        };
    }
    Ok(item)
}

fn slice<'a>(item: Val<'a>, idx: &[Arg<'a>]) -> Result<Val<'a>, String> {
    let s = match item {
        Val::Str(s) => s,
        Val::Missing | Val::Nil => return Err("slice of untyped nil".into()),
        other => return Err(format!("can't slice item of type {}", other.type_name())),
    };
    if idx.len() > 2 {
        return Err("cannot 3-index slice a string".into());
    }
    let len = s.len();
    let from = idx.first().map(|a| index_int(&a.val, len)).transpose()?.unwrap_or(0);
    let to = idx.get(1).map(|a| index_int(&a.val, len)).transpose()?.unwrap_or(len);
    if from > to {
        return Err(format!("invalid slice index: {from} > {to}"));
    }
    Ok(Val::string(String::from_utf8_lossy(&s.as_bytes()[from..to]).into_owned()))
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Go's `evalArgs` for the escapers: one string as is, anything else through `Sprint`.
fn escaper_text(args: &[Arg<'_>]) -> String {
    match args {
        [Arg { val: Val::Str(s), .. }] => s.to_string(),
        _ => sprint(&args.iter().map(|a| any(&a.val)).collect::<Vec<_>>()),
    }
}

/// An `interface{}` parameter: a missing value arrives as an untyped nil.
fn any<'a>(v: &Val<'a>) -> Val<'a> {
    match v {
        Val::Missing => Val::Nil,
        other => other.clone(),
    }
}

/// Calls every function but `and`/`or` (which the evaluator runs lazily). `max` caps any string
/// result.
pub fn call<'a>(f: Func, args: Vec<Arg<'a>>, max: usize) -> Result<Val<'a>, String> {
    let err = |e: String| format!("error calling {}: {e}", f.name());
    let s = |i: usize| want_str(&args[i]);
    let out = match f {
        Func::Upper => Val::string(map_case(&s(0)?, true)),
        Func::Lower => Val::string(map_case(&s(0)?, false)),
        Func::Replace => Val::string(replace_all(&s(0)?, &s(1)?, &s(2)?, max)?),
        Func::TrimPrefix => {
            let (v, p) = (s(0)?, s(1)?);
            Val::string(v.strip_prefix(p.as_ref()).unwrap_or(&v).to_string())
        }
        Func::TrimSuffix => {
            let (v, p) = (s(0)?, s(1)?);
            Val::string(v.strip_suffix(p.as_ref()).unwrap_or(&v).to_string())
        }
        Func::HasPrefix => Val::Bool(s(0)?.starts_with(s(1)?.as_ref())),
        Func::HasSuffix => Val::Bool(s(0)?.ends_with(s(1)?.as_ref())),
        Func::Default => {
            let mut args = args;
            let v = args.pop().map(|a| a.val).unwrap_or(Val::Nil);
            let fallback = args.pop().map(|a| a.val).unwrap_or(Val::Nil);
            match v {
                Val::Missing | Val::Nil => any(&fallback),
                Val::Str(ref x) if x.is_empty() => any(&fallback),
                v => v,
            }
        }
        Func::Not => Val::Bool(!args[0].val.truth()),
        Func::Len => Val::Int(match &args[0].val {
            Val::Str(s) => s.len() as i64,
            Val::Map(m) => m.map_or(0, |m| m.len() as i64),
            Val::Missing | Val::Nil => return Err(err("len of nil value".into())),
            other => return Err(err(format!("len of type {}", other.type_name()))),
        }),
        Func::Index => {
            let mut args = args;
            let item = args.remove(0).val;
            index(item, &args).map_err(err)?
        }
        Func::Slice => {
            let mut args = args;
            let item = args.remove(0).val;
            slice(item, &args).map_err(err)?
        }
        Func::Print => Val::string(sprint(&args.iter().map(|a| any(&a.val)).collect::<Vec<_>>())),
        Func::Println => Val::string(sprintln(&args.iter().map(|a| any(&a.val)).collect::<Vec<_>>())),
        Func::Printf => {
            let format = s(0)?;
            let rest: Vec<Val<'_>> = args[1..].iter().map(|a| any(&a.val)).collect();
            Val::string(sprintf(&format, &rest, max)?)
        }
        Func::Eq => {
            if args.len() < 2 {
                return Err(err("missing argument for comparison".into()));
            }
            let mut truth = false;
            for b in &args[1..] {
                if eq1(&args[0].val, &b.val).map_err(err)? {
                    truth = true;
                    break;
                }
            }
            Val::Bool(truth)
        }
        Func::Ne => Val::Bool(!eq1(&args[0].val, &args[1].val).map_err(err)?),
        Func::Lt => Val::Bool(lt(&args[0].val, &args[1].val).map_err(err)?),
        Func::Le => {
            Val::Bool(lt(&args[0].val, &args[1].val).map_err(err)? || eq1(&args[0].val, &args[1].val).map_err(err)?)
        }
        Func::Gt => {
            Val::Bool(!lt(&args[0].val, &args[1].val).map_err(err)? && !eq1(&args[0].val, &args[1].val).map_err(err)?)
        }
        Func::Ge => Val::Bool(!lt(&args[0].val, &args[1].val).map_err(err)?),
        Func::Html => Val::string(html_escape(&escaper_text(&args))),
        Func::Js => Val::string(js_escape(&escaper_text(&args))),
        Func::Urlquery => Val::string(query_escape(&escaper_text(&args))),
        // Evaluated lazily by the executor; this eager form is only a fallback.
        Func::And => args.iter().find(|a| !a.val.truth()).or(args.last()).map_or(Val::Nil, |a| a.val.clone()),
        Func::Or => args.iter().find(|a| a.val.truth()).or(args.last()).map_or(Val::Nil, |a| a.val.clone()),
    };
    if let Val::Str(s) = &out
        && s.len() > max
    {
        return Err(format!("template output exceeds {max} bytes"));
    }
    Ok(out)
}
