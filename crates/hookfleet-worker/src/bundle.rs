//! Delay tiers in bundles: the copies bound for one tier within a few milliseconds travel as
//! one message.
//!
//! A retry or a deferral (a busy endpoint, an open circuit, a `Retry-After` pause) is a copy of
//! the message for one endpoint, published to a delay tier; it must be confirmed before its
//! message is acked, and one confirmed publish costs the broker about what delivering the
//! message does. So a dead endpoint's share of a backlog cost as much as a healthy one's, and
//! its deliveries circling through the deferral tiers cost a publish each per lap. The
//! [`Bundler`] gathers the copies for one tier and one work queue for up to [`LINGER`] (at
//! most [`MAX_ITEMS`] of them, [`MAX_BYTES`] in all) and publishes them as one message; each
//! waits for that message's confirm. When it comes back from its tier, the worker unpacks it
//! and handles each copy as if it had come alone ([`unpack`]).
//!
//! The trade-off: the deliveries of a bundle come back together, so the jitter spreads
//! bundles (each takes a random sub-tier) rather than deliveries; a wave is at most
//! [`MAX_ITEMS`] deliveries, which the per-endpoint cap and the circuit take in their stride.
//!
//! Format: the header `x-hookfleet-bundle` holds the number of deliveries; the body is, for
//! each, a big-endian `u32` length and that many bytes of its AMQP properties as JSON, then a
//! `u32` length and its body, byte for byte.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookfleet_amqp::ConfirmedPublisher;
use hookfleet_amqp::headers::set_int;
use hookfleet_core::Namespace;
use hookfleet_core::delays::jittered;
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};
use tokio::sync::watch;

use crate::{Error, Result};

/// The header that marks a bundle and counts its deliveries.
pub const HEADER: &str = "x-hookfleet-bundle";
/// How long a bundle waits for more deliveries after its first.
pub const LINGER: Duration = Duration::from_millis(20);
/// Deliveries in one bundle at most: the largest wave one can bring back.
pub const MAX_ITEMS: usize = 64;
/// Bytes in one bundle at most (a delivery larger than this travels alone).
pub const MAX_BYTES: usize = 1 << 20;

/// Gathers the copies bound for delay tiers into bundles and publishes them, confirmed.
#[derive(Debug)]
pub struct Bundler {
    publisher: Arc<ConfirmedPublisher>,
    namespace: Namespace,
    /// The bundle being gathered for each (tier base, work queue's routing key).
    open: Arc<Mutex<HashMap<(Duration, String), Open>>>,
    /// Numbers the bundles, so a linger flushes its own bundle and not a later one.
    next_id: AtomicU64,
}

/// A bundle still taking deliveries.
#[derive(Debug)]
struct Open {
    id: u64,
    body: Vec<u8>,
    items: usize,
    /// Where every delivery in it learns the outcome of its publish.
    outcome: watch::Sender<Option<Result<(), String>>>,
}

impl Bundler {
    pub fn new(publisher: Arc<ConfirmedPublisher>, namespace: Namespace) -> Self {
        Self {
            publisher,
            namespace,
            open: Arc::default(),
            next_id: AtomicU64::new(0),
        }
    }

    /// Adds one copy (already addressed to its endpoint) to the bundle for the tier of `base`
    /// (a jittered sub-tier of it) and the work queue of `routing_key`, and returns once that
    /// bundle is confirmed by the broker.
    pub async fn send(
        &self,
        base: Duration,
        routing_key: &str,
        properties: &BasicProperties,
        body: &[u8],
    ) -> Result<()> {
        let item = encode(properties, body);
        let key = (base, routing_key.to_owned());
        let mut outcome = {
            let mut open = lock(&self.open);
            if open
                .get(&key)
                .is_some_and(|b| b.body.len() + item.len() > MAX_BYTES)
            {
                // No room: the open bundle goes now, and this copy starts the next one.
                let bundle = open.remove(&key).expect("checked above");
                self.spawn_flush(key.clone(), Flush::Now(bundle));
            }
            let bundle = open.entry(key.clone()).or_insert_with(|| {
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                self.spawn_flush(key.clone(), Flush::AfterLinger(id));
                Open {
                    id,
                    body: Vec::new(),
                    items: 0,
                    outcome: watch::channel(None).0,
                }
            });
            bundle.body.extend_from_slice(&item);
            bundle.items += 1;
            let outcome = bundle.outcome.subscribe();
            if bundle.items >= MAX_ITEMS {
                let bundle = open.remove(&key).expect("just used");
                self.spawn_flush(key, Flush::Now(bundle));
            }
            outcome
        };
        let settled = outcome
            .wait_for(Option::is_some)
            .await
            .map_err(|_| Error::Bundle("the bundle was dropped unpublished".to_owned()))?;
        match settled.as_ref().expect("waited for Some") {
            Ok(()) => Ok(()),
            Err(error) => Err(Error::Bundle(error.clone())),
        }
    }

