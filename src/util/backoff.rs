//! Capped, jittered exponential backoff with a reset after a healthy period: client-go's
//! `wait.Backoff{800ms, ×2, jitter 1.0, cap 30s}` plus its 2-minute reset timer.
//! Pure state plus an explicit clock, so schedules are testable without sleeping.

use std::time::{Duration, Instant};

use super::rand::Rng;

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    factor: f64,
    /// Up to `jitter × delay` is added on top (client-go semantics: 1.0 means up to double).
    jitter: f64,
    /// A failure more than this long after the previous one starts again from `initial`.
    reset_after: Option<Duration>,
    current: Option<Duration>,
    last_failure: Option<Instant>,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff { initial, max, factor: 2.0, jitter: 0.0, reset_after: None, current: None, last_failure: None }
    }

    /// List/watch errors: 800 ms doubling to 30 s, jitter 1.0, reset after 2 min healthy.
    pub fn watch_default() -> Self {
        Backoff::new(Duration::from_millis(800), Duration::from_secs(30))
            .with_jitter(1.0)
            .with_reset_after(Duration::from_secs(120))
    }

    #[must_use]
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter.max(0.0);
        self
    }

    #[must_use]
    pub fn with_factor(mut self, factor: f64) -> Self {
        self.factor = factor.max(1.0);
        self
    }

    #[must_use]
    pub fn with_reset_after(mut self, after: Duration) -> Self {
        self.reset_after = Some(after);
        self
    }

    /// The delay before the next attempt after a failure at `now`.
    pub fn next_delay(&mut self, now: Instant, rng: &mut Rng) -> Duration {
        if let (Some(reset), Some(last)) = (self.reset_after, self.last_failure)
            && now.saturating_duration_since(last) > reset
        {
            self.current = None;
        }
        self.last_failure = Some(now);
        let base = match self.current {
            None => self.initial,
            Some(d) => d.mul_f64(self.factor).min(self.max),
        };
        self.current = Some(base);
        if self.jitter > 0.0 { base + base.mul_f64(self.jitter * rng.next_f64()) } else { base }
    }

    pub fn reset(&mut self) {
        self.current = None;
        self.last_failure = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(800), Duration::from_secs(30));
        let mut rng = Rng::seeded(1);
        let now = Instant::now();
        let delays: Vec<u64> = (0..8).map(|_| b.next_delay(now, &mut rng).as_millis() as u64).collect();
        assert_eq!(delays, vec![800, 1600, 3200, 6400, 12_800, 25_600, 30_000, 30_000]);
        b.reset();
        assert_eq!(b.next_delay(now, &mut rng), Duration::from_millis(800));
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let mut rng = Rng::seeded(9);
        let now = Instant::now();
        for _ in 0..1000 {
            let mut b = Backoff::watch_default();
            let d = b.next_delay(now, &mut rng);
            assert!(d >= Duration::from_millis(800) && d <= Duration::from_millis(1600), "{d:?}");
        }
    }

    #[test]
    fn resets_after_a_healthy_period() {
        let mut b =
            Backoff::new(Duration::from_secs(1), Duration::from_secs(30)).with_reset_after(Duration::from_secs(120));
        let mut rng = Rng::seeded(3);
        let t0 = Instant::now();
        b.next_delay(t0, &mut rng);
        assert_eq!(b.next_delay(t0 + Duration::from_secs(10), &mut rng), Duration::from_secs(2));
        assert_eq!(b.next_delay(t0 + Duration::from_secs(200), &mut rng), Duration::from_secs(1));
    }
}
