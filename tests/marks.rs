//! De-duplication marks in Redis: claim, commit, release, and the intset layout that keeps a
//! mark near 10 bytes. The checks take a Redis URL: `tests/cluster` runs them on a Redis
//! Cluster too.

use std::time::Duration;

use hookfleet_core::{EndpointId, EventId, Namespace};
use hookfleet_store::{Claim, Dedup, redis};
use hookfleet_testkit::{REDIS_URL, random_hex};

/// The window the checks use: its buckets are long enough that a run stays in one.
const WINDOW: Duration = Duration::from_secs(8 * 3600);

fn fresh(url: &str) -> (hookfleet_store::Redis, Namespace, Dedup) {
    let redis = hookfleet_store::connect(url).unwrap();
    let namespace: Namespace = format!("marks_{}", random_hex(12)).parse().unwrap();
    let dedup = Dedup::new(redis.clone(), &namespace, Duration::from_secs(10), WINDOW);
    (redis, namespace, dedup)
}

fn endpoint() -> EndpointId {
    format!("ep_{}", random_hex(16)).parse().unwrap()
}

fn event(n: usize) -> EventId {
    format!("evt_{n}").parse().unwrap()
}

/// A claim is taken once; a second is Busy until the first is released or committed; a
/// committed event is Done, for this endpoint only.
pub async fn claim_commit_release(url: &str) {
    let (redis, namespace, dedup) = fresh(url);
    let (a, b) = (endpoint(), endpoint());
    let Claim::Acquired(token) = dedup.claim(&a, &event(1)).await.unwrap() else {
        panic!("a first claim must be acquired");
    };
    assert_eq!(dedup.claim(&a, &event(1)).await.unwrap(), Claim::Busy);
    dedup
        .release(&a, &event(1), "lock:not-mine", None)
        .await
        .unwrap();
    assert_eq!(dedup.claim(&a, &event(1)).await.unwrap(), Claim::Busy);
    dedup.release(&a, &event(1), &token, None).await.unwrap();
    assert!(matches!(
        dedup.claim(&a, &event(1)).await.unwrap(),
        Claim::Acquired(_)
    ));
    dedup.commit(&a, &event(1), None).await.unwrap();
    assert_eq!(dedup.claim(&a, &event(1)).await.unwrap(), Claim::Done);
    assert!(matches!(
        dedup.claim(&b, &event(1)).await.unwrap(),
        Claim::Acquired(_)
    ));
    assert!(matches!(
        dedup.claim(&a, &event(2)).await.unwrap(),
        Claim::Acquired(_)
    ));
    hookfleet_store::purge(&redis, &namespace).await.unwrap();
}

/// 2 000 marks of one endpoint: every one is found, and every set holding them is an intset
/// of at most [`hookfleet_store::dedup::SPLIT`] members, because the bucket split as it grew.
pub async fn marks_stay_intsets_as_a_bucket_grows(url: &str) {
    let (redis, namespace, dedup) = fresh(url);
    let ep = endpoint();
    let n = 2_000;
    for i in 0..n {
        dedup.commit(&ep, &event(i), None).await.unwrap();
    }
    for i in 0..n {
        assert_eq!(
            dedup.claim(&ep, &event(i)).await.unwrap(),
            Claim::Done,
            "event {i}"
        );
    }
    let mut conn = redis.clone();
    let sets: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{namespace}:marks:{{{ep}}}:*:*:*:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        sets.len() > 1,
        "one bucket of {n} marks did not split: {sets:?}"
    );
    let mut members = 0;
    for set in &sets {
        let encoding: String = redis::cmd("OBJECT")
            .arg("ENCODING")
            .arg(set)
            .query_async(&mut conn)
            .await
            .unwrap();
        let size: u64 = redis::cmd("SCARD")
            .arg(set)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(encoding, "intset", "{set} holds {size}");
        assert!(size <= hookfleet_store::dedup::SPLIT, "{set} holds {size}");
        let ttl: i64 = redis::cmd("PTTL")
            .arg(set)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(ttl > WINDOW.as_millis() as i64, "{set} expires in {ttl} ms");
        members += size;
    }
    assert_eq!(members, n as u64, "a mark is missing or stored twice");
    hookfleet_store::purge(&redis, &namespace).await.unwrap();
}

#[tokio::test]
async fn a_claim_is_taken_once_and_a_committed_event_is_done() {
    claim_commit_release(REDIS_URL).await;
}

#[tokio::test]
async fn marks_stay_compact_intsets_as_an_endpoint_grows() {
    marks_stay_intsets_as_a_bucket_grows(REDIS_URL).await;
}
