//! `hookfleet endpoints …`: manage endpoints (JSON out), send a test delivery, rotate the
//! secret, read the attempt log. Every command is an [`Admin`] operation, as in the HTTP API.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use hookfleet_admin::input::{NewEndpoint, Rotation, TestRequest};
use hookfleet_admin::view::EndpointView;
use hookfleet_admin::{Admin, Page, Scope, TenantLimits};
use hookfleet_amqp::Broker;

use super::{admin, print_json};
use crate::settings::{Catalog, Common, Delivery};

#[derive(Debug, Subcommand)]
pub enum EndpointsCommand {
    /// Add an endpoint; prints it with its id and its secret in full.
    Add(Box<AddArgs>),
    /// List endpoints, all or one tenant's; secrets are shown as whsec_*** unless --reveal.
    List {
        #[arg(long)]
        tenant: Option<String>,
        /// Print the signing secrets in full.
        #[arg(long)]
        reveal: bool,
        #[command(flatten)]
        options: Options,
    },
    /// Print one endpoint; its secret is shown as whsec_*** unless --reveal.
    Get {
        id: String,
        /// Print the signing secret in full.
        #[arg(long)]
        reveal: bool,
        #[command(flatten)]
        options: Options,
    },
    /// Remove an endpoint and its attempt log; prints what was removed.
    Remove {
        id: String,
        #[command(flatten)]
        options: Options,
    },
    /// Resume deliveries to an endpoint (and reset its circuit breaker).
    Enable {
        id: String,
        #[command(flatten)]
        options: Options,
    },
    /// Stop deliveries to an endpoint (pending retries to it are dropped).
    Disable {
        id: String,
        #[command(flatten)]
        options: Options,
    },
    /// Send one signed webhook.test delivery now; prints status and latency, exits 1 if it
    /// was not delivered.
    Test {
        id: String,
        /// Send this subscribed type's example (set with PUT /v1/event-types/TYPE) instead of a
        /// webhook.test event.
        #[arg(long)]
        event_type: Option<String>,
        #[command(flatten)]
        options: Options,
    },
    /// Give the endpoint a new secret (printed once); the old one keeps signing beside it
    /// for 24 h, so receivers can switch without missing a delivery.
    RotateSecret {
        id: String,
        /// The new secret (whsec_ + base64 of 24-64 bytes, or whsk_ + base64 of an Ed25519 key:
        /// a rotation may change the scheme); one of the current scheme is generated when not
        /// given.
        #[arg(long)]
        secret: Option<String>,
        #[command(flatten)]
        options: Options,
    },
    /// Seal every endpoint record under HOOKFLEET_SECRET_KEY: plain-text secrets, URLs with
    /// credentials, and records sealed by a key now in HOOKFLEET_SECRET_KEY_PREVIOUS. Prints
    /// the counts; safe to stop and run again (records done are skipped).
    Reseal {
        #[command(flatten)]
        options: Options,
    },
    /// Print the endpoint's most recent attempts, newest first, as JSON lines.
    Attempts {
        id: String,
        /// How many (at most 1000).
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Only attempts older than this attempt id (to page back).
        #[arg(long)]
        before: Option<String>,
        #[command(flatten)]
        options: Options,
    },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    #[arg(long)]
    pub tenant: String,
    /// Where to POST: http or https with a host.
    #[arg(long)]
    pub url: String,
    /// Comma-separated event types, or * for all.
    #[arg(long)]
    pub events: String,
    /// whsec_ + base64 of 24-64 bytes, or whsk_ + base64 of a 32-byte Ed25519 key; generated
    /// when not given.
    #[arg(long)]
    pub secret: Option<String>,
    /// How deliveries are signed: hmac-sha256 (Standard Webhooks v1, a shared secret) or
    /// ed25519 (v1a: receivers verify with the endpoint's public_key, whpk_...).
    #[arg(long, value_name = "SCHEME")]
    pub signature: Option<String>,
    #[arg(long, default_value = "")]
    pub description: String,
    /// A header sent with every delivery, as "Name: value" (repeat for more; at most 20).
    #[arg(long = "header", value_name = "NAME: VALUE", value_parser = header)]
    pub headers: Vec<(String, String)>,
    /// A header named in --header whose value is sealed at rest and shown as ******** (repeat
    /// for more).
    #[arg(long = "sensitive-header", value_name = "NAME")]
    pub sensitive_headers: Vec<String>,
    /// Deliveries a second to this endpoint across the whole fleet (1-10000); more wait their
    /// turn, without using an attempt.
    #[arg(long, value_name = "PER_SECOND")]
    pub rate_limit: Option<i64>,
    /// Deliveries in flight to this endpoint at once, per worker (at most
    /// HOOKFLEET_ENDPOINT_CONCURRENCY).
    #[arg(long, value_name = "N")]
    pub max_in_flight: Option<i64>,
    /// Only events whose data matches this JSON predicate are sent, e.g.
    /// '{"severity": {"$in": ["high", "critical"]}}' (operators: docs/contract.md §2).
    #[arg(long, value_name = "JSON", value_parser = json_value)]
    pub filter: Option<serde_json::Value>,
    /// Deliver this endpoint's events one at a time, in the order the broker accepted them,
    /// across event types; a failed one holds back the rest until it is delivered or given up
    /// (docs/ordered.md).
    #[arg(long)]
    pub ordered: bool,
    #[command(flatten)]
    pub options: Options,
}

