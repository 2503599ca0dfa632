use std::time::Duration;

use super::*;
use crate::options::LogFormat;

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn parse_env(a: &[&str], env: &[(&str, &str)]) -> Result<Parsed, UsageError> {
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    parse(&args(a), &env)
}

fn opts(a: &[&str]) -> Options {
    parse_env(a, &[]).unwrap().options
}

/// BEHAVIOR.md §N: the Go original's kustomize Deployment, verbatim.
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
fn the_go_deployment_arguments_parse_unchanged() {
    let p = parse_env(&GO_DEPLOYMENT_ARGS, &[]).unwrap();
    assert!(p.positionals.is_empty() && p.warnings.is_empty(), "{p:?}");
    let o = p.options;
    assert!(o.leader_elect);
    assert_eq!(o.metrics_bind_address, Some("0.0.0.0:8080".parse().unwrap()));
    assert_eq!(o.health_probe_bind_address, Some("0.0.0.0:8081".parse().unwrap()));
    assert_eq!((o.max_targets, o.worker_threads, o.rate_limit_qps, o.rate_limit_burst), (100, 5, 50.0, 100));
}

#[test]
fn booleans_bare_with_equals_and_with_a_true_or_false_token() {
    assert!(opts(&["--require-target-consent"]).require_target_consent);
    assert!(!opts(&["--leader-elect=false"]).leader_elect);
    assert!(!opts(&["--leader-elect", "false"]).leader_elect);
    assert!(opts(&["--leader-elect=T"]).leader_elect);
    // A bare boolean never takes a following flag or command.
    let p = parse_env(&["--verify-source-freshness", "cleanup"], &[]).unwrap();
    assert!(p.options.verify_source_freshness);
    assert_eq!(p.positionals, ["cleanup"]);
    let p = parse_env(&["--leader-elect", "--max-targets", "0"], &[]).unwrap();
    assert!(p.options.leader_elect);
    assert_eq!(p.options.max_targets, 0);
}

#[test]
fn go_style_single_dash_last_wins_and_double_dash_ends_flags() {
    assert_eq!(opts(&["-max-targets=7"]).max_targets, 7);
    assert_eq!(opts(&["--max-targets=7", "--max-targets", "9"]).max_targets, 9);
    let p = parse_env(&["--", "--max-targets=7"], &[]).unwrap();
    assert_eq!(p.positionals, ["--max-targets=7"]);
    assert_eq!(p.options.max_targets, 100);
}

#[test]
fn variables_apply_and_the_command_line_wins() {
    let env = [
        ("KUBEMIRROR_EXCLUDED_NAMESPACES", "team-*"),
        ("KUBEMIRROR_MAX_TARGETS", "3"),
        ("KUBEMIRROR_LEADER_ELECT", "false"),
        ("KUBEMIRROR_DISCOVERY_INTERVAL", ""),
        ("KUBEMIRROR_LOG_FORMAT", "json"),
    ];
    let p = parse_env(&["--max-targets=4"], &env).unwrap();
    assert_eq!(p.options.excluded_namespaces, "team-*");
    assert_eq!(p.options.max_targets, 4, "the command line wins");
    assert!(!p.options.leader_elect);
    assert_eq!(p.options.discovery_interval, Duration::from_secs(300), "empty is ignored");
    assert_eq!(p.options.log_format, LogFormat::Json);
    // An invalid variable overridden on the command line is never looked at.
    assert!(parse_env(&["--max-targets=4"], &[("KUBEMIRROR_MAX_TARGETS", "x")]).is_ok());
    let e = parse_env(&[], &[("KUBEMIRROR_MAX_TARGETS", "x")]).unwrap_err();
    assert_eq!(e.0, "KUBEMIRROR_MAX_TARGETS (--max-targets): \"x\" is not a whole number");
    let p = parse_env(&[], &[("KUBEMIRROR_BOGUS", "1")]).unwrap();
    assert!(p.warnings[0].contains("KUBEMIRROR_BOGUS"), "{:?}", p.warnings);
}

#[test]
fn every_controller_flag_has_a_variable_and_no_command_flag_has_one() {
    for f in FLAGS {
        match f.apply {
            Apply::Options(_) => {
                let var = f.env_var().unwrap();
                assert!(var.starts_with("KUBEMIRROR_") && !var.contains('-'), "{var}");
            }
            Apply::Command(..) => assert!(f.env_var().is_none()),
        }
    }
    assert_eq!(lookup("excluded-namespaces").unwrap().env_var().unwrap(), "KUBEMIRROR_EXCLUDED_NAMESPACES");
}

