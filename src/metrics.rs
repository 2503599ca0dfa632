//! Prometheus metrics: the seed README's `kubemirror_*` names (BEHAVIOR.md §L's recommended set)
//! and controller-runtime's `workqueue_*` names, so dashboards and alerts written for the Go
//! version's framework metrics find their series.
//!
//! Every family is on /metrics from start-up: with zero-valued series where the label values are
//! known (per watched kind × result, per kind × error reason, the queue's `name`), and otherwise at
//! least its HELP and TYPE lines, so alerts can be written before the first error happens.
//! Cardinality is bounded: labels carry kinds, namespaces, results and a fixed set of reasons, never
//! object names; the series of a type that stops being watched are removed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

use crate::cache::Cache;
use crate::model::Str;

/// The `result` label of `kubemirror_reconcile_total`.
pub const RESULTS: [&str; 3] = ["success", "error", "requeue"];

/// The `reason` label of `kubemirror_sync_errors_total`: a fixed set, so a server cannot create
/// series by inventing reasons (see [`crate::controller::executor::error_reason`]).
pub const ERROR_REASONS: [&str; 10] = [
    "Conflict",
    "NotFound",
    "AlreadyExists",
    "Forbidden",
    "Unauthorized",
    "Invalid",
    "TooManyRequests",
    "ServerError",
    "Transport",
    "Other",
];

/// The `name` label of the `workqueue_*` families: the controller has one queue.
pub const QUEUE: &str = "sources";
/// `reason` of `kubemirror_targets_skipped_total` ([`crate::mirror::targets::TargetProblem::skip_reason`]).
pub const SKIP_REASONS: [&str; 5] = ["missing", "excluded", "terminating", "no_consent", "runs_code_no_consent"];
/// `reason` of `kubemirror_transform_errors_total` ([`crate::transform`]'s error kinds).
pub const TRANSFORM_REASONS: [&str; 9] =
    ["parse", "invalid_rule", "template_parse", "too_large", "too_many_rules", "path", "template", "limit", "type"];

const DURATION_BUCKETS: [f64; 9] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0];
/// controller-runtime's workqueue buckets: 1 µs to 10 s, ×10.
const QUEUE_BUCKETS: [f64; 8] = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0];

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// Reconciles by type and result (`success`, `error`, `requeue`).
    pub reconcile_total: IntCounterVec,
    pub reconcile_duration: HistogramVec,
    /// Live mirrors by type and target namespace, counted from the cache when scraped.
    pub mirror_resources: MirrorCounts,
    /// Failed writes by type and reason (one of [`ERROR_REASONS`]).
    pub sync_errors_total: IntCounterVec,
    /// Same-named objects we do not own, found in a target namespace.
    pub ownership_conflicts_total: IntCounterVec,
    /// Sources whose target set exceeded `--max-targets`.
    pub target_truncations_total: IntCounterVec,
    /// Target namespaces skipped, by reason (`missing`, `excluded`, `terminating`, `no_consent`,
    /// `runs_code_no_consent`), counted by passes that wrote something (the status changed).
    pub targets_skipped_total: IntCounterVec,
    /// Transformation errors by type and reason (`parse`, `invalid_rule`, `template_parse`,
    /// `too_large`, `too_many_rules`: the document, once per pass; `path`, `template`, `limit`,
    /// `type`: a rule on one target, skipped or failing it).
    pub transform_errors_total: IntCounterVec,
    pub queue_depth: IntGaugeVec,
    pub queue_adds_total: IntCounterVec,
    pub queue_retries_total: IntCounterVec,
    /// Seconds a key waited in the queue before a worker took it.
    pub queue_duration: HistogramVec,
    /// Seconds a worker spent on a key.
    pub work_duration: HistogramVec,
    /// Seconds of work in progress, summed over the keys being processed.
    pub unfinished_work: GaugeVec,
    pub longest_running_processor: GaugeVec,
    /// Seconds since each watch last saw an event or bookmark: the silent-stall detector.
    pub watch_last_event_age: GaugeVec,
    pub watch_restarts_total: IntCounterVec,
    /// Discovery failures: `scope="discovery"` a whole pass (`/api` or `/apis` failed), `scope="group"`
    /// a group/version skipped in a pass (an aggregated API down): new CRDs are not picked up.
    pub discovery_errors_total: IntCounterVec,
    /// Failed list and watch requests by watcher and reason (`Forbidden`, `NotFound`, `ServerError`, ...):
    /// a type RBAC does not grant or a deleted CRD shows here, retried with backoff.
    pub watch_failures_total: IntCounterVec,
    pub relists_total: IntCounterVec,
    pub leader: Gauge,
    /// Every family registered here (name, help, type), to print HELP/TYPE for those without series.
    families: Vec<(String, String, &'static str)>,
}

