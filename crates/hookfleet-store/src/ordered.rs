//! Ordered endpoints' queues (docs/ordered.md): per endpoint, a Redis list of the events
//! waiting for it, in the order the broker accepted them; a sorted set of the endpoints whose
//! head is due, by when; and a lease per endpoint, so that one worker of the fleet at a time
//! sends its head.
//!
//! Every key shares one hash tag (`{N:ordered}`), so each change below is one atomic script
//! even on a Redis Cluster; the price is that all ordered queues live on one node.

use std::sync::LazyLock;
use std::time::Duration;

use hookfleet_core::{EndpointId, Namespace, TenantId};
use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};

use crate::keys::Keys;
use crate::{Error, Result};

/// One event waiting at an ordered endpoint: what is needed to send it, sign it, and
/// dead-letter it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub tenant: String,
    /// Unix seconds when it happened (0: unknown).
    pub timestamp: i64,
    /// Attempts made so far.
    pub attempts: u32,
    /// The body, byte for byte (a JSON text).
    pub body: String,
}

/// An ordered endpoint's backlog, as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backlog {
    pub length: u64,
    /// Unix ms when its head is next tried (absent when nothing waits).
    pub next_attempt_ms: Option<i64>,
}

/// Appends each event `ARGV[2i+1]` to its endpoint's queue `KEYS[i+1]` unless `ARGV[2]`
/// events wait there already, and makes the endpoint (`ARGV[2i+2]`) due at `ARGV[1]` unless it
/// is due already. Returns how many became due, then the (1-based) pairs refused.
const APPEND: &str = r"
local due, refused = 0, {}
local cap = tonumber(ARGV[2])
for i = 2, #KEYS do
  if redis.call('LLEN', KEYS[i]) >= cap then
    refused[#refused + 1] = i - 1
  else
    redis.call('RPUSH', KEYS[i], ARGV[2 * i - 1])
    due = due + redis.call('ZADD', KEYS[1], 'NX', ARGV[1], ARGV[2 * i])
  end
end
table.insert(refused, 1, due)
return refused
";

/// What [`OrderedQueues::append`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Appended {
    /// Some endpoint became due by it.
    pub newly_due: bool,
    /// The (event index, endpoint) pairs not queued: that many events waited there already.
    pub refused: Vec<(usize, EndpointId)>,
}

static APPEND_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(APPEND));

/// Removes the head if it is still `ARGV[1]`. When nothing is left, forgets the endpoint and
/// gives back the lease (`KEYS[3]`, if `ARGV[4]` holds it); else the next one is due now, the
/// lease is extended by `ARGV[5]` ms for it, and it is returned: one round trip per event.
const POP: &str = r"
local head = redis.call('LINDEX', KEYS[1], 0)
if head and cjson.decode(head)['id'] == ARGV[1] then
  redis.call('LPOP', KEYS[1])
end
local next = redis.call('LINDEX', KEYS[1], 0)
local holds = redis.call('GET', KEYS[3]) == ARGV[4]
if not next then
  redis.call('ZREM', KEYS[2], ARGV[3])
  if holds then redis.call('DEL', KEYS[3]) end
  return false
end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
if not holds then return false end
redis.call('PEXPIRE', KEYS[3], ARGV[5])
return next
";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Notes a tenant to route into the ordered intake: `tenant` while at most `ARGV[2]` are,
/// `switch` for the one past that (the caller routes every tenant, then drops the tenants'
/// own routes), `all` once that happened.
const ROUTE: &str = r"
if redis.call('EXISTS', KEYS[2]) == 1 then return 'all' end
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('SCARD', KEYS[1]) <= tonumber(ARGV[2]) then return 'tenant' end
redis.call('SET', KEYS[2], 1)
return 'switch'
";

/// Forgets an endpoint whose queue is empty (it was not due after all).
const SETTLE: &str = r"
if redis.call('LLEN', KEYS[1]) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return 0
end
return 1
";

