//! `hookfleet publish`: one event, confirmed by the broker.

use std::process::ExitCode;

use clap::Args;
use hookfleet_core::{EventId, EventType, TenantId};
use hookfleet_producer::{Broker, OutboundEvent, Publisher};

use crate::settings::Common;

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The event type, e.g. log.blocked.
    #[arg(long = "type")]
    pub event_type: EventType,

    /// The tenant whose endpoints receive it.
    #[arg(long)]
    pub tenant: TenantId,

    /// The event's data, as JSON; it becomes the payload's "data" field.
    #[arg(long, value_parser = parse_json)]
    pub data: serde_json::Value,

    /// The event id (default: evt_ + a new UUIDv7). Publishing the same id twice delivers once.
    #[arg(long)]
    pub id: Option<EventId>,
}

fn parse_json(s: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(s).map_err(|e| format!("not JSON: {e}"))
}

pub async fn run(common: &Common, args: PublishArgs) -> anyhow::Result<ExitCode> {
    let broker = Broker::connect(common.amqp_url.expose()).await?;
    let publisher = Publisher::new(broker.clone(), common.namespace.clone());
    let event = OutboundEvent::new(args.event_type, args.tenant, &args.data, args.id);
    publisher.publish(&event).await?;
    broker.close().await;
    println!("{}", event.id);
    Ok(ExitCode::SUCCESS)
}
