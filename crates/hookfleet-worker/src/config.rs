//! What a worker needs to run, already validated by the binary's settings.

use std::net::SocketAddr;
use std::time::Duration;

use hookfleet_amqp::{QueueType, Topology};
use hookfleet_core::Namespace;
use hookfleet_core::policy::RetrySchedule;
use hookfleet_core::target::AllowedPorts;
use hookfleet_core::{EventType, TenantId};

#[derive(Clone)]
pub struct WorkerConfig {
    pub amqp_url: String,
    pub redis_url: String,
    pub namespace: Namespace,
    pub queue_type: QueueType,
    /// The event types to declare and consume (and the operational ones, always).
    pub event_types: Vec<EventType>,
    /// The tenant hookfleet's operational events are published under
    /// (`HOOKFLEET_OPERATOR_TENANT`).
    pub operator_tenant: TenantId,
    /// Messages handled at once (`HOOKFLEET_MAX_INFLIGHT`).
    pub max_inflight: usize,
    /// Body bytes of the messages handled at once (`HOOKFLEET_MAX_INFLIGHT_BYTES`).
    pub max_inflight_bytes: usize,
    /// Deliveries in flight to one endpoint in this worker (`HOOKFLEET_ENDPOINT_CONCURRENCY`).
    pub endpoint_concurrency: usize,
    /// Failures in a row that open an endpoint's circuit (`HOOKFLEET_CIRCUIT_THRESHOLD`).
    pub circuit_threshold: u32,
    /// How long an open circuit defers before one probe (`HOOKFLEET_CIRCUIT_COOLDOWN`).
    pub circuit_cooldown: Duration,
    /// An endpoint failing without a break this long is disabled (`HOOKFLEET_DISABLE_AFTER`).
    pub disable_after: Duration,
    pub delivery_timeout: Duration,
    pub retry: RetrySchedule,
    pub dedup_ttl: Duration,
    pub user_agent: String,
    pub allow_private_targets: bool,
    /// The ports targets may use (`HOOKFLEET_ALLOWED_PORTS`).
    pub allowed_ports: AllowedPorts,
    pub metrics_addr: SocketAddr,
    /// How old a cached tenant's endpoint list may be (must stay under the contract's 2 s).
    pub endpoint_cache_ttl: Duration,
    /// How long the worker may hold messages without finishing any before it restarts its
    /// consumers.
    pub stall_timeout: Duration,
    /// Attempts kept per endpoint in the attempt log (`HOOKFLEET_ATTEMPT_LOG_LEN`; 0: none).
    pub attempt_log_len: usize,
    /// Opens endpoint secrets sealed at rest (`HOOKFLEET_SECRET_KEY`,
    /// `HOOKFLEET_SECRET_KEY_PREVIOUS`).
    pub keyring: hookfleet_store::Keyring,
    /// Where events and attempts are recorded (`HOOKFLEET_DATABASE_URL`); none without it.
    pub history: Option<hookfleet_history::HistoryConfig>,
    /// Events one ordered endpoint may have waiting (`HOOKFLEET_ORDERED_BACKLOG`).
    pub ordered_backlog: usize,
}

impl WorkerConfig {
    /// The broker topology this worker declares and consumes.
    pub fn topology(&self) -> Topology {
        Topology::new(
            self.namespace.clone(),
            self.queue_type,
            self.event_types.clone(),
            self.retry.delays().to_vec(),
        )
    }
}

impl std::fmt::Debug for WorkerConfig {
    // URLs may carry passwords: they are left out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerConfig")
            .field("namespace", &self.namespace)
            .field("queue_type", &self.queue_type)
            .field("event_types", &self.event_types)
            .field("operator_tenant", &self.operator_tenant)
            .field("max_inflight", &self.max_inflight)
            .field("max_inflight_bytes", &self.max_inflight_bytes)
            .field("endpoint_concurrency", &self.endpoint_concurrency)
            .field("circuit_threshold", &self.circuit_threshold)
            .field("circuit_cooldown", &self.circuit_cooldown)
            .field("disable_after", &self.disable_after)
            .field("delivery_timeout", &self.delivery_timeout)
            .field("retry", &self.retry)
            .field("dedup_ttl", &self.dedup_ttl)
            .field("user_agent", &self.user_agent)
            .field("attempt_log_len", &self.attempt_log_len)
            .field("allow_private_targets", &self.allow_private_targets)
            .field("allowed_ports", &self.allowed_ports)
            .field("metrics_addr", &self.metrics_addr)
            .field("endpoint_cache_ttl", &self.endpoint_cache_ttl)
            .field("stall_timeout", &self.stall_timeout)
            .field("history", &self.history)
            .field("ordered_backlog", &self.ordered_backlog)
            .finish()
    }
}