/// How a tenant's events reach the ordered intake (`N.ordered`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// By a route of its own (a headers binding on its `tenant`).
    Tenant,
    /// It is the one past [`ROUTED_ONE_BY_ONE`]: route every tenant now, then drop the
    /// tenants' own routes ([`OrderedQueues::routed_tenants`]).
    SwitchToAll,
    /// Every tenant's events already reach it.
    All,
}

/// Tenants routed into the ordered intake one by one, at most: the broker matches a message
/// against every headers binding, so 1,000 of them cost RabbitMQ more than the queue itself
/// (docs/ordered.md); past this, every event goes there.
pub const ROUTED_ONE_BY_ONE: usize = 32;

/// The ordered queues of one namespace.
#[derive(Debug, Clone)]
pub struct OrderedQueues {
    redis: crate::Redis,
    keys: Keys,
}

impl OrderedQueues {
    pub fn new(redis: crate::Redis, namespace: &Namespace) -> Self {
        Self {
            redis,
            keys: Keys::new(namespace),
        }
    }

    /// Adds each event at the end of the queue of each of its endpoints, in the order given,
    /// in one atomic script (the intake hands over a burst at once); an endpoint is due at
    /// `now_ms` unless it was due already (its head waits for a retry, or is being sent).
    /// An endpoint where `cap` events wait already takes none: the caller dead-letters them.
    /// Says whether one became due: only then is there something new for a pump to take up.
    pub async fn append(
        &self,
        events: &[(Waiting, Vec<EndpointId>)],
        now_ms: i64,
        cap: usize,
    ) -> Result<Appended> {
        let pairs: Vec<(usize, &EndpointId)> = (events.iter().enumerate())
            .flat_map(|(i, (_, endpoints))| endpoints.iter().map(move |e| (i, e)))
            .collect();
        if pairs.is_empty() {
            return Ok(Appended::default());
        }
        let mut script = APPEND_SCRIPT.key(self.keys.ordered_due());
        script.arg(now_ms).arg(cap);
        let encoded = (events.iter())
            .map(|(event, _)| encode(event))
            .collect::<Result<Vec<_>>>()?;
        for &(i, endpoint) in &pairs {
            script
                .key(self.keys.ordered_queue(endpoint))
                .arg(encoded[i].as_str())
                .arg(endpoint.as_str());
        }
        let mut conn = self.redis.clone();
        let answer: Vec<usize> = script.invoke_async(&mut conn).await?;
        let (due, refused) = answer.split_first().map_or((0, &[][..]), |(d, r)| (*d, r));
        Ok(Appended {
            newly_due: due > 0,
            refused: (refused.iter())
                .filter_map(|&pair| pairs.get(pair.checked_sub(1)?))
                .map(|&(i, endpoint)| (i, endpoint.clone()))
                .collect(),
        })
    }

    /// How `tenant`, which has an ordered endpoint now, is to be routed.
    pub async fn route(&self, tenant: &TenantId) -> Result<Route> {
        let mut conn = self.redis.clone();
        let route: String = Script::new(ROUTE)
            .key(self.keys.ordered_tenants())
            .key(self.keys.ordered_all())
            .arg(tenant.as_str())
            .arg(ROUTED_ONE_BY_ONE)
            .invoke_async(&mut conn)
            .await?;
        Ok(match route.as_str() {
            "tenant" => Route::Tenant,
            "switch" => Route::SwitchToAll,
            _ => Route::All,
        })
    }

    /// The tenants routed one by one so far.
    pub async fn routed_tenants(&self) -> Result<Vec<TenantId>> {
        let mut conn = self.redis.clone();
        let names: Vec<String> = conn.smembers(self.keys.ordered_tenants()).await?;
        Ok(names.into_iter().filter_map(|n| n.parse().ok()).collect())
    }

    /// Up to `limit` endpoints whose head is due at `now_ms`, most overdue first.
    pub async fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<EndpointId>> {
        let mut conn = self.redis.clone();
        let ids: Vec<String> = conn
            .zrangebyscore_limit(self.keys.ordered_due(), "-inf", now_ms, 0, limit as isize)
            .await?;
        Ok(ids.into_iter().filter_map(|id| id.parse().ok()).collect())
    }

