//! Each endpoint's `rate_limit`, shared by every worker: turns handed out one interval apart.
//!
//! A turn is a moment on Redis's clock (so workers' clocks do not matter) at which one
//! delivery may be sent; turns are `1 s / rate` apart, so no one-second window ever holds more
//! than `rate + 1` deliveries, whichever workers send them. A delivery takes the next turn if
//! it is at most a horizon away, and waits for it; beyond that it takes none and is deferred,
//! to ask again when it comes back. Taking turns ahead keeps the endpoint busy at its rate
//! while a backlog comes and goes through the delay queues, and the horizon bounds how many
//! deliveries wait at once (`rate × horizon`, fleet-wide). One script call per delivery, and
//! only for endpoints with a limit.

use std::time::Duration;

use hookfleet_core::{EndpointId, Namespace};
use redis::Script;

use crate::Result;
use crate::keys::Keys;

/// KEYS[1]: the endpoint's next free turn, in µs of Redis's clock. ARGV: the interval between
/// turns and the horizon, in µs. Returns the µs until the turn taken, or -1 when the next free
/// one is beyond the horizon (then none is taken).
const TAKE_TURN: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local turn = tonumber(redis.call('GET', KEYS[1]) or '0')
if turn < now then turn = now end
local wait = turn - now
if wait > tonumber(ARGV[2]) then return -1 end
local next_turn = turn + tonumber(ARGV[1])
redis.call('SET', KEYS[1], string.format('%d', next_turn), 'PX', math.floor((next_turn - now) / 1000) + 1000)
return wait
"#;

/// When a delivery may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Its turn is now, or this long from now: it is held for it.
    After(Duration),
    /// Every turn within the horizon is taken: defer it, and ask again later.
    Later,
}

#[derive(Debug, Clone)]
pub struct RateLimits {
    redis: crate::Redis,
    keys: Keys,
    take_turn: Script,
}

impl RateLimits {
    pub fn new(redis: crate::Redis, namespace: &Namespace) -> Self {
        Self {
            redis,
            keys: Keys::new(namespace),
            take_turn: Script::new(TAKE_TURN),
        }
    }

    /// Takes the endpoint's next turn at `per_second` if it comes within `horizon`.
    pub async fn take(
        &self,
        endpoint: &EndpointId,
        per_second: u32,
        horizon: Duration,
    ) -> Result<Turn> {
        let interval_us = 1_000_000 / u64::from(per_second.max(1));
        let mut conn = self.redis.clone();
        let wait_us: i64 = self
            .take_turn
            .key(self.keys.rate(endpoint))
            .arg(interval_us)
            .arg(horizon.as_micros() as u64)
            .invoke_async(&mut conn)
            .await?;
        Ok(match u64::try_from(wait_us) {
            Ok(us) => Turn::After(Duration::from_micros(us)),
            Err(_) => Turn::Later,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Turns are one interval apart, and none is taken beyond the horizon.
    #[tokio::test]
    async fn turns_are_spaced_and_bounded_by_the_horizon() {
        let (namespace, redis) = crate::scratch("hf-rate");
        let limits = RateLimits::new(redis.clone(), &namespace);
        let endpoint = EndpointId::generate();
        let horizon = Duration::from_millis(450);
        let mut waits = Vec::new();
        for _ in 0..8 {
            waits.push(limits.take(&endpoint, 10, horizon).await.unwrap());
        }
        // At 10/s: now, then about 100, 200, 300, 400 ms ahead; the 6th turn (500 ms) is
        // beyond the horizon, so it and the rest are deferred.
        let Turn::After(first) = waits[0] else {
            panic!("{waits:?}")
        };
        assert!(first < Duration::from_millis(5), "{waits:?}");
        for (i, turn) in waits[1..5].iter().enumerate() {
            let Turn::After(wait) = *turn else {
                panic!("{waits:?}")
            };
            let expected = Duration::from_millis(100 * (i as u64 + 1));
            assert!(
                wait <= expected && wait + Duration::from_millis(50) > expected,
                "{waits:?}"
            );
        }
        assert_eq!(waits[5..], [Turn::Later; 3], "{waits:?}");
        crate::purge(&redis, &namespace).await.unwrap();
    }
}
