//! De-duplication per (endpoint, event id): claim, then commit.
//!
//! Before a POST the worker claims the event with one script that looks for its mark and, if
//! there is none, takes a claim key (`SET NX PX`, which expires if the worker dies). A 2xx
//! adds the event's mark and drops the claim; a failure releases the claim, but only if it is
//! still this worker's (a claim that outlived its expiry may belong to someone else by then).
//! The only window for a repeat is a crash between the receiver's 2xx and the commit.
//!
//! # Marks, compactly
//! A mark is the event id's SHA-256 cut to 96 bits: 64 bits stored as an integer member of a
//! small SET, and 32 that pick which set. Redis keeps a SET of at most 512 integers as an
//! *intset*, a sorted array of 8-byte integers, so a mark costs about 10 bytes where a key of
//! its own cost 200 (`hookfleet-bench --marks 1000000` measures both).
//!
//! The sets are per endpoint and time bucket (`HOOKFLEET_DEDUP_TTL` ÷ [`BUCKETS`]): a bucket's
//! sets expire whole a window after the bucket ends, so a mark lives at least the window and
//! at most one bucket more, and Redis keeps no expiry per mark. Each bucket spreads its marks
//! over `n` sets (a power of two), `n` sized from the previous bucket's count so that a set
//! holds about [`TARGET`] marks; when one set reaches [`SPLIT`] anyway (traffic grew), the
//! bucket goes on with `2n` sets and lookups read both layouts. A small HASH per endpoint (the
//! *meta*) keeps each bucket's first and last `n` and its count. A claim reads the meta and
//! the one set per layout that can hold the event, in each bucket that can still hold a live
//! mark: [`BUCKETS`] + 1 buckets, so usually 9 set lookups, all in one script.
//!
//! Two event ids share a mark only if they pick the same set and share 64 bits: about
//! m² / 2⁶⁵ for m marks of one endpoint in one set, 10⁻¹⁴ at its 512.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hookfleet_core::{EndpointId, EventId, Namespace};
use redis::Script;
use sha2::{Digest, Sha256};

use crate::Result;
use crate::keys::Keys;

/// How many buckets one window spans: more means marks outlive the window by less, and a
/// claim reads more sets.
pub const BUCKETS: u64 = 8;
/// Marks per set a bucket is sized for (from the previous bucket's count).
pub const TARGET: u64 = 128;
/// Marks at which a set stops taking more and its bucket doubles its sets: well under the 512
/// of Redis's default `set-max-intset-entries`, beyond which a set costs 60 bytes a member.
pub const SPLIT: u64 = 256;

/// KEYS: the meta, the claim. ARGV: the sets' key prefix, the first and last live bucket,
/// the mark, its set selector, the claim token, the claim's TTL in ms. Returns `done`, or what
/// `SET … NX GET` returns: nothing when the claim is ours, the holder's token when not.
///
/// The set keys are built here from the prefix, which carries the endpoint's hash tag: they
/// are in the slot of the declared keys, which is what Redis Cluster checks.
const CLAIM: &str = r"
local mark, pick = ARGV[4], tonumber(ARGV[5])
for b = tonumber(ARGV[3]), tonumber(ARGV[2]), -1 do
  local layout = redis.call('HMGET', KEYS[1], b .. ':from', b)
  local n, last = tonumber(layout[1]), tonumber(layout[2])
  while n and n <= last do
    if redis.call('SISMEMBER', ARGV[1] .. b .. ':' .. n .. ':' .. (pick % n), mark) == 1 then
      return 'done'
    end
    n = n * 2
  end
end
return redis.call('SET', KEYS[2], ARGV[6], 'NX', 'PX', ARGV[7], 'GET')
";

/// KEYS: the meta, the claim. ARGV: the sets' key prefix, the current bucket, the mark, its
/// set selector, the bucket's expiry (Unix ms), [`TARGET`], [`SPLIT`], [`BUCKETS`].
const COMMIT: &str = r"
local meta, b = KEYS[1], tonumber(ARGV[2])
local n = tonumber(redis.call('HGET', meta, b))
if not n then
  local before = tonumber(redis.call('HGET', meta, (b - 1) .. ':n')) or 0
  n = 1
  while n * tonumber(ARGV[6]) < before do n = n * 2 end
  redis.call('HSET', meta, b, n, b .. ':from', n)
  for old = b - 2 * ARGV[8] - 2, b - ARGV[8] - 2 do
    redis.call('HDEL', meta, old, old .. ':from', old .. ':n')
  end