    /// Takes the endpoint's lease for `ttl` as `token`; `false` when another worker has it.
    pub async fn lease(&self, endpoint: &EndpointId, token: &str, ttl: Duration) -> Result<bool> {
        let mut conn = self.redis.clone();
        let taken: Option<String> = redis::cmd("SET")
            .arg(self.keys.ordered_lease(endpoint))
            .arg(token)
            .arg("NX")
            .arg("PX")
            .arg(ms(ttl))
            .query_async(&mut conn)
            .await?;
        Ok(taken.is_some())
    }

    pub async fn release(&self, endpoint: &EndpointId, token: &str) -> Result<()> {
        let mut conn = self.redis.clone();
        Script::new(RELEASE)
            .key(self.keys.ordered_lease(endpoint))
            .arg(token)
            .invoke_async::<u8>(&mut conn)
            .await?;
        Ok(())
    }

    /// The endpoint's first waiting event; `None` (and the endpoint no longer due) when
    /// nothing waits.
    pub async fn head(&self, endpoint: &EndpointId) -> Result<Option<Waiting>> {
        let mut conn = self.redis.clone();
        let head: Option<String> = conn.lindex(self.keys.ordered_queue(endpoint), 0).await?;
        match head {
            // Only hookfleet writes these queues; an entry it cannot read must not wedge the
            // endpoint: it is dropped, and the error says so.
            Some(text) => match decode(&text) {
                Ok(head) => Ok(Some(head)),
                Err(error) => {
                    conn.lpop::<_, ()>(self.keys.ordered_queue(endpoint), None)
                        .await?;
                    Err(error)
                }
            },
            None => {
                Script::new(SETTLE)
                    .key(self.keys.ordered_queue(endpoint))
                    .key(self.keys.ordered_due())
                    .arg(endpoint.as_str())
                    .invoke_async::<u8>(&mut conn)
                    .await?;
                Ok(None)
            }
        }
    }