struct Builder {
    registry: Registry,
    families: Vec<(String, String, &'static str)>,
}

impl Builder {
    fn add<C: Collector + Clone + 'static>(&mut self, c: C, ty: &'static str) -> prometheus::Result<C> {
        for d in c.desc() {
            self.families.push((d.fq_name.clone(), d.help.clone(), ty));
        }
        self.registry.register(Box::new(c.clone()))?;
        Ok(c)
    }

    fn counter(&mut self, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntCounterVec> {
        self.add(IntCounterVec::new(Opts::new(name, help), labels)?, "counter")
    }

    fn gauge(&mut self, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<GaugeVec> {
        self.add(GaugeVec::new(Opts::new(name, help), labels)?, "gauge")
    }

    fn histogram(&mut self, name: &str, help: &str, labels: &[&str], b: &[f64]) -> prometheus::Result<HistogramVec> {
        self.add(HistogramVec::new(HistogramOpts::new(name, help).buckets(b.to_vec()), labels)?, "histogram")
    }
}

impl Metrics {
    pub fn new() -> prometheus::Result<Self> {
        let mut b = Builder { registry: Registry::new(), families: Vec::new() };
        let q = &["name"];
        let m = Metrics {
            reconcile_total: b.counter("kubemirror_reconcile_total", "Reconciles by result.", &["kind", "result"])?,
            reconcile_duration: b.histogram(
                "kubemirror_reconcile_duration_seconds",
                "Time spent reconciling one source.",
                &["kind"],
                &DURATION_BUCKETS,
            )?,
            mirror_resources: b.add(MirrorCounts::new()?, "gauge")?,
            sync_errors_total: b.counter("kubemirror_sync_errors_total", "Failed writes.", &["kind", "reason"])?,
            ownership_conflicts_total: b.counter(
                "kubemirror_ownership_conflicts_total",
                "Target objects of the source's name that KubeMirror does not own.",
                &["kind"],
            )?,
            target_truncations_total: b.counter(
                "kubemirror_target_truncations_total",
                "Reconciles whose target set exceeded --max-targets.",
                &["kind"],
            )?,
            transform_errors_total: b.counter(
                "kubemirror_transform_errors_total",
                "Transformation rule errors (documents that do not compile, rules failing on a target).",
                &["kind", "reason"],
            )?,
            targets_skipped_total: b.counter(
                "kubemirror_targets_skipped_total",
                "Target namespaces skipped (missing, excluded, terminating, without consent), by passes that wrote.",
                &["kind", "reason"],
            )?,
            queue_depth: b
                .add(IntGaugeVec::new(Opts::new("workqueue_depth", "Keys waiting for a worker."), q)?, "gauge")?,
            queue_adds_total: b.counter("workqueue_adds_total", "Keys added to the work queue.", q)?,
            queue_retries_total: b.counter("workqueue_retries_total", "Keys re-queued after a failure.", q)?,
            queue_duration: b.histogram(
                "workqueue_queue_duration_seconds",
                "How long a key waits in the queue before a worker takes it.",
                q,
                &QUEUE_BUCKETS,
            )?,
            work_duration: b.histogram(
                "workqueue_work_duration_seconds",
                "How long processing a key takes.",
                q,
                &QUEUE_BUCKETS,
            )?,
            unfinished_work: b.gauge(
                "workqueue_unfinished_work_seconds",
                "Seconds of work in progress that has not been observed by work_duration yet.",
                q,
            )?,
            longest_running_processor: b.gauge(
                "workqueue_longest_running_processor_seconds",
                "How long the longest-running worker has been processing its key.",
                q,
            )?,
            watch_last_event_age: b.gauge(
                "kubemirror_watch_last_event_age_seconds",
                "Seconds since the watch saw an event or bookmark.",
                &["resource"],
            )?,
            watch_restarts_total: b.counter(
                "kubemirror_watch_restarts_total",
                "Watches re-established.",
                &["resource"],
            )?,
            discovery_errors_total: b.counter(
                "kubemirror_discovery_errors_total",
                "Discovery failures: a whole pass (scope=discovery) or a group/version skipped (scope=group).",
                &["scope"],
            )?,
            watch_failures_total: b.counter(
                "kubemirror_watch_failures_total",
                "Failed list and watch requests, by reason; retried with backoff.",
                &["resource", "reason"],
            )?,
            relists_total: b.counter("kubemirror_relists_total", "Full relists (410 Gone or start).", &["resource"])?,
            leader: b.add(Gauge::new("kubemirror_leader", "1 while this replica holds the lease.")?, "gauge")?,
            registry: b.registry,
            families: b.families,
        };
        // The queue exists from the start: its series too.
        m.queue_depth.with_label_values(&[QUEUE]);
        m.discovery_errors_total.with_label_values(&["discovery"]);
        m.discovery_errors_total.with_label_values(&["group"]);
        m.queue_adds_total.with_label_values(&[QUEUE]);
        m.queue_retries_total.with_label_values(&[QUEUE]);
        m.queue_duration.with_label_values(&[QUEUE]);
        m.work_duration.with_label_values(&[QUEUE]);
        m.unfinished_work.with_label_values(&[QUEUE]);
        m.longest_running_processor.with_label_values(&[QUEUE]);
        Ok(m)
    }

    /// Counts a failed discovery pass (`whole`) and the group/versions a pass skipped.
    pub fn discovery_failed(&self, whole: bool, groups: usize) {
        if whole {
            self.discovery_errors_total.with_label_values(&["discovery"]).inc();
        }
        self.discovery_errors_total.with_label_values(&["group"]).inc_by(groups as u64);
    }

    /// Zero-valued series for a newly watched type: every result and error reason is known.
    pub fn kind_watched(&self, kind: &str) {
        for result in RESULTS {
            self.reconcile_total.with_label_values(&[kind, result]);
        }
        for reason in ERROR_REASONS {
            self.sync_errors_total.with_label_values(&[kind, reason]);
        }
        self.reconcile_duration.with_label_values(&[kind]);
        self.ownership_conflicts_total.with_label_values(&[kind]);
        self.target_truncations_total.with_label_values(&[kind]);
        for reason in SKIP_REASONS {
            self.targets_skipped_total.with_label_values(&[kind, reason]);
        }
        for reason in TRANSFORM_REASONS {
            self.transform_errors_total.with_label_values(&[kind, reason]);
        }
    }

    /// Removes a type's series once it is no longer watched (its mirror counts go with its
    /// cache).
    pub fn kind_unwatched(&self, kind: &str) {
        for result in RESULTS {
            let _ = self.reconcile_total.remove_label_values(&[kind, result]);
        }
        for reason in ERROR_REASONS {
            let _ = self.sync_errors_total.remove_label_values(&[kind, reason]);
        }
        let _ = self.reconcile_duration.remove_label_values(&[kind]);
        let _ = self.ownership_conflicts_total.remove_label_values(&[kind]);
        let _ = self.target_truncations_total.remove_label_values(&[kind]);
        for reason in SKIP_REASONS {
            let _ = self.targets_skipped_total.remove_label_values(&[kind, reason]);
        }
        for reason in TRANSFORM_REASONS {
            let _ = self.transform_errors_total.remove_label_values(&[kind, reason]);
        }
    }

    /// Removes the series of a watch that stopped.
    pub fn watch_stopped(&self, resource: &str) {
        let _ = self.watch_last_event_age.remove_label_values(&[resource]);
        let _ = self.watch_restarts_total.remove_label_values(&[resource]);
        let _ = self.relists_total.remove_label_values(&[resource]);
        for reason in crate::watch_health::FailureReason::ALL {
            let _ = self.watch_failures_total.remove_label_values(&[resource, reason.as_str()]);
        }
    }

    /// Text exposition format; families without series still show their HELP and TYPE.
    pub fn render(&self) -> String {
        let gathered = self.registry.gather();
        let mut out = String::new();
        if let Err(e) = prometheus::TextEncoder::new().encode_utf8(&gathered, &mut out) {
            log::warn!("metrics: encoding failed: {e}");
        }
        for (name, help, ty) in &self.families {
            if !gathered.iter().any(|mf| mf.name() == name) {
                out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {ty}\n"));
            }
        }
        out
    }
}

/// `kubemirror_mirror_resources_total{kind,namespace}`, counted from the cache at each scrape.
/// Kept as gauges it cost a series per type and namespace between scrapes (about 110 bytes each:
/// 0.6 MiB for the 6,000 of the S2 benchmark) plus a rebuild every few seconds; counted on demand
/// it costs nothing between scrapes, and a scrape walks the cached mirrors once.
#[derive(Clone)]
pub struct MirrorCounts {
    desc: Desc,
    cache: Arc<Mutex<Option<Cache>>>,
}

impl MirrorCounts {
    fn new() -> prometheus::Result<Self> {
        let desc = Desc::new(
            "kubemirror_mirror_resources_total".into(),
            "Live mirrors.".into(),
            vec!["kind".into(), "namespace".into()],
            Default::default(),
        )?;
        Ok(MirrorCounts { desc, cache: Arc::default() })
    }

    /// Count the mirrors of this cache from now on (the controller's, once it has one).
    pub fn count(&self, cache: &Cache) {
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = Some(cache.clone());
    }
}

impl Collector for MirrorCounts {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Some(cache) = self.cache.lock().unwrap_or_else(|p| p.into_inner()).clone() else { return Vec::new() };
        let mut counts: BTreeMap<(Str, Str), i64> = BTreeMap::new();
        for kind in cache.type_names() {
            let Some(stores) = cache.get_type(&kind) else { continue };
            for m in stores.mirrors.list().iter().filter(|m| m.managed) {
                *counts.entry((kind.clone(), m.key.namespace.clone())).or_default() += 1;
            }
        }
        if counts.is_empty() {
            return Vec::new();
        }
        let label = |name: &str, value: &str| {
            let mut l = LabelPair::default();
            l.set_name(name.into());
            l.set_value(value.into());
            l
        };
        let metrics = counts
            .into_iter()
            .map(|((kind, ns), n)| {
                let mut m = Metric::default();
                m.set_label(vec![label("kind", &kind), label("namespace", &ns)]);
                let mut g = prometheus::proto::Gauge::default();
                g.set_value(n as f64);
                m.set_gauge(g);
                m
            })
            .collect();
        let mut family = MetricFamily::default();
        family.set_name(self.desc.fq_name.clone());
        family.set_help(self.desc.help.clone());
        family.set_field_type(MetricType::GAUGE);
        family.set_metric(metrics);
        vec![family]
    }
}

impl crate::queue::QueueObserver for Metrics {
    fn waited(&self, d: std::time::Duration) {
        self.queue_duration.with_label_values(&[QUEUE]).observe(d.as_secs_f64());
    }

