//! The work queue between the cache and the reconcilers, with client-go workqueue semantics:
//!
//! - keyed and de-duplicated: a key added many times before a worker takes it is processed once;
//! - a key added while it is being processed is processed again afterwards, never concurrently;
//! - delayed adds keep one deadline per key, the earliest (kube-rs scheduler): an immediate add
//!   supersedes a pending delayed one, a later delayed add is dropped;
//! - failures retry with a per-key exponential backoff (5 ms doubling to a cap, 120 s by default:
//!   client-go's 1000 s would leave a source minutes behind after a one-minute API outage),
//!   forgotten on success, and every retry also takes a token from an overall bucket (10 qps /
//!   burst 100) so a mass failure cannot turn into a retry storm against the API server
//!   (client-go's `DefaultTypedControllerRateLimiter` is the max of the two);
//! - memory is bounded by the number of distinct keys: each key sits at most once in each set.
//!
//! Timers live inside `next()`: a waiting worker sleeps until the earliest deadline or a wake-up,
//! so the queue needs no background task of its own.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::util::ratelimit::TokenBucket;

/// `--worker-threads` default.
pub const DEFAULT_WORKERS: usize = 5;

#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// First retry delay after a failure; doubles per consecutive failure of the same key.
    pub base_delay: Duration,
    /// Cap of the per-key retry delay.
    pub max_delay: Duration,
    /// Overall retry rate (token bucket); `<= 0` disables it.
    pub retry_qps: f64,
    pub retry_burst: u32,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_secs(120),
            retry_qps: 10.0,
            retry_burst: 100,
        }
    }
}

/// What a successful handler wants next for its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing until the key is added again.
    Done,
    /// Process again after this long (periodic drift checks, waiting on something external).
    RequeueAfter(Duration),
}

/// Counters and gauges for the metrics endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// Keys ready and waiting for a worker.
    pub depth: usize,
    /// Keys waiting for a deadline (requeues and retries).
    pub delayed: usize,
    /// Keys a worker holds right now.
    pub processing: usize,
    /// Keys with a failure count, i.e. in backoff.
    pub failing: usize,
    /// Accepted adds (immediate or delayed), including de-duplicated ones.
    pub adds: u64,
    /// Retries scheduled after a failure.
    pub retries: u64,
    /// Time spent so far on the keys being processed, summed.
    pub unfinished_work: Duration,
    /// Time spent so far on the key processed longest.
    pub longest_running: Duration,
}

/// Told how long each key waited for a worker and how long its processing took (the
/// `workqueue_queue_duration_seconds` / `workqueue_work_duration_seconds` histograms).
pub trait QueueObserver: Send + Sync {
    fn waited(&self, d: Duration);
    fn worked(&self, d: Duration);
}

struct State<K> {
    ready: VecDeque<K>,
    /// Keys that must be processed (again): those in `ready`, plus those added while processing.
    dirty: HashSet<K>,
    processing: HashSet<K>,
    /// Pending deadline per key; `timers` orders the same entries by time (seq breaks ties and keeps
    /// the map free of an `Ord` bound on keys).
    delayed: HashMap<K, (Instant, u64)>,
    timers: BTreeMap<(Instant, u64), K>,
    seq: u64,
    failures: HashMap<K, u32>,
    /// When each dirty key was marked (for the wait it is observed with).
    queued_at: HashMap<K, Instant>,
    /// When a worker took each key being processed.
    started: HashMap<K, Instant>,
    shutdown: bool,
}

struct Inner<K> {
    state: Mutex<State<K>>,
    wake: Notify,
    retry_bucket: TokenBucket,
    cfg: QueueConfig,
    adds: AtomicU64,
    retries: AtomicU64,
    observer: Option<Arc<dyn QueueObserver>>,
}

/// Cheap to clone; all clones share one queue.
pub struct WorkQueue<K> {
    inner: Arc<Inner<K>>,
}

impl<K> Clone for WorkQueue<K> {
    fn clone(&self) -> Self {
        WorkQueue { inner: self.inner.clone() }
    }
}

