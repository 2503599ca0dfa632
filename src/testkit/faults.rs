//! Fault injection driven from tests: failing, slowing and hanging requests, canned answers
//! (a Status echoing what it was sent, garbage where JSON was expected), and raw bytes written into
//! watch streams.

use std::sync::Mutex;
use std::time::Duration;

use hyper::body::Bytes;
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

#[derive(Debug, Clone)]
struct CannedRule {
    matcher: Matcher,
    remaining: u32,
    code: u16,
    body: Bytes,
}

#[derive(Debug, Clone)]
struct Injection {
    matcher: Matcher,
    /// Watches still to receive the frames.
    remaining: u32,
    frames: Vec<Bytes>,
}

/// What the request pipeline should do before serving a request.
#[derive(Debug, Default)]
pub struct Decision {
    pub fail: Option<(u16, Option<u64>)>,
    /// Answer with exactly this status and body instead of serving the request.
    pub canned: Option<(u16, Bytes)>,
    pub latency: Option<Duration>,
    /// Wait until this flips to true (a partition being healed).
    pub hang: Option<watch::Receiver<bool>>,
}

#[derive(Debug)]
pub struct Faults {
    rules: Mutex<Vec<FailRule>>,
    canned: Mutex<Vec<CannedRule>>,
    latency: Mutex<Option<(Matcher, Duration)>>,
    hang: Mutex<Option<(Matcher, watch::Sender<bool>)>>,
    injections: Mutex<Vec<Injection>>,
    /// Bumped when an injection is added, so open watches pick it up at once.
    injected: watch::Sender<u64>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            rules: Mutex::new(Vec::new()),
            canned: Mutex::new(Vec::new()),
            latency: Mutex::new(None),
            hang: Mutex::new(None),
            injections: Mutex::new(Vec::new()),
            injected: watch::channel(0).0,
        }
    }
}

impl Faults {
    pub fn fail_next(&self, matcher: Matcher, count: u32, code: u16, retry_after: Option<u64>) {
        let mut r = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        r.push(FailRule { matcher, remaining: count, code, retry_after });
    }

    /// Failures, canned answers and watch injections not yet used up (each counts its remaining
    /// uses): a test can tell its faults were actually hit.
    pub fn pending(&self) -> u64 {
        let rules: u64 =
            self.rules.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|r| u64::from(r.remaining)).sum();
        let canned: u64 =
            self.canned.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|r| u64::from(r.remaining)).sum();
        let injections: u64 =
            self.injections.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|i| u64::from(i.remaining)).sum();
        rules + canned + injections
    }

    /// Forgets every pending failure and canned answer.
    pub fn clear_failures(&self) {
        self.rules.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.canned.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// The next `count` matching requests are answered with exactly `code` and `body`
    /// (`application/json`, whatever the body is): a Status echoing the object, an admission
    /// webhook's denial, truncated JSON, a list whose items are not objects.
    pub fn respond_next(&self, matcher: Matcher, count: u32, code: u16, body: Bytes) {
        let mut r = self.canned.lock().unwrap_or_else(|p| p.into_inner());
        r.push(CannedRule { matcher, remaining: count, code, body });
    }

    /// The next `count` watches matching `matcher` (verb `watch`), open now or opened later, get
    /// `frames` written into their stream as they are (no newline added), before their next event.
    pub fn inject_watch(&self, matcher: Matcher, count: u32, frames: Vec<Bytes>) {
        self.injections.lock().unwrap_or_else(|p| p.into_inner()).push(Injection { matcher, remaining: count, frames });
        self.injected.send_modify(|g| *g += 1);
    }

    /// Told when an injection is added.
    pub fn injections_changed(&self) -> watch::Receiver<u64> {
        self.injected.subscribe()
    }

    /// The frames one watch on `resource` must write now, if an injection matches (each watch
    /// takes an injection once: the caller asks again only after [`Faults::injections_changed`]).
    pub fn take_injection(&self, resource: &str) -> Option<Vec<Bytes>> {
        let mut list = self.injections.lock().unwrap_or_else(|p| p.into_inner());
        let hit = list.iter_mut().find(|i| i.remaining > 0 && i.matcher.hits("watch", resource))?;
        hit.remaining -= 1;
        let frames = hit.frames.clone();
        list.retain(|i| i.remaining > 0);
        Some(frames)
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
        {
            let mut canned = self.canned.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(r) = canned.iter_mut().find(|r| r.remaining > 0 && r.matcher.hits(verb, resource)) {
                r.remaining -= 1;
                d.canned = Some((r.code, r.body.clone()));
            }
            canned.retain(|r| r.remaining > 0);
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
    fn canned_answers_count_down_per_match() {
        let f = Faults::default();
        f.respond_next(Matcher::new(Some("list"), Some("secrets")), 1, 200, Bytes::from_static(b"{\"items\":[1"));
        assert!(f.decide("list", "configmaps").canned.is_none());
        assert_eq!(f.decide("list", "secrets").canned, Some((200, Bytes::from_static(b"{\"items\":[1"))));
        assert!(f.decide("list", "secrets").canned.is_none());
        assert_eq!(f.pending(), 0);
        f.respond_next(Matcher::any(), 5, 500, Bytes::new());
        f.fail_next(Matcher::any(), 5, 429, None);
        assert_eq!(f.pending(), 10);
        f.clear_failures();
        assert_eq!(f.pending(), 0);
        let d = f.decide("get", "x");
        assert!(d.canned.is_none() && d.fail.is_none());
    }

    #[test]
    fn watch_injections_go_to_count_matching_watches_and_wake_open_ones() {
        let f = Faults::default();
        let mut changed = f.injections_changed();
        assert!(f.take_injection("secrets").is_none());
        f.inject_watch(Matcher::new(Some("watch"), Some("secrets")), 2, vec![Bytes::from_static(b"garbage\n")]);
        assert!(changed.has_changed().unwrap());
        changed.borrow_and_update();
        assert!(f.take_injection("configmaps").is_none());
        assert_eq!(f.take_injection("secrets"), Some(vec![Bytes::from_static(b"garbage\n")]));
        assert!(f.take_injection("secrets").is_some());
        assert!(f.take_injection("secrets").is_none(), "two watches only");
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
