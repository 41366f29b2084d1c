//! De-duplication per (endpoint, event id): claim, then commit.
//!
//! Before a POST the worker takes a claim key (`SET NX PX`, which expires if the worker dies)
//! and looks for the event's mark. A 2xx adds the mark and drops the claim; a failure releases
//! the claim, but only if it is still this worker's (a claim that outlived its expiry may
//! belong to someone else by then). The only window for a repeat is a crash between the
//! receiver's 2xx and the commit.
//!
//! # Marks, compactly
//! A mark is the event id's SHA-256 cut to 96 bits: 64 bits stored as an integer member of a
//! small SET, and 32 that pick which set. Redis keeps a SET of at most 512 integers as an
//! *intset*, a sorted array of 8-byte integers, so a mark costs about 10 bytes where a key of
//! its own cost 200 (`hookfleet-bench --marks 1000000` measures both).
//!
//! The sets are per endpoint and time bucket (`HOOKFLEET_DEDUP_TTL` ÷ [`BUCKETS`]): a bucket's
//! sets expire whole a window after the bucket ends, so a mark lives at least the window and
//! at most one bucket more, and Redis keeps no expiry per mark. A bucket spreads its marks over
//! `n` sets; `n` starts where the previous bucket ended (a [`GROWTH`]th of it if that one's sets
//! stayed small), and when a set reaches [`SPLIT`] marks the bucket goes on with `GROWTH × n`
//! sets; lookups read every layout a bucket used, usually one. A small HASH per endpoint (the
//! *meta*) keeps each bucket's first and last `n`.
//!
//! Both steps are plain commands in one pipeline, no script: Redis runs a script's commands
//! several times slower than the same commands sent by a client. A claim takes the claim, reads
//! the meta of the buckets that can still hold a live mark ([`BUCKETS`] + 1 of them) and looks
//! in the sets the endpoint's previous claim found there (remembered by the worker); only when
//! the meta shows a layout it did not look in does it send a second pipeline. A commit adds the
//! mark, sets its set's expiry, counts the set and drops the claim. Scripts run only when a
//! bucket begins or splits.
//!
//! Two event ids share a mark only if they pick the same set and share 64 bits: about
//! m² / 2⁶⁵ for m marks of one endpoint in one set, 10⁻¹⁴ at its 512.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hookfleet_core::{EndpointId, EventId, Namespace};
use redis::{FromRedisValue, Script};
use sha2::{Digest, Sha256};

use crate::Result;
use crate::keys::Keys;

/// How many buckets one window spans: more means marks outlive the window by less, and a
/// claim reads more sets.
pub const BUCKETS: u64 = 4;
/// Marks at which a set stops taking more and its bucket multiplies its sets by [`GROWTH`]:
/// half the 512 of Redis's default `set-max-intset-entries`, beyond which a set costs 60
/// bytes a member, so that commits racing a split cannot overflow it.
pub const SPLIT: u64 = 256;
/// How many times more sets a bucket takes when one fills up: a bucket that grows from one
/// set to thousands passes through few layouts, so a claim reads few sets.
pub const GROWTH: u64 = 8;
/// A new bucket starts with a [`GROWTH`]th of the previous bucket's sets when that one's first
/// set holds fewer marks than this (traffic fell).
const SHRINK_BELOW: u64 = 16;

/// Returns the current bucket's last `n`. A bucket with no marks yet is created first: sized from
/// the one before, the meta's expiry moved on, long-gone buckets' fields dropped.
const LAYOUT: &str = r"
local prefix, first, b, expire = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local growth, shrink = tonumber(ARGV[5]), tonumber(ARGV[6])
local top, prev = unpack(redis.call('HMGET', KEYS[1], b, b - 1))
if top then return tonumber(top) end
top = tonumber(prev) or 1
if top > 1 and redis.call('SCARD', prefix .. (b - 1) .. ':' .. top .. ':0') < shrink then
  top = top / growth
