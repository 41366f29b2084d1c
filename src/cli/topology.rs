//! `hookfleet topology`: declare every exchange and queue of the namespace.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use hookfleet_amqp::Broker;

use crate::settings::{Catalog, Common};

#[derive(Debug, Args)]
pub struct TopologyArgs {
    #[command(flatten)]
    pub catalog: Catalog,
}

pub async fn run(common: &Common, args: TopologyArgs) -> anyhow::Result<ExitCode> {
    let broker = Broker::connect(common.amqp_url.expose()).await?;
    let channel = broker.channel().await?;
    args.catalog
        .topology(&common.namespace)
        .declare(&channel)
        .await
        .context("declaring the topology failed (a queue declared earlier with other arguments? see README, Operations)")?;
    broker.close().await;
    tracing::info!(message = "Topology declared.", namespace = %common.namespace);
    Ok(ExitCode::SUCCESS)
}
