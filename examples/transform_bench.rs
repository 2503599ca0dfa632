//! Cost of the transformation rules per mirror: a 20-rule document (values, templates with
//! functions and conditionals, a merge, deletes, namespace patterns, array indexes) compiled once
//! and applied to many targets, against building the same mirrors without rules; plus the memory
//! a compiled document keeps. `cargo run --release --example transform_bench [targets]`.
//!
//! Times are CPU time of this thread (Linux `/proc/thread-self/schedstat`), so a machine shared
//! with other jobs does not inflate them; wall-clock figures are printed too.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Instant, SystemTime};

use kubemirror::mirror::build::{self, BuildConfig, NoTransform};
use kubemirror::mirror::transform::{RuleTransforms, SourceTransform, Transforms};
use kubemirror::model::SourceObject;
use serde_json::json;

/// Counts live heap bytes, to measure what a compiled rule set retains.
struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const RULES: &str = r#"
rules:
  - path: data.LOG_LEVEL
    value: "error"
    namespacePattern: "prod-*"
  - path: data.LOG_LEVEL
    value: "debug"
    namespacePattern: "dev-*"
  - path: data.API_URL
    template: "https://{{ .TargetNamespace }}.api.example.com"
  - path: data.DB_NAME
    template: 'app_{{ replace .TargetNamespace "-" "_" }}'
  - path: data.CACHE
    template: "{{ upper .TargetNamespace }}:cache"
  - path: data.REGION
    template: '{{ if hasPrefix .TargetNamespace "prod-" }}{{ trimPrefix .TargetNamespace "prod-" }}{{ else }}local{{ end }}'
  - path: data.OWNER
    template: '{{ default "platform" .Labels.team }}'
  - path: data.APP
    template: '{{ index .Labels "app.kubernetes.io/name" }}'
  - path: data.SOURCE
    template: "{{ .SourceNamespace }}/{{ .SourceName }}"
  - path: data.SUMMARY
    template: '{{ printf "%s-%d" .TargetName (len .TargetNamespace) }}'
  - path: metadata.labels
    merge:
      environment: production
      tier: frontend
  - path: metadata.annotations["example.com/mirrored-into"]
    template: "{{ .TargetNamespace }}"
  - path: data.DEBUG_MODE
    delete: true
  - path: data.TRACE
    delete: true
  - path: data.FEATURE_A
    value: "on"
  - path: data.FEATURE_B
    value: "off"
    namespacePattern: "*-eu"
  - path: data.TIMEOUT
    value: "30s"
  - path: data.RETRIES
    value: "5"
  - path: data.ENDPOINT
    template: '{{ lower .TargetNamespace }}.svc.cluster.local'
  - path: data.MODE
    template: '{{ if eq .TargetNamespace "prod-eu" }}primary{{ else }}replica{{ end }}'
"#;

/// Nanoseconds this thread has run on a CPU (falls back to 0 where /proc is missing).
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// (CPU µs, wall µs) per iteration of `f`, over `n` iterations.
fn measure(n: usize, mut f: impl FnMut(usize)) -> (f64, f64) {
    let (c, t) = (cpu_ns(), Instant::now());
    for i in 0..n {
        f(i);
    }
    ((cpu_ns() - c) as f64 / 1e3 / n as f64, t.elapsed().as_secs_f64() * 1e6 / n as f64)
}

fn source() -> SourceObject {
    let mut data = serde_json::Map::new();
    for i in 0..20 {
        data.insert(format!("KEY_{i}"), json!(format!("value-{i}-{}", "x".repeat(40))));
    }
    data.insert("LOG_LEVEL".into(), json!("info"));
    data.insert("DEBUG_MODE".into(), json!("true"));
    SourceObject::from_object(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "app-config", "namespace": "default", "uid": "u1", "resourceVersion": "7",
            "labels": {"kubemirror.raczylo.com/enabled": "true", "app.kubernetes.io/name": "shop", "team": "web"},
            "annotations": {"kubemirror.raczylo.com/sync": "true", "kubemirror.raczylo.com/target-namespaces": "all",
                "kubemirror.raczylo.com/transform": RULES}},
        "data": data,
    }))
    .unwrap()
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let src = source();
    let cfg = BuildConfig::default();
    let now = SystemTime::now();
    let namespaces: Vec<String> = (0..n)
        .map(|i| format!("{}-{i}", ["prod", "dev", "staging"][i % 3]) + if i % 2 == 0 { "-eu" } else { "" })
        .collect();

    // Compile: once per source per pass.
    let transforms = RuleTransforms::default();
    let before = LIVE.load(Ordering::Relaxed);
    let compiled = transforms.for_source(&src);
    let retained = LIVE.load(Ordering::Relaxed) - before;
    let SourceTransform::Rules(rules) = &compiled else { panic!("rules did not compile: {compiled:?}") };
    assert_eq!(rules.rules.rules.len(), 20);
    let compile = measure(2_000, |_| {
        std::hint::black_box(transforms.for_source(&src));
    });

    // Per mirror: build without rules, then with the compiled rules.
    let run = |transform: &dyn build::Transform| {
        measure(n, |i| {
            let d = build::build_mirror(&src, &namespaces[i], &cfg, transform, now).unwrap();
            std::hint::black_box(&d);
        })
    };
    run(&NoTransform); // warm-up
    let plain = run(&NoTransform);
    let with_rules = run(&**rules);
    let d = build::build_mirror(&src, "prod-eu", &cfg, &**rules, now).unwrap();
    assert!(d.skipped.is_empty(), "{:?}", d.skipped);
    assert_eq!(d.object["data"]["MODE"], "primary");
    let _keep = Arc::clone(rules);
    println!("targets: {n}                        CPU time    (wall clock)");
    println!("compile 20 rules (once per pass): {:8.1} µs  ({:.1} µs)", compile.0, compile.1);
    println!("build mirror, no rules:           {:8.2} µs  ({:.2} µs)", plain.0, plain.1);
    println!("build mirror, 20 rules:           {:8.2} µs  ({:.2} µs)", with_rules.0, with_rules.1);
    println!("cost of the rules per mirror:     {:8.2} µs  ({:.2} µs)", with_rules.0 - plain.0, with_rules.1 - plain.1);
    println!("compiled rule set retained:       {retained} bytes (rule text {} bytes)", RULES.len());
}
