//! Each endpoint's circuit breaker state, shared by every worker: one small hash per endpoint
//! that has failed since its last success, changed only by the Lua scripts below so that
//! concurrent workers never lose an update. The rule that reads it is
//! [`hookfleet_core::circuit`].
//!
//! Fields: `failures` (in a row), `open_until` and `probe_until` (unix ms), `failing_since`
//! (unix ms of the first failure after a success, for auto-disable), `disabled` (set once,
//! so that one worker alone disables the endpoint and publishes the notice) and
//! `failing_told` (set once per streak, by the worker that publishes
//! `message.attempt.failing`; the success that ends the streak then tells it recovered). A
//! success deletes the hash. It expires by itself after the auto-disable window plus a day without failures.

use std::time::Duration;

use hookfleet_core::circuit::CircuitState;
use hookfleet_core::{EndpointId, Namespace};
use redis::Script;

use crate::Result;
use crate::keys::Keys;

/// The breaker's settings.
#[derive(Debug, Clone, Copy)]
pub struct CircuitPolicy {
    /// Failures in a row that open the circuit (`HOOKFLEET_CIRCUIT_THRESHOLD`).
    pub threshold: u32,
    /// How long an open circuit defers deliveries before one probe (`HOOKFLEET_CIRCUIT_COOLDOWN`).
    pub cooldown: Duration,
    /// How long the probe holds the half-open circuit: the delivery timeout plus a margin.
    pub probe_hold: Duration,
    /// An endpoint failing without a break this long is disabled (`HOOKFLEET_DISABLE_AFTER`).
    pub disable_after: Duration,
}

/// What recording a failure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    pub state: CircuitState,
    /// This failure opened the circuit (a transition to count once, fleet-wide).
    pub opened: bool,
    /// The endpoint has failed for `disable_after`: this caller (and no other) disables it.
    pub disable: bool,
    /// The streak reached the threshold just now: this caller (and no other) tells the
    /// platform the endpoint is failing.
    pub failing: Option<Streak>,
}

/// A run of failures in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Streak {
    /// Unix ms of its first failure: with the endpoint, it names the streak.
    pub since_ms: i64,
    pub failures: u32,
}

/// What recording a success did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Closed {
    /// The circuit was open.
    pub was_open: bool,
    /// The streak this success ended had been told as failing: this caller (and no other)
    /// tells the platform the endpoint recovered.
    pub recovered: Option<Streak>,
}

/// The answer to "may I probe?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeGrant {
    /// This delivery is the probe.
    Granted,
    /// Another worker probes right now, or the circuit re-opened: defer.
    Refused,
    /// The circuit closed meanwhile: go ahead.
    Closed,
}

const FAILURE: &str = r"
local k, now = KEYS[1], tonumber(ARGV[1])
local failures = redis.call('HINCRBY', k, 'failures', 1)
redis.call('HSETNX', k, 'failing_since', now)
local open_until = tonumber(redis.call('HGET', k, 'open_until') or '0')
local opened = 0
if failures >= tonumber(ARGV[2]) and open_until <= now then
  open_until = now + tonumber(ARGV[3])
  redis.call('HSET', k, 'open_until', open_until)
  redis.call('HDEL', k, 'probe_until')
  opened = 1
end
local disable = 0
local since = tonumber(redis.call('HGET', k, 'failing_since'))
if now - since >= tonumber(ARGV[4]) then
  disable = redis.call('HSETNX', k, 'disabled', 1)
end
local failing = 0
if failures >= tonumber(ARGV[2]) then
  failing = redis.call('HSETNX', k, 'failing_told', 1)
end
redis.call('PEXPIRE', k, ARGV[5])
local probe = tonumber(redis.call('HGET', k, 'probe_until') or '0')
return {failures, open_until, probe, opened, disable, failing, since}
";

const PROBE: &str = r"
local k, now = KEYS[1], tonumber(ARGV[1])
local open_until = tonumber(redis.call('HGET', k, 'open_until') or '0')
if open_until == 0 then return 2 end
if open_until > now then return 0 end
if tonumber(redis.call('HGET', k, 'probe_until') or '0') > now then return 0 end
redis.call('HSET', k, 'probe_until', now + tonumber(ARGV[2]))
return 1
";

const PAUSE: &str = r"
local k, now = KEYS[1], tonumber(ARGV[1])
local open_until = tonumber(redis.call('HGET', k, 'open_until') or '0')
if tonumber(ARGV[2]) > open_until then
  redis.call('HSET', k, 'open_until', ARGV[2])
  redis.call('HDEL', k, 'probe_until')
end
redis.call('HSETNX', k, 'failures', 0)
redis.call('PEXPIRE', k, ARGV[3])
return 1
";