#[test]
fn go_only_flags_are_accepted_mapped_or_warned_about() {
    let p = parse_env(
        &[
            "--resync-period=10m",
            "--lazy-watcher-init",
            "--watcher-scan-interval=5m",
            "--zap-devel=true",
            "--zap-encoder=json",
            "--zap-log-level=debug",
            "--zap-stacktrace-level=error",
            "--zap-time-encoding=iso8601",
        ],
        &[],
    )
    .unwrap();
    assert_eq!(p.options.log_format, LogFormat::Json);
    assert_eq!(p.options.log_level, Some(log::LevelFilter::Debug));
    let warned: Vec<&str> = p.warnings.iter().map(|w| w.split(' ').next().unwrap_or("")).collect();
    assert_eq!(
        warned,
        [
            "--resync-period",
            "--lazy-watcher-init",
            "--watcher-scan-interval",
            "--zap-devel",
            "--zap-stacktrace-level",
            "--zap-time-encoding"
        ]
    );
    assert_eq!(opts(&["--zap-log-level=3"]).log_level, Some(log::LevelFilter::Debug));
    assert_eq!(opts(&["--zap-encoder", "console"]).log_format, LogFormat::Text);
}

/// Every kind of invalid value, each naming its flag; never a panic.
const INVALID: &[(&str, &str)] = &[
    ("--max-targets=-1", "--max-targets: \"-1\" is negative"),
    ("--max-targets=lots", "--max-targets: \"lots\" is not a whole number"),
    ("--max-targets=99999999999999999999999", "--max-targets: "),
    ("--worker-threads=0", "--worker-threads: 0 is out of range"),
    ("--worker-threads=-5", "--worker-threads: \"-5\" is negative"),
    ("--worker-threads=100000", "--worker-threads: 100000 is out of range"),
    ("--rate-limit-qps=-1", "--rate-limit-qps: \"-1\" is out of range"),
    ("--rate-limit-qps=NaN", "--rate-limit-qps: "),
    ("--rate-limit-qps=fast", "--rate-limit-qps: \"fast\" is not a number"),
    ("--rate-limit-burst=0", "--rate-limit-burst: 0 is out of range"),
    ("--discovery-interval=1e19s", "--discovery-interval: "),
    ("--discovery-interval=10000000000000000000s", "--discovery-interval: \"10000000000000000000s\" is longer"),
    ("--discovery-interval=5", "--discovery-interval: invalid duration"),
    ("--discovery-interval=-5m", "--discovery-interval: invalid duration"),
    ("--discovery-interval=100ms", "--discovery-interval: \"100ms\" is shorter"),
    ("--lease-duration=forever", "--lease-duration: invalid duration"),
    ("--renew-deadline=20s", "--renew-deadline"),
    ("--retry-period=9000h", "--retry-period: \"9000h\" is longer"),
    ("--resync-period=10", "--resync-period: invalid duration"),
    ("--watcher-scan-interval=1e19s", "--watcher-scan-interval: "),
    ("--included-namespaces=team-[", "--included-namespaces: bad character class"),
    ("--excluded-namespaces=Bad_Name", "--excluded-namespaces: "),
    ("--resource-types=Secret", "--resource-types: resource type \"Secret\""),
    ("--resource-types=Secret.vbeta", "--resource-types: "),
    ("--deny-resource-types=*", "--deny-resource-types: deny entry"),
    (
        "--consent-required-kinds=Deploy ment",
        "--consent-required-kinds: entry \"Deploy ment\": expected Kind, Kind.group",
    ),
    ("--strip-metadata=a b", "--strip-metadata: "),
    ("--transform-max-bytes=0", "--transform-max-bytes: 0 is out of range"),
    ("--transform-max-rules=-3", "--transform-max-rules: \"-3\" is negative"),
    ("--metrics-bind-address=nope", "--metrics-bind-address: \"nope\" is not an address"),
    ("--metrics-bind-address=:99999", "--metrics-bind-address: "),
    ("--health-probe-bind-address=1.2.3:80", "--health-probe-bind-address: "),
    ("--leader-elect=maybe", "--leader-elect: \"maybe\" is not a boolean"),
    ("--require-target-consent=yes", "--require-target-consent: \"yes\" is not a boolean"),
    ("--verify-source-freshness=2", "--verify-source-freshness: "),
    ("--lazy-watcher-init=sometimes", "--lazy-watcher-init: "),
    ("--zap-devel=x", "--zap-devel: "),
    ("--leader-election-id=Not_A_Name", "--leader-election-id: "),
    ("--leader-election-namespace=a.b", "--leader-election-namespace: "),
    ("--context=", "--context: must not be empty"),
    ("--kubeconfig=", "--kubeconfig: must not be empty"),
    ("--log-level=loud", "--log-level: \"loud\" is not a level"),
    ("--log-format=xml", "--log-format: \"xml\" is not text or json"),
    ("--zap-log-level=chatty", "--zap-log-level: "),
    ("--zap-encoder=yaml", "--zap-encoder: "),
    ("--zap-stacktrace-level=x", "--zap-stacktrace-level: "),
    ("--zap-time-encoding=unix", "--zap-time-encoding: "),
    ("--bogus", "unknown flag \"--bogus\""),
    ("---max-targets=1", "unknown flag"),
];

