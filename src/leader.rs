//! Lease-based leader election, compatible with client-go's `leaderelection` on a
//! coordination.k8s.io/v1 Lease, so our instances and any client-go tool read each other's leases.
//!
//! The pure [`Elector`] turns the observed Lease into a [`Decision`]; [`LeaderElector::run`] does
//! the requests and publishes [`Leadership`] on a `watch` channel. Writers check that channel before
//! every write (kubert style), so standbys keep warm caches and only the writes are gated.
//!
//! Safety rules (client-go's):
//! - a follower takes over only after the record has stayed unchanged for a full
//!   `leaseDurationSeconds` *as measured by its own clock since it observed the change*; the
//!   holder's `renewTime` is never compared with our clock, so clock skew cannot cause two leaders;
//! - every write carries the resourceVersion it was decided on (optimistic concurrency);
//! - a leader that has not renewed for `renew_deadline` stops writing (its [`Leadership`] expires
//!   by itself, even if the election task is stuck) and `run` returns an error so the process exits
//!   and restarts clean. `renew_deadline < lease_duration` leaves followers' clocks the margin.

use std::future::Future;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::client::{self, ApiResource, Client, PostParams};
use crate::util::rand::Rng;
use crate::util::time::format_rfc3339_micros;

/// client-go's `JitterFactor`: the renew deadline must exceed 1.2 retry periods.
const JITTER_FACTOR: f64 = 1.2;
const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaderError {
    Config(String),
    /// Renewals failed until the renew deadline: leadership is lost, the process must restart.
    Lost {
        lease: String,
        reason: String,
    },
}

impl std::fmt::Display for LeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeaderError::Config(m) => write!(f, "leader election config: {m}"),
            LeaderError::Lost { lease, reason } => {
                write!(f, "lost leadership of lease {lease}: renewals failed until the renew deadline ({reason})")
            }
        }
    }
}

