//! A sandboxed subset of Go's `text/template`, enough for every transformation template the Go
//! original's users write (BEHAVIOR.md §I.7), with Go's semantics where they are observable:
//! `<no value>` for a missing map key, `default`'s argument order, `and`/`or` short-circuiting and
//! returning an operand, Go's truthiness, comparison rules and `fmt` formatting.
//!
//! Supported: text and `{{ }}` actions with `{{-`/`-}}` trimming and `{{/* comments */}}`; the
//! data fields `.TargetNamespace .SourceNamespace .SourceName .TargetName .Labels .Annotations`
//! (map keys as `.Labels.app` or `index .Labels "app.kubernetes.io/name"`); string (`"…"`, raw
//! `` `…` ``), character, number, `true`/`false`/`nil` literals; function calls, `|` pipelines,
//! parentheses; variables (`$x := …`, `$x = …`, `$`); `if / else if / else / end`; the functions
//! of [`funcs`]. Not supported, each a parse error naming it: `range`, `with`, `define`,
//! `template`, `block`, `break`, `continue`, `call`, unknown functions, unknown data fields.
//!
//! Parsing happens once per rule set; evaluation per target, bounded by [`Limits`] instead of a
//! wall clock: a step budget (every node, argument and call is a step) and a cap on the size of the
//! output and of every string a function returns. Templates have no loops, so evaluation is
//! linear in the template's size anyway; the budget is the backstop, the cap stops amplification
//! (`replace` of `replace` …, `printf "%0999999d"`). The parser's recursion is bounded by
//! [`parse::MAX_DEPTH`] and its input by [`lex::MAX_TOKENS`].

mod exec;
mod funcs;
mod lex;
mod parse;
mod printf;
mod value;

pub use lex::MAX_TOKENS;
pub use parse::MAX_DEPTH;
pub use value::Data;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The template text is not valid (or uses something unsupported).
    Parse,
    /// Evaluation failed on this data (wrong types, missing values passed to string functions).
    Exec,
    /// The step budget or the output cap was exceeded.
    Limit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub msg: String,
}

impl Error {
    fn at(line: usize, msg: impl Into<String>) -> Error {
        Error { kind: ErrorKind::Parse, msg: format!("line {line}: {}", msg.into()) }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            ErrorKind::Parse => write!(f, "template: {}", self.msg),
            ErrorKind::Exec | ErrorKind::Limit => write!(f, "executing template: {}", self.msg),
        }
    }
}

impl std::error::Error for Error {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_steps: usize,
    pub max_output: usize,
}

impl Limits {
    /// Steps per evaluation: far above what a 10 KiB template can use (no loops), low enough to
    /// bound a template under a raised `--transform-max-bytes`.
    pub const MAX_STEPS: usize = 100_000;
    /// Bytes of output, and of any intermediate string, per evaluation.
    pub const MAX_OUTPUT: usize = 64 * 1024;
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_steps: Limits::MAX_STEPS, max_output: Limits::MAX_OUTPUT }
    }
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    nodes: Vec<parse::Node>,
    /// A `.TargetNamespace` field appears somewhere (directly, or after a variable like `$`):
    /// fields are only ever named in the text, so without one the output is the same for every
    /// target.
    reads_target: bool,
}

impl Template {
    pub fn parse(src: &str) -> Result<Template, Error> {
        let toks = lex::lex(src)?;
        let reads_target = toks.iter().any(|t| matches!(&t.tok, lex::Tok::Field(f) if f == "TargetNamespace"));
        Ok(Template { nodes: parse::parse(&toks)?, reads_target })
    }

    /// Whether the output can depend on the target namespace.
    pub fn reads_target_namespace(&self) -> bool {
        self.reads_target
    }

    pub fn execute(&self, data: &Data<'_>, limits: Limits) -> Result<String, Error> {
        exec::execute(&self.nodes, data, limits)
    }
}

#[cfg(test)]
mod tests;
