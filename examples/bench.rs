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

fn parse() -> Result<Config, String> {
    let mut a = pico_args::Arguments::from_env();
    if a.contains(["-h", "--help"]) {
        println!("{USAGE}");
        std::process::exit(0);
    }
    let d = Config::default();
    let pe = |e: pico_args::Error| e.to_string();
    let cfg = Config {
        sources: a.opt_value_from_str("--sources").map_err(pe)?.unwrap_or(d.sources),
        namespaces: a.opt_value_from_str("--namespaces").map_err(pe)?.unwrap_or(d.namespaces),
        targets: a.opt_value_from_fn("--targets-per-source", str::parse::<Targets>).map_err(pe)?.unwrap_or(d.targets),
        objects_other: a.opt_value_from_str("--objects-other").map_err(pe)?.unwrap_or(d.objects_other),
        steady: a.opt_value_from_str("--steady-secs").map_err(pe)?.map(Duration::from_secs).unwrap_or(d.steady),
        deadline: a.opt_value_from_str("--deadline-secs").map_err(pe)?.map(Duration::from_secs).unwrap_or(d.deadline),
        binary: a.opt_value_from_str::<_, PathBuf>("--binary").map_err(pe)?.unwrap_or(d.binary),
        seed: a.opt_value_from_str("--seed").map_err(pe)?.unwrap_or(d.seed),
        controller_args: a.values_from_str("--controller-arg").map_err(pe)?,
        log_path: None,
    };
    let rest = a.finish();
    if let Some(first) = rest.first() {
        return Err(format!("unexpected argument {:?}\n{USAGE}", first.to_string_lossy()));
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
