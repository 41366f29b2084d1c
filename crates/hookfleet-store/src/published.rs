//! Publish idempotency for `POST /v1/events`: an event id the API accepted in the last 24 h
//! is answered again without being published again.
//!
//! Each given id has one key: `pending:<fingerprint>` while its publish is in flight (so a
//! retry racing the first attempt neither publishes a second copy nor is told "accepted"
//! before the broker confirmed), then `accepted:<fingerprint>` for the window once the broker
//! confirmed. A publish that fails releases the key, so the platform's retry publishes. The
//! fingerprint (type, tenant, data) tells a retry from a different event reusing the id.

use std::time::Duration;

use hookfleet_core::{EventId, Namespace};
use redis::AsyncCommands;

use crate::Result;
use crate::keys::Keys;

/// How long an accepted id is remembered.
pub const WINDOW: Duration = Duration::from_secs(24 * 3600);
/// How long a claim outlives an API that died while publishing: then a retry publishes.
const PENDING: Duration = Duration::from_secs(30);

/// KEYS[1]: the id's key. ARGV: the fingerprint, the pending TTL in ms. Returns `new` (the
/// caller publishes), `pending`, `accepted` or `different`.
const CLAIM: &str = r#"
local held = redis.call('GET', KEYS[1])
if not held then
  redis.call('SET', KEYS[1], 'pending:' .. ARGV[1], 'PX', ARGV[2])
  return 'new'
end
local state, fingerprint = string.match(held, '^(%a+):(.*)$')
if fingerprint ~= ARGV[1] then return 'different' end
return state
"#;

/// What is known of an event id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Not in the window: publish it (the id is now claimed).
    New,
    /// The same event is being published right now.
    Pending,
    /// The same event was accepted within the window: answer as then.
    Accepted,
    /// Another event was accepted (or is pending) with this id.
    Different,
}

#[derive(Debug, Clone)]
pub struct Publications {
    redis: crate::Redis,
    keys: Keys,
    claim: redis::Script,
}

impl Publications {
    pub fn new(redis: crate::Redis, namespace: &Namespace) -> Self {
        Self {
            redis,
            keys: Keys::new(namespace),
            claim: redis::Script::new(CLAIM),
        }
    }

    /// Claims `id` for a publish of the event `fingerprint` names, unless it is known.
    pub async fn claim(&self, id: &EventId, fingerprint: &str) -> Result<Seen> {
        let mut conn = self.redis.clone();
        let seen: String = self
            .claim
            .key(self.keys.published(id))
            .arg(fingerprint)
            .arg(PENDING.as_millis() as u64)
            .invoke_async(&mut conn)
            .await?;
        Ok(match seen.as_str() {
            "new" => Seen::New,
            "pending" => Seen::Pending,
            "accepted" => Seen::Accepted,
            _ => Seen::Different,
        })
    }

    /// The broker confirmed `id`: it is accepted for the window.
    pub async fn accepted(&self, id: &EventId, fingerprint: &str) -> Result<()> {
        let mut conn = self.redis.clone();
        let value = format!("accepted:{fingerprint}");
        conn.set_ex::<_, _, ()>(self.keys.published(id), value, WINDOW.as_secs())
            .await?;
        Ok(())
    }

    /// The publish of `id` failed: a retry may publish it.
    pub async fn release(&self, id: &EventId) -> Result<()> {
        let mut conn = self.redis.clone();
        conn.del::<_, ()>(self.keys.published(id)).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn an_id_is_new_then_pending_then_accepted_and_its_content_is_checked() {
        let (namespace, redis) = crate::scratch("hf-pub");
        let publications = Publications::new(redis.clone(), &namespace);
        let id = EventId::generate();
        assert_eq!(publications.claim(&id, "a").await.unwrap(), Seen::New);
        assert_eq!(publications.claim(&id, "a").await.unwrap(), Seen::Pending);
        assert_eq!(publications.claim(&id, "b").await.unwrap(), Seen::Different);
        publications.release(&id).await.unwrap();
        assert_eq!(publications.claim(&id, "a").await.unwrap(), Seen::New);
        publications.accepted(&id, "a").await.unwrap();
        assert_eq!(publications.claim(&id, "a").await.unwrap(), Seen::Accepted);
        assert_eq!(publications.claim(&id, "b").await.unwrap(), Seen::Different);
        crate::purge(&redis, &namespace).await.unwrap();
    }
}
