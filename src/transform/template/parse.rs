//! Tokens to a syntax tree, with every check that can be made before data is seen: functions
//! exist and get the right number of arguments, fields of the template data exist, variables are
//! declared, nesting stays within [`MAX_DEPTH`]. Unsupported syntax is named in the error.

use super::Error;
use super::funcs::Func;
use super::lex::{Tok, Token};

/// Parentheses and `if` blocks nested deeper than this are rejected (the parser and the evaluator
/// recurse once per level).
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Text(String),
    Action(Pipe),
    /// `if`, then `else if` branches, then the optional `else`.
    If {
        branches: Vec<(Pipe, Vec<Node>)>,
        otherwise: Option<Vec<Node>>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pipe {
    /// `$x := …` (declare, a new slot) or `$x = …` (assign an existing slot).
    pub decl: Option<(usize, bool)>,
    pub cmds: Vec<Cmd>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cmd {
    pub args: Vec<Arg>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Num {
    Int(i64),
    Float(f64),
}

/// The fields of the template data (Go's `TemplateData`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataField {
    TargetNamespace,
    SourceNamespace,
    SourceName,
    TargetName,
    Labels,
    Annotations,
}

impl DataField {
    pub fn from_name(name: &str) -> Option<DataField> {
        Some(match name {
            "TargetNamespace" => DataField::TargetNamespace,
            "SourceNamespace" => DataField::SourceNamespace,
            "SourceName" => DataField::SourceName,
            "TargetName" => DataField::TargetName,
            "Labels" => DataField::Labels,
            "Annotations" => DataField::Annotations,
            _ => return None,
        })
    }

    pub fn is_map(self) -> bool {
        matches!(self, DataField::Labels | DataField::Annotations)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Dot,
    Nil,
    Bool(bool),
    Num(Num, String),
    Str(String),
    /// Fields of the data (`.Labels.app`): first the data field, then at most one map key.
    Data(DataField, Option<String>),
    /// A variable slot and fields after it (checked when evaluated).
    Var(usize, Vec<String>),
    Func(Func),
    /// `( pipeline )` and fields after it.
    Sub(Box<Pipe>, Vec<String>),
}

impl Arg {
    /// How Go names the node in errors (`expected string; found 3`).
    pub fn describe(&self) -> String {
        match self {
            Arg::Dot => ".".into(),
            Arg::Nil => "nil".into(),
            Arg::Bool(b) => b.to_string(),
            Arg::Num(_, text) => text.clone(),
            Arg::Str(s) => format!("{s:?}"),
            Arg::Data(f, key) => format!(".{f:?}{}", key.as_ref().map(|k| format!(".{k}")).unwrap_or_default()),
            Arg::Var(..) => "variable".into(),
            Arg::Func(f) => f.name().into(),
            Arg::Sub(..) => "(pipeline)".into(),
        }
    }
}

struct Parser<'a> {
    toks: &'a [Token],
    pos: usize,
    /// Declared variables in scope; `$` is slot 0.
    vars: Vec<String>,
    depth: usize,
}

/// What ended a list.
enum ListEnd {
    Eof,
    Else,
    ElseIf,
    End,
}

pub fn parse(toks: &[Token]) -> Result<Vec<Node>, Error> {
    let mut p = Parser { toks, pos: 0, vars: vec!["$".into()], depth: 0 };
    let (nodes, end) = p.list()?;
    match end {
        ListEnd::Eof => Ok(nodes),
        ListEnd::Else | ListEnd::ElseIf => Err(p.err("unexpected {{else}}")),
        ListEnd::End => Err(p.err("unexpected {{end}}")),
    }
}

fn unsupported(word: &str) -> bool {
    matches!(word, "range" | "with" | "define" | "template" | "block" | "break" | "continue")
}

impl Parser<'_> {
    fn line(&self) -> usize {
        self.toks.get(self.pos).or(self.toks.last()).map_or(1, |t| t.line)
    }

    fn err(&self, msg: impl Into<String>) -> Error {
        Error::at(self.line(), msg)
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.tok)
    }

    fn next(&mut self) -> Option<&Token> {
        let t = self.toks.get(self.pos);
        self.pos += 1;
        t
    }

    fn expect_close(&mut self, context: &str) -> Result<(), Error> {
        match self.next().map(|t| &t.tok) {
            Some(Tok::Close) => Ok(()),
            _ => Err(self.err(format!("unexpected input in {context}; expected }}}}"))),
        }
    }

    fn enter(&mut self) -> Result<(), Error> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(format!("template nesting deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    fn list(&mut self) -> Result<(Vec<Node>, ListEnd), Error> {
        let mut nodes = Vec::new();
        loop {
            let Some(tok) = self.next() else { return Ok((nodes, ListEnd::Eof)) };
            match &tok.tok {
                Tok::Text(t) => nodes.push(Node::Text(t.clone())),
                Tok::Open => {
                    if let Some(end) = self.action(&mut nodes)? {
                        return Ok((nodes, end));
                    }
                }
                _ => return Err(self.err("unexpected token outside an action")),
            }
        }
    }

    /// After `{{`. Returns the end marker when the action is `else`/`end`.
    fn action(&mut self, nodes: &mut Vec<Node>) -> Result<Option<ListEnd>, Error> {
        if let Some(Tok::Ident(word)) = self.peek() {
            let word = word.clone();
            match word.as_str() {
                "if" => {
                    self.pos += 1;
                    let node = self.if_block()?;
                    nodes.push(node);
                    return Ok(None);
                }
                "else" => {
                    self.pos += 1;
                    if let Some(Tok::Ident(w)) = self.peek() {
                        if w == "if" {
                            self.pos += 1;
                            return Ok(Some(ListEnd::ElseIf));
                        }
                        if unsupported(w) {
                            return Err(self.err(format!("{{{{else {w}}}}} is not supported")));
                        }
                    }
                    self.expect_close("else")?;
                    return Ok(Some(ListEnd::Else));
                }
                "end" => {
                    self.pos += 1;
                    self.expect_close("end")?;
                    return Ok(Some(ListEnd::End));
                }
                w if unsupported(w) => {
                    return Err(self.err(format!("{{{{{w}}}}} is not supported in transformation templates")));
                }
                _ => {}
            }
        }
        let pipe = self.pipeline("command", &[Tok::Close])?;
        self.expect_close("command")?;
        nodes.push(Node::Action(pipe));
        Ok(None)
    }

    /// After `{{if`: the whole block up to its `{{end}}`. A variable declared in a condition is
    /// visible in its branch and the branches after it; one declared in a branch ends with it;
    /// all end at `{{end}}` (Go's scoping, which the evaluator mirrors slot for slot).
    fn if_block(&mut self) -> Result<Node, Error> {
        self.enter()?;
        let vars_before = self.vars.len();
        let mut branches = Vec::new();
        let mut otherwise = None;
        let mut cond = self.pipeline("if", &[Tok::Close])?;
        self.expect_close("if")?;
        loop {
            let after_cond = self.vars.len();
            let (body, end) = self.list()?;
            self.vars.truncate(after_cond);
            branches.push((cond, body));
            match end {
                ListEnd::End => break,
                ListEnd::Eof => return Err(self.err("unexpected EOF: {{if}} without {{end}}")),
                ListEnd::Else => {
                    let (body, end) = self.list()?;
                    if !matches!(end, ListEnd::End) {
                        return Err(self.err("expected {{end}} after {{else}}"));
                    }
                    otherwise = Some(body);
                    break;
                }
                ListEnd::ElseIf => {
                    cond = self.pipeline("if", &[Tok::Close])?;
                    self.expect_close("if")?;
                }
            }
        }
        self.vars.truncate(vars_before);
        self.depth -= 1;
        Ok(Node::If { branches, otherwise })
    }

    fn var_slot(&self, name: &str) -> Result<usize, Error> {
        self.vars.iter().rposition(|v| v == name).ok_or_else(|| self.err(format!("undefined variable \"{name}\"")))
    }

    /// A pipeline up to (not including) one of `ends`.
    fn pipeline(&mut self, context: &str, ends: &[Tok]) -> Result<Pipe, Error> {
        let mut decl = None;
        if let (Some(Tok::Var(name)), Some(next)) = (self.peek().cloned(), self.toks.get(self.pos + 1).map(|t| &t.tok))
        {
            match next {
                Tok::Declare => {
                    self.pos += 2;
                    decl = Some((name, true));
                }
                Tok::Assign => {
                    self.pos += 2;
                    decl = Some((name, false));
                }
                Tok::Comma => {
                    return Err(self.err("multiple variables are only allowed in range, which is not supported"));
                }
                _ => {}
            }
        }
        let mut cmds = Vec::new();
        if self.peek().is_some_and(|t| ends.contains(t)) {
            return Err(self.err(format!("missing value for {context}")));
        }
        loop {
            let stage = cmds.len() + 1;
            let cmd = self.command(stage > 1)?;
            if stage > 1 && cmd.args.first().is_some_and(|a| !matches!(a, Arg::Func(_))) {
                return Err(self.err(format!("non executable command in pipeline stage {stage}")));
            }
            cmds.push(cmd);
            match self.peek() {
                Some(Tok::Pipe) => self.pos += 1,
                Some(t) if ends.contains(t) => break,
                None => return Err(self.err("unclosed action")),
                Some(t) => return Err(self.err(format!("unexpected {t:?} in {context}"))),
            }
        }
        if cmds.is_empty() {
            return Err(self.err(format!("missing value for {context}")));
        }
        // The variable is visible after its declaration, not inside its own pipeline.
        let decl = match decl {
            Some((name, true)) => {
                if name == "$" {
                    return Err(self.err("cannot declare $"));
                }
                self.vars.push(name);
                Some((self.vars.len() - 1, true))
            }
            Some((name, false)) => Some((self.var_slot(&name)?, false)),
            None => None,
        };
        Ok(Pipe { decl, cmds })
    }

    /// Fields directly attached to the previous term (`(x).a.b`, `$v.a`).
    fn chained_fields(&mut self) -> Vec<String> {
        let mut fields = Vec::new();
        while let Some(t) = self.toks.get(self.pos) {
            match &t.tok {
                Tok::Field(f) if !t.spaced => {
                    fields.push(f.clone());
                    self.pos += 1;
                }
                _ => break,
            }
        }
        fields
    }

    fn data_fields(&self, fields: &[String]) -> Result<Arg, Error> {
        let field = DataField::from_name(&fields[0])
            .ok_or_else(|| self.err(format!("can't evaluate field {} in type TemplateData", fields[0])))?;
        let limit = if field.is_map() { 2 } else { 1 };
        if let Some(extra) = fields.get(limit) {
            return Err(self.err(format!("can't evaluate field {extra} in type string")));
        }
        Ok(Arg::Data(field, fields.get(1).cloned()))
    }

    fn command(&mut self, piped: bool) -> Result<Cmd, Error> {
        let mut args = Vec::new();
        loop {
            let Some(tok) = self.toks.get(self.pos) else { return Err(self.err("unclosed action")) };
            if !args.is_empty() && !tok.spaced && !matches!(tok.tok, Tok::Close | Tok::Pipe | Tok::RParen) {
                return Err(self.err("missing space between arguments"));
            }
            let arg = match tok.tok.clone() {
                Tok::Close | Tok::Pipe | Tok::RParen => break,
                Tok::Dot => {
                    self.pos += 1;
                    if self.toks.get(self.pos).is_some_and(|t| matches!(t.tok, Tok::Field(_)) && !t.spaced) {
                        return Err(self.err("unexpected . after term"));
                    }
                    Arg::Dot
                }
                Tok::Field(f) => {
                    self.pos += 1;
                    let mut fields = vec![f];
                    fields.extend(self.chained_fields());
                    self.data_fields(&fields)?
                }
                Tok::Var(name) => {
                    self.pos += 1;
                    let slot = self.var_slot(&name)?;
                    let fields = self.chained_fields();
                    if slot == 0 && !fields.is_empty() { self.data_fields(&fields)? } else { Arg::Var(slot, fields) }
                }
                Tok::Ident(word) => {
                    self.pos += 1;
                    let arg = match word.as_str() {
                        "true" => Arg::Bool(true),
                        "false" => Arg::Bool(false),
                        "nil" => Arg::Nil,
                        w if unsupported(w) || matches!(w, "if" | "else" | "end") => {
                            return Err(self.err(format!("unexpected <{w}> in command")));
                        }
                        w => Arg::Func(Func::lookup(w).map_err(|m| self.err(m))?),
                    };
                    if self.toks.get(self.pos).is_some_and(|t| matches!(t.tok, Tok::Field(_)) && !t.spaced) {
                        return Err(self.err("unexpected . after term"));
                    }
                    arg
                }
                Tok::Str(s) => {
                    self.pos += 1;
                    Arg::Str(s)
                }
                Tok::Char(c) => {
                    self.pos += 1;
                    Arg::Num(Num::Int(c), format!("{c}"))
                }
                Tok::Number(text) => {
                    self.pos += 1;
                    Arg::Num(number(&text).map_err(|m| self.err(m))?, text)
                }
                Tok::LParen => {
                    self.pos += 1;
                    self.enter()?;
                    if matches!(self.toks.get(self.pos + 1).map(|t| &t.tok), Some(Tok::Declare | Tok::Assign)) {
                        return Err(self.err("variables may only be declared or assigned at the start of an action"));
                    }
                    let pipe = self.pipeline("parenthesized pipeline", &[Tok::RParen])?;
                    self.depth -= 1;
                    self.pos += 1; // the `)`
                    Arg::Sub(Box::new(pipe), self.chained_fields())
                }
                Tok::Declare | Tok::Assign => return Err(self.err("unexpected assignment in command")),
                Tok::Comma => return Err(self.err("unexpected \",\" in command")),
                Tok::Text(_) | Tok::Open => return Err(self.err("unclosed action")),
            };
            if matches!(self.peek(), Some(Tok::Field(_))) && !self.toks[self.pos].spaced {
                return Err(self.err("unexpected . after term"));
            }
            args.push(arg);
        }
        let Some(first) = args.first() else { return Err(self.err("missing value for command")) };
        match first {
            Arg::Func(f) => {
                let given = args.len() - 1 + usize::from(piped);
                f.check_arity(given).map_err(|m| self.err(m))?;
            }
            Arg::Nil => return Err(self.err("nil is not a command")),
            other if args.len() > 1 => {
                return Err(self.err(format!("can't give argument to non-function {}", other.describe())));
            }
            _ => {}
        }
        // A function named as an argument is called without arguments (Go); none of ours takes none.
        for arg in &args[1..] {
            if let Arg::Func(f) = arg {
                f.check_arity(0).map_err(|m| self.err(m))?;
            }
        }
        Ok(Cmd { args })
    }
}

/// A number literal as Go's template parser types it (an "ideal constant"): floats when written
/// with a point or exponent, ints otherwise.
pub fn number(text: &str) -> Result<Num, String> {
    let illegal = || format!("illegal number syntax: {text:?}");
    if text.ends_with('i') {
        return Err(format!("complex number {text:?} is not supported"));
    }
    let clean: String = text.chars().filter(|&c| c != '_').collect();
    let (neg, body) = match clean.as_bytes().first() {
        Some(b'-') => (true, &clean[1..]),
        Some(b'+') => (false, &clean[1..]),
        _ => (false, &clean[..]),
    };
    let lower = body.to_ascii_lowercase();
    let int = if let Some(h) = lower.strip_prefix("0x") {
        if h.contains('p') || h.contains('.') {
            return Err(format!("hexadecimal float {text:?} is not supported"));
        }
        u64::from_str_radix(h, 16).ok()
    } else if let Some(o) = lower.strip_prefix("0o") {
        u64::from_str_radix(o, 8).ok()
    } else if let Some(b) = lower.strip_prefix("0b") {
        u64::from_str_radix(b, 2).ok()
    } else if body.len() > 1 && body.starts_with('0') && body.bytes().all(|c| c.is_ascii_digit()) {
        u64::from_str_radix(&body[1..], 8).ok()
    } else if body.bytes().all(|c| c.is_ascii_digit()) && !body.is_empty() {
        body.parse::<u64>().ok()
    } else {
        None
    };
    if let Some(u) = int {
        let v = if neg { 0i128 - i128::from(u) } else { i128::from(u) };
        return i64::try_from(v).map(Num::Int).map_err(|_| format!("{text} overflows int"));
    }
    if !body.is_empty() && body.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!("{text} overflows int"));
    }
    let f: f64 = clean.parse().map_err(|_| illegal())?;
    if !f.is_finite() {
        return Err(illegal());
    }
    if text.contains(['.', 'e', 'E']) {
        return Ok(Num::Float(f));
    }
    if f.fract() == 0.0 && f.abs() < 9.2e18 {
        return Ok(Num::Int(f as i64));
    }
    Err(illegal())
}
