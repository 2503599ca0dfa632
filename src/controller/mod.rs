//! The controller assembly: the pure mirroring decisions of [`crate::mirror`] run against the
//! cluster on the runtime (cache, queue, watches, leader election).
//!
//! - [`writer`]: every request of a pass behind one narrow trait; the real one fences writes by
//!   the leadership channel;
//! - [`executor`]: performs one plan (the executor contract of [`crate::mirror`]);
//! - [`state`]: per watched type, the write ledger and blocked targets; the queue key;
//! - [`reconcile`]: one pass for one source (caches → plan → executor → requeue decision);
//! - [`routing`]: cache changes → queued sources;
//! - [`rediscovery`]: periodic discovery on its own task, results over a channel;
//! - [`run`]: the process: discovery, watches, leader gating, workers, rediscovery, admin, stop.

pub mod executor;
#[cfg(test)]
mod executor_tests;
#[cfg(test)]
mod fakes;
pub mod reconcile;
pub mod rediscovery;
pub mod routing;
pub mod run;
#[cfg(test)]
mod sim_tests;
pub mod state;
pub mod writer;

pub use run::{Bound, Exit, run};