impl<K: Clone + Eq + Hash + Send + Sync + 'static> WorkQueue<K> {
    pub fn new(cfg: QueueConfig) -> Self {
        Self::observed(cfg, None)
    }

    /// A queue that reports its waits and processing times to `observer`.
    pub fn observed(cfg: QueueConfig, observer: Option<Arc<dyn QueueObserver>>) -> Self {
        let retry_bucket = TokenBucket::new(cfg.retry_qps, cfg.retry_burst);
        WorkQueue {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    ready: VecDeque::new(),
                    dirty: HashSet::new(),
                    processing: HashSet::new(),
                    delayed: HashMap::new(),
                    timers: BTreeMap::new(),
                    seq: 0,
                    failures: HashMap::new(),
                    queued_at: HashMap::new(),
                    started: HashMap::new(),
                    shutdown: false,
                }),
                wake: Notify::new(),
                retry_bucket,
                cfg,
                adds: AtomicU64::new(0),
                retries: AtomicU64::new(0),
                observer,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<K>> {
        // A panicking handler never holds this lock, so a poisoned state is still consistent.
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue a key for processing now.
    pub fn add(&self, key: K) {
        let mut st = self.lock();
        if st.shutdown {
            return;
        }
        self.inner.adds.fetch_add(1, Ordering::Relaxed);
        Self::cancel_delay(&mut st, &key);
        if Self::enqueue(&mut st, key) {
            drop(st);
            self.inner.wake.notify_waiters();
        }
    }

    /// Queue a key after `delay`, unless it is already due earlier.
    pub fn add_after(&self, key: K, delay: Duration) {
        if delay.is_zero() {
            return self.add(key);
        }
        let mut st = self.lock();
        if st.shutdown {
            return;
        }
        self.inner.adds.fetch_add(1, Ordering::Relaxed);
        // A huge delay (Duration::MAX as "never") must not overflow the clock.
        let now = Instant::now();
        let at = now.checked_add(delay).unwrap_or(now + Duration::from_secs(86_400 * 365));
        if self.schedule(&mut st, key, at) {
            drop(st);
            self.inner.wake.notify_waiters();
        }
    }

    /// Retry a failed key after its backoff (per key, exponential) and the overall retry budget,
    /// whichever is longer.
    pub fn add_rate_limited(&self, key: K) {
        let mut st = self.lock();
        if st.shutdown {
            return;
        }
        let failures = st.failures.entry(key.clone()).or_insert(0);
        let delay = backoff_delay(&self.inner.cfg, *failures);
        *failures = failures.saturating_add(1);
        let now = Instant::now();
        let budget = self.inner.retry_bucket.reserve_at(now.into_std());
        self.inner.adds.fetch_add(1, Ordering::Relaxed);
        self.inner.retries.fetch_add(1, Ordering::Relaxed);
        if self.schedule(&mut st, key, now + delay.max(budget)) {
            drop(st);
            self.inner.wake.notify_waiters();
        }
    }

    /// Clear the key's failure count (after a success, or when the object is gone).
    pub fn forget(&self, key: &K) {
        self.lock().failures.remove(key);
    }

    /// Consecutive failures recorded for the key.
    pub fn failures(&self, key: &K) -> u32 {
        self.lock().failures.get(key).copied().unwrap_or(0)
    }

    /// Marks dirty and, unless a worker holds the key, makes it ready. True when it became ready.
    fn enqueue(st: &mut State<K>, key: K) -> bool {
        if st.dirty.contains(&key) {
            return false;
        }
        st.dirty.insert(key.clone());
        st.queued_at.insert(key.clone(), Instant::now());
        if st.processing.contains(&key) {
            return false;
        }
        st.ready.push_back(key);
        true
    }

    fn cancel_delay(st: &mut State<K>, key: &K) {
        if let Some(slot) = st.delayed.remove(key) {
            st.timers.remove(&slot);
        }
    }

    /// Records a deadline; true when it became the earliest one (waiters must recompute sleeps).
    fn schedule(&self, st: &mut State<K>, key: K, at: Instant) -> bool {
        // Already due now (ready, or pending re-run after processing): that is earlier than any delay.
        if st.dirty.contains(&key) {
            return false;
        }
        if let Some(&(existing, _)) = st.delayed.get(&key) {
            if existing <= at {
                return false;
            }
            Self::cancel_delay(st, &key);
        }
        st.seq += 1;
        let slot = (at, st.seq);
        st.delayed.insert(key.clone(), slot);
        st.timers.insert(slot, key);
        st.timers.keys().next() == Some(&slot)
    }

    fn promote_due(st: &mut State<K>, now: Instant) {
        while let Some(entry) = st.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            st.delayed.remove(&key);
            Self::enqueue(st, key);
        }
    }

    /// The next key to process, waiting for one; `None` once the queue is shut down (work still
    /// queued is left: a new leader or process picks it up from its own cache).
    pub async fn next(&self) -> Option<K> {
        loop {
            let woken = self.inner.wake.notified();
            tokio::pin!(woken);
            // Register before looking at the state so a wake-up in between is not lost.
            woken.as_mut().enable();
            let deadline = {
                let mut st = self.lock();
                if st.shutdown {
                    return None;
                }
                let now = Instant::now();
                Self::promote_due(&mut st, now);
                if let Some(key) = st.ready.pop_front() {
                    st.dirty.remove(&key);
                    st.processing.insert(key.clone());
                    let waited = st.queued_at.remove(&key).map(|t| now.saturating_duration_since(t));
                    st.started.insert(key.clone(), now);
                    drop(st);
                    if let (Some(o), Some(w)) = (&self.inner.observer, waited) {
                        o.waited(w);
                    }
                    return Some(key);
                }
                st.timers.keys().next().map(|(at, _)| *at)
            };
            match deadline {
                Some(at) => {
                    tokio::select! {
                        _ = &mut woken => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => woken.await,
            }
        }
    }

    /// A worker is finished with the key: if it was added meanwhile, it becomes ready again.
    pub fn done(&self, key: &K) {
        let mut st = self.lock();
        st.processing.remove(key);
        let worked = st.started.remove(key).map(|t| Instant::now().saturating_duration_since(t));
        let ready = st.dirty.contains(key) && !st.shutdown;
        if ready {
            st.ready.push_back(key.clone());
        }
        drop(st);
        if let (Some(o), Some(w)) = (&self.inner.observer, worked) {
            o.worked(w);
        }
        if ready {
            self.inner.wake.notify_waiters();
        }
    }

    /// Stop handing out work; adds are ignored from now on. In-flight items finish normally.
    pub fn shutdown(&self) {
        self.lock().shutdown = true;
        self.inner.wake.notify_waiters();
    }

    pub fn is_shutdown(&self) -> bool {
        self.lock().shutdown
    }

    pub fn stats(&self) -> QueueStats {
        let st = self.lock();
        let now = Instant::now();
        let running = st.started.values().map(|t| now.saturating_duration_since(*t));
        QueueStats {
            unfinished_work: running.clone().sum(),
            longest_running: running.max().unwrap_or_default(),
            depth: st.ready.len(),
            delayed: st.delayed.len(),
            processing: st.processing.len(),
            failing: st.failures.len(),
            adds: self.inner.adds.load(Ordering::Relaxed),
            retries: self.inner.retries.load(Ordering::Relaxed),
        }
    }

    /// Runs `workers` workers until [`shutdown`](Self::shutdown), then waits for in-flight handlers.
    /// Success forgets the key's failures; an error retries it with backoff.
    pub async fn run<F, Fut, E>(&self, workers: usize, handler: F)
    where
        F: Fn(K) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let handler = Arc::new(handler);
        let mut set = JoinSet::new();
        for _ in 0..workers.max(1) {
            let (queue, handler) = (self.clone(), handler.clone());
            set.spawn(async move {
                while let Some(key) = queue.next().await {
                    // Own task per item: a panicking handler (a bug) then costs one retry of its key,
                    // not a worker; release builds abort on panic anyway.
                    let result = tokio::spawn(handler(key.clone())).await;
                    queue.finish(key, result);
                }
            });
        }
        while let Some(joined) = set.join_next().await {
            if let Err(e) = joined {
                log::error!("work queue worker ended abnormally: {e}");
            }
        }
    }

    fn finish<E: std::fmt::Display>(&self, key: K, result: Result<Result<Action, E>, tokio::task::JoinError>) {
        match result {
            Ok(Ok(action)) => {
                self.forget(&key);
                if let Action::RequeueAfter(d) = action {
                    self.add_after(key.clone(), d);
                }
            }
            Ok(Err(e)) => {
                // The handler logs with the object's identity; this line only records the retry.
                log::debug!("work item failed, retrying with backoff: {e}");
                self.add_rate_limited(key.clone());
            }
            Err(e) => {
                log::error!("work item handler panicked, retrying with backoff: {e}");
                self.add_rate_limited(key.clone());
            }
        }
        self.done(&key);
    }
}

