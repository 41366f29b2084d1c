//! hookfleet's operations: creating, changing, testing and reading endpoints, publishing events
//! and replaying dead letters, as the CLI and the admin HTTP API both do them.
//!
//! Both front doors call [`Admin`] and only translate its inputs and errors, so they cannot
//! drift apart. Every operation takes a [`Scope`]: a tenant's scope sees only that tenant's
//! endpoints, and anything else is [`Error::NotFound`], so ids do not leak across tenants.
//!
//! # Layout
//! - [`input`]: what a caller sends, checked field by field ([`FieldError`]s, all at once).
//! - [`view`]: what a caller gets back.
//! - [`endpoints`]: create, list, get, update, remove, rotate the secret, read attempts.
//! - `changes`: each endpoint change told as an operational event (`endpoint.*`).
//! - `controls`: an endpoint's headers, rate limit, in-flight cap and filter, checked.
//! - [`testing`]: "Test Webhook": one signed `webhook.test` delivery now.
//! - [`events`]: publishing, confirmed, checked against the type's schema, once per id.
//! - [`catalog`]: each event type's description, JSON Schema and example.
//! - [`history`]: the message history (PostgreSQL): search, resend, recover, statistics.
//! - [`dead_letters`]: listing and replaying (operators only).
#![forbid(unsafe_code)]

pub mod catalog;
mod changes;
mod controls;
pub mod dead_letters;
pub mod endpoints;
pub mod events;
pub mod history;
pub mod input;
pub mod testing;
pub mod view;

mod error;

use std::time::Duration;

use hookfleet_amqp::{Broker, ConfirmedPublisher};
use hookfleet_core::target::AllowedPorts;
use hookfleet_core::{EventType, Namespace, TenantId};
use hookfleet_history::{HistoryConfig, Reader};
use hookfleet_producer::Publisher;
use hookfleet_store::{
    AttemptLog, CircuitPolicy, Circuits, EndpointStore, EventTypes, Keyring, OrderedQueues,
    Publications, Redis, Resealed, Tenants,
};
use hookfleet_worker::notice::Notices;
use hookfleet_worker::sender::Sender;

pub use endpoints::{EndpointPage, Page};
pub use error::{Error, FieldError, Result};

/// How long a replaced secret keeps signing beside the new one (docs/contract.md §5).
pub const ROTATION_OVERLAP: Duration = Duration::from_secs(24 * 3600);

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The operator: every tenant, dead letters, publishing.
    Operator,
    /// One tenant: its own endpoints, their attempts and tests.
    Tenant(TenantId),
}

impl Scope {
    /// Whether this scope may see `tenant`'s things.
    pub fn sees(&self, tenant: &TenantId) -> bool {
        match self {
            Scope::Operator => true,
            Scope::Tenant(own) => own == tenant,
        }
    }

    /// The tenant a list is limited to: the one asked for, if this scope sees it (else
    /// `NotFound`), or by default a tenant's own, and none for the operator.
    pub fn tenant_filter(&self, asked: Option<&str>) -> Result<Option<TenantId>> {
        match asked {
            Some(text) => {
                let tenant = input::tenant(text).map_err(|m| Error::field("tenant", m))?;
                if !self.sees(&tenant) {
                    return Err(Error::NotFound(format!("tenant {tenant}")));
                }
                Ok(Some(tenant))
            }
            None => Ok(match self {
                Scope::Tenant(own) => Some(own.clone()),
                Scope::Operator => None,
            }),
        }
    }

    /// `Ok` for the operator; a tenant gets `NotFound`, as for anything it may not see.
    pub fn operator_only(&self, what: &str) -> Result<()> {
        match self {
            Scope::Operator => Ok(()),
            Scope::Tenant(_) => Err(Error::NotFound(what.to_owned())),
        }
    }
}

/// The settings operations depend on.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub namespace: Namespace,
    /// The event types endpoints may subscribe to and events may be published as.
    pub catalog: Vec<EventType>,
    /// The broker topology, declared before a tenant is routed to the ordered intake.
    pub topology: hookfleet_amqp::Topology,
    /// The tenant of hookfleet's operational events (`HOOKFLEET_OPERATOR_TENANT`): its
    /// endpoints subscribe to those types only, and nobody publishes to it but hookfleet.
    pub operator_tenant: TenantId,
    pub delivery_timeout: Duration,
    pub user_agent: String,
    pub allow_private_targets: bool,
    /// The ports endpoint URLs may use (`HOOKFLEET_ALLOWED_PORTS`).
    pub allowed_ports: AllowedPorts,
    /// What a tenant token may do (the API's settings); the operator's CLI has none.
    pub limits: TenantLimits,
    /// Attempts kept per endpoint (`HOOKFLEET_ATTEMPT_LOG_LEN`).
    pub attempt_log_len: usize,
    /// Each worker's cap on one endpoint's deliveries in flight
    /// (`HOOKFLEET_ENDPOINT_CONCURRENCY`): the most an endpoint's `max_in_flight` may be.
    pub endpoint_concurrency: u32,
    /// Seals and opens endpoint records (`HOOKFLEET_SECRET_KEY`, `…_PREVIOUS`).
    pub keyring: Keyring,
    /// The message history (`HOOKFLEET_DATABASE_URL`): with it, attempts are read from there.
    pub history: Option<HistoryConfig>,
}

