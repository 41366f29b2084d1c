//! De-duplication per (endpoint, event id): claim, then commit.
//!
//! Before a POST the worker claims the event with one script that looks for its mark and, if
//! there is none, takes a claim key (`SET NX PX`, which expires if the worker dies). A 2xx
//! adds the event's mark and drops the claim; a failure releases the claim, but only if it is
//! still this worker's (a claim that outlived its expiry may belong to someone else by then).
//! The only window for a repeat is a crash between the receiver's 2xx and the commit.
//!
//! # Marks, compactly
//! A mark is 12 bytes: the first 96 bits of SHA-256 of the event id, a member of a SET per
//! endpoint and time bucket (`HOOKFLEET_DEDUP_TTL` ÷ [`BUCKETS`] long). A bucket expires whole,
//! `HOOKFLEET_DEDUP_TTL` after its end, so every mark lives at least the window and at most
//! one bucket more, and Redis keeps no key and no expiry per mark: about 50 bytes each
//! instead of the 200 a key per mark cost (`hookfleet-bench marks` measures it). A claim
//! checks the buckets that can still hold a live mark, [`BUCKETS`] + 1 of them, in one script.
//! Two event ids share a digest with a probability of n² / 2⁹⁷ for n marks of one endpoint in
//! one window: 10⁻¹¹ at a billion.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hookfleet_core::{EndpointId, EventId, Namespace};
use redis::Script;
use sha2::{Digest, Sha256};

use crate::Result;
use crate::keys::Keys;

/// How many buckets one window spans: more means marks outlive the window by less, and a
/// claim reads more sets.
pub const BUCKETS: u64 = 8;

/// Bytes of the event id's SHA-256 kept as its mark.
const DIGEST_BYTES: usize = 12;

/// KEYS[1]: the claim; KEYS[2..]: the mark sets that may hold the event, newest first.
/// ARGV: the claim token, the claim's TTL in ms, the event's digest. Returns `done`, or what
/// `SET … NX GET` returns: nothing when the claim is ours, the holder's token when not.
const CLAIM: &str = r"
for i = 2, #KEYS do
  if redis.call('SISMEMBER', KEYS[i], ARGV[3]) == 1 then return 'done' end
end
return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2], 'GET')
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
        }
    }

    pub async fn claim(&self, endpoint: &EndpointId, event: &EventId) -> Result<Claim> {
        let token = format!("lock:{}", uuid::Uuid::now_v7().simple());
        let mut script = self.claim_script.key(self.keys.claim(endpoint, event));
        let buckets = Buckets::new(self.window, now_ms());
        for index in buckets.live().rev() {
            script.key(self.keys.marks(endpoint, buckets.size_ms, index));
        }
        let found: Option<String> = script
            .arg(&token)
            .arg(self.claim_ttl.as_millis() as u64)
            .arg(&digest(event)[..])
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
        let marks = self.keys.marks(endpoint, buckets.size_ms, buckets.current);
        let mut pipe = redis::pipe();
        // The mark before the claim goes: a claim in between finds one or the other.
        pipe.cmd("SADD")
            .arg(&marks)
            .arg(&digest(event)[..])
            .ignore();
        pipe.cmd("PEXPIREAT")
            .arg(&marks)
            .arg(buckets.expires_at_ms(buckets.current))
            .ignore();
        pipe.cmd("DEL")
            .arg(self.keys.claim(endpoint, event))
            .ignore();
        if let Some(cmd) = also {
            pipe.add_command(cmd.clone()).ignore();
        }
        pipe.query_async::<()>(&mut self.redis.clone()).await?;
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

/// The event's mark: the first [`DIGEST_BYTES`] of SHA-256 of its id.
fn digest(event: &EventId) -> [u8; DIGEST_BYTES] {
    let hash = Sha256::digest(event.as_str().as_bytes());
    let mut mark = [0; DIGEST_BYTES];
    mark.copy_from_slice(&hash[..DIGEST_BYTES]);
    mark
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
    fn a_digest_is_twelve_bytes_of_the_ids_sha256() {
        let a = digest(&"evt_1".parse().unwrap());
        assert_eq!(a.len(), 12);
        assert_ne!(a, digest(&"evt_2".parse().unwrap()));
        assert_eq!(a, digest(&"evt_1".parse().unwrap()));
    }
}
