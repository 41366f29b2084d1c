//! The message handler driven in-process, one message at a time, with no consumer around it:
//! the real RabbitMQ, Redis and HTTP receiver, but the test decides when each message is
//! handled and reads the outcome directly.

use std::time::{Duration, Instant};

use bytes::Bytes;
use hookfleet_amqp::{Broker, ConfirmedPublisher};
use hookfleet_core::policy::RetrySchedule;
use hookfleet_core::{Endpoint, EventFilter, EventType, Namespace};
use hookfleet_producer::OutboundEvent;
use hookfleet_store::EndpointStore;
use hookfleet_testkit::{AMQP_URL, REDIS_URL, WorkerEnv, teardown};
use hookfleet_worker::WorkerConfig;
use hookfleet_worker::acks::{Inbox, Settle, Settler};
use hookfleet_worker::handler::Deliverer;
use hookfleet_worker::handoff::Settlement;
use hookfleet_worker::inbound::InboundEvent;
use hookfleet_worker::metrics::Metrics;
use hookfleet_worker::{bundle, dead_letters};
use lapin::BasicProperties;
use lapin::options::BasicGetOptions;

use crate::util::{Receiver, Reply, metric_sum};

const BLOCKED: &str = "log.blocked";

fn config(env: &WorkerEnv) -> WorkerConfig {
    WorkerConfig {
        amqp_url: AMQP_URL.to_owned(),
        redis_url: REDIS_URL.to_owned(),
        namespace: env.namespace().parse().unwrap(),
        queue_type: hookfleet_amqp::QueueType::Quorum,
        event_types: vec![BLOCKED.parse().unwrap()],
        operator_tenant: "_operator".parse().unwrap(),
        max_inflight: 16,
        max_inflight_bytes: 1 << 20,
        endpoint_concurrency: 16,
        circuit_threshold: 5,
        circuit_cooldown: Duration::from_secs(30),
        disable_after: Duration::from_secs(3600),
        delivery_timeout: Duration::from_secs(2),
        retry: RetrySchedule::new(vec![Duration::from_millis(200)]),
        dedup_ttl: Duration::from_secs(60),
        user_agent: "hookfleet-test".to_owned(),
        allow_private_targets: true,
        allowed_ports: Default::default(),
        metrics_addr: "127.0.0.1:0".parse().unwrap(),
        endpoint_cache_ttl: Duration::ZERO,
        stall_timeout: Duration::from_secs(60),
        attempt_log_len: 100,
        keyring: Default::default(),
        history: None,
        ordered_backlog: 10_000,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_message_is_delivered_once_then_seen_as_a_duplicate_and_a_failure_is_retried() {
    // The environment names what teardown removes: the same type and retry delays.
    let env = WorkerEnv::fresh("h")
        .event_types(&[BLOCKED])
        .retry_delays(&[Duration::from_millis(200)]);
    let config = config(&env);
    let broker = Broker::connect(AMQP_URL).await.unwrap();
    config
        .topology()
        .declare(&broker.channel().await.unwrap())
        .await
        .unwrap();
    let redis = hookfleet_store::connect(REDIS_URL).unwrap();
    let receiver = Receiver::start().await.unwrap();
    let store = EndpointStore::new(redis.clone(), &env.namespace().parse().unwrap());
    let tenant = "acme".parse().unwrap();
    let endpoint = |path| {
        Endpoint::new(
            "acme".parse().unwrap(),
            &receiver.url(path),
            EventFilter::All,
            None,
            String::new(),
        )
        .unwrap()
    };
    store.insert(&endpoint("/hook")).await.unwrap();
    let metrics = Metrics::new();
    let deliverer = Deliverer::new(&config, &broker, redis, metrics.clone()).unwrap();

    let event_type: EventType = BLOCKED.parse().unwrap();
    let event = OutboundEvent::new(
        event_type.clone(),
        tenant,
        &serde_json::json!({"n": 1}),
        None,
    );
    let body = Bytes::from(event.body.clone());
    deliverer
        .handle(
            &event.properties(),
            body.clone(),
            &event_type,
            &Settlement::detached(),
        )
        .await
        .unwrap();
    assert_eq!(receiver.seen("/hook", event.id.as_str()).ok, 1);
    assert_eq!(receiver.requests("/hook")[0].body, body, "byte for byte");

    // The same message again (a redelivery): recorded as delivered, no second POST.
    deliverer
        .handle(
            &event.properties(),
            body.clone(),
            &event_type,
            &Settlement::detached(),
        )
        .await
        .unwrap();
    assert_eq!(receiver.count("/hook"), 1);
    let text = metrics.render();
    let result = |r| metric_sum(&text, "hookfleet_deliveries_total", &[("result", r)]);
    assert_eq!((result("delivered"), result("duplicate")), (1.0, 1.0));

    // A failing endpoint: the handler returns Ok once the retry is confirmed by the broker.
    receiver.set_default("/down", Reply::status(500));
    store.insert(&endpoint("/down")).await.unwrap();
    let second = OutboundEvent::new(
        event_type.clone(),
        "acme".parse().unwrap(),
        &serde_json::json!({"n": 2}),
        None,
    );
    deliverer
        .handle(
            &second.properties(),
            Bytes::from(second.body.clone()),
            &event_type,
            &Settlement::detached(),
        )
        .await
        .unwrap();
    assert_eq!(receiver.count("/down"), 1);
    assert_eq!(receiver.seen("/hook", second.id.as_str()).ok, 1);
    let text = metrics.render();
    assert_eq!(
        metric_sum(
            &text,
            "hookfleet_deliveries_total",
            &[("result", "retry_scheduled")]
        ),
        1.0
    );

    broker.close().await;
    teardown(&env, &[]).await;
}

/// A namespace with its topology, a receiver, one endpoint of `acme` on it, and a deliverer.
struct Rig {
    env: WorkerEnv,
    broker: Broker,
    channel: lapin::Channel,
    receiver: Receiver,
    namespace: Namespace,
    endpoint: Endpoint,
    metrics: Metrics,
    deliverer: Deliverer,
    event_type: EventType,
    /// The work queue of `log.blocked`.
    queue: String,
}

impl Rig {
    /// Retries after 200 ms, a 2 s delivery timeout, the endpoint at `path`.
    async fn start(path: &str) -> Self {
        let env = WorkerEnv::fresh("h")
            .event_types(&[BLOCKED])
            .retry_delays(&[Duration::from_millis(200)]);
        let config = config(&env);
        let broker = Broker::connect(AMQP_URL).await.unwrap();
        let channel = broker.channel().await.unwrap();
        config.topology().declare(&channel).await.unwrap();
        let redis = hookfleet_store::connect(REDIS_URL).unwrap();
        let receiver = Receiver::start().await.unwrap();
        let namespace: Namespace = env.namespace().parse().unwrap();
        let tenant = "acme".parse().unwrap();
        let url = receiver.url(path);
        let endpoint = Endpoint::new(tenant, &url, EventFilter::All, None, String::new()).unwrap();
        (EndpointStore::new(redis.clone(), &namespace))
            .insert(&endpoint)
            .await
            .unwrap();
        let metrics = Metrics::new();
        let deliverer = Deliverer::new(&config, &broker, redis, metrics.clone()).unwrap();
        let event_type: EventType = BLOCKED.parse().unwrap();
        let queue = namespace.work_queue(&event_type);
        Self {
            env,
            broker,
            channel,
            receiver,
            namespace,
            endpoint,
            metrics,
            deliverer,
            event_type,
            queue,
        }
    }

    /// A new event `{"n": n}` of `acme`.
    fn event(&self, n: u32) -> OutboundEvent {
        let data = serde_json::json!({ "n": n });
        OutboundEvent::new(
            self.event_type.clone(),
            "acme".parse().unwrap(),
            &data,
            None,
        )
    }

    async fn stop(self) {
        self.broker.close().await;
        teardown(&self.env, &[]).await;
    }
}

/// Waits for the next settle the message sent (bounded).
async fn next_settle(inbox: &mut Inbox) -> Settle {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(settle) = inbox.try_next() {
            return settle;
        }
        assert!(Instant::now() < deadline, "the message was never settled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits for the next message on `queue` (bounded) and takes it.
async fn next_message(channel: &lapin::Channel, queue: &str) -> (BasicProperties, Bytes) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap();
        if let Some(message) = got {
            let delivery = message.delivery;
            return (delivery.properties, Bytes::from(delivery.data));
        }
        assert!(Instant::now() < deadline, "nothing came back to {queue}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Handles `event` with its message asked for at once, as the settler asks for a message that
/// finished ones wait behind, and checks that the message is acked before the slow attempt
/// ends: the delivery was handed off.
async fn handle_asked(deliverer: &Deliverer, event: &OutboundEvent, event_type: &EventType) {
    let (settler, mut inbox) = Settler::new();
    let message = Settlement::new(settler, 1);
    inbox.ask_through(1);
    let (properties, body) = (event.properties(), Bytes::from(event.body.clone()));
    let handling = deliverer.handle(&properties, body, event_type, &message);
    tokio::pin!(handling);
    tokio::select! {
        result = &mut handling => panic!("the attempt ended before any hand-off: {result:?}"),
        settle = next_settle(&mut inbox) => assert!(matches!(settle, Settle::Ack(1)), "{settle:?}"),
    }
    handling.await.unwrap();
    assert!(inbox.try_next().is_none(), "settled once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_delivery_is_handed_off_and_its_early_retry_never_doubles_an_outcome() {
    // A 2 s delivery timeout: a hand-off once an attempt has taken 100 ms.
    let rig = Rig::start("/slow").await;
    let Rig {
        channel,
        receiver,
        endpoint,
        metrics,
        deliverer,
        event_type,
        queue,
        ..
    } = &rig;
    let new_event = |n| rig.event(n);
    let count = |name: &str, labels: &[(&str, &str)]| metric_sum(&metrics.render(), name, labels);
    let result = |r| count("hookfleet_deliveries_total", &[("result", r)]);
    let slow = Duration::from_millis(800);

    // A 2xx after the hand-off: the retry published then comes back, for this endpoint with
    // the attempt counted, and is skipped as a duplicate.
    receiver.set_default("/slow", Reply::status(200).delayed(slow));
    let first = new_event(1);
    handle_asked(deliverer, &first, event_type).await;
    assert_eq!(count("hookfleet_deliveries_handed_off_total", &[]), 1.0);
    assert_eq!(receiver.seen("/slow", first.id.as_str()).ok, 1);
    let (properties, body) = next_message(channel, queue).await;
    let retries = bundle::unpack(&body).unwrap();
    assert_eq!(retries.len(), 1, "a bundle of one");
    let retry = InboundEvent::parse(&retries[0].0, &retries[0].1, event_type).unwrap();
    assert_eq!(
        (retry.id.as_str(), retry.target.as_ref(), retry.attempts),
        (first.id.as_str(), Some(&endpoint.id), 1)
    );
    let detached = Settlement::detached();
    (deliverer.handle(&properties, body, event_type, &detached))
        .await
        .unwrap();
    assert_eq!(receiver.count("/slow"), 1, "no second POST");
    assert_eq!((result("delivered"), result("duplicate")), (1.0, 1.0));
    assert_eq!(result("retry_scheduled"), 0.0);

    // A failure after the hand-off publishes nothing more: the retry queued then makes the
    // next attempt, and is the only message to come back.
    receiver.set_default("/slow", Reply::status(503).delayed(slow));
    let second = new_event(2);
    handle_asked(deliverer, &second, event_type).await;
    assert_eq!(count("hookfleet_deliveries_handed_off_total", &[]), 2.0);
    assert_eq!(result("retry_scheduled"), 1.0);
    receiver.set_default("/slow", Reply::status(200));
    let (properties, body) = next_message(channel, queue).await;
    (deliverer.handle(&properties, body, event_type, &detached))
        .await
        .unwrap();
    let seen = receiver.seen("/slow", second.id.as_str());
    assert_eq!((seen.requests, seen.ok), (2, 1));
    // Absence can only be waited for: five times the retry tier (jitter included), then look.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let left = channel
        .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap();
    assert!(left.is_none(), "a second retry came back");
    rig.stop().await;
}

/// Deferred deliveries gathered within the linger travel as one message; when it comes back
/// from its tier, each is delivered as if it had come alone. A bundle that cannot be read is
/// dead-lettered whole, not dropped.
#[tokio::test(flavor = "multi_thread")]
async fn deferrals_travel_in_one_bundle_and_are_each_delivered_when_it_returns() {
    let rig = Rig::start("/hook").await;
    let Rig {
        broker,
        channel,
        receiver,
        namespace,
        endpoint,
        deliverer,
        event_type,
        queue,
        ..
    } = &rig;

    // Three deferrals at once, as three deliveries of a busy endpoint would make them.
    let events: Vec<OutboundEvent> = (0..3).map(|n| rig.event(n)).collect();
    let defer = |event: &OutboundEvent| {
        let properties = hookfleet_worker::retry::for_endpoint(&event.properties(), &endpoint.id);
        let (bundler, body) = (&deliverer.bundler, event.body.clone());
        async move { (bundler.send(Duration::from_secs(1), BLOCKED, &properties, &body)).await }
    };
    let sent = tokio::join!(defer(&events[0]), defer(&events[1]), defer(&events[2]));
    assert!(
        sent.0.is_ok() && sent.1.is_ok() && sent.2.is_ok(),
        "{sent:?}"
    );

    let (properties, body) = next_message(channel, queue).await;
    assert_eq!(bundle::count(&properties), Some(3), "one message for three");
    let unpacked = bundle::unpack(&body).unwrap();
    for ((item_properties, item_body), event) in unpacked.iter().zip(&events) {
        assert_eq!(item_body, &event.body, "byte for byte");
        let item = InboundEvent::parse(item_properties, item_body, event_type).unwrap();
        assert_eq!(
            (item.id, item.target.as_ref()),
            (event.id.clone(), Some(&endpoint.id))
        );
    }
    let message = Settlement::detached();
    (deliverer.handle(&properties, body.clone(), event_type, &message))
        .await
        .unwrap();
    for event in &events {
        assert_eq!(receiver.seen("/hook", event.id.as_str()).ok, 1);
    }

    // A damaged bundle goes to the dead-letter queue as it is.
    let damaged = Bytes::from_static(b"\x00\x00\x00\x09{not json");
    (deliverer.handle(&properties, damaged.clone(), event_type, &message))
        .await
        .unwrap();
    let (dead_properties, dead_body) = next_message(channel, &namespace.dead()).await;
    assert_eq!(dead_body, damaged);
    let headers = dead_properties.headers().clone().unwrap_or_default();
    let reason = match headers.inner().get("x-hookfleet-reason") {
        Some(lapin::types::AMQPValue::LongString(s)) => s.to_string(),
        other => panic!("no reason: {other:?}"),
    };
    assert!(reason.starts_with("malformed bundle"), "{reason}");

    // A readable bundle that a worker older than bundles dead-lettered is replayed whole.
    let publisher = ConfirmedPublisher::new(broker.clone());
    (publisher.send(&namespace.dead(), BLOCKED, &body, properties.clone()))
        .await
        .unwrap();
    let report = dead_letters::replay(broker, &publisher, namespace, None, 10)
        .await
        .unwrap();
    assert_eq!((report.replayed, report.skipped), (1, 0));
    let (replayed_properties, replayed) = next_message(channel, queue).await;
    assert_eq!(bundle::count(&replayed_properties), Some(3));
    assert_eq!(replayed, body);
    rig.stop().await;
}