    /// Publishes a bundle: one taken out already, or the one numbered `id` once it lingered.
    fn spawn_flush(&self, key: (Duration, String), flush: Flush) {
        let publisher = self.publisher.clone();
        let namespace = self.namespace.clone();
        let open = self.open.clone();
        tokio::spawn(async move {
            let bundle = match flush {
                Flush::Now(bundle) => bundle,
                Flush::AfterLinger(id) => {
                    tokio::time::sleep(LINGER).await;
                    let mut open = lock(&open);
                    // Gone already if it filled up meanwhile: its own flush took it.
                    if open.get(&key).is_none_or(|b| b.id != id) {
                        return;
                    }
                    open.remove(&key).expect("checked above")
                }
            };
            let (base, routing_key) = key;
            let tier = namespace.delay_tier(jittered(base));
            let mut headers = FieldTable::default();
            set_int(&mut headers, HEADER, bundle.items as i64);
            let properties = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/octet-stream".into())
                .with_headers(headers);
            let sent = publisher
                .send(&tier, &routing_key, &bundle.body, properties)
                .await;
            let _ = bundle.outcome.send(Some(sent.map_err(|e| e.to_string())));
        });
    }
}

/// When a bundle goes.
#[derive(Debug)]
enum Flush {
    /// Taken out of the open ones: now.
    Now(Open),
    /// After the linger, if still open.
    AfterLinger(u64),
}

/// How many deliveries the message holds, if it is a bundle.
pub fn count(properties: &BasicProperties) -> Option<usize> {
    let headers = properties.headers().as_ref()?;
    match headers.inner().get(HEADER)? {
        AMQPValue::LongLongInt(n) => usize::try_from(*n).ok(),
        AMQPValue::LongInt(n) => usize::try_from(*n).ok(),
        _ => Some(0),
    }
}

/// One delivery's bytes in a bundle.
fn encode(properties: &BasicProperties, body: &[u8]) -> Vec<u8> {
    let properties = serde_json::to_vec(properties).expect("AMQP properties serialize");
    let mut item = Vec::with_capacity(8 + properties.len() + body.len());
    for part in [&properties[..], body] {
        item.extend_from_slice(&(part.len() as u32).to_be_bytes());
        item.extend_from_slice(part);
    }
    item
}

/// The copies in a bundle, or why it cannot be read (no worker makes one of more than
/// [`MAX_ITEMS`], so a larger one was not made by a worker).
pub fn unpack(mut body: &[u8]) -> std::result::Result<Vec<(BasicProperties, Vec<u8>)>, String> {
    let mut items = Vec::new();
    while !body.is_empty() {
        if items.len() == MAX_ITEMS {
            return Err(format!("more than {MAX_ITEMS} copies"));
        }
        let properties = take(&mut body)?;
        let properties = serde_json::from_slice(properties)
            .map_err(|e| format!("delivery {}: bad properties: {e}", items.len()))?;
        let payload = take(&mut body)?.to_vec();
        items.push((properties, payload));
    }
    Ok(items)
}

/// Takes one length-prefixed part off the front of `body`.
fn take<'a>(body: &mut &'a [u8]) -> std::result::Result<&'a [u8], String> {
    let (len, rest) = body.split_first_chunk::<4>().ok_or("truncated length")?;
    let len = u32::from_be_bytes(*len) as usize;
    if rest.len() < len {
        return Err(format!(
            "truncated: {len} bytes announced, {} left",
            rest.len()
        ));
    }
    let (part, rest) = rest.split_at(len);
    *body = rest;
    Ok(part)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock leaves whole bundles behind: keep using them.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookfleet_amqp::headers::set_str;

    fn properties(id: &str) -> BasicProperties {
        let mut headers = FieldTable::default();
        set_str(&mut headers, "tenant", "acme");
        set_str(&mut headers, "x-hookfleet-endpoint", "ep_1");
        set_int(&mut headers, "x-hookfleet-attempts", 2);
        BasicProperties::default()
            .with_message_id(id.into())
            .with_type("log.blocked".into())
            .with_timestamp(1_700_000_000)
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_headers(headers)
    }

    #[test]
    fn a_bundle_gives_back_every_delivery_byte_for_byte() {
        let items = [
            (properties("evt_1"), br#"{"a":1}"#.to_vec()),
            (properties("evt_2"), Vec::new()),
            (
                properties("evt_3"),
                "{\"é\": \"\\u0000\"}".as_bytes().to_vec(),
            ),
        ];
        let mut body = Vec::new();
        for (p, b) in &items {
            body.extend(encode(p, b));
        }
        assert_eq!(unpack(&body).unwrap(), items.to_vec());
        assert_eq!(unpack(&[]).unwrap(), vec![]);
    }

    #[test]
    fn a_damaged_bundle_is_an_error_not_a_panic() {
        let body = encode(&properties("evt_1"), b"{}");
        for cut in [1, 5, body.len() - 1] {
            assert!(unpack(&body[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = Vec::new();
        bad.extend_from_slice(&3u32.to_be_bytes());
        bad.extend_from_slice(b"{x}");
        bad.extend_from_slice(&0u32.to_be_bytes());
        assert!(unpack(&bad).unwrap_err().contains("bad properties"));
        let one = encode(&properties("evt_1"), b"{}");
        let too_many = one.repeat(MAX_ITEMS + 1);
        assert!(unpack(&too_many).unwrap_err().contains("more than 64"));
        assert_eq!(unpack(&one.repeat(MAX_ITEMS)).unwrap().len(), MAX_ITEMS);
    }

    #[test]
    fn only_a_bundle_has_a_count() {
        assert_eq!(count(&properties("evt_1")), None);
        let mut headers = FieldTable::default();
        set_int(&mut headers, HEADER, 3);
        let bundle = BasicProperties::default().with_headers(headers);
        assert_eq!(count(&bundle), Some(3));
    }
}
