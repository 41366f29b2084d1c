//! Every setting of the `hookfleet` binary: one typed struct per concern, each field a flag
//! that can also be set by the environment variable named in `--help`.
//!
//! Values are parsed into checked types here, at the edge, so a bad value stops the process
//! with one line that names the setting (see `main::settings_error`).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{ArgAction, Args, ValueEnum};
use hookfleet_amqp::{QueueType, Topology};
use hookfleet_core::Namespace;
use hookfleet_core::policy::RetrySchedule;
use hookfleet_core::target::redact_url;
use hookfleet_core::{EventType, Operational};

/// Where the broker and Redis are, and which deployment this is.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// RabbitMQ URL: amqp:// or amqps://, user:password@host:port/vhost; for a cluster, the
    /// nodes' URLs comma-separated (a connection goes to one, in turn from a random one).
    #[arg(
        long,
        global = true,
        env = "HOOKFLEET_AMQP_URL",
        hide_env_values = true,
        value_parser = parse_amqp_url,
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: ServiceUrl,

    /// Redis URL, or two or more seed nodes of a Redis Cluster, comma-separated (endpoints,
    /// de-duplication marks, circuit breakers and attempt logs live there).
    #[arg(
        long,
        global = true,
        env = "HOOKFLEET_REDIS_URL",
        hide_env_values = true,
        value_parser = parse_redis_url,
        default_value = "redis://127.0.0.1:6379"
    )]
    pub redis_url: ServiceUrl,

    /// Prefix of every exchange, queue and Redis key: deployments with different namespaces
    /// share a broker and a Redis without touching each other.
    #[arg(
        long,
        global = true,
        env = "HOOKFLEET_NAMESPACE",
        default_value = "hookfleet"
    )]
    pub namespace: Namespace,

    /// The tenant hookfleet's own events are published under (endpoint.created/updated/
    /// deleted/disabled/enabled, message.attempt.exhausted/failing/recovered): subscribe an
    /// endpoint of this tenant to receive them. No tenant token can be minted for it.
    #[arg(long, global = true, env = "HOOKFLEET_OPERATOR_TENANT",
          default_value = hookfleet_core::operational::DEFAULT_OPERATOR_TENANT)]
    pub operator_tenant: hookfleet_core::TenantId,

    /// Seals endpoint secrets (and URLs with credentials) at rest in Redis: base64 of 32 bytes
    /// (`openssl rand -base64 32`). Every worker and API process needs the same key. Without
    /// it secrets are stored in plain text (a warning at start says so). Records written before
    /// it was set stay readable and are sealed on their next change, or by `endpoints reseal`.
    #[arg(
        long,
        global = true,
        env = "HOOKFLEET_SECRET_KEY",
        hide_env_values = true
    )]
    pub secret_key: Option<hookfleet_store::SecretKey>,

    /// Keys that sealed records before HOOKFLEET_SECRET_KEY, comma-separated: they open old
    /// records, never seal new ones. To change the key: set the new one, move the old one here,
    /// run `hookfleet endpoints reseal`, then drop it.
    #[arg(
        long,
        global = true,
        env = "HOOKFLEET_SECRET_KEY_PREVIOUS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub secret_key_previous: Vec<hookfleet_store::SecretKey>,

    /// PostgreSQL for the message history (postgres://user:password@host:port/database):
    /// workers record every event and attempt there, off the delivery path. Run `hookfleet
    /// migrate` first. Without it there is no history.
    #[arg(
        long,
        global = true,
        env = "HOOKFLEET_DATABASE_URL",
        hide_env_values = true,
        value_parser = parse_database_url
    )]
    pub database_url: Option<ServiceUrl>,

    /// Log format on stderr; the level is set with RUST_LOG (default info).
    #[arg(long, global = true, env = "HOOKFLEET_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
}

impl Common {
    /// The keys that seal and open endpoint records.
    pub fn keyring(&self) -> hookfleet_store::Keyring {
        hookfleet_store::Keyring::new(self.secret_key.clone(), self.secret_key_previous.clone())
    }

