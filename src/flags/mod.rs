//! Reading the command line and the environment into [`Options`], from one table ([`table::FLAGS`]):
//! each flag's name, variable, default, help and value check live in one entry, so `--help`, the
//! `KUBEMIRROR_*` variables and the README's flag table cannot drift apart (a test compares the
//! README with [`markdown_table`]).
//!
//! Syntax, compatible with the Go original's Deployment arguments (Go's `flag` package):
//! - `--flag=value` and `--flag value`; one leading dash works too (`-flag`), as in Go;
//! - a boolean alone is `true` (`--leader-elect --metrics-bind-address=:8080`); it takes the next
//!   token only when that is exactly `true` or `false` (`--leader-elect false`), so a bare boolean
//!   never swallows a command or another flag. `--flag=value` accepts Go's spellings (1, t, TRUE...);
//! - a repeated flag: the last one wins; `--` ends the flags;
//! - unknown flags are errors (a typo must not silently change nothing).
//!
//! Environment: every controller flag can be set as `KUBEMIRROR_<NAME>` (upper case, `-` → `_`); the
//! command line wins over the variable; an empty variable is ignored. The command flags (`-f`,
//! `--dry-run`, ...) have no variable: what a one-off command does is spelled out where it is run.

pub mod table;
pub mod values;

use crate::cli::CommandArgs;
use crate::options::{Options, UsageError};

pub use table::FLAGS;
pub use values::ValueError;

pub const ENV_PREFIX: &str = "KUBEMIRROR_";

/// What a flag takes after its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takes {
    Bool,
    /// A value; the text is its placeholder in the help (`N`, `DUR`, `LIST`...).
    Value(&'static str),
}

/// Where a flag's value goes.
#[derive(Clone, Copy)]
pub enum Apply {
    Options(fn(&mut Options, &str) -> Result<(), ValueError>),
    /// A flag of the commands in the list only.
    Command(&'static [&'static str], fn(&mut CommandArgs, &str) -> Result<(), ValueError>),
}

/// Help sections, in help order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Cluster,
    Mirroring,
    Runtime,
    Logging,
    /// Accepted so Go-era manifests start unchanged.
    GoCompat,
    Commands,
}

impl Section {
    const ALL: [Section; 6] = [
        Section::Cluster,
        Section::Mirroring,
        Section::Runtime,
        Section::Logging,
        Section::GoCompat,
        Section::Commands,
    ];

    fn title(self) -> &'static str {
        match self {
            Section::Cluster => "CLUSTER ACCESS",
            Section::Mirroring => "WHAT TO MIRROR",
            Section::Runtime => "RUNTIME",
            Section::Logging => "LOGGING",
            Section::GoCompat => "ACCEPTED FOR THE GO VERSION'S MANIFESTS",
            Section::Commands => "COMMAND FLAGS (explain, cleanup; no variable)",
        }
    }
}

pub struct Flag {
    pub name: &'static str,
    pub short: Option<char>,
    pub takes: Takes,
    /// As shown in the help and the README ("" for none).
    pub default: &'static str,
    pub help: &'static str,
    pub section: Section,
    /// Go-only flags that change nothing here: why (logged as a warning when the flag is set).
    pub no_effect: Option<&'static str>,
    pub apply: Apply,
}

impl Flag {
    /// `KUBEMIRROR_<NAME>`, for the controller flags.
    pub fn env_var(&self) -> Option<String> {
        match self.apply {
            Apply::Options(_) => Some(format!("{ENV_PREFIX}{}", self.name.to_uppercase().replace('-', "_"))),
            Apply::Command(..) => None,
        }
    }

    fn usage(&self) -> String {
        let mut s = String::new();
        if let Some(c) = self.short {
            s.push_str(&format!("-{c}, "));
        }
        s.push_str("--");
        s.push_str(self.name);
        if let Takes::Value(v) = self.takes {
            s.push(' ');
            s.push_str(v);
        }
        s
    }
}

fn lookup(name: &str) -> Option<&'static Flag> {
    FLAGS.iter().find(|f| f.name == name)
}

fn lookup_short(c: char) -> Option<&'static Flag> {
    FLAGS.iter().find(|f| f.short == Some(c))
}