const SUCCESS: &str = r"
local k = KEYS[1]
local was_open = redis.call('HEXISTS', k, 'open_until')
local told = redis.call('HEXISTS', k, 'failing_told')
local since = tonumber(redis.call('HGET', k, 'failing_since') or '0')
local failures = tonumber(redis.call('HGET', k, 'failures') or '0')
redis.call('DEL', k)
return {was_open, told, since, failures}
";

/// The breaker state of every endpoint of one namespace.
#[derive(Debug, Clone)]
pub struct Circuits {
    redis: crate::Redis,
    keys: Keys,
    policy: CircuitPolicy,
}

impl Circuits {
    pub fn new(redis: crate::Redis, namespace: &Namespace, policy: CircuitPolicy) -> Self {
        Self {
            redis,
            keys: Keys::new(namespace),
            policy,
        }
    }

    pub fn policy(&self) -> &CircuitPolicy {
        &self.policy
    }

    /// The endpoint's state (all zero when it has not failed since its last success).
    pub async fn state(&self, endpoint: &EndpointId) -> Result<CircuitState> {
        let mut conn = self.redis.clone();
        let (failures, open_until, probe_until): (Option<u32>, Option<i64>, Option<i64>) =
            redis::cmd("HMGET")
                .arg(self.keys.circuit(endpoint))
                .arg(&["failures", "open_until", "probe_until"])
                .query_async(&mut conn)
                .await?;
        Ok(CircuitState {
            failures: failures.unwrap_or(0),
            open_until_ms: open_until.unwrap_or(0),
            probe_until_ms: probe_until.unwrap_or(0),
        })
    }

    /// Counts a failure at `now_ms`; opens the circuit at the threshold.
    pub async fn failure(&self, endpoint: &EndpointId, now_ms: i64) -> Result<Recorded> {
        let mut conn = self.redis.clone();
        type Answer = (u32, i64, i64, u8, u8, u8, i64);
        let (failures, open_until, probe_until, opened, disable, failing, since): Answer =
            Script::new(FAILURE)
                .key(self.keys.circuit(endpoint))
                .arg(now_ms)
                .arg(self.policy.threshold)
                .arg(ms(self.policy.cooldown))
                .arg(ms(self.policy.disable_after))
                .arg(self.expiry_ms())
                .invoke_async(&mut conn)
                .await?;
        Ok(Recorded {
            state: CircuitState {
                failures,
                open_until_ms: open_until,
                probe_until_ms: probe_until,
            },
            opened: opened == 1,
            disable: disable == 1,
            failing: (failing == 1).then_some(Streak {
                since_ms: since,
                failures,
            }),
        })
    }

    /// Records a success: the circuit is closed now.
    pub async fn success(&self, endpoint: &EndpointId) -> Result<Closed> {
        let mut conn = self.redis.clone();
        let (was_open, told, since_ms, failures): (u8, u8, i64, u32) = Script::new(SUCCESS)
            .key(self.keys.circuit(endpoint))
            .invoke_async(&mut conn)
            .await?;
        Ok(Closed {
            was_open: was_open == 1,
            recovered: (told == 1).then_some(Streak { since_ms, failures }),
        })
    }

    /// Asks to be the one probe of a half-open circuit.
    pub async fn probe(&self, endpoint: &EndpointId, now_ms: i64) -> Result<ProbeGrant> {
        let mut conn = self.redis.clone();
        let grant: u8 = Script::new(PROBE)
            .key(self.keys.circuit(endpoint))
            .arg(now_ms)
            .arg(ms(self.policy.probe_hold))
            .invoke_async(&mut conn)
            .await?;
        Ok(match grant {
            1 => ProbeGrant::Granted,
            2 => ProbeGrant::Closed,
            _ => ProbeGrant::Refused,
        })
    }

    /// Holds every delivery to the endpoint until `until_ms` (its `Retry-After`), without
    /// counting a failure.
    pub async fn pause(&self, endpoint: &EndpointId, now_ms: i64, until_ms: i64) -> Result<()> {
        let mut conn = self.redis.clone();
        Script::new(PAUSE)
            .key(self.keys.circuit(endpoint))
            .arg(now_ms)
            .arg(until_ms)
            .arg(self.expiry_ms())
            .invoke_async::<u8>(&mut conn)
            .await?;
        Ok(())
    }

    fn expiry_ms(&self) -> u64 {
        ms(self.policy.disable_after + Duration::from_secs(24 * 3600))
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Against the local Redis (127.0.0.1:6379), each test in its own namespace.
#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn circuits(threshold: u32, disable_after: Duration) -> (Circuits, Namespace) {
        let (namespace, redis) = crate::scratch("hf-circuit");
        let policy = CircuitPolicy {
            threshold,
            cooldown: Duration::from_secs(10),
            probe_hold: Duration::from_secs(3),
            disable_after,
        };
        (Circuits::new(redis, &namespace, policy), namespace)
    }

