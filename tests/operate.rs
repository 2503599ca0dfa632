//! What an operator touches, on the real binary against the in-memory API server: the Go version's
//! Deployment arguments, every variable, every kind of invalid value, logs, metrics from start-up,
//! and stopping promptly whatever discovery is doing.
#![cfg(feature = "testkit")]

#[path = "common/proc.rs"]
mod proc;

use std::time::{Duration, Instant};

use kubemirror::flags::FLAGS;
use kubemirror::testkit::{ApiServer, Matcher, ServerOptions};
use proc::{Proc, http_get, run, strings, until};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

struct Cluster {
    /// Serves the in-memory API server.
    _rt: tokio::runtime::Runtime,
    s: ApiServer,
}

impl Cluster {
    fn new() -> Cluster {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let namespaces = ["default", "kube-system", "kube-public", "kube-node-lease", "app1", "app2"];
        let s = rt
            .block_on(ApiServer::start(ServerOptions {
                seed: Some(31),
                namespaces: namespaces.map(String::from).to_vec(),
                bookmark_interval: Duration::from_millis(200),
                ..Default::default()
            }))
            .unwrap();
        s.create_object(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "default",
                "labels": {"kubemirror.raczylo.com/enabled": "true"},
                "annotations": {"kubemirror.raczylo.com/sync": "true", "kubemirror.raczylo.com/target-namespaces": "app1"}},
            "data": {"k": "dg=="}}))
        .unwrap();
        Cluster { _rt: rt, s }
    }

    fn kubeconfig(&self) -> String {
        self.s.kubeconfig_path("admin").display().to_string()
    }

    fn mirrored(&self) -> bool {
        self.s.get_object("v1", "Secret", Some("app1"), "db").is_some()
    }

    /// Arguments every run here needs: the cluster, and the Lease in `default`.
    fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut a = strings(&["--kubeconfig", &self.kubeconfig(), "--leader-election-namespace=default"]);
        a.extend(strings(extra));
        a
    }
}

/// BEHAVIOR.md §N: the Go original's kustomize Deployment arguments, verbatim.
const GO_DEPLOYMENT_ARGS: [&str; 7] = [
    "--leader-elect",
    "--metrics-bind-address=:8080",
    "--health-probe-bind-address=:8081",
    "--max-targets=100",
    "--worker-threads=5",
    "--rate-limit-qps=50.0",
    "--rate-limit-burst=100",
];

#[test]
fn the_go_deployment_arguments_start_the_binary_unchanged() {
    let c = Cluster::new();
    // The Go list as is; then, as Go's flag package does, later flags win: the shared test machine
    // cannot promise ports 8080/8081, so the two addresses are repeated with port 0 at the end.
    let mut args = strings(&GO_DEPLOYMENT_ARGS);
    args.extend(c.args(&["--resource-types=Secret.v1"]));
    args.extend(strings(&["--metrics-bind-address=127.0.0.1:0", "--health-probe-bind-address=127.0.0.1:0"]));
    let mut p = Proc::spawn(&args, &[]);
    until("the mirror", WAIT, || c.mirrored());
    p.wait_line("acquired by", WAIT);
    assert!(!p.stderr().contains("has no effect") && !p.stderr().contains("ignored"), "{}", p.stderr());
    p.signal("-TERM");
    let st = p.exit_within(WAIT).expect("stops");
    assert_eq!(st.code(), Some(0), "{}", p.stderr());
}

#[test]
fn the_go_only_flags_are_accepted_and_each_warned_about_once() {
    let c = Cluster::new();
    let args = c.args(&[
        "--resource-types=Secret.v1",
        "--metrics-bind-address=0",
        "--health-probe-bind-address=0",
        "--resync-period=10m",
        "--lazy-watcher-init",
        "--watcher-scan-interval=5m",
        "--zap-devel=true",
        "--zap-encoder=console",
        "--zap-log-level=info",
        "--zap-stacktrace-level=error",
        "--zap-time-encoding=iso8601",
    ]);
    let mut p = Proc::spawn(&args, &[]);
    until("the mirror", WAIT, || c.mirrored());
    p.signal("-TERM");
    assert_eq!(p.exit_within(WAIT).and_then(|s| s.code()), Some(0), "{}", p.stderr());
    let stderr = p.stderr();
    for flag in [
        "resync-period",
        "lazy-watcher-init",
        "watcher-scan-interval",
        "zap-devel",
        "zap-stacktrace-level",
        "zap-time-encoding",
    ] {
        let warning = format!("--{flag} has no effect");
        assert_eq!(stderr.matches(&warning).count(), 1, "{flag}:\n{stderr}");
    }
    assert!(!stderr.contains("--zap-encoder has no effect") && !stderr.contains("--zap-log-level has no effect"));
}

