//! `hookfleet demo`: the whole flow in one command, against the local RabbitMQ and Redis.
//!
//! In a fresh namespace it runs a worker and a receiver in this process, registers an endpoint,
//! publishes one event of each of the five seed types, and prints each arrival as it happens.
//! The receiver refuses `log.failed` twice (503), so the retry tiers show; every signature is
//! checked with the endpoint's secret. Then a table from the attempt log, clean-up of the
//! namespace (queues, exchanges, Redis keys), and exit 0 when everything was delivered. With
//! `HOOKFLEET_DATABASE_URL`, the demo also records a message history (in a schema of its own,
//! dropped at the end), reads its table from there and searches it as the API does.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use clap::Args;
use hookfleet_admin::Scope;
use hookfleet_admin::input::{NewEndpoint, NewEvent};
use hookfleet_amqp::Broker;
use hookfleet_core::policy::RetrySchedule;
use hookfleet_core::{Namespace, Secret};
use hookfleet_worker::WorkerConfig;
use tokio_util::sync::CancellationToken;

use crate::settings::{Catalog, Common, Delivery, Worker, from_env};

/// The five event types of the seed, one event each.
const SEED_TYPES: [&str; 5] = [
    "log.blocked",
    "log.pending_approval",
    "log.failed",
    "approval.approved",
    "approval.rejected",
];
/// The type the demo receiver refuses twice before accepting.
const FLAKY_TYPE: &str = "log.failed";
const FLAKY_REFUSALS: usize = 2;
/// Short retry waits, so the retries show within seconds.
const DEMO_RETRY_DELAYS: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(2)];

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Give up (exit 1) if not everything is delivered by then.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    pub timeout: Duration,
}

pub async fn run(common: &Common, args: DemoArgs) -> anyhow::Result<ExitCode> {
    let namespace: Namespace = format!("demo_{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
        .parse()
        .context("a demo namespace")?;
    let redis = hookfleet_store::connect(common.redis_url.expose())?;
    hookfleet_store::ping(&redis)
        .await
        .context("Redis does not answer at HOOKFLEET_REDIS_URL (scripts/services.sh starts it)")?;
    let broker = Broker::connect(common.amqp_url.expose()).await.context(
        "RabbitMQ does not answer at HOOKFLEET_AMQP_URL (scripts/services.sh starts it)",
    )?;
    let config = worker_config(common, &namespace)?;
    let topology = config.topology();
    println!("hookfleet demo in namespace {namespace} (removed at the end)");
    topology.declare(&broker.channel().await?).await?;
    let history = match &common.database_url {
        Some(url) => Some(migrate(url.expose(), &namespace).await?),
        None => None,
    };

    let outcome = demo(common, &namespace, config, &args, broker.clone()).await;

    if let Some(client) = history
        && let Err(error) = hookfleet_history::schema::drop_schema(&client, &namespace).await
    {
        eprintln!("warning: could not drop the demo's history schema: {error:#}");
    }
    // Clean up whatever happened.
    if let Err(error) = topology.delete(&broker).await {
        eprintln!("warning: could not delete the demo's queues and exchanges: {error:#}");
    }
    if let Err(error) = hookfleet_store::purge(&redis, &namespace).await {
        eprintln!("warning: could not delete the demo's Redis keys: {error:#}");
    }
    broker.close().await;
    println!("cleaned up namespace {namespace}");
    match outcome {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(error) => {
            eprintln!("error: {error:#}");
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn demo(
    common: &Common,
    namespace: &Namespace,
    config: WorkerConfig,
    args: &DemoArgs,
    broker: Broker,
) -> anyhow::Result<()> {
    // The receiver's port first: the endpoint needs its URL, the receiver the endpoint's secret.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let common = Common {
        namespace: namespace.clone(),
        ..common.clone()
    };
    let mut delivery: Delivery = from_env()?;
    delivery.allow_private_targets = true;
    let limits = hookfleet_admin::TenantLimits::default();
    let admin = super::admin(&common, broker, &from_env::<Catalog>()?, &delivery, limits)?;
    let endpoint = admin
        .create_endpoint(
            &Scope::Operator,
            NewEndpoint {
                tenant: Some("demo".into()),
                url: format!("http://{addr}/webhooks"),
                events: vec!["*".into()],
                secret: None,
                description: Some("hookfleet demo receiver".into()),
                ..NewEndpoint::default()
            },
        )
        .await?;
    let secret: Secret = endpoint
        .secret
        .as_deref()
        .unwrap_or_default()
        .parse()
        .context("the new endpoint's secret")?;
    println!(
        "endpoint {} → http://{addr}/webhooks (all event types)",
        endpoint.id
    );

    let receiver = Receiver::new(secret);
    let shutdown = CancellationToken::new();
    let server = {
        let app = Router::new()
            .route("/webhooks", axum::routing::post(receive))
            .with_state(receiver.clone());
        let stop = shutdown.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        })
    };
    let worker = tokio::spawn(hookfleet_worker::run(config, shutdown.clone()));

    println!(
        "publishing one event of each seed type; the receiver refuses {FLAKY_TYPE} {FLAKY_REFUSALS} times\n"
    );
    println!(
        "  {:>7}  {:<22} {:>7}  answer",
        "time", "event type", "attempt"
    );
    let mut ids = Vec::new();
    for event_type in SEED_TYPES {
        let published = admin
            .publish(
                &Scope::Operator,
                NewEvent {
                    event_type: event_type.into(),
                    tenant: "demo".into(),
                    data: serde_json::json!({"agent": "agent-7", "demo": true}),
                    id: None,
                },
            )
            .await?;
        ids.push(published.id);
    }

    let deadline = Instant::now() + args.timeout;
    while receiver.delivered() < ids.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let complete = receiver.delivered() == ids.len();
    // A graceful stop finishes what the worker holds, attempt log entries included.
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), worker).await;
    let _ = server.await;

    println!();
    summary(&admin, &endpoint.id).await?;
    if common.database_url.is_some() {
        searched(&admin).await?;
    }
    if !complete {
        anyhow::bail!(
            "only {} of {} events were delivered within {:?}",
            receiver.delivered(),
            ids.len(),
            args.timeout
        );
    }
    if !receiver.signatures_ok() {
        anyhow::bail!("a delivery's signature did not verify with the endpoint's secret");
    }
    println!(
        "\nall {} events delivered, every signature verified",
        ids.len()
    );
    Ok(())
}

