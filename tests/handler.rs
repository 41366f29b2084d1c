//! The message handler driven in-process, one message at a time, with no consumer around it:
//! the real RabbitMQ, Redis and HTTP receiver, but the test decides when each message is
//! handled and reads the outcome directly.

use std::time::Duration;

use bytes::Bytes;
use hookfleet_amqp::Broker;
use hookfleet_core::policy::RetrySchedule;
use hookfleet_core::{Endpoint, EventFilter, EventType};
use hookfleet_producer::OutboundEvent;
use hookfleet_store::EndpointStore;
use hookfleet_testkit::{AMQP_URL, REDIS_URL, WorkerEnv, teardown};
use hookfleet_worker::WorkerConfig;
use hookfleet_worker::handler::Deliverer;
use hookfleet_worker::metrics::Metrics;

use crate::util::{Receiver, Reply, metric_sum};

const BLOCKED: &str = "log.blocked";

fn config(env: &WorkerEnv) -> WorkerConfig {
    WorkerConfig {
        amqp_url: AMQP_URL.to_owned(),
        redis_url: REDIS_URL.to_owned(),
        namespace: env.namespace().parse().unwrap(),
        queue_type: hookfleet_amqp::QueueType::Quorum,
        event_types: vec![BLOCKED.parse().unwrap()],
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
        metrics_addr: "127.0.0.1:0".parse().unwrap(),
        endpoint_cache_ttl: Duration::ZERO,
        stall_timeout: Duration::from_secs(60),
        attempt_log_len: 100,
        secret_key: None,
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
    store.put(&endpoint("/hook")).await.unwrap();
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
        .handle(&event.properties(), body.clone(), &event_type)
        .await
        .unwrap();
    assert_eq!(receiver.seen("/hook", event.id.as_str()).ok, 1);
    assert_eq!(receiver.requests("/hook")[0].body, body, "byte for byte");

    // The same message again (a redelivery): recorded as delivered, no second POST.
    deliverer
        .handle(&event.properties(), body.clone(), &event_type)
        .await
        .unwrap();
    assert_eq!(receiver.count("/hook"), 1);
    let text = metrics.render();
    let result = |r| metric_sum(&text, "hookfleet_deliveries_total", &[("result", r)]);
    assert_eq!((result("delivered"), result("duplicate")), (1.0, 1.0));

    // A failing endpoint: the handler returns Ok once the retry is confirmed by the broker.
    receiver.set_default("/down", Reply::status(500));
    store.put(&endpoint("/down")).await.unwrap();
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
