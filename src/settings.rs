//! Every setting of the `hookfleet` binary: one typed struct per concern, each field a flag
//! that can also be set by the environment variable named in `--help`.
//!
//! Values are parsed into checked types here, at the edge, so a bad value stops the process
//! with one line that names the setting (see `main::settings_error`).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{ArgAction, Args, ValueEnum};
use hookfleet_amqp::{QueueType, Topology};
use hookfleet_core::EventType;
use hookfleet_core::Namespace;
use hookfleet_core::policy::RetrySchedule;

/// Where the broker and Redis are, and which deployment this is.
#[derive(Debug, Args)]
pub struct Common {
    /// RabbitMQ URL.
    #[arg(
        long,
        global = true,
        env = "HOOKFLEET_AMQP_URL",
        hide_env_values = true,
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: String,

    /// Redis URL (endpoints and de-duplication marks live there).
    #[arg(
        long,
        global = true,
        env = "HOOKFLEET_REDIS_URL",
        hide_env_values = true,
        default_value = "redis://127.0.0.1:6379"
    )]
    pub redis_url: String,

    /// Prefix of every exchange, queue and Redis key: deployments with different namespaces
    /// share a broker and a Redis without touching each other.
    #[arg(
        long,
        global = true,
        env = "HOOKFLEET_NAMESPACE",
        default_value = "hookfleet"
    )]
    pub namespace: Namespace,

    /// Log format on stderr; the level is set with RUST_LOG (default info).
    #[arg(long, global = true, env = "HOOKFLEET_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// The event catalog and the shape of the broker topology.
#[derive(Debug, Args)]
pub struct Catalog {
    /// Comma-separated event types: each gets an exchange and a work queue. A worker consumes
    /// exactly these, so a worker can be given a subset.
    #[arg(long, env = "HOOKFLEET_EVENT_TYPES", value_parser = parse_event_types,
          default_value = "log.blocked,log.pending_approval,log.failed,approval.approved,approval.rejected,webhook.test")]
    pub event_types: EventTypes,

    /// Queue type: quorum (replicated; production) or classic (single-node development).
    #[arg(long, env = "HOOKFLEET_QUEUE_TYPE", default_value = "quorum")]
    pub queue_type: QueueType,

    /// Waits after the 1st, 2nd, 3rd… failed attempt; the count is the number of retries.
    /// Each distinct wait is a RabbitMQ delay queue.
    #[arg(long, env = "HOOKFLEET_RETRY_DELAYS", value_parser = parse_delays, default_value = "30s,2m,8m")]
    pub retry_delays: RetryDelays,
}

impl Catalog {
    /// The broker topology these settings describe, for `namespace`.
    pub fn topology(&self, namespace: &Namespace) -> Topology {
        Topology::new(
            namespace.clone(),
            self.queue_type,
            self.event_types.0.clone(),
            self.retry_delays.0.delays().to_vec(),
        )
    }
}

/// How one HTTP attempt is made.
#[derive(Debug, Args)]
pub struct Delivery {
    /// An attempt that has no answer by then is a failure (timeout).
    #[arg(long, env = "HOOKFLEET_DELIVERY_TIMEOUT", value_parser = parse_timeout, default_value = "5s")]
    pub delivery_timeout: Duration,

    /// The User-Agent header of every delivery.
    #[arg(
        long,
        env = "HOOKFLEET_USER_AGENT",
        default_value = "AgentWarden-Webhooks/1.0"
    )]
    pub user_agent: String,

    /// Allow loopback, private, link-local and other non-public targets (local development and
    /// tests only: it lets endpoint URLs reach your internal network).
    #[arg(long, env = "HOOKFLEET_ALLOW_PRIVATE_TARGETS", action = ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(),
          num_args = 0..=1, default_missing_value = "true", default_value = "false")]
    pub allow_private_targets: bool,
}

