//! The health of one watcher, shared with the admin endpoints, the metrics and the reconcilers:
//! counters, the time of its last progress (the stall metric), the time of its last answer of any
//! kind (liveness), and its current failure streak (readiness, isolation of a type that cannot be
//! watched). Written by the driver in [`crate::watcher`], read everywhere else.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::client;
use crate::watcher::WATCH_TIMEOUT_SECS;

/// A watcher without progress for this long is stuck: a healthy one gets a bookmark about every
/// minute and re-opens its watch within the longest server timeout. Twice that timeout leaves room
/// for one failed attempt plus backoff.
pub const STUCK_AFTER: Duration = Duration::from_secs(2 * WATCH_TIMEOUT_SECS.1);
/// Longest failure detail kept for logs and the readiness report.
const MAX_DETAIL: usize = 240;

/// Why a list or watch request failed, as a bounded metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureReason {
    Forbidden,
    Unauthorized,
    /// The resource is not served (a CRD deleted, an aggregated API gone).
    NotFound,
    TooManyRequests,
    /// 5xx: a failing conversion webhook or aggregated API, an overloaded server.
    ServerError,
    /// Another 4xx.
    ClientError,
    Transport,
    Timeout,
    Decode,
}

impl FailureReason {
    pub const ALL: [FailureReason; 9] = [
        FailureReason::Forbidden,
        FailureReason::Unauthorized,
        FailureReason::NotFound,
        FailureReason::TooManyRequests,
        FailureReason::ServerError,
        FailureReason::ClientError,
        FailureReason::Transport,
        FailureReason::Timeout,
        FailureReason::Decode,
    ];

    pub fn of(e: &client::Error) -> Self {
        match e {
            client::Error::Api(s) => match s.code {
                401 => FailureReason::Unauthorized,
                403 => FailureReason::Forbidden,
                404 => FailureReason::NotFound,
                429 => FailureReason::TooManyRequests,
                c if c >= 500 => FailureReason::ServerError,
                _ => FailureReason::ClientError,
            },
            client::Error::Transport(_) => FailureReason::Transport,
            client::Error::Timeout(_) => FailureReason::Timeout,
            client::Error::Decode(_) => FailureReason::Decode,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Forbidden => "Forbidden",
            FailureReason::Unauthorized => "Unauthorized",
            FailureReason::NotFound => "NotFound",
            FailureReason::TooManyRequests => "TooManyRequests",
            FailureReason::ServerError => "ServerError",
            FailureReason::ClientError => "ClientError",
            FailureReason::Transport => "Transport",
            FailureReason::Timeout => "Timeout",
            FailureReason::Decode => "Decode",
        }
    }

    /// The server refuses us or does not serve the resource: nothing a quick retry changes.
    pub fn is_refusal(self) -> bool {
        matches!(self, FailureReason::Forbidden | FailureReason::Unauthorized | FailureReason::NotFound)
    }
}

/// The current failure streak of a watcher: its list or watch requests fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: FailureReason,
    /// The last error, capped (a status message, never a response body).
    pub detail: String,
    pub since: Instant,
    /// Failed requests in this streak.
    pub attempts: u64,
}

/// Where a watcher stands, for readiness, the reconcilers and the readiness report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchState {
    /// First listing in progress.
    Syncing,
    /// Listed, and its requests succeed.
    Synced,
    /// Its requests fail and are retried with backoff; `synced`: whether a listing completed before
    /// (the cache then holds the last state it saw, which can no longer be refreshed).
    Failing { failure: Failure, synced: bool },
}

/// Liveness and counters of one watcher, shared with the metrics and health endpoints.
#[derive(Debug)]
pub struct WatchHealth {
    last_progress: Mutex<Instant>,
    /// Last answer of any kind, failures included: the driver loop is turning.
    last_activity: Mutex<Instant>,
    failure: Mutex<Option<Failure>>,
    failures: Mutex<BTreeMap<FailureReason, u64>>,
    lists: AtomicU64,
    watches: AtomicU64,
    listings: AtomicU64,
    errors: AtomicU64,
}