/// A value each flag refuses (most refuse "x!"), so setting its variable to it proves it is read.
fn refused_value(flag: &str) -> &'static str {
    match flag {
        "kubeconfig" | "context" => " ",
        "deny-resource-types" => "*",
        _ => "x!",
    }
}

#[test]
fn every_variable_is_read_and_a_bad_one_is_named_in_one_line() {
    for f in FLAGS {
        let Some(var) = f.env_var() else { continue };
        let (code, _, stderr) = run(&[], &[(&var, refused_value(f.name))]);
        assert_eq!(code, Some(2), "{var}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{var}: {stderr}");
        assert!(stderr.starts_with(&format!("kubemirror: {var} (--{}): ", f.name)), "{var}: {stderr}");
    }
}

#[test]
fn variables_alone_configure_the_controller_and_the_command_line_wins() {
    let c = Cluster::new();
    let kubeconfig = c.kubeconfig();
    let env = [
        ("KUBEMIRROR_KUBECONFIG", kubeconfig.as_str()),
        ("KUBEMIRROR_LEADER_ELECTION_NAMESPACE", "default"),
        ("KUBEMIRROR_RESOURCE_TYPES", "Secret.v1"),
        ("KUBEMIRROR_METRICS_BIND_ADDRESS", "127.0.0.1:0"),
        ("KUBEMIRROR_HEALTH_PROBE_BIND_ADDRESS", "0"),
        ("KUBEMIRROR_LOG_FORMAT", "json"),
        ("KUBEMIRROR_LEADER_ELECT", "true"),
        ("LOG_LEVEL", "debug"),
    ];
    // The command line overrides the variable: no metrics endpoint.
    let mut p = Proc::spawn(&strings(&["--metrics-bind-address=0"]), &env);
    until("the mirror", WAIT, || c.mirrored());
    p.wait_line("acquired by", WAIT);
    p.signal("-TERM");
    assert_eq!(p.exit_within(WAIT).and_then(|s| s.code()), Some(0), "{}", p.stderr());
    let stderr = p.stderr();
    assert!(!stderr.contains("serving metrics"), "{stderr}");
    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    assert!(lines.iter().all(|l| l["ts"].is_string() && l["target"].is_string() && l["msg"].is_string()));
    assert!(lines.iter().any(|l| l["level"] == "DEBUG"), "LOG_LEVEL=debug applies:\n{stderr}");
    let created = lines.iter().find(|l| l["msg"].as_str().is_some_and(|m| m.contains("mirror created"))).unwrap();
    assert_eq!(created["msg"], "Secret app1/db: mirror created");
    assert_eq!(created["level"], "INFO");
    assert_eq!((created["kind"].as_str(), created["object"].as_str()), (Some("Secret"), Some("app1/db")));
}

#[test]
fn the_log_level_flag_wins_over_rust_log_and_log_level() {
    let c = Cluster::new();
    let args = c.args(&["--resource-types=Secret.v1", "--metrics-bind-address=0", "--health-probe-bind-address=0"]);
    let mut quiet = args.clone();
    quiet.push("--log-level=warn".into());
    let mut p = Proc::spawn(&quiet, &[("RUST_LOG", "debug"), ("LOG_LEVEL", "debug")]);
    until("the mirror", WAIT, || c.mirrored());
    p.signal("-TERM");
    assert_eq!(p.exit_within(WAIT).and_then(|s| s.code()), Some(0));
    assert!(!p.stderr().contains(" INFO ") && !p.stderr().contains(" DEBUG "), "{}", p.stderr());
    let (code, _, stderr) = run(&args, &[("LOG_LEVEL", "chatty")]);
    assert_eq!(
        (code, stderr.trim()),
        (Some(2), "kubemirror: LOG_LEVEL: \"chatty\" is not a level (trace, debug, info, warn, error, off)")
    );
}