    /// The head failed: its attempts are written back and it is due again at `at_ms`.
    pub async fn retry_head(
        &self,
        endpoint: &EndpointId,
        head: &Waiting,
        at_ms: i64,
    ) -> Result<()> {
        let mut conn = self.redis.clone();
        redis::pipe()
            .atomic()
            .lset(self.keys.ordered_queue(endpoint), 0, encode(head)?)
            .zadd(self.keys.ordered_due(), endpoint.as_str(), at_ms)
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    /// The head (`id`) is done with: delivered, given up or filtered. Returns the next one,
    /// due at `now_ms`, for the holder of the lease `token` (extended by `ttl`); `None` when
    /// nothing is left (the lease is then given back) or the lease was lost.
    pub async fn pop(
        &self,
        endpoint: &EndpointId,
        id: &str,
        (token, ttl): (&str, Duration),
        now_ms: i64,
    ) -> Result<Option<Waiting>> {
        let mut conn = self.redis.clone();
        let next: Option<String> = Script::new(POP)
            .key(self.keys.ordered_queue(endpoint))
            .key(self.keys.ordered_due())
            .key(self.keys.ordered_lease(endpoint))
            .arg(id)
            .arg(now_ms)
            .arg(endpoint.as_str())
            .arg(token)
            .arg(ms(ttl))
            .invoke_async(&mut conn)
            .await?;
        next.map(|text| decode(&text)).transpose()
    }

    /// Drops everything waiting for the endpoint (it was removed or disabled).
    pub async fn clear(&self, endpoint: &EndpointId) -> Result<u64> {
        let mut conn = self.redis.clone();
        let (length,): (u64,) = redis::pipe()
            .atomic()
            .llen(self.keys.ordered_queue(endpoint))
            .del(self.keys.ordered_queue(endpoint))
            .ignore()
            .zrem(self.keys.ordered_due(), endpoint.as_str())
            .ignore()
            .query_async(&mut conn)
            .await?;
        Ok(length)
    }

    pub async fn backlog(&self, endpoint: &EndpointId) -> Result<Backlog> {
        let mut conn = self.redis.clone();
        let (length, due): (u64, Option<i64>) = redis::pipe()
            .llen(self.keys.ordered_queue(endpoint))
            .zscore(self.keys.ordered_due(), endpoint.as_str())
            .query_async(&mut conn)
            .await?;
        Ok(Backlog {
            length,
            next_attempt_ms: due.filter(|_| length > 0),
        })
    }

    /// Events waiting at every ordered endpoint, and how many endpoints have some.
    pub async fn total(&self) -> Result<(u64, u64)> {
        let mut conn = self.redis.clone();
        let endpoints: Vec<String> = conn.zrange(self.keys.ordered_due(), 0, -1).await?;
        let mut pipe = redis::pipe();
        for id in &endpoints {
            if let Ok(id) = id.parse::<EndpointId>() {
                pipe.llen(self.keys.ordered_queue(&id));
            }
        }
        let lengths: Vec<u64> = pipe.query_async(&mut conn).await?;
        Ok((lengths.iter().sum(), endpoints.len() as u64))
    }
}

fn encode(event: &Waiting) -> Result<String> {
    serde_json::to_string(event).map_err(|source| Error::CorruptOrdered(source.to_string()))
}

fn decode(text: &str) -> Result<Waiting> {
    serde_json::from_str(text).map_err(|source| Error::CorruptOrdered(source.to_string()))
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Against the local Redis (127.0.0.1:6379), in a namespace of its own.
#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Room enough for any of these tests.
    const CAP: usize = 100;

    fn waiting(id: &str) -> Waiting {
        Waiting {
            id: id.to_owned(),
            event_type: "log.blocked".to_owned(),
            tenant: "acme".to_owned(),
            timestamp: 0,
            attempts: 0,
            body: format!(r#"{{"id":"{id}"}}"#),
        }
    }

    #[tokio::test]
    async fn a_queue_keeps_its_order_through_retries_and_one_lease() {
        let (namespace, redis) = crate::scratch("hf-ordered");
        let q = OrderedQueues::new(redis.clone(), &namespace);
        let ep: EndpointId = "ep_o".parse().unwrap();
        for id in ["e1", "e2", "e3"] {
            q.append(&[(waiting(id), vec![ep.clone()])], 100, CAP)
                .await
                .unwrap();
        }
        assert_eq!(q.due(100, 10).await.unwrap(), std::slice::from_ref(&ep));
        let ttl = Duration::from_secs(10);
        assert!(q.lease(&ep, "a", ttl).await.unwrap());
        assert!(!q.lease(&ep, "b", ttl).await.unwrap(), "one at a time");
        // The head fails: it stays first, due later; a later append does not move it earlier.
        let mut head = q.head(&ep).await.unwrap().unwrap();
        assert_eq!(head.id, "e1");
        head.attempts = 1;
        q.retry_head(&ep, &head, 5_000).await.unwrap();
        q.append(&[(waiting("e4"), vec![ep.clone()])], 200, CAP)
            .await
            .unwrap();
        assert!(q.due(4_999, 10).await.unwrap().is_empty());
        let backlog = q.backlog(&ep).await.unwrap();
        assert_eq!((backlog.length, backlog.next_attempt_ms), (4, Some(5_000)));
        assert_eq!(q.head(&ep).await.unwrap().unwrap().attempts, 1);
        // Popping a head that is no longer first (a duplicate) removes nothing.
        let next = q.pop(&ep, "e2", ("a", ttl), 5_000).await.unwrap();
        assert_eq!(next.unwrap().id, "e1");
        q.release(&ep, "b").await.unwrap();
        assert!(
            !q.lease(&ep, "b", ttl).await.unwrap(),
            "only its holder releases"
        );
        let next = q.pop(&ep, "e1", ("b", ttl), 5_000).await.unwrap();
        assert!(next.is_none(), "not the lease's holder");
        for (id, next) in [("e2", "e3"), ("e3", "e4")] {
            let popped = q.pop(&ep, id, ("a", ttl), 5_000).await.unwrap();
            assert_eq!(popped.unwrap().id, next);
        }
        assert!(q.pop(&ep, "e4", ("a", ttl), 5_000).await.unwrap().is_none());
        assert!(q.due(i64::MAX, 10).await.unwrap().is_empty());
        assert!(
            q.lease(&ep, "b", ttl).await.unwrap(),
            "the last pop gave the lease back"
        );
        // Tenants are routed one by one up to the bound, then all at once.
        for n in 0..ROUTED_ONE_BY_ONE {
            let tenant = format!("t{n}").parse().unwrap();
            assert_eq!(q.route(&tenant).await.unwrap(), Route::Tenant);
        }
        let last = "t-last".parse().unwrap();
        assert_eq!(q.route(&last).await.unwrap(), Route::SwitchToAll);
        assert_eq!(q.route(&last).await.unwrap(), Route::All);
        let routed = q.routed_tenants().await.unwrap();
        assert_eq!(routed.len(), ROUTED_ONE_BY_ONE + 1);
        crate::purge(&redis, &namespace).await.unwrap();
    }

    #[tokio::test]
    async fn an_endpoint_with_cap_events_waiting_takes_no_more() {
        let (namespace, redis) = crate::scratch("hf-ordered");
        let q = OrderedQueues::new(redis.clone(), &namespace);
        let (a, b): (EndpointId, EndpointId) = ("ep_a".parse().unwrap(), "ep_b".parse().unwrap());
        let first = [
            (waiting("e1"), vec![a.clone()]),
            (waiting("e2"), vec![a.clone()]),
        ];
        assert!(q.append(&first, 100, 2).await.unwrap().refused.is_empty());
        // a is full; b, in the same burst, is not held back by it.
        let burst = [
            (waiting("e3"), vec![a.clone(), b.clone()]),
            (waiting("e4"), vec![b.clone(), a.clone()]),
        ];
        let appended = q.append(&burst, 100, 2).await.unwrap();
        assert_eq!(appended.refused, [(0, a.clone()), (1, a.clone())]);
        assert!(appended.newly_due, "b became due");
        assert_eq!(q.backlog(&a).await.unwrap().length, 2);
        assert_eq!(q.backlog(&b).await.unwrap().length, 2);
        // Once its head is done with, there is room for one again.
        assert!(q.lease(&a, "t", Duration::from_secs(10)).await.unwrap());
        (q.pop(&a, "e1", ("t", Duration::from_secs(10)), 100).await).unwrap();
        let appended = (q.append(&[(waiting("e5"), vec![a.clone()])], 100, 2).await).unwrap();
        assert!(appended.refused.is_empty());
        crate::purge(&redis, &namespace).await.unwrap();
    }

    #[tokio::test]
    async fn a_burst_keeps_each_endpoints_order_and_says_when_one_became_due() {
        let (namespace, redis) = crate::scratch("hf-ordered");
        let q = OrderedQueues::new(redis.clone(), &namespace);
        let (a, b): (EndpointId, EndpointId) = ("ep_a".parse().unwrap(), "ep_b".parse().unwrap());
        let appended = q.append(&[], 100, CAP).await.unwrap();
        assert_eq!(appended, Appended::default(), "nothing to queue");
        let burst = [
            (waiting("e1"), vec![a.clone(), b.clone()]),
            (waiting("e2"), vec![a.clone()]),
            (waiting("e3"), vec![b.clone()]),
        ];
        let appended = q.append(&burst, 100, CAP).await.unwrap();
        assert!(appended.newly_due, "both became due");
        let later = [(waiting("e3"), vec![a.clone()])];
        let appended = q.append(&later, 100, CAP).await.unwrap();
        assert!(!appended.newly_due, "a was due already");
        let ttl = Duration::from_secs(10);
        for (ep, ids) in [(&a, &["e1", "e2", "e3"][..]), (&b, &["e1", "e3"][..])] {
            assert!(q.lease(ep, "t", ttl).await.unwrap());
            let mut head = q.head(ep).await.unwrap();
            let mut seen = Vec::new();
            while let Some(event) = head {
                seen.push(event.id.clone());
                head = q.pop(ep, &event.id, ("t", ttl), 100).await.unwrap();
            }
            assert_eq!(seen, ids, "{ep}");
        }
        crate::purge(&redis, &namespace).await.unwrap();
    }
}
