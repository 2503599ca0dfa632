//! The command line: an optional subcommand plus the flags of [`crate::options`]. Kept apart from
//! main so new subcommands only touch this file.

use std::ffi::OsString;

use crate::options::{HELP, Options};

pub const USAGE: &str = HELP;

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Help,
    Version,
    /// No subcommand: run the controller.
    Run,
    CheckConnection,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cli {
    pub command: Command,
    pub options: Options,
}

/// Parses the arguments after the program name.
pub fn parse(args: Vec<OsString>) -> Result<Cli, String> {
    let mut a = pico_args::Arguments::from_vec(args);
    let help = a.contains(["-h", "--help"]);
    let version = a.contains(["-V", "--version"]);
    if help || version {
        let command = if help { Command::Help } else { Command::Version };
        return Ok(Cli { command, options: Options::default() });
    }
    let options = Options::from_args(&mut a).map_err(|e| e.to_string())?;
    let sub: Option<String> = a.opt_free_from_str().map_err(|e| e.to_string())?;
    let rest = a.finish();
    if !rest.is_empty() {
        let rest: Vec<String> = rest.iter().map(|s| s.to_string_lossy().into_owned()).collect();
        return Err(format!("unexpected argument(s): {}", rest.join(" ")));
    }
    let command = match sub.as_deref() {
        None | Some("run") => Command::Run,
        Some("check-connection") => Command::CheckConnection,
        Some(other) => return Err(format!("unknown command {other:?}")),
    };
    Ok(Cli { command, options })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn p(args: &[&str]) -> Result<Cli, String> {
        parse(args.iter().map(OsString::from).collect())
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
    fn no_subcommand_runs_the_controller() {
        assert_eq!(p(&[]).unwrap().command, Command::Run);
        assert_eq!(p(&["--leader-elect=false"]).unwrap().command, Command::Run);
    }

    #[test]
    fn help_and_version_win() {
        assert_eq!(p(&["--help"]).unwrap().command, Command::Help);
        assert_eq!(p(&["check-connection", "-V"]).unwrap().command, Command::Version);
        assert_eq!(p(&["--bogus", "-h"]).unwrap().command, Command::Help);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(p(&["frobnicate"]).unwrap_err().contains("unknown command"));
        assert!(p(&["check-connection", "extra"]).unwrap_err().contains("unexpected"));
        assert!(p(&["check-connection", "--rate-limit-qps", "fast"]).is_err());
        assert!(p(&["check-connection", "--rate-limit-qps", "-1"]).is_err());
        assert!(p(&["check-connection", "--rate-limit-burst", "0"]).unwrap_err().contains("burst"));
        assert!(p(&["check-connection", "--context="]).unwrap_err().contains("--context"));
        assert!(p(&["check-connection", "--kubeconfig"]).is_err());
    }
}