#[test]
fn every_invalid_value_is_one_line_naming_its_flag() {
    for (arg, want) in INVALID {
        let e = parse_env(&[arg], &[]).unwrap_err();
        assert!(e.0.starts_with(want) || e.0.contains(want), "{arg}: {e}");
        assert!(!e.0.contains('\n'), "{arg}: {e}");
    }
}

#[test]
fn values_reach_the_options() {
    let o = opts(&[
        "--consent-required-kinds=Deployment, Job,Job",
        "--transform-max-bytes=2048",
        "--transform-max-rules",
        "7",
        "--metrics-bind-address=localhost:9000",
        "--health-probe-bind-address=[::]:9001",
        "--log-level=WARN",
        "--strip-metadata=team.io/*,owner",
    ]);
    assert_eq!(o.consent_required_kinds, "Deployment, Job,Job");
    assert_eq!((o.transform_max_bytes, o.transform_max_rules), (2048, 7));
    assert_eq!(o.metrics_bind_address, Some("127.0.0.1:9000".parse().unwrap()));
    assert_eq!(o.health_probe_bind_address, Some("[::]:9001".parse().unwrap()));
    assert_eq!(o.log_level, Some(log::LevelFilter::Warn));
    assert_eq!(o.strip_metadata.as_deref(), Some("team.io/*,owner"));
    assert!(opts(&["--consent-required-kinds="]).consent_required_kinds.is_empty());
    assert_eq!(opts(&["--metrics-bind-address=0"]).metrics_bind_address, None);
}

#[test]
fn defaults_in_the_table_are_the_options_defaults() {
    let d = Options::default();
    let shown = |name: &str| lookup(name).unwrap().default;
    assert_eq!(shown("consent-required-kinds"), crate::options::DEFAULT_CONSENT_REQUIRED_KINDS);
    assert_eq!(d.consent_required_kinds, crate::mirror::targets::CONSENT_REQUIRED_KINDS.join(","));
    assert_eq!(shown("max-targets"), d.max_targets.to_string());
    assert_eq!(shown("worker-threads"), d.worker_threads.to_string());
    assert_eq!(shown("transform-max-bytes"), d.transform_max_bytes.to_string());
    assert_eq!(shown("transform-max-rules"), d.transform_max_rules.to_string());
    assert_eq!(shown("leader-elect"), d.leader_elect.to_string());
    assert_eq!(shown("leader-election-id"), d.leader_election_id);
    assert_eq!(shown("rate-limit-burst"), d.rate_limit_burst.to_string());
    // Applying each shown default changes nothing.
    for name in ["discovery-interval", "lease-duration", "renew-deadline", "retry-period", "metrics-bind-address"] {
        assert_eq!(opts(&[&format!("--{name}={}", shown(name))]), d, "{name}");
    }
}

#[test]
fn help_lists_every_flag_with_its_variable() {
    let h = help();
    for f in FLAGS {
        assert!(h.contains(&format!("--{}", f.name)), "{}", f.name);
        if let Some(var) = f.env_var() {
            assert!(h.contains(&format!("${var}")), "{var}");
        }
    }
    assert!(h.lines().all(|l| l.chars().count() <= 110), "{h}");
}

#[test]
fn the_readme_flag_table_is_the_generated_one() {
    let readme = include_str!("../../README.md");
    let start = readme.find("<!-- flags:begin -->").expect("README flag table start marker");
    let end = readme.find("<!-- flags:end -->").expect("README flag table end marker");
    let table = readme[start..end].trim_start_matches("<!-- flags:begin -->").trim();
    assert_eq!(table, markdown_table().trim(), "README's flag table is stale; paste markdown_table()'s output");
}

#[test]
fn the_shipped_deployment_arguments_and_variables_parse() {
    let doc = crate::util::yaml::load_one(include_str!("../../deploy/deployment.yaml")).unwrap();
    let container = &doc["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<String> =
        container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect();
    let env: Vec<(String, String)> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| Some((e["name"].as_str()?.to_string(), e["value"].as_str()?.to_string())))
        .collect();
    let p = parse(&args, &env).unwrap();
    assert!(p.positionals.is_empty() && p.warnings.is_empty(), "{p:?}");
    assert!(p.options.leader_elect);
}