/// One of each kind of invalid value through the binary (the parser's unit tests cover every flag).
const INVALID: &[(&str, &str)] = &[
    ("--max-targets=-1", "--max-targets: \"-1\" is negative"),
    ("--worker-threads=0", "--worker-threads: 0 is out of range (1 to 1000)"),
    ("--rate-limit-qps=-5", "--rate-limit-qps: \"-5\" is out of range"),
    ("--discovery-interval=1e19s", "--discovery-interval: invalid duration"),
    (
        "--discovery-interval=10000000000000000000s",
        "--discovery-interval: \"10000000000000000000s\" is longer than 7 days",
    ),
    ("--lease-duration=-15s", "--lease-duration: invalid duration"),
    ("--renew-deadline=20s", "--lease-duration (15s) > --renew-deadline (20s)"),
    ("--excluded-namespaces=team-[", "--excluded-namespaces: bad character class"),
    ("--included-namespaces=UPPER", "--included-namespaces: \"UPPER\" is not a valid namespace name"),
    ("--resource-types=Secret", "--resource-types: resource type \"Secret\": expected Kind.version"),
    ("--metrics-bind-address=:http", "--metrics-bind-address: \":http\" is not an address"),
    ("--health-probe-bind-address=300.1.1.1:80", "--health-probe-bind-address: "),
    ("--leader-elect=maybe", "--leader-elect: \"maybe\" is not a boolean"),
    ("--consent-required-kinds=pods", "--consent-required-kinds: entry \"pods\": expected Kind"),
    ("--transform-max-bytes=0", "--transform-max-bytes: 0 is out of range"),
    ("--log-format=xml", "--log-format: \"xml\" is not text or json"),
    ("--zap-log-level=loud", "--zap-log-level: \"loud\" is not a zap level"),
    ("--resync-period=10", "--resync-period: invalid duration"),
    ("--kubeconfig", "--kubeconfig needs a value"),
    ("--frobnicate", "unknown flag \"--frobnicate\""),
];

#[test]
fn every_invalid_value_exits_2_with_one_line_naming_the_flag() {
    for (arg, want) in INVALID {
        let (code, stdout, stderr) = run(&strings(&[arg]), &[]);
        assert_eq!(code, Some(2), "{arg}: {stderr}");
        assert!(stdout.is_empty(), "{arg}: {stdout}");
        assert_eq!(stderr.lines().count(), 1, "{arg}: {stderr}");
        assert!(stderr.starts_with("kubemirror: ") && stderr.contains(want), "{arg}: {stderr}");
        assert!(!stderr.contains("panicked"), "{arg}: {stderr}");
    }
    let (code, stdout, _) = run(&strings(&["--help"]), &[]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("$KUBEMIRROR_MAX_TARGETS") && stdout.contains("Exit codes"), "{stdout}");
}

fn metrics_addr(p: &mut Proc) -> String {
    let line = p.wait_line("serving metrics on http://", WAIT);
    let start = line.find("http://").unwrap() + "http://".len();
    line[start..].trim_end_matches("/metrics").to_string()
}

#[test]
fn every_metric_family_is_on_metrics_right_after_start() {
    let c = Cluster::new();
    let args = c.args(&[
        "--resource-types=Secret.v1,ConfigMap.v1",
        "--metrics-bind-address=127.0.0.1:0",
        "--health-probe-bind-address=0",
        "--leader-elect=false",
    ]);
    let mut p = Proc::spawn(&args, &[]);
    let addr = metrics_addr(&mut p);
    let text = http_get(&addr, "/metrics");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    for (family, ty) in [
        ("kubemirror_reconcile_total", "counter"),
        ("kubemirror_reconcile_duration_seconds", "histogram"),
        ("kubemirror_mirror_resources_total", "gauge"),
        ("kubemirror_sync_errors_total", "counter"),
        ("kubemirror_ownership_conflicts_total", "counter"),
        ("kubemirror_target_truncations_total", "counter"),
        ("workqueue_depth", "gauge"),
        ("workqueue_adds_total", "counter"),
        ("workqueue_retries_total", "counter"),
        ("workqueue_queue_duration_seconds", "histogram"),
        ("workqueue_work_duration_seconds", "histogram"),
        ("workqueue_unfinished_work_seconds", "gauge"),
        ("workqueue_longest_running_processor_seconds", "gauge"),
        ("kubemirror_leader", "gauge"),
    ] {
        assert!(text.contains(&format!("# HELP {family} ")), "{family}:\n{text}");
        assert!(text.contains(&format!("# TYPE {family} {ty}")), "{family}:\n{text}");
    }
    for kind in ["Secret.v1", "ConfigMap.v1"] {
        for result in ["success", "error", "requeue"] {
            let series = format!("kubemirror_reconcile_total{{kind=\"{kind}\",result=\"{result}\"}}");
            assert!(text.contains(&series), "{series}:\n{text}");
        }
        let series = format!("kubemirror_sync_errors_total{{kind=\"{kind}\",reason=\"Forbidden\"}} 0");
        assert!(text.contains(&series), "{series}:\n{text}");
    }
    for family in
        ["workqueue_depth", "workqueue_adds_total", "workqueue_retries_total", "workqueue_unfinished_work_seconds"]
    {
        assert!(text.contains(&format!("{family}{{name=\"sources\"}} ")), "{family}:\n{text}");
    }
    // No object name in any label.
    assert!(!text.contains("\"db\""), "{text}");
    until("the mirror", WAIT, || c.mirrored());
    until("the mirror counted", WAIT, || {
        http_get(&addr, "/metrics")
            .contains("kubemirror_mirror_resources_total{kind=\"Secret.v1\",namespace=\"app1\"} 1")
    });
    p.signal("-TERM");
    assert_eq!(p.exit_within(WAIT).and_then(|s| s.code()), Some(0));
}

