//! The circuit breaker on the delivery path: the shared state in Redis
//! ([`hookfleet_store::Circuits`]) read through a short local cache, refreshed single-flight
//! ([`Fresh`]), so a delivery to a healthy endpoint costs at most one Redis read per endpoint
//! per [`CACHE_TTL`] for the whole worker, and a success costs a write only when the circuit
//! had recorded failures.
//!
//! Replicas see each other's state within the cache TTL: "failures in a row" is approximate
//! across workers by that much, which only shifts when a circuit opens by a failure or two.

use std::time::Duration;

use hookfleet_core::EndpointId;
use hookfleet_core::circuit::{CircuitState, Gate};
use hookfleet_core::policy::AttemptOutcome;
use hookfleet_store::{Circuits, Fresh, ProbeGrant, Streak};
use tracing::{info, warn};

use crate::Result;
use crate::metrics::{CircuitTo, DeferReason, Metrics};

/// How old a cached circuit state may be.
pub const CACHE_TTL: Duration = Duration::from_secs(1);

/// How long a cached state counts towards `hookfleet_circuit_open_endpoints`: an endpoint
/// whose deliveries stopped coming is no longer reported open after this.
const REPORT_WINDOW: Duration = Duration::from_secs(60);

/// What a delivery may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead (closed circuit, or this delivery is the half-open probe).
    Go,
    /// Defer for at least this long: open circuit, a probe in flight, or a `Retry-After` pause.
    Defer(Duration, DeferReason),
}

/// What the outcome of an attempt did to the circuit, and what to tell the platform of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Aftermath {
    /// The endpoint has failed without a break for `HOOKFLEET_DISABLE_AFTER`: disable it.
    pub disable: bool,
    /// The failures in a row reached the threshold: tell `message.attempt.failing`.
    pub failing: Option<Streak>,
    /// A success ended a streak told as failing: tell `message.attempt.recovered`.
    pub recovered: Option<Streak>,
}

#[derive(Debug)]
pub struct Breaker {
    circuits: Circuits,
    metrics: Metrics,
    cache: Fresh<EndpointId, CircuitState>,
}

impl Breaker {
    pub fn new(circuits: Circuits, metrics: Metrics) -> Self {
        Self {
            circuits,
            metrics,
            // A stale state is served only for as long as the cache TTL again.
            cache: Fresh::new(CACHE_TTL, CACHE_TTL * 2),
        }
    }

    /// How long an endpoint may fail without a break before it is disabled.
    pub fn disable_after(&self) -> Duration {
        self.circuits.policy().disable_after
    }

    /// Whether a delivery to `endpoint` may go ahead now.
    pub async fn admit(&self, endpoint: &EndpointId) -> Result<Admission> {
        let now = now_ms();
        let state = self.state(endpoint).await?;
        // An endpoint open with fewer failures than the threshold was paused by Retry-After.
        let reason = if state.failures >= self.circuits.policy().threshold {
            DeferReason::CircuitOpen
        } else {
            DeferReason::RetryAfter
        };
        match state.gate(now) {
            Gate::Pass => Ok(Admission::Go),
            Gate::Wait(wait) => Ok(Admission::Defer(wait, reason)),
            Gate::Probe => match self.circuits.probe(endpoint, now).await? {
                ProbeGrant::Granted => {
                    self.metrics.circuit_transition(CircuitTo::HalfOpen);
                    info!(message = "Circuit half-open: probing the endpoint.", endpoint_id = %endpoint);
                    Ok(Admission::Go)
                }
                ProbeGrant::Closed => {
                    self.remember(endpoint, CircuitState::default());
                    Ok(Admission::Go)
                }
                ProbeGrant::Refused => {
                    // Someone else probes: look again once its attempt is over.
                    self.forget(endpoint);
                    Ok(Admission::Defer(self.circuits.policy().probe_hold, reason))
                }
            },
        }
    }

    /// Records an attempt's outcome in the shared state.
    pub async fn record(
        &self,
        endpoint: &EndpointId,
        outcome: &AttemptOutcome,
    ) -> Result<Aftermath> {
        let now = now_ms();
        if let Some(wait) = outcome.retry_after() {
            // The receiver asked for a pause: every worker holds its deliveries until then.
            let until = now.saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX));
            self.circuits.pause(endpoint, now, until).await?;
            self.forget(endpoint);
        }
        if outcome.counts_against_circuit() {
            let recorded = self.circuits.failure(endpoint, now).await?;
            if recorded.opened {
                self.metrics.circuit_transition(CircuitTo::Open);
                warn!(
                    message = "Circuit opened: deferring the endpoint's deliveries.",
                    endpoint_id = %endpoint,
                    failures = recorded.state.failures,
                    cooldown = ?self.circuits.policy().cooldown,
                );
            }
            self.remember(endpoint, recorded.state);
            return Ok(Aftermath {
                disable: recorded.disable,
                failing: recorded.failing,
                recovered: None,
            });
        }
        let success = outcome.status().is_some_and(|s| (200..300).contains(&s));
        let clean = self
            .cached(endpoint)
            .is_some_and(|s| s == CircuitState::default());
        let mut aftermath = Aftermath::default();
        if success && !clean {
            let closed = self.circuits.success(endpoint).await?;
            if closed.was_open {
                self.metrics.circuit_transition(CircuitTo::Closed);
                info!(message = "Circuit closed: the endpoint answers again.", endpoint_id = %endpoint);
            }
            aftermath.recovered = closed.recovered;
            self.remember(endpoint, CircuitState::default());
        }
        Ok(aftermath)
    }

    /// Updates the gauge of endpoints whose circuit this worker saw open in the last
    /// [`REPORT_WINDOW`]; older entries are dropped.
    pub fn report(&self) {
        let mut open = 0;
        self.cache.retain(|state, age| {
            let recent = age < REPORT_WINDOW;
            open += usize::from(recent && state.is_open());
            recent
        });
        self.metrics.set_circuit_open(open);
    }

    async fn state(&self, endpoint: &EndpointId) -> Result<CircuitState> {
        let read = || async { self.circuits.state(endpoint).await };
        Ok(self.cache.get(endpoint, read).await?)
    }

    fn cached(&self, endpoint: &EndpointId) -> Option<CircuitState> {
        self.cache.peek(endpoint)
    }

    fn remember(&self, endpoint: &EndpointId, state: CircuitState) {
        self.cache.insert(endpoint.clone(), state);
    }

    fn forget(&self, endpoint: &EndpointId) {
        self.cache.remove(endpoint);
    }
}

/// Unix milliseconds: the shared state's clock, comparable across workers.
fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}
