//! Backoff: how long a transiently failed message stays invisible, and how long loops wait
//! between failed calls. Pure functions; the jitter is passed in so tests are exact.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::settings::RetrySettings;

/// Visibility for a message that failed transiently on its `receive_count`-th receive:
/// `initial · 2^(receive_count-1)` capped at `max`, then "equal jitter" — half of it fixed,
/// half scaled by `jitter` in 0..=1 — so retries of many messages do not arrive in lockstep.
pub fn retry_visibility(receive_count: u32, retry: &RetrySettings, jitter: f64) -> Duration {
    let base = exponential(
        retry.initial_backoff,
        receive_count.saturating_sub(1),
        retry.max_backoff,
    );
    with_jitter(base, jitter)
}

fn exponential(initial: Duration, doublings: u32, max: Duration) -> Duration {
    let factor = 2u32.checked_pow(doublings.min(31)).unwrap_or(u32::MAX);
    initial.checked_mul(factor).unwrap_or(max).min(max)
}

fn with_jitter(base: Duration, jitter: f64) -> Duration {
    let half = base / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

/// A jitter value in 0..1 from the process's random hash keys (no RNG dependency needed).
pub fn jitter() -> f64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let hash = RandomState::new().hash_one(n);
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

/// Exponential backoff between attempts of a loop (polling, batch retries), bounded.
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempts: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            attempts: 0,
        }
    }

    /// The wait before the next attempt (grows with each call).
    pub fn next_delay(&mut self) -> Duration {
        let base = exponential(self.initial, self.attempts, self.max);
        self.attempts = self.attempts.saturating_add(1);
        with_jitter(base, jitter())
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    pub fn reset(&mut self) {
        self.attempts = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry(initial: u64, max: u64) -> RetrySettings {
        RetrySettings {
            max_attempts: 5,
            initial_backoff: Duration::from_secs(initial),
            max_backoff: Duration::from_secs(max),
        }
    }

    #[test]
    fn visibility_doubles_with_each_receive_up_to_the_cap() {
        let policy = retry(1, 300);
        let full: Vec<u64> = (1..=11)
            .map(|n| retry_visibility(n, &policy, 1.0).as_secs())
            .collect();
        assert_eq!(full, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
    }

    #[test]
    fn jitter_spreads_between_half_and_all_of_the_backoff() {
        let policy = retry(10, 300);
        assert_eq!(retry_visibility(2, &policy, 0.0), Duration::from_secs(10));
        assert_eq!(retry_visibility(2, &policy, 0.5), Duration::from_secs(15));
        assert_eq!(retry_visibility(2, &policy, 1.0), Duration::from_secs(20));
    }

    #[test]
    fn huge_receive_counts_do_not_overflow() {
        let policy = retry(1, 43_200);
        assert_eq!(
            retry_visibility(u32::MAX, &policy, 1.0),
            Duration::from_secs(43_200)
        );
    }

    #[test]
    fn jitter_stays_in_range() {
        for _ in 0..1000 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j), "{j}");
        }
    }

    #[test]
    fn loop_backoff_grows_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let delays: Vec<Duration> = (0..8).map(|_| backoff.next_delay()).collect();
        assert!(delays[0] <= Duration::from_millis(100));
        assert!(delays[7] >= Duration::from_secs(1) && delays[7] <= Duration::from_secs(2));
        backoff.reset();
        assert_eq!(backoff.attempts(), 0);
    }
}
