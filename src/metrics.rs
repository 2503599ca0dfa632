//! Prometheus metrics. Names follow BEHAVIOR.md §L's recommended set; label values are the real
//! ones the code emits (`kind` is `Kind.version[.group]`), so shipped alerts can match them.

use prometheus::{Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// Reconciles by type and result (`success`, `error`, `requeue`).
    pub reconcile_total: IntCounterVec,
    pub reconcile_duration: HistogramVec,
    /// Live mirrors by type and target namespace.
    pub mirror_resources: IntGaugeVec,
    /// Failed mirror operations by type and reason (`Conflict`, `Forbidden`, `Invalid`, ...).
    pub sync_errors_total: IntCounterVec,
    /// Same-named objects we do not own, found in a target namespace.
    pub ownership_conflicts_total: IntCounterVec,
    /// Sources whose target set exceeded `--max-targets`.
    pub target_truncations_total: IntCounterVec,
    /// Transformation errors by type and reason (`parse`, `invalid_rule`, `template_parse`,
    /// `too_large`, `too_many_rules`: the document, once per pass; `path`, `template`, `limit`,
    /// `type`: a rule on one target, skipped or failing it).
    pub transform_errors_total: IntCounterVec,
    pub queue_depth: IntGauge,
    pub queue_adds_total: IntCounterVec,
    pub queue_retries_total: IntCounterVec,
    /// Seconds since each watch last saw an event or bookmark: the silent-stall detector.
    pub watch_last_event_age: GaugeVec,
    pub watch_restarts_total: IntCounterVec,
    pub relists_total: IntCounterVec,
    pub leader: Gauge,
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

impl Metrics {
    pub fn new() -> prometheus::Result<Self> {
        let r = Registry::new();
        let reconcile_duration = HistogramVec::new(
            HistogramOpts::new("kubemirror_reconcile_duration_seconds", "Time spent reconciling one source.")
                .buckets(vec![0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0]),
            &["kind"],
        )?;
        r.register(Box::new(reconcile_duration.clone()))?;
        let mirror_resources =
            IntGaugeVec::new(Opts::new("kubemirror_mirror_resources_total", "Live mirrors."), &["kind", "namespace"])?;
        r.register(Box::new(mirror_resources.clone()))?;
        let queue_depth = IntGauge::new("workqueue_depth", "Keys waiting in the work queue.")?;
        r.register(Box::new(queue_depth.clone()))?;
        let watch_last_event_age = GaugeVec::new(
            Opts::new("kubemirror_watch_last_event_age_seconds", "Seconds since the watch saw an event or bookmark."),
            &["resource"],
        )?;
        r.register(Box::new(watch_last_event_age.clone()))?;
        let leader = Gauge::new("kubemirror_leader", "1 while this replica holds the lease.")?;
        r.register(Box::new(leader.clone()))?;
        Ok(Metrics {
            reconcile_total: counter(&r, "kubemirror_reconcile_total", "Reconciles by result.", &["kind", "result"])?,
            reconcile_duration,
            mirror_resources,
            sync_errors_total: counter(
                &r,
                "kubemirror_sync_errors_total",
                "Failed mirror writes.",
                &["kind", "reason"],
            )?,
            ownership_conflicts_total: counter(
                &r,
                "kubemirror_ownership_conflicts_total",
                "Target objects of the source's name that KubeMirror does not own.",
                &["kind"],
            )?,
            target_truncations_total: counter(
                &r,
                "kubemirror_target_truncations_total",
                "Reconciles whose target set exceeded --max-targets.",
                &["kind"],
            )?,
            transform_errors_total: counter(
                &r,
                "kubemirror_transform_errors_total",
                "Transformation rule errors (documents that do not compile, rules failing on a target).",
                &["kind", "reason"],
            )?,
            queue_depth,
            queue_adds_total: counter(&r, "workqueue_adds_total", "Keys added to the work queue.", &["name"])?,
            queue_retries_total: counter(&r, "workqueue_retries_total", "Keys re-queued after a failure.", &["name"])?,
            watch_last_event_age,
            watch_restarts_total: counter(
                &r,
                "kubemirror_watch_restarts_total",
                "Watches re-established.",
                &["resource"],
            )?,
            relists_total: counter(&r, "kubemirror_relists_total", "Full relists (410 Gone or start).", &["resource"])?,
            leader,
            registry: r,
        })
    }

    /// Text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus::TextEncoder::new().encode_utf8(&self.registry.gather(), &mut out) {
            log::warn!("metrics: encoding failed: {e}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_and_renders() {
        let m = Metrics::new().unwrap();
        m.reconcile_total.with_label_values(&["Secret.v1", "success"]).inc();
        m.watch_last_event_age.with_label_values(&["secrets"]).set(3.0);
        let text = m.render();
        assert!(text.contains("kubemirror_reconcile_total{kind=\"Secret.v1\",result=\"success\"} 1"), "{text}");
        assert!(text.contains("kubemirror_watch_last_event_age_seconds{resource=\"secrets\"} 3"), "{text}");
    }
}