impl std::error::Error for LeaderError {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderConfig {
    pub lease_name: String,
    pub namespace: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl LeaderConfig {
    /// Kubernetes' recommended timings (component-base, controller-runtime): 15 s / 10 s / 2 s.
    pub fn new(lease_name: &str, namespace: &str, identity: &str) -> Self {
        LeaderConfig {
            lease_name: lease_name.to_string(),
            namespace: namespace.to_string(),
            identity: identity.to_string(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// client-go's `NewLeaderElector` checks.
    pub fn validate(&self) -> Result<(), LeaderError> {
        let err = |m: String| Err(LeaderError::Config(m));
        if self.lease_name.is_empty() || self.namespace.is_empty() {
            return err("lease name and namespace must not be empty".into());
        }
        if self.identity.is_empty() {
            return err("identity must not be empty".into());
        }
        if self.lease_duration < Duration::from_secs(1) || self.renew_deadline.is_zero() || self.retry_period.is_zero()
        {
            return err("lease duration must be at least 1s, renew deadline and retry period positive".into());
        }
        if self.lease_duration <= self.renew_deadline {
            return err(format!(
                "lease duration ({:?}) must be greater than renew deadline ({:?})",
                self.lease_duration, self.renew_deadline
            ));
        }
        if self.renew_deadline.as_secs_f64() <= JITTER_FACTOR * self.retry_period.as_secs_f64() {
            return err(format!(
                "renew deadline ({:?}) must be greater than {JITTER_FACTOR} x retry period ({:?})",
                self.renew_deadline, self.retry_period
            ));
        }
        Ok(())
    }

    fn lease_ref(&self) -> String {
        format!("{}/{}", self.namespace, self.lease_name)
    }
}

/// Pod name (`POD_NAME`, else `HOSTNAME`) plus a random suffix: a restarted pod with the same name
/// must not believe it still holds the previous incarnation's lease.
pub fn identity(pod_name: Option<&str>, hostname: Option<&str>, rng: &mut Rng) -> String {
    let base = pod_name.filter(|s| !s.is_empty()).or(hostname.filter(|s| !s.is_empty())).unwrap_or("kubemirror");
    format!("{base}_{}", rng.suffix(10))
}

pub fn identity_from_env() -> String {
    let (pod, host) = (std::env::var("POD_NAME").ok(), std::env::var("HOSTNAME").ok());
    crate::util::rand::with_global(|rng| identity(pod.as_deref(), host.as_deref(), rng))
}

/// `POD_NAMESPACE`, else the service account's namespace file, else `fallback` (the kubeconfig's).
pub fn namespace_from_env(fallback: &str) -> String {
    let from_env = std::env::var("POD_NAMESPACE").ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    from_env
        .or_else(|| {
            std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| fallback.to_string())
}

/// The Lease spec fields client-go's `LeaderElectionRecord` maps to. Times stay the strings the
/// server holds: we copy `acquireTime` on renewal and never compare remote times with our clock.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaseRecord {
    pub holder: String,
    pub lease_duration_seconds: i64,
    pub acquire_time: Option<String>,
    pub renew_time: Option<String>,
    pub transitions: i64,
}

impl LeaseRecord {
    /// Lenient like client-go's conversion: absent fields read as empty/zero.
    pub fn from_lease(lease: &Value) -> Self {
        let spec = lease.get("spec");
        let s = |k: &str| spec.and_then(|v| v.get(k)).and_then(Value::as_str).map(str::to_string);
        let n = |k: &str| spec.and_then(|v| v.get(k)).and_then(Value::as_i64).unwrap_or(0);
        LeaseRecord {
            holder: s("holderIdentity").unwrap_or_default(),
            lease_duration_seconds: n("leaseDurationSeconds"),
            acquire_time: s("acquireTime"),
            renew_time: s("renewTime"),
            transitions: n("leaseTransitions"),
        }
    }

    fn write_into(&self, spec: &mut serde_json::Map<String, Value>) {
        spec.insert("holderIdentity".into(), json!(self.holder));
        spec.insert("leaseDurationSeconds".into(), json!(self.lease_duration_seconds));
        for (k, v) in [("acquireTime", &self.acquire_time), ("renewTime", &self.renew_time)] {
            match v {
                Some(t) => spec.insert(k.into(), json!(t)),
                None => spec.remove(k),
            };
        }
        spec.insert("leaseTransitions".into(), json!(self.transitions));
    }
}

/// A new Lease object holding `record`.
pub fn new_lease(name: &str, namespace: &str, record: &LeaseRecord) -> Value {
    let mut spec = serde_json::Map::new();
    record.write_into(&mut spec);
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
           "metadata": {"name": name, "namespace": namespace}, "spec": spec})
}

/// `lease` (keeping its resourceVersion, labels and any spec fields we do not manage, such as
/// `strategy`/`preferredHolder`) with our record written into its spec.
pub fn with_record(lease: &Value, record: &LeaseRecord) -> Value {
    let mut out = lease.clone();
    if let Some(meta) = out.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    if let Some(obj) = out.as_object_mut() {
        let spec = obj.entry("spec").or_insert_with(|| json!({}));
        if !spec.is_object() {
            *spec = json!({});
        }
        if let Some(spec) = spec.as_object_mut() {
            record.write_into(spec);
        }
    }
    out
}

/// What to do after looking at the Lease.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// No Lease exists: create it, holding it.
    Create(Value),
    /// Someone else's (expired or released) lease: update it to us, transitions + 1.
    Acquire(Value),
    /// Ours: update renewTime, keeping acquireTime and transitions.
    Renew(Value),
    /// Held by `holder` and still valid by our clock until `until`.
    Wait { until: Instant, holder: String },
}

struct Observed {
    record: LeaseRecord,
    /// Our clock when we first saw this exact record.
    at: Instant,
}

/// The pure election state: who we are and what we last observed, when.
pub struct Elector {
    name: String,
    namespace: String,
    identity: String,
    lease_duration: Duration,
    observed: Option<Observed>,
}

impl Elector {
    pub fn new(cfg: &LeaderConfig) -> Self {
        Elector {
            name: cfg.lease_name.clone(),
            namespace: cfg.namespace.clone(),
            identity: cfg.identity.clone(),
            lease_duration: cfg.lease_duration,
            observed: None,
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    fn my_record(&self, acquire_time: Option<String>, renew_time: String, transitions: i64) -> LeaseRecord {
        LeaseRecord {
            holder: self.identity.clone(),
            lease_duration_seconds: self.lease_duration.as_secs() as i64,
            acquire_time,
            renew_time: Some(renew_time),
            transitions,
        }
    }

    /// Records `lease` as observed at `now` (if it changed) and decides; `wall` stamps the write.
    pub fn decide(&mut self, lease: Option<&Value>, now: Instant, wall: SystemTime) -> Decision {
        let stamp = format_rfc3339_micros(wall);
        let Some(lease) = lease else {
            self.observed = None;
            return Decision::Create(new_lease(
                &self.name,
                &self.namespace,
                &self.my_record(Some(stamp.clone()), stamp, 0),
            ));
        };
        let record = LeaseRecord::from_lease(lease);
        self.observe(record.clone(), now);
        let observed_at = self.observed.as_ref().map_or(now, |o| o.at);
        if record.holder == self.identity {
            let mine = self.my_record(record.acquire_time.clone(), stamp, record.transitions);
            return Decision::Renew(with_record(lease, &mine));
        }
        let valid_for = Duration::from_secs(record.lease_duration_seconds.max(0) as u64);
        // An absurd duration from the cluster must not overflow the clock: treat it as "a long time".
        let until = observed_at.checked_add(valid_for).unwrap_or(observed_at + Duration::from_secs(86_400 * 365));
        if !record.holder.is_empty() && until > now {
            return Decision::Wait { until, holder: record.holder };
        }
        let mine = self.my_record(Some(stamp.clone()), stamp, record.transitions.saturating_add(1));
        Decision::Acquire(with_record(lease, &mine))
    }

    /// After a successful write: what we wrote is what we observe now.
    pub fn written(&mut self, lease: &Value, now: Instant) {
        self.observe(LeaseRecord::from_lease(lease), now);
    }

    fn observe(&mut self, record: LeaseRecord, now: Instant) {
        if self.observed.as_ref().is_none_or(|o| o.record != record) {
            self.observed = Some(Observed { record, at: now });
        }
    }

    /// The update that gives the lease up, if we hold it: no holder, 1 s duration, transitions kept,
    /// so a standby acquires it on its next try instead of waiting out the lease (client-go's
    /// `ReleaseOnCancel`).
    pub fn release(&self, lease: &Value, wall: SystemTime) -> Option<Value> {
        let record = LeaseRecord::from_lease(lease);
        if record.holder != self.identity {
            return None;
        }
        let stamp = format_rfc3339_micros(wall);
        let released = LeaseRecord {
            holder: String::new(),
            lease_duration_seconds: 1,
            acquire_time: Some(stamp.clone()),
            renew_time: Some(stamp),
            transitions: record.transitions,
        };
        Some(with_record(lease, &released))
    }
}

/// Published leadership. Check [`is_leader`](Leadership::is_leader) right before every write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leadership {
    /// We hold the lease; valid until `until` unless a renewal extends it.
    Leading {
        until: Instant,
    },
    Following {
        holder: Option<String>,
    },
    /// `--leader-elect=false`: always allowed to write.
    Standalone,
}

impl Leadership {
    pub fn is_leader(&self) -> bool {
        match self {
            Leadership::Leading { until } => Instant::now() < *until,
            Leadership::Following { .. } => false,
            Leadership::Standalone => true,
        }
    }

