//! Evaluation of a parsed template against the data, within a step budget and an output cap.

use std::borrow::Cow;

use super::funcs::{self, Func};
use super::parse::{Arg, Cmd, DataField, Node, Num, Pipe};
use super::value::{Data, Val, display, map_str};
use super::{Error, ErrorKind, Limits};

struct State<'a> {
    data: &'a Data<'a>,
    vars: Vec<Val<'a>>,
    out: String,
    steps: usize,
    limits: Limits,
}

pub fn execute<'a>(nodes: &'a [Node], data: &'a Data<'a>, limits: Limits) -> Result<String, Error> {
    let mut s = State { data, vars: vec![Val::Data], out: String::new(), steps: 0, limits };
    s.walk(nodes)?;
    Ok(s.out)
}

fn exec_err(msg: impl Into<String>) -> Error {
    Error { kind: ErrorKind::Exec, msg: msg.into() }
}

fn limit_err(msg: impl Into<String>) -> Error {
    Error { kind: ErrorKind::Limit, msg: msg.into() }
}

impl<'a> State<'a> {
    fn step(&mut self) -> Result<(), Error> {
        self.steps += 1;
        if self.steps > self.limits.max_steps {
            return Err(limit_err(format!("template evaluation exceeded {} steps", self.limits.max_steps)));
        }
        Ok(())
    }

    fn emit(&mut self, text: &str) -> Result<(), Error> {
        if self.out.len() + text.len() > self.limits.max_output {
            return Err(limit_err(format!("template output exceeds {} bytes", self.limits.max_output)));
        }
        self.out.push_str(text);
        Ok(())
    }

    fn walk(&mut self, nodes: &'a [Node]) -> Result<(), Error> {
        for node in nodes {
            self.step()?;
            match node {
                Node::Text(t) => self.emit(t)?,
                Node::Action(pipe) => {
                    let v = self.pipe(pipe)?;
                    if pipe.decl.is_none() {
                        let text = display(&v);
                        self.emit(&text)?;
                    }
                }
                Node::If { branches, otherwise } => {
                    let mark = self.vars.len();
                    let mut taken = false;
                    for (cond, body) in branches {
                        if self.pipe(cond)?.truth() {
                            self.walk(body)?;
                            taken = true;
                            break;
                        }
                    }
                    if !taken && let Some(body) = otherwise {
                        self.walk(body)?;
                    }
                    self.vars.truncate(mark);
                }
            }
        }
        Ok(())
    }

    fn pipe(&mut self, pipe: &'a Pipe) -> Result<Val<'a>, Error> {
        let mut value: Option<Val<'a>> = None;
        for cmd in &pipe.cmds {
            value = Some(self.cmd(cmd, value)?);
        }
        let value = value.unwrap_or(Val::Missing);
        match pipe.decl {
            Some((_, true)) => self.vars.push(value.clone()),
            Some((slot, false)) => {
                if let Some(v) = self.vars.get_mut(slot) {
                    *v = value.clone();
                }
            }
            None => {}
        }
        Ok(value)
    }

    fn cmd(&mut self, cmd: &'a Cmd, last: Option<Val<'a>>) -> Result<Val<'a>, Error> {
        self.step()?;
        match cmd.args.first() {
            Some(Arg::Func(f)) => self.call(*f, &cmd.args[1..], last),
            Some(arg) => self.arg(arg),
            None => Err(exec_err("empty command")),
        }
    }

    fn call(&mut self, f: Func, args: &'a [Arg], last: Option<Val<'a>>) -> Result<Val<'a>, Error> {
        self.step()?;
        if matches!(f, Func::And | Func::Or) {
            // Short-circuit: arguments after the deciding one are not evaluated.
            let want = matches!(f, Func::Or);
            let mut result = Val::Missing;
            for a in args {
                result = self.arg(a)?;
                if result.truth() == want {
                    return Ok(result);
                }
            }
            if let Some(v) = last {
                result = v;
            }
            return Ok(result);
        }
        let mut evaluated = Vec::with_capacity(args.len() + 1);
        for a in args {
            let literal = match a {
                Arg::Num(_, text) => Some(text.clone()),
                Arg::Bool(b) => Some(b.to_string()),
                Arg::Nil => Some("nil".to_string()),
                _ => None,
            };
            evaluated.push(funcs::Arg { val: self.arg(a)?, literal });
        }
        if let Some(v) = last {
            evaluated.push(funcs::Arg { val: v, literal: None });
        }
        let max = self.limits.max_output;
        funcs::call(f, evaluated, max)
            .map_err(|m| if m.starts_with("template output exceeds") { limit_err(m) } else { exec_err(m) })
    }

    fn field(&self, field: DataField) -> Val<'a> {
        let d = self.data;
        match field {
            DataField::TargetNamespace => Val::str(d.target_namespace),
            DataField::SourceNamespace => Val::str(d.source_namespace),
            DataField::SourceName => Val::str(d.source_name),
            DataField::TargetName => Val::str(d.target_name),
            DataField::Labels => Val::Map(d.labels),
            DataField::Annotations => Val::Map(d.annotations),
        }
    }

    /// `v.name` for a value known only at run time (variables, parenthesized pipelines).
    fn field_of(&self, v: Val<'a>, name: &str) -> Result<Val<'a>, Error> {
        match v {
            Val::Data => DataField::from_name(name)
                .map(|f| self.field(f))
                .ok_or_else(|| exec_err(format!("can't evaluate field {name} in type TemplateData"))),
            Val::Map(m) => Ok(m.and_then(|m| m.get(name)).map_or(Val::Missing, |v| Val::Str(map_str(v)))),
            Val::Missing => Ok(Val::Missing),
            Val::Nil => Err(exec_err(format!("nil pointer evaluating interface {{}}.{name}"))),
            other => Err(exec_err(format!("can't evaluate field {name} in type {}", other.type_name()))),
        }
    }

    fn arg(&mut self, arg: &'a Arg) -> Result<Val<'a>, Error> {
        self.step()?;
        Ok(match arg {
            Arg::Dot => Val::Data,
            Arg::Nil => Val::Nil,
            Arg::Bool(b) => Val::Bool(*b),
            Arg::Num(Num::Int(i), _) => Val::Int(*i),
            Arg::Num(Num::Float(f), _) => Val::Float(*f),
            Arg::Str(s) => Val::Str(Cow::Borrowed(s)),
            Arg::Data(field, key) => {
                let v = self.field(*field);
                match key {
                    Some(k) => self.field_of(v, k)?,
                    None => v,
                }
            }
            Arg::Var(slot, fields) => {
                let mut v = self.vars.get(*slot).cloned().unwrap_or(Val::Missing);
                for f in fields {
                    v = self.field_of(v, f)?;
                }
                v
            }
            Arg::Func(f) => self.call(*f, &[], None)?,
            Arg::Sub(pipe, fields) => {
                let mut v = self.pipe(pipe)?;
                for f in fields {
                    v = self.field_of(v, f)?;
                }
                v
            }
        })
    }
}
