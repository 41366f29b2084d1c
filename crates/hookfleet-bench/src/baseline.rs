//! The two baselines the pipeline is compared with:
//! - the broker alone: raw lapin, persistent messages with confirms and many in flight, through
//!   one quorum queue, consumed with manual acks at the worker's prefetch;
//! - HTTP alone: raw reqwest POSTs of the same bodies to the same receiver at the worker's
//!   concurrency.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};

use crate::load::{Events, IN_FLIGHT};
use crate::report::{Outcome, name};
use crate::{AMQP_URL, Settings};

/// The baseline queue's name in `namespace` (deleted by the clean-up).
pub fn queue_name(namespace: &str) -> String {
    format!("{namespace}.baseline")
}

/// Publishes `count` messages, then drains them, then does a round trip (consumer running
/// while `count` more are published). The outcome's rate is the round trip.
pub async fn broker(settings: &Settings, namespace: &str, events: &Events) -> Outcome {
    let mut outcome = Outcome::new(name::BROKER);
    outcome.expected = settings.events;
    let run = broker_phases(settings, namespace, events, &mut outcome);
    match tokio::time::timeout(settings.timeout, run).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => outcome.error = Some(format!("{error:#}")),
        Err(_) => outcome.timed_out = true,
    }
    outcome
}

async fn broker_phases(
    settings: &Settings,
    namespace: &str,
    events: &Events,
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    let n = settings.events;
    let connection = Connection::connect(AMQP_URL, ConnectionProperties::default())
        .await
        .context("cannot reach RabbitMQ")?;
    let publisher = connection.create_channel().await?;
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let queue = queue_name(namespace);
    declare(&publisher, &queue).await?;
    // One message built like the pipeline's, sent many times: same size, same properties.
    let sample = events.build(0);
    let (body, properties) = (sample.body.clone(), sample.properties());

    eprintln!("[{}] publishing {n} messages", name::BROKER);
    let started = Instant::now();
    publish_all(&publisher, &queue, &body, &properties, n).await?;
    let publish_s = started.elapsed().as_secs_f64();
    outcome.publish_rate = Some(n as f64 / publish_s);

    eprintln!("[{}] draining {n} messages", name::BROKER);
    let consumer = connection.create_channel().await?;
    consumer
        .basic_qos(settings.concurrency as u16, BasicQosOptions::default())
        .await?;
    let mut stream = consumer
        .basic_consume(
            queue.as_str().into(),
            "bench".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let started = Instant::now();
    consume(&mut stream, n).await?;
    outcome.drain_rate = Some(n as f64 / started.elapsed().as_secs_f64());

    eprintln!("[{}] round trip of {n} messages", name::BROKER);
    let started = Instant::now();
    let (published, consumed) = tokio::join!(
        publish_all(&publisher, &queue, &body, &properties, n),
        consume(&mut stream, n)
    );
    published?;
    outcome.delivered = consumed?;
    outcome.sent = n;
    outcome.seconds = started.elapsed().as_secs_f64();
    outcome.rate = outcome.delivered as f64 / outcome.seconds;
    let _ = connection.close(200, "baseline done".into()).await;
    Ok(())
}

/// Declares `queue`, a durable quorum queue like the work queues.
async fn declare(channel: &Channel, queue: &str) -> anyhow::Result<()> {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel.queue_declare(queue.into(), durable, args).await?;
    Ok(())
}

/// Declares `queue` and publishes `count` events built like the pipeline's into it, confirmed.
pub async fn fill(queue: &str, events: &Events, count: u64) -> anyhow::Result<()> {
    let connection = Connection::connect(AMQP_URL, ConnectionProperties::default())
        .await
        .context("cannot reach RabbitMQ")?;
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    declare(&channel, queue).await?;
    let mut seq = 0;
    let batch = IN_FLIGHT as u64 * 4;
    while seq < count {
        let n = batch.min(count - seq);
        let bodies: Vec<_> = (seq..seq + n).map(|s| events.build(s as usize)).collect();
        let confirms = bodies.iter().map(|event| {
            let properties = event.properties();
            let channel = &channel;
            async move {
                channel
                    .basic_publish("".into(), queue.into(), PUBLISH, &event.body, properties)
                    .await?
                    .await
            }
        });
        for confirm in futures_util::future::join_all(confirms).await {
            match confirm? {
                Confirmation::Ack(None) => {}
                other => bail!("publish not confirmed: {other:?}"),
            }
        }
        seq += n;
    }
    let _ = connection.close(200, "filled".into()).await;
    Ok(())
}

/// Mandatory: a missing queue is an error, not a silent drop.
const PUBLISH: BasicPublishOptions = BasicPublishOptions {
    mandatory: true,
    immediate: false,
};

async fn publish_all(
    channel: &Channel,
    queue: &str,
    body: &[u8],
    properties: &BasicProperties,
    n: u64,
) -> anyhow::Result<()> {
    let options = PUBLISH;
    let mut confirms = futures_util::stream::iter(0..n)
        .map(|_| async move {
            channel
                .basic_publish("".into(), queue.into(), options, body, properties.clone())
                .await?
                .await
        })
        .buffer_unordered(IN_FLIGHT * 4);
    while let Some(confirm) = confirms.next().await {
        match confirm? {
            Confirmation::Ack(None) => {}
            other => bail!("publish not confirmed: {other:?}"),
        }
    }
    Ok(())
}

/// Takes `n` deliveries, acking each one (as the worker does); returns how many.
async fn consume(stream: &mut lapin::Consumer, n: u64) -> anyhow::Result<u64> {
    let mut got = 0;
    while got < n {
        let Some(delivery) = stream.next().await else {
            bail!("the consumer was cancelled after {got} messages");
        };
        delivery?.acker.ack(BasicAckOptions::default()).await?;
        got += 1;
    }
    Ok(got)
}

/// POSTs `settings.events` event bodies to `url`, `settings.concurrency` at a time.
pub async fn http(settings: &Settings, url: &str, events: &Events) -> Outcome {
    let mut outcome = Outcome::new(name::HTTP);
    let n = settings.events;
    outcome.expected = n;
    outcome.sent = n;
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .tcp_nodelay(true)
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            outcome.error = Some(error.to_string());
            return outcome;
        }
    };
    // `Bytes` so that every request shares one body.
    let body = bytes::Bytes::from(events.build(0).body);
    eprintln!(
        "[{}] {n} POSTs, {} at a time",
        name::HTTP,
        settings.concurrency
    );
    let started = Instant::now();
    let mut requests = futures_util::stream::iter(0..n)
        .map(|_| {
            let request = client
                .post(url)
                .header("content-type", "application/json")
                .body(body.clone());
            async move { request.send().await.map(|r| r.status().is_success()) }
        })
        .buffer_unordered(settings.concurrency);
    let deadline = tokio::time::sleep(settings.timeout);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut deadline => {
                outcome.timed_out = true;
                break;
            }
            next = requests.next() => match next {
                Some(Ok(true)) => outcome.delivered += 1,
                Some(Ok(false)) => {}
                Some(Err(error)) => {
                    outcome.error.get_or_insert(error.to_string());
                }
                None => break,
            }
        }
    }
    outcome.seconds = started.elapsed().as_secs_f64();
    outcome.rate = outcome.delivered as f64 / outcome.seconds;
    outcome
}
