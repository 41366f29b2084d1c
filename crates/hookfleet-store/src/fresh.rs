//! [`Fresh`]: values read from Redis and kept for a short TTL, refreshed *single-flight*.
//!
//! A busy worker holds a thousand messages at once, and most are for the same few tenants and
//! endpoints: when a cached value expires, every one of them would read it again at the same
//! moment. Here one caller (the *leader*) reads it while the others go on with the value they
//! had, if it is not too old (a bound of the caller's), or wait for the leader's read. A leader that fails
//! or is cancelled wakes its waiters, and each of them then reads for itself once: an outage
//! costs no more reads than before, and nobody waits on a read that is not happening.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

// tokio's clock, so that tests can pause and advance it.
use tokio::sync::watch;
use tokio::time::Instant;

/// Entries beyond this many trigger a sweep of the stale ones, bounding memory when values come
/// for very many keys.
const SWEEP_ABOVE: usize = 10_000;

#[derive(Debug)]
pub struct Fresh<K, V> {
    ttl: Duration,
    /// How old a value may be served while one read refreshes it.
    stale: Duration,
    entries: Mutex<HashMap<K, Entry<V>>>,
}

#[derive(Debug)]
struct Entry<V> {
    value: Option<(Instant, V)>,
    /// A read under way: closed when it ends, however it ends.
    flight: Option<watch::Receiver<()>>,
}

impl<V> Default for Entry<V> {
    fn default() -> Self {
        Self {
            value: None,
            flight: None,
        }
    }
}

/// What a caller does when the value is not fresh.
enum Role {
    Lead(watch::Sender<()>),
    Wait(watch::Receiver<()>),
}

impl<K: Hash + Eq + Clone, V: Clone> Fresh<K, V> {
    /// Values fresh for `ttl`, served up to `stale` old (at least `ttl`) while one read
    /// refreshes them.
    pub fn new(ttl: Duration, stale: Duration) -> Self {
        Self {
            ttl,
            stale: stale.max(ttl),
            entries: Mutex::default(),
        }
    }

    /// The value of `key`, at most the TTL old (the stale bound while one read refreshes it),
    /// read with `fetch` by one caller at a time.
    pub async fn get<F, Fut, E>(&self, key: &K, fetch: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let mut waited = false;
        loop {
            let role = {
                let mut entries = self.lock();
                let now = Instant::now();
                if entries.len() > SWEEP_ABOVE {
                    let keep = self.stale;
                    entries.retain(|_, e| {
                        e.flight.is_some()
                            || e.value.as_ref().is_some_and(|(at, _)| now - *at < keep)
                    });
                }
                let entry = entries.entry(key.clone()).or_default();
                let age = entry.value.as_ref().map(|(at, _)| now - *at);
                match (&entry.value, &entry.flight) {
                    (Some((_, value)), _) if age < Some(self.ttl) => return Ok(value.clone()),
                    (Some((_, value)), Some(_)) if age < Some(self.stale) => {
                        return Ok(value.clone());
                    }
                    // The leader's read ended without a value: read once for ourselves.
                    _ if waited => break,
                    (_, Some(flight)) => Role::Wait(flight.clone()),
                    (_, None) => {
                        let (done, flight) = watch::channel(());
                        entry.flight = Some(flight);
                        Role::Lead(done)
                    }
                }
            };
            match role {
                Role::Wait(mut flight) => {
                    // Resolves with an error once the leader drops its sender.
                    let _ = flight.changed().await;
                    waited = true;
                }
                Role::Lead(done) => {
                    let landing = Landing {
                        fresh: self,
                        key,
                        done: Some(done),
                    };
                    let value = fetch().await?;
                    landing.land(value.clone());
                    return Ok(value);
                }
            }
        }
        fetch().await
    }

    /// The value of `key` if it is fresh, without reading.
    pub fn peek(&self, key: &K) -> Option<V> {
        let entries = self.lock();
        let (at, value) = entries.get(key)?.value.as_ref()?;
        (at.elapsed() < self.ttl).then(|| value.clone())
    }

    /// Sets the value of `key` as of now (what the caller just wrote, say).
    pub fn insert(&self, key: K, value: V) {
        self.lock().entry(key).or_default().value = Some((Instant::now(), value));
    }

    /// Forgets the value of `key`: the next `get` reads it.
    pub fn remove(&self, key: &K) {
        if let Some(entry) = self.lock().get_mut(key) {
            entry.value = None;
        }
    }