/// Auto-discovery every second, then the next rediscovery hangs on `/api`.
fn hung_in_rediscovery(c: &Cluster, extra: &[&str]) -> Proc {
    let mut args = c.args(&["--discovery-interval=1s", "--metrics-bind-address=0", "--health-probe-bind-address=0"]);
    args.extend(strings(extra));
    let mut p = Proc::spawn(&args, &[]);
    until("the mirror", WAIT, || c.mirrored());
    p.wait_line("acquired by", WAIT);
    c.s.hang(Matcher::new(Some("get"), Some("/api")));
    until("a rediscovery hung on /api", WAIT, || c.s.hung_requests() > 0);
    p
}

#[test]
fn sigterm_during_a_hung_rediscovery_stops_at_once_and_cleanly() {
    let c = Cluster::new();
    let mut p = hung_in_rediscovery(&c, &[]);
    let sent = Instant::now();
    p.signal("-TERM");
    let st = p.exit_within(Duration::from_secs(10)).expect("stopped");
    let took = sent.elapsed();
    assert_eq!(st.code(), Some(0), "{}", p.stderr());
    assert!(took < Duration::from_secs(3), "took {took:?}:\n{}", p.stderr());
    assert!(p.stderr().contains("released by"), "the Lease was released:\n{}", p.stderr());
    c.s.release();
}

#[test]
fn a_lost_lease_during_a_hung_rediscovery_exits_1_within_the_renew_deadline() {
    let c = Cluster::new();
    let mut p = hung_in_rediscovery(&c, &["--lease-duration=3s", "--renew-deadline=2s", "--retry-period=500ms"]);
    let failing = Instant::now();
    c.s.fail_next(Matcher::new(None, Some("leases")), 100_000, 500, None);
    let st = p.exit_within(Duration::from_secs(15)).expect("exited");
    assert_eq!(st.code(), Some(1), "{}", p.stderr());
    // Renew deadline (2 s) plus a retry period and the drain: well under the lease duration's double.
    assert!(failing.elapsed() < Duration::from_secs(6), "took {:?}:\n{}", failing.elapsed(), p.stderr());
    c.s.release();
}

#[test]
fn a_second_signal_exits_at_once_when_the_graceful_stop_is_stuck() {
    let c = Cluster::new();
    let args = c.args(&["--resource-types=Secret.v1", "--metrics-bind-address=0", "--health-probe-bind-address=0"]);
    let mut p = Proc::spawn(&args, &[]);
    until("the mirror", WAIT, || c.mirrored());
    p.wait_line("acquired by", WAIT);
    // Releasing the Lease now hangs (up to the 10 s renew deadline).
    c.s.hang(Matcher::new(None, Some("leases")));
    p.signal("-TERM");
    p.wait_line("SIGTERM received", WAIT);
    let sent = Instant::now();
    p.signal("-INT");
    let st = p.exit_within(Duration::from_secs(10)).expect("exited");
    assert_eq!(st.code(), Some(1), "{}", p.stderr());
    assert!(sent.elapsed() < Duration::from_secs(2), "took {:?}", sent.elapsed());
    assert!(p.stderr().contains("second signal received, exiting at once"), "{}", p.stderr());
    c.s.release();
}
