//! The controller benchmark: the in-memory API server seeded with sources and namespaces, the real
//! `kubemirror` binary as a child process, and the figures for BENCHMARKS.md as Markdown on stdout.
//! Progress goes to stderr; exits 1 when the controller does not converge (or dies) in time.
//!
//!     cargo build --release --bin kubemirror
//!     cargo run --release --features testkit --example bench -- \
//!         [--sources N] [--namespaces M] [--targets-per-source K|all] [--objects-other X] \
//!         [--steady-secs S] [--deadline-secs D] [--binary target/release/kubemirror] \
//!         [--controller-arg=--rate-limit-qps=0 ...]

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use kubemirror::bench::{self, Config, Targets};
use kubemirror::util::time::format_rfc3339_micros;

const USAGE: &str = "\
usage: bench [--sources N (100)] [--namespaces M (50)] [--targets-per-source K|all (50)]
             [--objects-other X (1000)] [--steady-secs S (60)] [--deadline-secs D (900)]
             [--binary PATH (target/release/kubemirror)] [--seed N (1)] [--controller-arg ARG]...";

/// `--flag value` or `--flag=value`; `--controller-arg` repeats.
fn parse() -> Result<Config, String> {
    let mut cfg = Config::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let value = match inline.or_else(|| args.next()) {
            Some(v) => v,
            None => return Err(format!("{flag} needs a value\n{USAGE}")),
        };
        let num = |v: &str| v.parse::<u64>().map_err(|_| format!("{flag}: {v:?} is not a number"));
        match flag.as_str() {
            "--sources" => cfg.sources = num(&value)? as usize,
            "--namespaces" => cfg.namespaces = num(&value)? as usize,
            "--targets-per-source" => cfg.targets = value.parse::<Targets>()?,
            "--objects-other" => cfg.objects_other = num(&value)? as usize,
            "--steady-secs" => cfg.steady = Duration::from_secs(num(&value)?),
            "--deadline-secs" => cfg.deadline = Duration::from_secs(num(&value)?),
            "--binary" => cfg.binary = PathBuf::from(value),
            "--seed" => cfg.seed = num(&value)?,
            "--controller-arg" => cfg.controller_args.push(value),
            _ => return Err(format!("unexpected argument {arg:?}\n{USAGE}")),
        }
    }
    cfg.validate()?;
    Ok(cfg)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cfg = match parse() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(2);
        }
    };
    eprintln!("bench: {}", cfg.command_line());
    eprintln!("bench: controller flags: {}", bench::controller_args().join(" "));
    match bench::run(cfg).await {
        Ok(report) => {
            let date = format_rfc3339_micros(SystemTime::now());
            println!("{}", bench::markdown(&report, &date[..10]));
            eprintln!("bench: controller log in {}", report.log_path.display());
        }
        Err(e) => {
            eprintln!("bench: FAILED: {e}");
            std::process::exit(1);
        }
    }
}
