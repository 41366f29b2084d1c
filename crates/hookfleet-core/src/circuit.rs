//! The circuit breaker's rule, as data: from an endpoint's shared state and the time, whether a
//! delivery may go ahead. The state lives in Redis (`hookfleet_store::circuit`), shared by
//! every worker; this is the pure decision over it.
//!
//! | state                                          | a delivery…                              |
//! |------------------------------------------------|------------------------------------------|
//! | closed (fewer failures in a row than the threshold) | goes ahead                          |
//! | open (`open_until` in the future)              | is deferred until then, no attempt used  |
//! | cool-down over, nobody probing                 | may become the one probe (half-open)     |
//! | cool-down over, a probe in flight              | is deferred a little, no attempt used    |
//!
//! A probe that succeeds closes the circuit; one that fails opens it for another cool-down.
//! A `Retry-After` pauses the endpoint the same way (open until then) without counting a failure.

use std::time::Duration;

/// An endpoint's circuit as stored; all times are unix milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CircuitState {
    /// Failures in a row (timeouts, connection errors, 5xx) since the last success.
    pub failures: u32,
    /// Deliveries wait until then; 0 when the circuit never opened.
    pub open_until_ms: i64,
    /// A probe holds the half-open circuit until then.
    pub probe_until_ms: i64,
}

/// What a delivery may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Closed: go ahead.
    Pass,
    /// Open: defer for this long (no HTTP call, no attempt used).
    Wait(Duration),
    /// Cool-down over: try to become the probe.
    Probe,
}

impl CircuitState {
    /// Whether the circuit is open or half-open at `now_ms`.
    pub fn is_open(&self) -> bool {
        self.open_until_ms > 0
    }

    pub fn gate(&self, now_ms: i64) -> Gate {
        if !self.is_open() {
            return Gate::Pass;
        }
        if self.open_until_ms > now_ms {
            return Gate::Wait(millis(self.open_until_ms - now_ms));
        }
        if self.probe_until_ms > now_ms {
            return Gate::Wait(millis(self.probe_until_ms - now_ms));
        }
        Gate::Probe
    }
}

fn millis(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_follows_the_state() {
        let state = |failures, open_until_ms, probe_until_ms| CircuitState {
            failures,
            open_until_ms,
            probe_until_ms,
        };
        let now = 10_000;
        let table = [
            (state(0, 0, 0), Gate::Pass),
            (state(4, 0, 0), Gate::Pass),
            (
                state(5, 12_500, 0),
                Gate::Wait(Duration::from_millis(2_500)),
            ),
            (state(5, 9_000, 0), Gate::Probe),
            (state(5, 9_000, 11_000), Gate::Wait(Duration::from_secs(1))),
            (state(5, 9_000, 9_500), Gate::Probe),
        ];
        for (s, gate) in table {
            assert_eq!(s.gate(now), gate, "{s:?}");
        }
    }
}
