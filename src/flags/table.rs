//! Every flag: name, help, default and the check of its value ([`super::values`]).

use std::path::PathBuf;
use std::time::Duration;

use super::values::{self as check, ValueError, invalid};
use super::{Apply, Flag, Section, Takes};
use crate::cli::Output;
use crate::discovery::{self, DenyList};
use crate::mirror::targets::NamespaceFilter;
use crate::options::LogFormat;

const MAX_WORKERS: usize = 1000;

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
            o.kubeconfig = Some(PathBuf::from(check::non_empty(v)?));
            Ok(())
        }
    ),
    flag!(Cluster, "context", val("NAME"), "", "kubeconfig context (else its current-context)", |o, v| {
        o.context = Some(check::non_empty(v)?);
        Ok(())
    }),
    flag!(Cluster, "rate-limit-qps", val("N"), "50", "client-side API rate limit in requests/s; 0 disables", |o, v| {
        o.rate_limit_qps = check::number_in(v, 0.0, 100_000.0)?;
        Ok(())
    }),
    flag!(Cluster, "rate-limit-burst", val("N"), "100", "client-side API burst", |o, v| {
        o.rate_limit_burst = check::count_in(v, 1, 100_000)? as u32;
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
            discovery::parse_type_list(v).map_err(invalid)?;
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
            DenyList::empty().extend(v).map_err(|e| invalid(e.to_string()))?;
            o.deny_resource_types = v.to_string();
            Ok(())
        }
    ),
    flag!(Mirroring, "discovery-interval", val("DUR"), "5m", "rediscovery period in auto mode", |o, v| {
        o.discovery_interval = check::dur(v, Duration::from_secs(1))?;
        Ok(())
    }),
    flag!(
        Mirroring,
        "included-namespaces",
        val("LIST"),
        "",
        "only these target namespaces (names or globs)",
        |o, v| {
            NamespaceFilter::new(v, "").map_err(invalid)?;
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
            NamespaceFilter::new("", v).map_err(invalid)?;
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
            o.max_targets = check::count(v)?;
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
            o.require_target_consent = check::boolean(v)?;
            Ok(())
        }
    ),
    flag!(
        Mirroring,
        "consent-required-kinds",
        val("LIST"),
        "Deployment,ReplicaSet,StatefulSet,DaemonSet,Job,CronJob,ReplicationController,PodTemplate",
        "kinds mirrored only into consenting namespaces (Kind, Kind.group or *.group); empty: none",
        |o, v| {
            crate::kinds::KindList::parse(v).map_err(|e| invalid(e.to_string()))?;
            o.consent_required_kinds = v.to_string();
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
            o.strip_metadata = Some(check::strip_list(v)?);
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
            o.transform_max_bytes = check::count_in(v, 1, 262_144)?;
            Ok(())
        }
    ),
    flag!(Mirroring, "transform-max-rules", val("N"), "50", "most rules in one transform annotation", |o, v| {
        o.transform_max_rules = check::count_in(v, 1, 10_000)?;
        Ok(())
    }),
    flag!(
        Mirroring,
        "verify-source-freshness",
        BOOL,
        "false",
        "GET the source before writing its mirrors (one read per writing pass)",
        |o, v| {
            o.verify_source_freshness = check::boolean(v)?;
            Ok(())
        }
    ),
    // Runtime.
    flag!(Runtime, "worker-threads", val("N"), "5", "concurrent reconciles", |o, v| {
        o.worker_threads = check::count_in(v, 1, MAX_WORKERS)?;
        Ok(())
    }),
    flag!(Runtime, "leader-elect", BOOL, "true", "elect a leader with a Lease (run several replicas)", |o, v| {
        o.leader_elect = check::boolean(v)?;
        Ok(())
    }),
    flag!(Runtime, "leader-election-id", val("NAME"), "kubemirror-controller-leader", "Lease name", |o, v| {
        o.leader_election_id = check::dns_name(v, false)?;
        Ok(())
    }),
    flag!(
        Runtime,
        "leader-election-namespace",
        val("NS"),
        "",
        "Lease namespace (else POD_NAMESPACE, the service account's, the kubeconfig's)",
        |o, v| {
            o.leader_election_namespace = Some(check::dns_name(v, true)?);
            Ok(())
        }
    ),
    flag!(Runtime, "lease-duration", val("DUR"), "15s", "how long a Lease is valid without renewal", |o, v| {
        o.lease_duration = check::dur(v, Duration::from_secs(1))?;
        Ok(())
    }),
    flag!(Runtime, "renew-deadline", val("DUR"), "10s", "a leader that cannot renew for this long stops", |o, v| {
        o.renew_deadline = check::dur(v, Duration::from_millis(1))?;
        Ok(())
    }),
    flag!(Runtime, "retry-period", val("DUR"), "2s", "Lease renew/acquire period", |o, v| {
        o.retry_period = check::dur(v, Duration::from_millis(1))?;
        Ok(())
    }),
    flag!(Runtime, "metrics-bind-address", val("ADDR"), ":8080", "Prometheus /metrics; 0 disables", |o, v| {
        o.metrics_bind_address = check::bind_address(v)?;
        Ok(())
    }),
    flag!(Runtime, "health-probe-bind-address", val("ADDR"), ":8081", "/healthz and /readyz; 0 disables", |o, v| {
        o.health_probe_bind_address = check::bind_address(v)?;
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
            o.log_level = Some(check::log_level(v)?);
            Ok(())
        }
    ),
    flag!(Logging, "log-format", val("FORMAT"), "text", "text, or json: one JSON object per line", |o, v| {
        o.log_format = match v.trim() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => return Err(ValueError::NotA { value: other.to_string(), what: "text or json" }),
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
            o.log_level = Some(check::zap_level(v)?);
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
            check::one_of(v, &["json", "console"])?;
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
        |_, v| check::dur(v, Duration::ZERO).map(drop)
    ),
    go_only!(
        "lazy-watcher-init",
        BOOL,
        "",
        "watch a type only once it has sources",
        "watches are label-filtered: an unused type costs two idle watches",
        |_, v| check::boolean(v).map(drop)
    ),
    go_only!("watcher-scan-interval", val("DUR"), "", "lazy-watcher scan period", "there is no lazy scan", |_, v| {
        check::dur(v, Duration::ZERO).map(drop)
    }),
    go_only!("zap-devel", BOOL, "", "zap development mode", "use --log-level and --log-format", |_, v| check::boolean(
        v
    )
    .map(drop)),
    go_only!(
        "zap-stacktrace-level",
        val("LEVEL"),
        "",
        "zap stack traces from this level",
        "log lines carry no stack traces",
        |_, v| check::zap_level(v).map(drop)
    ),
    go_only!("zap-time-encoding", val("ENC"), "", "zap time format", "times are always RFC 3339 UTC", |_, v| {
        check::one_of(v, &["epoch", "millis", "nano", "iso8601", "rfc3339", "rfc3339nano"])
    }),
    // Command flags.
    command!(
        EXPLAIN,
        "filename",
        Some('f'),
        val("FILE"),
        "explain the source(s) in this YAML file (- for stdin)",
        |c, v| {
            c.filename = Some(PathBuf::from(check::non_empty(v)?));
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
                other => return Err(ValueError::NotA { value: other.to_string(), what: "text, yaml or json" }),
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
            c.namespace = Some(check::dns_name(v, true)?);
            Ok(())
        }
    ),
    command!(CLEANUP, "dry-run", None, BOOL, "cleanup: print what would be done, change nothing", |c, v| {
        c.dry_run = check::boolean(v)?;
        Ok(())
    }),
    command!(
        CLEANUP,
        "force",
        None,
        BOOL,
        "cleanup: run even while another instance holds the leader Lease",
        |c, v| {
            c.force = check::boolean(v)?;
            Ok(())
        }
    ),
];