end
local set = ARGV[1] .. b .. ':' .. n .. ':' .. (tonumber(ARGV[4]) % n)
redis.call('SADD', set, ARGV[3])
redis.call('PEXPIREAT', set, ARGV[5])
redis.call('HINCRBY', meta, b .. ':n', 1)
if redis.call('SCARD', set) >= tonumber(ARGV[7]) then redis.call('HSET', meta, b, n * 2) end
if redis.call('PTTL', meta) == -1 then
  redis.call('PEXPIREAT', meta, ARGV[5])
else
  redis.call('PEXPIREAT', meta, ARGV[5], 'GT')
end
redis.call('DEL', KEYS[2])
return 1
";

/// Deletes the claim only if it still holds this attempt's token.
const RELEASE: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The attempt is ours to make; commit or release with this token.
    Acquired(String),
    /// The endpoint already answered 2xx for this event.
    Done,
    /// Another attempt is in flight right now (another worker, or a redelivery).
    Busy,
}

#[derive(Debug, Clone)]
pub struct Dedup {
    redis: crate::Redis,
    keys: Keys,
    /// How long a claim lives if its holder dies: the delivery timeout plus a margin.
    claim_ttl: Duration,
    /// How long a mark lives at least (`HOOKFLEET_DEDUP_TTL`).
    window: Duration,
    claim_script: Script,
    commit_script: Script,
}

impl Dedup {
    pub fn new(
        redis: crate::Redis,
        namespace: &Namespace,
        claim_ttl: Duration,
        window: Duration,
    ) -> Self {
        Self {
            redis,
            keys: Keys::new(namespace),
            claim_ttl,
            window,
            claim_script: Script::new(CLAIM),
            commit_script: Script::new(COMMIT),
        }
    }

    pub async fn claim(&self, endpoint: &EndpointId, event: &EventId) -> Result<Claim> {
        let token = format!("lock:{}", uuid::Uuid::now_v7().simple());
        let buckets = Buckets::new(self.window, now_ms());
        let mark = Mark::of(event);
        let live = buckets.live();
        let found: Option<String> = self
            .claim_script
            .key(self.keys.marks_meta(endpoint, buckets.size_ms))
            .key(self.keys.claim(endpoint, event))
            .arg(self.keys.marks_prefix(endpoint, buckets.size_ms))
            .arg(live.start())
            .arg(live.end())
            .arg(mark.member)
            .arg(mark.pick)
            .arg(&token)
            .arg(self.claim_ttl.as_millis() as u64)
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(match found.as_deref() {
            None => Claim::Acquired(token),
            Some("done") => Claim::Done,
            Some(_) => Claim::Busy,
        })
    }

    /// Records that the endpoint answered 2xx, sending `also` (the attempt log's append, in
    /// the same slot) in the same round trip.
    pub async fn commit(
        &self,
        endpoint: &EndpointId,
        event: &EventId,
        also: Option<&redis::Cmd>,
    ) -> Result<()> {
        let buckets = Buckets::new(self.window, now_ms());
        let mark = Mark::of(event);
        let mut commit = self
            .commit_script
            .key(self.keys.marks_meta(endpoint, buckets.size_ms));
        commit
            .key(self.keys.claim(endpoint, event))
            .arg(self.keys.marks_prefix(endpoint, buckets.size_ms))
            .arg(buckets.current)
            .arg(mark.member)
            .arg(mark.pick)
            .arg(buckets.expires_at_ms(buckets.current))
            .arg(TARGET)
            .arg(SPLIT)
            .arg(BUCKETS);
        let mut conn = self.redis.clone();
        let Some(also) = also else {
            commit.invoke_async::<()>(&mut conn).await?;
            return Ok(());
        };
        // EVALSHA and the append in one round trip; a Redis that has not seen the script
        // yet (a restart, a failover) answers NOSCRIPT, and the script alone goes again,
        // loading itself: the append was made either way.
        let mut pipe = redis::pipe();
        pipe.cmd("EVALSHA")
            .arg(self.commit_script.get_hash())
            .arg(2)
            .arg(self.keys.marks_meta(endpoint, buckets.size_ms))
            .arg(self.keys.claim(endpoint, event))
            .arg(self.keys.marks_prefix(endpoint, buckets.size_ms))
            .arg(buckets.current)
            .arg(mark.member)
            .arg(mark.pick)
            .arg(buckets.expires_at_ms(buckets.current))
            .arg(TARGET)
            .arg(SPLIT)
            .arg(BUCKETS)
            .ignore();
        pipe.add_command(also.clone()).ignore();
        match pipe.query_async::<()>(&mut conn).await {
            Err(e) if e.code() == Some("NOSCRIPT") => commit.invoke_async::<()>(&mut conn).await?,
            other => other?,
        }
        Ok(())
    }