    /// A channel that always says "write" (leader election disabled). Its sender lives for the
    /// whole process, so `changed().await` waits forever instead of failing at once.
    pub fn standalone() -> watch::Receiver<Leadership> {
        static SENDER: std::sync::OnceLock<watch::Sender<Leadership>> = std::sync::OnceLock::new();
        SENDER.get_or_init(|| watch::Sender::new(Leadership::Standalone)).subscribe()
    }
}

/// The three Lease requests the election makes; a trait so the loop is testable without a server.
pub trait LeaseApi: Send + Sync {
    fn get(&self) -> impl Future<Output = client::Result<Value>> + Send;
    fn create(&self, lease: &Value) -> impl Future<Output = client::Result<Value>> + Send;
    fn update(&self, lease: &Value) -> impl Future<Output = client::Result<Value>> + Send;
}

/// [`LeaseApi`] on our client.
pub struct ClientLeases {
    client: Client,
    resource: ApiResource,
    namespace: String,
    name: String,
}

impl ClientLeases {
    pub fn new(client: Client, cfg: &LeaderConfig) -> Self {
        ClientLeases {
            client,
            resource: ApiResource::leases(),
            namespace: cfg.namespace.clone(),
            name: cfg.lease_name.clone(),
        }
    }
}

impl LeaseApi for ClientLeases {
    fn get(&self) -> impl Future<Output = client::Result<Value>> + Send {
        self.client.get(&self.resource, Some(&self.namespace), &self.name)
    }

    fn create(&self, lease: &Value) -> impl Future<Output = client::Result<Value>> + Send {
        let params = PostParams::default();
        async move { self.client.create(&self.resource, Some(&self.namespace), lease, &params).await }
    }

    fn update(&self, lease: &Value) -> impl Future<Output = client::Result<Value>> + Send {
        let params = PostParams::default();
        async move { self.client.update(&self.resource, Some(&self.namespace), &self.name, lease, &params).await }
    }
}

enum Attempt {
    Leading,
    Following(Option<String>),
}

/// The election loop.
pub struct LeaderElector<A: LeaseApi> {
    api: A,
    cfg: LeaderConfig,
    elector: Elector,
    tx: watch::Sender<Leadership>,
    rng: Rng,
    /// Our last written Lease: renewals update it directly (one request), and only fall back to a
    /// GET when that conflicts.
    last_written: Option<Value>,
}

impl<A: LeaseApi> LeaderElector<A> {
    pub fn new(api: A, cfg: LeaderConfig, rng: Rng) -> Result<(Self, watch::Receiver<Leadership>), LeaderError> {
        cfg.validate()?;
        let (tx, rx) = watch::channel(Leadership::Following { holder: None });
        let elector = Elector::new(&cfg);
        Ok((LeaderElector { api, cfg, elector, tx, rng, last_written: None }, rx))
    }

