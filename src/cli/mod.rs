//! The commands of docs/contract.md §4, one module each.

mod api;
mod dead_letters;
mod demo;
mod endpoints;
mod publish;
mod topology;
mod worker;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use hookfleet_admin::{Admin, AdminConfig, TenantLimits};
use hookfleet_amqp::Broker;

use crate::settings::{Catalog, Common, Delivery};

/// hookfleet delivers webhooks: events published to RabbitMQ are POSTed, signed per the
/// Standard Webhooks specification, to every endpoint of the event's tenant that subscribes to
/// its type, with retries through delay queues and a dead-letter queue for what cannot be
/// delivered.
#[derive(Debug, Parser)]
#[command(name = "hookfleet", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Consume events and deliver them; serves /metrics, /healthz and /readyz.
    Worker(worker::WorkerArgs),
    /// Create or bring up to date the message history's tables in HOOKFLEET_DATABASE_URL
    /// (one PostgreSQL schema per namespace) and their partitions for the coming days; safe
    /// to run again and from several places.
    Migrate,
    /// Serve the admin HTTP API (endpoints, Test Webhook, attempts, events, dead letters,
    /// tenant tokens) with /openapi.json, /metrics, /healthz and /readyz.
    Api(api::ApiArgs),
    /// Publish one event, confirmed by the broker; prints its id.
    Publish(publish::PublishArgs),
    /// Add, list, change, remove and test endpoints (JSON out).
    #[command(subcommand)]
    Endpoints(endpoints::EndpointsCommand),
    /// List and replay what could not be delivered.
    #[command(subcommand, name = "dead-letters")]
    DeadLetters(dead_letters::DeadLettersCommand),
    /// Declare every exchange and queue (the worker also does this at start).
    Topology(topology::TopologyArgs),
    /// See it work: in a fresh namespace of the local RabbitMQ and Redis, run a worker and a
    /// receiver, publish the five seed event types (one fails twice, so retries show), print
    /// what happens, clean up and exit 0.
    Demo(demo::DemoArgs),
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let common = &cli.common;
    match cli.command {
        Command::Worker(args) => worker::run(common, args).await,
        Command::Migrate => migrate(common).await,
        Command::Api(args) => api::run(common, args).await,
        Command::Publish(args) => publish::run(common, args).await,
        Command::Endpoints(command) => endpoints::run(common, command).await,
        Command::DeadLetters(command) => dead_letters::run(common, command).await,
        Command::Topology(args) => topology::run(common, args).await,
        Command::Demo(args) => demo::run(common, args).await,
    }
}

/// `hookfleet migrate`: prints the versions applied, as JSON.
async fn migrate(common: &Common) -> anyhow::Result<ExitCode> {
    let Some(url) = &common.database_url else {
        eprintln!("error: HOOKFLEET_DATABASE_URL is not set: migrate needs the history's database");
        return Ok(ExitCode::from(2));
    };
    let mut client = hookfleet_history::connect(url.expose())
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to HOOKFLEET_DATABASE_URL: {e}"))?;
    let applied = hookfleet_history::schema::migrate(&mut client, &common.namespace).await?;
    print_json(&serde_json::json!({
        "namespace": common.namespace.as_str(),
        "applied": applied,
        "version": hookfleet_history::schema::VERSION,
    }))?;
    Ok(ExitCode::SUCCESS)
}

/// The operations the CLI and the API share, on `broker` and a Redis handle that connects on
/// first use.
fn admin(
    common: &Common,
    broker: Broker,
    catalog: &Catalog,
    delivery: &Delivery,
    limits: TenantLimits,
) -> anyhow::Result<Admin> {
    let redis = hookfleet_store::connect(common.redis_url.expose())?;
    let config = AdminConfig {
        namespace: common.namespace.clone(),
        catalog: catalog.event_types.0.clone(),
        topology: catalog.topology(&common.namespace),
        operator_tenant: common.operator_tenant.clone(),
        delivery_timeout: delivery.delivery_timeout,
        user_agent: delivery.user_agent.clone(),
        allow_private_targets: delivery.allow_private_targets,
        allowed_ports: delivery.allowed_ports.clone(),
        limits,
        attempt_log_len: delivery.attempt_log_len as usize,
        endpoint_concurrency: delivery.endpoint_concurrency,
        keyring: common.keyring(),
        history: (common.database_url.as_ref()).map(|url| {
            hookfleet_history::HistoryConfig::reader(
                url.expose().to_owned(),
                common.namespace.clone(),
            )
        }),
    };
    Ok(Admin::new(config, redis, broker)?)
}

/// Prints a value as one line of JSON on stdout.
fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}
