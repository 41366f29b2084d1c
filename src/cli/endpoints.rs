//! `hookfleet endpoints …`: manage endpoints in Redis (JSON out), and send a test delivery.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Args, Subcommand};
use hookfleet_core::{Endpoint, EndpointId, EventFilter, EventId, EventType, Secret, TenantId};
use hookfleet_store::EndpointStore;
use hookfleet_worker::guard;
use hookfleet_worker::sender::Sender;

use super::print_json;
use crate::settings::{Catalog, Common, Delivery};

#[derive(Debug, Subcommand)]
pub enum EndpointsCommand {
    /// Add an endpoint; prints it with its id and its secret in full.
    Add(AddArgs),
    /// List endpoints, all or one tenant's; secrets are shown as whsec_*** unless --reveal.
    List {
        #[arg(long)]
        tenant: Option<TenantId>,
        /// Print the signing secrets in full.
        #[arg(long)]
        reveal: bool,
    },
    /// Print one endpoint; its secret is shown as whsec_*** unless --reveal.
    Get {
        id: EndpointId,
        /// Print the signing secret in full.
        #[arg(long)]
        reveal: bool,
    },
    /// Remove an endpoint; prints what was removed.
    Remove { id: EndpointId },
    /// Resume deliveries to an endpoint.
    Enable { id: EndpointId },
    /// Stop deliveries to an endpoint (pending retries to it are dropped).
    Disable { id: EndpointId },
    /// Send one signed webhook.test delivery now; prints status and latency.
    Test {
        id: EndpointId,
        #[command(flatten)]
        delivery: Delivery,
    },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    #[arg(long)]
    pub tenant: TenantId,
    /// Where to POST: http or https with a host.
    #[arg(long)]
    pub url: String,
    /// Comma-separated event types, or * for all.
    #[arg(long, value_parser = |s: &str| EventFilter::parse_list(s).map_err(|e| e.to_string()))]
    pub events: EventFilter,
    /// whsec_ + base64 of 24-64 bytes; generated when not given.
    #[arg(long)]
    pub secret: Option<Secret>,
    #[arg(long, default_value = "")]
    pub description: String,
    #[command(flatten)]
    pub catalog: Catalog,
    #[command(flatten)]
    pub delivery: Delivery,
}

pub async fn run(common: &Common, command: EndpointsCommand) -> anyhow::Result<ExitCode> {
    let pool = hookfleet_store::connect(common.redis_url.expose())?;
    hookfleet_store::ping(&pool)
        .await
        .context("Redis does not answer")?;
    let store = EndpointStore::new(pool, &common.namespace);
    match command {
        EndpointsCommand::Add(args) => print_json(&add(&store, args).await?)?,
        EndpointsCommand::List { tenant, reveal } => {
            let endpoints = store.list(tenant.as_ref()).await?;
            let shown: Vec<_> = endpoints.iter().map(|e| shown(e, reveal)).collect();
            print_json(&shown)?
        }
        EndpointsCommand::Get { id, reveal } => print_json(&shown(&store.get(&id).await?, reveal))?,
        EndpointsCommand::Remove { id } => print_json(&shown(&store.remove(&id).await?, false))?,
        EndpointsCommand::Enable { id } => {
            print_json(&shown(&store.set_enabled(&id, true).await?, false))?
        }
        EndpointsCommand::Disable { id } => {
            print_json(&shown(&store.set_enabled(&id, false).await?, false))?
        }
        EndpointsCommand::Test { id, delivery } => {
            let endpoint = store.get(&id).await?;
            let report = test(&endpoint, &delivery).await?;
            print_json(&report)?;
            if !report.delivered {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What a secret looks like when it is not revealed.
const MASKED_SECRET: &str = "whsec_***";

/// An endpoint as printed: the secret masked unless `reveal`, so that listing endpoints on a
/// shared terminal or into a log does not hand out every signing key. `add` prints it in
/// full once (the operator needs it to configure the receiver), and `get --reveal` again.
fn shown(endpoint: &Endpoint, reveal: bool) -> serde_json::Value {
    let mut value = serde_json::to_value(endpoint).unwrap_or_default();
    if !reveal && let Some(secret) = value.get_mut("secret") {
        *secret = MASKED_SECRET.into();
    }
    value
}

async fn add(store: &EndpointStore, args: AddArgs) -> anyhow::Result<Endpoint> {
    let unknown = args.events.unknown_in(&args.catalog.event_types.0);
    if !unknown.is_empty() {
        let names: Vec<&str> = unknown.iter().map(|t| t.as_str()).collect();
        bail!(
            "--events names types not in the catalog (HOOKFLEET_EVENT_TYPES): {}",
            names.join(", ")
        );
    }
    let endpoint = Endpoint::new(
        args.tenant,
        &args.url,
        args.events,
        args.secret,
        args.description,
    )?;
    if !args.delivery.allow_private_targets {
        let url = hookfleet_core::target::parse_url(&endpoint.url)?;
        guard::check_url(&url).await?;
    }
    store.put(&endpoint).await?;
    Ok(endpoint)
}

/// What `endpoints test` reports (docs/contract.md §5's shape).
#[derive(Debug, serde::Serialize)]
struct TestReport {
    delivered: bool,
    status: Option<u16>,
    latency_ms: u128,
    error: Option<String>,
}

async fn test(endpoint: &Endpoint, delivery: &Delivery) -> anyhow::Result<TestReport> {
    let sender = Sender::new(
        delivery.delivery_timeout,
        &delivery.user_agent,
        delivery.allow_private_targets,
    )?;
    let id = EventId::generate();
    let event_type: EventType = EventType::TEST.parse()?;
    let data = serde_json::json!({
        "endpoint_id": endpoint.id,
        "message": "This is a test event from hookfleet.",
    });
    let body = hookfleet_core::Envelope::to_bytes(
        &id,
        &event_type,
        time::OffsetDateTime::now_utc(),
        &data,
    );
    let started = Instant::now();
    let outcome = sender.post(endpoint, &id, Bytes::from(body)).await;
    let delivered = outcome.verdict() == hookfleet_core::policy::Verdict::Delivered;
    Ok(TestReport {
        delivered,
        status: outcome.status(),
        latency_ms: started.elapsed().as_millis(),
        error: (!delivered).then(|| outcome.describe()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_unless_revealed() {
        let endpoint = Endpoint::new(
            "acme".parse().unwrap(),
            "https://example.com/hook",
            EventFilter::parse_list("*").unwrap(),
            None,
            String::new(),
        )
        .unwrap();
        let full = endpoint.secret.expose();
        let masked = shown(&endpoint, false);
        assert_eq!(masked["secret"], MASKED_SECRET);
        assert!(!masked.to_string().contains(full));
        assert_eq!(masked["url"], "https://example.com/hook");
        assert_eq!(shown(&endpoint, true)["secret"], full);
    }
}
