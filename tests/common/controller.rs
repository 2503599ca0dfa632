//! The controller's real run loop in-process against the in-memory API server: the options the
//! tests start it with, starting it as a user (optionally waiting for its admin endpoints, or
//! reporting into a registry the test reads), stopping it, and the two ways the tests look at a
//! running controller from outside: a GET on an admin endpoint, and "steady state costs no request".
//! One copy, so every suite starts and stops the controller the same way.
//! Included with `#[path = "common/controller.rs"] mod harness;` (needs `common/wait.rs` as `wait`
//! and `common/cluster.rs` as `cluster`).

// Each test crate compiles its own copy and uses only what it needs.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use kubemirror::client::Client;
use kubemirror::controller::{self, Bound, Exit};
use kubemirror::metrics::Metrics;
use kubemirror::options::Options;
use kubemirror::testkit::{ApiServer, StatsSnapshot};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// `types` (None: auto-discovery), no admin endpoints, and with `leader_elect` a Lease in
/// `default` with test-length timings (a lost lease is noticed in seconds).
pub fn options(types: Option<&str>, leader_elect: bool) -> Options {
    Options {
        resource_types: types.map(String::from),
        leader_elect,
        leader_election_namespace: Some("default".into()),
        lease_duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(500),
        metrics_bind_address: None,
        health_probe_bind_address: None,
        ..Options::default()
    }
}

/// A controller running in a task until [`Running::stop`].
pub struct Running {
    stop: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<Result<Exit, String>>,
    bound: Option<Bound>,
    registry: Option<Metrics>,
}

impl Running {
    /// Asks it to stop and waits: how it ended (a start-up error panics).
    pub async fn stop(mut self) -> Exit {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.await.unwrap().unwrap()
    }

    /// Where /healthz and /readyz listen (started with [`start_bound`]).
    pub fn health(&self) -> SocketAddr {
        self.bound.as_ref().and_then(|b| b.health).expect("started with start_bound and a health probe address")
    }

    /// Where /metrics listens (started with [`start_bound`]).
    pub fn metrics(&self) -> SocketAddr {
        self.bound.as_ref().and_then(|b| b.metrics).expect("started with start_bound and a metrics address")
    }

    /// The registry it reports into (started with [`start_with_registry`]).
    pub fn registry(&self) -> &Metrics {
        self.registry.as_ref().expect("started with start_with_registry")
    }
}

/// Starts it as `user` with `opts`; returns at once.
pub async fn start(s: &ApiServer, user: &str, opts: Options) -> Running {
    spawn(crate::cluster::client(s, user).await, opts, None).0
}

/// Starts it as `user` with `opts` (which bind the admin endpoints) and returns once they listen.
pub async fn start_bound(s: &ApiServer, user: &str, opts: Options) -> Running {
    let (mut running, bound) = spawn(crate::cluster::client(s, user).await, opts, None);
    running.bound = Some(bound.await.expect("the controller failed before binding its admin endpoints"));
    running
}

/// Starts it as `user` with `opts`, reporting into `registry`, which the test reads directly.
pub async fn start_with_registry(s: &ApiServer, user: &str, opts: Options, registry: Metrics) -> Running {
    spawn(crate::cluster::client(s, user).await, opts, Some(registry)).0
}

fn spawn(client: Client, opts: Options, registry: Option<Metrics>) -> (Running, oneshot::Receiver<Bound>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let (tx, bound) = oneshot::channel::<Bound>();
    let task = tokio::spawn(controller::run(
        opts,
        client,
        registry.clone(),
        async move {
            let _ = stopped.await;
        },
        move |b| {
            let _ = tx.send(b);
        },
    ));
    (Running { stop: Some(stop), task, bound: None, registry }, bound)
}

/// Binds both admin endpoints to a free port on 127.0.0.1 (for [`start_bound`]).
pub fn bind_admin(opts: Options) -> Options {
    let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
    Options { metrics_bind_address: Some(local), health_probe_bind_address: Some(local), ..opts }
}

/// One GET on an admin endpoint: the whole HTTP/1.1 response, status line first.
pub async fn http_get(addr: impl tokio::net::ToSocketAddrs, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).await.unwrap();
    out
}

/// Steady state costs no request but watches: once the controller has converged, two bookmark
/// rounds pass on every watch without a get, list, create, update, patch or delete.
pub async fn assert_steady_state_is_quiet(s: &ApiServer) {
    use crate::wait::eventually;
    // Our own writes' events must have come back before the quiet period starts: wait for a round of
    // bookmarks on every watch after the last write.
    let quiet_from = |st: &StatsSnapshot| (st.watch_events, st.open_watches as u64);
    let (events0, watches) = quiet_from(&s.stats());
    eventually("a bookmark round", || s.stats().watch_events >= events0 + 2 * watches).await;
    s.reset_stats();
    let (events1, watches) = quiet_from(&s.stats());
    eventually("two more bookmark rounds", || s.stats().watch_events >= events1 + 4 * watches).await;
    let st = s.stats();
    for verb in ["get", "list", "create", "update", "patch", "delete"] {
        assert_eq!(st.verb(verb), 0, "{verb} requests in steady state: {:?}", st.requests);
    }
}
