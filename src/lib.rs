//! KubeMirror: mirrors namespaced Kubernetes objects into the namespaces their annotations name.
//!
//! Layout (one module per concept):
//! - [`util`]: hand-rolled helpers (time, base64, YAML bridge, backoff, rate limit, jitter).
//! - `client`: our Kubernetes API client on hyper + rustls (config, TLS, verbs, typed errors).
//! - [`mirror`]: the pure mirroring decisions (targets, mirror building, hashing, planning, status).
//! - `testkit` (feature `testkit`): the in-memory Kubernetes API server used by tests and the sandbox.
//! - `bench` (feature `testkit`): the controller benchmark (`examples/bench.rs`) on that server.
//! - [`options`], [`flags`], [`cli`], [`logging`]: what an operator sets, and how it is read.
//! - [`explain`]: the read-only "why (not) here?" report; [`cleanup`]: the uninstall command.

pub mod admin;
#[cfg(feature = "testkit")]
pub mod bench;
pub mod cache;
pub mod cleanup;
pub mod cli;
pub mod client;
pub mod controller;
pub mod discovery;
pub mod events;
pub mod explain;
pub mod flags;
pub mod informers;
pub mod keys;
pub mod kinds;
pub mod leader;
pub mod logging;
pub mod metrics;
pub mod mirror;
pub mod model;
pub mod options;
pub mod queue;
pub mod runtime;
pub mod selector;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod transform;
pub mod util;
pub mod watch_health;
pub mod watcher;
