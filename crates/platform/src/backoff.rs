//! Exponential backoff for retry loops that must still stop promptly on shutdown.

use std::time::Duration;
use tokio_util::sync::CancellationToken;

const FIRST: Duration = Duration::from_millis(100);
const MAX: Duration = Duration::from_secs(5);

/// 100 ms, doubling per consecutive failure, capped at 5 s.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    pub fn next_delay(&mut self) -> Duration {
        let delay = FIRST.saturating_mul(1 << self.failures.min(6)).min(MAX);
        self.failures += 1;
        delay
    }

    /// Sleeps for the next delay, or until shutdown.
    pub async fn wait(&mut self, shutdown: &CancellationToken) {
        let delay = self.next_delay();
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(delay) => {}
        }
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_and_reset() {
        let mut backoff = Backoff::default();
        let delays: Vec<u64> = (0..8)
            .map(|_| backoff.next_delay().as_millis() as u64)
            .collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), FIRST);
    }
}