/// Limits on what one tenant can make the fleet do.
#[derive(Debug, Clone, Copy, Default)]
pub struct TenantLimits {
    /// Endpoints one tenant may have (`HOOKFLEET_MAX_ENDPOINTS_PER_TENANT`); `None`: no limit.
    pub max_endpoints: Option<u32>,
    /// Test Webhook calls per minute and tenant for tenant tokens (`HOOKFLEET_TEST_RATE`);
    /// `None`: no limit.
    pub tests_per_minute: Option<u32>,
}

/// The operations, over one Redis handle and one broker connection.
#[derive(Debug)]
pub struct Admin {
    config: AdminConfig,
    store: EndpointStore,
    attempts: AttemptLog,
    circuits: Circuits,
    tenants: Tenants,
    /// Event ids `POST /v1/events` accepted in the last 24 h.
    publications: Publications,
    /// Each event type's description, schema and example, and the schemas compiled.
    event_types: EventTypes,
    schemas: catalog::Schemas,
    sender: Sender,
    broker: Broker,
    publisher: Publisher,
    /// Endpoint changes, told as operational events.
    notices: Notices,
    /// Ordered endpoints' queues, for their backlog.
    ordered: OrderedQueues,
    confirmed: ConfirmedPublisher,
    history: Option<Reader>,
}

/// How long telling an endpoint change keeps trying through broker trouble before it is
/// logged as lost (the change itself is made by then).
const NOTICE_PATIENCE: Duration = Duration::from_secs(10);

impl Admin {
    pub fn new(config: AdminConfig, redis: Redis, broker: Broker) -> Result<Self> {
        let ns = &config.namespace;
        let store = EndpointStore::new(redis.clone(), ns).with_keyring(config.keyring.clone());
        let sender = Sender::new(
            config.delivery_timeout,
            &config.user_agent,
            config.allow_private_targets,
            config.allowed_ports.clone(),
        )
        .map_err(|e| Error::Unavailable(format!("cannot build the HTTP client: {e}")))?;
        // Only read here: the policy matters to the workers that write the state.
        let policy = CircuitPolicy {
            threshold: 1,
            cooldown: Duration::from_secs(1),
            probe_hold: Duration::from_secs(1),
            disable_after: Duration::from_secs(1),
        };
        Ok(Self {
            attempts: AttemptLog::new(redis.clone(), ns, config.attempt_log_len),
            tenants: Tenants::new(redis.clone(), ns),
            publications: Publications::new(redis.clone(), ns),
            event_types: EventTypes::new(redis.clone(), ns),
            schemas: catalog::Schemas::default(),
            ordered: OrderedQueues::new(redis.clone(), ns),
            circuits: Circuits::new(redis, ns, policy),
            publisher: Publisher::new(broker.clone(), ns.clone()),
            notices: Notices::new(
                Publisher::new(broker.clone(), ns.clone()).give_up_after(NOTICE_PATIENCE),
                config.operator_tenant.clone(),
            ),
            confirmed: ConfirmedPublisher::new(broker.clone()),
            history: config.history.clone().map(Reader::new),
            broker,
            store,
            sender,
            config,
        })
    }

    /// Counts what [`Admin::publish`] publishes (`hookfleet_published_total`).
    pub fn count_published(mut self, counter: hookfleet_producer::PublishedCounter) -> Self {
        let new = || Publisher::new(self.broker.clone(), self.config.namespace.clone());
        self.publisher = new().with_counter(counter.clone());
        let publisher = new().give_up_after(NOTICE_PATIENCE).with_counter(counter);
        let operator = self.config.operator_tenant.clone();
        self.notices = Notices::new(publisher, operator);
        self
    }

    /// Lets the tenant's events into the ordered intake (`N.ordered`), before one of its
    /// endpoints is stored as ordered.
    async fn route_ordered(&self, tenant: &TenantId) -> Result<()> {
        let topology = &self.config.topology;
        hookfleet_worker::ordered::route_tenant(&self.broker, topology, &self.ordered, tenant)
            .await
            .map_err(|e| {
                Error::Unavailable(format!("cannot route the tenant's events in order: {e}"))
            })
    }

    pub fn config(&self) -> &AdminConfig {
        &self.config
    }

    /// The broker connection, for readiness checks.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// Refuses every token of `tenant` issued before now (operators only).
    pub async fn revoke_tokens(&self, scope: &Scope, tenant: &str) -> Result<TenantId> {
        scope.operator_only("route")?;
        let tenant = input::tenant(tenant).map_err(|m| Error::field("tenant", m))?;
        let now_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        self.tenants.revoke_tokens(&tenant, now_ms).await?;
        tracing::info!(message = "Tenant tokens revoked.", %tenant);
        Ok(tenant)
    }

    /// The moment (unix ms) before which `tenant`'s tokens are refused, if they were revoked.
    pub async fn tokens_not_before(&self, tenant: &TenantId) -> Result<Option<i64>> {
        Ok(self.tenants.tokens_not_before(tenant).await?)
    }

    /// Seals every endpoint record under the current key (`hookfleet endpoints reseal`).
    pub async fn reseal(&self) -> Result<Resealed> {
        self.store.reseal().await.map_err(|e| match e {
            hookfleet_store::Error::Config(why) => Error::field("HOOKFLEET_SECRET_KEY", why),
            other => other.into(),
        })
    }

    /// Whether Redis answers, for readiness checks.
    pub async fn redis_ready(&self) -> bool {
        self.store.ping().await.is_ok()
    }
}