    /// Says at start, for a process that reads endpoint records, when their secrets are kept
    /// in plain text.
    pub fn warn_if_secrets_unsealed(&self) {
        if self.secret_key.is_none() {
            tracing::warn!(
                message = "HOOKFLEET_SECRET_KEY is not set: endpoint secrets are stored in Redis in plain text. Set it (openssl rand -base64 32) to seal them."
            );
        }
    }
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
    /// exactly these, so a worker can be given a subset, and hookfleet's operational types
    /// (endpoint.*, message.attempt.*), which are always there and cannot be listed here.
    #[arg(long, env = "HOOKFLEET_EVENT_TYPES", value_parser = parse_event_types,
          default_value_t = EventTypes::default())]
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

    /// The ports endpoint URLs may use, e.g. `443,8000-8999` (default: any). Checked when an
    /// endpoint is created, changed or tested, and before every delivery.
    #[arg(long, env = "HOOKFLEET_ALLOWED_PORTS", default_value = "any")]
    pub allowed_ports: hookfleet_core::target::AllowedPorts,

    /// Deliveries in flight to one endpoint in one worker; more are deferred through a delay
    /// queue without using an attempt, so one slow endpoint cannot take the worker. An
    /// endpoint's `max_in_flight` may lower it (the API checks it against this).
    #[arg(long, env = "HOOKFLEET_ENDPOINT_CONCURRENCY", default_value = "128",
          value_parser = clap::value_parser!(u32).range(1..=65_535))]
    pub endpoint_concurrency: u32,

    /// Attempts kept per endpoint in the attempt log (0 turns it off).
    #[arg(long, env = "HOOKFLEET_ATTEMPT_LOG_LEN", default_value = "1000",
          value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub attempt_log_len: u32,
}

/// What only a worker needs.
#[derive(Debug, Args)]
pub struct Worker {
    /// Messages a worker handles at once. A delivery waiting on a slow receiver costs a socket
    /// and a few KiB, so thousands are fine; each consumer's prefetch is this shared out among
    /// the queues.
    #[arg(long, env = "HOOKFLEET_MAX_INFLIGHT", default_value = "1024",
          value_parser = clap::value_parser!(u32).range(1..=65_535))]
    pub max_inflight: u32,

    /// Body bytes of the messages a worker handles at once (e.g. 64MiB); intake pauses above it.
    #[arg(long, env = "HOOKFLEET_MAX_INFLIGHT_BYTES", value_parser = parse_bytes, default_value = "64MiB")]
    pub max_inflight_bytes: usize,

    /// Failures in a row (timeouts, connection errors, 5xx) that open an endpoint's circuit;
    /// its deliveries are then deferred, with no HTTP call and no attempt used.
    #[arg(long, env = "HOOKFLEET_CIRCUIT_THRESHOLD", default_value = "5",
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub circuit_threshold: u32,

    /// How long an open circuit defers deliveries before one probe decides.
    #[arg(long, env = "HOOKFLEET_CIRCUIT_COOLDOWN", value_parser = parse_positive, default_value = "30s")]
    pub circuit_cooldown: Duration,

    /// An endpoint failing without a break this long is disabled, and `endpoint.disabled` is
    /// published.
    #[arg(long, env = "HOOKFLEET_DISABLE_AFTER", value_parser = parse_positive, default_value = "5d")]
    pub disable_after: Duration,

    /// How long a delivered (endpoint, event id) is remembered, so a republished or
    /// redelivered event is not sent twice: it covers redeliveries after a crash (seconds),
    /// overlapping retries (the retry schedule, minutes) and a platform that publishes an
    /// event again (hours). Each mark costs about 10 bytes of Redis (README: Scaling).
    #[arg(long, env = "HOOKFLEET_DEDUP_TTL", value_parser = parse_positive, default_value = "24h")]
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

    /// Events one ordered endpoint may have waiting. They wait in Redis with their payloads,
    /// so an ordered endpoint that is down for days must not fill Redis for everyone: past
    /// this, its new events go to the dead-letter queue at once (reason "ordered backlog
    /// full"), from where they can be replayed (outside the order).
    #[arg(long, env = "HOOKFLEET_ORDERED_BACKLOG", default_value = "10000",
          value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub ordered_backlog: u32,
}

/// How long the message history is kept (with `HOOKFLEET_DATABASE_URL`).
#[derive(Debug, Args)]
pub struct History {
    /// Events and attempts are kept this long; older days are dropped whole.
    #[arg(long, env = "HOOKFLEET_HISTORY_RETENTION", value_parser = parse_positive, default_value = "30d")]
    pub history_retention: Duration,