end
redis.call('HSET', KEYS[1], b, top, b .. ':from', top)
if redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIREAT', KEYS[1], expire)
else
  redis.call('PEXPIREAT', KEYS[1], expire, 'GT')
end
for k = 2 * first - b - 2, first - 1 do redis.call('HDEL', KEYS[1], k, k .. ':from') end
return top
";

/// A set of bucket ARGV[1]'s layout ARGV[2] is full: the bucket goes on with ARGV[2] ×
/// ARGV[3] sets, unless another commit already moved it on. KEYS: the meta.
const SPLIT_BUCKET: &str = r"
if tonumber(redis.call('HGET', KEYS[1], ARGV[1])) == tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] * ARGV[3])
end
return 1
";

/// Deletes the claim only if it still holds this attempt's token.
const RELEASE: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The attempt is ours to make; commit or release with this.
    Acquired(Held),
    /// The endpoint already answered 2xx for this event.
    Done,
    /// Another attempt is in flight right now (another worker, or a redelivery).
    Busy,
}

/// A claim this worker holds, and where its mark goes if the attempt succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub token: String,
    /// The bucket the claim was made in, and its number of sets then (none: no marks yet).
    bucket: u64,
    sets: Option<u64>,
}

/// The layouts of one endpoint's live buckets, oldest first: `(bucket, first n, last n)`.
type Layouts = Vec<(u64, u64, u64)>;

/// Endpoints whose layouts a worker remembers, at most; beyond, it forgets them all.
const REMEMBERED: usize = 10_000;