/// The result of reading the arguments and the environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub options: Options,
    pub command: CommandArgs,
    /// The arguments that are not flags: the command and its operands.
    pub positionals: Vec<String>,
    pub help: bool,
    pub version: bool,
    /// Command flags given (by name), so the command can refuse those that are not its own.
    pub command_flags: Vec<&'static str>,
    /// To log once logging is set up: Go-only flags that change nothing, unknown variables.
    pub warnings: Vec<String>,
}

fn is_help(a: &str) -> bool {
    matches!(a, "-h" | "--help" | "-help")
}

fn is_version(a: &str) -> bool {
    matches!(a, "-V" | "--version" | "-version")
}

/// Reads `args` (without the program name) and `env` (the process environment as pairs).
pub fn parse(args: &[String], env: &[(String, String)]) -> Result<Parsed, UsageError> {
    let mut parsed = Parsed {
        options: Options::default(),
        command: CommandArgs::default(),
        positionals: Vec::new(),
        help: false,
        version: false,
        command_flags: Vec::new(),
        warnings: Vec::new(),
    };
    // --help and --version win over anything else on the line, even a bad flag.
    let flag_part = args.iter().take_while(|a| *a != "--");
    for a in flag_part {
        parsed.help |= is_help(a);
        parsed.version |= is_version(a);
    }
    if parsed.help || parsed.version {
        return Ok(parsed);
    }
    let given = tokens(args, &mut parsed.positionals)?;
    for flag in FLAGS {
        let Some(var) = flag.env_var() else { continue };
        let Some((_, value)) = env.iter().find(|(k, v)| *k == var && !v.is_empty()) else { continue };
        if given.iter().any(|(f, _)| std::ptr::eq(*f, flag)) {
            continue;
        }
        apply(flag, value, &mut parsed).map_err(|e| UsageError(format!("{var} (--{}): {e}", flag.name)))?;
    }
    for (flag, value) in &given {
        apply(flag, value, &mut parsed).map_err(|e| UsageError(format!("--{}: {e}", flag.name)))?;
    }
    parsed.options.validate()?;
    for (k, _) in env.iter().filter(|(k, _)| k.starts_with(ENV_PREFIX)) {
        if !FLAGS.iter().any(|f| f.env_var().as_deref() == Some(k.as_str())) {
            parsed.warnings.push(format!("{k} is not the variable of any flag (see --help); ignored"));
        }
    }
    Ok(parsed)
}

/// Splits the arguments into (flag, value) pairs in order, and positionals.
fn tokens(args: &[String], positionals: &mut Vec<String>) -> Result<Vec<(&'static Flag, String)>, UsageError> {
    let mut out = Vec::new();
    let mut it = args.iter().peekable();
    while let Some(a) = it.next() {
        if a == "--" {
            positionals.extend(it.cloned());
            break;
        }
        if !a.starts_with('-') || a == "-" {
            positionals.push(a.clone());
            continue;
        }
        let double = a.starts_with("--");
        let body = if double { &a[2..] } else { &a[1..] };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let mut chars = name.chars();
        let flag = match (chars.next(), chars.next(), double) {
            (Some(c), None, false) => lookup_short(c),
            _ if name.starts_with('-') => None,
            _ => lookup(name),
        };
        let Some(flag) = flag else {
            return Err(UsageError(format!("unknown flag {a:?} (see --help)")));
        };
        let value = match (flag.takes, inline) {
            (_, Some(v)) => v,
            (Takes::Bool, None) => match it.peek().map(|s| s.as_str()) {
                Some(v @ ("true" | "false")) => {
                    it.next();
                    v.to_string()
                }
                _ => "true".to_string(),
            },
            (Takes::Value(_), None) => match it.next() {
                Some(v) => v.clone(),
                None => return Err(UsageError(format!("--{} needs a value (see --help)", flag.name))),
            },
        };
        out.push((flag, value));
    }
    Ok(out)
}

fn apply(flag: &'static Flag, value: &str, parsed: &mut Parsed) -> Result<(), ValueError> {
    match flag.apply {
        Apply::Options(f) => f(&mut parsed.options, value)?,
        Apply::Command(_, f) => {
            f(&mut parsed.command, value)?;
            parsed.command_flags.push(flag.name);
        }
    }
    if let Some(why) = flag.no_effect {
        parsed.warnings.push(format!("--{} has no effect in this version: {why}", flag.name));
    }
    Ok(())
}

