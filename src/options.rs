//! The controller's settings: the Go original's flag names and defaults (BEHAVIOR.md §K), so
//! existing Helm values and manifests keep working, plus the additions of this implementation.
//!
//! This module holds the values and the rules between them; how they are read from the command
//! line and the environment, and their help texts, is [`crate::flags`]. Every value is checked once
//! at start-up: a bad one is a usage error naming the flag (exit code 2), never a panic later.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::client::{ClientOptions, LoadOptions};

/// The kinds whose mirrors run workloads: mirrored only into namespaces that consent, whatever
/// `--require-target-consent` says (`--consent-required-kinds`).
pub const DEFAULT_CONSENT_REQUIRED_KINDS: &str =
    "Deployment,ReplicaSet,StatefulSet,DaemonSet,Job,CronJob,ReplicationController,PodTemplate";

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One line per event: `<RFC 3339 time> <LEVEL> <target>: <message>`.
    #[default]
    Text,
    /// One JSON object per line: `ts`, `level`, `target`, `msg` (and `kind`, `object` for events).
    Json,
}

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
    /// Kinds mirrored only into consenting namespaces ([`crate::kinds`] syntax); empty = none.
    pub consent_required_kinds: String,
    pub strip_metadata: Option<String>,
    /// Limits of the `transform` annotation: its size in bytes and its number of rules.
    pub transform_max_bytes: usize,
    pub transform_max_rules: usize,
    /// One direct GET of the source before a pass writes its mirrors (BEHAVIOR.md §D.3).
    pub verify_source_freshness: bool,
    pub worker_threads: usize,
    pub leader_elect: bool,
    pub leader_election_id: String,
    pub leader_election_namespace: Option<String>,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
    pub metrics_bind_address: Option<SocketAddr>,
    pub health_probe_bind_address: Option<SocketAddr>,
    /// `--log-level` / `--zap-log-level`; `None`: `RUST_LOG`, then `LOG_LEVEL`, then info.
    pub log_level: Option<log::LevelFilter>,
    pub log_format: LogFormat,
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
            consent_required_kinds: DEFAULT_CONSENT_REQUIRED_KINDS.to_string(),
            strip_metadata: None,
            transform_max_bytes: 10 * 1024,
            transform_max_rules: 50,
            verify_source_freshness: false,
            worker_threads: 5,
            leader_elect: true,
            leader_election_id: "kubemirror-controller-leader".to_string(),
            leader_election_namespace: None,
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
            metrics_bind_address: Some(SocketAddr::from(([0, 0, 0, 0], 8080))),
            health_probe_bind_address: Some(SocketAddr::from(([0, 0, 0, 0], 8081))),
            log_level: None,
            log_format: LogFormat::Text,
        }
    }
}

/// A value the user gave that cannot be used; the text names the flag (and the variable it came
/// from, if any). Exit code 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

impl Options {
    pub fn load_options(&self) -> LoadOptions {
        LoadOptions { kubeconfig: self.kubeconfig.clone(), context: self.context.clone() }
    }

    pub fn client_options(&self) -> ClientOptions {
        ClientOptions { qps: self.rate_limit_qps, burst: self.rate_limit_burst, ..ClientOptions::default() }
    }

    /// The rules between flags; each flag's own value was checked when it was read.
    pub fn validate(&self) -> Result<(), UsageError> {
        // client-go's rule: LeaseDuration > RenewDeadline > JitterFactor(1.2) × RetryPeriod.
        if self.leader_elect
            && !(self.lease_duration > self.renew_deadline && self.renew_deadline > self.retry_period.mul_f64(1.2))
        {
            return Err(UsageError(format!(
                "--lease-duration ({:?}) > --renew-deadline ({:?}) > 1.2 × --retry-period ({:?}) does not hold",
                self.lease_duration, self.renew_deadline, self.retry_period
            )));
        }
        // Port 0 picks a free port for each, so only a fixed port can collide.
        let fixed = self.metrics_bind_address.is_some_and(|a| a.port() != 0);
        if fixed && self.metrics_bind_address == self.health_probe_bind_address {
            let addr = self.metrics_bind_address.map(|a| a.to_string()).unwrap_or_default();
            return Err(UsageError(format!(
                "--metrics-bind-address and --health-probe-bind-address are both {addr}; give them different ports"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_original() {
        let o = Options::default();
        assert_eq!(o.max_targets, 100);
        assert_eq!(o.worker_threads, 5);
        assert_eq!(o.metrics_bind_address, Some("0.0.0.0:8080".parse().unwrap()));
        assert_eq!(o.consent_required_kinds.split(',').count(), 8);
        assert_eq!(o.validate(), Ok(()));
    }

    #[test]
    fn rules_between_flags_name_them() {
        let o = Options { renew_deadline: Duration::from_secs(20), ..Options::default() };
        assert!(o.validate().unwrap_err().0.contains("--renew-deadline"));
        // Without leader election the timings do not matter.
        assert_eq!(Options { leader_elect: false, ..o }.validate(), Ok(()));
        let same = Options { health_probe_bind_address: Options::default().metrics_bind_address, ..Options::default() };
        assert!(same.validate().unwrap_err().0.contains("--health-probe-bind-address"));
        let any: Option<std::net::SocketAddr> = Some("127.0.0.1:0".parse().unwrap());
        let both_free = Options { metrics_bind_address: any, health_probe_bind_address: any, ..Options::default() };
        assert_eq!(both_free.validate(), Ok(()));
    }
}
