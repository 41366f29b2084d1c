//! Every metric of docs/contract.md §6, owned here and nowhere else.
//!
//! Labels stay low-cardinality: event type and a fixed outcome set, never an endpoint, tenant
//! or URL.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use hookfleet_core::policy::AttemptOutcome;
use hookfleet_producer::PublishedCounter;

/// The `result` label of `hookfleet_deliveries_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryResult {
    Delivered,
    RetryScheduled,
    DeadLettered,
    Duplicate,
    /// The endpoint's payload filter did not match: not sent, no attempt.
    Filtered,
}

impl DeliveryResult {
    fn label(self) -> &'static str {
        match self {
            DeliveryResult::Delivered => "delivered",
            DeliveryResult::RetryScheduled => "retry_scheduled",
            DeliveryResult::DeadLettered => "dead_lettered",
            DeliveryResult::Duplicate => "duplicate",
            DeliveryResult::Filtered => "filtered",
        }
    }
}

/// The `reason` label of `hookfleet_deliveries_deferred_total`: why a delivery waits in a
/// deferral tier without using an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeferReason {
    /// The endpoint already has `HOOKFLEET_ENDPOINT_CONCURRENCY` deliveries in flight here.
    EndpointBusy,
    /// The endpoint's circuit is open (or half-open with a probe in flight).
    CircuitOpen,
    /// The endpoint asked for a pause with `Retry-After`.
    RetryAfter,
    /// Every turn of the endpoint's `rate_limit` within the horizon is taken.
    RateLimit,
}

impl DeferReason {
    fn label(self) -> &'static str {
        match self {
            DeferReason::EndpointBusy => "endpoint_busy",
            DeferReason::CircuitOpen => "circuit_open",
            DeferReason::RetryAfter => "retry_after",
            DeferReason::RateLimit => "rate_limit",
        }
    }
}

/// The `to` label of `hookfleet_circuit_transitions_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitTo {
    Open,
    HalfOpen,
    Closed,
}

impl CircuitTo {
    fn label(self) -> &'static str {
        match self {
            CircuitTo::Open => "open",
            CircuitTo::HalfOpen => "half_open",
            CircuitTo::Closed => "closed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    events_received: IntCounterVec,
    attempts: IntCounterVec,
    deliveries: IntCounterVec,
    duration: HistogramVec,
    lag: HistogramVec,
    inflight: IntGauge,
    /// Shared with the producer that publishes `endpoint.disabled`.
    published: PublishedCounter,
    stalls: IntCounterVec,
    deferred: IntCounterVec,
    handed_off: IntCounter,
    attempt_log_dropped: IntCounter,
    history_dropped: IntCounter,
    circuit_transitions: IntCounterVec,
    circuit_open: IntGauge,
    ordered_backlog: IntGaugeVec,
    /// Each event type's series of a healthy delivery, looked up once per event.
    series: Arc<RwLock<HashMap<String, Arc<Series>>>>,
}

/// The series a healthy delivery of one event type counts in, resolved once per event instead
/// of one label lookup per count. Event types come from the catalog: their number is bounded.
#[derive(Debug)]
pub struct Series {
    received: IntCounter,
    succeeded: IntCounter,
    delivered: IntCounter,
    duration: Histogram,
    lag: Histogram,
    /// For the outcomes of an attempt other than success.
    attempts: IntCounterVec,
    event_type: String,
}

impl Series {
    pub fn received(&self) {
        self.received.inc();
    }

    pub fn attempt(&self, outcome: &AttemptOutcome, seconds: f64) {
        match outcome.label() {
            "success" => self.succeeded.inc(),
            other => self
                .attempts
                .with_label_values(&[self.event_type.as_str(), other])
                .inc(),
        }
        self.duration.observe(seconds);
    }

