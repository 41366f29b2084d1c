//! Listing and replaying the dead-letter queue `N.dead`.
//!
//! Both read with `basic.get` and no auto-ack. Listing never acks, and closing the channel puts
//! every message back. Replay acks a dead letter only after its copy was confirmed on its way
//! back to the work queue, so an interrupted replay loses nothing (at worst a message is both
//! replayed and still listed, and de-duplication absorbs the second delivery).

use hookfleet_amqp::headers::{self as header, get_int, get_str, remove};
use hookfleet_amqp::{Broker, ConfirmedPublisher};
use hookfleet_core::Namespace;
use hookfleet_core::{EndpointId, EventType};
use lapin::options::{BasicAckOptions, BasicGetOptions};
use lapin::{BasicProperties, Channel};
use serde::Serialize;

use crate::Result;
use crate::bundle;
use crate::inbound::InboundEvent;

/// One dead letter as `dead-letters list` prints it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeadLetter {
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub tenant: Option<String>,
    pub endpoint: Option<String>,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub reason: String,
    /// RFC 3339.
    pub dead_at: Option<String>,
    /// The body as JSON when it is JSON, else as text.
    pub payload: serde_json::Value,
    /// Set when the body was over the contract's limit: its size as published. The payload is
    /// then only its first 4 KiB (and never replayed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_size: Option<i64>,
}

impl DeadLetter {
    fn read(properties: &BasicProperties, routing_key: &str, body: &[u8]) -> Self {
        let reason = get_str(properties, header::REASON)
            .map(|r| r.into_owned())
            .or_else(|| {
                get_str(properties, "x-first-death-reason")
                    .map(|r| format!("dead-lettered by RabbitMQ ({r}): the message was handed out too often without an ack"))
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let payload = serde_json::from_slice(body).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(body).into_owned())
        });
        let dead_at = get_int(properties, header::DEAD_AT).and_then(|ms| {
            time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                .ok()?
                .format(&time::format_description::well_known::Rfc3339)
                .ok()
        });
        Self {
            event_id: properties.message_id().as_ref().map(|s| s.to_string()),
            event_type: event_type(properties, routing_key).map(String::from),
            tenant: get_str(properties, header::TENANT).map(|t| t.into_owned()),
            endpoint: get_str(properties, header::ENDPOINT).map(|t| t.into_owned()),
            attempts: get_int(properties, header::ATTEMPTS).unwrap_or(0),
            last_status: get_int(properties, header::LAST_STATUS),
            last_error: get_str(properties, header::LAST_ERROR).map(|t| t.into_owned()),
            reason,
            dead_at,
            payload,
            original_size: get_int(properties, header::ORIGINAL_SIZE),
        }
    }
}

/// The type a dead letter belongs to: its `type` property, else the routing key it was
/// dead-lettered with.
fn event_type<'a>(properties: &'a BasicProperties, routing_key: &'a str) -> Option<&'a str> {
    properties
        .kind()
        .as_ref()
        .map(|k| k.as_str())
        .or(Some(routing_key).filter(|k| !k.is_empty()))
}

/// Up to `limit` dead letters, oldest first; the queue is left as it was.
pub async fn list(broker: &Broker, namespace: &Namespace, limit: usize) -> Result<Vec<DeadLetter>> {
    let channel = broker.channel().await?;
    let mut letters = Vec::new();
    while letters.len() < limit {
        let Some(message) = get(&channel, namespace).await? else {
            break;
        };
        let d = &message.delivery;
        letters.push(DeadLetter::read(
            &d.properties,
            d.routing_key.as_str(),
            &d.data,
        ));
    }
    let _ = channel.close(200, "listed".into()).await;
    Ok(letters)
}

/// What a replay did.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct ReplayReport {
    /// Sent back for delivery and removed from the dead-letter queue.
    pub replayed: usize,
    /// Left in the queue: other endpoints', or messages that break the contract.
    pub skipped: usize,
}

/// Sends dead letters back to their work queue with a fresh attempt count: those of `endpoint`
/// only when given, at most `limit`.
pub async fn replay(
    broker: &Broker,
    publisher: &ConfirmedPublisher,
    namespace: &Namespace,
    endpoint: Option<&EndpointId>,
    limit: usize,
) -> Result<ReplayReport> {
    let channel = broker.channel().await?;
    let mut report = ReplayReport::default();
    // Skipped messages stay unacked until the channel closes, so each is seen once per run.
    while report.replayed < limit {
        let Some(message) = get(&channel, namespace).await? else {
            break;
        };
        let d = &message.delivery;
        let Some(event_type) = replayable(&d.properties, d.routing_key.as_str(), &d.data) else {
            report.skipped += 1;
            continue;
        };
        let target = get_str(&d.properties, header::ENDPOINT);
        if endpoint.is_some_and(|e| target.as_deref() != Some(e.as_str())) {
            report.skipped += 1;
            continue;
        }
        let properties = fresh(&d.properties);
        publisher
            .send(
                &namespace.retry_exchange(),
                event_type.as_str(),
                &d.data,
                properties,
            )
            .await?;
        d.acker.ack(BasicAckOptions::default()).await?;
        report.replayed += 1;
    }
    let _ = channel.close(200, "replayed".into()).await;
    Ok(report)
}

async fn get(
    channel: &Channel,
    namespace: &Namespace,
) -> Result<Option<lapin::message::BasicGetMessage>> {
    Ok(channel
        .basic_get(
            namespace.dead().as_str().into(),
            BasicGetOptions { no_ack: false },
        )
        .await?)
}

/// The event type to replay into, when the message meets the contract (a malformed message
/// would only be dead-lettered again).
fn replayable(properties: &BasicProperties, routing_key: &str, body: &[u8]) -> Option<EventType> {
    // A truncated body is not the event any more, even should its first 4 KiB parse.
    if get_int(properties, header::ORIGINAL_SIZE).is_some() {
        return None;
    }
    let event_type: EventType = event_type(properties, routing_key)?.parse().ok()?;
    // A bundle that a worker older than bundles dead-lettered goes back whole: today's workers
    // unpack it.
    let readable = match bundle::count(properties) {
        Some(_) => bundle::unpack(body).is_ok(),
        None => InboundEvent::parse(properties, body, &event_type).is_ok(),
    };
    readable.then_some(event_type)
}

/// The properties of a replayed copy: the contract's, the target endpoint, and nothing of the
/// old attempts or of RabbitMQ's dead-lettering.
fn fresh(properties: &BasicProperties) -> BasicProperties {
    let mut headers = properties.headers().clone().unwrap_or_default();
    remove(
        &mut headers,
        &[
            header::ATTEMPTS,
            header::LAST_STATUS,
            header::LAST_ERROR,
            header::REASON,
            header::DEAD_AT,
            "x-death",
            "x-first-death-exchange",
            "x-first-death-queue",
            "x-first-death-reason",
            "x-last-death-exchange",
            "x-last-death-queue",
            "x-last-death-reason",
            "x-delivery-count",
        ],
    );
    properties.clone().with_headers(headers)
}
