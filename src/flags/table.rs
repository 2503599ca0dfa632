//! Every flag: name, help, default and the check of its value. The checks refuse what cannot work
//! (negative counts, durations that are unparsable or absurd, bad globs, selectors or addresses)
//! with a message that the parser prefixes with the flag's name.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{Apply, Flag, Section, Takes};
use crate::cli::Output;
use crate::discovery::{self, DenyList};
use crate::mirror::targets::NamespaceFilter;
use crate::options::LogFormat;
use crate::util::duration;

/// Longest duration any flag accepts: beyond it a timer is a mistake (and `Instant + d` would
/// overflow for values such as `1e19s`).
const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);
const MAX_WORKERS: usize = 1000;

/// Go's `strconv.ParseBool` spellings.
pub fn boolean(v: &str) -> Result<bool, String> {
    match v.trim() {
        "true" | "1" | "t" | "T" | "TRUE" | "True" => Ok(true),
        "false" | "0" | "f" | "F" | "FALSE" | "False" => Ok(false),
        other => Err(format!("{other:?} is not a boolean (true or false)")),
    }
}

fn count(v: &str) -> Result<usize, String> {
    let t = v.trim();
    if t.starts_with('-') && t[1..].parse::<u64>().is_ok() {
        return Err(format!("{t:?} is negative"));
    }
    t.parse::<usize>().map_err(|_| format!("{t:?} is not a whole number"))
}

fn count_in(v: &str, min: usize, max: usize) -> Result<usize, String> {
    let n = count(v)?;
    if n < min || n > max {
        return Err(format!("{n} is out of range ({min} to {max})"));
    }
    Ok(n)
}

fn dur(v: &str, min: Duration) -> Result<Duration, String> {
    let d = duration::parse(v)?;
    if d < min {
        return Err(format!("{v:?} is shorter than {min:?}"));
    }
    if d > MAX_DURATION {
        return Err(format!("{v:?} is longer than 7 days"));
    }
    Ok(d)
}

/// `:8080`, `0.0.0.0:8080`, `[::]:8080`, `localhost:8080`; `0` or empty disables the endpoint.
pub fn bind_address(v: &str) -> Result<Option<SocketAddr>, String> {
    let v = v.trim();
    if v.is_empty() || v == "0" {
        return Ok(None);
    }
    let full = match v.strip_prefix("localhost:") {
        Some(port) => format!("127.0.0.1:{port}"),
        None if v.starts_with(':') => format!("0.0.0.0{v}"),
        None => v.to_string(),
    };
    full.parse().map(Some).map_err(|_| format!("{v:?} is not an address like :8080 or 127.0.0.1:8080 (0 disables)"))
}

fn non_empty(v: &str) -> Result<String, String> {
    let t = v.trim();
    if t.is_empty() { Err("must not be empty".into()) } else { Ok(t.to_string()) }
}

/// RFC 1123 subdomain (Lease names) or label (namespaces).
fn dns_name(v: &str, label: bool) -> Result<String, String> {
    let t = v.trim();
    let max = if label { 63 } else { 253 };
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (!label && c == '.');
    let parts_ok = t.split('.').all(|p| !p.is_empty() && !p.starts_with('-') && !p.ends_with('-'));
    if t.is_empty() || t.len() > max || !t.chars().all(ok_char) || !parts_ok {
        let what = if label { "a namespace name" } else { "a Kubernetes object name" };
        return Err(format!("{t:?} is not {what} (lower-case letters, digits, '-')"));
    }
    Ok(t.to_string())
}

fn kinds(v: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for k in v.split(',').map(str::trim).filter(|k| !k.is_empty()) {
        let ok = k.starts_with(|c: char| c.is_ascii_uppercase()) && k.chars().all(|c| c.is_ascii_alphanumeric());
        if !ok {
            return Err(format!("{k:?} is not a Kind (Deployment, CronJob...)"));
        }
        if !out.iter().any(|o| o == k) {
            out.push(k.to_string());
        }
    }
    Ok(out)
}

/// Label/annotation keys (`[prefix/]name`) or prefixes ending in `*`.
fn strip_list(v: &str) -> Result<String, String> {
    for e in v.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let key = e.strip_suffix('*').unwrap_or(e);
        let ok = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || "-._/".contains(c));
        if !ok {
            return Err(format!("{e:?} is not a label/annotation key or a prefix ending in *"));
        }
    }
    Ok(v.to_string())
}

