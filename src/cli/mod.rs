//! The commands of docs/contract.md §4, one module each.

mod dead_letters;
mod endpoints;
mod publish;
mod topology;
mod worker;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::settings::Common;

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
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let common = &cli.common;
    match cli.command {
        Command::Worker(args) => worker::run(common, args).await,
        Command::Publish(args) => publish::run(common, args).await,
        Command::Endpoints(command) => endpoints::run(common, command).await,
        Command::DeadLetters(command) => dead_letters::run(common, command).await,
        Command::Topology(args) => topology::run(common, args).await,
    }
}

/// Prints a value as one line of JSON on stdout.
fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}
