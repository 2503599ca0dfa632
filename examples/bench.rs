//! The controller benchmark: the in-memory API server seeded with sources and namespaces, the real
//! `kubemirror` binary as a child process (and, with `--baseline watch-all`, the watch-all baseline
//! as another), and the figures for BENCHMARKS.md as Markdown on stdout. Progress goes to stderr;
//! exits 1 when the controller does not converge (or dies) in time. See `kubemirror::bench`.
//!
//!     cargo build --release --bin kubemirror
//!     cargo build --release --features testkit --bin kubemirror-bench-baseline
//!     cargo run --release --features testkit --example bench -- --scenario s1 --baseline watch-all

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use kubemirror::bench::{self, Config};
use kubemirror::util::time::format_rfc3339_micros;

const USAGE: &str = "\
usage: bench [--scenario s1|s1-unrelated|s2] [--sources N (50)] [--namespaces M (200)]
             [--targets-per-source K|all (20)] [--source-bytes MIN-MAX (1024-4096)]
             [--objects-other X (0)] [--other-bytes B (2048)] [--crd] [--transform-share F (0)]
             [--steady-secs S (60)] [--deadline-secs D (1800)] [--seed N (1)]
             [--binary PATH (target/release/kubemirror)]
             [--baseline watch-all] [--baseline-binary PATH (target/release/kubemirror-bench-baseline)]
             [--controller-arg ARG]... [--controller-env NAME=VALUE]...
A --scenario comes first; later flags change it.";

fn range(flag: &str, v: &str) -> Result<(usize, usize), String> {
    let bad = || format!("{flag}: {v:?} is not MIN-MAX or N");
    let (lo, hi) = v.split_once('-').unwrap_or((v, v));
    Ok((lo.trim().parse().map_err(|_| bad())?, hi.trim().parse().map_err(|_| bad())?))
}

/// `--flag value` or `--flag=value`; `--controller-arg` and `--controller-env` repeat.
fn parse() -> Result<Config, String> {
    let mut cfg = Config::default();
    let mut args = std::env::args().skip(1).peekable();
    let mut baseline_binary = PathBuf::from("target/release/kubemirror-bench-baseline");
    let mut baseline = false;
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        if arg == "--crd" {
            cfg.shape.crd = true;
            continue;
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
        let sh = &mut cfg.shape;
        match flag.as_str() {
            "--scenario" => cfg = Config::scenario(&value)?,
            "--sources" => sh.sources = num(&value)? as usize,
            "--namespaces" => sh.namespaces = num(&value)? as usize,
            "--targets-per-source" if value == "all" => sh.targets_per_source = None,
            "--targets-per-source" => sh.targets_per_source = Some(num(&value)? as usize),
            "--source-bytes" => sh.source_bytes = range(&flag, &value)?,
            "--objects-other" => sh.objects_other = num(&value)? as usize,
            "--other-bytes" => sh.other_bytes = num(&value)? as usize,
            "--transform-share" => {
                sh.transform_share = value.parse().map_err(|_| format!("{flag}: {value:?} is not a number"))?
            }
            "--seed" => sh.seed = num(&value)?,
            "--steady-secs" => cfg.steady = Duration::from_secs(num(&value)?),
            "--deadline-secs" => cfg.deadline = Duration::from_secs(num(&value)?),
            "--binary" => cfg.binary = PathBuf::from(value),
            "--baseline" if value == "watch-all" => baseline = true,
            "--baseline" => return Err(format!("--baseline: only watch-all is known, not {value:?}")),
            "--baseline-binary" => baseline_binary = PathBuf::from(value),
            "--controller-arg" => cfg.controller_args.push(value),
            "--controller-env" => match value.split_once('=') {
                Some((k, v)) => cfg.controller_env.push((k.to_string(), v.to_string())),
                None => return Err(format!("--controller-env: {value:?} is not NAME=VALUE")),
            },
            _ => return Err(format!("unexpected argument {arg:?}\n{USAGE}")),
        }
    }
    cfg.baseline = baseline.then_some(baseline_binary);
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
    eprintln!("bench: controller flags: {}", cfg.controller_flags().join(" "));
    match bench::run(cfg).await {
        Ok(report) => {
            let date = format_rfc3339_micros(SystemTime::now());
            println!("{}", bench::report::markdown(&report, &date[..10]));
            eprintln!("bench: controller log in {}", report.log_path.display());
        }
        Err(e) => {
            eprintln!("bench: FAILED: {e}");
            std::process::exit(1);
        }
    }
}