    /// Payloads are kept this long (at most the history's retention): they are most of its
    /// size.
    #[arg(long, env = "HOOKFLEET_PAYLOAD_RETENTION", value_parser = parse_positive, default_value = "30d")]
    pub payload_retention: Duration,
}

impl History {
    /// The history's settings, when `HOOKFLEET_DATABASE_URL` is set.
    pub fn config(&self, common: &Common) -> Option<hookfleet_history::HistoryConfig> {
        let url = common.database_url.as_ref()?;
        Some(hookfleet_history::HistoryConfig {
            url: url.expose().to_owned(),
            namespace: common.namespace.clone(),
            retention: self.history_retention,
            payload_retention: self.payload_retention.min(self.history_retention),
        })
    }
}

/// A PostgreSQL URL that tokio-postgres can connect with; the error never shows the password.
fn parse_database_url(s: &str) -> Result<ServiceUrl, String> {
    let s = s.trim();
    if !(s.starts_with("postgres://") || s.starts_with("postgresql://")) {
        return Err(without_password(
            "expected postgres://user:password@host:port/database".into(),
            s,
        ));
    }
    s.parse::<tokio_postgres::Config>().map_err(|e| {
        without_password(
            format!("{e}: expected postgres://user:password@host:port/database"),
            s,
        )
    })?;
    Ok(ServiceUrl(s.to_owned()))
}

/// A group of settings as the environment and the defaults give it, for a command that does
/// not take these flags itself but runs an operation that reads them.
pub fn from_env<T: Args + clap::FromArgMatches>() -> Result<T, clap::Error> {
    let command = T::augment_args(clap::Command::new("hookfleet"));
    let matches = command.try_get_matches_from(["hookfleet"])?;
    T::from_arg_matches(&matches)
}

/// What only the admin API needs.
#[derive(Debug, Args)]
pub struct Api {
    /// Address the admin API listens on.
    #[arg(long, env = "HOOKFLEET_API_ADDR", default_value = "127.0.0.1:8080")]
    pub api_addr: SocketAddr,

    /// The operator token: `Authorization: Bearer <token>` for every tenant, and the only one
    /// that mints tenant tokens. At least 16 characters (`openssl rand -hex 32`).
    #[arg(long, env = "HOOKFLEET_API_TOKEN", hide_env_values = true, value_parser = parse_api_token)]
    pub api_token: Option<ApiToken>,

    /// Key that signs tenant tokens (at least 16 characters); by default derived from
    /// HOOKFLEET_API_TOKEN. Every API replica needs the same; changing it revokes all tenant
    /// tokens.
    #[arg(long, env = "HOOKFLEET_TOKEN_KEY", hide_env_values = true, value_parser = parse_api_token)]
    pub token_key: Option<ApiToken>,

    /// Serve without HOOKFLEET_API_TOKEN: anyone who reaches the address is the operator.
    /// Local development only.
    #[arg(long)]
    pub insecure_no_auth: bool,

    /// Most endpoints one tenant may have (the operator's CLI is not limited).
    #[arg(long, env = "HOOKFLEET_MAX_ENDPOINTS_PER_TENANT", default_value = "100",
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_endpoints_per_tenant: u32,

    /// Test Webhook calls one tenant token may make per minute (0: none); more get 429 with
    /// Retry-After.
    #[arg(long, env = "HOOKFLEET_TEST_RATE", default_value = "10",
          value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub test_rate: u32,

    /// Who may frame the console: the CSP `frame-ancestors` sources, e.g.
    /// `'self' https://dashboard.example.com` (the platform page that embeds it).
    #[arg(long, env = "HOOKFLEET_CONSOLE_FRAME_ANCESTORS", default_value = "'self'",
          value_parser = parse_frame_ancestors)]
    pub console_frame_ancestors: String,

    /// Longest a client may take to send a request's headers, after connecting or after its
    /// previous answer (so idle kept-alive connections close too); slower ones are closed.
    #[arg(long, env = "HOOKFLEET_API_HEADER_TIMEOUT", value_parser = parse_positive, default_value = "10s")]
    pub api_header_timeout: Duration,

    /// Longest a request may take, its body and Test Webhook included (408 past it).
    #[arg(long, env = "HOOKFLEET_API_REQUEST_TIMEOUT", value_parser = parse_positive, default_value = "30s")]
    pub api_request_timeout: Duration,

    /// Connections served at once; more wait in the listen backlog.
    #[arg(long, env = "HOOKFLEET_API_MAX_CONNECTIONS", default_value = "1024",
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub api_max_connections: u32,
}

