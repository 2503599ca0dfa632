//! List/watch for one watched stream, kube-rs style: a pure state machine ([`Machine::step`]) that,
//! given the outcome of the last API call, says what to call next and which [`Event`]s to hand to
//! the cache; and a driver ([`Watcher::run`]) that performs the calls, sleeps the backoffs and
//! tracks liveness. The machine holds no timers, so every transition is unit-tested with scripts.
//!
//! Request budget per stream: startup is one paginated list (`limit=500`, most recent
//! resourceVersion, `continue` for further pages) and one watch from the list's resourceVersion;
//! with watch-list (`sendInitialEvents`) it is a single watch. After that:
//! - bookmarks and events advance the resume point;
//! - a watch that ends normally, or that the client's idle deadline cuts, resumes from the last
//!   resourceVersion at once, without a list;
//! - 410 Gone/Expired relists (the only case that lists again); a 410 on a `continue` token
//!   restarts the listing from its first page; a 410 again before any event arrived backs off
//!   before relisting (kube-rs backs off on every 410, client-go never does);
//! - other errors back off (0.8 s doubling to 30 s with jitter, reset after 2 healthy minutes) and
//!   then retry the same step; a watch that closes within a second without any event counts as an
//!   error so a misbehaving server cannot make us spin;
//! - a list or watch request the server refuses for access (403, 401) or because the resource is
//!   not there (404: a CRD deleted while watched) is retried for ever, never given up, but on a
//!   slower schedule (0.8 s doubling to 5 minutes): RBAC and CRDs change rarely, and a type the
//!   controller may not read must not cost a request every 30 s per watcher;
//! - watch-list is used when enabled; if the server rejects it or the stream fails before the
//!   initial-events-end bookmark, the watcher falls back to list + watch for good (client-go:
//!   "making progress is better than deadlocking").

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use crate::client::{self, ApiResource, Client, ListParams, ObjectExt, ObjectList, RawItem, WatchEvent, WatchParams};
use crate::util::backoff::Backoff;
use crate::util::rand::Rng;

pub use crate::watch_health::{Failure, FailureReason, STUCK_AFTER, WatchHealth, WatchState};

/// client-go's pager default.
pub const DEFAULT_PAGE_SIZE: u32 = 500;
/// Server-side watch timeout range (seconds), so watches of many types do not expire together.
pub const WATCH_TIMEOUT_SECS: (u64, u64) = (290, 590);
/// A watch shorter than this without a single event is treated as a failure, not a normal end.
const MIN_HEALTHY_WATCH: Duration = Duration::from_secs(1);
/// Cap of the backoff after a refusal (403, 401, 404); see the module docs.
pub const REFUSED_MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Where the stream is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Nothing listed (start, or after 410): list from the first page, or open a watch-list.
    Empty,
    /// Listing, more pages to fetch.
    InitPage { continue_token: String },
    /// A watch-list stream is open and still sending the initial state.
    InitialWatch { resource_version: Option<String> },
    /// In sync up to `resource_version`, no watch open: (re)open one from there.
    InitListed { resource_version: String },
    /// A watch is open; `resource_version` is the resume point.
    Watching { resource_version: String },
}

/// The next API call (or wait).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// List one page. The first page asks for the most recent state (resourceVersion unset: a
    /// consistent read, served from the watch cache since Kubernetes 1.31, and paginated; "0"
    /// could be stale and makes the watch cache ignore `limit`). Later pages only pass the continue
    /// token, which pins the same snapshot.
    List { continue_token: Option<String>, limit: u32 },
    /// Open a watch from `resource_version` (unset only for watch-list).
    Watch { resource_version: Option<String>, send_initial_events: bool },
    /// Read the next event of the open watch.
    Read,
    /// Wait out the backoff, then feed [`Input::Resume`].
    Backoff,
}

/// What the cache must do (kube-rs `watcher::Event`).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A complete listing starts: collect into a fresh buffer.
    Init,
    /// One listed object, still JSON text: decoded by whoever keeps it, one at a time.
    InitApply(RawItem),
    /// The listing is complete: swap it in (reporting what vanished).
    InitDone,
    Apply(Value),
    Delete(Value),
}

/// The outcome of the last action.
#[derive(Debug)]
pub enum Input {
    /// Start, or a backoff elapsed.
    Resume,
    Listed(client::Result<ObjectList>),
    WatchOpened(client::Result<()>),
    Event(client::Result<WatchEvent>),
    /// The server ended the watch. `healthy`: it lasted a while or delivered something.
    WatchClosed {
        healthy: bool,
    },
}

impl Input {
    /// The variant, for logs: inputs carry objects (Secret data included) that must not be logged.
    pub fn kind(&self) -> &'static str {
        match self {
            Input::Resume => "resume",
            Input::Listed(Ok(_)) => "list page",
            Input::Listed(Err(_)) => "list error",
            Input::WatchOpened(Ok(())) => "watch opened",
            Input::WatchOpened(Err(_)) => "watch request error",
            Input::Event(Ok(_)) => "watch event",
            Input::Event(Err(_)) => "watch stream error",
            Input::WatchClosed { .. } => "watch closed",
        }
    }
}

#[derive(Debug, PartialEq)]
pub struct Step {
    pub action: Action,
    pub events: Vec<Event>,
}

impl Step {
    fn act(action: Action) -> Self {
        Step { action, events: Vec::new() }
    }
}

/// The pure list/watch state machine.
#[derive(Debug, Clone)]
pub struct Machine {
    state: State,
    page_size: u32,
    /// Cleared for good once the server shows it cannot do watch-list.
    watch_list: bool,
    /// The last relist came from a 410 and no event has arrived since: another 410 now backs off
    /// instead of relisting at once, so a server that keeps expiring us cannot make us spin.
    gone_streak: bool,
}

