//! [`WorkerEnv`]: the one builder of the settings (environment variables, docs/contract.md §4)
//! a namespace's `hookfleet` processes run with. The settings are the single source of truth:
//! what the processes declare (event types, delay tiers) is read back from them, so tear-down
//! removes exactly that.

use std::collections::BTreeMap;
use std::time::Duration;

use hookfleet_amqp::{QueueType, Topology};
use hookfleet_core::EventType;

use crate::{AMQP_URL, REDIS_URL, Result, free_port, random_hex};

/// The binary's default `HOOKFLEET_RETRY_DELAYS`.
const DEFAULT_RETRY_DELAYS: &str = "30s,2m,8m";

/// Every setting of one namespace's processes, builder-style.
#[derive(Debug, Clone)]
pub struct WorkerEnv {
    vars: BTreeMap<String, String>,
}

impl WorkerEnv {
    /// A fresh namespace `<prefix>_<12 hex>` on the local RabbitMQ and Redis, with private
    /// targets allowed (receivers are on 127.0.0.1), metrics on `127.0.0.1:0` (never the
    /// default `0.0.0.0:9464`, even for a command that starts a worker by mistake), `RUST_LOG`
    /// `info` and plain-text logs. Everything else is the binary's default until set.
    pub fn fresh(prefix: &str) -> Self {
        let vars = [
            (
                "HOOKFLEET_NAMESPACE",
                format!("{prefix}_{}", random_hex(12)),
            ),
            ("HOOKFLEET_AMQP_URL", AMQP_URL.to_owned()),
            ("HOOKFLEET_REDIS_URL", REDIS_URL.to_owned()),
            ("HOOKFLEET_METRICS_ADDR", "127.0.0.1:0".to_owned()),
            ("RUST_LOG", "info".to_owned()),
            // Plain text in the log files (https://no-color.org).
            ("NO_COLOR", "1".to_owned()),
        ];
        let env = Self {
            vars: vars.map(|(k, v)| (k.to_owned(), v)).into(),
        };
        env.allow_private(true)
    }

    /// Sets any variable (`HOOKFLEET_*`, `RUST_LOG`); the typed setters below are this too.
    pub fn set(mut self, key: &str, value: impl Into<String>) -> Self {
        self.vars.insert(key.to_owned(), value.into());
        self
    }

    pub fn event_types(self, types: &[&str]) -> Self {
        self.set("HOOKFLEET_EVENT_TYPES", types.join(","))
    }

    pub fn retry_delays(self, delays: &[Duration]) -> Self {
        let list: Vec<String> = (delays.iter())
            .map(|d| humantime::format_duration(*d).to_string())
            .collect();
        self.set("HOOKFLEET_RETRY_DELAYS", list.join(","))
    }

    pub fn delivery_timeout(self, timeout: Duration) -> Self {
        self.set(
            "HOOKFLEET_DELIVERY_TIMEOUT",
            humantime::format_duration(timeout).to_string(),
        )
    }

    pub fn stall_timeout(self, timeout: Duration) -> Self {
        self.set(
            "HOOKFLEET_STALL_TIMEOUT",
            humantime::format_duration(timeout).to_string(),
        )
    }

    /// Messages a worker handles at once (`HOOKFLEET_MAX_INFLIGHT`).
    pub fn concurrency(self, n: usize) -> Self {
        self.set("HOOKFLEET_MAX_INFLIGHT", n.to_string())
    }

    pub fn allow_private(self, allow: bool) -> Self {
        self.set("HOOKFLEET_ALLOW_PRIVATE_TARGETS", allow.to_string())
    }

    /// `HOOKFLEET_METRICS_ADDR` on a port of 127.0.0.1 that is free now, so that the caller
    /// knows where to find `/metrics` (port 0 would leave it to the worker).
    pub fn metrics_on_free_port(self) -> Result<Self> {
        Ok(self.set(
            "HOOKFLEET_METRICS_ADDR",
            format!("127.0.0.1:{}", free_port()?),
        ))
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }

    /// The RabbitMQ URL (or cluster node list) the processes connect to.
    pub fn amqp_url(&self) -> &str {
        self.get("HOOKFLEET_AMQP_URL").unwrap_or(AMQP_URL)
    }

    /// The Redis URL (or cluster seed list) the processes connect to.
    pub fn redis_url(&self) -> &str {
        self.get("HOOKFLEET_REDIS_URL").unwrap_or(REDIS_URL)
    }

    pub fn namespace(&self) -> &str {
        self.get("HOOKFLEET_NAMESPACE").unwrap_or("hookfleet")
    }

    /// Every variable, for a `Command`.
    pub fn vars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The event types the processes declare: the setting, or the contract's catalog.
    pub fn declared_event_types(&self) -> Vec<&str> {
        match self.get("HOOKFLEET_EVENT_TYPES") {
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .collect(),
            None => EventType::DEFAULT_CATALOG.to_vec(),
        }
    }

    /// The broker topology the processes declare (`HOOKFLEET_QUEUE_TYPE`, the catalog, the
    /// retry delays).
    pub fn topology(&self) -> Result<Topology> {
        let event_types = (self.declared_event_types().iter())
            .map(|t| t.parse::<EventType>())
            .collect::<Result<_, _>>()?;
        let queue_type = match self.get("HOOKFLEET_QUEUE_TYPE") {
            Some(kind) => kind.parse().map_err(crate::Error::Setup)?,
            None => QueueType::Quorum,
        };
        let (namespace, delays) = (self.namespace().parse()?, self.declared_retry_delays());
        Ok(Topology::new(namespace, queue_type, event_types, delays))
    }

    /// The delay tiers the processes declare (an unparsable entry declares nothing).
    pub fn declared_retry_delays(&self) -> Vec<Duration> {
        let list = self
            .get("HOOKFLEET_RETRY_DELAYS")
            .unwrap_or(DEFAULT_RETRY_DELAYS);
        (list.split(','))
            .filter_map(|d| humantime::parse_duration(d.trim()).ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_settings_are_written_as_the_binary_reads_them_and_read_back() {
        let ms = Duration::from_millis;
        let env = WorkerEnv::fresh("t")
            .event_types(&["log.blocked", "log.failed"])
            .retry_delays(&[ms(200), ms(120_000)])
            .delivery_timeout(ms(2_000));
        assert!(env.namespace().starts_with("t_") && env.namespace().len() == 14);
        assert_eq!(env.get("HOOKFLEET_RETRY_DELAYS"), Some("200ms,2m"));
        assert_eq!(env.get("HOOKFLEET_DELIVERY_TIMEOUT"), Some("2s"));
        assert_eq!(env.get("HOOKFLEET_ALLOW_PRIVATE_TARGETS"), Some("true"));
        assert_eq!(env.declared_retry_delays(), [ms(200), ms(120_000)]);
        assert_eq!(env.declared_event_types(), ["log.blocked", "log.failed"]);

        let defaults = WorkerEnv::fresh("t");
        assert_eq!(
            defaults.declared_event_types().len(),
            EventType::DEFAULT_CATALOG.len()
        );
        assert_eq!(defaults.declared_retry_delays().len(), 3);
        assert_ne!(defaults.namespace(), WorkerEnv::fresh("t").namespace());
    }
}