fn json_value(text: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))
}

/// `Name: value`, as curl takes a header.
fn header(text: &str) -> Result<(String, String), String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?}: expected \"Name: value\""))?;
    Ok((name.trim().to_owned(), value.trim().to_owned()))
}

/// What the operations behind every endpoints command need.
#[derive(Debug, Args)]
pub struct Options {
    #[command(flatten)]
    pub catalog: Catalog,
    #[command(flatten)]
    pub delivery: Delivery,
}

pub async fn run(common: &Common, command: EndpointsCommand) -> anyhow::Result<ExitCode> {
    let scope = &Scope::Operator;
    match command {
        EndpointsCommand::Add(args) => {
            let admin = connect(common, &args.options).await?;
            let new = NewEndpoint {
                tenant: Some(args.tenant),
                url: args.url,
                events: split(&args.events),
                secret: args.secret,
                signature: args.signature,
                description: Some(args.description),
                headers: Some(args.headers.into_iter().collect()),
                sensitive_headers: Some(args.sensitive_headers),
                rate_limit: args.rate_limit,
                max_in_flight: args.max_in_flight,
                filter: args.filter,
                ordered: Some(args.ordered),
            };
            print_json(&shown(admin.create_endpoint(scope, new).await?, true))?;
        }
        EndpointsCommand::List {
            tenant,
            reveal,
            options,
        } => {
            let admin = connect(common, &options).await?;
            let listed = admin
                .list_endpoints(scope, tenant.as_deref(), reveal, Page::ALL)
                .await?;
            let shown: Vec<_> = listed.data.into_iter().map(|v| shown(v, reveal)).collect();
            print_json(&shown)?
        }
        EndpointsCommand::Get {
            id,
            reveal,
            options,
        } => {
            let admin = connect(common, &options).await?;
            print_json(&shown(
                admin.get_endpoint(scope, &id, reveal).await?,
                reveal,
            ))?
        }
        EndpointsCommand::Remove { id, options } => {
            let admin = connect(common, &options).await?;
            print_json(&shown(admin.remove_endpoint(scope, &id).await?, false))?
        }
        EndpointsCommand::Enable { id, options } => {
            let admin = connect(common, &options).await?;
            print_json(&shown(admin.set_enabled(scope, &id, true).await?, false))?
        }
        EndpointsCommand::Disable { id, options } => {
            let admin = connect(common, &options).await?;
            print_json(&shown(admin.set_enabled(scope, &id, false).await?, false))?
        }
        EndpointsCommand::Test {
            id,
            event_type,
            options,
        } => {
            let admin = connect(common, &options).await?;
            let request = TestRequest { event_type };
            let report = admin.test_endpoint(scope, &id, request).await?;
            print_json(&report)?;
            if !report.delivered {
                return Ok(ExitCode::FAILURE);
            }
        }
        EndpointsCommand::RotateSecret {
            id,
            secret,
            options,
        } => {
            let admin = connect(common, &options).await?;
            let view = admin.rotate_secret(scope, &id, Rotation { secret }).await?;
            print_json(&shown(view, true))?
        }
        EndpointsCommand::Reseal { options } => {
            let admin = connect(common, &options).await?;
            let done = admin.reseal().await?;
            print_json(&done)?;
            if done.failed > 0 {
                eprintln!(
                    "error: {} records could not be resealed (see the log); add the key that sealed them to HOOKFLEET_SECRET_KEY_PREVIOUS and run again",
                    done.failed
                );
                return Ok(ExitCode::FAILURE);
            }
        }
        EndpointsCommand::Attempts {
            id,
            limit,
            before,
            options,
        } => {
            let admin = connect(common, &options).await?;
            for attempt in admin.attempts(scope, &id, limit, before.as_deref()).await? {
                print_json(&attempt)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The operations, on Redis (checked now: every endpoint command needs it) and a broker
/// connection opened on first use.
async fn connect(common: &Common, options: &Options) -> anyhow::Result<Admin> {
    // No endpoint command uses the broker: it would connect on first use only.
    let broker = Broker::lazy(common.amqp_url.expose());
    let limits = TenantLimits::default();
    let admin = admin(common, broker, &options.catalog, &options.delivery, limits)?;
    if !admin.redis_ready().await {
        anyhow::bail!("Redis does not answer at HOOKFLEET_REDIS_URL");
    }
    Ok(admin)
}

fn split(list: &str) -> Vec<String> {
    list.split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// An endpoint as printed: the secret masked unless `reveal`, so that listing endpoints on a
/// shared terminal or into a log does not hand out every signing key. `add` and
/// `rotate-secret` print it in full once (the operator needs it to configure the receiver),
/// and `get --reveal` again.
fn shown(view: EndpointView, reveal: bool) -> serde_json::Value {
    // What a secret looks like when it is not revealed: `whsec_***` or `whsk_***`.
    let masked = format!("{}***", view.signature.secret_prefix());
    let mut value = serde_json::to_value(view).unwrap_or_default();
    if !reveal && let Some(object) = value.as_object_mut() {
        object.insert("secret".to_owned(), masked.into());
    }
    value
}
