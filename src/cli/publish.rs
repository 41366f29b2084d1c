//! `hookfleet publish`: one event, confirmed by the broker (the same operation as the API's
//! `POST /v1/events`).

use std::process::ExitCode;

use clap::Args;
use hookfleet_admin::input::NewEvent;
use hookfleet_admin::{Scope, TenantLimits};
use hookfleet_amqp::Broker;

use crate::settings::{Catalog, Common, Delivery, from_env};

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The event type, e.g. log.blocked.
    #[arg(long = "type")]
    pub event_type: String,

    /// The tenant whose endpoints receive it.
    #[arg(long)]
    pub tenant: String,

    /// The event's data, as JSON; it becomes the payload's "data" field.
    #[arg(long, value_parser = parse_json)]
    pub data: serde_json::Value,

    /// The event id (default: evt_ + a new UUIDv7). Publishing the same id twice delivers once.
    #[arg(long)]
    pub id: Option<String>,

    #[command(flatten)]
    pub catalog: Catalog,
}

fn parse_json(s: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(s).map_err(|e| format!("not JSON: {e}"))
}

pub async fn run(common: &Common, args: PublishArgs) -> anyhow::Result<ExitCode> {
    // Connected now, so a wrong URL or a stopped broker is reported at once rather than
    // retried for the publisher's patience.
    let broker = Broker::connect(common.amqp_url.expose()).await?;
    let admin = super::admin(
        common,
        broker,
        &args.catalog,
        &from_env::<Delivery>()?,
        TenantLimits::default(),
    )?;
    let event = NewEvent {
        event_type: args.event_type,
        tenant: args.tenant,
        data: args.data,
        id: args.id,
    };
    let published = admin.publish(&Scope::Operator, event).await;
    admin.broker().close().await;
    let published = published?;
    if published.deprecated_since.is_some() {
        eprintln!("warning: this event type is deprecated (GET /v1/event-types says what to use)");
    }
    println!("{}", published.id);
    Ok(ExitCode::SUCCESS)
}