/// The worker's settings: the environment's and the defaults, in the demo's namespace, with
/// short retry waits, loopback targets allowed and the probes on a free port.
fn worker_config(common: &Common, namespace: &Namespace) -> anyhow::Result<WorkerConfig> {
    let catalog: Catalog = from_env()?;
    let delivery: Delivery = from_env()?;
    let worker: Worker = from_env()?;
    Ok(WorkerConfig {
        amqp_url: common.amqp_url.expose().to_owned(),
        redis_url: common.redis_url.expose().to_owned(),
        namespace: namespace.clone(),
        queue_type: catalog.queue_type,
        event_types: catalog.event_types.0,
        operator_tenant: common.operator_tenant.clone(),
        max_inflight: worker.max_inflight as usize,
        max_inflight_bytes: worker.max_inflight_bytes,
        endpoint_concurrency: delivery.endpoint_concurrency as usize,
        circuit_threshold: worker.circuit_threshold,
        circuit_cooldown: worker.circuit_cooldown,
        disable_after: worker.disable_after,
        delivery_timeout: delivery.delivery_timeout,
        retry: RetrySchedule::new(DEMO_RETRY_DELAYS.to_vec()),
        dedup_ttl: worker.dedup_ttl,
        user_agent: delivery.user_agent,
        allow_private_targets: true,
        allowed_ports: delivery.allowed_ports.clone(),
        metrics_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        endpoint_cache_ttl: Duration::ZERO,
        stall_timeout: worker.stall_timeout,
        attempt_log_len: delivery.attempt_log_len as usize,
        keyring: common.keyring(),
        history: (common.database_url.as_ref()).map(|url| {
            hookfleet_history::HistoryConfig::reader(url.expose().to_owned(), namespace.clone())
        }),
        ordered_backlog: worker.ordered_backlog as usize,
    })
}

