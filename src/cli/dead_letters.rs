//! `hookfleet dead-letters list|replay`.

use std::process::ExitCode;

use clap::Subcommand;
use hookfleet_amqp::{Broker, ConfirmedPublisher};
use hookfleet_core::EndpointId;
use hookfleet_worker::dead_letters;

use super::print_json;
use crate::settings::Common;

#[derive(Debug, Subcommand)]
pub enum DeadLettersCommand {
    /// Print dead letters as JSON lines (oldest first), leaving the queue as it is.
    List {
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Send dead letters back for delivery with a fresh attempt count; each is removed from the
    /// dead-letter queue only once the broker confirmed its way back.
    Replay {
        /// Only the dead letters of this endpoint.
        #[arg(long)]
        endpoint: Option<EndpointId>,
        #[arg(long, default_value_t = usize::MAX, hide_default_value = true)]
        limit: usize,
    },
}

pub async fn run(common: &Common, command: DeadLettersCommand) -> anyhow::Result<ExitCode> {
    let broker = Broker::connect(common.amqp_url.expose()).await?;
    match command {
        DeadLettersCommand::List { limit } => {
            for letter in dead_letters::list(&broker, &common.namespace, limit).await? {
                print_json(&letter)?;
            }
        }
        DeadLettersCommand::Replay { endpoint, limit } => {
            let publisher = ConfirmedPublisher::new(broker.clone());
            let report = dead_letters::replay(
                &broker,
                &publisher,
                &common.namespace,
                endpoint.as_ref(),
                limit,
            )
            .await?;
            print_json(&report)?;
        }
    }
    broker.close().await;
    Ok(ExitCode::SUCCESS)
}
