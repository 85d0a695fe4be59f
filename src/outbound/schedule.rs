//! When to try a delivery again, and what an attempt's answer means.
//!
//! The spec's rules: a 2xx is delivered; 410 Gone means the endpoint is gone (the executor is
//! disabled, nothing more is sent); 429 and 503 ask the sender to slow down and may say for how
//! long (`Retry-After`, honoured up to a bound so an endpoint cannot park messages for
//! weeks); everything else — other 3xx (redirects are never followed), 4xx, 5xx, timeouts and
//! connection errors — is retried on the schedule. After the schedule's last attempt the message
//! is dead-lettered.

use std::time::{Duration, SystemTime};

/// What one attempt's answer means for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    Retry,
    /// 410: stop delivering to this endpoint.
    Gone,
    /// 429 or 503, with the wait the endpoint asked for if it gave a readable one.
    Throttled {
        retry_after: Option<Duration>,
    },
}

/// `status` is `None` when no answer came (timeout, refused or reset connection).
/// `retry_after` is the raw `Retry-After` header, read only for 429 and 503.
pub fn classify(status: Option<u16>, retry_after: Option<&str>) -> AttemptOutcome {
    match status {
        Some(200..=299) => AttemptOutcome::Delivered,
        Some(410) => AttemptOutcome::Gone,
        Some(429 | 503) => AttemptOutcome::Throttled {
            retry_after: retry_after.and_then(|v| parse_retry_after(v, SystemTime::now())),
        },
        _ => AttemptOutcome::Retry,
    }
}

/// A `Retry-After` value: delay seconds or an HTTP-date (a date already past is no wait).
/// Anything else is ignored, as if absent.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The wait before attempt number `attempts_made + 1`: `schedule[attempts_made]` seconds,
/// spread uniformly by up to `jitter` (a fraction, clamped to 0..=1) either way so retries of
/// many messages to one endpoint do not arrive together. A `Retry-After` longer than that wins,
/// capped at `max_retry_after`. `None` when the schedule is exhausted: dead letter.
pub fn next_delay(
    schedule: &[u64],
    attempts_made: u32,
    jitter: f64,
    retry_after: Option<Duration>,
    max_retry_after: Duration,
    rng: &mut impl rand::Rng,
) -> Option<Duration> {
    let base = *schedule.get(usize::try_from(attempts_made).ok()?)?;
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let scheduled = if jitter > 0.0 && base > 0 {
        let factor = 1.0 + rng.random_range(-jitter..=jitter);
        Duration::try_from_secs_f64((base as f64 * factor).max(0.0)).unwrap_or(Duration::MAX)
    } else {
        Duration::from_secs(base)
    };
    let asked = retry_after.map_or(Duration::ZERO, |r| r.min(max_retry_after));
    Some(scheduled.max(asked))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::config::OutboundConfig;

    const HOUR: Duration = Duration::from_secs(3_600);

    #[test]
    fn answers_are_classified_as_the_spec_says() {
        use AttemptOutcome::*;
        assert_eq!(classify(None, None), Retry);
        for ok in [200, 201, 202, 204, 299] {
            assert_eq!(classify(Some(ok), None), Delivered, "{ok}");
        }
        assert_eq!(classify(Some(410), None), Gone);
        for retry in [
            100, 301, 302, 304, 307, 400, 401, 403, 404, 409, 413, 500, 502, 504,
        ] {
            assert_eq!(classify(Some(retry), Some("5")), Retry, "{retry}");
        }
        for throttled in [429, 503] {
            assert_eq!(
                classify(Some(throttled), Some(" 120 ")),
                Throttled {
                    retry_after: Some(Duration::from_secs(120))
                }
            );
            assert_eq!(
                classify(Some(throttled), None),
                Throttled { retry_after: None }
            );
            assert_eq!(
                classify(Some(throttled), Some("soon")),
                Throttled { retry_after: None }
            );
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2026 07:28:00 GMT");
        let Ok(now) = now else {
            panic!("test date parses");
        };
        let later = Some(Duration::from_secs(90));
        assert_eq!(parse_retry_after("90", now), later);
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2026 07:29:30 GMT", now),
            later
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2026 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("1.5", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }

    #[test]
    fn the_default_schedule_gives_ten_attempts_then_dead_letter() {
        let config = OutboundConfig::default();
        let schedule = &config.retry_schedule_seconds;
        let mut rng = StdRng::seed_from_u64(1);
        let delays: Vec<_> = (0..)
            .map_while(|n| next_delay(schedule, n, 0.0, None, HOUR, &mut rng))
            .collect();
        assert_eq!(delays.len(), 10);
        assert_eq!(delays[0], Duration::ZERO);
        assert_eq!(delays[1], Duration::from_secs(5));
        assert_eq!(delays[9], Duration::from_secs(86_400));
        assert_eq!(
            next_delay(schedule, u32::MAX, 0.2, None, HOUR, &mut rng),
            None
        );
        assert_eq!(next_delay(&[], 0, 0.2, None, HOUR, &mut rng), None);
    }

    #[test]
    fn jitter_stays_within_its_fraction_and_actually_spreads() {
        let mut rng = StdRng::seed_from_u64(7);
        let schedule = [0, 100];
        let draws: Vec<f64> = (0..10_000)
            .filter_map(|_| next_delay(&schedule, 1, 0.2, None, HOUR, &mut rng))
            .map(|d| d.as_secs_f64())
            .collect();
        assert_eq!(draws.len(), 10_000);
        assert!(draws.iter().all(|d| (80.0..=120.0).contains(d)));
        let below = draws.iter().filter(|d| **d < 90.0).count();
        let above = draws.iter().filter(|d| **d > 110.0).count();
        assert!(below > 1_000 && above > 1_000, "{below} {above}");
        // "Immediately" stays immediate, and nonsense jitter is no jitter rather than a panic.
        assert_eq!(
            next_delay(&schedule, 0, 0.2, None, HOUR, &mut rng),
            Some(Duration::ZERO)
        );
        for odd in [f64::NAN, f64::INFINITY, -3.0] {
            assert_eq!(
                next_delay(&schedule, 1, odd, None, HOUR, &mut rng),
                Some(Duration::from_secs(100))
            );
        }
        let full = next_delay(&schedule, 1, 5.0, None, HOUR, &mut rng);
        assert!(full.is_some_and(|d| d <= Duration::from_secs(200)));
        let huge = next_delay(&[u64::MAX], 0, 0.5, None, HOUR, &mut rng);
        assert!(huge.is_some());
    }

    #[test]
    fn a_longer_retry_after_wins_up_to_its_cap() {
        let mut rng = StdRng::seed_from_u64(3);
        let schedule = [0, 5, 300];
        let after = |secs| Some(Duration::from_secs(secs));
        let delay = |ra, cap| next_delay(&schedule, 1, 0.0, ra, cap, &mut StdRng::seed_from_u64(3));
        assert_eq!(delay(after(60), HOUR), after(60));
        assert_eq!(delay(after(1), HOUR), after(5));
        assert_eq!(delay(after(86_400), HOUR), Some(HOUR));
        assert_eq!(delay(after(600), Duration::from_secs(2)), after(5));
        // The schedule still ends: a Retry-After does not add attempts.
        assert_eq!(
            next_delay(&schedule, 3, 0.0, after(60), HOUR, &mut rng),
            None
        );
    }
}