    pub fn subscribe(&self) -> watch::Receiver<Leadership> {
        self.tx.subscribe()
    }

    /// Campaigns and renews until `shutdown` completes (then releases the lease if held and returns
    /// `Ok`) or leadership is lost (then returns `Err`: exit and restart clean).
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), LeaderError> {
        tokio::pin!(shutdown);
        let lease = self.cfg.lease_ref();
        let mut last_renew: Option<Instant> = None;
        loop {
            let started = Instant::now();
            // No attempt may outlive the renew deadline: a hung request must not keep us "leading".
            let deadline = last_renew.unwrap_or(started) + self.cfg.renew_deadline;
            let outcome = tokio::select! {
                _ = &mut shutdown => None,
                r = tokio::time::timeout_at(deadline, self.attempt(started, last_renew.is_some())) => Some(r),
            };
            let result = match outcome {
                // Shutting down mid-request: the request is abandoned, the release re-reads the lease.
                None => return self.stop(last_renew.is_some()).await,
                Some(Ok(r)) => r,
                Some(Err(_)) => Err(client::Error::Timeout(deadline - started)),
            };
            match result {
                Ok(Attempt::Leading) => {
                    if last_renew.is_none() {
                        log::info!("lease {lease}: acquired by {}", self.cfg.identity);
                    }
                    last_renew = Some(started);
                    self.tx.send_replace(Leadership::Leading { until: started + self.cfg.renew_deadline });
                }
                Ok(Attempt::Following(holder)) => {
                    if last_renew.is_some() {
                        // Someone else holds it now (we were too slow): stop at once.
                        return Err(self.lost(format!("lease now held by {}", holder.unwrap_or_default())));
                    }
                    let next = Leadership::Following { holder };
                    self.tx.send_if_modified(|l| {
                        let changed = *l != next;
                        if changed {
                            *l = next;
                        }
                        changed
                    });
                }
                Err(e) => {
                    log::warn!("lease {lease}: acquire/renew failed: {e}");
                    if let Some(lr) = last_renew
                        && Instant::now() >= lr + self.cfg.renew_deadline
                    {
                        return Err(self.lost(e.to_string()));
                    }
                }
            }
            let next = match last_renew {
                // Leader: every retry period, but wake at the deadline to fence promptly.
                Some(lr) => (started + self.cfg.retry_period).min(lr + self.cfg.renew_deadline),
                // Follower: a little jitter so standbys do not poll in lockstep.
                None => started + self.cfg.retry_period.mul_f64(1.0 + 0.2 * self.rng.next_f64()),
            };
            tokio::select! {
                _ = &mut shutdown => return self.stop(last_renew.is_some()).await,
                _ = tokio::time::sleep_until(next) => {}
            }
        }
    }

    async fn stop(&mut self, leading: bool) -> Result<(), LeaderError> {
        if leading {
            self.release().await;
        }
        Ok(())
    }

    fn lost(&self, reason: String) -> LeaderError {
        self.tx.send_replace(Leadership::Following { holder: None });
        let err = LeaderError::Lost { lease: self.cfg.lease_ref(), reason };
        log::error!("{err}");
        err
    }

