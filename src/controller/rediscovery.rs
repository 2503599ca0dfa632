//! Periodic rediscovery on its own task. Discovery is a few dozen GETs that an aggregated API can
//! stall for as long as the client's timeout; on the controller's main loop that would delay a
//! SIGTERM or a lost Lease by as much. Here the loop only receives finished results from a channel,
//! and stopping aborts the task wherever it is.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::discovery::{self, DenyList, Discovery};
use crate::metrics::Metrics;

/// The running task; aborted when dropped.
pub struct Rediscovery {
    pub results: mpsc::Receiver<Discovery>,
    task: JoinHandle<()>,
}

impl Drop for Rediscovery {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Discovers every `interval` (first after one interval) and sends each successful result; a
/// failed pass is logged and the watched types are kept. Failures (of the whole pass, or of single
/// group/versions skipped) count in `kubemirror_discovery_errors_total`.
pub fn spawn(client: Client, deny: DenyList, interval: Duration, metrics: Metrics) -> Rediscovery {
    // One result in flight at most: a slow main loop delays discovery, never piles results up.
    let (tx, results) = mpsc::channel(1);
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.reset();
        loop {
            tick.tick().await;
            match discovery::discover(&client, &deny).await {
                Ok(found) => {
                    metrics.discovery_failed(false, found.failed.len());
                    if tx.send(found).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    metrics.discovery_failed(true, 0);
                    log::warn!("rediscovery failed, keeping the watched types: {e}");
                }
            }
        }
    });
    Rediscovery { results, task }
}