    /// A 2xx recorded, `lag` seconds after the event happened.
    pub fn delivered(&self, lag: Option<f64>) {
        self.delivered.inc();
        if let Some(lag) = lag {
            self.lag.observe(lag.max(0.0));
        }
    }
}

impl Metrics {
    /// The series of `event_type`.
    pub fn series(&self, event_type: &str) -> Arc<Series> {
        let known = self.series.read().unwrap_or_else(|p| p.into_inner());
        if let Some(series) = known.get(event_type) {
            return series.clone();
        }
        drop(known);
        let series = Arc::new(Series {
            received: self.events_received.with_label_values(&[event_type]),
            succeeded: (self.attempts).with_label_values(&[event_type, "success"]),
            delivered: (self.deliveries)
                .with_label_values(&[event_type, DeliveryResult::Delivered.label()]),
            duration: self.duration.with_label_values(&[event_type]),
            lag: self.lag.with_label_values(&[event_type]),
            attempts: self.attempts.clone(),
            event_type: event_type.to_owned(),
        });
        let mut known = self.series.write().unwrap_or_else(|p| p.into_inner());
        known.insert(event_type.to_owned(), series.clone());
        series
    }

    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            let h = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(buckets),
                &["event_type"],
            )
            .expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("unique metric");
            h
        };
        let events_received = counter(
            "hookfleet_events_received_total",
            "Events taken from the work queues (retries not counted).",
            &["event_type"],
        );
        let attempts = counter(
            "hookfleet_delivery_attempts_total",
            "HTTP delivery attempts by outcome.",
            &["event_type", "outcome"],
        );
        let deliveries = counter(
            "hookfleet_deliveries_total",
            "What became of each (event, endpoint) handled.",
            &["event_type", "result"],
        );
        let published = PublishedCounter::register(&registry).expect("unique metric");
        let stalls = counter(
            "hookfleet_consumer_restarts_total",
            "Consumers restarted after a stall, a broker cancel or a lost connection.",
            &["reason"],
        );
        let deferred = counter(
            "hookfleet_deliveries_deferred_total",
            "Deliveries sent to a deferral tier without an HTTP call or an attempt used.",
            &["reason"],
        );
        let handed_off = IntCounter::new(
            "hookfleet_deliveries_handed_off_total",
            "Deliveries whose retry was published while their attempt went on, so that their \
             message could be acked: finished messages waited behind them.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(handed_off.clone()))
            .expect("unique metric");
        let attempt_log_dropped = IntCounter::new(
            "hookfleet_attempt_log_dropped_total",
            "Attempt log entries dropped because Redis did not take them in time.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(attempt_log_dropped.clone()))
            .expect("unique metric");
        let history_dropped = IntCounter::new(
            "hookfleet_history_dropped_total",
            "Events and attempts not recorded in the history because PostgreSQL did not take them in time.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(history_dropped.clone()))
            .expect("unique metric");
        let circuit_transitions = counter(
            "hookfleet_circuit_transitions_total",
            "Circuit breaker transitions made by this worker.",
            &["to"],
        );
        let duration = histogram(
            "hookfleet_delivery_duration_seconds",
            "Duration of one HTTP delivery attempt.",
            vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ],
        );
        let lag = histogram(
            "hookfleet_event_lag_seconds",
            "From the event's timestamp to the endpoint's 2xx.",
            vec![
                0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0,
            ],
        );
        let inflight = IntGauge::new(
            "hookfleet_inflight_deliveries",
            "HTTP attempts in flight now.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(inflight.clone()))
            .expect("unique metric");
        let circuit_open = IntGauge::new(
            "hookfleet_circuit_open_endpoints",
            "Endpoints whose circuit this worker last saw open or half-open.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(circuit_open.clone()))
            .expect("unique metric");
        let ordered_backlog = IntGaugeVec::new(
            Opts::new(
                "hookfleet_ordered_backlog",
                "Fleet-wide, as this worker last read it: events waiting at ordered endpoints (what=events) and ordered endpoints with events waiting (what=endpoints). Every worker reports the same figure: read it with max().",
            ),
            &["what"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(ordered_backlog.clone()))
            .expect("unique metric");
        Self {
            registry,
            events_received,
            attempts,
            deliveries,
            duration,
            lag,
            inflight,
            published,
            stalls,
            deferred,
            handed_off,
            attempt_log_dropped,
            history_dropped,
            circuit_transitions,
            circuit_open,
            ordered_backlog,
            series: Arc::default(),
        }
    }

    pub fn deferred(&self, reason: DeferReason) {
        self.deferred.with_label_values(&[reason.label()]).inc();
    }

    pub fn handed_off(&self) {
        self.handed_off.inc();
    }

    /// What the history recorder counts its drops with.
    pub fn history_dropped(&self) -> IntCounter {
        self.history_dropped.clone()
    }

    pub fn attempt_log_dropped(&self, entries: usize) {
        self.attempt_log_dropped.inc_by(entries as u64);
    }

    pub fn circuit_transition(&self, to: CircuitTo) {
        self.circuit_transitions
            .with_label_values(&[to.label()])
            .inc();
    }

    /// The ordered endpoints' backlog, fleet-wide: events, and endpoints with some.
    pub fn set_ordered_backlog(&self, events: u64, endpoints: u64) {
        let set = |what: &str, n: u64| {
            let gauge = self.ordered_backlog.with_label_values(&[what]);
            gauge.set(i64::try_from(n).unwrap_or(i64::MAX));
        };
        set("events", events);
        set("endpoints", endpoints);
    }

    pub fn set_circuit_open(&self, endpoints: usize) {
        self.circuit_open.set(endpoints as i64);
    }

    pub fn delivery(&self, event_type: &str, result: DeliveryResult) {
        self.deliveries
            .with_label_values(&[event_type, result.label()])
            .inc();
    }

    /// The counter of `hookfleet_published_total`, for this process's publisher.
    pub fn published(&self) -> PublishedCounter {
        self.published.clone()
    }

    pub fn consumer_restart(&self, reason: &str) {
        self.stalls.with_label_values(&[reason]).inc();
    }

    /// Counts an HTTP attempt in flight until the guard drops.
    pub fn inflight(&self) -> InflightGuard {
        self.inflight.inc();
        InflightGuard(self.inflight.clone())
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding gathered families into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug)]
pub struct InflightGuard(IntGauge);

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_contract_names() {
        let m = Metrics::new();
        let blocked = m.series("log.blocked");
        blocked.received();
        blocked.attempt(&AttemptOutcome::Timeout, 0.1);
        blocked.delivered(Some(0.2));
        let series = m.series("log.failed");
        series.received();
        series.attempt(
            &AttemptOutcome::Status {
                code: 200,
                retry_after: None,
            },
            0.1,
        );
        series.delivered(Some(0.3));

        drop(m.inflight());
        m.deferred(DeferReason::CircuitOpen);
        m.circuit_transition(CircuitTo::HalfOpen);
        m.set_circuit_open(2);
        let text = m.render();
        for name in [
            "hookfleet_events_received_total{event_type=\"log.blocked\"} 1",
            "hookfleet_delivery_attempts_total{event_type=\"log.blocked\",outcome=\"timeout\"} 1",
            "hookfleet_deliveries_total{event_type=\"log.blocked\",result=\"delivered\"} 1",
            "hookfleet_delivery_duration_seconds_bucket",
            "hookfleet_event_lag_seconds_bucket",
            "hookfleet_inflight_deliveries 0",
            "hookfleet_deliveries_deferred_total{reason=\"circuit_open\"} 1",
            "hookfleet_circuit_transitions_total{to=\"half_open\"} 1",
            "hookfleet_circuit_open_endpoints 2",
            "hookfleet_events_received_total{event_type=\"log.failed\"} 1",
            "hookfleet_delivery_attempts_total{event_type=\"log.failed\",outcome=\"success\"} 1",
            "hookfleet_deliveries_total{event_type=\"log.failed\",result=\"delivered\"} 1",
            "hookfleet_event_lag_seconds_count{event_type=\"log.failed\"} 1",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
    }
}