    async fn attempt(&mut self, now: Instant, leading: bool) -> client::Result<Attempt> {
        let wall = SystemTime::now();
        if leading && let Some(cached) = self.last_written.take() {
            if let Decision::Renew(lease) = self.elector.decide(Some(&cached), now, wall) {
                match self.api.update(&lease).await {
                    Ok(written) => return Ok(self.wrote(written)),
                    Err(e) => log::debug!("lease {}: optimistic renew failed, re-reading: {e}", self.cfg.lease_ref()),
                }
            }
        }
        let current = match self.api.get().await {
            Ok(v) => Some(v),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        // Observed when the answer arrived (client-go too): timing it from before a slow request
        // would make the record look older than it is and shorten a follower's wait.
        match self.elector.decide(current.as_ref(), Instant::now(), wall) {
            Decision::Create(lease) => Ok(self.wrote(self.api.create(&lease).await?)),
            Decision::Acquire(lease) | Decision::Renew(lease) => Ok(self.wrote(self.api.update(&lease).await?)),
            Decision::Wait { holder, .. } => Ok(Attempt::Following(Some(holder))),
        }
    }

    fn wrote(&mut self, written: Value) -> Attempt {
        self.elector.written(&written, Instant::now());
        self.last_written = Some(written);
        Attempt::Leading
    }

    /// Stop writing first, then hand the lease over. Best effort: if it fails, standbys take over
    /// after the lease duration anyway.
    async fn release(&mut self) {
        self.tx.send_replace(Leadership::Following { holder: None });
        let lease = self.cfg.lease_ref();
        let bound = self.cfg.renew_deadline;
        let release = async {
            let current = match self.last_written.take() {
                Some(v) => v,
                None => self.api.get().await?,
            };
            let Some(update) = self.elector.release(&current, SystemTime::now()) else { return Ok(()) };
            match self.api.update(&update).await {
                Err(e) if e.is_conflict() => {
                    let fresh = self.api.get().await?;
                    match self.elector.release(&fresh, SystemTime::now()) {
                        Some(update) => self.api.update(&update).await.map(drop),
                        None => Ok(()),
                    }
                }
                other => other.map(drop),
            }
        };
        match tokio::time::timeout(bound, release).await {
            Ok(Ok(())) => log::info!("lease {lease}: released by {}", self.cfg.identity),
            Ok(Err(e)) => log::warn!("lease {lease}: release failed: {e}"),
            Err(_) => log::warn!("lease {lease}: release timed out after {bound:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{Reason, Status};
    use crate::util::time::parse_rfc3339;
    use std::sync::{Arc, Mutex};
    use std::time::UNIX_EPOCH;

    fn cfg(id: &str) -> LeaderConfig {
        LeaderConfig::new("kubemirror", "kube-system", id)
    }

    fn wall(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(secs * 1_000_000 + 250)
    }

    fn lease(holder: &str, renew: &str, transitions: i64, rv: &str) -> Value {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
               "metadata": {"name": "kubemirror", "namespace": "kube-system", "resourceVersion": rv,
                            "managedFields": [{"manager": "x"}]},
               "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15,
                        "acquireTime": "2025-01-01T00:00:00.000000Z", "renewTime": renew,
                        "leaseTransitions": transitions, "strategy": "OldestEmulationVersion"}})
    }

    #[test]
    fn config_defaults_and_validation_match_client_go() {
        let c = cfg("me");
        assert_eq!(
            (c.lease_duration, c.renew_deadline, c.retry_period),
            (Duration::from_secs(15), Duration::from_secs(10), Duration::from_secs(2))
        );
        assert!(c.validate().is_ok());
        let bad = |f: fn(&mut LeaderConfig)| {
            let mut c = cfg("me");
            f(&mut c);
            c.validate().unwrap_err().to_string()
        };
        assert!(bad(|c| c.renew_deadline = Duration::from_secs(15)).contains("greater than renew deadline"));
        assert!(bad(|c| c.retry_period = Duration::from_secs(9)).contains("1.2 x retry period"));
        assert!(bad(|c| c.identity.clear()).contains("identity"));
        assert!(bad(|c| c.namespace.clear()).contains("namespace"));
        assert!(bad(|c| c.lease_duration = Duration::from_millis(500)).contains("at least 1s"));
    }

    #[test]
    fn identity_is_pod_name_plus_random_suffix() {
        let mut rng = Rng::seeded(1);
        let a = identity(Some("kubemirror-7d9f"), Some("host"), &mut rng);
        let b = identity(Some("kubemirror-7d9f"), Some("host"), &mut rng);
        assert!(a.starts_with("kubemirror-7d9f_") && a.len() == "kubemirror-7d9f_".len() + 10, "{a}");
        assert_ne!(a, b);
        assert!(identity(None, Some("host"), &mut rng).starts_with("host_"));
        assert!(identity(Some(""), None, &mut rng).starts_with("kubemirror_"));
    }

    #[test]
    fn no_lease_creates_one_with_micro_times() {
        let mut e = Elector::new(&cfg("me"));
        let Decision::Create(l) = e.decide(None, Instant::now(), wall(1_735_689_600)) else { panic!() };
        assert_eq!(
            l,
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                   "metadata": {"name": "kubemirror", "namespace": "kube-system"},
                   "spec": {"holderIdentity": "me", "leaseDurationSeconds": 15,
                            "acquireTime": "2025-01-01T00:00:00.000250Z", "renewTime": "2025-01-01T00:00:00.000250Z",
                            "leaseTransitions": 0}})
        );
        assert!(parse_rfc3339(l["spec"]["renewTime"].as_str().unwrap()).is_ok());
    }