impl WatchHealth {
    pub(crate) fn new() -> Self {
        WatchHealth {
            last_progress: Mutex::new(Instant::now()),
            last_activity: Mutex::new(Instant::now()),
            failure: Mutex::new(None),
            failures: Mutex::default(),
            lists: AtomicU64::new(0),
            watches: AtomicU64::new(0),
            listings: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    pub(crate) fn count_list(&self) {
        self.lists.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_watch(&self) {
        self.watches.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_listing(&self) {
        self.listings.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn progress(&self) {
        *self.last_progress.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        self.active();
    }

    fn active(&self) {
        *self.last_activity.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// A list or watch request failed; returns the streak (whose `attempts == 1` on its first failure).
    pub(crate) fn failed(&self, e: &client::Error) -> Failure {
        self.active();
        let reason = FailureReason::of(e);
        *self.failures.lock().unwrap_or_else(|p| p.into_inner()).entry(reason).or_default() += 1;
        let full = e.to_string();
        let mut detail: String = full.chars().take(MAX_DETAIL).collect();
        if detail.len() < full.len() {
            detail.push('…');
        }
        let mut current = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        let next = match current.take() {
            Some(f) if f.reason == reason => Failure { detail, attempts: f.attempts + 1, ..f },
            _ => Failure { reason, detail, since: Instant::now(), attempts: 1 },
        };
        *current = Some(next.clone());
        next
    }

    /// A list or watch request succeeded; returns the streak it ended, if any.
    pub(crate) fn recovered(&self) -> Option<Failure> {
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Time since the last list page, watch start, event or bookmark (the
    /// `kubemirror_watch_last_event_age_seconds` metric).
    pub fn age(&self) -> Duration {
        self.last_progress.lock().unwrap_or_else(|p| p.into_inner()).elapsed()
    }

    /// For the liveness probe: nothing at all happened for [`STUCK_AFTER`] — no event, no bookmark,
    /// no answer, not even an error. A healthy watch sees a bookmark about every minute and restarts
    /// within [`WATCH_TIMEOUT_SECS`]; a watcher whose requests keep failing (403 on a type RBAC does
    /// not grant, 404 on a deleted CRD, a failing webhook) gets an answer at least every
    /// [`crate::watcher::REFUSED_MAX_BACKOFF`] and is reported, not stuck: restarting the process cannot fix it.
    pub fn is_stuck(&self) -> bool {
        self.idle() > STUCK_AFTER
    }

    /// Time since the last answer of any kind (see [`is_stuck`](Self::is_stuck)).
    pub fn idle(&self) -> Duration {
        self.last_activity.lock().unwrap_or_else(|p| p.into_inner()).elapsed()
    }

    /// The current failure streak, if the last list or watch request failed.
    pub fn failure(&self) -> Option<Failure> {
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn state(&self) -> WatchState {
        let synced = self.listings() > 0;
        match (self.failure(), synced) {
            (Some(failure), synced) => WatchState::Failing { failure, synced },
            (None, true) => WatchState::Synced,
            (None, false) => WatchState::Syncing,
        }
    }

    /// Failed list and watch requests by reason, since start.
    pub fn failures(&self) -> Vec<(FailureReason, u64)> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(r, n)| (*r, *n)).collect()
    }

    /// List requests (pages) sent.
    pub fn lists(&self) -> u64 {
        self.lists.load(Ordering::Relaxed)
    }

    /// Watch requests sent.
    pub fn watches(&self) -> u64 {
        self.watches.load(Ordering::Relaxed)
    }

    /// Complete listings, the first included.
    pub fn listings(&self) -> u64 {
        self.listings.load(Ordering::Relaxed)
    }

    /// Complete listings after the first (410s).
    pub fn relists(&self) -> u64 {
        self.listings().saturating_sub(1)
    }

    /// Backoffs taken (failed calls, failed or instantly closed streams).
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
}