/// The demo's history tables, made in its namespace's own schema.
async fn migrate(url: &str, namespace: &Namespace) -> anyhow::Result<tokio_postgres::Client> {
    let mut client = hookfleet_history::connect(url)
        .await
        .context("PostgreSQL does not answer at HOOKFLEET_DATABASE_URL")?;
    hookfleet_history::schema::migrate(&mut client, namespace).await?;
    println!("message history in PostgreSQL, schema \"{namespace}\" (dropped at the end)");
    Ok(client)
}

/// The history searched as the API does: what every event of the demo's tenant came to (the
/// operator tenant's `endpoint.created` is recorded too).
async fn searched(admin: &hookfleet_admin::Admin) -> anyhow::Result<()> {
    let search = hookfleet_admin::history::EventSearch {
        tenant: Some("demo"),
        ..Default::default()
    };
    let page = admin.list_events(&Scope::Operator, search).await?;
    let delivered = (page.data.iter())
        .filter(|e| e.status == hookfleet_history::view::Status::Delivered)
        .count();
    println!(
        "\nmessage history: {} events recorded, {delivered} delivered at every endpoint (GET /v1/events)",
        page.data.len()
    );
    if delivered != SEED_TYPES.len() {
        anyhow::bail!(
            "the history shows {delivered} of {} events delivered",
            SEED_TYPES.len()
        );
    }
    Ok(())
}

/// Each event's attempts, from the attempt log.
async fn summary(admin: &hookfleet_admin::Admin, endpoint: &str) -> anyhow::Result<()> {
    let attempts = admin
        .attempts(&Scope::Operator, endpoint, 100, None)
        .await?;
    let mut by_event: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for attempt in attempts.into_iter().rev() {
        by_event
            .entry(attempt.event_id.clone())
            .or_default()
            .push(attempt);
    }
    println!(
        "{:<22} {:>8}  {:<40} {:>12}",
        "event type", "attempts", "result", "last latency"
    );
    for attempts in by_event.values() {
        let Some(last) = attempts.last() else {
            continue;
        };
        let result = if last.error.is_none() {
            format!("delivered (HTTP {})", last.status.unwrap_or_default())
        } else {
            last.message.clone()
        };
        println!(
            "{:<22} {:>8}  {:<40} {:>9} ms",
            last.event_type,
            attempts.len(),
            result,
            last.latency_ms
        );
    }
    Ok(())
}

/// The demo's receiver: verifies each signature, refuses the flaky type's first attempts,
/// prints every arrival.
#[derive(Debug, Clone)]
struct Receiver {
    secret: Arc<Secret>,
    started: Instant,
    seen: Arc<Mutex<Seen>>,
}

#[derive(Debug, Default)]
struct Seen {
    arrivals: BTreeMap<String, usize>,
    delivered: HashSet<String>,
    bad_signatures: usize,
}

impl Receiver {
    fn new(secret: Secret) -> Self {
        Self {
            secret: Arc::new(secret),
            started: Instant::now(),
            seen: Arc::default(),
        }
    }

    fn delivered(&self) -> usize {
        self.lock().delivered.len()
    }

    fn signatures_ok(&self) -> bool {
        self.lock().bad_signatures == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn receive(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        (headers.get(name).and_then(|v| v.to_str().ok()))
            .unwrap_or_default()
            .to_owned()
    };
    let id = header("webhook-id");
    let timestamp: i64 = header("webhook-timestamp").parse().unwrap_or_default();
    let expected =
        hookfleet_core::signature::sign([receiver.secret.as_ref()], &id, timestamp, &body);
    let signed = header("webhook-signature")
        .split(' ')
        .any(|s| s == expected);
    let event_type = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["type"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let mut seen = receiver.lock();
    if !signed {
        seen.bad_signatures += 1;
    }
    let attempt = {
        let n = seen.arrivals.entry(id.clone()).or_default();
        *n += 1;
        *n
    };
    let (status, note) = if event_type == FLAKY_TYPE && attempt <= FLAKY_REFUSALS {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "refused on purpose; a retry follows",
        )
    } else {
        seen.delivered.insert(id);
        (StatusCode::OK, "delivered")
    };
    println!(
        "  {:>6.1}s  {:<22} {:>7}  {} {}{}",
        receiver.started.elapsed().as_secs_f64(),
        event_type,
        attempt,
        status.as_u16(),
        note,
        if signed {
            ", signature verified"
        } else {
            ", BAD SIGNATURE"
        }
    );
    status
}