    #[test]
    fn follower_waits_a_full_duration_from_its_own_observation_ignoring_remote_clocks() {
        let mut e = Elector::new(&cfg("me"));
        let t0 = Instant::now();
        // The holder's renewTime is years old by our wall clock: irrelevant, we just saw it.
        let held = lease("other", "2001-01-01T00:00:00.000000Z", 3, "10");
        assert_eq!(
            e.decide(Some(&held), t0, wall(2_000_000_000)),
            Decision::Wait { until: t0 + Duration::from_secs(15), holder: "other".into() }
        );
        // Still the same record 14 s later: keep waiting, deadline unchanged.
        let d = e.decide(Some(&held), t0 + Duration::from_secs(14), wall(0));
        assert_eq!(d, Decision::Wait { until: t0 + Duration::from_secs(15), holder: "other".into() });
        // The holder renewed at 14 s: the clock restarts from that observation.
        let renewed = lease("other", "2001-01-01T00:00:14.000000Z", 3, "11");
        let d = e.decide(Some(&renewed), t0 + Duration::from_secs(14), wall(0));
        assert_eq!(d, Decision::Wait { until: t0 + Duration::from_secs(29), holder: "other".into() });
        // Unchanged for a full duration since: take over, transitions + 1, RV kept for the CAS.
        let Decision::Acquire(l) = e.decide(Some(&renewed), t0 + Duration::from_secs(29), wall(1_735_689_600)) else {
            panic!()
        };
        assert_eq!(l["metadata"]["resourceVersion"], "11");
        assert_eq!(l["spec"]["holderIdentity"], "me");
        assert_eq!(l["spec"]["leaseTransitions"], 4);
        assert_eq!(l["spec"]["acquireTime"], "2025-01-01T00:00:00.000250Z");
        assert_eq!(l["spec"]["renewTime"], "2025-01-01T00:00:00.000250Z");
        assert_eq!(l["spec"]["strategy"], "OldestEmulationVersion", "unmanaged spec fields survive");
        assert!(l["metadata"].get("managedFields").is_none());
    }

    #[test]
    fn absurd_lease_durations_do_not_panic() {
        let mut e = Elector::new(&cfg("me"));
        let mut l = lease("other", "x", 1, "5");
        l["spec"]["leaseDurationSeconds"] = json!(i64::MAX);
        assert!(matches!(e.decide(Some(&l), Instant::now(), wall(0)), Decision::Wait { .. }));
        l["spec"]["leaseDurationSeconds"] = json!(-5);
        l["spec"]["leaseTransitions"] = json!(i64::MAX);
        let Decision::Acquire(out) = e.decide(Some(&l), Instant::now(), wall(0)) else { panic!() };
        assert_eq!(out["spec"]["leaseTransitions"], i64::MAX);
    }

    #[test]
    fn released_or_empty_lease_is_acquired_at_once() {
        let mut e = Elector::new(&cfg("me"));
        let released = lease("", "2025-01-01T00:00:00.000000Z", 5, "20");
        let Decision::Acquire(l) = e.decide(Some(&released), Instant::now(), wall(5)) else { panic!() };
        assert_eq!(l["spec"]["leaseTransitions"], 6);
        // A lease without any spec is treated as empty too.
        let bare = json!({"metadata": {"name": "kubemirror", "namespace": "kube-system", "resourceVersion": "1"}});
        let Decision::Acquire(l) = e.decide(Some(&bare), Instant::now(), wall(5)) else { panic!() };
        assert_eq!(l["spec"]["holderIdentity"], "me");
        assert_eq!(l["spec"]["leaseTransitions"], 1);
    }

    #[test]
    fn holder_renews_keeping_acquire_time_and_transitions() {
        let mut e = Elector::new(&cfg("me"));
        let mine = lease("me", "2025-01-01T00:00:10.000000Z", 2, "30");
        let Decision::Renew(l) = e.decide(Some(&mine), Instant::now(), wall(1_735_689_620)) else { panic!() };
        assert_eq!(l["spec"]["acquireTime"], "2025-01-01T00:00:00.000000Z");
        assert_eq!(l["spec"]["renewTime"], "2025-01-01T00:00:20.000250Z");
        assert_eq!(l["spec"]["leaseTransitions"], 2);
        assert_eq!(l["metadata"]["resourceVersion"], "30");
    }

    #[test]
    fn release_clears_the_holder_and_keeps_transitions() {
        let e = Elector::new(&cfg("me"));
        let mine = lease("me", "2025-01-01T00:00:10.000000Z", 2, "30");
        let r = e.release(&mine, wall(1_735_689_620)).unwrap();
        assert_eq!(r["spec"]["holderIdentity"], "");
        assert_eq!(r["spec"]["leaseDurationSeconds"], 1);
        assert_eq!(r["spec"]["leaseTransitions"], 2);
        assert_eq!(r["metadata"]["resourceVersion"], "30");
        assert!(e.release(&lease("other", "x", 2, "30"), wall(0)).is_none(), "never release someone else's lease");
    }

    #[test]
    fn leadership_expires_by_itself() {
        let l = Leadership::Leading { until: Instant::now() + Duration::from_secs(1) };
        assert!(l.is_leader());
        assert!(!Leadership::Leading { until: Instant::now() }.is_leader());
        assert!(!Leadership::Following { holder: None }.is_leader());
        let rx = Leadership::standalone();
        assert!(rx.borrow().is_leader());
        assert!(rx.has_changed().is_ok(), "the standalone channel never closes");
    }

