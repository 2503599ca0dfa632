//! Controller flags: the Go original's names and defaults (BEHAVIOR.md §K), so existing Helm values
//! and manifests keep working, plus the additions of this implementation. Parsed and validated
//! once at start; a bad value is a startup error naming the flag.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::client::{ClientOptions, LoadOptions};
use crate::util::duration;

pub const HELP: &str = "\
kubemirror: mirror namespaced Kubernetes objects into the namespaces their annotations name

USAGE:
  kubemirror [FLAGS]                 run the controller
  kubemirror check-connection        load the client configuration, print the server version, exit

CLUSTER ACCESS:
  --kubeconfig PATH                  kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)
  --context NAME                     kubeconfig context (default: current-context)
  --rate-limit-qps N                 client-side API rate limit, requests/s (50; 0 disables)
  --rate-limit-burst N               client-side API burst (100)

WHAT TO MIRROR:
  --resource-types LIST              explicit types, Kind.version[.group] (e.g. Secret.v1,Ingress.v1.networking.k8s.io);
                                     replaces discovery
  --deny-resource-types LIST         extra deny-list entries: Kind, Kind.group or *.group
  --discovery-interval DUR           rediscovery period in auto mode (5m)
  --included-namespaces LIST         only these target namespaces (names or globs)
  --excluded-namespaces LIST         never these target namespaces (names or globs; kube-system,
                                     kube-public, kube-node-lease always excluded)
  --max-targets N                    most targets per source; the first N by name are kept (100; 0 = no limit)
  --require-target-consent           a namespace receives mirrors only if it allows them
  --strip-metadata LIST              label/annotation keys or prefixes (ending in /) never copied
                                     (default: GitOps tracking metadata)
  --transform-max-bytes N            largest transform annotation accepted, bytes (10240; 1..262144)
  --transform-max-rules N            most transformation rules per source (50; 1..10000)

RUNTIME:
  --worker-threads N                 concurrent reconciles (5)
  --leader-elect BOOL                elect a leader with a Lease (true)
  --leader-election-id NAME          Lease name (kubemirror-controller-leader)
  --leader-election-namespace NS     Lease namespace (default: POD_NAMESPACE or the service-account namespace)
  --lease-duration DUR               (15s)
  --renew-deadline DUR               (10s)
  --retry-period DUR                 (2s)
  --metrics-bind-address ADDR        Prometheus endpoint (:8080; 0 disables)
  --health-probe-bind-address ADDR   /healthz and /readyz (:8081; 0 disables)

  -h, --help                         this text
  -V, --version                      print the version