/// What only a worker needs.
#[derive(Debug, Args)]
pub struct Worker {
    /// Messages handled at once (and the prefetch of each consumer).
    #[arg(long, env = "HOOKFLEET_CONCURRENCY", default_value = "64",
          value_parser = clap::value_parser!(u16).range(1..=10_000))]
    pub concurrency: u16,

    /// How long a delivered (endpoint, event id) is remembered, so a republished or
    /// redelivered event is not sent twice.
    #[arg(long, env = "HOOKFLEET_DEDUP_TTL", value_parser = parse_positive, default_value = "7d")]
    pub dedup_ttl: Duration,

    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "HOOKFLEET_METRICS_ADDR", default_value = "0.0.0.0:9464")]
    pub metrics_addr: SocketAddr,

    /// How long a tenant's endpoint list is cached; at most 2s, the contract's bound for a
    /// change to reach every worker.
    #[arg(long, env = "HOOKFLEET_ENDPOINT_CACHE_TTL", value_parser = parse_cache_ttl, default_value = "1s")]
    pub endpoint_cache_ttl: Duration,

    /// Threads of the worker's async runtime. One is the most efficient per delivery (measured:
    /// 5-25% less CPU than two on a 2-core machine, see BENCHMARKS.md); scale out with more
    /// worker processes, or raise this for one big process.
    #[arg(long = "worker-threads", env = "HOOKFLEET_WORKER_THREADS", default_value = "1",
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,

    /// A worker that holds messages but finishes none for this long restarts its consumers.
    #[arg(long, env = "HOOKFLEET_STALL_TIMEOUT", value_parser = parse_positive, default_value = "60s")]
    pub stall_timeout: Duration,
}

/// A checked, non-empty list of event types.
#[derive(Debug, Clone)]
pub struct EventTypes(pub Vec<EventType>);

/// A checked retry schedule.
#[derive(Debug, Clone)]
pub struct RetryDelays(pub RetrySchedule);

fn parse_event_types(s: &str) -> Result<EventTypes, String> {
    let mut types = s
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| t.parse::<EventType>().map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    types.sort();
    types.dedup();
    if types.is_empty() {
        return Err("name at least one event type".into());
    }
    Ok(EventTypes(types))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("{e}: expected a duration such as 250ms, 5s, 2m or 7d"))
}

fn parse_positive(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(d)
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    let d = parse_positive(s)?;
    if d > Duration::from_secs(300) {
        return Err("must be at most 5m".into());
    }
    Ok(d)
}

fn parse_cache_ttl(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d > Duration::from_secs(2) {
        return Err("must be at most 2s, or endpoint changes reach workers too late".into());
    }
    Ok(d)
}

fn parse_delays(s: &str) -> Result<RetryDelays, String> {
    let delays = s
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(parse_positive)
        .collect::<Result<Vec<_>, _>>()?;
    if delays.len() > 20 {
        return Err("at most 20 retries".into());
    }
    // RabbitMQ's x-message-ttl is a 32-bit count of milliseconds.
    if delays.iter().any(|d| d.as_millis() > u128::from(u32::MAX)) {
        return Err("each delay must be under 49 days".into());
    }
    Ok(RetryDelays(RetrySchedule::new(delays)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_catalog_is_the_contracts() {
        use clap::CommandFactory;
        let command = crate::cli::Cli::command();
        let worker = command.find_subcommand("worker").unwrap();
        let arg = worker
            .get_arguments()
            .find(|a| a.get_id() == "event_types")
            .unwrap();
        let default = arg.get_default_values()[0].to_str().unwrap();
        let mut parsed: Vec<String> = parse_event_types(default)
            .unwrap()
            .0
            .iter()
            .map(|t| t.to_string())
            .collect();
        let mut contract: Vec<String> = EventType::DEFAULT_CATALOG
            .iter()
            .map(|t| t.to_string())
            .collect();
        parsed.sort();
        contract.sort();
        assert_eq!(parsed, contract);
    }

    #[test]
    fn durations_and_lists_parse_or_explain() {
        assert_eq!(parse_timeout("5s"), Ok(Duration::from_secs(5)));
        assert!(parse_timeout("banana").is_err());
        assert!(parse_timeout("0s").is_err());
        assert!(parse_cache_ttl("3s").is_err());
        let delays = parse_delays("30s, 2m,8m").unwrap();
        assert_eq!(delays.0.retries(), 3);
        assert_eq!(parse_delays("").unwrap().0.retries(), 0);
        assert!(parse_delays("1s,x").is_err());
        assert_eq!(parse_event_types("b.x,a").unwrap().0.len(), 2);
        assert!(parse_event_types("Bad").is_err());
        assert!(parse_event_types(" , ").is_err());
    }
}