impl Machine {
    pub fn new(page_size: u32, watch_list: bool) -> Self {
        Machine { state: State::Empty, page_size: page_size.max(1), watch_list, gone_streak: false }
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn uses_watch_list(&self) -> bool {
        self.watch_list
    }

    /// The call the current state asks for when nothing is in flight.
    fn resume(&mut self) -> Action {
        match &self.state {
            State::Empty | State::InitialWatch { .. } => {
                self.state = State::Empty;
                if self.watch_list {
                    Action::Watch { resource_version: None, send_initial_events: true }
                } else {
                    Action::List { continue_token: None, limit: self.page_size }
                }
            }
            State::InitPage { continue_token } => {
                Action::List { continue_token: Some(continue_token.clone()), limit: self.page_size }
            }
            State::InitListed { resource_version } | State::Watching { resource_version } => {
                let resource_version = resource_version.clone();
                self.state = State::InitListed { resource_version: resource_version.clone() };
                Action::Watch { resource_version: Some(resource_version), send_initial_events: false }
            }
        }
    }

    /// Back to a full relist: at once, unless the previous one also followed a 410 with nothing
    /// in between.
    fn relist(&mut self) -> Step {
        self.state = State::Empty;
        if std::mem::replace(&mut self.gone_streak, true) {
            return Step::act(Action::Backoff);
        }
        Step::act(self.resume())
    }

    /// Watch-list did not work out: list + watch from now on.
    fn fall_back_to_list(&mut self, why: &str, backoff: bool) -> Step {
        log::warn!("watch-list failed ({why}); falling back to list + watch");
        self.watch_list = false;
        self.state = State::Empty;
        if backoff { Step::act(Action::Backoff) } else { Step::act(self.resume()) }
    }

    /// The watch is gone; resume from the last resourceVersion, at once or after a backoff.
    fn rewatch(&mut self, resource_version: String, backoff: bool) -> Step {
        self.state = State::InitListed { resource_version };
        if backoff { Step::act(Action::Backoff) } else { Step::act(self.resume()) }
    }

    pub fn step(&mut self, input: Input) -> Step {
        let state = std::mem::replace(&mut self.state, State::Empty);
        match (state, input) {
            (state, Input::Resume) => {
                self.state = state;
                Step::act(self.resume())
            }

            // Listing.
            (state @ (State::Empty | State::InitPage { .. }), Input::Listed(Ok(page))) => {
                let mut events = Vec::with_capacity(page.items.len() + 2);
                if state == State::Empty {
                    events.push(Event::Init);
                }
                events.extend(page.items.into_iter().map(Event::InitApply));
                if let Some(token) = page.continue_token {
                    self.state = State::InitPage { continue_token: token };
                    return Step { action: self.resume(), events };
                }
                if page.resource_version.is_empty() {
                    // Nothing to watch from; the buffer is re-initialised by the next attempt.
                    log::warn!("list returned no resourceVersion; retrying the list");
                    self.state = State::Empty;
                    return Step { action: Action::Backoff, events };
                }
                events.push(Event::InitDone);
                self.state = State::InitListed { resource_version: page.resource_version };
                Step { action: self.resume(), events }
            }
            (State::InitPage { .. }, Input::Listed(Err(e))) if e.is_gone() => {
                // The continue token expired (the snapshot was compacted): start the listing over.
                self.relist()
            }
            (state @ (State::Empty | State::InitPage { .. }), Input::Listed(Err(_))) => {
                self.state = state;
                Step::act(Action::Backoff)
            }

            // Opening a watch-list.
            (State::Empty, Input::WatchOpened(Ok(()))) => {
                self.state = State::InitialWatch { resource_version: None };
                Step { action: Action::Read, events: vec![Event::Init] }
            }
            (State::Empty, Input::WatchOpened(Err(e))) => {
                if e.is_retryable() {
                    Step::act(Action::Backoff)
                } else {
                    self.fall_back_to_list(&e.to_string(), false)
                }
            }

            // Opening a watch from a resourceVersion.
            (State::InitListed { resource_version }, Input::WatchOpened(Ok(()))) => {
                self.state = State::Watching { resource_version };
                Step::act(Action::Read)
            }
            (State::InitListed { .. }, Input::WatchOpened(Err(e))) if e.is_gone() => self.relist(),
            (State::InitListed { resource_version }, Input::WatchOpened(Err(_))) => {
                self.state = State::InitListed { resource_version };
                Step::act(Action::Backoff)
            }

            // The initial events of a watch-list.
            (State::InitialWatch { resource_version }, Input::Event(Ok(ev))) => match ev {
                WatchEvent::Added(obj) | WatchEvent::Modified(obj) => {
                    let rv = obj.resource_version().map(str::to_string).or(resource_version);
                    self.state = State::InitialWatch { resource_version: rv };
                    Step { action: Action::Read, events: vec![Event::InitApply(RawItem::from_value(&obj))] }
                }
                // The initial state is a snapshot and has no deletions; nothing to remove from a buffer.
                WatchEvent::Deleted(_) => {
                    self.state = State::InitialWatch { resource_version };
                    Step::act(Action::Read)
                }
                WatchEvent::Bookmark { resource_version: rv, initial_events_end } => {
                    let rv = Some(rv).filter(|r| !r.is_empty()).or(resource_version);
                    match (initial_events_end, rv) {
                        (true, Some(rv)) => {
                            self.state = State::Watching { resource_version: rv };
                            Step { action: Action::Read, events: vec![Event::InitDone] }
                        }
                        (true, None) => self.fall_back_to_list("initial-events-end without a resourceVersion", false),
                        (false, rv) => {
                            self.state = State::InitialWatch { resource_version: rv };
                            Step::act(Action::Read)
                        }
                    }
                }
                WatchEvent::Error(status) => {
                    let retry = status.code == 429 || status.code >= 500;
                    self.fall_back_to_list(&status.to_string(), retry)
                }
            },
            (State::InitialWatch { .. }, Input::Event(Err(e))) => {
                let backoff = !matches!(e, client::Error::Timeout(_));
                self.fall_back_to_list(&e.to_string(), backoff)
            }
            (State::InitialWatch { .. }, Input::WatchClosed { .. }) => {
                self.fall_back_to_list("stream ended before the initial-events-end bookmark", false)
            }

            // Watching.
            (State::Watching { resource_version }, Input::Event(Ok(ev))) => {
                if !matches!(ev, WatchEvent::Error(_)) {
                    self.gone_streak = false;
                }
                let advance = |obj: &Value, old: String| obj.resource_version().map(str::to_string).unwrap_or(old);
                let (rv, event) = match ev {
                    WatchEvent::Added(obj) | WatchEvent::Modified(obj) => {
                        (advance(&obj, resource_version), Some(Event::Apply(obj)))
                    }
                    WatchEvent::Deleted(obj) => (advance(&obj, resource_version), Some(Event::Delete(obj))),
                    WatchEvent::Bookmark { resource_version: rv, .. } => {
                        (if rv.is_empty() { resource_version } else { rv }, None)
                    }
                    WatchEvent::Error(status) => {
                        if client::Error::Api(Box::new(status)).is_gone() {
                            return self.relist();
                        }
                        return self.rewatch(resource_version, true);
                    }
                };
                self.state = State::Watching { resource_version: rv };
                Step { action: Action::Read, events: event.into_iter().collect() }
            }
            (State::Watching { resource_version }, Input::Event(Err(e))) => {
                // The client's idle deadline: the connection is presumed dead, resume at once.
                let idle = matches!(e, client::Error::Timeout(_));
                self.rewatch(resource_version, !idle)
            }
            (State::Watching { resource_version }, Input::WatchClosed { healthy }) => {
                self.rewatch(resource_version, !healthy)
            }

            // Inputs that do not belong to the state (a driver bug): redo what the state needs.
            (state, input) => {
                log::error!("watcher: unexpected {} in state {state:?}; resuming", input.kind());
                self.state = state;
                Step::act(self.resume())
            }
        }
    }
}

/// A random server-side watch timeout in [`WATCH_TIMEOUT_SECS`].
pub fn watch_timeout(rng: &mut Rng) -> u32 {
    rng.range(WATCH_TIMEOUT_SECS.0, WATCH_TIMEOUT_SECS.1) as u32
}

/// One stream of watch events (the client's `WatchStream`; a script in tests).
pub trait EventSource: Send {
    fn next_event(&mut self) -> impl Future<Output = Option<client::Result<WatchEvent>>> + Send;
}

impl EventSource for client::WatchStream {
    fn next_event(&mut self) -> impl Future<Output = Option<client::Result<WatchEvent>>> + Send {
        self.next()
    }
}

/// The two calls a watcher makes, bound to one resource and scope.
pub trait ListWatchApi: Send + Sync {
    type Stream: EventSource;
    fn list(&self, p: &ListParams) -> impl Future<Output = client::Result<ObjectList>> + Send;
    fn watch(&self, p: &WatchParams) -> impl Future<Output = client::Result<Self::Stream>> + Send;
}

/// [`ListWatchApi`] on our client; `namespace: None` watches all namespaces.
pub struct ClientListWatch {
    pub client: Client,
    pub resource: ApiResource,
    pub namespace: Option<String>,
}

impl ListWatchApi for ClientListWatch {
    type Stream = client::WatchStream;