    /// An in-memory Lease with resourceVersion checks, shared by competing electors.
    #[derive(Clone, Default)]
    struct FakeLeases {
        state: Arc<Mutex<FakeState>>,
    }

    #[derive(Default)]
    struct FakeState {
        lease: Option<Value>,
        rv: u64,
        failing: bool,
        /// Requests never answer.
        hang: bool,
        /// The next requests answer after these delays, one each.
        delays: std::collections::VecDeque<Duration>,
        requests: Vec<&'static str>,
    }

    fn api_err(code: u16, reason: Reason) -> client::Error {
        client::Error::Api(Box::new(Status { code, reason, message: String::new(), details: None, retry_after: None }))
    }

    impl FakeLeases {
        fn holder(&self) -> Option<String> {
            let st = self.state.lock().unwrap();
            st.lease.as_ref().map(|l| LeaseRecord::from_lease(l).holder)
        }

        fn transitions(&self) -> i64 {
            let st = self.state.lock().unwrap();
            st.lease.as_ref().map_or(-1, |l| LeaseRecord::from_lease(l).transitions)
        }

        fn op(&self, verb: &'static str, body: Option<&Value>) -> client::Result<Value> {
            let mut st = self.state.lock().unwrap();
            st.requests.push(verb);
            if st.failing {
                return Err(api_err(503, Reason::ServiceUnavailable));
            }
            match verb {
                "get" => st.lease.clone().ok_or_else(|| api_err(404, Reason::NotFound)),
                "create" if st.lease.is_some() => Err(api_err(409, Reason::AlreadyExists)),
                _ => {
                    let mut obj = body.cloned().unwrap_or_default();
                    if verb == "update" {
                        let current = st.lease.as_ref().and_then(|l| l["metadata"]["resourceVersion"].as_str());
                        if current != obj["metadata"]["resourceVersion"].as_str() {
                            return Err(api_err(409, Reason::Conflict));
                        }
                    }
                    st.rv += 1;
                    obj["metadata"]["resourceVersion"] = json!(st.rv.to_string());
                    st.lease = Some(obj.clone());
                    Ok(obj)
                }
            }
        }
    }

    impl FakeLeases {
        fn answer(&self, verb: &'static str, body: Option<&Value>) -> impl Future<Output = client::Result<Value>> {
            let (hang, delay) = {
                let mut st = self.state.lock().unwrap();
                (st.hang, st.delays.pop_front().unwrap_or_default())
            };
            let result = self.op(verb, body);
            async move {
                if hang {
                    std::future::pending::<()>().await;
                }
                tokio::time::sleep(delay).await;
                result
            }
        }
    }

    impl LeaseApi for FakeLeases {
        fn get(&self) -> impl Future<Output = client::Result<Value>> + Send {
            self.answer("get", None)
        }
        fn create(&self, lease: &Value) -> impl Future<Output = client::Result<Value>> + Send {
            self.answer("create", Some(lease))
        }
        fn update(&self, lease: &Value) -> impl Future<Output = client::Result<Value>> + Send {
            self.answer("update", Some(lease))
        }
    }

    struct Candidate {
        rx: watch::Receiver<Leadership>,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        task: tokio::task::JoinHandle<Result<(), LeaderError>>,
    }

    fn spawn(api: &FakeLeases, id: &str, seed: u64) -> Candidate {
        let (el, rx) = LeaderElector::new(api.clone(), cfg(id), Rng::seeded(seed)).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(el.run(async move {
            let _ = stopped.await;
        }));
        Candidate { rx, stop: Some(stop), task }
    }

