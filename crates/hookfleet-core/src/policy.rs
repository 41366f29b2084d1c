//! Delivery policy as data: what an attempt's outcome means, and when to try again.
//!
//! | outcome                                   | verdict                                   |
//! |-------------------------------------------|-------------------------------------------|
//! | 2xx                                       | delivered                                 |
//! | 410 Gone                                  | give up now and disable the endpoint      |
//! | any other status (3xx, 4xx, 5xx)          | retry                                     |
//! | timeout, connection error                 | retry                                     |
//! | target blocked (non-public address)       | give up now                               |
//!
//! Other 4xx are retried, as Svix and Stripe do: a 401 or 404 is most often a receiver deploy or a
//! secret rotation in progress, and the schedule is short enough that retrying costs little.
//! `410 Gone` is the Standard Webhooks way for a receiver to say "stop sending".

use std::time::Duration;

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The receiver answered; `retry_after` is its `Retry-After`, when it sent one in seconds.
    Status {
        code: u16,
        retry_after: Option<Duration>,
    },
    /// No answer within the delivery timeout.
    Timeout,
    /// No connection (refused, reset, DNS failure, TLS failure).
    ConnectError(String),
    /// The target resolves to an address deliveries may not reach.
    Blocked(String),
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    Retry,
    /// Dead-letter at once; `disable` when the receiver asked to be left alone.
    GiveUp {
        disable: bool,
    },
}

impl AttemptOutcome {
    pub fn verdict(&self) -> Verdict {
        match self {
            AttemptOutcome::Status { code, .. } if (200..300).contains(code) => Verdict::Delivered,
            AttemptOutcome::Status { code: 410, .. } => Verdict::GiveUp { disable: true },
            AttemptOutcome::Status { .. } | AttemptOutcome::Timeout => Verdict::Retry,
            AttemptOutcome::ConnectError(_) => Verdict::Retry,
            AttemptOutcome::Blocked(_) => Verdict::GiveUp { disable: false },
        }
    }

    /// The `outcome` label of `hookfleet_delivery_attempts_total`.
    pub fn label(&self) -> &'static str {
        match self {
            AttemptOutcome::Status { code, .. } if (200..300).contains(code) => "success",
            AttemptOutcome::Status { .. } => "http_error",
            AttemptOutcome::Timeout => "timeout",
            AttemptOutcome::ConnectError(_) => "connect_error",
            AttemptOutcome::Blocked(_) => "blocked",
        }
    }

    /// The HTTP status, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            AttemptOutcome::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// A short description for dead letters and logs.
    pub fn describe(&self) -> String {
        match self {
            AttemptOutcome::Status { code, .. } => format!("HTTP {code}"),
            AttemptOutcome::Timeout => "timed out".to_owned(),
            AttemptOutcome::ConnectError(e) => format!("connection failed: {e}"),
            AttemptOutcome::Blocked(e) => format!("blocked: {e}"),
        }
    }

    /// Whether this outcome counts towards opening the endpoint's circuit: the receiver is down
    /// or overwhelmed (timeout, no connection, 5xx), not merely refusing this one event.
    pub fn counts_against_circuit(&self) -> bool {
        match self {
            AttemptOutcome::Status { code, .. } => *code >= 500,
            AttemptOutcome::Timeout | AttemptOutcome::ConnectError(_) => true,
            AttemptOutcome::Blocked(_) => false,
        }
    }

    /// The wait a 429 or 503 asked for with `Retry-After`.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AttemptOutcome::Status {
                code: 429 | 503,
                retry_after,
            } => *retry_after,
            _ => None,
        }
    }
}

/// The waits after the 1st, 2nd, 3rd… failed attempt (`HOOKFLEET_RETRY_DELAYS`). Each wait is a
/// RabbitMQ delay queue ("tier"), so a wait is always one of these values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
}

impl RetrySchedule {
    pub fn new(delays: Vec<Duration>) -> Self {
        Self { delays }
    }

    pub fn delays(&self) -> &[Duration] {
        &self.delays
    }

    /// The number of retries, so at most `retries() + 1` attempts.
    pub fn retries(&self) -> u32 {
        self.delays.len() as u32
    }

