//! Every wait hookfleet makes is a RabbitMQ delay queue ("tier"): a worker never sleeps on a
//! delivery. This module decides which tiers exist and which one a wait goes to.
//!
//! - **Retries** wait the schedule's delays (`HOOKFLEET_RETRY_DELAYS`), each spread over
//!   [`JITTER_STEPS`] sub-tiers (`d`, `1.1 d`, `1.2 d`, `1.3 d`) picked at random, so that many
//!   events failing together for one endpoint (an outage) come back in four smaller waves
//!   instead of one. The trade-off: four queues per delay instead of one, and an expected wait
//!   15 % longer than configured; the configured delay is always the shortest wait.
//! - **Deferrals** (endpoint busy, circuit open, `Retry-After`) use no attempt and wait one of
//!   [`DEFER_DELAYS`], jittered the same way: the shortest at least as long as asked.

use std::time::Duration;

/// Sub-tiers per delay.
pub const JITTER_STEPS: u32 = 4;

/// Waits of a deferral: short for a busy endpoint, longer for an open circuit.
pub const DEFER_DELAYS: [Duration; 4] = [
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(120),
];

/// Sub-tier `step` (0-based) of `base`: `base × (1 + step / 10)`, in whole milliseconds (the
/// unit of tier names and of RabbitMQ's TTL).
pub fn sub_tier(base: Duration, step: u32) -> Duration {
    let ms = base.as_millis() as u64;
    Duration::from_millis(ms + ms * u64::from(step) / 10)
}

/// A random sub-tier of `base`.
pub fn jittered(base: Duration) -> Duration {
    sub_tier(base, rand::random_range(0..JITTER_STEPS))
}

/// The deferral tier base for a wait of at least `wanted` (the longest when none is).
pub fn defer_base(wanted: Duration) -> Duration {
    DEFER_DELAYS
        .into_iter()
        .find(|d| *d >= wanted)
        .unwrap_or(DEFER_DELAYS[DEFER_DELAYS.len() - 1])
}

/// Every tier to declare for a retry schedule: each delay and each deferral, with their
/// sub-tiers; sorted, without repeats.
pub fn all_tiers(retry_delays: &[Duration]) -> Vec<Duration> {
    let mut tiers: Vec<Duration> = (retry_delays.iter().copied())
        .chain(DEFER_DELAYS)
        .flat_map(|base| (0..JITTER_STEPS).map(move |step| sub_tier(base, step)))
        .collect();
    tiers.sort();
    tiers.dedup();
    tiers
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn sub_tiers_spread_a_delay_by_tenths() {
        let steps: Vec<Duration> = (0..JITTER_STEPS).map(|s| sub_tier(S(30), s)).collect();
        assert_eq!(steps, [S(30), S(33), S(36), S(39)]);
        assert_eq!(
            sub_tier(Duration::from_millis(15), 3),
            Duration::from_millis(19)
        );
        for _ in 0..100 {
            let d = jittered(S(10));
            assert!(d >= S(10) && d <= S(13), "{d:?}");
        }
    }

    #[test]
    fn a_deferral_waits_at_least_as_long_as_asked() {
        let table = [
            (Duration::ZERO, S(1)),
            (S(1), S(1)),
            (S(2), S(5)),
            (S(29), S(30)),
            (S(31), S(120)),
            (S(9999), S(120)),
        ];
        for (wanted, base) in table {
            assert_eq!(defer_base(wanted), base, "{wanted:?}");
        }
    }

    #[test]
    fn every_wait_has_a_tier() {
        let tiers = all_tiers(&[S(30), S(120)]);
        // 30 s and 120 s are both a retry delay and a deferral: declared once.
        assert_eq!(tiers.len(), 4 * 4);
        for base in [S(1), S(5), S(30), S(120)] {
            for step in 0..JITTER_STEPS {
                assert!(tiers.contains(&sub_tier(base, step)));
            }
        }
        assert!(tiers.windows(2).all(|w| w[0] < w[1]));
    }
}