Logging: RUST_LOG (e.g. RUST_LOG=info or RUST_LOG=kubemirror=debug).
Durations use Go syntax: 500ms, 30s, 5m, 1h30m.
";

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub rate_limit_qps: f64,
    pub rate_limit_burst: u32,
    pub resource_types: Option<String>,
    pub deny_resource_types: String,
    pub discovery_interval: Duration,
    pub included_namespaces: String,
    pub excluded_namespaces: String,
    pub max_targets: usize,
    pub require_target_consent: bool,
    pub strip_metadata: Option<String>,
    pub transform_max_bytes: usize,
    pub transform_max_rules: usize,
    pub worker_threads: usize,
    pub leader_elect: bool,
    pub leader_election_id: String,
    pub leader_election_namespace: Option<String>,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
    pub metrics_bind_address: Option<SocketAddr>,
    pub health_probe_bind_address: Option<SocketAddr>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            kubeconfig: None,
            context: None,
            rate_limit_qps: 50.0,
            rate_limit_burst: 100,
            resource_types: None,
            deny_resource_types: String::new(),
            discovery_interval: Duration::from_secs(300),
            included_namespaces: String::new(),
            excluded_namespaces: String::new(),
            max_targets: 100,
            require_target_consent: false,
            strip_metadata: None,
            transform_max_bytes: 10_240,
            transform_max_rules: 50,
            worker_threads: 5,
            leader_elect: true,
            leader_election_id: "kubemirror-controller-leader".to_string(),
            leader_election_namespace: None,
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
            metrics_bind_address: Some(SocketAddr::from(([0, 0, 0, 0], 8080))),
            health_probe_bind_address: Some(SocketAddr::from(([0, 0, 0, 0], 8081))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionsError(pub String);

impl std::fmt::Display for OptionsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for OptionsError {}

/// `:8080`, `0.0.0.0:8080`, `[::]:8080`; `0` or empty disables the endpoint.
fn bind_address(flag: &str, v: &str) -> Result<Option<SocketAddr>, OptionsError> {
    let v = v.trim();
    if v.is_empty() || v == "0" {
        return Ok(None);
    }
    let full = if v.starts_with(':') { format!("0.0.0.0{v}") } else { v.to_string() };
    full.parse()
        .map(Some)
        .map_err(|_| OptionsError(format!("{flag}: {v:?} is not an address like :8080 or 127.0.0.1:8080")))
}

fn boolean(flag: &str, v: &str) -> Result<bool, OptionsError> {
    match v.trim() {
        "true" | "1" | "t" | "T" | "TRUE" | "True" => Ok(true),
        "false" | "0" | "f" | "F" | "FALSE" | "False" => Ok(false),
        other => Err(OptionsError(format!("{flag}: {other:?} is not a boolean"))),
    }
}

fn number<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, OptionsError> {
    v.trim().parse().map_err(|_| OptionsError(format!("{flag}: {v:?} is not a valid number")))
}

fn dur(flag: &str, v: &str) -> Result<Duration, OptionsError> {
    duration::parse(v).map_err(|e| OptionsError(format!("{flag}: {e}")))
}

impl Options {
    /// Parses every flag from `args`, leaving free arguments (the subcommand) for the caller.
    pub fn from_args(args: &mut pico_args::Arguments) -> Result<Self, OptionsError> {
        let mut o = Options::default();
        let pe = |e: pico_args::Error| OptionsError(e.to_string());
        let mut s =
            |name: &'static str| -> Result<Option<String>, OptionsError> { args.opt_value_from_str(name).map_err(pe) };
        if let Some(v) = s("--kubeconfig")? {
            o.kubeconfig = Some(PathBuf::from(v));
        }
        o.context = s("--context")?;
        if let Some(v) = s("--rate-limit-qps")? {
            o.rate_limit_qps = number("--rate-limit-qps", &v)?;
        }
        if let Some(v) = s("--rate-limit-burst")? {
            o.rate_limit_burst = number("--rate-limit-burst", &v)?;
        }
        o.resource_types = s("--resource-types")?.filter(|v| !v.trim().is_empty());
        if let Some(v) = s("--deny-resource-types")? {
            o.deny_resource_types = v;
        }
        if let Some(v) = s("--discovery-interval")? {
            o.discovery_interval = dur("--discovery-interval", &v)?;
        }
        if let Some(v) = s("--included-namespaces")? {
            o.included_namespaces = v;
        }
        if let Some(v) = s("--excluded-namespaces")? {
            o.excluded_namespaces = v;
        }
        if let Some(v) = s("--max-targets")? {
            // The original accepts 0 or negative for "no limit".
            let n: i64 = number("--max-targets", &v)?;
            o.max_targets = usize::try_from(n).unwrap_or(0);
        }
        if let Some(v) = s("--require-target-consent")? {
            o.require_target_consent = boolean("--require-target-consent", &v)?;
        }
        o.strip_metadata = s("--strip-metadata")?;
        if let Some(v) = s("--transform-max-bytes")? {
            o.transform_max_bytes = number("--transform-max-bytes", &v)?;
        }
        if let Some(v) = s("--transform-max-rules")? {
            o.transform_max_rules = number("--transform-max-rules", &v)?;
        }
        if let Some(v) = s("--worker-threads")? {
            o.worker_threads = number("--worker-threads", &v)?;
        }
        if let Some(v) = s("--leader-elect")? {
            o.leader_elect = boolean("--leader-elect", &v)?;
        }
        if let Some(v) = s("--leader-election-id")? {
            o.leader_election_id = v;
        }
        o.leader_election_namespace = s("--leader-election-namespace")?;
        if let Some(v) = s("--lease-duration")? {
            o.lease_duration = dur("--lease-duration", &v)?;
        }
        if let Some(v) = s("--renew-deadline")? {
            o.renew_deadline = dur("--renew-deadline", &v)?;
        }
        if let Some(v) = s("--retry-period")? {
            o.retry_period = dur("--retry-period", &v)?;
        }
        if let Some(v) = s("--metrics-bind-address")? {
            o.metrics_bind_address = bind_address("--metrics-bind-address", &v)?;
        }
        if let Some(v) = s("--health-probe-bind-address")? {
            o.health_probe_bind_address = bind_address("--health-probe-bind-address", &v)?;
        }
        o.validate()?;
        Ok(o)
    }

    /// Parses a complete argument list of flags only; anything else is an error.
    pub fn parse(mut args: pico_args::Arguments) -> Result<Self, OptionsError> {
        let o = Options::from_args(&mut args)?;
        let rest = args.finish();
        if let Some(first) = rest.first() {
            return Err(OptionsError(format!("unknown argument {:?} (see --help)", first.to_string_lossy())));
        }
        Ok(o)
    }

    pub fn load_options(&self) -> LoadOptions {
        LoadOptions { kubeconfig: self.kubeconfig.clone(), context: self.context.clone() }
    }

    pub fn client_options(&self) -> ClientOptions {
        ClientOptions { qps: self.rate_limit_qps, burst: self.rate_limit_burst, ..ClientOptions::default() }
    }

    pub fn validate(&self) -> Result<(), OptionsError> {
        if self.worker_threads == 0 {
            return Err(OptionsError("--worker-threads must be at least 1".into()));
        }
        if self.rate_limit_qps < 0.0 || !self.rate_limit_qps.is_finite() {
            return Err(OptionsError("--rate-limit-qps must be 0 (disabled) or positive".into()));
        }
        if self.rate_limit_burst == 0 {
            return Err(OptionsError("--rate-limit-burst must be at least 1".into()));
        }
        if self.context.as_deref() == Some("") {
            return Err(OptionsError("--context must not be empty".into()));
        }
        // client-go's rule: LeaseDuration > RenewDeadline > JitterFactor(1.2) × RetryPeriod.
        if self.leader_elect
            && !(self.lease_duration > self.renew_deadline && self.renew_deadline > self.retry_period.mul_f64(1.2))
        {
            return Err(OptionsError(format!(
                "leader election timings must satisfy lease-duration ({:?}) > renew-deadline ({:?}) > 1.2 × retry-period ({:?})",
                self.lease_duration, self.renew_deadline, self.retry_period
            )));
        }
        // Kubernetes caps all annotations of an object together at 256 KiB.
        if !(1..=262_144).contains(&self.transform_max_bytes) {
            return Err(OptionsError("--transform-max-bytes must be between 1 and 262144".into()));
        }
        if !(1..=10_000).contains(&self.transform_max_rules) {
            return Err(OptionsError("--transform-max-rules must be between 1 and 10000".into()));
        }
        if self.discovery_interval < Duration::from_secs(1) {
            return Err(OptionsError("--discovery-interval must be at least 1s".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, OptionsError> {
        Options::parse(pico_args::Arguments::from_vec(args.iter().map(Into::into).collect()))
    }

    #[test]
    fn defaults_match_the_original() {
        let o = parse(&[]).unwrap();
        assert_eq!(o, Options::default());
        assert_eq!(o.max_targets, 100);
        assert_eq!(o.worker_threads, 5);
        assert_eq!(o.metrics_bind_address, Some("0.0.0.0:8080".parse().unwrap()));
    }

    #[test]
    fn transform_limits() {
        let o = parse(&["--transform-max-bytes=20480", "--transform-max-rules", "80"]).unwrap();
        assert_eq!((o.transform_max_bytes, o.transform_max_rules), (20_480, 80));
        assert_eq!((Options::default().transform_max_bytes, Options::default().transform_max_rules), (10_240, 50));
        for bad in [
            "--transform-max-bytes=0",
            "--transform-max-bytes=300000",
            "--transform-max-rules=0",
            "--transform-max-rules=x",
        ] {
            assert!(parse(&[bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn chart_style_arguments() {
        let o = parse(&[
            "--leader-elect=false",
            "--metrics-bind-address=:9090",
            "--health-probe-bind-address",
            "127.0.0.1:9091",
            "--max-targets=-1",
            "--worker-threads=2",
            "--rate-limit-qps=50.0",
            "--resource-types=Secret.v1,ConfigMap.v1",
            "--discovery-interval=1m",
        ])
        .unwrap();
        assert!(!o.leader_elect);
        assert_eq!(o.metrics_bind_address, Some("0.0.0.0:9090".parse().unwrap()));
        assert_eq!(o.health_probe_bind_address, Some("127.0.0.1:9091".parse().unwrap()));
        assert_eq!(o.max_targets, 0);
        assert_eq!(o.resource_types.as_deref(), Some("Secret.v1,ConfigMap.v1"));
        assert_eq!(o.discovery_interval, Duration::from_secs(60));
        assert_eq!(parse(&["--metrics-bind-address=0"]).unwrap().metrics_bind_address, None);
    }

    #[test]
    fn bad_values_name_the_flag() {
        for (args, needle) in [
            (vec!["--worker-threads=x"], "--worker-threads"),
            (vec!["--worker-threads=0"], "--worker-threads"),
            (vec!["--discovery-interval=5"], "--discovery-interval"),
            (vec!["--leader-elect=maybe"], "--leader-elect"),
            (vec!["--metrics-bind-address=nope"], "--metrics-bind-address"),
            (vec!["--renew-deadline=20s"], "lease-duration"),
            (vec!["--bogus"], "unknown argument"),
        ] {
            let e = parse(&args).unwrap_err();
            assert!(e.0.contains(needle), "{args:?}: {e}");
        }
    }
}