fn log_level(v: &str) -> Result<log::LevelFilter, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "trace" => Ok(log::LevelFilter::Trace),
        "debug" => Ok(log::LevelFilter::Debug),
        "info" => Ok(log::LevelFilter::Info),
        "warn" | "warning" => Ok(log::LevelFilter::Warn),
        "error" => Ok(log::LevelFilter::Error),
        "off" => Ok(log::LevelFilter::Off),
        other => Err(format!("{other:?} is not a level (trace, debug, info, warn, error, off)")),
    }
}

/// zap's levels, or a positive verbosity (debug).
fn zap_level(v: &str) -> Result<log::LevelFilter, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "debug" => Ok(log::LevelFilter::Debug),
        "info" => Ok(log::LevelFilter::Info),
        "warn" => Ok(log::LevelFilter::Warn),
        "error" | "dpanic" | "panic" | "fatal" => Ok(log::LevelFilter::Error),
        other => match other.parse::<u8>() {
            Ok(0) => Ok(log::LevelFilter::Info),
            Ok(_) => Ok(log::LevelFilter::Debug),
            Err(_) => Err(format!("{other:?} is not a zap level (debug, info, warn, error, or a verbosity > 0)")),
        },
    }
}

fn one_of(v: &str, allowed: &[&str]) -> Result<(), String> {
    if allowed.contains(&v.trim()) { Ok(()) } else { Err(format!("{v:?} is not one of {}", allowed.join(", "))) }
}

const EXPLAIN: &[&str] = &["explain"];
const CLEANUP: &[&str] = &["cleanup"];

macro_rules! flag {
    ($section:ident, $name:literal, $takes:expr, $default:literal, $help:literal, $apply:expr) => {
        Flag {
            name: $name,
            short: None,
            takes: $takes,
            default: $default,
            help: $help,
            section: Section::$section,
            no_effect: None,
            apply: Apply::Options($apply),
        }
    };
}

/// A Go-only flag with no effect: its value is still checked (a typo in it is still a typo).
macro_rules! go_only {
    ($name:literal, $takes:expr, $default:literal, $help:literal, $why:literal, $check:expr) => {
        Flag {
            name: $name,
            short: None,
            takes: $takes,
            default: $default,
            help: $help,
            section: Section::GoCompat,
            no_effect: Some($why),
            apply: Apply::Options($check),
        }
    };
}

macro_rules! command {
    ($cmds:expr, $name:literal, $short:expr, $takes:expr, $help:literal, $apply:expr) => {
        Flag {
            name: $name,
            short: $short,
            takes: $takes,
            default: "",
            help: $help,
            section: Section::Commands,
            no_effect: None,
            apply: Apply::Command($cmds, $apply),
        }
    };
}

const BOOL: Takes = Takes::Bool;
const fn val(placeholder: &'static str) -> Takes {
    Takes::Value(placeholder)
}

