//! The storm bound of `message.attempt.exhausted`: when an endpoint goes down, every event in
//! its backlog gives up there, one after another, and a notice for each would bury the
//! platform (and its customer's inbox) under thousands saying the same. So each endpoint is
//! told at most once per [`EXHAUSTED_WINDOW`], fleet-wide; the events given up on meanwhile
//! are counted, and the count rides on the next notice as `suppressed`. One Lua script per
//! exhaustion, so concurrent workers agree on who tells.

use std::time::Duration;

use hookfleet_core::{EndpointId, Namespace};
use redis::Script;

use crate::Result;
use crate::keys::Keys;

/// Each endpoint gets at most one `message.attempt.exhausted` this often.
pub const EXHAUSTED_WINDOW: Duration = Duration::from_secs(60);

/// How long a held-back count is kept for the next notice without a new exhaustion.
const KEEP: Duration = Duration::from_secs(7 * 24 * 3600);

const PASS: &str = r"
local k, now = KEYS[1], tonumber(ARGV[1])
local next_at = tonumber(redis.call('HGET', k, 'next_at') or '0')
local told = 0
local held = 0
if now >= next_at then
  held = tonumber(redis.call('HGET', k, 'held') or '0')
  redis.call('HSET', k, 'next_at', now + tonumber(ARGV[2]), 'held', 0)
  told = 1
else
  redis.call('HINCRBY', k, 'held', 1)
end
redis.call('PEXPIRE', k, ARGV[3])
return {told, held}
";

/// Who tells of each endpoint's exhausted events.
#[derive(Debug, Clone)]
pub struct ExhaustedNotices {
    redis: crate::Redis,
    keys: Keys,
}

impl ExhaustedNotices {
    pub fn new(redis: crate::Redis, namespace: &Namespace) -> Self {
        Self {
            redis,
            keys: Keys::new(namespace),
        }
    }

    /// An event gave up at `endpoint` at `now_ms`: `Some(suppressed)` when this caller tells
    /// (with how many were held back since the last notice), `None` when it is held back.
    pub async fn pass(&self, endpoint: &EndpointId, now_ms: i64) -> Result<Option<u64>> {
        let mut conn = self.redis.clone();
        let (told, held): (u8, u64) = Script::new(PASS)
            .key(self.keys.exhausted_notices(endpoint))
            .arg(now_ms)
            .arg(EXHAUSTED_WINDOW.as_millis() as u64)
            .arg(KEEP.as_millis() as u64)
            .invoke_async(&mut conn)
            .await?;
        Ok((told == 1).then_some(held))
    }
}

/// Against the local Redis (127.0.0.1:6379), in a namespace of its own.
#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn one_notice_a_window_carries_what_was_held_back() {
        let (namespace, redis) = crate::scratch("hf-gate");
        let gate = ExhaustedNotices::new(redis.clone(), &namespace);
        let (a, b): (EndpointId, EndpointId) = ("ep_a".parse().unwrap(), "ep_b".parse().unwrap());
        let t = 1_000_000;
        assert_eq!(gate.pass(&a, t).await.unwrap(), Some(0));
        for i in 1..=999 {
            assert_eq!(gate.pass(&a, t + i).await.unwrap(), None);
        }
        assert_eq!(gate.pass(&b, t).await.unwrap(), Some(0), "per endpoint");
        let next = t + EXHAUSTED_WINDOW.as_millis() as i64;
        assert_eq!(gate.pass(&a, next).await.unwrap(), Some(999));
        assert_eq!(gate.pass(&a, next + 1).await.unwrap(), None);
        crate::purge(&redis, &namespace).await.unwrap();
    }
}
