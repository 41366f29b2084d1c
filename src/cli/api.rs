//! `hookfleet api`: the admin HTTP API until SIGTERM or SIGINT.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use hookfleet_amqp::Broker;
use hookfleet_api::auth::Auth;
use hookfleet_api::metrics::ApiMetrics;
use hookfleet_api::tokens::TokenKey;
use tokio_util::sync::CancellationToken;

use super::worker::cancel_on_signal;
use crate::settings::{Api, Catalog, Common, Delivery};

#[derive(Debug, Args)]
pub struct ApiArgs {
    #[command(flatten)]
    pub api: Api,
    #[command(flatten)]
    pub catalog: Catalog,
    #[command(flatten)]
    pub delivery: Delivery,
}

pub async fn run(common: &Common, args: ApiArgs) -> anyhow::Result<ExitCode> {
    let api = &args.api;
    let auth = match (&api.api_token, api.insecure_no_auth) {
        (Some(token), _) => Auth {
            operator_token: Some(token.expose().to_owned()),
            token_key: api.token_key.as_ref().map_or_else(
                || TokenKey::derived_from(token.expose()),
                |key| TokenKey::new(key.expose().as_bytes().to_vec()),
            ),
        },
        (None, true) => {
            tracing::warn!(
                message = "Serving the admin API WITHOUT authentication (--insecure-no-auth): anyone who reaches it is the operator. Local development only."
            );
            Auth {
                operator_token: None,
                token_key: api.token_key.as_ref().map_or_else(TokenKey::random, |key| {
                    TokenKey::new(key.expose().as_bytes().to_vec())
                }),
            }
        }
        (None, false) => {
            eprintln!(
                "error: HOOKFLEET_API_TOKEN is not set: the admin API refuses to start without it (setting HOOKFLEET_API_TOKEN; --insecure-no-auth for local development)"
            );
            return Ok(ExitCode::from(2));
        }
    };
    // The API publishes: the exchanges must exist, as a worker would declare them.
    let broker = Broker::connect(common.amqp_url.expose()).await?;
    args.catalog
        .topology(&common.namespace)
        .declare(&broker.channel().await?)
        .await?;
    let admin = super::admin(
        common,
        broker.clone(),
        &args.catalog,
        &args.delivery,
        api.max_endpoints_per_tenant,
    )?;
    if !admin.redis_ready().await {
        anyhow::bail!("Redis does not answer at HOOKFLEET_REDIS_URL");
    }
    let metrics = ApiMetrics::new()?;
    let admin = admin.count_published(metrics.published.clone());
    let app = hookfleet_api::app(Arc::new(admin), auth, metrics);
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    let (addr, server) = hookfleet_api::serve(api.api_addr, app, shutdown)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {} (HOOKFLEET_API_ADDR): {e}",
                api.api_addr
            )
        })?;
    tracing::info!(message = "Admin API listening.", %addr);
    server.await??;
    broker.close().await;
    Ok(ExitCode::SUCCESS)
}