    fn list(&self, p: &ListParams) -> impl Future<Output = client::Result<ObjectList>> + Send {
        self.client.list(&self.resource, self.namespace.as_deref(), p)
    }

    fn watch(&self, p: &WatchParams) -> impl Future<Output = client::Result<client::WatchStream>> + Send {
        self.client.watch(&self.resource, self.namespace.as_deref(), p)
    }
}

/// What is watched and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchConfig {
    /// For logs and metrics, e.g. `Secret.v1 sources`.
    pub name: String,
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    /// PartialObjectMetadata lists and watches.
    pub metadata_only: bool,
    pub page_size: u32,
    /// Try watch-list (sendInitialEvents) first.
    pub watch_list: bool,
}

impl WatchConfig {
    pub fn new(name: &str) -> Self {
        WatchConfig {
            name: name.to_string(),
            label_selector: None,
            field_selector: None,
            metadata_only: false,
            page_size: DEFAULT_PAGE_SIZE,
            watch_list: false,
        }
    }
}

/// Drives a [`Machine`] against the API.
pub struct Watcher<A: ListWatchApi> {
    api: A,
    cfg: WatchConfig,
    health: Arc<WatchHealth>,
    backoff: Backoff,
    /// After a refusal (403, 401, 404): same start, longer cap.
    refused_backoff: Backoff,
    rng: Rng,
}

impl<A: ListWatchApi> Watcher<A> {
    pub fn new(api: A, cfg: WatchConfig, rng: Rng) -> Self {
        let refused_backoff = Backoff::new(Duration::from_millis(800), REFUSED_MAX_BACKOFF)
            .with_jitter(0.2)
            .with_reset_after(REFUSED_MAX_BACKOFF * 3);
        Watcher {
            api,
            cfg,
            health: Arc::new(WatchHealth::new()),
            backoff: Backoff::watch_default(),
            refused_backoff,
            rng,
        }
    }

    pub fn health(&self) -> Arc<WatchHealth> {
        self.health.clone()
    }

    /// Runs until `shutdown` completes, handing every event to `sink` in order.
    pub async fn run(mut self, mut sink: impl FnMut(Event) + Send, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut machine = Machine::new(self.cfg.page_size, self.cfg.watch_list);
        let mut stream: Option<Open<A::Stream>> = None;
        let mut action = machine.step(Input::Resume).action;
        loop {
            let input = tokio::select! {
                _ = &mut shutdown => return,
                input = self.perform(&action, &mut stream) => input,
            };
            self.log_input(&input, machine.state());
            self.track(&input);
            let step = machine.step(input);
            for ev in step.events {
                if ev == Event::InitDone {
                    self.health.count_listing();
                }
                sink(ev);
            }
            action = step.action;
        }
    }

    async fn perform(&mut self, action: &Action, stream: &mut Option<Open<A::Stream>>) -> Input {
        match action {
            Action::List { continue_token, limit } => {
                *stream = None;
                let p = ListParams {
                    label_selector: self.cfg.label_selector.clone(),
                    field_selector: self.cfg.field_selector.clone(),
                    limit: Some(*limit),
                    continue_token: continue_token.clone(),
                    metadata_only: self.cfg.metadata_only,
                    ..ListParams::default()
                };
                self.health.count_list();
                let res = self.api.list(&p).await;
                if res.is_ok() {
                    self.health.progress();
                }
                Input::Listed(res)
            }
            Action::Watch { resource_version, send_initial_events } => {
                *stream = None;
                let p = WatchParams {
                    label_selector: self.cfg.label_selector.clone(),
                    field_selector: self.cfg.field_selector.clone(),
                    resource_version: resource_version.clone(),
                    allow_bookmarks: true,
                    timeout_seconds: Some(watch_timeout(&mut self.rng)),
                    send_initial_events: *send_initial_events,
                    metadata_only: self.cfg.metadata_only,
                    // The client's default: the server timeout plus a few seconds.
                    idle_timeout: None,
                };
                self.health.count_watch();
                match self.api.watch(&p).await {
                    Ok(s) => {
                        self.health.progress();
                        *stream = Some(Open { events: s, opened: Instant::now(), seen: false });
                        Input::WatchOpened(Ok(()))
                    }
                    Err(e) => Input::WatchOpened(Err(e)),
                }
            }
            Action::Read => {
                let Some(open) = stream.as_mut() else {
                    // Cannot happen: Read follows an opened watch. Treat as an unhealthy end.
                    return Input::WatchClosed { healthy: false };
                };
                match open.events.next_event().await {
                    Some(ev) => {
                        if ev.is_ok() {
                            open.seen = true;
                            self.health.progress();
                        }
                        Input::Event(ev)
                    }
                    None => {
                        let healthy = open.seen || open.opened.elapsed() >= MIN_HEALTHY_WATCH;
                        *stream = None;
                        Input::WatchClosed { healthy }
                    }
                }
            }
            Action::Backoff => {
                *stream = None;
                self.health.count_error();
                let refused = self.health.failure().is_some_and(|f| f.reason.is_refusal());
                let backoff = if refused { &mut self.refused_backoff } else { &mut self.backoff };
                let delay = backoff.next_delay(Instant::now().into_std(), &mut self.rng);
                tokio::time::sleep(delay).await;
                Input::Resume
            }
        }
    }

    /// Keeps the failure streak: a failed list or watch request starts or extends it (logged once
    /// per streak and reason, so a type RBAC does not grant costs one warning, not one per retry),
    /// a successful one ends it.
    fn track(&self, input: &Input) {
        let name = &self.cfg.name;
        let (what, e) = match input {
            Input::Listed(Ok(_)) | Input::WatchOpened(Ok(())) => {
                if let Some(f) = self.health.recovered() {
                    log::info!(
                        "watch {name}: recovered after {} failed request(s) over {}s ({})",
                        f.attempts,
                        f.since.elapsed().as_secs(),
                        f.reason.as_str()
                    );
                }
                return;
            }
            Input::Listed(Err(e)) => ("list", e),
            // A 410 is the normal way back to a relist, not a failure.
            Input::WatchOpened(Err(e)) if !e.is_gone() => ("watch", e),
            _ => return,
        };
        let f = self.health.failed(e);
        if f.attempts == 1 {
            let next =
                if f.reason.is_refusal() { "retrying with backoff up to 5 min" } else { "retrying with backoff" };
            log::warn!("watch {name}: {what} failed ({}): {}; {next}", f.reason.as_str(), f.detail);
        } else {
            log::debug!(
                "watch {name}: {what} failed again ({}, attempt {}): {}",
                f.reason.as_str(),
                f.attempts,
                f.detail
            );
        }
    }

