//! `hookfleet api`: the admin HTTP API until SIGTERM or SIGINT.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use hookfleet_admin::TenantLimits;
use hookfleet_amqp::Broker;
use hookfleet_api::auth::Auth;
use hookfleet_api::metrics::ApiMetrics;
use hookfleet_api::tokens::TokenKey;
use hookfleet_api::{AppSettings, ServerLimits};
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
    let audience = common.namespace.as_str();
    let token_key = |derived: &dyn Fn() -> TokenKey| {
        api.token_key.as_ref().map_or_else(derived, |key| {
            TokenKey::new(key.expose().as_bytes().to_vec(), audience)
        })
    };
    let auth = match (&api.api_token, api.insecure_no_auth) {
        (Some(token), _) => Auth::new(
            Some(token.expose()),
            token_key(&|| TokenKey::derived_from(token.expose(), audience)),
        ),
        (None, true) if !api.api_addr.ip().is_loopback() => {
            eprintln!(
                "error: --insecure-no-auth serves the API to anyone who reaches it: it only listens on a loopback address, not {} (HOOKFLEET_API_ADDR; set HOOKFLEET_API_TOKEN to serve other addresses)",
                api.api_addr
            );
            return Ok(ExitCode::from(2));
        }
        (None, true) => {
            tracing::warn!(
                message = "Serving the admin API WITHOUT authentication (--insecure-no-auth): anyone who reaches it is the operator. Local development only."
            );
            Auth::new(None, token_key(&|| TokenKey::random(audience)))
        }
        (None, false) => {
            eprintln!(
                "error: HOOKFLEET_API_TOKEN is not set: the admin API refuses to start without it (setting HOOKFLEET_API_TOKEN; --insecure-no-auth for local development)"
            );
            return Ok(ExitCode::from(2));
        }
    };
    common.warn_if_secrets_unsealed();
    // The API publishes: the exchanges must exist, as a worker would declare them.
    let broker = Broker::connect(common.amqp_url.expose()).await?;
    args.catalog
        .topology(&common.namespace)
        .declare(&broker.channel().await?)
        .await?;
    let limits = TenantLimits {
        max_endpoints: Some(api.max_endpoints_per_tenant),
        tests_per_minute: Some(api.test_rate),
    };
    let admin = super::admin(
        common,
        broker.clone(),
        &args.catalog,
        &args.delivery,
        limits,
    )?;
    if !admin.redis_ready().await {
        anyhow::bail!("Redis does not answer at HOOKFLEET_REDIS_URL");
    }
    let metrics = ApiMetrics::new()?;
    let admin = admin.count_published(metrics.published.clone());
    let settings = AppSettings {
        console_frame_ancestors: api.console_frame_ancestors.clone(),
        request_timeout: api.api_request_timeout,
    };
    let app = hookfleet_api::app(Arc::new(admin), auth, metrics, &settings);
    let limits = ServerLimits {
        header_timeout: api.api_header_timeout,
        max_connections: api.api_max_connections as usize,
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    let (addr, server) = hookfleet_api::serve(api.api_addr, app, limits, shutdown)
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
