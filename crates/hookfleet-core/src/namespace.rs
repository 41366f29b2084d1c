//! The namespace (`HOOKFLEET_NAMESPACE`) and every RabbitMQ name derived from it, so that
//! several deployments (and every test) share one broker and one Redis without touching each
//! other. Redis keys start with the same namespace (see `hookfleet_store::keys`).
//!
//! | name                     | kind                         | job                                  |
//! |--------------------------|------------------------------|--------------------------------------|
//! | `N.events.<type>`        | fanout exchange              | where platforms publish (docs/contract.md §1) |
//! | `N.work.<type>`          | queue                        | what workers consume                 |
//! | `N.retry`                | direct exchange              | delay tiers expire into it; key = type |
//! | `N.delay.<ms>ms`         | fanout exchange + TTL queue  | one retry tier                       |
//! | `N.dead`                 | fanout exchange + queue      | dead letters                         |
//! | `N.ordered.route`        | headers exchange             | each `N.events.<type>` feeds it; it keeps the tenants with ordered endpoints |
//! | `N.ordered`              | queue (single active consumer) | those tenants' events, in the order the broker took them |
//! | `N.notices`              | queue                        | retired (operational webhooks replace it); deleted with the namespace |

use std::time::Duration;

use crate::{Error, EventType, Result};

/// The prefix of every exchange, queue and Redis key (`HOOKFLEET_NAMESPACE`): 1–64 characters
/// of `A-Z a-z 0-9 _ -`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Namespace(String);

impl Namespace {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn events_exchange(&self, event_type: &EventType) -> String {
        format!("{}.events.{}", self.0, event_type)
    }

    pub fn work_queue(&self, event_type: &EventType) -> String {
        format!("{}.work.{}", self.0, event_type)
    }

    pub fn retry_exchange(&self) -> String {
        format!("{}.retry", self.0)
    }

    /// The exchange and queue of the retry tier that waits `delay`. The delay is in the name so
    /// that a new schedule declares new queues instead of failing on PRECONDITION_FAILED.
    pub fn delay_tier(&self, delay: Duration) -> String {
        format!("{}.delay.{}ms", self.0, delay.as_millis())
    }

    /// The queue of the events of tenants with ordered endpoints, in the order the broker
    /// accepted them (docs/ordered.md).
    pub fn ordered_queue(&self) -> String {
        format!("{}.ordered", self.0)
    }

    /// The headers exchange every events exchange feeds, bound to [`Namespace::ordered_queue`]
    /// once per tenant with ordered endpoints.
    pub fn ordered_route(&self) -> String {
        format!("{}.ordered.route", self.0)
    }

    /// The queue where `endpoint.disabled` waited for the platform before operational webhooks
    /// (docs/contract.md §3 says how to move off it); no longer declared, only deleted.
    pub fn notices(&self) -> String {
        format!("{}.notices", self.0)
    }

    /// The dead-letter exchange and queue (docs/contract.md §3: `N.dead`).
    pub fn dead(&self) -> String {
        format!("{}.dead", self.0)
    }
}

impl TryFrom<String> for Namespace {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        let valid = (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
        if valid {
            Ok(Self(s))
        } else {
            Err(Error::Namespace(s))
        }
    }
}

impl std::str::FromStr for Namespace {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::try_from(s.to_owned())
    }
}

impl Default for Namespace {
    fn default() -> Self {
        Self("hookfleet".to_owned())
    }
}

impl std::fmt::Display for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_contract() {
        let ns: Namespace = "hf".parse().unwrap();
        let t: EventType = "log.blocked".parse().unwrap();
        assert_eq!(ns.events_exchange(&t), "hf.events.log.blocked");
        assert_eq!(ns.work_queue(&t), "hf.work.log.blocked");
        assert_eq!(ns.delay_tier(Duration::from_secs(30)), "hf.delay.30000ms");
        assert_eq!(ns.dead(), "hf.dead");
        assert_eq!(ns.notices(), "hf.notices");
    }

    #[test]
    fn namespaces_are_checked() {
        for bad in ["", "a.b", "a b", "ä", &"x".repeat(65)] {
            assert!(bad.parse::<Namespace>().is_err(), "{bad}");
        }
    }
}