/// `base × 2^failures`, capped; saturates instead of overflowing for long failure streaks.
fn backoff_delay(cfg: &QueueConfig, failures: u32) -> Duration {
    let factor = 2u32.checked_pow(failures).unwrap_or(u32::MAX);
    cfg.base_delay.checked_mul(factor).unwrap_or(cfg.max_delay).min(cfg.max_delay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn queue() -> WorkQueue<&'static str> {
        WorkQueue::new(QueueConfig::default())
    }

    /// Polls `next()` without waiting: Some(key) only if one is ready right now.
    async fn try_next(q: &WorkQueue<&'static str>) -> Option<&'static str> {
        tokio::time::timeout(Duration::ZERO, q.next()).await.ok().flatten()
    }

    #[tokio::test(start_paused = true)]
    async fn adds_are_deduplicated() {
        let q = queue();
        for _ in 0..5 {
            q.add("a");
        }
        q.add("b");
        assert_eq!(q.stats().depth, 2);
        assert_eq!(q.stats().adds, 6);
        assert_eq!(try_next(&q).await, Some("a"));
        assert_eq!(try_next(&q).await, Some("b"));
        assert_eq!(try_next(&q).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn readd_while_processing_runs_again_after_done() {
        let q = queue();
        q.add("a");
        assert_eq!(try_next(&q).await, Some("a"));
        q.add("a");
        q.add("a");
        // Held by a worker: not handed out twice concurrently.
        assert_eq!(try_next(&q).await, None);
        q.done(&"a");
        assert_eq!(try_next(&q).await, Some("a"));
        q.done(&"a");
        assert_eq!(try_next(&q).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_add_earliest_deadline_wins() {
        let q = queue();
        q.add_after("a", Duration::from_secs(10));
        q.add_after("a", Duration::from_secs(3));
        q.add_after("a", Duration::from_secs(20));
        assert_eq!(q.stats().delayed, 1);
        let t0 = Instant::now();
        assert_eq!(q.next().await, Some("a"));
        assert_eq!(t0.elapsed(), Duration::from_secs(3));
        q.done(&"a");
        // The superseded deadlines left nothing behind.
        assert_eq!(q.stats(), QueueStats { adds: 3, ..QueueStats::default() });
    }

    #[tokio::test(start_paused = true)]
    async fn a_huge_delay_does_not_overflow() {
        let q = queue();
        q.add_after("a", Duration::MAX);
        assert_eq!(q.stats().delayed, 1);
        assert_eq!(try_next(&q).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn immediate_add_supersedes_delay_and_ready_key_ignores_delay() {
        let q = queue();
        q.add_after("a", Duration::from_secs(10));
        q.add("a");
        assert_eq!(q.stats().delayed, 0);
        q.add_after("a", Duration::from_secs(1));
        assert_eq!(q.stats().delayed, 0);
        assert_eq!(try_next(&q).await, Some("a"));
        q.done(&"a");
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(try_next(&q).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_key_due_while_processing_waits_for_done() {
        let q = queue();
        q.add("a");
        assert_eq!(try_next(&q).await, Some("a"));
        q.add_after("a", Duration::from_secs(1));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(try_next(&q).await, None);
        q.done(&"a");
        assert_eq!(try_next(&q).await, Some("a"));
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_worker_wakes_for_an_earlier_deadline() {
        let q = queue();
        q.add_after("late", Duration::from_secs(100));
        let waiter = tokio::spawn({
            let q = q.clone();
            async move {
                let t0 = Instant::now();
                (q.next().await, t0.elapsed())
            }
        });
        tokio::task::yield_now().await;
        q.add_after("early", Duration::from_secs(5));
        let (key, waited) = waiter.await.unwrap();
        assert_eq!(key, Some("early"));
        assert_eq!(waited, Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_exponentially_and_success_forgets() {
        let q = WorkQueue::new(QueueConfig { retry_qps: 0.0, ..QueueConfig::default() });
        let mut waits = Vec::new();
        for _ in 0..4 {
            q.add_rate_limited("a");
            let t0 = Instant::now();
            assert_eq!(q.next().await, Some("a"));
            waits.push(t0.elapsed().as_millis());
            q.done(&"a");
        }
        assert_eq!(waits, vec![5, 10, 20, 40]);
        assert_eq!(q.failures(&"a"), 4);
        assert_eq!(q.stats().retries, 4);
        q.forget(&"a");
        assert_eq!(q.stats().failing, 0);
        q.add_rate_limited("a");
        let t0 = Instant::now();
        assert_eq!(q.next().await, Some("a"));
        assert_eq!(t0.elapsed(), Duration::from_millis(5));
    }

    #[test]
    fn backoff_is_capped_and_never_overflows() {
        let cfg = QueueConfig { max_delay: Duration::from_secs(1000), ..QueueConfig::default() };
        assert_eq!(backoff_delay(&cfg, 0), Duration::from_millis(5));
        assert_eq!(backoff_delay(&cfg, 3), Duration::from_millis(40));
        assert_eq!(backoff_delay(&cfg, 17), Duration::from_millis(655_360));
        assert_eq!(backoff_delay(&cfg, 18), Duration::from_secs(1000));
        assert_eq!(backoff_delay(&cfg, u32::MAX), Duration::from_secs(1000));
        // The default cap: a source waits at most two minutes for its next try.
        let default = QueueConfig::default();
        assert_eq!(backoff_delay(&default, 14), Duration::from_millis(81_920));
        assert_eq!(backoff_delay(&default, 15), Duration::from_secs(120));
    }

    #[tokio::test(start_paused = true)]
    async fn overall_retry_budget_spreads_mass_failures() {
        // Burst 2 at 10 qps: the third and fourth retries wait for tokens, not just their 5 ms.
        let q = WorkQueue::new(QueueConfig { retry_qps: 10.0, retry_burst: 2, ..QueueConfig::default() });
        for k in ["a", "b", "c", "d"] {
            q.add_rate_limited(k);
        }
        let t0 = Instant::now();
        let mut times = Vec::new();
        for _ in 0..4 {
            let k = q.next().await.unwrap();
            times.push((k, t0.elapsed().as_millis()));
        }
        assert_eq!(times, vec![("a", 5), ("b", 5), ("c", 100), ("d", 200)]);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_stops_handing_out_and_ignores_adds() {
        let q = queue();
        q.add("a");
        let waiter = tokio::spawn({
            let q = q.clone();
            async move {
                let first = q.next().await;
                let second = q.next().await;
                (first, second)
            }
        });
        tokio::task::yield_now().await;
        q.shutdown();
        q.add("b");
        assert_eq!(waiter.await.unwrap(), (Some("a"), None));
        assert!(q.is_shutdown());
        assert_eq!(q.stats().depth, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn workers_never_process_a_key_concurrently_and_finish_in_flight_work() {
        let q: WorkQueue<u32> = WorkQueue::new(QueueConfig::default());
        let active: Arc<Mutex<HashSet<u32>>> = Arc::default();
        let runs = Arc::new(AtomicUsize::new(0));
        let overlap = Arc::new(AtomicUsize::new(0));
        let runner = tokio::spawn({
            let (q, active, runs, overlap) = (q.clone(), active.clone(), runs.clone(), overlap.clone());
            async move {
                q.run(4, move |k: u32| {
                    let (active, runs, overlap) = (active.clone(), runs.clone(), overlap.clone());
                    async move {
                        if !active.lock().unwrap().insert(k) {
                            overlap.fetch_add(1, Ordering::SeqCst);
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        active.lock().unwrap().remove(&k);
                        runs.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, String>(Action::Done)
                    }
                })
                .await
            }
        });
        // Hammer three keys while workers process them.
        for round in 0..20 {
            for k in 0..3 {
                q.add(k);
            }
            tokio::time::sleep(Duration::from_millis(3 + round % 4)).await;
        }
        // Wait (with a deadline) until everything queued is processed.
        let deadline = Instant::now() + Duration::from_secs(10);
        while q.stats().depth + q.stats().processing > 0 {
            assert!(Instant::now() < deadline, "queue did not drain");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(overlap.load(Ordering::SeqCst), 0);
        let processed = runs.load(Ordering::SeqCst);
        assert!((3..60).contains(&processed), "dedup should merge adds: {processed}");
        // One more item in flight at shutdown is allowed to finish; run() then returns.
        q.add(7);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(q.stats().processing, 1);
        q.shutdown();
        runner.await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), processed + 1);
    }

    #[tokio::test(start_paused = true)]
    async fn run_retries_errors_and_honours_requeue_after() {
        let q: WorkQueue<&'static str> = queue();
        let calls: Arc<Mutex<Vec<(&'static str, u128)>>> = Arc::default();
        let t0 = Instant::now();
        let runner = tokio::spawn({
            let (q, calls) = (q.clone(), calls.clone());
            async move {
                q.run(2, move |k| {
                    let calls = calls.clone();
                    async move {
                        let n = {
                            let mut c = calls.lock().unwrap();
                            c.push((k, t0.elapsed().as_millis()));
                            c.iter().filter(|(x, _)| *x == k).count()
                        };
                        match (k, n) {
                            ("flaky", 1 | 2) => Err("boom".to_string()),
                            ("periodic", 1) => Ok(Action::RequeueAfter(Duration::from_secs(60))),
                            _ => Ok(Action::Done),
                        }
                    }
                })
                .await
            }
        });
        q.add("flaky");
        q.add("periodic");
        let deadline = Instant::now() + Duration::from_secs(120);
        while calls.lock().unwrap().len() < 5 {
            assert!(Instant::now() < deadline, "not all calls happened: {:?}", calls.lock().unwrap());
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let got = calls.lock().unwrap().clone();
        assert_eq!(got, vec![("flaky", 0), ("periodic", 0), ("flaky", 5), ("flaky", 15), ("periodic", 60_000)]);
        assert_eq!(q.failures(&"flaky"), 0, "success forgets the failures");
        q.shutdown();
        runner.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_handler_costs_a_retry_not_the_worker() {
        let q: WorkQueue<&'static str> = queue();
        let good = Arc::new(AtomicUsize::new(0));
        let runner = tokio::spawn({
            let (q, good) = (q.clone(), good.clone());
            async move {
                q.run(1, move |k| {
                    let good = good.clone();
                    async move {
                        if k == "bad" {
                            panic!("handler bug");
                        }
                        good.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, String>(Action::Done)
                    }
                })
                .await
            }
        });
        q.add("bad");
        let deadline = Instant::now() + Duration::from_secs(1);
        while q.failures(&"bad") == 0 {
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // The single worker survived and still serves other keys.
        q.add("good");
        while good.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        q.shutdown();
        runner.await.unwrap();
        assert_eq!(q.stats().processing, 0);
    }

    #[derive(Default)]
    struct Seen(std::sync::Mutex<Vec<(&'static str, Duration)>>);

    impl QueueObserver for Seen {
        fn waited(&self, d: Duration) {
            self.0.lock().unwrap().push(("waited", d));
        }
        fn worked(&self, d: Duration) {
            self.0.lock().unwrap().push(("worked", d));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn waits_and_processing_times_are_observed() {
        let seen = Arc::new(Seen::default());
        let q = WorkQueue::observed(QueueConfig::default(), Some(seen.clone() as Arc<dyn QueueObserver>));
        q.add("a");
        tokio::time::advance(Duration::from_millis(30)).await;
        assert_eq!(try_next(&q).await, Some("a"));
        tokio::time::advance(Duration::from_millis(70)).await;
        let st = q.stats();
        assert_eq!((st.unfinished_work, st.longest_running), (Duration::from_millis(70), Duration::from_millis(70)));
        q.done(&"a");
        let got = seen.0.lock().unwrap().clone();
        assert_eq!(got, [("waited", Duration::from_millis(30)), ("worked", Duration::from_millis(70))]);
        assert_eq!(q.stats().unfinished_work, Duration::ZERO);
    }
}