/// CSP source expressions: printable, and nothing that would end the directive.
fn parse_frame_ancestors(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty: use 'none' to forbid framing, 'self' for this origin only".into());
    }
    if s.chars()
        .any(|c| c == ';' || c == ',' || !(c == ' ' || c.is_ascii_graphic()))
    {
        return Err(
            "must be CSP sources separated by spaces, e.g. 'self' https://app.example.com".into(),
        );
    }
    Ok(s.to_owned())
}

/// A bearer token or key from the settings. Only [`ApiToken::expose`] gives the text.
#[derive(Clone)]
pub struct ApiToken(String);

impl ApiToken {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(***)")
    }
}

fn parse_api_token(s: &str) -> Result<ApiToken, String> {
    let s = s.trim();
    if s.len() < 16 {
        return Err("must be at least 16 characters (e.g. openssl rand -hex 32)".into());
    }
    if s.starts_with("hft_") || s.chars().any(char::is_whitespace) {
        return Err("must not start with hft_ (tenant tokens do) or hold spaces".into());
    }
    Ok(ApiToken(s.to_owned()))
}

/// A checked connection URL (RabbitMQ, Redis). It may carry a password, so `Debug` shows it
/// through [`redact_url`] and there is no `Display`: only [`ServiceUrl::expose`] gives the text,
/// to the client that connects with it.
#[derive(Clone)]
pub struct ServiceUrl(String);

impl ServiceUrl {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ServiceUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A RabbitMQ URL may list several nodes: each is redacted on its own.
        let redacted: Vec<String> = self.0.split(',').map(|u| redact_url(u.trim())).collect();
        f.debug_tuple("ServiceUrl")
            .field(&redacted.join(","))
            .finish()
    }
}

/// URLs lapin can connect with, so that a malformed one stops the command at start instead
/// of a worker retrying it forever: one, or the nodes of one cluster, comma-separated.
fn parse_amqp_url(s: &str) -> Result<ServiceUrl, String> {
    let urls = hookfleet_amqp::broker::split_urls(s);
    if urls.is_empty() {
        return Err("empty: expected amqp://user:password@host:port/vhost".into());
    }
    for url in &urls {
        if let Err(e) = url.parse::<lapin::uri::AMQPUri>() {
            return Err(without_password(
                format!("{e}: expected amqp://user:password@host:port/vhost[,amqp://…]"),
                url,
            ));
        }
    }
    Ok(ServiceUrl(s.to_owned()))
}

/// A URL the Redis client accepts (redis://, rediss://, unix sockets), or two or more,
/// comma-separated: the seed nodes of a Redis Cluster.
fn parse_redis_url(s: &str) -> Result<ServiceUrl, String> {
    use hookfleet_store::redis::IntoConnectionInfo;
    let urls = hookfleet_store::connection::split_urls(s);
    if urls.is_empty() {
        return Err("empty: expected redis://[user:password@]host[:port][/db]".into());
    }
    for url in urls {
        if let Err(e) = url.into_connection_info() {
            return Err(without_password(
                format!("{e}: expected redis://[user:password@]host[:port][/db][,redis://…]"),
                url,
            ));
        }
    }
    Ok(ServiceUrl(s.to_owned()))
}

/// `message` with `url` redacted and its password masked, should a parser have quoted them.
fn without_password(message: String, url: &str) -> String {
    let mut message = message.replace(url, &redact_url(url));
    if let Some(password) = url::Url::parse(url)
        .ok()
        .and_then(|u| u.password().map(str::to_owned))
    {
        let decoded = url::form_urlencoded::parse(password.as_bytes())
            .next()
            .map(|(k, _)| k.into_owned())
            .unwrap_or_default();
        for form in [password, decoded] {
            if !form.is_empty() {
                message = message.replace(&form, "***");
            }
        }
    }
    message
}

/// A checked, non-empty list of event types.
#[derive(Debug, Clone)]
pub struct EventTypes(pub Vec<EventType>);

