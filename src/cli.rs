//! Command-line flags. Kept apart from main so new flags and subcommands only touch this file.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::client::{ClientOptions, LoadOptions};

pub const USAGE: &str = "\
kubemirror: mirror namespaced Kubernetes objects into the namespaces their annotations name.

USAGE:
    kubemirror [FLAGS] <COMMAND>

COMMANDS:
    check-connection    Load the configuration, GET /version from the API server and print it

FLAGS:
    --kubeconfig <PATH>         Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, then in-cluster)
    --context <NAME>            Kubeconfig context (default: its current-context)
    --rate-limit-qps <N>        Client-side API request rate (default 50; 0 disables the limit)
    --rate-limit-burst <N>      Client-side API request burst (default 100)
    -h, --help                  Print this help
    -V, --version               Print the version

Logging: RUST_LOG (error, warn, info, debug, trace; default info).
";

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Help,
    Version,
    CheckConnection,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cli {
    pub command: Command,
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub qps: f64,
    pub burst: u32,
}

impl Cli {
    pub fn load_options(&self) -> LoadOptions {
        LoadOptions { kubeconfig: self.kubeconfig.clone(), context: self.context.clone() }
    }

    pub fn client_options(&self) -> ClientOptions {
        ClientOptions { qps: self.qps, burst: self.burst, ..ClientOptions::default() }
    }
}

/// Parses the arguments after the program name.
pub fn parse(args: Vec<OsString>) -> Result<Cli, String> {
    let mut a = pico_args::Arguments::from_vec(args);
    let help = a.contains(["-h", "--help"]);
    let version = a.contains(["-V", "--version"]);
    let defaults = ClientOptions::default();
    let kubeconfig: Option<PathBuf> =
        a.opt_value_from_os_str("--kubeconfig", |s| Ok::<_, String>(PathBuf::from(s))).map_err(fmt_err)?;
    let context: Option<String> = a.opt_value_from_str("--context").map_err(fmt_err)?;
    let qps: f64 = a.opt_value_from_str("--rate-limit-qps").map_err(fmt_err)?.unwrap_or(defaults.qps);
    let burst: u32 = a.opt_value_from_str("--rate-limit-burst").map_err(fmt_err)?.unwrap_or(defaults.burst);
    let sub: Option<String> = a.opt_free_from_str().map_err(fmt_err)?;
    let rest = a.finish();
    if !rest.is_empty() {
        let rest: Vec<String> = rest.iter().map(|s| s.to_string_lossy().into_owned()).collect();
        return Err(format!("unexpected argument(s): {}", rest.join(" ")));
    }
    if !qps.is_finite() || qps < 0.0 {
        return Err(format!("--rate-limit-qps must be a number >= 0, got {qps}"));
    }
    if burst == 0 {
        return Err("--rate-limit-burst must be at least 1".into());
    }
    if context.as_deref() == Some("") {
        return Err("--context must not be empty".into());
    }
    let command = if help {
        Command::Help
    } else if version {
        Command::Version
    } else {
        match sub.as_deref() {
            Some("check-connection") => Command::CheckConnection,
            Some(other) => return Err(format!("unknown command {other:?}")),
            None => return Err("no command given".into()),
        }
    };
    Ok(Cli { command, kubeconfig, context, qps, burst })
}

fn fmt_err(e: pico_args::Error) -> String {
    e.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Cli, String> {
        parse(args.iter().map(OsString::from).collect())
    }

    #[test]
    fn flags_in_any_position_and_with_equals() {
        let c = p(&["--kubeconfig", "/k", "check-connection", "--context=prod", "--rate-limit-qps=5.5"]).unwrap();
        assert_eq!(c.command, Command::CheckConnection);
        assert_eq!(c.kubeconfig, Some(PathBuf::from("/k")));
        assert_eq!(c.context.as_deref(), Some("prod"));
        assert_eq!((c.qps, c.burst), (5.5, 100));
        assert_eq!(c.client_options().qps, 5.5);
        assert_eq!(c.load_options().kubeconfig, Some(PathBuf::from("/k")));
    }

    #[test]
    fn help_and_version_win() {
        assert_eq!(p(&["--help"]).unwrap().command, Command::Help);
        assert_eq!(p(&["check-connection", "-V"]).unwrap().command, Command::Version);
        let c = p(&["-h"]).unwrap();
        assert_eq!((c.qps, c.burst), (50.0, 100));
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(p(&[]).unwrap_err().contains("no command"));
        assert!(p(&["frobnicate"]).unwrap_err().contains("unknown command"));
        assert!(p(&["check-connection", "extra"]).unwrap_err().contains("unexpected"));
        assert!(p(&["check-connection", "--rate-limit-qps", "fast"]).is_err());
        assert!(p(&["check-connection", "--rate-limit-qps", "-1"]).is_err());
        assert!(p(&["check-connection", "--rate-limit-burst", "0"]).unwrap_err().contains("burst"));
        assert!(p(&["check-connection", "--kubeconfig"]).is_err());
    }
}
