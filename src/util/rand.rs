//! Jitter source. Seeded once from the OS (ring's SystemRandom) in production and from a fixed
//! seed in tests, so backoff schedules in tests are reproducible.

use std::sync::Mutex;

/// xorshift64*: not cryptographic, only spreads retries and watch timeouts.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn seeded(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn from_os() -> Self {
        let mut buf = [0u8; 8];
        // A failing OS RNG only makes jitter less random; fall back to the clock.
        if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut buf).is_err() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0x9E37_79B9_7F4A_7C15);
            buf = nanos.to_le_bytes();
        }
        Rng::seeded(u64::from_le_bytes(buf))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi] (inclusive); `lo` when the range is empty.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo { lo } else { lo + self.next_u64() % (hi - lo + 1) }
    }

    /// Lowercase alphanumeric suffix, as Kubernetes uses for generated names.
    pub fn suffix(&mut self, len: usize) -> String {
        const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        (0..len).map(|_| CHARS[(self.next_u64() % CHARS.len() as u64) as usize] as char).collect()
    }
}

static GLOBAL: Mutex<Option<Rng>> = Mutex::new(None);

/// Process-wide jitter, lazily seeded from the OS.
pub fn with_global<T>(f: impl FnOnce(&mut Rng) -> T) -> T {
    let mut guard = GLOBAL.lock().unwrap_or_else(|p| p.into_inner());
    f(guard.get_or_insert_with(Rng::from_os))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_for_a_seed() {
        let a: Vec<u64> = (0..5)
            .map({
                let mut r = Rng::seeded(7);
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..5)
            .map({
                let mut r = Rng::seeded(7);
                move |_| r.next_u64()
            })
            .collect();
        assert_eq!(a, b);
    }

    #[test]
    fn range_and_unit_interval_bounds() {
        let mut r = Rng::seeded(42);
        for _ in 0..10_000 {
            let v = r.range(300, 600);
            assert!((300..=600).contains(&v));
            let f = r.next_f64();
            assert!((0.0..1.0).contains(&f));
        }
        assert_eq!(r.range(5, 5), 5);
        assert_eq!(r.range(9, 1), 9);
        assert_eq!(r.suffix(5).len(), 5);
    }
}