#[derive(Debug, Clone)]
pub struct Dedup {
    redis: crate::Redis,
    keys: Keys,
    /// How long a claim lives if its holder dies: the delivery timeout plus a margin.
    claim_ttl: Duration,
    /// How long a mark lives at least (`HOOKFLEET_DEDUP_TTL`).
    window: Duration,
    layout: Script,
    split: Script,
    /// This process's claim-token prefix (random once); a counter makes each token unique, so
    /// a claim costs no random numbers of its own.
    owner: Arc<str>,
    claims: Arc<AtomicU64>,
    /// The layouts each endpoint's last claim saw: the next claim looks in those sets in the
    /// same round trip as it reads the layouts, and needs a second one only if they changed.
    seen: Arc<Mutex<HashMap<EndpointId, Layouts>>>,
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
            layout: Script::new(LAYOUT),
            split: Script::new(SPLIT_BUCKET),
            seen: Arc::default(),
            owner: format!("lock:{}:", uuid::Uuid::now_v7().simple()).into(),
            claims: Arc::default(),
        }
    }

    /// Takes the claim, reads the layouts of the endpoint's live buckets and looks in the sets
    /// the last claim's layouts name, in one pipeline of plain commands; then in any set those
    /// missed. The claim goes first: once it is ours, no other attempt can add this event's
    /// mark, so the layouts read after it name every set the mark can be in.
    pub async fn claim(&self, endpoint: &EndpointId, event: &EventId) -> Result<Claim> {
        let token = format!(
            "{}{}",
            self.owner,
            self.claims.fetch_add(1, Ordering::Relaxed)
        );
        let buckets = Buckets::new(self.window, now_ms());
        let mark = Mark::of(event);
        let meta = self.keys.marks_meta(endpoint, buckets.size_ms);
        let prefix = self.keys.marks_prefix(endpoint, buckets.size_ms);
        let guessed = self.remembered(endpoint, &buckets);

        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(self.keys.claim(endpoint, event))
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(self.claim_ttl.as_millis() as u64)
            .arg("GET");
        let fields = buckets
            .live()
            .flat_map(|b| [format!("{b}:from"), b.to_string()]);
        pipe.cmd("HMGET").arg(&meta).arg(fields.collect::<Vec<_>>());
        let guessed_sets = sets_of(&prefix, &guessed, mark);
        for set in &guessed_sets {
            pipe.cmd("SISMEMBER").arg(set).arg(mark.member);
        }
        let mut conn = self.redis.clone();
        let mut replies = pipe
            .query_async::<Vec<redis::Value>>(&mut conn)
            .await?
            .into_iter();
        let (Some(holder), Some(layouts)) = (replies.next(), replies.next()) else {
            return Err(redis::RedisError::from((redis::ErrorKind::Client, "short reply")).into());
        };
        let holder = Option::<String>::from_redis_value(holder).map_err(redis::RedisError::from)?;
        let layouts =
            Vec::<Option<u64>>::from_redis_value(layouts).map_err(redis::RedisError::from)?;
        let mut found = false;
        for reply in replies {
            found |= u8::from_redis_value(reply).map_err(redis::RedisError::from)? == 1;
        }

        let fresh = parse_layouts(&buckets, &layouts);
        if !found {
            let missed: Vec<String> = (sets_of(&prefix, &fresh, mark).into_iter())
                .filter(|set| !guessed_sets.contains(set))
                .collect();
            if !missed.is_empty() {
                let mut pipe = redis::pipe();
                for set in &missed {
                    pipe.cmd("SISMEMBER").arg(set).arg(mark.member);
                }
                let hits: Vec<u8> = pipe.query_async(&mut conn).await?;
                found = hits.contains(&1);
            }
        }
        let sets = (fresh.last())
            .filter(|(b, _, _)| *b == buckets.current)
            .map(|(_, _, last)| *last);
        self.remember(endpoint, fresh);

        match (found, holder) {
            (true, None) => {
                // The claim was taken for nothing: give it back.
                self.release(endpoint, event, &token, None).await?;
                Ok(Claim::Done)
            }
            (true, Some(_)) => Ok(Claim::Done),
            (false, Some(_)) => Ok(Claim::Busy),
            (false, None) => Ok(Claim::Acquired(Held {
                token,
                bucket: buckets.current,
                sets,
            })),
        }
    }

    /// Records that the endpoint answered 2xx, sending `also` (the attempt log's append, in
    /// the same slot) in the same round trip.
    pub async fn commit(
        &self,
        endpoint: &EndpointId,
        event: &EventId,
        held: &Held,
        also: Option<&redis::Cmd>,
    ) -> Result<()> {
        let buckets = Buckets::new(self.window, now_ms());
        let meta = self.keys.marks_meta(endpoint, buckets.size_ms);
        let prefix = self.keys.marks_prefix(endpoint, buckets.size_ms);
        let mut conn = self.redis.clone();
        let sets = match held.sets {
            Some(sets) if held.bucket == buckets.current => sets,
            // The bucket has no marks yet, or it turned since the claim (the mark goes in the
            // new one, so that it lives a whole window from now): a script creates it.
            _ => {
                let live = buckets.live();
                let sets: u64 = (self.layout)
                    .key(&meta)
                    .arg(&prefix)
                    .arg(live.start())
                    .arg(live.end())
                    .arg(buckets.expires_at_ms(buckets.current))
                    .arg(GROWTH)
                    .arg(SHRINK_BELOW)
                    .invoke_async(&mut conn)
                    .await?;
                sets.max(1)
            }
        };
        let mark = Mark::of(event);
        let set = set_key(&prefix, buckets.current, sets, mark);
        let mut pipe = redis::pipe();
        // The mark before the claim goes: a claim in between finds one or the other.
        pipe.cmd("SADD").arg(&set).arg(mark.member).ignore();
        pipe.cmd("PEXPIREAT")
            .arg(&set)
            .arg(buckets.expires_at_ms(buckets.current))
            .ignore();
        pipe.cmd("SCARD").arg(&set);
        pipe.cmd("DEL")
            .arg(self.keys.claim(endpoint, event))
            .ignore();
        if let Some(cmd) = also {
            pipe.add_command(cmd.clone()).ignore();
        }
        let (members,): (u64,) = pipe.query_async(&mut conn).await?;
        if members >= SPLIT {
            self.split
                .key(&meta)
                .arg(buckets.current)
                .arg(sets)
                .arg(GROWTH)
                .invoke_async::<()>(&mut conn)
                .await?;
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

    /// The layouts the endpoint's last claim saw, if they are of the same live buckets.
    fn remembered(&self, endpoint: &EndpointId, buckets: &Buckets) -> Layouts {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let mut layouts = seen.get(endpoint).cloned().unwrap_or_default();
        layouts.retain(|(b, _, _)| buckets.live().contains(b));
        layouts
    }

    fn remember(&self, endpoint: &EndpointId, layouts: Layouts) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= REMEMBERED && !seen.contains_key(endpoint) {
            seen.clear();
        }
        seen.insert(endpoint.clone(), layouts);
    }
}