    fn worked(&self, d: std::time::Duration) {
        self.work_duration.with_label_values(&[QUEUE]).observe(d.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_listed_from_the_start() {
        let m = Metrics::new().unwrap();
        let text = m.render();
        for family in [
            "kubemirror_reconcile_total",
            "kubemirror_reconcile_duration_seconds",
            "kubemirror_mirror_resources_total",
            "kubemirror_sync_errors_total",
            "workqueue_depth",
            "workqueue_adds_total",
            "workqueue_retries_total",
            "workqueue_queue_duration_seconds",
            "workqueue_work_duration_seconds",
            "workqueue_unfinished_work_seconds",
            "workqueue_longest_running_processor_seconds",
        ] {
            assert!(text.contains(&format!("# TYPE {family} ")), "{family}: {text}");
        }
        assert!(text.contains("workqueue_depth{name=\"sources\"} 0"), "{text}");
        assert!(text.contains("kubemirror_discovery_errors_total{scope=\"discovery\"} 0"), "{text}");
        m.discovery_failed(true, 0);
        m.discovery_failed(false, 2);
        let text = m.render();
        assert!(text.contains("kubemirror_discovery_errors_total{scope=\"discovery\"} 1"), "{text}");
        assert!(text.contains("kubemirror_discovery_errors_total{scope=\"group\"} 2"), "{text}");
    }

    #[test]
    fn a_watched_kind_has_zero_series_and_loses_them_when_unwatched() {
        let m = Metrics::new().unwrap();
        m.kind_watched("Secret.v1");
        m.watch_last_event_age.with_label_values(&["Secret.v1 sources"]).set(3.0);
        let text = m.render();
        assert!(text.contains("kubemirror_reconcile_total{kind=\"Secret.v1\",result=\"error\"} 0"), "{text}");
        assert!(text.contains("kubemirror_sync_errors_total{kind=\"Secret.v1\",reason=\"Forbidden\"} 0"), "{text}");
        assert!(text.contains("kubemirror_transform_errors_total{kind=\"Secret.v1\",reason=\"parse\"} 0"), "{text}");
        assert!(
            text.contains("kubemirror_targets_skipped_total{kind=\"Secret.v1\",reason=\"runs_code_no_consent\"} 0"),
            "{text}"
        );
        assert!(text.contains("kubemirror_watch_last_event_age_seconds{resource=\"Secret.v1 sources\"} 3"), "{text}");
        m.kind_unwatched("Secret.v1");
        m.watch_failures_total.with_label_values(&["Secret.v1 sources", "Forbidden"]).inc();
        m.watch_stopped("Secret.v1 sources");
        let text = m.render();
        assert!(!text.contains("Secret.v1"), "{text}");
        assert!(text.contains("# TYPE kubemirror_reconcile_total counter"), "{text}");
    }
}
