//! The command line: an optional command with its operands, plus the flags of [`crate::flags`].
//! Kept apart from main so a new command only touches this file and its own module.

use std::path::PathBuf;

use crate::flags::{self, Parsed};
use crate::options::{Options, UsageError};

/// `explain -o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Output {
    #[default]
    Text,
    Yaml,
    Json,
}

/// The values of the command flags (see [`flags::Section::Commands`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommandArgs {
    pub filename: Option<PathBuf>,
    pub output: Output,
    pub namespace: Option<String>,
    pub dry_run: bool,
    pub force: bool,
}

/// What `explain` looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExplainSource {
    File(PathBuf),
    Live { kind: String, namespace: String, name: String },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Help,
    Version,
    /// No command: run the controller.
    Run,
    CheckConnection,
    Explain {
        source: ExplainSource,
        output: Output,
        namespace: Option<String>,
    },
    Cleanup {
        dry_run: bool,
        force: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cli {
    pub command: Command,
    pub options: Options,
    /// Logged once logging is set up (Go-only flags that change nothing, unknown variables).
    pub warnings: Vec<String>,
}

fn usage(msg: String) -> UsageError {
    UsageError(format!("{msg} (see --help)"))
}

/// Parses the arguments after the program name, with the process environment as pairs.
pub fn parse(args: &[String], env: &[(String, String)]) -> Result<Cli, UsageError> {
    let p = flags::parse(args, env)?;
    if p.help || p.version {
        let command = if p.help { Command::Help } else { Command::Version };
        return Ok(Cli { command, options: p.options, warnings: Vec::new() });
    }
    let mut operands = p.positionals.iter().map(String::as_str);
    let name = operands.next().unwrap_or("run");
    let operands: Vec<&str> = operands.collect();
    for flag in &p.command_flags {
        if !flags::commands_of(flag).contains(&name) {
            return Err(usage(format!("--{flag} belongs to {}, not to {name}", flags::commands_of(flag).join(", "))));
        }
    }
    let command = match name {
        "run" | "check-connection" | "cleanup" if !operands.is_empty() => {
            return Err(usage(format!("unexpected argument(s) {}", operands.join(" "))));
        }
        "run" => Command::Run,
        "check-connection" => Command::CheckConnection,
        "cleanup" => Command::Cleanup { dry_run: p.command.dry_run, force: p.command.force },
        "explain" => explain(&p, &operands)?,
        other => return Err(usage(format!("unknown command {other:?}"))),
    };
    Ok(Cli { command, options: p.options, warnings: p.warnings })
}

fn explain(p: &Parsed, operands: &[&str]) -> Result<Command, UsageError> {
    let source = match (&p.command.filename, operands) {
        (Some(f), []) => ExplainSource::File(f.clone()),
        (Some(_), _) => return Err(usage("explain: give either -f FILE or KIND NAMESPACE/NAME, not both".into())),
        (None, [kind, object]) => {
            let Some((namespace, name)) = object.split_once('/').filter(|(ns, n)| !ns.is_empty() && !n.is_empty())
            else {
                return Err(usage(format!("explain: {object:?} is not NAMESPACE/NAME")));
            };
            ExplainSource::Live { kind: kind.to_string(), namespace: namespace.to_string(), name: name.to_string() }
        }
        (None, _) => return Err(usage("explain needs -f FILE or KIND NAMESPACE/NAME".into())),
    };
    if p.command.namespace.is_some() && p.command.output == Output::Text {
        return Err(usage("explain: --namespace selects the mirror printed by -o yaml or -o json".into()));
    }
    Ok(Command::Explain { source, output: p.command.output, namespace: p.command.namespace.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Cli, UsageError> {
        parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>(), &[])
    }

    #[test]
    fn flags_in_any_position_and_with_equals() {
        let c = p(&["--kubeconfig", "/k", "check-connection", "--context=prod", "--rate-limit-qps=5.5"]).unwrap();
        assert_eq!(c.command, Command::CheckConnection);
        assert_eq!(c.options.kubeconfig, Some(PathBuf::from("/k")));
        assert_eq!(c.options.context.as_deref(), Some("prod"));
        assert_eq!(c.options.client_options().qps, 5.5);
        assert_eq!(c.options.client_options().burst, 100);
        assert_eq!(c.options.load_options().kubeconfig, Some(PathBuf::from("/k")));
    }

    #[test]
    fn no_command_runs_the_controller() {
        assert_eq!(p(&[]).unwrap().command, Command::Run);
        assert_eq!(p(&["--leader-elect=false"]).unwrap().command, Command::Run);
        assert_eq!(p(&["--leader-elect", "run"]).unwrap().command, Command::Run);
    }

    #[test]
    fn help_and_version_win() {
        assert_eq!(p(&["--help"]).unwrap().command, Command::Help);
        assert_eq!(p(&["check-connection", "-V"]).unwrap().command, Command::Version);
        assert_eq!(p(&["--bogus", "-h"]).unwrap().command, Command::Help);
    }

    #[test]
    fn explain_and_cleanup_forms() {
        let c = p(&["explain", "-f", "x.yaml", "-o", "yaml", "--namespace", "app1"]).unwrap();
        assert_eq!(
            c.command,
            Command::Explain {
                source: ExplainSource::File("x.yaml".into()),
                output: Output::Yaml,
                namespace: Some("app1".into())
            }
        );
        let c = p(&["explain", "secret", "default/db", "--excluded-namespaces=a-*"]).unwrap();
        let live = ExplainSource::Live { kind: "secret".into(), namespace: "default".into(), name: "db".into() };
        assert_eq!(c.command, Command::Explain { source: live, output: Output::Text, namespace: None });
        assert_eq!(c.options.excluded_namespaces, "a-*");
        assert_eq!(p(&["cleanup", "--dry-run"]).unwrap().command, Command::Cleanup { dry_run: true, force: false });
        assert_eq!(
            p(&["--force", "cleanup", "--dry-run", "false"]).unwrap().command,
            Command::Cleanup { dry_run: false, force: true }
        );
    }

    #[test]
    fn bad_input_is_a_usage_error() {
        for (args, needle) in [
            (&["frobnicate"][..], "unknown command"),
            (&["check-connection", "extra"], "unexpected"),
            (&["check-connection", "--rate-limit-qps", "fast"], "--rate-limit-qps"),
            (&["check-connection", "--rate-limit-qps", "-1"], "--rate-limit-qps"),
            (&["check-connection", "--rate-limit-burst", "0"], "--rate-limit-burst"),
            (&["check-connection", "--context="], "--context"),
            (&["check-connection", "--kubeconfig"], "--kubeconfig needs a value"),
            (&["--dry-run"], "--dry-run belongs to cleanup"),
            (&["explain", "-f", "a", "Secret", "ns/n"], "not both"),
            (&["explain", "Secret", "db"], "NAMESPACE/NAME"),
            (&["explain"], "explain needs"),
            (&["explain", "-f", "a", "--namespace", "x"], "--namespace selects"),
            (&["explain", "-f", "a", "-o", "xml"], "--output"),
        ] {
            let e = p(args).unwrap_err();
            assert!(e.0.contains(needle), "{args:?}: {e}");
        }
    }
}