    fn log_input(&self, input: &Input, state: &State) {
        let name = &self.cfg.name;
        match input {
            // Failed requests are logged by `track`, once per streak.
            Input::Listed(Err(_)) => {}
            Input::WatchOpened(Err(e)) if !e.is_gone() => {}
            Input::WatchOpened(Err(e)) => log::info!("watch {name}: resourceVersion expired ({e}), relisting"),
            Input::Event(Err(client::Error::Timeout(d))) => {
                log::info!("watch {name}: no data for {d:?}, resuming the watch")
            }
            Input::Event(Err(e)) => log::warn!("watch {name}: watch stream failed: {e}"),
            Input::Event(Ok(WatchEvent::Error(s))) if s.code == 410 || s.reason == client::Reason::Expired => {
                log::info!("watch {name}: resourceVersion expired ({s}), relisting")
            }
            Input::Event(Ok(WatchEvent::Error(s))) => log::warn!("watch {name}: watch error: {s}"),
            Input::WatchClosed { healthy: false } => log::warn!("watch {name}: watch closed at once, backing off"),
            Input::Event(Ok(WatchEvent::Bookmark { .. })) | Input::Event(Ok(_)) => {}
            Input::Listed(Ok(_)) | Input::WatchOpened(Ok(())) | Input::WatchClosed { healthy: true } => {
                log::debug!("watch {name}: {state:?} progressing")
            }
            Input::Resume => {}
        }
    }
}

/// An open watch and what the driver needs to judge how it ended.
struct Open<S> {
    events: S,
    opened: Instant,
    seen: bool,
}