    /// Gives the claim back after a failed attempt, if it is still ours, sending `also` (the
    /// attempt log's append) in the same round trip.
    pub async fn release(
        &self,
        endpoint: &EndpointId,
        event: &EventId,
        token: &str,
        also: Option<&redis::Cmd>,
    ) -> Result<()> {
        let mut pipe = redis::pipe();
        // EVAL with the source, not EVALSHA: a pipeline cannot fall back on NOSCRIPT, and
        // Redis caches the compiled script by its hash either way.
        pipe.cmd("EVAL")
            .arg(RELEASE)
            .arg(1)
            .arg(self.keys.claim(endpoint, event))
            .arg(token)
            .ignore();
        if let Some(cmd) = also {
            pipe.add_command(cmd.clone()).ignore();
        }
        pipe.query_async::<()>(&mut self.redis.clone()).await?;
        Ok(())
    }
}

/// An event's mark: 96 bits of SHA-256 of its id, 64 stored, 32 to pick the set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark {
    /// Stored as an integer, so that the set stays an intset.
    member: i64,
    pick: u32,
}

impl Mark {
    fn of(event: &EventId) -> Self {
        let hash = Sha256::digest(event.as_str().as_bytes());
        let (member, rest) = hash.split_at(8);
        Self {
            member: i64::from_be_bytes(member.try_into().unwrap_or_default()),
            pick: u32::from_be_bytes(rest[..4].try_into().unwrap_or_default()),
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The time buckets of one window at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Buckets {
    size_ms: u64,
    window_ms: u64,
    /// The bucket `now` falls in.
    current: u64,
}

impl Buckets {
    fn new(window: Duration, now_ms: u64) -> Self {
        let window_ms = (window.as_millis() as u64).max(BUCKETS);
        let size_ms = window_ms / BUCKETS;
        Self {
            size_ms,
            window_ms,
            current: now_ms / size_ms,
        }
    }

    /// When bucket `index` expires: a window after its end.
    fn expires_at_ms(&self, index: u64) -> u64 {
        (index + 1) * self.size_ms + self.window_ms
    }

    /// The buckets that may still exist now, oldest first: the one that began a window ago
    /// (it expires within a bucket) up to the current one.
    fn live(&self) -> std::ops::RangeInclusive<u64> {
        self.current.saturating_sub(BUCKETS)..=self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn a_window_spans_nine_buckets_and_every_live_one_is_read() {
        let b = Buckets::new(8 * HOUR, 100 * 3_600_000 + 5);
        assert_eq!(b.size_ms, 3_600_000);
        assert_eq!(b.current, 100);
        assert_eq!(b.live(), 92..=100);
        // A mark written in the oldest bucket read is still there; one bucket older has gone.
        let now = 100 * 3_600_000 + 5;
        assert!(b.expires_at_ms(92) > now);
        assert!(b.expires_at_ms(91) <= now);
    }

    #[test]
    fn a_mark_lives_at_least_the_window_and_at_most_a_bucket_more() {
        for offset in [0, 1, 1_799_999, 3_599_999] {
            let written = 50 * 3_600_000 + offset;
            let b = Buckets::new(8 * HOUR, written);
            let lives = b.expires_at_ms(b.current) - written;
            assert!(lives > 8 * 3_600_000 && lives <= 9 * 3_600_000, "{lives}");
        }
    }

    #[test]
    fn a_tiny_window_still_has_buckets() {
        let b = Buckets::new(Duration::from_millis(1), 1_000);
        assert_eq!(b.size_ms, 1);
    }

    #[test]
    fn a_mark_is_the_ids_sha256() {
        let a = Mark::of(&"evt_1".parse().unwrap());
        assert_eq!(a, Mark::of(&"evt_1".parse().unwrap()));
        assert_ne!(a, Mark::of(&"evt_2".parse().unwrap()));
        // `echo -n evt_1 | sha256sum`: pinned, so that a change of layout is a decision.
        assert_eq!(
            format!("{:016x}{:08x}", a.member, a.pick),
            "7d4e5a76eae6d8c165410ac1"
        );
    }
}
