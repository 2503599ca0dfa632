//! How the integration tests synchronise with asynchronous work: poll a condition until a deadline,
//! never a bare sleep. Included with `#[path = "common/wait.rs"] mod wait;`.

// Each test crate compiles its own copy and uses only what it needs.
#![allow(dead_code)]

use std::time::Duration;

use tokio::time::Instant;

/// Generous for a loaded 2-core CI machine; a healthy run waits milliseconds.
const DEADLINE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(10);

pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

pub async fn eventually_async(what: &str, cond: impl AsyncFnMut() -> bool) {
    eventually_async_within(what, DEADLINE, POLL, cond).await
}

/// For conditions that cost a request to a real server, polled less often, and for work whose pace
/// a real cluster sets (namespace termination by kube-controller-manager): a deadline of its own.
pub async fn eventually_async_within(
    what: &str,
    within: Duration,
    poll: Duration,
    mut cond: impl AsyncFnMut() -> bool,
) {
    let deadline = Instant::now() + within;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(poll).await;
    }
}
