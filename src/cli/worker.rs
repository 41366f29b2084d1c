//! `hookfleet worker`: consume and deliver until SIGTERM or SIGINT.

use std::process::ExitCode;

use clap::Args;
use hookfleet_worker::WorkerConfig;
use tokio_util::sync::CancellationToken;

use crate::settings::{Catalog, Common, Delivery, History, Worker};

#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub catalog: Catalog,
    #[command(flatten)]
    pub delivery: Delivery,
    #[command(flatten)]
    pub worker: Worker,
    #[command(flatten)]
    pub history: History,
}

pub async fn run(common: &Common, args: WorkerArgs) -> anyhow::Result<ExitCode> {
    common.warn_if_secrets_unsealed();
    let config = WorkerConfig {
        amqp_url: common.amqp_url.expose().to_owned(),
        redis_url: common.redis_url.expose().to_owned(),
        namespace: common.namespace.clone(),
        queue_type: args.catalog.queue_type,
        event_types: args.catalog.event_types.0,
        operator_tenant: common.operator_tenant.clone(),
        max_inflight: args.worker.max_inflight as usize,
        max_inflight_bytes: args.worker.max_inflight_bytes,
        endpoint_concurrency: args.delivery.endpoint_concurrency as usize,
        circuit_threshold: args.worker.circuit_threshold,
        circuit_cooldown: args.worker.circuit_cooldown,
        disable_after: args.worker.disable_after,
        delivery_timeout: args.delivery.delivery_timeout,
        retry: args.catalog.retry_delays.0,
        dedup_ttl: args.worker.dedup_ttl,
        user_agent: args.delivery.user_agent,
        allow_private_targets: args.delivery.allow_private_targets,
        allowed_ports: args.delivery.allowed_ports.clone(),
        metrics_addr: args.worker.metrics_addr,
        endpoint_cache_ttl: args.worker.endpoint_cache_ttl,
        stall_timeout: args.worker.stall_timeout,
        attempt_log_len: args.delivery.attempt_log_len as usize,
        keyring: common.keyring(),
        history: args.history.config(common),
        ordered_backlog: args.worker.ordered_backlog as usize,
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    hookfleet_worker::run(config, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// SIGTERM (Kubernetes, docker stop) or SIGINT (Ctrl-C) starts a graceful stop.
pub async fn cancel_on_signal(shutdown: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = terminate => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!(message = "Signal received; stopping gracefully.");
    shutdown.cancel();
}