    /// Keeps the values, whatever their age, for which `keep` is true; drops the rest.
    pub fn retain(&self, mut keep: impl FnMut(&V, Duration) -> bool) {
        let now = Instant::now();
        self.lock().retain(|_, e| {
            e.flight.is_some() || e.value.as_ref().is_some_and(|(at, v)| keep(v, now - *at))
        });
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, Entry<V>>> {
        // A panic while holding this lock leaves a valid map behind: keep using it.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The leader's read in flight: ends it on drop, with or without a value, and wakes the
/// waiters (a leader whose future is dropped mid-read must not leave them waiting).
struct Landing<'a, K: Hash + Eq + Clone, V: Clone> {
    fresh: &'a Fresh<K, V>,
    key: &'a K,
    /// Dropped when the read ends, which wakes the waiters.
    done: Option<watch::Sender<()>>,
}

impl<K: Hash + Eq + Clone, V: Clone> Landing<'_, K, V> {
    fn land(self, value: V) {
        let mut entries = self.fresh.lock();
        let entry = entries.entry(self.key.clone()).or_default();
        entry.value = Some((Instant::now(), value));
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Drop for Landing<'_, K, V> {
    fn drop(&mut self) {
        if let Some(entry) = self.fresh.lock().get_mut(self.key) {
            entry.flight = None;
        }
        drop(self.done.take());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    type Reads = Arc<AtomicUsize>;

    /// A read that takes 10 ms and counts itself.
    async fn read(reads: Reads, value: u32) -> Result<u32, String> {
        reads.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(10)).await;
        Ok(value)
    }

    #[tokio::test(start_paused = true)]
    async fn a_hundred_callers_of_an_expired_value_make_one_read() {
        let fresh = Arc::new(Fresh::<&str, u32>::new(
            Duration::from_secs(1),
            Duration::from_secs(2),
        ));
        let reads = Reads::default();
        let all = (0..100).map(|_| {
            let (fresh, reads) = (fresh.clone(), reads.clone());
            tokio::spawn(async move { fresh.get(&"k", || read(reads, 1)).await })
        });
        for value in futures_util::future::join_all(all).await {
            assert_eq!(value.unwrap().unwrap(), 1);
        }
        assert_eq!(reads.load(Ordering::SeqCst), 1, "the first read is shared");

        tokio::time::advance(Duration::from_millis(1500)).await;
        let all = (0..100).map(|_| {
            let (fresh, reads) = (fresh.clone(), reads.clone());
            tokio::spawn(async move { fresh.get(&"k", || read(reads, 2)).await })
        });
        let values: Vec<u32> = (futures_util::future::join_all(all).await.into_iter())
            .map(|v| v.unwrap().unwrap())
            .collect();
        assert_eq!(reads.load(Ordering::SeqCst), 2, "one refresh");
        assert!(values.contains(&2), "the leader gets the new value");
        assert!(
            values.iter().all(|v| *v == 1 || *v == 2),
            "the rest go on with the old one meanwhile: {values:?}"
        );
        assert_eq!(fresh.get(&"k", || read(reads.clone(), 3)).await, Ok(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_value_too_old_is_waited_for() {
        let fresh = Arc::new(Fresh::<&str, u32>::new(
            Duration::from_secs(1),
            Duration::from_secs(2),
        ));
        let reads = Reads::default();
        fresh.insert("k", 1);
        tokio::time::advance(Duration::from_secs(3)).await;
        let leader = {
            let (fresh, reads) = (fresh.clone(), reads.clone());
            tokio::spawn(async move { fresh.get(&"k", || read(reads, 2)).await })
        };
        tokio::task::yield_now().await;
        // 3 s old is past twice the TTL: this caller waits for the leader's read.
        assert_eq!(fresh.get(&"k", || read(reads.clone(), 9)).await, Ok(2));
        assert_eq!(leader.await.unwrap(), Ok(2));
        assert_eq!(reads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_or_cancelled_read_wakes_its_waiters() {
        let fresh = Arc::new(Fresh::<&str, u32>::new(
            Duration::from_secs(1),
            Duration::from_secs(2),
        ));
        let failing = {
            let fresh = fresh.clone();
            tokio::spawn(async move {
                fresh
                    .get(&"k", || async {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        Err::<u32, _>("down".to_owned())
                    })
                    .await
            })
        };
        tokio::task::yield_now().await;
        let reads = Reads::default();
        assert_eq!(fresh.get(&"k", || read(reads.clone(), 5)).await, Ok(5));
        assert_eq!(failing.await.unwrap(), Err("down".to_owned()));

        fresh.remove(&"k");
        let cancelled = {
            let fresh = fresh.clone();
            tokio::spawn(async move {
                fresh
                    .get(&"k", std::future::pending::<Result<u32, String>>)
                    .await
            })
        };
        tokio::task::yield_now().await;
        let waiter = {
            let (fresh, reads) = (fresh.clone(), reads.clone());
            tokio::spawn(async move { fresh.get(&"k", || read(reads, 6)).await })
        };
        tokio::task::yield_now().await;
        cancelled.abort();
        assert_eq!(waiter.await.unwrap(), Ok(6));
    }

    #[tokio::test(start_paused = true)]
    async fn peek_insert_remove_and_retain() {
        let fresh = Fresh::<&str, u32>::new(Duration::from_secs(1), Duration::from_secs(2));
        assert_eq!(fresh.peek(&"k"), None);
        fresh.insert("k", 7);
        assert_eq!(fresh.peek(&"k"), Some(7));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(fresh.peek(&"k"), None, "expired");
        fresh.insert("k", 8);
        fresh.remove(&"k");
        assert_eq!(fresh.peek(&"k"), None);
        fresh.insert("a", 1);
        fresh.insert("b", 2);
        fresh.retain(|v, _| *v == 2);
        assert_eq!((fresh.peek(&"a"), fresh.peek(&"b")), (None, Some(2)));
    }
}
