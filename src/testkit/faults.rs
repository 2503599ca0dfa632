//! Fault injection driven from tests: failing, slowing and hanging requests.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;

/// Which requests a fault applies to; `None` matches anything. Resource is the plural (`secrets`),
/// or the path for non-resource requests (`/apis/metrics.k8s.io/v1beta1`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matcher {
    pub verb: Option<String>,
    pub resource: Option<String>,
}

impl Matcher {
    pub fn any() -> Self {
        Matcher::default()
    }

    pub fn new(verb: Option<&str>, resource: Option<&str>) -> Self {
        Matcher { verb: verb.map(String::from), resource: resource.map(String::from) }
    }

    fn hits(&self, verb: &str, resource: &str) -> bool {
        self.verb.as_deref().is_none_or(|v| v == verb) && self.resource.as_deref().is_none_or(|r| r == resource)
    }
}

#[derive(Debug, Clone)]
struct FailRule {
    matcher: Matcher,
    remaining: u32,
    code: u16,
    retry_after: Option<u64>,
}

/// What the request pipeline should do before serving a request.
#[derive(Debug, Default)]
pub struct Decision {
    pub fail: Option<(u16, Option<u64>)>,
    pub latency: Option<Duration>,
    /// Wait until this flips to true (a partition being healed).
    pub hang: Option<watch::Receiver<bool>>,
}

#[derive(Debug)]
pub struct Faults {
    rules: Mutex<Vec<FailRule>>,
    latency: Mutex<Option<(Matcher, Duration)>>,
    hang: Mutex<Option<(Matcher, watch::Sender<bool>)>>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults { rules: Mutex::new(Vec::new()), latency: Mutex::new(None), hang: Mutex::new(None) }
    }
}

impl Faults {
    pub fn fail_next(&self, matcher: Matcher, count: u32, code: u16, retry_after: Option<u64>) {
        let mut r = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        r.push(FailRule { matcher, remaining: count, code, retry_after });
    }

    pub fn set_latency(&self, matcher: Matcher, latency: Option<Duration>) {
        *self.latency.lock().unwrap_or_else(|p| p.into_inner()) = latency.map(|d| (matcher, d));
    }

    /// Matching requests wait until [`Faults::release`].
    pub fn hang(&self, matcher: Matcher) {
        let (tx, _) = watch::channel(false);
        let old = self.hang.lock().unwrap_or_else(|p| p.into_inner()).replace((matcher, tx));
        if let Some((_, old_tx)) = old {
            let _ = old_tx.send(true);
        }
    }

    pub fn release(&self) {
        if let Some((_, tx)) = self.hang.lock().unwrap_or_else(|p| p.into_inner()).take() {
            // Receivers may all be gone already; nothing to wake then.
            let _ = tx.send(true);
        }
    }

    /// The pending partition for this verb/resource, if any (open watches stall on it too).
    pub fn hang_for(&self, verb: &str, resource: &str) -> Option<watch::Receiver<bool>> {
        let guard = self.hang.lock().unwrap_or_else(|p| p.into_inner());
        guard.as_ref().filter(|(m, _)| m.hits(verb, resource)).map(|(_, tx)| tx.subscribe())
    }

    pub fn decide(&self, verb: &str, resource: &str) -> Decision {
        let mut d = Decision::default();
        {
            let mut rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(r) = rules.iter_mut().find(|r| r.remaining > 0 && r.matcher.hits(verb, resource)) {
                r.remaining -= 1;
                d.fail = Some((r.code, r.retry_after));
            }
            rules.retain(|r| r.remaining > 0);
        }
        if let Some((m, lat)) = &*self.latency.lock().unwrap_or_else(|p| p.into_inner()) {
            if m.hits(verb, resource) {
                d.latency = Some(*lat);
            }
        }
        d.hang = self.hang_for(verb, resource);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_next_counts_down_per_match() {
        let f = Faults::default();
        f.fail_next(Matcher::new(Some("list"), Some("secrets")), 2, 429, Some(3));
        assert!(f.decide("get", "secrets").fail.is_none());
        assert_eq!(f.decide("list", "secrets").fail, Some((429, Some(3))));
        assert_eq!(f.decide("list", "secrets").fail, Some((429, Some(3))));
        assert!(f.decide("list", "secrets").fail.is_none());
    }

    #[test]
    fn hang_until_released() {
        let f = Faults::default();
        f.hang(Matcher::any());
        let rx = f.decide("get", "x").hang.unwrap();
        assert!(!*rx.borrow());
        f.release();
        assert!(*rx.borrow());
        assert!(f.decide("get", "x").hang.is_none());
    }
}
