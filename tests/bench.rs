//! The benchmark harness (`examples/bench.rs`) at toy size against the real binary and the
//! watch-all baseline: it converges, measures every phase and finds no missed goal, in a few
//! seconds. The request counts are the controller's headline API figures: regressions fail here.
#![cfg(feature = "testkit")]

use std::path::PathBuf;
use std::time::Duration;

use kubemirror::bench::{self, Config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_harness_measures_a_tiny_run_of_the_real_binary_and_the_baseline() {
    let log = std::env::temp_dir().join(format!("kubemirror-bench-smoke-{}.log", std::process::id()));
    let mut cfg = Config {
        steady: Duration::from_secs(2),
        binary: PathBuf::from(env!("CARGO_BIN_EXE_kubemirror")),
        baseline: Some(PathBuf::from(env!("CARGO_BIN_EXE_kubemirror-bench-baseline"))),
        deadline: Duration::from_secs(60),
        log_path: Some(log.clone()),
        controller_args: vec!["--rate-limit-qps=0".into()],
        ..Config::default()
    };
    // 11 sources (Secret, ConfigMap, Widget) × 2 targets over 4 namespaces; sources 0 and 10 also
    // select the namespace the new-namespace phase creates; 3 have rules.
    let sh = &mut cfg.shape;
    (sh.sources, sh.namespaces, sh.targets_per_source, sh.objects_other) = (11, 4, Some(2), 100);
    (sh.crd, sh.transform_share, sh.source_bytes) = (true, 0.3, (500, 1500));
    let r = bench::run(cfg).await.unwrap();
    let md = bench::report::markdown(&r, "2026-01-01");
    let _ = std::fs::remove_file(&log);
    assert_eq!((r.expected_mirrors, r.change_targets, r.new_namespace_sources), (22, 2, 2), "{md}");
    assert!(r.findings.is_empty(), "{md}");
    assert_eq!(r.exit_code, Some(0), "{md}");

    // Cold start: one list and one watch per stream (3 kinds × sources and mirrors, plus
    // namespaces), the discovery GETs (core, the CRD's group) and `/version`, one create per
    // mirror, the finalizer and one status patch per source; nothing else.
    let s = &r.startup.controller;
    assert_eq!((s.verb("list"), s.verb("watch"), s.verb("get")), (7, 7, 3), "{md}");
    assert_eq!((s.verb("create"), s.verb("patch"), s.verb("update"), s.verb("delete")), (22, 22, 0, 0), "{md}");
    // One change with 2 targets: 2 writes, no read, no status patch (the text is unchanged).
    let c = &r.change.controller;
    assert_eq!((c.verb("update"), c.total()), (2, 2), "{md}");
    // A new namespace: one create per selecting source, plus its status patch (synced count +1).
    let n = &r.new_namespace.controller;
    assert_eq!((n.verb("create"), n.verb("patch"), n.total()), (2, 2, 4), "{md}");
    // Steady: nothing but the open watches.
    assert_eq!(r.steady.controller.total(), r.steady.controller.verb("watch"), "{md}");
    assert!(r.controller.end.peak > 0 && r.controller.end.anon > 0 && r.controller.end.file > 0, "{md}");
    assert!(r.startup.controller.bytes_sent > 0, "{md}");

    // The baseline lists and watches everything, unfiltered, and reads every object whole: the
    // 100 unrelated objects too.
    let b = r.startup.baseline.as_ref().unwrap();
    assert_eq!((b.verb("list"), b.verb("watch"), bench::writes(b)), (4, 4, 0), "{md}");
    assert!(b.read_bytes() > 2 * s.read_bytes(), "{md}");
    assert!(r.baseline.as_ref().is_some_and(|p| p.end.peak > 0), "{md}");
    assert!(md.contains("| peak RSS (VmHWM) |") && md.contains("× |"), "{md}");
}