    #[tokio::test]
    async fn opens_at_the_threshold_lets_one_probe_and_closes_on_success() {
        let (c, ns) = circuits(3, Duration::from_secs(3600));
        let ep: EndpointId = "ep_a".parse().unwrap();
        let t = 1_000_000;
        for n in 1..=2 {
            let r = c.failure(&ep, t).await.unwrap();
            assert_eq!(
                (r.state.failures, r.opened, r.state.is_open()),
                (n, false, false)
            );
        }
        let r = c.failure(&ep, t).await.unwrap();
        assert!(r.opened && r.state.open_until_ms == t + 10_000);
        // A failure of an attempt that started before it opened does not extend it.
        let r = c.failure(&ep, t + 1).await.unwrap();
        assert!(!r.opened && r.state.open_until_ms == t + 10_000);
        assert_eq!(c.state(&ep).await.unwrap().open_until_ms, t + 10_000);

        assert_eq!(c.probe(&ep, t + 5_000).await.unwrap(), ProbeGrant::Refused);
        assert_eq!(c.probe(&ep, t + 10_000).await.unwrap(), ProbeGrant::Granted);
        assert_eq!(c.probe(&ep, t + 10_001).await.unwrap(), ProbeGrant::Refused);
        // The probe failed: open for another cool-down.
        let r = c.failure(&ep, t + 11_000).await.unwrap();
        assert!(r.opened && r.state.open_until_ms == t + 21_000);
        assert_eq!(c.probe(&ep, t + 21_000).await.unwrap(), ProbeGrant::Granted);
        let closed = c.success(&ep).await.unwrap();
        assert!(closed.was_open, "the probe's success closes it");
        assert_eq!(c.state(&ep).await.unwrap(), CircuitState::default());
        assert_eq!(c.success(&ep).await.unwrap(), Closed::default());
        assert_eq!(c.probe(&ep, t).await.unwrap(), ProbeGrant::Closed);
        crate::purge(&c.redis, &ns).await.unwrap();
    }

    #[tokio::test]
    async fn a_streak_is_told_failing_once_and_recovered_once() {
        let (c, ns) = circuits(3, Duration::from_secs(3600));
        let ep: EndpointId = "ep_d".parse().unwrap();
        let t = 5_000;
        assert_eq!(c.failure(&ep, t).await.unwrap().failing, None);
        assert_eq!(c.failure(&ep, t + 1).await.unwrap().failing, None);
        let streak = Streak {
            since_ms: t,
            failures: 3,
        };
        assert_eq!(c.failure(&ep, t + 2).await.unwrap().failing, Some(streak));
        assert_eq!(c.failure(&ep, t + 3).await.unwrap().failing, None, "once");
        let streak = Streak {
            failures: 4,
            ..streak
        };
        assert_eq!(c.success(&ep).await.unwrap().recovered, Some(streak));
        assert_eq!(c.success(&ep).await.unwrap().recovered, None, "once");
        // A short streak is never told, so neither is its end.
        c.failure(&ep, t + 10).await.unwrap();
        assert_eq!(c.success(&ep).await.unwrap().recovered, None);
        crate::purge(&c.redis, &ns).await.unwrap();
    }

    #[tokio::test]
    async fn a_pause_holds_without_counting_a_failure() {
        let (c, ns) = circuits(3, Duration::from_secs(3600));
        let ep: EndpointId = "ep_b".parse().unwrap();
        c.pause(&ep, 1_000, 4_000).await.unwrap();
        let s = c.state(&ep).await.unwrap();
        assert_eq!((s.failures, s.open_until_ms), (0, 4_000));
        c.pause(&ep, 1_000, 2_000).await.unwrap();
        assert_eq!(
            c.state(&ep).await.unwrap().open_until_ms,
            4_000,
            "never shortened"
        );
        crate::purge(&c.redis, &ns).await.unwrap();
    }

    #[tokio::test]
    async fn failing_for_the_window_disables_once() {
        let (c, ns) = circuits(100, Duration::from_secs(60));
        let ep: EndpointId = "ep_c".parse().unwrap();
        assert!(!c.failure(&ep, 0).await.unwrap().disable);
        assert!(!c.failure(&ep, 59_999).await.unwrap().disable);
        assert!(c.failure(&ep, 60_000).await.unwrap().disable);
        assert!(!c.failure(&ep, 60_001).await.unwrap().disable, "only once");
        // A success starts the window afresh.
        c.success(&ep).await.unwrap();
        assert!(!c.failure(&ep, 120_000).await.unwrap().disable);
        crate::purge(&c.redis, &ns).await.unwrap();
    }
}