impl Default for EventTypes {
    /// The contract's catalog, [`EventType::DEFAULT_CATALOG`]: the one list of it.
    fn default() -> Self {
        let types = EventType::DEFAULT_CATALOG
            .iter()
            .map(|t| t.parse().expect("the default catalog is valid"));
        Self(types.collect())
    }
}

impl std::fmt::Display for EventTypes {
    /// Comma-separated, as `HOOKFLEET_EVENT_TYPES` takes them (and `--help` shows the default).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.0.iter().map(EventType::as_str).collect();
        f.write_str(&names.join(","))
    }
}

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
    if let Some(t) = types.iter().find(|t| Operational::of(t.as_str()).is_some()) {
        return Err(format!(
            "{t} is one of hookfleet's operational event types, which are always there: leave it out"
        ));
    }
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

/// A size such as `64MiB`, `512KiB`, `1GiB` or a number of bytes.
fn parse_bytes(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: usize = number
        .parse()
        .map_err(|_| format!("{s:?} is not a size: expected e.g. 64MiB, 512KiB or 1048576"))?;
    let scale: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => return Err(format!("unknown unit {other:?}: use B, KiB, MiB or GiB")),
    };
    let bytes = number.checked_mul(scale).ok_or("too large")?;
    if !(hookfleet_core::MAX_BODY_BYTES..=u32::MAX as usize).contains(&bytes) {
        return Err("must be at least 256KiB (one largest body) and under 4GiB".into());
    }
    Ok(bytes)
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
    fn service_urls_are_checked_and_never_show_their_password() {
        assert!(parse_amqp_url("amqp://guest:guest@127.0.0.1:5672/%2f").is_ok());
        assert!(parse_amqp_url("amqps://u:p@broker.example.com/vh").is_ok());
        assert!(parse_amqp_url("amqp://u:p@a:5672/%2f, amqp://u:p@b:5673/%2f").is_ok());
        assert!(parse_amqp_url(" , ").is_err());
        let error =
            parse_amqp_url("amqp://u:s3cret@a:5672/%2f,amqp://u:s3cret@b:nope/%2f").unwrap_err();
        assert!(!error.contains("s3cret"), "{error}");
        for bad in [
            "nonsense",
            "http://x",
            "amqp://guest:s3cret@host:notaport/%2f",
            "amqp://guest:s3cret@127.0.0.1:5672/%2f?heartbeat=soon",
        ] {
            let error = parse_amqp_url(bad).err().unwrap_or_else(|| panic!("{bad}"));
            assert!(!error.contains("s3cret"), "{bad}: {error}");
        }
        assert!(parse_redis_url("redis://127.0.0.1:6379").is_ok());
        assert!(parse_redis_url("redis://:pw@127.0.0.1:6379/2").is_ok());
        assert!(parse_redis_url("redis://127.0.0.1:7001, redis://127.0.0.1:7002").is_ok());
        let error = parse_redis_url("redis://:s3cret@a:7001,redis://:s3cret@b:x").unwrap_err();
        assert!(!error.contains("s3cret"), "{error}");
        for bad in ["nonsense", "http://x", "redis://:s3cret@127.0.0.1:notaport"] {
            let error = parse_redis_url(bad)
                .err()
                .unwrap_or_else(|| panic!("{bad}"));
            assert!(!error.contains("s3cret"), "{bad}: {error}");
        }
        let url = parse_amqp_url("amqp://guest:s3cret@127.0.0.1:5672/%2f").unwrap();
        assert!(!format!("{url:?}").contains("s3cret"));
        let cluster = parse_amqp_url("amqp://u:s3cret@a:5672/%2f,amqp://u:s3cret@b:5672/%2f");
        assert!(!format!("{:?}", cluster.unwrap()).contains("s3cret"));
        assert_eq!(
            without_password("x amqp://u:s3cret@h/ y s3cret".into(), "amqp://u:s3cret@h/"),
            "x amqp://***@h/ y ***"
        );
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
        let reserved = parse_event_types("log.blocked,endpoint.disabled").unwrap_err();
        assert!(reserved.contains("operational"), "{reserved}");
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("262144"), Ok(262_144));
        assert!(parse_bytes("1KiB").is_err(), "below one largest body");
        assert!(parse_bytes("12 parsecs").is_err());
        assert!(parse_bytes("8GiB").is_err());
    }
}