/// The layouts in an HMGET of `{b}:from`, `{b}` for each live bucket.
fn parse_layouts(buckets: &Buckets, replies: &[Option<u64>]) -> Layouts {
    (buckets.live().zip(replies.chunks(2)))
        .filter_map(|(b, pair)| match pair {
            [Some(from), Some(last)] if *from >= 1 => Some((b, *from, *last)),
            _ => None,
        })
        .collect()
}

/// The set of each layout that would hold `mark`.
fn sets_of(prefix: &str, layouts: &Layouts, mark: Mark) -> Vec<String> {
    let mut sets = Vec::new();
    for &(bucket, from, last) in layouts {
        let mut n = from;
        while n <= last {
            sets.push(set_key(prefix, bucket, n, mark));
            n *= GROWTH;
        }
    }
    sets
}

/// Set `pick mod n` of layout `n` of `bucket` (built without `format!`, as the keys are: it
/// runs for every set a claim looks in).
fn set_key(prefix: &str, bucket: u64, n: u64, mark: Mark) -> String {
    let (mut b, mut l, mut i) = (
        itoa::Buffer::new(),
        itoa::Buffer::new(),
        itoa::Buffer::new(),
    );
    let set = u64::from(mark.pick) % n;
    [
        prefix,
        b.format(bucket),
        ":",
        l.format(n),
        ":",
        i.format(set),
    ]
    .concat()
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
    fn a_window_spans_five_buckets_and_every_live_one_is_read() {
        let b = Buckets::new(4 * HOUR, 100 * 3_600_000 + 5);
        assert_eq!(b.size_ms, 3_600_000);
        assert_eq!(b.current, 100);
        assert_eq!(b.live(), 96..=100);
        // A mark written in the oldest bucket read is still there; one bucket older has gone.
        let now = 100 * 3_600_000 + 5;
        assert!(b.expires_at_ms(96) > now);
        assert!(b.expires_at_ms(95) <= now);
    }

    #[test]
    fn a_mark_lives_at_least_the_window_and_at_most_a_bucket_more() {
        for offset in [0, 1, 1_799_999, 3_599_999] {
            let written = 50 * 3_600_000 + offset;
            let b = Buckets::new(4 * HOUR, written);
            let lives = b.expires_at_ms(b.current) - written;
            assert!(lives > 4 * 3_600_000 && lives <= 5 * 3_600_000, "{lives}");
        }
    }

    #[test]
    fn a_tiny_window_still_has_buckets() {
        let b = Buckets::new(Duration::from_millis(1), 1_000);
        assert_eq!(b.size_ms, 1);
    }

    #[test]
    fn a_set_key_names_bucket_layout_and_set() {
        let mark = Mark::of(&"evt_1".parse().unwrap());
        let set = u64::from(mark.pick) % 4;
        assert_eq!(
            set_key("hf:marks:{ep_1}:1000:", 17, 4, mark),
            format!("hf:marks:{{ep_1}}:1000:17:4:{set}")
        );
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
