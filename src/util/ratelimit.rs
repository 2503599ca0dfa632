//! Token bucket shared by the API client (`--rate-limit-qps`/`--rate-limit-burst`) and the work
//! queue's overall limit. Waiters reserve a token up front, so they are served in arrival order and
//! a burst of callers cannot starve one another.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct TokenBucket {
    qps: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    /// `qps <= 0` disables limiting.
    pub fn new(qps: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        TokenBucket { qps, burst, state: Mutex::new((burst, Instant::now())) }
    }

    pub fn unlimited() -> Self {
        TokenBucket::new(0.0, 1)
    }

    /// Takes a token, returning how long the caller must wait before using it.
    pub fn reserve_at(&self, now: Instant) -> Duration {
        if self.qps <= 0.0 {
            return Duration::ZERO;
        }
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = *st;
        let refilled = (tokens + now.saturating_duration_since(last).as_secs_f64() * self.qps).min(self.burst);
        let after = refilled - 1.0;
        *st = (after, now.max(last));
        if after >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-after / self.qps) }
    }

    /// Takes a token only if one is available now (for callers that drop instead of waiting).
    pub fn try_acquire_at(&self, now: Instant) -> bool {
        if self.qps <= 0.0 {
            return true;
        }
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = *st;
        let refilled = (tokens + now.saturating_duration_since(last).as_secs_f64() * self.qps).min(self.burst);
        if refilled >= 1.0 {
            *st = (refilled - 1.0, now.max(last));
            true
        } else {
            *st = (refilled, now.max(last));
            false
        }
    }

    pub async fn acquire(&self) {
        let wait = self.reserve_at(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_steady_rate() {
        let b = TokenBucket::new(10.0, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(b.reserve_at(t0), Duration::ZERO);
        }
        let w = b.reserve_at(t0);
        assert!((w.as_secs_f64() - 0.1).abs() < 1e-6, "{w:?}");
        let w = b.reserve_at(t0);
        assert!((w.as_secs_f64() - 0.2).abs() < 1e-6, "{w:?}");
        // A second later the debt is repaid and the bucket partly refilled.
        assert_eq!(b.reserve_at(t0 + Duration::from_secs(1)), Duration::ZERO);
    }

    #[test]
    fn try_acquire_never_goes_into_debt() {
        let b = TokenBucket::new(1.0, 2);
        let t0 = Instant::now();
        assert!(b.try_acquire_at(t0));
        assert!(b.try_acquire_at(t0));
        assert!(!b.try_acquire_at(t0));
        assert!(!b.try_acquire_at(t0 + Duration::from_millis(500)));
        assert!(b.try_acquire_at(t0 + Duration::from_millis(1001)));
    }

    #[test]
    fn disabled_never_waits() {
        let b = TokenBucket::unlimited();
        let t0 = Instant::now();
        for _ in 0..1000 {
            assert_eq!(b.reserve_at(t0), Duration::ZERO);
        }
    }
}