    /// Waits (virtual time) until `cond` holds, returning how long it took; fails after `limit`.
    async fn until(limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
        let t0 = Instant::now();
        while !cond() {
            assert!(t0.elapsed() < limit, "condition not met within {limit:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        t0.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn exactly_one_leads_and_a_killed_leader_is_replaced_within_the_lease() {
        let api = FakeLeases::default();
        let a = spawn(&api, "a", 1);
        let b = spawn(&api, "b", 2);
        until(Duration::from_secs(5), || a.rx.borrow().is_leader() || b.rx.borrow().is_leader()).await;
        // Over many renew periods, never both.
        for _ in 0..100 {
            assert!(!(a.rx.borrow().is_leader() && b.rx.borrow().is_leader()));
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let (leader, standby) = if a.rx.borrow().is_leader() { (a, b) } else { (b, a) };
        assert!(!standby.rx.borrow().is_leader());
        assert!(matches!(&*standby.rx.borrow(), Leadership::Following { holder: Some(_) }));
        assert_eq!(api.transitions(), 0);
        // Kill without release.
        leader.task.abort();
        let took = until(Duration::from_secs(30), || standby.rx.borrow().is_leader()).await;
        // Lease duration from the standby's last observation, plus at most one poll.
        assert!(took <= Duration::from_secs(15) + Duration::from_millis(2400 + 2000), "{took:?}");
        assert!(took >= Duration::from_secs(13), "{took:?}");
        assert_eq!(api.transitions(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn graceful_stop_releases_and_a_standby_takes_over_within_a_retry_period() {
        let api = FakeLeases::default();
        let mut a = spawn(&api, "a", 1);
        until(Duration::from_secs(5), || a.rx.borrow().is_leader()).await;
        let b = spawn(&api, "b", 2);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(!b.rx.borrow().is_leader());
        a.stop.take().unwrap().send(()).unwrap();
        assert_eq!(a.task.await.unwrap(), Ok(()));
        assert!(!a.rx.borrow().is_leader());
        assert_eq!(api.holder().as_deref(), Some(""));
        let took = until(Duration::from_secs(5), || b.rx.borrow().is_leader()).await;
        assert!(took <= Duration::from_millis(2400), "{took:?}");
        assert_eq!(api.transitions(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn renewals_are_one_request_each() {
        let api = FakeLeases::default();
        let a = spawn(&api, "a", 1);
        until(Duration::from_secs(5), || a.rx.borrow().is_leader()).await;
        api.state.lock().unwrap().requests.clear();
        tokio::time::sleep(Duration::from_millis(20_100)).await;
        let reqs = api.state.lock().unwrap().requests.clone();
        assert_eq!(reqs, vec!["update"; 10]);
    }

    #[tokio::test(start_paused = true)]
    async fn failing_renewals_fence_at_the_renew_deadline_and_end_with_an_error() {
        let api = FakeLeases::default();
        let a = spawn(&api, "a", 1);
        until(Duration::from_secs(5), || a.rx.borrow().is_leader()).await;
        // Let a renewal happen, then break the API server.
        tokio::time::sleep(Duration::from_millis(2100)).await;
        api.state.lock().unwrap().failing = true;
        let t_fail = Instant::now();
        let lost = until(Duration::from_secs(15), || !a.rx.borrow().is_leader()).await;
        // Last success was at most one retry period before the failures began.
        assert!(lost <= Duration::from_secs(10), "{lost:?}");
        assert!(lost >= Duration::from_secs(8), "{lost:?}");
        let res = a.task.await.unwrap();
        assert!(matches!(res, Err(LeaderError::Lost { .. })), "{res:?}");
        assert!(t_fail.elapsed() <= Duration::from_secs(10));
        assert_eq!(*a.rx.borrow(), Leadership::Following { holder: None });
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_renewal_is_fenced_at_the_deadline() {
        let api = FakeLeases::default();
        let a = spawn(&api, "a", 1);
        until(Duration::from_secs(5), || a.rx.borrow().is_leader()).await;
        api.state.lock().unwrap().hang = true;
        let lost = until(Duration::from_secs(12), || !a.rx.borrow().is_leader()).await;
        assert!(lost <= Duration::from_secs(10), "{lost:?}");
        assert!(matches!(a.task.await.unwrap(), Err(LeaderError::Lost { .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_read_does_not_shorten_the_followers_wait() {
        let api = FakeLeases::default();
        let a = spawn(&api, "a", 1);
        until(Duration::from_secs(5), || a.rx.borrow().is_leader()).await;
        a.task.abort();
        // b's first read takes 6 s: the record it returns is only known to be current from the
        // answer on, so the lease duration counts from there.
        api.state.lock().unwrap().delays.push_back(Duration::from_secs(6));
        let b = spawn(&api, "b", 2);
        let took = until(Duration::from_secs(60), || b.rx.borrow().is_leader()).await;
        assert!(took >= Duration::from_secs(21), "{took:?}");
        assert!(took <= Duration::from_secs(21) + Duration::from_millis(2500), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_does_not_wait_for_a_hung_request() {
        let api = FakeLeases::default();
        api.state.lock().unwrap().hang = true;
        let mut a = spawn(&api, "a", 1);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let t0 = Instant::now();
        a.stop.take().unwrap().send(()).unwrap();
        assert_eq!(a.task.await.unwrap(), Ok(()));
        assert!(t0.elapsed() < Duration::from_millis(10), "{:?}", t0.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn a_follower_survives_api_errors() {
        let api = FakeLeases::default();
        api.state.lock().unwrap().failing = true;
        let a = spawn(&api, "a", 1);
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!a.task.is_finished());
        assert!(!a.rx.borrow().is_leader());
        api.state.lock().unwrap().failing = false;
        until(Duration::from_secs(5), || a.rx.borrow().is_leader()).await;
    }
}
