//! The benchmark harness (`examples/bench.rs`) at toy size against the real binary: it converges,
//! measures every phase and finds no missed goal, in a few seconds.
#![cfg(feature = "testkit")]

use std::path::PathBuf;
use std::time::Duration;

use kubemirror::bench::{self, Config, Targets};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_harness_measures_a_tiny_run_of_the_real_binary() {
    let log = std::env::temp_dir().join(format!("kubemirror-bench-smoke-{}.log", std::process::id()));
    let cfg = Config {
        sources: 2,
        namespaces: 3,
        targets: Targets::Count(2),
        objects_other: 4,
        steady: Duration::from_secs(1),
        binary: PathBuf::from(env!("CARGO_BIN_EXE_kubemirror")),
        deadline: Duration::from_secs(30),
        log_path: Some(log.clone()),
        ..Config::default()
    };
    let r = bench::run(cfg).await.unwrap();
    let md = bench::markdown(&r, "2026-01-01");
    let _ = std::fs::remove_file(&log);
    assert_eq!((r.expected_mirrors, r.change_targets), (4, 2), "{md}");
    assert!(r.findings.is_empty(), "{md}");
    assert_eq!(bench::writes(&r.change), 2, "{md}");
    assert_eq!(r.exit_code, Some(0), "{md}");
    assert!(r.peak_rss_kib.is_some_and(|k| k > 0) && r.end_rss_kib.is_some(), "{md}");
    assert!(r.startup.verb("create") == 4 && r.steady.total() == r.steady.verb("watch"), "{md}");
    assert!(md.contains("| 2026-01-01 | 2 × 3 (2) | 4 | 4 |"), "{md}");
}
