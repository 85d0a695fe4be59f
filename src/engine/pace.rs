//! How busy ingest is, so that work which can wait does while a burst of webhooks lasts.
//!
//! Reports back to sources (and, with no executor to deliver to, the outbox pass that plans
//! them) are the only outbound work nobody waits on within seconds: the source's own API limits
//! them far below ingest rates anyway (GitHub's secondary limits: about 80 content-creating
//! requests a minute). On SQLite their writes take turns with the webhooks' commits on the one
//! writer, and a burst with reports flowing was ingested a third slower (`cargo bench --bench
//! inbound`, `HOPPER_BENCH_REPORTING=1`); writing the outbox rows alone cost nothing
//! measurable (`HOPPER_BENCH_REPORTING=outbox`). So the report worker and that pass wait until
//! ingest drops below [`BUSY_PER_SECOND`], or [`MAX_HOLD`] at most, and then drain everything
//! before they wait again: a sustained load still gets its reports, [`MAX_HOLD`] late at most
//! plus the drain. Deliveries to executors never wait: their tasks are work someone is waiting
//! to start.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The window over which the rate is counted.
const WINDOW: Duration = Duration::from_millis(200);
/// Webhooks a second above which ingest counts as busy.
const BUSY_PER_SECOND: u64 = 1_000;
/// The longest a report waits out a burst before it goes anyway.
pub const MAX_HOLD: Duration = Duration::from_secs(5);

/// Webhooks accepted in the current window and in the one before it.
#[derive(Debug)]
pub struct IngestPace {
    window: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    start: Instant,
    count: u64,
    previous: u64,
}

impl Default for IngestPace {
    fn default() -> Self {
        Self {
            window: Mutex::new(Window {
                start: Instant::now(),
                count: 0,
                previous: 0,
            }),
        }
    }
}

impl IngestPace {
    /// One webhook accepted.
    pub fn record(&self) {
        self.with(Instant::now(), |w| w.count += 1);
    }

    /// Whether the last full window, or the current one so far, ran above the busy rate.
    pub fn busy(&self) -> bool {
        self.busy_at(Instant::now())
    }

    fn busy_at(&self, now: Instant) -> bool {
        let limit = BUSY_PER_SECOND * WINDOW.as_millis() as u64 / 1_000;
        self.with(now, |w| w.previous > limit || w.count > limit)
    }

    fn with<T>(&self, now: Instant, f: impl FnOnce(&mut Window) -> T) -> T {
        // A poisoned lock only means a panic elsewhere while counting: the counts are still
        // counts.
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let age = now.saturating_duration_since(w.start);
        if age >= WINDOW {
            // A window that ended long ago says nothing about now.
            w.previous = if age < WINDOW * 2 { w.count } else { 0 };
            w.count = 0;
            w.start = now;
        }
        f(&mut w)
    }

    /// Returns once ingest is no longer busy, or after `max`.
    pub async fn wait_out(&self, max: Duration) {
        let started = Instant::now();
        while self.busy() && started.elapsed() < max {
            tokio::time::sleep(WINDOW).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_above_the_rate_and_quiet_again_once_it_stops() {
        let pace = IngestPace::default();
        let t0 = Instant::now();
        assert!(!pace.busy_at(t0));
        for _ in 0..150 {
            pace.with(t0, |w| w.count += 1);
        }
        assert!(!pace.busy_at(t0), "750/s is not busy");
        for _ in 0..100 {
            pace.with(t0, |w| w.count += 1);
        }
        assert!(pace.busy_at(t0), "1,250/s is");
        assert!(
            pace.busy_at(t0 + WINDOW),
            "the window just ended still counts"
        );
        assert!(
            !pace.busy_at(t0 + WINDOW * 2),
            "two quiet windows later it is not"
        );
    }

    #[tokio::test]
    async fn waiting_ends_at_the_limit_even_if_busy_and_at_once_if_not() {
        let pace = IngestPace::default();
        let started = Instant::now();
        pace.wait_out(Duration::from_secs(5)).await;
        assert!(started.elapsed() < WINDOW, "quiet: no wait");
        for _ in 0..1_000 {
            pace.record();
        }
        let started = Instant::now();
        pace.wait_out(Duration::from_millis(300)).await;
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(300) && waited < Duration::from_secs(2));
    }
}