/// The commands a command flag belongs to.
pub fn commands_of(name: &str) -> &'static [&'static str] {
    match lookup(name).map(|f| f.apply) {
        Some(Apply::Command(cmds, _)) => cmds,
        _ => &[],
    }
}

const HEAD: &str = "\
kubemirror: mirror namespaced Kubernetes objects into the namespaces their annotations name

USAGE:
  kubemirror [FLAGS]                       run the controller
  kubemirror check-connection [FLAGS]      load the client configuration, print the server version
  kubemirror explain -f FILE [FLAGS]       why a source in FILE would (not) be mirrored where
  kubemirror explain KIND NS/NAME [FLAGS]  the same for a live source (KIND: Secret, configmaps,
                                           Ingress.v1.networking.k8s.io...); read-only
  kubemirror cleanup [FLAGS]               uninstall: delete every mirror, remove every finalizer
";

const TAIL: &str = "\
  -h, --help                               this text
  -V, --version                            the version

Flags: --flag=value or --flag value; a boolean alone is true and takes a following true/false.
Every controller flag can also be set as the variable shown (the command line wins).
Log level: --log-level (or --zap-log-level), else RUST_LOG, else LOG_LEVEL; default info.
Durations use Go syntax: 500ms, 30s, 5m, 1h30m.
Exit codes: 0 stopped cleanly, 1 runtime failure, 2 usage error.
";

/// Appends `text` wrapped at [`HELP_WIDTH`] columns, every line indented by `indent` except the
/// first, which continues `out`'s last line at column `indent`.
fn wrapped(out: &mut String, text: &str, indent: usize) {
    let mut col = indent;
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 && col + 1 + word.len() > HELP_WIDTH {
            out.push_str(&format!("\n{:indent$}", ""));
            col = indent;
        } else if i > 0 {
            out.push(' ');
            col += 1;
        }
        out.push_str(word);
        col += word.len();
    }
    out.push('\n');
}

const HELP_WIDTH: usize = 110;
const HELP_COLUMN: usize = 41;

/// `--help`: generated from [`FLAGS`].
pub fn help() -> String {
    let mut out = String::from(HEAD);
    for section in Section::ALL {
        out.push('\n');
        out.push_str(section.title());
        out.push_str(":\n");
        for f in FLAGS.iter().filter(|f| f.section == section) {
            let usage = f.usage();
            if usage.len() + 2 >= HELP_COLUMN {
                out.push_str(&format!("  {usage}\n{:HELP_COLUMN$}", ""));
            } else {
                out.push_str(&format!("  {usage:<w$}", w = HELP_COLUMN - 2));
            }
            wrapped(&mut out, f.help, HELP_COLUMN);
            let mut notes = Vec::new();
            if !f.default.is_empty() {
                notes.push(format!("default {}", f.default.replace(',', ", ")));
            }
            if let Some(var) = f.env_var() {
                notes.push(format!("${var}"));
            }
            if !notes.is_empty() {
                out.push_str(&format!("{:HELP_COLUMN$}", ""));
                wrapped(&mut out, &format!("[{}]", notes.join("; ")), HELP_COLUMN);
            }
        }
    }
    out.push('\n');
    out.push_str(TAIL);
    out
}

/// The README's flag table (flag, variable, default, meaning), generated from [`FLAGS`].
pub fn markdown_table() -> String {
    let mut out = String::from("| flag | variable | default | meaning |\n|---|---|---|---|\n");
    for f in FLAGS {
        let var = f.env_var().map(|v| format!("`{v}`")).unwrap_or_else(|| "–".into());
        let default = if f.default.is_empty() { "–".to_string() } else { format!("`{}`", f.default) };
        let mut meaning = f.help.replace('|', "\\|");
        if let Some(why) = f.no_effect {
            meaning.push_str(&format!(" (no effect here: {why})"));
        }
        out.push_str(&format!("| `{}` | {var} | {default} | {meaning} |\n", f.usage().replace('|', "\\|")));
    }
    out
}

#[cfg(test)]
mod tests;
