//! `hookfleet topology`: declare every exchange and queue of the namespace.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use hookfleet_producer::{Broker, Topology};

use crate::settings::{Catalog, Common};

#[derive(Debug, Args)]
pub struct TopologyArgs {
    #[command(flatten)]
    pub catalog: Catalog,
}

pub async fn run(common: &Common, args: TopologyArgs) -> anyhow::Result<ExitCode> {
    let broker = Broker::connect(&common.amqp_url).await?;
    let channel = broker.channel().await?;
    topology(common, &args.catalog)
        .declare(&channel)
        .await
        .context("declaring the topology failed (a queue declared earlier with other arguments? see README, Operations)")?;
    broker.close().await;
    tracing::info!(message = "Topology declared.", namespace = %common.namespace);
    Ok(ExitCode::SUCCESS)
}

pub fn topology(common: &Common, catalog: &Catalog) -> Topology {
    Topology {
        namespace: common.namespace.clone(),
        queue_type: catalog.queue_type,
        event_types: catalog.event_types.0.clone(),
        retry_delays: catalog.retry_delays.0.delays().to_vec(),
    }
}