/// Whether to start with watch-list (`sendInitialEvents`) on a server of this `/version`: where the
/// API server's WatchList gate is on by default (1.32, and 1.34 on; 1.33 turned it off again, and
/// servers before 1.27 ignore the parameter, so a watch-list there would silently miss the initial
/// state). A server whose admin turned the gate off rejects the request and the machine falls back.
pub fn watch_list_by_default(version: &serde_json::Value) -> bool {
    let num = |k: &str| {
        version.get(k).and_then(serde_json::Value::as_str).and_then(|s| {
            let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u32>().ok()
        })
    };
    match (num("major"), num("minor")) {
        (Some(1), Some(minor)) => minor == 32 || minor >= 34,
        (Some(major), _) => major > 1,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn watch_list_only_where_the_server_enables_it_by_default() {
        let v = |major: &str, minor: &str| serde_json::json!({"major": major, "minor": minor});
        for (major, minor, want) in [
            ("1", "26", false),
            ("1", "31", false),
            ("1", "32", true),
            ("1", "33", false),
            ("1", "34", true),
            ("1", "35+", true),
            ("2", "0", true),
            ("", "", false),
        ] {
            assert_eq!(watch_list_by_default(&v(major, minor)), want, "{major}.{minor}");
        }
        assert!(!watch_list_by_default(&serde_json::json!({})));
    }

    use super::*;
    use crate::client::{Reason, Status};
    use serde_json::json;
    use std::collections::VecDeque;
    use std::sync::Mutex;

    fn obj(name: &str, rv: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv}})
    }

    fn page(items: &[(&str, &str)], rv: &str, cont: Option<&str>) -> ObjectList {
        ObjectList {
            kind: String::new(),
            resource_version: rv.to_string(),
            continue_token: cont.map(str::to_string),
            remaining_item_count: None,
            items: items.iter().map(|(n, r)| RawItem::from_value(&obj(n, r))).collect(),
        }
    }

    fn status(code: u16, reason: Reason) -> Status {
        Status { code, reason, message: String::new(), details: None, retry_after: None }
    }

    fn api(code: u16, reason: Reason) -> client::Error {
        client::Error::Api(Box::new(status(code, reason)))
    }

    fn list(token: Option<&str>) -> Action {
        Action::List { continue_token: token.map(str::to_string), limit: 500 }
    }

    fn watch(rv: &str) -> Action {
        Action::Watch { resource_version: Some(rv.to_string()), send_initial_events: false }
    }

    const WATCH_LIST: Action = Action::Watch { resource_version: None, send_initial_events: true };

    fn bookmark(rv: &str, end: bool) -> Input {
        Input::Event(Ok(WatchEvent::Bookmark { resource_version: rv.into(), initial_events_end: end }))
    }

    /// A machine in `Watching { rv }` after a one-page list.
    fn watching(rv: &str) -> Machine {
        let mut m = Machine::new(500, false);
        m.step(Input::Resume);
        m.step(Input::Listed(Ok(page(&[], rv, None))));
        assert_eq!(m.step(Input::WatchOpened(Ok(()))).action, Action::Read);
        m
    }

    #[test]
    fn startup_is_one_list_then_one_watch_from_its_resource_version() {
        let mut m = Machine::new(500, false);
        assert_eq!(m.step(Input::Resume), Step { action: list(None), events: vec![] });
        let s = m.step(Input::Listed(Ok(page(&[("a", "5"), ("b", "6")], "10", None))));
        assert_eq!(s.action, watch("10"));
        assert_eq!(
            s.events,
            vec![
                Event::Init,
                Event::InitApply(RawItem::from_value(&obj("a", "5"))),
                Event::InitApply(RawItem::from_value(&obj("b", "6"))),
                Event::InitDone
            ]
        );
        assert_eq!(m.state(), &State::InitListed { resource_version: "10".into() });
        assert_eq!(m.step(Input::WatchOpened(Ok(()))).action, Action::Read);
        assert_eq!(m.state(), &State::Watching { resource_version: "10".into() });
    }

    #[test]
    fn pagination_follows_continue_tokens_and_inits_once() {
        let mut m = Machine::new(2, false);
        assert_eq!(m.step(Input::Resume).action, Action::List { continue_token: None, limit: 2 });
        let s = m.step(Input::Listed(Ok(page(&[("a", "1"), ("b", "2")], "9", Some("c1")))));
        assert_eq!(s.action, Action::List { continue_token: Some("c1".into()), limit: 2 });
        assert_eq!(s.events.len(), 3);
        assert_eq!(s.events[0], Event::Init);
        let s = m.step(Input::Listed(Ok(page(&[("c", "3")], "9", None))));
        assert_eq!(s.events, vec![Event::InitApply(RawItem::from_value(&obj("c", "3"))), Event::InitDone]);
        assert_eq!(s.action, watch("9"));
    }

    #[test]
    fn gone_continue_token_restarts_the_listing_and_other_page_errors_retry_the_page() {
        let mut m = Machine::new(1, false);
        m.step(Input::Resume);
        m.step(Input::Listed(Ok(page(&[("a", "1")], "9", Some("c1")))));
        let s = m.step(Input::Listed(Err(api(500, Reason::InternalError))));
        assert_eq!(s.action, Action::Backoff);
        assert_eq!(m.step(Input::Resume).action, Action::List { continue_token: Some("c1".into()), limit: 1 });
        let s = m.step(Input::Listed(Err(api(410, Reason::Expired))));
        assert_eq!(s, Step { action: Action::List { continue_token: None, limit: 1 }, events: vec![] });
        // The restarted listing begins a fresh buffer.
        let s = m.step(Input::Listed(Ok(page(&[("b", "2")], "12", None))));
        assert_eq!(s.events, vec![Event::Init, Event::InitApply(RawItem::from_value(&obj("b", "2"))), Event::InitDone]);
    }

    #[test]
    fn first_list_errors_back_off_and_retry() {
        let mut m = Machine::new(500, false);
        m.step(Input::Resume);
        for e in
            [api(403, Reason::Forbidden), client::Error::Transport("refused".into()), api(429, Reason::TooManyRequests)]
        {
            assert_eq!(m.step(Input::Listed(Err(e))).action, Action::Backoff);
            assert_eq!(m.step(Input::Resume).action, list(None));
        }
    }

    #[test]
    fn a_list_without_resource_version_is_retried_not_watched() {
        let mut m = Machine::new(500, false);
        m.step(Input::Resume);
        let s = m.step(Input::Listed(Ok(page(&[("a", "1")], "", None))));
        assert_eq!(s.action, Action::Backoff);
        assert!(!s.events.contains(&Event::InitDone));
        assert_eq!(m.step(Input::Resume).action, list(None));
    }

    #[test]
    fn events_and_bookmarks_advance_the_resume_point() {
        let mut m = watching("10");
        let s = m.step(Input::Event(Ok(WatchEvent::Added(obj("a", "11")))));
        assert_eq!(s, Step { action: Action::Read, events: vec![Event::Apply(obj("a", "11"))] });
        let s = m.step(Input::Event(Ok(WatchEvent::Modified(obj("a", "12")))));
        assert_eq!(s.events, vec![Event::Apply(obj("a", "12"))]);
        let s = m.step(Input::Event(Ok(WatchEvent::Deleted(obj("a", "13")))));
        assert_eq!(s.events, vec![Event::Delete(obj("a", "13"))]);
        assert_eq!(m.state(), &State::Watching { resource_version: "13".into() });
        let s = m.step(bookmark("20", false));
        assert_eq!(s, Step { action: Action::Read, events: vec![] });
        assert_eq!(m.state(), &State::Watching { resource_version: "20".into() });
        // An empty bookmark or an event without a resourceVersion keeps the resume point.
        m.step(bookmark("", false));
        m.step(Input::Event(Ok(WatchEvent::Added(json!({"metadata": {"name": "x"}})))));
        assert_eq!(m.state(), &State::Watching { resource_version: "20".into() });
    }

    #[test]
    fn a_normal_end_or_an_idle_timeout_resumes_without_listing() {
        let mut m = watching("10");
        m.step(bookmark("15", false));
        assert_eq!(m.step(Input::WatchClosed { healthy: true }), Step { action: watch("15"), events: vec![] });
        m.step(Input::WatchOpened(Ok(())));
        let s = m.step(Input::Event(Err(client::Error::Timeout(Duration::from_secs(300)))));
        assert_eq!(s.action, watch("15"));
        m.step(Input::WatchOpened(Ok(())));
        assert_eq!(m.state(), &State::Watching { resource_version: "15".into() });
    }

    #[test]
    fn stream_failures_back_off_then_resume_from_the_last_resource_version() {
        let mut m = watching("10");
        m.step(Input::Event(Ok(WatchEvent::Added(obj("a", "11")))));
        assert_eq!(m.step(Input::Event(Err(client::Error::Transport("reset".into())))).action, Action::Backoff);
        assert_eq!(m.step(Input::Resume).action, watch("11"));
        m.step(Input::WatchOpened(Ok(())));
        assert_eq!(m.step(Input::Event(Err(client::Error::Decode("bad line".into())))).action, Action::Backoff);
        assert_eq!(m.step(Input::Resume).action, watch("11"));
        m.step(Input::WatchOpened(Ok(())));
        let s = m.step(Input::Event(Ok(WatchEvent::Error(status(500, Reason::InternalError)))));
        assert_eq!(s.action, Action::Backoff);
        assert_eq!(m.step(Input::Resume).action, watch("11"));
        m.step(Input::WatchOpened(Ok(())));
        // A watch closed at once without events is a failure too.
        assert_eq!(m.step(Input::WatchClosed { healthy: false }).action, Action::Backoff);
        assert_eq!(m.step(Input::Resume).action, watch("11"));
    }

    #[test]
    fn watch_start_errors_back_off_but_gone_relists() {
        let mut m = watching("10");
        m.step(Input::WatchClosed { healthy: true });
        for e in
            [api(429, Reason::TooManyRequests), client::Error::Transport("refused".into()), api(403, Reason::Forbidden)]
        {
            assert_eq!(m.step(Input::WatchOpened(Err(e))).action, Action::Backoff);
            assert_eq!(m.step(Input::Resume).action, watch("10"));
        }
        assert_eq!(
            m.step(Input::WatchOpened(Err(api(410, Reason::Gone)))),
            Step { action: list(None), events: vec![] }
        );
    }

    #[test]
    fn gone_in_the_stream_relists_exactly_once() {
        for st in [status(410, Reason::Expired), status(410, Reason::Gone), status(410, Reason::Other("x".into()))] {
            let mut m = watching("10");
            let s = m.step(Input::Event(Ok(WatchEvent::Error(st))));
            assert_eq!(s, Step { action: list(None), events: vec![] });
            assert_eq!(m.state(), &State::Empty);
            let s = m.step(Input::Listed(Ok(page(&[("a", "30")], "31", None))));
            assert_eq!(
                s.events,
                vec![Event::Init, Event::InitApply(RawItem::from_value(&obj("a", "30"))), Event::InitDone]
            );
            assert_eq!(s.action, watch("31"));
        }
    }

    #[test]
    fn repeated_gone_without_progress_backs_off_before_relisting() {
        let mut m = watching("10");
        let gone = || Input::Event(Ok(WatchEvent::Error(status(410, Reason::Expired))));
        assert_eq!(m.step(gone()).action, list(None));
        m.step(Input::Listed(Ok(page(&[], "20", None))));
        m.step(Input::WatchOpened(Ok(())));
        // Expired again before anything arrived: back off, then relist.
        assert_eq!(m.step(gone()).action, Action::Backoff);
        assert_eq!(m.step(Input::Resume).action, list(None));
        m.step(Input::Listed(Ok(page(&[], "30", None))));
        m.step(Input::WatchOpened(Ok(())));
        // Progress clears the streak: the next 410 relists at once again.
        m.step(bookmark("31", false));
        assert_eq!(m.step(gone()).action, list(None));
        // A 410 on the watch request itself counts the same.
        m.step(Input::Listed(Ok(page(&[], "40", None))));
        assert_eq!(m.step(Input::WatchOpened(Err(api(410, Reason::Gone)))).action, Action::Backoff);
    }

    #[test]
    fn watch_list_streams_the_initial_state_then_keeps_watching() {
        let mut m = Machine::new(500, true);
        assert_eq!(m.step(Input::Resume).action, WATCH_LIST);
        assert_eq!(m.step(Input::WatchOpened(Ok(()))), Step { action: Action::Read, events: vec![Event::Init] });
        let s = m.step(Input::Event(Ok(WatchEvent::Added(obj("a", "5")))));
        assert_eq!(s.events, vec![Event::InitApply(RawItem::from_value(&obj("a", "5")))]);
        assert_eq!(m.step(bookmark("7", false)).events, vec![]);
        let s = m.step(bookmark("9", true));
        assert_eq!(s, Step { action: Action::Read, events: vec![Event::InitDone] });
        assert_eq!(m.state(), &State::Watching { resource_version: "9".into() });
        let s = m.step(Input::Event(Ok(WatchEvent::Modified(obj("a", "10")))));
        assert_eq!(s.events, vec![Event::Apply(obj("a", "10"))]);
        // A later 410 relists with watch-list again.
        let s = m.step(Input::Event(Ok(WatchEvent::Error(status(410, Reason::Expired)))));
        assert_eq!(s.action, WATCH_LIST);
        assert!(m.uses_watch_list());
    }

    #[test]
    fn watch_list_rejected_falls_back_to_list_for_good() {
        let mut m = Machine::new(500, true);
        m.step(Input::Resume);
        let s = m.step(Input::WatchOpened(Err(api(422, Reason::Invalid))));
        assert_eq!(s.action, list(None));
        assert!(!m.uses_watch_list());
        m.step(Input::Listed(Ok(page(&[], "3", None))));
        m.step(Input::WatchOpened(Ok(())));
        let s = m.step(Input::Event(Ok(WatchEvent::Error(status(410, Reason::Expired)))));
        assert_eq!(s.action, list(None), "no second watch-list attempt");
    }

    #[test]
    fn watch_list_retryable_start_errors_retry_watch_list() {
        let mut m = Machine::new(500, true);
        m.step(Input::Resume);
        assert_eq!(m.step(Input::WatchOpened(Err(api(503, Reason::ServiceUnavailable)))).action, Action::Backoff);
        assert_eq!(m.step(Input::Resume).action, WATCH_LIST);
        assert!(m.uses_watch_list());
    }

    #[test]
    fn watch_list_stream_failing_before_the_end_bookmark_falls_back() {
        let cases: Vec<(Input, Action)> = vec![
            (Input::WatchClosed { healthy: true }, list(None)),
            (Input::Event(Err(client::Error::Timeout(Duration::from_secs(300)))), list(None)),
            (Input::Event(Err(client::Error::Transport("reset".into()))), Action::Backoff),
            (Input::Event(Ok(WatchEvent::Error(status(500, Reason::InternalError)))), Action::Backoff),
            (Input::Event(Ok(WatchEvent::Error(status(410, Reason::Expired)))), list(None)),
            (bookmark("", true), list(None)),
        ];
        for (input, expected) in cases {
            let mut m = Machine::new(500, true);
            m.step(Input::Resume);
            m.step(Input::WatchOpened(Ok(())));
            let s = m.step(input);
            assert_eq!(s.action, expected);
            assert!(!m.uses_watch_list());
            assert_eq!(m.state(), &State::Empty);
            if expected == Action::Backoff {
                assert_eq!(m.step(Input::Resume).action, list(None));
            }
        }
    }

    #[test]
    fn deletions_during_the_initial_watch_list_are_ignored() {
        let mut m = Machine::new(500, true);
        m.step(Input::Resume);
        m.step(Input::WatchOpened(Ok(())));
        let s = m.step(Input::Event(Ok(WatchEvent::Deleted(obj("a", "5")))));
        assert_eq!(s, Step { action: Action::Read, events: vec![] });
        // The resume point falls back to the last object's version when the bookmark has none.
        m.step(Input::Event(Ok(WatchEvent::Added(obj("b", "6")))));
        m.step(bookmark("", false));
        assert_eq!(m.step(bookmark("", true)).events, vec![Event::InitDone]);
        assert_eq!(m.state(), &State::Watching { resource_version: "6".into() });
    }

    #[test]
    fn out_of_place_inputs_resume_what_the_state_needs() {
        let mut m = watching("10");
        // A list result while watching (driver bug): re-open the watch, change nothing.
        let s = m.step(Input::Listed(Ok(page(&[("z", "99")], "99", None))));
        assert_eq!(s, Step { action: watch("10"), events: vec![] });
        let mut m = Machine::new(500, false);
        let s = m.step(Input::Event(Ok(WatchEvent::Added(obj("a", "1")))));
        assert_eq!(s, Step { action: list(None), events: vec![] });
    }

    #[test]
    fn watch_timeouts_are_spread_over_the_range() {
        let mut rng = Rng::seeded(5);
        let ts: Vec<u32> = (0..1000).map(|_| watch_timeout(&mut rng)).collect();
        assert!(ts.iter().all(|t| (290..=590).contains(t)));
        assert!(ts.iter().any(|t| *t < 330) && ts.iter().any(|t| *t > 550));
    }

    // ---- driver, against a scripted API ----

    enum Reply {
        List(client::Result<ObjectList>),
        /// A watch that yields these items, then ends (None) or hangs (Pending).
        Watch(client::Result<Vec<client::Result<WatchEvent>>>, bool),
    }

    #[derive(Clone, Default)]
    struct Script {
        replies: Arc<Mutex<VecDeque<Reply>>>,
        calls: Arc<Mutex<Vec<String>>>,
    }

    struct ScriptStream {
        items: VecDeque<client::Result<WatchEvent>>,
        hang: bool,
    }

    impl EventSource for ScriptStream {
        fn next_event(&mut self) -> impl Future<Output = Option<client::Result<WatchEvent>>> + Send {
            let next = self.items.pop_front();
            let hang = self.hang && next.is_none();
            async move {
                if hang {
                    std::future::pending::<()>().await;
                }
                // A little virtual time per event, like a real stream.
                tokio::time::sleep(Duration::from_millis(10)).await;
                next
            }
        }
    }

    impl Script {
        fn push(&self, r: Reply) {
            self.replies.lock().unwrap().push_back(r);
        }
        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
        fn pop(&self) -> Option<Reply> {
            self.replies.lock().unwrap().pop_front()
        }
    }

    impl ListWatchApi for Script {
        type Stream = ScriptStream;

        fn list(&self, p: &ListParams) -> impl Future<Output = client::Result<ObjectList>> + Send {
            self.calls.lock().unwrap().push(format!(
                "list limit={:?} continue={:?} rv={:?} labels={:?} meta={}",
                p.limit, p.continue_token, p.resource_version, p.label_selector, p.metadata_only
            ));
            let reply = self.pop();
            async move {
                match reply {
                    Some(Reply::List(r)) => r,
                    _ => std::future::pending().await,
                }
            }
        }

        fn watch(&self, p: &WatchParams) -> impl Future<Output = client::Result<ScriptStream>> + Send {
            let t = p.timeout_seconds.unwrap_or(0);
            assert!((290..=590).contains(&t), "timeout {t}");
            assert!(p.allow_bookmarks);
            self.calls.lock().unwrap().push(format!(
                "watch rv={:?} initial={} labels={:?} meta={}",
                p.resource_version, p.send_initial_events, p.label_selector, p.metadata_only
            ));
            let reply = self.pop();
            async move {
                match reply {
                    Some(Reply::Watch(r, hang)) => r.map(|items| ScriptStream { items: items.into(), hang }),
                    _ => std::future::pending().await,
                }
            }
        }
    }

    type Running =
        (Arc<Mutex<Vec<Event>>>, Arc<WatchHealth>, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>);

    fn spawn_watcher(script: &Script, cfg: WatchConfig) -> Running {
        let w = Watcher::new(script.clone(), cfg, Rng::seeded(3));
        let health = w.health();
        let events: Arc<Mutex<Vec<Event>>> = Arc::default();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let sink = {
            let events = events.clone();
            move |e| events.lock().unwrap().push(e)
        };
        let task = tokio::spawn(w.run(sink, async move {
            let _ = stopped.await;
        }));
        (events, health, stop, task)
    }

    async fn wait_calls(script: &Script, n: usize) {
        let t0 = Instant::now();
        while script.calls().len() < n {
            assert!(t0.elapsed() < Duration::from_secs(120), "only {:?}", script.calls());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// For schedules measured in minutes: polls once a (virtual) second.
    async fn wait_calls_slowly(script: &Script, n: usize) {
        let t0 = Instant::now();
        while script.calls().len() < n {
            assert!(t0.elapsed() < Duration::from_secs(3600), "only {:?}", script.calls());
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    fn ev(e: WatchEvent) -> client::Result<WatchEvent> {
        Ok(e)
    }

    #[tokio::test(start_paused = true)]
    async fn driver_startup_is_one_page_chain_and_one_watch_with_the_configured_filters() {
        let script = Script::default();
        script.push(Reply::List(Ok(page(&[("a", "1")], "10", Some("c1")))));
        script.push(Reply::List(Ok(page(&[("b", "2")], "10", None))));
        script.push(Reply::Watch(Ok(vec![ev(WatchEvent::Added(obj("c", "11")))]), true));
        let cfg = WatchConfig {
            label_selector: Some("kubemirror.raczylo.com/mirror=true".into()),
            metadata_only: true,
            ..WatchConfig::new("Secret.v1 mirrors")
        };
        let (events, health, stop, task) = spawn_watcher(&script, cfg);
        wait_calls(&script, 3).await;
        tokio::time::sleep(Duration::from_secs(60)).await;
        let sel = "Some(\"kubemirror.raczylo.com/mirror=true\")";
        assert_eq!(
            script.calls(),
            vec![
                format!("list limit=Some(500) continue=None rv=None labels={sel} meta=true"),
                format!("list limit=Some(500) continue=Some(\"c1\") rv=None labels={sel} meta=true"),
                format!("watch rv=Some(\"10\") initial=false labels={sel} meta=true"),
            ]
        );
        assert_eq!(
            *events.lock().unwrap(),
            vec![
                Event::Init,
                Event::InitApply(RawItem::from_value(&obj("a", "1"))),
                Event::InitApply(RawItem::from_value(&obj("b", "2"))),
                Event::InitDone,
                Event::Apply(obj("c", "11"))
            ]
        );
        assert_eq!((health.lists(), health.watches(), health.relists(), health.errors()), (2, 1, 0, 0));
        // The hanging watch delivered its last event ~60 s ago: that is the liveness age.
        assert!(health.age() >= Duration::from_secs(59), "{:?}", health.age());
        assert!(!health.is_stuck());
        tokio::time::sleep(STUCK_AFTER).await;
        assert!(health.is_stuck(), "a silent watch past the deadline is reported");
        stop.send(()).unwrap();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn driver_resumes_dropped_watches_without_listing_and_relists_once_on_gone() {
        let script = Script::default();
        script.push(Reply::List(Ok(page(&[], "10", None))));
        // Ends normally after a bookmark: resume from the bookmark.
        script.push(Reply::Watch(
            Ok(vec![ev(WatchEvent::Bookmark { resource_version: "15".into(), initial_events_end: false })]),
            false,
        ));
        // Idle deadline: resume at once.
        script.push(Reply::Watch(Ok(vec![Err(client::Error::Timeout(Duration::from_secs(300)))]), false));
        // Connection reset: back off, resume.
        script.push(Reply::Watch(Ok(vec![Err(client::Error::Transport("reset".into()))]), false));
        // History compacted: one relist, then watch from its version.
        script.push(Reply::Watch(Ok(vec![ev(WatchEvent::Error(status(410, Reason::Expired)))]), false));
        script.push(Reply::List(Ok(page(&[("a", "40")], "41", None))));
        script.push(Reply::Watch(Ok(vec![]), true));
        let (events, health, stop, task) = spawn_watcher(&script, WatchConfig::new("Secret.v1 sources"));
        wait_calls(&script, 7).await;
        let calls: Vec<String> =
            script.calls().iter().map(|c| c.split(" labels").next().unwrap().to_string()).collect();
        assert_eq!(
            calls,
            vec![
                "list limit=Some(500) continue=None rv=None",
                "watch rv=Some(\"10\") initial=false",
                "watch rv=Some(\"15\") initial=false",
                "watch rv=Some(\"15\") initial=false",
                "watch rv=Some(\"15\") initial=false",
                "list limit=Some(500) continue=None rv=None",
                "watch rv=Some(\"41\") initial=false",
            ]
        );
        assert_eq!(health.relists(), 1);
        assert_eq!(health.errors(), 1, "only the reset backed off");
        let evs = events.lock().unwrap().clone();
        assert_eq!(
            evs,
            vec![
                Event::Init,
                Event::InitDone,
                Event::Init,
                Event::InitApply(RawItem::from_value(&obj("a", "40"))),
                Event::InitDone
            ]
        );
        stop.send(()).unwrap();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn driver_backs_off_with_growing_delays_on_repeated_failures() {
        let script = Script::default();
        for _ in 0..4 {
            script.push(Reply::List(Err(api(503, Reason::ServiceUnavailable))));
        }
        script.push(Reply::List(Ok(page(&[], "1", None))));
        script.push(Reply::Watch(Ok(vec![]), true));
        let t0 = Instant::now();
        let (_events, health, stop, task) = spawn_watcher(&script, WatchConfig::new("x"));
        wait_calls(&script, 6).await;
        // 0.8 + 1.6 + 3.2 + 6.4 s at least (jitter adds up to as much again).
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(12_000) && took <= Duration::from_millis(24_100), "{took:?}");
        assert_eq!(health.errors(), 4);
        stop.send(()).unwrap();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_type_keeps_retrying_slowly_is_reported_never_stuck_and_recovers() {
        let script = Script::default();
        let refusals = 14;
        for _ in 0..refusals {
            script.push(Reply::List(Err(api(403, Reason::Forbidden))));
        }
        script.push(Reply::List(Ok(page(&[("a", "1")], "10", None))));
        script.push(Reply::Watch(Ok(vec![]), true));
        let t0 = Instant::now();
        let (events, health, stop, task) = spawn_watcher(&script, WatchConfig::new("Widget.v1.example.com sources"));
        wait_calls(&script, 1).await;
        assert_eq!(health.state(), WatchState::Failing { failure: health.failure().unwrap(), synced: false });
        let f = health.failure().unwrap();
        assert_eq!((f.reason, f.attempts), (FailureReason::Forbidden, 1));
        assert!(f.detail.contains("403 Forbidden"), "{}", f.detail);
        // Well past the liveness deadline, still refused: reported, never stuck, never given up.
        let mut gaps = Vec::new();
        let mut last = Instant::now();
        for n in 2..=refusals {
            wait_calls_slowly(&script, n).await;
            gaps.push(last.elapsed());
            last = Instant::now();
            assert!(!health.is_stuck(), "attempt {n}");
        }
        assert!(t0.elapsed() > STUCK_AFTER, "{:?}", t0.elapsed());
        assert!(gaps.iter().all(|g| *g >= Duration::from_millis(800)), "no hot loop: {gaps:?}");
        // (Polled once a second: a gap reads up to a second long.)
        assert!(
            gaps.iter().all(|g| *g <= REFUSED_MAX_BACKOFF.mul_f64(1.2) + Duration::from_secs(1)),
            "capped: {gaps:?}"
        );
        assert!(gaps.iter().rev().take(3).all(|g| *g >= REFUSED_MAX_BACKOFF), "slow once refused: {gaps:?}");
        assert_eq!(health.failure().unwrap().attempts, refusals as u64);
        assert_eq!(health.failures(), vec![(FailureReason::Forbidden, refusals as u64)]);
        // Access granted: the next attempt lists, the streak ends.
        wait_calls_slowly(&script, refusals + 2).await;
        assert_eq!(health.state(), WatchState::Synced);
        assert!(events.lock().unwrap().contains(&Event::InitDone));
        stop.send(()).unwrap();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_type_gone_after_its_sync_is_failing_with_its_cache_kept() {
        let script = Script::default();
        script.push(Reply::List(Ok(page(&[("a", "1")], "10", None))));
        // The CRD is deleted: the watch ends, re-watching answers 404, and keeps answering it.
        script.push(Reply::Watch(Ok(vec![]), false));
        for _ in 0..3 {
            script.push(Reply::Watch(Err(api(404, Reason::NotFound)), false));
        }
        let (events, health, stop, task) = spawn_watcher(&script, WatchConfig::new("Widget.v1.example.com sources"));
        wait_calls(&script, 5).await;
        match health.state() {
            WatchState::Failing { failure, synced: true } => {
                assert_eq!(failure.reason, FailureReason::NotFound);
                assert!(failure.attempts >= 2, "{failure:?}");
            }
            other => panic!("{other:?}"),
        }
        // Nothing was taken out of the cache: no relist, no deletion.
        assert_eq!(
            *events.lock().unwrap(),
            vec![Event::Init, Event::InitApply(RawItem::from_value(&obj("a", "1"))), Event::InitDone]
        );
        assert!(!health.is_stuck());
        stop.send(()).unwrap();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn driver_watch_list_is_a_single_request_and_falls_back_when_rejected() {
        let script = Script::default();
        script.push(Reply::Watch(
            Ok(vec![
                ev(WatchEvent::Added(obj("a", "5"))),
                ev(WatchEvent::Bookmark { resource_version: "6".into(), initial_events_end: true }),
            ]),
            true,
        ));
        let cfg = WatchConfig { watch_list: true, ..WatchConfig::new("x") };
        let (events, _h, stop, task) = spawn_watcher(&script, cfg.clone());
        wait_calls(&script, 1).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(script.calls(), vec!["watch rv=None initial=true labels=None meta=false"]);
        assert_eq!(
            *events.lock().unwrap(),
            vec![Event::Init, Event::InitApply(RawItem::from_value(&obj("a", "5"))), Event::InitDone]
        );
        stop.send(()).unwrap();
        task.await.unwrap();

        let script = Script::default();
        script.push(Reply::Watch(Err(api(422, Reason::Invalid)), false));
        script.push(Reply::List(Ok(page(&[], "3", None))));
        script.push(Reply::Watch(Ok(vec![]), true));
        let (_events, _h, stop, task) = spawn_watcher(&script, cfg);
        wait_calls(&script, 3).await;
        let calls = script.calls();
        assert!(
            calls[1].starts_with("list ") && calls[2].starts_with("watch rv=Some(\"3\") initial=false"),
            "{calls:?}"
        );
        stop.send(()).unwrap();
        task.await.unwrap();
    }
}

/// The driver over our real client and a toy HTTP server: checks the exact requests on the wire.
#[cfg(test)]
mod wire_tests {
    use super::*;
    use crate::client::{ClientOptions, Config};
    use serde_json::json;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::Mutex;

    /// Serves each connection on a thread: the request line is recorded and `reply` returns the
    /// status and body lines; a `None` status streams the lines as a watch body and holds it open.
    /// Status (None: a held-open watch) and body lines for a request line.
    type Reply = (Option<u16>, Vec<String>);

    fn serve(reply: impl Fn(&str) -> Reply + Send + Sync + 'static) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let reply = Arc::new(reply);
        let log = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let (reply, log) = (reply.clone(), log.clone());
                std::thread::spawn(move || handle(conn, &*reply, &log));
            }
        });
        (url, seen)
    }

    fn handle(mut conn: TcpStream, reply: &dyn Fn(&str) -> Reply, log: &Mutex<Vec<String>>) {
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            if conn.read(&mut byte).unwrap_or(0) == 0 {
                return;
            }
            buf.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&buf).to_string();
        let target = head.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        log.lock().unwrap().push(target.clone());
        let (status, lines) = reply(&target);
        match status {
            Some(code) => {
                let body = lines.concat();
                let _ = write!(
                    conn,
                    "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
            None => {
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                );
                for line in lines {
                    let chunk = format!("{line}\n");
                    let _ = write!(conn, "{:x}\r\n{chunk}\r\n", chunk.len());
                }
                let _ = conn.flush();
                // Hold the watch open until the client goes away.
                let _ = conn.read(&mut [0u8; 1]);
            }
        }
    }

    #[tokio::test]
    async fn startup_on_the_wire_is_a_paginated_list_and_one_watch() {
        let (url, seen) = serve(|target| {
            let item = |n: &str, rv: &str| json!({"metadata": {"name": n, "namespace": "ns", "resourceVersion": rv}});
            if target.contains("watch=true") {
                let ev = json!({"type": "ADDED", "object": item("c", "11")});
                let bm = json!({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "12"}}});
                (None, vec![ev.to_string(), bm.to_string()])
            } else if target.contains("continue=") {
                (
                    Some(200),
                    vec![
                        json!({"kind": "SecretList", "apiVersion": "v1",
                    "metadata": {"resourceVersion": "10"}, "items": [item("b", "2")]})
                        .to_string(),
                    ],
                )
            } else {
                (
                    Some(200),
                    vec![
                        json!({"kind": "SecretList", "apiVersion": "v1",
                    "metadata": {"resourceVersion": "10", "continue": "tok/1"}, "items": [item("a", "1")]})
                        .to_string(),
                    ],
                )
            }
        });
        let client = Client::new(Config::new(&url), ClientOptions::default()).unwrap();
        let api = ClientListWatch { client, resource: ApiResource::secrets(), namespace: None };
        let cfg = WatchConfig {
            label_selector: Some("kubemirror.raczylo.com/enabled=true".into()),
            ..WatchConfig::new("Secret.v1 sources")
        };
        let watcher = Watcher::new(api, cfg, Rng::seeded(1));
        let health = watcher.health();
        let events: Arc<Mutex<Vec<Event>>> = Arc::default();
        let sink = {
            let events = events.clone();
            move |e| events.lock().unwrap().push(e)
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(watcher.run(sink, async move {
            let _ = stopped.await;
        }));
        let t0 = std::time::Instant::now();
        while events.lock().unwrap().len() < 5 {
            assert!(t0.elapsed() < Duration::from_secs(10), "events: {:?}", events.lock().unwrap());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop.send(()).unwrap();
        task.await.unwrap();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 3, "{seen:?}");
        let sel = "labelSelector=kubemirror.raczylo.com%2Fenabled%3Dtrue";
        assert_eq!(seen[0], format!("GET /api/v1/secrets?{sel}&limit=500"));
        assert_eq!(seen[1], format!("GET /api/v1/secrets?{sel}&limit=500&continue=tok%2F1"));
        assert!(
            seen[2].starts_with(&format!(
                "GET /api/v1/secrets?watch=true&{sel}&resourceVersion=10&allowWatchBookmarks=true&timeoutSeconds="
            )),
            "{}",
            seen[2]
        );
        let names: Vec<String> = events
            .lock()
            .unwrap()
            .iter()
            .map(|e| match e {
                Event::InitApply(o) => o.to_value().name().unwrap_or_default().to_string(),
                Event::Apply(o) => o.name().unwrap_or_default().to_string(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(names, vec!["Init", "a", "b", "InitDone", "c"]);
        assert_eq!((health.lists(), health.watches()), (2, 1));
    }
}