pub static FLAGS: &[Flag] = &[
    // Cluster access.
    flag!(
        Cluster,
        "kubeconfig",
        val("PATH"),
        "",
        "kubeconfig file (else $KUBECONFIG, ~/.kube/config, in-cluster)",
        |o, v| {
            o.kubeconfig = Some(PathBuf::from(non_empty(v)?));
            Ok(())
        }
    ),
    flag!(Cluster, "context", val("NAME"), "", "kubeconfig context (else its current-context)", |o, v| {
        o.context = Some(non_empty(v)?);
        Ok(())
    }),
    flag!(Cluster, "rate-limit-qps", val("N"), "50", "client-side API rate limit in requests/s; 0 disables", |o, v| {
        let q: f64 = v.trim().parse().map_err(|_| format!("{v:?} is not a number"))?;
        if !q.is_finite() || !(0.0..=100_000.0).contains(&q) {
            return Err(format!("{v:?} is out of range (0 to 100000)"));
        }
        o.rate_limit_qps = q;
        Ok(())
    }),
    flag!(Cluster, "rate-limit-burst", val("N"), "100", "client-side API burst", |o, v| {
        o.rate_limit_burst = count_in(v, 1, 100_000)? as u32;
        Ok(())
    }),
    // What to mirror.
    flag!(
        Mirroring,
        "resource-types",
        val("LIST"),
        "",
        "explicit types, Kind.version[.group] (Secret.v1,Ingress.v1.networking.k8s.io); replaces discovery",
        |o, v| {
            discovery::parse_type_list(v)?;
            o.resource_types = Some(v.trim().to_string()).filter(|s| !s.is_empty());
            Ok(())
        }
    ),
    flag!(
        Mirroring,
        "deny-resource-types",
        val("LIST"),
        "",
        "extra deny-list entries: Kind, Kind.group or *.group",
        |o, v| {
            DenyList::empty().extend(v)?;
            o.deny_resource_types = v.to_string();
            Ok(())
        }
    ),
    flag!(Mirroring, "discovery-interval", val("DUR"), "5m", "rediscovery period in auto mode", |o, v| {
        o.discovery_interval = dur(v, Duration::from_secs(1))?;
        Ok(())
    }),
    flag!(
        Mirroring,
        "included-namespaces",
        val("LIST"),
        "",
        "only these target namespaces (names or globs)",
        |o, v| {
            NamespaceFilter::new(v, "").map_err(strip_flag)?;
            o.included_namespaces = v.to_string();
            Ok(())
        }
    ),
    flag!(
        Mirroring,
        "excluded-namespaces",
        val("LIST"),
        "",
        "never these target namespaces (names or globs; kube-system, kube-public, kube-node-lease always)",
        |o, v| {
            NamespaceFilter::new("", v).map_err(strip_flag)?;
            o.excluded_namespaces = v.to_string();
            Ok(())
        }
    ),
    flag!(
        Mirroring,
        "max-targets",
        val("N"),
        "100",
        "most targets per source, the first N by name; 0 = no limit",
        |o, v| {
            o.max_targets = count(v)?;
            Ok(())
        }
    ),
    flag!(
        Mirroring,
        "require-target-consent",
        BOOL,
        "false",
        "a namespace receives mirrors only if it allows them",
        |o, v| {
            o.require_target_consent = boolean(v)?;
            Ok(())
        }
    ),
    flag!(
        Mirroring,
        "consent-required-kinds",
        val("LIST"),
        "Deployment,ReplicaSet,StatefulSet,DaemonSet,Job,CronJob,ReplicationController,PodTemplate",
        "kinds mirrored only into consenting namespaces; empty: none",
        |o, v| {
            o.consent_required_kinds = kinds(v)?;
            Ok(())
        }
    ),
    flag!(
        Mirroring,
        "strip-metadata",
        val("LIST"),
        "GitOps keys",
        "label/annotation keys or prefixes (ending in *) never copied to mirrors",
        |o, v| {
            o.strip_metadata = Some(strip_list(v)?);
            Ok(())
        }
    ),
    flag!(
        Mirroring,
        "transform-max-bytes",
        val("N"),
        "10240",
        "largest transform annotation accepted, in bytes",
        |o, v| {
            o.transform_max_bytes = count_in(v, 1, 262_144)?;
            Ok(())
        }
    ),
    flag!(Mirroring, "transform-max-rules", val("N"), "50", "most rules in one transform annotation", |o, v| {
        o.transform_max_rules = count_in(v, 1, 10_000)?;
        Ok(())
    }),
    flag!(
        Mirroring,
        "verify-source-freshness",
        BOOL,
        "false",
        "GET the source before writing its mirrors (one read per writing pass)",
        |o, v| {
            o.verify_source_freshness = boolean(v)?;
            Ok(())
        }
    ),
    // Runtime.
    flag!(Runtime, "worker-threads", val("N"), "5", "concurrent reconciles", |o, v| {
        o.worker_threads = count_in(v, 1, MAX_WORKERS)?;
        Ok(())
    }),
    flag!(Runtime, "leader-elect", BOOL, "true", "elect a leader with a Lease (run several replicas)", |o, v| {
        o.leader_elect = boolean(v)?;
        Ok(())
    }),
    flag!(Runtime, "leader-election-id", val("NAME"), "kubemirror-controller-leader", "Lease name", |o, v| {
        o.leader_election_id = dns_name(v, false)?;
        Ok(())
    }),
    flag!(
        Runtime,
        "leader-election-namespace",
        val("NS"),
        "",
        "Lease namespace (else POD_NAMESPACE, the service account's, the kubeconfig's)",
        |o, v| {
            o.leader_election_namespace = Some(dns_name(v, true)?);
            Ok(())
        }
    ),
    flag!(Runtime, "lease-duration", val("DUR"), "15s", "how long a Lease is valid without renewal", |o, v| {
        o.lease_duration = dur(v, Duration::from_secs(1))?;
        Ok(())
    }),
    flag!(Runtime, "renew-deadline", val("DUR"), "10s", "a leader that cannot renew for this long stops", |o, v| {
        o.renew_deadline = dur(v, Duration::from_millis(1))?;
        Ok(())
    }),
    flag!(Runtime, "retry-period", val("DUR"), "2s", "Lease renew/acquire period", |o, v| {
        o.retry_period = dur(v, Duration::from_millis(1))?;
        Ok(())
    }),
    flag!(Runtime, "metrics-bind-address", val("ADDR"), ":8080", "Prometheus /metrics; 0 disables", |o, v| {
        o.metrics_bind_address = bind_address(v)?;
        Ok(())
    }),
    flag!(Runtime, "health-probe-bind-address", val("ADDR"), ":8081", "/healthz and /readyz; 0 disables", |o, v| {
        o.health_probe_bind_address = bind_address(v)?;
        Ok(())
    }),
    // Logging.
    flag!(
        Logging,
        "log-level",
        val("LEVEL"),
        "info",
        "trace, debug, info, warn, error or off (wins over RUST_LOG and LOG_LEVEL)",
        |o, v| {
            o.log_level = Some(log_level(v)?);
            Ok(())
        }
    ),
    flag!(Logging, "log-format", val("FORMAT"), "text", "text, or json: one JSON object per line", |o, v| {
        o.log_format = match v.trim() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => return Err(format!("{other:?} is not text or json")),
        };
        Ok(())
    }),
    // The Go version's flags.
    Flag {
        name: "zap-log-level",
        short: None,
        takes: val("LEVEL"),
        default: "",
        help: "as --log-level (zap's debug, info, error... or a verbosity)",
        section: Section::GoCompat,
        no_effect: None,
        apply: Apply::Options(|o, v| {
            o.log_level = Some(zap_level(v)?);
            Ok(())
        }),
    },
    Flag {
        name: "zap-encoder",
        short: None,
        takes: val("ENC"),
        default: "",
        help: "json: as --log-format=json; console: text",
        section: Section::GoCompat,
        no_effect: None,
        apply: Apply::Options(|o, v| {
            one_of(v, &["json", "console"])?;
            o.log_format = if v.trim() == "json" { LogFormat::Json } else { LogFormat::Text };
            Ok(())
        }),
    },
    go_only!(
        "resync-period",
        val("DUR"),
        "",
        "periodic full re-reconcile",
        "watches and drift detection keep mirrors in sync without it",
        |_, v| dur(v, Duration::ZERO).map(drop)
    ),
    go_only!(
        "lazy-watcher-init",
        BOOL,
        "",
        "watch a type only once it has sources",
        "watches are label-filtered: an unused type costs two idle watches",
        |_, v| boolean(v).map(drop)
    ),
    go_only!("watcher-scan-interval", val("DUR"), "", "lazy-watcher scan period", "there is no lazy scan", |_, v| dur(
        v,
        Duration::ZERO
    )
    .map(drop)),
    go_only!("zap-devel", BOOL, "", "zap development mode", "use --log-level and --log-format", |_, v| boolean(v)
        .map(drop)),
    go_only!(
        "zap-stacktrace-level",
        val("LEVEL"),
        "",
        "zap stack traces from this level",
        "log lines carry no stack traces",
        |_, v| zap_level(v).map(drop)
    ),
    go_only!("zap-time-encoding", val("ENC"), "", "zap time format", "times are always RFC 3339 UTC", |_, v| one_of(
        v,
        &["epoch", "millis", "nano", "iso8601", "rfc3339", "rfc3339nano"]
    )),
    // Command flags.
    command!(
        EXPLAIN,
        "filename",
        Some('f'),
        val("FILE"),
        "explain the source(s) in this YAML file (- for stdin)",
        |c, v| {
            c.filename = Some(PathBuf::from(non_empty(v)?));
            Ok(())
        }
    ),
    command!(
        EXPLAIN,
        "output",
        Some('o'),
        val("text|yaml|json"),
        "explain: text (default), or the mirror(s) that would be written as yaml or json",
        |c, v| {
            c.output = match v.trim() {
                "text" => Output::Text,
                "yaml" => Output::Yaml,
                "json" => Output::Json,
                other => return Err(format!("{other:?} is not text, yaml or json")),
            };
            Ok(())
        }
    ),
    command!(
        EXPLAIN,
        "namespace",
        None,
        val("NS"),
        "explain -o yaml|json: only the mirror for this target namespace",
        |c, v| {
            c.namespace = Some(dns_name(v, true)?);
            Ok(())
        }
    ),
    command!(CLEANUP, "dry-run", None, BOOL, "cleanup: print what would be done, change nothing", |c, v| {
        c.dry_run = boolean(v)?;
        Ok(())
    }),
    command!(
        CLEANUP,
        "force",
        None,
        BOOL,
        "cleanup: run even while another instance holds the leader Lease",
        |c, v| {
            c.force = boolean(v)?;
            Ok(())
        }
    ),
];

/// NamespaceFilter's messages start with the flag name, which the parser adds already.
fn strip_flag(e: String) -> String {
    match e.split_once(": ") {
        Some((flag, rest)) if flag.starts_with("--") => rest.to_string(),
        _ => e,
    }
}
