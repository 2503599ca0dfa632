//! Request accounting, so tests and benchmarks can assert how much API load a client causes.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// A point-in-time copy of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// (verb, resource, user) -> requests. Resource is `plural` or `plural.group`; "" for discovery.
    pub requests: BTreeMap<(String, String, String), u64>,
    pub open_watches: i64,
    pub bytes_sent: u64,
    /// Response and watch-stream bytes by (user, verb): what each client received, and for what.
    pub bytes_by_user: BTreeMap<(String, String), u64>,
    /// Frames written to watch streams (events, bookmarks, errors).
    pub watch_events: u64,
}

impl StatsSnapshot {
    /// Requests with this verb, over all resources and users.
    pub fn verb(&self, verb: &str) -> u64 {
        self.requests.iter().filter(|((v, _, _), _)| v == verb).map(|(_, n)| n).sum()
    }

    /// Requests with this verb on this resource, over all users.
    pub fn count(&self, verb: &str, resource: &str) -> u64 {
        self.requests.iter().filter(|((v, r, _), _)| v == verb && r == resource).map(|(_, n)| n).sum()
    }

    pub fn total(&self) -> u64 {
        self.requests.values().sum()
    }

    /// Bytes sent to this user (responses and watch frames).
    pub fn bytes_to(&self, user: &str) -> u64 {
        self.bytes_by_user.iter().filter(|((u, _), _)| u == user).map(|(_, n)| n).sum()
    }

    /// Bytes sent to this user in answer to reads (`get`, `list`, `watch`), not to its writes.
    pub fn read_bytes_to(&self, user: &str) -> u64 {
        self.bytes_by_user.iter().filter(|((u, v), _)| u == user && is_read(v)).map(|(_, n)| n).sum()
    }

    /// Bytes sent in answer to reads, over all users.
    pub fn read_bytes(&self) -> u64 {
        self.bytes_by_user.iter().filter(|((_, v), _)| is_read(v)).map(|(_, n)| n).sum()
    }

    /// Only this user's requests and bytes (open watches and frame counts stay global).
    pub fn for_user(&self, user: &str) -> StatsSnapshot {
        StatsSnapshot {
            requests: self.requests.iter().filter(|((_, _, u), _)| u == user).map(|(k, n)| (k.clone(), *n)).collect(),
            bytes_sent: self.bytes_to(user),
            bytes_by_user: self
                .bytes_by_user
                .iter()
                .filter(|((u, _), _)| u == user)
                .map(|(k, n)| (k.clone(), *n))
                .collect(),
            ..self.clone()
        }
    }
}

fn is_read(verb: &str) -> bool {
    matches!(verb, "get" | "list" | "watch")
}

#[derive(Debug, Default)]
pub struct Stats {
    requests: Mutex<BTreeMap<(String, String, String), u64>>,
    open_watches: AtomicI64,
    bytes_sent: AtomicU64,
    bytes_by_user: Mutex<BTreeMap<(String, String), u64>>,
    watch_events: AtomicU64,
    hung: AtomicI64,
}

/// Counts a request as hung by [`crate::testkit::ApiServer::hang`] while it lives (the client may
/// give up, which drops it).
pub struct Hung<'a>(&'a Stats);

impl Drop for Hung<'_> {
    fn drop(&mut self) {
        self.0.hung.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Stats {
    pub fn record(&self, verb: &str, resource: &str, user: &str) {
        let mut m = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry((verb.to_string(), resource.to_string(), user.to_string())).or_default() += 1;
    }

    pub fn sent(&self, n: usize) {
        self.bytes_sent.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// `n` response bytes went to `user` for a `verb` request (on top of [`Stats::sent`], which
    /// counts them globally).
    pub fn sent_to(&self, user: &str, verb: &str, n: usize) {
        let mut m = self.bytes_by_user.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry((user.to_string(), verb.to_string())).or_default() += n as u64;
    }

    pub fn watch_event(&self, user: &str, bytes: usize) {
        self.watch_events.fetch_add(1, Ordering::Relaxed);
        self.sent(bytes);
        self.sent_to(user, "watch", bytes);
    }

    pub fn watch_opened(&self) {
        self.open_watches.fetch_add(1, Ordering::SeqCst);
    }

    pub fn watch_closed(&self) {
        self.open_watches.fetch_sub(1, Ordering::SeqCst);
    }

    pub fn open_watches(&self) -> i64 {
        self.open_watches.load(Ordering::SeqCst)
    }

    pub fn hung(&self) -> Hung<'_> {
        self.hung.fetch_add(1, Ordering::SeqCst);
        Hung(self)
    }

    pub fn hung_requests(&self) -> i64 {
        self.hung.load(Ordering::SeqCst)
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            requests: self.requests.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            open_watches: self.open_watches(),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            bytes_by_user: self.bytes_by_user.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            watch_events: self.watch_events.load(Ordering::Relaxed),
        }
    }

    /// Clears request and byte counters; open watches are a gauge and stay.
    pub fn reset(&self) {
        self.requests.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.bytes_sent.store(0, Ordering::Relaxed);
        self.bytes_by_user.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.watch_events.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_reset() {
        let s = Stats::default();
        s.record("list", "secrets", "admin");
        s.record("list", "secrets", "bob");
        s.record("get", "secrets", "admin");
        s.sent(10);
        s.sent_to("bob", "list", 10);
        s.sent_to("admin", "create", 7);
        s.watch_event("admin", 5);
        s.watch_opened();
        let snap = s.snapshot();
        assert_eq!(snap.count("list", "secrets"), 2);
        assert_eq!(snap.verb("get"), 1);
        assert_eq!((snap.bytes_sent, snap.bytes_to("bob"), snap.bytes_to("admin")), (15, 10, 12));
        assert_eq!((snap.read_bytes_to("admin"), snap.read_bytes()), (5, 15));
        let bob = snap.for_user("bob");
        assert_eq!((bob.total(), bob.bytes_sent, bob.watch_events), (1, 10, 1));
        s.reset();
        let snap = s.snapshot();
        assert_eq!((snap.total(), snap.bytes_to("bob")), (0, 0));
        assert_eq!(snap.open_watches, 1);
    }
}
