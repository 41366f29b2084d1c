//! `hookfleet dead-letters list|replay` (the same operations as the API's).

use std::process::ExitCode;

use clap::Subcommand;
use hookfleet_admin::input::ReplayRequest;
use hookfleet_admin::{Scope, TenantLimits};
use hookfleet_amqp::Broker;

use super::print_json;
use crate::settings::{Catalog, Common, Delivery, from_env};

#[derive(Debug, Subcommand)]
pub enum DeadLettersCommand {
    /// Print dead letters as JSON lines (oldest first), leaving the queue as it is.
    List {
        /// How many (at most 1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Send dead letters back for delivery with a fresh attempt count; each is removed from the
    /// dead-letter queue only once the broker confirmed its way back.
    Replay {
        /// Only the dead letters of this endpoint.
        #[arg(long)]
        endpoint: Option<String>,
        #[arg(long)]
        limit: Option<usize>,
    },
}

pub async fn run(common: &Common, command: DeadLettersCommand) -> anyhow::Result<ExitCode> {
    let broker = Broker::connect(common.amqp_url.expose()).await?;
    let admin = super::admin(
        common,
        broker,
        &from_env::<Catalog>()?,
        &from_env::<Delivery>()?,
        TenantLimits::default(),
    )?;
    let scope = &Scope::Operator;
    let done = match command {
        DeadLettersCommand::List { limit } => match admin.dead_letters(scope, limit).await {
            Ok(letters) => letters.iter().try_for_each(print_json),
            Err(e) => Err(e.into()),
        },
        DeadLettersCommand::Replay { endpoint, limit } => {
            let request = ReplayRequest { endpoint, limit };
            match admin.replay(scope, request).await {
                Ok(report) => print_json(&report),
                Err(e) => Err(e.into()),
            }
        }
    };
    admin.broker().close().await;
    done?;
    Ok(ExitCode::SUCCESS)
}