    /// The tier to wait in after attempt number `attempt` (1-based) ended with `outcome`, or
    /// `None` when no attempt is left. A `Retry-After` on 429/503 picks the first tier at least
    /// as long as it asks, clamped to the longest tier.
    pub fn next_tier(&self, attempt: u32, outcome: &AttemptOutcome) -> Option<usize> {
        let index = usize::try_from(attempt).ok()?.checked_sub(1)?;
        if index >= self.delays.len() {
            return None;
        }
        let Some(wanted) = outcome.retry_after() else {
            return Some(index);
        };
        let longer = (index..self.delays.len()).find(|&i| self.delays[i] >= wanted);
        Some(longer.unwrap_or(self.delays.len() - 1))
    }
}

impl Default for RetrySchedule {
    /// The contract's default: 30 s, 2 min, 8 min.
    fn default() -> Self {
        Self::new(vec![
            Duration::from_secs(30),
            Duration::from_secs(120),
            Duration::from_secs(480),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> AttemptOutcome {
        AttemptOutcome::Status {
            code,
            retry_after: None,
        }
    }

    #[test]
    fn outcomes_map_to_verdicts_and_labels() {
        let table = [
            (status(200), Verdict::Delivered, "success"),
            (status(204), Verdict::Delivered, "success"),
            (status(301), Verdict::Retry, "http_error"),
            (status(400), Verdict::Retry, "http_error"),
            (status(404), Verdict::Retry, "http_error"),
            (status(408), Verdict::Retry, "http_error"),
            (status(410), Verdict::GiveUp { disable: true }, "http_error"),
            (status(429), Verdict::Retry, "http_error"),
            (status(500), Verdict::Retry, "http_error"),
            (status(503), Verdict::Retry, "http_error"),
            (AttemptOutcome::Timeout, Verdict::Retry, "timeout"),
            (
                AttemptOutcome::ConnectError("refused".into()),
                Verdict::Retry,
                "connect_error",
            ),
            (
                AttemptOutcome::Blocked("10.0.0.1".into()),
                Verdict::GiveUp { disable: false },
                "blocked",
            ),
        ];
        for (outcome, verdict, label) in table {
            assert_eq!(outcome.verdict(), verdict, "{outcome:?}");
            assert_eq!(outcome.label(), label, "{outcome:?}");
        }
    }

    #[test]
    fn only_an_endpoint_in_trouble_counts_against_its_circuit() {
        let table = [
            (status(200), false),
            (status(404), false),
            (status(429), false),
            (status(500), true),
            (status(503), true),
            (AttemptOutcome::Timeout, true),
            (AttemptOutcome::ConnectError("refused".into()), true),
            (AttemptOutcome::Blocked("10.0.0.1".into()), false),
        ];
        for (outcome, counts) in table {
            assert_eq!(outcome.counts_against_circuit(), counts, "{outcome:?}");
        }
    }

    #[test]
    fn tiers_follow_the_attempt_number() {
        let s = RetrySchedule::default();
        let table = [
            (1, Some(0)),
            (2, Some(1)),
            (3, Some(2)),
            (4, None),
            (0, None),
        ];
        for (attempt, tier) in table {
            assert_eq!(
                s.next_tier(attempt, &status(500)),
                tier,
                "attempt {attempt}"
            );
        }
    }

    #[test]
    fn retry_after_picks_a_tier_at_least_as_long() {
        let s = RetrySchedule::default();
        let after = |secs, code| AttemptOutcome::Status {
            code,
            retry_after: Some(Duration::from_secs(secs)),
        };
        let table = [
            (1, after(10, 429), Some(0)),
            (1, after(60, 429), Some(1)),
            (1, after(200, 503), Some(2)),
            (1, after(9999, 429), Some(2)),
            (2, after(10, 429), Some(1)),
            (1, after(200, 500), Some(0)), // only 429 and 503 carry a meaningful Retry-After
            (4, after(10, 429), None),
        ];
        for (attempt, outcome, tier) in table {
            assert_eq!(
                s.next_tier(attempt, &outcome),
                tier,
                "{attempt} {outcome:?}"
            );
        }
    }

    #[test]
    fn an_empty_schedule_never_retries() {
        assert_eq!(RetrySchedule::new(vec![]).next_tier(1, &status(500)), None);
    }
}
