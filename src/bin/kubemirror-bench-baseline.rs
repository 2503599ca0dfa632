//! The watch-all baseline of the benchmark (see `kubemirror::bench::baseline`): built only with the
//! `testkit` feature, never shipped. Runs until killed.
//!
//!     kubemirror-bench-baseline KUBECONFIG TYPE...   (TYPE: Secret.v1, ConfigMap.v1, Widget.v1.bench.kubemirror.io)

use std::path::PathBuf;

use kubemirror::bench::{Kind, baseline};

fn main() -> std::process::ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut args = std::env::args().skip(1);
    let Some(kubeconfig) = args.next().map(PathBuf::from) else {
        eprintln!("usage: kubemirror-bench-baseline KUBECONFIG TYPE...");
        return std::process::ExitCode::from(2);
    };
    let mut kinds = Vec::new();
    for a in args {
        match [Kind::Secret, Kind::ConfigMap, Kind::Widget].into_iter().find(|k| k.type_name() == a) {
            Some(k) => kinds.push(k),
            None => {
                eprintln!("kubemirror-bench-baseline: unknown type {a:?}");
                return std::process::ExitCode::from(2);
            }
        }
    }
    let rt = match kubemirror::runtime::build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kubemirror-bench-baseline: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(baseline::run(&kubeconfig, &kinds)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kubemirror-bench-baseline: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
